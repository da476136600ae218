"""Power, minimum detectable effect and duration from baseline sufficient statistics.

Two-sided z approximation (Cohen 1988; the closed form behind ``statsmodels.stats.power.
NormalIndPower``, against which the tests check it), vectorised over metrics:
    se(n_c, n_t) = σ·√(1/n_c + 1/n_t)
    MDE          = (z_{1−α/2} + z_{power})·se                       (absolute; relative = MDE/μ)
    N            = (z_{1−α/2} + z_{power})²·σ²·(1/w_c + 1/w_t)/MDE²  (units in both arms, shares w)
    power(δ)     = Φ(|δ|/se − z_{1−α/2}) + Φ(−|δ|/se − z_{1−α/2})
σ² is the per-unit variance of the metric's linearised value from ``moments.arm_moments`` (delta
method for ratio metrics); with CUPED it is σ²·(1 − ρ²), ρ the correlation of the linearised
metric with its pre-period value (Deng et al. 2013), which is what ``cuped.cuped_adjust`` leaves
with the pooled θ.

Duration: the units of a test are the *distinct* units seen in it, and they accrue sublinearly —
returning units are not new ones, and the heavy users arrive first (Richardson, Liu, McQueen &
Hains 2022, "A Bayesian model for online activity sample sizes", AISTATS). Extrapolating a
baseline's ``n / days`` linearly therefore *overstates* the units of a longer test and makes its
MDE too small and its duration too short: it is the optimistic figure, not a conservative one.
:func:`fit_accrual` fits the cumulative distinct units after d days of traffic by least squares,
    U(d) = a·d^b     (b < 1: sublinear; b = 1: linear),
and :func:`plan` reads n_total = U(days), days = U⁻¹(n_total) = (n_total/a)^(1/b) from it. See
docs/planning.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

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
    run) are summed into one pooled sample first. ρ² = cov²/(σ²_plain·σ²_pre) is the squared
    correlation of the linearised metric with its linearised pre-period value (σ²_plain without the
    ratio small-sample factor k, as ``cuped.cuped_adjust`` applies it: the CUPED σ² is then exactly
    what a run's adjustment leaves, k·σ²_plain·(1 − ρ²)); 0 where there is no covariate.
    """
    sums = [c for c in baseline.columns if c == "n" or c.startswith("sum_")]
    pooled = (baseline[baseline["metric"].isin(list(metrics))].groupby("metric", sort=False)[sums]
              .sum(min_count=1).reset_index())
    types = pooled["metric"].map({m: s.type for m, s in metrics.items()}).to_numpy()
    m = arm_moments(pooled, types)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = m.cov**2 / (m.var / m.leverage_factor * m.pre_var)
        rho2 = np.where(np.isfinite(r2), np.clip(r2, 0.0, 1.0), 0.0)
    sigma2 = m.var * (1 - rho2) if cuped else m.var
    return pd.DataFrame({"metric": pooled["metric"], "type": types, "n": m.n, "value": m.value, "sigma2": sigma2,
                         "rho2": rho2})


#: Fewer observed days than this and :func:`fit_accrual` does not fit an exponent (two points fit any
#: curve exactly); it falls back to linear accrual through the last day, and says so.
MIN_FIT_DAYS = 3
#: The exponent's range: concave (b ≤ 1), as the distinct units of stationary traffic are — each day's
#: new units are at most the day before's in expectation; b = 1 is linear accrual.
B_RANGE = (0.01, 1.0)


@dataclass(frozen=True)
class Accrual:
    """Cumulative distinct units after ``d`` days of traffic, U(d) = a·d^b, and the curve it was fitted on.

    ``observed[i]`` is U(i + 1): the distinct units seen in the first i + 1 days of a window.
    ``model`` is ``power`` (least squares, :func:`fit_accrual`) or ``linear`` (b = 1 through the last
    observed day: the fallback for fewer than :data:`MIN_FIT_DAYS` days, and an upper bound on U for
    d beyond the window when traffic is stationary). ``note`` says what to make of it.
    """

    a: float
    b: float
    model: Literal["power", "linear"]
    observed: tuple[float, ...]
    note: str = ""

    @classmethod
    def linear(cls, observed: Sequence[float] | np.ndarray, note: str = "") -> Accrual:
        """U(d) = U(D)·d/D: the baseline's units per day extrapolated linearly."""
        u = _check_curve(observed)
        return cls(a=float(u[-1] / len(u)), b=1.0, model="linear", observed=tuple(map(float, u)), note=note)

    @property
    def days_observed(self) -> int:
        return len(self.observed)

    def units(self, days: float | np.ndarray) -> np.ndarray:
        """Expected distinct units after ``days`` days."""
        return self.a * np.asarray(days, dtype=float) ** self.b

    def days_for(self, units: float | np.ndarray) -> np.ndarray:
        """Days of traffic until ``units`` distinct units have been seen: U⁻¹(units) = (units/a)^(1/b)."""
        return (np.asarray(units, dtype=float) / self.a) ** (1 / self.b)

    @property
    def fitted(self) -> np.ndarray:
        return self.units(np.arange(1, self.days_observed + 1))

    @property
    def residuals(self) -> np.ndarray:
        """Observed minus fitted cumulative units, per day of the window."""
        return np.asarray(self.observed) - self.fitted

    @property
    def rmse(self) -> float:
        """Root mean squared residual, in units."""
        return float(np.sqrt(np.mean(self.residuals**2)))

    @property
    def max_rel_residual(self) -> float:
        """The largest |observed − fitted| / observed over the window's days."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(self.residuals) / np.asarray(self.observed)
        return float(np.nanmax(np.where(np.isfinite(rel), rel, np.nan))) if np.isfinite(rel).any() else float("nan")


def _check_curve(observed: Sequence[float] | np.ndarray) -> np.ndarray:
    u = np.asarray(observed, dtype=float)
    if u.ndim != 1 or len(u) == 0:
        raise ValueError("the accrual curve needs at least one day")
    if not np.isfinite(u).all() or (u < 0).any():
        raise ValueError("cumulative units must be finite and non-negative")
    if (np.diff(u) < 0).any():
        raise ValueError("cumulative units must not decrease from one day to the next")
    if u[-1] <= 0:
        raise ValueError("the accrual curve has no units")
    return u


def _profile_sse(b: float, d: np.ndarray, u: np.ndarray) -> tuple[float, float]:
    """Least squares of U(d) = a·d^b at a fixed b: a = Σ U·d^b / Σ d^2b (the normal equation) and the SSE."""
    w = d**b
    a = float(w @ u / (w @ w))
    r = u - a * w
    return float(r @ r), a


def fit_accrual(observed: Sequence[float] | np.ndarray) -> Accrual:
    """Fit U(d) = a·d^b to a cumulative distinct-unit curve U(1..D) by least squares on the curve itself.

    Profile least squares: for each b the best a is the normal equation's, so the fit is a one-dimensional
    minimisation of the residual sum of squares over b ∈ :data:`B_RANGE` (a grid of 991 points, then a
    bounded Brent refinement around the best of them) — deterministic, no starting values. With fewer than
    :data:`MIN_FIT_DAYS` days, the linear fallback (:meth:`Accrual.linear`) with a note.
    """
    u = _check_curve(observed)
    if len(u) < MIN_FIT_DAYS:
        return Accrual.linear(u, note=f"only {len(u)} day(s) observed (fewer than {MIN_FIT_DAYS}): no exponent "
                                      "can be fitted; linear accrual U(d) = U(D)·d/D, an upper bound on distinct "
                                      "units (MDEs optimistic, durations short)")
    d = np.arange(1, len(u) + 1, dtype=float)
    grid = np.linspace(*B_RANGE, 991)
    sse = np.array([_profile_sse(b, d, u)[0] for b in grid])
    i = int(np.argmin(sse))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(lambda b: _profile_sse(b, d, u)[0], bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-10})
    b = float(res.x) if res.fun <= sse[i] else float(grid[i])
    _, a = _profile_sse(b, d, u)
    note = ""
    if b >= 0.999:
        note = "b ≈ 1 (its bound): the window shows no slowing of new units; accrual is linear here"
    return Accrual(a=a, b=b, model="power", observed=tuple(map(float, u)), note=note)


def plan(
    baseline: pd.DataFrame,
    metrics: Mapping[str, MetricSpec],
    accrual: Accrual,
    *,
    days: float | None = None,
    relative_mde: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_share: float = 0.5,
    cuped: bool = False,
    traffic_share: float = 1.0,
) -> pd.DataFrame:
    """Give ``days`` → the MDE (absolute and relative) per metric; give ``relative_mde`` → the units and days needed.

    Units come from ``accrual`` (:func:`fit_accrual`): a test of ``days`` days sees n_total = s·U(days)
    distinct units — ``traffic_share`` s of the experiment's units (1, or the two arms' share of an
    A/B/n test's) — split (1 − w, w) between control and treatment; a test that needs n_total units
    runs U⁻¹(n_total / s) days (rounded up). Returns the ``baseline_variance`` columns plus ``days``,
    ``n_total``, ``n_control``, ``n_treatment``, ``mde_abs`` and ``mde_rel``.
    """
    if (days is None) == (relative_mde is None):
        raise ValueError("give exactly one of days (-> MDE) or relative_mde (-> duration)")
    if not (0 < alpha < 1 and 0 < power < 1 and 0 < treatment_share < 1 and 0 < traffic_share <= 1):
        raise ValueError("alpha, power and treatment_share must be in (0, 1), traffic_share in (0, 1]")
    if (days is not None and not days > 0) or (relative_mde is not None and not relative_mde > 0):
        raise ValueError("days and relative_mde must be positive")
    out = baseline_variance(baseline, metrics, cuped)
    w = treatment_share
    if days is not None:
        n_total = np.full(len(out), traffic_share * float(accrual.units(days)))
        out["days"] = float(days)
        out["n_total"] = n_total
        out["mde_abs"] = mde(out["sigma2"].to_numpy(), n_total * (1 - w), n_total * w, alpha, power)
        out["mde_rel"] = out["mde_abs"] / out["value"].abs()
    else:
        assert relative_mde is not None  # exactly one of the two, checked above
        effect = relative_mde * out["value"].abs().to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            n_total = np.ceil(sample_size(out["sigma2"].to_numpy(), effect, alpha, power, w))
            out["days"] = np.ceil(accrual.days_for(n_total / traffic_share))
        out["n_total"] = n_total
        out["mde_abs"] = effect
        out["mde_rel"] = float(relative_mde)
    out["n_control"] = out["n_total"] * (1 - w)
    out["n_treatment"] = out["n_total"] * w
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
