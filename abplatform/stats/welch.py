"""Welch's unequal-variance t inference on an absolute difference of two arm estimators."""

from __future__ import annotations

import numpy as np
from scipy import stats


def welch_df(var_c: np.ndarray, n_c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray) -> np.ndarray:
    """Welch–Satterthwaite df = (a + b)² / (a²/(n_c − 1) + b²/(n_t − 1)), a = var_c/n_c, b = var_t/n_t.

    Source: Welch (1947), Biometrika 34; as ``scipy.stats.ttest_ind(equal_var=False)`` and gbstats.
    ``var_*`` are per-unit variances (of the linearised value for ratio / CUPED metrics).
    """
    a = var_c / n_c
    b = var_t / n_t
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / (n_c - 1) + b**2 / (n_t - 1))
    return np.where(np.isfinite(df), df, np.inf)


def t_quantile(alpha: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided critical value t_{1−α/2, df} (Student t; df = ∞ gives the normal quantile)."""
    return stats.t.isf(np.asarray(alpha) / 2, df)


def t_p_value(z: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p-value 2·P(T_df > |z|)."""
    return 2 * stats.t.sf(np.abs(z), df)
