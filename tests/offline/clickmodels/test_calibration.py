"""Back-off calibration: the factor on the back-off, and its maximum-likelihood fit on held-out pages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from abplatform.offline.clickmodels import PBM, BackedOffRate, PairIndex, PurchaseModel
from abplatform.offline.clickmodels.calibration import KAPPA_BOUNDS, fit_calibration, held_out_pages
from abplatform.offline.clickmodels.synthetic import random_truth, sample_click_log

K = 5


def test_calibration_scales_the_back_off_as_prior_and_for_unseen_pairs():
    query_ids = np.array([0, 0, 1])
    item_ids = np.array([[10, 11], [10, 11], [12, 10]])
    index = PairIndex.from_rankings(query_ids, item_ids)
    successes = np.array([1.0, 0.0, 2.0, 1.0])  # pairs (0,10), (0,11), (1,10), (1,12) in key order
    trials = np.array([2.0, 2.0, 4.0, 1.0])
    m, kappa = 2.0, 0.8
    plain = BackedOffRate("binomial", m).fit(index, successes, trials)
    scaled = BackedOffRate("binomial", m, calibration=kappa).fit(index, successes, trials)
    # by hand: global rate, item rates shrunk to it, pairs shrunk to kappa * item rate
    global_rate = successes.sum() / trials.sum()
    item_rate = {10: (1 + 2 + m * global_rate) / (2 + 4 + m), 11: (0 + m * global_rate) / (2 + m),
                 12: (1 + m * global_rate) / (1 + m)}
    pair_items = [10, 11, 10, 12]
    expected = [(s + m * kappa * item_rate[i]) / (t + m) for s, t, i in zip(successes, trials, pair_items)]
    np.testing.assert_allclose(scaled.pair_, expected)
    unseen = scaled(np.array([2]), np.array([[11, 99]]))  # a seen item in a new query; an unseen item
    np.testing.assert_allclose(unseen, [[kappa * item_rate[11], kappa * global_rate]])
    np.testing.assert_allclose(plain(np.array([2]), np.array([[11, 99]])), [[item_rate[11], global_rate]])


@pytest.fixture(scope="module")
def shifted_world():
    """PBM truth whose last 50 queries (never in the training pages) have half the attraction: the
    back-off learnt on the first 150 queries over-predicts them by about a factor 2."""
    rng = np.random.default_rng(5)
    truth = random_truth("pbm", n_queries=200, n_candidates=12, k=K, rng=rng)
    attraction = truth.attraction.copy()
    attraction[150:] *= 0.5
    truth = dataclasses.replace(truth, attraction=attraction)
    log = sample_click_log(truth, 40_000, K, rng)
    train = log.subset(log.query_ids < 150)
    test = log.subset((log.query_ids >= 150) | (np.arange(len(log)) % 10 == 0))
    return truth, train, test


def test_fit_calibration_maximises_the_held_out_likelihood_computed_independently(shifted_world):
    truth, train, test = shifted_world
    model = PBM().fit(train)
    kappa = fit_calibration(model.attraction_, lambda: model.log_likelihood(test))
    assert model.attraction_.calibration == 1.0  # restored
    # independent: PBM Bernoulli likelihood on a grid of kappa, unseen pairs at kappa * global rate
    pair, _ = model.index_.lookup(test.query_ids, test.item_ids)
    seen_alpha = np.where(pair >= 0, model.attraction_.pair_[np.maximum(pair, 0)], 0.0)
    gamma = model.examination_[:K]
    grid = np.exp(np.linspace(*np.log(KAPPA_BOUNDS), 2001))

    def log_likelihood(k: float) -> float:
        p = np.where(pair >= 0, seen_alpha, k * model.attraction_.global_) * gamma
        return float(np.where(test.clicks, np.log(p), np.log1p(-p))[test.shown].sum())

    best = grid[np.argmax([log_likelihood(k) for k in grid])]
    assert kappa == pytest.approx(best, rel=2e-3)
    assert 0.4 < kappa < 0.7  # the unseen queries' attraction is about half the seen ones'
    calibrated = PBM(backoff_calibration=kappa).fit(train)
    unseen = test.subset(test.query_ids >= 150)
    predicted = calibrated.click_probabilities(unseen.query_ids, unseen.item_ids)[unseen.shown].sum()
    assert predicted == pytest.approx(unseen.clicks.sum(), rel=0.05)


def test_purchase_calibration_matches_the_unseen_pairs_purchase_rate(shifted_world):
    truth, train, test = shifted_world
    model = PurchaseModel().fit(train)
    kappa = fit_calibration(model.purchase_, lambda: model.purchase_log_likelihood(test))
    unseen = test.subset(test.query_ids >= 150)
    # without features every unseen pair backs off to the global rate g, so the likelihood of their
    # purchases given clicks is Bernoulli(kappa g), maximised in closed form at (purchases / clicks) / g
    ratio = (unseen.purchases & unseen.clicks).sum() / unseen.clicks.sum() / model.purchase_.global_
    assert kappa == pytest.approx(ratio, rel=5e-3)


def test_held_out_pages_are_a_fixed_fraction_keyed_by_session_id(shifted_world):
    _, train, _ = shifted_world
    held_out = held_out_pages(train)
    assert held_out.mean() == pytest.approx(0.2, abs=0.01)
    reordered = train.subset(np.arange(len(train))[::-1])
    np.testing.assert_array_equal(held_out_pages(reordered), held_out[::-1])
