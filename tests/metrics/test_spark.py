"""Spark parity: the same metrics SQL and the same replay on Spark give duckdb's / the local numbers.

Runs on Spark ``local[2]`` (one session for the module). Skipped only when pyspark is not
installed (``pip install 'abplatform[spark]'``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark", reason="pyspark not installed (pip install 'abplatform[spark]')")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java 17 (no java on PATH, JAVA_HOME unset)", allow_module_level=True)

# pyspark 4.3 warns about pandas 3 on every version check; nothing here goes through pyspark's pandas code.
pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]

from abplatform import stats  # noqa: E402
from abplatform.dataset import Dataset  # noqa: E402
from abplatform.metrics import BUILTIN_METRICS  # noqa: E402
from abplatform.metrics.backends import make_metrics_engine  # noqa: E402
from abplatform.metrics.engine import MetricsEngine  # noqa: E402
from abplatform.metrics.spark_engine import SparkMetricsEngine  # noqa: E402
from abplatform.metrics.transpile import NotPortableError, to_spark  # noqa: E402
from abplatform.replay import replay  # noqa: E402
from abplatform.replay.spark_executor import SparkExecutor  # noqa: E402
from abplatform.scorecard import metric_specs  # noqa: E402
from abplatform.spark_session import spark_session  # noqa: E402
from abplatform.vocabulary import SEGMENT_COLUMNS  # noqa: E402
from tests.conftest import replay_spec  # noqa: E402

# Every built-in metric, plus a percentile-capped one so the cap path (quantile_cont -> percentile)
# runs on both engines.
METRICS = [*BUILTIN_METRICS.values(),
           BUILTIN_METRICS["order_volume"].with_options(name="order_volume_p99", cap_percentile=0.99)]
INT_COLUMNS = ["n"]
REL = 1e-9


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]", {"spark.sql.shuffle.partitions": "1"})
    yield session
    session.stop()


# Engine options beyond the defaults, so their SQL runs on Spark too (a 2-day pre-period window).
ENGINE_OPTIONS = {"pre_period_days": 2}


@pytest.fixture(scope="module")
def engines(small_replay, spark):
    duck = MetricsEngine(Dataset(small_replay), METRICS, **ENGINE_OPTIONS)
    sp = SparkMetricsEngine(Dataset(small_replay), METRICS, spark=spark, **ENGINE_OPTIONS)
    yield duck, sp
    duck.close()
    sp.close()


@pytest.fixture(scope="module")
def both(engines):
    duck, sp = engines
    return {
        "sufficient": (duck.sufficient_stats(METRICS, SEGMENT_COLUMNS), sp.sufficient_stats(METRICS, SEGMENT_COLUMNS)),
        "daily": (duck.daily_sufficient_stats(METRICS), sp.daily_sufficient_stats(METRICS)),
        "daily_segments": (duck.daily_segment_sufficient_stats(METRICS, SEGMENT_COLUMNS),
                           sp.daily_segment_sufficient_stats(METRICS, SEGMENT_COLUMNS)),
        "long_tail": (duck.long_tail_stats(), sp.long_tail_stats()),
    }


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Same columns, dtypes and row order; integer columns exactly, floats to 1e-9 relative."""
    assert list(a.columns) == list(b.columns)
    assert list(a.dtypes) == list(b.dtypes)
    assert len(a) == len(b)
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        if pd.api.types.is_float_dtype(a[c]):
            assert np.array_equal(np.isnan(x), np.isnan(y)), c
            ok = ~np.isnan(x)
            np.testing.assert_allclose(y[ok], x[ok], rtol=REL, atol=0, err_msg=c)
        else:
            assert (x == y).all(), c


@pytest.mark.parametrize("kind", ["sufficient", "daily", "daily_segments"])
def test_sufficient_statistics_equal_duckdb(both, kind):
    duck, sp = both[kind]
    assert len(duck) > 0
    assert_same_frame(duck, sp)


def test_long_tail_statistics_equal_duckdb(both):
    duck, sp = both["long_tail"]
    assert duck is not None and sp is not None
    for a, b in zip(duck, sp, strict=True):
        assert len(a) > 0
        assert_same_frame(a, b)


def test_integer_valued_sums_are_exact(both):
    duck, sp = both["sufficient"]
    counts = duck["metric"].isin(["item_ctr", "buyer_conversion", "order_volume", "relevance", "page_good_rate"])
    for c in ("n", "sum_x", "sum_x2", "sum_y", "sum_xy", "sum_xp", "sum_x_xp"):
        x, y = duck.loc[counts, c].to_numpy(), sp.loc[counts, c].to_numpy()
        ok = ~pd.isna(x)
        assert (x[ok] == y[ok]).all(), c


def test_days_equal(engines):
    duck, sp = engines
    assert sp.days() == duck.days()
    assert sp.has_pre == duck.has_pre is True


def test_scorecards_equal(both):
    specs = metric_specs(METRICS)
    duck, sp = both["sufficient"]
    for by, rows in ((None, lambda d: d[d["segment"] == "all"]), (["segment", "segment_value"], lambda d: d)):
        kw = dict(alpha=0.05, cuped=True, correction="holm", **({"by": by} if by else {}))
        a = stats.compare(rows(duck), specs, "control", "treatment", **kw)
        b = stats.compare(rows(sp), specs, "control", "treatment", **kw)
        assert_same_frame(a, b)


def test_factory(small_replay, spark):
    duck = make_metrics_engine(Dataset(small_replay))
    assert type(duck) is MetricsEngine
    duck.close()
    eng = make_metrics_engine(Dataset(small_replay), "spark", {"master": "local[2]", "conf": {}}, METRICS)
    try:
        assert isinstance(eng, SparkMetricsEngine)
        assert eng.days()
    finally:
        eng.close()


def test_transpile_traps():
    sql = to_spark("SELECT quantile_cont(CAST(x AS DOUBLE), 0.5) AS q, a / NULLIF(b, 0) AS r, a / b AS s, a / 2 AS h FROM t")
    assert "PERCENTILE(" in sql.upper() and "PERCENTILE_CONT" not in sql.upper()
    assert sql.count("NULLIF") == 2 and "a / 2" in sql  # a / b guarded for ANSI mode, literals left alone
    for bad in ("SELECT SUM(clicked = TRUE) FROM t",
                "SELECT * FROM t QUALIFY ROW_NUMBER() OVER (ORDER BY a) = 1"):
        with pytest.raises(NotPortableError):
            to_spark(bad)


def _table(path, name):
    t = pq.read_table(path / name).to_pandas()
    keys = [c for c in ("session_id", "position", "query", "item_id") if c in t.columns]
    return t.sort_values(keys).reset_index(drop=True)


def _split_world(world, dst, parts: int = 3):
    """The small world with its sessions and candidates re-cut into ``parts`` co-partitioned files
    (everything else hard-linked), so the Spark replay runs several tasks."""
    shutil.copytree(world, dst, copy_function=os.link, ignore=shutil.ignore_patterns("sessions", "candidates"))
    sessions = pq.read_table(world / "sessions")
    cands = pq.read_table(world / "candidates")
    ids = np.sort(sessions["session_id"].to_numpy())
    edges = [ids[len(ids) * k // parts] for k in range(1, parts)]
    bounds = [None, *edges, None]
    for table, data in (("sessions", sessions), ("candidates", cands)):
        (dst / table).mkdir()
        for k in range(parts):
            lo, hi = bounds[k], bounds[k + 1]
            mask = pc.and_(pc.greater_equal(data["session_id"], lo) if lo is not None else pc.is_valid(data["session_id"]),
                           pc.less(data["session_id"], hi) if hi is not None else pc.is_valid(data["session_id"]))
            pq.write_table(data.filter(mask), dst / table / f"part-{k:05d}.parquet")
    return dst


def test_spark_replay_writes_the_local_events(small_world, small_replay, spark, tmp_path):
    # The small_replay fixture's spec, on the same sessions cut into 3 partitions and with another
    # batch size: events are keyed by (seed, session id), so neither the partitioning, the batch
    # size nor the engine may change them.
    world = _split_world(small_world, tmp_path / "world3")
    spec = replay_spec(small_world, batch_size=333)
    res = replay(Dataset(world), spec, tmp_path / "spark", executor=SparkExecutor(spark=spark))
    jobs = spark.sparkContext.statusTracker().getJobIdsForGroup("abplatform-replay")
    assert jobs, "the replay did not run as a Spark job"
    assert sorted(p.name for p in (res.path / "impressions").glob("*.parquet")) == [
        f"part-{k:05d}.parquet" for k in range(3)]
    assert res.sessions > 0 and res.impressions > 0
    for name in ("sessions", "impressions", "page_labels", "relevance_labels", "pre_sessions", "items"):
        local, sp = _table(small_replay, name), _table(res.path, name)
        assert len(local) > 0, name
        pd.testing.assert_frame_equal(local, sp, check_exact=True, obj=name)
    assert not list(res.path.parent.glob(".tmp-*")), "the replay left its temporary folder"


# --- a log shaped unlike ours: foreign names, per-file arms, constants, expressions, an extra segment -------

FOREIGN_MAPPING = {
    "sessions": {"session_id": "sid", "unit_id": "uid", "ts": "when_", "query": "q", "query_segment": "band",
                 "query_complexity": "kind", "is_new_user": "newbie"},
    "impressions": {"session_id": "sid", "position": "rank", "item_id": "sku",
                    "clicked": {"expression": "CASE WHEN clk = 1 THEN TRUE ELSE FALSE END"},
                    "purchased": "bought", "orders": {"expression": "coalesce(n_orders, 0)"},
                    "revenue": {"constant": 0.0}},
}


@pytest.fixture(scope="module")
def foreign_log(small_replay, tmp_path_factory):
    """small_replay's experiment period as one parquet file of impressions per arm, each row carrying its
    session's columns under other names (no sessions table, no arm column), plus a 'device' column."""
    import duckdb

    out = tmp_path_factory.mktemp("foreign") / "log"
    con = duckdb.connect()
    for arm in ("control", "treatment"):
        (out / "imp" / arm).mkdir(parents=True)
        con.execute(f"""COPY (
            SELECT s.session_id AS sid, s.unit_id AS uid, s.ts AS when_, s.query AS q, s.query_segment AS band,
                   s.query_complexity AS kind, s.is_new_user AS newbie,
                   CASE WHEN hash(s.unit_id) % 3 = 0 THEN 'desktop' ELSE 'mobile' END AS device,
                   i.position AS rank, i.item_id AS sku, CAST(i.clicked AS INTEGER) AS clk, i.purchased AS bought,
                   CASE WHEN i.orders = 0 THEN NULL ELSE i.orders END AS n_orders
            FROM read_parquet('{small_replay}/sessions/*.parquet') s
            JOIN read_parquet('{small_replay}/impressions/*.parquet') i USING (session_id)
            WHERE s.arm = '{arm}' ORDER BY sid, rank) TO '{out}/imp/{arm}/part-0.parquet' (FORMAT parquet)""")
    for table in ("pre_sessions", "pre_impressions", "relevance_labels", "page_labels"):
        shutil.copytree(small_replay / table, out / table)
    return out


def test_mapped_per_file_arm_log_gives_the_same_statistics_on_both_engines(foreign_log, small_replay, spark):
    """Constants, expressions, {arm} file patterns, sessions derived from impressions and an extra segment
    column: Spark's sufficient statistics equal duckdb's, and both equal those of the contract-shaped log the
    foreign one was written from (revenue aside, which the mapping sets to 0)."""
    metrics = [m for m in METRICS if m.name != "revenue"]
    ds = Dataset(foreign_log, tables={"impressions": "imp/{arm}/*.parquet"}, mapping=FOREIGN_MAPPING)
    segments = [*SEGMENT_COLUMNS, "device"]
    duck = MetricsEngine(ds, metrics, extra_segments=["device"], **ENGINE_OPTIONS)
    sp = SparkMetricsEngine(Dataset(foreign_log, tables={"impressions": "imp/{arm}/*.parquet"},
                                    mapping=FOREIGN_MAPPING), metrics, extra_segments=["device"], spark=spark,
                            **ENGINE_OPTIONS)
    original = MetricsEngine(Dataset(small_replay), metrics, **ENGINE_OPTIONS)
    try:
        a, b = duck.sufficient_stats(metrics, segments), sp.sufficient_stats(metrics, segments)
        assert set(a["segment"]) == {"all", *segments} and len(a) > 0
        assert_same_frame(a, b)
        assert_same_frame(duck.daily_sufficient_stats(metrics), sp.daily_sufficient_stats(metrics))
        builtin = a[a["segment"] != "device"].reset_index(drop=True)
        assert_same_frame(builtin, original.sufficient_stats(metrics, SEGMENT_COLUMNS))
    finally:
        for e in (duck, sp, original):
            e.close()


def test_a_csv_log_gives_the_same_statistics_on_both_engines(spark):
    """The shipped session-randomised example: one CSV of impressions (Spark reads every column as text,
    cast by the same views), sessions derived from it, clicks mapped by an expression, unit: session."""
    from pathlib import Path

    folder = Path(__file__).parents[2] / "experiments" / "data" / "session_randomised"
    mapping = {"sessions": {"session_id": "sess", "unit_id": "visitor", "ts": "served_at", "arm": "bucket"},
               "impressions": {"session_id": "sess", "position": "slot", "item_id": "product",
                               "clicked": {"expression": "clk = 'yes'"}}}
    metrics = [BUILTIN_METRICS["item_ctr"]]

    def dataset() -> Dataset:
        return Dataset(folder, tables={"impressions": "events.csv"}, mapping=mapping)

    duck = MetricsEngine(dataset(), metrics, extra_segments=["device"], unit="session")
    sp = SparkMetricsEngine(dataset(), metrics, extra_segments=["device"], unit="session", spark=spark)
    try:
        a, b = duck.sufficient_stats(metrics, ["device"]), sp.sufficient_stats(metrics, ["device"])
        assert len(a) == 6  # overall and two devices, two arms
        assert_same_frame(a, b)
        assert_same_frame(duck.daily_sufficient_stats(metrics), sp.daily_sufficient_stats(metrics))
    finally:
        duck.close()
        sp.close()
