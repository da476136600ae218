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
"""

from __future__ import annotations

import numpy as np


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
