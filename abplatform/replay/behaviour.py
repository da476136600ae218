"""What the replay asks of simulated users and raters, and the encoded strings it hands them.

A :class:`Behaviour` answers a page of shown catalog rows per session with :class:`Responses`
(clicks, purchases, orders, revenue), every draw keyed by (seed, session id). A :class:`Rater`
judges a sample of the new pages, as manual evaluation would. The replay knows only these
interfaces: the fitted users (:mod:`abplatform.offline.behaviour`) and the synthetic world's oracle
users and raters (:mod:`abplatform.world.oracle`) are handed in by the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Responses:
    """A simulated user's answer to each shown page: arrays of shape (sessions, positions)."""

    clicked: np.ndarray
    purchased: np.ndarray
    orders: np.ndarray
    revenue: np.ndarray


@dataclass(frozen=True, eq=False)
class Encoded(Sequence[str]):
    """Strings as their distinct values and each one's index among them (a dictionary encoding), so
    per-value work (a query's intent, a unit's user row) is done once per distinct value."""

    values: list[str]  # in order of first occurrence
    codes: np.ndarray
    _per_value: dict = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def of(cls, strings: Sequence[str] | pa.Array | pa.ChunkedArray) -> Encoded:
        """The encoding of ``strings`` (themselves, when already encoded)."""
        if isinstance(strings, Encoded):
            return strings
        if isinstance(strings, (pa.Array, pa.ChunkedArray)):
            encoded = pa.chunked_array(strings).combine_chunks().dictionary_encode()
            return cls(encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False))
        first: dict[str, int] = {}  # Python strings: a dict costs less than converting them to Arrow
        codes = np.fromiter((first.setdefault(s, len(first)) for s in strings), np.int64, len(strings))
        return cls(list(first), codes)

    def per_value(self, fn: Callable[[list[str]], Any]) -> Any:
        """``fn(values)``, computed once however often it is asked for (replay's oracle and raters both
        need each query's intent)."""
        if fn not in self._per_value:
            self._per_value[fn] = fn(self.values)
        return self._per_value[fn]

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.values[c] for c in self.codes[i]]
        return self.values[self.codes[i]]


class Behaviour(Protocol):
    def respond(self, seed: int, session_ids: np.ndarray, queries: Sequence[str], unit_ids: Sequence[str],
                shown_rows: np.ndarray) -> Responses: ...


class Rater(Protocol):
    def judge(self, session_ids: np.ndarray, queries: Encoded, shown_rows: np.ndarray) -> tuple[pa.Table, pa.Table]:
        """Relevance labels (query, item *row*, grade) and page labels (session_id, good) for the
        sample of pages the raters judge."""
        ...
