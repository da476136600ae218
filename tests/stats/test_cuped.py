"""CUPED: against OLS (ANCOVA), a brute-force linearised ratio computation, and small simulations."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from abplatform.stats import MetricSpec, compare
from abplatform.stats.moments import suff_from_units
from abplatform.stats.power import baseline_variance


def frame(arms, metric="m"):
    return pd.DataFrame([{"metric": metric, "arm": a, **{k: v.item() for k, v in suff_from_units(*vals).items()}} for a, vals in arms.items()])


def _mean_data(rng, n, effect=0.0, with_history=0.7):
    xp = rng.gamma(2.0, 1.0, n) * (rng.random(n) < with_history)  # no pre-period activity -> 0
    x = 1.0 + 0.8 * xp + rng.normal(0, 1, n) + effect
    return x, xp


def test_cuped_mean_equals_ancova_coefficient():
    rng = np.random.default_rng(11)
    xc, pc = _mean_data(rng, 700)
    xt, pt = _mean_data(rng, 650, effect=0.1)
    r = compare(frame({"c": (xc, None, pc), "t": (xt, None, pt)}), {"m": MetricSpec("mean")}, "c", "t", cuped=True).iloc[0]
    y = np.concatenate([xc, xt])
    design = sm.add_constant(np.column_stack([np.r_[np.zeros(700), np.ones(650)], np.concatenate([pc, pt])]))
    ols = sm.OLS(y, design).fit(cov_type="HC1")
    assert r.abs_effect == pytest.approx(ols.params[1], rel=1e-10)
    assert r.theta == pytest.approx(ols.params[2], rel=1e-10)
    assert r.abs_se == pytest.approx(ols.bse[1], rel=0.02)
    assert 0.3 < r.variance_reduction < 0.9


def test_cuped_ratio_matches_brute_force_linearisation():
    rng = np.random.default_rng(12)

    def arm(n):
        act = rng.gamma(1.0, 1.0, n)
        yp = rng.poisson(20 * act)
        xp = rng.binomial(yp, 0.1)
        y = rng.poisson(20 * act) + 1
        x = rng.binomial(y, 0.1 + 0.02 * (xp > 1))
        return x.astype(float), y.astype(float), xp.astype(float), yp.astype(float)

    c, t = arm(900), arm(1000)
    r = compare(frame({"c": c, "t": t}), {"m": MetricSpec("ratio")}, "c", "t", cuped=True, small_sample=False).iloc[0]

    def lin(x, y, xp, yp):
        ratio, pre = x.sum() / y.sum(), xp.sum() / yp.sum()
        return ratio, pre, (x - ratio * y) / y.mean(), (xp - pre * yp) / yp.mean()

    rc, pc, lc, lpc = lin(*c)
    rt, pt, lt, lpt = lin(*t)
    cov = lambda a, b: np.cov(a, b, ddof=1)[0, 1]  # noqa: E731
    theta = (899 * cov(lc, lpc) + 999 * cov(lt, lpt)) / (899 * lpc.var(ddof=1) + 999 * lpt.var(ddof=1))
    pooled = (c[2].sum() + t[2].sum()) / (c[3].sum() + t[3].sum())
    assert r.theta == pytest.approx(theta, rel=1e-9)
    assert r.control_value == pytest.approx(rc - theta * (pc - pooled), rel=1e-10)
    assert r.treatment_value == pytest.approx(rt - theta * (pt - pooled), rel=1e-10)
    se = np.sqrt((lc - theta * lpc).var(ddof=1) / 900 + (lt - theta * lpt).var(ddof=1) / 1000)
    assert r.abs_se == pytest.approx(se, rel=1e-9)
    assert r.variance_reduction > 0


def test_cuped_unbiased_with_missing_history_and_reduction_matches_rho():
    """A small A/A+lift simulation: mean adjusted effect ≈ truth; reduction ≈ 1 − ρ²."""
    rng = np.random.default_rng(13)
    reps, n, effect = 400, 400, 0.1
    xp = rng.gamma(2.0, 1.0, (reps, 2, n)) * (rng.random((reps, 2, n)) < 0.6)
    x = 1.0 + 0.8 * xp + rng.normal(0, 1, (reps, 2, n))
    x[:, 1] += effect
    sums = suff_from_units(x, None, xp)
    rows = [{"metric": "m", "rep": i, "arm": "ct"[a], **{k: v[i, a] for k, v in sums.items()}} for i in range(reps) for a in range(2)]
    out = compare(pd.DataFrame(rows), {"m": MetricSpec("mean")}, "c", "t", cuped=True, by=["rep"])
    se_mc = out.abs_effect.std() / np.sqrt(reps)
    assert abs(out.abs_effect.mean() - effect) < 4 * se_mc
    rho2 = np.corrcoef(x.ravel() - np.repeat([0, effect], n)[None].repeat(reps, 0).ravel(), xp.ravel())[0, 1] ** 2
    assert out.variance_reduction.mean() == pytest.approx(rho2, rel=0.05)
    plan = baseline_variance(pd.DataFrame(rows), {"m": MetricSpec("mean")}, cuped=True)
    assert plan.rho2.iloc[0] == pytest.approx(rho2, rel=0.05)


def test_cuped_without_covariates_is_a_no_op():
    rng = np.random.default_rng(14)
    suff = frame({"c": (rng.normal(size=100),), "t": (rng.normal(size=100),)})
    a = compare(suff, {"m": MetricSpec("mean")}, "c", "t", cuped=True).iloc[0]
    b = compare(suff, {"m": MetricSpec("mean")}, "c", "t").iloc[0]
    assert a.p_value == b.p_value and a.variance_reduction == 0 and a.theta == 0
