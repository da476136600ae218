"""Per-(query, item) parameters with shrinkage and back-off for rare and unseen pairs.

Every per-pair parameter of the click, purchase and order models (attraction, satisfaction,
purchase rate, extra-order rate) is an estimate from sufficient statistics ``successes`` and
``trials`` per pair, shrunk towards a back-off value ``b`` by ``prior_strength`` pseudo-trials:

    theta_qu = (successes_qu + m * b_qu) / (trials_qu + m)

which is the posterior mean under a Beta(m b, m (1 - b)) prior for a probability, or a
Gamma(m b, m) prior for a Poisson rate (conjugate-prior smoothing; Chuklin, Markov & de Rijke
2015, sec. 4.4). A pair seen many times (trials >> m) keeps its empirical estimate; an unseen
pair gets ``b``. The back-off ``b`` is, in order of availability:

1. a model of the parameter on query-item features (a GLM: logistic for probabilities, log-link
   Poisson for rates, statsmodels, fitted on the smoothed per-pair estimates weighted by their
   trials), when the caller supplies ``features``; with ``item_level``, the item's own rate over
   its other queries shrunk towards that model by ``m``, ``b_qu = (S_u + m GLM_qu) / (T_u + m)``
   (S_u, T_u the item's successes and trials in its other pairs), so the model speaks only for
   the items the log has little of;
2. otherwise the item's own estimate over all queries, itself shrunk by ``m`` towards
3. the global estimate (all pairs pooled), used for items never seen.

A feature model's prediction is capped at the largest rate the training pairs showed: a log-link GLM extrapolates
exponentially, and a pair whose features lie outside the training range (an item priced far from the rest, say)
could otherwise be given an order rate of hundreds, which a simulated user would then draw.

The back-off may be multiplied by a ``calibration`` factor ``kappa`` (``b_qu = kappa * GLM``),
estimated on held-out logs by :func:`abplatform.offline.clickmodels.calibration.fit_calibration`:
a GLM fitted on the seen pairs need not be calibrated for the pairs it is used for, those the
logging policy rarely or never shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .data import NO_ITEM, FeatureFn

Family = Literal["binomial", "poisson"]
MAX_GLM_PAIRS = 200_000


@dataclass(frozen=True)
class PairIndex:
    """Dense ids of the (query, item) pairs and of the items seen in a training log."""

    items: np.ndarray
    """Sorted unique item ids; an item's dense id is its index here."""
    pair_keys: np.ndarray
    """Sorted unique keys ``query_id * len(items) + dense item id``; a pair's id is its index here."""

    @classmethod
    def from_rankings(cls, query_ids: np.ndarray, item_ids: np.ndarray) -> PairIndex:
        shown = item_ids != NO_ITEM
        items = np.unique(item_ids[shown])
        dense = np.searchsorted(items, item_ids[shown])
        keys = np.broadcast_to(query_ids[:, None], item_ids.shape)[shown] * len(items) + dense
        return cls(items, np.unique(keys))

    @property
    def n_pairs(self) -> int:
        return len(self.pair_keys)

    @property
    def pair_items(self) -> np.ndarray:
        """(n_pairs,) dense item id of each pair."""
        return self.pair_keys % len(self.items)

    @property
    def pair_queries(self) -> np.ndarray:
        """(n_pairs,) query id of each pair."""
        return self.pair_keys // len(self.items)

    def lookup(self, query_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pair ids, dense item ids), each shaped like ``item_ids`` and -1 where unseen."""
        unseen = np.full(np.shape(item_ids), -1, dtype=np.int64)
        if self.n_pairs == 0:
            return unseen, unseen
        dense = np.searchsorted(self.items, item_ids).clip(max=len(self.items) - 1)
        dense = np.where((item_ids != NO_ITEM) & (self.items[dense] == item_ids), dense, -1)
        keys = np.asarray(query_ids, dtype=np.int64)[:, None] * len(self.items) + dense
        pair = np.searchsorted(self.pair_keys, keys).clip(max=self.n_pairs - 1)
        pair = np.where((dense >= 0) & (self.pair_keys[pair] == keys), pair, -1)
        return pair, dense

    def slots(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Pair ids shaped like ``item_ids``, with the extra id ``n_pairs`` for unseen pairs and empty ranks."""
        pair, _ = self.lookup(query_ids, item_ids)
        return np.where(pair >= 0, pair, self.n_pairs)


class BackedOffRate:
    """A probability (``binomial``) or a Poisson rate (``poisson``) per (query, item) pair, backed off."""

    def __init__(self, family: Family = "binomial", prior_strength: float = 5.0, raw_targets: bool = False,
                 calibration: float = 1.0, item_level: bool = False) -> None:
        """``raw_targets``: fit the feature model on the unsmoothed rates ``successes / trials`` with a
        log-link (Poisson) GLM, which stays unbiased when a rate's estimate exceeds 1 (a click at a
        rarely examined rank divided by its expected examinations); predictions are capped below 1.
        ``calibration``: the factor applied to the back-off, as a prior and for unseen pairs.
        ``item_level``: back off to the item's own rate before the feature model (the module's level 1)."""
        self.family = family
        self.item_level = item_level
        self.prior_strength = prior_strength
        self.raw_targets = raw_targets
        self.calibration = calibration

    def fit(
        self,
        index: PairIndex,
        pair_successes: np.ndarray,
        pair_trials: np.ndarray,
        features: FeatureFn | None = None,
    ) -> BackedOffRate:
        """Estimate from per-pair sufficient statistics (arrays of length ``index.n_pairs``).

        The global estimate is 0.5 when there are no trials at all.
        """
        m = self.prior_strength
        prior = self.fit_prior(index, pair_successes, pair_trials, features)
        self.pair_ = (pair_successes + m * prior) / (pair_trials + m)
        return self

    def fit_prior(
        self,
        index: PairIndex,
        pair_successes: np.ndarray,
        pair_trials: np.ndarray,
        features: FeatureFn | None = None,
    ) -> np.ndarray:
        """Fit the back-off (global, per item, feature model) and return it per pair; ``pair_`` is left to the caller.

        The feature model is a GLM of the pairs' smoothed rates, each pair weighted by
        ``trials / (1 + trials / m)``: the precision of its rate under a random-effects model whose
        between-pair variance is worth ``m`` trials, so that the head pairs (thousands of
        impressions of the logging policy's top results) do not outweigh the many rarely shown
        pairs — which are the ones a new ranker brings up and the back-off must predict.
        """
        m = self.prior_strength
        total_trials = pair_trials.sum()
        self.global_ = float(pair_successes.sum() / total_trials) if total_trials > 0 else 0.5
        if self.family == "binomial":
            self.global_ = min(max(self.global_, 1e-6), 1 - 1e-6)
        n_items = len(index.items)
        item_successes = np.bincount(index.pair_items, pair_successes, minlength=n_items)
        item_trials = np.bincount(index.pair_items, pair_trials, minlength=n_items)
        self.item_ = (item_successes + m * self.global_) / (item_trials + m)
        self.index_ = index
        self.features_ = features
        self.feature_model_ = None
        if features is not None and index.n_pairs > 0:
            if self.raw_targets:
                target = pair_successes / np.maximum(pair_trials, 1e-9)
            else:
                target = (pair_successes + m * self.item_[index.pair_items]) / (pair_trials + m)
            weights = pair_trials / (1.0 + pair_trials / m) + 1e-3
            self.feature_model_ = self._fit_feature_model(index, target, weights, features)
            seen = pair_trials > 0
            self.prediction_cap_ = float(target[seen].max()) if seen.any() else float(target.max())
            model = self._feature_predictions(index.pair_queries, index.items[index.pair_items])
            if not self.item_level:
                return model
            self.item_successes_, self.item_trials_ = item_successes, item_trials
            items = index.pair_items  # each pair's prior from its item's other pairs only
            return self._through_item(item_successes[items] - pair_successes, item_trials[items] - pair_trials, model)
        return self._calibrated(self.item_[index.pair_items])

    def __call__(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k) parameter values for the rankings; NaN where no item is shown."""
        pair, dense = self.index_.lookup(query_ids, item_ids)
        values = np.where(pair >= 0, self.pair_[pair], np.nan)
        unseen = (pair < 0) & (item_ids != NO_ITEM)
        if self.feature_model_ is not None:
            rows, cols = np.nonzero(unseen)
            backoff = self._feature_predictions(np.asarray(query_ids)[rows], item_ids[rows, cols])
            if self.item_level:  # an item never in the log has no trials: the feature model alone
                known, item = dense[rows, cols] >= 0, np.maximum(dense[rows, cols], 0)
                backoff = self._through_item(np.where(known, self.item_successes_[item], 0.0),
                                             np.where(known, self.item_trials_[item], 0.0), backoff)
            values[rows, cols] = backoff
        else:
            values = np.where(unseen, self._calibrated(np.where(dense >= 0, self.item_[dense], self.global_)), values)
        return values

    def _through_item(self, successes: np.ndarray, trials: np.ndarray, model: np.ndarray) -> np.ndarray:
        """``(S + m model) / (T + m)``: an item's rate over its other pairs, shrunk towards the feature model."""
        return (successes + self.prior_strength * model) / (trials + self.prior_strength)

    def _calibrated(self, backoff: np.ndarray) -> np.ndarray:
        """``calibration * backoff``, capped below 1 for a probability."""
        scaled = self.calibration * backoff
        return np.minimum(scaled, 0.999) if self.family == "binomial" else scaled

    def _fit_feature_model(self, index: PairIndex, target: np.ndarray, weights: np.ndarray, features: FeatureFn):
        """GLM of ``target`` on the features, fitted on at most ``MAX_GLM_PAIRS`` pairs drawn at random
        (seeded): a dozen coefficients need no more, and statsmodels' IRLS time grows with the rows."""
        rows = np.arange(index.n_pairs)
        if index.n_pairs > MAX_GLM_PAIRS:
            rows = np.sort(np.random.default_rng(0).choice(index.n_pairs, MAX_GLM_PAIRS, replace=False))
        x = self._design(features, index.pair_queries[rows], index.items[index.pair_items[rows]])
        import statsmodels.api as sm  # imported here: the CLI should not pay for it unless a model is fitted

        family = sm.families.Binomial() if self.family == "binomial" and not self.raw_targets else sm.families.Poisson()
        return sm.GLM(target[rows], x, family=family, var_weights=weights[rows]).fit()

    def _feature_predictions(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Feature-model prediction for pairs ``(query_ids[i], item_ids[i])``."""
        if len(query_ids) == 0:
            return np.zeros(0)
        model, features = self.feature_model_, self.features_
        assert model is not None and features is not None  # asked only when the feature model was fitted
        return self._calibrated(np.minimum(model.predict(self._design(features, query_ids, item_ids)),
                                           self.prediction_cap_))

    @staticmethod
    def _design(features: FeatureFn, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Intercept plus the caller's features, one row per pair."""
        x = np.asarray(features(np.asarray(query_ids), np.asarray(item_ids)[:, None]), dtype=float)
        x = x.reshape(len(query_ids), -1)
        return np.column_stack([np.ones(len(query_ids)), x])
