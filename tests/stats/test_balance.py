"""Pre-period balance (an A/A check of the pre-period) and the sample ratio of each day's new units,
against scipy on the raw per-unit values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from abplatform.stats import balance_table, daily_srm_table, srm_test, suff_from_units
from abplatform.stats.multiple import holm


def _suff(metric: str, arm: str, x, y=None, xp=None, yp=None) -> dict:
    s = suff_from_units(np.asarray(x, float), None if y is None else np.asarray(y, float),
                        None if xp is None else np.asarray(xp, float), None if yp is None else np.asarray(yp, float))
    return {"metric": metric, "arm": arm, "segment": "all", "segment_value": "all",
            **{k: (v.item() if hasattr(v, "item") else v) for k, v in s.items()}}


def _units(rng, n, shift=0.0):
    x = rng.poisson(2.0, n).astype(float)
    xp = rng.poisson(2.0 + shift, n).astype(float)
    return x, xp


def test_mean_and_proportion_rows_equal_welch_ttest_on_the_pre_period_values():
    rng = np.random.default_rng(7)
    rows, raw = [], {}
    for arm, n, shift in (("control", 900, 0.0), ("treatment", 1100, 0.08)):
        x, xp = _units(rng, n, shift)
        b, bp = (rng.random(n) < 0.3).astype(float), (rng.random(n) < 0.3 + shift / 4).astype(float)
        rows += [_suff("orders", arm, x, xp=xp), _suff("conv", arm, b, xp=bp)]
        raw[arm] = {"orders": xp, "conv": bp}
    suff = pd.DataFrame(rows)
    out = balance_table(suff, {"orders": "mean", "conv": "proportion"}, [("treatment", "control")])
    assert list(out["metric"]) == ["orders", "conv"]
    ps = []
    for _, r in out.iterrows():
        ref = sps.ttest_ind(raw["treatment"][r["metric"]], raw["control"][r["metric"]], equal_var=False)
        assert r["t"] == pytest.approx(ref.statistic, rel=1e-9)
        assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert r["df"] == pytest.approx(ref.df, rel=1e-9)
        assert r["control_pre_value"] == pytest.approx(raw["control"][r["metric"]].mean())
        assert r["diff"] == pytest.approx(raw["treatment"][r["metric"]].mean() - raw["control"][r["metric"]].mean())
        ps.append(ref.pvalue)
    assert list(out["p_value_adjusted"]) == pytest.approx(list(holm(np.array(ps))))
    assert list(out["failed"]) == [p < 0.001 for p in holm(np.array(ps))]
    assert (out["threshold"] == 0.001).all()


def test_a_strong_pre_period_imbalance_fails_and_a_random_split_passes():
    rng = np.random.default_rng(3)
    bad, good = [], []
    for arm, shift in (("control", 0.0), ("treatment", 0.5)):
        x, xp = _units(rng, 2000, shift)
        bad.append(_suff("orders", arm, x, xp=xp))
        x, xp = _units(rng, 2000, 0.0)
        good.append(_suff("orders", arm, x, xp=xp))
    assert balance_table(pd.DataFrame(bad), {"orders": "mean"}, [("treatment", "control")])["failed"].item()
    ok = balance_table(pd.DataFrame(good), {"orders": "mean"}, [("treatment", "control")])
    assert not ok["failed"].item() and ok["p_value"].item() > 0.001


def test_ratio_rows_use_the_delta_method_on_the_pre_period_pairs():
    """Rp = Σxp/Σyp per arm, variance of the linearised value (xp − Rp·yp)/ȳp: the Welch test of the
    difference of the ratios, as moments.py linearises (x, y)."""
    rng = np.random.default_rng(11)
    raw, rows = {}, []
    for arm, n in (("control", 1500), ("treatment", 1300)):
        yp = rng.poisson(6, n).astype(float) + 1
        xp = rng.binomial(yp.astype(int), 0.1 if arm == "control" else 0.11).astype(float)
        y = rng.poisson(6, n).astype(float) + 1
        x = rng.binomial(y.astype(int), 0.1).astype(float)
        rows.append(_suff("ctr", arm, x, y, xp, yp))
        raw[arm] = (xp, yp)
    out = balance_table(pd.DataFrame(rows), {"ctr": "ratio"}, [("treatment", "control")]).iloc[0]
    est, var = {}, {}
    for arm, (xp, yp) in raw.items():
        r = xp.sum() / yp.sum()
        lin = (xp - r * yp) / yp.mean()
        est[arm], var[arm] = r, lin.var(ddof=1) / len(xp)
    se = np.sqrt(var["control"] + var["treatment"])
    t = (est["treatment"] - est["control"]) / se
    df = (var["control"] + var["treatment"]) ** 2 / (var["control"] ** 2 / 1499 + var["treatment"] ** 2 / 1299)
    assert out["treatment_pre_value"] == pytest.approx(est["treatment"])
    assert out["se"] == pytest.approx(se, rel=1e-9)
    assert out["t"] == pytest.approx(t, rel=1e-9)
    assert out["p_value"] == pytest.approx(2 * sps.t.sf(abs(t), df), rel=1e-9)


def test_rows_without_pre_period_sums_are_left_out_and_constant_values_have_no_test():
    rng = np.random.default_rng(1)
    rows = []
    for arm in ("control", "treatment"):
        x, _ = _units(rng, 50)
        rows.append(_suff("orders", arm, x))  # no pre-period
        rows.append(_suff("zero", arm, x, xp=np.zeros(50)))  # no pre-period activity at all
    suff = pd.DataFrame(rows)
    out = balance_table(suff, {"orders": "mean", "zero": "mean"}, [("treatment", "control")])
    assert list(out["metric"]) == ["zero"]
    assert np.isnan(out["p_value"].item()) and not out["failed"].item()
    assert balance_table(suff.drop(columns=[c for c in suff if c.startswith("sum_xp")]),
                         {"orders": "mean"}, [("treatment", "control")]).empty


def test_every_comparison_of_an_abn_run_is_its_own_holm_family():
    rng = np.random.default_rng(5)
    rows = []
    for arm in ("a", "b", "c"):
        for m in ("m1", "m2"):
            x, xp = _units(rng, 400)
            rows.append(_suff(m, arm, x, xp=xp))
    out = balance_table(pd.DataFrame(rows), {"m1": "mean", "m2": "mean"}, [("b", "a"), ("c", "a")])
    assert list(out["comparison"]) == ["b vs a", "b vs a", "c vs a", "c vs a"]
    for _, g in out.groupby("comparison"):
        assert list(g["p_value_adjusted"]) == pytest.approx(list(holm(g["p_value"].to_numpy())))


def test_daily_srm_tests_each_days_new_units_against_the_weights_with_holm_across_days():
    # cumulative units per day; day 3 adds 300 control units and only 150 treatment units
    cum = {"control": [100, 210, 510, 620], "treatment": [105, 205, 355, 460]}
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    daily = pd.DataFrame([{"day": d, "arm": a, "n": cum[a][i], "metric": "m"} for i, d in enumerate(days)
                          for a in ("control", "treatment")])
    out = daily_srm_table(daily, {"control": 1.0, "treatment": 1.0})
    assert list(out["day"]) == days
    assert list(out["n_control"]) == [100, 110, 300, 110] and list(out["n_treatment"]) == [105, 100, 150, 105]
    raw = [srm_test({"control": c, "treatment": t}, {"control": 1.0, "treatment": 1.0}).p_value
           for c, t in zip(out["n_control"], out["n_treatment"], strict=True)]
    assert list(out["p_value"]) == pytest.approx(raw)
    assert list(out["p_value"])[2] == pytest.approx(sps.binomtest(300, 450, 0.5).pvalue)  # small counts: exact
    assert list(out["p_value_adjusted"]) == pytest.approx(list(holm(np.array(raw))))
    assert list(out["failed"]) == [False, False, True, False]


def test_daily_srm_with_unequal_weights_and_a_late_arm():
    daily = pd.DataFrame([{"day": "d1", "arm": "control", "n": 900}, {"day": "d2", "arm": "control", "n": 1800},
                          {"day": "d2", "arm": "treatment", "n": 300}])
    out = daily_srm_table(daily, {"control": 3.0, "treatment": 1.0})
    assert list(out["n_treatment"]) == [0, 300] and list(out["n_control"]) == [900, 900]
    assert out["failed"].tolist() == [True, False]
    assert daily_srm_table(daily.iloc[:0], {"control": 1.0, "treatment": 1.0}).empty
