"""V2's query understanding is worked out offline and only looked up while serving: the teacher's intents
of the pre-period queries are the lookup table, the student (distilled from them at fit) answers new
queries, and the score is the documented formula of the served intent."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from abplatform.contract import ATTRIBUTE_NAMES
from abplatform.dataset import Dataset
from abplatform.rankers import CandidateBatch, Catalog, V2Ranker, candidate_matrix
from abplatform.rankers.text import query_constraints_many
from abplatform.rankers.v1 import logged_queries
from abplatform.rankers.v2 import WordModel, distil, word_rows


@pytest.fixture(scope="module")
def catalog(small_world) -> Catalog:
    return Catalog.from_dataset(Dataset(small_world))


@pytest.fixture(scope="module")
def seen(small_world) -> list[str]:
    return sorted(logged_queries(Dataset(small_world)))


def experiment_batch(world: Path, catalog: Catalog, n: int = 1500) -> CandidateBatch:
    """The first ``n`` experiment-period sessions with their logged candidates."""
    sessions = pq.read_table(world / "sessions", columns=["session_id", "query"]).sort_by("session_id").slice(0, n)
    cands = pq.read_table(world / "candidates", columns=["session_id", "item_id"])
    ids = sessions["session_id"].to_numpy()
    rows = catalog.rows(candidate_matrix(ids, cands["session_id"].to_numpy(), cands["item_id"].to_numpy()))
    return CandidateBatch(ids, sessions["query"].to_pylist(), rows)


def documented_scores(v2: V2Ranker, catalog: Catalog, batch: CandidateBatch) -> np.ndarray:
    """The module docstring's formula, session by session, from the intents as served."""
    out = np.empty(batch.candidate_rows.shape)
    for i, query in enumerate(batch.queries):
        probs, attrs, cap = v2.intent(query)
        rows = np.maximum(batch.candidate_rows[i], 0)
        match = sum((np.where(catalog.attribute_codes[name][rows] == attrs[a], 1, -1)
                     for a, name in enumerate(ATTRIBUTE_NAMES) if attrs[a] >= 0), np.zeros(len(rows)))
        relevance = 3 * probs[catalog.category[rows]] + 0.8 * match - 2 * (catalog.price[rows] > cap)
        lexical = v2.w_lex * catalog.bm25.score([query], batch.candidate_rows[i:i + 1])[0] if v2.w_lex else 0.0
        out[i] = (lexical + v2.w_rel * relevance + v2.w_click * v2.click_prior[rows]
                  + v2.w_purchase * v2.purchase_prior[rows])
    return out


def test_seen_queries_are_served_the_teachers_intents_exactly(small_world, catalog, seen):
    v2 = V2Ranker().fit(Dataset(small_world), catalog)
    probs, attrs, caps = v2.teacher_intents(seen)
    for i, query in enumerate(seen):
        p, a, cap = v2.intent(query)
        assert np.array_equal(p, probs[i]) and np.array_equal(a, attrs[i]) and cap == caps[i], query


def test_new_queries_are_answered_by_the_student_and_serving_never_runs_the_teacher(small_world, catalog, seen,
                                                                                     monkeypatch):
    v2 = V2Ranker().fit(Dataset(small_world), catalog)

    def teacher(queries):
        raise AssertionError(f"the teacher ran while serving ({len(queries)} queries)")

    monkeypatch.setattr(v2, "teacher_intents", teacher)
    batch = experiment_batch(small_world, catalog)
    new = sorted(set(batch.queries) - set(seen))
    assert len(new) > 100  # the experiment period brings many queries the pre-period never had
    v2.score(batch)
    expected = v2.student.predict(word_rows(new, v2.vocabulary))
    attrs, caps = query_constraints_many(new, v2.attribute_tokens)
    for i, query in enumerate(new):
        p, a, cap = v2.intent(query)
        assert np.array_equal(p, expected[i]) and np.array_equal(a, attrs[i]) and cap == caps[i], query
    # worked out at first sight only: then they are looked up like the seen ones
    rows = len(v2._intents)
    monkeypatch.setattr(WordModel, "predict", teacher)
    v2.score(batch)
    assert len(v2._intents) == rows


@pytest.mark.parametrize("params", [{}, {"w_rel": 0.5, "w_click": 0.3, "w_purchase": 0.9, "w_lex": 0.7}])
def test_scores_are_the_documented_formula_of_the_served_intent(small_world, catalog, params):
    v2 = V2Ranker(**params).fit(Dataset(small_world), catalog)
    batch = experiment_batch(small_world, catalog)
    got, expected = v2.score(batch), documented_scores(v2, catalog, batch)
    real = batch.candidate_rows >= 0
    np.testing.assert_allclose(got[real], expected[real], rtol=1e-12, atol=1e-12)


def without_queries(world: Path, hidden: list[str], out: Path) -> Dataset:
    """The world's catalog and pre-period logs without the sessions of ``hidden`` queries."""
    out.mkdir()
    os.symlink(world / "items", out / "items")
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE hidden AS SELECT unnest(?) AS query", [hidden])
        con.execute(f"COPY (SELECT * FROM read_parquet('{world}/pre_sessions/*.parquet') "
                    f"WHERE query NOT IN (SELECT query FROM hidden)) TO '{out}/pre_sessions.parquet'")
        con.execute(f"COPY (SELECT i.* FROM read_parquet('{world}/pre_impressions/*.parquet') i "
                    f"SEMI JOIN read_parquet('{out}/pre_sessions.parquet') USING (session_id)) "
                    f"TO '{out}/pre_impressions.parquet'")
    finally:
        con.close()
    return Dataset(out)


def test_the_student_agrees_with_the_teacher_on_queries_it_never_saw(small_world, catalog, seen, tmp_path):
    """Every fifth pre-period query is taken out of the logs a second V2 is fitted on (their clicks too, so
    neither its teacher's word lifts nor its student have seen them): to it they are new, and its student
    answers them. Compared with what V2 fitted on all the logs serves for them (the teacher's intent),
    measured on this world: the top category agrees for 292 of 305 (95.7%; mean total variation 0.069);
    the teacher's own word model, what V2 used to run at serving time for a new query, agrees exactly as
    often (95.7%, TV 0.068); always naming the commonest category, 7.2%. On an earlier demo world
    (the classic world at 50,000 users, 4,330 held out) both agree for 99.88% (TV 0.011). The misses are
    queries only their own clicks explained to the teacher (there, "for my morning jog": sneakers from its
    231 clicks, a mug from its words). Thresholds: 0.94, the measured 0.957 less ~5 queries of slack for
    floating-point differences between machines, and no worse than the teacher's word model by more than
    1 point."""
    hidden = seen[::5]
    full = V2Ranker().fit(Dataset(small_world), catalog)
    part = V2Ranker().fit(without_queries(small_world, hidden, tmp_path / "logs"), catalog)
    assert not set(hidden) & set(part._intents)  # new to it: the student answers them
    teacher = np.array([full.intent(q)[0] for q in hidden])
    student = np.array([part.intent(q)[0] for q in hidden])
    word_model = part.teacher_intents(hidden)[0]  # no clicks for them: the teacher's word model alone

    def agreement(probs: np.ndarray) -> float:
        return float(np.mean(probs.argmax(axis=1) == teacher.argmax(axis=1)))

    assert agreement(student) >= 0.94
    assert agreement(student) >= agreement(word_model) - 0.01
    assert agreement(np.tile(part.category_prior, (len(hidden), 1))) < 0.1
    assert 0.5 * np.abs(student - teacher).sum(axis=1).mean() < 0.1
    for q in hidden:  # attribute values and price caps are read from the words, by the same rules
        assert np.array_equal(part.intent(q)[1], full.intent(q)[1]) and part.intent(q)[2] == full.intent(q)[2]


def test_the_student_is_deterministic(small_world, catalog, seen, tmp_path):
    """The same logs give the same student and intents, bit for bit, whatever order their rows come in."""
    reversed_logs = tmp_path / "reversed"
    reversed_logs.mkdir()
    os.symlink(small_world / "items", reversed_logs / "items")
    for table in ("pre_sessions", "pre_impressions"):
        t = pq.read_table(small_world / table)
        pq.write_table(t.take(np.arange(len(t))[::-1]), reversed_logs / f"{table}.parquet")
    fits = [V2Ranker().fit(Dataset(small_world), catalog), V2Ranker().fit(Dataset(small_world), catalog),
            V2Ranker().fit(Dataset(reversed_logs), catalog)]
    new = sorted(set(experiment_batch(small_world, catalog).queries) - set(seen))
    first = fits[0]
    for other in fits[1:]:
        assert np.array_equal(other.student.weights, first.student.weights)
        assert np.array_equal(other.student.bias, first.student.bias)
        for q in seen[::7] + new:
            assert all(np.array_equal(x, y) for x, y in zip(other.intent(q), first.intent(q), strict=True)), q


def test_distil_recovers_a_word_model_from_its_outputs():
    """Distributions made by a known word model are learned back from a zero start (the gradient is right)."""
    rng = np.random.default_rng(3)
    truth = WordModel(rng.normal(0, 2, (12, 5)), rng.normal(0, 1, 5))
    rows = np.where(rng.random((400, 3)) < 0.7, rng.integers(0, 12, (400, 3)), -1)
    rows = np.array([list(dict.fromkeys(r[r >= 0])) + [-1] * (3 - len(set(r[r >= 0]))) for r in rows])
    targets = truth.predict(rows)
    start = WordModel(np.zeros((12, 5)), np.zeros(5))
    learned = distil(rows, targets, start, l2=1e-6)
    assert 0.5 * np.abs(learned.predict(rows) - targets).sum(axis=1).max() < 0.01
    assert distil(rows[:0], targets[:0], start, l2=1e-3) is start
