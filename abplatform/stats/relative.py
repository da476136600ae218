"""Relative effect T/C − 1 of a treatment estimator T over a control estimator C, three ways.

Inputs are the arm estimators ``t``, ``c`` and their sampling variances ``vt``, ``vc`` (arms
independent), and a two-sided critical multiplier ``q`` per row (t quantile, or a sequential one).

* ``delta``   Var(T/C) ≈ vt/C² + T²·vc/C⁴ (first-order Taylor; as gbstats ``variance_of_ratios``);
              CI = (T/C − 1) ± q·se.
* ``log``     Var(log T − log C) ≈ vt/T² + vc/C²; CI = exp(log(T/C) ± q·se) − 1 (needs T, C > 0).
* ``fieller`` Fieller (1954), JRSS B 16: {ρ : (T − ρC)² ≤ q²(vt + ρ²vc)}, the roots of
              ρ²(C² − q²vc) − 2ρTC + T² − q²vt = 0; unbounded (±∞) when C² ≤ q²vc (C not
              significantly non-zero). Its test of ρ = 1 is the absolute-difference test.

``relative_z`` gives the test statistic of H0: T/C − 1 = r0 on the same scale as each CI, so the
relative p-value and the non-inferiority test agree with the reported relative CI.
"""

from __future__ import annotations

import numpy as np


def relative_ci(method: str, t: np.ndarray, c: np.ndarray, vt: np.ndarray, vc: np.ndarray,
                q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the relative effect by ``method`` ("delta", "log" or "fieller")."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "delta":
            rel = t / c - 1
            se = np.sqrt(vt / c**2 + t**2 * vc / c**4)
            return rel - q * se, rel + q * se
        if method == "log":
            log_ratio = np.log(t / c)
            se = np.sqrt(vt / t**2 + vc / c**2)
            return np.expm1(log_ratio - q * se), np.expm1(log_ratio + q * se)
        if method == "fieller":
            a = c**2 - q**2 * vc
            disc = np.sqrt(q**2 * (vt * a + vc * t**2))
            r1 = (t * c - disc) / a - 1
            r2 = (t * c + disc) / a - 1
            bounded = a > 0
            return np.where(bounded, np.minimum(r1, r2), -np.inf), np.where(bounded, np.maximum(r1, r2), np.inf)
    raise ValueError(f"unknown relative_ci method {method!r}; use delta, log or fieller")


def relative_z(method: str, t: np.ndarray, c: np.ndarray, vt: np.ndarray, vc: np.ndarray,
               r0: np.ndarray | float = 0.0) -> np.ndarray:
    """z statistic of H0: T/C − 1 = r0, on the scale of ``method``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "delta":
            return (t / c - 1 - r0) / np.sqrt(vt / c**2 + t**2 * vc / c**4)
        if method == "log":
            return (np.log(t / c) - np.log1p(r0)) / np.sqrt(vt / t**2 + vc / c**2)
        if method == "fieller":
            rho0 = 1 + np.asarray(r0)
            return (t - rho0 * c) / np.sqrt(vt + rho0**2 * vc)
    raise ValueError(f"unknown relative_ci method {method!r}; use delta, log or fieller")
