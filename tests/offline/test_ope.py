"""Off-policy estimators on full pages: IPS unbiased by Monte Carlo on a world with known propensities and
clicks, SNIPS / DR consistency, the Kish ESS, the weight-explosion warning, and the synthetic world (the
per-row estimand on partial pages and stochastic targets: test_ope_rows.py)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from abplatform import rng
from abplatform.errors import InputError
from abplatform.offline import ope
from abplatform.world.generate import log_pages

K = 3
GAMMA = np.array([1.0, 0.6, 0.3])  # position-based examination


def small_setup(seed: int = 0, n_ctx: int = 40, c: int = 6):
    """Contexts with known attractions, a logging policy's scores and a fixed target ranking."""
    g = np.random.default_rng(seed)
    attraction = g.uniform(0.05, 0.9, (n_ctx, c))
    candidates = np.tile(np.arange(c), (n_ctx, 1))
    log_scores = g.normal(size=(n_ctx, c))
    target = np.argsort(-(attraction + g.normal(0, 0.3, (n_ctx, c))), axis=1)[:, :K]  # a decent, different ranker
    true_value = (np.take_along_axis(attraction, target, axis=1) * GAMMA).sum(axis=1).mean()
    return attraction, candidates, log_scores, target, true_value


def plackett_luce_marginals(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, c, k) exact P(item at position) of a Plackett-Luce ranking, by enumerating ordered pages."""
    n, c = scores.shape
    e = np.exp(scores)
    out = np.zeros((n, c, k))
    for page in itertools.permutations(range(c), k):
        p = np.ones(n)
        left = e.sum(axis=1)
        for item in page:
            p *= e[:, item] / left
            left = left - e[:, item]
        for pos, item in enumerate(page):
            out[:, item, pos] += p
    return out


def ip_weights(shown: np.ndarray, prop: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(n, k) item-position weights 1[logged item = target item] / propensity, by hand."""
    return np.where(shown == target, 1 / prop, 0.0)


def draw_logs(setup, reps: int, policy: str, epsilon: float = 0.3, seed: int = 1):
    """``reps`` independent logs of all contexts: logged pages, clicks and propensities, stacked."""
    attraction, candidates, log_scores, target, _ = setup
    n_ctx, c = attraction.shape
    ids = np.arange(reps * n_ctx, dtype=np.int64)
    ctx = np.tile(np.arange(n_ctx), reps)
    if policy == "epsilon":
        shown, prop = log_pages(seed, ids, log_scores[ctx], candidates[ctx], K, epsilon)
    else:  # Plackett-Luce by Gumbel top-k, propensities from the exact marginals
        u = rng.uniforms(seed, ids, 3, c)
        gumbel = -np.log(-np.log(np.clip(u, 1e-12, 1 - 1e-12)))
        shown = np.argsort(-(log_scores[ctx] + gumbel), axis=1)[:, :K]
        marg = plackett_luce_marginals(log_scores, K)
        prop = marg[ctx[:, None], shown, np.arange(K)[None, :]]
    p_click = np.take_along_axis(attraction[ctx], shown, axis=1) * GAMMA
    clicks = rng.uniforms(seed, ids, 4, K) < p_click
    return shown, clicks, prop, target[ctx], ctx


@pytest.mark.parametrize("policy", ["epsilon", "plackett_luce"])
def test_ips_unbiased_monte_carlo(policy):
    setup = small_setup()
    truth = setup[-1]
    reps, n_ctx = 4000, setup[0].shape[0]
    shown, clicks, prop, target, _ = draw_logs(setup, reps, policy)
    w = ip_weights(shown, prop, target)
    per_rep = (w * clicks).sum(axis=1).reshape(reps, n_ctx).mean(axis=1)  # one IPS estimate per log
    mc_se = per_rep.std(ddof=1) / np.sqrt(reps)
    assert abs(per_rep.mean() - truth) < 4 * mc_se, (per_rep.mean(), truth, mc_se)
    # the same check has power: propensities 20% too high give a clearly biased estimate
    biased = ((ip_weights(shown, prop * 1.2, target) * clicks).sum(axis=1)).reshape(reps, n_ctx).mean(axis=1)
    assert abs(biased.mean() - truth) > 10 * mc_se
    # evaluate_pages on one log agrees with the hand computation
    one = slice(0, n_ctx)
    res = ope.evaluate_pages(shown[one], clicks[one], prop[one], target[one], warn=False)
    assert res["ips"].clicks_per_session == pytest.approx(per_rep[0])


def test_dr_unbiased_and_snips_consistent():
    setup = small_setup(seed=3)
    attraction, _, _, target0, truth = setup
    reps, n_ctx = 3000, attraction.shape[0]
    shown, clicks, prop, target, ctx = draw_logs(setup, reps, "epsilon", epsilon=0.5, seed=9)
    exact = np.take_along_axis(attraction[ctx], target, axis=1) * GAMMA
    noisy = np.clip(exact * 1.3 + 0.02, 0, 1)  # a wrong baseline
    w = ip_weights(shown, prop, target)
    for q in (exact, noisy):
        dr = ((q + w * (clicks - q)).sum(axis=1)).reshape(reps, n_ctx).mean(axis=1)
        assert abs(dr.mean() - truth) < 4 * dr.std(ddof=1) / np.sqrt(reps)
    # all logs as one big log: SNIPS and DR within their CIs of the truth; DR with the exact baseline is
    # tighter than IPS; DR with a zero baseline is IPS; DM with the exact baseline is the truth
    res = ope.evaluate_pages(shown, clicks, prop, target, exact, warn=False)
    for name in ("ips", "snips", "dr"):
        assert abs(res[name].clicks_per_session - truth) < 3 * res[name].se, name
    assert res["dr"].se < res["ips"].se
    assert res["dm"].clicks_per_session == pytest.approx(truth)
    zero = ope.evaluate_pages(shown, clicks, prop, target, np.zeros_like(exact), warn=False)
    assert zero["dr"].clicks_per_session == pytest.approx(zero["ips"].clicks_per_session)
    assert zero["dr"].se == pytest.approx(zero["ips"].se)
    # SNIPS is IPS rescaled per position by n / sum w
    sum_w = w.sum(axis=0)
    np.testing.assert_allclose(res["snips"].per_position, res["ips"].per_position * len(w) / sum_w)
    # per-position values add up to the total; item CTR divides by the page length
    assert res["ips"].per_position.sum() == pytest.approx(res["ips"].clicks_per_session)
    assert res["ips"].ctr == pytest.approx(res["ips"].clicks_per_session / K)
    del target0


def test_ci_coverage_of_ips_and_snips():
    """95% CLT intervals over sessions cover the truth in about 95% of independent logs."""
    setup = small_setup(seed=5, n_ctx=40)
    reps, n_ctx = 400, 40
    big = 10  # each log holds every context 10 times
    shown, clicks, prop, target, _ = draw_logs(setup, reps * big, "epsilon", epsilon=0.4, seed=21)
    cover = {"ips": 0, "snips": 0}
    m = n_ctx * big
    for r in range(reps):
        s = slice(r * m, (r + 1) * m)
        res = ope.evaluate_pages(shown[s], clicks[s], prop[s], target[s], warn=False)
        for name in cover:
            lo, hi = res[name].ci
            cover[name] += lo <= setup[-1] <= hi
    for name, hits in cover.items():
        assert 0.91 <= hits / reps <= 0.98, (name, hits / reps)


def test_kish_ess():
    g = np.random.default_rng(0)
    w = g.exponential(size=(500, 4))
    expected = [w[:, j].sum() ** 2 / (w[:, j] ** 2).sum() for j in range(4)]
    np.testing.assert_allclose(ope.kish_ess(w), expected)
    assert ope.kish_ess(np.full(37, 2.5)) == pytest.approx(37)
    assert ope.kish_ess(np.r_[np.zeros(99), 5.0]) == pytest.approx(1)
    assert ope.kish_ess(np.zeros(10)) == 0


def test_weight_explosion_warning():
    setup = small_setup(seed=2, n_ctx=40, c=6)
    # rare exploration: few sessions carry the target's items, each with weight C / epsilon = 3000
    shown, clicks, prop, target, _ = draw_logs(setup, 5, "epsilon", epsilon=0.002, seed=4)
    with pytest.warns(ope.WeightExplosionWarning, match="ESS"):
        res = ope.evaluate_pages(shown, clicks, prop, target)
    assert res.weights.exploded and res.weights.reasons
    shown, clicks, prop, target, _ = draw_logs(setup, 2000, "epsilon", epsilon=0.002, seed=4)
    with pytest.warns(ope.WeightExplosionWarning, match="of the weight"):
        res = ope.evaluate_pages(shown, clicks, prop, target)
    assert res.weights.max_weight == pytest.approx(1 / (0.002 / 6))
    # uniform logging: weights C everywhere, no warning with enough sessions
    shown, clicks, prop, target, _ = draw_logs(setup, 400, "epsilon", epsilon=1.0, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ope.evaluate_pages(shown, clicks, prop, target)
    assert not res.weights.exploded
    assert res.weights.ess_min > 0.5 * len(shown) / 6
    # a target never logged at a position: no support
    never = target.copy()
    never[:, 2] = 99
    with pytest.warns(ope.WeightExplosionWarning, match="no logged support"):
        ope.evaluate_pages(shown, clicks, prop, never)


def test_missing_propensity_is_an_error():
    setup = small_setup()
    shown, clicks, prop, target, _ = draw_logs(setup, 2, "epsilon")
    prop = prop.copy()
    prop[shown == target] = np.nan
    with pytest.raises(InputError, match="propensity is null"):
        ope.evaluate_pages(shown, clicks, prop, target)
    # a missing propensity where the target's item differs weighs 0 whatever it is: no error
    prop = draw_logs(setup, 2, "epsilon")[2].copy()
    prop[shown != target] = np.nan
    assert ope.evaluate_pages(shown, clicks, prop, target, warn=False)["ips"].per_row >= 0


def test_world_v2_estimates_cover_the_oracle(small_world):
    """On the synthetic world: logged propensities from the loader, V2's pages, the exact truth."""
    from abplatform.dataset import Dataset
    from abplatform.rankers import Catalog, V1Ranker, V2Ranker
    from abplatform.world.oracle import oracle_click_probabilities

    ds = Dataset(small_world)
    logged = ope.load_logged_pages(ds)
    assert np.all(np.isfinite(logged.propensity[logged.item_ids >= 0]))
    catalog = Catalog.from_dataset(ds)
    model, vocab = ope.fit_click_model(ds, "pbm", max_iter=30)
    for ranker in (V1Ranker(), V2Ranker()):
        pages = ope.ranker_pages(ranker.fit(ds, catalog), catalog, logged)
        truth = oracle_click_probabilities(small_world, logged, pages).sum(axis=1).mean()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ope.WeightExplosionWarning)
            res = ope.evaluate_ranker(logged, pages, model, vocab)
        for name in ("ips", "snips", "dr"):
            assert abs(res[name].clicks_per_session - truth) < 3.5 * res[name].se, (ranker.name, name)


def test_match_rate_counts_only_logged_positions():
    """A partial page leaves unlogged positions at -1; an empty target slot there is no match (10,000
    three-slot pages, one slot logged each: 123 matches were reported as a 0.67 match rate)."""
    n, k = 9, 3
    logged = np.full((n, k), -1)
    logged[np.arange(n), np.arange(n) % k] = 7  # one slot logged per page, item 7
    target = np.full((n, k), -1)
    target[:, 0] = 7  # the target shows item 7 in slot 1 only
    res = ope.evaluate_pages(logged, np.zeros((n, k), bool), np.full((n, k), 0.5), target, warn=False)
    # slot 1 was logged on 3 pages, all with the target's item; slots 2 and 3 never match
    np.testing.assert_array_equal(res.weights.positions, [1, 2, 3])
    np.testing.assert_array_equal(res.weights.match_rate, [1.0, 0.0, 0.0])
    brute = [np.mean([logged[i, j] == target[i, j] for i in range(n) if logged[i, j] >= 0]) for j in range(k)]
    np.testing.assert_allclose(res.weights.match_rate, brute)
