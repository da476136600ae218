"""``analyze-summary``'s report: a summary file's scorecard as the same :class:`Report` a run writes.

One report per treatment arm (each is a comparison with the control, with its own decision); the
sample-ratio check covers every arm of the file and is the same in each. ``write_reports`` writes
``report.json``, ``report.md`` and ``junit.xml`` into the output folder — or, with several
treatments, into one subfolder per treatment arm.
"""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abplatform import __version__
from abplatform.decision import DecisionRule, decide
from abplatform.report.model import (
    Analysis,
    DataFingerprint,
    LatencyGuardrail,
    Report,
    SrmCheck,
    finite_or_none,
)
from abplatform.report.render import junit_xml, markdown
from abplatform.scorecard import metric_results
from abplatform.stats.summary import SummaryAnalysis, analyze_summary_file
from abplatform.store import new_run_id

NO_LATENCY = "a summary file has no serving-cost measurement"


def summary_reports(path: str | Path, **overrides: Any) -> tuple[SummaryAnalysis, dict[str, Report]]:
    """The analysis of a summary file and one :class:`Report` per treatment arm (``mode="online"``)."""
    analysis = analyze_summary_file(path, **overrides)
    srm = analysis.srm
    assert srm is not None
    check = SrmCheck(p_value=finite_or_none(srm.p_value), chi2=finite_or_none(srm.chi2), failed=srm.failed,
                     units=dict(srm.observed), test=srm.test)
    o = analysis.options
    rule = DecisionRule(alpha=o.alpha, guardrail_test=o.guardrail_test, block_on_srm=True)
    source = DataFingerprint(path=str(analysis.path), rows={"summary_rows": analysis.rows}, files=1,
                             hash=f"sha256:{analysis.sha256}", first_session="", last_session="")
    created, run_id = datetime.now(UTC).isoformat(), new_run_id()
    reports = {}
    for treatment, card in analysis.cards.items():
        metrics = metric_results(card)
        latency = LatencyGuardrail(status="not_evaluated", reason=NO_LATENCY)
        reports[treatment] = Report(
            experiment=analysis.path.stem or "summary", run_id=run_id, created=created, mode="online",
            config_path=str(analysis.path), config_sha256=analysis.sha256, abplatform_version=__version__,
            code_version="", python=platform.python_version(), seed=0, alpha=o.alpha, source=source,
            event_log=str(analysis.path), control=analysis.control, treatment=treatment,
            decision=decide(metrics, check, rule, latency, analysis.control, treatment), srm=check, metrics=metrics,
            latency_guardrail=latency,
            analysis=Analysis(relative_ci=o.relative_ci, correction=o.correction,
                              correction_scope=o.correction_scope, guardrail_test=o.guardrail_test,
                              sequential=o.sequential.method if o.sequential is not None else None))
    return analysis, reports


def write_reports(reports: dict[str, Report], out_dir: Path) -> list[Path]:
    """report.json, report.md and junit.xml per report: in ``out_dir`` for one treatment, else in
    ``out_dir/<treatment>``. Returns the folders written."""
    folders = []
    for treatment, report in reports.items():
        folder = out_dir if len(reports) == 1 else out_dir / treatment
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "report.json").write_text(report.to_json() + "\n", encoding="utf-8")
        (folder / "report.md").write_text(markdown(report), encoding="utf-8")
        (folder / "junit.xml").write_bytes(junit_xml(report))
        folders.append(folder)
    return folders
