"""Balance checks of the arms: the pre-period A/A check and the sample ratio of each day's new units.

**Pre-period balance.** Units are assigned to arms when the experiment starts, so before it (the
pre-period, whose per-unit values are CUPED's covariates: the suff columns ``sum_xp``, ``sum_xp2`` and,
for ratio metrics, ``sum_yp``, ``sum_yp2``, ``sum_xp_yp``) the arms are two random samples of one
population and their pre-period means differ by chance only. Per comparison × metric, on the rows of
segment "all":

* mean and proportion metrics — per-unit pre-period value xp; per arm a
  x̄p_a = Σxp/n_a and s²_a = (Σxp² − (Σxp)²/n_a)/(n_a − 1) (the sample variance, ddof 1 for
  proportions too, so the test is ``scipy.stats.ttest_ind(xp_t, xp_c, equal_var=False)`` exactly);
* ratio metrics — Rp_a = Σxp/Σyp with the delta-method variance of the linearised value
  s²_a = (s²_xp − 2·Rp·s_xp,yp + Rp²·s²_yp)/ȳp² (``moments.arm_moments``'s ``pre_value`` /
  ``pre_var``, as for x, y);

  diff = v_t − v_c,  se = √(s²_c/n_c + s²_t/n_t),  t = diff/se,
  df = Welch–Satterthwaite (``welch.welch_df``),  p = 2·P(T_df > |t|)  (Welch 1947).

The p-values of one comparison's metrics are Holm-adjusted (``multiple.holm``; the metrics share units,
Holm holds under any dependence), and a row **fails** when the adjusted p is below ``threshold`` —
by default the sample-ratio threshold 0.001, not α: under randomisation every rejection is a false
alarm, so α = 0.05 would flag one healthy run in twenty (more with several metrics), and chance
imbalances are what CUPED already corrects. An imbalance that strong is a bug (assignment that
depends on past behaviour, a unit key that differs between the periods, a wrong pre-period join) and,
like a sample-ratio mismatch, makes every effect of the run untrustworthy. A row without pre-period
sums is left out; a row whose standard error is 0 with equal means (e.g. no pre-period activity at
all) has no test (p NaN).

**Exposures per day.** The sample-ratio test (``srm.srm_test``: chi-square, or the exact binomial test
for two arms with small counts) of each day's *new* units per arm — the day's cumulative units minus
the previous day's — against the configured weights. A mismatch on one day (an arm's logging broken
for a day, a ramp-up that changed the split) can hide in the overall count. The days' p-values are
Holm-adjusted across the days (a 14-day run makes 14 tests: unadjusted, one healthy run in ~70 would
fail somewhere at 0.001) and a day **fails** when its adjusted p is below the threshold (the
sample-ratio threshold).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from . import multiple, welch
from .moments import arm_moments
from .srm import DEFAULT_SRM_THRESHOLD, srm_test

BALANCE_COLUMNS = ["comparison", "treatment", "control", "metric", "type", "n_control", "n_treatment",
                   "control_pre_value", "treatment_pre_value", "diff", "rel_diff", "se", "df", "t", "p_value",
                   "p_value_adjusted", "failed", "threshold"]


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p over the finite entries (NaN stays NaN)."""
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multiple.holm(p[ok])
    return out


def balance_table(suff: pd.DataFrame, types: Mapping[str, str], pairs: Sequence[tuple[str, str]],
                  threshold: float = DEFAULT_SRM_THRESHOLD) -> pd.DataFrame:
    """The pre-period balance test of every comparison (``pairs``: (treatment, control)) × metric (``types``:
    metric → type); ``suff`` one row per (metric, arm) (rows of another segment than "all" are ignored).
    One row per comparison × metric with pre-period sums, columns ``BALANCE_COLUMNS``."""
    if "segment" in suff.columns:
        suff = suff[suff["segment"] == "all"]
    if "sum_xp" not in suff.columns:
        return pd.DataFrame(columns=BALANCE_COLUMNS)
    rows = []
    for treatment, control in pairs:
        names = [m for m in types if (suff["metric"] == m).any()]
        by_arm = {}
        for arm in (control, treatment):
            f = suff[suff["arm"] == arm].set_index("metric").reindex(names)
            # a proportion's pre-period values are 0/1 per unit: tested like any mean (sample variance)
            kinds = np.array(["ratio" if types[m] == "ratio" else "mean" for m in names])
            by_arm[arm] = (f, arm_moments(f.reset_index(), kinds, small_sample=False))
        fc, mc = by_arm[control]
        ft, mt = by_arm[treatment]
        have = (pd.to_numeric(fc["sum_xp"], errors="coerce").notna().to_numpy()
                & pd.to_numeric(ft["sum_xp"], errors="coerce").notna().to_numpy())
        with np.errstate(divide="ignore", invalid="ignore"):
            vc, vt = mc.pre_value, mt.pre_value
            diff = vt - vc
            se = np.sqrt(mc.pre_var / mc.n + mt.pre_var / mt.n)
            t = diff / se
            df = welch.welch_df(mc.pre_var, mc.n, mt.pre_var, mt.n)
            p = np.where(np.isfinite(t), welch.t_p_value(t, df), np.where(np.isinf(t), 0.0, np.nan))
            rel = diff / np.abs(vc)
        p = np.where(have, p, np.nan)
        p_adj = np.full(len(names), np.nan)
        p_adj[have] = _holm(p[have])
        for i, m in enumerate(names):
            if not have[i]:
                continue
            rows.append({"comparison": f"{treatment} vs {control}", "treatment": treatment, "control": control,
                         "metric": m, "type": types[m], "n_control": int(mc.n[i]), "n_treatment": int(mt.n[i]),
                         "control_pre_value": vc[i], "treatment_pre_value": vt[i], "diff": diff[i],
                         "rel_diff": rel[i], "se": se[i], "df": df[i], "t": t[i], "p_value": p[i],
                         "p_value_adjusted": p_adj[i],
                         "failed": bool(np.isfinite(p_adj[i]) and p_adj[i] < threshold), "threshold": threshold})
    return pd.DataFrame(rows, columns=BALANCE_COLUMNS)


def daily_srm_table(daily: pd.DataFrame, weights: Mapping[str, float],
                    threshold: float = DEFAULT_SRM_THRESHOLD) -> pd.DataFrame:
    """The sample-ratio test of each day's new units. ``daily``: cumulative units per (day, arm) — columns
    ``day``, ``arm``, ``n`` (one metric's daily suff rows); an arm without a row on a day has the units of
    its last day. One row per day: ``day``, ``n_<arm>`` (new units that day), ``chi2``, ``p_value``,
    ``test``, ``p_value_adjusted`` (Holm across the days), ``failed``, ``threshold``."""
    arms = list(weights)
    columns = ["day", *(f"n_{a}" for a in arms), "chi2", "p_value", "test", "p_value_adjusted", "failed",
               "threshold"]
    if daily is None or daily.empty:
        return pd.DataFrame(columns=columns)
    cum = (daily.pivot_table(index="day", columns="arm", values="n", aggfunc="max").sort_index()
           .reindex(columns=arms).ffill().fillna(0))
    new = cum.diff().fillna(cum).clip(lower=0).astype(int)
    rows = []
    for day, counts in new.iterrows():
        res = srm_test({a: int(counts[a]) for a in arms}, weights, threshold)
        rows.append({"day": str(day), **{f"n_{a}": int(counts[a]) for a in arms}, "chi2": res.chi2,
                     "p_value": res.p_value, "test": res.test})
    out = pd.DataFrame(rows)
    out["p_value_adjusted"] = _holm(out["p_value"].to_numpy(dtype=float))
    out["failed"] = out["p_value_adjusted"] < threshold
    out["threshold"] = threshold
    return out[columns]
