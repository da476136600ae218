"""Cumulative daily looks: the engine's one-pass (telescoped) statistics must equal a brute force
that recomputes every look from the parquet files with pandas — per-unit totals over the sessions
up to that day, the metric's x and y, caps, and the pre-period covariates."""

from __future__ import annotations

import pandas as pd
import pytest

from abplatform.config import Experiment
from abplatform.dataset import Dataset
from abplatform.metrics.engine import MetricsEngine
from abplatform.scorecard import experiment_metrics

REL = 1e-9
SUMS = ("sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy", "sum_x2y", "sum_xy2", "sum_y3",
        "sum_xp", "sum_xp2", "sum_x_xp", "sum_yp", "sum_yp2", "sum_xp_yp", "sum_x_yp", "sum_y_xp", "sum_y_yp")


@pytest.fixture(scope="module")
def metrics():
    exp = Experiment.model_validate({
        "name": "daily", "arms": [{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}],
        "metrics": [
            {"name": "item_ctr", "role": "primary"}, {"name": "buyer_conversion"}, {"name": "relevance"}, {"name": "page_good_rate"},
            {"name": "order_volume", "cap_value": 1.0},
            {"name": "top3_ctr", "type": "ratio", "numerator": {"column": "clicked", "filter": "position <= 3"},
             "denominator": {"agg": "count", "filter": "position <= 3"}},
            {"name": "deep_clicker", "type": "proportion", "numerator": {"agg": "max", "column": "clicked",
                                                                          "filter": "position > 5"}},
            {"name": "clicks_p90", "type": "mean", "numerator": {"column": "clicked"}, "cap_percentile": 0.9},
        ]})
    return experiment_metrics(exp)


def session_frame(sessions: pd.DataFrame, impressions: pd.DataFrame, labels: pd.DataFrame,
                  pages: pd.DataFrame) -> pd.DataFrame:
    """One row per session with the unit columns the metrics above use."""
    i = impressions.merge(sessions[["session_id", "query"]], on="session_id")
    i = i.merge(labels, on=["query", "item_id"], how="left")
    i["judged"] = i["grade"].notna().astype(float)
    i["top3_click"] = (i["clicked"] & (i["position"] <= 3)).astype(float)
    i["top3"] = (i["position"] <= 3).astype(float)
    i["deep_click"] = (i["clicked"] & (i["position"] > 5)).astype(float)
    per = i.groupby("session_id").agg(impressions=("item_id", "size"), clicks=("clicked", "sum"),
                                      purchases=("purchased", "sum"), orders=("orders", "sum"),
                                      judged_impressions=("judged", "sum"), grade_sum=("grade", "sum"),
                                      top3_click=("top3_click", "sum"), top3=("top3", "sum"),
                                      deep_click=("deep_click", "max"))
    s = sessions[["session_id", "unit_id", "arm", "ts", "query_segment"]].merge(per, on="session_id",
                                                                                 how="left").fillna(0)
    s = s.merge(pages, on="session_id", how="left")
    s["judged_pages"] = s["good"].notna().astype(float)
    s["good_pages"] = s["good"].astype("boolean").fillna(False).astype(float)
    s["day"] = pd.to_datetime(s["ts"], utc=True).dt.strftime("%Y-%m-%d")
    return s


def unit_values(s: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    cols = ["impressions", "clicks", "purchases", "orders", "judged_impressions", "grade_sum", "judged_pages",
            "good_pages", "top3_click", "top3"]
    u = s.groupby(by)[cols].sum()
    u["deep_click"] = s.groupby(by)["deep_click"].max()
    return u


def x_y(u: pd.DataFrame, metric: str) -> tuple[pd.Series, pd.Series]:
    """A metric's per-unit numerator (before any cap) and denominator."""
    one = pd.Series(1.0, index=u.index)
    return {
        "item_ctr": (u["clicks"], u["impressions"]),
        "buyer_conversion": ((u["purchases"] > 0).astype(float), one),
        "relevance": (u["grade_sum"], u["judged_impressions"]),
        "page_good_rate": (u["good_pages"], u["judged_pages"]),
        "order_volume": (u["orders"], one),
        "top3_ctr": (u["top3_click"], u["top3"]),
        "deep_clicker": (u["deep_click"], one),
        "clicks_p90": (u["clicks"], one),
    }[metric]


def capped(x: pd.Series, metric: str) -> pd.Series:
    """Caps on the look's per-unit numerators: absolute, or the 90th percentile of both arms' units."""
    if metric == "order_volume":
        return x.clip(upper=1.0)
    if metric == "clicks_p90":
        return x.clip(upper=x.quantile(0.9, interpolation="linear"))
    return x


def read_replay(small_replay) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiment's sessions with an arm (as :func:`session_frame`) and the pre-period's unit totals."""
    read = lambda t: pd.read_parquet(small_replay / t)  # noqa: E731
    labels = read("relevance_labels")
    pages = read("page_labels")
    exp = session_frame(read("sessions"), read("impressions"), labels, pages)
    exp = exp[exp["arm"].notna()]
    pre = session_frame(read("pre_sessions").assign(arm=None), read("pre_impressions"), labels, pages)
    return exp, unit_values(pre, ["unit_id"])


def assert_look(look: pd.DataFrame, sessions: pd.DataFrame, pre_units: pd.DataFrame, metrics, where) -> int:
    """The engine's rows of one look (one per metric × arm) equal the sums recomputed from ``sessions``
    (the look's sessions); returns the number of rows checked."""
    units = unit_values(sessions, ["unit_id", "arm"]).reset_index()
    covariates = pre_units.reindex(units["unit_id"]).fillna(0).set_index(units.index)
    checked = 0
    for m in metrics:
        x, y = x_y(units, m.name)
        x = capped(x, m.name)
        xp, yp = x_y(covariates, m.name)  # covariates are never capped
        for arm in ("control", "treatment"):
            a = (units["arm"] == arm).to_numpy()
            row = look[(look["metric"] == m.name) & (look["arm"] == arm)]
            assert len(row) == 1, (where, m.name, arm)
            row = row.iloc[0]
            assert row["n"] == a.sum()
            X, Y, XP, YP = (v.to_numpy(dtype=float)[a] for v in (x, y, xp, yp))
            expected = {"sum_x": X.sum(), "sum_x2": (X * X).sum(), "sum_xp": XP.sum(), "sum_xp2": (XP * XP).sum(),
                        "sum_x_xp": (X * XP).sum()}
            if m.type == "ratio":
                expected |= {"sum_y": Y.sum(), "sum_y2": (Y * Y).sum(), "sum_xy": (X * Y).sum(),
                             "sum_x2y": (X * X * Y).sum(), "sum_xy2": (X * Y * Y).sum(),
                             "sum_y3": (Y**3).sum(), "sum_yp": YP.sum(), "sum_y_yp": (Y * YP).sum(),
                             "sum_x_yp": (X * YP).sum(), "sum_y_xp": (Y * XP).sum()}
            for col, value in expected.items():
                assert row[col] == pytest.approx(value, rel=REL, abs=1e-9), (where, m.name, arm, col)
            checked += 1
    return checked


def test_daily_looks_equal_a_per_look_brute_force(small_replay, metrics):
    exp, pre_units = read_replay(small_replay)
    engine = MetricsEngine(Dataset(small_replay), metrics)
    try:
        daily = engine.daily_sufficient_stats(metrics)
    finally:
        engine.close()

    days = sorted(exp["day"].unique())
    assert sorted(daily["day"].unique()) == days and len(days) > 3
    checked = sum(assert_look(daily[daily["day"] == day], exp[exp["day"] <= day], pre_units, metrics, day)
                  for day in days)
    assert checked == len(days) * len(metrics) * 2


def test_daily_segment_looks_equal_a_per_look_brute_force(small_replay, metrics):
    """Per segment value: each look is the value's sessions up to that day, with percentile caps over the
    look's units of that value; the last look is the segment table's row."""
    exp, pre_units = read_replay(small_replay)
    engine = MetricsEngine(Dataset(small_replay), metrics)
    try:
        looks = engine.daily_segment_sufficient_stats(metrics, ["query_segment"])
        whole = engine.sufficient_stats(metrics, ["query_segment"])
    finally:
        engine.close()

    assert list(looks.columns[:5]) == ["metric", "segment", "segment_value", "day", "arm"]
    assert set(looks["segment"]) == {"query_segment"}
    days, values = sorted(exp["day"].unique()), sorted(exp["query_segment"].unique())
    assert sorted(looks["segment_value"].unique()) == values and len(values) == 3
    checked = 0
    for value in values:
        for day in days:
            look = looks[(looks["segment_value"] == value) & (looks["day"] == day)]
            sessions = exp[(exp["day"] <= day) & (exp["query_segment"] == value)]
            checked += assert_look(look, sessions, pre_units, metrics, (value, day))
    assert checked == len(values) * len(days) * len(metrics) * 2
    # cumulative: the last look is the whole period, the segment table's row
    last = looks[looks["day"] == days[-1]].drop(columns=["day"]).set_index(["metric", "segment_value", "arm"])
    table = whole[whole["segment"] == "query_segment"].set_index(["metric", "segment_value", "arm"])
    pd.testing.assert_frame_equal(last.loc[table.index, table.columns], table, rtol=REL)


def test_daily_segment_looks_of_no_segment_are_empty(small_replay, metrics):
    engine = MetricsEngine(Dataset(small_replay), metrics)
    try:
        assert engine.daily_segment_sufficient_stats(metrics, []).empty
    finally:
        engine.close()


@pytest.mark.parametrize("method", [None, "confidence_sequence", "obrien_fleming"])
def test_segment_values_daily_looks_are_tested_as_the_overall_ones(small_replay, method):
    """The scorecard's per-segment looks: fixed-horizon without a sequential analysis (the last look is then
    the segment table's unadjusted row), the confidence sequence with it (wider), and fixed-horizon under
    O'Brien–Fleming (a boundary table per segment value would cost seconds each); column ``sequential``."""
    from abplatform.scorecard import build_scorecard

    statistics = {"cuped": True, "correction": "holm"}
    if method is not None:
        statistics["sequential"] = {"method": method, "planned_units": 4000}
    exp = Experiment.model_validate({
        "name": "daily_segments", "arms": [{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}],
        "metrics": [{"name": "item_ctr", "role": "primary"}, {"name": "buyer_conversion"}],
        "segments": ["query_segment", "user_type"], "statistics": statistics})
    card = build_scorecard(Dataset(small_replay), exp)
    looks = card.daily_segments
    assert looks is not None and set(looks["segment"]) == {"query_segment", "user_type"}
    expected = "confidence_sequence" if method == "confidence_sequence" else None
    assert set(looks["sequential"].map(lambda v: v if isinstance(v, str) else None)) == {expected}
    last = looks[looks["day"] == looks["day"].max()].set_index(["metric", "segment", "segment_value"])
    table = card.segments.set_index(["metric", "segment", "segment_value"])
    same = ["n_control", "n_treatment", "control_value", "treatment_value", "abs_effect", "rel_effect", "theta"]
    pd.testing.assert_frame_equal(last.loc[table.index, same], table[same], rtol=1e-9)
    width = (last["rel_ci_high"] - last["rel_ci_low"]).loc[table.index]
    fixed = table["rel_ci_high"] - table["rel_ci_low"]
    if expected is None:
        pd.testing.assert_series_equal(width, fixed, rtol=1e-9)
    else:
        assert (width > fixed).all()
