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

from abplatform.errors import EXIT_HOLD, EXIT_INVALID, EvaluationError, InputError

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
    preset: Annotated[str, typer.Option(help="World calibration: classic or onesearch "
                                             "(abplatform/world/presets.py).")] = "classic",
    force: Annotated[bool, typer.Option("--force", help="Replace --out even when it is a non-empty folder "
                                                        "that is not a world abplatform wrote.")] = False,
) -> None:
    """Generate a synthetic world (catalog, users, logged sessions, labels) as an event-log dataset.

    --out may be a new or empty folder or a world written before (replaced); any other folder is
    refused unless --force."""
    from abplatform.vocabulary import WORLD_PRESET_NAMES
    from abplatform.world.generate import generate_world
    from abplatform.world.presets import preset_world_params

    if behaviour not in ("pbm", "cascade"):
        raise InputError(f"--behaviour: expected pbm or cascade, got {behaviour!r}")
    if preset not in WORLD_PRESET_NAMES:
        raise InputError(f"--preset: expected one of {', '.join(WORLD_PRESET_NAMES)}, got {preset!r}")
    params = preset_world_params(preset, users=users, days=days, pre_days=pre_days, items=items, seed=seed,
                                 behaviour=behaviour)
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


@app.command()
def evaluate(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file with an offline_policy or interleaving "
                                                    "section.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
) -> None:
    """Off-policy evaluation (IPS, SNIPS, DR, DM per logged row, per position and per page) and the analysis
    of an interleaved log (impressions.team), without the A/B scorecard and without writing a run."""
    _check_experiment_file(experiment)
    from abplatform.pipeline import evaluate_experiment
    from abplatform.report.render import interleaving_lines, print_offline_policy

    ope, interleaving = evaluate_experiment(experiment, say=_say)
    if ope is not None:
        print_offline_policy(ope, out)
    if interleaving is not None:
        for line in interleaving_lines(interleaving):
            out.print(line, markup=False)
    if json_out is not None:
        import dataclasses
        import json

        from abplatform.store import write_atomic

        found = {"offline_policy": ope, "interleaving": interleaving}
        data = {k: dataclasses.asdict(v) for k, v in found.items() if v is not None}
        write_atomic(json_out, (json.dumps(data, indent=2) + "\n").encode())
        out.print(f"Results written to {json_out}")


def _probability(value: str) -> float:
    """A number strictly between 0 and 1 (a usage error otherwise, as click's own ranges)."""
    try:
        p = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not 0 < p < 1:
        raise typer.BadParameter(f"{value} is not in the range 0<x<1.")
    return p


@app.command()
def plan(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML file.")],
    days: Annotated[int | None, typer.Option(min=1, help="Duration to plan for (default: the length of the "
                                                         "data's experiment period).")] = None,
    power: Annotated[float, typer.Option(parser=_probability, metavar="FLOAT",
                                         help="Power of the two-sided test, in (0, 1).")] = 0.8,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    output: Annotated[Path | None, typer.Option("--out", help="Also write the plan's JSON here.")] = None,
) -> None:
    """Power planning per metric: baseline, per-unit variance, MDE after --days, units and days for the
    metric's mde; with CUPED beside the plain numbers; units from an accrual curve fitted on the pre-period."""
    _check_experiment_file(experiment)
    from abplatform.files import check_output, write_output

    if output:
        check_output(output)  # before the reading and the computing
    from abplatform.planning import plan_experiment, plan_json, print_plan

    result = plan_experiment(experiment, days=days, power=power, say=_say)
    text = plan_json(result)
    if output:
        write_output(output, (text + "\n").encode())
    if as_json:
        typer.echo(text)
    else:
        print_plan(result, out)


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
def check_data(target: Annotated[Path, typer.Argument(
        help="Dataset folder or .duckdb file; or an experiment file (.yaml), whose data, mapping, columns, "
             "positions, unit and arms are checked as run / analyze check them.")]) -> None:
    """Check a dataset against the event-log contract (all problems at once); exit 1 when an experiment's
    online log fails its sample-ratio check."""
    if target.suffix.lower() in (".yaml", ".yml"):
        from abplatform.pipeline import check_experiment_data

        result = check_experiment_data(target)
        out.print(f"{target}: data OK (" + ", ".join(f"{t} {n:,}" for t, n in result.counts.items()) + ")")
        if result.srm is not None:
            out.print(result.srm_line, markup=False)
            if result.srm_blocks:
                raise typer.Exit(EXIT_HOLD)
        return
    from abplatform.dataset import Dataset
    from abplatform.validate import validate_dataset

    counts = validate_dataset(Dataset(target))
    out.print(f"{target}: OK (" + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + ")")


@app.command("analyze-summary")
def analyze_summary(
    file: Annotated[Path, typer.Argument(help="CSV or JSON file of per-arm sufficient statistics.")],
    output: Annotated[Path | None, typer.Option("--out", help="Write the scorecard JSON here.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Write report.json, report.md and junit.xml "
                                                                   "here (a subfolder per treatment when "
                                                                   "there are several).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scorecard JSON instead of the table.")] = False,
    alpha: Annotated[float | None, typer.Option(min=0.0, max=0.5)] = None,
    correction: Annotated[str | None, typer.Option(help="none, holm or bh")] = None,
    correction_scope: Annotated[str | None, typer.Option(help="primary or all")] = None,
    relative_ci: Annotated[str | None, typer.Option(help="delta, log or fieller")] = None,
    cuped: Annotated[bool | None, typer.Option("--cuped/--no-cuped", help="CUPED (default: when the file has "
                                                                         "covariate sums)")] = None,
    guardrail_test: Annotated[str | None, typer.Option(help="harm or noninferiority")] = None,
    sequential: Annotated[str | None, typer.Option(help="confidence_sequence or obrien_fleming: the summary "
                                                        "is the current look")] = None,
    tuning_n: Annotated[float | None, typer.Option(help="confidence sequence: total n where it is tightest")] = None,
    planned_units: Annotated[float | None, typer.Option(help="obrien_fleming: planned units, both arms")] = None,
    earlier_units: Annotated[str | None, typer.Option(help="units (both arms) at the earlier looks, e.g. "
                                                           "1000,2000")] = None,
    weights: Annotated[str | None, typer.Option(help="planned split for the sample-ratio check, e.g. A=1,B=1")] = None,
    srm_threshold: Annotated[float | None, typer.Option(help="SRM p-value threshold (0.001)")] = None,
) -> None:
    """Score an experiment from aggregates alone (n, Σx, Σx², ... per metric and arm): the same
    scorecard, decision and report as a run (one per treatment arm)."""
    import dataclasses

    from abplatform.files import check_output, write_output
    from abplatform.report.render import print_report
    from abplatform.scorecard import metric_results
    from abplatform.summary_report import summary_reports, write_reports

    if output:
        check_output(output)  # before the reading and the computing
    overrides = {"alpha": alpha, "correction": correction, "correction_scope": correction_scope,
                 "relative_ci": relative_ci, "cuped": cuped, "guardrail_test": guardrail_test,
                 "srm_threshold": srm_threshold, "weights": _weights(weights),
                 "sequential": _sequential_flags(sequential, tuning_n, planned_units, earlier_units)}
    try:
        analysis, reports = summary_reports(file, **overrides)
    except ValueError as e:
        raise InputError(f"{file}: {e}") from None
    rows = []
    for t, card in analysis.cards.items():
        rows += [{"control_arm": analysis.control, "treatment_arm": t, **dataclasses.asdict(m)}
                 for m in metric_results(card)]
    doc = {"source": str(file), "metrics": rows,
           "decisions": {t: r.decision.decision for t, r in reports.items()}}
    text = json.dumps(doc, indent=2)
    if output:
        write_output(output, (text + "\n").encode())
    if out_dir:
        folders = write_reports(reports, out_dir)
    if as_json:
        out.print_json(text)
    else:
        for report in reports.values():
            print_report(report, out)
    if out_dir and not as_json:
        out.print("Reports: " + ", ".join(str(f) for f in folders), markup=False, highlight=False)


def _weights(text: str | None) -> dict[str, object] | None:
    """--weights A=1,B=2 → {"A": "1", "B": "2"} (numbers checked with the file's weights)."""
    if text is None:
        return None
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise InputError(f"--weights: expected ARM=WEIGHT,ARM=WEIGHT (e.g. control=1,treatment=1), got {text!r}")
    return {a.strip(): w.strip() for a, w in pairs}


def _sequential_flags(method: str | None, tuning_n: float | None, planned: float | None,
                      earlier: str | None) -> dict[str, object] | None:
    if method is None:
        if tuning_n is not None or planned is not None or earlier is not None:
            raise InputError("--sequential: expected confidence_sequence or obrien_fleming with --tuning-n, "
                             "--planned-units or --earlier-units")
        return None
    spec: dict[str, object] = {"method": method}
    if tuning_n is not None:
        spec["tuning_n"] = tuning_n
    if planned is not None:
        spec["planned_units"] = planned
    if earlier is not None:
        spec["earlier_units"] = [e.strip() for e in earlier.split(",") if e.strip()]
    return spec


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
