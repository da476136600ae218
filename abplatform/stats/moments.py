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

Pre-period covariates (CUPED) are reduced the same way: ``pre_value`` (Σxp/n, or Σxp/Σyp for
ratios), ``pre_var`` (variance of the linearised pre-period value) and ``cov`` (covariance of
the linearised metric with the linearised pre-period metric); NaN when the sums are absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

COVARIATE_COLUMNS: tuple[str, ...] = (
    "sum_xp", "sum_xp2", "sum_x_xp",
    "sum_yp", "sum_yp2", "sum_xp_yp", "sum_x_yp", "sum_y_xp", "sum_y_yp",
)
RATIO_COLUMNS: tuple[str, ...] = ("sum_y", "sum_y2", "sum_xy")


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


def arm_moments(frame: pd.DataFrame, types: np.ndarray) -> ArmMoments:
    """Moments of one arm; ``frame`` holds the suff columns, ``types`` the metric type per row."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = _col(frame, "n")
        is_ratio = types == "ratio"
        ddof = np.where(types == "proportion", 0.0, 1.0)
        c = {k: _col(frame, k) for k in ("sum_x", "sum_x2", *RATIO_COLUMNS, *COVARIATE_COLUMNS)}

        def cm(a: str, b: str, ab: str) -> np.ndarray:
            return _comoment(n, c[a], c[b], c[ab], ddof)

        v_xx = cm("sum_x", "sum_x", "sum_x2")
        v_pp = cm("sum_xp", "sum_xp", "sum_xp2")
        c_xp = cm("sum_x", "sum_xp", "sum_x_xp")

        # ratio metrics: linearise x − R·y (and xp − Rp·yp) and scale by the denominator mean
        ratio = c["sum_x"] / c["sum_y"]
        y_bar = c["sum_y"] / n
        v_ratio = (v_xx - 2 * ratio * cm("sum_x", "sum_y", "sum_xy") + ratio**2 * cm("sum_y", "sum_y", "sum_y2")) / y_bar**2
        pre_ratio = c["sum_xp"] / c["sum_yp"]
        yp_bar = c["sum_yp"] / n
        v_pre_ratio = (
            v_pp - 2 * pre_ratio * cm("sum_xp", "sum_yp", "sum_xp_yp") + pre_ratio**2 * cm("sum_yp", "sum_yp", "sum_yp2")
        ) / yp_bar**2
        c_ratio = (
            c_xp
            - pre_ratio * cm("sum_x", "sum_yp", "sum_x_yp")
            - ratio * cm("sum_y", "sum_xp", "sum_y_xp")
            + ratio * pre_ratio * cm("sum_y", "sum_yp", "sum_y_yp")
        ) / (y_bar * yp_bar)

        return ArmMoments(
            n=n,
            ddof=ddof,
            value=np.where(is_ratio, ratio, c["sum_x"] / n),
            var=np.where(is_ratio, v_ratio, v_xx),
            pre_num=c["sum_xp"],
            pre_den=np.where(is_ratio, c["sum_yp"], n),
            pre_var=np.where(is_ratio, v_pre_ratio, v_pp),
            cov=np.where(is_ratio, c_ratio, c_xp),
        )


def suff_from_units(
    x: np.ndarray, y: np.ndarray | None = None, xp: np.ndarray | None = None, yp: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Sufficient statistics of per-unit values, summed over the last axis (the Python mirror of the SQL).

    ``x`` (numerator / value), ``y`` (ratio denominator), ``xp`` / ``yp`` (pre-period values);
    arrays of shape (..., units). Returns ``n`` and the ``sum_*`` columns the engine reads.
    """
    x = np.asarray(x, dtype=float)
    out: dict[str, np.ndarray] = {"n": np.full(x.shape[:-1], x.shape[-1], dtype=np.int64), "sum_x": x.sum(-1), "sum_x2": (x * x).sum(-1)}
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
    return out
