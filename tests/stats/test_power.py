"""Power / MDE / duration: against statsmodels' NormalIndPower and by round trip."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower

from abplatform.stats import MetricSpec
from abplatform.stats.moments import suff_from_units
from abplatform.stats.power import mde, plan, power_at, sample_size


def test_mde_and_sample_size_match_statsmodels():
    sigma2, nc, nt = 4.0, 5000, 7000
    m = mde(sigma2, nc, nt, 0.05, 0.8)
    d = NormalIndPower().solve_power(effect_size=None, nobs1=nc, alpha=0.05, power=0.8, ratio=nt / nc)
    assert m == pytest.approx(d * np.sqrt(sigma2), rel=1e-5)
    assert power_at(m, sigma2, nc, nt) == pytest.approx(0.8, abs=1e-5)  # + the far tail
    n_total = sample_size(sigma2, 0.1, 0.05, 0.9, treatment_share=0.5)
    n1 = NormalIndPower().solve_power(effect_size=0.1 / 2, alpha=0.05, power=0.9, ratio=1)
    assert n_total == pytest.approx(2 * n1, rel=1e-5)


def test_plan_round_trip_per_type_with_cuped():
    rng = np.random.default_rng(31)
    n = 20000
    act = rng.gamma(1.0, 1.0, n)
    imps, imps_p = rng.poisson(10 * act) + 1, rng.poisson(10 * act)
    clicks, clicks_p = rng.binomial(imps, 0.1), rng.binomial(imps_p, 0.1)
    rows = [
        {"metric": "ctr", **{k: v.item() for k, v in suff_from_units(clicks, imps, clicks_p, imps_p).items()}},
        {"metric": "conv", **{k: v.item() for k, v in suff_from_units((clicks > 0).astype(float)).items()}},
        {"metric": "orders", **{k: v.item() for k, v in suff_from_units(clicks * 0.3, None, clicks_p * 0.3).items()}},
    ]
    base = pd.DataFrame(rows)
    specs = {"ctr": MetricSpec("ratio"), "conv": MetricSpec("proportion"), "orders": MetricSpec("mean")}
    by_days = plan(base, specs, baseline_days=7, days=14)
    back = plan(base, specs, baseline_days=7, relative_mde=by_days.mde_rel.max())
    # the least sensitive metric needs ~14 days for its own MDE; the others fewer
    assert back.days.max() == pytest.approx(14, abs=1)
    with_cuped = plan(base, specs, baseline_days=7, days=14, cuped=True)
    assert (with_cuped.mde_rel <= by_days.mde_rel + 1e-15).all()
    assert with_cuped.set_index("metric").loc["orders", "rho2"] > 0.1
    # proportion σ² is p(1 − p)
    p = base.set_index("metric").loc["conv", "sum_x"] / n
    assert by_days.set_index("metric").loc["conv", "sigma2"] == pytest.approx(p * (1 - p))
