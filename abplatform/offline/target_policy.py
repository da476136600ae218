"""Target policies for off-policy evaluation: pi_e(a | x, k), the probability of item a at position k.

* :class:`DeterministicPages` — one page per session (an ``(n_sessions, k)`` item-id matrix, e.g.
  :func:`abplatform.offline.ope.ranker_pages`): pi_e(a | x, k) = 1[a = the page's item at k].
* :class:`StochasticPolicy` — a table of probabilities per (position, item), or per (context,
  position, item) with the context a key of the session (a ``session_id``, a query, a user
  segment...). Validated on construction: probabilities in [0, 1], each (context, position)'s summing
  to 1 within 1e-6, no (context, position, item) twice. :func:`load_target_policy` reads one from a
  CSV or parquet file (columns ``context`` (optional), ``position``, ``item_id``, ``probability``)
  through duckdb into numpy arrays.

Both answer the estimators' three questions for logged rows (:class:`TargetPolicy`): the
probability of given items at the rows' positions, the probability mass at each row's position
(1 where the target shows an item there), and the whole distribution (its support) for the direct
method's sum over items.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import numpy as np

from abplatform.errors import InputError

if TYPE_CHECKING:
    from abplatform.offline.logged_rows import LoggedRows

NO_ITEM = -1
SUM_TOLERANCE = 1e-6
TABLE_COLUMNS = ("context", "position", "item_id", "probability")


class TargetPolicy(Protocol):
    """pi_e(a | x_i, k_i) at the logged rows i (context x_i, position k_i)."""

    description: str
    max_support: int  # most items with positive probability at one (context, position)

    def probabilities(self, rows: LoggedRows, item_ids: np.ndarray) -> np.ndarray:
        """(n,) pi_e(item_ids[i] | x_i, k_i) for every row of ``rows``."""
        ...

    def mass(self, rows: LoggedRows) -> np.ndarray:
        """(n,) sum_a pi_e(a | x_i, k_i): 1 where the target shows an item at the row's position, else 0."""
        ...

    def distribution(self, rows: LoggedRows, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The support of pi_e(. | x_i, k_i) for the rows ``index``: (row index, item id, probability > 0)."""
        ...


# --------------------------------------------------------------------------------------------
# deterministic pages
# --------------------------------------------------------------------------------------------
class DeterministicPages:
    """One page per session: ``pages[j, c]`` is the item at position c + 1 of session ``session_ids[j]``
    (-1: no item; a position beyond the last column shows none)."""

    max_support = 1

    def __init__(self, session_ids: np.ndarray, pages: np.ndarray, description: str = "deterministic pages"):
        self.session_ids = np.asarray(session_ids, np.int64)
        self.pages = np.asarray(pages, np.int64)
        self.description = description
        if self.pages.ndim != 2 or self.pages.shape[0] != len(self.session_ids):
            raise ValueError(f"pages must be ({len(self.session_ids)}, k), got {self.pages.shape}")
        if np.any(np.diff(self.session_ids) <= 0):
            raise ValueError("session_ids must be strictly ascending (one page per session)")

    def page_rows(self, session_ids: np.ndarray) -> np.ndarray:
        """The row of ``pages`` of each session; an InputError when a session has no page."""
        at = np.minimum(np.searchsorted(self.session_ids, session_ids), max(len(self.session_ids) - 1, 0))
        missing = self.session_ids[at] != session_ids if len(self.session_ids) else np.ones(len(session_ids), bool)
        if missing.any():
            raise InputError(f"{self.description}: no target page for logged session {session_ids[missing][0]} "
                             f"({int(missing.sum())} logged rows without one)")
        return at

    def items_at(self, session_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The target's item at each (session, position); -1 where it shows none."""
        col = np.asarray(positions, np.int64) - 1
        inside = (col >= 0) & (col < self.pages.shape[1])
        return np.where(inside, self.pages[self.page_rows(session_ids), np.clip(col, 0, self.pages.shape[1] - 1)],
                        NO_ITEM)

    def probabilities(self, rows: LoggedRows, item_ids: np.ndarray) -> np.ndarray:
        target = self.items_at(rows.session_ids, rows.positions)
        return ((item_ids == target) & (target != NO_ITEM)).astype(float)

    def mass(self, rows: LoggedRows) -> np.ndarray:
        return (self.items_at(rows.session_ids, rows.positions) != NO_ITEM).astype(float)

    def distribution(self, rows: LoggedRows, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        target = self.items_at(rows.session_ids[index], rows.positions[index])
        shown = target != NO_ITEM
        return index[shown], target[shown], np.ones(int(shown.sum()))


# --------------------------------------------------------------------------------------------
# a stochastic policy as a table
# --------------------------------------------------------------------------------------------
RowLabel = Callable[[int], str]
"""Where the table's row i (0-based) is, for messages: "policy.csv:7" or "policy.parquet: row 6"."""


def _row_label(source: str, first_line: int | None) -> RowLabel:
    if first_line is None:
        return lambda i: f"{source}: row {i + 1}"
    return lambda i: f"{source}:{i + first_line}"


def _comparable(values: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both key arrays as one kind: numbers stay numbers, otherwise both become strings."""
    if values.dtype.kind in "iu" and other.dtype.kind in "iu":
        return values.astype(np.int64), other.astype(np.int64)
    return values.astype(str), other.astype(str)


class StochasticPolicy:
    """pi_e(a | context, position) from a table, one row per (context, position, item) with probability > 0
    or = 0; without ``contexts`` the same distribution per position applies to every session."""

    def __init__(self, positions: np.ndarray, item_ids: np.ndarray, probabilities: np.ndarray,
                 contexts: np.ndarray | None = None, *, source: str = "target policy", first_line: int | None = None,
                 description: str | None = None):
        """``source`` and ``first_line`` (the line of row 0 in a text file) name the rows in errors."""
        label = _row_label(source, first_line)
        positions, item_ids, probabilities = _validated_columns(positions, item_ids, probabilities, contexts, label,
                                                                 source)
        self.source = source
        self.description = description or f"stochastic policy {source}"
        self.by_context = contexts is not None
        ctx = np.asarray(contexts) if contexts is not None else np.zeros(len(positions), np.int64)
        self.context_values, ctx_codes = np.unique(ctx, return_inverse=True)
        order = np.lexsort((item_ids, positions, ctx_codes))
        ctx_codes, positions, item_ids = ctx_codes[order], positions[order], item_ids[order]
        self.probability = probabilities[order]
        self._position_span = int(positions.max(initial=0)) + 1
        group_key = ctx_codes.astype(np.int64) * self._position_span + positions
        self.group_keys, group_start = np.unique(group_key, return_index=True)
        group_start = np.r_[group_start, len(group_key)]  # rows of group g: group_start[g]:group_start[g + 1]
        group_of_row = np.repeat(np.arange(len(self.group_keys)), np.diff(group_start))
        _check_rows(ctx_codes, positions, item_ids, self.probability, group_of_row, group_start,
                    self.context_values, order, label, self.by_context)
        # (group, item) -> table row: dense item codes make one sorted int64 key per row
        self.item_values, item_codes = np.unique(item_ids, return_inverse=True)
        self.pair_keys = group_of_row * len(self.item_values) + item_codes
        # the support (probability > 0) per group, for the direct method's sum over items
        positive = self.probability > 0
        sizes = np.bincount(group_of_row[positive], minlength=len(self.group_keys))
        self.support_start = np.r_[0, np.cumsum(sizes)]
        self.support_items, self.support_probability = item_ids[positive], self.probability[positive]
        self.max_support = int(sizes.max(initial=0))

    def __len__(self) -> int:
        return len(self.probability)

    def groups(self, rows: LoggedRows) -> np.ndarray:
        """The (context, position) group of each logged row; an InputError when the table has none."""
        positions = np.asarray(rows.positions, np.int64)
        if self.by_context:
            if rows.contexts is None:
                raise InputError(f"{self.source}: the target's probabilities are per context, but the log was "
                                 "loaded without a context column")
            values, ctx = _comparable(self.context_values, np.asarray(rows.contexts))
            code = np.minimum(np.searchsorted(values, ctx), len(values) - 1)
            known = values[code] == ctx
        else:
            code, known = np.zeros(len(positions), np.int64), np.ones(len(positions), bool)
        key = code * self._position_span + np.where(positions < self._position_span, positions, 0)
        g = np.minimum(np.searchsorted(self.group_keys, key), len(self.group_keys) - 1)
        found = known & (positions < self._position_span) & (self.group_keys[g] == key)
        if not found.all():
            i = int(np.flatnonzero(~found)[0])
            where = f"context {rows.contexts[i]!r} at " if self.by_context and rows.contexts is not None else ""
            raise InputError(f"{self.source}: no target probabilities for {where}position {positions[i]} "
                             f"(logged session {rows.session_ids[i]}; {int((~found).sum())} logged rows without)")
        return g

    def probabilities(self, rows: LoggedRows, item_ids: np.ndarray) -> np.ndarray:
        g = self.groups(rows)
        items = np.asarray(item_ids, np.int64)
        code = np.minimum(np.searchsorted(self.item_values, items), len(self.item_values) - 1)
        key = g * len(self.item_values) + code
        at = np.minimum(np.searchsorted(self.pair_keys, key), len(self.pair_keys) - 1)
        hit = (self.item_values[code] == items) & (self.pair_keys[at] == key)
        return np.where(hit, self.probability[at], 0.0)

    def mass(self, rows: LoggedRows) -> np.ndarray:
        self.groups(rows)  # every row's (context, position) is in the table, whose groups sum to 1
        return np.ones(len(rows))

    def distribution(self, rows: LoggedRows, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = self.groups(rows.subset(index))
        sizes = self.support_start[g + 1] - self.support_start[g]
        offsets = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        at = np.repeat(self.support_start[g], sizes) + offsets
        return np.repeat(index, sizes), self.support_items[at], self.support_probability[at]


def _validated_columns(positions: np.ndarray, item_ids: np.ndarray, probabilities: np.ndarray,
                       contexts: np.ndarray | None, label: RowLabel,
                       source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The numeric columns as int64 / float64, or an InputError naming the first bad row."""
    n = len(positions)
    if len(item_ids) != n or len(probabilities) != n or (contexts is not None and len(contexts) != n):
        raise ValueError("positions, item_ids, probabilities (and contexts) must have the same length")
    if n == 0:
        raise InputError(f"{source}: the target policy table has no rows")
    pos = _numbers(positions, "position", label)
    items = _numbers(item_ids, "item_id", label)
    prob = _numbers(probabilities, "probability", label)
    for name, values in (("position", pos), ("item_id", items)):
        bad = np.flatnonzero(values != np.round(values))
        if len(bad):
            raise InputError(f"{label(int(bad[0]))}: {name} {values[bad[0]]:g} is not an integer")
    bad = np.flatnonzero(pos < 1)
    if len(bad):
        raise InputError(f"{label(int(bad[0]))}: position {pos[bad[0]]:g} is not a position (1, 2, ...)")
    bad = np.flatnonzero(~((prob >= 0) & (prob <= 1)))
    if len(bad):
        raise InputError(f"{label(int(bad[0]))}: probability {prob[bad[0]]:g} is not in [0, 1]")
    if contexts is not None:
        null = np.flatnonzero(np.ma.getmaskarray(contexts))
        if len(null):
            raise InputError(f"{label(int(null[0]))}: context is empty")
    return pos.astype(np.int64), items.astype(np.int64), prob


def _numbers(values: np.ndarray, name: str, label: RowLabel) -> np.ndarray:
    """``values`` as float64; an InputError naming the first empty or non-numeric row."""
    mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else np.zeros(len(values), bool)
    raw = np.ma.getdata(values) if np.ma.isMaskedArray(values) else np.asarray(values)
    if mask.any():
        raise InputError(f"{label(int(np.flatnonzero(mask)[0]))}: {name} is empty")
    if raw.dtype.kind in "iufb":
        out = raw.astype(np.float64)
    else:
        out = np.empty(len(raw))
        for i, v in enumerate(raw):  # only for a column read as text: find the row that is not a number
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{label(i)}: {name} {v!r} is not a number") from None
    bad = np.flatnonzero(~np.isfinite(out))
    if len(bad):
        raise InputError(f"{label(int(bad[0]))}: {name} {out[bad[0]]:g} is not a finite number")
    return out


def _check_rows(ctx_codes: np.ndarray, positions: np.ndarray, item_ids: np.ndarray, probability: np.ndarray,
                group_of_row: np.ndarray, group_start: np.ndarray, context_values: np.ndarray, order: np.ndarray,
                label: RowLabel, by_context: bool) -> None:
    """No (context, position, item) twice; each (context, position)'s probabilities sum to 1 (1e-6)."""
    where = (lambda j: f"context {context_values[ctx_codes[j]]!r}, ") if by_context else (lambda j: "")
    twice = np.flatnonzero((np.diff(group_of_row) == 0) & (np.diff(item_ids) == 0)) + 1
    if len(twice):
        j = int(twice[0])
        first, again = sorted((int(order[j - 1]), int(order[j])))
        raise InputError(f"{label(again)}: {where(j)}position {positions[j]}, item {item_ids[j]} again "
                         f"(first at {label(first)})")
    sums = np.add.reduceat(probability, group_start[:-1])
    bad = np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE)
    if len(bad):
        g = int(bad[0])
        j = int(group_start[g])
        first = int(order[j:group_start[g + 1]].min())
        raise InputError(f"{label(first)}: the probabilities of {where(j)}position {positions[j]} sum to "
                         f"{sums[g]:.9g}, not 1 (tolerance {SUM_TOLERANCE:g}; {group_start[g + 1] - j} rows)")


def load_target_policy(path: str | Path, description: str | None = None) -> StochasticPolicy:
    """A :class:`StochasticPolicy` from a CSV or parquet file (columns ``context`` (optional), ``position``,
    ``item_id``, ``probability``), read by duckdb straight into numpy (no DataFrame); errors name the
    file and the row (a CSV's line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such target policy file")
    csv = path.suffix.lower() in (".csv", ".tsv", ".txt")
    source = f"read_csv('{_sql_escape(path)}', header = true)" if csv else f"read_parquet('{_sql_escape(path)}')"
    con = duckdb.connect()
    try:
        try:
            columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        except duckdb.Error as e:
            raise InputError(f"{path}: cannot read the target policy ({str(e).strip().splitlines()[0]})") from None
        unknown = [c for c in columns if c not in TABLE_COLUMNS]
        if unknown:
            raise InputError(f"{path}: unknown column {unknown[0]!r} (expected context (optional), position, "
                             "item_id, probability)")
        missing = [c for c in TABLE_COLUMNS[1:] if c not in columns]
        if missing:
            raise InputError(f"{path}: missing column {missing[0]!r} (expected context (optional), position, "
                             "item_id, probability)")
        data: dict[str, Any] = con.execute(f"SELECT * FROM {source}").fetchnumpy()  # duckdb keeps the file's row order
    finally:
        con.close()
    return StochasticPolicy(data["position"], data["item_id"], data["probability"], data.get("context"),
                            source=str(path), first_line=2 if csv else None, description=description)


def _sql_escape(path: Path) -> str:
    return str(path).replace("'", "''")
