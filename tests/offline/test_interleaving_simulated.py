"""Interleaving simulated on the shared world's logged sessions: independent of batch size, and its
sample sizes against an independent power computation (exact binomial power with scipy for the sign
test, statsmodels' normal power for the A/B test of item CTR)."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from abplatform.dataset import Dataset
from abplatform.offline import interleaving as il
from abplatform.offline.ope import load_logged_pages
from abplatform.rankers import Catalog, V1Ranker, V2Ranker
from abplatform.report.interleaving import InterleavingResult
from abplatform.report.model import _build
from abplatform.world.oracle import OracleBehaviour
from abplatform.world.truth import load_truth


@pytest.fixture(scope="module")
def world(small_world):
    ds = Dataset(small_world)
    catalog = Catalog.from_dataset(ds)
    return {"logged": load_logged_pages(ds), "catalog": catalog, "v1": V1Ranker().fit(ds, catalog),
            "v2": V2Ranker().fit(ds, catalog), "users": OracleBehaviour(load_truth(small_world))}


def simulate(world, batch_size=8192, seed=5, b="v2"):
    return il.simulate_sessions(world["logged"], world["v1"], world[b], world["catalog"], world["users"], seed=seed,
                                batch_size=batch_size)


def arrays(sim: il.SimulatedSessions) -> dict[str, np.ndarray]:
    return {**{f"interleaved.{k}": v for k, v in vars(sim.interleaved).items()},
            **{k: v for k, v in vars(sim).items() if k != "interleaved"}}


def test_deterministic_in_the_seed_whatever_the_batch_size(world):
    whole = arrays(simulate(world, batch_size=100_000))
    for batch_size in (97, 1000):
        parts = arrays(simulate(world, batch_size=batch_size))
        for name, values in whole.items():
            np.testing.assert_array_equal(parts[name], values, err_msg=name)
    other = arrays(simulate(world, seed=6))
    assert (other["interleaved.team_b"] != whole["interleaved.team_b"]).any()
    kw = {"seed": 5, "arms": ("v1", "v2")}
    a = il.simulate_interleaving(world["logged"], world["v1"], world["v2"], world["catalog"], world["users"],
                                 batch_size=97, **kw)
    b = il.simulate_interleaving(world["logged"], world["v1"], world["v2"], world["catalog"], world["users"], **kw)
    assert a == b
    assert a.analysis.preferred == "v2" and a.analysis.significant


def exact_sign_test_decisive(q: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest decisive observations at which the exact two-sided binomial test has ``power`` against q."""
    for d in range(10, 100_000):
        k = np.arange(d + 1)
        reject = np.array([stats.binomtest(int(x), d).pvalue <= alpha for x in k]) if d < 60 else \
            2 * stats.binom.cdf(np.minimum(k, d - k), d, 0.5) <= alpha  # binomtest's p-value at p = 1/2
        if stats.binom.pmf(k, d, q)[reject].sum() >= power:
            return d
    raise AssertionError("no sample size found")


@pytest.mark.parametrize(("q", "decisive_share"), [(0.58, 0.6), (0.62, 0.3), (0.45, 0.9)])
def test_sign_test_sample_size_against_exact_binomial_power(q, decisive_share):
    n = il.sign_test_sample_size(q * decisive_share, (1 - q) * decisive_share)
    assert n * decisive_share == pytest.approx(exact_sign_test_decisive(q), rel=0.03)


def independent_ab_units(unit_ids, clicks_a, shown_a, clicks_b, shown_b) -> tuple[float, float]:
    """Units an A/B test of item CTR needs (statsmodels' normal power), and sessions per unit."""
    per_unit: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for u, *values in zip(unit_ids, clicks_a, shown_a, clicks_b, shown_b, strict=True):
        per_unit[u] = [s + v for s, v in zip(per_unit[u], values, strict=True)]
    table = np.array(list(per_unit.values()))
    variances, ctr = [], []
    for x, y in (table[:, :2].T, table[:, 2:].T):
        r = x.sum() / y.sum()
        ctr.append(r)
        variances.append(((x - r * y) ** 2).sum() / (len(x) - 1) / y.mean() ** 2)  # delta method
    sigma = np.sqrt(np.mean(variances))
    per_arm = NormalIndPower().solve_power(effect_size=(ctr[1] - ctr[0]) / sigma, alpha=0.05, power=0.8, ratio=1.0)
    return 2 * per_arm, len(unit_ids) / len(per_unit)


@pytest.mark.parametrize("unit", ["session", "unit"])
def test_sample_size_ratio_against_an_independent_power_computation(world, unit):
    sim = simulate(world)
    res = il.simulate_interleaving(world["logged"], world["v1"], world["v2"], world["catalog"], world["users"], seed=5,
                                   unit=unit)
    size = res.sample_size
    ab_units, sessions_per_unit = independent_ab_units(world["logged"].unit_ids, sim.clicks_a, sim.shown_a,
                                                       sim.clicks_b, sim.shown_b)
    # statsmodels solves numerically, and counts the far tail's power (~1e-8 here)
    assert size.ab_units == pytest.approx(ab_units, rel=1e-5)
    assert size.ab_sessions == pytest.approx(ab_units * sessions_per_unit, rel=1e-5)
    # the sign test: B's and A's wins per observation, brute force
    credit = np.sign(sim.interleaved.team_b - sim.interleaved.team_a)
    if unit == "unit":
        totals: dict[str, float] = defaultdict(float)
        for u, c in zip(world["logged"].unit_ids, credit, strict=True):
            totals[u] += c
        obs = np.array(list(totals.values()))
    else:
        obs = credit
    p_b, p_a = (obs > 0).mean(), (obs < 0).mean()
    decisive = exact_sign_test_decisive(p_b / (p_a + p_b))
    interleaving_sessions = decisive / (p_a + p_b) * len(credit) / len(obs)
    # the exact test is discrete, so conservative: at ~140 decisive units it needs ~4% more than the normal formula
    assert size.interleaving_sessions == pytest.approx(interleaving_sessions, rel=0.05)
    assert size.ratio == pytest.approx(ab_units * sessions_per_unit / interleaving_sessions, rel=0.05)
    assert size.ratio > 1
    # the t-test's: (z_a + z_b)^2 Var(psi) / preference^2 observations
    z = stats.norm.isf(0.025) + stats.norm.ppf(0.8)
    assert size.interleaving_t_sessions == pytest.approx(
        z**2 * res.analysis.variance / res.analysis.preference**2 * len(credit) / len(obs), rel=1e-9)


def test_identical_rankers(world):
    sim = simulate(world, b="v1")
    assert sim.same_page.all() and (sim.overlap == sim.shown_a).all()
    res = il.simulate_interleaving(world["logged"], world["v1"], world["v1"], world["catalog"], world["users"],
                                   seed=5)
    assert res.analysis.preference_ci[0] < 0 < res.analysis.preference_ci[1]
    assert res.sample_size.ab_units == np.inf  # no difference to detect
    assert il.interleaving_report(res.analysis, res.sample_size).sample_size.ratio is None


def test_report_section_of_a_simulation_round_trips_through_json(world):
    res = il.simulate_interleaving(world["logged"], world["v1"], world["v2"], world["catalog"], world["users"], seed=5)
    section = il.interleaving_report(res.analysis, res.sample_size)
    assert section.source == "simulated" and section.sample_size is not None
    assert section.sample_size.ratio == pytest.approx(res.sample_size.ratio)
    text = json.dumps(dataclasses.asdict(section), allow_nan=False)
    assert _build(InterleavingResult, json.loads(text), "interleaving") == section
