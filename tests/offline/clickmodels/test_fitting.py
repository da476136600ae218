"""Cascade, DBN and UBM on logs of an epsilon-randomised ranker: debiased back-off, predicted lift, convergence."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from abplatform.offline.clickmodels import DBN, UBM, make_click_model
from abplatform.offline.clickmodels.pbm import initial_examination
from abplatform.offline.clickmodels.synthetic import random_truth, sample_responses

K = 8
KINDS = ("cascade", "dbn", "ubm")


def logged_pages(truth, n_sessions: int, epsilon: float, rng: np.random.Generator):
    """(query ids, item ids, propensities) of one fixed ranker (a noisy score of the true attraction)
    that shows K random candidates instead with probability epsilon."""
    n_queries, n_candidates = truth.attraction.shape
    query_ids = rng.integers(0, n_queries, n_sessions)
    score = truth.attraction + 0.05 * rng.normal(size=truth.attraction.shape)
    greedy = np.argsort(-score, axis=1)[:, :K][query_ids]
    random_pages = np.argsort(rng.random((n_sessions, n_candidates)), axis=1)[:, :K]
    explore = rng.random(n_sessions) < epsilon
    shown = np.where(explore[:, None], random_pages, greedy)
    propensity = epsilon / n_candidates + (1 - epsilon) * (shown == greedy)
    return query_ids, query_ids[:, None] * n_candidates + shown, propensity


@functools.cache
def fitted(kind: str):
    """(truth, logged pages with responses, the model of the truth's kind fitted with the truth's features)."""
    rng = np.random.default_rng(23)
    truth = random_truth(kind, n_queries=300, n_candidates=24, k=K, rng=rng)
    query_ids, item_ids, propensity = logged_pages(truth, 100_000, 0.1, rng)
    log = sample_responses(truth, query_ids, item_ids, rng, propensity)
    return truth, log, make_click_model(kind).fit(log, features=truth.features)


@pytest.fixture(params=KINDS)
def setup(request):
    return fitted(request.param)


def all_pairs(truth):
    n_queries, n_candidates = truth.attraction.shape
    queries = np.arange(n_queries)
    return queries, queries[:, None] * n_candidates + np.arange(n_candidates)


def test_rarely_shown_pairs_are_not_shrunk_towards_the_items_head_rate(setup):
    """The back-off is fitted on raw debiased rates, so pairs shown only by exploration are unbiased on average."""
    truth, log, model = setup
    greedy = np.zeros(truth.attraction.size, dtype=bool)
    greedy[np.unique(log.item_ids[log.propensities > 0.5])] = True
    alpha = model.attraction(*all_pairs(truth)).ravel()
    rare = ~greedy
    assert abs(alpha[rare].mean() - truth.attraction.ravel()[rare].mean()) < 0.15 * truth.attraction.ravel()[rare].mean()


def test_predicted_click_lift_of_a_new_ranking(setup):
    """Pages of the K most attractive candidates vs pages of the next K (mostly pairs the logging
    ranker shows only when exploring): the fitted model's click ratio against the truth's (simulated)."""
    truth, _, model = setup
    queries, _ = all_pairs(truth)
    n_candidates = truth.attraction.shape[1]
    best = queries[:, None] * n_candidates + np.argsort(-truth.attraction, axis=1)[:, :K]
    logged = queries[:, None] * n_candidates + np.argsort(-truth.attraction, axis=1)[:, K : 2 * K]
    reps = 300
    rng = np.random.default_rng(1)
    true_clicks = [sample_responses(truth, np.repeat(queries, reps), np.repeat(p, reps, axis=0), rng).clicks.mean()
                   for p in (best, logged)]
    predicted = [model.click_probabilities(queries, p).mean() for p in (best, logged)]
    assert predicted[0] / predicted[1] == pytest.approx(true_clicks[0] / true_clicks[1], rel=0.02)


def test_dbn_converges_to_a_maximum_of_the_likelihood_in_the_continuation():
    truth, log, model = fitted("dbn")
    assert isinstance(model, DBN)
    assert model.n_iter_ < 2 * model.max_iter  # both EM phases (item, then feature back-off) stopped by tol
    at_fit = model.log_likelihood(log)
    gamma = model.continuation_
    for moved in (gamma - 0.005, gamma + 0.005):
        model.continuation_ = moved
        assert model.log_likelihood(log) < at_fit
    model.continuation_ = gamma
    assert model.continuation_ == pytest.approx(truth.continuation, abs=0.02)


def test_ubm_holds_each_ranks_mean_examination_at_the_harvested_value():
    truth, log, model = fitted("ubm")
    assert isinstance(model, UBM)
    harvested, was_harvested = initial_examination(log)
    assert was_harvested
    assert model.n_iter_ < model.max_iter
    n, k = log.clicks.shape
    last_above = np.full((n, k), -1)
    last_above[:, 1:] = np.maximum.accumulate(np.where(log.clicks, np.arange(k), -1)[:, :-1], axis=1)
    examination = model.examination_[np.arange(k), np.arange(k) - last_above]
    np.testing.assert_allclose(examination.mean(axis=0), harvested, rtol=1e-9)
    # the profile over distances is the truth's, up to the scale of the top rank
    common = np.arange(1, 4)
    np.testing.assert_allclose(model.examination_[K - 1, common], truth.examination[K - 1, common], atol=0.06)
