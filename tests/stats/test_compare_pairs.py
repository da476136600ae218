"""A/B/n comparisons: each pair tested as two arms alone are, one Holm family spanning the comparisons."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from abplatform.stats import MetricSpec, compare, compare_pairs
from abplatform.stats.moments import suff_from_units

ARMS = {"cascade": 0.0, "v1": 0.02, "v2": 0.06}
PAIRS = [("v2", "v1"), ("v1", "cascade"), ("v2", "cascade")]
SPECS = {"ctr": MetricSpec("mean", role="primary"), "buyers": MetricSpec("mean", role="primary"),
         "orders": MetricSpec("mean", role="secondary")}


def _suff(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for metric, scale in (("ctr", 1.0), ("buyers", 2.0), ("orders", 3.0)):
        for arm, lift in ARMS.items():
            x = rng.normal(1 + lift, scale, int(rng.integers(900, 1100)))
            rows.append({"metric": metric, "arm": arm, **{k: v.item() for k, v in suff_from_units(x).items()}})
    return pd.DataFrame(rows)


def test_each_pair_is_the_two_arm_comparison():
    suff = _suff(1)
    card = compare_pairs(suff, SPECS, PAIRS)
    assert list(card["comparison"].drop_duplicates()) == ["v2 vs v1", "v1 vs cascade", "v2 vs cascade"]
    for treatment, control in PAIRS:
        ours = card[card["comparison"] == f"{treatment} vs {control}"].reset_index(drop=True)
        alone = compare(suff[suff["arm"].isin([treatment, control])], SPECS, control, treatment)
        assert (ours["treatment"] == treatment).all() and (ours["control"] == control).all()
        for col in ("control_value", "treatment_value", "abs_effect", "rel_effect", "rel_ci_low", "rel_ci_high",
                    "p_value", "abs_p_value"):
            np.testing.assert_allclose(ours[col], alone[col], rtol=1e-12, err_msg=col)
        assert list(ours["n_control"]) == list(alone["n_control"])


@pytest.mark.parametrize("seed", range(5))
def test_holm_family_spans_comparisons_and_primary_metrics(seed):
    card = compare_pairs(_suff(seed), SPECS, PAIRS, correction="holm")
    primary = card[card["role"] == "primary"]
    expected = multipletests(primary["p_value"], method="holm")[1]  # one family: 3 comparisons × 2 primaries
    np.testing.assert_allclose(primary["p_value_adjusted"], expected, rtol=1e-12)
    secondary = card[card["role"] == "secondary"]  # the secondaries: their own family across comparisons
    np.testing.assert_allclose(secondary["p_value_adjusted"], multipletests(secondary["p_value"], method="holm")[1],
                               rtol=1e-12)
    # the verdict, the adjusted interval and the adjusted p-value come from one test
    excludes = (card["rel_ci_low_adjusted"] > 0) | (card["rel_ci_high_adjusted"] < 0)
    assert (excludes == (card["p_value_adjusted"] < 0.05)).all()
    assert (card["significant"] == (card["p_value_adjusted"] < 0.05)).all()


def test_one_pair_is_compare_itself():
    suff = _suff(7)
    one = compare_pairs(suff[suff["arm"] != "v2"], SPECS, [("v1", "cascade")], correction="holm")
    two = compare(suff[suff["arm"] != "v2"], SPECS, "cascade", "v1", correction="holm")
    for col in two.columns:
        if pd.api.types.is_float_dtype(two[col]):
            np.testing.assert_allclose(one[col], two[col], rtol=1e-12, err_msg=col)
        else:
            assert list(one[col]) == list(two[col]), col
