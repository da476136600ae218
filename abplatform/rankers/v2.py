"""V2: V1's signals plus query understanding and a multi-objective score, served at V1's cost.

As OneSearch-V2 distils its query reasoning into the model instead of running it while serving, V2
works out what queries mean at fit time, and serving only looks the answer up.

Query understanding maps a query to an intent: a distribution over leaf categories P(category | q),
the attribute values it names (brand, colour, ...; the last word naming one wins) and a price cap
("under 50").

- **Teacher (fit only).** P(c | q) is naive Bayes over the query's words — log P(c) plus, per
  word, its log-lift for c, learned from the catalog (title words, including synonyms, per category)
  and from pre-period co-clicks (query words per clicked category: how "morning jog" comes to mean
  sneakers) — blended with the query's own pre-period clicks per category, the word model counting
  as ``query_prior_strength`` clicks. Attribute values and cap are read from the words.
- **Lookup.** Every pre-period query's teacher intent, computed at fit, keyed by the query.
- **Student, for queries the pre-period never had.** A softmax regression on the query's words,
  softmax(b + sum_w W[w]), distilled at fit from the teacher: trained on the teacher's distributions
  for the pre-period queries (mean cross-entropy, L-BFGS), starting from the teacher's word model
  (W = the log-lifts, b = log P(c)) and shrunk towards it with ``student_l2`` / 2 ||W - W_teacher||^2,
  so words the logged queries never use keep what the titles taught. Its answer, with the attribute
  values and cap read from the words by the teacher's rules, joins the table at the query's first
  sight. The teacher never runs while serving.

score = w_lex BM25 + w_rel (3 P(cat_i | q) + 0.8 attribute match - 2 [price_i > cap])
        + w_click log(debiased CTR ratio) + w_purchase log(purchase-per-click ratio)

Serving is a lookup and a dot product, as V1's BM25 is: the intent times the item's one-hot category
is one gather from the query's row; the attribute match (+1 per named attribute the item has, -1 per
one it contradicts) gathers a ±1 precomputed per (attribute value, item) for each value the query
names, as BM25 gathers a weight per (term, item) for each of the query's terms (one byte per
attribute value and item); only sessions whose query has a cap look at prices. That costs what V1's
scoring costs (benchmarks/latency.md). V1's lexical signal enters through the learned word
associations; the full BM25 term is off by default (w_lex = 0).

The CTR prior divides clicks by position-weighted exposure (not raw impressions) and carries no
popularity term, which lifts long-tail items that V1's exposure feedback buries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from abplatform.contract import ATTRIBUTE_NAMES
from abplatform.dataset import Dataset
from abplatform.rankers.base import CandidateBatch, Catalog
from abplatform.rankers.text import attribute_vocabulary, query_constraints_many, table_rows, tokenize
from abplatform.rankers.v1 import item_log_stats, logged_queries

STUDENT_MAX_ITERATIONS = 200  # L-BFGS iterations; it converges in 10-20 on the built-in worlds


def word_rows(queries: Sequence[str], words: Mapping[str, int]) -> np.ndarray:
    """(queries, most words) rows in ``words`` of each query's distinct known words, -1 padded, in
    first-occurrence order: float sums depend on the order, and a set's order on the hash seed."""
    found = [[words[t] for t in dict.fromkeys(tokenize(q)) if t in words] for q in queries]
    out = np.full((len(found), max(map(len, found), default=0)), -1, dtype=np.int64)
    for i, w in enumerate(found):
        out[i, :len(w)] = w
    return out


@dataclass(frozen=True)
class WordModel:
    """P(category | query) = softmax(bias + the sum of ``weights``' rows of the query's distinct known words)."""

    weights: np.ndarray  # (words, categories)
    bias: np.ndarray  # (categories,)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """(queries, categories) distributions of queries given as :func:`word_rows`; words summed in that order."""
        logits = np.tile(self.bias, (len(rows), 1))
        for j in range(rows.shape[1]):
            has = np.flatnonzero(rows[:, j] >= 0)
            logits[has] += self.weights[rows[has, j]]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return probs


def distil(rows: np.ndarray, targets: np.ndarray, start: WordModel, l2: float) -> WordModel:
    """The word model closest to ``targets`` (one distribution per query of ``rows``) in mean cross-entropy,
    plus ``l2`` / 2 ||W - start.weights||^2, by L-BFGS from ``start``; ``start`` itself without queries."""
    n, (v, c) = len(rows), start.weights.shape
    if n == 0:
        return start
    named = rows >= 0
    x = sp.csr_matrix((np.ones(int(named.sum())), rows[named], np.r_[0, np.cumsum(named.sum(axis=1))]), shape=(n, v))
    xt = x.T.tocsr()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:v * c].reshape(v, c), theta[v * c:]
        z = x @ w + b
        top = z.max(axis=1, keepdims=True)
        e = np.exp(z - top)
        total = e.sum(axis=1, keepdims=True)
        # cross-entropy of target t against softmax(z): logsumexp(z) - t . z (t sums to 1)
        value = float((top + np.log(total)).sum() - (targets * z).sum()) / n
        grad = (e / total - targets) / n
        dw = w - start.weights
        return value + 0.5 * l2 * float((dw * dw).sum()), np.concatenate([(xt @ grad + l2 * dw).ravel(),
                                                                           grad.sum(axis=0)])

    fitted = minimize(loss, np.concatenate([start.weights.ravel(), start.bias]), jac=True, method="L-BFGS-B",
                      options={"maxiter": STUDENT_MAX_ITERATIONS})
    return WordModel(fitted.x[:v * c].reshape(v, c), fitted.x[v * c:])


class V2Ranker:
    name = "v2"

    def __init__(self, w_lex: float = 0.0, w_rel: float = 1.0, w_click: float = 0.6, w_purchase: float = 0.4,
                 smoothing: float = 2.0, query_prior_strength: float = 10.0, student_l2: float = 1e-3):
        self.w_lex, self.w_rel, self.w_click, self.w_purchase = w_lex, w_rel, w_click, w_purchase
        self.smoothing, self.query_prior_strength, self.student_l2 = smoothing, query_prior_strength, student_l2
        self.catalog: Catalog | None = None
        self._intents: dict[str, int] = {}  # query -> row of the intent table below
        # the intent table: P(category | query), attribute codes, the named attribute values as rows of the
        # ±1 table (named first, padded with its all-zero last row), price cap; grows geometrically
        self._probs = self._attrs = self._value_rows = self._caps = np.zeros(0)

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
        # sorted: the student's parameters in an order that does not depend on the order rows came from the logs
        self.vocabulary = {t: i for i, t in enumerate(sorted(counts))}
        prior, s = self.category_prior, self.smoothing
        lifts = np.array([np.log((counts[t] + s * prior) / (counts[t].sum() + s)) - np.log(prior)
                          for t in self.vocabulary]).reshape(len(self.vocabulary), n_cat)
        self.word_model = WordModel(lifts, np.log(self.category_prior))
        self.attribute_tokens = attribute_vocabulary(catalog)
        stats = item_log_stats(dataset, catalog)
        m = 20.0
        clicks, exposure, purchases = stats["clicks"], stats["exposure"], stats["purchases"]
        mean_ctr = clicks.sum() / exposure.sum() if exposure.sum() > 0 else 1.0
        mean_cvr = purchases.sum() / clicks.sum() if clicks.sum() > 0 else 1.0
        self.click_prior = np.log((clicks + m * mean_ctr) / (exposure + m) / mean_ctr)
        self.purchase_prior = np.log((purchases + m * mean_cvr) / (clicks + m) / mean_cvr)
        self._click_term, self._purchase_term = self.w_click * self.click_prior, self.w_purchase * self.purchase_prior
        # per attribute value (its row) and item: +1 if the item has the value, -1 if another one; then a
        # row of zeros, "no value" (as BM25's "no term")
        sizes = [len(catalog.attribute_values[name]) for name in ATTRIBUTE_NAMES]
        self._value_offsets, self._no_value = np.cumsum([0, *sizes[:-1]]), sum(sizes)
        self._attribute_signs = np.concatenate([
            *(np.where(catalog.attribute_codes[name] == np.arange(size)[:, None], np.int8(1), np.int8(-1))
              for name, size in zip(ATTRIBUTE_NAMES, sizes, strict=True)),
            np.zeros((1, len(catalog)), np.int8)]).ravel()
        # offline: the teacher's intents of every pre-period query (sorted: the student's sums in a fixed
        # order) become the lookup table, and the student learns from them
        seen = sorted(logged_queries(dataset))
        probs, attrs, caps = self.teacher_intents(seen)
        self.student = distil(word_rows(seen, self.vocabulary), probs, self.word_model, self.student_l2)
        self._intents = {q: i for i, q in enumerate(seen)}
        self._probs, self._attrs = np.zeros((0, n_cat)), np.zeros((0, len(ATTRIBUTE_NAMES)), np.int64)
        self._value_rows, self._caps = self._attrs.copy(), np.zeros(0)
        self._store(0, probs, attrs, caps)
        if self.w_lex:
            catalog.bm25.prepare(seen)  # BM25's term ids, as V1 does
        return self

    def teacher_intents(self, queries: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The teacher's (P(category | q), attribute codes (-1 = unconstrained), price cap) of each query;
        fit time only."""
        probs = self.word_model.predict(word_rows(queries, self.vocabulary))
        clicked = [i for i, q in enumerate(queries) if q in self.query_clicks]
        if clicked:
            seen = np.stack([self.query_clicks[queries[i]] for i in clicked])
            n = seen.sum(axis=1, keepdims=True)
            probs[clicked] = (seen + self.query_prior_strength * probs[clicked]) / (n + self.query_prior_strength)
        attrs, caps = query_constraints_many(queries, self.attribute_tokens)
        return probs, attrs, caps

    def _store(self, start: int, probs: np.ndarray, attrs: np.ndarray, caps: np.ndarray) -> None:
        """Write intents at rows ``start``... of the intent table, growing it geometrically when full."""
        end = start + len(caps)
        if end > len(self._caps):
            for name in ("_probs", "_attrs", "_value_rows", "_caps"):
                old = getattr(self, name)
                grown = np.empty((max(end, 2 * start), *old.shape[1:]), old.dtype)
                grown[:start] = old[:start]
                setattr(self, name, grown)
        self._probs[start:end], self._attrs[start:end], self._caps[start:end] = probs, attrs, caps
        self._value_rows[start:end] = np.sort(np.where(attrs >= 0, attrs + self._value_offsets, self._no_value),
                                            axis=1)  # the named first: "no value" is the last row

    # -- serving -------------------------------------------------------------------------------
    def intent(self, query: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(P(category | query), attribute codes (-1 = unconstrained), price cap) of a query, as served."""
        row = self._intent_rows([query])[0]
        return self._probs[row], self._attrs[row], float(self._caps[row])

    def _intent_rows(self, queries: list[str]) -> np.ndarray:
        """Row of each query in the intent table; the student answers the queries not seen before."""
        return table_rows(queries, self._intents, self._append_student_intents)

    def _append_student_intents(self, queries: list[str]) -> None:
        attrs, caps = query_constraints_many(queries, self.attribute_tokens)
        self._store(len(self._intents), self.student.predict(word_rows(queries, self.vocabulary)), attrs, caps)

    def score(self, batch: CandidateBatch) -> np.ndarray:
        cat = self.catalog
        if cat is None:
            raise RuntimeError("V2Ranker.score called before fit")
        rows = np.maximum(batch.candidate_rows, 0)
        queries, index = batch.distinct_queries()
        distinct = self._intent_rows(queries)
        # w_rel folded into each term's weight: one pass fewer, and bit for bit w_rel (...) when w_rel = 1
        probs = (3.0 * self.w_rel) * self._probs[distinct]  # the batch's own rows first: a small table to gather from
        relevance = np.take(probs, (index * probs.shape[1])[:, None] + np.take(cat.category, rows))
        # ±1 per named attribute value, summed as small integers (exact in any order): the first of every
        # session at once (0 from the "no value" row), the others only for the sessions naming more
        values, n_items = self._value_rows[distinct][index], len(cat)
        match = np.take(self._attribute_signs, (values[:, 0] * n_items)[:, None] + rows)
        for j in range(1, values.shape[1]):
            more = np.flatnonzero(values[:, j] < self._no_value)
            if not len(more):
                break  # the named come first: no later column names one either
            match[more] += np.take(self._attribute_signs, (values[more, j] * n_items)[:, None] + rows[more])
        relevance += (0.8 * self.w_rel) * match
        # - 2 over the price cap: only a query with a cap can be over it
        caps = self._caps[distinct][index]
        capped = np.flatnonzero(caps < np.inf)
        relevance[capped] -= np.where(np.take(cat.price, rows[capped]) > caps[capped, None], 2.0 * self.w_rel, 0.0)
        score = relevance
        if self.w_lex:
            score = self.w_lex * cat.bm25.score(queries, batch.candidate_rows, index) + score
        score += np.take(self._click_term, rows)
        score += np.take(self._purchase_term, rows)
        return score
