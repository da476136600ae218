"""User browsing model (UBM; Dupret & Piwowarski 2008).

``C_r = E_r * A_r`` with ``P(A_r = 1) = alpha_qu`` and ``P(E_r = 1 | clicks above) = gamma_{r,d}``,
where d is the distance from rank r up to the last click above it (to rank 0 if none). EM as in
Chuklin, Markov & de Rijke 2015, sec. 4.3: given the clicks, ranks are independent, so the E-step
is PBM's with ``gamma_{r,d}`` in place of ``gamma_r``; the M-step averages ``P(A=1 | C)`` per pair
(smoothed, :mod:`.backoff`) and ``P(E=1 | C)`` per (r, d) cell with a Beta(1, 1) prior (so a cell
never observed keeps 0.5). As in PBM, only ``alpha * gamma`` is identified: after every M-step
gamma is divided by its maximum and alpha multiplied by it.
"""

from __future__ import annotations

import numpy as np

from .base import ClickModel, as_uniforms, fit_pair_rate
from .data import ClickLog
from .pbm import examination_posteriors


class UBM(ClickModel):
    """Fitted: ``examination_[r, d]``, P(E = 1) at 0-based rank r when the last click above is d ranks up."""

    name = "ubm"

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        shown, clicks = log.shown, log.clicks
        k = clicks.shape[1]
        cell = _cells(clicks)
        cell_ids = cell[shown]
        impressions_per_cell = np.bincount(cell_ids, minlength=k * (k + 1))
        gamma = np.full(k * (k + 1), 0.5)
        alpha = np.where(shown, 0.5, 0.0)
        for self.n_iter_ in range(1, self.max_iter + 1):
            attracted, examined = examination_posteriors(alpha, gamma[cell], clicks)
            new_alpha = fit_pair_rate(self.attraction_, self.index_, pair_slots, attracted, shown.astype(float))
            examined_per_cell = np.bincount(cell_ids, examined[shown], minlength=k * (k + 1))
            new_gamma = (examined_per_cell + 0.5) / (impressions_per_cell + 1.0)
            scale = new_gamma.max()
            new_gamma, new_alpha = new_gamma / scale, new_alpha * scale
            change = max(np.abs(new_alpha - alpha).max(), np.abs(new_gamma - gamma).max())
            alpha, gamma = new_alpha, new_gamma
            if change < self.tol:
                break
        attracted, _ = examination_posteriors(alpha, gamma[cell], clicks)
        fit_pair_rate(self.attraction_, self.index_, pair_slots, attracted, shown.astype(float), self.features_)
        self.examination_ = gamma.reshape(k, k + 1)

    def click_probabilities(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        alpha = self.attraction(query_ids, item_ids)
        n, k = alpha.shape
        p = np.zeros((n, k))
        # no_click_since[:, i]: P(last click at rank i - 1 (0: none) and no click since), i <= current rank
        no_click_since = np.zeros((n, k + 1))
        no_click_since[:, 0] = 1.0
        for r in range(k):
            distances = r + 1 - np.arange(r + 1)
            click_given = alpha[:, r, None] * self.examination_[r, distances][None, :]
            p[:, r] = (no_click_since[:, : r + 1] * click_given).sum(axis=1)
            no_click_since[:, : r + 1] *= 1.0 - click_given
            no_click_since[:, r + 1] = p[:, r]
        return p

    def conditional_click_probabilities(
        self, query_ids: np.ndarray, item_ids: np.ndarray, clicks: np.ndarray
    ) -> np.ndarray:
        return self.attraction(query_ids, item_ids) * self.examination_.ravel()[_cells(clicks)]

    def sample(
        self, query_ids: np.ndarray, item_ids: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        alpha = self.attraction(query_ids, item_ids)
        u = as_uniforms(u, item_ids.shape)
        clicks = np.zeros(alpha.shape, dtype=bool)
        last_click = np.full(len(alpha), -1)
        for r in range(alpha.shape[1]):
            clicks[:, r] = u[:, r] < alpha[:, r] * self.examination_[r, r - last_click]
            last_click = np.where(clicks[:, r], r, last_click)
        return clicks


def _cells(clicks: np.ndarray) -> np.ndarray:
    """(n, k) flat index ``r * (k + 1) + d`` of (0-based rank, distance to the last click above)."""
    n, k = clicks.shape
    ranks = np.arange(k)
    click_rank = np.where(clicks, ranks, -1)
    last_above = np.full((n, k), -1)
    last_above[:, 1:] = np.maximum.accumulate(click_rank[:, :-1], axis=1)
    return ranks * (k + 1) + (ranks - last_above)
