"""Serving cost: the CPU time each arm's ranker spends per query, measured so that machine load cancels.

What the latency guardrail gates on (:func:`abplatform.stats.latency.latency_guardrail` turns these
times into a ratio with a CI and a verdict). The replay's own wall-clock timing per batch moves with
whatever else the machine runs — the same demo measured V2 at +37% on one machine and +25% on
another — so the guardrail is measured here instead:

- **the same queries for both arms**: ``batches`` disjoint batches of ``batch_size`` sessions (with
  their logged candidates) drawn without replacement, seeded, from the sessions the replay scores;
- **CPU time, not wall clock**: :func:`time.process_time` around ``score`` + top-k (what the replay
  times), in this process, with the garbage collector off (as :mod:`timeit` does); time spent
  descheduled while other processes run is not counted;
- **adjacent pairs**: each repetition scores one batch with both rankers back to back, alternating
  the order (control-treatment, then treatment-control: ABBA blocks), so a slow spell or a cache
  warmed by the first of a pair weighs on both arms alike and on neither more often;
- **after a warm-up**: every batch is scored ``warmup`` times by both rankers before timing, so the
  rankers' lookup tables hold the timed queries — the measurement is the steady-state cost of
  serving them. The one-off cost of a query's first sight (V2 works out the intent, V1 the BM25
  term ids of a query the pre-period logs never had) is not in it: any serving cache amortises it.

The cost per query depends on the batch size (per-call overhead is spread over the batch), so
``batch_size`` is a setting (``decision.latency_batch_size``): set it to how the ranker is served.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from abplatform.dataset import Dataset
from abplatform.rankers import CandidateBatch, Catalog, PrecomputedRanker, Ranker, candidate_matrix, rank
from abplatform.replay.run import partitions

DEFAULT_BATCHES = 16  # distinct query batches, cycled through by the repetitions
SAMPLE_KEY = 0x5E41C0  # second word of the sampling seed: the draw differs from other uses of the same seed
TIMER_NAME = "process_time"


@dataclass(frozen=True)
class ServingCostTimes:
    """CPU seconds per timed batch, one pair per repetition (``control_seconds[i]`` and
    ``treatment_seconds[i]`` scored the same batch, back to back)."""

    control_seconds: np.ndarray
    treatment_seconds: np.ndarray
    batch_size: int  # queries (sessions) per timed batch
    batches: int  # distinct batches cycled through
    timer: str = TIMER_NAME

    @property
    def repetitions(self) -> int:
        return len(self.control_seconds)


def unmeasurable(rankers: dict[str, Ranker]) -> str | None:
    """Why these rankers' serving cost cannot be measured, or None: precomputed rankings are looked up,
    not computed, so their scoring time says nothing about the model that produced them."""
    for arm, ranker in rankers.items():
        if isinstance(ranker, PrecomputedRanker):
            return f"arm {arm} scores precomputed rankings ({ranker.path.name}): no serving cost to measure"
    return None


def query_batches(dataset: Dataset, catalog: Catalog, *, batches: int = DEFAULT_BATCHES, batch_size: int = 256,
                  seed: int = 1) -> list[CandidateBatch]:
    """Up to ``batches`` disjoint batches of ``batch_size`` sessions of ``dataset``, drawn without
    replacement with a generator seeded by ``seed`` (smaller batches when the dataset has fewer
    sessions; none when it has none). Each batch carries its distinct queries, as the replay's do,
    so encoding them is not timed."""
    parts = partitions(dataset)
    tables = [pq.read_table(s, columns=["session_id", "query"], use_threads=False) for _, s, _ in parts]
    sessions = pa.concat_tables(tables) if tables else pa.table({"session_id": [], "query": []})
    n = len(sessions)
    size = min(batch_size, max(1, n // batches)) if n else 0
    count = min(batches, n // size) if size else 0
    if count == 0:
        return []
    rng = np.random.default_rng([seed, SAMPLE_KEY])
    chosen = rng.choice(n, count * size, replace=False)  # in draw order: batch i is chosen[i*size:(i+1)*size]
    ids = sessions["session_id"].to_numpy()[chosen]
    queries = np.asarray(sessions["query"].to_pylist(), dtype=object)[chosen]
    order = np.argsort(ids, kind="stable")
    wanted = pa.array(np.unique(ids))
    cands = [pq.read_table(c, columns=["session_id", "item_id"], filters=[("session_id", "in", wanted)],
                           use_threads=False) for _, _, c in parts]
    cand = pa.concat_tables(cands)
    rows_sorted = catalog.rows(candidate_matrix(ids[order], cand["session_id"].to_numpy(),
                                                cand["item_id"].to_numpy()))
    rows = np.empty_like(rows_sorted)
    rows[order] = rows_sorted
    out = []
    for i in range(count):
        sl = slice(i * size, (i + 1) * size)
        qs = queries[sl].tolist()
        encoded = pa.array(qs, pa.string()).dictionary_encode()
        distinct = (encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        out.append(CandidateBatch(ids[sl], qs, np.ascontiguousarray(rows[sl]), distinct))
    return out


def measure(control: Ranker, treatment: Ranker, batches: Sequence[CandidateBatch], repetitions: int, *,
            page_size: int = 10, warmup: int = 2,
            timer: Callable[[], float] = time.process_time) -> ServingCostTimes:
    """CPU seconds of ``score`` + top-``page_size`` for each ranker on the same batch, ``repetitions``
    adjacent pairs cycling through ``batches``, ABBA order, after ``warmup`` untimed passes."""
    if not batches:
        raise ValueError("measure: no query batches")

    def once(ranker: Ranker, batch: CandidateBatch) -> float:
        t0 = timer()
        rank(ranker.score(batch), batch.candidate_rows, page_size)
        return timer() - t0

    for _ in range(warmup):
        for b in batches:
            once(control, b)
            once(treatment, b)
    c, t = np.empty(repetitions), np.empty(repetitions)
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(repetitions):
            n = len(batches)
            b = batches[r % n]
            # with an even number of batches, also flip the order every cycle: each batch is timed in both orders
            if (r + (r // n if n % 2 == 0 else 0)) % 2 == 0:
                c[r] = once(control, b)
                t[r] = once(treatment, b)
            else:
                t[r] = once(treatment, b)
                c[r] = once(control, b)
    finally:
        if enabled:
            gc.enable()
    return ServingCostTimes(c, t, batch_size=len(batches[0].session_ids), batches=len(batches))


def measure_serving_cost(dataset: Dataset, catalog: Catalog, control: Ranker, treatment: Ranker, *,
                         repetitions: int, batch_size: int, seed: int, page_size: int = 10,
                         batches: int = DEFAULT_BATCHES, warmup: int = 2) -> ServingCostTimes | None:
    """Draw the query batches of ``dataset`` and time both fitted rankers on them; None when the
    dataset has no session to score."""
    drawn = query_batches(dataset, catalog, batches=batches, batch_size=batch_size, seed=seed)
    if not drawn:
        return None
    return measure(control, treatment, drawn, repetitions, page_size=page_size, warmup=warmup)
