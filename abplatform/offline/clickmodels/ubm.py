"""User browsing model (UBM; Dupret & Piwowarski 2008).

``C_r = E_r * A_r`` with ``P(A_r = 1) = alpha_qu`` and ``P(E_r = 1 | clicks above) = gamma_{r,d}``,
where d is the distance from rank r up to the last click above it (to rank 0 if none). Given the
clicks above, ranks are independent, so the likelihood is PBM's with the examination cell (r, d)
in place of the rank r (Chuklin, Markov & de Rijke 2015, sec. 4.3), and UBM is fitted exactly as
PBM (:func:`.pbm.fit_position_model`): impressions aggregated into (pair, cell) counts, penalised
maximum likelihood by block coordinate ascent with exact Newton steps, the attraction back-off
fitted on raw position-debiased rates (clicks over expected examinations), and the alphas solved
under the feature back-off at the end. ``gamma_{r,d}`` starts from PBM's starting examination of
rank r, ``h_r``, and is fitted by maximum likelihood. Only ``alpha * gamma`` is identified, and on
logs of a near-deterministic ranker only weakly: attraction and examination trade off along a flat
ridge (see :mod:`.pbm`). So when ``h`` is harvested from logged propensities (an unbiased estimate
of each rank's marginal examination ratio), each rank's impression-weighted mean of
``gamma_{r,d}`` over d is held at ``h_r`` after every examination update and the likelihood fits
only the profile over distances; without propensities ``gamma_{0,1}`` (the top rank) is held at 1.
A cell never observed keeps its starting value. The distance d needs every click above rank r,
so a sparse log (a page with a gap above a logged item) is refused (:mod:`.base`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import ClickModel, as_uniforms
from .data import ClickLog
from .pbm import PageCells, fit_position_model, initial_examination


class UBM(ClickModel):
    """Fitted: ``examination_[r, d]``, P(E = 1) at 0-based rank r when the last click above is d ranks up."""

    name = "ubm"

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        k = log.item_ids.shape[1]
        cells = PageCells.from_log(log, pair_slots, _cells(log.clicks))
        by_rank, harvested = initial_examination(log)
        gamma = np.repeat(by_rank[:k], k + 1)
        constrain = _rank_mean_constraint(cells, by_rank[:k]) if harvested else None
        examination, self.n_iter_, self.log_likelihood_trace_ = fit_position_model(
            self, cells, gamma, self.index_.n_pairs, anchor=1, constrain=constrain)
        self.examination_ = examination.reshape(k, k + 1)

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


def _rank_mean_constraint(cells: PageCells, mean_by_rank: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``gamma -> gamma`` with each rank's row rescaled so that its mean over the rank's impressions
    (weights: impressions per (r, d) cell) is ``mean_by_rank[r]``, then capped at 1."""
    k = len(mean_by_rank)
    impressions = np.bincount(cells.cell, cells.n, minlength=k * (k + 1)).reshape(k, k + 1)
    shown = impressions.sum(axis=1) > 0

    def constrain(gamma: np.ndarray) -> np.ndarray:
        rows = gamma.reshape(k, k + 1)
        mean = (impressions * rows).sum(axis=1) / np.maximum(impressions.sum(axis=1), 1e-12)
        scale = np.where(shown, mean_by_rank / np.maximum(mean, 1e-12), 1.0)
        return np.minimum(rows * scale[:, None], 1.0).ravel()

    return constrain
