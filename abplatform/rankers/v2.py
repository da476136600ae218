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

from itertools import repeat

import numpy as np

from abplatform.dataset import Dataset
from abplatform.rankers.base import ATTRIBUTE_NAMES, CandidateBatch, Catalog
from abplatform.rankers.text import attribute_vocabulary, query_constraints, tokenize
from abplatform.rankers.v1 import item_log_stats



class V2Ranker:
    name = "v2"

    def __init__(self, w_lex: float = 0.0, w_rel: float = 1.0, w_click: float = 0.6, w_purchase: float = 0.4,
                 smoothing: float = 2.0, query_prior_strength: float = 10.0):
        self.w_lex, self.w_rel, self.w_click, self.w_purchase = w_lex, w_rel, w_click, w_purchase
        self.smoothing, self.query_prior_strength = smoothing, query_prior_strength
        self.catalog: Catalog | None = None
        self._intents: dict[str, int] = {}  # query -> row of the intent table below
        self._probs: list[np.ndarray] = []
        self._attrs: list[np.ndarray] = []
        self._caps: list[float] = []
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._table_rows = 0  # rows of _table filled (it grows geometrically)

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, dataset: Dataset, catalog: Catalog) -> V2Ranker:
        self.catalog = catalog
        n_cat = len(catalog.category_names)
        counts: dict[str, np.ndarray] = {}

        def add(token: str, cat: int, weight: float = 1.0) -> None:
            counts.setdefault(token, np.zeros(n_cat))[cat] += weight

        for title, cat in zip(catalog.titles, catalog.category):
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
            cats = catalog.category[np.maximum(catalog.rows(res["item_id"]), 0)]
            known = catalog.rows(res["item_id"]) >= 0
            for q, cat, c, ok in zip(res["query"], cats, res["clicks"], known):
                if not ok:
                    continue
                self.query_clicks.setdefault(q, np.zeros(n_cat))[cat] += c
                for t in set(tokenize(q)):
                    add(t, cat, float(c))
        self.category_prior = np.bincount(catalog.category, minlength=n_cat) / len(catalog)
        self.token_log_lift = {
            t: np.log((c + self.smoothing * self.category_prior) / (c.sum() + self.smoothing)) - np.log(self.category_prior)
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
        self._intents.clear()
        self._probs, self._attrs, self._caps = [], [], []
        self._table, self._table_rows = None, 0
        # the serving lookup table: intents of every query seen in the logs, computed offline
        for q in self._logged_queries(dataset):
            self.intent(q)
        return self

    @staticmethod
    def _logged_queries(dataset: Dataset) -> list[str]:
        if not dataset.has("pre_sessions"):
            return []
        con = dataset.connect()
        try:
            return [r[0] for r in con.execute("SELECT DISTINCT query FROM pre_sessions").fetchall()]
        finally:
            con.close()

    # -- serving -------------------------------------------------------------------------------
    def intent(self, query: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(P(category | query), attribute codes (-1 = unconstrained), price cap) of a query."""
        row = self._intent_row(query)
        return self._probs[row], self._attrs[row], self._caps[row]

    def _intent_row(self, query: str) -> int:
        row = self._intents.get(query)
        if row is not None:
            return row
        tokens = tokenize(query)
        logits = np.log(self.category_prior).copy()
        for t in set(tokens):
            lift = self.token_log_lift.get(t)
            if lift is not None:
                logits += lift
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        seen = self.query_clicks.get(query)
        if seen is not None:
            n = seen.sum()
            probs = (n * seen / n + self.query_prior_strength * probs) / (n + self.query_prior_strength)
        attrs, cap = query_constraints(query, self.attribute_tokens)
        self._probs.append(probs)
        self._attrs.append(attrs)
        self._caps.append(cap)
        self._intents[query] = len(self._caps) - 1
        return self._intents[query]

    def _intent_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The intent rows as arrays (with spare rows at the end), extended with the rows added since the last call."""
        done, total = self._table_rows, len(self._caps)
        if done < total:
            new = (np.stack(self._probs[done:]), np.stack(self._attrs[done:]), np.array(self._caps[done:]))
            if self._table is None or total > len(self._table[2]):
                capacity = max(total, 2 * done)
                grown = tuple(np.empty((capacity, *t.shape[1:]), t.dtype) for t in new)
                if self._table is not None:
                    for g, old in zip(grown, self._table):
                        g[:done] = old[:done]
                self._table = grown
            for t, add in zip(self._table, new):
                t[done:total] = add
            self._table_rows = total
        return self._table

    def _intent_rows(self, queries: list[str]) -> np.ndarray:
        rows = np.fromiter(map(self._intents.get, queries, repeat(-1)), np.int64, len(queries))
        for i in np.flatnonzero(rows < 0):
            rows[i] = self._intent_row(queries[i])
        return rows

    def score(self, batch: CandidateBatch) -> np.ndarray:
        cat = self.catalog
        if cat is None:
            raise RuntimeError("V2Ranker.score called before fit")
        rows = np.maximum(batch.candidate_rows, 0)
        queries, index = batch.distinct_queries()
        idx = self._intent_rows(queries)[index]
        probs, attrs, caps = self._intent_table()
        p_cat = probs[idx[:, None], cat.category[rows]]
        wanted = attrs[idx]
        # +1 per named attribute the item has, -1 per one it contradicts: small integers, exact in any order;
        # only the sessions whose query names the attribute are looked at
        attr_match = np.zeros(rows.shape, np.int8)
        for a, name in enumerate(ATTRIBUTE_NAMES):
            named = np.flatnonzero(wanted[:, a] >= 0)
            same = cat.attribute_codes[name][rows[named]] == wanted[named, a][:, None]
            attr_match[named] += np.where(same, 1, -1).astype(np.int8)
        over_cap = cat.price[rows] > caps[idx][:, None]
        relevance = 3.0 * p_cat + 0.8 * attr_match.astype(float) - 2.0 * over_cap
        lexical = cat.bm25.score(queries, batch.candidate_rows, index) if self.w_lex else 0.0
        return (self.w_lex * lexical + self.w_rel * relevance + self.w_click * self.click_prior[rows]
                + self.w_purchase * self.purchase_prior[rows])
