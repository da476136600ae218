"""Click-log loader, back-off for rare and unseen pairs, purchase and order models."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from abplatform.contract import IMPRESSIONS, SESSIONS
from abplatform.offline.clickmodels import NO_ITEM, PBM, Cascade, ClickLog, PurchaseModel, click_log_from_duckdb
from abplatform.offline.clickmodels.synthetic import random_truth, sample_click_log


# --- loader ---------------------------------------------------------------------------------------------

def event_log_connection():
    sessions = pa.table(
        {"session_id": [10, 11, 12], "unit_id": ["u1", "u2", "u1"],
         "ts": pa.array([0, 1, 2], pa.int64()).cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
         "query": ["red shoes", "blue hat", "red shoes"], "query_segment": ["head"] * 3,
         "query_complexity": ["simple"] * 3, "is_new_user": [False] * 3, "arm": ["A", "B", "A"]},
        schema=SESSIONS.schema,
    )
    rows = [  # session, position, item, clicked, purchased, orders
        (10, 1, 100, True, True, 2), (10, 2, 101, False, False, 0), (10, 3, 102, True, False, 0),
        (11, 2, 200, False, False, 0), (11, 3, 201, True, False, 0),  # position 1 not logged
        (12, 1, 101, False, False, 0), (12, 2, 100, False, False, 0), (12, 3, 103, False, False, 0),
    ]
    s, pos, item, clicked, purchased, orders = zip(*rows)
    impressions = pa.table(
        {"session_id": s, "position": pos, "item_id": item, "clicked": clicked, "purchased": purchased,
         "orders": orders, "revenue": [0.0] * len(rows), "propensity": [None] * len(rows), "team": [None] * len(rows)},
        schema=IMPRESSIONS.schema,
    )
    con = duckdb.connect()
    con.register("sessions", sessions)
    con.register("impressions", impressions)
    return con


def test_click_log_from_duckdb_pivots_pages():
    con = event_log_connection()
    log, vocab = click_log_from_duckdb(con, "sessions", "impressions", k=3)
    assert vocab == {"blue hat": 0, "red shoes": 1}
    np.testing.assert_array_equal(log.session_ids, [10, 11, 12])
    np.testing.assert_array_equal(log.query_ids, [1, 0, 1])
    np.testing.assert_array_equal(log.item_ids, [[100, 101, 102], [NO_ITEM, 200, 201], [101, 100, 103]])
    np.testing.assert_array_equal(log.clicks, [[1, 0, 1], [0, 0, 1], [0, 0, 0]])
    assert log.sparse  # session 11 has a gap above its items (test_clickmodel_positions.py)
    np.testing.assert_array_equal(log.purchases, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(log.orders, [[2, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert log.rankings[1] is log.item_ids


def test_click_log_from_duckdb_extends_a_given_vocabulary():
    con = event_log_connection()
    log, vocab = click_log_from_duckdb(con, "(SELECT * FROM sessions WHERE arm = 'A')", "impressions",
                                       k=3, query_vocab={"red shoes": 7, "green": 3})
    assert vocab == {"red shoes": 7, "green": 3}
    np.testing.assert_array_equal(log.query_ids, [7, 7])
    log, vocab = click_log_from_duckdb(con, "sessions", "impressions", k=3, query_vocab={"red shoes": 7})
    assert vocab == {"red shoes": 7, "blue hat": 8}


# --- back-off -------------------------------------------------------------------------------------------

def test_pair_with_many_observations_keeps_its_empirical_rate_and_a_rare_pair_is_shrunk():
    rng = np.random.default_rng(1)
    n = 20_000
    query_ids = np.zeros(n + 4, dtype=np.int64)
    query_ids[n:] = 1
    item_ids = np.full((n + 4, 1), 5)
    clicks = np.zeros((n + 4, 1), bool)
    clicks[:n, 0] = rng.random(n) < 0.3
    clicks[n:, 0] = [True, True, True, False]
    model = Cascade(prior_strength=5.0).fit(ClickLog(query_ids, item_ids, clicks))
    empirical = clicks[:n, 0].mean()
    many, rare = model.attraction(np.array([0, 1]), np.array([[5], [5]]))[:, 0]
    assert many == pytest.approx(empirical, abs=2e-4)
    item_rate = (clicks.sum() + 5 * clicks.mean()) / (n + 4 + 5)  # the item over all queries, shrunk to global
    assert rare == pytest.approx((3 + 5 * item_rate) / (4 + 5))
    # unseen pairs: a seen item for a new query -> the item's rate; an unseen item -> the global rate
    unseen_pair, unseen_item = model.attraction(np.array([9, 9]), np.array([[5], [6]]))[:, 0]
    assert unseen_pair == pytest.approx(item_rate)
    assert unseen_item == pytest.approx(clicks.mean())


def test_unseen_pair_gets_the_feature_model_probability():
    rng = np.random.default_rng(2)
    truth = random_truth("pbm", n_queries=60, n_candidates=15, k=8, rng=rng)
    log = sample_click_log(truth, 40_000, 8, rng)
    train = log.subset(log.query_ids < 50)
    model = PBM().fit(train, features=truth.features)
    query_ids = np.arange(50, 60)
    item_ids = query_ids[:, None] * truth.n_candidates + np.arange(truth.n_candidates)
    predicted = model.attraction(query_ids, item_ids)
    design = np.column_stack([np.ones(item_ids.size), truth.features(query_ids, item_ids).reshape(item_ids.size, -1)])
    np.testing.assert_allclose(predicted.ravel(), model.attraction_.feature_model_.predict(design))
    assert np.abs(predicted - truth.attraction[50:]).mean() < 0.03
    seen = model.attraction(np.arange(50), np.arange(50)[:, None] * truth.n_candidates + np.arange(truth.n_candidates))
    assert np.abs(seen - truth.attraction[:50]).mean() < 0.04


# --- purchases and orders -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def purchase_setup():
    rng = np.random.default_rng(4)
    truth = random_truth("pbm", n_queries=10, n_candidates=10, k=10, rng=rng)
    truth = type(truth)(**{**truth.__dict__, "attraction": np.full_like(truth.attraction, 0.9)})
    log = sample_click_log(truth, 60_000, 10, rng)
    return truth, log, PurchaseModel(prior_strength=1.0).fit(log)


def test_purchase_and_order_models_recover_parameters(purchase_setup):
    truth, _, model = purchase_setup
    queries = np.arange(10)
    items = queries[:, None] * 10 + np.arange(10)
    assert np.abs(model.purchase_probabilities(queries, items) - truth.purchase).mean() < 0.03
    assert np.abs(model.expected_orders(queries, items) - 1 - truth.extra_orders).mean() < 0.1


def test_purchase_and_order_sampling(purchase_setup):
    _, log, model = purchase_setup
    rows = slice(0, 20_000)
    query_ids, item_ids, clicks = log.query_ids[rows], log.item_ids[rows], log.clicks[rows]
    u = np.random.default_rng(9).random(item_ids.shape)
    purchases = model.sample_purchases(query_ids, item_ids, clicks, u)
    np.testing.assert_array_equal(purchases, model.sample_purchases(query_ids, item_ids, clicks, u))
    assert not np.any(purchases & ~clicks)
    beta = model.purchase_probabilities(query_ids, item_ids)
    assert purchases.sum() == pytest.approx(beta[clicks].sum(), rel=0.05)
    orders = model.sample_orders(query_ids, item_ids, purchases, np.random.default_rng(3))
    assert np.all(orders[purchases] >= 1) and np.all(orders[~purchases] == 0)
    mean_orders = model.expected_orders(query_ids, item_ids)[purchases].mean()
    assert orders[purchases].mean() == pytest.approx(mean_orders, rel=0.05)
    assert np.isfinite(model.log_likelihood(log))
