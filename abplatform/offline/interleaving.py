"""Interleaved comparison of two rankers A (control) and B (treatment): team-draft pages, per-session
credit, the preference and its tests — from a real interleaved log or simulated on logged sessions —
and the sessions it needs beside an A/B test.

**Team-draft interleaving** (Radlinski, Kurup & Joachims 2008, "How does clickthrough data reflect
retrieval quality?", CIKM, Algorithm 2): the two rankings pick in turns, like captains picking teams;
in each round a fair coin decides who picks first, and each captain adds its highest-ranked item not
yet on the page. When the teams are the same size the coin decides, otherwise the smaller team picks.
If one ranking runs out of new items (only on short candidate lists), the other fills the rest of the
page. The coin of step t of session s is ``rng.uniforms(seed, s, Stream.INTERLEAVE_COIN, k)[t] >= 0.5``
(B first), so the page depends only on (seed, session id), never on batch size.

**Credit.** Per session, c_A and c_B are the clicks on items of A's and of B's team (an item with no
team — a null ``impressions.team`` — is not credited). Rules (:data:`CreditRule`):

* ``wins``: +1 if c_B > c_A, −1 if c_A > c_B, 0 on a tie, incl. no credited click (Radlinski et al. 2008);
* ``click_difference``: (c_B − c_A)/(c_A + c_B), 0 without a credited click — the click difference
  normalised by the session's credited clicks, in [−1, 1] (3 clicks for B and 1 for A count 0.5).

Both rules give every session the same sign, so the sign test is the same; they differ in the
preference and the t-test.

**Preference** Δ = Σ credit / sessions; B is preferred when Δ > 0. With ``wins``,
Δ = (wins_B − wins_A)/(wins_A + wins_B + ties). (Chapelle, Joachims, Radlinski & Yue 2012, "Large-scale
validation and analysis of interleaved search evaluation", TOIS 30(1), write it from A's side as
Δ_AB = (wins_A + ties/2)/n − 1/2 = (wins_A − wins_B)/(2n): the same statistic, halved.)

**Unit of analysis.** ``session``: sessions i.i.d., as the literature tests. ``unit`` (the default when
sessions carry unit ids): a user who prefers B does so in each of their sessions, so sessions of one
unit are not independent and a session-level CI is too narrow when users differ; inference is then
over units u, with S_u the sum of the credits of the unit's m_u sessions:

* Δ is unchanged (Σ S_u / Σ m_u); its CI and t-test use the linearised per-unit values
  ψ_u = Δ + (S_u − Δ m_u)/m̄, m̄ = mean sessions per unit (delta method for a ratio of means, Deng,
  Knoblich & Lu 2018; the cluster-robust standard error), a one-sample t-test (df U − 1) and
  t interval of the mean of ψ. With one session per unit, ψ_u is the session's credit.
* the sign test counts units: S_u > 0 a win for B, < 0 for A, 0 a tie.

**Tests** (scipy): the two-sided sign test — ``binomtest`` of B's wins among the decisive observations
against 1/2, with the Clopper–Pearson CI of B's win rate — decides (``significant``: p < α; the
``preferred`` arm is the one with more wins); the t-test of the mean credit (``ttest_1samp``) and its
t interval go with it. Per session the two agree closely; per unit the sign test counts a unit once however
many sessions it has, and needs more sessions than the t-test (1.8× on the demo world,
``benchmarks/interleaving.md``).

**Sessions needed for power 1 − β at two-sided α** (z_α = z_{1−α/2}, z_β = z_{1−β}), each method from its
own measured effect and variance:

* interleaving, sign test: with P(B wins) p_B and P(A wins) p_A per observation, q = p_B/(p_A + p_B),
  decisive observations d = ((z_α/2 + z_β √(q(1 − q))) / (q − 1/2))² (normal approximation of the
  binomial test: variance 1/4 under H0, q(1 − q) under H1), observations n = d/(p_A + p_B);
* interleaving, t-test: n = (z_α + z_β)² Var(ψ)/Δ²;
* A/B test of item CTR, units split 50/50 (:func:`ab_ratio_metric`): on every logged session's own A page
  and B page, per unit clicks x_u and items shown y_u; R = Σx/Σy per arm, σ² the per-unit variance of the
  linearised ratio (x − R y)/ȳ (delta method, :func:`abplatform.stats.moments.arm_moments`), δ = R_B − R_A, units
  N = (z_α + z_β)² · 2(σ²_A + σ²_B)/δ² (:func:`abplatform.stats.power.sample_size`);
* observations become sessions at the logged period's sessions per observation: 1 for sessions, m̄
  for units (the A/B test's units too). The ratio is A/B sessions over interleaving (sign test) sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from abplatform import rng
from abplatform.errors import InputError
from abplatform.offline.ope import LoggedPages
from abplatform.rankers import CandidateBatch, Catalog, Ranker, rank
from abplatform.replay.behaviour import Behaviour
from abplatform.report.interleaving import InterleavingResult, InterleavingSampleSize
from abplatform.report.model import finite_or_none
from abplatform.rng import Stream
from abplatform.stats.moments import arm_moments, suff_from_units
from abplatform.stats.power import sample_size
from abplatform.vocabulary import CreditRule

TEAM_A, TEAM_B, NO_TEAM = 0, 1, -1
Unit = Literal["session", "unit"]


# --------------------------------------------------------------------------------------------
# team-draft pages
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interleaved:
    pages: np.ndarray  # (n, k) items of the interleaved page, -1 = no item
    teams: np.ndarray  # (n, k) int8: TEAM_A, TEAM_B or NO_TEAM


def team_draft(session_ids: np.ndarray, ranking_a: np.ndarray, ranking_b: np.ndarray, seed: int,
               k: int | None = None) -> Interleaved:
    """Team-draft interleave rankings ``ranking_a`` and ``ranking_b`` (n, >= k items, -1 padded)."""
    k = k or max(np.shape(ranking_a)[1], np.shape(ranking_b)[1])
    coins = rng.uniforms(seed, np.asarray(session_ids), Stream.INTERLEAVE_COIN, k) >= 0.5  # True: B picks first
    return team_draft_with_coins(ranking_a, ranking_b, coins)


def team_draft_with_coins(ranking_a: np.ndarray, ranking_b: np.ndarray, coins: np.ndarray) -> Interleaved:
    """Team-draft with given coins: ``coins[i, t]`` True = B picks at step t if the teams are equal in size."""
    a, b = np.asarray(ranking_a, np.int64), np.asarray(ranking_b, np.int64)
    n, k = np.shape(coins)
    pages = np.full((n, k), -1, np.int64)
    teams = np.full((n, k), NO_TEAM, np.int8)
    size_a = np.zeros(n, np.int64)
    size_b = np.zeros(n, np.int64)
    rows = np.arange(n)

    def next_free(r: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
        used = (r[:, :, None] == pages[:, None, :t]).any(axis=2) if t else np.zeros(r.shape, bool)
        free = (r >= 0) & ~used
        return free.any(axis=1), r[rows, free.argmax(axis=1)]

    for t in range(k):
        has_a, item_a = next_free(a, t)
        has_b, item_b = next_free(b, t)
        pick_b = (size_a > size_b) | ((size_a == size_b) & coins[:, t])
        pick_b = np.where(~has_a, True, np.where(~has_b, False, pick_b))
        placed = has_a | has_b
        pages[:, t] = np.where(placed, np.where(pick_b, item_b, item_a), -1)
        teams[:, t] = np.where(placed, np.where(pick_b, TEAM_B, TEAM_A), NO_TEAM)
        size_b += placed & pick_b
        size_a += placed & ~pick_b
    return Interleaved(pages, teams)


# --------------------------------------------------------------------------------------------
# per-session credit
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionClicks:
    """Per-session sufficient aggregates of interleaved pages: all that the analysis reads."""

    team_a: np.ndarray  # (n,) clicks on items of A's team
    team_b: np.ndarray  # (n,) clicks on items of B's team
    clicks: np.ndarray  # (n,) all clicks on the page, credited or not
    unit_codes: np.ndarray | None = None  # (n,) each session's unit as 0..U-1; None: units unknown

    def __len__(self) -> int:
        return len(self.team_a)


def team_clicks(teams: np.ndarray, clicks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n,) clicks on A's team and on B's team of each page."""
    clicks = np.asarray(clicks, bool)
    return (clicks & (teams == TEAM_A)).sum(axis=1), (clicks & (teams == TEAM_B)).sum(axis=1)


def session_credits(team_a: np.ndarray, team_b: np.ndarray, rule: CreditRule = "wins") -> np.ndarray:
    """(n,) float credit per session under ``rule`` (> 0: B's team did better)."""
    a, b = np.asarray(team_a, float), np.asarray(team_b, float)
    if rule == "wins":
        return np.sign(b - a)
    if rule == "click_difference":
        total = a + b
        return np.divide(b - a, total, out=np.zeros_like(total), where=total > 0)
    raise ValueError(f"unknown credit rule {rule!r} (expected one of {', '.join(get_args(CreditRule))})")


# --------------------------------------------------------------------------------------------
# the preference and its tests
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InterleavingAnalysis:
    """The preference for B over A and its tests; observations are sessions or units (``unit``)."""

    arms: tuple[str, str]  # (A, B) = (control, treatment)
    credit_rule: CreditRule
    unit: Unit
    n: int  # observations: sessions, or units
    sessions: int
    sessions_with_clicks: int
    sessions_with_credited_clicks: int
    wins_a: int  # observations with credit < 0 (summed over the unit's sessions)
    wins_b: int
    ties: int
    preference: float  # Δ = Σ credit / sessions
    preference_ci: tuple[float, float]  # t interval (of ψ for units)
    t_p_value: float
    win_rate: float  # B's share of the decisive observations
    win_rate_ci: tuple[float, float]  # Clopper-Pearson
    sign_p_value: float
    alpha: float
    variance: float  # per-observation variance of the credit (of ψ for units)

    @property
    def significant(self) -> bool:
        return self.sign_p_value < self.alpha

    @property
    def preferred(self) -> str | None:
        """The arm whose team won more observations (None on an exact tie)."""
        if self.wins_a == self.wins_b:
            return None
        return self.arms[1] if self.wins_b > self.wins_a else self.arms[0]

    @property
    def sessions_per_observation(self) -> float:
        return self.sessions / self.n


def analyse(sessions: SessionClicks, arms: tuple[str, str] = ("A", "B"), credit_rule: CreditRule = "wins",
            unit: Unit | None = None, alpha: float = 0.05) -> InterleavingAnalysis:
    """Preference, sign test and t-test of per-session ``sessions``; ``unit`` None: per unit if known."""
    unit = unit or ("unit" if sessions.unit_codes is not None else "session")
    if unit == "unit" and sessions.unit_codes is None:
        raise ValueError("a per-unit analysis needs the sessions' unit codes")
    if len(sessions) == 0:
        raise ValueError("no sessions to analyse")
    credit = session_credits(sessions.team_a, sessions.team_b, credit_rule)
    if unit == "unit":
        codes = np.asarray(sessions.unit_codes)
        per_unit = np.bincount(codes, credit), np.bincount(codes).astype(float)
        present = per_unit[1] > 0  # codes need not be dense
        totals, counts = per_unit[0][present], per_unit[1][present]
    else:
        totals, counts = credit, np.ones(len(credit))
    t = _preference_test(totals, counts, alpha)
    return InterleavingAnalysis(
        arms=arms, credit_rule=credit_rule, unit=unit, n=len(totals), sessions=len(sessions),
        sessions_with_clicks=int((np.asarray(sessions.clicks) > 0).sum()),
        sessions_with_credited_clicks=int(((sessions.team_a + sessions.team_b) > 0).sum()), alpha=alpha, **t)


def _preference_test(totals: np.ndarray, counts: np.ndarray, alpha: float) -> dict:
    """Δ = Σ totals / Σ counts with the t-test and t interval of ψ = Δ + (totals − Δ counts)/mean(counts),
    and the sign test of sign(totals)."""
    n = len(totals)
    wins_b, wins_a = int((totals > 0).sum()), int((totals < 0).sum())
    decisive = wins_a + wins_b
    if decisive:
        bt = stats.binomtest(wins_b, decisive, 0.5)
        ci = bt.proportion_ci(1 - alpha, method="exact")
        sign_p, win_rate, win_ci = float(bt.pvalue), wins_b / decisive, (float(ci.low), float(ci.high))
    else:
        sign_p, win_rate, win_ci = 1.0, float("nan"), (0.0, 1.0)
    pref = float(totals.sum() / counts.sum())
    psi = pref + (totals - pref * counts) / counts.mean()
    variance = float(psi.var(ddof=1)) if n > 1 else float("nan")
    if n > 1 and variance > 0:
        tt = stats.ttest_1samp(psi, 0.0)
        tci = tt.confidence_interval(1 - alpha)
        t_p, pref_ci = float(tt.pvalue), (float(tci.low), float(tci.high))
    else:  # every observation alike: no spread to test against
        t_p, pref_ci = 1.0, (pref, pref)
    return {"wins_a": wins_a, "wins_b": wins_b, "ties": n - decisive, "preference": pref, "preference_ci": pref_ci,
            "t_p_value": t_p, "win_rate": win_rate, "win_rate_ci": win_ci, "sign_p_value": sign_p,
            "variance": variance}


# --------------------------------------------------------------------------------------------
# a real interleaved log
# --------------------------------------------------------------------------------------------
def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}


def interleaved_session_clicks(con: duckdb.DuckDBPyConnection, arms: tuple[str, str],
                               units: bool = True) -> SessionClicks:
    """Per-session credited clicks of the interleaved log in ``con``'s views ``sessions`` (session_id,
    unit_id) and ``impressions`` (session_id, position, item_id, clicked, team), summed in SQL.

    Every session with impressions counts; ``team`` names the arm whose team the item was on (null: not
    credited, so a session without a credited click is a tie). A team that is not one of ``arms`` is an
    :class:`InputError`. ``units``: also the sessions' unit codes (an error when a unit id is null)."""
    a, b = arms
    if "team" not in _columns(con, "impressions"):
        raise InputError("impressions: no column 'team' (the arm whose team each interleaved item was on); "
                         "the interleaving analysis needs it")
    bad = con.execute("""SELECT CAST(team AS VARCHAR) AS t, count(*) FROM impressions
                         WHERE team IS NOT NULL AND CAST(team AS VARCHAR) NOT IN ($a, $b)
                         GROUP BY t ORDER BY count(*) DESC, t LIMIT 1""", {"a": a, "b": b}).fetchall()
    if bad:
        value, rows = bad[0]
        raise InputError(f"impressions.team: value {value!r} ({rows:,} row{'s' if rows > 1 else ''}) is not an arm "
                         f"of the comparison; expected {a!r}, {b!r} or null (not credited)")
    unit_id = "any_value(s.unit_id)" if units else "NULL"
    res = con.execute(f"""
        WITH per_session AS (
            SELECT i.session_id, {unit_id} AS unit_id,
                   count(*) FILTER (WHERE i.clicked AND CAST(i.team AS VARCHAR) = $a) AS team_a,
                   count(*) FILTER (WHERE i.clicked AND CAST(i.team AS VARCHAR) = $b) AS team_b,
                   count(*) FILTER (WHERE i.clicked) AS clicks
            FROM impressions AS i JOIN sessions AS s USING (session_id)
            GROUP BY i.session_id)
        SELECT team_a, team_b, clicks, unit_id IS NULL AS no_unit,
               dense_rank() OVER (ORDER BY unit_id) - 1 AS unit_code
        FROM per_session ORDER BY session_id""", {"a": a, "b": b}).fetchnumpy()
    if len(res["clicks"]) == 0:
        raise InputError("impressions: no session of the sessions table has impressions; nothing to analyse")
    codes = None
    if units:
        missing = int(np.asarray(res["no_unit"]).sum())
        if missing:
            raise InputError(f"sessions.unit_id: {missing} interleaved sessions have no unit id; "
                             "analyse per session (unit: session) or fill it")
        codes = np.asarray(res["unit_code"], np.int64)
    return SessionClicks(np.asarray(res["team_a"], np.int64), np.asarray(res["team_b"], np.int64),
                         np.asarray(res["clicks"], np.int64), codes)


def interleaved_log_summary(con: duckdb.DuckDBPyConnection, arms: tuple[str, str], alpha: float = 0.05,
                            credit_rule: CreditRule = "wins", unit: Unit | None = None) -> InterleavingAnalysis:
    """The interleaving analysis of a real interleaved log (see :func:`interleaved_session_clicks`).

    ``arms`` = (A, B) = (control, treatment). ``unit`` None: per unit when the sessions view has a
    ``unit_id`` column (the defensible default: sessions of one user are not independent), else per session.
    """
    if unit is None:
        unit = "unit" if "unit_id" in _columns(con, "sessions") else "session"
    sessions = interleaved_session_clicks(con, arms, units=unit == "unit")
    return analyse(sessions, arms, credit_rule, unit, alpha)


# --------------------------------------------------------------------------------------------
# sample sizes
# --------------------------------------------------------------------------------------------
def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(stats.norm.isf(alpha / 2)), float(stats.norm.ppf(power))


def sign_test_sample_size(p_b: float, p_a: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Observations the two-sided sign test needs: d = ((z_α/2 + z_β √(q(1−q)))/(q − 1/2))² decisive ones,
    q = p_b/(p_a + p_b), divided by the decisive share p_a + p_b (inf without a preference)."""
    decisive = p_a + p_b
    if decisive <= 0 or p_a == p_b:
        return float("inf")
    z_a, z_b = _z(alpha, power)
    q = p_b / decisive
    return float(((z_a / 2 + z_b * np.sqrt(q * (1 - q))) / (q - 0.5)) ** 2 / decisive)


def t_test_sample_size(effect: float, variance: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Observations a one-sample z/t test of a mean needs: (z_α + z_β)² variance / effect²."""
    z_a, z_b = _z(alpha, power)
    return float((z_a + z_b) ** 2 * variance / effect**2) if effect else float("inf")


@dataclass(frozen=True)
class ABRatioMetric:
    """An A/B test of a ratio metric per unit (item CTR: clicks / items shown), from every logged session
    as it would have gone under each arm."""

    value_a: float
    value_b: float
    variance_a: float  # per-unit variance of the linearised ratio
    variance_b: float
    units: int
    sessions: int

    def units_needed(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """Units over both arms (50/50) for ``power`` at two-sided ``alpha``."""
        effect = self.value_b - self.value_a
        if not effect:
            return float("inf")
        return float(sample_size(np.asarray((self.variance_a + self.variance_b) / 2), np.asarray(effect), alpha, power))


def ab_ratio_metric(unit_codes: np.ndarray, numerator_a: np.ndarray, denominator_a: np.ndarray,
                    numerator_b: np.ndarray, denominator_b: np.ndarray) -> ABRatioMetric:
    """Σ numerator / Σ denominator of each arm with its per-unit delta-method variance, from per-session
    values (for item CTR: clicks and items shown on the arm's page)."""
    per_unit = [np.bincount(unit_codes, np.asarray(v, float))
                for v in (numerator_a, denominator_a, numerator_b, denominator_b)]
    present = np.bincount(unit_codes) > 0
    suff = pd.DataFrame([{k: float(v) for k, v in suff_from_units(x[present], y[present], small_sample=False).items()}
                         for x, y in (per_unit[:2], per_unit[2:])])
    m = arm_moments(suff, np.array(["ratio", "ratio"]))
    return ABRatioMetric(float(m.value[0]), float(m.value[1]), float(m.var[0]), float(m.var[1]), int(present.sum()),
                         len(unit_codes))


@dataclass(frozen=True)
class SampleSizeComparison:
    """Sessions each method needs for ``power`` at ``alpha``, from its own measured effect and variance."""

    alpha: float
    power: float
    unit: Unit  # the interleaving analysis' observations
    sessions_per_unit: float  # logged sessions per unit (converts the A/B test's units)
    p_b: float  # P(B wins an observation)
    p_a: float
    interleaving_sessions: float  # sign test
    interleaving_t_sessions: float  # t-test of the preference
    ab: ABRatioMetric  # item CTR
    ab_units: float
    ab_sessions: float

    @property
    def ratio(self) -> float:
        """A/B sessions / interleaving (sign test) sessions (NaN when interleaving sees no preference)."""
        if not np.isfinite(self.interleaving_sessions):
            return float("nan")
        return self.ab_sessions / self.interleaving_sessions


def compare_sample_sizes(analysis: InterleavingAnalysis, ab: ABRatioMetric,
                         power: float = 0.8) -> SampleSizeComparison:
    """Sessions the interleaving tests of ``analysis`` and the A/B test ``ab`` need (module docstring)."""
    alpha = analysis.alpha
    p_b, p_a = analysis.wins_b / analysis.n, analysis.wins_a / analysis.n
    per_obs = analysis.sessions_per_observation
    ab_units = ab.units_needed(alpha, power)
    return SampleSizeComparison(
        alpha=alpha, power=power, unit=analysis.unit, sessions_per_unit=ab.sessions / ab.units, p_b=p_b, p_a=p_a,
        interleaving_sessions=sign_test_sample_size(p_b, p_a, alpha, power) * per_obs,
        interleaving_t_sessions=t_test_sample_size(analysis.preference, analysis.variance, alpha, power) * per_obs,
        ab=ab, ab_units=ab_units, ab_sessions=ab_units * ab.sessions / ab.units)


# --------------------------------------------------------------------------------------------
# simulated on logged sessions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatedSessions:
    """Per-session aggregates of one simulation: the interleaved page and each arm's own page."""

    interleaved: SessionClicks
    clicks_a: np.ndarray  # (n,) clicks on A's own page (the A/B test's control page)
    shown_a: np.ndarray  # (n,) items on it
    clicks_b: np.ndarray
    shown_b: np.ndarray
    overlap: np.ndarray  # (n,) items both pages show
    same_page: np.ndarray  # (n,) bool: both pages show the same items in the same order


def simulate_sessions(logged: LoggedPages, ranker_a: Ranker, ranker_b: Ranker, catalog: Catalog, behaviour: Behaviour,
                      seed: int, page_size: int = 10, batch_size: int = 8192) -> SimulatedSessions:
    """Rank every logged session's candidates with both fitted rankers, team-draft their pages and let
    ``behaviour`` (fitted users or the world's oracle) click on the interleaved page and on each arm's own
    page. Every draw is keyed by (seed, session id), so the result does not depend on ``batch_size``; a
    session's three pages are answered with the same uniforms (common random numbers, which leave each
    page's own variance as it is)."""
    if logged.candidates is None:
        raise ValueError("logged pages carry no candidates; load them with candidates=True")
    n, k = len(logged), page_size
    _, codes = np.unique(logged.unit_ids.astype(str), return_inverse=True)
    out = {name: np.zeros(n, np.int64) for name in ("team_a", "team_b", "clicks", "clicks_a", "shown_a", "clicks_b",
                                                    "shown_b", "overlap")}
    same = np.zeros(n, bool)
    for lo in range(0, n, batch_size):
        sl = slice(lo, min(n, lo + batch_size))
        ids, queries, units = logged.session_ids[sl], logged.queries[sl], logged.unit_ids[sl]
        cand_rows = catalog.rows(logged.candidates[sl])
        batch = CandidateBatch(ids, list(queries), cand_rows)
        page_a, page_b = (rank(r.score(batch), cand_rows, k) for r in (ranker_a, ranker_b))
        drafted = team_draft(ids, page_a, page_b, seed, k)
        clicked = _clicks(behaviour, seed, ids, queries, units, drafted.pages)
        out["team_a"][sl], out["team_b"][sl] = team_clicks(drafted.teams, clicked)
        out["clicks"][sl] = clicked.sum(axis=1)
        for arm, page in (("a", page_a), ("b", page_b)):
            out[f"clicks_{arm}"][sl] = _clicks(behaviour, seed, ids, queries, units, page).sum(axis=1)
            out[f"shown_{arm}"][sl] = (page >= 0).sum(axis=1)
        out["overlap"][sl] = ((page_a[:, :, None] == page_b[:, None, :]) & (page_a[:, :, None] >= 0)).sum(axis=(1, 2))
        same[sl] = (page_a == page_b).all(axis=1)
    return SimulatedSessions(SessionClicks(out["team_a"], out["team_b"], out["clicks"], codes), out["clicks_a"],
                             out["shown_a"], out["clicks_b"], out["shown_b"], out["overlap"], same)


def _clicks(behaviour: Behaviour, seed: int, ids: np.ndarray, queries: np.ndarray, units: np.ndarray,
            page: np.ndarray) -> np.ndarray:
    """(n, k) the simulated users' clicks on ``page`` (catalog rows, -1 = no item)."""
    return behaviour.respond(seed, ids, list(queries), list(units), page).clicked & (page >= 0)


@dataclass(frozen=True)
class SimulatedInterleaving:
    """A simulated interleaving's analysis, and the sessions it needs beside an A/B test."""

    analysis: InterleavingAnalysis
    sample_size: SampleSizeComparison


def simulate_interleaving(logged: LoggedPages, ranker_a: Ranker, ranker_b: Ranker, catalog: Catalog,
                          behaviour: Behaviour, *, seed: int, arms: tuple[str, str] = ("control", "treatment"),
                          page_size: int = 10, batch_size: int = 8192, alpha: float = 0.05, power: float = 0.8,
                          credit_rule: CreditRule = "wins", unit: Unit | None = None) -> SimulatedInterleaving:
    """Interleave A = ``ranker_a`` (control) and B = ``ranker_b`` on the logged sessions
    (:func:`simulate_sessions`), analyse it (``unit`` None: per unit, as every logged session has one), and
    compare the sessions it needs with an A/B test of item CTR on the same sessions (:func:`compare_sample_sizes`)."""
    sim = simulate_sessions(logged, ranker_a, ranker_b, catalog, behaviour, seed, page_size, batch_size)
    analysis = analyse(sim.interleaved, arms, credit_rule, unit, alpha)
    codes = sim.interleaved.unit_codes
    assert codes is not None  # simulate_sessions codes every session's unit
    ab = ab_ratio_metric(codes, sim.clicks_a, sim.shown_a, sim.clicks_b, sim.shown_b)
    return SimulatedInterleaving(analysis, compare_sample_sizes(analysis, ab, power))


# --------------------------------------------------------------------------------------------
# report.json
# --------------------------------------------------------------------------------------------
def interleaving_report(analysis: InterleavingAnalysis,
                        sample_size: SampleSizeComparison | None = None) -> InterleavingResult:
    """The report's section: ``sample_size`` given for a simulation, absent for a logged comparison."""
    a = analysis
    size = None
    if sample_size is not None:
        s = sample_size
        size = InterleavingSampleSize(
            power=s.power, sessions_per_unit=s.sessions_per_unit, treatment_win_share=s.p_b, control_win_share=s.p_a,
            interleaving_sessions=finite_or_none(s.interleaving_sessions),
            interleaving_t_test_sessions=finite_or_none(s.interleaving_t_sessions),
            ab_control_value=finite_or_none(s.ab.value_a), ab_treatment_value=finite_or_none(s.ab.value_b),
            ab_control_variance=finite_or_none(s.ab.variance_a), ab_treatment_variance=finite_or_none(s.ab.variance_b),
            ab_units=finite_or_none(s.ab_units), ab_sessions=finite_or_none(s.ab_sessions),
            ratio=finite_or_none(s.ratio))
    return InterleavingResult(
        source="logged" if sample_size is None else "simulated", unit=a.unit, credit_rule=a.credit_rule,
        control=a.arms[0], treatment=a.arms[1], alpha=a.alpha, n=a.n, sessions=a.sessions,
        sessions_with_clicks=a.sessions_with_clicks, sessions_with_credited_clicks=a.sessions_with_credited_clicks,
        wins_control=a.wins_a, wins_treatment=a.wins_b, ties=a.ties, preference=finite_or_none(a.preference),
        preference_ci_low=finite_or_none(a.preference_ci[0]), preference_ci_high=finite_or_none(a.preference_ci[1]),
        treatment_win_rate=finite_or_none(a.win_rate), treatment_win_rate_ci_low=finite_or_none(a.win_rate_ci[0]),
        treatment_win_rate_ci_high=finite_or_none(a.win_rate_ci[1]), sign_test_p_value=a.sign_p_value,
        t_test_p_value=a.t_p_value, preferred=a.preferred, significant=a.significant, sample_size=size)
