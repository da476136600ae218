"""The feature back-off of a Poisson rate: a log-link GLM, its predictions capped at the largest rate the
training pairs showed (it extrapolates exponentially outside the training range)."""

from __future__ import annotations

import numpy as np
import statsmodels.api as sm

from abplatform.offline.clickmodels import BackedOffRate, PairIndex


def test_a_poisson_feature_back_off_is_the_glm_inside_the_training_range_and_capped_outside():
    rng = np.random.default_rng(3)
    n_items = 400
    x = np.concatenate([rng.uniform(0, 1, n_items), [6.0, 0.5]])  # the last two items are never in the log

    def features(query_ids, item_ids):
        return x[item_ids]

    query_ids = np.zeros(n_items, dtype=np.int64)
    item_ids = np.arange(n_items)[:, None]  # one pair per item, in query 0
    index = PairIndex.from_rankings(query_ids, item_ids)
    trials = rng.integers(1, 20, n_items).astype(float)
    successes = rng.poisson(trials * np.exp(-1.0 + 2.0 * x[:n_items])).astype(float)
    rate = BackedOffRate("poisson", prior_strength=5.0, raw_targets=True).fit(index, successes, trials, features)

    # the GLM as statsmodels fits it on the same targets and weights (BackedOffRate.fit_prior's)
    target = successes / trials
    weights = trials / (1 + trials / 5.0) + 1e-3
    glm = sm.GLM(target, np.column_stack([np.ones(n_items), x[:n_items]]), family=sm.families.Poisson(),
                 var_weights=weights).fit()
    unseen = rate(np.array([1]), np.array([[n_items, n_items + 1]]))[0]
    inside = glm.predict(np.array([[1.0, 0.5]]))[0]
    np.testing.assert_allclose(unseen[1], inside, rtol=1e-6)  # x = 0.5: inside the range, the GLM itself
    outside = glm.predict(np.array([[1.0, 6.0]]))[0]
    assert outside > 100 * target.max()  # what the uncapped GLM would give x = 6
    assert unseen[0] == target.max()  # capped at the largest training rate


def test_an_item_level_back_off_uses_the_items_other_queries_before_the_feature_model():
    """``item_level``: an unseen pair of an item with trials of its own backs off to (S_u + m GLM) / (T_u + m), the
    item's successes and trials over its pairs shrunk towards the feature model; an item never in the log gets the
    feature model alone; a seen pair's prior leaves its own counts out. Checked against that formula computed
    from the counts directly, on a log whose feature says nothing (every item's true rate differs)."""
    rng = np.random.default_rng(5)
    n_items, n_queries, m = 50, 4, 5.0
    true_rate = rng.uniform(0.2, 2.0, n_items)
    x = rng.normal(0, 1, n_items + 1)  # a feature independent of the rates: the GLM is near the pooled rate

    def features(query_ids, item_ids):
        return x[item_ids]

    query_ids = np.repeat(np.arange(n_queries), n_items)
    item_ids = np.tile(np.arange(n_items), n_queries)[:, None]  # every item in every query
    index = PairIndex.from_rankings(query_ids, item_ids)
    trials = rng.integers(0, 30, index.n_pairs).astype(float)
    successes = rng.poisson(trials * true_rate[index.pair_items]).astype(float)
    plain = BackedOffRate("poisson", m, raw_targets=True).fit(index, successes, trials, features)
    rate = BackedOffRate("poisson", m, raw_targets=True, item_level=True).fit(index, successes, trials, features)

    new_query = np.full(1, n_queries)
    glm = plain(new_query, np.arange(n_items + 1)[None, :])[0]  # the feature model alone, per item
    s = np.bincount(index.pair_items, successes, minlength=n_items)
    t = np.bincount(index.pair_items, trials, minlength=n_items)
    unseen = rate(new_query, np.arange(n_items + 1)[None, :])[0]  # a new query; item n_items is new
    np.testing.assert_allclose(unseen[:n_items], (s + m * glm[:n_items]) / (t + m), rtol=1e-9)
    assert unseen[n_items] == glm[n_items]
    items = index.pair_items
    prior = (s[items] - successes + m * glm[items]) / (t[items] - trials + m)
    np.testing.assert_allclose(rate.pair_, (successes + m * prior) / (trials + m), rtol=1e-9)
    # the item's own rate is the better guess for its unseen pairs than the feature model's
    assert np.abs(unseen[:n_items] - true_rate).mean() < 0.5 * np.abs(glm[:n_items] - true_rate).mean()
