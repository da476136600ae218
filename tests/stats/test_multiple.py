"""Holm / BH: adjusted p-values equal statsmodels' multipletests, adjusted CIs agree with them."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from abplatform.stats import MetricSpec, compare
from abplatform.stats.moments import suff_from_units
from abplatform.stats.multiple import adjust


@pytest.mark.parametrize("method,sm_name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_match_statsmodels(method, sm_name):
    rng = np.random.default_rng(21)
    for _ in range(8):
        p = np.concatenate([rng.uniform(0, 0.02, rng.integers(0, 4)), rng.uniform(0, 1, rng.integers(1, 8))])
        ours, _ = adjust(p, 0.05, method)
        np.testing.assert_allclose(ours, multipletests(p, alpha=0.05, method=sm_name)[1], rtol=1e-12)


def _scorecard(rng, correction, m=8):
    rows = []
    for j in range(m):
        lift = [0.0, 0.05, 0.08, 0.12][j % 4]
        for arm, shift in (("c", 0.0), ("t", lift)):
            x = rng.normal(1 + shift, 1, 1500)
            rows.append({"metric": f"m{j}", "arm": arm, **{k: v.item() for k, v in suff_from_units(x).items()}})
    specs = {f"m{j}": MetricSpec("mean") for j in range(m)}
    return compare(pd.DataFrame(rows), specs, "c", "t", correction=correction)


@pytest.mark.parametrize("correction", ["holm", "bh"])
def test_adjusted_ci_excludes_zero_iff_adjusted_p_below_alpha(correction):
    rng = np.random.default_rng(22)
    n_sig = 0
    for _ in range(10):
        card = _scorecard(rng, correction)
        excludes = (card.abs_ci_low_adjusted > 0) | (card.abs_ci_high_adjusted < 0)
        assert (excludes == (card.p_value_adjusted < 0.05)).all()
        assert (card.significant == (card.p_value_adjusted < 0.05)).all()
        # adjusted intervals are never narrower than the unadjusted ones
        assert (card.abs_ci_high_adjusted - card.abs_ci_low_adjusted >= card.abs_ci_high - card.abs_ci_low - 1e-12).all()
        n_sig += int(card.significant.sum())
    assert n_sig > 0  # the check was not vacuous


def test_bh_ci_level_is_benjamini_yekutieli():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])
    p_adj, level = adjust(p, 0.05, "bh")
    r = int(multipletests(p, alpha=0.05, method="fdr_bh")[0].sum())
    assert np.allclose(level, r * 0.05 / len(p))


def test_holm_ci_level_is_step_level():
    p = np.array([0.001, 0.2, 0.011, 0.5])  # sorted: 0.001, 0.011, 0.2, 0.5 → levels α/4, α/3, α/2, α/1 (no running max binds)
    _, level = adjust(p, 0.05, "holm")
    np.testing.assert_allclose(level, [0.05 / 4, 0.05 / 2, 0.05 / 3, 0.05 / 1])


@pytest.fixture
def no_gc(monkeypatch):
    """statsmodels' multipletests(method="holm") calls gc.collect() each time (~0.15 s here);
    the reference values do not depend on it, so the many reference calls below skip it."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *a, **k: 0)


@pytest.mark.parametrize("method,sm_name", [("holm", "holm"), ("bh", "fdr_bh")])
def test_vectorised_adjustment_equals_statsmodels_on_many_families(no_gc, method, sm_name):
    from abplatform.stats.multiple import benjamini_hochberg, holm

    ours_fn = holm if method == "holm" else benjamini_hochberg
    rng = np.random.default_rng(24)
    for trial in range(400):
        m = int(rng.integers(1, 30))
        p = rng.uniform(0, 1, m) ** rng.uniform(0.3, 4)
        if trial % 3 == 0:  # ties, exact 0 and 1, duplicates
            p = np.round(p, 2)
            p[rng.integers(0, m)] = 0.0
            p[rng.integers(0, m)] = 1.0
        ref_reject, ref, _, _ = multipletests(p, alpha=0.05, method=sm_name)
        np.testing.assert_allclose(ours_fn(p), ref, rtol=1e-14, atol=0)
        adj, _ = adjust(p, 0.05, method)
        np.testing.assert_allclose(adj, ref, rtol=1e-14, atol=0)
        assert ((adj <= 0.05) == ref_reject).all()


def test_fifty_family_scorecard_adjusts_each_family():
    """50 families (e.g. looks × segments) × 8 metrics with Holm in one call: each family is adjusted
    on its own, as statsmodels adjusts it (the call's speed is a benchmark matter, not a test's)."""
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(25)
    rows = []
    for f in range(50):
        for j in range(8):
            for arm in ("c", "t"):
                x = rng.normal(1, 1, 50)
                rows.append({"metric": f"m{j}", "arm": arm, "fam": f, **{k: v.item() for k, v in suff_from_units(x).items()}})
    specs = {f"m{j}": MetricSpec("mean") for j in range(8)}
    card = compare(pd.DataFrame(rows), specs, "c", "t", by=["fam"], correction="holm")
    assert len(card) == 400
    for _, fam in card.groupby("fam"):
        ref = multipletests(fam["p_value"].to_numpy(), alpha=0.05, method="holm")[1]
        np.testing.assert_allclose(fam["p_value_adjusted"].to_numpy(), ref, rtol=1e-12)
