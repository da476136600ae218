"""Online logs come in through a column mapping (parquet or CSV alike); user-defined metrics are
computed in SQL exactly as a pandas brute force computes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from abplatform.config import Experiment, load_experiment
from abplatform.dataset import Dataset
from abplatform.metrics.engine import MetricsEngine
from abplatform.scorecard import build_scorecard, experiment_metrics

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


def _online(tmp_path: Path, as_csv: bool) -> tuple[Experiment, Dataset]:
    exp, _ = load_experiment(EXPERIMENTS / "onesearch_online_ab.yaml")
    log = tmp_path / "log"
    shutil.copytree(EXPERIMENTS / "data" / "onesearch_online_ab", log)
    if as_csv:
        for f in log.glob("*.parquet"):
            pacsv.write_csv(pq.read_table(f), f.with_suffix(".csv"))
            f.unlink()
    return exp, Dataset(log, exp.data.tables, exp.data.mapping)


def test_online_log_imports_identically_from_parquet_and_csv(tmp_path):
    exp, parquet = _online(tmp_path / "p", as_csv=False)
    _, csv = _online(tmp_path / "c", as_csv=True)
    metrics = experiment_metrics(exp)
    a = MetricsEngine(parquet, metrics).sufficient_stats(metrics, ["query_segment"])
    b = MetricsEngine(csv, metrics).sufficient_stats(metrics, ["query_segment"])
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    raw = pd.read_parquet(EXPERIMENTS / "data" / "onesearch_online_ab" / "sessions.parquet")
    users = raw.groupby("variant")["user_id"].nunique()
    overall = a[(a.segment == "all") & (a.metric == "item_ctr")].set_index("arm")["n"]
    assert overall.to_dict() == users.to_dict()


@pytest.fixture(scope="module")
def user_metric_card(small_replay):
    exp = Experiment.model_validate({
        "name": "user_metrics", "arms": [{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}],
        "statistics": {"cuped": False}, "segments": [],
        "metrics": [
            {"name": "item_ctr", "role": "primary"},
            {"name": "top3_ctr", "type": "ratio", "numerator": {"column": "clicked", "filter": "position <= 3"},
             "denominator": {"agg": "count", "filter": "position <= 3"}},
            {"name": "tail_revenue", "type": "mean",
             "numerator": {"column": "revenue * 2 - orders", "filter": "query_segment = 'tail' AND NOT is_new_user"}},
            {"name": "deep_clicker", "type": "proportion", "numerator": {"agg": "max", "column": "clicked",
                                                                          "filter": "position > 5"}},
        ]})
    return build_scorecard(Dataset(small_replay), exp).overall.set_index("metric")


def test_user_metrics_match_pandas(user_metric_card, small_replay):
    s = pd.read_parquet(small_replay / "sessions")
    i = pd.read_parquet(small_replay / "impressions").merge(s, on="session_id")
    i["top3_click"] = (i["clicked"] & (i["position"] <= 3)).astype(float)
    i["top3"] = (i["position"] <= 3).astype(float)
    tail = (i["query_segment"] == "tail") & ~i["is_new_user"]
    i["tail_rev"] = (i["revenue"] * 2 - i["orders"]).where(tail, 0.0)
    i["deep_click"] = (i["clicked"] & (i["position"] > 5)).astype(float)
    u = i.groupby(["unit_id", "arm"]).agg(top3_click=("top3_click", "sum"), top3=("top3", "sum"),
                                          tail_rev=("tail_rev", "sum"), deep=("deep_click", "max")).reset_index()
    for arm, col in (("control", "control_value"), ("treatment", "treatment_value")):
        g = u[u.arm == arm]
        card = user_metric_card
        assert card.loc["top3_ctr", col] == pytest.approx(g.top3_click.sum() / g.top3.sum(), rel=1e-9)
        assert card.loc["tail_revenue", col] == pytest.approx(g.tail_rev.mean(), rel=1e-9)
        assert card.loc["deep_clicker", col] == pytest.approx(g.deep.mean(), rel=1e-9)
        assert card.loc["top3_ctr", f"n_{arm}"] == len(g)


def test_any_session_column_can_be_a_segment_and_pre_window_limits_covariates(tmp_path):
    import numpy as np

    exp, _ = load_experiment(EXPERIMENTS / "onesearch_online_ab.yaml")
    log = tmp_path / "log"
    shutil.copytree(EXPERIMENTS / "data" / "onesearch_online_ab", log)
    s = pq.read_table(log / "sessions.parquet")
    platform = np.where(s["sid"].to_numpy() % 3 == 0, "ios", "web")
    pq.write_table(s.append_column("platform", pa.array(platform.tolist())), log / "sessions.parquet")
    exp = exp.model_copy(update={"segments": ["platform"]})
    metrics = experiment_metrics(exp)
    engine = MetricsEngine(Dataset(log, exp.data.tables, exp.data.mapping), metrics, extra_segments=["platform"],
                           pre_period_days=3)
    by_platform = engine.sufficient_stats(metrics, ["platform"]).query("segment == 'platform'")
    raw = pd.read_parquet(log / "sessions.parquet")
    expected = raw.groupby(["platform", "variant"])["user_id"].nunique()
    for metric, rows in by_platform.groupby("metric"):
        got = rows.set_index(["segment_value", "arm"])["n"]
        assert {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in expected.items()}, metric
    suff = engine.sufficient_stats(metrics).query("metric == 'order_volume'").set_index("arm")
    pre_s = pd.read_parquet(log / "pre_sessions.parquet")
    pre_i = pd.read_parquet(log / "pre_impressions.parquet")
    start = raw["event_time"].min().normalize()
    recent = pre_s[pre_s["event_time"] >= start - pd.Timedelta(days=3)]
    orders = pre_i.merge(recent[["sid", "user_id"]], on="sid").groupby("user_id")["n_orders"].sum()
    arm_of = raw.groupby("user_id")["variant"].first()
    for arm in ("control", "treatment"):
        users = arm_of[arm_of == arm].index
        assert suff.loc[arm, "sum_xp"] == pytest.approx(orders.reindex(users).fillna(0).sum(), rel=1e-12)
