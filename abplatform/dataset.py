"""A dataset in the event-log contract: a folder of parquet (or CSV) tables or a duckdb database.

Folder layout: ``DIR/<table>/*.parquet`` (or ``DIR/<table>.parquet``, ``DIR/<table>.csv``)
for each table of :mod:`abplatform.contract`; ``tables`` may name other files per table. A
duckdb database holds tables of the same names. A ``mapping`` renames source columns onto the
contract's (``{"sessions": {"unit_id": "user_id"}}``) — how online A/B logs are imported; with a
mapping or CSV input every contract column is cast to its contract type. Either way,
:meth:`Dataset.connect` returns a duckdb connection with one view per table present, so the
metrics SQL reads ``sessions``, ``impressions``... without knowing where they live.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

from abplatform.contract import TABLES
from abplatform.errors import InputError


def _sql_str(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _reader(path: Path) -> str:
    if path.suffix.lower() in (".csv", ".tsv", ".txt"):
        return f"read_csv({_sql_str(path)}, header = true)"
    return f"read_parquet({_sql_str(path)})"


class Dataset:
    def __init__(self, path: str | Path, tables: Mapping[str, str] | None = None,
                 mapping: Mapping[str, Mapping[str, str]] | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or directory (expected a dataset folder or a .duckdb file)")
        self.is_duckdb = self.path.is_file()
        self.sources: dict[str, str] = {}
        self.table_files: dict[str, list[Path]] = {}  # the files each table is read from
        self.mapping = {t: dict(m) for t, m in (mapping or {}).items()}
        self.cast = bool(mapping)
        for t, rel in (tables or {}).items():
            f = self.path / rel  # an absolute path stays as it is
            if not f.is_file() and not glob.glob(str(f), recursive=True):
                raise InputError(f"{self.path}: data.tables.{t}: no file matches {rel!r}")
            # a file of that exact name is read as it is ('[' and ']' are not a pattern); otherwise a glob
            self.sources[t] = _reader(Path(glob.escape(str(f))) if f.is_file() else f)
            self.table_files[t] = [f] if f.is_file() else sorted(Path(m) for m in glob.glob(str(f), recursive=True))
            self.cast |= f.suffix.lower() in (".csv", ".tsv", ".txt")
        if self.is_duckdb and not tables:
            con = self._open_db()
            names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            names |= {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
            con.close()
            self.sources = {t: f"src.main.{t}" for t in TABLES if t in names}
        else:
            for t in TABLES:  # the default locations of the tables ``tables`` does not name
                if t in self.sources:
                    continue
                folder, single, csv = self.path / t, self.path / f"{t}.parquet", self.path / f"{t}.csv"
                if folder.is_dir() and any(folder.glob("*.parquet")):
                    self.sources[t] = f"read_parquet({_sql_str(folder / '*.parquet')})"
                    self.table_files[t] = sorted(folder.glob("*.parquet"))
                elif single.is_file():
                    self.sources[t] = f"read_parquet({_sql_str(single)})"
                    self.table_files[t] = [single]
                elif csv.is_file():
                    self.sources[t] = _reader(csv)
                    self.table_files[t] = [csv]
                    self.cast = True

    def _open_db(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as e:
            raise InputError(f"{self.path}: not a readable duckdb database ({str(e).splitlines()[0]})") from None

    def input_files(self) -> list[Path]:
        """Every file the dataset is read from (CSV, parquet or the duckdb database), each once, sorted."""
        files = {f for fs in self.table_files.values() for f in fs}
        if self.is_duckdb:
            files.add(self.path)
        return sorted(files)

    def has(self, table: str) -> bool:
        return table in self.sources

    def files(self, table: str) -> list[Path]:
        """The parquet files of a table, in partition order (empty for a duckdb database)."""
        if self.is_duckdb or table not in self.sources:
            return []
        folder = self.path / table
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else [self.path / f"{table}.parquet"]

    def connect(self, threads: int | None = None) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute("SET TimeZone = 'UTC'")  # days are UTC days, whatever the machine's zone (as on Spark)
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if self.is_duckdb:
            con.execute(f"ATTACH {_sql_str(self.path)} AS src (READ_ONLY)")
        for name, source in self.sources.items():
            try:
                con.execute(f"CREATE VIEW {name} AS {self._select(con, name, source)}")
            except duckdb.Error as e:
                con.close()
                raise InputError(f"{self.path}: table {name}: cannot read ({str(e).strip().splitlines()[0]})") from None
        return con

    def _select(self, con: duckdb.DuckDBPyConnection, table: str, source: str) -> str:
        """The view over a source: as it is, or mapped and cast onto the contract's columns."""
        if not self.cast:
            return f"SELECT * FROM {source}"
        try:
            present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        except duckdb.Error as e:
            raise InputError(f"{self.path}: table {table}: cannot read ({str(e).splitlines()[0]})") from None
        mapping = self.mapping.get(table, {})
        unknown = sorted(set(mapping.values()) - present)
        if unknown:
            raise InputError(f"{self.path}: data.mapping.{table}: source column {unknown[0]!r} not found "
                             f"(columns: {', '.join(sorted(present))})")
        cols = []
        for c in TABLES[table].columns:
            src = mapping.get(c.name, c.name)
            if src in present:
                cols.append(f"CAST({_quote(src)} AS {duck_type(c.type)}) AS {c.name}")
        # other source columns pass through unchanged (e.g. extra segment columns of a log)
        used = {mapping.get(c.name, c.name) for c in TABLES[table].columns} | {c.name for c in TABLES[table].columns}
        cols += [_quote(c) for c in sorted(present - used)]
        return f"SELECT {', '.join(cols) or '*'} FROM {source}"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


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
