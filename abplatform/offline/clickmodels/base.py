"""The interface shared by all click models, and their evaluation (Chuklin, Markov & de Rijke 2015, ch. 5).

A click model is fitted on a :class:`ClickLog`, then predicts for rankings ``(query_ids (n,),
item_ids (n, k))``. Every model defines two probabilities per rank:

* the *marginal* ``P(C_r = 1)`` (:meth:`ClickModel.click_probabilities`), and
* the *conditional* ``P(C_r = 1 | C_1..C_{r-1} = c_1..c_{r-1})`` given the observed clicks above.

Log-likelihood is the total of ``log P(C_r = c_r | c_<r)`` over all shown ranks of all pages, i.e.
``sum_s log P(C = c_s)``. Perplexity at rank r is ``2 ** (-1/N_r sum_s log2 P(C_r = c_r))`` with the
*marginal* probability (as PyClick's ``get_full_click_probs``), over the N_r pages that show rank r;
the book's overall perplexity is the mean of the per-rank values. Probabilities are clipped to
``[EPS, 1 - EPS]`` before taking logs, so a click a model deems impossible (e.g. a second click under
the cascade model) costs ``log2(EPS)`` ~ -33 bits instead of an infinite loss.

On a sparse log (:attr:`ClickLog.sparse`: a page with no item logged at a position above a logged
one, e.g. a slot-level log) the clicks above a logged impression are unknown. A model whose
examination depends on them (cascade, DBN, UBM: the user scans down from position 1) has no
likelihood there, and fitting or scoring such a log raises :class:`~abplatform.errors.InputError`.
PBM's examination depends on the position only, so every (query, item, position) impression is an
independent observation and PBM fits sparse logs (``fits_sparse_pages``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

import numpy as np

from abplatform.errors import InputError

from .backoff import BackedOffRate, PairIndex
from .data import ClickLog, FeatureFn

EPS = 1e-10


def as_uniforms(u: np.ndarray | np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """``u`` itself if an array of ``shape``, else ``shape`` fresh uniforms from the generator ``u``."""
    if isinstance(u, np.random.Generator):
        return u.random(shape)
    u = np.asarray(u, dtype=float)
    if u.shape != shape:
        raise ValueError(f"uniforms must have shape {shape}, got {u.shape}")
    return u


class ClickModel(ABC):
    """Base class: per-(query, item) attraction with back-off (:mod:`.backoff`) plus a model of examination."""

    name: str
    fits_sparse_pages = False
    """Whether the likelihood holds on pages with gaps above a logged item (:attr:`ClickLog.sparse`)."""

    def __init__(self, prior_strength: float = 5.0, max_iter: int = 100, tol: float = 1e-4,
                 backoff_calibration: float = 1.0) -> None:
        """``backoff_calibration``: factor on the attraction's back-off (:class:`BackedOffRate`)."""
        self.prior_strength = prior_strength
        self.max_iter = max_iter
        self.tol = tol
        self.backoff_calibration = backoff_calibration

    def fit(self, log: ClickLog, features: FeatureFn | None = None) -> Self:
        """Fit on ``log``; ``features(query_ids, item_ids) -> (n, k, f)`` is the back-off for unseen pairs.

        Every model's attraction back-off is fitted on raw position-debiased rates, clicks over the
        pair's expected examinations under the model (``raw_targets``, :class:`BackedOffRate`).
        """
        self.check_fits(log)
        self.features_ = features
        self.index_ = PairIndex.from_rankings(log.query_ids, log.item_ids)
        pair_slots = self.index_.slots(log.query_ids, log.item_ids)
        self.attraction_ = BackedOffRate("binomial", self.prior_strength, raw_targets=True,
                                         calibration=self.backoff_calibration)
        self._fit(log, pair_slots)
        return self

    def check_fits(self, log: ClickLog) -> None:
        """Raise :class:`InputError` if ``log`` has pages the model has no likelihood for (gaps, unless
        ``fits_sparse_pages``), naming the model, why, and the first such page."""
        if self.fits_sparse_pages or not log.sparse:
            return
        gapped = log.gapped
        raise InputError(
            f"{self.name} needs full pages from position 1 (it follows the user down the page, so the clicks "
            f"above a logged item must be known): {int(gapped.sum())} of {len(log)} pages have gaps, e.g. "
            f"{log.describe_page(int(np.argmax(gapped)))} only; use pbm for slot-level logs")

    @abstractmethod
    def _fit(self, log: ClickLog, pair_slots: np.ndarray) -> None:
        """Estimate the parameters; ``pair_slots`` is ``self.index_.slots`` of the log's rankings."""

    def attraction(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k) attraction probability of each shown item (backed off where unseen); 0 where no item."""
        return np.nan_to_num(self.attraction_(query_ids, item_ids), nan=0.0)

    @abstractmethod
    def click_probabilities(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k) marginal probability of a click at each rank."""

    @abstractmethod
    def conditional_click_probabilities(
        self, query_ids: np.ndarray, item_ids: np.ndarray, clicks: np.ndarray
    ) -> np.ndarray:
        """(n, k) probability of a click at each rank given the clicks ``clicks`` at the ranks above it."""

    @abstractmethod
    def sample(
        self, query_ids: np.ndarray, item_ids: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        """(n, k) simulated clicks, click at rank r iff ``u[:, r] < P(C_r = 1 | simulated clicks above)``.

        Given the same uniforms the result is the same, so a caller keying ``u`` by session id
        (``abplatform.rng.uniforms(seed, session_ids, stream, k)``) gets clicks that do not depend
        on batch size. A ``numpy.random.Generator`` draws fresh uniforms instead.
        """

    def log_likelihood(self, log: ClickLog) -> float:
        """Total log-likelihood (natural log) of the clicks in ``log``, conditional on clicks above."""
        self.check_fits(log)
        p = self.conditional_click_probabilities(log.query_ids, log.item_ids, log.clicks)
        return float(np.log(_probability_of_observed(p, log.clicks))[log.shown].sum())

    def perplexity(self, log: ClickLog) -> np.ndarray:
        """(k,) click perplexity per rank from marginal click probabilities; NaN at ranks never shown."""
        self.check_fits(log)
        p = self.click_probabilities(log.query_ids, log.item_ids)
        log2_p = np.where(log.shown, np.log2(_probability_of_observed(p, log.clicks)), 0.0)
        pages = log.shown.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(pages > 0, 2.0 ** (-log2_p.sum(axis=0) / pages), np.nan)


def _probability_of_observed(p_click: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    return np.clip(np.where(clicks, p_click, 1.0 - p_click), EPS, 1.0 - EPS)


def per_pair(pair_slots: np.ndarray, values: np.ndarray, n_pairs: int) -> np.ndarray:
    """(n_pairs,) sums of per-impression (n, k) ``values`` by pair; ranks with no item fall in the
    extra slot of :meth:`PairIndex.slots` and are left out."""
    return np.bincount(pair_slots.ravel(), np.asarray(values, float).ravel(), minlength=n_pairs + 1)[:n_pairs]


def at_impressions(pair_values: np.ndarray, pair_slots: np.ndarray) -> np.ndarray:
    """(n, k) value of each impression's pair; 0 at ranks with no item."""
    return np.append(pair_values, 0.0)[pair_slots]


def fit_pair_rate(
    rate: BackedOffRate,
    index: PairIndex,
    pair_slots: np.ndarray,
    successes: np.ndarray,
    trials: np.ndarray,
    features: FeatureFn | None = None,
) -> np.ndarray:
    """M-step for a per-pair parameter from per-impression (n, k) statistics; returns its (n, k) values."""
    rate.fit(index, per_pair(pair_slots, successes, index.n_pairs), per_pair(pair_slots, trials, index.n_pairs),
             features)
    return at_impressions(rate.pair_, pair_slots)
