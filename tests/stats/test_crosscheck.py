"""Cross-checks against statsmodels / scipy and brute-force per-unit computations (seeded)."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from abplatform.stats import MetricSpec, compare
from abplatform.stats.moments import suff_from_units
from abplatform.stats.relative import relative_z


def suff_frame(arms: dict, metric: str = "m", **extra) -> pd.DataFrame:
    """suff rows for one metric from per-unit arrays {arm: (x, y, xp, yp)}."""
    rows = []
    for arm, vals in arms.items():
        rows.append({"metric": metric, "arm": arm, **extra, **{k: v.item() for k, v in suff_from_units(*vals).items()}})
    return pd.DataFrame(rows)


def test_welch_matches_statsmodels():
    rng = np.random.default_rng(1)
    xc = rng.lognormal(0, 1, 400)
    xt = rng.lognormal(0.1, 1.3, 523)
    r = compare(suff_frame({"c": (xc,), "t": (xt,)}), {"m": MetricSpec("mean")}, "c", "t").iloc[0]
    stat, p, df = ttest_ind(xt, xc, usevar="unequal")
    lo, hi = CompareMeans(DescrStatsW(xt), DescrStatsW(xc)).tconfint_diff(usevar="unequal")
    assert r.p_value == pytest.approx(p, rel=1e-10)
    assert r.df == pytest.approx(df, rel=1e-10)
    assert (r.abs_ci_low, r.abs_ci_high) == pytest.approx((lo, hi), rel=1e-10)
    assert r.abs_effect / r.abs_se == pytest.approx(stat, rel=1e-10)


def test_proportion_matches_statsmodels_wald():
    rng = np.random.default_rng(2)
    xc = (rng.random(5000) < 0.10).astype(float)
    xt = (rng.random(5200) < 0.102).astype(float)
    r = compare(suff_frame({"c": (xc,), "t": (xt,)}), {"m": MetricSpec("proportion")}, "c", "t").iloc[0]
    res = sm_proportion.test_proportions_2indep(xt.sum(), 5200, xc.sum(), 5000, method="wald", compare="diff")
    lo, hi = sm_proportion.confint_proportions_2indep(xt.sum(), 5200, xc.sum(), 5000, method="wald", compare="diff")
    assert r.abs_effect / r.abs_se == pytest.approx(res.statistic, rel=1e-10)
    # ours uses Student t with Welch df (≈ 10000) where statsmodels uses the normal
    assert r.p_value == pytest.approx(res.pvalue, rel=1e-2)
    assert (r.abs_ci_low, r.abs_ci_high) == pytest.approx((lo, hi), rel=1e-3)


def _per_user_ctr(rng, n, p_user_shape=(0.5, 5.0)):
    """Clustered item-CTR data: each user has a propensity; impressions vary a lot across users."""
    imps = rng.negative_binomial(1, 0.05, n) + 1
    p = rng.beta(*p_user_shape, n)
    clicks = rng.binomial(imps, p)
    return clicks.astype(float), imps.astype(float)


def test_ratio_delta_method_matches_brute_force_linearisation():
    rng = np.random.default_rng(3)
    (xc, yc), (xt, yt) = _per_user_ctr(rng, 800), _per_user_ctr(rng, 900)
    r = compare(suff_frame({"c": (xc, yc), "t": (xt, yt)}), {"m": MetricSpec("ratio")}, "c", "t", small_sample=False).iloc[0]

    def var_of_ratio(x, y):
        ratio = x.sum() / y.sum()
        lin = (x - ratio * y) / y.mean()  # influence function of Σx/Σy
        return ratio, lin.var(ddof=1) / len(x)

    rc, vc = var_of_ratio(xc, yc)
    rt, vt = var_of_ratio(xt, yt)
    assert r.control_value == pytest.approx(rc, rel=1e-12)
    assert r.abs_se == pytest.approx(np.sqrt(vc + vt), rel=1e-9)


def test_ratio_is_analysed_per_user_not_per_impression():
    """Item CTR is clicks/impressions at the user level: SE matches the user bootstrap, the binomial SE is far too small."""
    rng = np.random.default_rng(4)
    (xc, yc), (xt, yt) = _per_user_ctr(rng, 600), _per_user_ctr(rng, 600)
    r = compare(suff_frame({"c": (xc, yc), "t": (xt, yt)}), {"m": MetricSpec("ratio")}, "c", "t").iloc[0]

    b = 2000
    ic = rng.integers(0, 600, (b, 600))
    it = rng.integers(0, 600, (b, 600))
    boot = xt[it].sum(1) / yt[it].sum(1) - xc[ic].sum(1) / yc[ic].sum(1)
    boot_se = boot.std(ddof=1)
    assert r.abs_se == pytest.approx(boot_se, rel=0.08)

    pc, pt = xc.sum() / yc.sum(), xt.sum() / yt.sum()
    binomial_se = np.sqrt(pc * (1 - pc) / yc.sum() + pt * (1 - pt) / yt.sum())
    assert binomial_se < 0.6 * r.abs_se  # impressions are not independent trials


def test_relative_intervals_invert_their_tests():
    """Each relative CI endpoint is exactly where its own test statistic reaches the critical value."""
    rng = np.random.default_rng(5)
    xc, xt = rng.gamma(2.0, 1.0, 300), rng.gamma(2.0, 1.1, 300)
    suff = suff_frame({"c": (xc,), "t": (xt,)})
    for method in ("delta", "log", "fieller"):
        r = compare(suff, {"m": MetricSpec("mean")}, "c", "t", relative_ci=method).iloc[0]
        t, c = xt.mean(), xc.mean()
        vt, vc = xt.var(ddof=1) / 300, xc.var(ddof=1) / 300
        from scipy import stats

        q = stats.t.isf(0.025, r.df)
        for end in (r.rel_ci_low, r.rel_ci_high):
            assert abs(relative_z(method, t, c, vt, vc, end)) == pytest.approx(q, rel=1e-8)
        z0 = relative_z(method, t, c, vt, vc, 0.0)
        assert r.p_value == pytest.approx(2 * stats.t.sf(abs(z0), r.df), rel=1e-10)
    # Fieller's test of ratio 1 is the absolute test
    r = compare(suff, {"m": MetricSpec("mean")}, "c", "t", relative_ci="fieller").iloc[0]
    assert r.p_value == pytest.approx(r.abs_p_value, rel=1e-12)
    assert r.p_value == pytest.approx(stats.ttest_ind(xt, xc, equal_var=False).pvalue, rel=1e-10)


def test_log_ci_brute_force():
    rng = np.random.default_rng(6)
    xc, xt = rng.exponential(1.0, 500), rng.exponential(1.2, 500)
    r = compare(suff_frame({"c": (xc,), "t": (xt,)}), {"m": MetricSpec("mean")}, "c", "t", relative_ci="log").iloc[0]
    from scipy import stats

    se = np.sqrt(xt.var(ddof=1) / 500 / xt.mean() ** 2 + xc.var(ddof=1) / 500 / xc.mean() ** 2)
    q = stats.t.isf(0.025, r.df)
    lr = np.log(xt.mean() / xc.mean())
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((np.exp(lr - q * se) - 1, np.exp(lr + q * se) - 1), rel=1e-10)


def test_vectorised_over_metrics_and_segments_equals_one_at_a_time():
    rng = np.random.default_rng(7)
    frames = []
    for seg in ("head", "tail"):
        for metric, kind in (("a", "mean"), ("b", "proportion")):
            arms = {}
            for arm in ("c", "t"):
                x = rng.normal(1, 1, 200) if kind == "mean" else (rng.random(200) < 0.3).astype(float)
                arms[arm] = (x,)
            frames.append(suff_frame(arms, metric=metric, segment=seg))
    suff = pd.concat(frames, ignore_index=True)
    specs = {"a": MetricSpec("mean"), "b": MetricSpec("proportion")}
    full = compare(suff, specs, "c", "t", by=["segment"]).set_index(["metric", "segment"])
    for (metric, seg), row in full.iterrows():
        one = compare(suff[(suff.metric == metric) & (suff.segment == seg)], {metric: specs[metric]}, "c", "t", by=["segment"]).iloc[0]
        assert row.p_value == pytest.approx(one.p_value, rel=1e-12)
        assert row.rel_ci_high == pytest.approx(one.rel_ci_high, rel=1e-12)


def test_guardrail_noninferiority_one_sided():
    rng = np.random.default_rng(8)
    xc, xt = rng.normal(10, 2, 2000), rng.normal(10, 2, 2000)
    suff = suff_frame({"c": (xc,), "t": (xt,)})
    from scipy import stats

    for direction, margin in (("increase", 0.02), ("decrease", 0.02), ("increase", 0.0001)):
        spec = MetricSpec("mean", direction=direction, role="guardrail", margin=margin)
        r = compare(suff, {"m": spec}, "c", "t", relative_ci="delta", guardrail_test="noninferiority").iloc[0]
        c, t = xc.mean(), xt.mean()
        se = np.sqrt(xt.var(ddof=1) / 2000 / c**2 + t**2 * xc.var(ddof=1) / 2000 / c**4)
        sign = 1 if direction == "increase" else -1
        expected = stats.t.sf(sign * (t / c - 1 + sign * margin) / se, r.df)
        assert r.p_value == pytest.approx(expected, rel=1e-9)
        assert r.breached == (expected >= 0.05)
        # the one-sided interval shown is the one this test inverts: it excludes the margin iff p < alpha
        bound = r.rel_ci_low if direction == "increase" else r.rel_ci_high
        assert (bound > -margin if direction == "increase" else bound < margin) == (not r.breached)
    # a 2% margin is easily shown with n = 2000 and CV 0.2; a 0.01% one is not
    ni = {"guardrail_test": "noninferiority"}
    assert not compare(suff, {"m": MetricSpec("mean", role="guardrail", margin=0.02)}, "c", "t", **ni).iloc[0].breached
    assert compare(suff, {"m": MetricSpec("mean", role="guardrail", margin=0.0001)}, "c", "t", **ni).iloc[0].breached


def test_guardrail_harm_reading_rejects_no_worse_than_margin():
    """guardrail_test="harm": breached only when "worse than the margin" is shown one-sided at alpha."""
    from scipy import stats

    rng = np.random.default_rng(8)
    xc = rng.normal(10, 2, 2000)
    for shift, margin, harmed in ((-0.05, 0.01, True), (-0.005, 0.01, False), (0.0, 0.0001, False)):
        xt = rng.normal(10 * (1 + shift), 2, 2000)
        suff = suff_frame({"c": (xc,), "t": (xt,)})
        spec = MetricSpec("mean", role="guardrail", margin=margin)
        r = compare(suff, {"m": spec}, "c", "t", guardrail_test="harm").iloc[0]
        c, t = xc.mean(), xt.mean()
        se = np.sqrt(xt.var(ddof=1) / 2000 / c**2 + t**2 * xc.var(ddof=1) / 2000 / c**4)
        p_harm = stats.t.cdf((t / c - 1 + margin) / se, r.df)  # H1: relative effect < -margin
        assert r.breached == (p_harm < 0.05) == harmed


def test_direction_sets_improved_and_degraded():
    rng = np.random.default_rng(9)
    xc, xt = rng.normal(1.0, 1, 3000), rng.normal(1.2, 1, 3000)
    suff = suff_frame({"c": (xc,), "t": (xt,)})
    up = compare(suff, {"m": MetricSpec("mean", direction="increase")}, "c", "t").iloc[0]
    down = compare(suff, {"m": MetricSpec("mean", direction="decrease", role="guardrail")}, "c", "t").iloc[0]
    assert up.improved and not up.degraded
    assert down.degraded and not down.improved and down.breached


def test_bad_inputs_raise():
    suff = pd.DataFrame([dict(metric="m", arm="c", n=10, sum_x=1.0, sum_x2=1.0)])
    with pytest.raises(ValueError, match="arm 't'"):
        compare(suff, {"m": MetricSpec("mean")}, "c", "t")
    with pytest.raises(ValueError, match="not found"):
        compare(suff, {"zz": MetricSpec("mean")}, "c", "c2")
    with pytest.raises(ValueError):
        MetricSpec("binomial")


def test_capping_reference():
    from abplatform.stats import cap_values

    x = np.arange(101, dtype=float)
    np.testing.assert_array_equal(cap_values(x, upper=50), np.minimum(x, 50))
    assert cap_values(x, quantile=0.9).max() == pytest.approx(90.0)
    assert cap_values(x, upper=80, quantile=0.9).max() == 80
