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
  rule, Jennison & Turnbull (2000) ch. 19). The CI at look k is the repeated CI estimate ± c_k·se
  and the p-value the repeated p-value inf{α : |z_k| ≥ c_k(α)} — again p < α ⇔ CI excludes 0.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import optimize, stats

_GRID = 801  # Simpson points across the continuation region (odd)


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


@lru_cache(maxsize=4096)
def _boundaries(t: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    spent = np.diff(np.concatenate([[0.0], obf_spending(np.array(t), alpha)]))
    out: list[float] = []
    grid = dens = wts = None  # continuation-region grid and sub-density of B(t_{k-1}) on it
    prev_t = 0.0
    for tk, pk in zip(t, spent):
        if pk <= 1e-15 or tk <= prev_t:
            out.append(np.inf)  # no new information or no alpha left to spend at this look
            continue
        sd = np.sqrt(tk - prev_t)
        if grid is None:
            c = float(stats.norm.isf(pk / 2))
        else:
            g, f = grid, dens * wts

            def exit_prob(c: float) -> float:
                a = c * np.sqrt(tk)
                return float(f @ (stats.norm.sf((a - g) / sd) + stats.norm.cdf((-a - g) / sd))) - pk

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
            new_dens = stats.norm.pdf((new_grid[:, None] - grid[None, :]) / sd) / sd @ (dens * wts)
        grid, dens, wts = new_grid, new_dens, _simpson_weights(_GRID, new_grid[1] - new_grid[0])
        prev_t = tk
    return tuple(out)


def obf_boundaries(t: np.ndarray, alpha: float) -> np.ndarray:
    """Two-sided Lan–DeMets O'Brien–Fleming z boundaries at information fractions ``t`` (increasing, ≤ 1)."""
    tt = np.minimum(np.asarray(t, dtype=float), 1.0)
    if np.any(np.diff(tt) < 0) or np.any(tt <= 0):
        raise ValueError("information fractions must be positive and non-decreasing")
    return np.array(_boundaries(tuple(np.round(tt, 12)), float(alpha)))


def obf_repeated_p_value(z: float, t: np.ndarray) -> float:
    """Repeated p-value at the last look of ``t``: the smallest α whose boundary |z| reaches."""
    z = abs(z)
    if not np.isfinite(z):
        return np.nan

    def gap(log_a: float) -> float:
        return obf_boundaries(t, float(np.exp(log_a)))[-1] - z

    lo, hi = np.log(1e-12), np.log(1 - 1e-9)
    if gap(hi) > 0:
        return 1.0
    if gap(lo) <= 0:
        return 1e-12
    return float(np.exp(optimize.brentq(gap, lo, hi, xtol=1e-8)))
