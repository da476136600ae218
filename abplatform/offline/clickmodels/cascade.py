"""Cascade model (Craswell, Zoeter, Taylor & Ramsey 2008).

The user scans from the top, examines every rank until the first click and stops there:
``P(C_r = 1 | no click above) = alpha_qu`` and no click after the first. The examinations are
observed (every rank at or above the first click, every rank of a page without clicks), so the
likelihood is binomial per pair and its penalised maximum is closed-form (Chuklin, Markov & de
Rijke 2015, sec. 4.2): ``alpha_qu = (clicks + m b_qu) / (examinations + m)``, the maximiser of the
binomial likelihood times the back-off's Beta(m b, m (1 - b)) prior (:mod:`.backoff`). The back-off
``b`` is fitted, as PBM's, on the raw rates clicks / examinations. Ranks below the first click
carry no information and are ignored in fitting; a later click is impossible under the model
(see :mod:`.base` for how the evaluation treats it). Whether a rank was examined depends on every
click above it, so a sparse log (a page with a gap above a logged item) is refused (:mod:`.base`).
"""

from __future__ import annotations

import numpy as np

from .base import ClickModel, as_uniforms, fit_pair_rate
from .data import ClickLog


class Cascade(ClickModel):
    name = "cascade"

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        examined = log.shown & ~_clicked_above(log.clicks)
        clicked = (log.clicks & examined).astype(float)
        fit_pair_rate(self.attraction_, self.index_, pair_slots, clicked, examined.astype(float), self.features_)
        self.n_iter_ = 1

    def click_probabilities(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        alpha = self.attraction(query_ids, item_ids)
        no_click_above = np.cumprod(np.column_stack([np.ones(len(alpha)), 1.0 - alpha[:, :-1]]), axis=1)
        return alpha * no_click_above

    def conditional_click_probabilities(
        self, query_ids: np.ndarray, item_ids: np.ndarray, clicks: np.ndarray
    ) -> np.ndarray:
        return np.where(_clicked_above(clicks), 0.0, self.attraction(query_ids, item_ids))

    def sample(
        self, query_ids: np.ndarray, item_ids: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        attracted = as_uniforms(u, item_ids.shape) < self.attraction(query_ids, item_ids)
        return attracted & ~_clicked_above(attracted)


def _clicked_above(clicks: np.ndarray) -> np.ndarray:
    """(n, k) bool: some rank strictly above has a click."""
    above = np.zeros_like(clicks, dtype=bool)
    above[:, 1:] = np.logical_or.accumulate(clicks[:, :-1], axis=1)
    return above
