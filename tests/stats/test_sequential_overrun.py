"""Group-sequential looks past planned_n (over-running) and sequential monitoring combined with
multiple-testing correction."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from abplatform.stats import MetricSpec, SequentialSpec, compare
from abplatform.stats import sequential as seq


def test_overrunning_final_look_spends_exactly_the_remaining_alpha():
    t = np.array([0.25, 0.5, 0.75, 1.3])  # the last look has 30% more information than planned
    c = seq.obf_boundaries(t, 0.05)
    assert np.all(np.isfinite(c))
    np.testing.assert_allclose(c[:3], seq.obf_boundaries(t[:3], 0.05), rtol=1e-12)  # interim looks unchanged
    rng = np.random.default_rng(21)
    steps = rng.standard_normal((400_000, 4)) * np.sqrt(np.diff(np.r_[0, t]))
    z = np.cumsum(steps, axis=1) / np.sqrt(t)
    assert (np.abs(z) >= c).any(axis=1).mean() == pytest.approx(0.05, abs=0.0015)
    # the correlation structure matters: the planned-information boundary would be different
    assert c[3] != pytest.approx(seq.obf_boundaries(np.r_[t[:3], 1.0], 0.05)[3], abs=1e-3)


def test_final_schedule_treats_the_first_overrun_look_as_final_and_later_ones_as_reanalysis():
    sched = seq.final_schedule(np.array([0.4, 0.8, 1.1, 1.3]))
    assert [k for _, k in sched] == [0, 1, 2, 2]
    np.testing.assert_allclose(sched[3][0], [0.4, 0.8, 1.3])
    assert seq.obf_p_value(0.0, *sched[3]) == 1.0
    assert seq.obf_p_value(3.0, *sched[3]) < 0.01


def _daily(rng, days, per_day, lift=0.0, metrics=("m",)):
    rows = []
    for m in metrics:
        x = rng.normal(1.0, 1.0, (2, days, per_day))
        x[1] += lift
        s1, s2 = np.cumsum(x.sum(-1), 1), np.cumsum((x**2).sum(-1), 1)
        for a, arm in enumerate(("c", "t")):
            for d in range(days):
                rows.append({"metric": m, "arm": arm, "day": d + 1, "n": (d + 1) * per_day, "sum_x": s1[a, d], "sum_x2": s2[a, d]})
    return pd.DataFrame(rows)


def test_compare_after_planned_n_gives_finite_final_analyses():
    suff = _daily(np.random.default_rng(22), 6, 200, lift=0.2)
    spec = SequentialSpec(method="obrien_fleming", planned_n=2 * 4 * 200)  # planned 4 days, ran 6
    card = compare(suff, {"m": MetricSpec("mean")}, "c", "t", sequential=spec)
    assert np.isfinite(card.abs_ci_high).all() and (card.p_value < 1).all()
    # day 6 is the final analysis on day-6 data: the same as if day 5 had never been looked at
    card_skip = compare(suff[suff.day != 5], {"m": MetricSpec("mean")}, "c", "t", sequential=spec)
    a, b = card.set_index("day").loc[6], card_skip.set_index("day").loc[6]
    assert (a.abs_ci_low, a.abs_ci_high, a.p_value) == pytest.approx((b.abs_ci_low, b.abs_ci_high, b.p_value), rel=1e-9)
    # at the final look the boundary is below the design's first-look boundary and near z_{0.975}
    q = (card.abs_ci_high - card.abs_effect) / card.abs_se
    assert q.iloc[-1] < q.iloc[0] and 1.96 < q.iloc[-1] < 2.2


@pytest.mark.parametrize("method,correction", [("obrien_fleming", "holm"), ("obrien_fleming", "bh"), ("confidence_sequence", "holm")])
def test_sequential_with_correction_agree_per_look(method, correction):
    metrics = ("a", "b", "c", "d")
    suff = _daily(np.random.default_rng(23), 5, 300, lift=0.12, metrics=metrics)
    spec = SequentialSpec(method=method, planned_n=2 * 5 * 300)
    specs = {m: MetricSpec("mean") for m in metrics}
    card = compare(suff, specs, "c", "t", sequential=spec, correction=correction, alpha=0.05)
    plain = compare(suff, specs, "c", "t", sequential=spec, alpha=0.05)
    np.testing.assert_allclose(card.p_value, plain.p_value, rtol=1e-12)  # the correction leaves raw sequential p alone
    for day, g in card.groupby("day"):  # one family per look
        sm = multipletests(g.p_value, alpha=0.05, method="holm" if correction == "holm" else "fdr_bh")[1]
        np.testing.assert_allclose(g.p_value_adjusted, sm, rtol=1e-12)
        excludes = (g.abs_ci_low_adjusted > 0) | (g.abs_ci_high_adjusted < 0)
        assert (excludes == (g.p_value_adjusted < 0.05)).all()
        assert (g.abs_ci_high_adjusted - g.abs_ci_low_adjusted >= g.abs_ci_high - g.abs_ci_low - 1e-12).all()
    if method == "obrien_fleming":  # adjusted CIs use the sequential boundary at the adjusted level α_i
        r = card[card.day == 3].iloc[0]
        t = card[card.metric == r.metric].sort_values("day").eval("(n_control + n_treatment) / @spec.planned_n").to_numpy()
        c = seq.obf_multiplier(r.alpha_adjusted, t[:3], 2, 0.05)
        assert r.abs_ci_high_adjusted - r.abs_effect == pytest.approx(c * r.abs_se, rel=1e-9)
