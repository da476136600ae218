"""mde_columns: MDE per scorecard row at the observed sample sizes, against statsmodels' power classes."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower

from abplatform.stats import MetricSpec, baseline_variance, compare, mde, mde_columns
from abplatform.stats.moments import suff_from_units


def _frame(arms, metric="m"):
    return pd.DataFrame([{"metric": metric, "arm": a, **{k: np.asarray(v).item() for k, v in suff_from_units(*vals).items()}}
                         for a, vals in arms.items()])


def test_mean_metric_mde_matches_normal_and_t_power():
    rng = np.random.default_rng(31)
    xc = rng.normal(10, 3, 800)
    xt = np.r_[xc, xc[:400]] + 0.2  # same per-unit variance up to n vs n − 1, different n
    card = compare(_frame({"c": (xc,), "t": (xt,)}), {"m": MetricSpec("mean")}, "c", "t")
    out = mde_columns(card, alpha=0.05, power=0.8).iloc[0]
    sigma = np.sqrt(card.abs_se.iloc[0] ** 2 / (1 / 800 + 1 / 1200))
    d_norm = NormalIndPower().solve_power(nobs1=800, ratio=1.5, alpha=0.05, power=0.8)
    d_t = TTestIndPower().solve_power(nobs1=800, ratio=1.5, alpha=0.05, power=0.8)
    assert out.mde_abs == pytest.approx(d_norm * sigma, rel=1e-5)  # solve_power is a numerical root
    assert out.mde_abs == pytest.approx(d_t * sigma, rel=2e-3)
    assert out.mde_rel == pytest.approx(out.mde_abs / card.control_value.iloc[0], rel=1e-12)
    # power at an effect equal to the MDE is the requested power
    p = NormalIndPower().power(effect_size=out.mde_abs / sigma, nobs1=800, ratio=1.5, alpha=0.05)
    assert p == pytest.approx(0.8, abs=1e-6)


def test_ratio_and_cuped_rows_use_their_engine_variance():
    rng = np.random.default_rng(32)
    arms = {}
    for a in ("c", "t"):
        y = 1 + rng.poisson(rng.lognormal(2, 1, 3000))
        p = rng.beta(2, 18, 3000)
        x = rng.binomial(y, p).astype(float)
        yp = 1 + rng.poisson(y)
        xp = rng.binomial(yp, p).astype(float)
        arms[a] = (x, y.astype(float), xp, yp.astype(float))
    suff = _frame(arms)
    plain = compare(suff, {"m": MetricSpec("ratio")}, "c", "t")
    adj = compare(suff, {"m": MetricSpec("ratio")}, "c", "t", cuped=True)
    m_plain, m_adj = mde_columns(plain).iloc[0], mde_columns(adj).iloc[0]
    assert m_adj.mde_abs < m_plain.mde_abs  # CUPED shrinks the MDE
    assert (m_adj.mde_abs / m_plain.mde_abs) ** 2 == pytest.approx(1 - adj.variance_reduction.iloc[0], rel=1e-9)
    # the same as power.mde with the pooled delta-method σ² at these n (arms are similar)
    base = baseline_variance(suff.assign(metric="m"), {"m": MetricSpec("ratio")})
    ref = mde(base.sigma2.to_numpy(), 3000, 3000)[0]
    assert m_plain.mde_abs == pytest.approx(ref, rel=0.05)


def test_columns_align_with_a_multi_row_card():
    rng = np.random.default_rng(33)
    rows = [_frame({"c": ((rng.random(500) < 0.1).astype(float),), "t": ((rng.random(500) < 0.12).astype(float),)}, "conv"),
            _frame({"c": (rng.gamma(2, 1, 500),), "t": (rng.gamma(2, 1.1, 500),)}, "rev")]
    card = compare(pd.concat(rows, ignore_index=True), {"conv": MetricSpec("proportion"), "rev": MetricSpec("mean")}, "c", "t")
    out = mde_columns(card, alpha=0.1, power=0.9)
    assert list(out.index) == list(card.index) and out.notna().all().all()
    with pytest.raises(ValueError):
        mde_columns(card, power=1.5)
