"""The decision rule — the gate's, the report's and the dashboard's — in one function.

Promote when every primary metric improves significantly, no guardrail is breached (``harm``:
significantly worse beyond its margin; ``noninferiority``: not shown within its margin), the
sample-ratio check passes (when it blocks) and, offline, the treatment ranker is not
significantly slower per query than the control beyond the latency margin. Otherwise hold, with
one reason per failed condition. Every condition is a :class:`~abplatform.report.model.Check`,
which JUnit shows as one test case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from abplatform.formats import fmt_p, fmt_pct
from abplatform.report.model import Check, Decision, LatencyGuardrail, MetricResult, SrmCheck


@dataclass(frozen=True)
class DecisionRule:
    alpha: float = 0.05
    guardrail_test: str = "harm"  # harm | noninferiority
    block_on_srm: bool = True


def _metric_check(m: MetricResult, rule: DecisionRule) -> Check:
    rel = fmt_pct(m.rel_effect) if m.rel_effect is not None else "n/a"
    if m.role == "primary":
        why = "is significantly worse" if m.degraded else "did not improve significantly"
        reason = f"primary metric {m.metric} {why} ({rel}, p = {fmt_p(m.p_value_adjusted)}, alpha = {rule.alpha})"
        return Check(name=m.metric, kind="primary", passed=m.improved, blocking=True,
                     reason="" if m.improved else reason)
    if m.role == "guardrail":
        if m.margin is not None and rule.guardrail_test == "noninferiority":
            reason = (f"guardrail {m.metric} not shown within its {m.margin:.2%} margin "
                      f"({rel}, non-inferiority p = {fmt_p(m.noninferior_p_value)})")
        elif m.margin is not None:
            harm_p = None if m.noninferior_p_value is None else 1 - m.noninferior_p_value
            reason = (f"guardrail {m.metric} is significantly worse beyond its {m.margin:.2%} "
                      f"margin ({rel}, p = {fmt_p(harm_p)})")
        else:
            reason = f"guardrail {m.metric} is significantly worse ({rel}, p = {fmt_p(m.p_value_adjusted)})"
        return Check(name=m.metric, kind="guardrail", passed=not m.breached, blocking=True,
                     reason=reason if m.breached else "")
    return Check(name=m.metric, kind="secondary", passed=True, blocking=False)


def _latency_check(lat: LatencyGuardrail, control: str, treatment: str) -> Check:
    reason = (f"latency guardrail: {treatment} scores in {lat.treatment_ms:.4f} ms/query vs "
              f"{lat.control_ms:.4f} for {control} ({lat.ratio - 1:+.1%}, significantly beyond the "
              f"{lat.margin:.0%} margin, p = {lat.p_value:.3g})")
    return Check(name="latency", kind="latency", passed=not lat.breached, blocking=True,
                 reason=reason if lat.breached else "")


def decide(metrics: Sequence[MetricResult], srm: SrmCheck, rule: DecisionRule,
           latency: LatencyGuardrail | None = None, control: str = "control", treatment: str = "treatment") -> Decision:
    """The decision and every check behind it (reasons in the order the checks are listed)."""
    checks = [_metric_check(m, rule) for m in metrics]
    srm_reason = f"sample ratio mismatch: p = {srm.p_value:.3g} < threshold" if srm.failed else ""
    checks.append(Check(name="sample_ratio", kind="srm", passed=not srm.failed, blocking=rule.block_on_srm,
                        reason=srm_reason))
    if not any(m.role == "primary" for m in metrics):
        checks.append(Check(name="primary_metric", kind="config", passed=False, blocking=True,
                            reason="no primary metric is configured"))
    if latency is not None:
        checks.append(_latency_check(latency, control, treatment))
    reasons = [c.reason for c in checks if c.blocking and not c.passed]
    return Decision(decision="hold" if reasons else "promote", reasons=reasons, checks=checks)
