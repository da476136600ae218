"""Assignment: stable per salt, matches the weights, independent across salts."""

import numpy as np
from scipy import stats as sps

from abplatform.replay.assignment import assign, bucket

UNITS = [f"u{i:07d}" for i in range(200_000)]


def test_same_salt_same_arms():
    assert np.array_equal(assign("exp-1", UNITS[:5000], [1, 1]), assign("exp-1", UNITS[:5000], [1, 1]))
    # a unit's arm does not depend on which other units are assigned with it
    assert np.array_equal(assign("exp-1", UNITS[100:200], [1, 1]), assign("exp-1", UNITS[:5000], [1, 1])[100:200])


def test_split_matches_weights():
    for weights in ([1, 1], [0.2, 0.8], [1, 2, 7]):
        arms = assign("exp-1", UNITS, weights)
        observed = np.bincount(arms, minlength=len(weights))
        expected = np.asarray(weights, float) / sum(weights) * len(UNITS)
        assert sps.chisquare(observed, expected).pvalue > 0.001


def test_other_salt_is_independent():
    a = assign("exp-1", UNITS, [1, 1])
    b = assign("exp-2", UNITS, [1, 1])
    table = np.array([[np.sum((a == i) & (b == j)) for j in (0, 1)] for i in (0, 1)])
    assert sps.chi2_contingency(table).pvalue > 0.001
    assert 0.45 < np.mean(a == b) < 0.55


def test_buckets_are_uniform():
    assert sps.kstest(bucket("s", UNITS[:50_000]), "uniform").pvalue > 0.001
