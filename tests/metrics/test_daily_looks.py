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
    s = sessions[["session_id", "unit_id", "arm", "ts"]].merge(per, on="session_id", how="left").fillna(0)
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


def test_daily_looks_equal_a_per_look_brute_force(small_replay, metrics):
    read = lambda t: pd.read_parquet(small_replay / t)  # noqa: E731
    labels = read("relevance_labels")
    pages = read("page_labels")
    exp = session_frame(read("sessions"), read("impressions"), labels, pages)
    exp = exp[exp["arm"].notna()]
    pre = session_frame(read("pre_sessions").assign(arm=None), read("pre_impressions"), labels, pages)
    pre_units = unit_values(pre, ["unit_id"])

    engine = MetricsEngine(Dataset(small_replay), metrics)
    try:
        daily = engine.daily_sufficient_stats(metrics)
    finally:
        engine.close()

    days = sorted(exp["day"].unique())
    assert sorted(daily["day"].unique()) == days and len(days) > 3
    checked = 0
    for day in days:
        units = unit_values(exp[exp["day"] <= day], ["unit_id", "arm"]).reset_index()
        covariates = pre_units.reindex(units["unit_id"]).fillna(0).set_index(units.index)
        for m in metrics:
            x, y = x_y(units, m.name)
            x = capped(x, m.name)
            xp, yp = x_y(covariates, m.name)  # covariates are never capped
            for arm in ("control", "treatment"):
                a = (units["arm"] == arm).to_numpy()
                row = daily[(daily["day"] == day) & (daily["metric"] == m.name) & (daily["arm"] == arm)]
                assert len(row) == 1, (day, m.name, arm)
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
                    assert row[col] == pytest.approx(value, rel=REL, abs=1e-9), (day, m.name, arm, col)
                checked += 1
    assert checked == len(days) * len(metrics) * 2
