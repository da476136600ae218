"""A dataset in the event-log contract: a folder of parquet (or CSV) tables or a duckdb database.

Folder layout: ``DIR/<table>/*.parquet`` (or ``DIR/<table>.parquet``, ``DIR/<table>.csv``)
for each table of :mod:`abplatform.contract`; ``tables`` may name other files per table — a
glob, a glob with ``{arm}`` (the arm is the part of the path it matches), or one glob per arm
(``{"control": "random/*.csv", "treatment": "bts/*.csv"}``): the arm is then the file's. A
``mapping`` says where each contract column comes from: a source column (``"user_id"``), a
constant (``{"constant": 0}``) or an expression over the source columns (``{"expression":
"coalesce(clicks, 0) > 0"}``, checked by :func:`abplatform.expressions.check_mapping_expression`).

Columns a log does not have are NULL in the views (the experiment's profile says which of them it
needs: :mod:`abplatform.profile`); without a ``sessions`` table, the sessions are derived from the
impressions' own session columns (one row per session_id; its time is the first impression's).
Either way, :meth:`Dataset.connect` returns a duckdb connection with one view per table present,
so the metrics SQL reads ``sessions``, ``impressions``... without knowing where they live; the
Spark engine builds the same views from :meth:`Dataset.view_sql`.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from abplatform.contract import TABLES, Column
from abplatform.errors import InputError
from abplatform.expressions import check_mapping_expression, mapping_columns, mapping_sql

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
#: A table without its own files, derived from another one's: sessions from impressions.
DERIVED_FROM = {"sessions": "impressions", "pre_sessions": "pre_impressions"}


def _sql_str(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _reader(path: Path) -> str:
    if path.suffix.lower() in CSV_SUFFIXES:
        return f"read_csv({_sql_str(path)}, header = true)"
    return f"read_parquet({_sql_str(path)})"


@dataclass(frozen=True)
class Part:
    """Some of a table's rows: the files one reader reads, and the arm they carry when the arm is the file's."""

    reader: str  # duckdb SQL that reads the files
    files: tuple[Path, ...]
    arm: str | None = None
    pattern: str = ""  # as the experiment file wrote it (for messages)

    @property
    def csv(self) -> bool:
        return any(f.suffix.lower() in CSV_SUFFIXES for f in self.files)


def quote_identifier(identifier: str) -> str:
    """A column name as a quoted SQL identifier (source names may be any text)."""
    return '"' + identifier.replace('"', '""') + '"'


def close_matches(name: str, present: Sequence[str]) -> str:
    """``(did you mean …?)`` with up to three close source columns — never the whole list of a wide log."""
    contains = [c for c in sorted(present) if name.lower() in c.lower() or c.lower() in name.lower()]
    hints = list(dict.fromkeys(contains + get_close_matches(name, sorted(present), n=3, cutoff=0.6)))[:3]
    return f" (did you mean {', '.join(map(repr, hints))}?)" if hints else f" ({len(present)} columns, none close)"


class Dataset:
    def __init__(self, path: str | Path, tables: Mapping[str, str | Mapping[str, str]] | None = None,
                 mapping: Mapping[str, Mapping[str, Any]] | None = None,
                 locate: Callable[[tuple[str | int, ...]], str] | None = None):
        """``locate(("mapping", table, column))`` names a setting in a message (the experiment file's line);
        by default the dataset's path and the setting's name."""
        self.path = Path(path)
        self.locate = locate or (lambda loc: f"{self.path}: data." + ".".join(map(str, loc)))
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or directory (expected a dataset folder or a .duckdb file)")
        self.is_duckdb = self.path.is_file()
        self.parts: dict[str, list[Part]] = {}
        self.mapping = {t: {c: _column_spec(v) for c, v in m.items()} for t, m in (mapping or {}).items()}
        for t, source in (tables or {}).items():
            self.parts[t] = self._parts_of(t, source)
        if self.is_duckdb and not tables:
            con = self._open_db()
            names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            names |= {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
            con.close()
            self.parts = {t: [Part(f"src.main.{t}", ())] for t in TABLES if t in names}
        else:
            for t in TABLES:  # the default locations of the tables ``tables`` does not name
                if t in self.parts:
                    continue
                folder, single, csv = self.path / t, self.path / f"{t}.parquet", self.path / f"{t}.csv"
                if folder.is_dir() and any(folder.glob("*.parquet")):
                    self.parts[t] = [Part(f"read_parquet({_sql_str(folder / '*.parquet')})",
                                          tuple(sorted(folder.glob("*.parquet"))))]
                elif single.is_file():
                    self.parts[t] = [Part(f"read_parquet({_sql_str(single)})", (single,))]
                elif csv.is_file():
                    self.parts[t] = [Part(_reader(csv), (csv,))]
        # with a mapping, CSV or per-file arms every contract column is cast to its contract type
        self.cast = bool(self.mapping) or any(p.csv or p.arm is not None for ps in self.parts.values() for p in ps)
        self.derived = {t: src for t, src in DERIVED_FROM.items() if t not in self.parts and src in self.parts}
        self.absent: dict[str, set[str]] = {}  # per table, the contract columns the views fill with NULL

    def _parts_of(self, table: str, source: str | Mapping[str, str]) -> list[Part]:
        """The parts a ``tables`` entry names: one glob, a glob per arm, or a glob with ``{arm}``."""
        where = self.locate(("tables", table))
        if not isinstance(source, str):
            return [self._part(table, pattern, arm) for arm, pattern in source.items()]
        if "{arm}" not in source:
            return [self._part(table, source, None)]
        # {arm} is a whole path component, or part of one; each value found is an arm
        glob_pattern = str(self.path / source.replace("{arm}", "*"))
        before, after = str(self.path / source).split("{arm}", 1)
        regex = re.compile(_glob_regex(before) + "([^/]+?)" + _glob_regex(after) + "$")
        by_arm: dict[str, list[Path]] = {}
        for f in sorted(glob.glob(glob_pattern, recursive=True)):
            if not Path(f).is_file():
                continue
            m = regex.match(f)
            if m is None:  # never silently leave a file out
                raise InputError(f"{where}: cannot tell the arm of {f} from {source!r}")
            by_arm.setdefault(m.group(1), []).append(Path(f))
        if not by_arm:
            raise InputError(f"{where}: no file matches {source!r}")
        return [self._files_part(files, arm, source) for arm, files in sorted(by_arm.items())]

    def _part(self, table: str, pattern: str, arm: str | None) -> Part:
        f = self.path / pattern  # an absolute path stays as it is
        if f.is_file():  # a file of that exact name is read as it is ('[' and ']' are not a pattern)
            return self._files_part([f], arm, pattern)
        files = sorted(Path(m) for m in glob.glob(str(f), recursive=True))
        if not files:
            where = self.locate(("tables", table, arm) if arm else ("tables", table))
            raise InputError(f"{where}: no file matches {pattern!r} under {self.path}")
        return self._files_part(files, arm, pattern)

    @staticmethod
    def _files_part(files: list[Path], arm: str | None, pattern: str) -> Part:
        kinds = {f.suffix.lower() in CSV_SUFFIXES for f in files}
        if len(kinds) > 1:
            raise InputError(f"{files[0].parent}: {pattern!r} matches both CSV and parquet files; "
                             "give one kind per pattern")
        if len(files) == 1:
            reader = _reader(Path(glob.escape(str(files[0]))))
        else:
            listed = ", ".join(_sql_str(f) for f in files)
            reader = (f"read_csv([{listed}], header = true, union_by_name = true)" if kinds == {True}
                      else f"read_parquet([{listed}], union_by_name = true)")
        return Part(reader, tuple(files), arm, pattern)

    def _open_db(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as e:
            raise InputError(f"{self.path}: not a readable duckdb database ({str(e).splitlines()[0]})") from None

    @property
    def table_files(self) -> dict[str, list[Path]]:
        """The files each table is read from."""
        return {t: [f for p in ps for f in p.files] for t, ps in self.parts.items()}

    def input_files(self) -> list[Path]:
        """Every file the dataset is read from (CSV, parquet or the duckdb database), each once, sorted."""
        files = {f for fs in self.table_files.values() for f in fs}
        if self.is_duckdb:
            files.add(self.path)
        return sorted(files)

    def has(self, table: str) -> bool:
        return table in self.parts or table in self.derived

    def files(self, table: str) -> list[Path]:
        """The parquet files of a table in its default folder, in partition order (empty for a duckdb
        database, a derived table or files named by ``tables``)."""
        if self.is_duckdb or table not in self.parts:
            return []
        folder = self.path / table
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else [self.path / f"{table}.parquet"]

    def absent_columns(self, table: str) -> set[str]:
        """The contract columns of ``table`` the log does not have (read as NULL)."""
        if table not in self.absent and self.has(table):
            self.connect().close()
        return self.absent.get(table, set())

    def connect(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute("SET TimeZone = 'UTC'")  # days are UTC days, whatever the machine's zone (as on Spark)
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if self.is_duckdb:
            con.execute(f"ATTACH {_sql_str(self.path)} AS src (READ_ONLY)")
        for name in self.view_order():
            try:
                con.execute(f"CREATE VIEW {name} AS {self.duckdb_view(con, name)}")
            except duckdb.Error as e:
                con.close()
                raise InputError(f"{self.path}: table {name}: cannot read ({str(e).strip().splitlines()[0]})") from None
            except InputError:
                con.close()
                raise
        return con

    def view_order(self) -> list[str]:
        return [t for t in TABLES if self.has(t)]

    def duckdb_view(self, con: duckdb.DuckDBPyConnection, table: str, grouped: bool = True) -> str:
        """The view of ``table`` over its sources, for duckdb."""
        def describe(relation: str) -> list[str]:
            try:
                return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
            except duckdb.Error as e:
                raise InputError(f"{self.path}: table {table}: cannot read ({str(e).splitlines()[0]})") from None

        return self.view_sql(table, describe, lambda part, _: part.reader, grouped)

    def view_sql(self, table: str, describe: Callable[[str], list[str]],
                 relation: Callable[[Part, int], str], grouped: bool = True) -> str:
        """The duckdb SQL of a table's view: each part's columns mapped and cast onto the contract's
        (absent ones NULL, the file's arm as a constant), the parts unioned; a derived sessions
        table grouped by session_id (``grouped=False``: its rows, one per impression, for the
        validation's one-value-per-session check). ``relation(part, i)`` names a part's rows in the target
        engine and ``describe(relation)`` lists their columns."""
        source_table = self.derived.get(table, table)
        parts = self.parts[source_table]
        mapping = self.mapping_of(table)
        contract = [c.name for c in TABLES[table].columns]
        projections, absent, extras = [], set(contract), {}
        for i, part in enumerate(parts):
            rel = relation(part, i)
            cols, missing, extra = self._projection(table, part, describe(rel), mapping)
            absent &= missing
            extras.update(dict.fromkeys(extra))
            projections.append((rel, cols, extra))
        self.absent[table] = absent
        if len(projections) == 1:
            union = f"SELECT {', '.join(projections[0][1])} FROM {projections[0][0]}"
        else:  # parts line up by name: a column one file lacks is NULL in its rows (portable: no BY NAME)
            union = "\nUNION ALL\n".join(
                f"SELECT {', '.join(cols[:len(cols) - len(extra)])}"
                + "".join(f", {quote_identifier(c) if c in extra else 'NULL'} AS {quote_identifier(c)}" for c in extras)
                + f" FROM {rel}" for rel, cols, extra in projections)
        if table not in self.derived or not grouped:
            return union
        # one row per session: every session column's one value (the validation checks there is one); the
        # impressions' own columns stay with them
        own = {c.name for c in TABLES[source_table].columns}
        other = [*(c for c in contract if c != "session_id"), *(c for c in extras if c not in own)]
        firsts = ", ".join(f"MIN({quote_identifier(c)}) AS {quote_identifier(c)}" for c in other)
        return f"SELECT session_id, {firsts} FROM ({union}) derived GROUP BY session_id"

    def mapping_of(self, table: str) -> dict[str, Any]:
        """The mapping of a table; a derived sessions table also takes its impressions' session_id."""
        mapping = dict(self.mapping.get(table, {}))
        source = self.mapping.get(self.derived.get(table, ""), {})
        if "session_id" not in mapping and "session_id" in source:
            mapping["session_id"] = source["session_id"]
        return mapping

    def column_sources(self, con: duckdb.DuckDBPyConnection, table: str,
                       part: Part) -> list[tuple[Column, str, str]]:
        """The contract columns a part reads from its source, each with its SQL over the source's columns and
        how to name it in a message (``source column 'x'``, ``expression '…'``; empty for the column itself)."""
        present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {part.reader}").fetchall()]
        mapping = self.mapping_of(table)
        out = []
        for c in TABLES[table].columns:
            spec = mapping.get(c.name, c.name)
            if (c.name == "arm" and part.arm is not None) or (isinstance(spec, dict) and "constant" in spec):
                continue
            sql = self._column_sql(c, spec, present, set(), self.locate(("mapping", table, c.name)))
            if sql is not None:
                label = (f"expression {spec['expression']!r}" if isinstance(spec, dict)
                         else f"source column '{spec}'" if spec != c.name else "")
                out.append((c, sql, label))
        return out

    def _projection(self, table: str, part: Part, present: list[str],
                    mapping: Mapping[str, Any]) -> tuple[list[str], set[str], list[str]]:
        """A part's select list, the contract columns it fills with NULL and the other source columns it keeps."""
        contract = {c.name for c in TABLES[table].columns}
        if not self.cast and table not in self.derived:
            # the log's own columns and types, as the validation reads them; the absent ones NULL
            absent = {c for c in contract if c not in present}
            fills = [f"CAST(NULL AS {duck_type(c.type)}) AS {c.name}" for c in TABLES[table].columns
                     if c.name in absent]
            return ["*", *fills], absent, [c for c in present if c not in contract]
        cols: list[str] = []
        used: set[str] = set()
        missing: set[str] = set()
        for c in TABLES[table].columns:
            if c.name == "arm" and part.arm is not None:
                own = mapping.get("arm", "arm")
                if own in present or isinstance(own, dict):  # two sources of one fact: never pick one silently
                    raise InputError(f"{self.locate(('tables', self.derived.get(table, table)))}: the arm is taken "
                                     f"from the files, and {part.pattern!r} also has an arm column ({own!r}); "
                                     f"drop one (remove data.mapping.{table}.arm, or give one pattern for all arms)")
                cols.append(f"CAST({_sql_str(part.arm)} AS VARCHAR) AS arm")
                continue
            sql = self._column_sql(c, mapping.get(c.name, c.name), present, used,
                                   self.locate(("mapping", table, c.name)))
            if sql is None:
                missing.add(c.name)
                sql = "NULL"
            cols.append(f"CAST({sql} AS {duck_type(c.type)}) AS {c.name}")
        # other source columns pass through unchanged (e.g. extra segment columns of a log)
        extra = [c for c in present if c not in used and c not in contract]
        return cols + [quote_identifier(c) for c in extra], missing, extra

    @staticmethod
    def _column_sql(column: Column, spec: str | dict[str, Any], present: list[str], used: set[str],
                    where: str) -> str | None:
        """SQL of one contract column from its mapping ``spec``; None when the log does not have it."""
        if isinstance(spec, dict) and "constant" in spec:
            return _literal(spec["constant"])
        if isinstance(spec, dict):
            expression = spec["expression"]
            tree = check_mapping_expression(expression)
            for name in mapping_columns(tree):
                if name not in present:
                    raise InputError(f"{where}: expression {expression!r}: source column {name!r} not found"
                                     + close_matches(name, present))
                used.add(name)
            return f"({mapping_sql(tree)})"
        if spec in present:
            used.add(spec)
            return quote_identifier(spec)
        if spec != column.name:
            raise InputError(f"{where}: source column {spec!r} not found" + close_matches(spec, present))
        return None


def _glob_regex(pattern: str) -> str:
    """A glob pattern (``*``, ``?``, ``[...]``, ``**/`` for any folders) as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            j = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1:j].replace("!", "^", 1) + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _column_spec(spec: Any) -> str | dict[str, Any]:
    """A mapping value as a source column name or a one-key dict (from YAML or the config's models)."""
    if isinstance(spec, str):
        return spec
    if hasattr(spec, "model_dump"):
        return spec.model_dump()
    if isinstance(spec, Mapping) and len(spec) == 1 and set(spec) <= {"constant", "expression"}:
        return dict(spec)
    raise InputError(f"mapping value {spec!r}: expected a source column name, {{constant: value}} or "
                     "{expression: SQL}")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return _sql_str(str(value))


def duck_type(t: pa.DataType) -> str:
    """The duckdb type of a contract column type."""
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[t.bit_width]
