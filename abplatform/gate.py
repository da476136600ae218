"""The promotion gate: a finished run's decision as an exit code and in the formats CI systems read.

Exit codes: 0 promote, 1 hold, 2 invalid input or config, 3 could not evaluate. JUnit XML has one
test case per check of the decision rule (each metric, the sample-ratio check, the latency
guardrail), so CI test views show exactly what held a model back. This module reads a finished run
folder and imports nothing heavy.
"""

from __future__ import annotations

from pathlib import Path

from abplatform.errors import EXIT_HOLD, EXIT_PROMOTE, EvaluationError
from abplatform.report.model import Report, ReportFormatError


def load_run(run_dir: Path) -> Report:
    report = run_dir / "report.json"
    if not report.is_file():
        raise EvaluationError(f"{run_dir}: no report.json (not a complete run folder)")
    try:
        return Report.from_json(report.read_text(encoding="utf-8"))
    except (ReportFormatError, UnicodeDecodeError) as e:
        raise EvaluationError(f"{report}: unreadable report ({e})") from None


def exit_code(report: Report) -> int:
    return EXIT_PROMOTE if report.decision.promote else EXIT_HOLD
