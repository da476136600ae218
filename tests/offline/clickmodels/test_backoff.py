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
