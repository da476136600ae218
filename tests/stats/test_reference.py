"""Published reference vectors (GrowthBook gbstats tests, Holm textbook example, R ldbounds)."""

import numpy as np
import pandas as pd
import pytest

from abplatform.stats import MetricSpec, compare
from abplatform.stats.multiple import adjust
from abplatform.stats.sequential import obf_boundaries


def _suff(rows):
    return pd.DataFrame(rows)


def test_welch_mean_gbstats_vector():
    suff = _suff([
        dict(metric="m", arm="c", n=3407, sum_x=1396.87, sum_x2=52377.9767),
        dict(metric="m", arm="t", n=3461, sum_x=2422.7, sum_x2=134698.29),
    ])
    r = compare(suff, {"m": MetricSpec("mean")}, "c", "t", relative_ci="delta").iloc[0]
    assert r.abs_effect == pytest.approx(0.29, abs=5e-6)
    assert (r.abs_ci_low, r.abs_ci_high) == pytest.approx((0.04538, 0.53462), abs=5e-6)
    assert r.abs_p_value == pytest.approx(0.02016, abs=5e-6)
    assert r.rel_effect == pytest.approx(0.70732, abs=5e-6)
    # gbstats pairs this relative interval with the absolute test's p = 0.02016; its own test gives 0.0619
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((-0.03526, 1.44989), abs=5e-6)
    assert r.p_value == pytest.approx(0.06191, abs=5e-6)
    assert not r.significant


def test_proportion_gbstats_vector():
    suff = _suff([
        dict(metric="p", arm="c", n=28, sum_x=14, sum_x2=14),
        dict(metric="p", arm="t", n=30, sum_x=16, sum_x2=16),
    ])
    r = compare(suff, {"p": MetricSpec("proportion")}, "c", "t", relative_ci="delta").iloc[0]
    assert r.rel_effect == pytest.approx(0.06667, abs=5e-6)
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((-0.47767, 0.61101), abs=5e-6)
    assert r.p_value == pytest.approx(0.80707, abs=5e-6)


def test_holm_vector():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.55, 0.6])
    p_adj, _ = adjust(p, 0.05, "holm")
    np.testing.assert_allclose(p_adj, [0.05, 0.12, 0.12, 0.03, 1, 1], atol=1e-12)


def test_obrien_fleming_ldbounds_vector():
    # R ldbounds::bounds(seq(0.2, 1, 0.2), iuse = c(1, 1), alpha = c(0.025, 0.025))
    c = obf_boundaries(np.arange(1, 6) / 5, 0.05)
    np.testing.assert_allclose(c, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=2e-4)
    assert obf_boundaries(np.array([1.0]), 0.05)[0] == pytest.approx(1.959964, abs=1e-6)


def test_tea_tasting_mean_and_ratio_of_means_vector():
    """tea-tasting 1.14.0 (e10v/tea-tasting; ``Experiment(rev=Mean("revenue"), opu=RatioOfMeans("orders",
    "sessions")).analyze(data)``) on the 120 users of ``tea_tasting_vector.csv``. Its relative CI is the
    log method with the log-scale df; its p-value is the absolute difference's Welch test."""
    from pathlib import Path

    from abplatform.stats.moments import suff_from_units

    data = pd.read_csv(Path(__file__).with_name("tea_tasting_vector.csv"))
    rows = []
    for variant, arm in ((0, "c"), (1, "t")):
        d = data[data.variant == variant]
        sums = {"rev": suff_from_units(d.revenue.to_numpy()),
                "opu": suff_from_units(d.orders.to_numpy(), d.sessions.to_numpy(), small_sample=False)}
        rows += [{"metric": m, "arm": arm, **{k: float(v) for k, v in s.items()}} for m, s in sums.items()]
    card = compare(_suff(rows), {"rev": MetricSpec("mean"), "opu": MetricSpec("ratio")}, "c", "t",
                   relative_ci="log", small_sample=False).set_index("metric")
    published = {
        "rev": (1.2275964621173248, 1.6160043400405757, -0.34797373830042266, 1.1247894941469245,
                -0.22296992559081352, 1.2301596870948344, 0.2983696926501646),
        "opu": (0.2652173913043478, 0.2971887550200803, -0.07507515333556282, 0.1390178807670278,
                -0.23614482176141205, 0.6438028163407881, 0.5553521794196679),
    }
    for metric, (c, t, lo, hi, rel_lo, rel_hi, p) in published.items():
        r = card.loc[metric]
        assert (r.control_value, r.treatment_value) == pytest.approx((c, t), rel=1e-12)
        assert (r.abs_ci_low, r.abs_ci_high, r.abs_p_value) == pytest.approx((lo, hi, p), rel=1e-9)
        assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((rel_lo, rel_hi), rel=1e-9)
        # our p-value is the log test's own, the one that agrees with the interval beside it
        assert (r.p_value < 0.05) == (r.rel_ci_low > 0 or r.rel_ci_high < 0)
