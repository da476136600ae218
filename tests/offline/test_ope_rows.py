"""The per-row off-policy estimand on slot-level logs (partial pages, stochastic targets): the platform
against an independent numpy transcription of obp's formulas, SNIPW on partial pages, coverage of the
exact truth, the stochastic target table's validation, the loaders and the report objects."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abplatform.errors import InputError
from abplatform.offline import ope
from abplatform.offline.policy_evaluation import evaluate_policy, on_policy_value
from abplatform.offline.target_policy import DeterministicPages, load_target_policy
from abplatform.report.model import _build
from abplatform.report.offline_policy import OfflinePolicyEvaluation
from tests.offline import obp_reference as obp
from tests.offline.slot_world import (
    ITEM_IDS,
    K,
    SlotLog,
    SlotWorld,
    deterministic_target,
    draw_log,
    item_index,
    make_world,
    stochastic_target,
    true_values,
)

ESTIMATORS = ("ips", "snips", "dr", "dm")


@pytest.fixture(scope="module")
def world() -> SlotWorld:
    return make_world(seed=0)


def reward_model(world: SlotWorld, log: SlotLog) -> ope.RewardModel:
    return lambda rows, items, positions: world.q_hat[log.ctx[rows], positions - 1, item_index(items)]


def reference(world: SlotWorld, log: SlotLog, table: np.ndarray):
    """obp's dense inputs for the log, and its estimates per row and per slot."""
    action_dist = np.transpose(table[log.ctx], (0, 2, 1))  # (n, n_actions, len_list)
    q_hat = np.transpose(world.q_hat[log.ctx], (0, 2, 1))
    args = (log.rows.rewards, log.item, log.slot, log.rows.propensity, action_dist, q_hat)
    return args, obp.policy_values(*args), obp.by_position(*args)


LOGS = {"full pages": {"partial": 0.0}, "partial pages": {"partial": 0.6}, "one slot per page": {"partial": 1.0},
        "epsilon-greedy, partial": {"partial": 0.5, "epsilon": 0.3}}


@pytest.mark.parametrize("log_kind", list(LOGS))
@pytest.mark.parametrize("target_kind", ["stochastic per context", "stochastic per slot", "deterministic"])
def test_platform_equals_obp_formulas(world, log_kind, target_kind):
    log = draw_log(world, 3000, seed=1, **LOGS[log_kind])
    if target_kind == "deterministic":
        target, table = deterministic_target(world, log)
    else:
        target, table = stochastic_target(world, by_context=target_kind == "stochastic per context")
    args, per_row, per_slot = reference(world, log, table)
    res = ope.evaluate_rows(log.rows, target, reward_model(world, log), warn=False)
    slots = sorted(per_slot)
    for name in ESTIMATORS:
        e = res[name]
        assert e.per_row == pytest.approx(per_row[name], abs=1e-9, rel=1e-9), name
        np.testing.assert_array_equal(e.positions, np.array(slots) + 1)
        np.testing.assert_allclose(e.per_position, [per_slot[k][name] for k in slots], rtol=1e-9, atol=1e-12)
        assert e.clicks_per_session == pytest.approx(sum(per_slot[k][name] for k in slots), abs=1e-9, rel=1e-9)
    # the session-clustered standard errors against a loop over rows (per row and per page)
    rounds = obp.round_rewards(*args)
    w = args[4][np.arange(len(log.item)), log.item, log.slot] / log.rows.propensity
    sessions = log.rows.session_ids
    for name in ESTIMATORS:
        weights = w if name == "snips" else np.ones(len(w))
        row_se = obp.clustered_se(rounds[name], weights, np.zeros(len(w), int), sessions)
        page_se = obp.clustered_se(rounds[name], weights, log.slot, sessions)
        assert res[name].per_row_se == pytest.approx(row_se, rel=1e-9), name
        assert res[name].se == pytest.approx(page_se, rel=1e-9), name


def test_positions_are_kept_as_logged(world):
    """A log of slots 2 and 3 only estimates slots 2 and 3 (not renumbered to 1..2): each slot's value is
    the one the full log gives there."""
    log = draw_log(world, 4000, seed=2, partial=0.3)
    target, _ = stochastic_target(world)
    full = ope.evaluate_rows(log.rows, target, reward_model(world, log), warn=False)
    later = np.flatnonzero(log.rows.positions >= 2)
    sub = SlotLog(log.rows.subset(later), log.ctx[later], log.slot[later], log.item[later], log.session_ctx,
                  log.session_ids)
    part = ope.evaluate_rows(sub.rows, target, reward_model(world, sub), warn=False)
    for name in ESTIMATORS:
        np.testing.assert_array_equal(part[name].positions, [2, 3])
        np.testing.assert_allclose(part[name].per_position, full[name].per_position[1:], rtol=1e-12)
        np.testing.assert_allclose(part[name].per_position_se, full[name].per_position_se[1:], rtol=1e-9)
    np.testing.assert_array_equal(part.weights.positions, [2, 3])


def test_snipw_on_partial_pages_is_close_to_ipw(world):
    """The regression: on a log keeping one slot of each 3-slot page, SNIPW per row came out 3x IPW (it was
    a sum over positions beside a per-row mean). Unbiased setting, large n: both estimate the same value."""
    log = draw_log(world, 60_000, seed=3, partial=1.0)
    target, table = deterministic_target(world, log)
    res = ope.evaluate_rows(log.rows, target, warn=False)
    ips, snips = res["ips"], res["snips"]
    assert 0.9 < snips.per_row / ips.per_row < 1.1
    assert abs(snips.per_row - ips.per_row) < 3 * ips.per_row_se
    truth_row, truth_slot, truth_page = true_values(world, log, table)
    for e in (ips, snips):
        assert abs(e.per_row - truth_row) < 4 * e.per_row_se
        assert abs(e.clicks_per_session - truth_page) < 4 * e.se
        assert np.all(np.abs(e.per_position - truth_slot) < 4 * e.per_position_se)
    # the per-page value sums the slots; per row it is their mean weighted by the rows logged at each slot
    assert snips.clicks_per_session == pytest.approx(snips.per_position.sum())
    assert ips.per_row == pytest.approx(np.average(ips.per_position, weights=res.position_rows))


def test_intervals_cover_the_exact_truth(world):
    """200 independent logs (partial pages, PBM clicks): the 95% session-clustered intervals of IPS, SNIPS and
    DR cover the exact value of each target, per row and per page, in at least 90% of them (measured:
    93.5-98% in all 12 cells). 5,000 sessions per log: the stochastic target's median ESS per position is
    ~140; at 1,500 sessions (ESS ~40) its IPS intervals covered 88%, what the weight-explosion warning is
    for."""
    reps = 200
    names = ("ips", "snips", "dr")
    cover = {(t, name, what): 0 for t in ("stochastic", "deterministic") for name in names for what in ("row", "page")}
    stochastic, stochastic_table = stochastic_target(world)
    for r in range(reps):
        log = draw_log(world, 5000, seed=100 + r, partial=0.5, epsilon=0.8)
        deterministic, deterministic_table = deterministic_target(world, log)
        for kind, target, table in (("stochastic", stochastic, stochastic_table),
                                    ("deterministic", deterministic, deterministic_table)):
            truth_row, _, truth_page = true_values(world, log, table)
            res = ope.evaluate_rows(log.rows, target, reward_model(world, log), warn=False)
            for name in names:
                lo, hi = res[name].per_row_ci
                cover[(kind, name, "row")] += lo <= truth_row <= hi
                lo, hi = res[name].ci
                cover[(kind, name, "page")] += lo <= truth_page <= hi
    rates = {key: hits / reps for key, hits in cover.items()}
    assert min(rates.values()) >= 0.90, rates
    assert max(rates.values()) <= 0.99, rates  # intervals are not vacuous


def test_dm_with_the_true_model_is_the_truth(world):
    log = draw_log(world, 2000, seed=5, partial=0.5)
    target, table = stochastic_target(world)
    exact = world.click_probability()
    res = ope.evaluate_rows(log.rows, target, lambda i, a, k: exact[log.ctx[i], k - 1, item_index(a)], warn=False)
    truth_row, truth_slot, truth_page = true_values(world, log, table)
    assert res["dm"].per_row == pytest.approx(truth_row)
    np.testing.assert_allclose(res["dm"].per_position, truth_slot)
    assert res["dm"].clicks_per_session == pytest.approx(truth_page)
    # DR with the exact model: tighter than IPS
    assert res["dr"].per_row_se < res["ips"].per_row_se


def test_click_model_rewards_is_the_item_position_prediction(world):
    """click_model_rewards asks a click model about a page holding the item alone at its position; for a PBM
    that is examination[k] x attraction(query, item)."""

    class ToyPBM:
        def click_probabilities(self, query_ids, item_ids):
            shown = item_ids >= 0
            att = np.where(shown, world.attraction[query_ids[:, None], item_index(np.where(shown, item_ids, 1000))], 0)
            return att * np.array([1.0, 0.6, 0.35])[: item_ids.shape[1]]

    log = draw_log(world, 1000, seed=6, partial=0.5)
    target, _ = stochastic_target(world)
    vocab = {str(c): c for c in range(world.n_ctx)}
    via_model = ope.evaluate_rows(log.rows, target, ope.click_model_rewards(ToyPBM(), vocab, log.ctx), warn=False)
    exact = world.click_probability()
    direct = ope.evaluate_rows(log.rows, target, lambda i, a, k: exact[log.ctx[i], k - 1, item_index(a)], warn=False)
    assert via_model["dm"].per_row == pytest.approx(direct["dm"].per_row, rel=1e-12)
    assert via_model["dr"].clicks_per_session == pytest.approx(direct["dr"].clicks_per_session, rel=1e-12)


def test_effective_sample_size_and_match_rate(world):
    log = draw_log(world, 3000, seed=7, partial=0.5)
    target, table = stochastic_target(world)
    res = ope.evaluate_rows(log.rows, target, warn=False)
    w = table[log.ctx, log.slot, log.item] / log.rows.propensity
    assert res.weights.ess_total == pytest.approx(w.sum() ** 2 / (w ** 2).sum())
    for j in range(K):
        wk = w[log.slot == j]
        assert res.weights.ess[j] == pytest.approx(wk.sum() ** 2 / (wk ** 2).sum())
        assert res.weights.match_rate[j] == pytest.approx(table[log.ctx, log.slot, log.item][log.slot == j].mean())
        assert res.weights.max_weight_share[j] == pytest.approx(wk.max() / wk.sum())
    np.testing.assert_array_equal(res.position_rows, np.bincount(log.slot))


def test_missing_propensity_of_a_row_the_target_can_show(world):
    log = draw_log(world, 500, seed=8)
    target, table = stochastic_target(world)
    shows = table[log.ctx, log.slot, log.item] > 0
    i = int(np.flatnonzero(shows)[0])
    prop = log.rows.propensity.copy()
    prop[i] = np.nan
    broken = dataclasses.replace(log.rows, propensity=prop)
    with pytest.raises(InputError, match=rf"propensity is null for 1 logged rows .*session "
                                         rf"{log.rows.session_ids[i]}, position {log.rows.positions[i]}"):
        ope.evaluate_rows(broken, target)
    # a row the target never shows there weighs 0: its propensity is not needed
    prop = log.rows.propensity.copy()
    prop[~shows] = np.nan
    ope.evaluate_rows(dataclasses.replace(log.rows, propensity=prop), target, warn=False)


def test_weight_explosion_is_flagged_per_logged_position(world):
    log = draw_log(world, 300, seed=9, partial=0.5)
    target, _ = stochastic_target(world)
    with pytest.warns(ope.WeightExplosionWarning, match="ESS"):
        res = ope.evaluate_rows(log.rows, target)
    assert res.weights.exploded and res.weights.reasons
    # a target item no logged row has at slot 3: no support there
    pages = ITEM_IDS[world.target_top[log.session_ctx]].copy()
    pages[:, 2] = 99
    with pytest.warns(ope.WeightExplosionWarning, match=r"no logged support at positions \[3\]"):
        ope.evaluate_rows(log.rows, DeterministicPages(log.session_ids, pages))


# --------------------------------------------------------------------------------------------
# the stochastic target table
# --------------------------------------------------------------------------------------------
def write_csv(path, text: str):
    path.write_text(text)
    return path


def test_table_from_csv_and_parquet_equals_the_arrays(world, tmp_path):
    policy, table = stochastic_target(world)
    c, k, a = np.nonzero(table > -1)  # every (context, slot, item), zeros included
    data = {"context": c.astype(np.int64), "position": k + 1, "item_id": ITEM_IDS[a], "probability": table[c, k, a]}
    order = np.random.default_rng(0).permutation(len(c))  # the file's row order does not matter
    pq.write_table(pa.table({name: v[order] for name, v in data.items()}), tmp_path / "policy.parquet")
    lines = ["position,item_id,probability,context"] + [
        f"{k_},{a_},{float(p_)!r},{c_}" for c_, k_, a_, p_ in zip(*(data[x][order] for x in data), strict=True)]
    write_csv(tmp_path / "policy.csv", "\n".join(lines) + "\n")
    log = draw_log(world, 800, seed=10)
    expected = ope.evaluate_rows(log.rows, policy, warn=False)
    for name in ("policy.parquet", "policy.csv"):
        loaded = load_target_policy(tmp_path / name)
        assert loaded.description == f"stochastic policy {tmp_path / name}"
        got = ope.evaluate_rows(log.rows, loaded, warn=False)
        assert got["ips"].per_row == pytest.approx(expected["ips"].per_row, rel=1e-12)
        assert got["snips"].clicks_per_session == pytest.approx(expected["snips"].clicks_per_session, rel=1e-12)


def test_table_per_slot_without_context(tmp_path):
    path = write_csv(tmp_path / "p.csv", "position,item_id,probability\n1,5,0.75\n1,6,0.25\n2,6,1\n")
    policy = load_target_policy(path)
    rows = ope.LoggedRows(np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]), np.array([5, 5, 6, 6]),
                          np.array([1.0, 0.0, 1.0, 1.0]), np.full(4, 0.5))
    np.testing.assert_allclose(policy.probabilities(rows, rows.item_ids), [0.75, 0.0, 0.25, 1.0])
    res = ope.evaluate_rows(rows, policy, warn=False)
    # by hand: w = [1.5, 0, 0.5, 2], r = [1, 0, 1, 1]: IPW per row = (1.5 + 0.5 + 2) / 4
    assert res["ips"].per_row == pytest.approx(1.0)
    assert res["snips"].per_row == pytest.approx(4.0 / 4.0)
    np.testing.assert_allclose(res["ips"].per_position, [(1.5 + 0.5) / 2, 2 / 2])


BAD_TABLES = [
    ("context,position,item_id,probability\na,1,5,0.6\na,1,6,0.3\nb,1,5,1\n",
     r"^{path}:2: the probabilities of context 'a', position 1 sum to 0.9, not 1 \(tolerance 1e-06; 2 rows\)$"),
    ("position,item_id,probability\n1,5,1.1\n1,6,-0.1\n",
     r"^{path}:2: probability 1.1 is not in \[0, 1\]$"),
    ("position,item_id,probability\n1,5,0.5\n1,6,0.5\n2,5,-0.25\n2,6,1.25\n",
     r"^{path}:4: probability -0.25 is not in \[0, 1\]$"),
    ("position,item_id,probability,weight\n1,5,1,3\n", r"^{path}: unknown column 'weight' \(expected context"),
    ("position,item,probability\n1,5,1\n", r"^{path}: unknown column 'item'"),
    ("position,probability\n1,1\n", r"^{path}: missing column 'item_id'"),
    ("position,item_id,probability\n0,5,1\n", r"^{path}:2: position 0 is not a position \(1, 2, ...\)$"),
    ("position,item_id,probability\n1,5,0.5\n1,5,0.5\n", r"^{path}:3: position 1, item 5 again \(first at {path}:2\)$"),
    ("position,item_id,probability\n1,5,\n", r"^{path}:2: probability is empty$"),
    ("position,item_id,probability\n1,5,x\n", r"^{path}:2: probability 'x' is not a number$"),
    ("position,item_id,probability\n", r"^{path}: the target policy table has no rows$"),
]


@pytest.mark.parametrize("text,message", BAD_TABLES)
def test_bad_tables_name_file_and_row(tmp_path, text, message):
    path = write_csv(tmp_path / "policy.csv", text)
    with pytest.raises(InputError) as err:
        load_target_policy(path)
    assert "\n" not in str(err.value)
    assert re.search(message.format(path=re.escape(str(path))), str(err.value)), str(err.value)


def test_bad_parquet_table_names_the_row(tmp_path):
    path = tmp_path / "policy.parquet"
    pq.write_table(pa.table({"position": [1, 1, 2], "item_id": [5, 6, 5], "probability": [0.5, 0.5, 0.999]}), path)
    with pytest.raises(InputError, match=rf"^{path}: row 3: the probabilities of position 2 sum to 0.999, not 1"):
        load_target_policy(path)
    ok = pa.table({"position": [1, 1], "item_id": [5, 6], "probability": [0.5, 0.5 + 5e-7]})  # within 1e-6
    pq.write_table(ok, path)
    assert len(load_target_policy(path)) == 2


def test_a_logged_row_the_table_does_not_cover(tmp_path):
    policy = load_target_policy(write_csv(tmp_path / "p.csv", "context,position,item_id,probability\n"
                                                           "q1,1,5,1\nq1,2,6,1\nq2,1,5,1\n"))
    rows = ope.LoggedRows(np.array([1, 1, 2, 2]), np.array([1, 2, 1, 2]), np.array([5, 6, 5, 6]), np.ones(4),
                          np.full(4, 0.5), np.array(["q1", "q1", "q2", "q2"], object))
    with pytest.raises(InputError, match=r"p.csv: no target probabilities for context 'q2' at position 2 "
                                         r"\(logged session 2; 1 logged rows without\)"):
        ope.evaluate_rows(rows, policy)
    with pytest.raises(InputError, match="per context, but the log was loaded without a context column"):
        ope.evaluate_rows(dataclasses.replace(rows, contexts=None), policy)


# --------------------------------------------------------------------------------------------
# loaders and report objects
# --------------------------------------------------------------------------------------------
def test_loaded_rows_are_the_logged_pages(small_world):
    logged = ope.load_logged_pages(small_world, candidates=False)
    from_pages = logged.rows()
    rows = ope.load_logged_rows(small_world, context="query")
    keep = rows.positions <= 10
    np.testing.assert_array_equal(rows.session_ids[keep], from_pages.session_ids)
    np.testing.assert_array_equal(rows.positions[keep], from_pages.positions)
    np.testing.assert_array_equal(rows.item_ids[keep], from_pages.item_ids)
    np.testing.assert_array_equal(rows.rewards[keep], from_pages.rewards)
    np.testing.assert_array_equal(rows.contexts[keep], from_pages.contexts)


def test_loaders_name_a_missing_column(tmp_path):
    impressions = {"session_id": [1, 2], "position": [1, 1], "item_id": [5, 6], "clicked": [True, False]}
    pq.write_table(pa.table({"session_id": [1, 2], "unit_id": ["u", "v"]}), tmp_path / "sessions.parquet")
    pq.write_table(pa.table(impressions), tmp_path / "impressions.parquet")
    with pytest.raises(InputError, match=r"table sessions has no column 'query'"):
        ope.load_logged_pages(tmp_path, candidates=False)
    with pytest.raises(InputError, match=r"table impressions has no column 'propensity'"):
        ope.load_logged_rows(tmp_path)
    pq.write_table(pa.table({**impressions, "propensity": [0.5, None]}), tmp_path / "impressions.parquet")
    with pytest.raises(InputError, match=r"table sessions has no column 'segment'"):
        ope.load_logged_rows(tmp_path, context="segment")
    rows = ope.load_logged_rows(tmp_path, context="unit_id")
    np.testing.assert_array_equal(rows.contexts, ["u", "v"])
    np.testing.assert_array_equal(rows.propensity, [0.5, np.nan])
    np.testing.assert_array_equal(ope.load_logged_rows(tmp_path, context="session_id").contexts, [1, 2])


def test_evaluate_policy_builds_the_report(world):
    log = draw_log(world, 2000, seed=11, partial=0.5)
    target, _ = deterministic_target(world, log)
    res = ope.evaluate_rows(log.rows, target, reward_model(world, log), warn=False)
    on = on_policy_value(log.rows.rewards, log.rows.session_ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ope.WeightExplosionWarning)
        report = evaluate_policy(log.rows, target, reward_model(world, log), on_policy=on)
    assert [e.estimator for e in report.estimates] == list(ESTIMATORS)
    assert report.n_rows == len(log.rows) and report.n_sessions == len(np.unique(log.rows.session_ids))
    assert report.target == "deterministic ranker" and "per logged impression row" in report.estimand
    for e in report.estimates:
        r = res[e.estimator]
        assert (e.value, e.se, e.ci_low, e.ci_high) == (r.per_row, r.per_row_se, *r.per_row_ci)
        assert (e.page_value, e.page_se, e.page_ci_low, e.page_ci_high) == (r.clicks_per_session, r.se, *r.ci)
        assert [p.position for p in e.per_position] == [1, 2, 3]
        assert [p.value for p in e.per_position] == r.per_position.tolist()
        assert [p.n_rows for p in e.per_position] == res.position_rows.tolist()
    assert report.ess == res.weights.ess_total
    assert [p.ess for p in report.positions] == res.weights.ess.tolist()
    # JSON round trip through the report model's own reader (as report.json will be read)
    text = json.dumps(dataclasses.asdict(report), allow_nan=False)
    assert _build(OfflinePolicyEvaluation, json.loads(text), "offline_policy") == report


def test_report_warns_about_target_positions_the_log_never_has(world):
    log = draw_log(world, 2000, seed=12, partial=0.0)
    later = log.rows.subset(np.flatnonzero(log.rows.positions >= 2))
    target, _ = deterministic_target(world, log)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ope.WeightExplosionWarning)
        report = evaluate_policy(later, target)
    assert [p.position for p in report.positions] == [2, 3]
    assert any("positions [1], which the log never has" in w for w in report.warnings), report.warnings
    assert report.estimate("dr") is None and report.estimate("ips") is not None


def test_on_policy_value_clusters_by_session():
    g = np.random.default_rng(0)
    rewards = (g.random(3000) < 0.1).astype(float)
    one_per_session = on_policy_value(rewards, np.arange(3000))
    assert one_per_session.value == pytest.approx(rewards.mean())
    assert one_per_session.se == pytest.approx(rewards.std(ddof=1) / np.sqrt(3000))
    # three identical rows per session: the interval of one row per session, not sqrt(3) narrower (as if
    # the rows were independent)
    tripled = on_policy_value(np.repeat(rewards, 3), np.repeat(np.arange(3000), 3))
    assert tripled.value == pytest.approx(rewards.mean())
    assert tripled.se == pytest.approx(one_per_session.se, rel=1e-9)
    assert (tripled.n_rows, tripled.n_sessions) == (9000, 3000)
