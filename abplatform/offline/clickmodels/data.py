"""Click logs as numpy arrays (one row per result page, one column per rank) and their loader.

Impression rows never become a DataFrame: duckdb pivots the ``impressions`` table of the
event-log contract (:mod:`abplatform.contract`) to one row per session in SQL and hands back
numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

FeatureFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``features(query_ids (n,), item_ids (n, k)) -> (n, k, f)`` float query-item features."""

QueryVocab = dict[str, int]
"""Query string -> dense query id."""

NO_ITEM = -1
"""``item_ids`` value of a rank beyond the end of a shorter page."""


@dataclass(frozen=True)
class ClickLog:
    """Logged result pages: row ``i`` is one session's page, column ``r`` is rank ``r + 1``.

    Shorter pages are padded at the end with ``item_ids == NO_ITEM`` (and no clicks there).
    """

    query_ids: np.ndarray
    item_ids: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray | None = None
    orders: np.ndarray | None = None
    session_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, k = self.item_ids.shape
        if self.query_ids.shape != (n,) or self.clicks.shape != (n, k):
            raise ValueError(f"query_ids must be ({n},) and clicks ({n}, {k}); got "
                             f"{self.query_ids.shape} and {self.clicks.shape}")
        shown = self.shown
        if k > 1 and np.any(shown[:, 1:] & ~shown[:, :-1]):
            raise ValueError("pages must be padded at the end only (NO_ITEM after the last item)")
        if np.any(self.clicks & ~shown):
            raise ValueError("a click on a rank with no item")

    @property
    def shown(self) -> np.ndarray:
        """(n, k) bool: an item is shown at this rank."""
        return self.item_ids != NO_ITEM

    @property
    def rankings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(query_ids, item_ids)``, the input of ``click_probabilities`` and ``sample``."""
        return self.query_ids, self.item_ids

    def __len__(self) -> int:
        return len(self.query_ids)

    def subset(self, rows: np.ndarray) -> ClickLog:
        """The pages ``rows`` (a boolean mask or an index array)."""

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return ClickLog(self.query_ids[rows], self.item_ids[rows], self.clicks[rows],
                        take(self.purchases), take(self.orders), take(self.session_ids))


def click_log_from_duckdb(
    con, sessions_rel: str, impressions_rel: str, k: int = 10, query_vocab: Mapping[str, int] | None = None
) -> tuple[ClickLog, QueryVocab]:
    """Load a :class:`ClickLog` from the ``sessions`` and ``impressions`` relations of a duckdb connection.

    ``sessions_rel`` / ``impressions_rel`` are anything that may follow ``FROM`` (a table, a view,
    ``read_parquet('...')``). Pages are ordered by session id; each page keeps its first ``k``
    items by position, gaps in the positions closed up. Queries get dense ids: with
    ``query_vocab`` (e.g. the training log's), known queries keep their ids and new ones are
    appended; the returned vocabulary includes them.
    """
    vocab = dict(query_vocab or {})
    known = pa.table({"query": pa.array(list(vocab), pa.string()),
                      "query_id": pa.array(list(vocab.values()), pa.int64())})
    vocab_name = f"_clickmodels_vocab_{id(known)}"
    con.register(vocab_name, known)
    try:
        new_queries = con.execute(
            f"""SELECT DISTINCT s.query FROM {sessions_rel} AS s
                WHERE s.session_id IN (SELECT session_id FROM {impressions_rel})
                  AND s.query NOT IN (SELECT query FROM {vocab_name})
                ORDER BY s.query"""
        ).fetchnumpy()["query"]
        start = max(vocab.values(), default=-1) + 1
        vocab.update({str(q): start + j for j, q in enumerate(new_queries)})
        all_known = pa.table({"query": pa.array(list(vocab), pa.string()),
                              "query_id": pa.array(list(vocab.values()), pa.int64())})
        con.unregister(vocab_name)
        con.register(vocab_name, all_known)
        pivot = ",\n".join(
            f"coalesce(max(CASE WHEN slot = {r} THEN item_id END), {NO_ITEM}) AS item_{r}, "
            f"coalesce(max(CASE WHEN slot = {r} THEN CAST(clicked AS INTEGER) END), 0) AS click_{r}, "
            f"coalesce(max(CASE WHEN slot = {r} THEN CAST(purchased AS INTEGER) END), 0) AS purchase_{r}, "
            f"coalesce(max(CASE WHEN slot = {r} THEN orders END), 0) AS orders_{r}"
            for r in range(1, k + 1)
        )
        cols = con.execute(
            f"""WITH slotted AS (
                    SELECT session_id, item_id, clicked, purchased, orders,
                           ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY position) AS slot
                    FROM {impressions_rel}),
                pages AS (
                    SELECT session_id, {pivot}
                    FROM slotted WHERE slot <= {k} GROUP BY session_id)
                SELECT p.*, v.query_id
                FROM pages AS p
                JOIN {sessions_rel} AS s ON s.session_id = p.session_id
                JOIN {vocab_name} AS v ON v.query = s.query
                ORDER BY p.session_id"""
        ).fetchnumpy()
    finally:
        con.unregister(vocab_name)

    def stack(prefix: str, dtype) -> np.ndarray:
        return np.stack([np.asarray(cols[f"{prefix}_{r}"], dtype=dtype) for r in range(1, k + 1)], axis=1)

    log = ClickLog(
        query_ids=np.asarray(cols["query_id"], dtype=np.int64),
        item_ids=stack("item", np.int64),
        clicks=stack("click", bool),
        purchases=stack("purchase", bool),
        orders=stack("orders", np.int64),
        session_ids=np.asarray(cols["session_id"], dtype=np.int64),
    )
    return log, vocab
