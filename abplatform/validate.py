"""Check a dataset against the event-log contract; every problem is reported in one error.

Each problem is one line that names where it is (the table's file or folder, ``DB.duckdb:table``
for a database), the column or the first offending row / CSV line, and what was expected.
What is checked (the bad-input corpus in ``tests/test_bad_inputs.py`` and ``docs/bad_inputs.md``
has one case per check):

* files: empty files, files that are not parquet (truncated, another format), unreadable
  (corrupt) data, CSV files read as one column (wrong delimiter), CSV values that do not convert
  to the contract type (the CSV line is named);
* schema: required tables present and non-empty, every column present with the contract type,
  no nulls in non-nullable columns, unique keys;
* impressions: positions 1..k without gaps within a page (an item at position 7 on a page of 5
  was never shown), purchased implies clicked, orders >= 1 exactly when purchased, no negative
  orders or revenue, revenue only with orders, propensity in (0, 1], every session_id known;
* sessions: query_segment and query_complexity in their documented values, timestamps plausible
  (not before 2000, not in the future) and inside the experiment window — the world's
  ``world.json`` window when the dataset has one, otherwise after the last pre-period session
  (the pre-period must precede the experiment, or CUPED covariates would measure the treatment);
* labels: grades in 0..3, page labels only for known sessions;
* online A/B logs (``require_arm``): every session has an arm and no unit is in two arms.
"""

from __future__ import annotations

import glob
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from abplatform.contract import COMPLEXITIES, MAX_GRADE, SEGMENTS, TABLES, Table
from abplatform.dataset import Dataset, duck_type
from abplatform.errors import InputError

_DUCK_TYPES = {
    "int64": {"BIGINT"}, "int32": {"INTEGER", "SMALLINT", "TINYINT"}, "int16": {"SMALLINT", "TINYINT"},
    "int8": {"TINYINT"}, "string": {"VARCHAR"}, "bool": {"BOOLEAN"}, "double": {"DOUBLE", "FLOAT"},
    "timestamp[us, tz=UTC]": {"TIMESTAMP WITH TIME ZONE"},
}
_SOURCE = re.compile(r"^read_(parquet|csv)\('((?:[^']|'')*)'")
EARLIEST_TS = "2000-01-01"


def _expected(t: pa.DataType) -> set[str]:
    return _DUCK_TYPES[str(t)]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]


def _source_files(dataset: Dataset, table: str) -> tuple[str, list[Path]]:
    """The reader kind (parquet, csv or db) and the files behind a table's source."""
    m = _SOURCE.match(dataset.sources[table])
    if not m:
        return "db", []
    return m.group(1), sorted(Path(p) for p in glob.glob(m.group(2).replace("''", "'")))


def _where(dataset: Dataset, table: str) -> str:
    """How a problem names the table: its file, its folder, or DB:table."""
    if dataset.is_duckdb:
        return f"{dataset.path}:{table}"
    kind, files = _source_files(dataset, table)
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
                return [f"{f}:{line}: not UTF-8 text (byte 0x{block[e.start]:02x}); expected the {table} table "
                        "as UTF-8 CSV (re-save the file as UTF-8)"]
            line += block.count(b"\n")
    return []


def _schema_problems(actual: dict[str, str], where: str, table: Table) -> list[str]:
    problems = []
    if len(actual) == 1 and len(table.columns) > 1:
        (only,) = actual
        if any(c in only for c in ";|\t:#") or only not in {c.name for c in table.columns}:
            return [f"{where}: read as a single column {only[:60]!r}; expected the columns "
                    f"{', '.join(c.name for c in table.columns)} (wrong delimiter? CSV files are comma-separated)"]
    for col in table.columns:
        if col.name not in actual:
            problems.append(f"{where}: missing column '{col.name}' ({col.type}: {col.doc})")
        elif actual[col.name] not in _expected(col.type):
            problems.append(f"{where}: column '{col.name}' has type {actual[col.name]}, expected {col.type}")
    return problems


def _cast_problems(con: duckdb.DuckDBPyConnection, dataset: Dataset, name: str, where: str, csv: bool) -> list[str]:
    """Source values that do not convert to the contract type (CSV, or a mapped import)."""
    source = dataset.sources[name]
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    mapping = dataset.mapping.get(name, {})
    checks = []
    for c in TABLES[name].columns:
        src = mapping.get(c.name, c.name)
        if src in present:
            q = '"' + src.replace('"', '""') + '"'
            checks.append((c, src, f"{q} IS NOT NULL AND TRY_CAST({q} AS {duck_type(c.type)}) IS NULL", q))
    if not checks:
        return []
    cols = ", ".join(f"COUNT(*) FILTER (WHERE {cond}), MIN(_row) FILTER (WHERE {cond}), "
                     f"arg_min(CAST({q} AS VARCHAR), _row) FILTER (WHERE {cond})" for _, _, cond, q in checks)
    row = con.execute(f"SELECT {cols} FROM (SELECT *, row_number() OVER () AS _row FROM {source})").fetchall()[0]
    problems = []
    for k, (c, src, _, _) in enumerate(checks):
        n, first, value = row[3 * k: 3 * k + 3]
        if n:
            at = f"{where}:{first + 1}:" if csv else f"{where}: row {first}:"
            col = f"'{c.name}'" + (f" (source column '{src}')" if src != c.name else "")
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
    for name, source in dataset.sources.items():
        if name in skip:
            continue
        try:
            con.execute(f"CREATE VIEW {name} AS {dataset._select(con, name, source)}")
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


def validate_dataset(dataset: Dataset, require_arm: bool = False, max_position: int = 50,
                     replay: bool = False) -> dict[str, int]:
    """Raise :class:`InputError` listing every contract violation; return row counts per table.

    ``require_arm``: an online A/B log (every session has an arm, no unit in two arms);
    ``replay``: the source of an offline replay (the candidates and items tables are required).
    """
    problems: list[str] = []
    broken: set[str] = set()
    for name in TABLES:
        if dataset.has(name):
            p = _file_problems(dataset, name)
            problems += p
            if p:
                broken.add(name)
    con, views = _connect(dataset, problems, broken)
    counts: dict[str, int] = {}

    def count(sql: str) -> tuple:
        return con.execute(sql).fetchall()[0]

    def check(where: str, sql: str, what) -> None:
        """Run a check; ``what(row)`` gives the problem or None; unreadable data is itself a problem."""
        try:
            msg = what(count(sql))
        except duckdb.Error as e:
            msg = f"cannot read ({_first_line(e)})"
        if msg:
            problems.append(f"{where}: {msg}")

    try:
        for name, table in TABLES.items():
            where = _where(dataset, name) if dataset.has(name) else f"{dataset.path}/{name}"
            if not dataset.has(name):
                if table.required:
                    problems.append(f"{where}: missing table (required: {table.doc})")
                elif replay and name in ("candidates", "items"):
                    problems.append(f"{where}: missing table (required to replay the log offline, data.mode: "
                                    f"offline — {table.doc})")
                continue
            if name not in views:
                continue
            try:
                actual = {r[0]: r[1] for r in con.execute(f"DESCRIBE {name}").fetchall()}
                kind, _ = _source_files(dataset, name)
                schema_problems = _schema_problems(actual, where, table)
                if not schema_problems and dataset.cast:
                    schema_problems = _cast_problems(con, dataset, name, where, kind == "csv")
            except duckdb.Error as e:
                problems.append(f"{where}: cannot read ({_first_line(e)})")
                continue
            problems += schema_problems
            if schema_problems:
                continue
            required = [c.name for c in table.columns if not c.nullable]
            sql = ", ".join(["COUNT(*)"] + [f"COUNT(*) FILTER (WHERE {c} IS NULL)" for c in required])
            try:
                row = count(f"SELECT {sql} FROM {name}")
            except duckdb.Error as e:
                problems.append(f"{where}: cannot read ({_first_line(e)})")
                continue
            if row[0] == 0 and name in ("sessions", "impressions"):
                problems.append(f"{where}: no rows (expected at least one {name[:-1]})")
                continue
            counts[name] = int(row[0])
            for c, n in zip(required, row[1:]):
                if n:
                    problems.append(f"{where}: {n} null value(s) in required column '{c}'")
            key = ", ".join(table.key)
            if table.key == ("session_id", "position"):
                continue  # checked per page below, with the gaps (one pass, no 50M-key hash table)
            check(where, f"SELECT COUNT(*), MIN(({key})) FROM (SELECT {key} FROM {name} GROUP BY {key} "
                         "HAVING COUNT(*) > 1)",
                  lambda r: r[0] and f"{r[0]} duplicate key(s) ({key}), e.g. {_example(table.key, r[1])}; "
                                     f"expected one row per ({key})")
        ok = set(counts)
        for imp, ses in (("impressions", "sessions"), ("pre_impressions", "pre_sessions")):
            if imp not in ok:
                continue
            where = _where(dataset, imp)
            rules = [
                (f"position < 1 OR position > {max_position}", f"position outside 1..{max_position}"),
                ("purchased AND NOT clicked", "purchase without a click (purchased implies clicked)"),
                ("orders < 0 OR revenue < 0", "negative orders or revenue (expected >= 0)"),
                ("orders > 0 AND NOT purchased", "orders without a purchase (orders must be 0 unless purchased)"),
                ("purchased AND orders < 1", "purchase with no order (orders must be >= 1 when purchased)"),
                ("revenue > 0 AND orders = 0", "revenue without an order (revenue comes from orders)"),
                ("propensity IS NOT NULL AND (propensity <= 0 OR propensity > 1)", "propensity outside (0, 1]"),
            ]
            sql = ", ".join(f"COUNT(*) FILTER (WHERE {c}), MIN(session_id) FILTER (WHERE {c})" for c, _ in rules)
            try:
                r = count(f"SELECT {sql} FROM {imp}")
                for k, (_, what) in enumerate(rules):
                    if r[2 * k]:
                        problems.append(f"{where}: {r[2 * k]} row(s) with {what}, e.g. session_id {r[2 * k + 1]}")
            except duckdb.Error as e:
                problems.append(f"{where}: cannot read ({_first_line(e)})")
                continue
            # one row per page: the distinct positions shown, counted by a bitmask (positions outside 1..64 are
            # reported above) — a duplicate when rows > distinct, a gap when the top position > distinct —
            # so duplicates, gaps and unknown sessions cost one group-by on session_id
            join = f"LEFT JOIN {ses} s ON s.session_id = p.session_id" if ses in ok else ""
            known = "s.session_id IS NOT NULL" if ses in ok else "TRUE"
            try:
                r = count(f"""
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
                    FROM p {join}""")
            except duckdb.Error as e:
                problems.append(f"{where}: cannot read ({_first_line(e)})")
                continue
            if r[0]:
                dup = count(f"SELECT MIN(position) FROM (SELECT position FROM {imp} WHERE session_id = {int(r[1])} "
                            "GROUP BY position HAVING COUNT(*) > 1)")[0]
                problems.append(f"{where}: {r[0]} duplicate key(s) (session_id, position), e.g. session_id {r[1]} "
                                f"position {dup}; expected one row per (session_id, position)")
            if r[2]:
                problems.append(f"{where}: {r[2]} page(s) with positions that were never shown, e.g. session_id {r[3]} "
                                f"logs position {r[4]} but only {r[5]} item(s); expected positions 1..k without gaps")
            if r[6]:
                problems.append(f"{where}: {r[6]} impression(s) whose session_id is not in {ses}, "
                                f"e.g. session_id {r[7]}")
        windows = _world_windows(dataset)
        for ses in ("sessions", "pre_sessions"):
            if ses not in ok:
                continue
            where = _where(dataset, ses)
            for col, allowed in (("query_segment", SEGMENTS), ("query_complexity", COMPLEXITIES)):
                values = ", ".join(f"'{v}'" for v in allowed)
                check(where, f"SELECT COUNT(*), MIN({col}) FROM {ses} WHERE {col} NOT IN ({values})",
                      lambda r, col=col, allowed=allowed: r[0] and
                      f"{r[0]} row(s) with column '{col}' = {r[1]!r}; expected one of {', '.join(allowed)}")
            future = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
            check(where, f"SELECT COUNT(*), MIN(session_id), arg_min(ts, session_id) FROM {ses} "
                         f"WHERE ts < TIMESTAMPTZ '{EARLIEST_TS} 00:00:00+00' OR ts > TIMESTAMPTZ '{future}+00'",
                  lambda r: r[0] and f"{r[0]} session(s) with an implausible column 'ts', e.g. session_id {r[1]} at "
                                     f"{r[2]}; expected a UTC time after {EARLIEST_TS} and not in the future "
                                     "(seconds vs microseconds?)")
            if ses in windows:
                lo, hi = windows[ses]
                check(where, f"SELECT COUNT(*), MIN(session_id), arg_min(ts, session_id) FROM {ses} "
                             f"WHERE ts < TIMESTAMPTZ '{lo} 00:00:00+00' OR ts >= TIMESTAMPTZ '{hi} 00:00:00+00'",
                      lambda r, lo=lo, hi=hi, ses=ses: r[0] and
                      f"{r[0]} session(s) with column 'ts' outside the {'pre-period' if ses.startswith('pre') else 'experiment'} "
                      f"window [{lo}, {hi}) of world.json, e.g. session_id {r[1]} at {r[2]}")
        if "sessions" in ok and "pre_sessions" in ok and "sessions" not in windows:
            check(_where(dataset, "sessions"),
                  "SELECT COUNT(*), MIN(s.session_id), arg_min(s.ts, s.session_id), (SELECT MAX(ts) FROM pre_sessions) "
                  "FROM sessions s WHERE s.ts <= (SELECT MAX(ts) FROM pre_sessions)",
                  lambda r: r[0] and f"{r[0]} session(s) with column 'ts' at or before the last pre-period session "
                                     f"({r[3]}), e.g. session_id {r[1]} at {r[2]}; expected the experiment window to "
                                     "start after the pre-period")
        if "relevance_labels" in ok:
            check(_where(dataset, "relevance_labels"),
                  f"SELECT COUNT(*), arg_min(grade, item_id), MIN(item_id) FROM relevance_labels "
                  f"WHERE grade < 0 OR grade > {MAX_GRADE}",
                  lambda r: r[0] and f"{r[0]} grade(s) outside 0..{MAX_GRADE} in column 'grade', e.g. {r[1]} "
                                     f"for item_id {r[2]}")
        if "page_labels" in ok and "sessions" in ok:
            known = "SELECT session_id FROM sessions" + (" UNION ALL SELECT session_id FROM pre_sessions"
                                                         if "pre_sessions" in ok else "")
            check(_where(dataset, "page_labels"),
                  f"SELECT COUNT(*), MIN(p.session_id) FROM page_labels p ANTI JOIN ({known}) s "
                  "ON s.session_id = p.session_id",
                  lambda r: r[0] and f"{r[0]} page label(s) for sessions that are not in the log, e.g. "
                                     f"session_id {r[1]}; expected labels of logged sessions")
        if require_arm and "sessions" in ok:
            where = _where(dataset, "sessions")
            check(where, "SELECT COUNT(*), MIN(session_id) FROM sessions WHERE arm IS NULL",
                  lambda r: r[0] and f"{r[0]} session(s) with no arm, e.g. session_id {r[1]} "
                                     "(an online A/B log needs one)")
            check(where, "SELECT COUNT(*), MIN(unit_id) FROM (SELECT unit_id FROM sessions WHERE arm IS NOT NULL "
                         "GROUP BY unit_id HAVING MIN(arm) <> MAX(arm))",
                  lambda r: r[0] and f"{r[0]} unit(s) logged in more than one arm, e.g. unit_id {r[1]!r}; "
                                     "expected each unit_id in exactly one arm (assignment leak)")
    finally:
        con.close()
    if problems:
        raise InputError("\n".join(problems), problems)
    return counts


def _example(key: tuple[str, ...], value) -> str:
    if len(key) == 1:
        return f"{key[0]} {value!r}"
    values = value if isinstance(value, (tuple, list)) else list(value.values()) if isinstance(value, dict) else [value]
    return " ".join(f"{k} {v!r}" for k, v in zip(key, values))
