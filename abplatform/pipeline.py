"""The main jobs: ``run`` (offline: replay logged sessions through both arms) and ``analyze``
(online: the A/B log as it is), each ending in an immutable run folder."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from abplatform import __version__
from abplatform.config import Experiment, load_experiment, resolve_ranker, setting_location
from abplatform.dataset import Dataset, quote_identifier
from abplatform.decision import DecisionRule, decide, decide_arms
from abplatform.errors import InputError
from abplatform.evaluate import evaluate_offline_policy, target_policy_table
from abplatform.metrics.engine import SQL_DIR
from abplatform.offline.behaviour import FittedBehaviour
from abplatform.offline.interleaving import interleaved_log_summary, interleaving_report, simulate_interleaving
from abplatform.offline.ope import load_logged_pages
from abplatform.profile import experiment_profile
from abplatform.rankers import Catalog, Ranker, make_ranker
from abplatform.replay import ReplayArm, ReplaySpec, replay
from abplatform.replay.behaviour import Behaviour, Rater
from abplatform.replay.executors import make_executor
from abplatform.replay.serving_cost import measure, query_batches, unmeasurable
from abplatform.report.interleaving import InterleavingResult
from abplatform.report.model import (
    Analysis,
    Comparison,
    DailyResult,
    DataFingerprint,
    LatencyGuardrail,
    LongTail,
    OfflineVsOnline,
    Report,
    ReportFormatError,
    SegmentResult,
    SrmCheck,
    finite_or_none,
)
from abplatform.report.offline_policy import OfflinePolicyEvaluation
from abplatform.report.render import junit_xml, markdown
from abplatform.scorecard import (
    Scorecard,
    balance_results,
    build_scorecard,
    daily_segment_series,
    daily_srm_results,
    heterogeneity_results,
    metric_results,
    srm_checks,
)
from abplatform.stats.latency import NO_MARGIN, ONLINE, latency_guardrail, not_evaluated
from abplatform.stats.srm import srm_test
from abplatform.stats.types import SrmResult
from abplatform.store import ResultsStore, new_run_id, run_summary, write_atomic
from abplatform.validate import validate_dataset
from abplatform.vocabulary import Mode, unit_column
from abplatform.world.generate import WorldParams, generate_world
from abplatform.world.oracle import OracleBehaviour, WorldRaters
from abplatform.world.presets import preset_world_params
from abplatform.world.truth import load_truth

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[..., None]  # say(message) or say(message, done, total) for a progress bar


def _noop(*_: object) -> None:
    pass


def world_params(exp: Experiment) -> WorldParams:
    """The experiment's synthetic world: its preset's knobs (none: the classic world) with its size, seed and
    users' behaviour."""
    w = exp.data.world
    assert w is not None
    return preset_world_params(w.preset, users=w.users, days=w.days, pre_days=w.pre_days, items=w.items,
                               seed=w.seed, behaviour=w.behaviour)


def ensure_world(params: WorldParams, cache_dir: Path, say: Progress = _noop) -> Path:
    """The world for these parameters, generated on first use and cached by their fingerprint."""
    path = cache_dir / f"world-{params.fingerprint()}"
    if (path / "world.json").is_file():
        say(f"Reusing the synthetic world in {path}")
        return path
    say(f"Generating the synthetic world ({params.users} users, {params.days} days) into {path}")
    # force: the folder is the cache's own (named by the fingerprint), e.g. a world whose world.json was lost
    generate_world(params, path, progress=lambda phase, i, n: say(f"Generating the {phase} period", i, n),
                   force=True, keep_complete=True)
    return path


def data_fingerprint(dataset: Dataset, counts: dict[str, int]) -> DataFingerprint:
    """Row counts, the experiment's date range and a hash of every file the dataset is read from (CSV,
    parquet or duckdb), each named by its path inside the dataset's folder (else its file name): the same
    bytes in another folder give the same hash."""
    h = hashlib.blake2b(digest_size=16)
    files = dataset.input_files()
    for f in files:
        inside = not dataset.is_duckdb and f.is_relative_to(dataset.path)
        h.update(str(f.relative_to(dataset.path) if inside else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    con = dataset.connect()
    try:
        lo, hi = con.execute("SELECT MIN(ts), MAX(ts) FROM sessions").fetchall()[0]
    finally:
        con.close()
    return DataFingerprint(path=str(dataset.path), rows=counts, files=len(files), hash=h.hexdigest(),
                           first_session=str(lo), last_session=str(hi))


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
    # the same files in the same order in a source checkout and an installed wheel (where the SQL and
    # the dashboard sit inside the package): the package's own modules, then the SQL
    for f in [*sorted(p for p in root.rglob("*.py") if p.relative_to(root).parts[0] not in ("sql", "dashboards")),
              *sorted(SQL_DIR.glob("*.sql"))]:
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


def validate_experiment_data(exp: Experiment, dataset: Dataset, replay: bool = False,
                             require_arm: bool = True) -> dict[str, int]:
    """Every check ``run`` / ``analyze`` makes of the experiment's log before computing (its profile, positions,
    unit, and for an online log its arms and assignment; ``require_arm=False``: an interleaved log, whose
    sessions carry no arm); the row counts per table."""
    online = exp.data.mode == "online"
    profile = experiment_profile(exp)
    if not require_arm:
        profile.pop(("sessions", "arm"), None)
    return validate_dataset(dataset, require_arm=online and require_arm,
                            max_position=exp.data.slots or exp.simulation.page_size, replay=replay,
                            arms=tuple(a.name for a in exp.arms) if online else (), profile=profile,
                            sparse=exp.data.positions == "sparse", unit=exp.randomisation.unit)


@dataclass(frozen=True)
class DataCheck:
    """What ``check-data EXPERIMENT.yaml`` found: row counts, and an online log's sample-ratio check."""

    counts: dict[str, int]
    unit: str
    srm: SrmResult | None = None
    srm_blocks: bool = False

    @property
    def srm_line(self) -> str:
        if self.srm is None:
            return ""
        units = ", ".join(f"{a} {n:,}" for a, n in self.srm.observed.items())
        verdict = "FAILED (the decision would hold)" if self.srm_blocks else "failed" if self.srm.failed else "ok"
        return f"sample ratio ({self.unit}s per arm: {units}): {self.srm.test} p = {self.srm.p_value:.4g}, {verdict}"


def check_experiment_data(config_path: str | Path) -> DataCheck:
    """``check-data EXPERIMENT.yaml``: every check of the experiment's log that ``run`` / ``analyze`` make before
    computing — its mapping, its profile's columns, positions, unit; online, its arms, the assignment leak and
    the sample ratio of units per arm."""
    config_path = Path(config_path)
    exp, _ = load_experiment(config_path)
    check_offline_policy_table(exp, config_path)
    dataset = source_dataset(exp, config_path, _noop)
    counts = validate_experiment_data(exp, dataset, replay=exp.data.mode == "offline")
    if exp.data.mode != "online":
        return DataCheck(counts, exp.randomisation.unit)
    con = dataset.connect()
    try:
        unit = quote_identifier(unit_column(exp.randomisation.unit) or "session_id")
        table = "sessions"
        if exp.randomisation.unit == "impression":
            unit, table = "CAST(session_id AS VARCHAR) || '/' || CAST(position AS VARCHAR)", \
                "(SELECT i.session_id, i.position, s.arm FROM impressions i JOIN sessions s USING (session_id))"
        rows = con.execute(f"SELECT arm, COUNT(DISTINCT {unit}) FROM {table} WHERE arm IS NOT NULL "
                           "GROUP BY arm ORDER BY arm").fetchall()
    finally:
        con.close()
    srm = srm_test({a: int(n) for a, n in rows}, exp.weights, exp.statistics.srm_threshold)
    return DataCheck(counts, exp.randomisation.unit, srm, srm.failed and exp.decision.block_on_srm)


def source_dataset(exp: Experiment, config_path: Path, say: Progress) -> Dataset:
    if exp.data.world is not None:
        return Dataset(ensure_world(world_params(exp), Path(exp.data.cache_dir), say))
    path = resolve_data_path(exp, config_path)
    if not path.exists():
        raise InputError(f"{config_path}: data.path: {exp.data.path} does not exist")
    return Dataset(path, exp.data.tables, exp.data.mapping,
                   locate=lambda loc: setting_location(config_path, ("data", *loc)))


def _users_and_raters(exp: Experiment, source: Dataset, catalog: Catalog,
                      say: Progress) -> tuple[Behaviour, Rater | None]:
    """The simulated users the replay answers pages with, and the raters who judge them (the world's,
    when the logs come from the synthetic world)."""
    truth = load_truth(source.path) if (source.path / "world.json").is_file() else None
    raters = WorldRaters(truth) if truth is not None else None
    sim = exp.simulation
    if sim.behaviour == "oracle":
        if truth is None:
            raise InputError(f"{source.path}: the oracle behaviour needs a synthetic world; "
                             "use a fitted click model (simulation.behaviour: pbm, cascade, dbn or ubm)")
        return OracleBehaviour(truth), raters
    say(f"Fitting the {sim.behaviour} click model and the purchase model on the logged impressions")
    return FittedBehaviour(sim.behaviour, sim.page_size).fit(source, catalog), raters


def _read_latency(path: Path, say: Progress = _noop) -> dict[str, dict] | None:
    """The replay's cached scoring times, or None when missing or unreadable (then replay again; an
    unreadable one with a warning through ``say``)."""
    try:
        latency = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        say(f"warning: {path}: unreadable ({e}); replaying again")
        return None
    if not isinstance(latency, dict):
        say(f"warning: {path}: not a JSON object; replaying again")
        return None
    return latency


def run_offline(config_path: str | Path, results: str | Path = "results", workers: int | None = None,
                say: Progress = _noop) -> tuple[Path, Report]:
    """Replay the logged sessions through both arms, then analyse the simulated A/B log."""
    config_path = Path(config_path)
    exp, config_sha = load_experiment(config_path)
    check_offline_policy_table(exp, config_path)
    # an offline experiment's arms all have a ranker (the config checks it)
    arms = [(a, make_ranker(resolve_ranker(a.ranker or "", config_path), a.params,
                            where=f"{config_path}: arms[{i}].ranker")) for i, a in enumerate(exp.arms)]
    source = source_dataset(exp, config_path, say)
    counts = validate_experiment_data(exp, source, replay=True)
    source_fp = data_fingerprint(source, counts)
    code = [_ranker_code_hash(r) for _, r in arms]
    replay_dir = Path(exp.data.cache_dir) / "replays" / f"{exp.name}-{_replay_key(exp, source_fp.hash, code)}"
    latency = _read_latency(replay_dir / "latency.json", say) if (replay_dir / "sessions").is_dir() else None
    rankers = {a.name: r for a, r in arms}
    why_not = NO_MARGIN if exp.decision.latency_margin is None else unmeasurable(rankers)
    catalog: Catalog | None = None
    if latency is None or why_not is None:  # the replay or the serving-cost measurement needs fitted rankers
        catalog = Catalog.from_dataset(source)
        say("Fitting rankers on the pre-period logs: " + ", ".join(f"{a.name}={a.ranker}" for a, _ in arms))
        for _, ranker in arms:
            ranker.fit(source, catalog)
    # measured before the replay, on the rankers as fitted, whether the replay is cached or not
    guards = ({p: not_evaluated(why_not, exp.decision.latency_margin) for p in exp.comparison_pairs}
              if why_not is not None else _serving_costs(exp, source, catalog, rankers, say))
    if latency is not None:
        say(f"Reusing the replayed event log in {replay_dir}")
    else:
        assert catalog is not None
        sim = exp.simulation
        behaviour, raters = _users_and_raters(exp, source, catalog, say)
        spec = ReplaySpec(arms=[ReplayArm(a.name, r, exp.weights[a.name]) for a, r in arms], salt=exp.salt,
                          seed=sim.seed, page_size=sim.page_size, batch_size=sim.batch_size,
                          workers=workers or sim.workers, behaviour=behaviour, rater=raters)
        say(f"Replaying {source.path} through {'both' if len(arms) == 2 else f'all {len(arms)}'} arms "
            f"({spec.workers} worker(s))")
        executor = make_executor(exp.data.engine, exp.data.spark, spec.workers)
        res = replay(source, spec, replay_dir, progress=lambda i, n: say("Replaying partitions", i, n),
                     executor=executor, keep_complete=True)
        # the replay's wall clock, kept for information only: the guardrail is the serving-cost measurement
        latency = {"ms_per_query": res.latency_ms_per_query(), "batches": res.batch_ms_per_query}
        write_atomic(replay_dir / "latency.json", json.dumps(latency).encode())
    dataset = Dataset(replay_dir)
    say(f"Computing sufficient statistics ({exp.data.engine}) and the scorecard")
    card = build_scorecard(dataset, exp)
    interleaving = None
    if exp.interleaving is not None:
        if catalog is None:  # a cached replay and serving cost: the rankers are not fitted yet
            catalog = Catalog.from_dataset(source)
            for ranker in rankers.values():
                ranker.fit(source, catalog)
        interleaving = _simulated_interleaving(exp, source, catalog, rankers, say)
    return _publish(exp, config_path, config_sha, card, "offline", source_fp, str(replay_dir), results,
                    latency_ms=latency.get("ms_per_query", {}), latency_guards=guards, say=say,
                    offline_policy=_offline_policy(exp, config_path, source, say), interleaving=interleaving)


def _simulated_interleaving(exp: Experiment, source: Dataset, catalog: Catalog, rankers: dict[str, Ranker],
                            say: Progress) -> InterleavingResult:
    """Team-draft interleaving of the fitted control and treatment on every logged session, answered by the
    run's simulated users, with the sessions it needs against an A/B test of item CTR."""
    assert exp.interleaving is not None
    sim = exp.simulation
    behaviour, _ = _users_and_raters(exp, source, catalog, say)
    control, treatment = exp.control_arm.name, exp.treatment_arm.name
    say(f"Interleaving {control} and {treatment} (team draft) on the logged sessions")
    result = simulate_interleaving(load_logged_pages(source, k=sim.page_size), rankers[control], rankers[treatment],
                                   catalog, behaviour, seed=sim.seed, arms=(control, treatment),
                                   page_size=sim.page_size, batch_size=sim.batch_size, alpha=exp.statistics.alpha,
                                   credit_rule=exp.interleaving.credit_rule, unit=exp.interleaving.unit)
    return interleaving_report(result.analysis, result.sample_size)


def _logged_interleaving(exp: Experiment, dataset: Dataset) -> InterleavingResult:
    """An interleaved log's comparison: each session's clicks credited to the team (impressions.team) of its arm."""
    assert exp.interleaving is not None
    con = dataset.connect()
    try:
        analysis = interleaved_log_summary(con, (exp.control_arm.name, exp.treatment_arm.name),
                                           exp.statistics.alpha, exp.interleaving.credit_rule, exp.interleaving.unit)
    finally:
        con.close()
    return interleaving_report(analysis)


def check_offline_policy_table(exp: Experiment, config_path: Path) -> None:
    """A stochastic target's probability table is read and checked before any computing."""
    if exp.offline_policy is not None and exp.offline_policy.policy is not None:
        target_policy_table(exp.offline_policy, config_path)


def evaluate_experiment(config_path: str | Path, say: Progress = _noop
                        ) -> tuple[OfflinePolicyEvaluation | None, InterleavingResult | None]:
    """``abplatform evaluate``: the experiment's off-policy estimate and the interleaved log's comparison,
    without the A/B scorecard (an interleaved log's sessions carry no arm), on its validated log."""
    config_path = Path(config_path)
    exp, _ = load_experiment(config_path)
    check_offline_policy_table(exp, config_path)
    if exp.offline_policy is None and exp.interleaving is None:
        raise InputError(f"{config_path}: nothing to evaluate: give an offline_policy section (the arm to estimate, "
                         "on which arm's log) or an interleaving section (an interleaved log)")
    dataset = source_dataset(exp, config_path, say)
    validate_experiment_data(exp, dataset, require_arm=exp.offline_policy is not None)
    interleaving = None
    if exp.interleaving is not None:
        if exp.data.mode != "online":
            raise InputError(f"{config_path}: evaluate reads an interleaved log (data.path with impressions.team); "
                             "an offline run ('abplatform run') simulates interleaving on the replay")
        say("Crediting the interleaved log's clicks to the teams")
        interleaving = _logged_interleaving(exp, dataset)
    return _offline_policy(exp, config_path, dataset, say), interleaving


def _offline_policy(exp: Experiment, config_path: Path, dataset: Dataset,
                    say: Progress) -> OfflinePolicyEvaluation | None:
    """The experiment's off-policy estimate on ``dataset`` (the logged source), when it asks for one."""
    if exp.offline_policy is None:
        return None
    say(f"Estimating arm {exp.offline_policy.target}'s policy off-policy on the logged propensities")
    return evaluate_offline_policy(exp, config_path, dataset)


def _serving_costs(exp: Experiment, source: Dataset, catalog: Catalog | None, rankers: dict[str, Ranker],
                   say: Progress) -> dict[tuple[str, str], LatencyGuardrail]:
    """The latency guardrail of every comparison: its two fitted rankers timed on the same seeded
    query batches (one draw of batches for all comparisons)."""
    assert catalog is not None
    d = exp.decision
    say(f"Measuring serving cost: {d.latency_repetitions} paired repetitions of {d.latency_batch_size} queries"
        + (f" per comparison ({len(exp.comparison_pairs)})" if len(exp.comparison_pairs) > 1 else ""))
    batches = query_batches(source, catalog, batch_size=d.latency_batch_size, seed=exp.simulation.seed)
    out = {}
    for treatment, control in exp.comparison_pairs:
        if not batches:
            out[(treatment, control)] = not_evaluated(f"{source.path}: no session to score", d.latency_margin)
            continue
        times = measure(rankers[control], rankers[treatment], batches, d.latency_repetitions,
                        page_size=exp.simulation.page_size)
        out[(treatment, control)] = latency_guardrail(
            times.control_seconds, times.treatment_seconds, margin=d.latency_margin, alpha=exp.statistics.alpha,
            batch_size=times.batch_size, control=control, treatment=treatment, timer=times.timer)
    return out


def run_experiment(config_path: str | Path, results: str | Path = "results", workers: int | None = None,
                   say: Progress = _noop) -> tuple[Path, Report]:
    """Offline replay or online analysis, as the experiment's data source says."""
    exp, _ = load_experiment(config_path)
    if exp.data.mode == "online":
        return run_online(config_path, results, say)
    return run_offline(config_path, results, workers, say)


def run_online(config_path: str | Path, results: str | Path = "results", say: Progress = _noop) -> tuple[Path, Report]:
    """Analyse an online A/B log (sessions already carry their arm)."""
    config_path = Path(config_path)
    exp, config_sha = load_experiment(config_path)
    check_offline_policy_table(exp, config_path)
    if exp.data.world is not None:
        raise InputError(f"{config_path}: data: 'analyze' reads an online A/B log (data.path), "
                         "not the synthetic world — use 'abplatform run' for offline replay")
    dataset = source_dataset(exp, config_path, say)
    counts = validate_experiment_data(exp, dataset)
    say(f"Computing sufficient statistics ({exp.data.engine}) and the scorecard")
    card = build_scorecard(dataset, exp)
    not_timed = {p: not_evaluated(ONLINE, exp.decision.latency_margin) for p in exp.comparison_pairs}
    return _publish(exp, config_path, config_sha, card, "online", data_fingerprint(dataset, counts),
                    str(dataset.path), results, latency_guards=not_timed, say=say,
                    offline_policy=_offline_policy(exp, config_path, dataset, say))


def offline_vs_online(offline: Report, online: Report) -> list[OfflineVsOnline]:
    """Predicted (offline) and observed (online) relative lift per metric both runs have, per comparison
    both runs made (two two-arm runs are one comparison whatever their arms are called)."""
    pairs = list(zip(offline.comparison_list(), online.comparison_list(), strict=False))
    if len(offline.comparison_list()) > 1 or len(online.comparison_list()) > 1:
        observed = {(c.treatment, c.control): c for c in online.comparison_list()}
        pairs = [(p, observed[(p.treatment, p.control)]) for p in offline.comparison_list()
                 if (p.treatment, p.control) in observed]
    rows = []
    for predicted, seen in pairs:
        for p in predicted.metrics:
            o = seen.metric(p.metric)
            if o is None:
                continue
            inside = (o.rel_ci_low is not None and o.rel_ci_high is not None and p.rel_effect is not None
                      and o.rel_ci_low <= p.rel_effect <= o.rel_ci_high)
            rows.append(OfflineVsOnline(
                metric=p.metric, predicted_rel_effect=p.rel_effect, predicted_rel_ci_low=p.rel_ci_low,
                predicted_rel_ci_high=p.rel_ci_high, observed_rel_effect=o.rel_effect,
                observed_rel_ci_low=o.rel_ci_low, observed_rel_ci_high=o.rel_ci_high,
                prediction_inside_observed_ci=bool(inside), offline_run_id=offline.run_id,
                online_run_id=online.run_id, offline_experiment=offline.experiment,
                online_experiment=online.experiment, comparison=predicted.name))
    return rows


def _paired_report(store: ResultsStore, exp: Experiment, mode: Mode, say: Progress) -> Report | None:
    """The latest readable run of the paired experiment in the other mode, if any; a paired run
    that was deleted or cannot be read (another version's report) is skipped with a warning."""
    name, other = exp.compare_to or exp.name, ("online" if mode == "offline" else "offline")
    runs = [e for e in store.index() if e.get("experiment") == name and e.get("mode") == other]
    for entry in reversed(runs):
        path = store.run_dir(entry) / "report.json"
        try:
            return Report.from_json(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ReportFormatError) as e:
            say(f"warning: skipping paired run {path} ({e})")
    return None


def _rows_of(frame: pd.DataFrame | None, comparison: str) -> pd.DataFrame | None:
    """The rows of one comparison of a scorecard table."""
    if frame is None or frame.empty:
        return frame
    return frame[frame["comparison"] == comparison]


def _long_tail(card: Scorecard, treatment: str, control: str) -> LongTail | None:
    if card.long_tail is None or card.long_tail_arms is None:
        return None
    per_arm: dict[str, dict[str, float | None]] = {}
    for _, r in card.long_tail_arms.iterrows():
        if r["arm"] in (control, treatment):
            per_arm[r["arm"]] = {"coverage": finite_or_none(float(r["coverage"])),
                                 "exposure_gini": finite_or_none(float(r["exposure_gini"]))}
    metrics = metric_results(_rows_of(card.long_tail, f"{treatment} vs {control}"))
    for m in metrics:
        per_arm.setdefault(control, {})[m.metric] = m.control_value
        per_arm.setdefault(treatment, {})[m.metric] = m.treatment_value
    return LongTail(per_arm=per_arm, metrics=metrics)


def _comparison(card: Scorecard, treatment: str, control: str, srm: SrmCheck, rule: DecisionRule,
                latency: LatencyGuardrail | None) -> Comparison:
    """One comparison's rows and its own decision (does ``treatment`` beat ``control``?)."""
    name = f"{treatment} vs {control}"
    metrics = metric_results(_rows_of(card.overall, name))
    return Comparison(treatment=treatment, control=control, decision=decide(metrics, srm, rule, latency, control,
                                                                             treatment),
                      metrics=metrics, segments=metric_results(_rows_of(card.segments, name), SegmentResult),
                      daily=metric_results(_rows_of(card.daily, name), DailyResult), latency_guardrail=latency,
                      long_tail=_long_tail(card, treatment, control),
                      heterogeneity=heterogeneity_results(_rows_of(card.heterogeneity, name)),
                      daily_segments=daily_segment_series(_rows_of(card.daily_segments, name)),
                      balance=balance_results(_rows_of(card.balance, name)))


def analysis_of(exp: Experiment) -> Analysis:
    """The experiment's test settings, as the report labels them."""
    st = exp.statistics
    return Analysis(relative_ci=st.relative_ci, correction=exp.correction, correction_scope=st.correction_scope,
                    guardrail_test=exp.decision.guardrail_test,
                    sequential=st.sequential.method if st.sequential is not None else None,
                    unit=exp.randomisation.unit)


def _publish(exp: Experiment, config_path: Path, config_sha: str, card: Scorecard, mode: Mode,
             source: DataFingerprint, event_log: str, results: str | Path, latency_ms: dict[str, float] | None = None,
             latency_guards: dict[tuple[str, str], LatencyGuardrail] | None = None, say: Progress = _noop,
             offline_policy: OfflinePolicyEvaluation | None = None,
             interleaving: InterleavingResult | None = None) -> tuple[Path, Report]:
    run_id = new_run_id()
    store = ResultsStore(results)
    srm, srm_by_segment = srm_checks(card)
    rule = DecisionRule(alpha=exp.statistics.alpha, guardrail_test=exp.decision.guardrail_test,
                        block_on_srm=exp.decision.block_on_srm)
    comparisons = [_comparison(card, t, c, srm, rule, (latency_guards or {}).get((t, c))) for t, c in card.pairs]
    head = comparisons[0]
    several = len(comparisons) > 1
    decision = (decide_arms([(c.treatment, c.control, c.decision) for c in comparisons], exp.control_arm.name,
                            card.arms) if several else head.decision)
    report = Report(
        experiment=exp.name, run_id=run_id, created=datetime.now(UTC).isoformat(), mode=mode,
        config_path=str(config_path), config_sha256=config_sha, abplatform_version=__version__,
        code_version=code_version(), python=platform.python_version(), seed=exp.simulation.seed,
        alpha=exp.statistics.alpha, source=source, event_log=event_log, control=head.control,
        treatment=head.treatment, decision=decision, srm=srm, metrics=head.metrics, segments=head.segments,
        srm_by_segment=srm_by_segment, daily=head.daily, latency_ms_per_query=latency_ms or {},
        latency_guardrail=head.latency_guardrail, long_tail=head.long_tail, heterogeneity=head.heterogeneity,
        daily_segments=head.daily_segments, balance=head.balance, srm_by_day=daily_srm_results(card),
        analysis=analysis_of(exp),
        offline_policy=offline_policy, interleaving=interleaving, arms=card.arms if several else [],
        control_arm=exp.control_arm.name if several else "", comparisons=comparisons if several else [])
    paired = _paired_report(store, exp, mode, say)
    if paired is not None:
        report.offline_vs_online = offline_vs_online(*((report, paired) if mode == "offline" else (paired, report)))
    report_json, report_md = report.to_json(), markdown(report)

    def write(tmp: Path) -> None:
        shutil.copy2(config_path, tmp / "experiment.yaml")
        (tmp / "config.json").write_text(exp.model_dump_json(indent=2))
        card.overall.to_parquet(tmp / "scorecard.parquet", index=False)
        if not card.segments.empty:
            card.segments.to_parquet(tmp / "segments.parquet", index=False)
        card.daily.to_parquet(tmp / "daily.parquet", index=False)
        if card.heterogeneity is not None and not card.heterogeneity.empty:
            card.heterogeneity.to_parquet(tmp / "heterogeneity.parquet", index=False)
        if card.daily_segments is not None and not card.daily_segments.empty:
            card.daily_segments.to_parquet(tmp / "daily_segments.parquet", index=False)
        card.srm.to_parquet(tmp / "srm.parquet", index=False)
        card.sufficient_stats.to_parquet(tmp / "sufficient_stats.parquet", index=False)
        if card.long_tail is not None:
            card.long_tail.to_parquet(tmp / "long_tail.parquet", index=False)
        (tmp / "report.json").write_text(report_json)
        (tmp / "report.md").write_text(report_md)
        (tmp / "junit.xml").write_bytes(junit_xml(report))

    run_dir = store.write_run(exp.name, run_id, write, run_summary(report.to_dict()), warn=say)
    return run_dir, report
