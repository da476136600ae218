"""The typed report: everything a run decides and measures.

``report.json`` is :meth:`Report.to_json` and is read back with :meth:`Report.from_json`; the
Markdown report, the console table, JUnit XML, the CI step summary, the gate and the dashboard
are renderings of a :class:`Report`. Pure Python (dataclasses, json), so reading a finished run
imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union

from abplatform.report.interleaving import InterleavingResult
from abplatform.report.offline_policy import OfflinePolicyEvaluation

T = TypeVar("T")


class ReportFormatError(ValueError):
    """A report.json that is not a report this version can read (a field missing or of the wrong kind)."""


@dataclass(kw_only=True)
class MetricResult:
    """One metric's comparison of treatment with control: values, effects with CIs, test and verdict.

    One test per row (``abplatform.stats.compare``): H0 effect = ``null_effect`` against
    ``alternative``, on the ``test_scale`` — ``relative`` (the rel CI is the set of nulls the test
    does not reject) or ``absolute`` (the relative effect is not estimable; the abs CI is the
    test's). ``p_value`` and the CIs of that scale are the test's; ``*_adjusted`` are the same test
    multiplicity-adjusted (p-value and CIs at the adjusted level ``alpha_adjusted``), and the
    verdict columns (significant, improved, degraded, breached) read the adjusted p-value.
    ``abs_p_value`` is the absolute difference's own test (null 0), which the abs CI inverts.
    ``test``: ``welch`` or a proportion test (``abplatform.stats.proportion_tests``); Fisher's exact
    test is on the ``odds_ratio`` scale (``or_*``: the conditional-MLE odds ratio treatment/control
    and its exact interval; ``null_effect`` 1).
    """

    metric: str
    role: str
    type: str
    direction: str
    alternative: Literal["two-sided", "greater", "less"] = "two-sided"
    test: str = "welch"
    test_scale: Literal["relative", "absolute", "odds_ratio"] = "relative"
    null_effect: float = 0.0
    n_control: int | None = None
    n_treatment: int | None = None
    control_value: float | None = None
    treatment_value: float | None = None
    abs_effect: float | None = None
    abs_se: float | None = None  # the standard error of abs_effect (what segment heterogeneity weighs cells by)
    abs_ci_low: float | None = None
    abs_ci_high: float | None = None
    abs_p_value: float | None = None
    rel_effect: float | None = None
    rel_ci_low: float | None = None
    rel_ci_high: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    alpha_adjusted: float | None = None
    abs_ci_low_adjusted: float | None = None
    abs_ci_high_adjusted: float | None = None
    rel_ci_low_adjusted: float | None = None
    rel_ci_high_adjusted: float | None = None
    or_effect: float | None = None
    or_ci_low: float | None = None
    or_ci_high: float | None = None
    or_ci_low_adjusted: float | None = None
    or_ci_high_adjusted: float | None = None
    variance_reduction: float | None = None
    significant: bool = False
    improved: bool = False
    degraded: bool = False
    margin: float | None = None
    breached: bool = False
    mde_rel: float | None = None
    planned_mde: float | None = None
    underpowered: bool = False

    def interval(self, adjusted: bool = False) -> tuple[float | None, float | None]:
        """The interval of the row's test (its scale; at the adjusted level with ``adjusted``)."""
        scale = {"relative": "rel", "absolute": "abs", "odds_ratio": "or"}[self.test_scale]
        suffix = "_adjusted" if adjusted else ""
        return getattr(self, f"{scale}_ci_low{suffix}"), getattr(self, f"{scale}_ci_high{suffix}")

    def hypothesis(self) -> str:
        """H1 of the row's test in words, e.g. "≠ 0", "> 0", "< −1.00% (harm)", "OR ≠ 1"."""
        sign = {"two-sided": "≠", "greater": ">", "less": "<"}[self.alternative]
        if self.test_scale == "odds_ratio":
            return f"OR {sign} {self.null_effect:g}"
        null = f"{self.null_effect:+.2%}" if self.null_effect else "0"
        what = "" if self.test_scale == "relative" else " (absolute)"
        return f"{sign} {null}{what}"


@dataclass(kw_only=True)
class SegmentResult(MetricResult):
    segment: str
    segment_value: str


@dataclass(kw_only=True)
class DailyResult(MetricResult):
    day: str


@dataclass(kw_only=True)
class SegmentHeterogeneity:
    """Does the treatment effect on ``metric`` differ across the values of ``segment``? Cochran's Q of the
    segment rows' absolute effects (``abplatform.stats.heterogeneity``): ``q`` on ``df`` = cells − 1
    degrees of freedom, ``p_value`` from χ², ``p_value_adjusted`` Holm-adjusted across the metrics of this
    comparison × segment, ``differs`` when that is below the report's alpha. ``cells``: the values in the
    test; ``cells_not_estimable``: values left out (standard error 0 or missing). With fewer than two
    cells there is no test (q and the p-values None). ``values_per_unit``: units counted in the
    segment's values over the units overall — 1 when the values are disjoint sets of units; above 1 a
    unit's sessions fall in several values, the cells are correlated and the test conservative."""

    treatment: str
    control: str
    metric: str
    segment: str
    q: float | None
    df: int
    p_value: float | None
    p_value_adjusted: float | None
    differs: bool = False
    cells: int
    cells_not_estimable: int = 0
    values_per_unit: float | None = None

    @property
    def comparison(self) -> str:
        return f"{self.treatment} vs {self.control}"


@dataclass(kw_only=True)
class DailySegmentSeries:
    """One segment value's cumulative daily looks of one metric: element i of each list is the look at
    ``days[i]`` (all data of that value up to and including the day), tested as the overall daily table
    is, without correction: ``sequential`` names the sequential method of the intervals and p-values
    (``confidence_sequence``), None when they are fixed-horizon — always under ``obrien_fleming``, whose
    boundaries are computed for the overall looks only. Columnar, with the relative lift and its
    interval only, to keep report.json small; every column of every look is in the run folder's
    ``daily_segments.parquet``. The last look is the segment table's row."""

    metric: str
    segment: str
    segment_value: str
    sequential: str | None = None
    days: list[str]
    n_control: list[int | None]
    n_treatment: list[int | None]
    control_value: list[float | None]
    treatment_value: list[float | None]
    rel_effect: list[float | None]
    rel_ci_low: list[float | None]
    rel_ci_high: list[float | None]
    p_value: list[float | None]

    def looks(self) -> list[dict[str, Any]]:
        """One dict per look (``day``, ``metric`` and the columns above), as a daily table's rows."""
        columns = ("n_control", "n_treatment", "control_value", "treatment_value", "rel_effect", "rel_ci_low",
                   "rel_ci_high", "p_value")
        return [{"day": d, "metric": self.metric, "segment": self.segment, "segment_value": self.segment_value,
                 **{c: getattr(self, c)[i] for c in columns}} for i, d in enumerate(self.days)]


@dataclass(kw_only=True)
class SrmCheck:
    """Sample-ratio check of units per arm against the configured split: ``test`` "chi-square"
    (goodness of fit) or "binomial" (exact, two arms with a small expected count; ``stats.srm``)."""

    p_value: float | None
    chi2: float | None
    failed: bool
    units: dict[str, int]
    test: str = "chi-square"


@dataclass(kw_only=True)
class SegmentSrm(SrmCheck):
    segment: str
    segment_value: str


@dataclass(kw_only=True)
class DailySrm(SrmCheck):
    """The sample-ratio test of one day's new units (``units``: per arm, the units first counted that
    day; ``abplatform.stats.balance.daily_srm_table``). ``p_value_adjusted``: Holm across the run's days;
    ``failed`` when that is below ``threshold`` (the run's sample-ratio threshold)."""

    day: str
    p_value_adjusted: float | None = None
    threshold: float = 0.001


@dataclass(kw_only=True)
class PrePeriodBalance:
    """The pre-period A/A check of one comparison × metric (``abplatform.stats.balance.balance_table``):
    the arms' pre-period values (``*_pre_value``: per-unit mean, or Σxp/Σyp for a ratio), Welch's t on the
    pre-period per-unit values (delta method for ratios) with ``df``, its two-sided ``p_value``,
    ``p_value_adjusted`` Holm across the metrics of the comparison, ``failed`` when that is below
    ``threshold`` (the sample-ratio threshold: an imbalance that strong is a bug, not chance)."""

    treatment: str
    control: str
    metric: str
    type: str = "mean"
    n_control: int | None = None
    n_treatment: int | None = None
    control_pre_value: float | None = None
    treatment_pre_value: float | None = None
    diff: float | None = None
    rel_diff: float | None = None
    se: float | None = None
    df: float | None = None
    t: float | None = None
    p_value: float | None = None
    p_value_adjusted: float | None = None
    failed: bool = False
    threshold: float = 0.001

    @property
    def comparison(self) -> str:
        return f"{self.treatment} vs {self.control}"


@dataclass(kw_only=True)
class LatencyGuardrail:
    """Serving cost: the treatment ranker's CPU time per query against the control's.

    ``ratio`` is the geometric mean of treatment/control CPU time over paired repetitions (the same
    query batch scored by both, back to back), ``ratio_ci_low``/``ratio_ci_high`` its CI at the
    report's level. ``status``: ``breached`` when the whole CI lies above 1 + margin, ``ok`` when it
    lies below, ``inconclusive`` when it straddles it, ``not_evaluated`` (with ``reason``) when nothing
    was measured (no margin, an online run, precomputed rankings). ``breached`` is ``status ==
    "breached"``, kept for readers of older reports. A report written before the status existed (a
    one-sided Welch test on the replay's wall-clock batch times, fields ``control_ms``,
    ``treatment_ms``, ``p_value``, ``batches``, now ignored) reads as ``breached`` or ``ok``, as that
    test decided."""

    status: Literal["ok", "inconclusive", "breached", "not_evaluated"] | None = None  # None: set from breached
    reason: str = ""  # why not evaluated
    margin: float | None = None
    ratio: float | None = None
    ratio_ci_low: float | None = None
    ratio_ci_high: float | None = None
    cpu_ms_per_query: dict[str, float] = field(default_factory=dict)  # per arm: mean CPU ms per query
    repetitions: int = 0  # paired repetitions timed
    batch_size: int = 0  # queries per timed batch
    timer: str = ""  # the CPU clock (time.process_time)
    breached: bool = False

    def __post_init__(self) -> None:
        if self.status is None:  # a report written before the status existed
            self.status = "breached" if self.breached else "ok"
        self.breached = self.status == "breached"


@dataclass(kw_only=True)
class Check:
    """One condition of the decision rule, as the gate's JUnit shows it (one test case each)."""

    name: str
    kind: Literal["primary", "secondary", "guardrail", "srm", "latency", "config", "choice"]
    passed: bool
    blocking: bool  # a failed blocking check holds the ranker
    reason: str = ""  # why it failed, in the words the report prints
    comparison: str = ""  # A/B/n: the comparison ("v2 vs v1") the check belongs to


@dataclass(kw_only=True)
class Decision:
    """The decision, its reasons (why hold) and every check behind it; ``arm`` is the arm to promote
    (None on hold); ``explanation`` says in one line why that arm (A/B/n)."""

    decision: Literal["promote", "hold"]
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    arm: str | None = None
    explanation: str = ""

    @property
    def promote(self) -> bool:
        return self.decision == "promote"


@dataclass(kw_only=True)
class DataFingerprint:
    path: str
    rows: dict[str, int]
    files: int
    hash: str
    first_session: str
    last_session: str


@dataclass(kw_only=True)
class LongTail:
    per_arm: dict[str, dict[str, float | None]]
    metrics: list[MetricResult]


@dataclass(kw_only=True)
class Comparison:
    """One comparison of an A/B/n experiment — ``treatment`` against ``control`` — with its rows and its
    own decision (does this treatment beat this control?). A two-arm report keeps its one comparison
    in the report's own fields (:meth:`Report.comparison_list`)."""

    treatment: str
    control: str
    decision: Decision
    metrics: list[MetricResult]
    segments: list[SegmentResult] = field(default_factory=list)
    daily: list[DailyResult] = field(default_factory=list)
    latency_guardrail: LatencyGuardrail | None = None
    long_tail: LongTail | None = None
    heterogeneity: list[SegmentHeterogeneity] = field(default_factory=list)
    daily_segments: list[DailySegmentSeries] = field(default_factory=list)
    balance: list[PrePeriodBalance] = field(default_factory=list)  # empty: no pre-period (or an older report)

    @property
    def name(self) -> str:
        return f"{self.treatment} vs {self.control}"

    def metric(self, name: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(kw_only=True)
class OfflineVsOnline:
    metric: str
    predicted_rel_effect: float | None
    predicted_rel_ci_low: float | None
    predicted_rel_ci_high: float | None
    observed_rel_effect: float | None
    observed_rel_ci_low: float | None
    observed_rel_ci_high: float | None
    prediction_inside_observed_ci: bool
    offline_run_id: str
    online_run_id: str
    offline_experiment: str
    online_experiment: str
    comparison: str = ""  # A/B/n: the comparison both runs made ("v2 vs v1")


@dataclass(kw_only=True)
class Analysis:
    """How the scorecard was tested: what the labels of every rendering say."""

    relative_ci: str = "fieller"
    correction: str = "none"
    correction_scope: str = "primary"
    guardrail_test: str = "harm"
    sequential: str | None = None  # the sequential method the overall scorecard and the gate use
    unit: str = "user"  # the randomisation unit: what n counts and the tests treat as independent

    @property
    def units_label(self) -> str:
        """The unit in the plural, for "sessions per arm" (a column name stays as it is)."""
        return {"user": "users", "session": "sessions", "request": "requests",
                "impression": "impressions"}.get(self.unit, f"units ({self.unit})")


@dataclass(kw_only=True)
class Report:
    experiment: str
    run_id: str
    created: str
    mode: Literal["offline", "online"]
    config_path: str
    config_sha256: str
    abplatform_version: str
    code_version: str
    python: str
    seed: int
    alpha: float
    source: DataFingerprint
    event_log: str
    control: str
    treatment: str
    decision: Decision
    srm: SrmCheck
    metrics: list[MetricResult]
    segments: list[SegmentResult] = field(default_factory=list)
    srm_by_segment: list[SegmentSrm] = field(default_factory=list)
    daily: list[DailyResult] = field(default_factory=list)
    latency_ms_per_query: dict[str, float] = field(default_factory=dict)
    latency_guardrail: LatencyGuardrail | None = None
    long_tail: LongTail | None = None
    offline_vs_online: list[OfflineVsOnline] = field(default_factory=list)
    analysis: Analysis = field(default_factory=Analysis)
    offline_policy: OfflinePolicyEvaluation | None = None
    interleaving: InterleavingResult | None = None
    # A/B/n (more than two arms): every arm, the experiment's control, and every comparison; the
    # fields above (control, treatment, metrics, ...) are then the first, headline, comparison's
    arms: list[str] = field(default_factory=list)
    control_arm: str = ""
    comparisons: list[Comparison] = field(default_factory=list)
    # the headline comparison's heterogeneity across segment values, and its segment values' daily looks
    heterogeneity: list[SegmentHeterogeneity] = field(default_factory=list)
    daily_segments: list[DailySegmentSeries] = field(default_factory=list)
    # health: the headline comparison's pre-period balance (each comparison's in ``comparisons``), and the
    # sample ratio of each day's new units over every arm; empty in an older report or without the data
    balance: list[PrePeriodBalance] = field(default_factory=list)
    srm_by_day: list[DailySrm] = field(default_factory=list)

    @property
    def arm_names(self) -> list[str]:
        return self.arms or [self.control, self.treatment]

    @property
    def baseline(self) -> str:
        """The experiment's control arm (the headline comparison's control in a two-arm report)."""
        return self.control_arm or self.control

    def comparison_list(self) -> list[Comparison]:
        """Every comparison: the A/B/n list, or the two-arm report's one comparison."""
        if self.comparisons:
            return self.comparisons
        return [Comparison(treatment=self.treatment, control=self.control, decision=self.decision,
                           metrics=self.metrics, segments=self.segments, daily=self.daily,
                           latency_guardrail=self.latency_guardrail, long_tail=self.long_tail,
                           heterogeneity=self.heterogeneity, daily_segments=self.daily_segments,
                           balance=self.balance)]

    @property
    def confidence_label(self) -> str:
        """"95% CI" for alpha 0.05, "90% CI" for 0.1: the level every interval in the report is at."""
        return f"{100 * (1 - self.alpha):g}% CI"

    def metric(self, name: str) -> MetricResult | None:
        return next((m for m in self.metrics if m.metric == name), None)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        return _build(cls, data, "report")

    @classmethod
    def from_json(cls, text: str) -> Report:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ReportFormatError(f"not JSON ({e})") from None
        return cls.from_dict(data)


def finite_or_none(v: Any) -> Any:
    """JSON has no NaN: a missing or non-finite number is None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


_FIELD_TYPES: dict[type, tuple[tuple[str, Any, bool], ...]] = {}


def _field_types(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name, type, required) per field of a report dataclass, resolved once per class (resolving the
    annotations is most of the cost of reading a report)."""
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = tuple(
            (f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(cls))
    return _FIELD_TYPES[cls]


def _build(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ReportFormatError(f"{where}: expected an object, got {type(data).__name__}")
    kwargs = {}
    for name, tp, required in _field_types(cls):
        if name in data:
            kwargs[name] = _convert(tp, data[name], f"{where}.{name}")
        elif required:
            raise ReportFormatError(f"{where}: missing field {name!r}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` as the report field type ``tp`` says, or a ReportFormatError naming the field."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)][:1]
        return _convert(inner, value, where)
    if value is None:
        if tp in (float, Any):
            return None
        raise ReportFormatError(f"{where}: missing value")
    if origin is list:
        if not isinstance(value, list):
            raise ReportFormatError(f"{where}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ReportFormatError(f"{where}: expected an object, got {type(value).__name__}")
        _, item = typing.get_args(tp)
        return {k: _convert(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)  # type: ignore[arg-type]
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ReportFormatError(f"{where}: expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReportFormatError(f"{where}: expected a number, got {type(value).__name__}")
        return float(value)
    # bool is an int to Python, not to a report
    if tp in (int, str, bool) and (not isinstance(value, tp) or (tp is int and isinstance(value, bool))):
        raise ReportFormatError(f"{where}: expected {tp.__name__}, got {type(value).__name__}")
    return value
