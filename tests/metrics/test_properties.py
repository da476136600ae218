"""Property-based tests (hypothesis, derandomised) of the statistics' invariants and of the metrics
SQL against a numpy brute force on random event logs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from abplatform.contract import TABLES
from abplatform.dataset import Dataset
from abplatform.metrics import BUILTIN_METRICS
from abplatform.metrics.engine import MetricsEngine
from abplatform.stats import MetricSpec, compare, suff_from_units

FAST = settings(derandomize=True, max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ALPHAS = st.sampled_from([0.01, 0.05, 0.1, 0.2])


@st.composite
def two_arms(draw, kind: str):
    """Per-unit values of two arms: (x_c, y_c, x_t, y_t); y is None unless ``kind`` is ratio."""
    out = []
    for _ in range(2):
        n = draw(st.integers(2, 40))
        if kind == "proportion":
            x = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0])))
            y = None
        elif kind == "mean":
            x = draw(arrays(np.float64, n, elements=st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 3))))
            y = None
        else:
            y = draw(arrays(np.float64, n, elements=st.integers(1, 30).map(float)))
            frac = draw(arrays(np.float64, n, elements=st.floats(0, 1)))
            x = np.floor(frac * y)
        out += [x, y]
    return kind, out


def _suff(kind: str, values: list, names=("control", "treatment")) -> pd.DataFrame:
    rows = []
    for arm, x, y in ((names[0], values[0], values[1]), (names[1], values[2], values[3])):
        s = suff_from_units(x, y) if y is not None else suff_from_units(x)
        rows.append({"metric": "m", "arm": arm, **{k: float(v) for k, v in s.items()}})
    return pd.DataFrame(rows)


def _card(kind, values, alpha=0.05, relative_ci="delta", control="control", treatment="treatment", names=None):
    suff = _suff(kind, values, names or ("control", "treatment"))
    return compare(suff, {"m": MetricSpec(type=kind)}, control, treatment, alpha=alpha,
                   relative_ci=relative_ci).iloc[0]


KINDS = st.sampled_from(["proportion", "mean", "ratio"]).flatmap(two_arms)


@FAST
@given(data=KINDS, alpha=ALPHAS, rel=st.sampled_from(["delta", "log"]))
def test_ci_contains_the_estimate(data, alpha, rel):
    kind, values = data
    r = _card(kind, values, alpha, rel)
    assume(np.isfinite(r.abs_se) and r.abs_se > 0)
    assert r.abs_ci_low <= r.abs_effect <= r.abs_ci_high
    if np.isfinite(r.rel_ci_low) and np.isfinite(r.rel_ci_high):
        assert r.rel_ci_low - 1e-12 <= r.rel_effect <= r.rel_ci_high + 1e-12


@FAST
@given(data=KINDS, alpha=ALPHAS)
def test_p_below_alpha_exactly_when_the_ci_excludes_zero(data, alpha):
    kind, values = data
    r = _card(kind, values, alpha)
    assume(np.isfinite(r.abs_se) and r.abs_se > 0 and np.isfinite(r.abs_p_value))
    q = (r.abs_ci_high - r.abs_ci_low) / (2 * r.abs_se)
    assume(abs(abs(r.abs_effect) / r.abs_se - q) > 1e-9 * q)  # not on the boundary to rounding
    excludes_zero = r.abs_ci_low > 0 or r.abs_ci_high < 0
    assert (r.abs_p_value < alpha) == excludes_zero  # the absolute interval and its own test
    assert bool(r.significant) == (r.p_value < alpha)  # the verdict reads the row's test


@FAST
@given(data=KINDS, alpha=ALPHAS)
def test_swapping_the_arms_negates_the_absolute_effect(data, alpha):
    kind, values = data
    ab = _card(kind, values, alpha)
    ba = _card(kind, values, alpha, control="treatment", treatment="control")
    assert ba.abs_effect == pytest.approx(-ab.abs_effect, rel=1e-12, abs=1e-12)
    if np.isfinite(ab.abs_p_value):  # the absolute test is symmetric; a relative one divides by the control
        assert ba.abs_p_value == pytest.approx(ab.abs_p_value, rel=1e-9, abs=1e-15)
        assert ba.abs_ci_low == pytest.approx(-ab.abs_ci_high, rel=1e-9, abs=1e-12)
        assert ba.abs_ci_high == pytest.approx(-ab.abs_ci_low, rel=1e-9, abs=1e-12)


@FAST
@given(data=two_arms("ratio"), a=st.floats(1e-3, 1e3), b=st.floats(1e-3, 1e3), alpha=ALPHAS)
def test_ratio_metrics_are_invariant_to_rescaling(data, a, b, alpha):
    kind, (xc, yc, xt, yt) = data
    base = _card(kind, [xc, yc, xt, yt], alpha)
    scaled = _card(kind, [a * xc, b * yc, a * xt, b * yt], alpha)
    assume(np.isfinite(base.p_value) and base.abs_se > 0 and base.control_value > 0)
    # the ratio scales by a/b; everything relative, every p-value and the decision are unchanged
    assert scaled.control_value == pytest.approx(base.control_value * a / b, rel=1e-9)
    assert scaled.abs_effect == pytest.approx(base.abs_effect * a / b, rel=1e-7, abs=1e-12)
    for col in ("rel_effect", "rel_ci_low", "rel_ci_high"):
        assert scaled[col] == pytest.approx(base[col], rel=1e-7, abs=1e-10, nan_ok=True)
    assert scaled.p_value == pytest.approx(base.p_value, rel=1e-6, abs=1e-12)
    assert scaled.significant == base.significant


# --- the SQL sufficient statistics against numpy ----------------------------------------------

START = datetime(2026, 6, 1, tzinfo=timezone.utc)


def random_log(seed: int, users: int, folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """A random event log in the contract's schema (written as parquet) and its raw arrays."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arm_of = rng.choice(np.array(["control", "treatment", None], dtype=object), size=users, p=[0.45, 0.45, 0.1])
    raw: dict[str, dict[str, np.ndarray]] = {}
    sid0 = 1
    queries = np.array(["q0", "q1", "q2"], dtype=object)
    for prefix, start in (("", START), ("pre_", START - timedelta(days=7))):
        per_user = rng.integers(0, 4, size=users)
        unit = np.repeat(np.arange(users), per_user)
        n = len(unit)
        sid = np.arange(sid0, sid0 + n, dtype=np.int64)
        sid0 += n
        query = queries[rng.integers(0, 3, size=n)]
        sessions = {"session_id": sid, "unit": unit, "arm": arm_of[unit], "query": query}
        k = rng.integers(0, 6, size=n)  # page sizes, 0 = no impressions
        isid = np.repeat(sid, k)
        pos = np.concatenate([np.arange(1, j + 1) for j in k]) if n else np.zeros(0, int)
        m = len(isid)
        clicked = rng.random(m) < 0.3
        purchased = clicked & (rng.random(m) < 0.4)
        orders = np.where(purchased, rng.integers(1, 4, size=m), 0)
        item = rng.integers(0, 8, size=m)
        imps = {"session_id": isid, "position": pos, "item_id": item, "clicked": clicked, "purchased": purchased,
                "orders": orders}
        raw[prefix + "sessions"], raw[prefix + "impressions"] = sessions, imps
        ts = [start + timedelta(minutes=int(v)) for v in rng.integers(0, 7 * 1440, size=n)]
        pq.write_table(pa.table({
            "session_id": sid, "unit_id": [f"u{u}" for u in unit], "ts": ts, "query": query.tolist(),
            "query_segment": ["head"] * n, "query_complexity": ["simple"] * n, "is_new_user": unit % 3 == 0,
            "arm": arm_of[unit].tolist() if prefix == "" else [None] * n}, schema=TABLES["sessions"].schema),
            folder / f"{prefix}sessions.parquet")
        pq.write_table(pa.table({
            "session_id": isid, "position": pos.astype(np.int16), "item_id": item.astype(np.int64),
            "clicked": clicked, "purchased": purchased, "orders": orders.astype(np.int32),
            "revenue": orders * 9.5, "propensity": np.full(m, 0.5), "team": pa.nulls(m, pa.string())},
            schema=TABLES["impressions"].schema),
            folder / f"{prefix}impressions.parquet")
    lab_q, lab_i = np.meshgrid(np.arange(3), np.arange(8), indexing="ij")
    keep = rng.random(lab_q.size) < 0.5
    labels = {"query": queries[lab_q.ravel()[keep]], "item_id": lab_i.ravel()[keep],
              "grade": rng.integers(0, 4, size=int(keep.sum()))}
    raw["relevance_labels"] = labels
    pq.write_table(pa.table({"query": labels["query"].tolist(), "item_id": labels["item_id"].astype(np.int64),
                             "grade": labels["grade"].astype(np.int8)}, schema=TABLES["relevance_labels"].schema),
                   folder / "relevance_labels.parquet")
    all_sid = np.concatenate([raw["sessions"]["session_id"], raw["pre_sessions"]["session_id"]])
    judged = all_sid[rng.random(len(all_sid)) < 0.4]
    good = rng.random(len(judged)) < 0.6
    raw["page_labels"] = {"session_id": judged, "good": good}
    pq.write_table(pa.table({"session_id": judged.astype(np.int64), "good": good},
                            schema=TABLES["page_labels"].schema), folder / "page_labels.parquet")
    return raw


def unit_values(raw, prefix: str, users: int) -> dict[str, np.ndarray]:
    """Per-unit totals over a period, by brute force (loops over sessions, numpy sums)."""
    s, i = raw[prefix + "sessions"], raw[prefix + "impressions"]
    grade = {(q, it): g for q, it, g in zip(raw["relevance_labels"]["query"], raw["relevance_labels"]["item_id"],
                                            raw["relevance_labels"]["grade"])}
    page = dict(zip(raw["page_labels"]["session_id"], raw["page_labels"]["good"]))
    cols = ("impressions", "clicks", "purchases", "orders", "judged_impressions", "grade_sum", "judged_pages",
            "good_pages")
    out = {c: np.zeros(users) for c in cols}
    for sid, unit, query in zip(s["session_id"], s["unit"], s["query"]):
        on = i["session_id"] == sid
        g = [grade.get((query, it)) for it in i["item_id"][on]]
        vals = {"impressions": on.sum(), "clicks": i["clicked"][on].sum(), "purchases": i["purchased"][on].sum(),
                "orders": i["orders"][on].sum(), "judged_impressions": sum(v is not None for v in g),
                "grade_sum": sum(v for v in g if v is not None), "judged_pages": int(sid in page),
                "good_pages": int(bool(page.get(sid, False)))}
        for c in cols:
            out[c][unit] += vals[c]
    return out


XY = {"item_ctr": ("clicks", "impressions"), "buyer_conversion": ("buyer", None), "order_volume": ("orders", None),
      "page_good_rate": ("good_pages", "judged_pages"), "relevance": ("grade_sum", "judged_impressions")}


@settings(derandomize=True, max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), users=st.integers(4, 30))
def test_sql_sufficient_statistics_equal_numpy(seed, users, tmp_path_factory):
    folder = tmp_path_factory.mktemp("log")
    raw = random_log(seed, users, folder)
    arm_of = {}
    for unit, arm in zip(raw["sessions"]["unit"], raw["sessions"]["arm"]):
        arm_of[unit] = arm
    exp, pre = unit_values(raw, "", users), unit_values(raw, "pre_", users)
    exp["buyer"] = (exp["purchases"] > 0).astype(float)
    pre["buyer"] = (pre["purchases"] > 0).astype(float)
    metrics = list(BUILTIN_METRICS.values())
    engine = MetricsEngine(Dataset(folder), metrics)
    try:
        got = engine.sufficient_stats(metrics).set_index(["metric", "arm"])
    finally:
        engine.close()
    arms_present = sorted({a for a in arm_of.values() if a is not None})
    assert sorted(got.index.get_level_values("arm").unique()) == arms_present
    has_pre = len(raw["pre_sessions"]["session_id"]) > 0
    for name, (xc, yc) in XY.items():
        for arm in arms_present:
            units = np.array(sorted(u for u, a in arm_of.items() if a == arm))
            x, xp = exp[xc][units], pre[xc][units]
            y = exp[yc][units] if yc else np.ones(len(units))
            yp = pre[yc][units] if yc else np.ones(len(units))
            row = got.loc[(name, arm)]
            want = {"n": len(units), "sum_x": x.sum(), "sum_x2": (x * x).sum()}
            if yc:
                want |= {"sum_y": y.sum(), "sum_y2": (y * y).sum(), "sum_xy": (x * y).sum()}
            if has_pre:
                want |= {"sum_xp": xp.sum(), "sum_xp2": (xp * xp).sum(), "sum_x_xp": (x * xp).sum()}
                if yc:
                    want |= {"sum_yp": yp.sum(), "sum_yp2": (yp * yp).sum(), "sum_xp_yp": (xp * yp).sum(),
                             "sum_x_yp": (x * yp).sum(), "sum_y_xp": (y * xp).sum(), "sum_y_yp": (y * yp).sum()}
            for col, value in want.items():
                assert row[col] == pytest.approx(value, rel=1e-12, abs=1e-9), (name, arm, col)
            if not yc:
                assert np.isnan(row["sum_y"])
            if not has_pre:
                assert np.isnan(row["sum_xp"])
