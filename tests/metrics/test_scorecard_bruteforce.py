"""Every scorecard number, recomputed by brute force from per-user pandas frames with scipy /
statsmodels, must match the SQL sufficient statistics + stats engine path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from abplatform.config import Experiment
from abplatform.dataset import Dataset
from abplatform.scorecard import build_scorecard

REL = 1e-9


def per_user(replay_dir) -> pd.DataFrame:
    """Per-user totals straight from the parquet files, with pandas (fine at test size)."""
    s = pd.read_parquet(replay_dir / "sessions")
    i = pd.read_parquet(replay_dir / "impressions")
    labels = pd.read_parquet(replay_dir / "relevance_labels")
    pages = pd.read_parquet(replay_dir / "page_labels")
    i = i.merge(s[["session_id", "query"]], on="session_id").merge(labels, on=["query", "item_id"], how="left")
    i["judged"] = i["grade"].notna().astype(int)
    sess = i.groupby("session_id").agg(impressions=("item_id", "size"), clicks=("clicked", "sum"),
                                       purchases=("purchased", "sum"), orders=("orders", "sum"),
                                       judged_impressions=("judged", "sum"), grade_sum=("grade", "sum"))
    sess = s[["session_id", "unit_id", "arm"]].merge(sess, on="session_id", how="left").fillna(0)
    sess = sess.merge(pages, on="session_id", how="left")
    sess["judged_pages"] = sess["good"].notna().astype(int)
    sess["good_pages"] = sess["good"].fillna(False).astype(int)
    u = sess.groupby(["unit_id", "arm"]).sum(numeric_only=True).reset_index()
    u["buyer"] = (u["purchases"] > 0).astype(float)
    return u


def welch(x_c: np.ndarray, x_t: np.ndarray) -> tuple[float, float, float, float]:
    cm = CompareMeans(DescrStatsW(x_t), DescrStatsW(x_c))
    lo, hi = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    p = sps.ttest_ind(x_t, x_c, equal_var=False).pvalue
    return x_t.mean() - x_c.mean(), lo, hi, p


def proportion_wald(x_c: np.ndarray, x_t: np.ndarray) -> tuple[float, float, float, float]:
    """Per-arm variance p(1 - p) (ddof 0, the Wald form) with Welch-Satterthwaite degrees of freedom."""
    vc, vt = x_c.var(ddof=0) / len(x_c), x_t.var(ddof=0) / len(x_t)
    se = np.sqrt(vc + vt)
    df = (vc + vt) ** 2 / (vc**2 / (len(x_c) - 1) + vt**2 / (len(x_t) - 1))
    diff = x_t.mean() - x_c.mean()
    q = sps.t.ppf(0.975, df)
    return diff, diff - q * se, diff + q * se, 2 * sps.t.sf(abs(diff / se), df)


def delta_ratio(x_c, y_c, x_t, y_t) -> tuple[float, float, float, float]:
    """Ratio of sums per arm. Variance from each user's linearised value e = (x - R y) / mean(y),
    times the first-order jackknife leverage factor k = 1 + 2 (n h - 1) / (n - 1) with
    h = sum(e^2 y) / (sum(y) sum(e^2)); per-arm df = Kish's effective n - 1 = (sum y)^2 / sum(y^2) - 1,
    combined by Welch-Satterthwaite (see abplatform/stats/moments.py for the sources)."""
    def arm(x, y):
        n = len(x)
        r = x.sum() / y.sum()
        e = x - r * y
        h = (e**2 * y).sum() / (y.sum() * (e**2).sum())
        k = 1 + 2 * (n * h - 1) / (n - 1)
        var = (e / y.mean()).var(ddof=1) * k
        return r, var / n, y.sum() ** 2 / (y**2).sum() - 1

    rc, vc, dfc = arm(x_c, y_c)
    rt, vt, dft = arm(x_t, y_t)
    se = np.sqrt(vc + vt)
    df = (vc + vt) ** 2 / (vc**2 / dfc + vt**2 / dft)
    q = sps.t.ppf(0.975, df)
    diff = rt - rc
    return diff, diff - q * se, diff + q * se, 2 * sps.t.sf(abs(diff / se), df)


@pytest.fixture(scope="module")
def card(small_replay):
    exp = Experiment.model_validate({
        "name": "bruteforce", "arms": [{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}],
        "statistics": {"cuped": False, "correction": "none"}, "segments": [],
    })
    return build_scorecard(Dataset(small_replay), exp)


def test_every_number_matches_brute_force(card, small_replay):
    u = per_user(small_replay)
    c, t = u[u.arm == "control"], u[u.arm == "treatment"]
    expected = {
        "buyer_conversion": proportion_wald(c["buyer"].to_numpy(), t["buyer"].to_numpy()),
        "order_volume": welch(c["orders"].to_numpy(float), t["orders"].to_numpy(float)),
        "item_ctr": delta_ratio(c["clicks"].to_numpy(float), c["impressions"].to_numpy(float),
                                t["clicks"].to_numpy(float), t["impressions"].to_numpy(float)),
        "page_good_rate": delta_ratio(c["good_pages"].to_numpy(float), c["judged_pages"].to_numpy(float),
                                      t["good_pages"].to_numpy(float), t["judged_pages"].to_numpy(float)),
        "relevance": delta_ratio(c["grade_sum"].to_numpy(float), c["judged_impressions"].to_numpy(float),
                                 t["grade_sum"].to_numpy(float), t["judged_impressions"].to_numpy(float)),
    }
    values = {
        "buyer_conversion": (c["buyer"].mean(), t["buyer"].mean()),
        "order_volume": (c["orders"].mean(), t["orders"].mean()),
        "item_ctr": (c["clicks"].sum() / c["impressions"].sum(), t["clicks"].sum() / t["impressions"].sum()),
        "page_good_rate": (c["good_pages"].sum() / c["judged_pages"].sum(), t["good_pages"].sum() / t["judged_pages"].sum()),
        "relevance": (c["grade_sum"].sum() / c["judged_impressions"].sum(),
                      t["grade_sum"].sum() / t["judged_impressions"].sum()),
    }
    overall = card.overall.set_index("metric")
    assert set(overall.index) == set(expected)
    for metric, (diff, lo, hi, p) in expected.items():
        row = overall.loc[metric]
        assert row["n_control"] == len(c) and row["n_treatment"] == len(t)
        assert row["control_value"] == pytest.approx(values[metric][0], rel=REL)
        assert row["treatment_value"] == pytest.approx(values[metric][1], rel=REL)
        assert row["rel_effect"] == pytest.approx(values[metric][1] / values[metric][0] - 1, rel=REL)
        assert row["abs_effect"] == pytest.approx(diff, rel=REL)
        assert row["abs_ci_low"] == pytest.approx(lo, rel=REL)
        assert row["abs_ci_high"] == pytest.approx(hi, rel=REL)
        assert row["p_value"] == pytest.approx(p, rel=1e-7, abs=1e-15)


def test_proportion_agrees_with_statsmodels_wald(card, small_replay):
    from statsmodels.stats.proportion import test_proportions_2indep

    u = per_user(small_replay)
    c, t = u[u.arm == "control"]["buyer"], u[u.arm == "treatment"]["buyer"]
    ref = test_proportions_2indep(t.sum(), len(t), c.sum(), len(c), method="wald", compare="diff")
    row = card.overall.set_index("metric").loc["buyer_conversion"]
    # the same Wald statistic; statsmodels refers it to the normal, we to t with ~2,500 df
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-2)
    assert row["abs_effect"] / row["abs_se"] == pytest.approx(ref.statistic, rel=1e-9)


def test_srm_matches_scipy_chisquare(card, small_replay):
    u = per_user(small_replay)
    n = u.groupby("arm").size()
    expected = sps.chisquare([n["control"], n["treatment"]]).pvalue
    overall = card.srm[card.srm.segment == "all"].iloc[0]
    assert overall["p_value"] == pytest.approx(expected, rel=REL)
    assert overall["n_control"] == n["control"] and overall["n_treatment"] == n["treatment"]


def test_long_tail_metrics_match_brute_force(card, small_replay):
    items = pd.read_parquet(small_replay / "items")
    pre = pd.read_parquet(small_replay / "pre_impressions").groupby("item_id").size()
    pop = items.set_index("item_id")[["category"]].assign(n=pre).fillna({"n": 0})
    pop = pop.reset_index().sort_values(["n", "item_id"], ascending=[False, True]).reset_index(drop=True)
    pop["is_tail"] = (pop.index + 1 > 0.2 * len(pop)).astype(int)
    pop["novelty"] = -np.log2((pop["n"] + 1) / (pop["n"].sum() + len(pop)))
    s = pd.read_parquet(small_replay / "sessions")
    i = pd.read_parquet(small_replay / "impressions").merge(s[["session_id", "unit_id", "arm"]], on="session_id")
    i = i.merge(pop[["item_id", "category", "is_tail", "novelty"]], on="item_id")
    i["tail_click"] = i["clicked"] & (i["is_tail"] == 1)

    def entropy(g):
        p = g.value_counts(normalize=True).to_numpy()
        return -(p * np.log2(p)).sum()

    u = i.groupby(["unit_id", "arm"]).agg(n=("item_id", "size"), n_tail=("is_tail", "sum"), clicks=("clicked", "sum"),
                                          tail_clicks=("tail_click", "sum"), novelty=("novelty", "sum"),
                                          entropy=("category", entropy)).reset_index()
    lt = card.long_tail.set_index("metric")
    arms = card.long_tail_arms.set_index("arm")
    for arm, col in (("control", "control_value"), ("treatment", "treatment_value")):
        g = u[u.arm == arm]
        assert lt.loc["tail_impression_share", col] == pytest.approx(g.n_tail.sum() / g.n.sum(), rel=REL)
        assert lt.loc["tail_click_share", col] == pytest.approx(g.tail_clicks.sum() / g.clicks.sum(), rel=REL)
        assert lt.loc["novelty", col] == pytest.approx(g.novelty.sum() / g.n.sum(), rel=REL)
        assert lt.loc["category_entropy", col] == pytest.approx(g.entropy.mean(), rel=REL)
        exposure = i[i.arm == arm].groupby("item_id").size().reindex(items["item_id"], fill_value=0)
        x = np.sort(exposure.to_numpy().astype(float))
        m = len(x)
        gini = ((2 * np.arange(1, m + 1) - m - 1) * x).sum() / (m * x.sum())
        assert arms.loc[arm, "exposure_gini"] == pytest.approx(gini, rel=REL)
        assert arms.loc[arm, "coverage"] == pytest.approx((x > 0).mean(), rel=REL)


@pytest.mark.slow
def test_analyze_summary_reproduces_the_full_run(card, tmp_path):
    """The aggregates of a full run, given to `abplatform analyze-summary`, give the same scorecard."""
    import json
    import subprocess
    import sys

    suff = card.sufficient_stats[card.sufficient_stats["segment"] == "all"].copy()
    types = card.overall.set_index("metric")["type"]
    suff.insert(2, "type", suff["metric"].map(types))
    cols = ["metric", "arm", "type", "n", "sum_x", "sum_x2", "sum_y", "sum_y2", "sum_xy", "sum_x2y", "sum_xy2", "sum_y3"]
    suff.sort_values(["metric", "arm"])[cols].to_csv(tmp_path / "summary.csv", index=False)
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "analyze-summary", "summary.csv", "--out", "card.json",
                          "--json"],
                         cwd=tmp_path, capture_output=True, text=True, check=True)
    assert json.loads(res.stdout) == json.loads((tmp_path / "card.json").read_text())
    rows = {m["metric"]: m for m in json.loads(res.stdout)["metrics"]}
    for _, r in card.overall.iterrows():
        m = rows[r["metric"]]
        for key in ("control_value", "treatment_value", "abs_ci_low", "abs_ci_high", "rel_ci_low", "rel_ci_high",
                    "p_value"):
            assert m[key] == pytest.approx(r[key], rel=1e-9), (r["metric"], key)
