"""Check a dataset against the event-log contract; every problem is reported in one error.

Each problem is one line that names where it is (the table's file or folder, ``DB.duckdb:table``
for a database), the column or the first offending row / CSV line, and what was expected.
What is checked (the bad-input corpus in ``tests/test_bad_inputs.py`` and ``docs/bad_inputs.md``
has one case per check):

* files: empty files, files that are not parquet (truncated, another format), unreadable
  (corrupt) data, CSV files read as one column (wrong delimiter), CSV values that do not convert
  to the contract type (the CSV line is named);
* schema: required tables present and non-empty, every column the experiment's profile needs
  present (``abplatform.profile``; without an experiment, the whole contract) with the contract
  type, no nulls in non-nullable columns, unique keys; a sessions table derived from the
  impressions has one value of each session column per session;
* impressions: positions 1..k without gaps within a page (an item at position 7 on a page of 5
  was never shown; ``sparse``: slot-level pages may keep any slots), purchased implies clicked,
  orders >= 1 exactly when purchased, no negative orders or revenue, revenue only with orders,
  propensity in (0, 1], every session_id known;
* numbers: no NaN or infinite value in any floating-point column (revenue, propensity, price...),
  CSV and parquet alike (an unknown value is null);
* sessions: query_segment and query_complexity in their documented values, timestamps plausible
  (not before 2000, not in the future) and inside the experiment window — the world's
  ``world.json`` window when the dataset has one, otherwise after the last pre-period session
  (the pre-period must precede the experiment, or CUPED covariates would measure the treatment);
* labels: grades in 0..3, page labels only for known sessions;
* online A/B logs (``require_arm``): every session has an arm, one of the experiment's arms
  (``arms``); whenever sessions carry arms, no randomisation unit (``unit``) is in two arms.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from abplatform.contract import COMPLEXITIES, MAX_GRADE, SEGMENTS, TABLES, Table
from abplatform.dataset import Dataset, duck_type, quote_identifier
from abplatform.errors import InputError
from abplatform.profile import FULL_CONTRACT, Profile, full_profile
from abplatform.vocabulary import unit_column

_DUCK_TYPES = {
    "int64": {"BIGINT"}, "int32": {"INTEGER", "SMALLINT", "TINYINT"}, "int16": {"SMALLINT", "TINYINT"},
    "int8": {"TINYINT"}, "string": {"VARCHAR"}, "bool": {"BOOLEAN"}, "double": {"DOUBLE", "FLOAT"},
    "timestamp[us, tz=UTC]": {"TIMESTAMP WITH TIME ZONE"},
}
EARLIEST_TS = "2000-01-01"
IMPRESSION_UNIT_IDS = 2**57  # session ids below this keep session_id * 64 + position within BIGINT


def _expected(t: pa.DataType) -> set[str]:
    return _DUCK_TYPES[str(t)]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]


def _source_files(dataset: Dataset, table: str) -> tuple[str, list[Path]]:
    """The reader kind (parquet, csv or db) and the files behind a table's source."""
    if dataset.is_duckdb and not dataset.table_files.get(table):
        return "db", []
    parts = dataset.parts.get(table, [])
    return ("csv" if any(p.csv for p in parts) else "parquet"), dataset.table_files.get(table, [])


def _where(dataset: Dataset, table: str) -> str:
    """How a problem names the table: its file, its folder, or DB:table."""
    if dataset.is_duckdb and not dataset.table_files.get(table):
        return f"{dataset.path}:{table}"
    if table in dataset.derived:
        return f"{_where(dataset, dataset.derived[table])} (its {table})"
    _, files = _source_files(dataset, table)
    if len(files) == 1 and files[0].parent == dataset.path:
        return str(files[0])
    return f"{dataset.path}/{table}"


def _file_problems(dataset: Dataset, table: str) -> list[str]:
    """Empty files and files that are not parquet at all (checked from their bytes, cheaply)."""
    kind, files = _source_files(dataset, table)
    problems = []
    for f in files:
        try:
            size = f.stat().st_size
            if size == 0:
                what = "a parquet file" if kind == "parquet" else "a header row and data"
                problems.append(f"{f}: empty file (0 bytes), expected {what} for table {table}")
            elif kind == "csv":
                problems += _encoding_problems(f, table)
            elif kind == "parquet":
                with open(f, "rb") as fh:
                    head = fh.read(4)
                    fh.seek(max(0, size - 4))
                    tail = fh.read(4)
                if head != b"PAR1" or tail != b"PAR1" or size < 12:
                    why = "truncated: no parquet footer" if head == b"PAR1" else "another format"
                    problems.append(f"{f}: not a parquet file ({why}), expected the {table} table as parquet")
        except OSError as e:
            problems.append(f"{f}: cannot read ({e.strerror})")
    return problems


def _encoding_problems(f: Path, table: str) -> list[str]:
    """A CSV file must be UTF-8 text: name the first line that is not."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(f, "rb") as fh:
        head = fh.read(2)
        if head in (b"\xff\xfe", b"\xfe\xff"):
            return [f"{f}:1: UTF-16 text; expected the {table} table as UTF-8 CSV (re-save the file as UTF-8)"]
        fh.seek(0)
        for block in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                line += block[: e.start].count(b"\n")
                return [(f"{f}:{line}: not UTF-8 text (byte 0x{block[e.start]:02x}); expected the {table} table "
                         "as UTF-8 CSV (re-save the file as UTF-8)")]
            line += block.count(b"\n")
    return []


def _schema_problems(actual: dict[str, str], where: str, table: Table, absent: set[str],
                     needed: dict[str, str]) -> list[str]:
    problems = []
    if len(actual) - len(absent) == 1 and len(table.columns) > 1:
        (only,) = set(actual) - absent
        if any(c in only for c in ";|\t:#") or only not in {c.name for c in table.columns}:
            return [(f"{where}: read as a single column {only[:60]!r}; expected the columns "
                     f"{', '.join(c.name for c in table.columns)} (wrong delimiter? CSV files are comma-separated)")]
    for col in table.columns:
        if col.name in absent:
            if col.name in needed:
                why = needed[col.name]
                problems.append(f"{where}: missing column '{col.name}' ({col.type}: {col.doc})"
                                + ("" if why == FULL_CONTRACT else f"; needed by {why}"))
        elif actual[col.name] not in _expected(col.type):
            problems.append(f"{where}: column '{col.name}' has type {actual[col.name]}, expected {col.type}")
    return problems


def _cast_problems(con: duckdb.DuckDBPyConnection, dataset: Dataset, name: str, where: str) -> list[str]:
    """Source values that do not convert to the contract type (CSV, or a mapped import), per part."""
    problems = []
    table = dataset.derived.get(name, name)
    for part in dataset.parts[table]:
        checks = []
        for c, sql, label in dataset.column_sources(con, name, part):
            checks.append((c, label, f"({sql}) IS NOT NULL AND TRY_CAST(({sql}) AS {duck_type(c.type)}) IS NULL", sql))
        if not checks:
            continue
        cols = ", ".join(f"COUNT(*) FILTER (WHERE {cond}), MIN(_row) FILTER (WHERE {cond}), "
                         f"arg_min(CAST(({q}) AS VARCHAR), _row) FILTER (WHERE {cond})" for _, _, cond, q in checks)
        numbered = f"SELECT *, row_number() OVER () AS _row FROM {part.reader}"
        row = con.execute(f"SELECT {cols} FROM ({numbered})").fetchall()[0]
        at_file = str(part.files[0]) if len(part.files) == 1 else where
        for k, (c, label, _, _) in enumerate(checks):
            n, first, value = row[3 * k: 3 * k + 3]
            if n:
                at = f"{at_file}:{first + 1}:" if part.csv and len(part.files) == 1 else f"{at_file}: row {first}:"
                col = f"'{c.name}'" + (f" ({label})" if label else "")
                problems.append(f"{at} column {col}: {value!r} is not a {c.type} value"
                                + (f" ({n} such values)" if n > 1 else ""))
    return problems


def _connect(dataset: Dataset, problems: list[str], skip: set[str]) -> tuple[duckdb.DuckDBPyConnection, set[str]]:
    """A connection with a view per readable table (like :meth:`Dataset.connect`, collecting problems)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    if dataset.is_duckdb:
        con.execute(f"ATTACH '{str(dataset.path).replace(chr(39), chr(39) * 2)}' AS src (READ_ONLY)")
    views = set()
    for name in dataset.view_order():
        if name in skip or dataset.derived.get(name) in skip:
            continue
        try:
            con.execute(f"CREATE VIEW {name} AS {dataset.duckdb_view(con, name)}")
            views.add(name)
        except InputError as e:
            problems.extend(e.problems)
        except duckdb.Error as e:
            problems.append(f"{_where(dataset, name)}: cannot read ({_first_line(e)})")
    return con, views


def _world_windows(dataset: Dataset) -> dict[str, tuple[str, str]]:
    try:
        meta = json.loads((dataset.path / "world.json").read_text())
        return {"sessions": tuple(meta["experiment_window"]), "pre_sessions": tuple(meta["pre_window"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Scope:
    """What the cross-table checks depend on."""

    ok: frozenset[str]  # the tables that passed the per-table checks
    windows: dict[str, tuple[str, str]]  # the world.json windows, when the dataset has them
    require_arm: bool
    future: str  # a timestamp no session can be later than
    arms: tuple[str, ...] = ()  # the experiment's arms, when the log is an online A/B log
    unit: str | None = "unit_id"  # the sessions column of the randomisation unit (None: the session itself)
    unit_name: str = "user"  # randomisation.unit as the experiment names it


@dataclass(frozen=True)
class _Check:
    """A check that is one query: when its first value (a count) is not zero, ``message`` is the problem
    reported on ``table``'s file."""

    table: str
    needs: tuple[str, ...]  # the tables that must have passed the per-table checks
    sql: Callable[[_Scope], str]
    message: Callable[[Row, _Scope], str]
    when: Callable[[_Scope], bool] | None = None  # a further condition

    def applies(self, scope: _Scope) -> bool:
        return all(t in scope.ok for t in self.needs) and (self.when is None or self.when(scope))


def _values_check(ses: str, col: str, allowed: tuple[str, ...]) -> _Check:
    values = ", ".join(f"'{v}'" for v in allowed)
    return _Check(
        ses, (ses,),
        lambda s: f"SELECT COUNT(*), MIN({col}) FROM {ses} WHERE {col} NOT IN ({values})",
        lambda r, s: f"{r[0]} row(s) with column '{col}' = {r[1]!r}; expected one of {', '.join(allowed)}")


def _plausible_ts_check(ses: str) -> _Check:
    return _Check(
        ses, (ses,),
        lambda s: f"SELECT COUNT(*), MIN(session_id), arg_min(ts, session_id) FROM {ses} "
                  f"WHERE ts < TIMESTAMPTZ '{EARLIEST_TS} 00:00:00+00' OR ts > TIMESTAMPTZ '{s.future}+00'",
        lambda r, s: f"{r[0]} session(s) with an implausible column 'ts', e.g. session_id {r[1]} at "
                     f"{r[2]}; expected a UTC time after {EARLIEST_TS} and not in the future "
                     "(seconds vs microseconds?)")


def _window_check(ses: str) -> _Check:
    period = "pre-period" if ses.startswith("pre") else "experiment"
    return _Check(
        ses, (ses,),
        lambda s: f"SELECT COUNT(*), MIN(session_id), arg_min(ts, session_id) FROM {ses} "
                  f"WHERE ts < TIMESTAMPTZ '{s.windows[ses][0]} 00:00:00+00' "
                  f"OR ts >= TIMESTAMPTZ '{s.windows[ses][1]} 00:00:00+00'",
        lambda r, s: f"{r[0]} session(s) with column 'ts' outside the {period} window "
                     f"[{s.windows[ses][0]}, {s.windows[ses][1]}) of world.json, e.g. session_id {r[1]} at {r[2]}",
        when=lambda s: ses in s.windows)


def _known_sessions(s: _Scope) -> str:
    return "SELECT session_id FROM sessions" + (" UNION ALL SELECT session_id FROM pre_sessions"
                                                if "pre_sessions" in s.ok else "")


# The one-query checks of the sessions and labels, run after the per-table and impression checks, in
# the order their problems are reported.
_CHECKS: list[_Check] = [
    *(check for ses in ("sessions", "pre_sessions") for check in (
        _values_check(ses, "query_segment", SEGMENTS),
        _values_check(ses, "query_complexity", COMPLEXITIES),
        _plausible_ts_check(ses),
        _window_check(ses),
    )),
    _Check(
        "sessions", ("sessions", "pre_sessions"),
        lambda s: "SELECT COUNT(*), MIN(s.session_id), arg_min(s.ts, s.session_id), "
                  "(SELECT MAX(ts) FROM pre_sessions) "
                  "FROM sessions s WHERE s.ts <= (SELECT MAX(ts) FROM pre_sessions)",
        lambda r, s: f"{r[0]} session(s) with column 'ts' at or before the last pre-period session "
                     f"({r[3]}), e.g. session_id {r[1]} at {r[2]}; expected the experiment window to "
                     "start after the pre-period",
        when=lambda s: "sessions" not in s.windows),
    _Check(
        "relevance_labels", ("relevance_labels",),
        lambda s: f"SELECT COUNT(*), arg_min(grade, item_id), MIN(item_id) FROM relevance_labels "
                  f"WHERE grade < 0 OR grade > {MAX_GRADE}",
        lambda r, s: f"{r[0]} grade(s) outside 0..{MAX_GRADE} in column 'grade', e.g. {r[1]} for item_id {r[2]}"),
    _Check(
        "page_labels", ("page_labels", "sessions"),
        lambda s: f"SELECT COUNT(*), MIN(p.session_id) FROM page_labels p ANTI JOIN ({_known_sessions(s)}) s "
                  "ON s.session_id = p.session_id",
        lambda r, s: f"{r[0]} page label(s) for sessions that are not in the log, e.g. "
                     f"session_id {r[1]}; expected labels of logged sessions"),
    _Check(
        "sessions", ("sessions",),
        lambda s: "SELECT COUNT(*), MIN(session_id) FROM sessions WHERE arm IS NULL",
        lambda r, s: f"{r[0]} session(s) with no arm, e.g. session_id {r[1]} (an online A/B log needs one)",
        when=lambda s: s.require_arm),
    _Check(
        "sessions", ("sessions",),
        lambda s: "SELECT COUNT(*), arg_min(arm, session_id), MIN(session_id), COUNT(DISTINCT arm) FROM sessions "
                  f"WHERE arm IS NOT NULL AND arm NOT IN ({', '.join(_sql_literal(a) for a in s.arms)})",
        lambda r, s: f"{r[0]} session(s) with arm {r[1]!r}, which is not an arm of the experiment "
                     f"(configured arms: {', '.join(s.arms)})" + (f", and {r[3] - 1} other unknown arm(s)"
                                                                  if r[3] > 1 else "")
                     + f", e.g. session_id {r[2]}; expected the arms' names as logged",
        when=lambda s: s.require_arm and bool(s.arms)),
    # whenever sessions carry arms, not only for analyze: check-data DIR says what analyze would reject
    _Check(
        "sessions", ("sessions",),
        lambda s: f"SELECT COUNT(*), MIN(u) FROM (SELECT {_q(s.unit)} AS u FROM sessions "
                  f"WHERE arm IS NOT NULL AND {_q(s.unit)} IS NOT NULL "
                  f"GROUP BY {_q(s.unit)} HAVING MIN(arm) <> MAX(arm))",
        lambda r, s: f"{r[0]} unit(s) logged in more than one arm, e.g. {s.unit} {r[1]!r}; "
                     f"expected each {s.unit} in exactly one arm (assignment leak)",
        when=lambda s: s.unit is not None),
    # a session without its unit would join every other such session in one NULL "unit"
    _Check(
        "sessions", ("sessions",),
        lambda s: f"SELECT COUNT(*), MIN(session_id) FROM sessions WHERE {_q(s.unit)} IS NULL",
        lambda r, s: f"{r[0]} session(s) without a {s.unit}, e.g. session_id {r[1]}; every session needs the "
                     f"value of its randomisation unit ({s.unit})",
        when=lambda s: s.unit not in (None, "unit_id")),  # unit_id is non-nullable: checked with the schema
    _Check(
        "impressions", ("impressions",),
        lambda s: f"SELECT COUNT(*), MIN(session_id) FROM impressions WHERE abs(session_id) >= {IMPRESSION_UNIT_IDS}",
        lambda r, s: f"{r[0]} impression(s) with a session_id of 2^57 or more, e.g. {r[1]}; randomisation.unit: "
                     "impression numbers impressions session_id * 64 + position, which needs smaller ids",
        when=lambda s: s.unit_name == "impression"),
]


def _impression_rules(max_position: int) -> list[tuple[str, str]]:
    """Impression rows that break the contract, counted in one query: (condition, what is wrong)."""
    return [
        (f"position < 1 OR position > {max_position}", f"position outside 1..{max_position}"),
        ("purchased AND NOT clicked", "purchase without a click (purchased implies clicked)"),
        ("orders < 0 OR (revenue < 0 AND isfinite(revenue))", "negative orders or revenue (expected >= 0)"),
        ("orders > 0 AND NOT purchased", "orders without a purchase (orders must be 0 unless purchased)"),
        ("purchased AND orders < 1", "purchase with no order (orders must be >= 1 when purchased)"),
        ("revenue > 0 AND orders = 0 AND isfinite(revenue)", "revenue without an order (revenue comes from orders)"),
        ("propensity IS NOT NULL AND isfinite(propensity) AND (propensity <= 0 OR propensity > 1)",
         "propensity outside (0, 1]"),  # NaN and inf are reported on their own, once
    ]


# One row per page: the distinct positions shown, counted by a bitmask (positions outside 1..64 are reported
# by the rules above) — a duplicate when rows > distinct, a gap when the top position > distinct — so
# duplicates, gaps and unknown sessions cost one group-by on session_id.
_PAGES_SQL = """
    WITH p AS (
        SELECT session_id, COUNT(*) AS rows_,
               MAX(position) FILTER (WHERE position BETWEEN 1 AND 64) AS top,
               COUNT(*) FILTER (WHERE position BETWEEN 1 AND 64) AS k,
               bit_count(bit_or(CAST(1 AS UBIGINT) << CAST(LEAST(GREATEST(position, 1), 64) - 1 AS INTEGER))
                         FILTER (WHERE position BETWEEN 1 AND 64)) AS shown
        FROM {imp} GROUP BY session_id)
    SELECT SUM(k - shown), MIN(p.session_id) FILTER (WHERE k > shown),
           COUNT(*) FILTER (WHERE top > shown), MIN(p.session_id) FILTER (WHERE top > shown),
           arg_min(top, p.session_id) FILTER (WHERE top > shown),
           arg_min(shown, p.session_id) FILTER (WHERE top > shown),
           SUM(rows_) FILTER (WHERE NOT ({known})), MIN(p.session_id) FILTER (WHERE NOT ({known}))
    FROM p {join}"""


class _Validation:
    """One validation pass: the connection, the problems found so far and the row counts of the tables
    that passed the per-table checks."""

    def __init__(self, dataset: Dataset, con: duckdb.DuckDBPyConnection, problems: list[str], profile: Profile):
        self.dataset = dataset
        self.con = con
        self.problems = problems
        self.profile = profile
        self.counts: dict[str, int] = {}

    def needed(self, name: str) -> dict[str, str]:
        """The columns of a table the experiment needs, each with what needs it (pre-period tables: their twin's)."""
        twin = name.removeprefix("pre_")
        return {c: why for (t, c), why in self.profile.items() if t in (name, twin)}

    def row(self, sql: str) -> Row:
        return self.con.execute(sql).fetchall()[0]

    def check(self, where: str, sql: str, message: Callable[[Row], str]) -> None:
        """Run a one-query check: a problem when its first value is not zero; unreadable data is itself a problem."""
        try:
            r = self.row(sql)
            msg = message(r) if r[0] else None
        except duckdb.Error as e:
            msg = f"cannot read ({_first_line(e)})"
        if msg:
            self.problems.append(f"{where}: {msg}")

    def run(self, check: _Check, scope: _Scope) -> None:
        self.check(_where(self.dataset, check.table), check.sql(scope), lambda r: check.message(r, scope))

    def cannot_read(self, where: str, e: duckdb.Error) -> None:
        self.problems.append(f"{where}: cannot read ({_first_line(e)})")

    # --- per table ---------------------------------------------------------------------------------

    def table(self, name: str, table: Table, readable: bool, replay: bool) -> None:
        """A table's presence, schema, row count, nulls and unique key; counts it when it passes."""
        if not self.dataset.has(name):
            self.missing(name, table, replay)
            return
        if not readable:
            return
        where = _where(self.dataset, name)
        if self.schema(name, table, where):
            return
        absent = self.dataset.absent.get(name, set())
        required = [c.name for c in table.columns if not c.nullable and c.name not in absent]
        sql = ", ".join(["COUNT(*)"] + [f"COUNT(*) FILTER (WHERE {c} IS NULL)" for c in required])
        try:
            row = self.row(f"SELECT {sql} FROM {name}")
        except duckdb.Error as e:
            self.cannot_read(where, e)
            return
        if row[0] == 0 and name in ("sessions", "impressions"):
            self.problems.append(f"{where}: no rows (expected at least one {name[:-1]})")
            return
        self.counts[name] = int(row[0])
        for c, n in zip(required, row[1:], strict=True):
            if n:
                self.problems.append(f"{where}: {n} null value(s) in required column '{c}'")
        if table.key != ("session_id", "position"):  # that one is checked per page, with the gaps
            self.unique_key(name, table.key, where)     # (one pass, no 50M-key hash table)
        self.finite(name, table, where)

    def finite(self, name: str, table: Table, where: str) -> None:
        """NaN and infinite values in the floating-point columns (CSV or parquet alike), counted in one query."""
        cols = [c.name for c in table.columns if pa.types.is_floating(c.type)]
        if not cols:
            return
        key = ", ".join(table.key)
        sql = ", ".join(f"COUNT(*) FILTER (WHERE NOT isfinite({c})), MIN(({key})) FILTER (WHERE NOT isfinite({c})), "
                        f"arg_min({c}, ({key})) FILTER (WHERE NOT isfinite({c}))" for c in cols)
        try:
            r = self.row(f"SELECT {sql} FROM {name}")
        except duckdb.Error as e:
            self.cannot_read(where, e)
            return
        for k, c in enumerate(cols):
            n, first, value = r[3 * k: 3 * k + 3]
            if n:
                self.problems.append(f"{where}: {n} row(s) with a NaN or infinite value in column '{c}', e.g. "
                                     f"{_example(table.key, first)} = {value}; expected a finite number "
                                     "(leave an unknown value empty / null)")

    def missing(self, name: str, table: Table, replay: bool) -> None:
        where = f"{self.dataset.path}/{name}"
        if table.required:
            self.problems.append(f"{where}: missing table (required: {table.doc})")
        elif replay and name in ("candidates", "items"):
            self.problems.append(f"{where}: missing table (required to replay the log offline, data.mode: "
                                 f"offline — {table.doc})")

    def schema(self, name: str, table: Table, where: str) -> bool:
        """Report missing or mistyped columns and values that do not convert; whether there were any."""
        try:
            actual = {r[0]: r[1] for r in self.con.execute(f"DESCRIBE {name}").fetchall()}
            needed = self.needed(name)
            problems = _schema_problems(actual, where, table, self.dataset.absent.get(name, set()), needed)
            contract = {c.name for c in table.columns}
            problems += [f"{where}: missing column '{c}'; needed by {why}" for c, why in needed.items()
                         if c not in contract and c not in actual]
            if not problems and self.dataset.cast:
                problems = _cast_problems(self.con, self.dataset, name, where)
        except duckdb.Error as e:
            self.cannot_read(where, e)
            return True
        self.problems += problems
        return bool(problems)

    def unique_key(self, name: str, key: tuple[str, ...], where: str) -> None:
        cols = ", ".join(key)
        self.check(where, f"SELECT COUNT(*), MIN(({cols})) FROM (SELECT {cols} FROM {name} GROUP BY {cols} "
                          "HAVING COUNT(*) > 1)",
                   lambda r: f"{r[0]} duplicate key(s) ({cols}), e.g. {_example(key, r[1])}; "
                             f"expected one row per ({cols})")

    def one_value_per_session(self, name: str) -> None:
        """A table derived from the impressions: the rows of one session agree on its session columns."""
        absent = self.dataset.absent.get(name, set())
        # ts is the session's first impression's (its rows may carry their own times)
        cols = [c.name for c in TABLES[name].columns if c.name not in ("session_id", "ts") and c.name not in absent]
        if not cols:
            return
        rows = self.dataset.duckdb_view(self.con, name, grouped=False)
        # two values, or a value on some rows and none on others
        flags = ", ".join(f"(COUNT(DISTINCT {c}) > 1 OR COUNT({c}) BETWEEN 1 AND COUNT(*) - 1) AS c{k}"
                          for k, c in enumerate(cols))
        sql = (f"SELECT COUNT(*), MIN(session_id), arg_min([{', '.join(f'c{k}' for k in range(len(cols)))}], "
               f"session_id) FROM (SELECT session_id, {flags} FROM ({rows}) r GROUP BY session_id) "
               f"WHERE {' OR '.join(f'c{k}' for k in range(len(cols)))}")
        try:
            r = self.row(sql)
        except duckdb.Error as e:
            self.cannot_read(_where(self.dataset, name), e)
            return
        if r[0]:
            col = next(c for c, bad in zip(cols, r[2], strict=True) if bad)
            self.problems.append(f"{_where(self.dataset, name)}: {r[0]} session(s) whose impressions disagree on "
                                 f"column '{col}', e.g. session_id {r[1]}; expected one value per session (the "
                                 f"sessions are derived from the impressions' rows)")

    # --- impressions -------------------------------------------------------------------------------

    def impressions(self, imp: str, ses: str, max_position: int, sparse: bool) -> None:
        """The row rules, then the pages (duplicates, gaps) and the impressions' sessions."""
        where = _where(self.dataset, imp)
        rules = _impression_rules(max_position)
        sql = ", ".join(f"COUNT(*) FILTER (WHERE {c}), MIN(session_id) FILTER (WHERE {c})" for c, _ in rules)
        try:
            r = self.row(f"SELECT {sql} FROM {imp}")
            for k, (_, what) in enumerate(rules):
                if r[2 * k]:
                    self.problems.append(f"{where}: {r[2 * k]} row(s) with {what}, e.g. session_id {r[2 * k + 1]}")
        except duckdb.Error as e:
            self.cannot_read(where, e)
            return
        self.pages(imp, ses, where, sparse)

    def pages(self, imp: str, ses: str, where: str, sparse: bool) -> None:
        known_ses = ses in self.counts
        join = f"LEFT JOIN {ses} s ON s.session_id = p.session_id" if known_ses else ""
        known = "s.session_id IS NOT NULL" if known_ses else "TRUE"
        try:
            r = self.row(_PAGES_SQL.format(imp=imp, known=known, join=join))
        except duckdb.Error as e:
            self.cannot_read(where, e)
            return
        if r[0]:
            dup = self.row(f"SELECT MIN(position) FROM (SELECT position FROM {imp} WHERE session_id = {int(r[1])} "
                           "GROUP BY position HAVING COUNT(*) > 1)")[0]
            self.problems.append(f"{where}: {r[0]} duplicate key(s) (session_id, position), e.g. session_id {r[1]} "
                                 f"position {dup}; expected one row per (session_id, position)")
        if r[2] and not sparse:
            self.problems.append(f"{where}: {r[2]} page(s) with positions that were never shown, e.g. session_id "
                                 f"{r[3]} logs position {r[4]} but only {r[5]} item(s); expected positions 1..k "
                                 "without gaps (a slot-level log that keeps some slots of a page: data.positions: "
                                 "sparse)")
        if r[6]:
            self.problems.append(f"{where}: {r[6]} impression(s) whose session_id is not in {ses}, "
                                 f"e.g. session_id {r[7]}")


def validate_dataset(dataset: Dataset, require_arm: bool = False, max_position: int = 50,
                     replay: bool = False, arms: tuple[str, ...] = (), profile: Profile | None = None,
                     sparse: bool = False, unit: str = "user") -> dict[str, int]:
    """Raise :class:`InputError` listing every contract violation; return row counts per table.

    ``require_arm``: an online A/B log (every session has an arm, no unit in two arms);
    ``replay``: the source of an offline replay (the candidates and items tables are required);
    ``arms``: the experiment's arms (an online log's sessions must carry one of them);
    ``profile``: the columns the experiment needs (:mod:`abplatform.profile`; default: the whole contract);
    ``sparse``: slot-level pages (positions need not run 1..k without gaps); ``unit``: the randomisation unit.
    """
    problems: list[str] = []
    broken: set[str] = set()
    for name in dataset.parts:
        p = _file_problems(dataset, name)
        problems += p
        if p:
            broken.add(name)
    con, views = _connect(dataset, problems, broken)
    v = _Validation(dataset, con, problems, full_profile() if profile is None else profile)
    try:
        for name, table in TABLES.items():
            v.table(name, table, name in views, replay)
        for name in dataset.derived:
            if name in v.counts:
                v.one_value_per_session(name)
        ok = frozenset(v.counts)
        for imp, ses in (("impressions", "sessions"), ("pre_impressions", "pre_sessions")):
            if imp in ok:
                v.impressions(imp, ses, max_position, sparse)
        future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        scope = _Scope(ok, _world_windows(dataset), require_arm, future, tuple(arms), unit_column(unit), unit)
        for check in _CHECKS:
            if check.applies(scope):
                v.run(check, scope)
    finally:
        con.close()
    if problems:
        raise InputError("\n".join(problems), problems)
    return v.counts


def _q(identifier: str | None) -> str:
    return quote_identifier(identifier or "")


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _example(key: tuple[str, ...], value: Any) -> str:
    if len(key) == 1:
        return f"{key[0]} {value!r}"
    values = value if isinstance(value, (tuple, list)) else list(value.values()) if isinstance(value, dict) else [value]
    return " ".join(f"{k} {v!r}" for k, v in zip(key, values, strict=False))  # a scalar names the first column
