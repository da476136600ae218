"""Click models on sparse pages: the loader keeps every impression at its logged position, checks the
positions, the models that need full pages refuse sparse logs, and PBM (whose harvested examination
is a mean over the pages showing each rank) recovers its examination from a slot-level log."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from abplatform.errors import InputError
from abplatform.offline.clickmodels import (
    CLICK_MODELS,
    NO_ITEM,
    PBM,
    ClickLog,
    PurchaseModel,
    click_log_from_duckdb,
    make_click_model,
)
from abplatform.offline.clickmodels.pbm import initial_examination
from abplatform.offline.clickmodels.synthetic import random_truth, sample_click_log, slot_level_log

EXAMINATION = np.array([1.0, 0.6, 0.35])
N_ITEMS, N_PAGES = 80, 30_000


def connection(session_ids, queries, rows) -> duckdb.DuckDBPyConnection:
    """duckdb with ``sessions`` (session_id, query) and ``impressions`` from rows
    (session_id, position, item_id, clicked, purchased, orders, propensity)."""
    s, pos, item, clicked, purchased, orders, propensity = (list(c) for c in zip(*rows, strict=True))
    con = duckdb.connect()
    con.register("sessions", pa.table({"session_id": pa.array(session_ids, pa.int64()), "query": queries}))
    con.register("impressions", pa.table({
        "session_id": pa.array(s, pa.int64()), "position": pa.array(pos, pa.int16()),
        "item_id": pa.array(item, pa.int64()), "clicked": clicked, "purchased": purchased,
        "orders": pa.array(orders, pa.int64()), "propensity": pa.array(propensity, pa.float64()),
    }))
    return con


def logged_rows(log: ClickLog) -> list[tuple]:
    """The impression rows of a log's shown items, each at its column's position."""
    rows, cols = np.nonzero(log.shown)
    prop = log.propensities if log.propensities is not None else np.full(log.item_ids.shape, np.nan)
    assert log.session_ids is not None
    return [(int(log.session_ids[i]), int(r) + 1, int(log.item_ids[i, r]), bool(log.clicks[i, r]), False, 0,
             None if np.isnan(prop[i, r]) else float(prop[i, r])) for i, r in zip(rows, cols, strict=True)]


def pbm_slot_level_log(seed: int, slot_weights=None) -> ClickLog:
    """N_PAGES pages of 3 of N_ITEMS items in random order (one query), clicks from a PBM with
    examination EXAMINATION, each item's logging propensity at its rank 1 / N_ITEMS; one slot per page kept."""
    rng = np.random.default_rng(seed)
    truth = replace(random_truth("pbm", n_queries=1, n_candidates=N_ITEMS, k=3, rng=rng), examination=EXAMINATION)
    full = sample_click_log(truth, N_PAGES, 3, rng)
    full = replace(full, propensities=np.full(full.item_ids.shape, 1.0 / N_ITEMS))
    return slot_level_log(full, rng, slot_weights)


def sampling_tolerance(log: ClickLog) -> np.ndarray:
    """(k,) four standard errors of each rank's examination relative to rank 1's, by the delta method
    on the CTR ratio ``ctr_r / ctr_1`` (random pages: every item at every rank alike, so the ratio
    estimates ``gamma_r / gamma_1``): ``se_r = ratio * sqrt((1 - p_r) / (n_r p_r) + (1 - p_1) / (n_1 p_1))``."""
    n = log.shown.sum(axis=0)
    ctr = log.clicks.sum(axis=0) / n
    relative_var = (1 - ctr) / (n * ctr)
    return 4 * ctr / ctr[0] * np.sqrt(relative_var + relative_var[0])


# --- the loader keeps positions -------------------------------------------------------------------------

def test_one_slot_per_session_loads_at_its_position_not_at_rank_1():
    """The symptom: rows at positions 1-3, one per session, loaded as [10000, 0, 0] items per rank."""
    rng = np.random.default_rng(3)
    n = 10_000
    positions = np.arange(n) % 3 + 1
    rows = [(s, int(p), int(rng.integers(1000)), bool(rng.random() < 0.3), False, 0, None)
            for s, p in enumerate(positions)]
    con = connection(list(range(n)), ["shoes"] * n, rows)
    log, _ = click_log_from_duckdb(con, "sessions", "impressions", k=3)
    per_position = Counter(p for _, p, *_ in rows)
    assert log.shown.sum(axis=0).tolist() == [per_position[p] for p in (1, 2, 3)] == [3334, 3333, 3333]
    for s, p, item, clicked, *_ in rows:  # brute force: every row at (its session, its position)
        assert log.item_ids[s, p - 1] == item and log.clicks[s, p - 1] == clicked
    assert log.sparse and log.gapped.sum() == 6666  # the pages logging position 2 or 3 only


def test_full_pages_and_shorter_pages_are_not_sparse():
    log = ClickLog(np.array([0, 0]), np.array([[1, 2, 3], [4, NO_ITEM, NO_ITEM]]), np.zeros((2, 3), bool))
    assert not log.sparse and not log.gapped.any()
    gap = ClickLog(np.array([0]), np.array([[1, NO_ITEM, 2]]), np.zeros((1, 3), bool))
    assert gap.sparse


@pytest.mark.parametrize(("rows", "message"), [
    ([(1, 0, 5, False, False, 0, None)],
     "impressions.position: 1 row(s) like session_id 1 position 0; expected 1-based positions 1..3"),
    ([(1, 1, 5, False, False, 0, None), (2, 4, 6, False, False, 0, None)],
     ("impressions.position: 1 row(s) like session_id 2 position 4; expected positions 1..3, the click model's "
      "page size k (a larger k keeps longer pages)")),
    ([(1, 2, 5, False, False, 0, None), (1, 2, 6, False, False, 0, None)],
     ("impressions: 1 duplicate (session_id, position), e.g. session_id 1 position 2; expected one row per "
      "(session_id, position)")),
    ([(2, None, 5, False, False, 0, None)],
     "impressions.position: 1 null value(s), e.g. session_id 2; expected a position 1..3 on every row"),
])
def test_loader_rejects_positions_it_cannot_place(rows, message):
    con = connection([1, 2], ["a", "b"], rows)
    with pytest.raises(InputError) as err:
        click_log_from_duckdb(con, "sessions", "impressions", k=3)
    assert str(err.value) == message


def test_loader_reports_every_kind_of_bad_position_and_ignores_other_sessions():
    rows = [(1, 0, 5, False, False, 0, None), (1, 9, 6, False, False, 0, None), (7, 99, 6, False, False, 0, None)]
    with pytest.raises(InputError) as err:
        click_log_from_duckdb(connection([1], ["a"], rows), "sessions", "impressions", k=3)
    assert len(err.value.problems) == 2 and "position 0" in err.value.problems[0] and "position 9" in str(err.value)
    # session 7 is not among the sessions loaded (e.g. another arm's): its rows are neither loaded nor checked
    log, _ = click_log_from_duckdb(connection([1], ["a"], [(1, 2, 5, True, False, 0, None), rows[2]]),
                                   "sessions", "impressions", k=3)
    np.testing.assert_array_equal(log.item_ids, [[NO_ITEM, 5, NO_ITEM]])


# --- the models on sparse pages -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slot_log() -> ClickLog:
    return pbm_slot_level_log(seed=20240917)


@pytest.mark.parametrize("name", sorted(n for n, m in CLICK_MODELS.items() if not m.fits_sparse_pages))
def test_models_that_scan_from_the_top_refuse_a_sparse_log(name):
    log = ClickLog(np.array([0, 0]), np.array([[7, 8], [NO_ITEM, 9]]), np.array([[True, False], [False, True]]),
                   session_ids=np.array([11, 12]))
    with pytest.raises(InputError, match=rf"^{name} needs full pages from position 1 \(.*\): 1 of 2 pages have "
                                         r"gaps, e\.g\. session 12 logs positions \[2\] only; use pbm for "
                                         r"slot-level logs$"):
        make_click_model(name).fit(log)
    fitted = make_click_model(name).fit(log.subset(np.array([0])))
    for score in (fitted.log_likelihood, fitted.perplexity):
        with pytest.raises(InputError, match=f"^{name} needs full pages"):
            score(log)


def test_only_pbm_fits_sparse_pages():
    assert {n for n, m in CLICK_MODELS.items() if m.fits_sparse_pages} == {"pbm"}


def test_pbm_and_purchases_fit_a_slot_level_log(slot_log):
    model = PBM().fit(slot_log)
    assert np.isfinite(model.log_likelihood(slot_log)) and np.all(np.isfinite(model.perplexity(slot_log)))
    purchases = replace(slot_log, purchases=slot_log.clicks.copy(), orders=slot_log.clicks.astype(np.int64))
    assert np.isfinite(PurchaseModel().fit(purchases).log_likelihood(purchases))


@pytest.mark.parametrize("propensities", [False, True], ids=["maximum-likelihood", "harvested"])
def test_pbm_recovers_examination_from_a_slot_level_log_through_the_loader(slot_log, propensities):
    """30k pages x one random slot: ~10k impressions per rank; the tolerance is four delta-method
    standard errors of each rank's CTR ratio (about 0.06 at rank 2 and 0.045 at rank 3 here)."""
    log = slot_log if propensities else replace(slot_log, propensities=None)
    con = connection(log.session_ids.tolist(), ["shoes"] * len(log), logged_rows(log))
    loaded, _ = click_log_from_duckdb(con, "sessions", "impressions", k=3)
    np.testing.assert_array_equal(loaded.item_ids, log.item_ids)
    model = PBM().fit(loaded)
    assert initial_examination(loaded)[1] == propensities
    tolerance = sampling_tolerance(loaded)
    assert np.all(tolerance[1:] < 0.07)
    np.testing.assert_array_less(np.abs(model.examination_ - EXAMINATION), tolerance + 1e-12)


# --- harvested examination: a mean over the pages showing each rank ------------------------------------

def brute_force_harvest(log: ClickLog) -> np.ndarray:
    """Per rank: the mean of click / propensity over the pages showing the rank, by loops; scaled to max 1."""
    n, k = log.item_ids.shape
    prop = log.propensities
    assert prop is not None
    estimate = np.zeros(k)
    for r in range(k):
        pages = [i for i in range(n) if log.item_ids[i, r] != NO_ITEM]
        estimate[r] = sum(log.clicks[i, r] / prop[i, r] for i in pages) / len(pages)
    return np.clip(estimate / estimate.max(), 1e-3, 1.0)


def test_harvested_examination_matches_brute_force_on_partial_pages():
    """An epsilon-greedy ranker's propensities, positions kept with unequal weights."""
    rng = np.random.default_rng(5)
    truth = replace(random_truth("pbm", n_queries=30, n_candidates=12, k=3, rng=rng), examination=EXAMINATION)
    query_ids = rng.integers(0, 30, 3000)
    greedy = np.argsort(-truth.attraction, axis=1)[:, :3][query_ids]
    explore = rng.random(3000) < 0.3
    shown = np.where(explore[:, None], np.argsort(rng.random((3000, 12)), axis=1)[:, :3], greedy)
    item_ids = query_ids[:, None] * 12 + shown
    clicks = rng.random(item_ids.shape) < truth.pair_values(truth.attraction, query_ids, item_ids) * EXAMINATION
    full = ClickLog(query_ids, item_ids, clicks, session_ids=np.arange(3000),
                    propensities=0.3 / 12 + 0.7 * (shown == greedy))
    log = slot_level_log(full, rng, np.array([0.6, 0.3, 0.1]))
    gamma, harvested = initial_examination(log)
    assert harvested
    np.testing.assert_allclose(gamma, brute_force_harvest(log), rtol=1e-12)


def test_harvested_examination_is_unbiased_when_ranks_are_logged_unequally_often():
    """Slots logged 60/30/10%: the sum of click / propensity over the pages would scale with those
    shares (examination ~ [1, 0.3, 0.06]); the mean over the pages showing each rank does not."""
    log = pbm_slot_level_log(seed=8, slot_weights=np.array([0.6, 0.3, 0.1]))
    gamma, harvested = initial_examination(log)
    assert harvested and log.propensities is not None
    np.testing.assert_array_less(np.abs(gamma - EXAMINATION), sampling_tolerance(log) + 1e-12)
    summed = (log.clicks / np.where(log.shown, log.propensities, 1.0)).sum(axis=0)
    assert np.abs(summed / summed.max() - EXAMINATION).max() > 0.25
