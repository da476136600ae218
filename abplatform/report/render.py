"""Renderings of a :class:`~abplatform.report.model.Report`: Markdown (report.md and the CI step
summary), the console table, JUnit XML (one test case per decision check) and the gate's JSON."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

from abplatform.formats import fmt_ci, fmt_p, fmt_pct, fmt_value
from abplatform.report.model import Check, MetricResult, Report

if TYPE_CHECKING:
    from rich.console import Console


def _metric_cells(m: MetricResult) -> list[str]:
    return [m.metric, m.role, fmt_value(m.control_value), fmt_value(m.treatment_value), fmt_value(m.abs_effect),
            fmt_pct(m.rel_effect), fmt_ci(m.rel_ci_low, m.rel_ci_high), fmt_p(m.p_value), fmt_p(m.p_value_adjusted)]


def metric_headers(report: Report) -> list[str]:
    return ["metric", "role", "control", "treatment", "abs diff", "rel diff", f"{report.confidence_label} (rel)",
            "p", "p adj"]


def markdown(report: Report) -> str:
    d = report.decision
    ci = report.confidence_label
    lines = [f"# {report.experiment} — {report.run_id}", "", f"**Decision: {d.decision.upper()}**", ""]
    lines += [f"- {r}" for r in d.reasons]
    units = ", ".join(f"{a}: {n}" for a, n in report.srm.units.items())
    lines += ["", f"Mode: {report.mode} · units {units} · SRM p = {fmt_p(report.srm.p_value)}"
              + (" **(FAILED)**" if report.srm.failed else ""), ""]
    headers = metric_headers(report)
    lines += ["| " + " | ".join(headers) + " | MDE (80% power) |", "|" + "---|" * (len(headers) + 1)]
    lines += ["| " + " | ".join(_metric_cells(m)) + f" | {fmt_pct(m.mde_rel)} |" for m in report.metrics]
    under = [m.metric for m in report.metrics if m.underpowered]
    if under:
        lines += ["", f"Underpowered (observed MDE above the planned one): {', '.join(under)}."]
    if report.segments:
        lines += ["", "## By segment", "", f"| segment | value | metric | rel diff | {ci} | p |",
                  "|---|---|---|---|---|---|"]
        for s in report.segments:
            lines.append(f"| {s.segment} | {s.segment_value} | {s.metric} | {fmt_pct(s.rel_effect)} | "
                         f"{fmt_ci(s.rel_ci_low, s.rel_ci_high)} | {fmt_p(s.p_value)} |")
    if report.offline_vs_online:
        rows = report.offline_vs_online
        lines += ["", (f"## Offline prediction vs online result ({rows[0].offline_experiment} "
                       f"{rows[0].offline_run_id} vs {rows[0].online_experiment} {rows[0].online_run_id})"), "",
                  f"| metric | predicted lift | {ci} | observed lift | {ci} | prediction inside observed CI |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.metric} | {fmt_pct(r.predicted_rel_effect)} | "
                         f"{fmt_ci(r.predicted_rel_ci_low, r.predicted_rel_ci_high)} | "
                         f"{fmt_pct(r.observed_rel_effect)} | "
                         f"{fmt_ci(r.observed_rel_ci_low, r.observed_rel_ci_high)} | "
                         f"{'yes' if r.prediction_inside_observed_ci else 'no'} |")
    if report.long_tail is not None:
        lt = report.long_tail
        lines += ["", "## Long tail and information bubble", "",
                  f"| metric | control | treatment | rel diff | {ci} | p |", "|---|---|---|---|---|---|"]
        for m in lt.metrics:
            lines.append(f"| {m.metric} | {fmt_value(m.control_value)} | {fmt_value(m.treatment_value)} | "
                         f"{fmt_pct(m.rel_effect)} | {fmt_ci(m.rel_ci_low, m.rel_ci_high)} | {fmt_p(m.p_value)} |")
        for key in ("coverage", "exposure_gini"):
            vals = " · ".join(f"{a}: {fmt_value(v.get(key))}" for a, v in lt.per_arm.items())
            lines.append(f"| {key} (per arm) | {vals} | | | | |")
    if report.latency_ms_per_query:
        lines += ["", "## Ranker scoring latency (ms per query, replay)", ""]
        lines += [f"- {a}: {v:.4f}" for a, v in report.latency_ms_per_query.items()]
    return "\n".join(lines) + "\n"


def print_report(report: Report, console: Console | None = None, segments: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title=f"{report.experiment} · {report.mode} · run {report.run_id}")
    for h in metric_headers(report):
        t.add_column(h, justify="left" if h in ("metric", "role") else "right")
    for m in report.metrics:
        t.add_row(*_metric_cells(m))
    console.print(t)
    srm = report.srm
    units = ", ".join(f"{a} {n}" for a, n in srm.units.items())
    console.print(f"Sample ratio check: units {units}; chi-square p = {fmt_p(srm.p_value)}"
                  + (" [red]FAILED[/red]" if srm.failed else " (ok)"))
    if segments and report.segments:
        st = Table(title=f"Relative lift by segment ({report.confidence_label})")
        for h in ("segment", "value", *[m.metric for m in report.metrics]):
            st.add_column(h, justify="left" if h in ("segment", "value") else "right")
        by_key: dict[tuple[str, str], dict[str, str]] = {}
        for s in report.segments:
            cell = f"{fmt_pct(s.rel_effect)} {fmt_ci(s.rel_ci_low, s.rel_ci_high)}"
            by_key.setdefault((s.segment, s.segment_value), {})[s.metric] = cell
        for (seg, val), cells in by_key.items():
            st.add_row(seg, val, *[cells.get(m.metric, "") for m in report.metrics])
        console.print(st)
    print_decision(report, console)


def print_decision(report: Report, console: Console) -> None:
    d = report.decision
    colour = "green" if d.promote else "yellow"
    console.print(f"Decision: [bold {colour}]{d.decision.upper()}[/bold {colour}]")
    for r in d.reasons:
        console.print(f"  - {r}", markup=False)


def _check_details(report: Report, check: Check) -> str:
    if check.kind == "srm":
        return f"units {report.srm.units}, chi-square p = {fmt_p(report.srm.p_value)}"
    lat = report.latency_guardrail
    if check.kind == "latency" and lat is not None:
        return (f"scoring ms/query (geometric mean over batches): control {lat.control_ms:.4f}, treatment "
                f"{lat.treatment_ms:.4f} (ratio {lat.ratio:.3f}, margin {lat.margin:.0%}, p = {lat.p_value:.3g})")
    m = report.metric(check.name)
    if m is None:
        return check.reason
    return (f"{m.metric} ({m.role}): control {m.control_value}, treatment {m.treatment_value}, "
            f"relative {fmt_pct(m.rel_effect)} {fmt_ci(m.rel_ci_low, m.rel_ci_high)}, "
            f"p = {fmt_p(m.p_value)}, adjusted p = {fmt_p(m.p_value_adjusted)}")


_JUNIT_CLASS = {"primary": "metric", "secondary": "metric", "guardrail": "guardrail", "latency": "guardrail",
                "srm": "srm", "config": "config"}


def junit_xml(report: Report) -> bytes:
    """One test case per decision check; a blocking check that failed is a failure."""
    suite = ET.Element("testsuite", name=f"abplatform.{report.experiment}")
    failures = 0
    for check in report.decision.checks:
        details = _check_details(report, check)
        case = ET.SubElement(suite, "testcase", name=check.name,
                             classname=f"{report.experiment}.{_JUNIT_CLASS[check.kind]}", time="0")
        if check.blocking and not check.passed:
            failures += 1
            ET.SubElement(case, "failure", message=check.reason).text = details
        elif not check.passed:
            details = f"not blocking: {check.reason} — {details}"
        ET.SubElement(case, "system-out").text = details
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def gate_summary(report: Report) -> dict[str, Any]:
    """The gate's ``--json``: the decision, its reasons and each metric's verdict."""
    keys = ("metric", "role", "rel_effect", "rel_ci_low", "rel_ci_high", "p_value", "p_value_adjusted",
            "improved", "breached")
    return {"experiment": report.experiment, "run_id": report.run_id, "mode": report.mode,
            "decision": report.decision.decision, "reasons": report.decision.reasons,
            "srm_p_value": report.srm.p_value,
            "metrics": [{k: getattr(m, k) for k in keys} for m in report.metrics]}
