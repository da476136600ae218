"""Click logs as numpy arrays (one row per result page, one column per position) and their loader.

Impression rows never become a DataFrame: duckdb streams the ``impressions`` table of the
event-log contract (:mod:`abplatform.contract`) sorted by (session, position) and numpy scatters
it into one row per session, each impression in the column of its logged position.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from abplatform.errors import InputError

FeatureFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``features(query_ids (n,), item_ids (n, k)) -> (n, k, f)`` float query-item features."""

QueryVocab = dict[str, int]
"""Query string -> dense query id."""

NO_ITEM = -1
"""``item_ids`` value of a position the page did not log (beyond a shorter page's end, or a gap)."""


@dataclass(frozen=True)
class ClickLog:
    """Logged result pages: row ``i`` is one session's page, column ``r`` is position ``r + 1``.

    A position a page did not log has ``item_ids == NO_ITEM`` (and no click there): the end of a
    shorter page, or a gap above a logged item — a *sparse* log (:attr:`sparse`), e.g. a
    slot-level log that keeps only some slots of each page. Items are never moved up into a gap:
    a model of examination by position must see each impression at the position it was shown.
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
        if np.any(self.clicks & ~self.shown):
            raise ValueError("a click on a rank with no item")

    @property
    def shown(self) -> np.ndarray:
        """(n, k) bool: an item is shown at this rank."""
        return self.item_ids != NO_ITEM

    @property
    def gapped(self) -> np.ndarray:
        """(n,) bool: the page lacks a position above one it logs, so what happened there is unknown."""
        shown = self.shown
        return (shown[:, 1:] & ~shown[:, :-1]).any(axis=1)

    @property
    def sparse(self) -> bool:
        """Some page has a gap above a logged item (:attr:`gapped`). Models that follow the user down
        the page from position 1 (cascade, DBN, UBM) cannot fit such a log; PBM can
        (``ClickModel.fits_sparse_pages``)."""
        return bool(self.gapped.any())

    def describe_page(self, row: int) -> str:
        """``session 12 logs positions [2, 5]``: page ``row`` by its session id (else its row) and logged positions."""
        page = f"session {self.session_ids[row]}" if self.session_ids is not None else f"page {row}"
        return f"{page} logs positions {(np.flatnonzero(self.shown[row]) + 1).tolist()}"

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
    ``read_parquet('...')``). Pages are ordered by session id; the impression at position p is in
    column p - 1, positions a page did not log hold ``NO_ITEM`` (check :attr:`ClickLog.sparse`
    before fitting a model that needs full pages). The positions of the loaded sessions must be
    1..``k`` and unique per session, else :class:`~abplatform.errors.InputError`. Queries get
    dense ids: with ``query_vocab`` (e.g. the training log's), known queries keep their ids and new
    ones are appended in sorted order; the returned vocabulary includes them. The logged
    propensities (NaN where null) come along in ``ClickLog.propensities``.

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
        duplicate = session_ids[np.flatnonzero(np.diff(session_ids) == 0)[0]]
        raise InputError(f"{sessions_rel}.session_id: session_id {duplicate} appears more than once; "
                         "expected one row per session")
    uniq, inverse = np.unique(sess.column("query").to_numpy(zero_copy_only=False).astype(str), return_inverse=True)
    new_queries = [q for q in uniq.tolist() if q not in vocab]
    start = max(vocab.values(), default=-1) + 1
    vocab.update({q: start + j for j, q in enumerate(new_queries)})
    query_ids = np.fromiter((vocab[q] for q in uniq.tolist()), np.int64, len(uniq))[inverse]
    imp = con.sql(
        f"""SELECT session_id, position, item_id, clicked, purchased, orders, propensity
            FROM {impressions_rel} ORDER BY session_id, position"""
    ).to_arrow_table()

    def column(name: str, fill) -> np.ndarray:
        values = imp.column(name)
        return (values if values.null_count == 0 else values.fill_null(fill)).to_numpy(zero_copy_only=False)

    # impressions of sessions outside sessions_rel (e.g. another arm's) are not loaded
    imp_sessions = column("session_id", -1).astype(np.int64)
    page = np.minimum(np.searchsorted(session_ids, imp_sessions), max(len(session_ids) - 1, 0))
    known = session_ids[page] == imp_sessions if len(session_ids) else np.zeros(len(imp_sessions), bool)
    page = page[known]
    rank = _checked_positions(imp_sessions[known], imp.column("position").filter(pa.array(known)),
                              impressions_rel, k) - 1
    n = len(session_ids)

    def pivot(name: str, dtype, empty) -> np.ndarray:
        out = np.full((n, k), empty, dtype=dtype)
        out[page, rank] = np.asarray(column(name, empty), dtype=dtype)[known]
        return out

    log = ClickLog(
        query_ids=query_ids,
        item_ids=pivot("item_id", np.int64, NO_ITEM),
        clicks=pivot("clicked", bool, False),
        purchases=pivot("purchased", bool, False),
        orders=pivot("orders", np.int64, 0),
        session_ids=session_ids,
        propensities=pivot("propensity", float, np.nan),
    )
    return log, vocab


def _checked_positions(sessions: np.ndarray, positions: pa.ChunkedArray, table: str, k: int) -> np.ndarray:
    """The positions of impressions sorted by (session, position), each in 1..k and unique per session.

    Otherwise :class:`InputError`, one line per kind of problem naming its first row: an item
    moved to another column would be fitted as if examined there.
    """
    where = f"{table}.position"
    if positions.null_count:
        first = int(np.flatnonzero(positions.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(f"{where}: {positions.null_count} null value(s), e.g. session_id {sessions[first]}; "
                         f"expected a position 1..{k} on every row")
    pos = positions.to_numpy().astype(np.int64)
    problems = []
    for bad, expected in (
        (pos < 1, f"expected 1-based positions 1..{k}"),
        (pos > k, f"expected positions 1..{k}, the click model's page size k (a larger k keeps longer pages)"),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            problems.append(f"{where}: {int(bad.sum())} row(s) like session_id {sessions[i]} position {pos[i]}; "
                            f"{expected}")
    repeated = np.flatnonzero((np.diff(sessions) == 0) & (np.diff(pos) == 0))  # adjacent: sorted by both
    if len(repeated):
        i = int(repeated[0])
        problems.append(f"{table}: {len(repeated)} duplicate (session_id, position), e.g. session_id {sessions[i]} "
                        f"position {pos[i]}; expected one row per (session_id, position)")
    if problems:
        raise InputError("\n".join(problems), problems)
    return pos
