"""Power planning: ``abplatform plan EXPERIMENT.yaml`` — per metric, the MDE a test of N days can detect
and the units and days it needs for the metric's configured ``mde``, plain and with CUPED.

Where the numbers come from (formulas and sources in docs/planning.md):

* **the baseline** — the experiment's data as a run gets it (``pipeline.source_dataset``: the synthetic
  world or the log at ``data.path``), reduced by the metrics engine (duckdb or Spark) to one pooled
  sample's sufficient statistics per metric (:meth:`MetricsEngine.baseline_sufficient_stats`): the
  control arm's units when the log's sessions carry arms, else every unit of the log (the world's
  logged sessions, a log of traffic before a test). Value, per-unit σ² (delta method for ratios) and,
  with ``statistics.cuped`` and pre-period data, ρ² with the pre-period covariate are
  :func:`stats.power.baseline_variance`'s: the same sums and the same CUPED a run uses.
* **the units** — the pre-period's accrual curve (cumulative distinct units by day,
  :meth:`MetricsEngine.new_unit_curve`) fitted as U(d) = a·d^b (:func:`stats.power.fit_accrual`);
  after N days a test has U(N) units, split by the arms' weights. The fit is checked out of sample on
  the experiment window of the data (predicted against observed distinct units at its length).
* **the statistics** — :func:`stats.power.plan` (two-sided z approximation).

Nothing is written under ``results/``. No pre-period data (nothing to fit the accrual on) is an
:class:`EvaluationError` (exit 3).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from abplatform.config import Experiment, load_experiment
from abplatform.errors import EvaluationError
from abplatform.formats import fmt_value
from abplatform.metrics.backends import make_metrics_engine
from abplatform.pipeline import source_dataset
from abplatform.profile import experiment_profile
from abplatform.scorecard import experiment_metrics, metric_specs
from abplatform.stats.power import MIN_FIT_DAYS, Accrual, fit_accrual, plan
from abplatform.validate import validate_dataset

Progress = Callable[..., None]

#: Extrapolating the accrual fit further than this multiple of its window is flagged in the notes.
EXTRAPOLATION_WARNING = 3.0
#: An out-of-sample miss of the accrual fit larger than this (relative) is flagged in the notes.
CHECK_WARNING = 0.1


def _noop(*_: object) -> None:
    pass


def _num(v: Any) -> float | None:
    """A finite float, or None (JSON has no NaN or infinity)."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


@dataclass
class AccrualCheck:
    """The pre-period's fit, out of sample: predicted and observed distinct units over the experiment window."""

    days: int
    predicted_units: float | None
    observed_units: int
    linear_units: float | None  # the pre-period's units per day × days, for comparison
    rel_error: float | None  # predicted / observed − 1


@dataclass
class AccrualFit:
    model: str  # power | linear
    formula: str
    a: float
    b: float
    period: str  # the window the curve comes from
    first_day: str
    last_day: str
    days: int
    observed: list[float]
    fitted: list[float]
    rmse_units: float | None
    max_rel_residual: float | None
    note: str
    check: AccrualCheck | None


@dataclass
class Baseline:
    sample: str
    arm: str | None
    first_day: str
    last_day: str
    days: int
    units: int


@dataclass
class Units:
    days: float
    total: float
    control: float
    treatment: float
    linear_total: float  # what a linear extrapolation of the pre-period's units per day would claim


@dataclass
class MetricPlan:
    metric: str
    type: str
    role: str
    baseline_value: float | None
    sigma2: float | None
    baseline_units: int
    mde_abs: float | None  # at ``days``
    mde_rel: float | None
    rho2: float | None = None  # CUPED: measured on the baseline against the pre-period (None without CUPED)
    variance_factor: float | None = None  # 1 − ρ²
    sigma2_cuped: float | None = None
    mde_abs_cuped: float | None = None
    mde_rel_cuped: float | None = None
    planned_mde: float | None = None  # metrics[].mde (relative)
    units_needed: float | None = None  # both arms, to detect planned_mde
    days_needed: float | None = None
    units_needed_cuped: float | None = None
    days_needed_cuped: float | None = None


@dataclass
class PowerPlan:
    experiment: str
    config_path: str
    source: str
    engine: str
    alpha: float
    power: float
    days: float
    control: str
    treatment: str
    treatment_share: float
    cuped: bool
    baseline: Baseline
    accrual: AccrualFit
    units: Units
    metrics: list[MetricPlan]
    notes: list[str] = field(default_factory=list)
    test: str = "two-sided z (normal approximation), per-unit variance from the baseline"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _accrual_fit(acc: Accrual, curve: pd.DataFrame, exp_curve: pd.DataFrame) -> AccrualFit:
    check = None
    if len(exp_curve):
        days = len(exp_curve)
        observed = int(exp_curve["units"].iloc[-1])
        predicted = float(acc.units(days))
        linear = float(acc.observed[-1] / acc.days_observed * days)
        check = AccrualCheck(days=days, predicted_units=_num(predicted), observed_units=observed,
                             linear_units=_num(linear), rel_error=_num(predicted / observed - 1) if observed else None)
    formula = "U(d) = a·d^b" if acc.model == "power" else "U(d) = U(D)·d/D"
    return AccrualFit(model=acc.model, formula=formula, a=acc.a, b=acc.b, period="pre-period",
                      first_day=str(curve["day"].iloc[0]), last_day=str(curve["day"].iloc[-1]),
                      days=acc.days_observed, observed=list(acc.observed), fitted=[float(v) for v in acc.fitted],
                      rmse_units=_num(acc.rmse), max_rel_residual=_num(acc.max_rel_residual), note=acc.note,
                      check=check)


def comparison_alpha(exp: Experiment) -> float:
    """The level one comparison is planned at: alpha, or — an A/B/n test with a correction — alpha over
    the number of comparisons (Bonferroni: Holm's first step, so a plan that holds for it holds for Holm)."""
    alpha = exp.statistics.alpha
    pairs = len(exp.comparison_pairs)
    return alpha / pairs if pairs > 1 and exp.correction != "none" else alpha


def _metric_plans(exp: Experiment, suff: pd.DataFrame, acc: Accrual, days: float, power: float, share: float,
                  cuped: bool, traffic: float) -> list[MetricPlan]:
    metrics = experiment_metrics(exp)
    specs = metric_specs(metrics)
    kw: dict[str, Any] = {"alpha": comparison_alpha(exp), "power": power, "treatment_share": share,
                          "traffic_share": traffic}
    plain = plan(suff, specs, acc, days=days, **kw).set_index("metric")
    adjusted = plan(suff, specs, acc, days=days, cuped=True, **kw).set_index("metric") if cuped else None
    planned = {m.name: m.mde for m in exp.metrics}
    out = []
    for m in metrics:
        if m.name not in plain.index:
            continue
        p = plain.loc[m.name]
        row = MetricPlan(metric=m.name, type=m.type, role=m.role, baseline_value=_num(p["value"]),
                         sigma2=_num(p["sigma2"]), baseline_units=int(_num(p["n"]) or 0), mde_abs=_num(p["mde_abs"]),
                         mde_rel=_num(p["mde_rel"]), planned_mde=planned.get(m.name))
        if adjusted is not None:
            c = adjusted.loc[m.name]
            row.rho2, row.variance_factor = _num(c["rho2"]), _num(1 - c["rho2"])
            row.sigma2_cuped, row.mde_abs_cuped, row.mde_rel_cuped = (_num(c["sigma2"]), _num(c["mde_abs"]),
                                                                      _num(c["mde_rel"]))
        if row.planned_mde is not None:
            one = {m.name: specs[m.name]}
            need = plan(suff, one, acc, relative_mde=row.planned_mde, **kw).iloc[0]
            row.units_needed, row.days_needed = _num(need["n_total"]), _num(need["days"])
            if adjusted is not None:
                need = plan(suff, one, acc, relative_mde=row.planned_mde, cuped=True, **kw).iloc[0]
                row.units_needed_cuped, row.days_needed_cuped = _num(need["n_total"]), _num(need["days"])
        out.append(row)
    return out


def plan_experiment(config_path: str | Path, days: int | None = None, power: float = 0.8,
                    say: Progress = _noop) -> PowerPlan:
    """The power plan of an experiment file (see the module docstring)."""
    config_path = Path(config_path)
    exp, _ = load_experiment(config_path)
    dataset = source_dataset(exp, config_path, say)
    # a log to plan on need not carry arms yet
    profile = {k: why for k, why in experiment_profile(exp).items() if k != ("sessions", "arm")}
    validate_dataset(dataset, max_position=exp.data.slots or exp.simulation.page_size,
                     arms=tuple(a.name for a in exp.arms), profile=profile, sparse=exp.data.positions == "sparse",
                     unit=exp.randomisation.unit)
    metrics = experiment_metrics(exp)
    control = exp.comparison_pairs[0][1]
    say(f"Computing the baseline's sufficient statistics and the accrual curve ({exp.data.engine})")
    engine = make_metrics_engine(dataset, exp.data.engine, exp.data.spark, metrics,
                                 pre_period_days=exp.statistics.pre_period_days, unit=exp.randomisation.unit)
    try:
        curve = engine.new_unit_curve("pre")
        if curve.empty:
            raise EvaluationError(f"{dataset.path}: no pre-period sessions (pre_sessions): the accrual curve of "
                                  "distinct units by day is fitted on the pre-period")
        arms = engine.logged_arms()
        if arms and control not in arms:
            raise EvaluationError(f"{dataset.path}: no sessions for the control arm {control!r} "
                                  f"(arms in the log: {', '.join(arms)})")
        arm = control if arms else None
        suff = engine.baseline_sufficient_stats(metrics, arm)
        exp_curve = engine.new_unit_curve("experiment")
    finally:
        engine.close()
    n = int(suff["n"].iloc[0]) if len(suff) else 0
    if n == 0 or exp_curve.empty:
        raise EvaluationError(f"{dataset.path}: no experiment-period sessions to take the baseline from")
    acc = fit_accrual(curve["units"].to_numpy(dtype=float))
    baseline = Baseline(sample=f"the units of the control arm {control!r}" if arm else
                        "every unit (the log's sessions carry no arm)", arm=arm,
                        first_day=str(exp_curve["day"].iloc[0]), last_day=str(exp_curve["day"].iloc[-1]),
                        days=len(exp_curve), units=n)
    n_days = float(days if days is not None else baseline.days)
    # the headline comparison: its two arms' share of the units, and the treatment's share of those
    weights = exp.weights
    treatment, control = exp.comparison_pairs[0]
    traffic = (weights[treatment] + weights[control]) / sum(weights.values())
    share = weights[treatment] / (weights[treatment] + weights[control])
    cuped = bool(exp.statistics.cuped and suff["sum_xp"].notna().any())
    total = float(acc.units(n_days))
    units = Units(days=n_days, total=total, control=total * traffic * (1 - share),
                  treatment=total * traffic * share, linear_total=acc.observed[-1] / acc.days_observed * n_days)
    result = PowerPlan(
        experiment=exp.name, config_path=str(config_path), source=str(dataset.path), engine=exp.data.engine,
        alpha=comparison_alpha(exp), power=power, days=n_days, control=control, treatment=treatment,
        treatment_share=share, cuped=cuped, baseline=baseline, accrual=_accrual_fit(acc, curve, exp_curve),
        units=units, metrics=_metric_plans(exp, suff, acc, n_days, power, share, cuped, traffic))
    result.notes = _notes(result, exp, acc)
    return result


def _notes(p: PowerPlan, exp: Experiment, acc: Accrual) -> list[str]:
    notes = []
    if acc.note:
        notes.append(f"accrual: {acc.note}")
    reach = max([p.days, *[d for m in p.metrics for d in (m.days_needed, m.days_needed_cuped) if d is not None]])
    if reach > EXTRAPOLATION_WARNING * acc.days_observed:
        notes.append(f"accrual: {reach:g} days extrapolates the fit to {reach / acc.days_observed:.1f}× its "
                     f"{acc.days_observed}-day window; a power law still overstates distinct units once traffic "
                     "saturates, so read long durations as lower bounds")
    check = p.accrual.check
    if check is not None and check.rel_error is not None and abs(check.rel_error) > CHECK_WARNING:
        notes.append(f"accrual: the pre-period's fit misses the experiment window's distinct units by "
                     f"{check.rel_error:+.0%} ({check.days} days): its traffic differs from the pre-period's (new "
                     "units, seasonality, a different population); read the units and durations with care")
    st = exp.statistics
    pairs = len(exp.comparison_pairs)
    if pairs > 1:
        notes.append(f"{len(exp.arms)} arms, {pairs} comparisons: the plan is the headline comparison's "
                     f"({p.treatment} vs {p.control}), on its two arms' units, at alpha {st.alpha:g}/{pairs} = "
                     f"{p.alpha:.4g} when a correction spans the comparisons ({exp.correction}: Holm's first step "
                     "is Bonferroni's, so the plan holds for every step)")
    if st.correction != "none":
        notes.append(f"statistics.correction is {st.correction}: the plan uses the per-metric alpha {p.alpha:.4g}; "
                     f"with k metrics corrected together the first is tested at alpha/k (holm) or alpha·i/k (bh)")
    if st.sequential is not None:
        notes.append(f"statistics.sequential ({st.sequential.method}): these are fixed-horizon MDEs; always-valid "
                     "or group-sequential looks make them larger")
    if exp.statistics.cuped and not p.cuped:
        notes.append("statistics.cuped is on, but the baseline has no pre-period covariates: plain numbers only")
    for m in p.metrics:
        for label, d in (("", m.days_needed), (" with CUPED", m.days_needed_cuped)):
            if m.planned_mde is not None and d is None:
                notes.append(f"{m.metric}: its mde {m.planned_mde:g}{label} is out of reach (no finite duration)")
    notes.append("σ² per unit is the baseline window's; it is taken as the same for a test of another length")
    return notes


# ---------------------------------------------------------------------------------------------
# Rendering


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2%}"


def _count(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


def print_plan(p: PowerPlan, console: Any) -> None:
    """The plan as a table (rich) with the baseline, accrual and units lines above it."""
    from rich.table import Table

    b, a, u = p.baseline, p.accrual, p.units
    say = console.print
    say(f"[bold]Power plan: {p.experiment}[/bold] — alpha {p.alpha:g}, power {p.power:.0%}, two-sided; "
        f"{p.days:g} days; treatment share {p.treatment_share:.0%}", highlight=False)
    say(f"Baseline: {b.sample} of {p.source}, {b.days} days ({b.first_day} – {b.last_day}), {b.units:,} units",
        markup=False, highlight=False)
    if a.model == "power":
        fit = f"U(d) = {a.a:,.1f}·d^{a.b:.3f}"
    else:
        fit = f"U(d) = {a.a:,.1f}·d (linear fallback: fewer than {MIN_FIT_DAYS} days)"
    say(f"Accrual ({a.period}, {a.days} days {a.first_day} – {a.last_day}): {fit}; least-squares residual "
        f"RMSE {fmt_value(a.rmse_units)} units, at most {_pct(a.max_rel_residual)} of the curve",
        markup=False, highlight=False)
    if a.check is not None:
        c = a.check
        say(f"  check on the experiment window: predicts {_count(c.predicted_units)} distinct units in {c.days} days, "
            f"observed {c.observed_units:,} ({'n/a' if c.rel_error is None else f'{c.rel_error:+.1%}'}); "
            f"linear extrapolation {_count(c.linear_units)}", markup=False, highlight=False)
    say(f"Units after {u.days:g} days: {_count(u.total)} ({p.control} {_count(u.control)}, {p.treatment} "
        f"{_count(u.treatment)}); linear extrapolation would claim {_count(u.linear_total)}",
        markup=False, highlight=False)
    t = Table(title=f"Minimum detectable effect after {p.days:g} days (relative, {p.power:.0%} power)")
    heads = ["metric", "role", "baseline", "σ²/unit", "MDE"]
    if p.cuped:
        heads += ["1 − ρ²", "MDE (CUPED)"]
    planned = any(m.planned_mde is not None for m in p.metrics)
    if planned:
        heads += ["planned mde", "units needed", "days"]
        if p.cuped:
            heads += ["units (CUPED)", "days (CUPED)"]
    for h in heads:
        t.add_column(h, justify="left" if h in ("metric", "role") else "right")
    for m in p.metrics:
        cells = [m.metric, m.role, fmt_value(m.baseline_value), fmt_value(m.sigma2), _pct(m.mde_rel)]
        if p.cuped:
            cells += [fmt_value(m.variance_factor), _pct(m.mde_rel_cuped)]
        if planned:
            need = [_count(m.units_needed), _count(m.days_needed)]
            if p.cuped:
                need += [_count(m.units_needed_cuped), _count(m.days_needed_cuped)]
            cells += [_pct(m.planned_mde), *need] if m.planned_mde is not None else ["—"] * (1 + len(need))
        t.add_row(*cells)
    console.print(t)
    for note in p.notes:
        say(f"  - {note}", markup=False, highlight=False)


def plan_json(p: PowerPlan) -> str:
    import json

    return json.dumps(p.to_dict(), indent=2, allow_nan=False)


__all__ = ["PowerPlan", "plan_experiment", "plan_json", "print_plan"]
