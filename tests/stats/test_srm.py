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
