"""The proportion tests against scipy / statsmodels: p-values, intervals, and that each interval is
the set of nulls its own test does not reject (the p-value at an interval bound is the level)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats
from scipy.stats.contingency import odds_ratio
from statsmodels.stats import proportion as smp

from abplatform.stats import MetricSpec, compare
from abplatform.stats import proportion_tests as pt

# (x_treatment, n_treatment, x_control, n_control)
COUNTS = [(30, 200, 20, 210), (5, 40, 1, 50), (0, 30, 3, 30), (3, 30, 0, 30), (150, 1000, 120, 1000), (7, 9, 2, 11),
          (480, 5000, 430, 5000)]
SM_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # statsmodels' own division by a zero count
@pytest.mark.parametrize("xt,nt,xc,nc", COUNTS)
def test_pooled_is_the_score_test_and_at_ratio_one_the_classic_z_test(xt, nt, xc, nc):
    for alt in ("two-sided", "greater", "less"):
        r = pt.pooled(xc, nc, xt, nt, alternative=alt)
        ref = smp.proportions_ztest([xt, xc], [nt, nc], alternative=SM_ALT[alt])[1]
        assert r.p_value == pytest.approx(ref, rel=1e-9)
        sm = smp.test_proportions_2indep(xt, nt, xc, nc, method="score", compare="ratio", correction=False,
                                     alternative=SM_ALT[alt]).pvalue
        assert r.p_value == pytest.approx(sm, rel=1e-9)
    r = pt.pooled(xc, nc, xt, nt, alpha=0.05)
    lo, hi = smp.confint_proportions_2indep(xt, nt, xc, nc, method="score", compare="ratio", alpha=0.05, correction=False)
    if np.isfinite(hi):
        assert r.high == pytest.approx(hi - 1, rel=1e-9, abs=1e-12)
        p_hi = smp.test_proportions_2indep(xt, nt, xc, nc, value=hi, method="score", compare="ratio",
                                       correction=False).pvalue
        assert p_hi == pytest.approx(0.05, abs=1e-6)
    assert r.low == pytest.approx(max(lo, 0) - 1, abs=1e-9)


def test_pooled_with_a_margin_tests_the_ratio_at_the_margin():
    r = pt.pooled(120, 1000, 150, 1000, r0=-0.1, alternative="less")
    sm = smp.test_proportions_2indep(150, 1000, 120, 1000, value=0.9, method="score", compare="ratio",
                                 correction=False, alternative="smaller").pvalue
    assert r.p_value == pytest.approx(sm, rel=1e-9) and r.null == -0.1


@pytest.mark.parametrize("xt,nt,xc,nc", COUNTS)
def test_continuity_at_null_zero_is_yates_chi_square(xt, nt, xc, nc):
    r = pt.continuity(xc, nc, xt, nt)
    yates = stats.chi2_contingency([[xt, nt - xt], [xc, nc - xc]], correction=True).pvalue
    assert r.p_value == pytest.approx(yates, rel=1e-9)
    # the interval is the test's inversion: at each bound the two-sided p is the level
    for bound in (r.low, r.high):
        if -1 < bound < 1:
            assert pt.continuity(xc, nc, xt, nt, r0=bound).p_value == pytest.approx(0.05, abs=1e-7)
    one = pt.continuity(xc, nc, xt, nt, alternative="greater", alpha=0.05)
    if -1 < one.low:
        assert pt.continuity(xc, nc, xt, nt, r0=one.low, alternative="greater").p_value == pytest.approx(0.05, abs=1e-7)
    assert one.high == math.inf


@pytest.mark.parametrize("delta", [-0.2, -0.05, 0.0, 0.03, 0.1])
def test_restricted_mle_maximises_the_likelihood_under_the_null(delta):
    xt, nt, xc, nc = 30, 200, 20, 210

    def nll(p2: float) -> float:
        p1 = p2 + delta
        return -(xt * np.log(p1) + (nt - xt) * np.log(1 - p1) + xc * np.log(p2) + (nc - xc) * np.log(1 - p2))

    best = optimize.minimize_scalar(nll, bounds=(max(0, -delta) + 1e-9, min(1, 1 - delta) - 1e-9), method="bounded",
                                    options={"xatol": 1e-12})
    t1, t2 = pt.restricted_mle_diff(xc, nc, xt, nt, delta)
    assert t2 == pytest.approx(best.x, abs=1e-6) and t1 - t2 == pytest.approx(delta)


@pytest.mark.parametrize("xt,nt,xc,nc", COUNTS)
def test_fisher_central_p_and_exact_odds_ratio_interval(xt, nt, xc, nc):
    table = [[xt, nt - xt], [xc, nc - xc]]
    g = stats.fisher_exact(table, alternative="greater").pvalue
    less = stats.fisher_exact(table, alternative="less").pvalue
    r = pt.fisher(xc, nc, xt, nt)
    assert r.p_value == pytest.approx(min(1.0, 2 * min(g, less)), rel=1e-12)
    ci = odds_ratio(table, kind="conditional").confidence_interval(0.95)
    assert (r.low, r.high) == pytest.approx((ci.low, ci.high)) and r.scale == "odds_ratio" and r.null == 1
    assert pt.fisher(xc, nc, xt, nt, alternative="greater").p_value == pytest.approx(g)
    assert (r.p_value < 0.05) == (r.low > 1 or r.high < 1)


def _suff(xt, nt, xc, nc):
    return pd.DataFrame([{"metric": "p", "arm": "c", "n": nc, "sum_x": xc, "sum_x2": xc},
                         {"metric": "p", "arm": "t", "n": nt, "sum_x": xt, "sum_x2": xt}])


@pytest.mark.parametrize("xt,nt,xc,nc", [c for c in COUNTS if c[2] > 0])
def test_wald_in_compare_is_the_unpooled_z_test(xt, nt, xc, nc):
    card = compare(_suff(xt, nt, xc, nc), {"p": MetricSpec("proportion", test="wald")}, "c", "t").iloc[0]
    ref = smp.test_proportions_2indep(xt, nt, xc, nc, method="wald", compare="diff", correction=False)
    assert card.p_value == pytest.approx(ref.pvalue, rel=1e-9) and card.df == np.inf
    pc, ptt = xc / nc, xt / nt
    se = math.sqrt(pc * (1 - pc) / nc + ptt * (1 - ptt) / nt)
    assert card.abs_ci_low == pytest.approx(ptt - pc - stats.norm.isf(0.025) * se)


@pytest.mark.parametrize("test", ["pooled", "continuity", "fisher"])
def test_compare_rows_take_the_count_tests(test):
    xt, nt, xc, nc = 150, 1000, 120, 1000
    card = compare(_suff(xt, nt, xc, nc), {"p": MetricSpec("proportion", test=test)}, "c", "t").iloc[0]
    ref = pt.run_test(test, xc, nc, xt, nt)
    assert card.p_value == pytest.approx(ref.p_value) and card.test == test and card.test_scale == ref.scale
    prefix = {"relative": "rel", "absolute": "abs", "odds_ratio": "or"}[ref.scale]
    assert (card[f"{prefix}_ci_low"], card[f"{prefix}_ci_high"]) == pytest.approx((ref.low, ref.high))


def test_spec_refuses_tests_that_do_not_apply():
    with pytest.raises(ValueError, match="test of proportions"):
        MetricSpec("mean", test="fisher")
    with pytest.raises(ValueError, match="unknown test"):
        MetricSpec("proportion", test="exact")
    with pytest.raises(ValueError, match="margin"):
        MetricSpec("proportion", role="guardrail", margin=0.01, test="continuity")
