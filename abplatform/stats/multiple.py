"""Multiple-testing adjustment across an experiment's metrics, with CIs that agree with it.

Adjusted p-values come from ``statsmodels.stats.multitest.multipletests``: Holm (1979) step-down
(FWER) and Benjamini & Hochberg (1995) step-up (FDR).

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
from statsmodels.stats.multitest import multipletests


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
        adj = multipletests(pf, alpha=alpha, method="holm")[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.where((adj < 1) & (adj > 0), alpha * pf / adj, alpha / mf)
    elif method == "bh":
        reject, adj, _, _ = multipletests(pf, alpha=alpha, method="fdr_bh")
        level = np.full(mf, max(int(reject.sum()), 1) * alpha / mf)
    else:
        raise ValueError(f"unknown correction {method!r}; use none, holm or bh")
    p_adj[finite] = adj
    alpha_i[finite] = level
    return p_adj, alpha_i
