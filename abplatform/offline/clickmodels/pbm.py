"""Position-based model (PBM; Richardson, Dominowska & Ragno 2007; Craswell et al. 2008).

``C_r = E_r * A_r`` with ``P(E_r = 1) = gamma_r`` (examination depends on rank only) and
``P(A_r = 1) = alpha_qu`` (attraction of item u for query q), all independent. EM as in Chuklin,
Markov & de Rijke 2015, sec. 4.3:

* E-step, for a non-clicked rank: ``P(A=1 | C=0) = alpha (1 - gamma) / (1 - alpha gamma)``,
  ``P(E=1 | C=0) = gamma (1 - alpha) / (1 - alpha gamma)``; both are 1 for a clicked rank.
* M-step: ``alpha_qu`` = smoothed mean of ``P(A=1 | C)`` over the pair's impressions
  (:mod:`.backoff`); ``gamma_r`` = mean of ``P(E=1 | C)`` over the pages showing rank r.

The likelihood depends on ``gamma_r * alpha_qu`` only, so the scale is fixed by holding the most
examined rank's ``gamma`` at 1.

Every impression is an independent observation given its position, so PBM fits sparse logs (pages
logging only some positions, e.g. one slot per page: :attr:`ClickLog.sparse`) as they are; a rank
no page shows keeps its starting examination, the floor ``1e-3`` (nothing is known of it).

Plain EM is slow here: on logs from a deterministic ranker most pairs are shown at one rank only,
so attraction and examination trade off along a flat ridge and EM creeps along it (it stopped at
100 iterations far from the optimum on the synthetic world). The fit (:func:`fit_position_model`)

1. starts ``gamma`` from *intervention harvesting* when the log carries propensities: with every
   candidate shown at every rank with a known positive probability (epsilon-randomised logging),
   the mean of ``click / propensity`` over the pages showing rank r estimates
   ``gamma_r * sum_candidates alpha`` for each rank r, so the ratios across ranks are unbiased
   examination ratios (Joachims, Swaminathan & Schnabel 2017; Agarwal et al. 2019). Without
   propensities it starts from the CTR by rank;
2. aggregates the impressions into cells (pair, rank) with click and impression counts, so one
   iteration costs O(cells), not O(impressions);
3. maximises the penalised likelihood (the back-off's Beta prior on each ``alpha``, i.e. the
   fixed point of the smoothed EM above) by block coordinate ascent with exact 1-D Newton steps:
   all ``alpha`` given ``gamma``, then all ``gamma`` given ``alpha``;
4. stops when the penalised log-likelihood gains less than ``tol`` per 1000 impressions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .base import ClickModel, as_uniforms
from .data import ClickLog


class PBM(ClickModel):
    """Fitted: ``examination_[r]``, P(E = 1) at 0-based rank r."""

    name = "pbm"
    fits_sparse_pages = True

    def __init__(self, prior_strength: float = 5.0, max_iter: int = 100, tol: float = 1e-4,
                 backoff_calibration: float = 1.0, examination: str = "auto") -> None:
        """``examination``: ``auto`` (harvested from the propensities if logged, else maximum likelihood),
        ``harvest`` or ``ml`` (maximum likelihood, started from the harvested estimate)."""
        super().__init__(prior_strength, max_iter, tol, backoff_calibration)
        self.examination = examination

    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        k = log.item_ids.shape[1]
        cells = PageCells.from_log(log, pair_slots, np.broadcast_to(np.arange(k), log.item_ids.shape))
        gamma, harvested = initial_examination(log)
        self.examination_init_ = gamma.copy()
        fix = self.examination == "harvest" or (self.examination == "auto" and harvested)
        self.examination_, self.n_iter_, self.log_likelihood_trace_ = fit_position_model(
            self, cells, gamma, self.index_.n_pairs, fix_gamma=fix)

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


def initial_examination(log: ClickLog) -> tuple[np.ndarray, bool]:
    """(k,) starting examination, max 1, and whether it was harvested from logged propensities.

    On a page showing rank r, ``c / propensity`` of the item there has expectation
    ``sum_u P(u at r) * gamma_r alpha_u / P(u at r) = gamma_r * sum over candidates of alpha``,
    whatever the logging policy, as long as it gives every candidate a positive propensity at every
    rank. So the IPS estimate of rank r is the *mean* of ``c / propensity`` over the N_r pages
    showing rank r: the sum over them alone would scale with N_r, which differs by rank on partial
    pages (a slot-level log keeps some positions of each page). Harvested when at least 99% of the
    shown impressions, and some at every rank shown, carry a positive propensity; otherwise the
    click-through rate by rank (clicks over the N_r pages). Ranks never shown get the floor 1e-3.
    """
    shown, clicks = log.shown, log.clicks
    pages = shown.sum(axis=0)
    ctr = (clicks & shown).sum(axis=0) / np.maximum(pages, 1)
    gamma = ctr / max(ctr.max(), 1e-12)
    if log.propensities is not None:
        prop = np.where(shown, log.propensities, np.nan)
        ok = np.isfinite(prop) & (prop > 0)
        if (ok.any(axis=0) | (pages == 0)).all() and ok[shown].mean() > 0.99:
            ips_sum = np.where(ok & clicks, 1.0 / np.where(ok, prop, 1.0), 0.0).sum(axis=0)
            # the mean over the N_r pages, times the constant max N: the same ratios, and on full
            # pages (every N_r alike) exactly the sums, so their examination is unchanged to the bit
            ips = ips_sum * (pages.max() / np.maximum(pages, 1))
            if ips.max() > 0:
                return np.clip(ips / ips.max(), 1e-3, 1.0), True
    return np.clip(gamma, 1e-3, 1.0), False


@dataclass(frozen=True)
class PageCells:
    """Impressions aggregated by (pair slot, examination cell): counts of impressions and clicks."""

    pair: np.ndarray
    cell: np.ndarray
    n: np.ndarray
    clicks: np.ndarray

    @classmethod
    def from_log(cls, log: ClickLog, pair_slots: np.ndarray, examination_cells: np.ndarray) -> PageCells:
        shown = log.shown
        n_cells = int(examination_cells.max()) + 1
        key = pair_slots[shown].astype(np.int64) * n_cells + examination_cells[shown]
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        clicks = np.bincount(inverse, log.clicks[shown], minlength=len(uniq))
        return cls(uniq // n_cells, uniq % n_cells, counts.astype(float), clicks)


def _penalised_log_likelihood(cells: PageCells, alpha: np.ndarray, gamma: np.ndarray, a: np.ndarray,
                              b: np.ndarray) -> float:
    p = np.clip(alpha[cells.pair] * gamma[cells.cell], 1e-12, 1 - 1e-12)
    ll = (cells.clicks * np.log(p) + (cells.n - cells.clicks) * np.log1p(-p)).sum()
    return float(ll + (a * np.log(alpha) + b * np.log1p(-alpha)).sum())


def _newton_alpha(cells: PageCells, alpha: np.ndarray, gamma: np.ndarray, a: np.ndarray, b: np.ndarray,
                  steps: int = 4) -> np.ndarray:
    """Maximise over each pair's alpha the penalised likelihood with ``gamma`` fixed (safeguarded Newton)."""
    n_pairs = len(alpha)
    g_cell = gamma[cells.cell]
    misses = cells.n - cells.clicks
    hi = 1.0
    for _ in range(steps):
        al = alpha[cells.pair]
        q = 1.0 - al * g_cell
        grad = np.bincount(cells.pair, cells.clicks / al - misses * g_cell / q, minlength=n_pairs) \
            + a / alpha - b / (1.0 - alpha)
        hess = np.bincount(cells.pair, cells.clicks / al**2 + misses * (g_cell / q) ** 2, minlength=n_pairs) \
            + a / alpha**2 + b / (1.0 - alpha) ** 2
        step = grad / hess
        new = alpha + step
        # stay inside (0, 1): at most halfway to a bound
        new = np.where(new <= 0, alpha / 2, np.where(new >= hi, (alpha + hi) / 2, new))
        alpha = np.clip(new, 1e-9, hi * (1 - 1e-9))
    return alpha


def _newton_gamma(cells: PageCells, alpha: np.ndarray, gamma: np.ndarray, fixed: int, steps: int = 4) -> np.ndarray:
    """Maximise over each examination cell's gamma (except ``fixed``) with ``alpha`` fixed."""
    n_cells = len(gamma)
    a_cell = alpha[cells.pair]
    misses = cells.n - cells.clicks
    for _ in range(steps):
        g = gamma[cells.cell]
        q = 1.0 - a_cell * g
        grad = np.bincount(cells.cell, cells.clicks / g - misses * a_cell / q, minlength=n_cells)
        hess = np.bincount(cells.cell, cells.clicks / g**2 + misses * (a_cell / q) ** 2, minlength=n_cells)
        observed = hess > 0
        new = gamma + np.where(observed, grad / np.where(observed, hess, 1.0), 0.0)
        new = np.where(new <= 0, gamma / 2, np.where(new >= 1, (gamma + 1) / 2, new))
        new[fixed] = gamma[fixed]
        gamma = np.clip(new, 1e-6, 1.0)
    return gamma


def fit_position_model(model: ClickModel, cells: PageCells, gamma: np.ndarray, n_pairs: int,
                       fix_gamma: bool = False, anchor: int | None = None,
                       constrain: Callable[[np.ndarray], np.ndarray] | None = None,
                       ) -> tuple[np.ndarray, int, list[float]]:
    """Penalised maximum likelihood of ``C = E * A``, ``P(E) = gamma[cell]``, ``P(A) = alpha_pair`` (PBM, UBM).

    Each alpha has a Beta prior with ``m`` pseudo-examinations centred on the back-off of
    ``model.attraction_``, which is fitted on (clicks, expected examinations) per pair — the
    position-debiased CTR, an unbiased moment estimate of alpha that does not feed on the prior
    itself (expected attractions ``P(A = 1 | C)`` of a rarely examined pair merely echo its
    current alpha, so a back-off fitted on them drifts to wherever it started). With ``fix_gamma``
    (examination harvested from randomised logging) one Newton solve of the alphas under the
    feature back-off is the whole fit; otherwise alpha and gamma are alternated under the item
    back-off until the penalised log-likelihood gains less than ``model.tol`` per 1000
    impressions, then the alphas are re-solved under the feature back-off. Only ``alpha * gamma``
    is identified: the examination cell ``anchor`` (default: the most examined one) is held at 1,
    or ``constrain`` maps every gamma update onto a constraint set that fixes the scale (UBM: each
    rank's mean examination held at its harvested value).
    Returns (gamma, rounds, log-likelihood trace).
    """
    rate, index, m = model.attraction_, model.index_, model.prior_strength
    fixed = int(np.argmax(gamma)) if anchor is None else anchor
    gamma = gamma.copy()
    gamma[fixed] = 1.0
    inside = cells.pair < n_pairs
    cells = PageCells(cells.pair[inside], cells.cell[inside], cells.n[inside], cells.clicks[inside])
    impressions = cells.n.sum()
    clicks = np.bincount(cells.pair, cells.clicks, minlength=n_pairs)
    trace: list[float] = []

    def examinations(gamma: np.ndarray) -> np.ndarray:
        return np.bincount(cells.pair, cells.n * gamma[cells.cell], minlength=n_pairs)

    def prior_of(gamma: np.ndarray, features) -> tuple[np.ndarray, np.ndarray]:
        prior = np.clip(rate.fit_prior(index, clicks, examinations(gamma), features), 1e-6, 1 - 1e-6)
        return m * prior, m * (1.0 - prior)

    alpha = np.clip((clicks + 1.0) / (examinations(gamma) + 2.0), 1e-6, 1 - 1e-6)
    rounds = 0
    if not fix_gamma:
        for rounds in range(1, model.max_iter + 1):  # noqa: B007 - the rounds run are returned
            a, b = prior_of(gamma, None)
            alpha = _newton_alpha(cells, alpha, gamma, a, b)
            gamma = _newton_gamma(cells, alpha, gamma, fixed)
            if constrain is not None:
                gamma = constrain(gamma)
            trace.append(_penalised_log_likelihood(cells, alpha, gamma, a, b))
            if len(trace) > 1 and abs(trace[-1] - trace[-2]) < model.tol * impressions / 1000:
                break
    a, b = prior_of(gamma, model.features_)
    alpha = _newton_alpha(cells, alpha, gamma, a, b, steps=8)
    trace.append(_penalised_log_likelihood(cells, alpha, gamma, a, b))
    rate.pair_ = alpha
    return gamma, rounds + 1, trace
