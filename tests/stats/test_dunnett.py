"""Dunnett's many-to-one correction: p-values and simultaneous intervals equal scipy.stats.dunnett's."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from abplatform.stats import MetricSpec, compare_pairs
from abplatform.stats.moments import suff_from_units


def _arms(seed: int, n: int = 4000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"c": rng.normal(1, 1, n), "a": rng.normal(1.03, 1, n), "b": rng.normal(1.06, 1, n),
            "d": rng.normal(1.0, 1, n)}


def _card(samples: dict[str, np.ndarray], alternative: str = "two-sided") -> pd.DataFrame:
    rows = [{"metric": "x", "arm": a, **{k: v.item() for k, v in suff_from_units(x).items()}}
            for a, x in samples.items()]
    spec = {"x": MetricSpec("mean", alternative=alternative)}
    return compare_pairs(pd.DataFrame(rows), spec, [("a", "c"), ("b", "c"), ("d", "c")], correction="dunnett")


@pytest.mark.parametrize("seed", [3, 4, 5])
@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_matches_scipy_dunnett(seed, alternative):
    samples = _arms(seed)
    card = _card(samples, alternative)
    ref = stats.dunnett(samples["a"], samples["b"], samples["d"], control=samples["c"], alternative=alternative,
                        rng=np.random.default_rng(1))
    # scipy pools the variance and reads a t with n - k df; ours is Welch's and the normal: 4000 per arm
    np.testing.assert_allclose(card["p_value_adjusted"], ref.pvalue, rtol=0.02, atol=1e-3)
    ci = ref.confidence_interval(0.95)
    width = ci.high - ci.low if alternative == "two-sided" else 0.1
    np.testing.assert_allclose(card["abs_ci_low_adjusted"], ci.low, atol=0.01 * np.max(width))
    if alternative == "two-sided":
        np.testing.assert_allclose(card["abs_ci_high_adjusted"], ci.high, atol=0.01 * np.max(width))
    # one test per row: the simultaneous interval excludes 0 exactly when the adjusted p is below alpha
    excludes = (card["abs_ci_low_adjusted"] > 0) | (card["abs_ci_high_adjusted"] < 0)
    assert (excludes == (card["p_value_adjusted"] < 0.05)).all()


def test_dunnett_is_between_unadjusted_and_bonferroni_and_repeatable():
    card = _card(_arms(6))
    p = card["p_value"].to_numpy()
    assert (card["p_value_adjusted"] >= p - 1e-12).all()
    assert (card["p_value_adjusted"] <= np.minimum(3 * p, 1) + 1e-12).all()
    pd.testing.assert_frame_equal(card, _card(_arms(6)))  # the normal integral's points are fixed


def test_critical_value_is_the_quantile_of_the_maximum_by_simulation():
    """c, read back from the level α_i = 2·P(Z > c), is the 95% quantile of max |Z_i| over correlated
    normals (corr from the arms' variances), by brute-force simulation; unequal arms included."""
    rng = np.random.default_rng(12)
    samples = {"c": rng.normal(1, 1, 3000), "a": rng.normal(1, 2, 1000), "b": rng.normal(1, 1, 5000),
               "d": rng.normal(1, 0.5, 2000)}
    card = _card(samples)
    c = stats.norm.isf(card["alpha_adjusted"].iloc[0] / 2)
    v = {a: x.var(ddof=1) / len(x) for a, x in samples.items()}
    draws = {a: rng.normal(0, np.sqrt(var), 400_000) for a, var in v.items()}
    z = np.column_stack([(draws[a] - draws["c"]) / np.sqrt(v[a] + v["c"]) for a in ("a", "b", "d")])
    assert np.quantile(np.abs(z).max(axis=1), 0.95) == pytest.approx(c, abs=0.01)
    assert (card["alpha_adjusted"] == card["alpha_adjusted"].iloc[0]).all()


def test_dunnett_needs_one_shared_control():
    samples = _arms(7)
    rows = [{"metric": "x", "arm": a, **{k: v.item() for k, v in suff_from_units(x).items()}}
            for a, x in samples.items()]
    with pytest.raises(ValueError, match="one shared control"):
        compare_pairs(pd.DataFrame(rows), {"x": MetricSpec("mean")}, [("a", "c"), ("b", "a")], correction="dunnett")
