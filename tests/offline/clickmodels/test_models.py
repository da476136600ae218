"""Click models: parameter recovery, likelihood against brute force, model selection, sampling."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from abplatform.offline.clickmodels import CLICK_MODELS, DBN, PBM, UBM, Cascade, ClickLog, make_click_model
from abplatform.offline.clickmodels.synthetic import random_truth, sample_click_log
from abplatform.rng import uniforms

K = 10


def fitted_values(model, truth, values_of_model):
    """(n_queries, n_candidates) values of a fitted per-pair parameter, laid out like the truth's arrays."""
    n_queries, n_candidates = truth.attraction.shape
    queries = np.arange(n_queries)
    items = queries[:, None] * n_candidates + np.arange(n_candidates)
    return values_of_model(queries, items)


@pytest.fixture(scope="module")
def logs():
    rng = np.random.default_rng(20240501)
    out = {}
    for kind in ("pbm", "cascade", "dbn"):
        truth = random_truth(kind, n_queries=20, n_candidates=20, k=K, rng=rng)
        out[kind] = (truth, sample_click_log(truth, 60_000, K, rng), sample_click_log(truth, 30_000, K, rng))
    return out


def test_pbm_recovers_examination_and_attraction(logs):
    truth, train, _ = logs["pbm"]
    model = PBM().fit(train)
    np.testing.assert_allclose(model.examination_, truth.examination, atol=0.03)
    alpha = fitted_values(model, truth, model.attraction)
    assert np.abs(alpha - truth.attraction).max() < 0.08
    assert np.abs(alpha - truth.attraction).mean() < 0.02


def test_cascade_recovers_attraction(logs):
    truth, train, _ = logs["cascade"]
    model = Cascade(prior_strength=1.0).fit(train)
    alpha = fitted_values(model, truth, model.attraction)
    assert np.abs(alpha - truth.attraction).mean() < 0.02


def test_dbn_recovers_attraction_satisfaction_continuation(logs):
    truth, train, _ = logs["dbn"]
    model = DBN().fit(train)
    assert model.continuation_ == pytest.approx(truth.continuation, abs=0.02)
    alpha = fitted_values(model, truth, model.attraction)
    sigma = fitted_values(model, truth, model.satisfaction_)
    assert np.abs(alpha - truth.attraction).mean() < 0.03
    assert np.abs(sigma - truth.satisfaction).mean() < 0.05


def test_ubm_recovers_examination_by_rank_and_distance():
    rng = np.random.default_rng(7)
    truth = random_truth("ubm", n_queries=20, n_candidates=20, k=K, rng=rng)
    log = sample_click_log(truth, 60_000, K, rng)
    model = UBM(max_iter=200).fit(log)
    ranks, distances = np.nonzero(np.tri(K, K + 1, k=1, dtype=bool) & (np.arange(K + 1) >= 1))
    # cells observed often enough: distance to the last click at most 3 ranks
    common = distances <= 3
    error = np.abs(model.examination_ - truth.examination)[ranks[common], distances[common]]
    assert error.mean() < 0.04
    alpha = fitted_values(model, truth, model.attraction)
    assert np.abs(alpha - truth.attraction).mean() < 0.04


# --- likelihood and perplexity against brute-force enumeration of the latent variables ---------------

def brute_force_click_distribution(kind, alpha, sigma, gamma):
    """{click vector: probability} for one page by summing over every latent configuration."""
    k = len(alpha)
    dist: dict[tuple[int, ...], float] = {}

    def add(clicks, p):
        dist[tuple(clicks)] = dist.get(tuple(clicks), 0.0) + p

    def bern(x, p):
        return p if x else 1.0 - p

    if kind in ("pbm", "ubm"):
        for a in itertools.product((0, 1), repeat=k):
            for e in itertools.product((0, 1), repeat=k):
                p, clicks, last = 1.0, [], -1
                for r in range(k):
                    g = gamma[r] if kind == "pbm" else gamma[r][r - last]
                    p *= bern(a[r], alpha[r]) * bern(e[r], g)
                    clicks.append(a[r] * e[r])
                    if clicks[-1]:
                        last = r
                add(clicks, p)
    else:  # cascade and dbn: attraction, satisfaction and continuation coins
        sat = [1.0] * k if kind == "cascade" else sigma
        cont = 1.0 if kind == "cascade" else gamma
        for a in itertools.product((0, 1), repeat=k):
            for s in itertools.product((0, 1), repeat=k):
                for g in itertools.product((0, 1), repeat=k):
                    p, clicks, examined = 1.0, [], 1
                    for r in range(k):
                        p *= bern(a[r], alpha[r]) * bern(s[r], sat[r]) * bern(g[r], cont)
                        clicks.append(examined * a[r])
                        examined = examined * (1 - clicks[-1] * s[r]) * g[r]
                    add(clicks, p)
    return dist


@pytest.mark.parametrize("name", sorted(CLICK_MODELS))
def test_log_likelihood_and_perplexity_match_brute_force(name):
    rng = np.random.default_rng(3)
    truth = random_truth("dbn", n_queries=2, n_candidates=4, k=3, rng=rng)
    train = sample_click_log(truth, 400, 3, rng)
    test = sample_click_log(truth, 12, 3, rng)
    model = make_click_model(name).fit(train)

    log_likelihood = 0.0
    log2_observed = [0.0] * 3
    for s in range(len(test)):
        q, items = test.query_ids[s : s + 1], test.item_ids[s : s + 1]
        alpha = [float(v) for v in model.attraction(q, items)[0]]
        sigma = [float(v) for v in model.satisfaction_(q, items)[0]] if name == "dbn" else None
        gamma = {"pbm": lambda: list(model.examination_), "ubm": lambda: [list(row) for row in model.examination_],
                 "dbn": lambda: model.continuation_, "cascade": lambda: None}[name]()
        dist = brute_force_click_distribution(name, alpha, sigma, gamma)
        assert sum(dist.values()) == pytest.approx(1.0)
        observed = tuple(int(c) for c in test.clicks[s])
        log_likelihood += math.log(max(dist.get(observed, 0.0), 1e-10))
        for r in range(3):
            p_click = sum(p for c, p in dist.items() if c[r] == 1)
            log2_observed[r] += math.log2(p_click if observed[r] else 1.0 - p_click)
    assert model.log_likelihood(test) == pytest.approx(log_likelihood, rel=1e-9)
    expected = [2 ** (-x / len(test)) for x in log2_observed]
    np.testing.assert_allclose(model.perplexity(test), expected, rtol=1e-9)


def test_perplexity_ignores_ranks_beyond_a_short_page():
    log = ClickLog(np.array([0, 0]), np.array([[1, 2], [1, -1]]), np.array([[True, False], [False, False]]))
    model = PBM().fit(log)
    p = model.click_probabilities(log.query_ids, log.item_ids)
    assert p[1, 1] == 0.0
    expected_rank2 = 2 ** -math.log2(1 - p[0, 1])
    assert model.perplexity(log)[1] == pytest.approx(expected_rank2)


# --- model selection on held-out data -------------------------------------------------------------------

def test_cascade_and_dbn_beat_pbm_on_cascade_data(logs):
    _, train, test = logs["cascade"]
    perplexity = {name: make_click_model(name).fit(train).perplexity(test).mean() for name in ("pbm", "cascade", "dbn")}
    assert perplexity["cascade"] < perplexity["pbm"] - 0.005
    assert perplexity["dbn"] < perplexity["pbm"] - 0.005


def test_pbm_wins_or_ties_on_pbm_data(logs):
    _, train, test = logs["pbm"]
    perplexity = {name: make_click_model(name).fit(train).perplexity(test).mean() for name in ("pbm", "cascade", "dbn")}
    assert perplexity["pbm"] <= min(perplexity["cascade"], perplexity["dbn"]) + 1e-3


# --- sampling -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CLICK_MODELS))
def test_sample_is_deterministic_and_matches_click_probabilities(name, logs):
    truth, train, _ = logs["dbn"]
    model = make_click_model(name).fit(train)
    n = 100_000
    query_ids = np.repeat(train.query_ids[:4], n // 4)
    item_ids = np.repeat(train.item_ids[:4], n // 4, axis=0)
    session_ids = np.arange(n)
    u = uniforms(11, session_ids, stream=0, ncols=K)
    clicks = model.sample(query_ids, item_ids, u)
    np.testing.assert_array_equal(clicks, model.sample(query_ids, item_ids, u.copy()))
    # batch-size independence: a batch with its own counter-based uniforms gives the same clicks
    batch = slice(n // 3, n // 2)
    batch_uniforms = uniforms(11, session_ids[batch], stream=0, ncols=K)
    np.testing.assert_array_equal(clicks[batch], model.sample(query_ids[batch], item_ids[batch], batch_uniforms))
    p = model.click_probabilities(query_ids, item_ids)
    for page in range(4):
        rows = slice(page * n // 4, (page + 1) * n // 4)
        se = np.sqrt(p[rows][0] * (1 - p[rows][0]) / (n // 4))
        assert np.all(np.abs(clicks[rows].mean(axis=0) - p[rows][0]) < 4.5 * se + 1e-9)
    generator_clicks = model.sample(query_ids, item_ids, np.random.default_rng(5))
    assert generator_clicks.shape == (n, K) and generator_clicks.dtype == bool


def test_sample_rejects_uniforms_of_the_wrong_shape(logs):
    _, train, _ = logs["pbm"]
    model = PBM().fit(train)
    with pytest.raises(ValueError, match="shape"):
        model.sample(train.query_ids[:3], train.item_ids[:3], np.zeros((3, K - 1)))


def test_make_click_model_names():
    assert isinstance(make_click_model("DBN", prior_strength=2.0), DBN)
    assert make_click_model("ubm", max_iter=3).max_iter == 3
    with pytest.raises(ValueError, match="unknown click model"):
        make_click_model("ccm")
