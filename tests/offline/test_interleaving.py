"""Team-draft interleaving: the vectorised draft against a per-session brute force, credit rules,
determinism and batch independence, and the significance tests against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from abplatform.offline import interleaving as il


def brute_team_draft(a: list[int], b: list[int], coins: list[bool], k: int) -> tuple[list[int], list[int]]:
    """Radlinski et al. (2008), Algorithm 2, one session at a time (fill from the other list when one runs out)."""
    page: list[int] = []
    teams: list[int] = []
    a = [x for x in a if x >= 0]
    b = [x for x in b if x >= 0]
    for t in range(k):
        free_a = [x for x in a if x not in page]
        free_b = [x for x in b if x not in page]
        if not free_a and not free_b:
            break
        na, nb = teams.count(il.TEAM_A), teams.count(il.TEAM_B)
        pick_b = na > nb or (na == nb and coins[t])
        if not free_a:
            pick_b = True
        elif not free_b:
            pick_b = False
        page.append(free_b[0] if pick_b else free_a[0])
        teams.append(il.TEAM_B if pick_b else il.TEAM_A)
    return page + [-1] * (k - len(page)), teams + [il.NO_TEAM] * (k - len(teams))


def test_hand_made_case():
    a = np.array([[1, 2, 3, 4]])
    b = np.array([[2, 1, 5, 6]])
    # step 0: equal teams, coin -> A picks 1; step 1: B picks 2; step 2: coin -> B picks 5; step 3: A picks 3
    out = il.team_draft_with_coins(a, b, np.array([[False, False, True, False]]))
    assert out.pages.tolist() == [[1, 2, 5, 3]]
    assert out.teams.tolist() == [[0, 1, 1, 0]]
    # B first: B takes 2, A takes 1, then A first: A takes 3, B takes 5
    out = il.team_draft_with_coins(a, b, np.array([[True, False, False, True]]))
    assert out.pages.tolist() == [[2, 1, 3, 5]]
    assert out.teams.tolist() == [[1, 0, 0, 1]]
    # clicks on 1 and 5 after the first draft: one each, a tie; on 2 and 5: B wins; on 3 only: A wins
    teams = np.array([[0, 1, 1, 0]] * 3)
    clicks = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 0, 1]], bool)
    assert il.session_credits(*il.team_clicks(teams, clicks)).tolist() == [0, 1, -1]


def test_vectorised_draft_matches_brute_force():
    g = np.random.default_rng(0)
    n, k = 400, 6
    a = np.array([g.choice(10, k, replace=False) for _ in range(n)])
    b = np.array([g.choice(10, k, replace=False) for _ in range(n)])
    a[:50, 4:] = -1  # short rankings
    b[50:80, 2:] = -1
    b[80:100] = a[80:100]  # identical rankings
    coins = g.random((n, k)) < 0.5
    out = il.team_draft_with_coins(a, b, coins)
    for i in range(n):
        page, teams = brute_team_draft(a[i].tolist(), b[i].tolist(), coins[i].tolist(), k)
        assert out.pages[i].tolist() == page, i
        assert out.teams[i].tolist() == teams, i
    # team-draft properties: no duplicates, team sizes within one at every prefix, each team in its ranking's order
    for i in range(n):
        shown = out.pages[i][out.pages[i] >= 0]
        assert len(set(shown)) == len(shown)
        diff = np.cumsum(np.where(out.teams[i] == 1, 1, np.where(out.teams[i] == 0, -1, 0)))
        assert np.all(np.abs(diff[: len(shown)]) <= 1) or (a[i] < 0).any() or (b[i] < 0).any()
        for team, ranking in ((0, a[i]), (1, b[i])):
            picked = out.pages[i][out.teams[i] == team]
            order = [list(ranking).index(x) for x in picked]
            assert order == sorted(order)


def test_credit_rules_brute_force():
    g = np.random.default_rng(1)
    teams = g.integers(-1, 2, (300, 8)).astype(np.int8)
    clicks = (g.random((300, 8)) < 0.3) & (teams >= 0)
    wins, difference = [], []
    for t, c in zip(teams, clicks, strict=True):
        na = sum(1 for x, y in zip(t, c, strict=True) if y and x == 0)
        nb = sum(1 for x, y in zip(t, c, strict=True) if y and x == 1)
        wins.append(1 if nb > na else -1 if na > nb else 0)
        difference.append((nb - na) / (na + nb) if na + nb else 0.0)
    a, b = il.team_clicks(teams, clicks)
    assert il.session_credits(a, b, "wins").tolist() == wins
    np.testing.assert_allclose(il.session_credits(a, b, "click_difference"), difference)
    with pytest.raises(ValueError, match="unknown credit rule 'x'"):
        il.session_credits(a, b, "x")  # type: ignore[arg-type]


def test_deterministic_and_batch_independent():
    g = np.random.default_rng(2)
    n, k = 1000, 10
    ids = g.choice(10**9, n, replace=False).astype(np.int64)
    a = np.array([g.choice(30, k, replace=False) for _ in range(n)])
    b = np.array([g.choice(30, k, replace=False) for _ in range(n)])
    whole = il.team_draft(ids, a, b, seed=7)
    again = il.team_draft(ids, a, b, seed=7)
    np.testing.assert_array_equal(whole.pages, again.pages)
    perm = g.permutation(n)
    parts = [il.team_draft(ids[perm[s]], a[perm[s]], b[perm[s]], seed=7) for s in (slice(0, 333), slice(333, n))]
    np.testing.assert_array_equal(np.concatenate([p.pages for p in parts]), whole.pages[perm])
    np.testing.assert_array_equal(np.concatenate([p.teams for p in parts]), whole.teams[perm])
    other = il.team_draft(ids, a, b, seed=8)
    assert (other.teams != whole.teams).any()
    # the first pick is a fair coin when the top items differ
    first_b = (whole.teams[:, 0] == il.TEAM_B)[a[:, 0] != b[:, 0]]
    assert stats.binomtest(int(first_b.sum()), len(first_b)).pvalue > 0.001


def test_significance_against_scipy():
    g = np.random.default_rng(4)
    credits = g.choice([-1, 0, 1], size=700, p=[0.28, 0.4, 0.32])
    team_a, team_b = (credits < 0).astype(int), (credits > 0).astype(int)
    res = il.analyse(il.SessionClicks(team_a, team_b, team_a + team_b), alpha=0.1)
    assert res.unit == "session" and res.n == 700
    wins_b, wins_a = int((credits == 1).sum()), int((credits == -1).sum())
    bt = stats.binomtest(wins_b, wins_a + wins_b, 0.5)
    assert (res.wins_b, res.wins_a, res.ties) == (wins_b, wins_a, 700 - wins_a - wins_b)
    assert res.sign_p_value == pytest.approx(bt.pvalue)
    ci = bt.proportion_ci(0.9, method="exact")
    assert res.win_rate_ci == pytest.approx((ci.low, ci.high))
    tt = stats.ttest_1samp(credits, 0.0)
    assert res.t_p_value == pytest.approx(tt.pvalue)
    tci = tt.confidence_interval(0.9)
    assert res.preference_ci == pytest.approx((tci.low, tci.high))
    assert res.preference == pytest.approx(credits.mean())
    assert res.preferred == ("B" if wins_b > wins_a else "A")
    no_clicks = np.zeros(10, int)
    assert il.analyse(il.SessionClicks(no_clicks, no_clicks, no_clicks)).sign_p_value == 1.0


def test_identical_rankers_false_positive_rate():
    """A/A: interleaving a ranking with itself, with random clicks, rejects in about alpha of the runs."""
    g = np.random.default_rng(5)
    reps, n, k = 400, 150, 5
    a = np.array([g.choice(20, k, replace=False) for _ in range(n * reps)])
    out = il.team_draft(np.arange(n * reps), a, a, seed=1)
    clicks = g.random((n * reps, k)) < 0.5 / np.arange(1, k + 1)
    team_a, team_b = (x.reshape(reps, n) for x in il.team_clicks(out.teams, clicks))
    rejections = np.mean([il.analyse(il.SessionClicks(a, b, a + b)).sign_p_value < 0.05
                          for a, b in zip(team_a, team_b, strict=True)])
    assert 0.02 <= rejections <= 0.08
