"""From an event log with arms to a scorecard and a decision: SQL sufficient statistics, then stats.

The decision rule (the gate's): promote when every primary metric improves significantly, no
guardrail is breached, and the sample-ratio check passes; otherwise hold, with one reason per
failed condition in words the dashboard and the gate print alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from abplatform import stats
from abplatform.config import Aggregate, Experiment
from abplatform.dataset import Dataset
from abplatform.errors import EvaluationError
from abplatform.expressions import parse_expression, to_sql
from abplatform.formats import fmt_p
from abplatform.metrics import BUILTIN_METRICS, Metric
from abplatform.metrics.base import UnitColumn
from abplatform.engines import make_metrics_engine
from abplatform.metrics.engine import SEGMENT_COLUMNS


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "promote" if self.promote else "hold"

    def hold(self, reason: str) -> None:
        """A condition checked outside the scorecard (e.g. the replay's latency guardrail) failed."""
        self.promote = False
        self.reasons.append(reason)


@dataclass
class Scorecard:
    overall: pd.DataFrame
    segments: pd.DataFrame
    daily: pd.DataFrame
    srm: pd.DataFrame
    decision: Decision
    control: str
    treatment: str
    sufficient_stats: pd.DataFrame
    long_tail: pd.DataFrame | None = None  # per-user long-tail metrics, compared like the scorecard
    long_tail_arms: pd.DataFrame | None = None  # per-arm coverage and exposure Gini


def _unit_column(name: str, agg: Aggregate, extra_filter: str | None = None) -> UnitColumn:
    conditions = [to_sql(parse_expression(f)) for f in (agg.filter, extra_filter) if f]
    value = to_sql(parse_expression(agg.column)) if agg.column else "1"
    return UnitColumn(name, agg.agg, value, " AND ".join(f"({c})" for c in conditions) or "TRUE")


def experiment_metrics(exp: Experiment) -> list[Metric]:
    """The experiment's metrics: built-ins with the file's options, and user-defined ones."""
    out = []
    for mc in exp.metrics:
        options = dict(role=mc.role, margin=mc.margin, cap_value=mc.cap_value, cap_percentile=mc.cap_percentile)
        if mc.name in BUILTIN_METRICS:
            base = BUILTIN_METRICS[mc.name]
            out.append(base.with_options(direction=mc.direction or base.direction, **options))
            continue
        assert mc.numerator is not None and mc.type is not None
        num = _unit_column(f"u_{mc.name}_num", mc.numerator)
        den = _unit_column(f"u_{mc.name}_den", mc.denominator) if mc.denominator else None
        out.append(Metric(mc.name, mc.type, num.name, den.name if den else None,
                          direction=mc.direction or "increase", columns=(num, den) if den else (num,), **options))
    return out


def metric_specs(metrics: Sequence[Metric]) -> dict[str, stats.MetricSpec]:
    return {m.name: stats.MetricSpec(type=m.type, direction=m.direction, role=m.role, margin=m.margin)
            for m in metrics}


def decide(overall: pd.DataFrame, srm_overall: pd.Series, alpha: float, guardrail_test: str = "harm",
           block_on_srm: bool = True) -> Decision:
    reasons = []
    for _, r in overall.iterrows():
        rel = f"{r['rel_effect']:+.2%}" if pd.notna(r["rel_effect"]) else "n/a"
        p = r["p_value_adjusted"]
        if r["role"] == "primary" and not r["improved"]:
            why = "is significantly worse" if r["degraded"] else "did not improve significantly"
            reasons.append(f"primary metric {r['metric']} {why} ({rel}, p = {fmt_p(p)}, alpha = {alpha})")
        if r["role"] == "guardrail" and r["breached"]:
            if pd.notna(r["margin"]) and guardrail_test == "noninferiority":
                reasons.append(f"guardrail {r['metric']} not shown within its {r['margin']:.2%} margin "
                               f"({rel}, non-inferiority p = {fmt_p(r['noninferior_p_value'])})")
            elif pd.notna(r["margin"]):
                reasons.append(f"guardrail {r['metric']} is significantly worse beyond its {r['margin']:.2%} "
                               f"margin ({rel}, p = {fmt_p(1 - r['noninferior_p_value'])})")
            else:
                reasons.append(f"guardrail {r['metric']} is significantly worse ({rel}, p = {fmt_p(p)})")
    if block_on_srm and bool(srm_overall["failed"]):
        reasons.append(f"sample ratio mismatch: p = {srm_overall['p_value']:.3g} < threshold")
    if not (overall["role"] == "primary").any():
        reasons.append("no primary metric is configured")
    return Decision(promote=not reasons, reasons=reasons)


def build_scorecard(dataset: Dataset, exp: Experiment, threads: int | None = None) -> Scorecard:
    metrics = experiment_metrics(exp)
    specs = metric_specs(metrics)
    control, treatment = exp.control_arm.name, exp.treatment_arm.name
    weights = exp.weights
    st = exp.statistics
    extra = [seg for seg in exp.segments if seg not in SEGMENT_COLUMNS]
    engine = make_metrics_engine(dataset, exp.data.engine, exp.data.spark, metrics, threads, extra_segments=extra,
                                 pre_period_days=st.pre_period_days)
    try:
        suff = engine.sufficient_stats(metrics, exp.segments)
        # every unit counts once in each metric's n, so the first metric's n are the units per arm
        counts = suff[suff["metric"] == metrics[0].name][["segment", "segment_value", "arm", "n"]]
        arms_seen = set(counts["arm"])
        missing = [a for a in (control, treatment) if a not in arms_seen]
        if missing:
            raise EvaluationError(f"{dataset.path}: no sessions for arm {missing[0]!r} "
                                  f"(arms in the log: {', '.join(sorted(arms_seen)) or 'none'})")
        daily = engine.daily_sufficient_stats(metrics)
        long_tail = engine.long_tail_stats()
    finally:
        engine.close()
    cuped = st.cuped and suff["sum_xp"].notna().any()
    common = dict(alpha=st.alpha, relative_ci=st.relative_ci, cuped=cuped, correction=st.correction)
    overall = stats.compare(suff[suff["segment"] == "all"], specs, control, treatment,
                            guardrail_test=exp.decision.guardrail_test, **common)
    overall = pd.concat([overall, stats.mde_columns(overall, st.alpha)], axis=1)
    planned = {m.name: m.mde for m in exp.metrics}
    overall["planned_mde"] = overall["metric"].map(planned).astype(float)
    overall["underpowered"] = overall["planned_mde"].notna() & (overall["mde_rel"] > overall["planned_mde"])
    seg_rows = suff[suff["segment"] != "all"]
    segments = (stats.compare(seg_rows, specs, control, treatment, by=["segment", "segment_value"], **common)
                if len(seg_rows) else pd.DataFrame())
    sequential = None
    if st.sequential is not None:
        sequential = stats.SequentialSpec(method=st.sequential.method, look="day", tuning_n=st.sequential.tuning_n,
                                          planned_n=st.sequential.planned_units)
    daily_card = stats.compare(daily, specs, control, treatment, by=["day"],
                               sequential=sequential, **{**common, "correction": "none"})
    srm = stats.srm_table(counts.reset_index(drop=True), weights, by=["segment", "segment_value"],
                          threshold=st.srm_threshold)
    srm_overall = srm[srm["segment"] == "all"].iloc[0]
    lt_card = lt_arms = None
    if long_tail is not None:
        from abplatform.metrics.long_tail import LONG_TAIL_METRICS

        lt_specs = {m.name: stats.MetricSpec(type=m.type, direction=m.direction, role="secondary")
                    for m in LONG_TAIL_METRICS}
        lt_card = stats.compare(long_tail[0], lt_specs, control, treatment, alpha=st.alpha,
                                relative_ci=st.relative_ci)
        lt_arms = long_tail[1]
    return Scorecard(long_tail=lt_card, long_tail_arms=lt_arms,overall=overall, segments=segments, daily=daily_card, srm=srm,
                     decision=decide(overall, srm_overall, st.alpha, exp.decision.guardrail_test,
                                     exp.decision.block_on_srm), control=control, treatment=treatment,
                     sufficient_stats=suff)
