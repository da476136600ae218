"""Property test: on every row the verdict, the interval shown and the p-value shown come from one
test — verdict ⇔ interval excludes the null ⇔ p < α, unadjusted and adjusted alike — and the
relative effect's sign follows the sign of T − C, over thousands of random summaries: tiny counts,
heavy tails, ratio metrics, negative and near-zero baselines, every relative-CI method, every
correction and scope, one- and two-sided alternatives, guardrail tests and sequential looks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from abplatform.stats import MetricSpec, SequentialSpec, compare
from abplatform.stats.moments import suff_from_units

ALPHA = 0.05


def _units(rng: np.random.Generator, kind: str, n: int, lift: float) -> tuple[np.ndarray, np.ndarray | None]:
    if kind == "proportion":
        p = rng.choice([0.002, 0.01, 0.3])
        return (rng.random(n) < min(p * (1 + lift), 1)).astype(float), None
    if kind == "ratio":
        y = rng.poisson(rng.choice([1.0, 8.0]), n) + 1.0
        return rng.binomial(y.astype(int), rng.choice([0.005, 0.05, 0.4]) * (1 + lift)).astype(float), y
    shape = rng.choice(["normal", "lognormal", "negative", "near_zero"])
    if shape == "lognormal":  # heavy tails
        return rng.lognormal(0, 2.0, n) * (1 + lift), None
    if shape == "negative":  # a metric below zero, e.g. a net change
        return rng.normal(-10 * (1 + lift), 6, n), None
    if shape == "near_zero":  # a baseline within noise of zero
        return rng.normal(0.01 + lift, 1, n), None
    return rng.normal(5 * (1 + lift), 4, n), None


def _summary(rng: np.random.Generator, n_metrics: int, looks: int = 1,
             units: int | None = None) -> tuple[pd.DataFrame, dict[str, MetricSpec]]:
    rows, specs = [], {}
    for i in range(n_metrics):
        kind = rng.choice(["mean", "proportion", "ratio"])
        role = rng.choice(["primary", "secondary", "guardrail"])
        specs[f"m{i}"] = MetricSpec(
            type=kind, role=role, direction=rng.choice(["increase", "decrease"]),
            margin=rng.choice([None, 0.01, 0.1]) if role == "guardrail" else None,
            alternative=rng.choice(["two-sided", "greater", "less"]),
            equal_var=bool(kind != "ratio" and rng.random() < 0.3))
        n = units or int(rng.choice([2, 5, 30, 300, 3000]))
        for arm, lift in (("c", 0.0), ("t", rng.choice([0.0, 0.05, 0.3]))):
            x, y = _units(rng, kind, max(n, 2) * looks, lift)
            for day in range(1, looks + 1):
                k = len(x) * day // looks  # cumulative looks
                sums = suff_from_units(x[:k]) if y is None else suff_from_units(x[:k], y[:k])
                if kind == "ratio" and sums["sum_y"] == 0:
                    sums["sum_y"] = 1.0
                rows.append({"metric": f"m{i}", "arm": arm, "day": day, **{c: float(v) for c, v in sums.items()}})
    return pd.DataFrame(rows), specs


def _excludes(low: np.ndarray, high: np.ndarray, null: np.ndarray) -> np.ndarray:
    return (low > null) | (high < null)


def _check_rows(card: pd.DataFrame, alpha: float) -> int:
    scale = card["test_scale"].to_numpy()
    null = card["null_effect"].to_numpy()
    checked = 0

    def col(name: str) -> np.ndarray:  # the test's interval column, whatever its scale
        out = np.where(scale == "relative", card[f"rel_{name}"], card[f"abs_{name}"])
        if "or_ci_low" in card.columns:
            out = np.where(scale == "odds_ratio", card[f"or_{name}"], out)
        return out

    for suffix, p_col, level in (("", "p_value", alpha), ("_adjusted", "p_value_adjusted", alpha)):
        low, high = col(f"ci_low{suffix}"), col(f"ci_high{suffix}")
        lvl = card["alpha_adjusted"].to_numpy() if (suffix and p_col == "p_value") else level
        p = card[p_col].to_numpy()
        finite = np.isfinite(p)
        # a p-value within rounding of the level could fall either side; everything else must agree
        clear = finite & (np.abs(p - lvl) > 1e-7 * lvl)
        excl = _excludes(low, high, null)
        assert not (~finite & excl).any(), "a row without a p-value shows an interval that rejects"
        bad = clear & (excl != (p < lvl))
        shown = ["metric", "test_scale", "alternative", "null_effect", f"rel_ci_low{suffix}", f"rel_ci_high{suffix}",
                 f"abs_ci_low{suffix}", f"abs_ci_high{suffix}", p_col]
        assert not bad.any(), card.loc[bad, shown].to_string()
        checked += int(clear.sum())
    sig = card["significant"].to_numpy()
    p_adj = card["p_value_adjusted"].to_numpy()
    assert (sig == (np.nan_to_num(p_adj, nan=1.0) < alpha)).all()
    guard = card["role"].to_numpy() == "guardrail"
    increase = card["direction"].to_numpy() == "increase"
    effect = card["abs_effect"].to_numpy()
    favourable = np.where(increase, effect > 0, effect < 0)
    assert (card["improved"].to_numpy() == (~guard & sig & favourable)).all()
    assert not (card["improved"].to_numpy() & card["degraded"].to_numpy()).any()
    # the relative effect is signed like T − C, whatever the sign of the baseline
    r = card["rel_effect"].to_numpy()
    shown = np.isfinite(r) & (effect != 0)
    assert (np.sign(r[shown]) == np.sign(effect[shown])).all()
    return checked


@pytest.mark.parametrize("relative_ci", ["delta", "log", "fieller"])
@pytest.mark.parametrize("correction,scope", [("none", "primary"), ("holm", "primary"), ("holm", "all"),
                                              ("bh", "primary"), ("bh", "all")])
def test_fixed_horizon_rows_are_consistent(relative_ci, correction, scope):
    rng = np.random.default_rng([ord(ch) for ch in relative_ci + correction + scope])
    checked = 0
    for _ in range(40):
        suff, specs = _summary(rng, 12)
        for test in ("harm", "noninferiority"):
            card = compare(suff.drop(columns="day"), specs, "c", "t", relative_ci=relative_ci, correction=correction,
                           correction_scope=scope, guardrail_test=test, alpha=ALPHA)
            checked += _check_rows(card, ALPHA)
    assert checked > 1500


@pytest.mark.parametrize("method", ["confidence_sequence", "obrien_fleming"])
@pytest.mark.parametrize("relative_ci", ["delta", "log", "fieller"])
def test_sequential_rows_are_consistent(method, relative_ci):
    rng = np.random.default_rng([ord(ch) for ch in method + relative_ci])
    checked = 0
    for _ in range(6):
        suff, specs = _summary(rng, 6, looks=4, units=int(rng.choice([5, 30, 300])))  # one n: like a real log
        n_last = suff[(suff.metric == "m0") & (suff.day == 4)]["n"].sum()
        spec = SequentialSpec(method=method, look="day", tuning_n=5000, planned_n=float(n_last) * 1.2)
        daily = compare(suff, specs, "c", "t", relative_ci=relative_ci, sequential=spec, alpha=ALPHA)
        checked += _check_rows(daily, ALPHA)
        # the overall card at the last look, after the earlier looks: the same numbers as the daily one
        earlier = tuple(float(suff[(suff.metric == "m0") & (suff.day == d)]["n"].sum()) for d in (1, 2, 3))
        current = SequentialSpec(method=method, look="day", tuning_n=5000, planned_n=float(n_last) * 1.2,
                                 earlier_n=earlier)
        now = suff[suff.day == 4].drop(columns="day")
        checked += _check_rows(compare(now, specs, "c", "t", relative_ci=relative_ci, sequential=current, alpha=ALPHA,
                                       correction="holm"), ALPHA)
        overall = compare(now, specs, "c", "t", relative_ci=relative_ci, sequential=current, alpha=ALPHA)
        last = daily[daily.day == 4].reset_index(drop=True)
        np.testing.assert_allclose(overall["p_value"], last["p_value"], rtol=1e-9)
        np.testing.assert_allclose(overall["rel_ci_low"], last["rel_ci_low"], rtol=1e-9)
    assert checked > 100


@pytest.mark.parametrize("correction,scope", [("none", "primary"), ("holm", "all"), ("bh", "primary")])
def test_proportion_test_rows_are_consistent(correction, scope):
    """The proportion tests (wald, pooled, continuity, fisher) beside welch rows: verdict ⇔ interval
    excludes the null ⇔ p < α, unadjusted and adjusted, tiny to large counts, one- and two-sided."""
    rng = np.random.default_rng([ord(ch) for ch in "proportions" + correction + scope])
    checked = 0
    for _ in range(25):
        rows, specs = [], {}
        for i in range(8):
            test = str(rng.choice(["welch", "wald", "pooled", "continuity", "fisher"]))
            role = str(rng.choice(["primary", "secondary", "guardrail"]))
            margin = rng.choice([None, 0.05]) if role == "guardrail" and test in ("welch", "wald", "pooled") else None
            specs[f"m{i}"] = MetricSpec("proportion", role=role, direction=rng.choice(["increase", "decrease"]),
                                        margin=margin, alternative=rng.choice(["two-sided", "greater", "less"]),
                                        test=test)
            n = int(rng.choice([3, 20, 200, 5000]))
            p = float(rng.choice([0.02, 0.2, 0.6]))
            for arm, lift in (("c", 0.0), ("t", float(rng.choice([0.0, 0.2, 0.6])))):
                x = float(rng.binomial(n, min(p * (1 + lift), 1)))
                rows.append({"metric": f"m{i}", "arm": arm, "n": n, "sum_x": x, "sum_x2": x})
        for test in ("harm", "noninferiority"):
            card = compare(pd.DataFrame(rows), specs, "c", "t", correction=correction, correction_scope=scope,
                           guardrail_test=test, alpha=ALPHA)
            checked += _check_rows(card, ALPHA)
    assert checked > 500


def test_log_intervals_never_below_minus_100_percent():
    rng = np.random.default_rng(3)
    for _ in range(20):
        suff, specs = _summary(rng, 12)
        card = compare(suff.drop(columns="day"), specs, "c", "t", relative_ci="log")
        low = card["rel_ci_low"].to_numpy()
        assert (low[np.isfinite(low)] >= -1).all()


def test_negative_baseline_improvement_reads_positive():
    """A guardrail that improves from −10 to −5 is +50% (divided by |C|), not −50% and not breached."""
    rng = np.random.default_rng(4)
    xc, xt = rng.normal(-10, 3, 400), rng.normal(-5, 3, 400)
    rows = [{"metric": "g", "arm": a, **{k: float(v) for k, v in suff_from_units(x).items()}}
            for a, x in (("c", xc), ("t", xt))]
    for rci in ("delta", "log", "fieller"):
        for test in ("harm", "noninferiority"):
            r = compare(pd.DataFrame(rows), {"g": MetricSpec("mean", role="guardrail", margin=0.05)}, "c", "t",
                        relative_ci=rci, guardrail_test=test).iloc[0]
            assert r.rel_effect == pytest.approx((xt.mean() - xc.mean()) / abs(xc.mean()))
            assert r.rel_effect > 0.4 and not r.breached


def test_baseline_within_noise_of_zero_is_not_estimable():
    rng = np.random.default_rng(5)
    xc, xt = rng.normal(0.0, 1, 50), rng.normal(0.5, 1, 50)
    xc += 0.02 - xc.mean()  # a control mean of 0.02 with a standard error of about 0.14
    rows = [{"metric": "m", "arm": a, **{k: float(v) for k, v in suff_from_units(x).items()}}
            for a, x in (("c", xc), ("t", xt))]
    from scipy import stats

    r = compare(pd.DataFrame(rows), {"m": MetricSpec("mean")}, "c", "t").iloc[0]
    assert r.test_scale == "absolute" and np.isnan(r.rel_effect) and np.isnan(r.rel_ci_low)
    assert r.p_value == pytest.approx(stats.ttest_ind(xt, xc, equal_var=False).pvalue, rel=1e-10)


def test_real_log_example_reads_promote_only_when_its_interval_excludes_zero():
    """Issue 14's real click log: 10,000 impressions per logging policy, CTR 0.46% → 0.69%. The delta
    interval [−5.81%, +105.81%] was printed beside the absolute test's p = 0.0315 and PROMOTE; now
    each method's p-value is its own interval's test."""
    from scipy import stats

    rows = [{"metric": "ctr", "arm": "random", "n": 10_000, "sum_x": 46, "sum_x2": 46},
            {"metric": "ctr", "arm": "bts", "n": 10_000, "sum_x": 69, "sum_x2": 69}]
    spec = {"ctr": MetricSpec("proportion")}
    delta = compare(pd.DataFrame(rows), spec, "random", "bts", relative_ci="delta").iloc[0]
    assert (delta.rel_ci_low, delta.rel_ci_high) == pytest.approx((-0.0581, 1.0581), abs=5e-5)
    assert delta.p_value > 0.05 and not delta.significant and not delta.improved
    assert delta.abs_p_value == pytest.approx(0.0315, abs=5e-5)  # the absolute test, now beside the absolute CI
    fieller = compare(pd.DataFrame(rows), spec, "random", "bts").iloc[0]
    assert fieller.rel_ci_low > 0 and fieller.improved
    # Fieller's test of no change is Welch's t-test of the difference
    x_c, x_t = np.r_[np.ones(46), np.zeros(9954)], np.r_[np.ones(69), np.zeros(9931)]
    welch = stats.ttest_ind(x_t, x_c, equal_var=False)
    # the engine's proportion variance is p(1 − p) (ddof 0), scipy's ddof 1: a 1e-4 relative difference
    assert fieller.p_value == pytest.approx(welch.pvalue, rel=2e-3)


@pytest.mark.parametrize("sequential", [None, SequentialSpec(method="obrien_fleming", planned_n=200),
                                        SequentialSpec(method="confidence_sequence")])
@pytest.mark.parametrize("relative_ci", ["delta", "log", "fieller"])
def test_a_certain_harm_breaches_the_guardrail(relative_ci, sequential):
    """Arms without variance and different means (z = ±∞) are a certain result: p = 0, breached —
    not a missing p-value that lets a clearly worse guardrail pass."""
    rows = [dict(metric="items_shown", arm="c", n=50, sum_x=500, sum_x2=5000),  # always 10
            dict(metric="items_shown", arm="t", n=50, sum_x=400, sum_x2=3200),  # always 8
            dict(metric="error_rate", arm="c", n=5, sum_x=0, sum_x2=0),  # 0 of 5
            dict(metric="error_rate", arm="t", n=5, sum_x=5, sum_x2=5)]  # 5 of 5
    specs = {"items_shown": MetricSpec("mean", role="guardrail", margin=0.05),
             "error_rate": MetricSpec("proportion", role="guardrail", direction="decrease")}
    card = compare(pd.DataFrame(rows), specs, "c", "t", relative_ci=relative_ci, sequential=sequential,
                   correction="holm", correction_scope="all")
    assert card["breached"].all() and (card["p_value"] < 1e-15).all()
    _check_rows(card, ALPHA)
