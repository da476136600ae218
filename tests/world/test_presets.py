"""World presets: ``classic`` is the world as it always was, ``onesearch`` moves the knobs it names, and an
experiment naming an unknown preset is refused in one line."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from abplatform.errors import InputError
from abplatform.world.generate import COMPLEXITY_SHARES, WorldParams, generate_world
from abplatform.world.presets import OVERRIDES, WORLD_PRESETS, preset_world_params
from abplatform.world.vocab import LEAVES

TINY = {"users": 600, "days": 2, "pre_days": 2, "items": 1000, "seed": 3}
#: The content of every table of the TINY world as the generator wrote it before the knobs existed
#: (computed with the code of commit 1911cc6): the defaults must keep drawing exactly that world.
CLASSIC_TINY_DIGEST = "5f9002f9c2169803ae7eb719a8e4ebd39526b7ab9003ec0d8bd8cd2dfc821e9f"


def content_digest(world: Path) -> str:
    """A hash of every parquet table's content (names and values, not the file bytes: a compression library's
    version changes those)."""
    h = hashlib.sha256()
    for f in sorted(world.rglob("*.parquet")):
        h.update(str(f.relative_to(world)).encode())
        h.update(json.dumps(pq.read_table(f).to_pydict(), default=str, sort_keys=True).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def onesearch_world(tmp_path_factory) -> Path:
    params = preset_world_params("onesearch", users=2000, days=3, pre_days=3, items=2000, seed=5)
    return generate_world(params, tmp_path_factory.mktemp("onesearch") / "w")


def test_classic_is_every_default():
    assert WORLD_PRESETS["classic"].knobs == {} and WORLD_PRESETS["classic"].rankers == {}
    assert preset_world_params("classic") == WorldParams() == preset_world_params(None)
    assert WorldParams().complexity_shares == tuple(COMPLEXITY_SHARES.values())


def test_the_default_world_is_the_world_before_the_knobs(tmp_path):
    world = generate_world(preset_world_params("classic", **TINY), tmp_path / "w")
    assert content_digest(world) == CLASSIC_TINY_DIGEST


def test_onesearch_takes_the_experiments_size_seed_and_behaviour():
    params = preset_world_params("onesearch", users=1234, days=3, pre_days=2, items=5000, seed=9, behaviour="cascade")
    knobs = WORLD_PRESETS["onesearch"].knobs
    assert (params.users, params.days, params.pre_days, params.items, params.seed, params.behaviour) == (
        1234, 3, 2, 5000, 9, "cascade")
    assert {k: getattr(params, k) for k in knobs} == dict(knobs)
    untouched = {f.name for f in dataclasses.fields(WorldParams)} - set(knobs) - set(OVERRIDES)
    assert all(getattr(params, k) == getattr(WorldParams(), k) for k in untouched)
    assert params.fingerprint() != preset_world_params("classic", users=1234, days=3, pre_days=2, items=5000,
                                                        seed=9, behaviour="cascade").fingerprint()


def test_unknown_preset_or_setting_is_refused():
    with pytest.raises(InputError, match=r"unknown world preset 'onesarch' \(expected one of classic, onesearch"):
        preset_world_params("onesarch")
    with pytest.raises(InputError, match="'synonym_rate' is not a size, seed or behaviour setting"):
        preset_world_params("onesearch", synonym_rate=0.5)


def test_onesearch_draws_its_query_mix(onesearch_world):
    """Each kind of query turns up at the preset's share (binomial bounds, 4.5 standard errors)."""
    shares = dict(zip(COMPLEXITY_SHARES, WORLD_PRESETS["onesearch"].knobs["complexity_shares"], strict=True))
    rows = duckdb.connect().execute(f"""SELECT query_complexity, COUNT(*) FROM
        read_parquet('{onesearch_world}/sessions/*.parquet') GROUP BY ALL""").fetchall()
    counts = dict(rows)
    n = sum(counts.values())
    for kind, share in shares.items():
        # a share of 0 draws none
        assert abs(counts.get(kind, 0) / n - share) <= 4.5 * np.sqrt(share * (1 - share) / n), (kind, counts)
    classic = tuple(COMPLEXITY_SHARES.values())
    assert shares["indirect"] != classic[3]  # the knob moved (not the classic mix by accident)


def synonym_share(world: Path) -> tuple[float, int]:
    """The share of titles that do not name their category's word (so name it by a synonym), and the titles."""
    items = pq.read_table(world / "items").to_pydict()
    assert {lf.word for lf in LEAVES} >= set(items["category"])
    by_synonym = [f" {c} " not in f" {t} " for t, c in zip(items["title"], items["category"], strict=True)]
    return float(np.mean(by_synonym)), len(by_synonym)


def test_titles_use_synonyms_at_the_presets_rate(onesearch_world, small_world):
    """A title names its category by a synonym at the world's synonym rate: the classic 30% (the shared test
    world), the onesearch preset's own rate (binomial bounds, 4.5 standard errors)."""
    for world, rate in ((small_world, WorldParams().synonym_rate),
                        (onesearch_world, WORLD_PRESETS["onesearch"].knobs["synonym_rate"])):
        share, n = synonym_share(world)
        assert abs(share - rate) <= 4.5 * np.sqrt(rate * (1 - rate) / n), (world, share, rate)
    assert WORLD_PRESETS["onesearch"].knobs["synonym_rate"] != WorldParams().synonym_rate


def test_onesearch_pre_period_explores_at_its_rate(onesearch_world):
    """The pre-period's logging policy shows a random page at the preset's exploration rate eps: the logged
    propensity at position 1 is eps / candidates on a random page (under (1 - eps) / 2), and at least 1 - eps
    on the policy's own (or when the random page happened to start with the policy's first item, 1 in 30)."""
    def explored(table: str, eps: float) -> tuple[float, int]:
        return duckdb.connect().execute(f"""SELECT AVG(CAST(propensity < {(1 - eps) / 2} AS DOUBLE)), COUNT(*)
            FROM read_parquet('{onesearch_world}/{table}/*.parquet') WHERE position = 1""").fetchone()

    for table, eps in (("pre_impressions", WORLD_PRESETS["onesearch"].knobs["pre_logging_epsilon"]),
                       ("impressions", WorldParams().logging_epsilon)):  # the experiment period keeps the classic's
        share, n = explored(table, eps)
        expected = eps * (1 - 1 / 30)
        assert abs(share - expected) < 4.5 * np.sqrt(expected * (1 - expected) / n), (table, share, expected)
    assert WORLD_PRESETS["onesearch"].knobs["pre_logging_epsilon"] != WorldParams().logging_epsilon


def test_an_unknown_preset_in_an_experiment_is_one_line_and_exit_2(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: demo\narms:\n  - {name: control, ranker: v1}\n  - {name: treatment, ranker: v2}\n"
                   "data: {world: {users: 1000, preset: onesarch}}\n")
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "validate", str(exp)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res
    lines = [line for line in (res.stdout + res.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"{exp}:5:37: data.world.preset" in lines[0]
    assert "unknown world preset 'onesarch' (did you mean 'onesearch'?); expected one of classic, onesearch" in lines[0]
    assert "Traceback" not in res.stderr


def test_onesearch_items_have_an_appeal_the_classic_world_lacks(onesearch_world, small_world):
    """The onesearch items carry an appeal drawn N(0, 1), independent of quality and popularity; the classic
    world draws none (its truth has no such column)."""
    truth = pq.read_table(onesearch_world / "truth" / "items.parquet")
    appeal, quality = truth["appeal"].to_numpy(), truth["quality"].to_numpy()
    n = len(appeal)
    assert abs(appeal.mean()) < 4.5 / np.sqrt(n) and abs(appeal.std() - 1) < 4.5 / np.sqrt(2 * n)
    for other in (quality, truth["log_popularity"].to_numpy()):
        assert abs(np.corrcoef(appeal, other)[0, 1]) < 4.5 / np.sqrt(n)
    assert "appeal" not in pq.read_table(small_world / "truth" / "items.parquet").column_names


@pytest.mark.parametrize("sigma", [1.2, 0.3, 0.0])
def test_activity_sigma_spreads_users_activity_around_the_same_mean(sigma):
    """Each user's sessions per day: lognormal with sigma ``activity_sigma`` and mean ``sessions_per_user_day``
    (1.2, the classic world's, draws the rates it always drew)."""
    from abplatform.world.generate import _make_users

    params = WorldParams(users=200_000, seed=11, activity_sigma=sigma)
    rate = _make_users(params).rate
    log_rate = np.log(rate / params.sessions_per_user_day)
    n = len(rate)
    exact = 1e-12  # sigma 0: every rate is sessions_per_user_day, up to rounding
    assert abs(log_rate.std() - sigma) < 4.5 * sigma / np.sqrt(2 * n) + exact
    assert abs(log_rate.mean() + sigma ** 2 / 2) < 4.5 * sigma / np.sqrt(n) + exact
    # the mean rate is sessions_per_user_day (the lognormal's mean is exp(mu + sigma^2 / 2) = 1)
    assert abs(rate.mean() / params.sessions_per_user_day - 1) < 4.5 * np.sqrt(np.expm1(sigma ** 2) / n) + exact
    if sigma == 1.2:
        g = np.random.default_rng([11, 1])
        g.normal(0, 1, (n, len(LEAVES))), g.normal(0, 0.5, n)
        np.testing.assert_array_equal(rate, params.sessions_per_user_day * np.exp(g.normal(-0.72, 1.2, n)))
    with pytest.raises(ValueError, match="activity_sigma"):
        WorldParams(activity_sigma=-0.1)


def test_onesearch_keeps_its_catalog_whatever_the_seed(tmp_path):
    """The preset fixes its catalog (``catalog_seed``): another seed draws other users and sessions on the same
    items, while the classic world's catalog follows its seed."""
    size = {"users": 300, "days": 1, "pre_days": 1, "items": 1000}

    def tables(preset: str, seed: int) -> tuple[dict, dict]:
        world = generate_world(preset_world_params(preset, **size, seed=seed), tmp_path / f"{preset}{seed}")
        return (pq.read_table(world / "truth" / "items.parquet").to_pydict(),
                pq.read_table(world / "sessions").select(["unit_id", "query"]).to_pydict())

    (items_a, sessions_a), (items_b, sessions_b) = tables("onesearch", 1), tables("onesearch", 2)
    assert items_a == items_b and sessions_a != sessions_b
    assert tables("classic", 1)[0] != tables("classic", 2)[0]


def test_onesearch_is_calibrated_at_the_demos_size_with_valid_ranker_settings():
    """The preset was calibrated at the demo's size, and the ranker settings it documents are the rankers' own
    constructor parameters (an arm's ``params:`` takes them as they are)."""
    from abplatform.rankers import make_ranker
    from abplatform.world.presets import CALIBRATION_SIZE, preset_ranker_params

    demo = yaml.safe_load((Path(__file__).parents[2] / "experiments" / "onesearch_v2_vs_v1.yaml").read_text())
    world = demo["data"]["world"]
    assert world["preset"] == "onesearch"
    assert {k: world.get(k, WorldParams.__dataclass_fields__[k].default) for k in CALIBRATION_SIZE} == CALIBRATION_SIZE
    for arm in demo["arms"]:  # the demo gives the settings the preset was calibrated with
        assert arm.get("params", {}) == preset_ranker_params("onesearch", arm["ranker"]), arm
    for ranker in ("cascade", "v1", "v2"):
        params = preset_ranker_params("onesearch", ranker)
        made = make_ranker(ranker, params)
        assert all(getattr(made, k) == v for k, v in params.items()), (ranker, params)
    assert preset_ranker_params("onesearch", "v2")["w_rel"] >= 0.45  # off the w_rel threshold near 0.3


def test_the_raters_scale_sets_grades_and_page_verdicts(tmp_path):
    """The raters' scale moves only the labels: the same world with stricter raters (grade 1 from relevance 0.26,
    a good page from a mean top-5 grade of 2.3) has the same sessions and responses, grades no higher on every
    pair (lower on some), and good pages a strict subset of the classic raters'; the truth carries the scale."""
    from abplatform.world.behaviour import RaterScale
    from abplatform.world.truth import load_truth

    strict = {"grade_cuts": (0.26, 0.45, 0.8), "page_good_threshold": 2.3}
    worlds = {name: generate_world(dataclasses.replace(preset_world_params("classic", **TINY), **knobs),
                                   tmp_path / name) for name, knobs in (("classic", {}), ("strict", strict))}
    read = {name: {t: pq.read_table(w / t).to_pydict() for t in ("sessions", "impressions", "relevance_labels",
                                                                  "page_labels")} for name, w in worlds.items()}
    for table in ("sessions", "impressions"):
        assert read["classic"][table] == read["strict"][table]
    grade = {name: {(q, i): g for q, i, g in zip(*(r["relevance_labels"][c] for c in ("query", "item_id", "grade")),
                                                  strict=True)} for name, r in read.items()}
    assert grade["classic"].keys() == grade["strict"].keys()
    lower = [grade["strict"][k] < g for k, g in grade["classic"].items()]
    assert all(grade["strict"][k] <= g for k, g in grade["classic"].items()) and any(lower)
    good = {name: {s for s, ok in zip(r["page_labels"]["session_id"], r["page_labels"]["good"], strict=True) if ok}
            for name, r in read.items()}
    assert good["strict"] < good["classic"]
    assert load_truth(worlds["strict"]).raters == RaterScale((0.26, 0.45, 0.8), 2.3, 0.3)
    assert load_truth(worlds["classic"]).raters == RaterScale()
    for bad in ({"grade_cuts": (0.5, 0.45, 0.8)}, {"page_good_threshold": 3.5}, {"page_rater_noise": 0.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            WorldParams(**bad)


def test_the_expected_page_verdict_is_the_raters_draws_mean():
    """``RaterScale.page_good_probability`` (what the calibration takes in expectation) is the share of pages the
    raters' draws (``judge_pages``) call good, per mean top-5 grade: 40,000 draws each, binomial bounds."""
    from abplatform.world.behaviour import RaterScale, judge_pages

    scale = RaterScale((0.26, 0.45, 0.8), 2.3, 0.3)
    n = 40_000
    for grades in ([3, 3, 2, 2, 1], [3, 3, 3, 2, 1], [3, 3, 3, 3, 0], [3, 3, 3, 3, 3]):
        page = np.tile(np.array([*grades, 0, 0, 0, 0, 0], np.int8), (n, 1))
        share = judge_pages(5, np.arange(n, dtype=np.int64), page, scale).mean()
        p = float(scale.page_good_probability(np.array([np.mean(grades)]))[0])
        assert abs(share - p) <= 4.5 * np.sqrt(p * (1 - p) / n) + 1e-12, (grades, share, p)


def test_extra_orders_grow_with_quality_up_to_the_cap():
    """``orders_quality_cap``: a purchase's orders beyond the first are Poisson with mean 0.25 + orders_quality x
    min(quality, cap); the oracle's draws for items of quality 0, 2, 4 and 8 (cap 3) match it (sample means of
    ~10^4 purchases each, Poisson bounds) and, without the cap (the classic world's), keep growing past 3."""
    from abplatform.world.behaviour import BehaviourModel, ItemTruth, ResponseCoefficients, SessionIntent

    quality = np.array([0.0, 2.0, 4.0, 8.0])
    n_items, n = len(quality), 40_000
    items = ItemTruth(leaf=np.zeros(n_items, np.int64), parent=np.zeros(n_items, np.int64),
                      attrs=np.zeros((n_items, 4), np.int64), price=np.full(n_items, 10.0),
                      median_price=np.full(n_items, 10.0), quality=quality)
    shown = np.full((n * n_items, 10), -1)
    shown[:, 0] = np.repeat(np.arange(n_items), n)  # each item alone at the top of n pages
    intent = SessionIntent(np.zeros(len(shown), np.int64), np.zeros(len(shown), np.int64),
                           np.full((len(shown), 4), -1), np.full(len(shown), np.inf))
    for cap in (3.0, None):
        coefficients = ResponseCoefficients(purchase_intercept=3.0, orders_quality=0.5, orders_quality_cap=cap)
        model = BehaviourModel(items, np.zeros((1, 1)), np.ones(1), coefficients=coefficients)
        r = model.respond(7, np.arange(len(shown), dtype=np.int64), intent, np.zeros(len(shown), np.int64), shown)
        bought = r.purchased[:, 0]
        extra = (r.orders[:, 0] - 1)[bought]
        item = shown[bought, 0]
        for i, q in enumerate(quality):
            lam = 0.25 + 0.5 * (q if cap is None else min(q, cap))
            m = (item == i).sum()
            assert m > 5_000 and abs(extra[item == i].mean() - lam) <= 4.5 * np.sqrt(lam / m), (cap, q)
