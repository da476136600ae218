"""Team-draft interleaving of two rankers on logged sessions, with simulated clicks.

Team-draft interleaving (Radlinski, Kurup & Joachims 2008, "How does clickthrough data reflect
retrieval quality?", CIKM, Algorithm 2): the two rankings A (control) and B (treatment) pick in
turns, like captains picking teams; in each round a fair coin decides who picks first, and each
captain adds its highest-ranked item not yet on the page. When the teams are the same size the
coin decides, otherwise the smaller team picks. If one ranking runs out of new items (only on
short candidate lists), the other fills the rest of the page. The coin of step t of session s is
``abplatform.rng.uniforms(seed, s, Stream.INTERLEAVE_COIN, k)[t] >= 0.5`` (B first), so the page depends
only on (seed, session id), never on batch size.

Clicks on the interleaved page come from a click model (the fitted one, :mod:`.clickmodels`,
uniforms keyed by (seed, session id)) or from the synthetic world's true behaviour (the oracle).
Per-session credit: +1 if B's team got more clicks, -1 if A's did, 0 on a tie (incl. no clicks).

Significance (sessions are the unit and treated as i.i.d.): the two-sided **sign test** — a
binomial test of B's wins among the sessions with a winner against 1/2 (scipy ``binomtest``;
the test of Radlinski et al. 2008 and Chapelle, Joachims, Radlinski & Yue 2012, "Large-scale
validation and analysis of interleaved search evaluation", TOIS), with the Clopper–Pearson CI
of B's win rate; and a one-sample t-test of the mean credit against 0 (scipy ``ttest_1samp``)
with its t interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from abplatform import rng
from abplatform.offline.clickmodels import ClickModel, QueryVocab
from abplatform.rng import Stream

TEAM_A, TEAM_B, NO_TEAM = 0, 1, -1


@dataclass(frozen=True)
class Interleaved:
    pages: np.ndarray  # (n, k) item ids of the interleaved page, -1 = no item
    teams: np.ndarray  # (n, k) int8: TEAM_A, TEAM_B or NO_TEAM


def team_draft(session_ids: np.ndarray, ranking_a: np.ndarray, ranking_b: np.ndarray, seed: int,
               k: int | None = None) -> Interleaved:
    """Team-draft interleave rankings ``ranking_a`` and ``ranking_b`` (n, >= k item ids, -1 padded)."""
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


def credit(teams: np.ndarray, clicks: np.ndarray) -> np.ndarray:
    """(n,) int8: +1 if team B got more clicks, -1 if team A did, 0 otherwise."""
    clicks = np.asarray(clicks, bool)
    b = (clicks & (teams == TEAM_B)).sum(axis=1)
    a = (clicks & (teams == TEAM_A)).sum(axis=1)
    return np.sign(b - a).astype(np.int8)


@dataclass(frozen=True)
class InterleavingResult:
    n: int  # sessions
    wins_b: int
    wins_a: int
    ties: int
    mean_credit: float  # E[credit] > 0: B preferred
    credit_ci: tuple[float, float]  # t interval of the mean credit
    t_p_value: float
    win_rate: float  # B's share of the sessions with a winner
    win_rate_ci: tuple[float, float]  # Clopper-Pearson
    sign_p_value: float  # two-sided sign (binomial) test
    alpha: float

    @property
    def significant(self) -> bool:
        return self.sign_p_value < self.alpha

    @property
    def preferred(self) -> str:
        return "B" if self.wins_b > self.wins_a else "A" if self.wins_a > self.wins_b else "none"


def interleaving_test(credits: np.ndarray, alpha: float = 0.05) -> InterleavingResult:
    """Sign test and t-test of per-session credits (+1 / -1 / 0)."""
    c = np.asarray(credits)
    n = len(c)
    wins_b, wins_a = int((c > 0).sum()), int((c < 0).sum())
    decisive = wins_a + wins_b
    if decisive:
        bt = stats.binomtest(wins_b, decisive, 0.5)
        ci = bt.proportion_ci(1 - alpha, method="exact")
        sign_p, win_rate, win_ci = float(bt.pvalue), wins_b / decisive, (float(ci.low), float(ci.high))
    else:
        sign_p, win_rate, win_ci = 1.0, float("nan"), (0.0, 1.0)
    mean = float(c.mean()) if n else float("nan")
    if n > 1 and c.std() > 0:
        tt = stats.ttest_1samp(c.astype(float), 0.0)
        tci = tt.confidence_interval(1 - alpha)
        t_p, credit_ci = float(tt.pvalue), (float(tci.low), float(tci.high))
    else:
        t_p, credit_ci = 1.0, (mean, mean)
    return InterleavingResult(n, wins_b, wins_a, n - decisive, mean, credit_ci, t_p, win_rate, win_ci, sign_p, alpha)


# --------------------------------------------------------------------------------------------
# clicks on interleaved pages
# --------------------------------------------------------------------------------------------
def click_model_clicks(model: ClickModel, vocab: QueryVocab, queries: np.ndarray, session_ids: np.ndarray,
                       pages: np.ndarray, seed: int) -> np.ndarray:
    """(n, k) clicks sampled from a fitted click model, uniforms keyed by (seed, session id)."""
    from abplatform.offline.ope import query_ids_for

    u = rng.uniforms(seed, np.asarray(session_ids), Stream.INTERLEAVE_CLICK, pages.shape[1])
    return np.asarray(model.sample(query_ids_for(vocab, queries), pages, u), bool) & (pages >= 0)
