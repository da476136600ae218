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
    r = compare(suff, {"m": MetricSpec("mean")}, "c", "t").iloc[0]
    assert r.abs_effect == pytest.approx(0.29, abs=5e-6)
    assert (r.abs_ci_low, r.abs_ci_high) == pytest.approx((0.04538, 0.53462), abs=5e-6)
    assert r.p_value == pytest.approx(0.02016, abs=5e-6)
    assert r.rel_effect == pytest.approx(0.70732, abs=5e-6)
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((-0.03526, 1.44989), abs=5e-6)
    assert r.p_value_rel == pytest.approx(0.06191, abs=5e-6)


def test_proportion_gbstats_vector():
    suff = _suff([
        dict(metric="p", arm="c", n=28, sum_x=14, sum_x2=14),
        dict(metric="p", arm="t", n=30, sum_x=16, sum_x2=16),
    ])
    r = compare(suff, {"p": MetricSpec("proportion")}, "c", "t").iloc[0]
    assert r.rel_effect == pytest.approx(0.06667, abs=5e-6)
    assert (r.rel_ci_low, r.rel_ci_high) == pytest.approx((-0.47767, 0.61101), abs=5e-6)
    assert r.p_value_rel == pytest.approx(0.80707, abs=5e-6)


def test_holm_vector():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.55, 0.6])
    p_adj, _ = adjust(p, 0.05, "holm")
    np.testing.assert_allclose(p_adj, [0.05, 0.12, 0.12, 0.03, 1, 1], atol=1e-12)


def test_obrien_fleming_ldbounds_vector():
    # R ldbounds::bounds(seq(0.2, 1, 0.2), iuse = c(1, 1), alpha = c(0.025, 0.025))
    c = obf_boundaries(np.arange(1, 6) / 5, 0.05)
    np.testing.assert_allclose(c, [4.8769, 3.3569, 2.6803, 2.2898, 2.0310], atol=2e-4)
    assert obf_boundaries(np.array([1.0]), 0.05)[0] == pytest.approx(1.959964, abs=1e-6)
