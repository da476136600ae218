"""The README's account of `make demo` is what the demo prints: the demo experiment is run as `make demo`
runs it (its own world cache, in a temporary folder) and the block between the README's ``demo:start`` /
``demo:end`` markers must equal :func:`abplatform.report.render.lifts_markdown` of its report, whose
decision line the console printed too.

Regenerate the block after a change that moves the demo's numbers with
``.venv/bin/python -m tests.test_demo_readme`` (it runs the demo from the repository, reusing ``data/``'s
world cache, into a temporary results folder).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from abplatform.report.model import Report
from abplatform.report.render import lifts_markdown

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DEMO = ROOT / "experiments" / "onesearch_v2_vs_v1.yaml"  # what `make demo` runs (the Makefile's demo target)
BLOCK = re.compile(r"<!-- demo:start -->\n(.*?)<!-- demo:end -->", re.S)

pytestmark = pytest.mark.slow  # the demo end to end: world, fits, replay of three arms


def run_demo(cwd: Path, results: Path) -> tuple[Report, str]:
    """Run the demo experiment from ``cwd`` (its ``data/`` holds the world cache) into ``results``: its report
    and what the console printed."""
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "run", str(DEMO), "--results", str(results)],
                         cwd=cwd, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = results.glob("*/*/report.json")
    return Report.from_json(run.read_text()), res.stdout


def demo_block(report: Report) -> str:
    return "\n".join(lifts_markdown(report)) + "\n"


def test_the_makefile_runs_this_demo():
    assert "abplatform run experiments/onesearch_v2_vs_v1.yaml" in (ROOT / "Makefile").read_text()


def test_readme_tells_what_the_demo_prints(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    report, console = run_demo(tmp, tmp / "results")
    (shown,) = BLOCK.findall(README.read_text())
    assert shown == demo_block(report), "README's demo block differs from the demo: python -m tests.test_demo_readme"
    decision = shown.strip().splitlines()[-1].replace("**", "")  # "Decision: PROMOTE v2 — v2 beats ..."
    assert decision in " ".join(console.split()), "the console does not print the README's decision line"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as results:
        report, _ = run_demo(ROOT, Path(results))
    text = README.read_text()
    README.write_text(BLOCK.sub(lambda _: f"<!-- demo:start -->\n{demo_block(report)}<!-- demo:end -->", text))
    print(demo_block(report))
