"""Welch's unequal-variance t inference on an absolute difference of two arm estimators."""

from __future__ import annotations

import numpy as np
from scipy import stats


def welch_df(
    var_c: np.ndarray, n_c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray,
    df_c: np.ndarray | None = None, df_t: np.ndarray | None = None,
) -> np.ndarray:
    """Welch–Satterthwaite df = (a + b)² / (a²/df_c + b²/df_t), a = var_c/n_c, b = var_t/n_t.

    Source: Welch (1947), Biometrika 34; Satterthwaite (1946), Biometrics Bulletin 2; as
    ``scipy.stats.ttest_ind(equal_var=False)`` and gbstats with the default per-arm df = n − 1.
    ``var_*`` are per-unit variances (of the linearised value for ratio / CUPED metrics); ``df_*``
    the per-arm df of those variances (Kish's effective n − 1 for small-sample-corrected ratios).
    """
    a = var_c / n_c
    b = var_t / n_t
    df_c = n_c - 1 if df_c is None else df_c
    df_t = n_t - 1 if df_t is None else df_t
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a**2 / df_c + b**2 / df_t)
    return np.where(np.isfinite(df), df, np.inf)


def t_quantile(alpha: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided critical value t_{1−α/2, df} (Student t; df = ∞ gives the normal quantile)."""
    return np.asarray(stats.t.isf(np.asarray(alpha) / 2, df))


def t_p_value(z: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p-value 2·P(T_df > |z|)."""
    return 2 * np.asarray(stats.t.sf(np.abs(z), df))
