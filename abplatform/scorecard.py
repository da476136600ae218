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
from abplatform.config import Experiment
from abplatform.dataset import Dataset
from abplatform.errors import EvaluationError
from abplatform.metrics import BUILTIN_METRICS, Metric
from abplatform.metrics.engine import MetricsEngine


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "promote" if self.promote else "hold"


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


def experiment_metrics(exp: Experiment) -> list[Metric]:
    out = []
    for mc in exp.metrics:
        base = BUILTIN_METRICS[mc.name]
        out.append(base.with_options(role=mc.role, direction=mc.direction or base.direction, margin=mc.margin,
                                     cap_value=mc.cap_value, cap_percentile=mc.cap_percentile))
    return out


def metric_specs(metrics: Sequence[Metric]) -> dict[str, stats.MetricSpec]:
    return {m.name: stats.MetricSpec(type=m.type, direction=m.direction, role=m.role, margin=m.margin)
            for m in metrics}


def decide(overall: pd.DataFrame, srm_overall: pd.Series, alpha: float) -> Decision:
    reasons = []
    for _, r in overall.iterrows():
        rel = f"{r['rel_effect']:+.2%}" if pd.notna(r["rel_effect"]) else "n/a"
        p = r["p_value_adjusted"]
        if r["role"] == "primary" and not r["improved"]:
            why = "is significantly worse" if r["degraded"] else "did not improve significantly"
            reasons.append(f"primary metric {r['metric']} {why} ({rel}, p = {p:.4g}, alpha = {alpha})")
        if r["role"] == "guardrail" and r["breached"]:
            if pd.notna(r["margin"]):
                reasons.append(f"guardrail {r['metric']} not shown within its {r['margin']:.2%} margin "
                               f"({rel}, non-inferiority p = {r['noninferior_p_value']:.4g})")
            else:
                reasons.append(f"guardrail {r['metric']} is significantly worse ({rel}, p = {p:.4g})")
    if bool(srm_overall["failed"]):
        reasons.append(f"sample ratio mismatch: p = {srm_overall['p_value']:.3g} < threshold")
    if not (overall["role"] == "primary").any():
        reasons.append("no primary metric is configured")
    return Decision(promote=not reasons, reasons=reasons)


def build_scorecard(dataset: Dataset, exp: Experiment, threads: int | None = None) -> Scorecard:
    metrics = experiment_metrics(exp)
    specs = metric_specs(metrics)
    control, treatment = exp.control_arm.name, exp.treatment_arm.name
    weights = {a.name: a.weight for a in exp.arms}
    st = exp.statistics
    engine = MetricsEngine(dataset, threads)
    try:
        counts = engine.unit_counts(exp.segments)
        arms_seen = set(counts["arm"])
        missing = [a for a in (control, treatment) if a not in arms_seen]
        if missing:
            raise EvaluationError(f"{dataset.path}: no sessions for arm {missing[0]!r} "
                                  f"(arms in the log: {', '.join(sorted(arms_seen)) or 'none'})")
        suff = engine.sufficient_stats(metrics, exp.segments)
        daily = engine.daily_sufficient_stats(metrics)
    finally:
        engine.close()
    cuped = st.cuped and suff["sum_xp"].notna().any()
    common = dict(alpha=st.alpha, relative_ci=st.relative_ci, cuped=cuped, correction=st.correction)
    overall = stats.compare(suff[suff["segment"] == "all"], specs, control, treatment, **common)
    seg_rows = suff[suff["segment"] != "all"]
    segments = (stats.compare(seg_rows, specs, control, treatment, by=["segment", "segment_value"], **common)
                if len(seg_rows) else pd.DataFrame())
    sequential = None
    if st.sequential is not None:
        sequential = stats.SequentialSpec(method=st.sequential.method, look="day", tuning_n=st.sequential.tuning_n,
                                          planned_n=st.sequential.planned_units)
    daily_card = stats.compare(daily, specs, control, treatment, by=["day"],
                               sequential=sequential, **{**common, "correction": "none"})
    unit_counts = counts.rename(columns={"units": "n"})
    srm = stats.srm_table(unit_counts, weights, by=["segment", "segment_value"], threshold=st.srm_threshold)
    srm_overall = srm[srm["segment"] == "all"].iloc[0]
    return Scorecard(overall=overall, segments=segments, daily=daily_card, srm=srm,
                     decision=decide(overall, srm_overall, st.alpha), control=control, treatment=treatment,
                     sufficient_stats=suff)
