"""Tests of two independent proportions from counts, each with the interval of the same test.

Every test here gives a p-value for H0: effect = null against the row's alternative, and the
interval that is exactly the set of nulls the same test does not reject at the row's level (a
two-sided interval at α, a one-sided bound at α otherwise), so p < α ⇔ the interval excludes the
null. Treatment is arm 1 (``xt`` successes of ``nt``), control arm 2 (``xc`` of ``nc``);
``greater`` is H1: treatment above control.

=============  ==========  =============================================================================
test           scale       what it is
=============  ==========  =============================================================================
``welch``      relative    the scorecard's default: Welch t on the 0/1 values (``compare``), not here
``wald``       relative    unpooled z: the arm variances p(1−p)/n, normal reference (df = ∞), and the
                           relative interval of the scorecard's relative-CI method (Fieller by
                           default). ``compare`` runs it through its own engine with those variances
                           (:func:`wald_variance`), so margins and sequential looks work as for welch.
``pooled``     relative    score test of the risk ratio (Miettinen & Nurminen 1985 without their
                           n/(n−1) factor; Koopman 1984 / Nam 1995): statsmodels
                           ``test_proportions_2indep(method="score", compare="ratio",
                           correction=False)`` and ``confint_proportions_2indep`` (same options) —
                           the test and its inverted interval. At ratio 1 it is the classic pooled
                           z test (``proportions_ztest``). The relative effect is ratio − 1.
``continuity`` absolute    continuity-corrected score test of the difference: Farrington & Manning
                           (1990, Stat. Med. 9:1447) z(δ) = (p̂t − p̂c − δ ∓ c)/√ṽ(δ) with the
                           variance ṽ at the restricted MLE under H0: pt − pc = δ, and Yates'
                           correction c = ½(1/nt + 1/nc) toward the null (Fleiss, Levin & Paik,
                           *Statistical Methods for Rates and Proportions*, 3rd ed., §3.3). At δ = 0
                           it is Yates' chi-square (``scipy.stats.chi2_contingency(correction=True)``);
                           the interval is its inversion (root-finding).
``fisher``     odds ratio  Fisher's exact conditional test: one-sided p from
                           ``scipy.stats.fisher_exact``, two-sided the central p = min(1, 2·min of the
                           one-sided ones); the interval is the conditional-MLE odds ratio's exact
                           interval (``scipy.stats.contingency.odds_ratio(kind="conditional")``),
                           which inverts the same one-sided tests. Null: odds ratio 1.
=============  ==========  =============================================================================

``continuity`` and ``fisher`` test no change only (a guardrail margin is relative and they are on
another scale), and none of the exact / score tests is sequential.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from .types import PROPORTION_TESTS

TESTS = PROPORTION_TESTS
SCALE = {"welch": "relative", "wald": "relative", "pooled": "relative", "continuity": "absolute",
         "fisher": "odds_ratio"}
COUNT_TESTS = ("pooled", "continuity", "fisher")  # from the counts alone, outside compare's engine


@dataclass(frozen=True)
class TestResult:
    """One row's test: p-value, estimate and interval on ``scale``, at level ``alpha``."""

    p_value: float
    estimate: float
    low: float
    high: float
    scale: str  # relative (ratio − 1) | absolute (pt − pc) | odds_ratio
    null: float


def wald_variance(p: np.ndarray) -> np.ndarray:
    """The per-unit variance p(1−p) of a 0/1 value (divisor n, not n − 1): the Wald test's."""
    return p * (1 - p)


def _sm_alternative(alternative: str) -> str:
    return {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[alternative]


def _check(xc: float, nc: float, xt: float, nt: float, alternative: str, alpha: float) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"unknown alternative {alternative!r}; use two-sided, greater or less")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if not (nc > 0 and nt > 0 and 0 <= xc <= nc and 0 <= xt <= nt):
        raise ValueError(f"counts must satisfy 0 <= x <= n, n > 0; got {xt}/{nt}, {xc}/{nc}")


def _score_ratio_z(xc: float, nc: float, xt: float, nt: float, ratio: float) -> float:
    """statsmodels' score statistic of H0: pt/pc = ``ratio`` (decreasing in ``ratio``)."""
    from statsmodels.stats.proportion import score_test_proportions_2indep

    res = score_test_proportions_2indep(xt, nt, xc, nc, value=ratio, compare="ratio", correction=False,
                                        return_results=True)
    return float(res.statistic)


def pooled(xc: float, nc: float, xt: float, nt: float, *, r0: float = 0.0, alternative: str = "two-sided",
           alpha: float = 0.05) -> TestResult:
    """Score test of H0: pt/pc = 1 + r0 and its interval, as relative effects (ratio − 1).

    The interval's bounds are the ratios where the same statistic reaches ±q (root-finding on the
    log ratio); in the interior they are ``confint_proportions_2indep``'s (tested), and they stay
    the test's own at the boundaries (an arm with all or no successes), where statsmodels' closed
    form does not.
    """
    from statsmodels.stats.proportion import test_proportions_2indep

    _check(xc, nc, xt, nt, alternative, alpha)
    ratio0 = 1.0 + r0
    estimate = (xt / nt) / (xc / nc) - 1 if xc > 0 else math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        p = float(test_proportions_2indep(xt, nt, xc, nc, value=ratio0, method="score", compare="ratio",
                                          alternative=_sm_alternative(alternative), correction=False).pvalue)
        if not math.isfinite(p):  # no information (no success, or no failure, in both arms)
            return TestResult(1.0, estimate, -1.0 if alternative != "less" else -math.inf,
                              math.inf, "relative", r0)
        q = float(stats.norm.isf(alpha / 2 if alternative == "two-sided" else alpha))

        def bound(target: float) -> float:  # log ratio where z = target; z decreases in the ratio
            def f(u: float) -> float:
                z = _score_ratio_z(xc, nc, xt, nt, math.exp(u))
                return (z if math.isfinite(z) else math.copysign(1e6, -u)) - target

            lo, hi = -40.0, 40.0
            if f(lo) <= 0:
                return 0.0
            if f(hi) >= 0:
                return math.inf
            return math.exp(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-13))

        # no control success: the ratio is unbounded above; no treatment success: it may be 0
        low = -math.inf if alternative == "less" else (-1.0 if xt == 0 else bound(q) - 1)
        high = math.inf if alternative == "greater" or xc == 0 else bound(-q) - 1
    return TestResult(p, estimate, low, high, "relative", r0)


def restricted_mle_diff(xc: float, nc: float, xt: float, nt: float, delta: float) -> tuple[float, float]:
    """(p̃t, p̃c): the MLE of both proportions under H0: pt − pc = ``delta``.

    The closed-form root of Farrington & Manning (1990), eq. 3–4 (Miettinen & Nurminen 1985).
    """
    p1, p2 = xt / nt, xc / nc
    theta = nc / nt
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + delta * (theta + 2))
    c = delta**2 + delta * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * delta * (1 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a**2) + d / (2 * a)
    u2 = b**2 / (9 * a**2) - c / (3 * a)
    u = math.copysign(math.sqrt(max(u2, 0.0)), v) if v != 0 else math.sqrt(max(u2, 0.0))
    if u == 0:
        t1 = -b / (3 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3
        t1 = 2 * u * math.cos(w) - b / (3 * a)
    t1 = min(max(t1, 0.0), 1.0)
    t2 = min(max(t1 - delta, 0.0), 1.0)
    return t1, t2


def score_se_diff(xc: float, nc: float, xt: float, nt: float, delta: float) -> float:
    """√ṽ(δ): the standard error of p̂t − p̂c at the restricted MLE under H0: pt − pc = δ."""
    t1, t2 = restricted_mle_diff(xc, nc, xt, nt, delta)
    return math.sqrt(t1 * (1 - t1) / nt + t2 * (1 - t2) / nc)


def _continuity_z(xc: float, nc: float, xt: float, nt: float, delta: float, cc: float, side: int) -> float:
    """z toward ``side`` (+1: the statistic of H1 "above δ", corrected down; −1: of "below δ", up)."""
    diff = xt / nt - xc / nc
    num = diff - delta - side * cc
    se = score_se_diff(xc, nc, xt, nt, delta)
    if se == 0:
        return math.copysign(math.inf, num) if num != 0 else 0.0
    return num / se


def continuity(xc: float, nc: float, xt: float, nt: float, *, r0: float = 0.0, alternative: str = "two-sided",
               alpha: float = 0.05) -> TestResult:
    """Continuity-corrected score test of H0: pt − pc = ``r0`` (absolute) and its inverted interval."""
    _check(xc, nc, xt, nt, alternative, alpha)
    diff = xt / nt - xc / nc
    cc = 0.5 * (1 / nt + 1 / nc)
    p_greater = float(stats.norm.sf(_continuity_z(xc, nc, xt, nt, r0, cc, +1)))
    p_less = float(stats.norm.cdf(_continuity_z(xc, nc, xt, nt, r0, cc, -1)))
    p = {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2 * min(p_greater, p_less))}[alternative]
    q = float(stats.norm.isf(alpha / 2 if alternative == "two-sided" else alpha))
    eps = 1e-12

    def lower() -> float:  # the δ where z_greater(δ) = q; z_greater decreases in δ
        f = lambda d: _continuity_z(xc, nc, xt, nt, d, cc, +1) - q  # noqa: E731
        left, right = -1 + eps, min(diff - cc, 1 - eps)
        if right <= left or f(left) <= 0:
            return -1.0
        return float(optimize.brentq(f, left, right, xtol=1e-14, rtol=1e-13))

    def upper() -> float:  # the δ where z_less(δ) = −q
        f = lambda d: _continuity_z(xc, nc, xt, nt, d, cc, -1) + q  # noqa: E731
        left, right = max(diff + cc, -1 + eps), 1 - eps
        if right <= left or f(right) >= 0:
            return 1.0
        return float(optimize.brentq(f, left, right, xtol=1e-14, rtol=1e-13))

    low = -math.inf if alternative == "less" else lower()
    high = math.inf if alternative == "greater" else upper()
    return TestResult(p, diff, low, high, "absolute", r0)


def fisher(xc: float, nc: float, xt: float, nt: float, *, r0: float = 0.0, alternative: str = "two-sided",
           alpha: float = 0.05) -> TestResult:
    """Fisher's exact test of odds ratio 1 (central two-sided p) and the exact conditional OR interval."""
    from scipy.stats.contingency import odds_ratio

    _check(xc, nc, xt, nt, alternative, alpha)
    if r0 != 0:
        raise ValueError("the fisher test has no margin: it tests odds ratio 1")
    table = np.array([[xt, nt - xt], [xc, nc - xc]], dtype=np.int64)
    p_greater = float(stats.fisher_exact(table, alternative="greater").pvalue)
    p_less = float(stats.fisher_exact(table, alternative="less").pvalue)
    p = {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2 * min(p_greater, p_less))}[alternative]
    res = odds_ratio(table, kind="conditional")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        ci = res.confidence_interval(confidence_level=1 - alpha, alternative=alternative)
    return TestResult(p, float(res.statistic), float(ci.low), float(ci.high), "odds_ratio", 1.0)


def run_test(test: str, xc: float, nc: float, xt: float, nt: float, *, r0: float = 0.0,
             alternative: str = "two-sided", alpha: float = 0.05) -> TestResult:
    """The count-based ``test`` (pooled, continuity or fisher) of one row."""
    fn = {"pooled": pooled, "continuity": continuity, "fisher": fisher}.get(test)
    if fn is None:
        raise ValueError(f"unknown count test {test!r}; use {', '.join(COUNT_TESTS)}")
    return fn(xc, nc, xt, nt, r0=r0, alternative=alternative, alpha=alpha)
