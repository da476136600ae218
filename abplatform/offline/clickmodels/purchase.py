"""Purchases given clicks and orders given purchases, per (query, item) pair with back-off.

``P(purchase | click, q, u) = beta_qu`` and ``orders | purchase ~ 1 + Poisson(lambda_qu)``, both
fitted by maximum likelihood with conjugate smoothing and back-off (:mod:`.backoff`):
``beta_qu`` = smoothed purchases / clicks, ``lambda_qu`` = smoothed (orders - 1) / purchases.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from scipy import stats

from .backoff import BackedOffRate, PairIndex
from .base import as_uniforms, fit_pair_rate
from .data import ClickLog, FeatureFn


class PurchaseModel:
    """Fitted: ``purchase_`` (beta, a :class:`BackedOffRate`) and ``extra_orders_`` (lambda)."""

    def __init__(self, prior_strength: float = 5.0, purchase_calibration: float = 1.0,
                 orders_calibration: float = 1.0) -> None:
        """``*_calibration``: factors on the back-offs of beta and lambda (:class:`BackedOffRate`)."""
        self.prior_strength = prior_strength
        self.purchase_calibration = purchase_calibration
        self.orders_calibration = orders_calibration

    def fit(self, log: ClickLog, features: FeatureFn | None = None) -> Self:
        """Fit on a log with ``purchases`` and ``orders``; ``features`` as for the click models."""
        if log.purchases is None or log.orders is None:
            raise ValueError("the log has no purchases / orders")
        index = PairIndex.from_rankings(log.query_ids, log.item_ids)
        pair_slots = index.slots(log.query_ids, log.item_ids)
        purchased = log.purchases & log.clicks
        # the feature back-off is fitted on raw per-pair rates: smoothing them towards the item's rate
        # first biases it towards the items' best queries (see BackedOffRate, raw_targets)
        self.purchase_ = BackedOffRate("binomial", self.prior_strength, raw_targets=True,
                                       calibration=self.purchase_calibration)
        # re-orders are the item's trait more than the query's: an unseen pair backs off to the item's rate over
        # its other queries before the feature model, which cannot see what makes an item re-ordered: too low for
        # the new pairs of items that sell, and once recalibrated for them, too high for the items that seldom do
        # (benchmarks/calibration.md, fitted users)
        self.extra_orders_ = BackedOffRate("poisson", self.prior_strength, raw_targets=True,
                                           calibration=self.orders_calibration, item_level=True)
        fit_pair_rate(self.purchase_, index, pair_slots, purchased.astype(float), log.clicks.astype(float), features)
        extra = np.where(purchased, log.orders - 1, 0).astype(float)
        fit_pair_rate(self.extra_orders_, index, pair_slots, extra, purchased.astype(float), features)
        return self

    def purchase_probabilities(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k) P(purchase | click); 0 where no item."""
        return np.nan_to_num(self.purchase_(query_ids, item_ids), nan=0.0)

    def expected_orders(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k) E[orders | purchase] = 1 + lambda."""
        return 1.0 + np.nan_to_num(self.extra_orders_(query_ids, item_ids), nan=0.0)

    def sample_purchases(
        self, query_ids: np.ndarray, item_ids: np.ndarray, clicks: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        """(n, k) bool: purchase iff clicked and ``u < P(purchase | click)``."""
        return clicks & (as_uniforms(u, item_ids.shape) < self.purchase_probabilities(query_ids, item_ids))

    def sample_orders(
        self, query_ids: np.ndarray, item_ids: np.ndarray, purchases: np.ndarray, u: np.ndarray | np.random.Generator
    ) -> np.ndarray:
        """(n, k) int64: ``1 + F^-1(u)`` of Poisson(lambda) where purchased (inverse CDF), else 0."""
        extra = stats.poisson.ppf(as_uniforms(u, item_ids.shape), self.expected_orders(query_ids, item_ids) - 1.0)
        return np.where(purchases, 1 + np.maximum(extra, 0).astype(np.int64), 0)

    def log_likelihood(self, log: ClickLog) -> float:
        """Total log-likelihood of the purchases given clicks and the orders given purchases."""
        return self.purchase_log_likelihood(log) + self.orders_log_likelihood(log)

    def purchase_log_likelihood(self, log: ClickLog) -> float:
        """Log-likelihood of the purchases given clicks: ``sum_clicked log beta^p (1 - beta)^(1 - p)``."""
        purchased = log.purchases & log.clicks
        beta = np.clip(self.purchase_probabilities(log.query_ids, log.item_ids), 1e-10, 1 - 1e-10)
        return float(np.where(purchased, np.log(beta), np.log1p(-beta))[log.clicks].sum())

    def orders_log_likelihood(self, log: ClickLog) -> float:
        """Log-likelihood of the orders given purchases: ``sum_purchased log Poisson(orders - 1; lambda)``."""
        purchased = log.purchases & log.clicks
        lam = self.expected_orders(log.query_ids, log.item_ids) - 1.0
        assert log.orders is not None, "a click log without orders has no orders likelihood"
        return float(np.asarray(stats.poisson.logpmf(log.orders - 1, lam))[purchased].sum())
