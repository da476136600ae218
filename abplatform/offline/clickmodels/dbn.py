"""Dynamic Bayesian network model (DBN; Chapelle & Zhang 2009).

The user examines rank 1; at an examined rank r they click iff attracted (``alpha_qu``); after a
click they are satisfied with probability ``sigma_qu`` and stop; unless satisfied they go on to
rank r + 1 with probability ``gamma``. Marginally ``P(E_{r+1}) = P(E_r) gamma (1 - alpha_r sigma_r)``.

EM (Chuklin, Markov & de Rijke 2015, sec. 4.3, specialised): every rank down to the last click l
is examined, and so are their attraction and (for clicks above l) satisfaction known. Only what
happened after l is hidden: with ``Z_j = P(no click at j.. | E_j = 1) = (1 - alpha_j)(1 - gamma +
gamma Z_{j+1})`` and ``e = P(E_{l+1} = 1 | click at l) = gamma (1 - sigma_l)`` (``e = 1`` without
clicks), ``D = 1 - e + e Z_{l+1}``:

* ``P(S_l = 1 | C) = sigma_l / D``;
* ``P(E_j = 1 | C) = e prod_{l<i<j} (gamma (1 - alpha_i)) Z_j / D`` for j > l;
* ``P(A_j = 1 | C) = alpha_j P(E_j = 0 | C)`` for j > l.

M-step: ``alpha_qu`` = smoothed mean of ``P(A = 1 | C)`` over the pair's impressions, ``sigma_qu``
= smoothed mean of ``P(S = 1 | C)`` over its clicks (:mod:`.backoff`), ``gamma`` = expected
continuations ``sum P(E_{r+1} = 1 | C)`` / expected chances ``sum P(E_r = 1, S_r = 0 | C)`` over
ranks r whose next rank is shown.
"""

from __future__ import annotations

import numpy as np

from .backoff import BackedOffRate
from .base import ClickModel, as_uniforms, fit_pair_rate
from .data import ClickLog


class DBN(ClickModel):
    """Fitted: ``attraction_`` and ``satisfaction_`` (:class:`BackedOffRate`), ``continuation_`` (gamma)."""

    name = "dbn"

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        shown, clicks = log.shown, log.clicks
        self.satisfaction_ = BackedOffRate("binomial", self.prior_strength)
        alpha = np.where(shown, 0.5, 0.0)
        sigma = np.where(shown, 0.5, 0.0)
        gamma = 0.9
        for self.n_iter_ in range(1, self.max_iter + 1):
            attracted, satisfied, continuations, chances = self._posteriors(alpha, sigma, gamma, shown, clicks)
            new_alpha = fit_pair_rate(self.attraction_, self.index_, pair_slots, attracted, shown.astype(float))
            new_sigma = fit_pair_rate(self.satisfaction_, self.index_, pair_slots, satisfied, clicks.astype(float))
            new_gamma = continuations / chances
            change = max(np.abs(new_alpha - alpha).max(), np.abs(new_sigma - sigma).max(), abs(new_gamma - gamma))
            alpha, sigma, gamma = new_alpha, new_sigma, new_gamma
            if change < self.tol:
                break
        attracted, satisfied, _, _ = self._posteriors(alpha, sigma, gamma, shown, clicks)
        fit_pair_rate(self.attraction_, self.index_, pair_slots, attracted, shown.astype(float), self.features_)
        fit_pair_rate(self.satisfaction_, self.index_, pair_slots, satisfied, clicks.astype(float), self.features_)
        self.continuation_ = float(gamma)

    @staticmethod
    def _posteriors(
        alpha: np.ndarray, sigma: np.ndarray, gamma: float, shown: np.ndarray, clicks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float, float]:
        """(P(A=1 | C), P(S=1 | C)) per impression and the expected continuations and chances to continue."""
        n, k = clicks.shape
        ranks = np.arange(k)
        has_click = clicks.any(axis=1)
        last_click = np.where(has_click, k - 1 - np.argmax(clicks[:, ::-1], axis=1), -1)
        rows = np.arange(n)
        not_attracted_by_rank = np.ascontiguousarray((1.0 - alpha).T)
        shown_by_rank = np.ascontiguousarray(shown.T)
        no_click_from_by_rank = np.ones((k + 1, n))  # Z_j, with Z_k = 1; rank-major for the recursion
        for j in range(k - 1, -1, -1):
            z = not_attracted_by_rank[j] * (1.0 - gamma + gamma * no_click_from_by_rank[j + 1])
            no_click_from_by_rank[j] = np.where(shown_by_rank[j], z, 1.0)
        no_click_from = no_click_from_by_rank.T
        sigma_last = np.where(has_click, sigma[rows, np.maximum(last_click, 0)], 0.0)
        examine_after = np.where(has_click, gamma * (1.0 - sigma_last), 1.0)
        z_after = no_click_from[rows, last_click + 1]
        evidence = 1.0 - examine_after + examine_after * z_after
        after = ranks[None, :] > last_click[:, None]
        step = np.where(after, gamma * (1.0 - alpha), 1.0)
        reach = np.cumprod(np.column_stack([np.ones(n), step[:, :-1]]), axis=1)  # prod_{l<i<j} gamma (1 - alpha_i)
        examined = np.where(after, examine_after[:, None] * reach * no_click_from[:, :k] / evidence[:, None], 1.0)
        examined *= shown
        attracted = np.where(after, alpha * (1.0 - examined), clicks)
        satisfied = np.zeros((n, k))
        satisfied[rows[has_click], last_click[has_click]] = (sigma_last / evidence)[has_click]
        next_shown = shown[:, 1:]
        continuations = float(examined[:, 1:][next_shown].sum())
        chances = float((examined[:, :-1] - satisfied[:, :-1])[next_shown].sum())
        return attracted * shown, satisfied, continuations, chances

    def _parameters(self, query_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = self.attraction(query_ids, item_ids)
        sigma = np.nan_to_num(self.satisfaction_(query_ids, item_ids), nan=0.0)
        return alpha, sigma

    def click_probabilities(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        alpha, sigma = self._parameters(query_ids, item_ids)
        step = self.continuation_ * (1.0 - alpha * sigma)
        examined = np.cumprod(np.column_stack([np.ones(len(alpha)), step[:, :-1]]), axis=1)
        return alpha * examined

    def conditional_click_probabilities(
        self, query_ids: np.ndarray, item_ids: np.ndarray, clicks: np.ndarray
    ) -> np.ndarray:
        alpha, sigma = self._parameters(query_ids, item_ids)
        p = np.empty_like(alpha)
        examined = np.ones(len(alpha))
        for j in range(alpha.shape[1]):
            p[:, j] = alpha[:, j] * examined
            examined = self._examined_next(examined, alpha[:, j], sigma[:, j], p[:, j], clicks[:, j])
        return p

    def sample(
        self, query_ids: np.ndarray, item_ids: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        alpha, sigma = self._parameters(query_ids, item_ids)
        u = as_uniforms(u, item_ids.shape)
        clicks = np.zeros(alpha.shape, dtype=bool)
        examined = np.ones(len(alpha))
        for j in range(alpha.shape[1]):
            p = alpha[:, j] * examined
            clicks[:, j] = u[:, j] < p
            examined = self._examined_next(examined, alpha[:, j], sigma[:, j], p, clicks[:, j])
        return clicks

    def _examined_next(
        self, examined: np.ndarray, alpha: np.ndarray, sigma: np.ndarray, p_click: np.ndarray, clicked: np.ndarray
    ) -> np.ndarray:
        """P(E_{r+1} = 1 | clicks up to r) from P(E_r = 1 | clicks above r) and the click at r."""
        not_clicked = examined * (1.0 - alpha) / np.maximum(1.0 - p_click, 1e-12)
        return self.continuation_ * np.where(clicked, 1.0 - sigma, not_clicked)
