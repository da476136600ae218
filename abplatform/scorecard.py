"""From an event log with arms to a scorecard: SQL sufficient statistics, then the statistics.

The scorecard's tables (pandas, a few hundred rows) are written as the run's parquet files and
turned into the typed report's rows by :func:`metric_results`; the decision is
:func:`abplatform.decision.decide`'s.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import pandas as pd

from abplatform import stats
from abplatform.config import Aggregate, Experiment
from abplatform.dataset import Dataset
from abplatform.errors import EvaluationError
from abplatform.expressions import parse_expression, to_sql
from abplatform.metrics import BUILTIN_METRICS, Metric
from abplatform.metrics.backends import make_metrics_engine
from abplatform.metrics.base import UnitColumn
from abplatform.profile import SEGMENT_SOURCE
from abplatform.report.model import (
    DailySegmentSeries,
    DailySrm,
    MetricResult,
    PrePeriodBalance,
    SegmentHeterogeneity,
    SegmentSrm,
    SrmCheck,
    finite_or_none,
)
from abplatform.vocabulary import SEGMENT_COLUMNS


@dataclass
class Scorecard:
    """The comparison tables: one row per comparison × metric (× segment value, × day), the
    comparisons (``pairs``, (treatment, control)) in the experiment's order."""

    overall: pd.DataFrame
    segments: pd.DataFrame
    daily: pd.DataFrame
    srm: pd.DataFrame
    pairs: list[tuple[str, str]]
    arms: list[str]
    sufficient_stats: pd.DataFrame
    long_tail: pd.DataFrame | None = None  # per-user long-tail metrics, compared like the scorecard
    long_tail_arms: pd.DataFrame | None = None  # per-arm coverage and exposure Gini
    # Cochran's Q per (comparison ×) segment × metric (stats.heterogeneity_table), and the segment
    # values' cumulative daily looks (one row per comparison × metric × segment value × day)
    heterogeneity: pd.DataFrame | None = None
    daily_segments: pd.DataFrame | None = None
    # health: the pre-period A/A check per comparison × metric (stats.balance_table; empty without a
    # pre-period) and the sample ratio of each day's new units (stats.daily_srm_table)
    balance: pd.DataFrame | None = None
    srm_by_day: pd.DataFrame | None = None

    @property
    def control(self) -> str:
        """The control of the headline (first) comparison."""
        return self.pairs[0][1]

    @property
    def treatment(self) -> str:
        return self.pairs[0][0]


def _unit_column(name: str, agg: Aggregate, extra_filter: str | None = None) -> UnitColumn:
    conditions = [to_sql(parse_expression(f)) for f in (agg.filter, extra_filter) if f]
    value = to_sql(parse_expression(agg.column)) if agg.column else "1"
    return UnitColumn(name, agg.agg, value, " AND ".join(f"({c})" for c in conditions) or "TRUE")


def experiment_metrics(exp: Experiment) -> list[Metric]:
    """The experiment's metrics: built-ins with the file's options, and user-defined ones."""
    out = []
    for mc in exp.metrics:
        if mc.name in BUILTIN_METRICS:
            base = BUILTIN_METRICS[mc.name]
            out.append(base.with_options(direction=mc.direction or base.direction, role=mc.role, margin=mc.margin,
                                         cap_value=mc.cap_value, cap_percentile=mc.cap_percentile))
            continue
        assert mc.numerator is not None and mc.type is not None
        num = _unit_column(f"u_{mc.name}_num", mc.numerator)
        den = _unit_column(f"u_{mc.name}_den", mc.denominator) if mc.denominator else None
        out.append(Metric(mc.name, mc.type, num.name, den.name if den else None,
                          direction=mc.direction or "increase", role=mc.role, margin=mc.margin,
                          cap_value=mc.cap_value, cap_percentile=mc.cap_percentile,
                          columns=(num, den) if den else (num,)))
    return out


def metric_specs(metrics: Sequence[Metric], exp: Experiment | None = None) -> dict[str, stats.MetricSpec]:
    """How each metric is tested: its type, direction, role and margin, and the file's alternative / equal_var."""
    configured = {mc.name: mc for mc in exp.metrics} if exp is not None else {}
    specs = {}
    for m in metrics:
        mc = configured.get(m.name)
        specs[m.name] = stats.MetricSpec(type=m.type, direction=m.direction, role=m.role, margin=m.margin,
                                         alternative=mc.alternative if mc else "two-sided",
                                         equal_var=mc.equal_var if mc else False)
    return specs


def build_scorecard(dataset: Dataset, exp: Experiment, threads: int | None = None) -> Scorecard:
    metrics = experiment_metrics(exp)
    specs = metric_specs(metrics, exp)
    pairs = exp.comparison_pairs
    arms = [a.name for a in exp.arms]
    weights = exp.weights
    st = exp.statistics
    segment_names = analysed_segments(exp, dataset)
    extra = [seg for seg in segment_names if seg not in SEGMENT_COLUMNS]
    engine = make_metrics_engine(dataset, exp.data.engine, exp.data.spark, metrics, threads, extra_segments=extra,
                                 pre_period_days=st.pre_period_days, unit=exp.randomisation.unit)
    try:
        suff = engine.sufficient_stats(metrics, segment_names)
        # every unit counts once in each metric's n, so the first metric's n are the units per arm
        counts = suff[suff["metric"] == metrics[0].name][["segment", "segment_value", "arm", "n"]]
        arms_seen = set(counts["arm"])
        missing = [a for a in arms if a not in arms_seen]
        if missing:
            raise EvaluationError(f"{dataset.path}: no sessions for arm {missing[0]!r} "
                                  f"(arms in the log: {', '.join(sorted(arms_seen)) or 'none'})")
        daily = engine.daily_sufficient_stats(metrics)
        daily_seg = engine.daily_segment_sufficient_stats(metrics, segment_names)
        long_tail = engine.long_tail_stats()
    finally:
        engine.close()
    cuped = bool(st.cuped and suff["sum_xp"].notna().any())
    # every table is tested the same way
    compare = functools.partial(stats.compare_pairs, metrics=specs, pairs=pairs, alpha=st.alpha,
                                relative_ci=st.relative_ci, cuped=cuped, guardrail_test=exp.decision.guardrail_test)
    sequential = None
    if st.sequential is not None:
        sequential = stats.SequentialSpec(method=st.sequential.method, look="day", tuning_n=st.sequential.tuning_n,
                                          planned_n=st.sequential.planned_units)
    # the daily looks: no correction across metrics
    # a log without session times has no daily looks (and the profile refuses sequential testing on it)
    daily_card = compare(daily, by=["day"], sequential=sequential) if len(daily) else pd.DataFrame()
    # each segment value's looks, tested as the overall ones (the drill-down of the segment table) — with the
    # confidence sequence when that is the analysis; O'Brien–Fleming needs a boundary table per look
    # schedule, i.e. per segment value (seconds each: 126 tables for the demo's 9 values × 14 days), so
    # under it the segment values' looks are fixed-horizon, and say so (column ``sequential``)
    seg_sequential = sequential if sequential is not None and sequential.method == "confidence_sequence" else None
    daily_segments = pd.DataFrame()
    if len(daily_seg):
        daily_segments = compare(daily_seg, by=["segment", "segment_value", "day"], sequential=seg_sequential)
        daily_segments["sequential"] = seg_sequential.method if seg_sequential is not None else None
    if sequential is not None:  # the overall scorecard is the current look, after the earlier days
        sequential = dataclasses.replace(sequential, earlier_n=_earlier_looks(daily_card))
    overall = compare(suff[suff["segment"] == "all"], correction=exp.correction, correction_scope=st.correction_scope,
                      sequential=sequential)
    overall = pd.concat([overall, stats.mde_columns(overall, st.alpha)], axis=1)
    planned = {m.name: m.mde for m in exp.metrics}
    overall["planned_mde"] = overall["metric"].map(planned).astype(float)
    overall["underpowered"] = overall["planned_mde"].notna() & (overall["mde_rel"] > overall["planned_mde"])
    seg_rows = suff[suff["segment"] != "all"]
    # exploratory: each metric corrected across all its segment cells
    segments = (compare(seg_rows, by=["segment", "segment_value"], correction=exp.correction, family="metric")
                if len(seg_rows) else pd.DataFrame())
    # does the effect differ across a segment's values? Holm across the metrics of each comparison × segment
    heterogeneity = stats.heterogeneity_table(segments, st.alpha, overall) if len(segments) else pd.DataFrame()
    srm = stats.srm_table(counts.reset_index(drop=True), weights, by=["segment", "segment_value"],
                          threshold=st.srm_threshold)
    # health checks: were the arms alike before the experiment, and did each day's new units follow the split?
    balance = stats.balance_table(suff, {m.name: m.type for m in metrics}, pairs, threshold=st.srm_threshold)
    srm_by_day = (stats.daily_srm_table(daily[daily["metric"] == metrics[0].name], weights, threshold=st.srm_threshold)
                  if len(daily) else None)
    lt_card = lt_arms = None
    if long_tail is not None:
        from abplatform.metrics.long_tail import LONG_TAIL_METRICS

        lt_specs = {m.name: stats.MetricSpec(type=m.type, direction=m.direction, role="secondary")
                    for m in LONG_TAIL_METRICS}
        lt_card = stats.compare_pairs(long_tail[0], lt_specs, pairs, alpha=st.alpha, relative_ci=st.relative_ci,
                                      guardrail_test=exp.decision.guardrail_test)
        lt_arms = long_tail[1]
    return Scorecard(overall=overall, segments=segments, daily=daily_card, srm=srm, pairs=pairs, arms=arms,
                     sufficient_stats=suff, long_tail=lt_card, long_tail_arms=lt_arms, heterogeneity=heterogeneity,
                     daily_segments=daily_segments, balance=balance, srm_by_day=srm_by_day)


def analysed_segments(exp: Experiment, dataset: Dataset) -> list[str]:
    """The segments listed in the experiment file; by default the built-in ones whose column the log has."""
    if "segments" in exp.model_fields_set:
        return list(exp.segments)
    absent = dataset.absent_columns("sessions")
    return [s for s in exp.segments if SEGMENT_SOURCE.get(s, s) not in absent]


def _earlier_looks(daily_card: pd.DataFrame) -> tuple[float, ...]:
    """Units (both arms) at each day before the last: the looks the overall scorecard comes after."""
    first = daily_card[daily_card["metric"] == daily_card["metric"].iloc[0]].sort_values("day")
    n = (first["n_control"] + first["n_treatment"]).to_numpy(dtype=float)
    return tuple(float(v) for v in n[:-1])


R = TypeVar("R", bound=MetricResult)


@overload
def metric_results(frame: pd.DataFrame | None) -> list[MetricResult]: ...
@overload
def metric_results(frame: pd.DataFrame | None, row_type: type[R]) -> list[R]: ...


def metric_results(frame: pd.DataFrame | None, row_type: type[MetricResult] = MetricResult) -> list[Any]:
    """The typed rows of a comparison table (``stats.compare``'s columns; NaN becomes None)."""
    if frame is None or frame.empty:
        return []
    names = [f.name for f in dataclasses.fields(row_type) if f.name in frame.columns]
    out = []
    for values in frame[names].itertuples(index=False, name=None):
        row = {k: finite_or_none(v.item() if hasattr(v, "item") else v) for k, v in zip(names, values, strict=True)}
        out.append(row_type(**row))
    return out


def heterogeneity_results(frame: pd.DataFrame | None) -> list[SegmentHeterogeneity]:
    """The typed rows of a heterogeneity table (:func:`abplatform.stats.heterogeneity_table`, one comparison's
    rows or a table with ``treatment`` and ``control``); NaN becomes None."""
    if frame is None or frame.empty:
        return []
    out = []
    for r in frame.to_dict("records"):
        out.append(SegmentHeterogeneity(
            treatment=str(r.get("treatment", "treatment")), control=str(r.get("control", "control")),
            metric=str(r["metric"]), segment=str(r["segment"]), q=finite_or_none(float(r["q"])), df=int(r["df"]),
            p_value=finite_or_none(float(r["p_value"])), p_value_adjusted=finite_or_none(float(r["p_value_adjusted"])),
            differs=bool(r["differs"]), cells=int(r["cells"]), cells_not_estimable=int(r["cells_not_estimable"]),
            values_per_unit=finite_or_none(float(r["values_per_unit"]))))
    return out


def daily_segment_series(frame: pd.DataFrame | None) -> list[DailySegmentSeries]:
    """One comparison's per-segment daily table (one row per metric × segment value × day) as one columnar
    series per metric × segment value, days in order; NaN becomes None."""
    if frame is None or frame.empty:
        return []

    def floats(g: pd.DataFrame, col: str) -> list[float | None]:
        return [finite_or_none(float(v)) for v in g[col]]

    def counts(g: pd.DataFrame, col: str) -> list[int | None]:
        return [int(v) if pd.notna(v) else None for v in g[col]]

    out = []
    for (metric, segment, value), g in frame.groupby(["metric", "segment", "segment_value"], sort=False):
        g = g.sort_values("day", kind="stable")
        method = g["sequential"].iloc[0] if "sequential" in g.columns else None
        out.append(DailySegmentSeries(
            metric=str(metric), segment=str(segment), segment_value=str(value),
            sequential=str(method) if isinstance(method, str) else None, days=[str(d) for d in g["day"]],
            n_control=counts(g, "n_control"), n_treatment=counts(g, "n_treatment"),
            control_value=floats(g, "control_value"), treatment_value=floats(g, "treatment_value"),
            rel_effect=floats(g, "rel_effect"), rel_ci_low=floats(g, "rel_ci_low"),
            rel_ci_high=floats(g, "rel_ci_high"), p_value=floats(g, "p_value")))
    return out


def srm_checks(card: Scorecard) -> tuple[SrmCheck, list[SegmentSrm]]:
    """The overall sample-ratio check, and the check of every segment value (with "all" first)."""
    arms = card.arms

    def units(r: pd.Series) -> dict[str, int]:
        return {a: int(r[f"n_{a}"]) for a in arms}

    rows = [SegmentSrm(segment=r["segment"], segment_value=r["segment_value"],
                       p_value=finite_or_none(float(r["p_value"])), chi2=finite_or_none(float(r["chi2"])),
                       failed=bool(r["failed"]), units=units(r), test=str(r.get("test", "chi-square")))
            for _, r in card.srm.iterrows()]
    overall = next(r for r in rows if r.segment == "all")
    return (SrmCheck(p_value=overall.p_value, chi2=overall.chi2, failed=overall.failed, units=overall.units,
                     test=overall.test),
            rows)


def _num(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else finite_or_none(float(v))


def balance_results(frame: pd.DataFrame | None) -> list[PrePeriodBalance]:
    """The typed rows of a pre-period balance table (:func:`abplatform.stats.balance_table`); NaN becomes None."""
    if frame is None or frame.empty:
        return []
    return [PrePeriodBalance(
        treatment=str(r["treatment"]), control=str(r["control"]), metric=str(r["metric"]), type=str(r["type"]),
        n_control=int(r["n_control"]), n_treatment=int(r["n_treatment"]),
        control_pre_value=_num(r["control_pre_value"]), treatment_pre_value=_num(r["treatment_pre_value"]),
        diff=_num(r["diff"]), rel_diff=_num(r["rel_diff"]), se=_num(r["se"]), df=_num(r["df"]), t=_num(r["t"]),
        p_value=_num(r["p_value"]), p_value_adjusted=_num(r["p_value_adjusted"]), failed=bool(r["failed"]),
        threshold=float(r["threshold"])) for r in frame.to_dict("records")]


def daily_srm_results(card: Scorecard) -> list[DailySrm]:
    """The sample-ratio check of each day's new units (:func:`abplatform.stats.daily_srm_table`), typed."""
    if card.srm_by_day is None or card.srm_by_day.empty:
        return []
    return [DailySrm(day=str(r["day"]), units={a: int(r[f"n_{a}"]) for a in card.arms}, p_value=_num(r["p_value"]),
                     chi2=_num(r["chi2"]), test=str(r["test"]), p_value_adjusted=_num(r["p_value_adjusted"]),
                     failed=bool(r["failed"]), threshold=float(r["threshold"]))
            for r in card.srm_by_day.to_dict("records")]
