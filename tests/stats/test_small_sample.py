"""Ratio-metric small-sample correction (jackknife leverage factor + Kish / Bell–McCaffrey df),
checked against a brute-force leave-one-unit-out jackknife and per-unit formulas."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abplatform.stats import MetricSpec, compare
from abplatform.stats.moments import arm_moments, suff_from_units


def _frame(arms: dict) -> pd.DataFrame:
    return pd.DataFrame([{"metric": "m", "arm": a, **{k: np.asarray(v).item() for k, v in suff_from_units(*vals).items()}}
                         for a, vals in arms.items()])


def _ctr(rng, n, sigma=1.1):
    y = 1 + np.floor(rng.lognormal(2.5, sigma, n))
    x = rng.binomial(y.astype(np.int64), rng.beta(1, 9, n)).astype(float)
    return x, y


def test_leverage_factor_and_df_match_per_unit_formulas():
    rng = np.random.default_rng(11)
    x, y = _ctr(rng, 200, 1.5)
    m = arm_moments(_frame({"a": (x, y)}), np.array(["ratio"]))
    n, r = len(x), x.sum() / y.sum()
    e2, h = (x - r * y) ** 2, y / y.sum()
    k = 1 + 2 * (n * (e2 * h).sum() / e2.sum() - 1) / (n - 1)
    assert m.leverage_factor[0] == pytest.approx(k, rel=1e-9)
    assert m.df[0] == pytest.approx(1 / (h**2).sum() - 1, rel=1e-12)
    plain = (x - r * y).var(ddof=1) / y.mean() ** 2
    assert m.var[0] == pytest.approx(k * plain, rel=1e-9)
    assert k > 1  # heavy users carry leverage: the plain delta variance is too small


def test_corrected_variance_tracks_the_exact_jackknife():
    """Var(R) from the sums ≈ the leave-one-user-out jackknife variance computed by brute force."""
    rng = np.random.default_rng(12)
    for sigma in (0.8, 1.1, 1.5):
        x, y = _ctr(rng, 200, sigma)
        n = len(x)
        loo = (x.sum() - x) / (y.sum() - y)
        jack = (n - 1) / n * ((loo - loo.mean()) ** 2).sum()
        m = arm_moments(_frame({"a": (x, y)}), np.array(["ratio"]))
        plain = arm_moments(_frame({"a": (x, y)}), np.array(["ratio"]), small_sample=False)
        assert m.var[0] / n == pytest.approx(jack, rel=0.05)
        assert abs(m.var[0] / n - jack) < abs(plain.var[0] / n - jack)


def test_reduces_to_welch_when_every_denominator_is_one():
    rng = np.random.default_rng(13)
    xc, xt = rng.lognormal(0, 1, 150), rng.lognormal(0.1, 1, 170)
    ratio = compare(_frame({"c": (xc, np.ones(150)), "t": (xt, np.ones(170))}), {"m": MetricSpec("ratio")}, "c", "t").iloc[0]
    res = stats.ttest_ind(xt, xc, equal_var=False)
    assert ratio.leverage_factor_control == pytest.approx(1, abs=1e-12)
    assert ratio.df == pytest.approx(res.df, rel=1e-9)
    assert ratio.p_value == pytest.approx(res.pvalue, rel=1e-9)


def test_without_the_extra_sums_the_plain_delta_method_is_used():
    rng = np.random.default_rng(14)
    (xc, yc), (xt, yt) = _ctr(rng, 300), _ctr(rng, 300)
    full = _frame({"c": (xc, yc), "t": (xt, yt)})
    lean = full.drop(columns=["sum_x2y", "sum_xy2", "sum_y3"])
    a = compare(lean, {"m": MetricSpec("ratio")}, "c", "t").iloc[0]
    b = compare(full, {"m": MetricSpec("ratio")}, "c", "t", small_sample=False).iloc[0]
    c = compare(full, {"m": MetricSpec("ratio")}, "c", "t").iloc[0]
    assert (a.abs_se, a.df, a.p_value) == pytest.approx((b.abs_se, b.df, b.p_value), rel=1e-12)
    assert a.df > 550  # Welch with n − 1 per arm
    assert c.abs_se > a.abs_se and c.df < 300  # corrected: wider, Kish df
    # a missing sum in one row (NaN, as a summary file without them) also falls back per row
    nan_row = full.copy()
    nan_row.loc[0, "sum_y3"] = np.nan
    d = compare(nan_row, {"m": MetricSpec("ratio")}, "c", "t").iloc[0]
    assert d.leverage_factor_control == 1 and d.leverage_factor_treatment > 1


def test_cuped_variance_is_scaled_by_the_same_factor():
    rng = np.random.default_rng(15)
    arms = {}
    for a in ("c", "t"):
        x, y = _ctr(rng, 400)
        yp = 1 + np.floor(y * rng.lognormal(0, 0.3, 400))
        xp = rng.binomial(yp.astype(np.int64), np.clip(x / y, 0, 1)).astype(float)
        arms[a] = (x, y, xp, yp)
    frame = _frame(arms)
    on = compare(frame, {"m": MetricSpec("ratio")}, "c", "t", cuped=True).iloc[0]
    off = compare(frame, {"m": MetricSpec("ratio")}, "c", "t", cuped=True, small_sample=False).iloc[0]
    kc, kt = on.leverage_factor_control, on.leverage_factor_treatment
    assert on.abs_effect == pytest.approx(off.abs_effect, rel=1e-12)
    # se² = kc·vc + kt·vt where vc, vt are the plain CUPED variances; both arms' factors are > 1
    assert off.abs_se < on.abs_se < np.sqrt(max(kc, kt)) * off.abs_se
