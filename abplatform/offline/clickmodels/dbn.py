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

Fitting maximises the penalised likelihood (the binomial likelihood times each pair's Beta
priors with ``m`` pseudo-observations centred on the back-offs, as PBM's, :mod:`.pbm`) by EM:

* M-step: ``alpha_qu = (sum P(A = 1 | C) + m b_qu) / (impressions + m)`` and
  ``sigma_qu = (sum P(S = 1 | C) + m s_qu) / (clicks + m)`` over the pair's impressions / clicks,
  ``gamma`` = expected continuations ``sum P(E_{r+1} = 1 | C)`` / expected chances
  ``sum P(E_r = 1, S_r = 0 | C)`` over ranks r whose next rank is shown;
* the attraction back-off ``b`` is fitted on raw position-debiased rates, the pair's clicks over
  its expected examinations ``sum P(E = 1 | C)``, and the satisfaction back-off ``s`` on the raw
  rates ``sum P(S = 1 | C)`` / clicks (:class:`.backoff.BackedOffRate` with ``raw_targets``), not
  on the smoothed estimates: a smoothed estimate of a rarely shown pair echoes its own prior;
* first with the item back-offs (refitted at every iteration) until the penalised log-likelihood
  gains less than ``tol`` per 1000 impressions, then with the feature back-offs fitted once on
  that fit's expected statistics and held fixed, again until the same tolerance.

The posteriors follow the user from rank 1 through every rank above the last click, so a sparse
log (a page with a gap above a logged item) is refused (:mod:`.base`).
"""

from __future__ import annotations

import numpy as np

from .backoff import BackedOffRate
from .base import ClickModel, _probability_of_observed, as_uniforms, at_impressions, per_pair
from .data import ClickLog


class DBN(ClickModel):
    """Fitted: ``attraction_`` and ``satisfaction_`` (:class:`BackedOffRate`), ``continuation_`` (gamma)."""

    name = "dbn"

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        shown, clicks = log.shown, log.clicks
        m, index = self.prior_strength, self.index_
        self.satisfaction_ = BackedOffRate("binomial", m, raw_targets=True)

        def pair_sums(values: np.ndarray) -> np.ndarray:
            return per_pair(pair_slots, values, index.n_pairs)

        def at_slots(values: np.ndarray) -> np.ndarray:
            return at_impressions(values, pair_slots)

        pair_clicks, pair_impressions = pair_sums(clicks), pair_sums(shown)
        tolerance = self.tol * shown.sum() / 1000
        alpha = np.clip((pair_clicks + 1.0) / (pair_impressions + 2.0), 1e-6, 1 - 1e-6)
        sigma = np.full(index.n_pairs, 0.5)
        gamma = 0.9
        self.log_likelihood_trace_: list[float] = []
        self.n_iter_ = 0
        for features in (None,) if self.features_ is None else (None, self.features_):
            priors = None
            for _ in range(self.max_iter):
                alpha_at, sigma_at = at_slots(alpha), at_slots(sigma)
                attracted, satisfied, examined, continuations, chances = self._posteriors(
                    alpha_at, sigma_at, gamma, shown, clicks)
                if priors is None or features is None:
                    priors = (
                        np.clip(self.attraction_.fit_prior(index, pair_clicks, pair_sums(examined), features),
                                1e-6, 1 - 1e-6),
                        np.clip(self.satisfaction_.fit_prior(index, pair_sums(satisfied), pair_clicks, features),
                                1e-6, 1 - 1e-6),
                    )
                alpha = (pair_sums(attracted) + m * priors[0]) / (pair_impressions + m)
                sigma = (pair_sums(satisfied) + m * priors[1]) / (pair_clicks + m)
                gamma = continuations / chances
                self.n_iter_ += 1
                trace = self.log_likelihood_trace_
                trace.append(_penalised_log_likelihood(alpha, sigma, gamma, priors, m, at_slots, shown, clicks))
                if len(trace) > 1 and abs(trace[-1] - trace[-2]) < tolerance:
                    break
        self.attraction_.pair_, self.satisfaction_.pair_ = alpha, sigma
        self.continuation_ = float(gamma)

    @staticmethod
    def _posteriors(
        alpha: np.ndarray, sigma: np.ndarray, gamma: float, shown: np.ndarray, clicks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """(P(A=1 | C), P(S=1 | C), P(E=1 | C)) per impression, the expected continuations and chances to continue."""
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
        return attracted * shown, satisfied, examined, continuations, chances

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
        return _conditional_click_probabilities(alpha, sigma, self.continuation_, clicks)

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
            examined = _examined_next(examined, alpha[:, j], sigma[:, j], self.continuation_, p, clicks[:, j])
        return clicks


def _conditional_click_probabilities(alpha: np.ndarray, sigma: np.ndarray, gamma: float,
                                     clicks: np.ndarray) -> np.ndarray:
    """(n, k) P(C_r = 1 | clicks above) for per-impression ``alpha``, ``sigma`` and continuation ``gamma``."""
    p = np.empty_like(alpha)
    examined = np.ones(len(alpha))
    for j in range(alpha.shape[1]):
        p[:, j] = alpha[:, j] * examined
        examined = _examined_next(examined, alpha[:, j], sigma[:, j], gamma, p[:, j], clicks[:, j])
    return p


def _examined_next(examined: np.ndarray, alpha: np.ndarray, sigma: np.ndarray, gamma: float, p_click: np.ndarray,
                   clicked: np.ndarray) -> np.ndarray:
    """P(E_{r+1} = 1 | clicks up to r) from P(E_r = 1 | clicks above r) and the click at r."""
    not_clicked = examined * (1.0 - alpha) / np.maximum(1.0 - p_click, 1e-12)
    return gamma * np.where(clicked, 1.0 - sigma, not_clicked)


def _penalised_log_likelihood(alpha: np.ndarray, sigma: np.ndarray, gamma: float,
                              priors: tuple[np.ndarray, np.ndarray], m: float, at_slots,
                              shown: np.ndarray, clicks: np.ndarray) -> float:
    """Log-likelihood of the clicks plus the log Beta(m b, m (1 - b)) priors of every pair's alpha and sigma."""
    p = _conditional_click_probabilities(at_slots(alpha), at_slots(sigma), gamma, clicks)
    ll = float(np.log(_probability_of_observed(p, clicks))[shown].sum())
    for value, prior in zip((alpha, sigma), priors, strict=True):
        ll += float((m * prior * np.log(value) + m * (1.0 - prior) * np.log1p(-value)).sum())
    return ll
