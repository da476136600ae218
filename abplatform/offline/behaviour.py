"""Simulated users for replay: the world's oracle, or click / purchase models fitted on the logs.

Both answer ``respond(seed, session_ids, queries, unit_ids, shown_rows)`` for pages of catalog
rows with :class:`abplatform.world.behaviour.Responses`, every draw keyed by (seed, session id).
A real team has only logs, so the fitted behaviour is the default; the oracle (the synthetic
world's true model) is there to check how good the fitted prediction is.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy.special import logit

from abplatform import rng
from abplatform.dataset import Dataset
from abplatform.offline.clickmodels import ClickModel, PurchaseModel, click_log_from_duckdb, make_click_model
from abplatform.rankers import Catalog
from abplatform.world.behaviour import STREAM_CLICK, STREAM_ORDERS, STREAM_PURCHASE, Responses
from abplatform.world.truth import WorldTruth

FITTED_MODELS = ("pbm", "cascade", "dbn", "ubm")


class Behaviour(Protocol):
    def respond(self, seed: int, session_ids: np.ndarray, queries: list[str], unit_ids: list[str],
                shown_rows: np.ndarray) -> Responses: ...


class OracleBehaviour:
    """The synthetic world's true behaviour model (needs the world's hidden truth)."""

    def __init__(self, truth: WorldTruth):
        self.truth = truth

    def respond(self, seed, session_ids, queries, unit_ids, shown_rows):
        from abplatform.world.generate import unit_rows

        return self.truth.model.respond(seed, session_ids, self.truth.intents(queries), unit_rows(unit_ids),
                                        shown_rows)


class FittedBehaviour:
    """Clicks from a click model, purchases and orders from a purchase model, fitted on logged pages.

    Unseen (query, item) pairs back off to a logistic model on three query-item features learned
    from the logs: BM25 of the query against the item title, the logit of the item's smoothed
    logged CTR, and the query's affinity to the item's category (the mean over the query's words of
    the smoothed share of that word's logged clicks that went to the category, as a log-lift).
    """

    def __init__(self, click_model: str = "pbm", page_size: int = 10):
        self.click_model_name, self.page_size = click_model, page_size

    def fit(self, dataset: Dataset, catalog: Catalog, table: str = "impressions", sessions: str = "sessions") -> FittedBehaviour:
        self.catalog = catalog
        con = dataset.connect()
        try:
            log, self.vocab = click_log_from_duckdb(con, sessions, table, k=self.page_size)
        finally:
            con.close()
        self.queries = np.empty(len(self.vocab), dtype=object)
        for q, i in self.vocab.items():
            self.queries[i] = q
        rows = catalog.rows(log.item_ids[log.item_ids >= 0])
        clicks = log.clicks[log.item_ids >= 0]
        m = 20.0
        shown_per_item = np.bincount(rows[rows >= 0], minlength=len(catalog))
        clicks_per_item = np.bincount(rows[rows >= 0], weights=clicks[rows >= 0], minlength=len(catalog))
        mean_ctr = clicks_per_item.sum() / max(1, shown_per_item.sum())
        self.item_logit = logit(np.clip((clicks_per_item + m * mean_ctr) / (shown_per_item + m), 1e-6, 1 - 1e-6))
        self._fit_category_affinity(log, rows, clicks)
        self.click_model: ClickModel = make_click_model(self.click_model_name).fit(log, features=self.features)
        self.purchase_model = PurchaseModel().fit(log, features=self.features)
        return self

    def _fit_category_affinity(self, log, rows: np.ndarray, clicks: np.ndarray) -> None:
        """Per word: log of (smoothed share of its clicks in each category / the category's share)."""
        from abplatform.rankers.text import tokenize

        n_cat = len(self.catalog.category_names)
        page_query = np.repeat(log.query_ids[:, None], log.item_ids.shape[1], axis=1)[log.item_ids >= 0]
        ok = (rows >= 0) & clicks
        per_query = np.zeros((len(self.queries), n_cat))
        np.add.at(per_query, (page_query[ok], self.catalog.category[rows[ok]]), 1.0)
        prior = (per_query.sum(axis=0) + 1.0) / (per_query.sum() + n_cat)
        words: dict[str, np.ndarray] = {}
        for q, counts in zip(self.queries, per_query):
            for w in set(tokenize(q)):
                words[w] = words.get(w, 0) + counts
        self.word_affinity = {w: np.log((c + 5 * prior) / (c.sum() + 5) / prior) for w, c in words.items()}
        self._query_affinity: dict[str, np.ndarray] = {}

    def query_affinity(self, query: str) -> np.ndarray:
        from abplatform.rankers.text import tokenize

        a = self._query_affinity.get(query)
        if a is None:
            vals = [self.word_affinity[w] for w in set(tokenize(query)) if w in self.word_affinity]
            a = np.mean(vals, axis=0) if vals else np.zeros(len(self.catalog.category_names))
            self._query_affinity[query] = a
        return a

    def features(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k, 3): BM25(query, title), the item's logged-CTR logit, the query-category affinity."""
        query_ids = np.asarray(query_ids)
        queries = [self.queries[q] if 0 <= q < len(self.queries) else "" for q in query_ids]
        rows = self.catalog.rows(item_ids)
        safe = np.maximum(rows, 0)
        bm25 = self.catalog.bm25.score(queries, rows)
        affinity = np.stack([self.query_affinity(q) for q in queries])
        cat_affinity = np.take_along_axis(affinity, self.catalog.category[safe], axis=1)
        return np.stack([bm25, np.where(rows >= 0, self.item_logit[safe], 0.0),
                         np.where(rows >= 0, cat_affinity, 0.0)], axis=-1)

    def query_ids(self, queries: list[str]) -> np.ndarray:
        # queries never logged get ids past the vocabulary: every pair backs off to the features
        unseen = len(self.vocab)
        return np.fromiter((self.vocab.get(q, unseen) for q in queries), np.int64, len(queries))

    def respond(self, seed, session_ids, queries, unit_ids, shown_rows):
        n, k = shown_rows.shape
        qids = self.query_ids(queries)
        items = np.where(shown_rows >= 0, self.catalog.item_ids[np.maximum(shown_rows, 0)], -1)
        clicked = self.click_model.sample(qids, items, rng.uniforms(seed, session_ids, STREAM_CLICK, k))
        purchased = self.purchase_model.sample_purchases(qids, items, clicked,
                                                         rng.uniforms(seed, session_ids, STREAM_PURCHASE, k))
        orders = self.purchase_model.sample_orders(qids, items, purchased,
                                                   rng.uniforms(seed, session_ids, STREAM_ORDERS, k)).astype(np.int32)
        revenue = orders * np.where(shown_rows >= 0, self.catalog.price[np.maximum(shown_rows, 0)], 0.0)
        return Responses(clicked & (shown_rows >= 0), purchased, orders, revenue)
