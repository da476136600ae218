"""Power, minimum detectable effect and duration from baseline sufficient statistics.

Two-sided z approximation (Cohen 1988; the closed form behind ``statsmodels.stats.power.
NormalIndPower``, against which the tests check it), vectorised over metrics:
    se(n_c, n_t) = σ·√(1/n_c + 1/n_t)
    MDE          = (z_{1−α/2} + z_{power})·se                       (absolute; relative = MDE/μ)
    N            = (z_{1−α/2} + z_{power})²·σ²·(1/w_c + 1/w_t)/MDE²  (units in both arms, shares w)
    power(δ)     = Φ(|δ|/se − z_{1−α/2}) + Φ(−|δ|/se − z_{1−α/2})
σ² is the per-unit variance of the metric's linearised value from ``moments.arm_moments`` (delta
method for ratio metrics); with CUPED it is σ²·(1 − ρ²), ρ the correlation of the linearised
metric with its pre-period value (Deng et al. 2013). Duration assumes units arrive at the
baseline's rate ``n / baseline_days`` (new units per day), which overstates the growth of
unique users in long tests — a conservative planning figure for short ones.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .moments import arm_moments
from .types import MetricSpec


def _z(alpha: float, power: float) -> float:
    return float(stats.norm.isf(alpha / 2) + stats.norm.ppf(power))


def mde(sigma2: np.ndarray, n_control: np.ndarray, n_treatment: np.ndarray, alpha: float = 0.05,
        power: float = 0.8) -> np.ndarray:
    """Absolute minimum detectable effect at the given arm sizes."""
    return _z(alpha, power) * np.sqrt(sigma2 * (1 / np.asarray(n_control) + 1 / np.asarray(n_treatment)))


def sample_size(sigma2: np.ndarray, effect: np.ndarray, alpha: float = 0.05, power: float = 0.8,
                treatment_share: float = 0.5) -> np.ndarray:
    """Total units (both arms) to detect the absolute ``effect`` with the given power."""
    w = treatment_share
    return _z(alpha, power) ** 2 * np.asarray(sigma2) * (1 / (1 - w) + 1 / w) / np.asarray(effect) ** 2


def power_at(effect: np.ndarray, sigma2: np.ndarray, n_control: np.ndarray, n_treatment: np.ndarray,
             alpha: float = 0.05) -> np.ndarray:
    """Probability that the two-sided test at ``alpha`` rejects when the true absolute effect is ``effect``."""
    se = np.sqrt(sigma2 * (1 / np.asarray(n_control) + 1 / np.asarray(n_treatment)))
    za = stats.norm.isf(alpha / 2)
    d = np.abs(effect) / se
    return stats.norm.cdf(d - za) + stats.norm.cdf(-d - za)


def baseline_variance(baseline: pd.DataFrame, metrics: Mapping[str, MetricSpec], cuped: bool = False) -> pd.DataFrame:
    """Per metric: baseline value μ, per-unit σ² (CUPED-reduced if ``cuped``), ρ² and n.

    ``baseline`` has suff columns; rows of the same metric (several arms or days of an earlier
    run) are summed into one pooled sample first.
    """
    sums = [c for c in baseline.columns if c == "n" or c.startswith("sum_")]
    pooled = (baseline[baseline["metric"].isin(list(metrics))].groupby("metric", sort=False)[sums]
              .sum(min_count=1).reset_index())
    types = pooled["metric"].map({m: s.type for m, s in metrics.items()}).to_numpy()
    m = arm_moments(pooled, types)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho2 = np.where(np.isfinite(m.cov), m.cov**2 / (m.var * m.pre_var), 0.0)
    sigma2 = m.var * (1 - rho2) if cuped else m.var
    return pd.DataFrame({"metric": pooled["metric"], "type": types, "n": m.n, "value": m.value, "sigma2": sigma2,
                         "rho2": rho2})


def plan(
    baseline: pd.DataFrame,
    metrics: Mapping[str, MetricSpec],
    *,
    baseline_days: float,
    days: float | None = None,
    relative_mde: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_share: float = 0.5,
    cuped: bool = False,
) -> pd.DataFrame:
    """Give ``days`` → the MDE (absolute and relative) per metric; give ``relative_mde`` → the days needed.

    Returns the ``baseline_variance`` columns plus ``units_per_day`` and ``days``, ``mde_abs``,
    ``mde_rel``, ``n_total``.
    """
    if (days is None) == (relative_mde is None):
        raise ValueError("give exactly one of days (-> MDE) or relative_mde (-> duration)")
    out = baseline_variance(baseline, metrics, cuped)
    rate = out["n"].to_numpy() / baseline_days
    out["units_per_day"] = rate
    w = treatment_share
    if days is not None:
        n_total = rate * days
        out["days"] = float(days)
        out["n_total"] = n_total
        out["mde_abs"] = mde(out["sigma2"].to_numpy(), n_total * (1 - w), n_total * w, alpha, power)
        out["mde_rel"] = out["mde_abs"] / out["value"].abs()
    else:
        assert relative_mde is not None  # exactly one of the two, checked above
        effect = relative_mde * out["value"].abs().to_numpy()
        n_total = sample_size(out["sigma2"].to_numpy(), effect, alpha, power, w)
        out["n_total"] = np.ceil(n_total)
        out["days"] = np.ceil(n_total / rate)
        out["mde_abs"] = effect
        out["mde_rel"] = float(relative_mde)
    return out


def mde_columns(card: pd.DataFrame, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """MDE at ``power`` for the sample sizes observed in each scorecard row of ``compare``.

    Uses the row's own standard error ``abs_se`` = √(σ²_c/n_c + σ²_t/n_t), so every metric type is
    covered with its engine variance: Welch per-arm variances for means, p(1 − p) for
    proportions, the delta method (with the small-sample factor) for ratios, and the CUPED-reduced
    variance when the card was computed with ``cuped=True``. Two-sided z approximation, as
    ``statsmodels.stats.power.NormalIndPower`` (Cohen 1988):
        mde_abs = (z_{1−α/2} + z_power)·abs_se,   mde_rel = mde_abs / |control_value|.
    For a sequential card this is the fixed-horizon MDE (the sequential one is larger).
    Returns a frame aligned with ``card`` with ``mde_abs``, ``mde_rel`` and ``power_at_observed``
    (power against a true effect equal to the observed ``abs_effect``, for context only: it is a
    function of the p-value, not evidence about the true effect).
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError("alpha and power must be in (0, 1)")
    se = card["abs_se"].to_numpy(dtype=float)
    za = stats.norm.isf(alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = _z(alpha, power) * se
        d = np.abs(card["abs_effect"].to_numpy(dtype=float)) / se
        return pd.DataFrame(
            {
                "mde_abs": m,
                "mde_rel": m / np.abs(card["control_value"].to_numpy(dtype=float)),
                "power_at_observed": stats.norm.cdf(d - za) + stats.norm.cdf(-d - za),
            },
            index=card.index,
        )
