"""V1: lexical match plus a historical popularity / CTR prior — the production baseline."""

from __future__ import annotations

import numpy as np

from abplatform.dataset import Dataset
from abplatform.rankers.base import CandidateBatch, Catalog


def item_log_stats(dataset: Dataset, catalog: Catalog, table: str = "pre_impressions") -> dict[str, np.ndarray]:
    """Per catalog row: impressions, clicks, purchases and position-weighted exposure from a logged table."""
    n = len(catalog)
    out = {k: np.zeros(n) for k in ("impressions", "clicks", "purchases", "exposure")}
    if not dataset.has(table):
        return out
    con = dataset.connect()
    try:
        # exposure weights each impression by the log's own CTR-by-position curve (relative to
        # position 1): clicks / exposure is then a position-debiased CTR.
        res = con.execute(f"""
            WITH pos AS (
                SELECT position, AVG(CAST(clicked AS DOUBLE)) AS ctr FROM {table} GROUP BY position),
            w AS (SELECT position, ctr / NULLIF((SELECT MAX(ctr) FROM pos WHERE position = 1), 0) AS weight FROM pos)
            SELECT i.item_id, COUNT(*) AS impressions,
                   SUM(CAST(i.clicked AS BIGINT)) AS clicks,
                   SUM(CAST(i.purchased AS BIGINT)) AS purchases,
                   SUM(COALESCE(w.weight, 1.0)) AS exposure
            FROM {table} i LEFT JOIN w USING (position)
            GROUP BY i.item_id""").fetchnumpy()
    finally:
        con.close()
    rows = catalog.rows(np.asarray(res["item_id"]))
    keep = rows >= 0
    for k in out:
        out[k][rows[keep]] = np.asarray(res[k], dtype=float)[keep]
    return out


def logged_queries(dataset: Dataset) -> list[str]:
    """The distinct queries of the pre-period logs."""
    if not dataset.has("pre_sessions"):
        return []
    con = dataset.connect()
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT query FROM pre_sessions").fetchall()]
    finally:
        con.close()


class V1Ranker:
    """score = BM25(query, title) + w_ctr log(smoothed CTR / mean CTR) + w_pop log(1 + impressions).

    The CTR prior is shrunk towards the mean with ``prior_strength`` pseudo-impressions; the
    popularity term keeps feeding already-exposed items (the information bubble). Unfitted, or
    with no pre-period logs, V1 is plain BM25.
    """

    name = "v1"

    def __init__(self, w_ctr: float = 1.0, w_pop: float = 0.25, prior_strength: float = 50.0):
        self.w_ctr, self.w_pop, self.prior_strength = w_ctr, w_pop, prior_strength
        self.catalog: Catalog | None = None
        self.prior: np.ndarray | None = None

    def fit(self, dataset: Dataset, catalog: Catalog) -> V1Ranker:
        self.catalog = catalog
        self.bm25 = catalog.bm25  # built now, so replay workers forked later share it instead of each building it
        # the serving lookup table: term ids of every query seen in the logs, tokenised offline (as V2's intents)
        self.bm25.prepare(logged_queries(dataset))
        stats = item_log_stats(dataset, catalog)
        total = stats["impressions"].sum()
        if total > 0:
            mean_ctr = stats["clicks"].sum() / total
            m = self.prior_strength
            ctr = (stats["clicks"] + m * mean_ctr) / (stats["impressions"] + m)
            self.prior = self.w_ctr * np.log(ctr / mean_ctr) + self.w_pop * np.log1p(stats["impressions"])
        else:
            self.prior = np.zeros(len(catalog))
        return self

    def score(self, batch: CandidateBatch) -> np.ndarray:
        if self.catalog is None or self.prior is None:  # both set by fit
            raise RuntimeError("V1Ranker.score called before fit")
        queries, index = batch.distinct_queries()
        score = self.bm25.score(queries, batch.candidate_rows, index)
        score += np.take(self.prior, np.maximum(batch.candidate_rows, 0))
        return score
