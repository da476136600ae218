"""A ranker whose scores were computed elsewhere: a parquet file of (session_id, item_id, score | rank).

How a team plugs in a model it scores on its own infrastructure: export, for the sessions to
replay, one row per (session, candidate item) with either ``score`` (higher is better) or ``rank``
(1 is best). Candidates the file does not score rank last, in candidate order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.rankers.base import CandidateBatch, Catalog


class PrecomputedRanker:
    name = "precomputed"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def fit(self, dataset: Dataset, catalog: Catalog) -> PrecomputedRanker:
        if not self.path.exists():
            raise InputError(f"{self.path}: no such rankings file (expected parquet with session_id, item_id, "
                             "and score or rank)")
        try:
            table = pq.read_table(self.path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for unreadable files
            raise InputError(f"{self.path}: not a readable parquet file ({str(e).splitlines()[0]})") from None
        cols = set(table.column_names)
        missing = {"session_id", "item_id"} - cols
        if missing or not ({"score", "rank"} & cols):
            raise InputError(f"{self.path}: rankings need columns session_id, item_id and score or rank "
                             f"(found {', '.join(sorted(cols))})")
        sessions = table["session_id"].to_numpy()
        items = table["item_id"].to_numpy()
        score = table["score"].to_numpy().astype(float) if "score" in cols else -table["rank"].to_numpy().astype(float)
        self.session_values = np.unique(sessions)
        self.item_values = np.unique(items)
        keys = self._keys(sessions, items)
        order = np.argsort(keys, kind="stable")
        self.keys, self.scores = keys[order], score[order]
        self.catalog = catalog
        return self

    def _keys(self, sessions: np.ndarray, items: np.ndarray) -> np.ndarray:
        """A dense int64 key per (session, item); -1 where either is not in the file."""
        si = np.searchsorted(self.session_values, sessions).clip(max=len(self.session_values) - 1)
        ii = np.searchsorted(self.item_values, items).clip(max=len(self.item_values) - 1)
        known = (self.session_values[si] == sessions) & (self.item_values[ii] == items)
        return np.where(known, si.astype(np.int64) * len(self.item_values) + ii, -1)

    def score(self, batch: CandidateBatch) -> np.ndarray:
        n, c = batch.candidate_rows.shape
        items = np.where(batch.candidate_rows >= 0, self.catalog.item_ids[np.maximum(batch.candidate_rows, 0)], -1)
        keys = self._keys(np.repeat(batch.session_ids, c), items.ravel())
        pos = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        found = (keys >= 0) & (self.keys[pos] == keys)
        out = np.where(found, self.scores[pos], -np.inf)
        # unscored candidates go last but keep a finite score, so they still fill the page
        floor = out[found].min() - 1.0 if found.any() else 0.0
        return np.where(found, out, floor).reshape(n, c)
