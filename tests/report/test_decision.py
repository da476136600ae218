"""The decision rule on crafted metric results: promote / hold, every reason, the checks behind them;
JUnit fails exactly the blocking failed checks; report.md, the console and JUnit agree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from abplatform.decision import DecisionRule, decide, decide_arms
from abplatform.report.model import LatencyGuardrail
from abplatform.report.render import junit_xml, markdown, print_report
from tests.report.factory import metric, report, srm

RULE = DecisionRule()
WIN = metric("item_ctr", improved=True, significant=True, rel_effect=0.052, p_value=0.001, p_value_adjusted=0.002)
SECONDARY = metric("buyer_conversion", "secondary", rel_effect=-0.03, p_value=0.4, p_value_adjusted=0.4)
SAFE = metric("relevance", "guardrail", margin=0.01, rel_effect=0.004, alternative="less", null_effect=-0.01,
              rel_ci_low=None, rel_ci_high=0.011, p_value=0.9993, p_value_adjusted=0.9993)


def latency(breached: bool) -> LatencyGuardrail:
    ratio, lo, hi = (1.6, 1.52, 1.68) if breached else (1.02, 0.99, 1.05)
    return LatencyGuardrail(status="breached" if breached else "ok", margin=0.2, ratio=ratio, ratio_ci_low=lo,
                            ratio_ci_high=hi, cpu_ms_per_query={"control": 0.005, "treatment": 0.005 * ratio},
                            repetitions=400, batch_size=256, timer="process_time")


def test_promote_when_every_condition_holds():
    d = decide([WIN, SECONDARY, SAFE], srm(), RULE, latency(False))
    assert d.decision == "promote" and d.promote and d.reasons == []
    assert [(c.name, c.kind, c.passed, c.blocking) for c in d.checks] == [
        ("item_ctr", "primary", True, True), ("buyer_conversion", "secondary", True, False),
        ("relevance", "guardrail", True, True), ("sample_ratio", "srm", True, True), ("latency", "latency", True, True)]


def test_primary_not_improved():
    flat = metric("item_ctr", rel_effect=0.0123, p_value=0.2, p_value_adjusted=0.31)
    d = decide([flat, SAFE], srm(), RULE)
    assert d.decision == "hold"
    assert d.reasons == ["primary metric item_ctr did not improve significantly (+1.23%, 95% CI [-2.00%, +22.00%], "
                         "p = 0.3100, alpha = 0.05)"]


def test_primary_significantly_worse_says_so():
    worse = metric("item_ctr", rel_effect=-0.04, p_value=1e-6, p_value_adjusted=2e-6, degraded=True, significant=True)
    d = decide([worse], srm(), DecisionRule(alpha=0.1))
    assert d.reasons == ["primary metric item_ctr is significantly worse (-4.00%, 90% CI [-2.00%, +22.00%], "
                         "p = <0.0001, alpha = 0.1)"]


def test_every_primary_must_improve():
    other = metric("page_good_rate", rel_effect=0.001, p_value_adjusted=0.9)
    d = decide([WIN, other], srm(), RULE)
    assert d.decision == "hold" and len(d.reasons) == 1 and d.reasons[0].startswith("primary metric page_good_rate")


def test_guardrail_breached_under_harm():
    breach = metric("relevance", "guardrail", margin=0.01, rel_effect=-0.025, alternative="less", null_effect=-0.01,
                    rel_ci_high=-0.013, p_value=0.0007, p_value_adjusted=0.0007, breached=True)
    d = decide([WIN, breach], srm(), DecisionRule(guardrail_test="harm"))
    assert d.decision == "hold"
    # the harm test's own one-sided interval and p-value: the interval lies wholly beyond the margin
    assert d.reasons == ["guardrail relevance is significantly worse than its 1.00% margin (-2.50%, 95% CI "
                         "(−∞, -1.30%], p = 0.0007, one-sided)"]
    assert [c.name for c in d.checks if c.blocking and not c.passed] == ["relevance"]


def test_guardrail_breached_under_noninferiority():
    breach = metric("relevance", "guardrail", margin=0.01, rel_effect=-0.002, alternative="greater", null_effect=-0.01,
                    rel_ci_low=-0.015, p_value=0.2, p_value_adjusted=0.2, breached=True)
    d = decide([WIN, breach], srm(), DecisionRule(guardrail_test="noninferiority"))
    assert d.decision == "hold"
    assert d.reasons == ["guardrail relevance not shown no worse than its 1.00% margin (-0.20%, 95% CI "
                         "[-1.50%, +∞), p = 0.2000, one-sided)"]


def test_guardrail_without_margin():
    breach = metric("zero_result_rate", "guardrail", rel_effect=-0.1, alternative="less", rel_ci_high=-0.03,
                    p_value_adjusted=0.004, breached=True)
    d = decide([WIN, breach], srm(), RULE)
    assert d.reasons == ["guardrail zero_result_rate is significantly worse than no change (-10.00%, 95% CI "
                         "(−∞, -3.00%], p = 0.0040, one-sided)"]


def test_guardrail_that_is_not_breached_does_not_hold():
    # worse, but the stats did not flag a breach: the decision follows the verdict, not the sign
    d = decide([WIN, metric("relevance", "guardrail", margin=0.01, rel_effect=-0.003)], srm(), RULE)
    assert d.decision == "promote"


def test_srm_failure_blocks_by_default():
    d = decide([WIN], srm(failed=True, p_value=1.23e-6), RULE)
    assert d.decision == "hold"
    assert d.reasons == ["sample ratio mismatch: p = 1.23e-06 < threshold"]
    (check,) = [c for c in d.checks if c.kind == "srm"]
    assert (check.name, check.passed, check.blocking) == ("sample_ratio", False, True)


def test_srm_failure_does_not_block_when_configured_not_to():
    d = decide([WIN], srm(failed=True, p_value=1.23e-6), DecisionRule(block_on_srm=False))
    assert d.decision == "promote" and d.reasons == []
    (check,) = [c for c in d.checks if c.kind == "srm"]
    assert (check.passed, check.blocking) == (False, False)
    assert check.reason == "sample ratio mismatch: p = 1.23e-06 < threshold"


def test_latency_breached():
    d = decide([WIN], srm(), RULE, latency(True), control="v1", treatment="v2")
    assert d.decision == "hold"
    assert d.reasons == [("latency guardrail: v2 uses 1.600x the CPU time per query of v1 (95% CI [1.520, 1.680], "
                          "margin 20%): the whole CI is beyond the margin")]


def test_no_primary_metric_holds():
    d = decide([SECONDARY, SAFE], srm(), RULE)
    assert d.decision == "hold"
    assert d.reasons == ["no primary metric is configured"]
    assert next(c for c in d.checks if c.kind == "config").name == "primary_metric"


def test_reasons_follow_the_order_of_the_checks():
    flat = metric("item_ctr", p_value_adjusted=0.5)
    breach = metric("relevance", "guardrail", margin=0.01, rel_effect=-0.05, p_value_adjusted=0.001, breached=True)
    d = decide([flat, breach], srm(failed=True), RULE, latency(True))
    kinds = [c.kind for c in d.checks if c.blocking and not c.passed]
    assert kinds == ["primary", "guardrail", "srm", "latency"]
    assert d.reasons == [c.reason for c in d.checks if c.blocking and not c.passed] and len(d.reasons) == 4


# --- the renderings agree ----------------------------------------------------------------------

SCENARIOS = {
    "promote": {"metrics": [WIN, SECONDARY, SAFE]},
    "hold: primary and guardrail": {"metrics": [metric("item_ctr", p_value_adjusted=0.4), SECONDARY, metric(
        "relevance", "guardrail", margin=0.01, rel_effect=-0.05, p_value_adjusted=0.001, breached=True)]},
    "hold: srm": {"metrics": [WIN], "srm_check": srm(failed=True)},
    "promote: srm not blocking": {"metrics": [WIN], "srm_check": srm(failed=True),
                                  "rule": DecisionRule(block_on_srm=False)},
    "hold: no primary": {"metrics": [SECONDARY]},
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_junit_fails_exactly_the_blocking_failed_checks(name):
    rep = report(**SCENARIOS[name])
    suite = ET.fromstring(junit_xml(rep))
    cases = list(suite.iter("testcase"))
    assert [c.get("name") for c in cases] == [c.name for c in rep.decision.checks]
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    blocking_failed = [c for c in rep.decision.checks if c.blocking and not c.passed]
    assert failed == [c.name for c in blocking_failed]
    assert [c.find("failure").get("message") for c in cases if c.find("failure") is not None] == rep.decision.reasons
    assert suite.get("tests") == str(len(rep.decision.checks)) and suite.get("failures") == str(len(failed))
    # a failed check that does not block is reported, not failed
    for case, check in zip(cases, rep.decision.checks, strict=True):
        if not check.passed and not check.blocking:
            assert case.find("failure") is None and case.find("system-out").text.startswith("not blocking: ")


def console_text(rep) -> str:
    console = Console(record=True, width=200, force_terminal=False)
    print_report(rep, console)
    return console.export_text()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_markdown_console_and_junit_show_the_same_decision(name):
    rep = report(**SCENARIOS[name])
    word = rep.decision.decision.upper()
    assert word == ("PROMOTE" if name.startswith("promote") else "HOLD")
    md, text = markdown(rep), console_text(rep)
    assert f"**Decision: {word}**" in md
    assert f"Decision: {word}" in text
    md_reasons = [line[2:] for line in md.split("**Decision:", 1)[1].split("\n\n", 2)[1].splitlines()
                  if line.startswith("- ")] if rep.decision.reasons else []
    console_reasons = [line.strip()[2:] for line in text.split(f"Decision: {word}", 1)[1].splitlines()
                       if line.strip().startswith("- ")]
    suite = ET.fromstring(junit_xml(rep))
    junit_reasons = [f.get("message") for f in suite.iter("failure")]
    assert md_reasons == console_reasons == junit_reasons == rep.decision.reasons
    assert (suite.get("failures") == "0") == rep.decision.promote


# --- A/B/n: the arm to promote -------------------------------------------------------------------

def _pair(treatment: str, control: str, wins: bool, failed_srm: bool = False):
    m = metric(improved=wins, significant=wins)
    return treatment, control, decide([m], srm(failed=failed_srm), DecisionRule(), None, control, treatment)


ARMS3 = ["cascade", "v1", "v2"]


def test_abn_promotes_the_arm_that_beats_the_control_and_the_other_winner():
    d = decide_arms([_pair("v2", "v1", True), _pair("v1", "cascade", True), _pair("v2", "cascade", True)],
                    "cascade", ARMS3)
    assert (d.decision, d.arm, d.reasons) == ("promote", "v2", [])
    assert d.explanation == "v2 beats cascade on every check and beats v1 (v1 also beat cascade)"
    # every check is listed with its comparison; none that failed blocks
    assert {c.comparison for c in d.checks if c.kind != "srm"} == {"v2 vs v1", "v1 vs cascade", "v2 vs cascade"}
    assert not [c for c in d.checks if c.blocking and not c.passed]


def test_abn_two_winners_without_a_comparison_between_them_hold():
    d = decide_arms([_pair("v1", "cascade", True), _pair("v2", "cascade", True)], "cascade", ARMS3)
    assert d.decision == "hold" and d.arm is None
    assert d.reasons == ["v1 and v2 beat cascade and no comparison shows one of them better than the other "
                         "(compare them in comparisons:)"]


def test_abn_a_loser_against_the_control_does_not_block_the_winner():
    d = decide_arms([_pair("v2", "v1", True), _pair("v1", "cascade", False), _pair("v2", "cascade", True)],
                    "cascade", ARMS3)
    assert (d.decision, d.arm) == ("promote", "v2")
    failed = [c for c in d.checks if not c.passed and c.kind != "latency"]  # latency: not evaluated here
    assert [(c.comparison, c.name, c.blocking) for c in failed] == [("v1 vs cascade", "item_ctr", False)]


def test_abn_nothing_beats_the_control():
    d = decide_arms([_pair("v2", "v1", True), _pair("v1", "cascade", False), _pair("v2", "cascade", False)],
                    "cascade", ARMS3)
    assert (d.decision, d.arm, d.explanation) == ("hold", None, "no arm beats cascade")
    assert [r.split(":")[0] for r in d.reasons] == ["v1 vs cascade", "v2 vs cascade"]


def test_abn_sample_ratio_mismatch_is_one_check_and_one_reason():
    d = decide_arms([_pair(t, c, True, failed_srm=True) for t, c in (("v2", "v1"), ("v1", "cascade"),
                                                                      ("v2", "cascade"))], "cascade", ARMS3)
    assert d.decision == "hold"
    assert [c.kind for c in d.checks].count("srm") == 1
    assert sum(r.startswith("sample ratio mismatch") for r in d.reasons) == 1
