"""Replay: re-rank each logged session with its arm's ranker and simulate the user's response.

The input is a dataset whose ``sessions`` and ``candidates`` tables are co-partitioned (file
``part-i`` of each holds the same sessions — what the world generator and ``import`` write).
Partitions are replayed independently by an executor (worker processes here, Spark tasks with
:class:`abplatform.replay.spark_executor.SparkExecutor`), in batches of sessions; every random draw
is keyed by (seed, session id), so the output event log is identical for any batch size, worker
count or executor. The output is a dataset in the same contract, with the arm column set, plus the
pre-period and catalog of the input (hard-linked), so the metrics layer reads it like any online log.

The replay knows users and raters only through :mod:`abplatform.replay.behaviour`'s interfaces; the
pipeline hands it fitted users, or the synthetic world's oracle users and raters.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from abplatform.contract import IMPRESSIONS, RELEVANCE_LABELS, SESSIONS
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.rankers import CandidateBatch, Catalog, Ranker, candidate_matrix, rank
from abplatform.replay.assignment import assign
from abplatform.replay.behaviour import Behaviour, Encoded, Rater
from abplatform.store import atomic_directory

COPIED_TABLES = ("items", "pre_sessions", "pre_impressions")
COPIED_FILES = ("world.json",)  # the source's description travels with the replayed log


@dataclass
class ReplayArm:
    name: str
    ranker: Ranker
    weight: float = 1.0


@dataclass
class ReplaySpec:
    arms: Sequence[ReplayArm]
    salt: str
    seed: int = 1
    page_size: int = 10
    batch_size: int = 8192
    workers: int = 1
    behaviour: Behaviour | None = None  # required by replay(); a field so specs can be built before fitting
    rater: Rater | None = None  # judges a sample of the new pages (None: no labels for them)


@dataclass
class ReplayResult:
    path: Path
    sessions: int
    impressions: int
    scoring_seconds: dict[str, float] = field(default_factory=dict)
    scored_sessions: dict[str, int] = field(default_factory=dict)
    batch_ms_per_query: dict[str, list[float]] = field(default_factory=dict)  # one sample per scored batch

    def latency_ms_per_query(self) -> dict[str, float]:
        return {a: 1000 * s / max(1, self.scored_sessions.get(a, 0)) for a, s in self.scoring_seconds.items()}


def distinct_codes(codes: np.ndarray, n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for codes in [0, n_values), without sorting."""
    present = np.zeros(n_values, bool)
    present[codes] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[codes]


def write_parquet(table: pa.Table, path: Path) -> None:
    """How replay writes its event log: zstd; dictionary encoding for the string columns only (ids and
    counts compress as small or smaller without it, and write faster)."""
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    pq.write_table(table, path, compression="zstd", use_dictionary=strings)


def keep_freed_memory() -> None:
    """For pool workers: keep freed memory in the process instead of returning it to the kernel.

    Every partition allocates arrays of about the same sizes; memory given back comes back as fresh
    zeroed pages, a page fault each, a noticeable share of a worker's CPU. Arrow's buffers go
    through malloc too. A worker's peak memory stays one partition's working set."""
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: leave the allocator as it is
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


@dataclass
class ReplayState:
    """What every partition's replay needs; built once by :func:`replay` and handed to the executor."""

    spec: ReplaySpec
    catalog: Catalog
    out: Path


Partition = tuple[int, str, str]  # (index, sessions file, candidates file)
PartitionResult = tuple[int, int, dict[str, float], dict[str, int], dict[str, list[float]]]
PartitionFn = Callable[[ReplayState, Partition], PartitionResult]


class Executor(Protocol):
    def map(self, fn: PartitionFn, state: ReplayState, parts: Sequence[Partition]) -> Iterator[PartitionResult]:
        """``fn(state, part)`` for every partition, results in any order."""
        ...


# Worker state, set before the pool forks so fitted rankers are shared copy-on-write.
_WORKER: dict[str, Any] = {}


def _in_worker(part: Partition) -> PartitionResult:
    return _WORKER["fn"](_WORKER["state"], part)


@dataclass
class LocalExecutor:
    """Partitions in ``workers`` forked processes (in this process when 1 or a single partition)."""

    workers: int = 1

    def map(self, fn: PartitionFn, state: ReplayState, parts: Sequence[Partition]) -> Iterator[PartitionResult]:
        if self.workers <= 1 or len(parts) <= 1:
            for part in parts:
                yield fn(state, part)
            return
        _WORKER.update(fn=fn, state=state)
        try:
            with mp.get_context("fork").Pool(min(self.workers, len(parts)), initializer=keep_freed_memory) as pool:
                yield from pool.imap_unordered(_in_worker, parts)
        finally:
            _WORKER.clear()


def replay_partition(state: ReplayState, part: Partition) -> PartitionResult:
    """Replay one co-partitioned (sessions, candidates) file pair into ``state.out``."""
    index, sessions_file, candidates_file = part
    spec, catalog, out = state.spec, state.catalog, state.out
    # one thread: the workers already keep every core busy, Arrow's own thread pool would only contend
    sessions = pq.read_table(sessions_file, use_threads=False)
    cands = pq.read_table(candidates_file, columns=["session_id", "item_id"], use_threads=False)
    ids = sessions["session_id"].to_numpy()
    # queries and units encoded for the whole partition: a batch's distinct queries cost no string hashing,
    # per-query and per-unit work (intents, user rows, arms) is done once per distinct value, and there is
    # one str object per distinct query, so every dict lookup by query hashes each string once
    queries, units = Encoded.of(sessions["query"]), Encoded.of(sessions["unit_id"])
    distinct, codes = np.array(queries.values, dtype=object), queries.codes
    cand_ids = candidate_matrix(ids, cands["session_id"].to_numpy(), cands["item_id"].to_numpy())
    cand_rows = catalog.rows(cand_ids)
    arm_idx = assign(spec.salt, units.values, [a.weight for a in spec.arms])[units.codes]
    k = spec.page_size
    shown = np.full((len(ids), k), -1, dtype=np.int64)
    seconds = {a.name: 0.0 for a in spec.arms}
    scored = {a.name: 0 for a in spec.arms}
    samples: dict[str, list[float]] = {a.name: [] for a in spec.arms}
    for lo in range(0, len(ids), spec.batch_size):
        hi = min(len(ids), lo + spec.batch_size)
        for a, arm in enumerate(spec.arms):
            sel = lo + np.flatnonzero(arm_idx[lo:hi] == a)
            if len(sel) == 0:
                continue
            batch_codes, query_index = distinct_codes(codes[sel], len(distinct))
            batch = CandidateBatch(ids[sel], distinct[codes[sel]].tolist(), np.take(cand_rows, sel, axis=0),
                                   (distinct[batch_codes].tolist(), query_index))
            t0 = time.perf_counter()
            scores = arm.ranker.score(batch)
            shown[sel] = rank(scores, batch.candidate_rows, k)
            elapsed = time.perf_counter() - t0
            seconds[arm.name] += elapsed
            scored[arm.name] += len(sel)
            samples[arm.name].append(1000 * elapsed / len(sel))
    assert spec.behaviour is not None  # replay() checked
    resp = spec.behaviour.respond(spec.seed, ids, queries, units, shown)
    shown_ids = np.where(shown >= 0, catalog.item_ids[np.maximum(shown, 0)], -1)
    valid = (shown >= 0).ravel()
    keep = slice(None) if valid.all() else valid  # full pages (the usual case): views, no copies
    arms = pa.array([a.name for a in spec.arms], pa.string()).take(arm_idx)
    name = f"part-{index:05d}.parquet"
    out_sessions = sessions.set_column(sessions.schema.get_field_index("arm"), SESSIONS.schema.field("arm"), arms)
    positions = np.tile(np.arange(1, k + 1, dtype=np.int16), len(ids))
    impressions = pa.table({
        "session_id": np.repeat(ids, k)[keep], "position": positions[keep], "item_id": shown_ids.ravel()[keep],
        "clicked": resp.clicked.ravel()[keep], "purchased": resp.purchased.ravel()[keep],
        "orders": resp.orders.ravel()[keep], "revenue": resp.revenue.ravel()[keep],
        "propensity": pa.nulls(int(valid.sum()), pa.float64()), "team": pa.nulls(int(valid.sum()), pa.string()),
    }, schema=IMPRESSIONS.schema)
    tables = [("sessions", out_sessions), ("impressions", impressions)]
    if spec.rater is not None:  # raters judge a sample of the new pages, as manual evaluation would
        rel_labels, page_labels = spec.rater.judge(ids, queries, shown)
        rel_labels = rel_labels.set_column(1, "item_id", pa.array(catalog.item_ids[rel_labels["item_id"].to_numpy()]))
        tables += [("page_labels", page_labels), ("_relevance_labels", rel_labels)]
    for table, data in tables:
        (out / table).mkdir(exist_ok=True)
        write_parquet(data, out / table / name)
    return len(ids), int(valid.sum()), seconds, scored, samples


def partitions(dataset: Dataset) -> list[tuple[int, str, str]]:
    sessions = {f.name: f for f in dataset.files("sessions")}
    candidates = {f.name: f for f in dataset.files("candidates")}
    if not sessions:
        raise InputError(f"{dataset.path}: replay needs a folder dataset with a sessions/ table")
    missing = sorted(set(sessions) - set(candidates))
    if missing:
        raise InputError(f"{dataset.path}/candidates: no candidate partition for sessions/{missing[0]} "
                         "(replay needs candidates co-partitioned with sessions)")
    return [(i, str(sessions[n]), str(candidates[n])) for i, n in enumerate(sorted(sessions))]


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def replay(dataset: Dataset, spec: ReplaySpec, out_dir: str | Path,
           progress: Callable[[int, int], None] | None = None, executor: Executor | None = None,
           keep_complete: bool = False) -> ReplayResult:
    """Replay ``dataset`` through the arms of ``spec`` into a new dataset at ``out_dir``.

    Rankers and ``spec.behaviour`` must already be fitted. ``executor`` runs the partitions
    (default: :class:`LocalExecutor` with ``spec.workers``). Written under a temporary name and
    renamed when complete, replacing what was there — except, with ``keep_complete`` (a cache named
    by its inputs), a complete replay another process published meanwhile, which it may be reading.
    """
    if spec.behaviour is None:
        raise InputError("replay: no user behaviour given (a fitted click model, or the world's oracle users)")
    parts = partitions(dataset)
    executor = executor or LocalExecutor(spec.workers)
    totals = [0, 0]
    seconds = {a.name: 0.0 for a in spec.arms}
    scored = {a.name: 0 for a in spec.arms}
    samples: dict[str, list[float]] = {a.name: [] for a in spec.arms}
    def replace(existing: Path) -> bool:
        return not (keep_complete and (existing / "sessions").is_dir() and (existing / "impressions").is_dir())

    with atomic_directory(Path(out_dir), replace=replace) as tmp:
        state = ReplayState(spec, Catalog.from_dataset(dataset), tmp)
        for done, res in enumerate(executor.map(replay_partition, state, parts), start=1):
            totals[0] += res[0]
            totals[1] += res[1]
            for a in seconds:
                seconds[a] += res[2][a]
                scored[a] += res[3][a]
                samples[a] += res[4][a]
            if progress:
                progress(done, len(parts))
        if spec.rater is not None:
            _merge_relevance_labels(tmp)
        for table in COPIED_TABLES:
            for f in dataset.files(table):
                _link_or_copy(f, tmp / table / f.name)
        for name in COPIED_FILES:
            if (dataset.path / name).is_file():
                shutil.copy2(dataset.path / name, tmp / name)
    return ReplayResult(Path(out_dir), totals[0], totals[1], seconds, scored, samples)


def _merge_relevance_labels(out: Path) -> None:
    """One row per judged (query, item): the partitions' labels, deduplicated."""
    con = duckdb.connect()
    labels = con.sql(f"""SELECT DISTINCT * FROM read_parquet('{out / '_relevance_labels' / '*.parquet'}')
                         ORDER BY query, item_id""").to_arrow_table().cast(RELEVANCE_LABELS.schema)
    con.close()
    shutil.rmtree(out / "_relevance_labels")
    (out / "relevance_labels").mkdir()
    write_parquet(labels, out / "relevance_labels" / "part-00000.parquet")
