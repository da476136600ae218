"""Per-arm estimators and per-unit variances from sufficient statistics (vectorised over rows).

Every metric is reduced to an estimator ``value`` and the per-unit variance ``var`` of its
linearised (influence-function) value, so that Var(value) ≈ var / n for all three types:

* ``mean``:        value = Σx/n,           var = (Σx² − (Σx)²/n)/(n − 1)      (sample variance)
* ``proportion``:  value = p = Σx/n,        var = p(1 − p) = (Σx² − (Σx)²/n)/n  (ddof = 0, as gbstats
  and the Wald test for two proportions; it differs from the n − 1 version by n/(n − 1))
* ``ratio``:       value = R = Σx/Σy,       var = (s²_x − 2R s_xy + R² s²_y)/ȳ²
  — delta method on the per-unit pairs (x, y), Deng, Knoblich & Lu (2018), "Applying the delta
  method in metric analytics", KDD; the unit of analysis is the randomisation unit (user), so
  within-user correlation of e.g. impressions is accounted for.

Small-sample correction of ratio metrics (applied per row when ``sum_x2y``, ``sum_xy2`` and
``sum_y3`` are present, i.e. Σx²y, Σxy², Σy³ of the per-unit pairs; otherwise the plain delta method):

* ``leverage``: the ratio R = Σx/Σy is the weighted-least-squares slope of x on y with weights 1/y,
  so unit i has leverage h_i = y_i/Σy; a few heavy users carry large leverage and the plain
  (HC0/HC1-type) delta variance Σe²/(Σy)², e = x − R·y, is biased down (MacKinnon & White 1985,
  J. Econometrics 29). We use the jackknife variance of R — (n−1)/n·Σ e_i²/(1−h_i)²/(Σy)², the
  HC3 form, which is what the leave-one-unit-out jackknife of a ratio estimator gives to first
  order (Wolter 2007, "Introduction to Variance Estimation", ch. 4) — expanded to first order in
  h_i − 1/n so that it needs only Σe²·y = Σx²y − 2RΣxy² + R²Σy³:
      var ← var·k,  k = 1 + 2(n·h̄ − 1)/(n − 1),  h̄ = Σe²y/(Σy·Σe²)  (k = 1 when y ≡ 1).
* ``df``: Bell & McCaffrey (2002, Survey Methodology 28) degrees of freedom for the leverage-
  corrected variance, to leading order in the leverages (Imbens & Kolesár 2016, REStat 98): per
  arm df = 1/Σh_i² − 1 = (Σy)²/Σy² − 1, Kish's effective sample size minus one (n − 1 when
  y ≡ 1); the two arms are combined by Welch–Satterthwaite (``welch.welch_df``).

Pre-period covariates (CUPED) are reduced the same way: ``pre_value`` (Σxp/n, or Σxp/Σyp for
ratios), ``pre_var`` (variance of the linearised pre-period value) and ``cov`` (covariance of
the linearised metric with the linearised pre-period metric); NaN when the sums are absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from abplatform.vocabulary import COVARIATE_SUMS as COVARIATE_COLUMNS
from abplatform.vocabulary import RATIO_SUMS as RATIO_COLUMNS
from abplatform.vocabulary import SMALL_SAMPLE_SUMS as SMALL_SAMPLE_COLUMNS


@dataclass(frozen=True)
class ArmMoments:
    """Vectorised per-row moments of one arm; all arrays have one entry per (metric, by-group)."""

    n: np.ndarray
    ddof: np.ndarray
    value: np.ndarray
    var: np.ndarray
    pre_num: np.ndarray
    pre_den: np.ndarray
    pre_var: np.ndarray
    cov: np.ndarray
    df: np.ndarray  # degrees of freedom of ``var`` (n − 1, or Kish's n_eff − 1 for corrected ratios)
    leverage_factor: np.ndarray  # k applied to ``var`` (1 where no correction applies)

    @property
    def pre_value(self) -> np.ndarray:
        return self.pre_num / self.pre_den


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _comoment(n: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, s_ab: np.ndarray, ddof: np.ndarray) -> np.ndarray:
    """(Σab − Σa·Σb/n)/(n − ddof): the sample (co)variance from sums."""
    return (s_ab - s_a * s_b / n) / (n - ddof)


def arm_moments(frame: pd.DataFrame, types: np.ndarray, small_sample: bool = True) -> ArmMoments:
    """Moments of one arm; ``frame`` holds the suff columns, ``types`` the metric type per row.

    ``small_sample``: apply the ratio-metric leverage correction and Kish df where the rows carry
    ``sum_x2y``, ``sum_xy2``, ``sum_y3`` (see the module docstring).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        n = _col(frame, "n")
        is_ratio = types == "ratio"
        ddof = np.where(types == "proportion", 0.0, 1.0)
        c = {k: _col(frame, k) for k in ("sum_x", "sum_x2", *RATIO_COLUMNS, *COVARIATE_COLUMNS, *SMALL_SAMPLE_COLUMNS)}

        def cm(a: str, b: str, ab: str) -> np.ndarray:
            return _comoment(n, c[a], c[b], c[ab], ddof)

        v_xx = cm("sum_x", "sum_x", "sum_x2")
        v_pp = cm("sum_xp", "sum_xp", "sum_xp2")
        c_xp = cm("sum_x", "sum_xp", "sum_x_xp")

        # ratio metrics: linearise x − R·y (and xp − Rp·yp) and scale by the denominator mean
        ratio = c["sum_x"] / c["sum_y"]
        y_bar = c["sum_y"] / n
        v_ratio = (
            v_xx - 2 * ratio * cm("sum_x", "sum_y", "sum_xy") + ratio**2 * cm("sum_y", "sum_y", "sum_y2")
        ) / y_bar**2
        pre_ratio = c["sum_xp"] / c["sum_yp"]
        yp_bar = c["sum_yp"] / n
        v_pre_ratio = (
            v_pp - 2 * pre_ratio * cm("sum_xp", "sum_yp", "sum_xp_yp")
            + pre_ratio**2 * cm("sum_yp", "sum_yp", "sum_yp2")
        ) / yp_bar**2
        c_ratio = (
            c_xp
            - pre_ratio * cm("sum_x", "sum_yp", "sum_x_yp")
            - ratio * cm("sum_y", "sum_xp", "sum_y_xp")
            + ratio * pre_ratio * cm("sum_y", "sum_yp", "sum_y_yp")
        ) / (y_bar * yp_bar)

        # small-sample correction of ratio metrics (jackknife leverage factor, Kish df)
        s_y = c["sum_y"]
        s_e2 = (n - 1) * y_bar**2 * v_ratio  # Σ(x − R·y)²
        s_e2y = c["sum_x2y"] - 2 * ratio * c["sum_xy2"] + ratio**2 * c["sum_y3"]
        h_bar = s_e2y / (s_y * s_e2)
        k = 1 + 2 * (n * h_bar - 1) / (n - 1)
        corrected = small_sample & is_ratio & np.isfinite(k) & (k > 0)
        kish_df = s_y**2 / c["sum_y2"] - 1
        df = np.where(corrected & np.isfinite(kish_df) & (kish_df > 0), kish_df, n - 1)
        k = np.where(corrected, k, 1.0)

        return ArmMoments(
            n=n,
            ddof=ddof,
            value=np.where(is_ratio, ratio, c["sum_x"] / n),
            var=np.where(is_ratio, v_ratio * k, v_xx),
            pre_num=c["sum_xp"],
            pre_den=np.where(is_ratio, c["sum_yp"], n),
            pre_var=np.where(is_ratio, v_pre_ratio, v_pp),
            cov=np.where(is_ratio, c_ratio, c_xp),
            df=df,
            leverage_factor=k,
        )


def suff_from_units(
    x: np.ndarray,
    y: np.ndarray | None = None,
    xp: np.ndarray | None = None,
    yp: np.ndarray | None = None,
    small_sample: bool = True,
) -> dict[str, np.ndarray]:
    """Sufficient statistics of per-unit values, summed over the last axis (the Python mirror of the SQL).

    ``x`` (numerator / value), ``y`` (ratio denominator), ``xp`` / ``yp`` (pre-period values);
    arrays of shape (..., units). Returns ``n`` and the ``sum_*`` columns the engine reads (with
    ``y`` and ``small_sample``, also Σx²y, Σxy², Σy³ for the ratio small-sample correction).
    """
    x = np.asarray(x, dtype=float)
    out: dict[str, np.ndarray] = {"n": np.full(x.shape[:-1], x.shape[-1], dtype=np.int64), "sum_x": x.sum(-1),
                                  "sum_x2": (x * x).sum(-1)}
    pairs = {"y": y, "xp": xp, "yp": yp}
    vals = {"x": x, **{k: np.asarray(v, dtype=float) for k, v in pairs.items() if v is not None}}
    names = list(vals)
    for i, a in enumerate(names[1:], start=1):
        out[f"sum_{a}"] = vals[a].sum(-1)
        out[f"sum_{a}2"] = (vals[a] ** 2).sum(-1)
        for b in names[:i]:
            out[f"sum_{b}_{a}"] = (vals[b] * vals[a]).sum(-1)
    if "sum_x_y" in out:
        out["sum_xy"] = out.pop("sum_x_y")
    if y is not None and small_sample:
        yv = vals["y"]
        out["sum_x2y"] = (x * x * yv).sum(-1)
        out["sum_xy2"] = (x * yv * yv).sum(-1)
        out["sum_y3"] = (yv**3).sum(-1)
    return out
