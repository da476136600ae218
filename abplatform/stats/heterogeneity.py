"""Does the treatment effect differ across a segment's values? Cochran's Q test of the subgroup effects.

For one comparison × metric × segment with k estimable cells (the segment's values), each with an
effect estimate θ_i and its standard error se_i on the absolute scale (the segment table's
``abs_effect`` and ``abs_se``: treatment minus control, CUPED-adjusted when the scorecard is):

    w_i = 1 / se_i²,   θ̄_w = Σ w_i θ_i / Σ w_i,   Q = Σ w_i (θ_i − θ̄_w)²,   df = k − 1,

and under H0 "the same effect in every value" Q is χ²(k − 1) for independent, approximately normal
θ_i; p = P(χ²(k − 1) ≥ Q). Source: W. G. Cochran (1954), "The combination of estimates from
different experiments", Biometrics 10(1):101–129 — the homogeneity test of meta-analysis, here
over subgroups of one experiment: the subgroup interaction test of D. G. Altman & J. M. Bland (2003),
"Interaction revisited: the difference between two estimates", BMJ 326:219, which for k = 2 is
Q = (θ_1 − θ_2)² / (se_1² + se_2²), and for k > 2 the χ² test of heterogeneity it refers to. The same
Q as ``statsmodels.stats.meta_analysis.combine_effects(...).q`` (the tests check it).

A cell whose standard error is 0 or not finite (no variation in either arm, a value seen in one arm
only) or whose effect is not finite is *not estimable*: it is left out and counted
(``cells_not_estimable``). With fewer than two estimable cells there is no test (Q and p missing).

**Scale.** Absolute effects: where the values' baselines differ, one relative lift is several absolute
effects, so "differs" is about the absolute differences, not necessarily the relative lifts.

**Multiplicity.** One test per metric of a comparison × segment: the p-values are Holm-adjusted
across the metrics of that comparison × segment (``p_value_adjusted``); ``differs`` is adjusted
p < α. The family is one segment's metrics because the question it answers is "for which metrics
does the effect depend on this segment"; segments and comparisons are separate families, like the
segment table's exploratory cells.

**Independence.** The χ² reference assumes independent cell estimates, which holds when the values
are disjoint sets of randomisation units (a property of the unit: new vs returning users). A segment
of *sessions* (query frequency, query complexity) under user randomisation puts a user in every
value their sessions fall in, so the cells share units and their estimates are correlated:
``values_per_unit`` (units counted across the values / units overall; 1 = disjoint) says how much.
With positively correlated cells (the usual case: a user's behaviour is alike across their queries)
Var(θ_i − θ_j) < se_i² + se_j², so Q is too small and the test conservative — a "differs" still
stands, a "does not differ" is weaker evidence than its p-value says. The test does not model the
covariance (that would need per-unit cross-value sums).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from .multiple import holm

COLUMNS = ["metric", "segment", "q", "df", "p_value", "p_value_adjusted", "differs", "cells", "cells_not_estimable",
           "values_per_unit"]


@dataclass(frozen=True)
class CochranQ:
    """Cochran's Q of k estimable cells: ``q`` and ``p_value`` NaN when fewer than two are estimable."""

    q: float
    df: int
    p_value: float
    cells: int  # estimable cells in the test
    cells_not_estimable: int
    pooled: float  # the inverse-variance weighted mean effect θ̄_w (NaN without an estimable cell)


def estimable_cells(effects: np.ndarray, ses: np.ndarray) -> np.ndarray:
    """True where a cell enters the test: a finite effect and a finite standard error > 0."""
    effects, ses = np.asarray(effects, dtype=float), np.asarray(ses, dtype=float)
    return np.isfinite(effects) & np.isfinite(ses) & (ses > 0)


def cochran_q(effects: np.ndarray, ses: np.ndarray) -> CochranQ:
    """Cochran's Q test that the cells' effects are equal (see the module docstring)."""
    effects, ses = np.asarray(effects, dtype=float), np.asarray(ses, dtype=float)
    if effects.shape != ses.shape:
        raise ValueError(f"effects and standard errors differ in shape: {effects.shape} vs {ses.shape}")
    ok = estimable_cells(effects, ses)
    k = int(ok.sum())
    theta, w = effects[ok], 1.0 / ses[ok] ** 2
    pooled = float(np.sum(w * theta) / np.sum(w)) if k else float("nan")
    if k < 2:
        return CochranQ(q=float("nan"), df=max(k - 1, 0), p_value=float("nan"), cells=k,
                        cells_not_estimable=len(effects) - k, pooled=pooled)
    q = float(np.sum(w * (theta - pooled) ** 2))
    return CochranQ(q=q, df=k - 1, p_value=float(sps.chi2.sf(q, k - 1)), cells=k,
                    cells_not_estimable=len(effects) - k, pooled=pooled)


def heterogeneity_table(segments: pd.DataFrame, alpha: float = 0.05,
                        overall: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (comparison ×) segment × metric of a segment table (``compare`` / ``compare_pairs``
    rows with ``segment``, ``segment_value``, ``abs_effect``, ``abs_se``): Cochran's Q across the
    segment's values, its p-value Holm-adjusted across the metrics of the comparison × segment, and
    ``differs`` (adjusted p < ``alpha``). ``overall`` (the overall rows of the same comparisons) gives
    ``values_per_unit``: the units counted in the segment's values over the units overall (NaN without it).

    Rows come in the table's order of comparisons, segments and metrics; ``treatment``, ``control`` and
    ``comparison`` are kept when the table has them (an A/B/n scorecard)."""
    pair_cols = [c for c in ("treatment", "control", "comparison") if c in segments.columns]
    if segments.empty:
        return pd.DataFrame(columns=[*pair_cols, *COLUMNS])
    units = _units(segments, overall, pair_cols)
    rows = []
    keys = [*pair_cols, "segment", "metric"]
    for key, cells in segments.groupby(keys, sort=False, dropna=False):
        found = dict(zip(keys, key, strict=True))
        res = cochran_q(cells["abs_effect"].to_numpy(dtype=float), cells["abs_se"].to_numpy(dtype=float))
        total = units.get(tuple(found[c] for c in [*pair_cols, "metric"]), np.nan)
        counted = float((cells["n_control"].astype(float) + cells["n_treatment"].astype(float)).sum())
        rows.append({**found, "q": res.q, "df": res.df, "p_value": res.p_value, "cells": res.cells,
                     "cells_not_estimable": res.cells_not_estimable,
                     "values_per_unit": counted / total if total and np.isfinite(total) else np.nan})
    out = pd.DataFrame(rows)
    # segments in the table's order, each segment's metrics together
    out["_segment"] = out.groupby([*pair_cols, "segment"], sort=False).ngroup()
    out = out.sort_values("_segment", kind="stable").drop(columns="_segment").reset_index(drop=True)
    out["p_value_adjusted"] = np.nan
    for idx in out.groupby([*pair_cols, "segment"], sort=False).indices.values():
        p = out.loc[idx, "p_value"].to_numpy(dtype=float)
        tested = np.isfinite(p)
        if tested.any():
            adjusted = np.full(len(p), np.nan)
            adjusted[tested] = holm(p[tested])
            out.loc[idx, "p_value_adjusted"] = adjusted
    out["differs"] = out["p_value_adjusted"].to_numpy(dtype=float) < alpha  # NaN (no test) compares False
    out["df"] = out["df"].astype("int64")
    out["cells"] = out["cells"].astype("int64")
    out["cells_not_estimable"] = out["cells_not_estimable"].astype("int64")
    return out[[*pair_cols, *COLUMNS]]


def _units(segments: pd.DataFrame, overall: pd.DataFrame | None, pair_cols: list[str]) -> dict[tuple, float]:
    """Units in both arms per (comparison ×) metric of the overall rows."""
    if overall is None or overall.empty:
        return {}
    keys = [*[c for c in pair_cols if c in overall.columns], "metric"]
    if len(keys) != len(pair_cols) + 1:
        return {}
    n = overall["n_control"].astype(float) + overall["n_treatment"].astype(float)
    return {tuple(k) if isinstance(k, tuple) else (k,): float(v)
            for k, v in n.groupby([overall[c] for c in keys], sort=False).sum().items()}
