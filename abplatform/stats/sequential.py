"""Sequential monitoring: critical multipliers and p-values that stay valid under daily peeking.

Two procedures, both on the z statistic of an estimate (normal approximation):

* Asymptotic confidence sequence (GrowthBook gbstats ``SequentialTwoSidedTTest``; Waudby-Smith,
  Arnold, Wu, Ramdas, Howard (2021/2023), "Time-uniform central limit theory and asymptotic
  confidence sequences", eq. 9 and 155; Howard et al. (2021) normal mixture). With N = n_c + n_t
  and ρ² = (−2 ln α₀ + ln(1 − 2 ln α₀))/N* tuned at the design level α₀ and sample size N*:
      half-width = se·M(α),  M(α)² = 2(Nρ² + 1)/(Nρ²)·ln(√(Nρ² + 1)/α)
      p = min(1, √(Nρ² + 1)·exp(−z²·Nρ²/(2(Nρ² + 1))))        (so p < α ⇔ |z| > M(α)).
* Group-sequential Lan–DeMets alpha spending with the O'Brien–Fleming-type spending function
  (Lan & DeMets (1983), Biometrika 70), spent on each side at level α/2 as R ``ldbounds`` and
  ``gsDesign::sfLDOF`` do: α(t) = 2·[2 − 2Φ(z_{1−α/4}/√t)], α(1) = α. Symmetric boundaries c_1..c_K solve
  P(|Z_j| < c_j for j < k, |Z_k| ≥ c_k) = α(t_k) − α(t_{k−1}) by the Armitage–McPherson–Rowe
  recursion on the Brownian-motion scale B(t) = Z·√t (numerical integration with Simpson's
  rule, Jennison & Turnbull (2000) ch. 19). Looks past ``planned_n``: the first one is the final
  analysis (spending fraction capped at 1, all remaining alpha spent, correlations from the
  actual information — over-running, J&T §7.2.2); a later one re-does that final analysis on more
  data (``final_schedule``). The CI at look k is the repeated CI estimate ± c_k·se
  and the p-value the repeated p-value inf{α : |z_k| ≥ c_k(α)} — again p < α ⇔ CI excludes 0.
"""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np
from scipy import interpolate, optimize, special, stats

_GRID = 201  # Simpson points across the continuation region (odd); boundaries agree with 801 to 1e-7
_TABLE_NODES = 200  # log-spaced α nodes of the boundary table behind repeated p-values


def cs_rho2(alpha0: float, tuning_n: float) -> float:
    """ρ² of the normal-mixture confidence sequence tuned to be tightest at N = tuning_n."""
    la = -2 * np.log(alpha0)
    return (la + np.log(la + 1)) / tuning_n


def cs_multiplier(alpha: np.ndarray, n_total: np.ndarray, alpha0: float, tuning_n: float) -> np.ndarray:
    """M(α): half-width of the confidence sequence in units of the standard error."""
    nr2 = n_total * cs_rho2(alpha0, tuning_n)
    return np.sqrt(2 * (nr2 + 1) / nr2 * np.log(np.sqrt(nr2 + 1) / np.asarray(alpha)))


def cs_p_value(z: np.ndarray, n_total: np.ndarray, alpha0: float, tuning_n: float) -> np.ndarray:
    """Always-valid p-value (1/e-value) of the confidence sequence."""
    nr2 = n_total * cs_rho2(alpha0, tuning_n)
    return np.minimum(1.0, np.sqrt(nr2 + 1) * np.exp(-(z**2) * nr2 / (2 * (nr2 + 1))))


def obf_spending(t: np.ndarray, alpha: float) -> np.ndarray:
    """Cumulative two-sided alpha spent by information fraction t: 2·[2 − 2Φ(z_{1−α/4}/√t)]."""
    return 4 * stats.norm.sf(stats.norm.isf(alpha / 4) / np.sqrt(np.asarray(t, dtype=float)))


def _simpson_weights(k: int, h: float) -> np.ndarray:
    w = np.ones(k)
    w[1:-1:2] = 4
    w[2:-1:2] = 2
    return w * h / 3


def _exit_excess(c: float, tk: float, f: np.ndarray, g: np.ndarray, sd: float, pk: float) -> float:
    """P(|B(t_k)| > c √t_k from the sub-density ``f`` on the grid ``g`` at the previous look) minus the
    alpha ``pk`` to spend at look k (``sd`` = √(t_k - t_{k-1}))."""
    a = c * np.sqrt(tk)
    return float(f @ (special.ndtr((g - a) / sd) + special.ndtr((-a - g) / sd))) - pk


@lru_cache(maxsize=4096)
def _boundaries(t: tuple[float, ...], alpha: float, info: tuple[float, ...] | None = None) -> tuple[float, ...]:
    """Boundaries for spending fractions ``t`` (≤ 1) and information times ``info`` (default ``t``).

    Spending uses ``t``; the joint law of the z statistics uses ``info`` (Corr(Z_j, Z_k) =
    √(info_j/info_k)), so an over-running final look (info > 1, t = 1) spends exactly the
    remaining alpha with the right correlation to the earlier looks.
    """
    info = t if info is None else info
    spent = np.diff(np.concatenate([[0.0], obf_spending(np.array(t), alpha)]))
    out: list[float] = []
    # continuation-region grid and sub-density of B(t_{k-1}) on it (with its Simpson weights)
    grid: np.ndarray | None = None
    dens = wts = np.empty(0)
    prev_t = 0.0
    for tk, pk in zip(info, spent, strict=True):
        if pk <= 0 or tk <= prev_t:
            out.append(np.inf)  # no new information or no alpha left to spend at this look
            continue
        sd = np.sqrt(tk - prev_t)
        if grid is None:
            c = float(stats.norm.isf(pk / 2))
        else:
            exit_prob = partial(_exit_excess, tk=tk, f=dens * wts, g=grid, sd=sd, pk=pk)
            hi = 1.0
            while exit_prob(hi) > 0:
                hi *= 2
            c = float(optimize.brentq(exit_prob, 0.0, hi, xtol=1e-10)) if exit_prob(0.0) > 0 else 0.0
        out.append(c)
        a = c * np.sqrt(tk)
        new_grid = np.linspace(-a, a, _GRID)
        if grid is None:
            new_dens = stats.norm.pdf(new_grid / sd) / sd
        else:
            kernel = np.exp(-0.5 * ((new_grid[:, None] - grid[None, :]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
            new_dens = kernel @ (dens * wts)
        grid, dens, wts = new_grid, new_dens, _simpson_weights(_GRID, new_grid[1] - new_grid[0])
        prev_t = tk
    return tuple(out)


def _key(t: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(spending fractions min(t, 1), information times t) of a look schedule ``t`` = n_look/planned_n."""
    tt = np.asarray(t, dtype=float)
    if np.any(np.diff(tt) < 0) or np.any(tt <= 0):
        raise ValueError("information fractions must be positive and non-decreasing")
    return tuple(np.round(np.minimum(tt, 1.0), 12)), tuple(np.round(tt, 12))


def obf_boundaries(t: np.ndarray, alpha: float) -> np.ndarray:
    """Two-sided Lan–DeMets O'Brien–Fleming z boundaries at information fractions ``t`` (increasing).

    A fraction above 1 (an over-running final look) spends all the alpha left; looks after the
    first one with t ≥ 1 have nothing left to spend (∞) — see ``final_schedule``.
    """
    spend, info = _key(t)
    return np.array(_boundaries(spend, float(alpha), info))


def final_schedule(t: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Per look k of the fractions ``t`` (n_look/planned_n, non-decreasing): the look schedule and
    the index of look k in it under which look k is analysed.

    Interim looks (t < 1) are analysed with all looks up to them. The first look with t ≥ 1 is the
    final analysis: its spending fraction is capped at 1, so it spends all remaining alpha, and its
    correlation with earlier looks uses the actual information (over-running, Jennison & Turnbull
    2000, §7.2.2). A look after that is a re-analysis of the final look with more data: it replaces
    the earlier final look (schedule = the interim looks + this one), so its CI / p-value is the
    final analysis on the latest data rather than an infinite bound with p = 1.
    """
    t = np.asarray(t, dtype=float)
    over = np.flatnonzero(t >= 1.0)
    first = int(over[0]) if len(over) else len(t)
    out = []
    for k in range(len(t)):
        if k <= first:
            out.append((t[: k + 1], k))
        else:
            out.append((np.r_[t[:first], t[k]], first))
    return out


@lru_cache(maxsize=256)
def _table(key: tuple[tuple[float, ...], tuple[float, ...]], alpha0: float) -> tuple[np.ndarray, np.ndarray]:
    spend, info = key
    nodes = np.unique(np.log(np.r_[np.geomspace(1e-16, 0.999, _TABLE_NODES), alpha0]))
    return nodes, np.array([_boundaries(spend, float(np.exp(a)), info) for a in nodes])


@lru_cache(maxsize=4096)
def _curve(key: tuple[tuple[float, ...], tuple[float, ...]], alpha0: float,
           look: int) -> interpolate.PchipInterpolator | None:
    nodes, table = _table(key, alpha0)
    col = table[:, look]
    ok = np.isfinite(col)
    return interpolate.PchipInterpolator(nodes[ok], col[ok]) if ok.sum() >= 2 else None


def obf_multiplier(alpha: float, t: np.ndarray, look: int, alpha0: float = 0.05) -> float:
    """c_look(α) for the looks ``t`` (``look`` 0-based; t > 1 allowed for an over-running final
    look), by monotone (PCHIP) interpolation in log α.

    Boundaries are computed exactly on 200 log-spaced α nodes in [1e-16, 0.999] plus the design
    α0 (so the design boundary is exact); elsewhere the error is below 1e-4 for α ≤ 0.5.
    """
    curve = _curve(_key(t), float(alpha0), look)
    return np.inf if curve is None else float(curve(np.log(alpha)))


def obf_p_value(z: float, t: np.ndarray, look: int, alpha0: float = 0.05) -> float:
    """Repeated p-value at ``look``: inf{α : |z| ≥ c_look(α)} (Jennison & Turnbull 2000, §9.1), the
    exact inverse of ``obf_multiplier`` so that p < α ⇔ |z| > c_look(α) at every level α."""
    if np.isnan(z):
        return np.nan
    curve = _curve(_key(t), float(alpha0), look)
    if curve is None:
        return 1.0
    lo, hi = curve.x[0], curve.x[-1]
    if np.isinf(z):  # no variance in either arm: beyond every boundary
        return float(np.exp(lo))
    z = abs(z)
    if z <= float(curve(hi)):
        return 1.0
    if z >= float(curve(lo)):
        return float(np.exp(lo))
    return float(np.exp(optimize.brentq(lambda a: float(curve(a)) - z, lo, hi, xtol=1e-13, rtol=1e-15)))
