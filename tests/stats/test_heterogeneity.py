"""Cochran's Q across segment values: equal to statsmodels' meta-analysis Q and to independent numpy
computations, calibrated under no heterogeneity, Holm-adjusted across the metrics of a segment."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests

from abplatform.stats import MetricSpec, compare_pairs
from abplatform.stats.heterogeneity import cochran_q, heterogeneity_table
from abplatform.stats.moments import suff_from_units


def _cells(rng, k):
    return rng.normal(0.1, 0.05, k), rng.uniform(0.005, 0.05, k)


def test_q_equals_statsmodels_combine_effects():
    rng = np.random.default_rng(1)
    for k in (2, 3, 4, 6, 9):
        for _ in range(5):
            theta, se = _cells(rng, k)
            ours = cochran_q(theta, se)
            sm = combine_effects(theta, se**2)
            het = sm.test_homogeneity()
            assert ours.q == pytest.approx(sm.q, rel=1e-12)
            assert ours.df == het.df == k - 1
            assert ours.p_value == pytest.approx(het.pvalue, rel=1e-9, abs=1e-300)
            assert ours.pooled == pytest.approx(sm.mean_effect_fe, rel=1e-12)
            assert (ours.cells, ours.cells_not_estimable) == (k, 0)


def _pairwise_q(theta, se):
    """Σ_{i<j} w_i w_j (θ_i − θ_j)² / Σ w: Q as a sum over pairs, without the pooled mean."""
    w = 1 / se**2
    return sum(w[i] * w[j] * (theta[i] - theta[j]) ** 2 for i in range(len(w)) for j in range(i + 1, len(w))) / w.sum()


def _wald_q(theta, se):
    """The Wald test of the k − 1 contrasts θ_i − θ_k with their covariance: (Cθ)ᵀ (C V Cᵀ)⁻¹ (Cθ)."""
    k = len(theta)
    c = np.hstack([np.eye(k - 1), -np.ones((k - 1, 1))])
    d = c @ theta
    return float(d @ np.linalg.solve(c @ np.diag(se**2) @ c.T, d))


def test_q_equals_brute_force_numpy():
    rng = np.random.default_rng(2)
    for k in (2, 3, 5, 8):
        theta, se = _cells(rng, k)
        ours = cochran_q(theta, se)
        assert ours.q == pytest.approx(_pairwise_q(theta, se), rel=1e-10)
        assert ours.q == pytest.approx(_wald_q(theta, se), rel=1e-9)
        assert ours.p_value == pytest.approx(sps.chi2.sf(_wald_q(theta, se), k - 1), rel=1e-8)


def test_two_cells_are_the_interaction_z_test():
    """Altman & Bland (2003): z = (θ1 − θ2) / √(se1² + se2²), and Q = z² with a two-sided normal p."""
    theta, se = np.array([0.12, 0.03]), np.array([0.02, 0.035])
    z = (theta[0] - theta[1]) / np.hypot(*se)
    res = cochran_q(theta, se)
    assert res.q == pytest.approx(z**2, rel=1e-12)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)


def test_cells_not_estimable_are_left_out_and_counted():
    theta = np.array([0.1, 0.3, 0.0, np.nan, 0.2, 0.25])
    se = np.array([0.02, 0.05, 0.0, 0.03, np.nan, np.inf])
    res = cochran_q(theta, se)
    assert (res.cells, res.cells_not_estimable, res.df) == (2, 4, 1)
    assert res.q == pytest.approx(cochran_q(theta[:2], se[:2]).q)
    one = cochran_q(np.array([0.1, 0.0]), np.array([0.02, 0.0]))
    assert np.isnan(one.q) and np.isnan(one.p_value) and (one.cells, one.cells_not_estimable, one.df) == (1, 1, 0)
    none = cochran_q(np.array([]), np.array([]))
    assert np.isnan(none.q) and none.cells == 0
    with pytest.raises(ValueError, match="shape"):
        cochran_q(np.ones(3), np.ones(2))


def _segment_suff(rng, effects, sizes, baselines, metrics=("m0",), reps=1):
    """Per-arm sufficient statistics of disjoint subgroups of units ("segment" rep<r>, values v0, v1, ...):
    skewed per-unit values, the subgroup's baseline plus its absolute effect in treatment."""
    rows = []
    for r in range(reps):
        for metric in metrics:
            for i, (effect, n, base) in enumerate(zip(effects, sizes, baselines, strict=True)):
                for arm, shift in (("control", 0.0), ("treatment", effect)):
                    x = base * rng.exponential(1.0, n) + shift
                    rows.append({"metric": metric, "segment": f"rep{r}", "segment_value": f"v{i}", "arm": arm,
                                 **{k: v.item() for k, v in suff_from_units(x).items()}})
    return pd.DataFrame(rows)


def _segments(suff, metrics):
    specs = {m: MetricSpec("mean") for m in metrics}
    return compare_pairs(suff, specs, [("treatment", "control")], by=["segment", "segment_value"])


def test_table_matches_its_own_rows_and_holm_across_a_segments_metrics():
    rng = np.random.default_rng(3)
    metrics = ["m0", "m1", "m2", "m3"]
    suff = _segment_suff(rng, effects=[0.0, 0.5, 1.5], sizes=[400, 700, 1000], baselines=[1.0, 2.0, 3.0],
                         metrics=metrics, reps=2)
    seg = _segments(suff, metrics)
    het = heterogeneity_table(seg, alpha=0.05)
    assert list(het[["segment", "metric"]].itertuples(index=False, name=None)) == \
        [(s, m) for s in ("rep0", "rep1") for m in metrics]
    assert (het["comparison"] == "treatment vs control").all()
    for _, h in het.iterrows():
        cells = seg[(seg["segment"] == h["segment"]) & (seg["metric"] == h["metric"])]
        sm = combine_effects(cells["abs_effect"].to_numpy(), cells["abs_se"].to_numpy() ** 2)
        assert h["q"] == pytest.approx(sm.q, rel=1e-12) and h["df"] == 2 and h["cells"] == 3
    for _, fam in het.groupby("segment"):
        expected = multipletests(fam["p_value"].to_numpy(), method="holm")[1]
        np.testing.assert_allclose(fam["p_value_adjusted"].to_numpy(), expected, rtol=1e-12)
        assert (fam["differs"] == (fam["p_value_adjusted"] < 0.05)).all()
    assert het["differs"].all()  # effects 0, 0.5 and 1.5, standard errors near 0.1: clearly different


def test_values_per_unit_from_the_overall_rows():
    rng = np.random.default_rng(4)
    suff = _segment_suff(rng, effects=[0.1, 0.1], sizes=[300, 500], baselines=[1.0, 1.0])
    seg = _segments(suff, ["m0"])
    overall = seg.groupby(["treatment", "control", "comparison", "metric"], as_index=False)[
        ["n_control", "n_treatment"]].sum()
    assert heterogeneity_table(seg, overall=overall)["values_per_unit"].iloc[0] == pytest.approx(1.0)
    overall[["n_control", "n_treatment"]] = overall[["n_control", "n_treatment"]] // 2  # every unit in two values
    assert heterogeneity_table(seg, overall=overall)["values_per_unit"].iloc[0] == pytest.approx(2.0)
    assert np.isnan(heterogeneity_table(seg)["values_per_unit"].iloc[0])


def test_a_segment_without_a_test_is_kept_and_left_out_of_holm():
    rng = np.random.default_rng(5)
    suff = _segment_suff(rng, effects=[0.1, 0.3], sizes=[500, 500], baselines=[1.0, 1.0], metrics=["m0", "m1"])
    # m1's second value has no variation in either arm: not estimable, so m1 has one cell and no test
    flat = (suff["metric"] == "m1") & (suff["segment_value"] == "v1")
    suff.loc[flat, "sum_x"] = suff.loc[flat, "n"] * 2.0
    suff.loc[flat, "sum_x2"] = suff.loc[flat, "n"] * 4.0
    het = heterogeneity_table(_segments(suff, ["m0", "m1"])).set_index("metric")
    assert (het.loc["m1", "cells"], het.loc["m1", "cells_not_estimable"], het.loc["m1", "df"]) == (1, 1, 0)
    assert np.isnan(het.loc["m1", "q"]) and np.isnan(het.loc["m1", "p_value_adjusted"]) and not het.loc["m1", "differs"]
    assert het.loc["m0", "p_value_adjusted"] == het.loc["m0", "p_value"]  # a family of one tested metric


def test_empty_segment_table():
    assert heterogeneity_table(pd.DataFrame()).empty


def test_null_of_no_heterogeneity_gives_uniform_p_values():
    """Seeded simulation: disjoint subgroups with different baselines and sizes but the same absolute effect,
    skewed per-unit values, se estimated from the data as the scorecard does. The p-values are ~uniform:
    the rejection rate at α = 0.05 is within simulation error of α, and a KS test does not reject uniformity."""
    rng = np.random.default_rng(20261207)
    reps = 1500
    suff = _segment_suff(rng, effects=[0.2, 0.2, 0.2], sizes=[150, 400, 900], baselines=[1.0, 2.0, 4.0], reps=reps)
    p = heterogeneity_table(_segments(suff, ["m0"]))["p_value"].to_numpy()
    assert len(p) == reps and np.isfinite(p).all()
    rate = (p < 0.05).mean()
    se = np.sqrt(0.05 * 0.95 / reps)
    assert abs(rate - 0.05) < 3.5 * se, rate
    assert sps.kstest(p, "uniform").pvalue > 0.001
    # and the test has power against a real difference in the effect
    alt = _segment_suff(rng, effects=[0.0, 0.5, 1.0], sizes=[150, 400, 900], baselines=[1.0, 2.0, 4.0], reps=200)
    assert (heterogeneity_table(_segments(alt, ["m0"]))["p_value"] < 0.05).mean() > 0.7
