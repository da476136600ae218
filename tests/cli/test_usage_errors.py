"""Usage errors of every command: an unknown command or option, a missing required argument, an option
out of its range. Each exits 2 with click's usage message on stderr, never a traceback, and runs
nothing (checked in-process on the typer app, and through the real console entry in subprocesses)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from abplatform.cli import app

# (command path, the arguments that make it valid up to the broken one): every command and sub-command
COMMANDS = {
    "run": ["x.yaml"], "analyze": ["x.yaml"], "validate": ["x.yaml"], "schema": [], "gate": ["run"],
    "check-data": ["logs"], "analyze-summary": ["summary.csv"], "dashboard": [], "contract": [],
    "world generate": ["--out", "w"], "world export-ab": ["w", "--out", "ab"], "index rebuild": [],
    "plan": ["x.yaml"], "evaluate": ["x.yaml"],
}

# (case id, argv, the command the usage line names, what stderr must say besides it)
CASES: list[tuple[str, list[str], str, str]] = [
    ("unknown command", ["nosuch"], "", "No such command 'nosuch'"),
    ("unknown world command", ["world", "nosuch"], "world", "No such command 'nosuch'"),
    ("unknown index command", ["index", "nosuch"], "index", "No such command 'nosuch'"),
    ("index rebuild: an argument", ["index", "rebuild", "results"], "index rebuild", "Got unexpected extra argument"),
    ("misspelt command", ["gates", "run"], "", "No such command 'gates'"),
]
for name, valid in COMMANDS.items():
    CASES.append((f"{name}: unknown option", [*name.split(), *valid, "--no-such-option"], name,
                  "No such option: --no-such-option"))
MISSING = {
    "run": ([], "Missing argument 'experiment'"), "analyze": ([], "Missing argument 'experiment'"),
    "validate": ([], "Missing argument 'files"), "gate": ([], "Missing argument 'target'"),
    "check-data": ([], "Missing argument 'target'"), "analyze-summary": ([], "Missing argument 'file'"),
    "world generate": (["--users", "10"], "Missing option '--out'"),
    "world export-ab": (["w"], "Missing option '--out'"),
    "world export-ab (no world)": (["--out", "ab"], "Missing argument 'world'"),
    "plan": ([], "Missing argument 'experiment'"), "evaluate": ([], "Missing argument 'experiment'"),
}
for name, (args, message) in MISSING.items():
    command = name.split(" (")[0]
    CASES.append((f"{name}: missing", [*command.split(), *args], command, message))
OUT_OF_RANGE = [
    ("run", ["--workers", "0"]), ("analyze-summary", ["--alpha", "0.9"]), ("analyze-summary", ["--alpha", "-0.1"]),
    ("dashboard", ["--port", "0"]), ("dashboard", ["--port", "65536"]), ("world generate", ["--users", "0"]),
    ("world generate", ["--days", "0"]), ("world generate", ["--pre-days", "-1"]),
    ("world generate", ["--items", "999"]),
    ("plan", ["--days", "0"]), ("plan", ["--power", "0"]), ("plan", ["--power", "1"]), ("plan", ["--power", "1.5"]),
]
for name, option in OUT_OF_RANGE:
    CASES.append((f"{name}: {' '.join(option)}", [*name.split(), *COMMANDS[name], *option], name,
                  f"Invalid value for '{option[0]}'"))
# ranged options that take a number: a word is a usage error too
CASES.append(("run: --workers two", ["run", "x.yaml", "--workers", "two"], "run", "Invalid value for '--workers'"))
CASES.append(("plan: --power high", ["plan", "x.yaml", "--power", "high"], "plan", "Invalid value for '--power'"))
CASES.append(("plan: --days 1.5", ["plan", "x.yaml", "--days", "1.5"], "plan", "Invalid value for '--days'"))
IDS = [c[0] for c in CASES]
SCRIPT = Path(sys.executable).parent / "abplatform"  # the venv's console script


def test_every_command_is_covered():
    """The table above names every command of the app: a new command must be added to it."""
    import typer.main

    group = typer.main.get_command(app)
    names = set()
    for name, cmd in group.commands.items():
        names |= {f"{name} {sub}" for sub in getattr(cmd, "commands", {})} or {name}
    assert names == set(COMMANDS)


def _check(code: int, stderr: str, stdout: str, argv: list[str], command: str, message: str) -> None:
    assert code == 2, (argv, code, stdout, stderr)
    assert "Traceback" not in stderr + stdout
    lines = stderr.splitlines()
    usage = [line for line in lines if line.startswith("Usage: ")]
    assert len(usage) == 1, stderr
    assert usage[0].split()[2:][:len(command.split()) + 1] == [*command.split(), "[OPTIONS]"], usage[0]
    assert f"{command} --help' for help." in stderr if command else "--help' for help." in stderr
    # rich may wrap the error box: compare without the box's borders and line breaks
    flat = " ".join(line.strip("│╭╮╰╯─ ") for line in lines)
    assert message in flat, stderr


@pytest.mark.parametrize("argv,command,message", [c[1:] for c in CASES], ids=IDS)
def test_usage_error_in_process(argv, command, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, argv, prog_name="abplatform")
    _check(res.exit_code, res.stderr, res.stdout, argv, command, message)
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every case through the installed ``abplatform`` console script (``main()``), two at a time."""
    if not SCRIPT.is_file():
        pytest.skip(f"no console script {SCRIPT} (pip install -e .)")
    root = tmp_path_factory.mktemp("usage")

    def run(k: int, argv: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
        cwd = root / str(k)
        cwd.mkdir()
        return subprocess.run([str(SCRIPT), *argv], cwd=cwd, capture_output=True, text=True, timeout=120), cwd

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case_id: pool.submit(run, k, argv) for k, (case_id, argv, _, _) in enumerate(CASES)}
        return {case_id: f.result() for case_id, f in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", IDS)
def test_usage_error_through_main(case, outcomes):
    _, argv, command, message = CASES[IDS.index(case)]
    res, cwd = outcomes[case]
    _check(res.returncode, res.stderr, res.stdout, argv, command, message)
    assert list(cwd.iterdir()) == []
