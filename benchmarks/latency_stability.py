"""Does the latency guardrail flip with machine load? The same offline experiment, rerun quiet and loaded.

    .venv/bin/python benchmarks/latency_stability.py [--experiment experiments/onesearch_v2_vs_v1.yaml]
        [--reruns 10] [--burners 2] [--batch-sizes 1,16,64,256,1024] [--out benchmarks/latency.md]

Each rerun is ``abplatform run EXPERIMENT --results FRESH_DIR`` in a fresh subprocess: a new results
store every time, the world and replay caches of the experiment's ``data.cache_dir`` reused (one untimed run first fills
them, so every rerun replays nothing and differs only in the serving-cost measurement). Reruns
alternate quiet / loaded; a loaded one runs beside ``--burners`` processes spinning
``while True: pass`` (started 1 s before, killed after, by pid).

The code under test is copied first (``abplatform/``, with ``sql/`` and ``dashboards/`` inside it as
in the wheel) and the reruns import the copy: on a shared checkout someone else's edit mid-benchmark would
otherwise change the code version, and so the replay cache and the numbers.

Per rerun it records, for every comparison of the experiment (three in the A/B/n demo), the
latency ratio and CI, the latency verdict and the CPU ms per query per arm; the decision, the wall
time, and a hash of report.json without the latency measurement and the
run's own id and time; then checks that the verdict, the decision and that hash are the same for
every rerun. A second, smaller table measures the serving-cost ratio at several batch sizes
(quiet, in this process): the cost per query depends on how the ranker is served.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATENCY_KEYS = ("latency_guardrail", "latency_ms_per_query")
RUN_KEYS = ("run_id", "created")
TOLERANCE = 1e-9  # relative: duckdb's multi-threaded float sums may add in another order under another load


def say(msg: str) -> None:
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def snapshot_code(dst: Path) -> Path:
    """The package as a wheel lays it out (the SQL and the dashboard inside it): with the copy first on
    PYTHONPATH, ``abplatform.sql`` resolves to the copy, not through the editable install to the checkout."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "abplatform", dst / "abplatform", ignore=ignore)
    for name in ("sql", "dashboards"):
        shutil.copytree(ROOT / name, dst / "abplatform" / name, ignore=ignore)
    return dst


def _without_latency_checks(decision: dict) -> dict:
    return {**decision, "checks": [c for c in decision["checks"] if c["kind"] != "latency"]}


def without_latency(report: dict) -> dict:
    """report.json without the latency measurement (of every comparison) and the run's id and time."""
    doc = {k: v for k, v in report.items() if k not in LATENCY_KEYS + RUN_KEYS}
    doc["decision"] = _without_latency_checks(doc["decision"])
    doc["comparisons"] = [{**{k: v for k, v in c.items() if k != "latency_guardrail"},
                           "decision": _without_latency_checks(c["decision"])} for c in doc.get("comparisons", [])]
    return doc


def guardrails(report: dict) -> list[tuple[str, dict]]:
    """(comparison, its latency guardrail) of every comparison of report.json (a two-arm report has one)."""
    if report.get("comparisons"):
        return [(f"{c['treatment']} vs {c['control']}", c["latency_guardrail"]) for c in report["comparisons"]]
    return [(f"{report['treatment']} vs {report['control']}", report["latency_guardrail"])]


def other_numbers(report: dict) -> str:
    """A hash of everything in report.json but the latency measurement and the run's id and time."""
    return hashlib.sha256(json.dumps(without_latency(report), sort_keys=True).encode()).hexdigest()[:12]


def differences(a: object, b: object, path: str = "") -> list[tuple[str, float]]:
    """(path, relative difference) wherever two JSON documents differ (inf: not both numbers)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{i}]")]
    if a == b:
        return []
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    return [(path, abs(a - b) / max(abs(a), abs(b)) if numbers else float("inf"))]  # type: ignore[operator]


def run_once(experiment: Path, results: Path, env: dict[str, str], cwd: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    # -P: no working folder at the front of sys.path, so the snapshot on PYTHONPATH is what is imported
    res = subprocess.run([sys.executable, "-P", "-m", "abplatform.cli", "run", str(experiment), "--results",
                          str(results)], capture_output=True, text=True, env=env, cwd=cwd, timeout=1800)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):  # 1 is not an error here: run exits 0 either way, gate would exit 1 on hold
        raise SystemExit(f"run failed ({res.returncode}):\n{res.stderr[-3000:]}")
    (report,) = results.rglob("report.json")
    return json.loads(report.read_text()), wall


def load_average() -> float:
    return os.getloadavg()[0]


def batch_size_table(experiment: Path, sizes: list[int], repetitions: int) -> list[dict]:
    """The serving-cost ratio at several batch sizes, quiet, with the experiment's rankers."""
    from abplatform.config import load_experiment
    from abplatform.dataset import Dataset
    from abplatform.pipeline import ensure_world, world_params
    from abplatform.rankers import Catalog, make_ranker
    from abplatform.replay.serving_cost import measure_serving_cost
    from abplatform.stats.latency import latency_guardrail

    exp, _ = load_experiment(experiment)
    ds = Dataset(ensure_world(world_params(exp), ROOT / exp.data.cache_dir))  # the reruns' cache (cwd ROOT)
    catalog = Catalog.from_dataset(ds)
    rankers = {a.name: make_ranker(a.ranker, a.params).fit(ds, catalog) for a in exp.arms}
    rows = []
    for t, c in exp.comparison_pairs:
        for size in sizes:
            reps = repetitions if size >= 64 else max(repetitions, 2000)  # small batches: cheap, and noisier
            times = measure_serving_cost(ds, catalog, rankers[c], rankers[t], repetitions=reps, batch_size=size,
                                         seed=exp.simulation.seed, page_size=exp.simulation.page_size)
            assert times is not None
            g = latency_guardrail(times.control_seconds, times.treatment_seconds,
                                  margin=exp.decision.latency_margin, alpha=exp.statistics.alpha, batch_size=size,
                                  control=c, treatment=t)
            rows.append({"comparison": f"{t} vs {c}", "batch_size": size, "repetitions": reps, "ratio": g.ratio,
                         "lo": g.ratio_ci_low, "hi": g.ratio_ci_high, "status": g.status, "cpu": g.cpu_ms_per_query})
            say(f"  {t} vs {c}, batch {size}: ratio {g.ratio:.3f} [{g.ratio_ci_low:.3f}, {g.ratio_ci_high:.3f}] "
                f"{g.status}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiment", default="experiments/onesearch_v2_vs_v1.yaml")
    ap.add_argument("--reruns", type=int, default=10)
    ap.add_argument("--burners", type=int, default=2)
    ap.add_argument("--batch-sizes", default="1,16,64,256,1024", help="'' to skip the batch-size table")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "latency.md"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # killed: still stop the burners (finally below)
    experiment = (ROOT / args.experiment).resolve()
    work = Path(tempfile.mkdtemp(prefix="latency-stability-"))
    code = snapshot_code(work / "code")
    env = {**os.environ, "PYTHONPATH": str(code)}
    started = datetime.now(UTC)
    say(f"code snapshot in {code}; warming the caches (one untimed run)")
    run_once(experiment, work / "warm", env, ROOT)
    rows: list[dict] = []
    first: dict = {}
    for i in range(args.reruns):
        loaded = i % 2 == 1
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners if loaded
                                                                                             else 0)]
        try:
            if burners:
                time.sleep(1.0)
            before = load_average()
            report, wall = run_once(experiment, work / f"results-{i}", env, ROOT)
            after = load_average()
        finally:
            for p in burners:
                p.kill()
                p.wait()
        guards = guardrails(report)
        g = guards[0][1]
        row = {"rerun": i + 1, "load": f"{args.burners} burners" if loaded else "quiet", "load_before": before,
               "load_after": after, "wall_s": wall, "decision": report["decision"]["decision"],
               "arm": report["decision"].get("arm"), "others": other_numbers(report),
               "repetitions": g.get("repetitions"), "batch_size": g.get("batch_size"), "margin": g.get("margin"),
               "guards": [{"comparison": name, "ratio": x.get("ratio"), "lo": x.get("ratio_ci_low"),
                           "hi": x.get("ratio_ci_high"), "status": x["status"], "cpu": x.get("cpu_ms_per_query") or {}}
                          for name, x in guards]}
        row["status"] = "; ".join(f"{x['comparison']} {x['status']}" for x in row["guards"])
        rows.append(row)
        first = report if i == 0 else first
        diffs = differences(without_latency(first), without_latency(report))
        row["max_rel_diff"] = max((d for _, d in diffs), default=0.0)
        row["diff_paths"] = [p for p, _ in diffs]
        for path, d in diffs[:5]:
            say(f"  differs from rerun 1 at {path} (relative {d:.1e})")
        ratios = ", ".join(f"{x['comparison']} {x['ratio']:.3f} [{x['lo']:.3f}, {x['hi']:.3f}] {x['status']}"
                           for x in row["guards"])
        say(f"rerun {i + 1} ({row['load']}, code {report['code_version']}): {ratios}; {row['decision']}"
            f"{' ' + row['arm'] if row['arm'] else ''}, other numbers {row['others']}, {wall:.0f} s")

    sizes = [int(s) for s in args.batch_sizes.split(",") if s]
    say("batch sizes (quiet):")
    old_path = sys.path[:]
    sys.path.insert(0, str(code))  # the same snapshot as the reruns
    try:
        by_size = batch_size_table(experiment, sizes, rows[0]["repetitions"] or 400) if sizes else []
    finally:
        sys.path[:] = old_path
    finished = datetime.now(UTC)
    write(Path(args.out), args, rows, by_size, started, finished)
    shutil.rmtree(work, ignore_errors=True)
    same = {k: len({r[k] for r in rows}) == 1 for k in ("status", "decision")}
    same["others within 1e-9"] = max(r["max_rel_diff"] for r in rows) <= TOLERANCE
    say(f"identical across reruns: {same}; wrote {args.out}")
    if not all(same.values()):
        raise SystemExit(1)


def write(out: Path, args: argparse.Namespace, rows: list[dict], by_size: list[dict], started: datetime,
          finished: datetime) -> None:
    same = {k: len({r[k] for r in rows}) == 1 for k in ("status", "decision", "others")}
    worst = max(r["max_rel_diff"] for r in rows)
    paths = sorted({p for r in rows for p in r["diff_paths"]})
    quiet = [r for r in rows if r["load"] == "quiet"]
    loaded = [r for r in rows if r["load"] != "quiet"]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    names = [x["comparison"] for x in rows[0]["guards"]]
    lines = [
        "## Measured reruns",
        "",
        (f"Generated by `.venv/bin/python benchmarks/latency_stability.py --experiment {args.experiment} --reruns "
        f"{args.reruns} --burners {args.burners}` from {started:%Y-%m-%d %H:%M} to {finished:%H:%M} UTC on "
        f"{platform.machine()} / Python {platform.python_version()}, {os.cpu_count()} cores (shared: other "
        "engineers' jobs may run too; the load averages below say how busy it was)."),
        "",
        (f"Each rerun is `abplatform run {args.experiment}` with a fresh results store, the world and replay caches "
        "reused (filled by one untimed run first), from a snapshot of the code. Reruns alternate quiet / loaded; "
        f"loaded = {args.burners} processes running `while True: pass` beside the run (as many as cores). The "
        f"guardrail of each comparison: {rows[0]['repetitions']} paired repetitions of {rows[0]['batch_size']} "
        "queries, CPU time (`time.process_time`), margin "
        f"{rows[0]['margin']:.0%}; ratio = treatment / control CPU time per query (geometric mean of the pairs) "
        "with its 95% CI. *Other numbers*: a hash of report.json without the latency guardrails, "
        "`latency_ms_per_query`, the latency checks and the run's id and time."),
        "",
        ("| rerun | load | load avg before / after | comparison | ratio | 95% CI | latency verdict | "
         "treatment / control CPU ms per query | decision | other numbers (hash; max rel. diff vs rerun 1) | "
         "wall (s) |"),
        "|" + "---|" * 11,
    ]
    for r in rows:
        for j, x in enumerate(r["guards"]):
            head = (f"| {r['rerun']} | {r['load']} | {r['load_before']:.1f} / {r['load_after']:.1f} |" if j == 0
                    else "| | | |")
            decision = r["decision"] + (f" {r['arm']}" if r["arm"] else "")
            tail = (f" {decision} | `{r['others']}`; {r['max_rel_diff']:.0e} | "
                    f"{r['wall_s']:.0f} |" if j == 0 else " | | |")
            cpu = " / ".join(f"{v:.5f}" for v in reversed(list(x["cpu"].values())))
            lines.append(f"{head} {x['comparison']} | {x['ratio']:.3f} | [{x['lo']:.3f}, {x['hi']:.3f}] | "
                         f"{x['status']} | {cpu} |{tail}")
    lines += [
        "",
        (f"- Latency verdicts identical across all {len(rows)} reruns: **{'yes' if same['status'] else 'NO'}** "
        f"({' / '.join(sorted({r['status'] for r in rows}))})."),
        (f"- Decision identical: **{'yes' if same['decision'] else 'NO'}** "
        f"({', '.join(sorted({r['decision'] for r in rows}))})."),
        (f"- Every other number of report.json identical: bit for bit in "
         f"{sum(r['others'] == rows[0]['others'] for r in rows)} of {len(rows)} reruns; within "
         f"{TOLERANCE:g} relative in **{'all' if worst <= TOLERANCE else 'NOT all'}** (largest relative difference "
         f"{worst:.1e}" + (f", at {len(paths)} value(s): {', '.join(f'`{p}`' for p in paths[:6])}" if paths else "")
         + ")."),
    ]
    for k, name in enumerate(names):
        ratios = {load: [r["guards"][k]["ratio"] for r in part]
                  for load, part in (("quiet", quiet), ("loaded", loaded))}
        if ratios["quiet"] and ratios["loaded"]:
            lines.append(f"- {name}, ratio quiet: mean {mean(ratios['quiet']):.3f}, range {min(ratios['quiet']):.3f}–"
                         f"{max(ratios['quiet']):.3f}; loaded: mean {mean(ratios['loaded']):.3f}, range "
                         f"{min(ratios['loaded']):.3f}–{max(ratios['loaded']):.3f}.")
    if by_size:
        lines += [
            "",
            "## The ratio depends on the batch size",
            "",
            ("Quiet, in the benchmark's process, the same rankers and seeded batches; `decision.latency_batch_size` "
            "chooses it (default 256)."),
            "",
            (f"| comparison | queries per batch | repetitions | ratio | 95% CI | verdict (margin "
             f"{rows[0]['margin']:.0%}) | treatment / control CPU ms per query |"),
            "|" + "---|" * 7,
        ]
        for b in by_size:
            cpu = " / ".join(f"{v:.5f}" for v in reversed(list(b["cpu"].values())))
            lines.append(f"| {b['comparison']} | {b['batch_size']} | {b['repetitions']} | {b['ratio']:.3f} | "
                         f"[{b['lo']:.3f}, {b['hi']:.3f}] | {b['status']} | {cpu} |")
    text = "\n".join(lines) + "\n"
    marker = "<!-- measured -->"
    if out.is_file() and marker in out.read_text():  # keep the hand-written analysis above the marker
        text = out.read_text().split(marker)[0] + marker + "\n\n" + text
    else:
        text = "# Latency guardrail: stable under machine load?\n\n" + marker + "\n\n" + text
    out.write_text(text)


if __name__ == "__main__":
    main()
