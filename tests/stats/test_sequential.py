"""Sequential monitoring: boundaries checked by simulation, CIs agree with p-values, peeking stays valid."""

import numpy as np
import pandas as pd
import pytest

from abplatform.stats import MetricSpec, SequentialSpec, compare
from abplatform.stats.sequential import cs_multiplier, cs_p_value, obf_boundaries, obf_multiplier, obf_p_value


def test_obf_boundaries_spend_alpha_by_simulation():
    """Brownian motion at unequal looks: P(cross any boundary) = α, and α(t_1) at the first look."""
    t = np.array([0.15, 0.4, 0.55, 0.8, 1.0])
    c = obf_boundaries(t, 0.05)
    rng = np.random.default_rng(41)
    paths = 400_000
    incr = rng.standard_normal((paths, len(t))) * np.sqrt(np.diff(np.r_[0, t]))
    z = np.cumsum(incr, axis=1) / np.sqrt(t)
    crossed = (np.abs(z) >= c).any(axis=1).mean()
    assert crossed == pytest.approx(0.05, abs=3 * np.sqrt(0.05 * 0.95 / paths))
    assert c[-1] < 2.1 and c[0] > 4  # O'Brien–Fleming shape: strict early, ≈ 1.96 at the end


def test_repeated_p_value_inverts_boundary():
    t = np.array([0.3, 0.6, 0.9])
    assert obf_multiplier(0.05, t, 2) == pytest.approx(obf_boundaries(t, 0.05)[2], rel=1e-12)  # design α is exact
    for z in (1.8, 2.2, 2.8, 4.0, 7.0):
        for look in range(3):
            p = obf_p_value(z, t, look)
            if p < 1:
                assert obf_multiplier(p, t, look) == pytest.approx(z, rel=1e-9)  # exact inverse ...
                assert obf_boundaries(t, p)[look] == pytest.approx(z, abs=1e-4)  # ... of a faithful interpolant


def test_confidence_sequence_matches_gbstats_formula_and_its_p_value():
    n, alpha, tuning = np.array([1000.0, 20000.0]), 0.05, 5000.0
    rho = np.sqrt((-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning)
    # gbstats: width = sqrt(s2) * sqrt(2 (N rho^2 + 1) log(sqrt(N rho^2 + 1)/alpha) / (N rho)^2), s2 = var * N
    var = 0.01
    width = np.sqrt(var * n) * np.sqrt(2 * (n * rho**2 + 1) * np.log(np.sqrt(n * rho**2 + 1) / alpha) / (n * rho) ** 2)
    np.testing.assert_allclose(cs_multiplier(alpha, n, alpha, tuning) * np.sqrt(var), width, rtol=1e-12)
    z = cs_multiplier(alpha, n, alpha, tuning)
    np.testing.assert_allclose(cs_p_value(z, n, alpha, tuning), alpha, rtol=1e-10)


def _cumulative_days(rng, days, users_per_day, lift=0.0):
    """suff rows per (day, arm) holding cumulative sums of N(1 + lift, 1) per-user values."""
    x = rng.normal(1.0, 1.0, (2, days, users_per_day))
    x[1] += lift
    s1, s2 = np.cumsum(x.sum(-1), axis=1), np.cumsum((x**2).sum(-1), axis=1)
    rows = []
    for a, arm in enumerate(("c", "t")):
        for d in range(days):
            rows.append({"metric": "m", "arm": arm, "day": d + 1, "n": (d + 1) * users_per_day, "sum_x": s1[a, d], "sum_x2": s2[a, d]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("method", ["confidence_sequence", "obrien_fleming"])
def test_compare_sequential_ci_agrees_with_p_and_is_wider(method):
    rng = np.random.default_rng(42)
    suff = _cumulative_days(rng, 7, 300, lift=0.08)
    spec = SequentialSpec(method=method, planned_n=2 * 7 * 300)
    seq = compare(suff, {"m": MetricSpec("mean")}, "c", "t", sequential=spec)
    fixed = compare(suff, {"m": MetricSpec("mean")}, "c", "t", by=["day"])
    assert list(seq.day) == list(range(1, 8))
    excludes = (seq.abs_ci_low > 0) | (seq.abs_ci_high < 0)
    assert (excludes == (seq.p_value < 0.05)).all()
    assert ((seq.abs_ci_high - seq.abs_ci_low) > (fixed.abs_ci_high - fixed.abs_ci_low)).all()
    if method == "obrien_fleming":
        half = (seq.abs_ci_high - seq.abs_ci_low) / 2 / seq.abs_se
        np.testing.assert_allclose(half, obf_boundaries(np.arange(1, 8) / 7, 0.05), rtol=1e-9)


def test_peeking_false_positive_rate_small_simulation():
    """A/A, 10 daily looks, 300 experiments: the sequential procedures stay near α, daily t-tests do not."""
    rng = np.random.default_rng(43)
    reps, days, per_day = 300, 10, 200
    x = rng.normal(0.0, 1.0, (reps, 2, days, per_day))
    s1, s2 = np.cumsum(x.sum(-1), axis=2), np.cumsum((x**2).sum(-1), axis=2)
    rep, arm, day = np.meshgrid(np.arange(reps), np.arange(2), np.arange(days), indexing="ij")
    suff = pd.DataFrame({
        "metric": "m", "rep": rep.ravel(), "arm": np.where(arm.ravel() == 0, "c", "t"), "day": day.ravel() + 1,
        "n": (day.ravel() + 1) * per_day, "sum_x": s1.ravel(), "sum_x2": s2.ravel(),
    })
    naive = compare(suff, {"m": MetricSpec("mean")}, "c", "t", by=["rep", "day"])
    cs = compare(suff, {"m": MetricSpec("mean")}, "c", "t", by=["rep"], sequential=SequentialSpec())
    fpr_naive = naive.groupby("rep").significant.any().mean()
    fpr_cs = cs.groupby("rep").significant.any().mean()
    assert fpr_naive > 0.10
    assert fpr_cs <= 0.05
