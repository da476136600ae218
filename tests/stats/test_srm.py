"""SRM against scipy's chi-square and the configured split, overall and per segment."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abplatform.stats import srm_table, srm_test


def test_srm_matches_chisquare_with_unequal_weights():
    res = srm_test({"a": 10120, "b": 9880, "c": 20500}, {"a": 1, "b": 1, "c": 2})
    expected = np.array([10125.0, 10125.0, 20250.0])
    ref = stats.chisquare([10120, 9880, 20500], expected)
    assert res.chi2 == pytest.approx(ref.statistic) and res.p_value == pytest.approx(ref.pvalue)
    assert res.expected == pytest.approx(dict(zip("abc", expected)))
    assert res.df == 2 and not res.failed


def test_srm_flags_a_broken_split_and_threshold_is_configurable():
    res = srm_test({"a": 50600, "b": 49400}, {"a": 0.5, "b": 0.5})
    assert res.p_value < 0.001 and res.failed
    assert not srm_test({"a": 50600, "b": 49400}, {"a": 0.5, "b": 0.5}, threshold=1e-6).failed


def test_srm_per_segment():
    counts = pd.DataFrame({
        "segment": ["head", "head", "tail", "tail"],
        "arm": ["a", "b", "a", "b"],
        "n": [5000, 5040, 3000, 2500],
    })
    table = srm_table(counts, {"a": 1, "b": 1}, by=["segment"])
    assert list(table.failed) == [False, True]
    assert table.loc[1, "p_value"] == pytest.approx(stats.chisquare([3000, 2500]).pvalue)
    overall = srm_table(counts.groupby("arm", as_index=False)["n"].sum(), {"a": 1, "b": 1})
    assert len(overall) == 1 and overall.n_a.iloc[0] == 8000


def test_srm_rejects_unknown_arm():
    with pytest.raises(ValueError):
        srm_test({"a": 1, "z": 2}, {"a": 1, "b": 1})


def test_two_arms_with_small_counts_use_the_exact_binomial_test():
    res = srm_test({"a": 60, "b": 35}, {"a": 1, "b": 1})
    assert res.test == "binomial"
    assert res.p_value == pytest.approx(stats.binomtest(60, 95, 0.5).pvalue, rel=1e-12)
    unequal = srm_test({"a": 30, "b": 170}, {"a": 1, "b": 3})
    assert unequal.p_value == pytest.approx(stats.binomtest(30, 200, 0.25).pvalue, rel=1e-12)
    large = srm_test({"a": 5000, "b": 5040}, {"a": 1, "b": 1})
    assert large.test == "chi-square" and large.p_value == pytest.approx(stats.chisquare([5000, 5040]).pvalue)
    assert srm_test({"a": 10, "b": 10, "c": 30}, {"a": 1, "b": 1, "c": 1}).test == "chi-square"  # 3 arms


def test_srm_rejects_bad_weights():
    for w in ({"a": 1, "b": 0}, {"a": 1, "b": float("nan")}):
        with pytest.raises(ValueError):
            srm_test({"a": 1, "b": 2}, w)
