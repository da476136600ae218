"""The scorecard: compare a treatment arm with a control arm for many metrics × by-groups at once.

Pipeline (each step a pure vectorised function named in its own module): per-arm moments
(``moments``; delta method for ratios) → optional CUPED (``cuped``) → absolute difference with
Welch–Satterthwaite df (``welch``) or a sequential reference (``sequential``) → relative effect
(``relative``) → multiple-testing adjustment within each by-group (``multiple``) → decision
columns (``decision``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import multiple, relative, verdicts, welch
from . import sequential as seq
from .cuped import cuped_adjust
from .moments import RATIO_COLUMNS, arm_moments
from .types import Correction, MetricSpec, RelativeCI, SequentialSpec

Reference = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _check(suff: pd.DataFrame, metrics: Mapping[str, MetricSpec], control: str, treatment: str, by: list[str]) -> None:
    missing = [c for c in ("metric", "arm", "n", "sum_x", *by) if c not in suff.columns]
    if missing:
        raise ValueError(f"suff is missing columns {missing}")
    if control == treatment:
        raise ValueError("control and treatment must be different arms")
    for arm in (control, treatment):
        if not (suff["arm"] == arm).any():
            raise ValueError(f"arm {arm!r} not found in suff (arms: {sorted(suff['arm'].unique())})")
    absent = [m for m in metrics if not (suff["metric"] == m).any()]
    if absent:
        raise ValueError(f"metrics {absent} not found in suff")
    if any(s.type == "ratio" for s in metrics.values()):
        lacking = [c for c in RATIO_COLUMNS if c not in suff.columns]
        if lacking:
            raise ValueError(f"ratio metrics need columns {lacking}")
    if suff.duplicated(["metric", "arm", *by]).any():
        raise ValueError(f"suff must have one row per (metric, arm, {', '.join(by)}); add the grouping columns to by")


def _fixed_reference(df: np.ndarray) -> Reference:
    return (lambda a: welch.t_quantile(a, df)), (lambda z: welch.t_p_value(z, df))


def _cs_reference(n_total: np.ndarray, alpha0: float, tuning_n: float) -> Reference:
    return (
        lambda a: seq.cs_multiplier(a, n_total, alpha0, tuning_n),
        lambda z: seq.cs_p_value(z, n_total, alpha0, tuning_n),
    )


def _group_sequential_reference(keys: pd.DataFrame, n_total: np.ndarray, spec: SequentialSpec,
                                alpha0: float) -> Reference:
    info = n_total / float(spec.planned_n)  # type: ignore[arg-type]
    look = spec.look
    where: list[tuple[np.ndarray, int]] = [(np.empty(0), 0)] * len(keys)
    group_cols = [c for c in keys.columns if c != look]
    frame = keys.assign(_info=info, _row=np.arange(len(keys)))
    groups = frame.groupby(group_cols, sort=False, dropna=False) if group_cols else [(None, frame)]
    for _, g in groups:
        g = g.sort_values(look)
        t = g["_info"].to_numpy()
        if np.any(np.diff(t) < 0):
            raise ValueError("group-sequential looks need cumulative sums: n must not decrease from one look "
                             "to the next")
        for row, w in zip(g["_row"].to_numpy(), seq.final_schedule(t), strict=True):
            where[row] = w

    def quantile(a: np.ndarray) -> np.ndarray:
        a = np.broadcast_to(a, (len(where),))
        return np.array([seq.obf_multiplier(float(ai), *w, alpha0) for ai, w in zip(a, where, strict=True)])

    def p_value(z: np.ndarray) -> np.ndarray:
        return np.array([seq.obf_p_value(float(zi), *w, alpha0) for zi, w in zip(z, where, strict=True)])

    return quantile, p_value


def compare(
    suff: pd.DataFrame,
    metrics: Mapping[str, MetricSpec],
    control: str,
    treatment: str,
    *,
    alpha: float = 0.05,
    relative_ci: RelativeCI = "delta",
    cuped: bool = False,
    by: Sequence[str] = (),
    correction: Correction = "none",
    sequential: SequentialSpec | None = None,
    small_sample: bool = True,
    guardrail_test: str = "noninferiority",
) -> pd.DataFrame:
    """Scorecard of ``treatment`` vs ``control``: one row per metric × by-group.

    ``suff`` holds per-arm sufficient statistics (see ``abplatform.stats`` for the columns).
    Multiple-testing correction is applied across the metrics within each by-group. With
    ``sequential`` the look column is added to ``by`` and every CI / p-value is valid at that look
    under repeated looks (the suff rows of each look must be cumulative). ``small_sample``: the
    ratio-metric leverage correction and Kish df (``moments``), used on rows that carry
    ``sum_x2y``, ``sum_xy2``, ``sum_y3``; ``False`` gives the plain first-order delta method.
    ``guardrail_test``: how ``breached`` reads a guardrail's margin (``verdicts.metric_verdicts``).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if relative_ci not in ("delta", "log", "fieller"):
        raise ValueError(f"unknown relative_ci {relative_ci!r}; use delta, log or fieller")
    if correction not in ("none", "holm", "bh"):
        raise ValueError(f"unknown correction {correction!r}; use none, holm or bh")
    if guardrail_test not in ("noninferiority", "harm"):
        raise ValueError(f"unknown guardrail_test {guardrail_test!r}; use noninferiority or harm")
    by = list(by)
    if sequential is not None and sequential.look not in by:
        by.append(sequential.look)
    _check(suff, metrics, control, treatment, by)

    keys_cols = ["metric", *by]
    rows = suff[suff["metric"].isin(list(metrics))]
    index = rows[keys_cols].drop_duplicates()
    index = index.assign(_order=index["metric"].map({m: i for i, m in enumerate(metrics)}))
    index = index.sort_values(["_order", *by], kind="stable").drop(columns="_order").reset_index(drop=True)
    c_rows = index.merge(rows[rows["arm"] == control], on=keys_cols, how="left")
    t_rows = index.merge(rows[rows["arm"] == treatment], on=keys_cols, how="left")
    types = index["metric"].map({m: s.type for m, s in metrics.items()}).to_numpy()

    mc, mt = arm_moments(c_rows, types, small_sample), arm_moments(t_rows, types, small_sample)
    v_unadjusted = mc.var / mc.n + mt.var / mt.n
    theta = np.zeros(len(index))
    if cuped:
        adjusted = cuped_adjust(mc, mt)
        mc, mt, theta = adjusted.control, adjusted.treatment, adjusted.theta
    vc, vt = mc.var / mc.n, mt.var / mt.n
    with np.errstate(divide="ignore", invalid="ignore"):
        abs_effect = mt.value - mc.value
        se = np.sqrt(vc + vt)
        z = abs_effect / se
        variance_reduction = np.where(cuped, 1 - (vc + vt) / v_unadjusted, 0.0)
    df = welch.welch_df(mc.var, mc.n, mt.var, mt.n, mc.df, mt.df)

    n_total = mc.n + mt.n
    if sequential is None:
        quantile, p_of = _fixed_reference(df)
    elif sequential.method == "confidence_sequence":
        quantile, p_of = _cs_reference(n_total, alpha, sequential.tuning_n)
    else:
        quantile, p_of = _group_sequential_reference(index[keys_cols], n_total, sequential, alpha)

    q = quantile(np.full(len(index), alpha))
    p_value = p_of(z)
    rel_low, rel_high = relative.relative_ci(relative_ci, mt.value, mc.value, vt, vc, q)
    p_value_rel = p_of(relative.relative_z(relative_ci, mt.value, mc.value, vt, vc, 0.0))

    p_adj = p_value.copy()
    alpha_i = np.full(len(index), alpha)
    if correction != "none":
        families = index.groupby(by, sort=False, dropna=False).indices.values() if by else [np.arange(len(index))]
        for rows_i in families:
            p_adj[rows_i], alpha_i[rows_i] = multiple.adjust(p_value[rows_i], alpha, correction)
    q_adj = quantile(alpha_i) if correction != "none" else q
    rel_low_adj, rel_high_adj = relative.relative_ci(relative_ci, mt.value, mc.value, vt, vc, q_adj)

    specs = [metrics[m] for m in index["metric"]]
    out = index.copy()
    out["type"] = types
    out["role"] = [s.role for s in specs]
    out["direction"] = [s.direction for s in specs]
    out["n_control"] = mc.n.astype("int64") if np.isfinite(mc.n).all() else mc.n
    out["n_treatment"] = mt.n.astype("int64") if np.isfinite(mt.n).all() else mt.n
    out["control_value"] = mc.value
    out["treatment_value"] = mt.value
    out["abs_effect"] = abs_effect
    out["abs_se"] = se
    out["abs_ci_low"] = abs_effect - q * se
    out["abs_ci_high"] = abs_effect + q * se
    with np.errstate(divide="ignore", invalid="ignore"):
        out["rel_effect"] = mt.value / mc.value - 1
    out["rel_ci_low"] = rel_low
    out["rel_ci_high"] = rel_high
    out["p_value"] = p_value
    out["p_value_rel"] = p_value_rel
    out["df"] = df
    out["alpha_adjusted"] = alpha_i
    out["p_value_adjusted"] = p_adj
    out["abs_ci_low_adjusted"] = abs_effect - q_adj * se
    out["abs_ci_high_adjusted"] = abs_effect + q_adj * se
    out["rel_ci_low_adjusted"] = rel_low_adj
    out["rel_ci_high_adjusted"] = rel_high_adj
    out["theta"] = theta
    out["leverage_factor_control"] = mc.leverage_factor
    out["leverage_factor_treatment"] = mt.leverage_factor
    out["variance_reduction"] = variance_reduction
    decided = verdicts.metric_verdicts(
        abs_effect=abs_effect,
        p_value_adjusted=p_adj,
        alpha=alpha,
        specs=specs,
        ni_z=lambda r0: relative.relative_z(relative_ci, mt.value, mc.value, vt, vc, r0),
        p_of=p_of,
        guardrail_test=guardrail_test,
    )
    return pd.concat([out, decided], axis=1)
