"""The promotion gate: a finished run's decision as an exit code and in the formats CI systems read.

Exit codes: 0 promote, 1 hold, 2 invalid input or config, 3 could not evaluate. JUnit XML has one
test case per check of the decision rule (each metric, the sample-ratio check, the latency
guardrail; per comparison in an A/B/n experiment), so CI test views show exactly what held a model
back; its properties, ``$GITHUB_OUTPUT`` (``decision=promote``, ``arm=v2``) and ``--json`` name the
arm to promote. This module reads a finished run
folder and imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

from abplatform.errors import EXIT_HOLD, EXIT_PROMOTE, EvaluationError, InputError
from abplatform.files import check_output
from abplatform.report.model import Report, ReportFormatError
from abplatform.report.render import junit_xml, markdown


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


def ci_targets(junit: Path | None = None) -> list[tuple[str, Path]]:
    """The gate's output files as (what names it, path): ``--junit`` and the GitHub files when set, each
    checked to be writable; an unwritable one is an :class:`InputError` naming it (before anything is written)."""
    targets = [("--junit", junit)] if junit else []
    targets += [(var, Path(os.environ[var])) for var in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT") if os.environ.get(var)]
    for label, path in targets:
        check_output(path, label)
    return targets


def _ci_text(report: Report, label: str) -> bytes:
    if label == "--junit":
        return junit_xml(report)
    if label == "GITHUB_STEP_SUMMARY":
        return (markdown(report) + "\n").encode()
    return f"decision={report.decision.decision}\narm={report.decision.arm or ''}\n".encode()


class _Output:
    """One output file: ``--junit`` is replaced (written beside it, renamed at the end), the GitHub files are
    appended to; :meth:`undo` leaves the file as it was."""

    def __init__(self, label: str, path: Path):
        self.label, self.path = label, path
        self.tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}") if label == "--junit" else None
        self.size = None if self.tmp or not path.exists() else path.stat().st_size
        self.file = open(self.tmp or path, "wb" if self.tmp else "ab")  # closed by publish() or undo()

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def publish(self) -> None:
        self.file.close()
        if self.tmp:
            os.replace(self.tmp, self.path)

    def undo(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # what could not be flushed is dropped below
        if self.tmp:
            self.tmp.unlink(missing_ok=True)
        elif self.size is None:
            self.path.unlink(missing_ok=True)  # the append created it
        elif self.path.is_file():
            os.truncate(self.path, self.size)


def publish_to_ci(report: Report, junit: Path | None = None) -> None:
    """Write the JUnit XML to ``junit`` (when given), append the Markdown report to $GITHUB_STEP_SUMMARY and
    the decision to $GITHUB_OUTPUT (when set). All or nothing: a file that cannot be written (a folder, a
    missing folder, a full disk) is an :class:`InputError` naming it, and the files already written are
    restored."""
    outputs: list[_Output] = []
    label, path = "", Path()
    try:
        for label, path in ci_targets(junit):
            outputs.append(_Output(label, path))
        for step in ("write", "flush", "publish"):
            for o in sorted(outputs, key=lambda o: o.tmp is not None):  # the replaced file last
                label, path = o.label, o.path
                if step == "write":
                    o.file.write(_ci_text(report, o.label))
                else:
                    getattr(o, step)()
    except OSError as e:
        for o in outputs:
            try:
                o.undo()
            except OSError:
                pass
        raise InputError(f"{label}: cannot write {path}: {e.strerror or e}") from None
