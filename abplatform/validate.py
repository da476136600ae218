"""Check a dataset against the event-log contract; every problem is reported in one error."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from abplatform.contract import TABLES, Table
from abplatform.dataset import Dataset
from abplatform.errors import InputError

_DUCK_TYPES = {
    "int64": {"BIGINT"}, "int32": {"INTEGER", "SMALLINT", "TINYINT"}, "int16": {"SMALLINT", "TINYINT"},
    "int8": {"TINYINT"}, "string": {"VARCHAR"}, "bool": {"BOOLEAN"}, "double": {"DOUBLE", "FLOAT"},
    "timestamp[us, tz=UTC]": {"TIMESTAMP WITH TIME ZONE"},
}


def _expected(t: pa.DataType) -> set[str]:
    return _DUCK_TYPES[str(t)]


def _schema_problems(con: duckdb.DuckDBPyConnection, where: str, table: Table) -> list[str]:
    actual = {r[0]: r[1] for r in con.execute(f"DESCRIBE {table.name}").fetchall()}
    problems = []
    for col in table.columns:
        if col.name not in actual:
            problems.append(f"{where}: missing column '{col.name}' ({col.type}: {col.doc})")
        elif actual[col.name] not in _expected(col.type):
            problems.append(f"{where}: column '{col.name}' has type {actual[col.name]}, expected {col.type}")
    return problems


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchall()[0][0])


def validate_dataset(dataset: Dataset, require_arm: bool = False, max_position: int = 50) -> dict[str, int]:
    """Raise :class:`InputError` listing every contract violation; return row counts per table."""
    problems: list[str] = []
    con = dataset.connect()
    counts: dict[str, int] = {}
    try:
        for name, table in TABLES.items():
            where = f"{dataset.path}/{name}"
            if not dataset.has(name):
                if table.required:
                    problems.append(f"{where}: missing table (required: {table.doc})")
                continue
            try:
                schema_problems = _schema_problems(con, where, table)
            except duckdb.Error as e:
                problems.append(f"{where}: cannot read ({str(e).splitlines()[0]})")
                continue
            problems += schema_problems
            if schema_problems:
                continue
            counts[name] = _count(con, f"SELECT COUNT(*) FROM {name}")
            for col in table.columns:
                if not col.nullable:
                    n = _count(con, f"SELECT COUNT(*) FROM {name} WHERE {col.name} IS NULL")
                    if n:
                        problems.append(f"{where}: {n} null value(s) in required column '{col.name}'")
            key = ", ".join(table.key)
            n = _count(con, f"SELECT COUNT(*) FROM (SELECT {key} FROM {name} GROUP BY {key} HAVING COUNT(*) > 1)")
            if n:
                problems.append(f"{where}: {n} duplicate key(s) ({key})")
        ok = {t for t in counts}
        for imp, ses in (("impressions", "sessions"), ("pre_impressions", "pre_sessions")):
            if imp not in ok:
                continue
            where = f"{dataset.path}/{imp}"
            checks = [
                (f"position < 1 OR position > {max_position}", f"position outside 1..{max_position}"),
                ("purchased AND NOT clicked", "purchase without a click"),
                ("orders < 0 OR revenue < 0", "negative orders or revenue"),
                ("orders > 0 AND NOT purchased", "orders without a purchase"),
                ("propensity IS NOT NULL AND (propensity <= 0 OR propensity > 1)", "propensity outside (0, 1]"),
            ]
            for cond, what in checks:
                n = _count(con, f"SELECT COUNT(*) FROM {imp} WHERE {cond}")
                if n:
                    problems.append(f"{where}: {n} row(s) with {what}")
            if ses in ok:
                n = _count(con, f"SELECT COUNT(*) FROM {imp} i ANTI JOIN {ses} s ON s.session_id = i.session_id")
                if n:
                    problems.append(f"{where}: {n} impression(s) whose session_id is not in {ses}")
        if "relevance_labels" in ok:
            n = _count(con, "SELECT COUNT(*) FROM relevance_labels WHERE grade < 0 OR grade > 3")
            if n:
                problems.append(f"{dataset.path}/relevance_labels: {n} grade(s) outside 0..3")
        if require_arm and "sessions" in ok:
            n = _count(con, "SELECT COUNT(*) FROM sessions WHERE arm IS NULL")
            if n:
                problems.append(f"{dataset.path}/sessions: {n} session(s) with no arm (an online A/B log needs one)")
    finally:
        con.close()
    if problems:
        raise InputError("\n".join(problems), problems)
    return counts
