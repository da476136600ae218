"""Renderings of a :class:`~abplatform.report.model.Report`: Markdown (report.md and the CI step
summary), the console table, JUnit XML (one test case per decision check) and the gate's JSON."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from abplatform.formats import fmt_ci, fmt_p, fmt_pct, fmt_value
from abplatform.report.interleaving import InterleavingResult
from abplatform.report.model import (
    Check,
    Comparison,
    LatencyGuardrail,
    MetricResult,
    Report,
    SegmentHeterogeneity,
)
from abplatform.report.offline_policy import OfflinePolicyEvaluation

if TYPE_CHECKING:
    from rich.console import Console


def ci_cell(m: MetricResult, adjusted: bool = False) -> str:
    """The interval of the row's test as the report prints it (one-sided as [lo, +∞) / (−∞, hi])."""
    low, high = m.interval(adjusted)
    relative = m.test_scale == "relative"
    ci = fmt_ci(low, high, pct=relative, alternative=m.alternative)
    if m.test_scale == "odds_ratio":  # Fisher's exact test: the odds ratio's interval
        return f"OR {ci}"
    return ci + ("" if relative else " (absolute)")


def _adjusted(report: Report) -> bool:
    return report.analysis.correction != "none"


def _metric_cells(report: Report, m: MetricResult) -> list[str]:
    cells = [m.metric, m.role, m.hypothesis(), fmt_value(m.control_value), fmt_value(m.treatment_value),
             fmt_value(m.abs_effect), fmt_pct(m.rel_effect), ci_cell(m), fmt_p(m.p_value)]
    if _adjusted(report):
        cells += [ci_cell(m, adjusted=True), fmt_p(m.p_value_adjusted)]
    return cells


def _several(report: Report) -> bool:
    return len(report.comparison_list()) > 1


def metric_headers(report: Report, comparison: Comparison | None = None) -> list[str]:
    """Column names; adjusted interval and p-value beside each other when a correction is on. An A/B/n
    comparison's value columns are named by its arms."""
    ci = report.confidence_label
    arms = [comparison.control, comparison.treatment] if comparison and _several(report) else ["control", "treatment"]
    headers = ["metric", "role", "H1", *arms, "abs diff", "rel diff", ci, "p"]
    if _adjusted(report):
        headers += [f"{ci} ({report.analysis.correction}-adjusted)", f"p ({report.analysis.correction}-adjusted)"]
    return headers


def analysis_line(report: Report) -> str:
    """How the rows were tested, in one line: the relative CI, the multiplicity family, sequential."""
    a = report.analysis
    parts = [f"relative CI and test: {a.relative_ci}", f"guardrails: {a.guardrail_test} test, one-sided"]
    if a.correction != "none":
        family = ("primary metrics (secondaries their own family; guardrails at alpha)"
                  if a.correction_scope == "primary" else "all metrics")
        if _several(report):
            family = f"the {len(report.comparison_list())} comparisons × {family}"
        parts.append(f"{a.correction} correction over {family}")
    if a.sequential:
        parts.append(f"sequential ({a.sequential}): the scorecard and the daily table are valid at this look "
                     "(segments and long tail are fixed-horizon)")
    return "Tests: " + "; ".join(parts) + f"; alpha = {report.alpha:g}."


def decision_title(report: Report) -> str:
    """"PROMOTE", "HOLD" — and the arm to promote, in an A/B/n report ("PROMOTE v2")."""
    d = report.decision
    return d.decision.upper() + (f" {d.arm}" if d.arm and _several(report) else "")


def _comparison_heading(c: Comparison) -> str:
    return f"{c.name}: {c.treatment} {'beats' if c.decision.promote else 'does not beat'} {c.control}"


def _threshold(rows: Any) -> str:
    return f"{rows[0].threshold:g}" if rows else "0.001"


def daily_srm_line(report: Report) -> str:
    """The sample ratio of each day's new units in one line (report.md and the dashboard's health section)."""
    days = report.srm_by_day
    if not days:
        return "Exposures per day: not evaluated (no daily looks in this report)"
    head = (f"Exposures per day (sample ratio of each day's new {report.analysis.units_label}, Holm across "
            f"{len(days)} days, fails at adjusted p < {_threshold(days)})")
    bad = [d for d in days if d.failed]
    if bad:
        return head + ": **FAILED** on " + "; ".join(
            f"{d.day} ({', '.join(f'{a} {n}' for a, n in d.units.items())}; Holm {_p_is(d.p_value_adjusted)})"
            for d in bad)
    low = min(days, key=lambda d: d.p_value_adjusted if d.p_value_adjusted is not None else 1.0)
    return head + f": ok (smallest Holm {_p_is(low.p_value_adjusted)}, {low.day})"


def balance_line(report: Report) -> str:
    """The pre-period A/A check of every comparison in one line (report.md and the dashboard)."""
    rows = [b for c in report.comparison_list() for b in c.balance]
    if not rows:
        return ("Pre-period balance: not evaluated (no pre-period covariates: the log has no pre-period, or the "
                "unit is not the user)")
    head = (f"Pre-period balance (A/A check: Welch on the pre-period per-unit values, Holm across a comparison's "
            f"metrics, fails at adjusted p < {_threshold(rows)})")
    several = _several(report)
    bad = [b for b in rows if b.failed]
    if bad:
        return head + ": **FAILED** for " + "; ".join(
            f"{b.metric}{f' ({b.comparison})' if several else ''}: {b.control} {fmt_value(b.control_pre_value)}, "
            f"{b.treatment} {fmt_value(b.treatment_pre_value)}, Holm {_p_is(b.p_value_adjusted)}" for b in bad)
    tested = [b for b in rows if b.p_value_adjusted is not None]
    if not tested:
        return head + ": no metric could be tested (no pre-period variation)"
    low = min(tested, key=lambda b: b.p_value_adjusted or 0.0)
    return head + f": ok (smallest Holm {_p_is(low.p_value_adjusted)}, {low.metric})"


def markdown(report: Report) -> str:
    d = report.decision
    ci = report.confidence_label
    several = _several(report)
    comparisons = report.comparison_list()
    lines = [f"# {report.experiment} — {report.run_id}", "", f"**Decision: {decision_title(report)}**", ""]
    if several and d.explanation:
        lines += [f"{d.explanation[0].upper()}{d.explanation[1:]}.", ""]
    lines += [f"- {r}" for r in d.reasons]
    units = ", ".join(f"{a}: {n}" for a, n in report.srm.units.items())
    lines += ["", f"Mode: {report.mode} · {report.analysis.units_label} {units} · "
                  f"SRM ({report.srm.test}) p = {fmt_p(report.srm.p_value)}"
              + (" **(FAILED)**" if report.srm.failed else ""), "", analysis_line(report), "",
              f"- {daily_srm_line(report)}", f"- {balance_line(report)}", ""]
    lines += _scorecards_markdown(report, comparisons)
    for c in comparisons:
        if c.segments:
            lines += ["", *_segments_markdown(report, c)]
    if report.offline_vs_online:
        lines += ["", *_offline_vs_online_markdown(report)]
    for c in comparisons:
        if c.long_tail is not None:
            lines += ["", *_long_tail_markdown(report, c)]
    if report.offline_policy is not None:
        lines += ["", *offline_policy_markdown(report.offline_policy)]
    if report.interleaving is not None:
        lines += ["", *interleaving_markdown(report.interleaving)]
    lines += ["", "## Serving cost (latency guardrail)", ""]
    lines += [(f"- {c.name}: " if several else "") + latency_details(c.latency_guardrail, ci) for c in comparisons]
    if report.latency_ms_per_query:
        lines += ["", "Replay wall clock, ms per query (for information; it moves with machine load and does "
                      "not decide): " + ", ".join(f"{a} {v:.4f}" for a, v in report.latency_ms_per_query.items())]
    return "\n".join(lines) + "\n"


def _scorecards_markdown(report: Report, comparisons: list[Comparison]) -> list[str]:
    """The metric table of each comparison (headed by its verdict in an A/B/n report)."""
    several = _several(report)
    lines: list[str] = []
    for i, c in enumerate(comparisons):
        if several:
            lines += ([""] if i else []) + [f"## {_comparison_heading(c)}", ""]
            if not c.decision.promote:
                lines += [f"- {r}" for r in c.decision.reasons if not r.startswith("sample ratio")] + [""]
        headers = metric_headers(report, c)
        lines += ["| " + " | ".join(headers) + " | MDE (80% power) |", "|" + "---|" * (len(headers) + 1)]
        lines += ["| " + " | ".join(_metric_cells(report, m)) + f" | {fmt_pct(m.mde_rel)} |" for m in c.metrics]
        under = [m.metric for m in c.metrics if m.underpowered]
        if under:
            lines += ["", f"Underpowered (observed MDE above the planned one): {', '.join(under)}."]
    return lines


def _offline_vs_online_markdown(report: Report) -> list[str]:
    ci = report.confidence_label
    several = _several(report)
    rows = report.offline_vs_online
    first = "| comparison " if several else ""
    lines = [(f"## Offline prediction vs online result ({rows[0].offline_experiment} "
              f"{rows[0].offline_run_id} vs {rows[0].online_experiment} {rows[0].online_run_id})"), "",
             f"{first}| metric | predicted lift | {ci} | observed lift | {ci} | prediction inside observed CI |",
             "|---|---|---|---|---|---|" + ("---|" if several else "")]
    for r in rows:
        lines.append((f"| {r.comparison} " if several else "") + f"| {r.metric} | {fmt_pct(r.predicted_rel_effect)} | "
                     f"{fmt_ci(r.predicted_rel_ci_low, r.predicted_rel_ci_high)} | "
                     f"{fmt_pct(r.observed_rel_effect)} | "
                     f"{fmt_ci(r.observed_rel_ci_low, r.observed_rel_ci_high)} | "
                     f"{'yes' if r.prediction_inside_observed_ci else 'no'} |")
    return lines


def _long_tail_markdown(report: Report, c: Comparison) -> list[str]:
    assert c.long_tail is not None
    ci = report.confidence_label
    several = _several(report)
    arms = f"{c.control} | {c.treatment}" if several else "control | treatment"
    lines = ["## Long tail and information bubble" + (f" — {c.name}" if several else ""), "",
             f"| metric | {arms} | rel diff | {ci} | p |", "|---|---|---|---|---|---|"]
    for m in c.long_tail.metrics:
        lines.append(f"| {m.metric} | {fmt_value(m.control_value)} | {fmt_value(m.treatment_value)} | "
                     f"{fmt_pct(m.rel_effect)} | {ci_cell(m)} | {fmt_p(m.p_value)} |")
    for key in ("coverage", "exposure_gini"):
        vals = " · ".join(f"{a}: {fmt_value(v.get(key))}" for a, v in c.long_tail.per_arm.items())
        lines.append(f"| {key} (per arm) | {vals} | | | | |")
    return lines


def lifts_markdown(report: Report) -> list[str]:
    """Every comparison's relative lift per metric in one table — the lift, the interval of the row's test
    (adjusted when a correction is on) and the verdict — then the decision line the console prints."""
    comparisons = report.comparison_list()
    adjusted = _adjusted(report)
    level = report.confidence_label + (f", {report.analysis.correction}-adjusted" if adjusted else "")
    lines = [f"| metric ({level}) | " + " | ".join(c.name for c in comparisons) + " |",
             "|---|" + "---|" * len(comparisons)]
    for m in comparisons[0].metrics:
        cells = []
        for c in comparisons:
            row = c.metric(m.metric)
            verdict = "" if row is None else " ▲" if row.improved else " ▼" if row.degraded else ""
            cells.append("" if row is None else f"{fmt_pct(row.rel_effect)} {ci_cell(row, adjusted)}{verdict}")
        lines.append(f"| {m.metric} ({m.role}) | " + " | ".join(cells) + " |")
    d = report.decision
    why = f" — {d.explanation}" if d.explanation and _several(report) else ""
    return [*lines, "", f"Decision: **{decision_title(report)}**{why}"]


def _segments_markdown(report: Report, c: Comparison) -> list[str]:
    ci = report.confidence_label
    adj = _adjusted(report)
    note = (f" — exploratory: each metric {report.analysis.correction}-corrected across all its segment cells"
            if adj else " — exploratory, not corrected for the number of cells")
    title = f"## By segment{note}" + (f" ({c.name})" if _several(report) else "")
    extra = f" {ci} (adjusted) | p (adjusted) |" if adj else ""
    lines = [title, "", f"| segment | value | metric | rel diff | {ci} | p |{extra}",
             "|---|---|---|---|---|---|" + ("---|---|" if adj else "")]
    for s in c.segments:
        row = (f"| {s.segment} | {s.segment_value} | {s.metric} | {fmt_pct(s.rel_effect)} | {ci_cell(s)} | "
               f"{fmt_p(s.p_value)} |")
        if adj:
            row += f" {ci_cell(s, adjusted=True)} | {fmt_p(s.p_value_adjusted)} |"
        lines.append(row)
    if c.heterogeneity:
        lines += ["", heterogeneity_caption(report.alpha), "", *(f"- {heterogeneity_line(h)}" for h in c.heterogeneity)]
    return lines


def heterogeneity_caption(alpha: float) -> str:
    """What the heterogeneity lines test, in one sentence (report.md and the dashboard)."""
    return (f"Does the effect differ across a segment's values? Cochran's Q of the cells' absolute effects "
            f"(χ² on values − 1 df); p Holm-adjusted across the metrics of each segment; \"differs\" when the Holm "
            f"p < {alpha:g}. Values that share units (a user's sessions in several of them) have correlated "
            "cells, and the test is then conservative.")


def _p_is(p: float | None) -> str:
    """"p = 0.0123" or "p < 0.0001"."""
    t = fmt_p(p)
    return f"p {t[0]} {t[1:]}" if t.startswith("<") else f"p = {t}"


def fmt_q(q: float | None) -> str:
    return "n/a" if q is None else f"{q:.2f}"


def heterogeneity_verdict(h: SegmentHeterogeneity) -> str:
    """"effect differs across values", "no evidence it differs" or "no test"."""
    if h.q is None or h.p_value_adjusted is None:
        return "no test"
    return "effect differs across values" if h.differs else "no evidence it differs"


def shared_units_note(h: SegmentHeterogeneity) -> str:
    """"units in 2.28 values on average: conservative" when the segment's values share units, else empty."""
    if h.values_per_unit is not None and h.values_per_unit > 1.005:
        return f"units in {h.values_per_unit:.2f} values on average: conservative"
    return ""


def heterogeneity_notes(h: SegmentHeterogeneity, shared_units: bool = True) -> str:
    """Too few values, values left out, and (with ``shared_units``) values that share units — empty when
    none applies."""
    notes = []
    if h.q is None:
        notes.append(f"{h.cells} estimable value{'s' if h.cells != 1 else ''}, two needed")
    if h.cells_not_estimable:
        notes.append(f"{h.cells_not_estimable} value{'s' if h.cells_not_estimable != 1 else ''} not estimable, "
                     "left out")
    if shared_units and shared_units_note(h):
        notes.append(shared_units_note(h))
    return "; ".join(notes)


def heterogeneity_line(h: SegmentHeterogeneity) -> str:
    """One metric × segment: "query_segment · item_ctr: Q = 14.20 on 2 df, p = 0.0008, Holm p = 0.0025 —
    effect differs across values (...)"."""
    where = f"{h.segment} · {h.metric}"
    notes = heterogeneity_notes(h)
    if h.q is None:
        return f"{where}: no test ({notes})"
    line = (f"{where}: Q = {fmt_q(h.q)} on {h.df} df, {_p_is(h.p_value)}, Holm {_p_is(h.p_value_adjusted)} — "
            f"{heterogeneity_verdict(h)}")
    return line + (f" ({notes})" if notes else "")


def latency_details(lat: LatencyGuardrail | None, confidence_label: str) -> str:
    """The serving-cost guardrail in one line: status, ratio and CI, CPU per query per arm, design."""
    if lat is None:
        return "not evaluated: no serving-cost measurement in this report"
    if lat.status == "not_evaluated" or lat.ratio is None:
        return f"not evaluated: {lat.reason or 'no measurement'}"
    margin = "n/a" if lat.margin is None else f"{lat.margin:.0%}"
    ci = "n/a" if lat.ratio_ci_low is None else f"[{lat.ratio_ci_low:.3f}, {lat.ratio_ci_high:.3f}]"
    arms = ", ".join(f"{a} {v:.5f}" for a, v in lat.cpu_ms_per_query.items())
    design = (f" ({lat.repetitions} paired repetitions of {lat.batch_size} queries, {lat.timer})"
              if lat.repetitions else "")
    return (f"{lat.status}: CPU time per query, treatment / control = {lat.ratio:.3f}, {confidence_label} "
            f"{ci}, margin {margin}" + (f"; CPU ms per query: {arms}" if arms else "") + design)


def offline_policy_markdown(ope: OfflinePolicyEvaluation) -> list[str]:
    """The off-policy section: each estimator per logged row and per page, the on-policy value beside them,
    the weights' ESS per position and every warning."""
    level = f"{1 - ope.alpha:.0%} CI"
    lines = [f"## Off-policy estimate: {ope.target}", "", f"Estimand: {ope.estimand}", "",
             (f"Logged rows: {ope.n_rows:,} in {ope.n_sessions:,} sessions · Kish ESS {fmt_value(ope.ess)} · "
              f"largest weight {fmt_value(ope.max_weight)}"), "",
             f"| estimator | per logged row | {level} | per page | {level} |", "|---|---|---|---|---|"]
    for e in ope.estimates:
        lines.append(f"| {e.estimator} | {fmt_value(e.value)} | {fmt_ci(e.ci_low, e.ci_high, pct=False)} | "
                     f"{fmt_value(e.page_value)} | {fmt_ci(e.page_ci_low, e.page_ci_high, pct=False)} |")
    if ope.on_policy is not None and ope.on_policy.value is not None:
        on = ope.on_policy
        lines.append(f"| on-policy (the target's own {on.n_rows:,} logged rows) | {fmt_value(on.value)} | "
                     f"{fmt_ci(on.ci_low, on.ci_high, pct=False)} | | |")
    positions = [p.position for p in ope.positions]
    lines += ["", "| position | " + " | ".join(map(str, positions)) + " |", "|---" * (len(positions) + 1) + "|",
              "| logged rows | " + " | ".join(f"{p.n_rows:,}" for p in ope.positions) + " |",
              "| ESS | " + " | ".join(fmt_value(p.ess) for p in ope.positions) + " |"]
    for e in ope.estimates:
        by = {v.position: v for v in e.per_position}
        lines.append(f"| {e.estimator} | " + " | ".join(fmt_value(by[k].value) if k in by else "" for k in positions)
                     + " |")
    lines += [""] + [f"- warning: {w}" for w in ope.warnings]
    return lines


def interleaving_lines(il: InterleavingResult) -> list[str]:
    """The interleaving comparison in plain sentences (the same lines in Markdown and on the console)."""
    level = f"{1 - il.alpha:.0%} CI"
    per = "users (a user's sessions summed)" if il.unit == "unit" else "sessions"
    verdict = (f"{il.preferred} preferred (significant)" if il.significant and il.preferred
               else "no significant preference")
    lines = [(f"Team-draft interleaving of {il.control} vs {il.treatment} ({il.source}; credit: {il.credit_rule}; "
             f"observations: {il.n:,} {per} over {il.sessions:,} sessions, {il.sessions_with_credited_clicks:,} "
             "with credited clicks)"),
             f"wins {il.treatment} {il.wins_treatment:,} · wins {il.control} {il.wins_control:,} · ties {il.ties:,}",
             (f"preference Δ = {fmt_value(il.preference)} {level} "
             f"{fmt_ci(il.preference_ci_low, il.preference_ci_high, pct=False)} (t-test p = "
             f"{fmt_p(il.t_test_p_value)}); sign test p = {fmt_p(il.sign_test_p_value)}: {verdict}")]
    s = il.sample_size
    if s is not None and s.ratio is not None:
        lines.append(f"sessions for {s.power:.0%} power: interleaving {fmt_value(s.interleaving_sessions)} vs A/B "
                     f"on {s.ab_metric} {fmt_value(s.ab_sessions)} — {s.ratio:.1f}× fewer")
    return lines


def interleaving_markdown(il: InterleavingResult) -> list[str]:
    return ["## Interleaving", "", *(f"- {line}" for line in interleaving_lines(il))]


def print_report(report: Report, console: Console | None = None, segments: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    several = _several(report)
    for c in report.comparison_list():
        title = f"{report.experiment} · {report.mode} · run {report.run_id}"
        t = Table(title=f"{title} · {_comparison_heading(c)}" if several else title)
        for h in metric_headers(report, c):
            t.add_column(h, justify="left" if h in ("metric", "role") else "right")
        for m in c.metrics:
            t.add_row(*_metric_cells(report, m))
        console.print(t)
    console.print(analysis_line(report), markup=False)
    srm = report.srm
    units = ", ".join(f"{a} {n}" for a, n in srm.units.items())
    console.print(f"Sample ratio check: {report.analysis.units_label} {units}; {srm.test} p = {fmt_p(srm.p_value)}"
                  + (" [red]FAILED[/red]" if srm.failed else " (ok)"))
    for c in report.comparison_list() if segments else []:
        if not c.segments:
            continue
        adjusted = " adjusted per metric across cells" if _adjusted(report) else ""
        st = Table(title=f"Relative lift by segment ({report.confidence_label}{adjusted}; exploratory)"
                   + (f" · {c.name}" if several else ""))
        for h in ("segment", "value", *[m.metric for m in c.metrics]):
            st.add_column(h, justify="left" if h in ("segment", "value") else "right")
        by_key: dict[tuple[str, str], dict[str, str]] = {}
        for s in c.segments:
            cell = f"{fmt_pct(s.rel_effect)} {ci_cell(s, adjusted=_adjusted(report))}"
            by_key.setdefault((s.segment, s.segment_value), {})[s.metric] = cell
        for (seg, val), cells in by_key.items():
            st.add_row(seg, val, *[cells.get(m.metric, "") for m in c.metrics])
        console.print(st)
    if report.offline_policy is not None:
        print_offline_policy(report.offline_policy, console)
    if report.interleaving is not None:
        for line in interleaving_lines(report.interleaving):
            console.print(line, markup=False)
    print_decision(report, console)


def print_offline_policy(ope: OfflinePolicyEvaluation, console: Console) -> None:
    from rich.table import Table

    level = f"{1 - ope.alpha:.0%} CI"
    t = Table(title=f"Off-policy estimate: {ope.target} ({ope.n_rows:,} logged rows, ESS {fmt_value(ope.ess)})")
    for h in ("estimator", "per logged row", level, "per page", f"{level} "):
        t.add_column(h, justify="left" if h == "estimator" else "right")
    for e in ope.estimates:
        t.add_row(e.estimator, fmt_value(e.value), fmt_ci(e.ci_low, e.ci_high, pct=False), fmt_value(e.page_value),
                  fmt_ci(e.page_ci_low, e.page_ci_high, pct=False))
    if ope.on_policy is not None and ope.on_policy.value is not None:
        on = ope.on_policy
        t.add_row("on-policy (own log)", fmt_value(on.value), fmt_ci(on.ci_low, on.ci_high, pct=False), "", "")
    console.print(t)
    for w in ope.warnings:
        console.print(f"  warning: {w}", markup=False)


def print_decision(report: Report, console: Console) -> None:
    d = report.decision
    colour = "green" if d.promote else "yellow"
    console.print(f"Decision: [bold {colour}]{decision_title(report)}[/bold {colour}]"
                  + (f" — {d.explanation}" if d.explanation and _several(report) else ""))
    for r in d.reasons:
        console.print(f"  - {r}", markup=False)


def _check_details(report: Report, check: Check) -> str:
    if check.kind == "srm":
        return (f"{report.analysis.units_label} {report.srm.units}, {report.srm.test} "
                f"p = {fmt_p(report.srm.p_value)}")
    comparison = next((c for c in report.comparison_list() if c.name == check.comparison),
                      report.comparison_list()[0])
    if check.kind == "latency":
        return latency_details(comparison.latency_guardrail, report.confidence_label)
    m = comparison.metric(check.name) if check.kind in ("primary", "secondary", "guardrail") else None
    if m is None:
        return check.reason
    adjusted = _adjusted(report)
    arms = (comparison.control, comparison.treatment) if _several(report) else ("control", "treatment")
    return (f"{m.metric} ({m.role}): {arms[0]} {m.control_value}, {arms[1]} {m.treatment_value}, "
            f"relative {fmt_pct(m.rel_effect)}, test H1 {m.hypothesis()}: {report.confidence_label} "
            f"{ci_cell(m, adjusted)}{' (adjusted)' if adjusted else ''}, "
            f"p = {fmt_p(m.p_value_adjusted if adjusted else m.p_value)}{' (adjusted)' if adjusted else ''}")


_JUNIT_CLASS = {"primary": "metric", "secondary": "metric", "guardrail": "guardrail", "latency": "guardrail",
                "srm": "srm", "config": "config", "choice": "decision"}


def junit_xml(report: Report) -> bytes:
    """One test case per decision check (an A/B/n check's class names its comparison); a blocking check
    that failed is a failure. The suite's properties carry the decision and the arm to promote."""
    suite = ET.Element("testsuite", name=f"abplatform.{report.experiment}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("decision", report.decision.decision), ("arm", report.decision.arm or "")):
        ET.SubElement(properties, "property", name=name, value=value)
    failures = 0
    for check in report.decision.checks:
        details = _check_details(report, check)
        where = f".{check.comparison.replace(' ', '_')}" if check.comparison else ""
        case = ET.SubElement(suite, "testcase", name=check.name,
                             classname=f"{report.experiment}{where}.{_JUNIT_CLASS[check.kind]}", time="0")
        if check.blocking and not check.passed:
            failures += 1
            ET.SubElement(case, "failure", message=check.reason).text = details
        elif not check.passed:
            details = f"not blocking: {check.reason} — {details}"
        ET.SubElement(case, "system-out").text = details
    suite.set("tests", str(len(suite) - 1))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def gate_summary(report: Report) -> dict[str, Any]:
    """The gate's ``--json``: the decision, the arm to promote, the reasons and each metric's verdict,
    beside the test it read — ``ci_*`` is that test's interval on its ``test_scale`` (null = unbounded
    side); an A/B/n report adds every comparison's decision and rows."""
    keys = ("metric", "role", "alternative", "test_scale", "null_effect", "rel_effect", "abs_effect", "p_value",
            "p_value_adjusted", "significant", "improved", "breached")

    def row(m: MetricResult) -> dict[str, Any]:
        (low, high), (low_adj, high_adj) = m.interval(), m.interval(adjusted=True)
        return {**{k: getattr(m, k) for k in keys}, "ci_low": low, "ci_high": high, "ci_low_adjusted": low_adj,
                "ci_high_adjusted": high_adj}

    summary = {"experiment": report.experiment, "run_id": report.run_id, "mode": report.mode,
               "decision": report.decision.decision, "arm": report.decision.arm, "reasons": report.decision.reasons,
               "srm_p_value": report.srm.p_value, "analysis": dataclasses.asdict(report.analysis),
               "metrics": [row(m) for m in report.metrics]}
    if _several(report):
        summary["explanation"] = report.decision.explanation
        summary["comparisons"] = [{"comparison": c.name, "treatment": c.treatment, "control": c.control,
                                   "decision": c.decision.decision, "reasons": c.decision.reasons,
                                   "metrics": [row(m) for m in c.metrics]} for c in report.comparison_list()]
    return summary
