"""Click logs as numpy arrays (one row per result page, one column per rank) and their loader.

Impression rows never become a DataFrame: duckdb pivots the ``impressions`` table of the
event-log contract (:mod:`abplatform.contract`) to one row per session in SQL and hands back
numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

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
    propensities: np.ndarray | None = None
    """(n, k) logging propensity of each shown item at its rank (NaN where unknown), if logged."""

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
                        take(self.purchases), take(self.orders), take(self.session_ids), take(self.propensities))


def click_log_from_duckdb(
    con, sessions_rel: str, impressions_rel: str, k: int = 10, query_vocab: Mapping[str, int] | None = None
) -> tuple[ClickLog, QueryVocab]:
    """Load a :class:`ClickLog` from the ``sessions`` and ``impressions`` relations of a duckdb connection.

    ``sessions_rel`` / ``impressions_rel`` are anything that may follow ``FROM`` (a table, a view,
    ``read_parquet('...')``). Pages are ordered by session id; each page keeps its first ``k``
    items by position, gaps in the positions closed up. Queries get dense ids: with
    ``query_vocab`` (e.g. the training log's), known queries keep their ids and new ones are
    appended in sorted order; the returned vocabulary includes them. The logged propensities
    (NaN where null) come along in ``ClickLog.propensities``.

    duckdb streams the impression columns sorted by (session, position) as arrow; numpy scatters
    them into the (pages, k) arrays (a SQL pivot with 4k CASE columns is several times slower).
    """
    vocab = dict(query_vocab or {})
    sess = con.sql(
        f"""SELECT s.session_id, s.query FROM {sessions_rel} AS s
            WHERE s.session_id IN (SELECT session_id FROM {impressions_rel})
            ORDER BY s.session_id"""
    ).to_arrow_table()
    session_ids = sess.column("session_id").to_numpy().astype(np.int64)
    if len(session_ids) and np.any(np.diff(session_ids) == 0):
        raise ValueError("sessions: duplicate session ids")
    uniq, inverse = np.unique(sess.column("query").to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
    new_queries = [q for q in uniq.tolist() if q not in vocab]
    start = max(vocab.values(), default=-1) + 1
    vocab.update({q: start + j for j, q in enumerate(new_queries)})
    query_ids = np.fromiter((vocab[q] for q in uniq.tolist()), np.int64, len(uniq))[inverse]
    imp = con.sql(
        f"""SELECT session_id, position, item_id, clicked, purchased, orders, propensity
            FROM {impressions_rel} ORDER BY session_id, position"""
    ).to_arrow_table()

    def column(name: str, dtype, fill) -> np.ndarray:
        return imp.column(name).to_numpy(zero_copy_only=False) if imp.column(name).null_count == 0 else \
            imp.column(name).fill_null(fill).to_numpy(zero_copy_only=False)

    imp_sessions = column("session_id", np.int64, -1).astype(np.int64)
    page = np.searchsorted(session_ids, imp_sessions)
    page = np.minimum(page, max(len(session_ids) - 1, 0))
    known = (len(session_ids) > 0) & (session_ids[page] == imp_sessions) if len(session_ids) else \
        np.zeros(len(imp_sessions), bool)
    page = page[known]
    first = np.ones(len(page), bool)
    first[1:] = page[1:] != page[:-1]
    starts = np.flatnonzero(first)
    slot = np.arange(len(page)) - np.repeat(starts, np.diff(np.append(starts, len(page))))
    keep = slot < k
    page, slot = page[keep], slot[keep]
    n = len(session_ids)

    def pivot(name: str, dtype, fill, empty) -> np.ndarray:
        out = np.full((n, k), empty, dtype=dtype)
        out[page, slot] = np.asarray(column(name, dtype, fill), dtype=dtype)[known][keep]
        return out

    log = ClickLog(
        query_ids=query_ids,
        item_ids=pivot("item_id", np.int64, NO_ITEM, NO_ITEM),
        clicks=pivot("clicked", bool, False, False),
        purchases=pivot("purchased", bool, False, False),
        orders=pivot("orders", np.int64, 0, 0),
        session_ids=session_ids,
        propensities=pivot("propensity", float, np.nan, np.nan),
    )
    return log, vocab
