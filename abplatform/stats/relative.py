"""The relative effect (T − C)/|C| of a treatment estimator T over a control estimator C, and the
test of H0: relative effect = r0 that each relative-CI method implies.

Inputs are the arm estimators ``t``, ``c`` and their sampling variances ``vt``, ``vc`` (arms
independent). Dividing by |C| keeps the sign of the effect with the sign of T − C, so a
metric that improves from −10 to −5 reads +50%, not −50%. With ρ = T/C and s = sign(C), the
relative effect is s·(ρ − 1) and H0: rel = r0 is H0: ρ = ρ0 = 1 + s·r0.

Every method gives a statistic z(r0), oriented so that z > 0 means the estimate lies above r0
and decreasing in r0, and its confidence bounds are the roots of z(r0) = ±q: the interval is
exactly the set of r0 its test does not reject, so "p < α ⇔ the interval excludes r0" holds by
construction for every method, level and one- or two-sided alternative.

* ``delta``   z = (rel − r0)/se, se² = vt/C² + T²·vc/C⁴ (first-order Taylor; gbstats
              ``variance_of_ratios``). Symmetric; its lower bound can fall below −100%.
* ``log``     z = s·(log ρ − log ρ0)/se, se² = vt/T² + vc/C² (needs ρ > 0); bounds
              s·(ρ·exp(∓s·q·se) − 1), never below −100% (tea-tasting's ``Mean``/``RatioOfMeans``).
* ``fieller`` Fieller (1954), JRSS B 16: z = (T − ρ0·C)/√(vt + ρ0²·vc); the bounds are the roots
              of ρ²(C² − q²vc) − 2ρTC + T² − q²vt = 0. At r0 = 0 it is the test of the absolute
              difference, so the relative interval, the absolute interval and the p-value agree.

Degrees of freedom (``relative_df``): ``log`` has the Welch–Satterthwaite df of its own
variance terms vt/T², vc/C² (as tea-tasting's ``Mean`` / ``RatioOfMeans``); ``delta`` and
``fieller`` the df of the absolute difference (vt, vc), as gbstats.

"Not estimable": a relative effect needs a baseline that is not within noise of zero. When
|C| ≤ q·√vc (the control mean is not significantly non-zero at the CI's level; Fieller's interval
would be unbounded) or, for ``log``, when T/C ≤ 0, :func:`estimable` is False and the
scorecard reports the absolute difference's test alone.
"""

from __future__ import annotations

import numpy as np

from .welch import welch_df

METHODS = ("delta", "log", "fieller")


def _check(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown relative_ci method {method!r}; use delta, log or fieller")


def relative_effect(t: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(T − C)/|C|: the relative effect, signed like T − C."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (t - c) / np.abs(c)


def estimable(method: str, t: np.ndarray, c: np.ndarray, vc: np.ndarray, q: np.ndarray) -> np.ndarray:
    """True where the relative effect has a finite interval at multiplier ``q``."""
    _check(method)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(t) & np.isfinite(c) & (c != 0) & (c**2 > q**2 * vc)
        if method == "log":
            ok &= t / np.where(c == 0, np.nan, c) > 0
    return ok


def relative_z(method: str, t: np.ndarray, c: np.ndarray, vt: np.ndarray, vc: np.ndarray,
               r0: np.ndarray | float = 0.0) -> np.ndarray:
    """z statistic of H0: (T − C)/|C| = r0 on the scale of ``method`` (positive: estimate above r0)."""
    _check(method)
    s = np.sign(c)
    rho0 = 1 + s * np.asarray(r0, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "delta":
            return (relative_effect(t, c) - r0) / np.sqrt(vt / c**2 + t**2 * vc / c**4)
        if method == "log":
            return s * (np.log(t / c) - np.log(rho0)) / np.sqrt(vt / t**2 + vc / c**2)
        return (t - rho0 * c) / np.sqrt(vt + rho0**2 * vc)


def relative_bound(method: str, t: np.ndarray, c: np.ndarray, vt: np.ndarray, vc: np.ndarray,
                   q: np.ndarray) -> np.ndarray:
    """The r0 where z(r0) = q: the lower confidence bound for q > 0, the upper one for q < 0.

    Unbounded (−∞ for a lower, +∞ for an upper bound) where Fieller's quadratic has no root.
    """
    _check(method)
    s = np.sign(c)
    q = np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "delta":
            return relative_effect(t, c) - q * np.sqrt(vt / c**2 + t**2 * vc / c**4)
        if method == "log":
            rho = t / c
            return s * (rho * np.exp(-s * q * np.sqrt(vt / t**2 + vc / c**2)) - 1)
        a = c**2 - q**2 * vc
        disc = np.sqrt(q**2 * (vt * a + vc * t**2))
        # T − ρC has the sign of q: for C > 0 the smaller root when q > 0, for C < 0 the larger
        pick = np.sign(q) * s
        rho = (t * c - pick * disc) / a
        bound = s * (rho - 1)
        return np.where(a > 0, bound, -np.sign(q) * np.inf)


def relative_df(method: str, t: np.ndarray, c: np.ndarray, var_t: np.ndarray, n_t: np.ndarray,
                var_c: np.ndarray, n_c: np.ndarray, df_t: np.ndarray, df_c: np.ndarray) -> np.ndarray:
    """Welch–Satterthwaite df of the method's statistic (per-unit variances ``var_*``, arm sizes
    ``n_*``, per-arm df ``df_*``)."""
    _check(method)
    if method != "log":
        return welch_df(var_c, n_c, var_t, n_t, df_c, df_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return welch_df(var_c / c**2, n_c, var_t / t**2, n_t, df_c, df_t)
