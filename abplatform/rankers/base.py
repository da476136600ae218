"""The ranker interface: ``fit`` on logged data, then ``score`` batches of sessions x candidates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from abplatform.contract import ATTRIBUTE_NAMES
from abplatform.dataset import Dataset
from abplatform.rankers.text import BM25Index


class Catalog:
    """What rankers may know about items: ids, titles, categories, attributes and prices."""

    def __init__(self, items: pa.Table):
        items = items.sort_by("item_id")
        self.item_ids = items.column("item_id").to_numpy()
        self.titles = items.column("title").to_pylist()
        self.category_names, self.category = np.unique(items.column("category").to_numpy(zero_copy_only=False),
                                                       return_inverse=True)
        self.attribute_values: dict[str, np.ndarray] = {}
        self.attribute_codes: dict[str, np.ndarray] = {}
        for name in ATTRIBUTE_NAMES:
            values, codes = np.unique(items.column(name).to_numpy(zero_copy_only=False), return_inverse=True)
            self.attribute_values[name], self.attribute_codes[name] = values, codes
        self.price = items.column("price").to_numpy()
        self._dense_ids = bool(len(self.item_ids)) and np.array_equal(self.item_ids, np.arange(len(self.item_ids)))
        self._bm25: BM25Index | None = None

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> Catalog:
        con = dataset.connect()
        try:
            return cls(con.sql("SELECT * FROM items").to_arrow_table())
        finally:
            con.close()

    @property
    def bm25(self) -> BM25Index:
        if self._bm25 is None:
            self._bm25 = BM25Index(self.titles)
        return self._bm25

    def rows(self, item_ids: np.ndarray) -> np.ndarray:
        """Catalog row of each item id; -1 for padding (-1) and for ids not in the catalog."""
        item_ids = np.asarray(item_ids)
        if self._dense_ids:  # ids 0..n-1 are their own rows
            if item_ids.size and 0 <= item_ids.min() and item_ids.max() < len(self.item_ids):
                return item_ids.copy()  # every id in the catalog (the usual case): no masked select
            return np.where((item_ids >= 0) & (item_ids < len(self.item_ids)), item_ids, -1)
        pos = np.searchsorted(self.item_ids, item_ids)
        pos = np.minimum(pos, len(self.item_ids) - 1)
        return np.where((item_ids >= 0) & (self.item_ids[pos] == item_ids), pos, -1)

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class CandidateBatch:
    """Sessions to rank: one row per session, candidates padded with -1 to a common width."""

    session_ids: np.ndarray  # (n,)
    queries: list[str]  # n query strings
    candidate_rows: np.ndarray  # (n, c) catalog rows, -1 = padding
    distinct: tuple[list[str], np.ndarray] | None = None  # distinct_queries(), when the caller has it already

    def distinct_queries(self) -> tuple[list[str], np.ndarray]:
        """(distinct queries, index of each session's query among them): per-query work done once."""
        if self.distinct is not None:
            return self.distinct
        encoded = pa.array(self.queries, pa.string()).dictionary_encode()
        return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


@runtime_checkable
class Ranker(Protocol):
    """A ranker scores candidates; higher is better. ``fit`` learns from logged data only."""

    name: str

    def fit(self, dataset: Dataset, catalog: Catalog) -> Ranker: ...

    def score(self, batch: CandidateBatch) -> np.ndarray:
        """(n, c) scores; padding cells are ignored by the caller."""
        ...


def rank(scores: np.ndarray, candidate_rows: np.ndarray, k: int) -> np.ndarray:
    """Top-k catalog rows per session by descending score (ties by candidate order); -1 fills short pages.

    Padding and NaN or -inf scores never fill a slot."""
    key = np.where((candidate_rows >= 0) & (scores > -np.inf), -scores, np.inf)  # ascending; NaN > -inf is False
    order = np.argsort(key, axis=1)  # unstable but fast: rows with ties near the top are redone stably below
    first = (np.arange(len(key)) * key.shape[1])[:, None]  # each row's first cell in key.ravel()
    cells = order[:, :k + 1] + first  # the top k + 1 as flat indices: cheaper than take_along_axis
    top = np.take(key, cells)
    tied = ((top[:, 1:] == top[:, :-1]) & (top[:, 1:] < np.inf)).any(axis=1)
    if tied.any():
        cells[tied] = np.argsort(key[tied], axis=1, kind="stable")[:, :k + 1] + first[tied]
        top[tied] = np.take(key, cells[tied])
    return np.where(top[:, :k] < np.inf, np.take(candidate_rows, cells[:, :k]), -1)


def candidate_matrix(session_ids: np.ndarray, cand_sessions: np.ndarray, cand_items: np.ndarray) -> np.ndarray:
    """(n, max candidates) item ids per session in ``session_ids`` order, sorted by item id, -1 padded
    (a view of ``cand_items`` when that is laid out so already)."""
    n = len(session_ids)
    if n and len(cand_sessions) % n == 0 and bool(np.all(session_ids[1:] > session_ids[:-1])):
        # what the world writes: each session's candidates together, in session order, sorted by item,
        # the same number each; then the matrix is a reshape, checked without sorting anything
        cs, ci = cand_sessions.reshape(n, -1), cand_items.reshape(n, -1)
        if bool(np.all(cs == session_ids[:, None])) and bool(np.all(ci[:, 1:] > ci[:, :-1])):
            return ci
    # grouped by session and sorted by item: skip the sort when so
    grouped = len(cand_sessions) < 2 or bool(
        np.all((np.diff(cand_sessions) > 0) | ((np.diff(cand_sessions) == 0) & (np.diff(cand_items) > 0))))
    if grouped:
        cs, ci = cand_sessions, cand_items
    else:
        order = np.lexsort((cand_items, cand_sessions))
        cs, ci = cand_sessions[order], cand_items[order]
    start = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]]) if len(cs) else np.zeros(0, np.int64)
    uniq = cs[start]
    counts = np.diff(np.r_[start, len(cs)])
    if len(uniq) == len(session_ids) and np.array_equal(uniq, session_ids) and np.all(counts == counts[0]):
        return ci.reshape(len(session_ids), int(counts[0])).copy()  # same sessions, same width: a reshape
    width = int(counts.max()) if len(counts) else 0
    out = np.full((len(session_ids), width), -1, dtype=np.int64)
    if not len(uniq):
        return out
    where = np.minimum(np.searchsorted(uniq, session_ids), len(uniq) - 1)
    found = uniq[where] == session_ids
    row_of_uniq = np.full(len(uniq), -1)
    row_of_uniq[where[found]] = np.flatnonzero(found)
    rows = np.repeat(row_of_uniq, counts)
    col = np.arange(len(cs)) - np.repeat(start, counts)
    keep = rows >= 0
    out[rows[keep], col[keep]] = ci[keep]
    return out
