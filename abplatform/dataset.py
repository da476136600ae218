"""A dataset in the event-log contract: a folder of parquet tables or a duckdb database.

Folder layout: ``DIR/<table>/*.parquet`` (or ``DIR/<table>.parquet``) for each table of
:mod:`abplatform.contract`. A duckdb database holds tables of the same names. Either way,
:meth:`Dataset.connect` returns a duckdb connection with one view per table present, so
the metrics SQL reads ``sessions``, ``impressions``... without knowing where they live.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from abplatform.contract import TABLES
from abplatform.errors import InputError


def _sql_str(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class Dataset:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or directory (expected a dataset folder or a .duckdb file)")
        self.is_duckdb = self.path.is_file()
        self.sources: dict[str, str] = {}
        if self.is_duckdb:
            con = self._open_db()
            names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            names |= {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
            con.close()
            self.sources = {t: f"src.main.{t}" for t in TABLES if t in names}
        else:
            for t in TABLES:
                folder, single = self.path / t, self.path / f"{t}.parquet"
                if folder.is_dir() and any(folder.glob("*.parquet")):
                    self.sources[t] = f"read_parquet({_sql_str(folder / '*.parquet')})"
                elif single.is_file():
                    self.sources[t] = f"read_parquet({_sql_str(single)})"

    def _open_db(self) -> duckdb.DuckDBPyConnection:
        try:
            return duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as e:
            raise InputError(f"{self.path}: not a readable duckdb database ({str(e).splitlines()[0]})") from None

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
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if self.is_duckdb:
            con.execute(f"ATTACH {_sql_str(self.path)} AS src (READ_ONLY)")
        for name, source in self.sources.items():
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM {source}")
        return con
