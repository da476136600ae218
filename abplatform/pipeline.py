"""The main jobs: ``run`` (offline: replay logged sessions through both arms) and ``analyze``
(online: the A/B log as it is), each ending in an immutable run folder."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from abplatform import __version__
from abplatform.config import Experiment, load_experiment
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.gate import junit_xml
from abplatform.metrics.engine import SQL_DIR
from abplatform.offline.behaviour import FittedBehaviour
from abplatform.rankers import Catalog, make_ranker
from abplatform.report import markdown, scorecard_json
from abplatform.scorecard import build_scorecard
from abplatform.engines import make_replay
from abplatform.simulate import ReplayArm, ReplaySpec
from abplatform.store import ResultsStore, new_run_id
from abplatform.validate import validate_dataset
from abplatform.world.generate import WorldParams, generate_world

Progress = Callable[..., None]  # say(message) or say(message, done, total) for a progress bar


def _noop(*_: object) -> None:
    pass


def world_params(exp: Experiment) -> WorldParams:
    w = exp.data.world
    assert w is not None
    return WorldParams(users=w.users, days=w.days, pre_days=w.pre_days, items=w.items, seed=w.seed,
                       behaviour=w.behaviour)


def ensure_world(params: WorldParams, cache_dir: Path, say: Progress = _noop) -> Path:
    """The world for these parameters, generated on first use and cached by their fingerprint."""
    path = cache_dir / f"world-{params.fingerprint()}"
    if (path / "world.json").is_file():
        say(f"Reusing the synthetic world in {path}")
        return path
    say(f"Generating the synthetic world ({params.users} users, {params.days} days) into {path}")
    generate_world(params, path, progress=lambda phase, i, n: say(f"Generating the {phase} period", i, n))
    return path


def data_fingerprint(dataset: Dataset, counts: dict[str, int]) -> dict[str, Any]:
    """Row counts, the experiment's date range and a hash of every file of the dataset."""
    h = hashlib.blake2b(digest_size=16)
    files = sorted(dataset.path.rglob("*.parquet")) if not dataset.is_duckdb else [dataset.path]
    for f in files:
        h.update(str(f.relative_to(dataset.path.parent)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    con = dataset.connect()
    try:
        lo, hi = con.execute("SELECT MIN(ts), MAX(ts) FROM sessions").fetchall()[0]
    finally:
        con.close()
    return {"path": str(dataset.path), "rows": counts, "files": len(files), "hash": h.hexdigest(),
            "first_session": str(lo), "last_session": str(hi)}


def _resolve_ranker(name: str, config_path: Path) -> str:
    """``rankings:FILE`` relative to the working directory, else to the experiment file."""
    if not name.startswith("rankings:"):
        return name
    p = Path(name.removeprefix("rankings:"))
    return name if p.is_absolute() or p.exists() else f"rankings:{config_path.parent / p}"


def _ranker_code_hash(ranker) -> str:
    """What the replay cache must notice: a rankings file's bytes, a user ranker's source file."""
    import inspect

    from abplatform.rankers import PrecomputedRanker

    if isinstance(ranker, PrecomputedRanker):
        path = ranker.path
    else:
        path = Path(inspect.getsourcefile(type(ranker)) or "")
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


@functools.cache
def code_version() -> str:
    """A hash of the package's source and SQL: the replay cache and the run folders record it
    (computed once per process: the source does not change under a running job)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted([*root.rglob("*.py"), *SQL_DIR.glob("*.sql")]):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _replay_key(exp: Experiment, source_fingerprint: str, code: list[str]) -> str:
    payload = {"source": source_fingerprint, "arms": [a.model_dump() for a in exp.arms], "salt": exp.salt, "code": code,
               "sim": exp.simulation.model_dump(exclude={"workers", "batch_size"}), "version": code_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve_data_path(exp: Experiment, config_path: Path) -> Path:
    assert exp.data.path is not None
    p = Path(exp.data.path)
    return p if p.is_absolute() or p.exists() else (config_path.parent / p)


def source_dataset(exp: Experiment, config_path: Path, say: Progress) -> Dataset:
    if exp.data.world is not None:
        return Dataset(ensure_world(world_params(exp), Path(exp.data.cache_dir), say))
    path = resolve_data_path(exp, config_path)
    if not path.exists():
        raise InputError(f"{config_path}: data.path: {exp.data.path} does not exist")
    return Dataset(path, exp.data.tables, exp.data.mapping)


def run_offline(config_path: str | Path, results: str | Path = "results", workers: int | None = None,
                say: Progress = _noop) -> tuple[Path, dict[str, Any]]:
    """Replay the logged sessions through both arms, then analyse the simulated A/B log."""
    config_path = Path(config_path)
    exp, config_sha = load_experiment(config_path)
    arms = [(a, make_ranker(_resolve_ranker(a.ranker, config_path), a.params, where=f"{config_path}: arms[{i}].ranker"))
            for i, a in enumerate(exp.arms)]
    source = source_dataset(exp, config_path, say)
    counts = validate_dataset(source, max_position=exp.simulation.page_size, replay=True)
    source_fp = data_fingerprint(source, counts)
    code = [_ranker_code_hash(r) for _, r in arms]
    replay_dir = Path(exp.data.cache_dir) / "replays" / f"{exp.name}-{_replay_key(exp, source_fp['hash'], code)}"
    latency: dict[str, Any] = {}
    if (replay_dir / "sessions").is_dir() and (replay_dir / "latency.json").is_file():
        say(f"Reusing the replayed event log in {replay_dir}")
        latency = json.loads((replay_dir / "latency.json").read_text())
    else:
        catalog = Catalog.from_dataset(source)
        say("Fitting rankers on the pre-period logs: " + ", ".join(f"{a.name}={a.ranker}" for a, _ in arms))
        for _, ranker in arms:
            ranker.fit(source, catalog)
        sim = exp.simulation
        behaviour = None
        if sim.behaviour != "oracle":
            say(f"Fitting the {sim.behaviour} click model and the purchase model on the logged impressions")
            behaviour = FittedBehaviour(sim.behaviour, sim.page_size).fit(source, catalog)
        spec = ReplaySpec(arms=[ReplayArm(a.name, r, exp.weights[a.name]) for a, r in arms], salt=exp.salt,
                          seed=sim.seed, page_size=sim.page_size, batch_size=sim.batch_size,
                          workers=workers or sim.workers, behaviour=behaviour)
        say(f"Replaying {source.path} through both arms ({spec.workers} worker(s))")
        run_replay = make_replay(exp.data.engine, exp.data.spark)
        res = run_replay(source, spec, replay_dir, progress=lambda i, n: say("Replaying partitions", i, n))
        latency = {"ms_per_query": res.latency_ms_per_query(), "batches": res.batch_ms_per_query}
        (replay_dir / "latency.json").write_text(json.dumps(latency))
    dataset = Dataset(replay_dir)
    say(f"Computing sufficient statistics ({exp.data.engine}) and the scorecard")
    card = build_scorecard(dataset, exp)
    guard = latency_guardrail(latency.get("batches", {}), card.control, card.treatment,
                              exp.decision.latency_margin, exp.statistics.alpha)
    if guard and guard["breached"]:
        card.decision.hold(
            f"latency guardrail: {card.treatment} scores in {guard['treatment_ms']:.4f} ms/query vs "
            f"{guard['control_ms']:.4f} for {card.control} ({guard['ratio'] - 1:+.1%}, significantly beyond the "
            f"{guard['margin']:.0%} margin, p = {guard['p_value']:.3g})")
    extra = {"mode": "offline", "source": source_fp, "event_log": str(replay_dir),
             "latency_ms_per_query": latency.get("ms_per_query", {}), **({"latency_guardrail": guard} if guard else {})}
    return _publish(exp, config_path, config_sha, card, extra, results)


def latency_guardrail(batches: dict[str, list[float]], control: str, treatment: str, margin: float | None,
                      alpha: float) -> dict[str, Any] | None:
    """Serving-cost guardrail from the replay's per-batch scoring times (ms per query).

    One-sided Welch t-test on log time per query: H0 log t_T <= log t_C + log(1 + margin) against
    H1 "the treatment is slower than the control by more than the margin"; breached when H0 is
    rejected at alpha. Batch times are noisy on a shared machine; testing the mean of many
    batches instead of comparing two totals keeps an A/A run from tripping the guardrail.
    """
    from scipy import stats as sps

    c, t = np.log(batches.get(control) or [np.nan]), np.log(batches.get(treatment) or [np.nan])
    if margin is None or len(c) < 3 or len(t) < 3 or not (np.isfinite(c).all() and np.isfinite(t).all()):
        return None
    p = float(sps.ttest_ind(t - np.log1p(margin), c, equal_var=False, alternative="greater").pvalue)
    return {"control_ms": float(np.exp(c.mean())), "treatment_ms": float(np.exp(t.mean())),
            "ratio": float(np.exp(t.mean() - c.mean())), "margin": margin, "p_value": p,
            "batches": [len(c), len(t)], "breached": bool(p < alpha)}


def run_experiment(config_path: str | Path, results: str | Path = "results", workers: int | None = None,
                   say: Progress = _noop) -> tuple[Path, dict[str, Any]]:
    """Offline replay or online analysis, as the experiment's data source says."""
    exp, _ = load_experiment(config_path)
    if exp.data.mode == "online":
        return run_online(config_path, results, say)
    return run_offline(config_path, results, workers, say)


def run_online(config_path: str | Path, results: str | Path = "results", say: Progress = _noop) -> tuple[Path, dict[str, Any]]:
    """Analyse an online A/B log (sessions already carry their arm)."""
    config_path = Path(config_path)
    exp, config_sha = load_experiment(config_path)
    if exp.data.world is not None:
        raise InputError(f"{config_path}: data: 'analyze' reads an online A/B log (data.path), "
                         "not the synthetic world — use 'abplatform run' for offline replay")
    dataset = source_dataset(exp, config_path, say)
    counts = validate_dataset(dataset, require_arm=True, max_position=exp.simulation.page_size)
    say(f"Computing sufficient statistics ({exp.data.engine}) and the scorecard")
    card = build_scorecard(dataset, exp)
    extra = {"mode": "online", "source": data_fingerprint(dataset, counts), "event_log": str(dataset.path)}
    return _publish(exp, config_path, config_sha, card, extra, results)


def offline_vs_online(offline: dict[str, Any], online: dict[str, Any]) -> list[dict[str, Any]]:
    """Predicted (offline) and observed (online) relative lift per metric both runs have."""
    observed = {m["metric"]: m for m in online["metrics"]}
    rows = []
    for p in offline["metrics"]:
        o = observed.get(p["metric"])
        if o is None:
            continue
        inside = (o["rel_ci_low"] is not None and p["rel_effect"] is not None
                  and o["rel_ci_low"] <= p["rel_effect"] <= o["rel_ci_high"])
        rows.append({"metric": p["metric"], "predicted_rel_effect": p["rel_effect"],
                     "predicted_rel_ci_low": p["rel_ci_low"], "predicted_rel_ci_high": p["rel_ci_high"],
                     "observed_rel_effect": o["rel_effect"], "observed_rel_ci_low": o["rel_ci_low"],
                     "observed_rel_ci_high": o["rel_ci_high"], "prediction_inside_observed_ci": bool(inside),
                     "offline_run_id": offline["run_id"], "online_run_id": online["run_id"],
                     "offline_experiment": offline["experiment"], "online_experiment": online["experiment"]})
    return rows


def _paired_report(store: ResultsStore, exp: Experiment, mode: str) -> dict[str, Any] | None:
    """The latest complete run of the paired experiment in the other mode, if any."""
    name, other = exp.compare_to or exp.name, ("online" if mode == "offline" else "offline")
    runs = [e for e in store.index() if e["experiment"] == name and e.get("mode") == other]
    return store.load_report(store.run_dir(runs[-1])) if runs else None


def _publish(exp: Experiment, config_path: Path, config_sha: str, card, extra: dict[str, Any],
             results: str | Path) -> tuple[Path, dict[str, Any]]:
    run_id = new_run_id()
    store = ResultsStore(results)
    report = {
        "experiment": exp.name, "run_id": run_id, "created": datetime.now(timezone.utc).isoformat(),
        "config_path": str(config_path), "config_sha256": config_sha, "abplatform_version": __version__,
        "code_version": code_version(),
        "python": platform.python_version(), "seed": exp.simulation.seed, **extra, **scorecard_json(card),
    }
    paired = _paired_report(store, exp, extra["mode"])
    if paired is not None:
        offline, online = (report, paired) if extra["mode"] == "offline" else (paired, report)
        report["offline_vs_online"] = offline_vs_online(offline, online)
    report_md = markdown(report)

    def write(tmp: Path) -> None:
        shutil.copy2(config_path, tmp / "experiment.yaml")
        (tmp / "config.json").write_text(exp.model_dump_json(indent=2))
        card.overall.to_parquet(tmp / "scorecard.parquet", index=False)
        if not card.segments.empty:
            card.segments.to_parquet(tmp / "segments.parquet", index=False)
        card.daily.to_parquet(tmp / "daily.parquet", index=False)
        card.srm.to_parquet(tmp / "srm.parquet", index=False)
        card.sufficient_stats.to_parquet(tmp / "sufficient_stats.parquet", index=False)
        if card.long_tail is not None:
            card.long_tail.to_parquet(tmp / "long_tail.parquet", index=False)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str))
        (tmp / "report.md").write_text(report_md)
        (tmp / "junit.xml").write_bytes(junit_xml(report))

    primary = next((m for m in report["metrics"] if m["role"] == "primary"), None)
    summary = {"created": report["created"], "mode": extra["mode"], "decision": card.decision.label,
               "primary_metric": primary["metric"] if primary else None,
               "primary_rel_effect": primary["rel_effect"] if primary else None,
               "config_sha256": config_sha}
    run_dir = store.write_run(exp.name, run_id, write, summary)
    return run_dir, report
