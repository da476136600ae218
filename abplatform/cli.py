"""The ``abplatform`` command.

Exit codes: 0 success (for ``gate``: promote), 1 hold, 2 invalid input or config (one line per
problem on stderr, no traceback), 3 could not evaluate (e.g. an arm has no data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from abplatform.errors import EXIT_INVALID, EvaluationError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Offline-to-online A/B experimentation for search rankers.")
world_app = typer.Typer(no_args_is_help=True, help="The built-in synthetic search world.")
app.add_typer(world_app, name="world")
index_app = typer.Typer(no_args_is_help=True, help="The results store's index of runs.")
app.add_typer(index_app, name="index")
# tables stay readable when the output is a CI log or a pipe rather than a terminal
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


_bars: dict[str, tuple] = {}


def _say(msg: str, done: int | None = None, total: int | None = None) -> None:
    """Progress on stderr: a bar per task on a terminal, a line per step in logs."""
    if done is None or total is None:
        err.print(f"[dim]{msg}[/dim]")
        return
    if not err.is_terminal:
        err.print(f"[dim]  {msg}: {done}/{total}[/dim]")
        return
    from rich.progress import Progress

    if msg not in _bars:
        progress = Progress(console=err, transient=False)
        progress.start()
        _bars[msg] = (progress, progress.add_task(msg, total=total))
    progress, task = _bars[msg]
    progress.update(task, completed=done)
    if done >= total:
        progress.stop()
        del _bars[msg]


@world_app.command("generate")
def world_generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the world to.")],
    users: Annotated[int, typer.Option(min=1)] = 50_000,
    days: Annotated[int, typer.Option(min=1)] = 14,
    pre_days: Annotated[int, typer.Option(min=0)] = 7,
    items: Annotated[int, typer.Option(min=1000)] = 20_000,
    seed: int = 7,
    behaviour: Annotated[str, typer.Option(help="pbm or cascade")] = "pbm",
    force: Annotated[bool, typer.Option("--force", help="Replace --out even when it is a non-empty folder "
                                                        "that is not a world abplatform wrote.")] = False,
) -> None:
    """Generate a synthetic world (catalog, users, logged sessions, labels) as an event-log dataset.

    --out may be a new or empty folder or a world written before (replaced); any other folder is
    refused unless --force."""
    from abplatform.world.generate import WorldParams, generate_world

    if behaviour not in ("pbm", "cascade"):
        raise InputError(f"--behaviour: expected pbm or cascade, got {behaviour!r}")
    params = WorldParams(users=users, days=days, pre_days=pre_days, items=items, seed=seed, behaviour=behaviour)
    path = generate_world(params, out_dir, progress=lambda ph, i, n: _say(f"Generating the {ph} period", i, n),
                          force=force)
    out.print(f"World written to {path}")


@world_app.command("export-ab")
def world_export_ab(
    world: Annotated[Path, typer.Argument(help="A world folder (abplatform world generate).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the A/B log.")],
    control: str = "v1",
    treatment: str = "v2",
    salt: str = "online-ab",
    seed: int = 2024,
) -> None:
    """Write the world's online A/B test (oracle users) as a log with foreign column names."""
    from abplatform.world.export import export_online_log

    out.print(f"A/B log written to {export_online_log(world, out_dir, control, treatment, salt, seed)}")


@index_app.command("rebuild")
def index_rebuild(
    results: Annotated[Path, typer.Option(help="Results store folder.")] = Path("results"),
) -> None:
    """Rebuild index.json from the run folders (when it is missing, not JSON, or stale); remove the
    temporary files of killed writers."""
    from abplatform.store import INDEX, ResultsStore

    if not results.is_dir():
        raise InputError(f"{results}: no such folder (expected a results store)")
    done = ResultsStore(results).rebuild(warn=_say)
    if not done["reason"]:
        out.print(f"{results / INDEX}: up to date ({done['runs']} run(s))", markup=False, highlight=False)
        return
    out.print(f"{results / INDEX}: was {done['reason']}; rebuilt from the run folders: {done['runs']} run(s), "
              f"{len(done['added'])} added, {len(done['dropped'])} dropped", markup=False, highlight=False)
    for path in done["added"]:
        out.print(f"  + {path}", markup=False, highlight=False)
    for path in done["dropped"]:
        out.print(f"  - {path} (folder gone)", markup=False, highlight=False)


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    results: Annotated[Path, typer.Option(help="Results store folder.")] = Path("results"),
    workers: Annotated[int | None, typer.Option(min=1, help="Replay worker processes.")] = None,
    segments: Annotated[bool, typer.Option(help="Print the per-segment table.")] = True,
) -> None:
    """Run an experiment: offline replay (the world, or logs with mode: offline) or online analysis."""

    _check_experiment_file(experiment, results)
    from abplatform.pipeline import run_experiment
    from abplatform.report.render import print_report

    run_dir, report = run_experiment(experiment, results, workers, say=_say)
    print_report(report, out, segments=segments)
    out.print(f"Run folder: {run_dir}")


@app.command()
def analyze(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file whose data.path is an online A/B log.")],
    results: Annotated[Path, typer.Option(help="Results store folder.")] = Path("results"),
    segments: Annotated[bool, typer.Option(help="Print the per-segment table.")] = True,
) -> None:
    """Online: analyse a real A/B log (sessions carry their arm) with the same metrics and statistics."""
    _check_experiment_file(experiment, results)
    from abplatform.pipeline import run_online
    from abplatform.report.render import print_report

    run_dir, report = run_online(experiment, results, say=_say)
    print_report(report, out, segments=segments)
    out.print(f"Run folder: {run_dir}")


def _check_experiment_file(path: Path, results: Path | None = None) -> None:
    """Validate the experiment file (and that runs can be written into ``results``) before the heavy
    pipeline is imported: a wrong file or an unwritable results folder fails fast, before any computing."""
    from abplatform.config import load_experiment
    from abplatform.files import check_results

    load_experiment(path)
    if results is not None:
        check_results(results)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Experiment YAML files.")]) -> None:
    """Check experiment files: every problem at once, as FILE:LINE:COL: field.path: message."""
    problems = []
    for f in files:
        try:
            _check_experiment_file(f)
        except InputError as e:
            problems += e.problems
    if problems:
        raise InputError("\n".join(problems), problems)
    out.print(f"{len(files)} experiment file(s) OK")


@app.command()
def schema(output: Annotated[Path | None, typer.Option("--out", help="Write the schema to this file.")] = None) -> None:
    """Print (or write) the JSON Schema of experiment files, for editor validation and completion."""
    from abplatform.config import json_schema

    text = json_schema()
    if output:
        from abplatform.files import write_output

        write_output(output, text.encode())
    else:
        typer.echo(text, nl=False)


@app.command()
def gate(
    target: Annotated[Path, typer.Argument(help="A run folder, or an experiment YAML to run first.")],
    results: Annotated[Path, typer.Option(help="Results store folder (when running a YAML).")] = Path("results"),
    junit: Annotated[Path | None, typer.Option(help="Also write the JUnit XML here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Promote or hold: exit 0 = promote, 1 = hold, 2 = invalid input, 3 = could not evaluate."""
    from abplatform.gate import ci_targets, exit_code, load_run, publish_to_ci
    from abplatform.report.render import gate_summary

    ci_targets(junit)  # an output that cannot be written is exit 2 before any work, not a hold
    if target.is_dir():
        report = load_run(target)
    elif target.suffix in (".yaml", ".yml"):
        _check_experiment_file(target, results)
        from abplatform.pipeline import run_experiment

        _, report = run_experiment(target, results, say=_say)
    else:
        raise InputError(f"{target}: expected a run folder or an experiment .yaml file")
    publish_to_ci(report, junit)
    if as_json:
        typer.echo(json.dumps(gate_summary(report), indent=2))
    else:
        out.print(f"{report.experiment} run {report.run_id}: [bold]{report.decision.decision.upper()}[/bold]")
        for r in report.decision.reasons:
            out.print(f"  - {r}", markup=False)
    raise typer.Exit(exit_code(report))


@app.command("check-data")
def check_data(dataset: Annotated[Path, typer.Argument(help="Dataset folder or .duckdb file.")]) -> None:
    """Check a dataset against the event-log contract (all problems at once)."""
    from abplatform.dataset import Dataset
    from abplatform.validate import validate_dataset

    counts = validate_dataset(Dataset(dataset))
    out.print(f"{dataset}: OK (" + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + ")")


@app.command("analyze-summary")
def analyze_summary(
    file: Annotated[Path, typer.Argument(help="CSV or JSON file of per-arm sufficient statistics.")],
    output: Annotated[Path | None, typer.Option("--out", help="Write the scorecard JSON here.")] = None,
    alpha: Annotated[float | None, typer.Option(min=0.0, max=0.5)] = None,
    correction: Annotated[str | None, typer.Option(help="none, holm or bh")] = None,
    relative_ci: Annotated[str | None, typer.Option(help="delta, log or fieller")] = None,
) -> None:
    """Score an experiment from aggregates alone (n, Σx, Σx², ... per metric and arm)."""
    import dataclasses

    from abplatform.files import check_output, write_output
    from abplatform.scorecard import metric_results
    from abplatform.stats.summary import summary_scorecard

    if output:
        check_output(output)  # before the reading and the computing
    try:
        card = summary_scorecard(file, alpha=alpha, correction=correction, relative_ci=relative_ci)
    except ValueError as e:
        raise InputError(f"{file}: {e}") from None
    doc = {"source": str(file), "metrics": [dataclasses.asdict(m) for m in metric_results(card)]}
    text = json.dumps(doc, indent=2)
    if output:
        write_output(output, (text + "\n").encode())
    out.print_json(text)


@app.command()
def dashboard(
    results: Annotated[Path, typer.Option(help="Results store folder to show.")] = Path("results"),
    address: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8501,
) -> None:
    """Open the analyst dashboard (Streamlit) on the runs in the results folder."""
    import os

    from abplatform.resources import dashboard_app

    app_py = dashboard_app()  # the package data abplatform.dashboards; InputError if the install lacks it
    os.environ["ABPLATFORM_RESULTS"] = str(results.resolve())
    os.execv(sys.executable, [sys.executable, "-m", "streamlit", "run", str(app_py), "--server.address", address,
                              "--server.port", str(port), "--server.headless", "true",
                              "--browser.gatherUsageStats", "false"])


@app.command()
def contract() -> None:
    """Print the event-log contract (tables, columns, types) as Markdown."""
    from abplatform.contract import markdown_table

    typer.echo(markdown_table())


def main() -> None:
    """The console script. Usage errors are left to click in standalone mode (the usage message and
    exit 2, whichever click typer bundles); the platform's own errors become one line and their code."""
    try:
        app(standalone_mode=True)
    except InputError as e:
        for line in e.problems:
            err.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(EXIT_INVALID)
    except EvaluationError as e:
        err.print(f"cannot evaluate: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
