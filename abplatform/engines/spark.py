"""The metrics SQL and the replay on Apache Spark, with the numbers duckdb gives.

:class:`SparkMetricsEngine` is :class:`~abplatform.metrics.engine.MetricsEngine` with its four
SQL-running methods re-pointed at a Spark session: the same ``sql/`` templates, substituted the
same way, transpiled by :mod:`abplatform.engines.transpile`, run on temp views over the parquet
tables; the statistics-shaping code (``sufficient_stats``, ``daily_sufficient_stats``,
``_finish``) is inherited, so the DataFrames it returns have duckdb's columns, dtypes and row order.

:func:`spark_replay` runs :func:`abplatform.simulate._replay_partition` — the local replay's own
function — once per co-partitioned (sessions, candidates) file pair as a Spark task
(``mapInArrow`` over a DataFrame of partition indices). Every random draw is keyed by
(seed, session id), so the files it writes are the files a local replay writes.

Needs ``pip install 'abplatform[spark]'`` (pyspark >= 4) and Java 17.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from abplatform.contract import PAGE_LABELS, RELEVANCE_LABELS, TABLES
from abplatform.dataset import Dataset
from abplatform.engines.transpile import to_spark
from abplatform.errors import InputError
from abplatform.metrics.base import Metric
from abplatform.metrics.engine import OVERALL, MetricsEngine, metric_expressions, sql_template

try:
    from pyspark.sql import DataFrame, SparkSession
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("the Spark engine needs pyspark: pip install 'abplatform[spark]'") from e

DEFAULT_MASTER = "local[2]"

# Settings every session gets unless the caller's conf says otherwise.
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",  # days are UTC days (the contract's ts is UTC)
    "spark.sql.ansi.enabled": "true",  # overflow and bad casts fail loudly instead of wrapping
    "spark.ui.showConsoleProgress": "false",
}
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
}


def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, Any] | None = None,
                  app_name: str = "abplatform") -> SparkSession:
    """A Spark session for ``master`` (``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://...``).

    For local masters the driver binds to 127.0.0.1 and the Python workers run this interpreter,
    so they import the same abplatform and pyarrow. Reuses an active session (``getOrCreate``);
    settings that only apply at JVM start-up (e.g. ``spark.driver.memory``) are then ignored.
    """
    local = master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {**BASE_CONF, **(LOCAL_CONF if local else {}), **{k: str(v) for k, v in (conf or {}).items()}}
    builder = SparkSession.builder.master(master).appName(app_name)
    for k, v in settings.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ---------------------------------------------------------------------------------------------
# Sources: where each contract table lives, as Spark sees it.

Source = str | Sequence[str]  # parquet path(s) / URI(s), or "table:<catalog table name>"


def table_sources(dataset_or_paths: Dataset | str | Path | Mapping[str, Source]) -> dict[str, Source]:
    """Contract table -> parquet path(s) or ``table:<name>`` for a Spark catalog table.

    Accepts a :class:`Dataset` (a parquet folder; duckdb files are not readable by Spark), a local
    folder, a URI of a dataset root laid out like a folder dataset (``s3a://bucket/logs/ab1``:
    one sub-folder per table), or an explicit mapping ``{"sessions": "s3a://.../sessions", ...}``.
    """
    if isinstance(dataset_or_paths, Mapping):
        out = dict(dataset_or_paths)
    elif isinstance(dataset_or_paths, Dataset) or Path(str(dataset_or_paths)).exists():
        ds = dataset_or_paths if isinstance(dataset_or_paths, Dataset) else Dataset(dataset_or_paths)
        if ds.is_duckdb:
            raise InputError(f"{ds.path}: the Spark engine reads parquet tables, not a duckdb file "
                             "(export it: COPY ... TO 'DIR/<table>/part-0.parquet', or use engine: duckdb)")
        out = {t: [str(f) for f in ds.files(t)] for t in TABLES if ds.has(t)}
    else:
        root = str(dataset_or_paths).rstrip("/")
        out = {t: f"{root}/{t}" for t in TABLES}  # missing optional tables are dropped when read
    unknown = sorted(set(out) - set(TABLES))
    if unknown:
        raise InputError(f"unknown table {unknown[0]!r} in the Spark data source (tables: {', '.join(TABLES)})")
    return out


def _read(spark: SparkSession, source: Source) -> DataFrame:
    if isinstance(source, str) and source.startswith("table:"):
        return spark.table(source[len("table:"):])
    paths = [source] if isinstance(source, str) else list(source)
    return spark.read.parquet(*paths)


def _spark_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "STRING"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    return "BIGINT"


def _empty(spark: SparkSession, schema: pa.Schema) -> DataFrame:
    return spark.createDataFrame([], ", ".join(f"{f.name} {_spark_type(f.type)}" for f in schema))


def _to_pandas(df: DataFrame) -> pd.DataFrame:
    """A Spark result as the pandas frame duckdb's ``.df()`` would give for the same rows.

    The Arrow result is handed to duckdb's own pandas conversion, so dtypes (strings, int64
    counts, float64 sums with NaN for NULL) are exactly those of the duckdb engine.
    """
    table = df.toArrow()
    return duckdb.from_arrow(table).df()


# ---------------------------------------------------------------------------------------------
# Metrics


class SparkMetricsEngine(MetricsEngine):
    """:class:`MetricsEngine` on Spark: same public methods, same SQL, same output frames.

    ``spark``: an existing session (the engine works in an isolated ``newSession()`` of it, so
    temp views of several engines never collide); otherwise one is created (or the active one
    reused) for ``master`` with ``conf``. ``close()`` drops the engine's cached tables and leaves
    the Spark session running for the next engine or replay (``engine.spark.stop()`` ends it).
    """

    def __init__(self, dataset_or_paths: Dataset | str | Path | Mapping[str, Source],
                 spark: SparkSession | None = None, master: str = DEFAULT_MASTER,
                 conf: Mapping[str, Any] | None = None):
        self.dataset = dataset_or_paths if isinstance(dataset_or_paths, Dataset) else None
        sources = table_sources(dataset_or_paths)
        root = spark if spark is not None else spark_session(master, conf)
        self.spark = root.newSession()
        for k, v in BASE_CONF.items():
            if k.startswith("spark.sql."):
                self.spark.conf.set(k, v)
        self._cached: dict[str, DataFrame] = {}
        present = set()
        for name, source in sources.items():
            try:
                _read(self.spark, source).createOrReplaceTempView(name)
                present.add(name)
            except Exception as e:  # noqa: BLE001 - an optional table that is not there
                if name in ("sessions", "impressions"):
                    raise InputError(f"Spark engine: cannot read required table {name} from {source} "
                                     f"({str(e).splitlines()[0]})") from None
        for name, schema in (("relevance_labels", RELEVANCE_LABELS.schema), ("page_labels", PAGE_LABELS.schema)):
            if name not in present:
                _empty(self.spark, schema).createOrReplaceTempView(name)
        stage1 = sql_template("01_session_values.sql")
        tables = {"relevance_labels": "relevance_labels", "page_labels": "page_labels"}
        self._materialise("session_values",
                          stage1.substitute(sessions="sessions", impressions="impressions", **tables))
        if "pre_sessions" in present and "pre_impressions" in present:
            self._materialise("pre_session_values",
                              stage1.substitute(sessions="pre_sessions", impressions="pre_impressions", **tables))
        else:
            self._materialise("pre_session_values", "SELECT * FROM session_values WHERE FALSE")
        self.has_pre = self._sql("SELECT COUNT(*) AS n FROM pre_session_values").collect()[0][0] > 0

    def _sql(self, duckdb_sql: str) -> DataFrame:
        return self.spark.sql(to_spark(duckdb_sql))

    def _materialise(self, name: str, duckdb_sql: str) -> None:
        """``CREATE TEMP TABLE name AS duckdb_sql``: a cached DataFrame behind a temp view."""
        df = self._sql(duckdb_sql).persist()
        df.count()
        old = self._cached.pop(name, None)
        df.createOrReplaceTempView(name)
        self._cached[name] = df
        if old is not None:
            old.unpersist()

    def close(self) -> None:
        for df in self._cached.values():
            df.unpersist()
        self._cached.clear()

    def days(self) -> list[str]:
        rows = self._sql("SELECT DISTINCT day FROM session_values WHERE arm IS NOT NULL ORDER BY day").collect()
        return [r[0].isoformat() for r in rows]

    def _unit_values(self, segment: str, day_filter: str = "TRUE") -> None:
        seg = f"'{OVERALL}'" if segment == OVERALL else segment
        self._materialise("unit_values", sql_template("02_unit_values.sql").substitute(segment=seg,
                                                                                       day_filter=day_filter))

    def _arm_stats(self, metrics: Sequence[Metric]) -> pd.DataFrame:
        stage3 = sql_template("03_arm_stats.sql")
        query = "\nUNION ALL\n".join(f"({stage3.substitute(metric_expressions(m))})" for m in metrics)
        return _to_pandas(self._sql(query + "\nORDER BY metric, arm, segment_value"))

    def unit_counts(self, segments: Sequence[str] = ()) -> pd.DataFrame:
        frames = []
        for segment in (OVERALL, *segments):
            seg = f"'{OVERALL}'" if segment == OVERALL else segment
            frames.append(_to_pandas(self._sql(f"""
                SELECT '{segment}' AS segment, segment_value, arm, COUNT(*) AS units FROM (
                    SELECT DISTINCT unit_id, arm, {seg} AS segment_value FROM session_values WHERE arm IS NOT NULL)
                GROUP BY segment_value, arm ORDER BY segment_value, arm""")))
        return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Replay

_RESULT_SCHEMA = pa.schema([("index", pa.int64()), ("sessions", pa.int64()), ("impressions", pa.int64()),
                            ("seconds", pa.string()), ("scored", pa.string())])


def _partition_task(state_bc, parts: list[tuple[int, str, str]]) -> Callable:
    """The ``mapInArrow`` function: replay each partition index it receives with the local code."""

    def run(batches):
        from abplatform import simulate

        for batch in batches:
            for i in batch.column(0).to_pylist():
                simulate._STATE.update(state_bc.value)
                try:
                    n, imps, seconds, scored = simulate._replay_partition(parts[i])
                finally:
                    simulate._STATE.clear()
                yield pa.RecordBatch.from_pylist(
                    [{"index": i, "sessions": n, "impressions": imps, "seconds": json.dumps(seconds),
                      "scored": json.dumps(scored)}], schema=_RESULT_SCHEMA)

    return run


def _finish_replay(dataset: Dataset, tmp: Path, out: Path) -> None:
    """What :func:`abplatform.simulate.replay` does after its partitions (kept in step with it):
    de-duplicate the relevance labels, link the copied tables, then rename into place."""
    from abplatform.simulate import COPIED_TABLES, _link_or_copy

    con = duckdb.connect()
    labels = con.sql(f"""SELECT DISTINCT * FROM read_parquet('{tmp / '_relevance_labels' / '*.parquet'}')
                         ORDER BY query, item_id""").to_arrow_table().cast(RELEVANCE_LABELS.schema)
    con.close()
    shutil.rmtree(tmp / "_relevance_labels")
    (tmp / "relevance_labels").mkdir()
    pq.write_table(labels, tmp / "relevance_labels" / "part-00000.parquet", compression="zstd")
    for table in COPIED_TABLES:
        for f in dataset.files(table):
            _link_or_copy(f, tmp / table / f.name)
    if (dataset.path / "world.json").is_file():
        shutil.copy2(dataset.path / "world.json", tmp / "world.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def spark_replay(dataset: Dataset, spec, out_dir: str | Path, progress: Callable[[int, int], None] | None = None,
                 spark: SparkSession | None = None, master: str = DEFAULT_MASTER,
                 conf: Mapping[str, Any] | None = None):
    """:func:`abplatform.simulate.replay` with the partitions run as Spark tasks.

    One task per (sessions, candidates) partition; the fitted rankers, catalog and world truth go
    to the executors once, as a broadcast. Executors read the input files and write the output
    files by path, so ``dataset`` and ``out_dir`` must be on storage every executor mounts at the
    same path (local disk for ``local[N]``; NFS / a FUSE mount of the lake on a cluster).
    ``spec.workers`` is ignored: parallelism is the cluster's. Returns a ``ReplayResult``.
    """
    from abplatform.rankers import Catalog
    from abplatform.simulate import ReplayResult, partitions
    from abplatform.world.truth import load_truth

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parts = partitions(dataset)
    session = spark if spark is not None else spark_session(master, conf)
    sc = session.sparkContext
    state = sc.broadcast({"spec": spec, "catalog": Catalog.from_dataset(dataset),
                          "truth": load_truth(dataset.path, spec.behaviour), "out": tmp.resolve()})
    try:
        rows = (session.range(0, len(parts), 1, numPartitions=len(parts))
                .mapInArrow(_partition_task(state, parts), _RESULT_SCHEMA).toArrow().to_pylist())
    finally:
        state.destroy()
    seconds = {a.name: 0.0 for a in spec.arms}
    scored = {a.name: 0 for a in spec.arms}
    totals = [0, 0]
    for done, r in enumerate(sorted(rows, key=lambda r: r["index"]), start=1):
        totals[0] += r["sessions"]
        totals[1] += r["impressions"]
        for a, s in json.loads(r["seconds"]).items():
            seconds[a] += s
        for a, s in json.loads(r["scored"]).items():
            scored[a] += s
        if progress:
            progress(done, len(parts))
    _finish_replay(dataset, tmp, out)
    return ReplayResult(out, totals[0], totals[1], seconds, scored)
