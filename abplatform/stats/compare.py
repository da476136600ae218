"""The scorecard: compare a treatment arm with a control arm for many metrics × by-groups at once.

Pipeline (each step a pure vectorised function named in its own module): per-arm moments
(``moments``; delta method for ratios) → optional CUPED (``cuped``) → optional pooled variance
(``equal_var``) → the row's test → multiple-testing adjustment (``multiple``) → intervals →
verdicts (``verdicts``).

**One test per row.** Each row has exactly one test: H0: relative effect = r0 against the row's
alternative, on the scale of the relative-CI method (``relative``), with its own df (Welch, or
a sequential reference). r0 is 0 for primary and secondary metrics, and a guardrail's margin on
the harmful side for guardrails. The p-value, the interval (the set of r0 the same test does not
reject, at level α — and at the adjusted level α_i beside the adjusted p-value) and the verdict
all come from it, so verdict ⇔ interval excludes r0 ⇔ p < α by construction. When the relative
effect is not estimable (a control mean within noise of zero), the row's test is the absolute
difference's (``test_scale`` = "absolute").

Alternatives are on the treatment-minus-control scale: ``greater`` (H1: T > C), ``less`` or
``two-sided``. A one-sided test at α has the one-sided interval at 1 − α, and for the t
reference p_one = p_two/2 on the alternative's side (1 − p_two/2 otherwise); the sequential
references are read the same way, two-sided at 2α.

Proportion rows choose their test (``MetricSpec.test``, ``proportion_tests``): ``welch`` (the
default, as above); ``wald`` runs through the same engine with the arm variances p(1−p)/n and a
normal reference (df = ∞); ``pooled``, ``continuity`` and ``fisher`` take their p-value and their
interval (at α, and at α_i beside the adjusted p-value) from ``proportion_tests`` on the raw
counts, on the test's scale (``test_scale`` relative, absolute or odds_ratio; ``null_effect`` is
the null on that scale). CUPED does not apply to those rows (counts only). The multiple-testing
adjustment and the verdicts read every row's p-value the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import multiple, proportion_tests, relative, verdicts, welch
from . import sequential as seq
from .cuped import cuped_adjust
from .moments import RATIO_COLUMNS, ArmMoments, arm_moments
from .types import Correction, CorrectionScope, MetricSpec, RelativeCI, SequentialSpec


@dataclass(frozen=True)
class Reference:
    """The null distribution of the rows' z statistics: two-sided critical values and p-values."""

    quantile: Callable[[np.ndarray], np.ndarray]  # α per row → q with P(|Z| > q) = α
    p_value: Callable[[np.ndarray], np.ndarray]  # z per row → two-sided p

    def one_sided_p(self, z: np.ndarray, alternative: np.ndarray) -> np.ndarray:
        """p of the row's alternative: two-sided, or H1 "above r0" (greater) / "below r0" (less)."""
        p_two = self.p_value(z)
        toward = np.where(alternative == "less", -z, z)
        with np.errstate(invalid="ignore"):
            one = np.where(toward > 0, p_two / 2, 1 - p_two / 2)
        # z = ±∞ (both arms without variance, different means) is a certain result, not a missing one
        return np.where(alternative == "two-sided", p_two, np.where(np.isnan(z), np.nan, one))


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


def _check_options(alpha: float, relative_ci: str, correction: str, correction_scope: str, family: str,
                   guardrail_test: str) -> None:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    choices = {"relative_ci": (relative_ci, relative.METHODS),
               "correction": (correction, ("none", "holm", "bh", "dunnett")),
               "correction_scope": (correction_scope, ("primary", "all")), "family": (family, ("group", "metric")),
               "guardrail_test": (guardrail_test, ("harm", "noninferiority"))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; use {', '.join(allowed)}")


def _fixed_reference(df: np.ndarray) -> Reference:
    return Reference(lambda a: welch.t_quantile(a, df), lambda z: welch.t_p_value(z, df))


def _cs_reference(n_total: np.ndarray, alpha0: float, tuning_n: float) -> Reference:
    return Reference(lambda a: seq.cs_multiplier(a, n_total, alpha0, tuning_n),
                     lambda z: seq.cs_p_value(z, n_total, alpha0, tuning_n))


def _look_schedules(keys: pd.DataFrame, n_total: np.ndarray, spec: SequentialSpec) -> list[tuple[np.ndarray, int]]:
    """Per row: the information fractions of its looks and which one it is (``final_schedule``)."""
    planned = float(spec.planned_n)  # type: ignore[arg-type]
    if spec.look not in keys.columns:  # one current look after the earlier ones
        where = []
        for n in n_total:
            t = np.r_[np.asarray(spec.earlier_n, dtype=float), n] / planned
            if np.any(np.diff(t) < 0):
                raise ValueError("group-sequential looks need cumulative sums: n must not decrease from one look "
                                 "to the next")
            where.append(seq.final_schedule(t)[-1])
        return where
    info = n_total / planned
    out: list[tuple[np.ndarray, int]] = [(np.empty(0), 0)] * len(keys)
    group_cols = [c for c in keys.columns if c != spec.look]
    frame = keys.assign(_info=info, _row=np.arange(len(keys)))
    groups = frame.groupby(group_cols, sort=False, dropna=False) if group_cols else [(None, frame)]
    for _, g in groups:
        g = g.sort_values(spec.look)
        t = g["_info"].to_numpy()
        if np.any(np.diff(t) < 0):
            raise ValueError("group-sequential looks need cumulative sums: n must not decrease from one look "
                             "to the next")
        for row, w in zip(g["_row"].to_numpy(), seq.final_schedule(t), strict=True):
            out[row] = w
    return out


def _group_sequential_reference(keys: pd.DataFrame, n_total: np.ndarray, spec: SequentialSpec,
                                alpha0: float) -> Reference:
    where = _look_schedules(keys, n_total, spec)

    def quantile(a: np.ndarray) -> np.ndarray:
        a = np.broadcast_to(a, (len(where),))
        return np.array([seq.obf_multiplier(float(ai), *w, alpha0) for ai, w in zip(a, where, strict=True)])

    def p_value(z: np.ndarray) -> np.ndarray:
        return np.array([seq.obf_p_value(float(zi), *w, alpha0) for zi, w in zip(z, where, strict=True)])

    return Reference(quantile, p_value)


def _reference(sequential: SequentialSpec | None, keys: pd.DataFrame, n_total: np.ndarray, df: np.ndarray,
               alpha: float) -> Reference:
    if sequential is None:
        return _fixed_reference(df)
    if sequential.method == "confidence_sequence":
        return _cs_reference(n_total, alpha, sequential.tuning_n)
    return _group_sequential_reference(keys, n_total, sequential, alpha)


def _pooled(mc: ArmMoments, mt: ArmMoments, equal_var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(var_c, var_t, df of the difference): the pooled variance on ``equal_var`` rows (Student's t,
    as ``scipy.stats.ttest_ind(equal_var=True)``), the arms' own variances and Welch's df elsewhere."""
    pooled = (mc.var * (mc.n - mc.ddof) + mt.var * (mt.n - mt.ddof)) / (mc.n + mt.n - 2)
    df = np.where(equal_var, mc.n + mt.n - 2, welch.welch_df(mc.var, mc.n, mt.var, mt.n, mc.df, mt.df))
    return np.where(equal_var, pooled, mc.var), np.where(equal_var, pooled, mt.var), df


def _row_tests(specs: Sequence[MetricSpec], guardrail_test: str) -> tuple[np.ndarray, np.ndarray]:
    """(r0, alternative) per row: H0 rel = 0 with the metric's alternative, or a guardrail's margin test.

    Guardrail (sign s = +1 for "increase is better", −1 otherwise; margin m, 0 without one):
    harm tests H1 "worse than the margin", rel < −m (s = +1) / rel > m (s = −1);
    noninferiority tests H1 "better than the margin", rel > −m / rel < m.
    """
    r0 = np.zeros(len(specs))
    alternative = np.empty(len(specs), dtype=object)
    for i, s in enumerate(specs):
        if s.role != "guardrail":
            alternative[i] = s.alternative
            continue
        sign = 1.0 if s.direction == "increase" else -1.0
        r0[i] = -sign * (s.margin or 0.0)
        worse = "less" if sign > 0 else "greater"
        better = "greater" if sign > 0 else "less"
        alternative[i] = worse if guardrail_test == "harm" else better
    return r0, alternative.astype(str)


def _families(index: pd.DataFrame, by: list[str], specs: Sequence[MetricSpec], correction_scope: str,
              family: str, across: Sequence[str] = ()) -> list[np.ndarray]:
    """Row indices of each multiple-testing family.

    ``family="group"``: the metrics of one by-group; with ``correction_scope="primary"`` primary and
    secondary metrics form separate families and guardrails stand alone (each tested at α). A
    by-column in ``across`` does not split a family (the comparisons of an A/B/n experiment: one
    family spans them). ``family="metric"``: every by-group cell of one metric (exploratory segment
    tables).
    """
    keys = index.copy()
    if family == "metric":
        return [np.asarray(v) for v in keys.groupby("metric", sort=False).indices.values()]
    roles = np.array([s.role for s in specs], dtype=object)
    keys["_family"] = (np.where(roles == "guardrail", np.arange(len(keys)).astype(str), roles)
                       if correction_scope == "primary" else "all")
    cols = [*(b for b in by if b not in across), "_family"]
    return [np.asarray(v) for v in keys.groupby(cols, sort=False, dropna=False).indices.values()]


def _interval(bound: Callable[[np.ndarray], np.ndarray], quantile: Callable[[np.ndarray], np.ndarray],
              level: np.ndarray, alternative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) at ``level`` α per row: two-sided bounds at q(α), one-sided at q(2α)."""
    two = alternative == "two-sided"
    q = quantile(np.where(two, level, 2 * level))
    low = np.where(alternative == "less", -np.inf, bound(q))
    high = np.where(alternative == "greater", np.inf, bound(-q))
    return low, high


def _raw_where(rows: np.ndarray, adjusted: ArmMoments, raw: ArmMoments) -> ArmMoments:
    """The CUPED-adjusted moments, with the raw ones on ``rows``."""
    return dataclasses.replace(adjusted, value=np.where(rows, raw.value, adjusted.value),
                               var=np.where(rows, raw.var, adjusted.var))


@dataclass(frozen=True)
class _Counts:
    """The rows whose test runs on the raw counts (``proportion_tests``), and how to run them."""

    control: pd.DataFrame
    treatment: pd.DataFrame
    tests: np.ndarray
    r0: np.ndarray
    alternative: np.ndarray

    def run(self, level: np.ndarray) -> dict[int, proportion_tests.TestResult]:
        out = {}
        for i in np.flatnonzero(np.isin(self.tests, proportion_tests.COUNT_TESTS)):
            c, t = self.control.iloc[i], self.treatment.iloc[i]
            out[int(i)] = proportion_tests.run_test(
                str(self.tests[i]), float(c["sum_x"]), float(c["n"]), float(t["sum_x"]), float(t["n"]),
                r0=float(self.r0[i]), alternative=str(self.alternative[i]), alpha=float(level[i]))
        return out


def _count_columns(out: pd.DataFrame, at_alpha: Mapping[int, proportion_tests.TestResult],
                   at_adjusted: Mapping[int, proportion_tests.TestResult]) -> None:
    """Write the count tests' scale, null, estimate and intervals into their rows of ``out``."""
    for col in ("or_effect", "or_ci_low", "or_ci_high", "or_ci_low_adjusted", "or_ci_high_adjusted"):
        out[col] = np.nan
    prefix = {"relative": "rel", "absolute": "abs", "odds_ratio": "or"}
    for i, res in at_alpha.items():
        adj = at_adjusted[i]
        p = prefix[res.scale]
        out.loc[i, "test_scale"] = res.scale
        out.loc[i, "null_effect"] = res.null
        out.loc[i, "df"] = np.nan if res.scale == "odds_ratio" else np.inf
        if res.scale != "relative":  # another scale's interval would not be this test's
            for col in ("rel_ci_low", "rel_ci_high", "rel_ci_low_adjusted", "rel_ci_high_adjusted"):
                out.loc[i, col] = np.nan
        if res.scale == "odds_ratio":
            out.loc[i, "or_effect"] = res.estimate
        elif res.scale == "relative":
            out.loc[i, "rel_effect"] = res.estimate
        elif res.null == 0:
            out.loc[i, "abs_p_value"] = res.p_value
        out.loc[i, [f"{p}_ci_low", f"{p}_ci_high"]] = res.low, res.high
        out.loc[i, [f"{p}_ci_low_adjusted", f"{p}_ci_high_adjusted"]] = adj.low, adj.high


def compare(
    suff: pd.DataFrame,
    metrics: Mapping[str, MetricSpec],
    control: str,
    treatment: str,
    *,
    alpha: float = 0.05,
    relative_ci: RelativeCI = "fieller",
    cuped: bool = False,
    by: Sequence[str] = (),
    correction: Correction = "none",
    correction_scope: CorrectionScope = "primary",
    family: str = "group",
    sequential: SequentialSpec | None = None,
    small_sample: bool = True,
    guardrail_test: str = "harm",
    across: Sequence[str] = (),
) -> pd.DataFrame:
    """Scorecard of ``treatment`` vs ``control``: one row per metric × by-group.

    ``suff`` holds per-arm sufficient statistics (see ``abplatform.stats`` for the columns).
    ``correction`` / ``correction_scope`` / ``family``: multiple testing (``_families``). With
    ``sequential`` every CI / p-value is valid under repeated looks: when ``suff`` has the look
    column, one row per look (cumulative sums); otherwise ``suff`` is the current look, after the
    looks of ``sequential.earlier_n``. ``small_sample``: the ratio-metric leverage correction and
    Kish df (``moments``). ``guardrail_test``: harm or noninferiority (``_row_tests``). ``across``:
    by-columns a multiple-testing family spans (``compare_pairs``).
    """
    _check_options(alpha, relative_ci, correction, correction_scope, family, guardrail_test)
    by = list(by)
    if sequential is not None and sequential.look in suff.columns and sequential.look not in by:
        by.append(sequential.look)
    _check(suff, metrics, control, treatment, by)

    keys_cols = ["metric", *by]
    rows = suff[suff["metric"].isin(list(metrics))]
    index = rows[keys_cols].drop_duplicates()
    index = index.assign(_order=index["metric"].map({m: i for i, m in enumerate(metrics)}))
    index = index.sort_values(["_order", *by], kind="stable").drop(columns="_order").reset_index(drop=True)
    c_rows = index.merge(rows[rows["arm"] == control], on=keys_cols, how="left")
    t_rows = index.merge(rows[rows["arm"] == treatment], on=keys_cols, how="left")
    specs = [metrics[m] for m in index["metric"]]
    types = np.array([s.type for s in specs])

    tests = np.array([s.test for s in specs], dtype=object).astype(str)
    by_counts = np.isin(tests, proportion_tests.COUNT_TESTS)
    if sequential is not None and by_counts.any():
        raise ValueError(f"tests {sorted(set(tests[by_counts]))} are fixed-horizon; a sequential analysis needs "
                         "welch or wald")
    wald = tests == "wald"
    own_test = wald | by_counts  # rows on the raw counts, not CUPED-adjusted

    mc, mt = arm_moments(c_rows, types, small_sample), arm_moments(t_rows, types, small_sample)
    raw_c, raw_t = mc, mt
    v_unadjusted = mc.var / mc.n + mt.var / mt.n
    theta = np.zeros(len(index))
    if cuped:
        adjusted = cuped_adjust(mc, mt)
        mc, mt, theta = adjusted.control, adjusted.treatment, adjusted.theta
        if own_test.any():
            mc, mt = _raw_where(own_test, mc, raw_c), _raw_where(own_test, mt, raw_t)
            theta = np.where(own_test, 0.0, theta)
    if wald.any():  # the Wald test's variance p(1 − p), divisor n
        mc = dataclasses.replace(mc, var=np.where(wald, proportion_tests.wald_variance(mc.value), mc.var))
        mt = dataclasses.replace(mt, var=np.where(wald, proportion_tests.wald_variance(mt.value), mt.var))
    equal_var = np.array([s.equal_var for s in specs], dtype=bool)
    var_c, var_t, df_abs = _pooled(mc, mt, equal_var)
    df_abs = np.where(wald, np.inf, df_abs)
    vc, vt = var_c / mc.n, var_t / mt.n
    t_val, c_val = mt.value, mc.value
    with np.errstate(divide="ignore", invalid="ignore"):
        abs_effect = t_val - c_val
        se = np.sqrt(vc + vt)
        z_abs = abs_effect / se
        variance_reduction = np.where(cuped & ~own_test, 1 - (vc + vt) / v_unadjusted, 0.0)

    n_total = mc.n + mt.n
    keys = index[keys_cols]
    abs_ref = _reference(sequential, keys, n_total, df_abs, alpha)
    families = _families(index, by, specs, correction_scope, family, across) if correction != "none" else []
    smallest_level = np.full(len(index), alpha)  # the adjusted level is at least α/m (Holm, BH, Dunnett)
    for fam in families:
        smallest_level[fam] = alpha / len(fam)
    est = relative.estimable(relative_ci, t_val, c_val, vc, abs_ref.quantile(smallest_level))
    rel_df = relative.relative_df(relative_ci, t_val, c_val, var_t, mt.n, var_c, mc.n, mt.df, mc.df)
    df_row = np.where(est & (relative_ci == "log") & ~equal_var & ~wald, rel_df, df_abs)  # Student: n_c + n_t − 2
    # a sequential reference does not depend on df: the absolute one (its look schedule built once) serves
    ref = abs_ref if sequential is not None else _fixed_reference(df_row)

    r0_spec, alternative = _row_tests(specs, guardrail_test)
    r0 = np.where(est, r0_spec, 0.0)  # a relative margin needs a relative effect
    z_row = np.where(est, relative.relative_z(relative_ci, t_val, c_val, vt, vc, r0), z_abs)
    p_value = ref.one_sided_p(z_row, alternative)
    counts = _Counts(c_rows, t_rows, tests, r0_spec, alternative)
    at_alpha = counts.run(np.full(len(index), alpha))
    for i, res in at_alpha.items():
        p_value[i] = res.p_value

    p_adj = p_value.copy()
    alpha_i = np.full(len(index), alpha)
    if correction == "dunnett":  # its groups: one metric's cells across the comparisons (the columns a family spans)
        cells = index[["metric", *(b for b in by if b not in across)]].astype(str).agg("|".join, axis=1).to_numpy()
    for fam in families:
        if correction == "dunnett":
            p_adj[fam], alpha_i[fam] = multiple.dunnett(p_value[fam], alpha, cells[fam], vc[fam], vt[fam],
                                                        alternative[fam] == "two-sided")
        else:
            p_adj[fam], alpha_i[fam] = multiple.adjust(p_value[fam], alpha, correction)

    def rel_bound(q: np.ndarray) -> np.ndarray:
        return np.where(est, relative.relative_bound(relative_ci, t_val, c_val, vt, vc, q), np.nan)

    def abs_bound(q: np.ndarray) -> np.ndarray:
        return abs_effect - q * se

    out = index.copy()
    out["type"] = types
    out["role"] = [s.role for s in specs]
    out["direction"] = [s.direction for s in specs]
    out["alternative"] = alternative
    out["test_scale"] = np.where(est, "relative", "absolute")
    out["null_effect"] = r0
    out["n_control"] = mc.n.astype("int64") if np.isfinite(mc.n).all() else mc.n
    out["n_treatment"] = mt.n.astype("int64") if np.isfinite(mt.n).all() else mt.n
    out["control_value"] = c_val
    out["treatment_value"] = t_val
    out["abs_effect"] = abs_effect
    out["abs_se"] = se
    out["abs_ci_low"], out["abs_ci_high"] = _interval(abs_bound, abs_ref.quantile, np.full(len(index), alpha),
                                                      alternative)
    out["abs_p_value"] = abs_ref.one_sided_p(z_abs, alternative)
    out["rel_effect"] = np.where(est, relative.relative_effect(t_val, c_val), np.nan)
    out["rel_ci_low"], out["rel_ci_high"] = _interval(rel_bound, ref.quantile, np.full(len(index), alpha), alternative)
    out["p_value"] = p_value
    out["df"] = df_row
    out["alpha_adjusted"] = alpha_i
    out["p_value_adjusted"] = p_adj
    out["abs_ci_low_adjusted"], out["abs_ci_high_adjusted"] = _interval(abs_bound, abs_ref.quantile, alpha_i,
                                                                        alternative)
    out["rel_ci_low_adjusted"], out["rel_ci_high_adjusted"] = _interval(rel_bound, ref.quantile, alpha_i, alternative)
    if at_alpha:
        _count_columns(out, at_alpha, counts.run(alpha_i))
    out.insert(list(out.columns).index("alternative") + 1, "test", tests)
    out["theta"] = theta
    out["leverage_factor_control"] = mc.leverage_factor
    out["leverage_factor_treatment"] = mt.leverage_factor
    out["variance_reduction"] = variance_reduction
    decided = verdicts.metric_verdicts(effect=abs_effect, p_value_adjusted=p_adj, alpha=alpha, specs=specs,
                                       guardrail_test=guardrail_test)
    return pd.concat([out, decided], axis=1)


def compare_pairs(suff: pd.DataFrame, metrics: Mapping[str, MetricSpec], pairs: Sequence[tuple[str, str]], *,
                  by: Sequence[str] = (), **options) -> pd.DataFrame:
    """:func:`compare` for each (treatment, control) pair of an A/B/n experiment, in one table.

    Rows carry ``comparison`` ("v2 vs v1"), ``treatment`` and ``control``, in the order of
    ``pairs`` (metrics in their order within each); every pair is tested as :func:`compare` tests
    two arms, and a multiple-testing family spans the comparisons as well as the metrics (with
    ``correction`` holm: Holm over every comparison × metric of a family; dunnett: Dunnett across the
    comparisons of each metric, which must then share one control — :func:`multiple.dunnett`). Each
    pair's rows are its two arms relabelled, so one call runs every comparison through the same
    vectorised tests.
    """
    if options.get("correction") == "dunnett" and len({c for _, c in pairs}) > 1:
        raise ValueError("the dunnett correction compares treatments with one shared control; these comparisons "
                         f"have controls {sorted({c for _, c in pairs})}")
    parts = []
    for treatment, control in pairs:
        part = suff[suff["arm"].isin([treatment, control])]
        part = part.assign(arm=part["arm"].map({control: "control", treatment: "treatment"}),
                           comparison=f"{treatment} vs {control}")
        parts.append(part)
    if not parts:
        raise ValueError("compare_pairs needs at least one (treatment, control) pair")
    out = compare(pd.concat(parts, ignore_index=True), metrics, "control", "treatment",
                  by=[*by, "comparison"], across=("comparison",), **options)
    order = {f"{t} vs {c}": i for i, (t, c) in enumerate(pairs)}
    out = out.iloc[np.argsort(out["comparison"].map(order).to_numpy(), kind="stable")].reset_index(drop=True)
    names = dict(zip(order, pairs, strict=True))
    out.insert(0, "treatment", [names[c][0] for c in out["comparison"]])
    out.insert(1, "control", [names[c][1] for c in out["comparison"]])
    return out
