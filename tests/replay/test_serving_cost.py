"""The serving-cost measurement: seeded query batches (the same for both arms, the same in every run),
adjacent pairs in ABBA order after a warm-up, and nothing it does changes the replay. Timings are
replaced by a fake clock: speed is measured in benchmarks/latency_stability.py, not asserted here."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from abplatform.dataset import Dataset
from abplatform.rankers import CandidateBatch, Catalog, PrecomputedRanker, V1Ranker, candidate_matrix
from abplatform.replay import replay
from abplatform.replay.serving_cost import measure, measure_serving_cost, query_batches, unmeasurable
from tests.conftest import replay_spec


@pytest.fixture(scope="module")
def catalog(small_world) -> Catalog:
    return Catalog.from_dataset(Dataset(small_world))


def test_batches_are_seeded_disjoint_and_carry_the_logged_candidates(small_world, catalog):
    ds = Dataset(small_world)
    a = query_batches(ds, catalog, batches=6, batch_size=50, seed=4)
    b = query_batches(ds, catalog, batches=6, batch_size=50, seed=4)
    other = query_batches(ds, catalog, batches=6, batch_size=50, seed=5)
    assert len(a) == 6 and all(len(x.session_ids) == 50 for x in a)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.session_ids, y.session_ids) and x.queries == y.queries
        assert np.array_equal(x.candidate_rows, y.candidate_rows)
        assert x.distinct is not None and y.distinct is not None
        assert x.distinct[0] == y.distinct[0] and np.array_equal(x.distinct[1], y.distinct[1])
    assert not np.array_equal(np.concatenate([x.session_ids for x in a]),
                              np.concatenate([x.session_ids for x in other]))
    ids = np.concatenate([x.session_ids for x in a])
    assert len(np.unique(ids)) == len(ids)  # drawn without replacement
    # each session's query and candidates as the logs have them (what the replay would score)
    sessions = pq.read_table(small_world / "sessions").to_pandas().set_index("session_id")
    cands = pq.read_table(small_world / "candidates", columns=["session_id", "item_id"])
    order = np.argsort(ids)
    expected = catalog.rows(candidate_matrix(ids[order], cands["session_id"].to_numpy(), cands["item_id"].to_numpy()))
    got = np.concatenate([x.candidate_rows for x in a])[order]
    assert np.array_equal(got, expected)
    assert [q for x in a for q in x.queries] == sessions.loc[ids, "query"].tolist()
    for x in a:  # the distinct queries, encoded before timing, agree with the batch's queries
        assert x.distinct is not None
        distinct, index = x.distinct
        assert [distinct[i] for i in index] == x.queries


def test_fewer_sessions_than_asked(small_world, catalog):
    n = pq.read_metadata(next((small_world / "sessions").glob("*.parquet"))).num_rows
    n_all = sum(pq.read_metadata(f).num_rows for f in (small_world / "sessions").glob("*.parquet"))
    assert n <= n_all
    got = query_batches(Dataset(small_world), catalog, batches=4, batch_size=10 * n_all, seed=1)
    assert len(got) == 4 and all(len(x.session_ids) == n_all // 4 for x in got)


class Recorder:
    """A ranker that records the order it is called in and 'costs' a fixed CPU time per call."""

    def __init__(self, name: str, cost: float, log: list[tuple[str, int]], clock: list[float]):
        self.name, self.cost, self.log, self.clock = name, cost, log, clock

    def fit(self, dataset, catalog):
        return self

    def score(self, batch: CandidateBatch) -> np.ndarray:
        self.log.append((self.name, int(batch.session_ids[0])))
        self.clock[0] += self.cost * len(batch.session_ids)
        return np.zeros(batch.candidate_rows.shape)


def fake_batches(k: int, size: int = 4) -> list[CandidateBatch]:
    return [CandidateBatch(np.arange(i * size, (i + 1) * size), ["q"] * size, np.zeros((size, 3), np.int64))
            for i in range(k)]


def test_pairs_score_the_same_batch_back_to_back_in_abba_order_after_a_warm_up():
    log: list[tuple[str, int]] = []
    clock = [0.0]
    a, b = Recorder("A", 1e-6, log, clock), Recorder("B", 1.5e-6, log, clock)
    batches = fake_batches(3)
    times = measure(a, b, batches, repetitions=8, warmup=2, timer=lambda: clock[0])
    warm, timed = log[:2 * 2 * 3], log[2 * 2 * 3:]
    assert warm == [(r, 4 * i) for _ in range(2) for i in range(3) for r in ("A", "B")]
    assert [r for r, _ in timed] == list("ABBAABBAABBAABBA")
    assert [timed[2 * r][1] for r in range(8)] == [4 * (r % 3) for r in range(8)]  # repetition r: batch r mod 3
    assert all(timed[2 * r][1] == timed[2 * r + 1][1] for r in range(8))  # both of a pair: the same batch
    # with an even number of batches each batch is still timed in both orders
    log.clear()
    measure(a, b, fake_batches(4), repetitions=16, warmup=0, timer=lambda: clock[0])
    first = {(batch, r) for (r, batch) in log[0::2]}
    assert {batch for batch, r in first if r == "A"} == {batch for batch, r in first if r == "B"} == {0, 4, 8, 12}
    # the fake clock advanced by each ranker's cost, so the times are exact
    assert times.repetitions == 8 and times.batch_size == 4 and times.batches == 3
    assert np.allclose(times.control_seconds, 4e-6) and np.allclose(times.treatment_seconds, 6e-6)


def test_measure_needs_batches():
    with pytest.raises(ValueError, match="no query batches"):
        measure(V1Ranker(), V1Ranker(), [], repetitions=4)


def test_precomputed_rankings_have_no_serving_cost_to_measure(tmp_path):
    assert unmeasurable({"control": V1Ranker(), "treatment": V1Ranker()}) is None
    why = unmeasurable({"control": V1Ranker(), "treatment": PrecomputedRanker(tmp_path / "scores.parquet")})
    assert why == "arm treatment scores precomputed rankings (scores.parquet): no serving cost to measure"


def test_measuring_before_the_replay_does_not_change_it(small_world, small_replay, tmp_path):
    """The pipeline times the fitted rankers before replaying with them: the rankers' lookup tables
    then hold the timed queries already, and the event log must not notice."""
    spec = replay_spec(small_world)
    control, treatment = (a.ranker for a in spec.arms)
    ds = Dataset(small_world)
    times = measure_serving_cost(ds, Catalog.from_dataset(ds), control, treatment, repetitions=20, batch_size=64,
                                 seed=1)
    assert times is not None and times.repetitions == 20 and times.batch_size == 64
    assert (times.control_seconds >= 0).all() and (times.treatment_seconds >= 0).all()
    other = replay(ds, spec, tmp_path / "r").path
    for table, keys in (("sessions", ["session_id"]), ("impressions", ["session_id", "position"])):
        order = [(k, "ascending") for k in keys]
        assert pq.read_table(small_replay / table).sort_by(order).equals(pq.read_table(other / table).sort_by(order))


@pytest.mark.slow
def test_the_offline_run_reports_the_serving_cost(small_run):
    doc = json.loads((small_run / "report.json").read_text())
    g = doc["latency_guardrail"]
    assert g["status"] in ("ok", "inconclusive", "breached") and g["margin"] == 5.0
    assert g["repetitions"] == 400 and g["batch_size"] == 256 and g["timer"] == "process_time"
    assert g["ratio_ci_low"] <= g["ratio"] <= g["ratio_ci_high"] and set(g["cpu_ms_per_query"]) == {"control",
                                                                                                   "treatment"}
    assert next(c for c in doc["decision"]["checks"] if c["name"] == "latency")["kind"] == "latency"
    assert "## Serving cost (latency guardrail)" in (small_run / "report.md").read_text()


@pytest.mark.slow
def test_without_a_margin_the_check_says_so(small_world, tmp_path):
    from abplatform.pipeline import run_offline
    from tests.conftest import SMALL_RUN_YAML, WORLD_YAML, world_cache

    cache = world_cache(small_world, tmp_path / "cache")
    text = SMALL_RUN_YAML.format(world=WORLD_YAML, cache=cache).replace("latency_margin: 5.0", "latency_margin: null")
    (tmp_path / "x.yaml").write_text(text.replace("name: small", "name: nomargin"))
    run_dir, rep = run_offline(tmp_path / "x.yaml", tmp_path / "results")
    assert rep.latency_guardrail is not None and rep.latency_guardrail.status == "not_evaluated"
    assert rep.latency_guardrail.reason == "latency_margin is null"
    (check,) = [c for c in rep.decision.checks if c.name == "latency"]
    assert (check.passed, check.blocking) == (False, False)
    assert 'name="latency"' in (run_dir / "junit.xml").read_text()
