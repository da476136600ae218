"""The promotion gate: a run's decision as an exit code and in the formats CI systems read.

Exit codes: 0 promote, 1 hold, 2 invalid input or config, 3 could not evaluate.
JUnit XML has one test case per metric (a primary metric fails unless it improved
significantly; a guardrail fails when breached; secondary metrics are informational and pass)
and one for the sample-ratio check, so CI test views show exactly what held a model back.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from abplatform.errors import EXIT_HOLD, EXIT_PROMOTE, EvaluationError
from abplatform.report import fmt_ci, fmt_p, fmt_pct


def load_run(run_dir: Path) -> dict[str, Any]:
    report = run_dir / "report.json"
    if not report.is_file():
        raise EvaluationError(f"{run_dir}: no report.json (not a complete run folder)")
    try:
        return json.loads(report.read_text())
    except json.JSONDecodeError as e:
        raise EvaluationError(f"{report}: unreadable report ({e})") from None


def _case(suite: ET.Element, name: str, classname: str, failure: str | None, details: str) -> None:
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time="0")
    if failure:
        ET.SubElement(case, "failure", message=failure).text = details
    ET.SubElement(case, "system-out").text = details


def junit_xml(report: dict[str, Any]) -> bytes:
    suite = ET.Element("testsuite", name=f"abplatform.{report['experiment']}")
    failures = 0
    for m in report["metrics"]:
        details = (f"{m['metric']} ({m['role']}): control {m['control_value']}, treatment {m['treatment_value']}, "
                   f"relative {fmt_pct(m['rel_effect'])} {fmt_ci(m['rel_ci_low'], m['rel_ci_high'])}, "
                   f"p = {fmt_p(m['p_value'])}, adjusted p = {fmt_p(m['p_value_adjusted'])}")
        failure = None
        if m["role"] == "primary" and not m["improved"]:
            failure = f"primary metric {m['metric']} did not improve significantly"
        elif m["role"] == "guardrail" and m["breached"]:
            failure = f"guardrail {m['metric']} breached"
        failures += failure is not None
        kind = "guardrail" if m["role"] == "guardrail" else "metric"
        _case(suite, m["metric"], f"{report['experiment']}.{kind}", failure, details)
    lat = report.get("latency_guardrail")
    if lat:
        lat_failure = "ranker latency guardrail breached" if lat["breached"] else None
        failures += lat_failure is not None
        _case(suite, "latency", f"{report['experiment']}.guardrail", lat_failure,
              f"scoring ms/query (geometric mean over batches): control {lat['control_ms']:.4f}, treatment "
              f"{lat['treatment_ms']:.4f} (ratio {lat['ratio']:.3f}, margin {lat['margin']:.0%}, p = {lat['p_value']:.3g})")
    srm = report["srm"]
    srm_failure = "sample ratio mismatch" if srm["failed"] else None
    failures += srm_failure is not None
    _case(suite, "sample_ratio", f"{report['experiment']}.srm", srm_failure,
          f"units {srm['units']}, chi-square p = {fmt_p(srm['p_value'])}")
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def gate_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": report["experiment"], "run_id": report["run_id"], "mode": report["mode"],
            "decision": report["decision"]["decision"], "reasons": report["decision"]["reasons"],
            "srm_p_value": report["srm"]["p_value"],
            "metrics": [{k: m[k] for k in ("metric", "role", "rel_effect", "rel_ci_low", "rel_ci_high", "p_value",
                                           "p_value_adjusted", "improved", "breached")} for m in report["metrics"]]}


def publish_to_ci(report: dict[str, Any], markdown: str) -> None:
    """Append the Markdown summary to $GITHUB_STEP_SUMMARY and the decision to $GITHUB_OUTPUT, when set."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(markdown + "\n")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as f:
            f.write(f"decision={report['decision']['decision']}\n")


def exit_code(report: dict[str, Any]) -> int:
    return EXIT_PROMOTE if report["decision"]["decision"] == "promote" else EXIT_HOLD
