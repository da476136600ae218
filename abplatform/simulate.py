"""Replay: re-rank each logged session with its arm's ranker and simulate the user's response.

The input is a dataset whose ``sessions`` and ``candidates`` tables are co-partitioned (file
``part-i`` of each holds the same sessions — what the world generator and ``import`` write).
Partitions are replayed independently, in parallel worker processes, in batches of sessions;
every random draw is keyed by (seed, session id), so the output event log is identical for any
batch size or worker count. The output is a dataset in the same contract, with the arm column
set, plus the pre-period and catalog of the input (hard-linked), so the metrics layer reads it
like any online log.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from abplatform.assignment import assign
from abplatform.contract import IMPRESSIONS, RELEVANCE_LABELS, SESSIONS
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.rankers import CandidateBatch, Catalog, Ranker, rank
from abplatform.offline.behaviour import Behaviour, Encoded, OracleBehaviour
from abplatform.world.generate import judge
from abplatform.world.truth import WorldTruth, load_truth

COPIED_TABLES = ("items", "pre_sessions", "pre_impressions")


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
    behaviour: Behaviour | None = None  # None: the world's oracle


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


def candidate_matrix(session_ids: np.ndarray, cand_sessions: np.ndarray, cand_items: np.ndarray) -> np.ndarray:
    """(n, max candidates) item ids per session in ``session_ids`` order, sorted by item id, -1 padded
    (a view of ``cand_items`` when that is laid out so already)."""
    n = len(session_ids)
    if n and len(cand_sessions) % n == 0 and bool(np.all(session_ids[1:] > session_ids[:-1])):
        # what the world writes: each session's candidates together, in session order, sorted by item,
        # the same number each; then the matrix is a reshape, checked without sorting anything
        cs, ci = cand_sessions.reshape(n, -1), cand_items.reshape(n, -1)
        if bool(np.all(cs == session_ids[:, None])) and bool(np.all(ci[:, 1:] > ci[:, :-1])):
            return ci
    # grouped by session and sorted by item: skip the sort when so
    grouped = len(cand_sessions) < 2 or bool(
        np.all((np.diff(cand_sessions) > 0) | ((np.diff(cand_sessions) == 0) & (np.diff(cand_items) > 0))))
    if grouped:
        cs, ci = cand_sessions, cand_items
    else:
        order = np.lexsort((cand_items, cand_sessions))
        cs, ci = cand_sessions[order], cand_items[order]
    start = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]]) if len(cs) else np.zeros(0, np.int64)
    uniq = cs[start]
    counts = np.diff(np.r_[start, len(cs)])
    if len(uniq) == len(session_ids) and np.array_equal(uniq, session_ids) and np.all(counts == counts[0]):
        return ci.reshape(len(session_ids), int(counts[0])).copy()  # same sessions, same width: a reshape
    width = int(counts.max()) if len(counts) else 0
    out = np.full((len(session_ids), width), -1, dtype=np.int64)
    if not len(uniq):
        return out
    where = np.minimum(np.searchsorted(uniq, session_ids), len(uniq) - 1)
    found = uniq[where] == session_ids
    row_of_uniq = np.full(len(uniq), -1)
    row_of_uniq[where[found]] = np.flatnonzero(found)
    rows = np.repeat(row_of_uniq, counts)
    col = np.arange(len(cs)) - np.repeat(start, counts)
    keep = rows >= 0
    out[rows[keep], col[keep]] = ci[keep]
    return out


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
    zeroed pages, a page fault each, which cost about a tenth of a worker's CPU. Arrow's buffers go
    through malloc too. A worker's peak memory stays one partition's working set."""
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: leave the allocator as it is
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


# Worker state, set before the pool forks so fitted rankers are shared copy-on-write.
_STATE: dict = {}


def _replay_partition(args: tuple[int, str, str]) -> tuple[int, int, dict[str, float], dict[str, int],
                                                             dict[str, list[float]]]:
    index, sessions_file, candidates_file = args
    spec: ReplaySpec = _STATE["spec"]
    catalog: Catalog = _STATE["catalog"]
    truth: WorldTruth | None = _STATE["truth"]
    behaviour: Behaviour = _STATE["behaviour"]
    out: Path = _STATE["out"]
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
    resp = behaviour.respond(spec.seed, ids, queries, units, shown)
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
        "propensity": pa.nulls(int(valid.sum()), pa.float64()),
    }, schema=IMPRESSIONS.schema)
    tables = [("sessions", out_sessions), ("impressions", impressions)]
    if truth is not None:  # the world's raters judge a sample of the new pages, as manual evaluation would
        intents = queries.per_value(truth.intents).take(codes)  # the oracle's lookups, done once per query
        rel_labels, page_labels = judge(truth.seed, truth.label_rate, ids, queries, intents, truth.items, shown)
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
           progress: Callable[[int, int], None] | None = None) -> ReplayResult:
    """Replay ``dataset`` through the arms of ``spec`` into a new dataset at ``out_dir``.

    Rankers must already be fitted. Written under a temporary name and renamed when complete.
    """
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parts = partitions(dataset)
    truth = load_truth(dataset.path) if (dataset.path / "world.json").is_file() else None
    behaviour = spec.behaviour
    if behaviour is None:
        if truth is None:
            raise InputError(f"{dataset.path}: the oracle behaviour needs a synthetic world; "
                             "use a fitted click model (simulation.behaviour: pbm, cascade, dbn or ubm)")
        behaviour = OracleBehaviour(truth)
    _STATE.update(spec=spec, catalog=Catalog.from_dataset(dataset), truth=truth, behaviour=behaviour, out=tmp)
    totals = [0, 0]
    seconds = {a.name: 0.0 for a in spec.arms}
    scored = {a.name: 0 for a in spec.arms}
    samples: dict[str, list[float]] = {a.name: [] for a in spec.arms}

    def collect(res: tuple) -> None:
        totals[0] += res[0]
        totals[1] += res[1]
        for a in seconds:
            seconds[a] += res[2][a]
            scored[a] += res[3][a]
            samples[a] += res[4][a]
        if progress:
            progress(len(done) + 1, len(parts))
        done.append(1)

    done: list[int] = []
    try:
        if spec.workers > 1 and len(parts) > 1:
            with mp.get_context("fork").Pool(min(spec.workers, len(parts)), initializer=keep_freed_memory) as pool:
                for res in pool.imap_unordered(_replay_partition, parts):
                    collect(res)
        else:
            for p in parts:
                collect(_replay_partition(p))
    finally:
        _STATE.clear()
    if truth is not None:
        con = duckdb.connect()
        labels = con.sql(f"""SELECT DISTINCT * FROM read_parquet('{tmp / '_relevance_labels' / '*.parquet'}')
                             ORDER BY query, item_id""").to_arrow_table().cast(RELEVANCE_LABELS.schema)
        con.close()
        shutil.rmtree(tmp / "_relevance_labels")
        (tmp / "relevance_labels").mkdir()
        write_parquet(labels, tmp / "relevance_labels" / "part-00000.parquet")
    for table in COPIED_TABLES:
        for f in dataset.files(table):
            _link_or_copy(f, tmp / table / f.name)
    if (dataset.path / "world.json").is_file():
        shutil.copy2(dataset.path / "world.json", tmp / "world.json")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return ReplayResult(out, totals[0], totals[1], seconds, scored, samples)
