"""Simulated users fitted on the logs: click, purchase and order models behind the replay's
:class:`~abplatform.replay.behaviour.Behaviour` interface.

``respond(seed, session_ids, queries, unit_ids, shown_rows)`` answers pages of catalog rows with
:class:`~abplatform.replay.behaviour.Responses`, every draw keyed by (seed, session id). A real
team has only logs, so this is the default; the synthetic world's oracle users
(:mod:`abplatform.world.oracle`) are there to check how good the fitted prediction is.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logit

from abplatform import rng
from abplatform.contract import ATTRIBUTE_NAMES
from abplatform.dataset import Dataset
from abplatform.offline.clickmodels import ClickLog, ClickModel, PurchaseModel, click_log_from_duckdb, make_click_model
from abplatform.offline.clickmodels.calibration import fit_calibration, held_out_pages
from abplatform.rankers import Catalog
from abplatform.rankers.text import attribute_vocabulary, query_constraints, tokenize
from abplatform.replay.behaviour import Encoded, Responses
from abplatform.rng import Stream

FEATURE_NAMES = ("bm25", "item_ctr_logit", "category_affinity", "p_category", "p_parent", "attr_match",
                 "attr_mismatch", "over_cap", "log_price_ratio", "p_category_x_mismatch", "p_category_x_over_cap")


class FittedBehaviour:
    """Clicks from a click model, purchases and orders from a purchase model, fitted on logged pages.

    Unseen and rarely seen (query, item) pairs back off to a GLM on query-item features computed
    from the logs and the catalog only (never the world's truth):

    * ``bm25`` of the query against the item title;
    * ``item_ctr_logit``: the item's position-debiased logged CTR (clicks over expected examinations
      under the click model's harvested examination curve), smoothed;
    * ``category_affinity``: mean over the query's words of the log-lift of the item's category
      among that word's logged clicks; ``p_category``: the query's intent distribution over
      categories (category prior times those lifts, normalised, then blended with the query's own
      logged clicks per category); ``p_parent``: its mass on the item's parent category;
    * ``attr_match`` / ``attr_mismatch``: how many attribute values named in the query (brand,
      colour, material, style words of the catalog) the item has / contradicts;
    * ``over_cap``: the item's price is above an "under N" in the query;
      ``log_price_ratio``: log of the item's price over its category's median price;
    * interactions of ``p_category`` with ``attr_mismatch`` and ``over_cap``.

    With ``calibrate`` (the default), the back-offs of attraction, purchase and order rates are
    recalibrated on held-out sessions (:mod:`abplatform.offline.clickmodels.calibration`): the
    whole behaviour is first fitted on 80% of the logged sessions, one factor per back-off is
    chosen by maximum likelihood on the other 20%, then the behaviour is refitted on all sessions
    with those factors (``calibration_``). This doubles the fitting time. Without it the feature
    back-off over-predicts the held-out sessions' unseen pairs, and with them the V2 - V1 CTR lift
    on the synthetic world: V2 shows many pairs V1's logs rarely show.
    """

    def __init__(self, click_model: str = "pbm", page_size: int = 10, prior_strength: float | None = None,
                 calibrate: bool = True):
        self.click_model_name, self.page_size = click_model, page_size
        self.prior_strength = prior_strength
        self.calibrate = calibrate

    def fit(self, dataset: Dataset, catalog: Catalog, table: str = "impressions", sessions: str = "sessions",
            log: ClickLog | None = None, vocab: dict[str, int] | None = None) -> FittedBehaviour:
        """Fit on the dataset's logged ``table`` (or on ``log`` / ``vocab`` already loaded from it)."""
        self.catalog = catalog
        if log is None:
            con = dataset.connect()
            try:
                log, vocab = click_log_from_duckdb(con, sessions, table, k=self.page_size)
            finally:
                con.close()
        assert vocab is not None, "fit: a click log is given with its query vocabulary"
        self.calibration_ = self._held_out_calibration(dataset, catalog, log, vocab) if self.calibrate else {}
        self.vocab = dict(vocab)
        self.queries = [""] * len(self.vocab)
        for q, i in self.vocab.items():
            self.queries[i] = q
        self._fit_catalog_features(dataset)
        shown = log.item_ids >= 0
        rows = catalog.rows(np.where(shown, log.item_ids, -1))
        ok = rows >= 0
        from abplatform.offline.clickmodels.pbm import initial_examination

        gamma, _ = initial_examination(log)
        exam = np.broadcast_to(gamma[: log.item_ids.shape[1]], rows.shape)
        m = 20.0
        exposure = np.bincount(rows[ok], weights=exam[ok], minlength=len(catalog))
        clicks_per_item = np.bincount(rows[ok], weights=log.clicks[ok], minlength=len(catalog))
        mean_ctr = clicks_per_item.sum() / max(1e-9, exposure.sum())
        self.item_logit = logit(np.clip((clicks_per_item + m * mean_ctr) / (exposure + m), 1e-6, 1 - 1e-6))
        self._fit_category_affinity(log, rows, ok)
        self._query_cache: dict[int, tuple] = {}
        params = {} if self.prior_strength is None else {"prior_strength": self.prior_strength}
        kappa = self.calibration_
        self.click_model: ClickModel = make_click_model(
            self.click_model_name, **params, backoff_calibration=kappa.get("attraction", 1.0)).fit(log, self.features)
        self.purchase_model = PurchaseModel(**params, purchase_calibration=kappa.get("purchase", 1.0),
                                            orders_calibration=kappa.get("orders", 1.0)).fit(log, self.features)
        return self

    def _held_out_calibration(self, dataset: Dataset, catalog: Catalog, log: ClickLog,
                              vocab: dict[str, int]) -> dict[str, float]:
        """Back-off factors (attraction, purchase, orders) maximising the likelihood of held-out sessions."""
        held_out = held_out_pages(log)
        inner = FittedBehaviour(self.click_model_name, self.page_size, self.prior_strength, calibrate=False)
        inner.fit(dataset, catalog, log=log.subset(~held_out), vocab=vocab)
        test = log.subset(held_out)
        clicks, purchases = inner.click_model, inner.purchase_model
        return {
            "attraction": fit_calibration(clicks.attraction_, lambda: clicks.log_likelihood(test)),
            "purchase": fit_calibration(purchases.purchase_, lambda: purchases.purchase_log_likelihood(test)),
            "orders": fit_calibration(purchases.extra_orders_, lambda: purchases.orders_log_likelihood(test)),
        }

    def _fit_catalog_features(self, dataset: Dataset) -> None:
        cat = self.catalog
        n_cat = len(cat.category_names)
        median = np.zeros(n_cat)
        for c in range(n_cat):
            median[c] = np.median(cat.price[cat.category == c])
        self.log_price_ratio = np.log(np.maximum(cat.price, 1e-6) / np.maximum(median[cat.category], 1e-6))
        parent_of_item = None
        try:
            con = dataset.connect()
            try:
                t = con.sql("SELECT item_id, parent_category FROM items ORDER BY item_id").fetchnumpy()
            finally:
                con.close()
            rows = cat.rows(np.asarray(t["item_id"]))
            names = np.asarray(t["parent_category"]).astype(str)
            parent_of_item = np.zeros(len(cat), dtype=np.int64)
            _, codes = np.unique(names, return_inverse=True)
            parent_of_item[rows[rows >= 0]] = codes[rows >= 0]
        except Exception:  # noqa: BLE001 - a catalog without parent categories: every category is its own parent
            parent_of_item = cat.category.copy()
        parent_of_cat = np.zeros(n_cat, dtype=np.int64)
        parent_of_cat[cat.category] = parent_of_item
        self.same_parent = (parent_of_cat[:, None] == parent_of_cat[None, :]).astype(float)
        self.attribute_tokens = attribute_vocabulary(cat)
        self.category_prior = np.bincount(cat.category, minlength=n_cat) / len(cat)

    def _fit_category_affinity(self, log: ClickLog, rows: np.ndarray, ok: np.ndarray) -> None:
        """Per word: log of (smoothed share of its clicks in each category / the category's share)."""
        n_cat = len(self.catalog.category_names)
        page_query = np.broadcast_to(log.query_ids[:, None], log.item_ids.shape)
        hit = ok & log.clicks
        per_query = np.zeros((len(self.queries), n_cat))
        np.add.at(per_query, (page_query[hit], self.catalog.category[rows[hit]]), 1.0)
        self.query_clicks = per_query
        prior = (per_query.sum(axis=0) + 1.0) / (per_query.sum() + n_cat)
        words: dict[str, np.ndarray] = {}
        for q, counts in zip(self.queries, per_query, strict=True):
            for w in set(tokenize(q)):
                words[w] = words.get(w, 0) + counts
        self.word_affinity = {w: np.log((c + 5 * prior) / (c.sum() + 5) / prior) for w, c in words.items()}

    def _query_features(self, q: int, query: str) -> tuple:
        """(category affinity (n_cat,), P(category | query) (n_cat,), attribute codes (4,), price cap)."""
        cached = self._query_cache.get(q)
        if cached is not None:
            return cached
        n_cat = len(self.catalog.category_names)
        tokens = tokenize(query)
        # distinct words in first-occurrence order: the float sums below depend on the order, and a
        # set's order changes with the interpreter's hash seed
        vals = [self.word_affinity[w] for w in dict.fromkeys(tokens) if w in self.word_affinity]
        affinity = np.mean(vals, axis=0) if vals else np.zeros(n_cat)
        logits = np.log(self.category_prior + 1e-12) + (np.sum(vals, axis=0) if vals else 0.0)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        if 0 <= q < len(self.query_clicks):
            seen = self.query_clicks[q]
            p = (seen + 5.0 * p) / (seen.sum() + 5.0)
        attrs, cap = query_constraints(query, self.attribute_tokens)
        out = (affinity, p, p @ self.same_parent, attrs, cap)
        self._query_cache[q] = out
        return out

    def features(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """(n, k, f) features (:data:`FEATURE_NAMES`) of the pairs (query_ids[i], item_ids[i, r]).

        The last few results are memoised by content: the click and purchase models ask for the
        features of the same training pairs several times while fitting.
        """
        query_ids = np.asarray(query_ids)
        item_ids = np.asarray(item_ids)
        key = (query_ids.shape, item_ids.shape, hash(query_ids.tobytes()), hash(item_ids.tobytes()))
        cache = self.__dict__.setdefault("_feature_cache", {})
        if key not in cache:
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = self._features(query_ids, item_ids)
        return cache[key]

    def _features(self, query_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        uq, inv = np.unique(query_ids, return_inverse=True)
        per_q = [self._query_features(int(q), self.queries[q] if 0 <= q < len(self.queries) else "") for q in uq]
        affinity = np.stack([f[0] for f in per_q])[inv]
        p_cat = np.stack([f[1] for f in per_q])[inv]
        p_parent = np.stack([f[2] for f in per_q])[inv]
        attrs = np.stack([f[3] for f in per_q])[inv]
        caps = np.array([f[4] for f in per_q])[inv]
        queries = [self.queries[q] if 0 <= q < len(self.queries) else "" for q in uq]
        rows = self.catalog.rows(item_ids)
        safe = np.maximum(rows, 0)
        valid = rows >= 0
        bm25 = self.catalog.bm25.score([queries[i] for i in inv], rows)
        category = self.catalog.category[safe]
        match = np.zeros(rows.shape)
        mismatch = np.zeros(rows.shape)
        for a, name in enumerate(ATTRIBUTE_NAMES):
            wanted = attrs[:, a][:, None]
            same = self.catalog.attribute_codes[name][safe] == wanted
            match += (wanted >= 0) & same
            mismatch += (wanted >= 0) & ~same
        pc = np.take_along_axis(p_cat, category, axis=1)
        pp = np.take_along_axis(p_parent, category, axis=1)
        over = (self.catalog.price[safe] > caps[:, None]).astype(float)
        x = np.stack([bm25, self.item_logit[safe], np.take_along_axis(affinity, category, axis=1), pc, pp,
                      match, mismatch, over, self.log_price_ratio[safe], pc * mismatch, pc * over], axis=-1)
        return np.where(valid[..., None], x, 0.0)

    def query_ids(self, queries: list[str]) -> np.ndarray:
        """Dense ids; queries never logged get new ids past the vocabulary (all their pairs back off)."""
        out = np.empty(len(queries), np.int64)
        for i, q in enumerate(queries):
            qid = self.vocab.get(q)
            if qid is None:
                qid = self.vocab[q] = len(self.queries)
                self.queries.append(q)
            out[i] = qid
        return out

    def respond(self, seed, session_ids, queries, unit_ids, shown_rows):
        _, k = shown_rows.shape
        queries = Encoded.of(queries)
        qids = self.query_ids(queries.values)[queries.codes]
        items = np.where(shown_rows >= 0, self.catalog.item_ids[np.maximum(shown_rows, 0)], -1)
        clicked = self.click_model.sample(qids, items, rng.uniforms(seed, session_ids, Stream.CLICK, k))
        purchased = self.purchase_model.sample_purchases(qids, items, clicked,
                                                         rng.uniforms(seed, session_ids, Stream.PURCHASE, k))
        orders = self.purchase_model.sample_orders(qids, items, purchased,
                                                   rng.uniforms(seed, session_ids, Stream.ORDERS, k)).astype(np.int32)
        revenue = orders * np.where(shown_rows >= 0, self.catalog.price[np.maximum(shown_rows, 0)], 0.0)
        return Responses(clicked & (shown_rows >= 0), purchased, orders, revenue)
