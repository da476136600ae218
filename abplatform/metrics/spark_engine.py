"""The metrics SQL on Apache Spark, with the numbers duckdb gives.

:class:`SparkMetricsEngine` is :class:`~abplatform.metrics.engine.MetricsEngine` itself — every
method inherited — with its duckdb connection swapped for a :class:`SparkConnection`: the same
``sql/`` templates, substituted by the same code, transpiled by :mod:`abplatform.metrics.transpile`
and run on temp views over the parquet tables. Results come back through duckdb's own Arrow ->
pandas conversion, so the frames have duckdb's columns, dtypes and row order.

Needs ``pip install 'abplatform[spark]'`` (pyspark >= 4) and Java 17.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from abplatform.contract import TABLES
from abplatform.dataset import Dataset, Part
from abplatform.errors import InputError
from abplatform.metrics.engine import MetricsEngine
from abplatform.metrics.transpile import to_spark
from abplatform.spark_session import BASE_CONF, DEFAULT_MASTER, spark_session

# isort: split
# pyspark after spark_session, whose import raises a friendly ImportError when pyspark is missing
from pyspark.sql import DataFrame, SparkSession

# ---------------------------------------------------------------------------------------------
# Sources: where each contract table lives, as Spark sees it.

Source = str | Sequence[str]  # parquet path(s) / URI(s) / globs, or "table:<catalog table name>"


def table_sources(paths: str | Path | Mapping[str, Source]) -> dict[str, Source]:
    """Contract table -> parquet path(s) / glob, or ``table:<name>`` for a Spark catalog table, for data that
    is not a :class:`Dataset` (a :class:`Dataset`'s own views are built by :class:`_SparkDataset`).

    Accepts a URI or folder of a dataset root laid out like a folder dataset (``s3a://bucket/logs/ab1``: one
    sub-folder per table), or an explicit mapping ``{"sessions": "s3a://.../sessions", "impressions":
    "table:lake.ab.impressions"}``.
    """
    if isinstance(paths, Mapping):
        out = dict(paths)
    else:
        root = str(paths).rstrip("/")
        out = {t: f"{root}/{t}" for t in TABLES}  # optional tables that are missing are skipped
    unknown = sorted(set(out) - set(TABLES))
    if unknown:
        raise InputError(f"unknown table {unknown[0]!r} in the Spark data source (tables: {', '.join(TABLES)})")
    return out


def _read(spark: SparkSession, source: Source) -> DataFrame:
    if isinstance(source, str) and source.startswith("table:"):
        return spark.table(source[len("table:"):])
    paths = [source] if isinstance(source, str) else list(source)
    return spark.read.parquet(*paths)


def _to_pandas(df: DataFrame) -> pd.DataFrame:
    """A Spark result as the pandas frame duckdb's ``.df()`` gives for the same rows.

    The Arrow result goes through duckdb's own pandas conversion, so dtypes (strings, int64
    counts, float64 sums with NaN for NULL, dates) are exactly those of the duckdb engine.
    """
    return duckdb.from_arrow(df.toArrow()).df()


# ---------------------------------------------------------------------------------------------
# Metrics: MetricsEngine's code, with its duckdb connection replaced by a Spark one.

_CREATE = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+(TABLE|VIEW)\s+(\w+)\s+AS\s+(.*)$",
                     re.IGNORECASE | re.DOTALL)


class _SparkResult:
    """The part of a duckdb result the metrics engine uses: ``fetchall()`` and ``df()``."""

    def __init__(self, df: DataFrame):
        self._df = df

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._df.collect()]

    def fetchone(self) -> tuple | None:
        rows = self._df.limit(1).collect()
        return tuple(rows[0]) if rows else None

    def df(self) -> pd.DataFrame:
        return _to_pandas(self._df)


class SparkConnection:
    """A duckdb-connection look-alike that runs each statement on Spark.

    Statements are duckdb SQL, transpiled by :func:`abplatform.metrics.transpile.to_spark`.
    ``CREATE [OR REPLACE] TEMP TABLE t AS q`` becomes a cached DataFrame behind a temp view
    (filled by the first query that reads it); ``... TEMP VIEW`` a plain temp view; ``SET`` is a
    no-op. Everything else returns a result with ``fetchall()``, ``fetchone()`` and ``df()``.
    """

    def __init__(self, spark: SparkSession):
        self.spark = spark
        self.cached: dict[str, DataFrame] = {}

    def execute(self, sql: str) -> _SparkResult | None:
        m = _CREATE.match(sql)
        if m:
            kind, name, body = m.group(1).upper(), m.group(2), m.group(3)
            df = self.spark.sql(to_spark(body))
            if kind == "TABLE":
                df = df.persist()
            df.createOrReplaceTempView(name)
            old = self.cached.pop(name, None)
            if kind == "TABLE":
                self.cached[name] = df
            if old is not None:
                old.unpersist()
            return None
        if re.match(r"^\s*SET\s", sql, re.IGNORECASE):
            return None
        return _SparkResult(self.spark.sql(to_spark(sql)))

    sql = execute

    def close(self) -> None:
        for df in self.cached.values():
            df.unpersist()
        self.cached.clear()


def _relation(spark: SparkSession, table: str, part: Part, i: int) -> str:
    """A temp view of one part's files (parquet, or CSV with a header), named after its table and index."""
    name = f"src_{table}_{i}"
    paths = [str(f) for f in part.files]
    # files of one part line up by column name, as duckdb's union_by_name reads them
    reader = (spark.read.option("header", True).csv(paths) if part.csv
              else spark.read.option("mergeSchema", True).parquet(*paths))
    reader.createOrReplaceTempView(name)
    return name


class _SparkDataset:
    """What :class:`MetricsEngine` asks of a dataset (``has``, ``connect``, ``absent``), answered by Spark views.

    A :class:`Dataset` gets the views duckdb gets — :meth:`Dataset.view_sql` over each of its parts (parquet
    or CSV files) read by Spark, transpiled — so mapping constants and expressions, per-file arms, sessions
    derived from impressions and extra source columns give the same rows on both engines. Paths, URIs and
    catalog tables (:func:`table_sources`) are read as they are."""

    def __init__(self, dataset_or_paths, spark: SparkSession):
        self.path = getattr(dataset_or_paths, "path", dataset_or_paths)
        self.con = SparkConnection(spark)
        self.present: set[str] = set()
        self.absent: dict[str, set[str]] = {}
        if isinstance(dataset_or_paths, Dataset):
            self._dataset_views(dataset_or_paths, spark)
            return
        for name, source in table_sources(dataset_or_paths).items():
            try:
                df = _read(spark, source)
            except Exception as e:  # noqa: BLE001 - an optional table that is not there
                if name in ("sessions", "impressions"):
                    raise InputError(f"Spark engine: cannot read required table {name} from {source} "
                                     f"({str(e).splitlines()[0]})") from None
                continue
            df.createOrReplaceTempView(name)
            self.present.add(name)

    def _dataset_views(self, ds: Dataset, spark: SparkSession) -> None:
        if ds.is_duckdb:
            raise InputError(f"{ds.path}: the Spark engine reads parquet or CSV files, not a duckdb database "
                             "(export the tables to parquet, or use engine: duckdb)")

        for table in ds.view_order():
            source = ds.derived.get(table, table)
            sql = ds.view_sql(table, lambda rel: list(spark.table(rel).columns),
                              functools.partial(_relation, spark, source))
            spark.sql(to_spark(sql)).createOrReplaceTempView(table)
            self.present.add(table)
        self.absent = ds.absent

    def has(self, table: str) -> bool:
        return table in self.present

    def absent_columns(self, table: str) -> set[str]:
        return self.absent.get(table, set())

    def connect(self, threads: int | None = None) -> SparkConnection:
        return self.con


class SparkMetricsEngine(MetricsEngine):
    """:class:`MetricsEngine` on Spark: same public methods, same SQL, same output frames.

    Nothing of the SQL is re-implemented here: :class:`MetricsEngine`'s own code builds every
    statement from ``sql/`` and sends it to ``self.con``, which is a :class:`SparkConnection`.

    ``spark``: an existing session (the engine works in an isolated ``newSession()`` of it, so the
    temp views of several engines never collide); otherwise the active session is reused or one
    is started for ``master`` with ``conf``. ``close()`` drops the engine's cached tables and
    leaves the Spark session running for the next engine or replay (``engine.spark.stop()`` ends it).
    Other arguments (``metrics``, ``threads``, ``extra_segments``, ...) are :class:`MetricsEngine`'s,
    passed on as they are (``threads`` has no effect on Spark).
    """

    def __init__(self, dataset_or_paths: Dataset | str | Path | Mapping[str, Source], *args: Any,
                 spark: SparkSession | None = None, master: str = DEFAULT_MASTER,
                 conf: Mapping[str, Any] | None = None, **kwargs: Any):
        root = spark if spark is not None else spark_session(master, conf)
        self.spark = root.newSession()
        for k, v in BASE_CONF.items():
            if k.startswith("spark.sql."):
                self.spark.conf.set(k, v)
        proxy = _SparkDataset(dataset_or_paths, self.spark)
        super().__init__(proxy, *args, **kwargs)  # type: ignore[arg-type]
        self.dataset = dataset_or_paths  # type: ignore[assignment]

    @contextlib.contextmanager
    def _one_thread(self) -> Iterator[None]:
        """Spark has no thread setting to pin; its sums follow its partitions (``spark.sql.shuffle.partitions``)."""
        yield

    def close(self) -> None:
        self.con.close()
