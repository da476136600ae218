"""Click logs sampled from known click-model parameters, for tests and benchmarks.

The latent events (examination E, attraction A, satisfaction S) are drawn explicitly, rank by
rank, so the models' own samplers (which draw clicks from conditional click probabilities) are
checked against an independent simulation. Query q has ``n_candidates`` candidate items with ids
``q * n_candidates + j``; each page shows k of them in random order, so every pair is seen at
every rank. Parameters are logistic (attraction, satisfaction, purchase) or log-linear (extra
orders) in random query-item features, which :meth:`TrueClickModel.features` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from abplatform.vocabulary import ClickModelName

from .data import NO_ITEM, ClickLog

Kind = ClickModelName


@dataclass(frozen=True)
class TrueClickModel:
    """Known parameters; arrays over (query, candidate) are (n_queries, n_candidates)."""

    kind: Kind
    attraction: np.ndarray
    satisfaction: np.ndarray
    examination: np.ndarray
    """pbm: (k,) P(E) per rank; ubm: (k, k + 1) P(E) per (rank, distance to last click); else unused."""
    continuation: float
    purchase: np.ndarray
    extra_orders: np.ndarray
    feature_values: np.ndarray
    """(n_queries, n_candidates, f)."""

    @property
    def n_candidates(self) -> int:
        return self.attraction.shape[1]

    def features(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """``FeatureFn``: (n, k, f) features of the pairs (query_ids[i], item_ids[i, r])."""
        return self.feature_values[np.asarray(query_ids)[:, None], np.asarray(item_ids) % self.n_candidates]

    def pair_values(self, values: np.ndarray, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k) entries of a (query, candidate) parameter array for the rankings."""
        return values[np.asarray(query_ids)[:, None], np.asarray(item_ids) % self.n_candidates]


def random_truth(
    kind: Kind, n_queries: int, n_candidates: int, k: int, rng: np.random.Generator, n_features: int = 3
) -> TrueClickModel:
    """Random parameters of a model of ``kind`` (cascade = DBN with sigma = gamma = 1)."""
    x = rng.normal(size=(n_queries, n_candidates, n_features))

    def logistic(intercept: float) -> np.ndarray:
        return expit(intercept + x @ rng.normal(0.0, 1.0, n_features))

    ranks = np.arange(k)
    distances = np.arange(k + 1)
    examination = {
        "pbm": (1.0 + ranks) ** -0.8,
        "ubm": 1.0 / (1.0 + 0.25 * distances[None, :] + 0.05 * ranks[:, None]) * 1.3,
    }.get(kind, np.ones(k))
    if kind == "ubm":
        examination = np.minimum(examination, 1.0)
    return TrueClickModel(
        kind=kind,
        attraction=logistic(-1.0),
        satisfaction=np.ones((n_queries, n_candidates)) if kind == "cascade" else logistic(0.0),
        examination=examination,
        continuation={"dbn": 0.9}.get(kind, 1.0),
        purchase=logistic(-1.5),
        extra_orders=np.exp(-1.0 + 0.3 * x[..., 0]),
        feature_values=x,
    )


def sample_click_log(truth: TrueClickModel, n_sessions: int, k: int, rng: np.random.Generator) -> ClickLog:
    """``n_sessions`` pages of k items with clicks, purchases and orders drawn from ``truth``."""
    n_queries, n_candidates = truth.attraction.shape
    query_ids = rng.integers(0, n_queries, n_sessions)
    shown = np.argsort(rng.random((n_sessions, n_candidates)), axis=1)[:, :k]
    return sample_responses(truth, query_ids, query_ids[:, None] * n_candidates + shown, rng)


def sample_responses(truth: TrueClickModel, query_ids: np.ndarray, item_ids: np.ndarray,
                     rng: np.random.Generator, propensities: np.ndarray | None = None) -> ClickLog:
    """Clicks, purchases and orders drawn from ``truth`` on the given pages (item ids as in
    :meth:`TrueClickModel.features`), e.g. those of a logging policy with its ``propensities``."""
    n_sessions, k = item_ids.shape
    alpha = truth.pair_values(truth.attraction, query_ids, item_ids)
    sigma = truth.pair_values(truth.satisfaction, query_ids, item_ids)
    attracted = rng.random((n_sessions, k)) < alpha
    clicks = np.zeros((n_sessions, k), dtype=bool)
    if truth.kind == "pbm":
        clicks = attracted & (rng.random((n_sessions, k)) < truth.examination[:k])
    elif truth.kind == "ubm":
        last_click = np.full(n_sessions, -1)
        for r in range(k):
            examined = rng.random(n_sessions) < truth.examination[r, r - last_click]
            clicks[:, r] = examined & attracted[:, r]
            last_click = np.where(clicks[:, r], r, last_click)
    else:
        examined = np.ones(n_sessions, dtype=bool)
        for r in range(k):
            clicks[:, r] = examined & attracted[:, r]
            satisfied = clicks[:, r] & (rng.random(n_sessions) < sigma[:, r])
            examined = examined & ~satisfied & (rng.random(n_sessions) < truth.continuation)
    purchases = clicks & (rng.random((n_sessions, k)) < truth.pair_values(truth.purchase, query_ids, item_ids))
    orders = np.where(purchases, 1 + rng.poisson(truth.pair_values(truth.extra_orders, query_ids, item_ids)), 0)
    return ClickLog(query_ids, item_ids, clicks, purchases, orders, np.arange(n_sessions, dtype=np.int64),
                    propensities)


def slot_level_log(log: ClickLog, rng: np.random.Generator, slot_weights: np.ndarray | None = None) -> ClickLog:
    """``log`` as a slot-level log records it: each page keeps one position, drawn independently of
    the clicks with probabilities ``slot_weights`` (k,) (uniform by default); its other positions
    become ``NO_ITEM`` with no click, purchase or order."""
    n, k = log.item_ids.shape
    kept = np.zeros((n, k), dtype=bool)
    kept[np.arange(n), rng.choice(k, size=n, p=slot_weights)] = True

    def keep(values: np.ndarray | None, empty) -> np.ndarray | None:
        return None if values is None else np.where(kept, values, empty)

    return ClickLog(log.query_ids, np.where(kept, log.item_ids, NO_ITEM), log.clicks & kept,
                    keep(log.purchases, False), keep(log.orders, 0), log.session_ids, keep(log.propensities, np.nan))
