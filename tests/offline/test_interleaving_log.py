"""The analysis of a real interleaved log (``impressions.team``) against a per-session brute force:
credit rules, ties, sessions without credited clicks, the per-unit (cluster-robust) tests, bad team
values, and the report section's round trip through JSON."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import defaultdict

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import statsmodels.api as sm
from scipy import stats

from abplatform.errors import InputError
from abplatform.offline import interleaving as il
from abplatform.report.interleaving import InterleavingResult
from abplatform.report.model import _build

ARMS = ("control", "treatment")
C, T, N = "control", "treatment", None

# (session, unit, [(team, clicked), ...] by position)
HAND_MADE = [
    (1, "u1", [(T, True), (C, False), (T, False)]),  # B wins 1-0
    (2, "u1", [(C, True), (T, True), (C, False)]),  # tie with clicks, 1-1
    (3, "u1", [(C, False), (T, False), (C, False)]),  # no click: tie
    (4, "u2", [(N, True), (N, True), (C, False)]),  # clicks, none credited: tie
    (5, "u2", [(N, False), (N, False), (N, False)]),  # no team at all, no click: tie
    (6, "u2", [(C, True), (T, True), (C, True)]),  # A wins 2-1
    (7, "u3", [(T, True), (C, True), (T, True), (T, True)]),  # B wins 3-1
    (8, "u3", [(T, True), (C, False)]),  # B wins 1-0
    (9, "u3", [(C, True), (T, False)]),  # A wins 1-0
    (10, "u5", [(T, True), (T, True), (C, False)]),  # B wins 2-0
    (11, "u5", [(T, True), (C, True), (N, True)]),  # tie 1-1 (and an uncredited click)
    (12, "u6", [(C, True), (T, False)]),  # A wins 1-0
    (13, "u7", [(N, False), (N, False)]),  # a unit with nothing credited
]


def connect(log: list[tuple[int, str | None, list[tuple[str | None, bool]]]], extra_sessions: int = 0,
            unit_column: bool = True) -> duckdb.DuckDBPyConnection:
    """A duckdb connection with the views ``sessions`` and ``impressions`` of ``log``."""
    imp = [(s, p + 1, 100 * s + p, clicked, team) for s, _, cells in log for p, (team, clicked) in enumerate(cells)]
    sessions = {"session_id": [s for s, _, _ in log] + [10_000 + i for i in range(extra_sessions)]}
    if unit_column:
        sessions["unit_id"] = [u for _, u, _ in log] + ["u-no-page"] * extra_sessions
    con = duckdb.connect()
    con.register("s", pa.table(sessions))
    con.register("i", pa.table({"session_id": pa.array([r[0] for r in imp], pa.int64()),
                                "position": pa.array([r[1] for r in imp], pa.int16()),
                                "item_id": pa.array([r[2] for r in imp], pa.int64()),
                                "clicked": [r[3] for r in imp], "team": pa.array([r[4] for r in imp], pa.string())}))
    con.execute("CREATE VIEW sessions AS SELECT * FROM s")
    con.execute("CREATE VIEW impressions AS SELECT * FROM i")
    return con


def brute_force(log, rule: str, unit: str, alpha: float) -> dict:
    """The analysis one session at a time, with scipy's tests (and statsmodels' cluster-robust SE per unit)."""
    credit, units, clicked_any, credited_any = [], [], 0, 0
    for _, u, cells in log:
        a = sum(1 for team, c in cells if c and team == C)
        b = sum(1 for team, c in cells if c and team == T)
        clicked_any += any(c for _, c in cells)
        credited_any += a + b > 0
        if rule == "wins":
            credit.append(1.0 if b > a else -1.0 if a > b else 0.0)
        else:
            credit.append((b - a) / (a + b) if a + b else 0.0)
        units.append(u)
    credit_arr = np.array(credit)
    pref = credit_arr.mean()
    if unit == "session":
        obs = credit_arr
        psi = credit_arr
    else:
        total: dict[str, float] = defaultdict(float)
        count: dict[str, int] = defaultdict(int)
        for c, u in zip(credit, units, strict=True):
            total[u] += c
            count[u] += 1
        obs = np.array([total[u] for u in total])
        m = np.array([count[u] for u in total], float)
        psi = pref + (obs - pref * m) / m.mean()
        fit = sm.OLS(credit_arr, np.ones(len(credit_arr))).fit(cov_type="cluster", cov_kwds={"groups": np.unique(
            units, return_inverse=True)[1]})
        assert psi.std(ddof=1) / np.sqrt(len(psi)) == pytest.approx(fit.bse[0], rel=1e-12)
    wins_b, wins_a = int((obs > 0).sum()), int((obs < 0).sum())
    bt = stats.binomtest(wins_b, wins_a + wins_b)
    tt = stats.ttest_1samp(psi, 0.0)
    ci = tt.confidence_interval(1 - alpha)
    return {"n": len(obs), "sessions": len(log), "sessions_with_clicks": clicked_any,
            "sessions_with_credited_clicks": credited_any, "wins_a": wins_a, "wins_b": wins_b,
            "ties": len(obs) - wins_a - wins_b, "preference": pref, "preference_ci": (ci.low, ci.high),
            "t_p_value": tt.pvalue, "sign_p_value": bt.pvalue,
            "win_rate_ci": tuple(bt.proportion_ci(1 - alpha, method="exact"))}


def check(res: il.InterleavingAnalysis, expected: dict) -> None:
    for name in ("n", "sessions", "sessions_with_clicks", "sessions_with_credited_clicks", "wins_a", "wins_b", "ties"):
        assert getattr(res, name) == expected[name], name
    for name in ("preference", "preference_ci", "t_p_value", "sign_p_value", "win_rate_ci"):
        assert getattr(res, name) == pytest.approx(expected[name], rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("rule", ["wins", "click_difference"])
@pytest.mark.parametrize("unit", ["session", "unit"])
def test_hand_made_log_matches_brute_force(rule, unit):
    con = connect(HAND_MADE, extra_sessions=2)  # sessions without a page are not in the comparison
    res = il.interleaved_log_summary(con, ARMS, alpha=0.1, credit_rule=rule, unit=unit)
    check(res, brute_force(HAND_MADE, rule, unit, 0.1))
    assert (res.unit, res.credit_rule, res.alpha, res.arms) == (unit, rule, 0.1, ARMS)


def test_hand_made_counts():
    con = connect(HAND_MADE)
    per_session = il.analyse(il.interleaved_session_clicks(con, ARMS), ARMS, unit="session")
    # B: sessions 1, 7, 8, 10; A: 6, 9, 12; ties: 2, 3, 4, 5, 11, 13 (4, 5 and 13 credit nothing)
    assert (per_session.wins_b, per_session.wins_a, per_session.ties) == (4, 3, 6)
    assert per_session.preference == pytest.approx(1 / 13)
    assert (per_session.sessions_with_clicks, per_session.sessions_with_credited_clicks) == (10, 9)
    assert per_session.preferred == "treatment"
    per_unit = il.interleaved_log_summary(con, ARMS)  # the default: per unit, the sessions view has unit_id
    # unit sums: u1 +1, u2 -1, u3 +1, u5 +1, u6 -1, u7 0
    assert per_unit.unit == "unit"
    assert (per_unit.n, per_unit.wins_b, per_unit.wins_a, per_unit.ties) == (6, 3, 2, 1)
    assert per_unit.preference == pytest.approx(per_session.preference)  # the estimate does not change, its CI does
    assert per_unit.preference_ci != pytest.approx(per_session.preference_ci)
    assert per_unit.preferred == "treatment"


def test_random_log_matches_brute_force():
    g = np.random.default_rng(12)
    log = []
    for s in range(600):
        cells = [(g.choice([C, T, N], p=[0.45, 0.45, 0.1]), bool(g.random() < 0.12 + 0.05 * (s % 3 == 0)))
                 for _ in range(int(g.integers(1, 9)))]
        log.append((s, f"u{int(g.integers(0, 90))}", cells))
    con = connect(log)
    for rule in ("wins", "click_difference"):
        for unit in ("session", "unit"):
            check(il.interleaved_log_summary(con, ARMS, alpha=0.05, credit_rule=rule, unit=unit),
                  brute_force(log, rule, unit, 0.05))


def test_default_unit_is_session_without_unit_ids():
    assert il.interleaved_log_summary(connect(HAND_MADE, unit_column=False), ARMS).unit == "session"


def test_a_team_that_is_not_an_arm_is_an_input_error():
    log = [*HAND_MADE, (14, "u7", [("treatmnet", True), (C, False)])]
    with pytest.raises(InputError) as err:
        il.interleaved_log_summary(connect(log), ARMS)
    msg = str(err.value)
    assert msg == ("impressions.team: value 'treatmnet' (1 row) is not an arm of the comparison; "
                   "expected 'control', 'treatment' or null (not credited)")


def test_missing_team_column_and_null_units_are_input_errors():
    con = connect(HAND_MADE)
    con.execute("CREATE OR REPLACE VIEW impressions AS SELECT * EXCLUDE (team) FROM i")
    with pytest.raises(InputError, match=r"^impressions: no column 'team'"):
        il.interleaved_log_summary(con, ARMS)
    log = [(s, None if s == 3 else u, cells) for s, u, cells in HAND_MADE]
    with pytest.raises(InputError, match=r"^sessions.unit_id: 1 interleaved sessions have no unit id"):
        il.interleaved_log_summary(connect(log), ARMS, unit="unit")
    assert il.interleaved_log_summary(connect(log), ARMS, unit="session").n == 13


def test_report_section_round_trips_through_json():
    res = il.interleaved_log_summary(connect(HAND_MADE), ARMS)
    section = il.interleaving_report(res)
    assert (section.source, section.unit, section.sample_size) == ("logged", "unit", None)
    assert (section.wins_control, section.wins_treatment, section.ties, section.preferred) == (2, 3, 1, "treatment")
    text = json.dumps(dataclasses.asdict(section), allow_nan=False)
    assert _build(InterleavingResult, json.loads(text), "interleaving") == section


def test_the_report_section_imports_only_the_standard_library():
    code = ("import sys, abplatform.report.interleaving\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pandas', 'scipy', 'duckdb', 'pyarrow'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"
