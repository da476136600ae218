"""V2: V1's signals plus query understanding and a multi-objective score.

Query understanding maps a query to an intent — a distribution over leaf categories, attribute
constraints and a price cap — from associations learned offline from the catalog (title words,
including synonyms, per category) and from pre-period co-clicks (query words per clicked
category: how "morning jog" comes to mean sneakers). Intents are computed once per distinct
query and served from a lookup table, so serving costs no more than V1's BM25.

score = w_lex BM25 + w_rel (3 P(leaf_i | q) + 0.8 attribute match - 2 [price_i > cap])
        + w_click log(debiased CTR ratio) + w_purchase log(purchase-per-click ratio)

V1's lexical signal enters through the learned word associations (title words per category,
attribute words matched against the catalog's attribute fields); the full BM25 term is off by
default (w_lex = 0), which is what keeps V2's serving cost at V1's.

The CTR prior divides clicks by position-weighted exposure (not raw impressions) and carries no
popularity term, which lifts long-tail items that V1's exposure feedback buries.
"""

from __future__ import annotations

import numpy as np

from abplatform.contract import ATTRIBUTE_NAMES
from abplatform.dataset import Dataset
from abplatform.rankers.base import CandidateBatch, Catalog
from abplatform.rankers.text import attribute_vocabulary, query_constraints_many, table_rows, tokenize
from abplatform.rankers.v1 import item_log_stats, logged_queries


class V2Ranker:
    name = "v2"

    def __init__(self, w_lex: float = 0.0, w_rel: float = 1.0, w_click: float = 0.6, w_purchase: float = 0.4,
                 smoothing: float = 2.0, query_prior_strength: float = 10.0):
        self.w_lex, self.w_rel, self.w_click, self.w_purchase = w_lex, w_rel, w_click, w_purchase
        self.smoothing, self.query_prior_strength = smoothing, query_prior_strength
        self.catalog: Catalog | None = None
        self._intents: dict[str, int] = {}  # query -> row of the intent table below
        # the intent table: P(category | query), attribute codes, price cap; grows geometrically
        self._probs = self._attrs = self._caps = np.zeros(0)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, dataset: Dataset, catalog: Catalog) -> V2Ranker:
        self.catalog = catalog
        n_cat = len(catalog.category_names)
        counts: dict[str, np.ndarray] = {}

        def add(token: str, cat: int, weight: float = 1.0) -> None:
            counts.setdefault(token, np.zeros(n_cat))[cat] += weight

        for title, cat in zip(catalog.titles, catalog.category, strict=True):
            for t in set(tokenize(title)):
                add(t, cat)
        self.query_clicks: dict[str, np.ndarray] = {}
        if dataset.has("pre_impressions") and dataset.has("pre_sessions"):
            con = dataset.connect()
            try:
                res = con.execute("""
                    SELECT s.query, i.item_id, COUNT(*) AS clicks
                    FROM pre_impressions i JOIN pre_sessions s USING (session_id)
                    WHERE i.clicked GROUP BY s.query, i.item_id""").fetchnumpy()
            finally:
                con.close()
            item_rows = catalog.rows(np.asarray(res["item_id"]))
            cats = catalog.category[np.maximum(item_rows, 0)]
            known = item_rows >= 0
            for q, cat, c, ok in zip(res["query"], cats, res["clicks"], known, strict=True):
                if not ok:
                    continue
                self.query_clicks.setdefault(q, np.zeros(n_cat))[cat] += c
                for t in set(tokenize(q)):
                    add(t, cat, float(c))
        self.category_prior = np.bincount(catalog.category, minlength=n_cat) / len(catalog)
        self.token_log_lift = {
            t: (np.log((c + self.smoothing * self.category_prior) / (c.sum() + self.smoothing))
                - np.log(self.category_prior))
            for t, c in counts.items()
        }
        self.attribute_tokens = attribute_vocabulary(catalog)
        stats = item_log_stats(dataset, catalog)
        m = 20.0
        clicks, exposure, purchases = stats["clicks"], stats["exposure"], stats["purchases"]
        mean_ctr = clicks.sum() / exposure.sum() if exposure.sum() > 0 else 1.0
        mean_cvr = purchases.sum() / clicks.sum() if clicks.sum() > 0 else 1.0
        self.click_prior = np.log((clicks + m * mean_ctr) / (exposure + m) / mean_ctr)
        self.purchase_prior = np.log((purchases + m * mean_cvr) / (clicks + m) / mean_cvr)
        self._click_term, self._purchase_term = self.w_click * self.click_prior, self.w_purchase * self.purchase_prior
        self._lift_rows = {t: i for i, t in enumerate(self.token_log_lift)}
        self._lifts = np.array(list(self.token_log_lift.values())).reshape(len(self._lift_rows), n_cat)
        self._intents.clear()
        self._probs, self._attrs = np.zeros((0, n_cat)), np.zeros((0, len(ATTRIBUTE_NAMES)), np.int64)
        self._caps = np.zeros(0)
        # the serving lookup table: intents of every query seen in the logs, computed offline
        self._intent_rows(logged_queries(dataset))
        return self

    # -- serving -------------------------------------------------------------------------------
    def intent(self, query: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(P(category | query), attribute codes (-1 = unconstrained), price cap) of a query."""
        row = self._intent_rows([query])[0]
        return self._probs[row], self._attrs[row], float(self._caps[row])

    def _intent_rows(self, queries: list[str]) -> np.ndarray:
        """Row of each query in the intent table, adding the queries not seen before."""
        return table_rows(queries, self._intents, self._append_intents)

    def _append_intents(self, queries: list[str]) -> None:
        """Intents of new queries, computed together: per row, the same arithmetic as for one query."""
        m = len(queries)
        # each query's distinct words with a learned lift, in first-occurrence order: float sums depend on
        # the order, and a set's order changes with the interpreter's hash seed
        words = [[self._lift_rows[t] for t in dict.fromkeys(tokenize(q)) if t in self._lift_rows] for q in queries]
        width = max(map(len, words), default=0)
        word_rows = np.full((m, width), -1, dtype=np.int64)
        for i, w in enumerate(words):
            word_rows[i, :len(w)] = w
        logits = np.tile(np.log(self.category_prior), (m, 1))
        for j in range(width):
            has = np.flatnonzero(word_rows[:, j] >= 0)
            logits[has] += self._lifts[word_rows[has, j]]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        seen_rows = [i for i, q in enumerate(queries) if q in self.query_clicks]
        if seen_rows:
            seen = np.stack([self.query_clicks[queries[i]] for i in seen_rows])
            n = seen.sum(axis=1, keepdims=True)
            probs[seen_rows] = (n * seen / n + self.query_prior_strength * probs[seen_rows]) / (
                n + self.query_prior_strength)
        attrs, caps = query_constraints_many(queries, self.attribute_tokens)
        done = len(self._intents)
        if done + m > len(self._caps):
            capacity = max(done + m, 2 * done)
            for name in ("_probs", "_attrs", "_caps"):
                old = getattr(self, name)
                grown = np.empty((capacity, *old.shape[1:]), old.dtype)
                grown[:done] = old[:done]
                setattr(self, name, grown)
        self._probs[done:done + m], self._attrs[done:done + m], self._caps[done:done + m] = probs, attrs, caps

    def score(self, batch: CandidateBatch) -> np.ndarray:
        cat = self.catalog
        if cat is None:
            raise RuntimeError("V2Ranker.score called before fit")
        rows = np.maximum(batch.candidate_rows, 0)
        queries, index = batch.distinct_queries()
        distinct = self._intent_rows(queries)
        probs = self._probs[distinct]  # the batch's own rows first: a small table to gather from
        p_cat = np.take(probs, (index * probs.shape[1])[:, None] + np.take(cat.category, rows))
        wanted = self._attrs[distinct][index]
        # +1 per named attribute the item has, -1 per one it contradicts: small integers, exact in any order;
        # only the sessions whose query names the attribute are looked at
        attr_match = np.zeros(rows.shape, np.int8)
        for a, name in enumerate(ATTRIBUTE_NAMES):
            named = np.flatnonzero(wanted[:, a] >= 0)
            same = np.take(cat.attribute_codes[name], rows[named]) == wanted[named, a][:, None]
            attr_match[named] += np.where(same, np.int8(1), np.int8(-1))
        # sums in place; w * prior per item precomputed at fit: the same products, fewer passes
        relevance = 3.0 * p_cat
        relevance += 0.8 * attr_match
        # - 2.0 over the price cap: only a query with a cap can be over it (the others would subtract 0.0)
        caps = self._caps[distinct][index]
        capped = np.flatnonzero(caps < np.inf)
        relevance[capped] -= np.where(np.take(cat.price, rows[capped]) > caps[capped, None], 2.0, 0.0)
        score = self.w_rel * relevance
        if self.w_lex:
            score = self.w_lex * cat.bm25.score(queries, batch.candidate_rows, index) + score
        score += np.take(self._click_term, rows)
        score += np.take(self._purchase_term, rows)
        return score
