"""PBM on logs of an epsilon-randomised ranker: harvested examination, calibration, unbiased back-off."""

from __future__ import annotations

import numpy as np
import pytest

from abplatform.offline.clickmodels import PBM, ClickLog
from abplatform.offline.clickmodels.pbm import initial_examination
from abplatform.offline.clickmodels.synthetic import random_truth

K = 8


def epsilon_greedy_log(truth, n_sessions: int, epsilon: float, rng: np.random.Generator) -> ClickLog:
    """Pages of the top K candidates by a noisy score of the true attraction, or with probability
    epsilon K random candidates; propensity of each shown item at its rank logged."""
    n_queries, n_candidates = truth.attraction.shape
    query_ids = rng.integers(0, n_queries, n_sessions)
    score = truth.attraction + 0.05 * rng.normal(size=truth.attraction.shape)  # one fixed ranker
    greedy = np.argsort(-score, axis=1)[:, :K][query_ids]
    random_pages = np.argsort(rng.random((n_sessions, n_candidates)), axis=1)[:, :K]
    explore = rng.random(n_sessions) < epsilon
    shown = np.where(explore[:, None], random_pages, greedy)
    propensity = epsilon / n_candidates + (1 - epsilon) * (shown == greedy)
    item_ids = query_ids[:, None] * n_candidates + shown
    alpha = truth.pair_values(truth.attraction, query_ids, item_ids)
    clicks = rng.random((n_sessions, K)) < alpha * truth.examination[:K]
    return ClickLog(query_ids, item_ids, clicks, session_ids=np.arange(n_sessions), propensities=propensity)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(11)
    truth = random_truth("pbm", n_queries=400, n_candidates=24, k=K, rng=rng)
    return truth, epsilon_greedy_log(truth, 120_000, 0.1, rng)


def test_harvested_examination_is_unbiased_under_epsilon_greedy_logging(setup):
    truth, log = setup
    gamma, harvested = initial_examination(log)
    assert harvested
    np.testing.assert_allclose(gamma, truth.examination[:K] / truth.examination[0], atol=0.04)
    # the plain CTR by rank mixes examination with the ranker's ordering by attraction
    ctr = log.clicks.mean(axis=0) / log.clicks.mean(axis=0)[0]
    assert np.abs(ctr - truth.examination[:K]).max() > 0.05


def test_pbm_with_harvested_examination_is_calibrated_by_rank(setup):
    truth, log = setup
    model = PBM().fit(log)
    np.testing.assert_allclose(model.examination_, truth.examination[:K], atol=0.04)
    predicted = model.click_probabilities(log.query_ids, log.item_ids).mean(axis=0)
    np.testing.assert_allclose(predicted, log.clicks.mean(axis=0), rtol=0.06)


def test_rarely_shown_pairs_are_not_shrunk_towards_the_items_head_rate(setup):
    """Pairs shown only by exploration get a prior from their own debiased clicks, not the
    expected attractions (which echo the current estimate), so their mean is unbiased."""
    truth, log = setup
    model = PBM(prior_strength=5.0).fit(log, features=truth.features)
    n_queries, n_candidates = truth.attraction.shape
    greedy = np.zeros_like(truth.attraction, dtype=bool)
    seen_greedy = np.unique(log.item_ids[log.propensities > 0.5])
    greedy.ravel()[seen_greedy] = True
    queries = np.arange(n_queries)
    items = queries[:, None] * n_candidates + np.arange(n_candidates)
    alpha = model.attraction(queries, items)
    rare = ~greedy
    # within 15%: the log-link back-off is not the logistic truth (before: smoothed towards the head rate)
    assert abs(alpha[rare].mean() - truth.attraction[rare].mean()) < 0.15 * truth.attraction[rare].mean()


def test_without_propensities_examination_is_fitted_by_maximum_likelihood(setup):
    truth, log = setup
    plain = ClickLog(log.query_ids, log.item_ids, log.clicks)
    model = PBM(examination="auto").fit(plain)
    assert model.n_iter_ > 1
    np.testing.assert_allclose(model.examination_, truth.examination[:K], atol=0.08)
