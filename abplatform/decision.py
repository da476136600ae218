"""The decision rule — the gate's, the report's and the dashboard's — in one function.

Promote when every primary metric improves significantly, no guardrail is breached (``harm``:
significantly worse beyond its margin; ``noninferiority``: not shown within its margin), the
sample-ratio check passes (when it blocks) and, offline, the treatment ranker's CPU time per query
is not shown beyond the control's by more than the latency margin (under ``noninferiority``: is
shown within it). Otherwise hold, with one reason per failed condition. Every condition is a
:class:`~abplatform.report.model.Check`, which JUnit shows as one test case.

With more than two arms (:func:`decide_arms`) each comparison is decided by that rule, and the arm
to promote is the one treatment that beats the control and is not beaten by another treatment
that beats it too (a listed comparison between them that promotes the other). Several such arms
hold: nothing shows which is better — compare them (``comparisons:``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from abplatform.formats import fmt_ci, fmt_p, fmt_pct, fmt_value
from abplatform.report.model import Check, Decision, LatencyGuardrail, MetricResult, SrmCheck


@dataclass(frozen=True)
class DecisionRule:
    alpha: float = 0.05
    guardrail_test: str = "harm"  # harm | noninferiority
    block_on_srm: bool = True


def _evidence(m: MetricResult, rule: DecisionRule) -> str:
    """The effect, the interval and the p-value of the row's one test — the ones the verdict read."""
    adjusted = m.alpha_adjusted is not None and m.alpha_adjusted < rule.alpha
    low, high = m.interval(adjusted)
    ci = fmt_ci(low, high, pct=m.test_scale == "relative", alternative=m.alternative)
    effect = (fmt_pct(m.rel_effect) if m.test_scale == "relative" else f"odds ratio {fmt_value(m.or_effect)}"
              if m.test_scale == "odds_ratio" else f"absolute {fmt_value(m.abs_effect)}")
    label = " adjusted" if adjusted else ""
    return f"{effect}, {100 * (1 - rule.alpha):g}% CI{label} {ci}, p{label} = {fmt_p(m.p_value_adjusted)}"


def _metric_check(m: MetricResult, rule: DecisionRule) -> Check:
    evidence = _evidence(m, rule)
    if m.role == "primary":
        why = "is significantly worse" if m.degraded else "did not improve significantly"
        reason = f"primary metric {m.metric} {why} ({evidence}, alpha = {rule.alpha})"
        return Check(name=m.metric, kind="primary", passed=m.improved, blocking=True,
                     reason="" if m.improved else reason)
    if m.role == "guardrail":
        margin = f"its {m.margin:.2%} margin" if m.margin is not None and m.test_scale == "relative" else "no change"
        if rule.guardrail_test == "noninferiority":
            reason = f"guardrail {m.metric} not shown no worse than {margin} ({evidence}, one-sided)"
        else:
            reason = f"guardrail {m.metric} is significantly worse than {margin} ({evidence}, one-sided)"
        return Check(name=m.metric, kind="guardrail", passed=not m.breached, blocking=True,
                     reason=reason if m.breached else "")
    return Check(name=m.metric, kind="secondary", passed=True, blocking=False)


def _latency_check(lat: LatencyGuardrail | None, rule: DecisionRule, control: str, treatment: str) -> Check:
    """The serving-cost check. ``breached`` holds; ``inconclusive`` (the CI straddles 1 + margin) holds
    only under the non-inferiority rule, as a metric guardrail not shown within its margin does
    (harm, the default: only a cost shown beyond the margin holds); ``not_evaluated`` never holds
    but is listed, failed and not blocking, with its reason (no margin, an online run, precomputed
    rankings), so the check is never silently missing."""
    if lat is None:
        lat = LatencyGuardrail(status="not_evaluated", reason="no serving-cost measurement in this report")
    if lat.status == "not_evaluated" or lat.ratio is None or lat.margin is None:
        return Check(name="latency", kind="latency", passed=False, blocking=False,
                     reason=f"latency guardrail not evaluated: {lat.reason or 'no measurement'}")
    ci = f"[{lat.ratio_ci_low:.3f}, {lat.ratio_ci_high:.3f}]" if lat.ratio_ci_low is not None else "n/a"
    measured = (f"{treatment} uses {lat.ratio:.3f}x the CPU time per query of {control} "
                f"({100 * (1 - rule.alpha):g}% CI {ci}, margin {lat.margin:.0%})")
    if lat.status == "breached":
        return Check(name="latency", kind="latency", passed=False, blocking=True,
                     reason=f"latency guardrail: {measured}: the whole CI is beyond the margin")
    if lat.status == "inconclusive":
        return Check(name="latency", kind="latency", passed=False, blocking=rule.guardrail_test == "noninferiority",
                     reason=f"latency guardrail inconclusive: {measured}: the CI straddles the margin "
                            "(more decision.latency_repetitions narrow it)")
    return Check(name="latency", kind="latency", passed=True, blocking=True)


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
    checks.append(_latency_check(latency, rule, control, treatment))  # always listed, even when not evaluated
    reasons = [c.reason for c in checks if c.blocking and not c.passed]
    return Decision(decision="hold" if reasons else "promote", reasons=reasons, checks=checks,
                    arm=None if reasons else treatment)


def _names(arms: Sequence[str]) -> str:
    return " and ".join(arms) if len(arms) < 3 else ", ".join(arms[:-1]) + " and " + arms[-1]


def decide_arms(comparisons: Sequence[tuple[str, str, Decision]], control: str, arms: Sequence[str]) -> Decision:
    """The A/B/n decision from each comparison's (treatment, control, decision).

    Eligible: treatments whose comparison with ``control`` promotes. Beaten: an eligible arm that a
    listed comparison with another eligible arm decides against (the other arm promotes over it).
    One eligible arm not beaten is promoted; none or several hold. The checks are every
    comparison's (the sample-ratio check once), blocking only in the comparisons that decide: on
    promote, the arm's against the control and against the arms it beat; on hold, every treatment's
    against the control and, with several candidates, the comparisons between them.
    """
    by_pair = {(t, c): d for t, c, d in comparisons}
    treatments = [a for a in arms if a != control]
    eligible = [a for a in treatments if by_pair[(a, control)].promote]
    beaten = {c for (t, c), d in by_pair.items() if d.promote and t in eligible and c in eligible}
    candidates = [a for a in eligible if a not in beaten]
    extra: list[Check] = []
    if len(candidates) == 1:
        arm = candidates[0]
        over = [c for (t, c), d in by_pair.items() if t == arm and c != control and d.promote]
        deciding = {(arm, control), *((arm, c) for c in over)}
        explanation = f"{arm} beats {control} on every check" + (f" and beats {_names(over)}" if over else "")
        others = [a for a in eligible if a != arm]
        if others:
            explanation += f" ({_names(others)} also beat {control})"
    else:
        arm = None
        deciding = {(t, control) for t in treatments}
        if candidates:
            deciding |= {p for p in by_pair if p[0] in candidates and p[1] in candidates}
            extra.append(Check(name="arm_choice", kind="choice", passed=False, blocking=True,
                               reason=f"{_names(candidates)} beat {control} and no comparison shows one of them "
                                      "better than the other (compare them in comparisons:)"))
            explanation = f"more than one arm beats {control}"
        else:
            explanation = f"no arm beats {control}"
    checks: list[Check] = []
    for t, c, d in comparisons:
        name = f"{t} vs {c}"
        for check in d.checks:
            if check.kind == "srm":
                if not any(x.kind == "srm" for x in checks):
                    checks.append(check)
                continue
            checks.append(replace(check, comparison=name, blocking=check.blocking and (t, c) in deciding,
                                  reason=f"{name}: {check.reason}" if check.reason else ""))
    checks += extra
    reasons = [c.reason for c in checks if c.blocking and not c.passed]
    return Decision(decision="promote" if arm else "hold", reasons=reasons, checks=checks, arm=arm,
                    explanation=explanation)
