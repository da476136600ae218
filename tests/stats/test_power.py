"""Power / MDE / duration: against statsmodels' NormalIndPower and by round trip; the accrual fit against a
brute-force least squares and scipy's curve_fit; ρ² against the correlation of per-unit values."""

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power

from abplatform.stats import MetricSpec
from abplatform.stats.moments import arm_moments, suff_from_units
from abplatform.stats.power import (
    MIN_FIT_DAYS,
    Accrual,
    baseline_variance,
    fit_accrual,
    mde,
    plan,
    power_at,
    sample_size,
)


def test_mde_and_sample_size_match_statsmodels():
    sigma2, nc, nt = 4.0, 5000, 7000
    m = mde(sigma2, nc, nt, 0.05, 0.8)
    d = NormalIndPower().solve_power(effect_size=None, nobs1=nc, alpha=0.05, power=0.8, ratio=nt / nc)
    assert m == pytest.approx(d * np.sqrt(sigma2), rel=1e-5)
    assert power_at(m, sigma2, nc, nt) == pytest.approx(0.8, abs=1e-5)  # + the far tail
    n_total = sample_size(sigma2, 0.1, 0.05, 0.9, treatment_share=0.5)
    n1 = NormalIndPower().solve_power(effect_size=0.1 / 2, alpha=0.05, power=0.9, ratio=1)
    assert n_total == pytest.approx(2 * n1, rel=1e-5)


def _three_metrics(seed: int = 31, n: int = 20000) -> tuple[pd.DataFrame, dict[str, MetricSpec]]:
    rng = np.random.default_rng(seed)
    act = rng.gamma(1.0, 1.0, n)
    imps, imps_p = rng.poisson(10 * act) + 1, rng.poisson(10 * act)
    clicks, clicks_p = rng.binomial(imps, 0.1), rng.binomial(imps_p, 0.1)
    rows = [
        {"metric": "ctr", **{k: v.item() for k, v in suff_from_units(clicks, imps, clicks_p, imps_p).items()}},
        {"metric": "conv", **{k: v.item() for k, v in suff_from_units((clicks > 0).astype(float)).items()}},
        {"metric": "orders", **{k: v.item() for k, v in suff_from_units(clicks * 0.3, None, clicks_p * 0.3).items()}},
    ]
    specs = {"ctr": MetricSpec("ratio"), "conv": MetricSpec("proportion"), "orders": MetricSpec("mean")}
    return pd.DataFrame(rows), specs


def test_plan_round_trip_per_type_with_cuped():
    base, specs = _three_metrics()
    n = 20000
    linear = Accrual.linear([n / 7 * d for d in range(1, 8)])  # the baseline's n over 7 days, extrapolated
    by_days = plan(base, specs, linear, days=14)
    assert by_days.n_total.to_numpy() == pytest.approx(2 * n) and by_days.n_control.to_numpy() == pytest.approx(n)
    back = plan(base, specs, linear, relative_mde=by_days.mde_rel.max())
    # the least sensitive metric needs ~14 days for its own MDE; the others fewer
    assert back.days.max() == pytest.approx(14, abs=1)
    with_cuped = plan(base, specs, linear, days=14, cuped=True)
    assert (with_cuped.mde_rel <= by_days.mde_rel + 1e-15).all()
    assert with_cuped.set_index("metric").loc["orders", "rho2"] > 0.1
    # proportion σ² is p(1 − p)
    p = base.set_index("metric").loc["conv", "sum_x"] / n
    assert by_days.set_index("metric").loc["conv", "sigma2"] == pytest.approx(p * (1 - p))


def test_plan_reads_units_and_days_from_the_accrual_fit_and_matches_statsmodels():
    base, specs = _three_metrics(seed=5)
    acc = Accrual(a=3000.0, b=0.7, model="power", observed=tuple(3000.0 * np.arange(1, 8) ** 0.7))
    share, alpha, power = 0.3, 0.1, 0.9
    out = plan(base, specs, acc, days=21, alpha=alpha, power=power, treatment_share=share).set_index("metric")
    n_total = 3000 * 21**0.7
    for metric, r in out.iterrows():
        assert r.n_total == pytest.approx(n_total) and r.n_treatment == pytest.approx(share * n_total)
        nc, nt = (1 - share) * n_total, share * n_total
        d = NormalIndPower().solve_power(nobs1=nc, ratio=nt / nc, alpha=alpha, power=power)
        assert r.mde_abs == pytest.approx(d * np.sqrt(r.sigma2), rel=1e-4), metric  # statsmodels adds the far tail
        assert r.mde_rel == pytest.approx(r.mde_abs / abs(r.value))
    need = plan(base, specs, acc, relative_mde=0.05, alpha=alpha, power=power, treatment_share=share)
    for _, r in need.set_index("metric").iterrows():
        es = 0.05 * abs(r.value) / np.sqrt(r.sigma2)
        nc = NormalIndPower().solve_power(effect_size=es, alpha=alpha, power=power, ratio=share / (1 - share))
        assert r.n_total == pytest.approx(np.ceil(nc / (1 - share)), abs=1.5)  # solve_power is a numerical root
        # the t-test needs a hair more at these sizes
        nt = tt_ind_solve_power(effect_size=es, alpha=alpha, power=power, ratio=share / (1 - share))
        assert nt / (1 - share) == pytest.approx(r.n_total, rel=2e-3)
        assert r.days == np.ceil((r.n_total / 3000) ** (1 / 0.7))
    with pytest.raises(ValueError, match="exactly one"):
        plan(base, specs, acc)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        plan(base, specs, acc, days=7, power=1.0)


def test_an_abn_comparison_plans_on_its_two_arms_share_of_the_units():
    """Three equal arms: one comparison sees 2/3 of the units, half each, at alpha / 3 (Bonferroni)."""
    base, specs = _three_metrics(seed=6)
    acc = Accrual(a=3000.0, b=0.7, model="power", observed=tuple(3000.0 * np.arange(1, 8) ** 0.7))
    out = plan(base, specs, acc, days=14, alpha=0.05 / 3, traffic_share=2 / 3).set_index("metric")
    n_pair = 2 / 3 * 3000 * 14**0.7
    for metric, r in out.iterrows():
        assert r.n_total == pytest.approx(n_pair) and r.n_treatment == pytest.approx(n_pair / 2)
        d = NormalIndPower().solve_power(nobs1=n_pair / 2, ratio=1.0, alpha=0.05 / 3, power=0.8)
        assert r.mde_abs == pytest.approx(d * np.sqrt(r.sigma2), rel=1e-4), metric
    need = plan(base, specs, acc, relative_mde=0.05, alpha=0.05 / 3, traffic_share=2 / 3).set_index("metric")
    for _, r in need.iterrows():  # the days in which all three arms accrue n_total / (2/3) units
        assert r.days == np.ceil((r.n_total * 1.5 / 3000) ** (1 / 0.7))


def test_a_sublinear_accrual_gives_larger_mdes_and_longer_durations_than_linear():
    base, specs = _three_metrics(seed=6)
    curve = 5000.0 * np.arange(1, 8) ** 0.6
    fitted, linear = fit_accrual(curve), Accrual.linear(curve)
    assert fitted.units(28) < linear.units(28)
    a, b = plan(base, specs, fitted, days=28), plan(base, specs, linear, days=28)
    assert (a.mde_rel > b.mde_rel).all()
    a, b = plan(base, specs, fitted, relative_mde=0.02), plan(base, specs, linear, relative_mde=0.02)
    assert (a.days >= b.days).all() and (a.days > b.days).any()


def test_fit_accrual_recovers_a_known_exponent():
    d = np.arange(1, 15)
    exact = fit_accrual(800.0 * d**0.55)
    assert exact.model == "power" and exact.b == pytest.approx(0.55, abs=1e-7) and exact.a == pytest.approx(800.0)
    assert exact.rmse < 1e-6 and exact.note == ""
    rng = np.random.default_rng(2024)
    noisy = np.maximum.accumulate(800.0 * d**0.55 * np.exp(rng.normal(0, 0.01, len(d))))
    fit = fit_accrual(noisy)
    assert fit.b == pytest.approx(0.55, abs=0.02)
    assert fit.days_for(fit.units(40.0)) == pytest.approx(40.0)
    assert len(fit.fitted) == len(noisy) and fit.residuals == pytest.approx(noisy - fit.fitted)
    assert fit.max_rel_residual == pytest.approx(np.max(np.abs(noisy - fit.fitted) / noisy))


def test_fit_accrual_is_the_least_squares_fit_by_brute_force_and_by_curve_fit():
    rng = np.random.default_rng(7)
    d = np.arange(1.0, 11.0)
    u = np.cumsum(rng.poisson(1500 * d**-0.35))  # new units per day falling off: a concave curve
    fit = fit_accrual(u)

    def sse(a: float, b: float) -> float:
        return float(np.sum((u - a * d**b) ** 2))

    # brute force on a 2-D grid around the answer (a: 0.02% steps, b: 1e-4 steps)
    a_grid = fit.a * np.linspace(0.95, 1.05, 501)
    b_grid = np.arange(0.3, 1.0, 1e-4)
    sses = np.array([[np.sum((u - a * d**b) ** 2) for b in b_grid] for a in a_grid[::10]])
    i, j = np.unravel_index(np.argmin(sses), sses.shape)
    a_best, b_best = a_grid[::10][i], b_grid[j]
    a_refined = min(a_grid, key=lambda a: sse(a, b_best))
    assert fit.b == pytest.approx(b_best, abs=5e-4)
    assert sse(fit.a, fit.b) <= sse(a_refined, b_best) * (1 + 1e-9)
    assert sse(fit.a, fit.b) <= sse(a_best, b_best) * (1 + 1e-9)
    (a_lm, b_lm), _ = curve_fit(lambda x, a, b: a * x**b, d, u, p0=[u[0], 0.5])
    assert (fit.a, fit.b) == pytest.approx((a_lm, b_lm), rel=1e-5)


def test_a_convex_curve_is_held_to_linear_accrual():
    fit = fit_accrual(100.0 * np.arange(1, 8) ** 1.2)  # growing traffic: not extrapolated as faster than linear
    assert fit.b == pytest.approx(1.0) and "b ≈ 1" in fit.note


def test_fewer_than_three_days_fall_back_to_linear_and_bad_curves_are_refused():
    assert MIN_FIT_DAYS == 3
    for curve in ([120.0], [120.0, 200.0]):
        acc = fit_accrual(curve)
        assert acc.model == "linear" and acc.b == 1.0 and acc.a == pytest.approx(curve[-1] / len(curve))
        assert "linear accrual" in acc.note and "fewer than 3" in acc.note
    assert fit_accrual([100.0, 180.0, 250.0]).model == "power"
    for bad, message in (([], "at least one day"), ([10.0, 5.0, 12.0], "must not decrease"),
                         ([0.0, 0.0, 0.0], "no units"), ([1.0, np.nan, 2.0], "finite")):
        with pytest.raises(ValueError, match=message):
            fit_accrual(bad)


def test_rho2_is_the_squared_correlation_of_the_per_unit_linearised_values():
    """ρ² and the CUPED σ² from sufficient statistics, against numpy on the per-unit values."""
    rng = np.random.default_rng(99)
    n = 3000
    act = rng.lognormal(0.0, 1.0, n)
    y, yp = rng.poisson(5 * act) + 1, rng.poisson(5 * act) * (rng.random(n) < 0.7)
    x, xp = rng.binomial(y, 0.12), rng.binomial(yp, 0.12)
    spend, spend_p = x * rng.gamma(2.0, 5.0, n), xp * rng.gamma(2.0, 5.0, n)
    rows = pd.DataFrame([
        {"metric": "ctr", **{k: v.item() for k, v in suff_from_units(x, y, xp, yp).items()}},
        {"metric": "spend", **{k: v.item() for k, v in suff_from_units(spend, None, spend_p).items()}},
    ])
    specs = {"ctr": MetricSpec("ratio"), "spend": MetricSpec("mean")}
    out = baseline_variance(rows, specs, cuped=True).set_index("metric")
    plain = baseline_variance(rows, specs).set_index("metric")
    # mean metric: the plain correlation, and the residual variance of x − θ·xp at the OLS θ
    assert out.loc["spend", "rho2"] == pytest.approx(np.corrcoef(spend, spend_p)[0, 1] ** 2, rel=1e-9)
    theta = np.cov(spend, spend_p)[0, 1] / np.var(spend_p, ddof=1)
    assert out.loc["spend", "sigma2"] == pytest.approx(np.var(spend - theta * spend_p, ddof=1), rel=1e-9)
    # ratio metric: the correlation of the linearised values (x − R·y)/ȳ and (xp − Rp·yp)/ȳp
    r, rp = x.sum() / y.sum(), xp.sum() / yp.sum()
    lin, lin_p = (x - r * y) / y.mean(), (xp - rp * yp) / yp.mean()
    assert out.loc["ctr", "rho2"] == pytest.approx(np.corrcoef(lin, lin_p)[0, 1] ** 2, rel=1e-9)
    k = arm_moments(rows.iloc[[0]], np.array(["ratio"])).leverage_factor[0]
    assert k > 1  # the small-sample factor applies, and scales the CUPED variance alike (cuped.cuped_adjust)
    theta = np.cov(lin, lin_p)[0, 1] / np.var(lin_p, ddof=1)
    assert out.loc["ctr", "sigma2"] == pytest.approx(k * np.var(lin - theta * lin_p, ddof=1), rel=1e-9)
    assert plain.loc["ctr", "sigma2"] == pytest.approx(k * np.var(lin, ddof=1), rel=1e-9)
