"""The offline prediction set beside the online result: per metric, per comparison both runs made."""

from __future__ import annotations

import dataclasses

from abplatform.decision import DecisionRule, decide
from abplatform.pipeline import offline_vs_online
from abplatform.report.model import Comparison
from tests.report.factory import metric, report, srm


def _comparison(treatment: str, control: str, lift: float) -> Comparison:
    rows = [metric("item_ctr", rel_effect=lift, rel_ci_low=lift - 0.02, rel_ci_high=lift + 0.02)]
    return Comparison(treatment=treatment, control=control, metrics=rows,
                      decision=decide(rows, srm(), DecisionRule(), None, control, treatment))


def _abn(mode: str, lifts: dict[tuple[str, str], float]):
    comparisons = [_comparison(t, c, lift) for (t, c), lift in lifts.items()]
    head = comparisons[0]
    return report(metrics=head.metrics, mode=mode, control=head.control, treatment=head.treatment,
                  arms=["cascade", "v1", "v2"], control_arm="cascade", comparisons=comparisons)


def test_two_arm_runs_pair_whatever_their_arms_are_called():
    offline = report(metrics=[metric("item_ctr", rel_effect=0.05)], mode="offline")
    online = report(metrics=[metric("item_ctr", rel_effect=0.04, rel_ci_low=0.01, rel_ci_high=0.07)],
                    control="A", treatment="B")
    (row,) = offline_vs_online(offline, online)
    assert (row.metric, row.predicted_rel_effect, row.observed_rel_effect) == ("item_ctr", 0.05, 0.04)
    assert row.prediction_inside_observed_ci and row.comparison == "treatment vs control"


def test_abn_runs_pair_the_comparisons_both_made_by_arm_names():
    offline = _abn("offline", {("v2", "v1"): 0.04, ("v1", "cascade"): 0.017, ("v2", "cascade"): 0.06})
    online = _abn("online", {("v1", "cascade"): 0.03, ("v2", "v1"): 0.10, ("v2", "cascade"): 0.061})
    rows = {r.comparison: r for r in offline_vs_online(offline, online)}
    assert list(rows) == ["v2 vs v1", "v1 vs cascade", "v2 vs cascade"]
    assert (rows["v2 vs v1"].predicted_rel_effect, rows["v2 vs v1"].observed_rel_effect) == (0.04, 0.10)
    assert [r.prediction_inside_observed_ci for r in rows.values()] == [False, True, True]
    # a comparison only one run made is not paired
    fewer = dataclasses.replace(online, comparisons=online.comparisons[:2])
    assert [r.comparison for r in offline_vs_online(offline, fewer)] == ["v2 vs v1", "v1 vs cascade"]
