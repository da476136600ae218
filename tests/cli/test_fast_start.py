"""Fast start: the commands a CI job or a shell runs most (help, validate, gate on a finished run) import
none of the heavy libraries. Each runs ``abplatform.cli.main()`` in a fresh interpreter of the venv,
which lists at exit the top-level modules it has imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.factory import report

pytestmark = pytest.mark.slow  # a fresh interpreter per command

HEAVY = {"duckdb", "scipy", "pandas", "pyarrow", "streamlit", "statsmodels"}
REPO = Path(__file__).resolve().parents[2]

WRAPPER = """
import atexit, json, os, sys

def dump():
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)

atexit.register(dump)
sys.argv = ["abplatform", *sys.argv[1:]]
from abplatform.cli import main
main()
"""


def imported(args: list[str], cwd: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    out = tmp_path / "modules.json"
    res = subprocess.run([sys.executable, "-c", WRAPPER, *args], cwd=cwd, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "MODULES_OUT": str(out)})
    return res, set(json.loads(out.read_text()))


def heavy(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules} & HEAVY


def test_the_wrapper_sees_heavy_imports(tmp_path):
    """The check itself: a command that needs the stack (check-data reads parquet with duckdb) shows up
    as heavy, so an empty set below means something."""
    from tests.bad_inputs import write_tiny

    write_tiny(tmp_path / "logs")
    res, modules = imported(["check-data", "logs"], tmp_path, tmp_path)
    assert res.returncode == 0, res.stderr
    assert {"duckdb", "pyarrow"} <= heavy(modules)


def test_help_imports_nothing_heavy(tmp_path):
    res, modules = imported(["--help"], REPO, tmp_path)
    assert res.returncode == 0 and "Usage:" in res.stdout, res.stderr
    assert heavy(modules) == set()


def test_validate_imports_nothing_heavy(tmp_path):
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "experiments").glob("*.yaml"))
    assert len(files) >= 3
    res, modules = imported(["validate", *files], REPO, tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"{len(files)} experiment file(s) OK" in res.stdout
    assert heavy(modules) == set()


@pytest.mark.parametrize("extra", [[], ["--json"], ["--junit", "junit.xml"]])
def test_gate_on_a_run_folder_imports_nothing_heavy(extra, tmp_path):
    run = tmp_path / "results" / "handmade" / "run1"
    run.mkdir(parents=True)
    (run / "report.json").write_text(report().to_json())
    res, modules = imported(["gate", str(run), *extra], tmp_path, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr  # the hand-made report promotes
    assert heavy(modules) == set()
    assert not {m for m in modules if m.startswith(("abplatform.pipeline", "abplatform.stats", "abplatform.metrics",
                                                     "abplatform.scorecard"))}
