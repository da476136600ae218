"""The serving-cost guardrail: the ratio and its CI against an independent computation, the verdict
classes, the reasons it is not evaluated, the decision it feeds, and every rendering showing it —
including reports written before it existed. Seeded; nothing here is timed."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from scipy import stats as sps

from abplatform.decision import DecisionRule, decide
from abplatform.report.model import LatencyGuardrail, Report
from abplatform.report.render import junit_xml, markdown
from abplatform.stats.latency import NO_MARGIN, ONLINE, latency_guardrail, not_evaluated, ratio_ci, verdict
from tests.report.factory import metric, report, srm

WIN = metric("item_ctr", improved=True, significant=True, rel_effect=0.05, p_value=0.001, p_value_adjusted=0.001)


def paired_times(ratio: float, n: int = 400, noise: float = 0.05, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Control CPU seconds that drift like a loaded machine (a shared log-normal factor per pair) and
    treatment = control x ratio x independent noise."""
    rng = np.random.default_rng(seed)
    load = np.exp(rng.normal(0, 0.5, n))  # common to both of a pair: cancels in the ratio
    control = 0.001 * load * np.exp(rng.normal(0, noise, n))
    return control, control * ratio * np.exp(rng.normal(0, noise, n))


# --- the statistic against an independent computation ------------------------------------------

@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_ratio_ci_is_the_paired_t_interval_of_the_log_ratio(alpha):
    c, t = paired_times(1.13, n=250)
    ratio, lo, hi = ratio_ci(c, t, alpha)
    res = sps.ttest_rel(np.log(t), np.log(c))  # scipy's paired t test on the logs
    ci = res.confidence_interval(1 - alpha)
    assert math.log(lo) == pytest.approx(ci.low, rel=1e-12) and math.log(hi) == pytest.approx(ci.high, rel=1e-12)
    # by hand: mean of the log ratios +- t quantile x standard error
    d = [math.log(b / a) for a, b in zip(c, t, strict=True)]
    n, mean = len(d), sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
    q = sps.t.ppf(1 - alpha / 2, n - 1)
    assert ratio == pytest.approx(math.exp(mean), rel=1e-12)
    assert (lo, hi) == pytest.approx((math.exp(mean - q * se), math.exp(mean + q * se)), rel=1e-12)
    # the geometric mean of the paired ratios
    assert ratio == pytest.approx(float(sps.gmean(t / c)), rel=1e-12)


def test_a_load_common_to_both_arms_of_a_pair_cancels():
    c, t = paired_times(1.3)
    rng = np.random.default_rng(9)
    slowdown = np.where(rng.random(len(c)) < 0.5, 1.0, 1.7)  # every other pair on a busy machine
    assert ratio_ci(c * slowdown, t * slowdown, 0.05) == pytest.approx(ratio_ci(c, t, 0.05), rel=1e-12)


def test_guardrail_fields():
    c, t = paired_times(1.1, n=100)
    g = latency_guardrail(c, t, margin=0.2, alpha=0.05, batch_size=256, control="v1", treatment="v2")
    assert g.status == "ok" and not g.breached and g.margin == 0.2 and g.reason == ""
    assert (g.ratio, g.ratio_ci_low, g.ratio_ci_high) == pytest.approx(ratio_ci(c, t, 0.05), rel=1e-12)
    assert g.repetitions == 100 and g.batch_size == 256 and g.timer == "process_time"
    assert g.cpu_ms_per_query == pytest.approx({"v1": 1000 * c.sum() / (100 * 256), "v2": 1000 * t.sum() / (100 * 256)})


# --- the verdict classes -----------------------------------------------------------------------

@pytest.mark.parametrize(("lo", "hi", "expected"), [
    (1.25, 1.4, "breached"), (1.21, 1.3, "breached"), (0.9, 1.19, "ok"), (1.0, 1.05, "ok"),
    (1.1, 1.3, "inconclusive"), (1.2, 1.3, "inconclusive"), (1.1, 1.2, "inconclusive")])
def test_verdict_is_where_the_ci_lies_against_one_plus_margin(lo, hi, expected):
    assert verdict(lo, hi, 0.2) == expected


@pytest.mark.parametrize(("true_ratio", "noise", "expected"), [
    (1.5, 0.05, "breached"), (1.0, 0.05, "ok"), (0.8, 0.05, "ok"), (1.2, 0.05, "inconclusive"),
    (1.3, 2.0, "inconclusive")])  # a CI too wide to decide either way
def test_verdict_on_measured_times(true_ratio, noise, expected):
    c, t = paired_times(true_ratio, noise=noise)
    g = latency_guardrail(c, t, margin=0.2, alpha=0.05, batch_size=64)
    assert g.status == expected and g.breached == (expected == "breached")
    if expected == "inconclusive":
        assert g.ratio_ci_low <= 1.2 <= g.ratio_ci_high


# --- not evaluated, with a reason ----------------------------------------------------------------

def test_not_evaluated_reasons():
    c, t = paired_times(1.1, n=10)
    g = latency_guardrail(c, t, margin=None, alpha=0.05, batch_size=8)
    assert (g.status, g.reason, g.ratio) == ("not_evaluated", "latency_margin is null", None) and NO_MARGIN == g.reason
    g = latency_guardrail(c[:1], t[:1], margin=0.2, alpha=0.05, batch_size=8)
    assert g.status == "not_evaluated" and "1 paired repetition(s)" in g.reason and g.margin == 0.2
    g = latency_guardrail(np.r_[c[:5], 0.0], np.r_[t[:5], 1e-3], margin=0.2, alpha=0.05, batch_size=8)
    assert g.status == "not_evaluated" and "zero CPU seconds" in g.reason and "latency_batch_size" in g.reason
    assert not_evaluated(ONLINE).reason.startswith("online run")
    with pytest.raises(ValueError, match="control times"):
        latency_guardrail(c, t[:3], margin=0.2, alpha=0.05, batch_size=8)


# --- the decision ------------------------------------------------------------------------------

def guard(status: str) -> LatencyGuardrail:
    if status == "not_evaluated":
        return not_evaluated(NO_MARGIN)
    ratios = {"ok": (1.05, 1.03, 1.07), "inconclusive": (1.19, 1.16, 1.22), "breached": (1.4, 1.35, 1.45)}
    ratio, lo, hi = ratios[status]
    return LatencyGuardrail(status=status, margin=0.2, ratio=ratio, ratio_ci_low=lo, ratio_ci_high=hi,  # type: ignore[arg-type]
                            cpu_ms_per_query={"control": 0.002, "treatment": 0.002 * ratio}, repetitions=400,
                            batch_size=256, timer="process_time")


@pytest.mark.parametrize(("status", "test", "decision", "passed", "blocking"), [
    ("ok", "harm", "promote", True, True),
    ("breached", "harm", "hold", False, True),
    ("breached", "noninferiority", "hold", False, True),
    ("inconclusive", "harm", "promote", False, False),  # only a cost shown beyond the margin holds
    ("inconclusive", "noninferiority", "hold", False, True),  # the cost must be shown within the margin
    ("not_evaluated", "harm", "promote", False, False),
    ("not_evaluated", "noninferiority", "promote", False, False)])
def test_decision_per_status(status, test, decision, passed, blocking):
    d = decide([WIN], srm(), DecisionRule(guardrail_test=test), guard(status), control="v1", treatment="v2")
    (check,) = [c for c in d.checks if c.kind == "latency"]
    assert (d.decision, check.name, check.passed, check.blocking) == (decision, "latency", passed, blocking)
    assert (check.reason in d.reasons) == (blocking and not passed)
    if status == "inconclusive":
        assert check.reason == ("latency guardrail inconclusive: v2 uses 1.190x the CPU time per query of v1 "
                                "(95% CI [1.160, 1.220], margin 20%): the CI straddles the margin "
                                "(more decision.latency_repetitions narrow it)")
    if status == "not_evaluated":
        assert check.reason == "latency guardrail not evaluated: latency_margin is null"


def test_the_check_is_listed_even_without_a_measurement():
    d = decide([WIN], srm(), DecisionRule())
    (check,) = [c for c in d.checks if c.kind == "latency"]
    assert (check.passed, check.blocking, d.decision) == (False, False, "promote")
    assert check.reason == "latency guardrail not evaluated: no serving-cost measurement in this report"


# --- every rendering shows it ------------------------------------------------------------------

def with_latency(status: str, mode: str = "offline") -> Report:
    g = not_evaluated(ONLINE) if mode == "online" else guard(status)
    rule = DecisionRule()
    return report(metrics=[WIN], mode=mode, latency_guardrail=g, decision=decide([WIN], srm(), rule, g))


@pytest.mark.parametrize(("status", "mode"), [("ok", "offline"), ("inconclusive", "offline"),
                                              ("breached", "offline"), ("not_evaluated", "offline"),
                                              ("not_evaluated", "online")])
def test_report_json_junit_and_markdown_always_show_the_check(status, mode):
    rep = with_latency(status, mode)
    doc = json.loads(rep.to_json())
    assert doc["latency_guardrail"]["status"] == status
    assert Report.from_json(rep.to_json()) == rep
    suite = ET.fromstring(junit_xml(rep))
    (case,) = [c for c in suite.iter("testcase") if c.get("name") == "latency"]
    out = case.find("system-out").text
    assert (case.find("failure") is not None) == (status == "breached")
    assert status.replace("_", " ") in out
    md = markdown(rep)
    section = md.split("## Serving cost (latency guardrail)", 1)[1]
    assert status.replace("_", " ") in section
    if status == "not_evaluated":
        why = "online run" if mode == "online" else "latency_margin is null"
        assert why in out and why in section
    else:
        assert "95% CI [" in out and "400 paired repetitions of 256 queries, process_time" in out
        assert "CPU ms per query: control 0.00200" in section


def test_markdown_without_a_guardrail_says_so():
    md = markdown(report())  # a hand-made report with no latency_guardrail at all
    assert "## Serving cost (latency guardrail)\n\nnot evaluated: no serving-cost measurement in this report" in md


# --- reports written before the serving-cost measurement --------------------------------------

OLD_FIELDS = {"control_ms": 0.5, "treatment_ms": 0.8, "ratio": 1.6, "margin": 0.2, "p_value": 0.0004,
              "batches": [12, 12]}


@pytest.mark.parametrize("breached", [True, False])
def test_an_old_report_json_with_the_old_fields_still_loads(breached):
    doc = json.loads(report(metrics=[WIN], mode="offline").to_json())
    doc["latency_guardrail"] = {**OLD_FIELDS, "breached": breached}
    doc["latency_ms_per_query"] = {"control": 0.5, "treatment": 0.8}
    rep = Report.from_json(json.dumps(doc))
    g = rep.latency_guardrail
    assert g is not None and g.status == ("breached" if breached else "ok") and g.breached == breached
    assert (g.ratio, g.margin, g.ratio_ci_low, g.repetitions, g.cpu_ms_per_query) == (1.6, 0.2, None, 0, {})
    # it renders (the gate re-renders stored runs) and round-trips in the new shape
    assert ("ok" if not breached else "breached") in markdown(rep).split("## Serving cost", 1)[1]
    junit_xml(rep)
    assert Report.from_json(rep.to_json()) == rep


def test_an_old_report_without_a_latency_guardrail_loads():
    doc = json.loads(report().to_json())
    doc.pop("latency_guardrail")
    assert Report.from_json(json.dumps(doc)).latency_guardrail is None
