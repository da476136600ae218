"""Position-based model (PBM; Richardson, Dominowska & Ragno 2007; Craswell et al. 2008).

``C_r = E_r * A_r`` with ``P(E_r = 1) = gamma_r`` (examination depends on rank only) and
``P(A_r = 1) = alpha_qu`` (attraction of item u for query q), all independent. EM as in Chuklin,
Markov & de Rijke 2015, sec. 4.3:

* E-step, for a non-clicked rank: ``P(A=1 | C=0) = alpha (1 - gamma) / (1 - alpha gamma)``,
  ``P(E=1 | C=0) = gamma (1 - alpha) / (1 - alpha gamma)``; both are 1 for a clicked rank.
* M-step: ``alpha_qu`` = smoothed mean of ``P(A=1 | C)`` over the pair's impressions
  (:mod:`.backoff`); ``gamma_r`` = mean of ``P(E=1 | C)`` over the pages showing rank r.

The likelihood depends on ``gamma_r * alpha_qu`` only, so the scale is fixed after every M-step by
dividing ``gamma`` by its maximum (the most examined rank is examined with probability 1) and
multiplying ``alpha`` by it; this leaves the likelihood unchanged.
"""

from __future__ import annotations

import numpy as np

from .base import ClickModel, as_uniforms, fit_pair_rate
from .data import ClickLog


class PBM(ClickModel):
    """Fitted: ``examination_[r]``, P(E = 1) at 0-based rank r."""

    name = "pbm"

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        shown = log.shown
        pages_per_rank = shown.sum(axis=0)
        gamma = np.full(log.item_ids.shape[1], 0.5)
        alpha = np.where(shown, 0.5, 0.0)
        for self.n_iter_ in range(1, self.max_iter + 1):
            attracted, examined = examination_posteriors(alpha, gamma, log.clicks)
            new_alpha = fit_pair_rate(self.attraction_, self.index_, pair_slots, attracted, shown.astype(float))
            new_gamma = (examined * shown).sum(axis=0) / np.maximum(pages_per_rank, 1)
            scale = new_gamma.max()
            new_gamma, new_alpha = new_gamma / scale, new_alpha * scale
            change = max(np.abs(new_alpha - alpha).max(), np.abs(new_gamma - gamma).max())
            alpha, gamma = new_alpha, new_gamma
            if change < self.tol:
                break
        attracted, _ = examination_posteriors(alpha, gamma, log.clicks)
        fit_pair_rate(self.attraction_, self.index_, pair_slots, attracted, shown.astype(float), self.features_)
        self.examination_ = gamma

    def click_probabilities(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        return self.attraction(query_ids, item_ids) * self.examination_[: item_ids.shape[1]]

    def conditional_click_probabilities(
        self, query_ids: np.ndarray, item_ids: np.ndarray, clicks: np.ndarray
    ) -> np.ndarray:
        return self.click_probabilities(query_ids, item_ids)

    def sample(
        self, query_ids: np.ndarray, item_ids: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        return as_uniforms(u, item_ids.shape) < self.click_probabilities(query_ids, item_ids)


def examination_posteriors(
    alpha: np.ndarray, gamma: np.ndarray, clicks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(P(A=1 | C), P(E=1 | C)) per impression when ``C = E * A`` with independent E ~ gamma, A ~ alpha."""
    no_click = np.maximum(1.0 - alpha * gamma, 1e-12)
    attracted = np.where(clicks, 1.0, alpha * (1.0 - gamma) / no_click)
    examined = np.where(clicks, 1.0, gamma * (1.0 - alpha) / no_click)
    return attracted, examined
