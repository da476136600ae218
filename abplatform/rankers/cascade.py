"""The traditional multi-stage cascade — retrieval, pre-ranking, ranking — that OneSearch replaced.

Three stages narrow each session's candidates — recall, pre-ranking and ranking, the "multi-stage
cascading architecture" OneSearch replaced (Chen et al., arXiv:2509.03236, 2025):

1. **Lexical retrieval** keeps the ``retrieval_size`` candidates with the highest Okapi BM25
   (Robertson & Zaragoza 2009; :class:`~abplatform.rankers.text.BM25Index`) of the query against
   the item title, ties in candidate order.
2. **Pre-ranking**, a cheap click model on three features (title BM25, item CTR prior, item
   popularity), keeps the ``preranking_size`` retrieved candidates with the highest linear score.
3. **Ranking**, a click model on the query-item features of :data:`FEATURES`, orders them. What a
   stage cut scores -inf: the cascade never shows it (:func:`~abplatform.rankers.base.rank` leaves
   such cells off the page).

Features (defined once, by :func:`query_item_features`, which builds the training rows;
:class:`ServingModel` computes the same linear scores without building them):

* ``title_bm25``: BM25 of the query against the title; ``category_bm25``: BM25 against the
  category name (a field of its own, so a title with a synonym still matches the category word);
* ``category_clicks``: the query's pre-period clicks per category as a log-lift over the
  category's catalog share, shrunk with ``QUERY_PRIOR_STRENGTH`` pseudo-clicks (0 for unseen
  queries) — the query-category feature of a traditional ranking model;
* ``<attribute>_match`` per brand, colour, material and style: +1 when the query names the
  item's value, -1 when it names another, 0 when it names none; ``over_price_cap``: 1 when the
  price is over the query's "under N";
* ``log_price_ratio``: log(price / the category's median catalog price);
* ``item_ctr``: log of the item's position-debiased CTR over the mean — clicks divided by
  exposure, each impression weighted by the log's CTR at its position relative to position 1
  (the position prior V1 uses), shrunk with ``CTR_PRIOR_STRENGTH`` pseudo-exposures;
  ``item_popularity``: log(1 + impressions).

Training: both models are L2-penalised logistic regressions of the pre-period's clicks
(``pre_sessions`` / ``pre_impressions`` only, as V1 and V2), fitted by L-BFGS-B
(:func:`fit_click_model`), the pre-ranking model on ``PRERANKING_FEATURES`` alone. Position
debiasing: a free effect per logged position is added to the logit in training and dropped when
scoring, so every candidate is scored as if shown at the same position (the position "shallow
tower" of Zhao et al., RecSys 2019, as a one-hot term). The features learnt from clicks
(``category_clicks``, ``item_ctr``, ``item_popularity``) are out-of-fold for the training rows —
computed from the other ``FOLDS`` - 1 folds of sessions (session id modulo ``FOLDS``), counts
scaled to the whole log — so a row's own click never enters its features (the target leakage of
target statistics; Prokhorenkova et al., CatBoost, NeurIPS 2018); serving uses the whole
pre-period. Nothing is random: the same logs give the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from abplatform.contract import ATTRIBUTE_NAMES
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.rankers.base import CandidateBatch, Catalog
from abplatform.rankers.text import BM25Index, attribute_vocabulary, query_constraints_many, table_rows

ITEM_FEATURES = ("log_price_ratio", "item_ctr", "item_popularity")  # functions of the item alone
FEATURES = ("title_bm25", "category_bm25", "category_clicks", *(f"{a}_match" for a in ATTRIBUTE_NAMES),
            "over_price_cap", *ITEM_FEATURES)
_AT = {name: i for i, name in enumerate(FEATURES)}
_ITEM_COLUMNS = slice(len(FEATURES) - len(ITEM_FEATURES), None)  # the item features close FEATURES
PRERANKING_FEATURES = ("title_bm25", "item_ctr", "item_popularity")
FOLDS = 5  # out-of-fold statistics for the training rows
CTR_PRIOR_STRENGTH = 20.0  # pseudo-exposures shrinking an item's CTR towards the mean
QUERY_PRIOR_STRENGTH = 10.0  # pseudo-clicks shrinking a query's clicks per category towards the catalog's shares


@dataclass(frozen=True)
class ClickLog:
    """The pre-period's pages: one row per session, one column per logged position (1..k)."""

    queries: list[str]  # distinct queries
    query_index: np.ndarray  # (n,) each session's query among them
    rows: np.ndarray  # (n, k) catalog row shown at each position, -1 = none
    clicked: np.ndarray  # (n, k)
    fold: np.ndarray  # (n,) session id modulo FOLDS


def load_click_log(dataset: Dataset, catalog: Catalog) -> ClickLog:
    """The pre-period logs as pages (impressions of items not in the catalog are left out)."""
    if not (dataset.has("pre_sessions") and dataset.has("pre_impressions")):
        raise InputError("ranker cascade: needs the pre-period logs (pre_sessions and pre_impressions) to train on")
    con = dataset.connect()
    try:
        sessions = con.sql("SELECT session_id, COALESCE(query, '') AS query FROM pre_sessions "
                           "ORDER BY session_id").to_arrow_table()
        shown = con.execute("SELECT session_id, position, item_id, clicked FROM pre_impressions "
                            "WHERE position >= 1 ORDER BY session_id, position").fetchnumpy()
    finally:
        con.close()
    ids = sessions["session_id"].to_numpy()
    encoded = sessions["query"].combine_chunks().dictionary_encode()
    at = np.searchsorted(ids, shown["session_id"]).clip(max=max(len(ids) - 1, 0))
    position = np.asarray(shown["position"], np.int64)
    keep = np.flatnonzero((ids[at] == shown["session_id"]) if len(ids) else np.zeros(len(at), bool))
    rows = np.full((len(ids), int(position[keep].max(initial=1))), -1, np.int64)
    clicked = np.zeros(rows.shape, bool)
    rows[at[keep], position[keep] - 1] = catalog.rows(np.asarray(shown["item_id"])[keep])
    clicked[at[keep], position[keep] - 1] = np.asarray(shown["clicked"], bool)[keep]
    return ClickLog(encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
                    rows, clicked & (rows >= 0), ids % FOLDS)


def item_features(log: ClickLog, sessions: np.ndarray, log_price_ratio: np.ndarray, scale: float) -> np.ndarray:
    """(ITEM_FEATURES, catalog rows): ``item_ctr`` and ``item_popularity`` from the log's ``sessions`` (a mask),
    counts multiplied by ``scale``, beside ``log_price_ratio``."""
    rows, clicked = log.rows[sessions], log.clicked[sessions]
    shown = rows >= 0
    by_position = clicked.sum(axis=0) / np.maximum(shown.sum(axis=0), 1)
    weight = by_position / by_position[0] if by_position[0] > 0 else np.ones(len(by_position))
    n = len(log_price_ratio)
    items = rows[shown]
    impressions = scale * np.bincount(items, minlength=n)
    clicks = scale * np.bincount(items, clicked[shown], minlength=n)
    exposure = scale * np.bincount(items, np.broadcast_to(weight, rows.shape)[shown], minlength=n)
    if clicks.sum() > 0:
        mean_ctr = clicks.sum() / exposure.sum()
        ctr = np.log((clicks + CTR_PRIOR_STRENGTH * mean_ctr) / (exposure + CTR_PRIOR_STRENGTH) / mean_ctr)
    else:
        ctr = np.zeros(n)
    columns = {"log_price_ratio": log_price_ratio, "item_ctr": ctr, "item_popularity": np.log1p(impressions)}
    return np.stack([columns[name] for name in ITEM_FEATURES])


def query_category_clicks(log: ClickLog, sessions: np.ndarray, category: np.ndarray, n_categories: int) -> np.ndarray:
    """(distinct queries, categories) clicks of the log's ``sessions`` (a mask)."""
    s, p = np.nonzero(log.clicked & sessions[:, None])
    cells = log.query_index[s] * n_categories + category[log.rows[s, p]]
    return np.bincount(cells, minlength=len(log.queries) * n_categories).reshape(len(log.queries), n_categories)


def category_click_affinity(clicks: np.ndarray, category_share: np.ndarray) -> np.ndarray:
    """log of each query's smoothed click share per category over the category's catalog share."""
    prior = QUERY_PRIOR_STRENGTH * category_share
    return np.log((clicks + prior) / (clicks.sum(axis=1, keepdims=True) + QUERY_PRIOR_STRENGTH) / category_share)


@dataclass(frozen=True)
class QueryFeatures:
    """What the features need of each query, one row per query."""

    category_bm25: np.ndarray  # (m, categories)
    category_clicks: np.ndarray  # (m, categories)
    attributes: np.ndarray  # (m, attributes) code each attribute names, -1 = none
    price_cap: np.ndarray  # (m,) inf = none

    def take(self, rows: np.ndarray) -> QueryFeatures:
        return QueryFeatures(self.category_bm25[rows], self.category_clicks[rows], self.attributes[rows],
                             self.price_cap[rows])

    def written(self, at: int, new: QueryFeatures) -> QueryFeatures:
        """This table with ``new``'s rows written from row ``at`` on (its arrays grown geometrically when full)."""
        need = at + len(new.price_cap)
        out = {}
        for name in ("category_bm25", "category_clicks", "attributes", "price_cap"):
            table, rows = getattr(self, name), getattr(new, name)
            if need > len(table):
                grown = np.empty((max(need, 2 * len(table)), *table.shape[1:]), table.dtype)
                grown[:at] = table[:at]
                table = grown
            table[at:need] = rows
            out[name] = table
        return QueryFeatures(**out)


def query_item_features(catalog: Catalog, items: np.ndarray, queries: QueryFeatures, query_index: np.ndarray,
                        rows: np.ndarray, title_bm25: np.ndarray) -> np.ndarray:
    """(len(FEATURES), n, c) features of each (session, candidate) cell, in :data:`FEATURES` order: row i of
    ``rows`` (catalog rows, -1 = padding, whose features mean nothing) is ranked for query ``query_index[i]``;
    ``items`` is :func:`item_features`."""
    r = np.maximum(rows, 0)
    x = np.zeros((len(FEATURES), *rows.shape))
    x[_AT["title_bm25"]] = title_bm25
    cells = query_index[:, None] * queries.category_bm25.shape[1] + np.take(catalog.category, r)
    x[_AT["category_bm25"]] = np.take(queries.category_bm25, cells)
    x[_AT["category_clicks"]] = np.take(queries.category_clicks, cells)
    wanted = queries.attributes[query_index]
    for a, name in enumerate(ATTRIBUTE_NAMES):  # only the sessions whose query names the attribute
        named = np.flatnonzero(wanted[:, a] >= 0)
        same = np.take(catalog.attribute_codes[name], r[named]) == wanted[named, a, None]
        x[_AT[f"{name}_match"], named] = np.where(same, 1.0, -1.0)
    caps = queries.price_cap[query_index]
    capped = np.flatnonzero(caps < np.inf)
    x[_AT["over_price_cap"], capped] = np.take(catalog.price, r[capped]) > caps[capped, None]
    x[_ITEM_COLUMNS] = np.take(items, r, axis=1)
    return x


@dataclass(frozen=True)
class ClickModel:
    """logit P(click) = intercept + coef · features + position_effect[position - 1] (position_effect[0] = 0)."""

    features: tuple[str, ...]
    coef: np.ndarray
    intercept: float
    position_effect: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """The coefficients over all of :data:`FEATURES` (0 for those the model does not use)."""
        weights = np.zeros(len(FEATURES))
        weights[[_AT[f] for f in self.features]] = self.coef
        return weights


def fit_click_model(x: np.ndarray, clicked: np.ndarray, position: np.ndarray, features: tuple[str, ...],
                    l2: float = 1.0) -> ClickModel:
    """Logistic regression of ``clicked`` (rows,) on ``x`` (rows, features) plus a free effect per ``position``
    (1-based): maximum likelihood with the penalty ``l2`` / 2 |w|² on the coefficients of the standardised
    features (not the intercept or the position effects), by L-BFGS-B from zero. Returns raw-unit coefficients."""
    n, f = x.shape
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = (x - mean) / std
    y = clicked.astype(float)
    at = position - 1
    k = int(position.max())

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[1:f + 1]
        eta = theta[0] + z @ w + np.r_[0.0, theta[f + 1:]][at]
        residual = expit(eta) - y
        value = np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * l2 * w @ w
        grad = np.concatenate([[residual.sum()], z.T @ residual + l2 * w, np.bincount(at, residual, k)[1:]])
        return value / n, grad / n

    theta0 = np.zeros(1 + f + k - 1)
    rate = np.clip(y.mean(), 1e-9, 1 - 1e-9)
    theta0[0] = np.log(rate / (1 - rate))  # the intercept of the clicks' mean
    theta = minimize(loss, theta0, jac=True, method="L-BFGS-B",
                     options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9}).x
    coef = theta[1:f + 1] / std
    return ClickModel(features, coef, float(theta[0] - coef @ mean), np.r_[0.0, theta[f + 1:]])


def top_per_row(score: np.ndarray, keep: np.ndarray, size: int) -> np.ndarray:
    """Mask of each row's ``size`` highest-scoring cells among ``keep`` (all of them when fewer), ties by column."""
    if size >= keep.shape[1]:
        return keep
    key = np.where(keep, score, -np.inf)
    least = np.sort(key, axis=1)[:, -size, None]  # each row's size-th highest
    top = key >= least
    over = np.flatnonzero(top.sum(axis=1) > size)  # ties at the cut: only the first of them by column stay
    if len(over):
        tied = key[over] == least[over]
        room = size - (key[over] > least[over]).sum(axis=1, keepdims=True)
        top[over] &= ~tied | (np.cumsum(tied, axis=1) <= room)
    return top & keep


@dataclass(frozen=True)
class ServingModel:
    """A click model's relevance — its weights · :func:`query_item_features`, the logit without the intercept
    and the position term, so the same at every position — computed without building the features: the item
    features' part summed per item beforehand, the query-category part per distinct query of a batch, the rest
    per cell, and features weighted 0 skipped (what keeps the cascade's serving cost near V1's)."""

    weights: np.ndarray  # over FEATURES
    item_part: np.ndarray  # (catalog rows,) the item features' weights · item features

    @classmethod
    def of(cls, model: ClickModel, items: np.ndarray) -> ServingModel:
        """``model`` served with ``items`` (:func:`item_features`)."""
        weights = model.weights
        return cls(weights, weights[_ITEM_COLUMNS] @ items)

    def relevance(self, catalog: Catalog, queries: QueryFeatures, query_index: np.ndarray, rows: np.ndarray,
                  title_bm25: np.ndarray) -> np.ndarray:
        """(n, c) relevance of each cell; the arguments as :func:`query_item_features`'s."""
        w = dict(zip(FEATURES, self.weights.tolist(), strict=True))
        r = np.maximum(rows, 0)
        out = np.take(self.item_part, r)
        if w["title_bm25"]:
            out += w["title_bm25"] * title_bm25
        if w["category_bm25"] or w["category_clicks"]:
            table = w["category_bm25"] * queries.category_bm25 + w["category_clicks"] * queries.category_clicks
            out += np.take(table, query_index[:, None] * table.shape[1] + np.take(catalog.category, r))
        wanted = queries.attributes[query_index]
        for a, name in enumerate(ATTRIBUTE_NAMES):
            if weight := w[f"{name}_match"]:  # only the sessions whose query names the attribute
                named = np.flatnonzero(wanted[:, a] >= 0)
                same = np.take(catalog.attribute_codes[name], r[named]) == wanted[named, a, None]
                out[named] += np.where(same, weight, -weight)
        if weight := w["over_price_cap"]:
            caps = queries.price_cap[query_index]
            capped = np.flatnonzero(caps < np.inf)
            out[capped] += np.where(np.take(catalog.price, r[capped]) > caps[capped, None], weight, 0.0)
        return out


@dataclass(frozen=True)
class CascadeStages:
    """What each stage did to a batch's (session, candidate) cells."""

    title_bm25: np.ndarray  # retrieval's score
    retrieved: np.ndarray  # kept by retrieval
    preranking_score: np.ndarray
    preranked: np.ndarray  # kept by pre-ranking, of the retrieved
    ranking_score: np.ndarray  # the ranking model's, of every cell


class CascadeRanker:
    """BM25 retrieval of ``retrieval_size``, a 3-feature click model keeping ``preranking_size``, then an
    11-feature click model ordering them; both models logistic regressions (penalty ``l2``) on pre-period clicks.
    See the module's documentation for the features and the training."""

    name = "cascade"

    def __init__(self, retrieval_size: int = 100, preranking_size: int = 20, l2: float = 1.0):
        if not 1 <= preranking_size <= retrieval_size:
            raise InputError(f"ranker cascade: needs 1 <= preranking_size <= retrieval_size (got preranking_size "
                             f"{preranking_size}, retrieval_size {retrieval_size})")
        self.retrieval_size, self.preranking_size, self.l2 = retrieval_size, preranking_size, l2
        self.catalog: Catalog | None = None

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, dataset: Dataset, catalog: Catalog) -> CascadeRanker:
        log = load_click_log(dataset, catalog)
        if not log.clicked.any():
            raise InputError("ranker cascade: the pre-period logs have no clicks to train on")
        self.catalog = catalog
        self.bm25 = catalog.bm25  # built now, so replay workers forked later share it
        n_categories = len(catalog.category_names)
        self.category_index = BM25Index([str(c) for c in catalog.category_names])
        self.category_share = np.bincount(catalog.category, minlength=n_categories) / len(catalog)
        self.attribute_tokens = attribute_vocabulary(catalog)
        median = np.array([np.median(catalog.price[catalog.category == c]) for c in range(n_categories)])
        log_price_ratio = np.log(catalog.price / median[catalog.category])
        everyone = np.ones(len(log.fold), bool)
        text = self._query_features(log.queries)
        x, clicked, position = self._training_rows(log, text, log_price_ratio)
        pre = [_AT[f] for f in PRERANKING_FEATURES]
        self.preranking_model = fit_click_model(x[:, pre], clicked, position, PRERANKING_FEATURES, self.l2)
        self.ranking_model = fit_click_model(x, clicked, position, FEATURES, self.l2)
        # serving: statistics of the whole pre-period, and a feature table holding the logged queries; a query
        # added later was not logged, so it has no clicks
        self.items = item_features(log, everyone, log_price_ratio, 1.0)
        self._preranking = ServingModel.of(self.preranking_model, self.items)
        self._ranking = ServingModel.of(self.ranking_model, self.items)
        clicks = query_category_clicks(log, everyone, catalog.category, n_categories)
        self._query_table = replace(text, category_clicks=category_click_affinity(clicks, self.category_share))
        self._query_rows = {q: i for i, q in enumerate(log.queries)}
        return self

    def _query_features(self, queries: list[str]) -> QueryFeatures:
        """Features of ``queries``, with ``category_clicks`` those of a query without clicks."""
        n_categories = len(self.category_share)
        everything = np.broadcast_to(np.arange(n_categories), (len(queries), n_categories))
        attributes, caps = query_constraints_many(queries, self.attribute_tokens)
        no_clicks = category_click_affinity(np.zeros((len(queries), n_categories)), self.category_share)
        return QueryFeatures(self.category_index.score(queries, everything), no_clicks, attributes, caps)

    def _training_rows(self, log: ClickLog, text: QueryFeatures,
                       log_price_ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(features (rows, FEATURES), clicked, position) of every logged impression; the statistics learnt from
        clicks come from the sessions of the other folds."""
        assert self.catalog is not None
        title = self.bm25.score(log.queries, log.rows, log.query_index)
        xs, clicks, positions = [], [], []
        for fold in range(FOLDS):
            held = np.flatnonzero(log.fold == fold)
            others = log.fold != fold
            if not len(held) or not others.any():
                continue
            scale = len(others) / others.sum()
            items = item_features(log, others, log_price_ratio, scale)
            fold_clicks = scale * query_category_clicks(log, others, self.catalog.category, len(self.category_share))
            queries = replace(text, category_clicks=category_click_affinity(fold_clicks, self.category_share))
            rows = log.rows[held]
            x = query_item_features(self.catalog, items, queries, log.query_index[held], rows, title[held])
            shown = rows >= 0
            xs.append(x[:, shown].T)
            clicks.append(log.clicked[held][shown])
            positions.append(np.nonzero(shown)[1] + 1)
        if not xs:  # every session in one fold: nothing to learn out of fold
            raise InputError("ranker cascade: the pre-period logs have too few sessions to train on")
        return np.concatenate(xs), np.concatenate(clicks), np.concatenate(positions)

    # -- serving -------------------------------------------------------------------------------
    def _table_rows(self, queries: list[str]) -> np.ndarray:
        """Row of each query in the serving feature table, adding the queries not seen before."""
        return table_rows(queries, self._query_rows, self._append_queries)

    def _append_queries(self, queries: list[str]) -> None:
        self._query_table = self._query_table.written(len(self._query_rows), self._query_features(queries))

    def stages(self, batch: CandidateBatch) -> CascadeStages:
        """Retrieval, pre-ranking and the ranking model's scores of a batch."""
        if self.catalog is None:
            raise RuntimeError("CascadeRanker.stages called before fit")
        queries, index = batch.distinct_queries()
        query_rows = self._table_rows(queries)  # before reading the table: adding queries replaces it
        rows = batch.candidate_rows
        title = self.bm25.score(queries, rows, index)
        per_query = self._query_table.take(query_rows)
        retrieved = top_per_row(title, rows >= 0, self.retrieval_size)
        preranking = self._preranking.relevance(self.catalog, per_query, index, rows, title)
        ranking = self._ranking.relevance(self.catalog, per_query, index, rows, title)
        return CascadeStages(title, retrieved, preranking, top_per_row(preranking, retrieved, self.preranking_size),
                             ranking)

    def score(self, batch: CandidateBatch) -> np.ndarray:
        """The ranking model's score of what pre-ranking kept; -inf for what a stage cut."""
        stages = self.stages(batch)
        return np.where(stages.preranked, stages.ranking_score, -np.inf)

