"""Multiple-testing adjustment across an experiment's metrics, with CIs that agree with it.

Adjusted p-values: Holm (1979) step-down (FWER) and Benjamini & Hochberg (1995) step-up (FDR), the
same formulas as ``statsmodels.stats.multitest.multipletests`` (the tests check equality with
it). They are computed here in a few numpy lines because ``multipletests(method="holm")`` runs
``gc.collect()`` on every call: a full collection of the imported platform's heap for every family
(a scorecard has one per look × segment), where the two formulas are a few array operations.

Adjusted CIs are CIs at a per-metric level α_i chosen so that "adjusted p < α ⇔ adjusted CI
excludes 0" holds exactly:

* Holm: α_i = α·p_i/p̃_i (p̃ the adjusted p). For the k-th smallest p this is the Holm step level
  α/(m − k + 1) (smaller where the step-down running maximum binds); for Bonferroni it is α/m.
  Since p_i < α_i ⇔ p̃_i < α the two readings agree. When p̃_i = 1, α_i = α/m.
* BH: Benjamini & Yekutieli (2005), "False discovery rate–adjusted multiple confidence intervals",
  JASA 100: every CI at level 1 − R·α/m, R = number of BH rejections at α (R = 0 → α/m). These
  control the false coverage-statement rate, and a BH rejection ⇔ p_i ≤ Rα/m ⇔ the CI excludes 0.
* Dunnett (:func:`dunnett`): the simultaneous level of the many-to-one comparisons of one metric,
  α_i = P(|Z| > c) with c the Dunnett critical value, so the adjusted CIs are Dunnett's simultaneous
  intervals.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.stats import multivariate_normal, norm

DUNNETT_SEED = 20_241_955  # the quasi-Monte Carlo points of the normal integral: fixed, so results are repeatable


def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p: running max over sorted p of (m − k + 1)·p_(k), capped at 1."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adj = np.empty(m)
    adj[order] = np.minimum(np.maximum.accumulate(p[order] * np.arange(m, 0, -1)), 1.0)
    return adj


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH step-up adjusted p: running min from the largest p of m·p_(k)/k, capped at 1."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    raw = p[order] * m / np.arange(1, m + 1)
    adj = np.empty(m)
    adj[order] = np.minimum(np.minimum.accumulate(raw[::-1])[::-1], 1.0)
    return adj


def _max_below(z: float, corr: np.ndarray, two_sided: bool) -> float:
    """P(max_j Z_j < z) (one-sided) or P(max_j |Z_j| < z) for Z ~ N(0, corr)."""
    k = len(corr)
    if k == 1:
        return float(1 - 2 * norm.sf(z) if two_sided else norm.cdf(z))
    lower = np.full(k, -z if two_sided else -np.inf)
    return float(multivariate_normal.cdf(np.full(k, z), cov=corr, lower_limit=lower, abseps=1e-6, releps=1e-6,
                                         rng=np.random.default_rng(DUNNETT_SEED)))


def _excess(z: float, corr: np.ndarray, two_sided: bool, m: int, alpha: float) -> float:
    return m * (1 - _max_below(z, corr, two_sided)) - alpha


def dunnett(p_values: np.ndarray, alpha: float, groups: np.ndarray, var_control: np.ndarray,
            var_treatment: np.ndarray, two_sided: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p-values, CI level α_i) of one family by single-step Dunnett within each group.

    A group is one metric's comparisons of several treatments with one shared control (Dunnett 1955,
    "A multiple comparison procedure for comparing several treatments with a control", JASA 50):
    their statistics are jointly normal with corr(Z_i, Z_j) = √(v_C,i v_C,j) / √((v_C,i + v_T,i)(v_C,j
    + v_T,j)) (v the variances of the arm means — the shared control's noise is what correlates them;
    Welch variances, so unequal arms are allowed). Each row's p-value is read as its normal quantile z
    and p̃ = m·P(max |Z| ≥ z) (one-sided: max Z), m the number of groups in the family (Bonferroni
    across metrics), capped at 1. α_i = P(|Z| > c) (one-sided P(Z > c)) with c solving m·P(max ≥ c) =
    α, so p_i < α_i ⇔ z > c ⇔ p̃ < α: the adjusted CI is Dunnett's simultaneous interval.
    """
    p = np.asarray(p_values, dtype=float)
    p_adj, alpha_i = np.full(len(p), np.nan), np.full(len(p), np.nan)
    keys = list(dict.fromkeys(groups.tolist()))
    m = len(keys)
    for key in keys:
        rows = np.flatnonzero(groups == key)
        sided = bool(two_sided[rows[0]])
        se = np.sqrt(var_control[rows] + var_treatment[rows])
        corr = np.outer(np.sqrt(var_control[rows]), np.sqrt(var_control[rows])) / np.outer(se, se)
        np.fill_diagonal(corr, 1.0)
        if not np.isfinite(corr).all():  # a row without variance: Bonferroni for the group
            p_adj[rows] = np.minimum(p[rows] * m * len(rows), 1.0)
            alpha_i[rows] = alpha / (m * len(rows))
            continue
        for r in rows:
            if np.isfinite(p[r]):
                z = norm.isf(p[r] / 2) if sided else norm.isf(p[r])
                p_adj[r] = min(1.0, m * (1 - _max_below(z, corr, sided)))
        c = optimize.brentq(_excess, 0.0, 40.0, args=(corr, sided, m, alpha), xtol=1e-10)
        alpha_i[rows] = 2 * norm.sf(c) if sided else norm.sf(c)
    return p_adj, alpha_i


def adjust(p_values: np.ndarray, alpha: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p-values, per-metric CI level α_i) for one family; method "none", "holm" or "bh"."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if method == "none" or m == 0:
        return p.copy(), np.full(m, alpha)
    finite = np.isfinite(p)
    p_adj = np.full(m, np.nan)
    alpha_i = np.full(m, alpha / max(m, 1))
    if not finite.any():
        return p_adj, alpha_i
    pf = p[finite]
    mf = len(pf)
    if method == "holm":
        adj = holm(pf)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where((adj < 1) & (adj > 0), alpha * pf / adj, alpha / mf)
    elif method == "bh":
        adj = benjamini_hochberg(pf)
        level = np.full(mf, max(int((adj <= alpha).sum()), 1) * alpha / mf)
    else:
        raise ValueError(f"unknown correction {method!r}; use none, holm or bh")
    p_adj[finite] = adj
    alpha_i[finite] = level
    return p_adj, alpha_i
