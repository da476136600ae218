"""The experiment file (``experiments/*.yaml``): a pydantic v2 schema with defaults for everything
but the name and the arms, so a ten-line file is a complete experiment.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from abplatform.contract import TABLES
from abplatform.errors import InputError
from abplatform.expressions import check_constant, check_expression, check_mapping_expression
from abplatform.files import read_input
from abplatform.metrics import BUILTIN_METRICS
from abplatform.store import INDEX
from abplatform.vocabulary import (
    BUILTIN_RANKER_NAMES,
    SEGMENT_COLUMNS,
    WORLD_PRESET_NAMES,
    Aggregation,
    Alternative,
    ClickModelName,
    Correction,
    CorrectionScope,
    CreditRule,
    Direction,
    Engine,
    GuardrailTest,
    MetricType,
    Mode,
    OpeEstimator,
    RelativeCI,
    Role,
    SequentialMethod,
    SimulatedUsers,
    WorldBehaviour,
    did_you_mean,
)

#: Experiment names the results store uses itself (compared case-insensitively: some file systems are);
#: names starting with '.' (its temporary and lock files) are refused too.
RESERVED_NAMES = frozenset({INDEX})
#: An experiment name is a folder name: most file systems take 255 bytes, the store adds nothing to it.
MAX_NAME_LENGTH = 200
#: Seeds go to numpy and into cache keys: non-negative 64-bit integers.
MAX_SEED = 2**63 - 1
MAX_ARMS = 26
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class _Model(BaseModel):
    # every float setting is finite: .nan / .inf pass a bound like gt=0 and fail much later, in SQL
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WorldSource(_Model):
    """The built-in synthetic search world (generated once per parameter set, then cached)."""

    users: Annotated[int, Field(gt=0, le=10_000_000)] = 50_000
    days: Annotated[int, Field(gt=0, le=366)] = 14
    pre_days: Annotated[int, Field(ge=0, le=366)] = 7
    items: Annotated[int, Field(ge=1000, le=10_000_000)] = 20_000
    seed: Seed = 7
    behaviour: WorldBehaviour = "pbm"
    preset: str | None = Field(None, description="A named world calibration (abplatform/world/presets.py: "
                                                 + ", ".join(WORLD_PRESET_NAMES) + "); default classic. The size, "
                                                 "seed and behaviour above apply on top of it.")

    @field_validator("preset")
    @classmethod
    def _preset_name(cls, v: str | None) -> str | None:
        if v is None or v in WORLD_PRESET_NAMES:
            return v
        raise ValueError(f"unknown world preset {v!r}" + did_you_mean(v, WORLD_PRESET_NAMES)
                         + f"; expected one of {', '.join(WORLD_PRESET_NAMES)}")


class SparkSettings(_Model):
    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)


class MappedConstant(_Model):
    """A contract column that the log does not carry, set to one value for every row."""

    constant: str | int | float | bool


class MappedExpression(_Model):
    """A contract column computed from the source columns: an expression checked like filters
    (columns, literals, arithmetic, comparisons, CASE, casts and the functions of
    :data:`abplatform.expressions.MAPPING_FUNCTIONS`; no sub-queries)."""

    expression: str

    @field_validator("expression")
    @classmethod
    def _safe(cls, v: str) -> str:
        check_mapping_expression(v)
        return v


def _column_source_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "column"
    if isinstance(v, dict) and len(v) == 1:
        return next(iter(v)) if next(iter(v)) in ("constant", "expression") else None
    if isinstance(v, MappedConstant):
        return "constant"
    return "expression" if isinstance(v, MappedExpression) else None


#: What a contract column is read from: a source column, a constant or an expression.
ColumnSource = Annotated[
    Annotated[str, Tag("column")] | Annotated[MappedConstant, Tag("constant")]
    | Annotated[MappedExpression, Tag("expression")],
    Discriminator(_column_source_kind, custom_error_type="column_source",
                  custom_error_message="expected a source column name, {constant: value} or {expression: SQL}"),
]
#: Per table: one file pattern (may contain ``{arm}``), or one pattern per arm (the arm is taken from the file).
TableSource = str | dict[str, str]


class DataSource(_Model):
    """Where the event log comes from: the synthetic world, or logs on disk."""

    world: WorldSource | None = None
    path: str | None = Field(None, description="A dataset folder (parquet / CSV tables) or a .duckdb file.")
    tables: dict[str, TableSource] = Field(
        default_factory=dict,
        description="Files (a glob) per contract table, relative to path. A pattern may contain {arm} (the arm "
                    "is the part of the path it matches), or give one pattern per arm: {control: 'a/*.csv', "
                    "treatment: 'b/*.csv'}. Without a sessions table, sessions are derived from the impressions.")
    mapping: dict[str, dict[str, ColumnSource]] = Field(
        default_factory=dict,
        description="Per table, contract column -> a source column, {constant: value} or {expression: SQL}.")
    positions: Literal["dense", "sparse"] = Field(
        "dense", description="dense: every page logs positions 1..k without gaps; sparse: slot-level logs that "
                             "keep some slots of a page (kept at their logged positions).")
    slots: Annotated[int, Field(ge=1, le=50)] | None = Field(
        None, description="Slots per page (the highest position a log may have); default simulation.page_size.")
    mode: Mode | None = Field(
        None, description="offline: replay the logged sessions through the arms; online: analyse the A/B "
                          "log as it is (sessions carry their arm). Default: offline for the world, online for a path.")
    engine: Engine = "duckdb"
    spark: SparkSettings | None = None
    cache_dir: str = Field("data", description="Where generated worlds and replays are cached.")

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.world is None) == (self.path is None):
            raise ValueError("give exactly one of 'world' or 'path'")
        if self.mode is None:
            object.__setattr__(self, "mode", "offline" if self.world is not None else "online")
        if self.world is not None and self.mode == "online":
            raise ValueError("the synthetic world is replayed offline (mode: offline); online analysis reads data.path")
        for table in {**self.tables, **self.mapping}:
            if table not in TABLES:
                raise ValueError(f"unknown table {table!r} (expected one of {', '.join(TABLES)})")
        for table, cols in self.mapping.items():
            known = {c.name for c in TABLES[table].columns}
            bad = sorted(set(cols) - known)
            if bad:
                raise ValueError(f"mapping.{table}: {bad[0]!r} is not a column of {table}"
                                 + did_you_mean(bad[0], known))
            for name, column_source in cols.items():
                if isinstance(column_source, MappedConstant):
                    check_constant(TABLES[table].column(name), column_source.constant, f"mapping.{table}.{name}")
        for table, source in self.tables.items():
            if isinstance(source, dict) and not source:
                raise ValueError(f"tables.{table}: give a file pattern, or one per arm")
            patterns = source.values() if isinstance(source, dict) else [source]
            for pattern in patterns:
                if "{" in pattern.replace("{arm}", "") or "}" in pattern.replace("{arm}", ""):
                    raise ValueError(f"tables.{table}: {pattern!r}: the only placeholder a pattern may have is {{arm}}")
                if isinstance(source, dict) and "{arm}" in pattern:
                    raise ValueError(f"tables.{table}: {pattern!r}: a pattern given per arm cannot also contain "
                                     "{arm}")
        return self


class Arm(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
    ranker: str | None = Field(None, description="Built-in ranker name (v1, v2, cascade), package.module:Class, "
                                                  "or rankings:FILE (a precomputed rankings parquet); needed to "
                                                  "replay offline, optional for an online log.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the ranker.")
    weight: Annotated[float, Field(gt=0)] | None = Field(None, description="Traffic share; weights sum to 1 "
                                                                           "(or 100). Default: an equal split.")

    @field_validator("ranker")
    @classmethod
    def _ranker_name(cls, v: str | None) -> str | None:
        # names are checked here; user classes are imported only when the experiment is run
        if (v is None or v in BUILTIN_RANKER_NAMES or re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v)
                or v.startswith("rankings:")):
            return v
        raise ValueError(f"unknown ranker {v!r}" + did_you_mean(v, BUILTIN_RANKER_NAMES)
                         + f"; expected one of {', '.join(BUILTIN_RANKER_NAMES)}, package.module:Class "
                         "or rankings:FILE")


class Randomisation(_Model):
    unit: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        "user", description="What was randomised, and what the analysis aggregates at: user (sessions.unit_id), "
                            "session, request (sessions.request_id), impression, or the name of another column "
                            "of the sessions table.")
    salt: str | None = Field(None, description="Hash salt; defaults to the experiment name.")


class Aggregate(_Model):
    """A per-unit aggregate over the unit's impressions: ``agg`` of ``column`` where ``filter`` holds.

    ``column`` and ``filter`` are expressions over the contract's session and impression columns
    (comparisons, arithmetic, AND / OR / NOT — no functions, no sub-queries)."""

    agg: Aggregation = "sum"
    column: str | None = None
    filter: str | None = None

    @field_validator("column", "filter")
    @classmethod
    def _safe(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            check_expression(v, str(info.field_name))  # syntax, size and types: what validates, runs
        return v

    @model_validator(mode="after")
    def _column_needed(self) -> Aggregate:
        if self.agg != "count" and self.column is None:
            raise ValueError(f"agg {self.agg!r} needs a column")
        return self


class MetricConfig(_Model):
    """A built-in metric by name, or a user-defined one (type + numerator [+ denominator])."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    type: MetricType | None = None
    numerator: Aggregate | None = None
    denominator: Aggregate | None = None
    role: Role = "secondary"
    direction: Direction | None = None
    margin: Annotated[float, Field(gt=0, lt=1)] | None = None
    mde: Annotated[float, Field(gt=0)] | None = Field(None, description="Relative minimum detectable effect.")
    cap_value: float | None = Field(None, description="Cap (winsorise) each unit's value at this (finite).")
    cap_percentile: Annotated[float, Field(gt=0, lt=1)] | None = None
    alternative: Alternative = Field(
        "two-sided", description="The test's alternative, treatment minus control: two-sided, greater (H1: "
                                 "treatment > control) or less. Guardrails take theirs from decision.guardrail_test.")
    equal_var: bool = Field(False, description="Student's pooled-variance t test instead of Welch's (mean and "
                                               "proportion metrics).")

    @model_validator(mode="after")
    def _definition(self) -> MetricConfig:
        builtin = self.name in BUILTIN_METRICS
        if builtin and (self.type or self.numerator or self.denominator):
            raise ValueError(f"{self.name!r} is a built-in metric; give a user-defined metric another name")
        if not builtin:
            if self.numerator is None:
                raise ValueError(f"unknown metric {self.name!r}" + did_you_mean(self.name, BUILTIN_METRICS)
                                 + f"; built-in metrics: {', '.join(BUILTIN_METRICS)}; "
                                 "a user-defined metric needs a type and a numerator")
            if self.type is None:
                raise ValueError(f"user-defined metric {self.name!r} needs a type (proportion, mean or ratio)")
            if (self.type == "ratio") != (self.denominator is not None):
                raise ValueError("a ratio metric needs a denominator, and only a ratio metric has one")
        if self.cap_value is not None and self.cap_percentile is not None:
            raise ValueError("give at most one of cap_value and cap_percentile")
        mtype = BUILTIN_METRICS[self.name].type if builtin else self.type
        if self.equal_var and mtype == "ratio":
            raise ValueError(f"equal_var: {self.name!r} is a ratio metric, whose variance is a delta-method "
                             "linearisation with no pooled form; equal_var is for mean and proportion metrics")
        if self.alternative != "two-sided" and self.role == "guardrail":
            raise ValueError("alternative: a guardrail's test is one-sided by decision.guardrail_test (harm or "
                             "noninferiority); give alternative only for primary and secondary metrics")
        direction = self.direction or (BUILTIN_METRICS[self.name].direction if builtin else "increase")
        against = {"increase": "less", "decrease": "greater"}[direction]
        if self.role == "primary" and self.alternative == against:
            raise ValueError(f"alternative: {against!r} tests only the worse direction of a metric whose direction is "
                             f"{direction!r}, so this primary metric could never improve and the decision would "
                             "always hold")
        return self


class Sequential(_Model):
    method: SequentialMethod = "confidence_sequence"
    tuning_n: Annotated[float, Field(gt=0)] = 5000.0
    planned_units: Annotated[float, Field(gt=0)] | None = None


class Statistics(_Model):
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    relative_ci: RelativeCI = Field(
        "fieller", description="Relative CI and test: fieller (default; its test of no effect is the absolute "
                               "difference's), log or delta.")
    cuped: bool = True
    pre_period_days: Annotated[int, Field(gt=0, le=3650)] | None = Field(
        None, description="CUPED covariates from this many days before the experiment (default: all pre-period data).")
    correction: Correction = Field(
        "none", description="Multiple-testing correction: none, holm, bh, or dunnett (the treatments against the "
                            "control, Bonferroni across metrics). With more than two arms the family spans the "
                            "comparisons too, and the default is holm.")
    correction_scope: CorrectionScope = Field(
        "primary", description="primary: the correction's family is the primary metrics (secondaries form their own, "
                               "guardrails are tested at alpha one-sided); all: one family of every metric.")
    sequential: Sequential | None = None
    srm_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.001


class Decision(_Model):
    """Promote when every primary metric improves significantly, no guardrail is breached and SRM passes."""

    guardrail_test: GuardrailTest = Field(
        "harm", description="harm: hold when a guardrail is significantly worse beyond its margin; "
                            "noninferiority: hold unless non-inferiority within the margin is shown.")
    block_on_srm: bool = True
    latency_margin: Annotated[float, Field(gt=0)] | None = Field(
        0.2, description="Offline runs: hold when the treatment ranker's CPU time per query is shown to exceed "
                         "the control's by more than this share (the whole CI of the ratio above 1 + margin; under "
                         "guardrail_test noninferiority, also when the CI straddles it). Null: not evaluated.")
    latency_repetitions: Annotated[int, Field(ge=2, le=100_000)] = Field(
        400, description="Serving-cost measurement: paired repetitions (one query batch scored by both rankers, "
                         "back to back); more narrow the CI.")
    latency_batch_size: Annotated[int, Field(ge=1, le=100_000)] = Field(
        256, description="Serving-cost measurement: queries (sessions) per timed batch; the cost per query "
                         "depends on it, so set it to how the ranker is served.")


class Simulation(_Model):
    behaviour: SimulatedUsers = Field(
        "pbm", description="Simulated users: a click model (with purchase and order models) fitted on the logged "
                           "impressions, or 'oracle', the synthetic world's true behaviour model (for checks).")
    seed: Seed = 1
    page_size: Annotated[int, Field(ge=1, le=50)] = 10
    batch_size: Annotated[int, Field(ge=1, le=10_000_000)] = 8192
    workers: Annotated[int, Field(ge=1, le=64)] = 2


class OfflinePolicy(_Model):
    """Off-policy evaluation of one arm's policy on the rows another arm logged with propensities
    (IPS, SNIPS, DR and DM per logged row, per position and per page; :mod:`abplatform.offline.ope`)."""

    target: str = Field(description="The arm whose policy is evaluated.")
    logged: str | None = Field(None, description="The arm whose logged rows (and propensities) the target is "
                                                 "evaluated on; default: every row not of the target arm.")
    policy: str | None = Field(
        None, description="The target as a stochastic policy: a CSV or parquet table (relative to this file) with "
                          "columns [context,] position, item_id, probability, summing to 1 per (context, position). "
                          "Default: the target arm's ranker (needs the candidates and items tables).")
    context: str | None = Field(None, description="The sessions column the policy table's context column refers to.")
    estimators: list[OpeEstimator] = Field(default_factory=lambda: list(get_args(OpeEstimator)))
    reward_model: ClickModelName | None = Field(
        "pbm", description="Click model fitted on the log: the baseline of DR and DM (null: IPS and SNIPS only).")
    min_ess: Annotated[float, Field(gt=0)] = Field(100.0, description="Warn below this effective sample size.")
    max_weight_share: Annotated[float, Field(gt=0, le=1)] = Field(
        0.05, description="Warn when one logged row holds more than this share of a position's weight.")


class Interleaving(_Model):
    """Team-draft interleaving of the control and the treatment (:mod:`abplatform.offline.interleaving`):
    simulated on the logged sessions in an offline run (with the measured sessions it saves against an A/B
    test), or read from an interleaved log's ``impressions.team`` column by ``abplatform evaluate``."""

    credit_rule: CreditRule = Field("wins", description="wins: +1/-1/0 per session by which team got more "
                                                        "clicks; click_difference: the normalised difference.")
    unit: Literal["session", "unit"] | None = Field(
        None, description="The observations the tests treat as independent: session, or unit (a user's "
                          "sessions summed). Default: unit when sessions carry unit ids.")


class ComparisonPair(_Model):
    """One comparison of an A/B/n experiment: ``treatment`` against ``control``, both arm names."""

    treatment: str
    control: str


class Experiment(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=MAX_NAME_LENGTH,
                               description="Names the experiment's folder of the results store: letters, "
                                           "digits, '_', '.', '-'; not a name the store uses itself.")]
    description: str = ""
    owner: str = ""
    data: DataSource = Field(default_factory=lambda: DataSource(world=WorldSource()))
    arms: Annotated[list[Arm], Field(min_length=2, max_length=MAX_ARMS)]
    control: str | None = Field(None, description="Name of the control arm; defaults to the first arm of two "
                                                  "(with more arms, name it).")
    comparisons: list[ComparisonPair] = Field(
        default_factory=list,
        description="Pairs compared besides every treatment against the control (e.g. {treatment: v2, control: "
                    "v1}); listed first, in this order, the first being the report's headline comparison.")
    randomisation: Randomisation = Field(default_factory=Randomisation)
    metrics: list[MetricConfig] = Field(
        default_factory=lambda: [MetricConfig(name="item_ctr", role="primary")]
        + [MetricConfig(name=m) for m in BUILTIN_METRICS if m != "item_ctr"]
    )
    statistics: Statistics = Field(default_factory=Statistics)
    segments: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=lambda: list(SEGMENT_COLUMNS),
        description="query_segment, query_complexity, user_type, or any other column of the sessions table.")
    decision: Decision = Field(default_factory=Decision)
    simulation: Simulation = Field(default_factory=Simulation)
    interleaving: Interleaving | None = Field(
        None, description="Also compare the two arms by team-draft interleaving (simulated offline, or from a log).")
    offline_policy: OfflinePolicy | None = Field(
        None, description="Also estimate an arm's policy off-policy from another arm's logged propensities.")
    compare_to: str | None = Field(None, description="Experiment whose latest run of the other mode (offline / "
                                                     "online) is set beside this one; defaults to this name.")

    @field_validator("name", mode="before")
    @classmethod
    def _not_reserved(cls, v: Any) -> Any:
        # before the pattern, so a dot-name gets the reason, not just the pattern it misses
        if isinstance(v, str):
            if v.startswith("."):
                raise ValueError(f"{v!r} starts with '.': dot-names are reserved for the results store's "
                                 "temporary and lock files")
            if v.casefold() in RESERVED_NAMES:
                raise ValueError(f"{v!r} is reserved: the results store keeps its own {v.casefold()!r} beside "
                                 "the experiments' folders")
            if len(v) > MAX_NAME_LENGTH:
                raise ValueError(f"too long ({len(v)} characters; at most {MAX_NAME_LENGTH}: the name becomes a "
                                 "folder name of the results store)")
        return v

    @field_validator("arms")
    @classmethod
    def _distinct_arms(cls, arms: list[Arm]) -> list[Arm]:
        names = [a.name for a in arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm names must be unique: {dupes[0]!r} is listed {names.count(dupes[0])} times")
        weights = [a.weight for a in arms]
        if any(w is not None for w in weights):
            if any(w is None for w in weights):
                raise ValueError("give a weight for every arm or for none")
            total = sum(weights)  # type: ignore[arg-type]
            if not (abs(total - 1) < 1e-9 or abs(total - 100) < 1e-9):
                raise ValueError(f"arm weights must sum to 1 (or 100), got {total:g} over {len(arms)} arms")
        return arms

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [a.name for a in self.arms]
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not an arm (arms: {', '.join(names)})")
        self._arms_compare(names)
        metric_names = [m.name for m in self.metrics]
        dupes = sorted({m for m in metric_names if metric_names.count(m) > 1})
        if dupes:
            raise ValueError(f"metric {dupes[0]!r} is listed twice")
        if not any(m.role == "primary" for m in self.metrics):
            raise ValueError("no metric has role: primary (the decision needs at least one)")
        dupes = sorted({s for s in self.segments if self.segments.count(s) > 1})
        if dupes:
            raise ValueError(f"segment {dupes[0]!r} is listed twice")
        self._data_fits_arms(names, metric_names)
        self._offline_policy_fits_arms(names)
        return self

    def _arms_compare(self, names: list[str]) -> None:
        if len(names) > 2 and self.control is None:
            raise ValueError(f"control: missing: an experiment with {len(names)} arms names its control arm "
                             f"(one of {', '.join(names)})")
        seen = set()
        for i, pair in enumerate(self.comparisons):
            for key in ("treatment", "control"):
                arm = getattr(pair, key)
                if arm not in names:
                    raise ValueError(f"comparisons[{i}].{key}: {arm!r} is not an arm" + did_you_mean(arm, names)
                                     + f" (arms: {', '.join(names)})")
            if pair.treatment == pair.control:
                raise ValueError(f"comparisons[{i}]: compares {pair.treatment!r} with itself")
            if pair.treatment == (self.control or names[0]):
                raise ValueError(f"comparisons[{i}]: {pair.treatment!r} is the control, every treatment's control "
                                 f"already; list {{treatment: {pair.control}, control: {pair.treatment}}}")
            key_pair = frozenset((pair.treatment, pair.control))
            if key_pair in seen:
                raise ValueError(f"comparisons[{i}]: {pair.treatment} and {pair.control} are compared twice")
            seen.add(key_pair)
        if self.statistics.correction == "dunnett":
            control = self.control or names[0]
            other = next((p for p in self.comparisons if p.control != control), None)
            if other is not None:
                raise ValueError(f"statistics.correction: dunnett compares treatments with the control "
                                 f"({control}); comparison {other.treatment} vs {other.control} is not one (use holm)")
        if len(names) > 2:
            if self.interleaving is not None:
                raise ValueError(f"interleaving: team draft interleaves two rankers; this experiment has "
                                 f"{len(names)} arms")
            if self.statistics.sequential is not None:
                raise ValueError(f"statistics.sequential: sequential testing is for two arms; this experiment "
                                 f"has {len(names)}")

    def _data_fits_arms(self, names: list[str], metric_names: list[str]) -> None:
        if self.data.world is not None and (self.data.mapping or self.data.tables):
            raise ValueError("data.mapping and data.tables apply to logs on disk (data.path), not to the "
                             "synthetic world")
        if self.data.mode == "offline" and self.randomisation.unit != "user":
            raise ValueError(f"randomisation.unit: {self.randomisation.unit!r}: the offline replay assigns arms by "
                             "user (sessions.unit_id); other units are for online logs (data.mode: online)")
        if self.data.mode == "offline":
            missing = [a.name for a in self.arms if a.ranker is None]
            if missing:
                raise ValueError(f"arm {missing[0]!r} has no ranker: an offline experiment replays the log through "
                                 "each arm's ranker")
        for table, source in self.data.tables.items():
            if isinstance(source, dict):
                unknown = [a for a in source if a not in names]
                if unknown:
                    raise ValueError(f"data.tables.{table}: {unknown[0]!r} is not an arm"
                                     + did_you_mean(unknown[0], names) + f" (arms: {', '.join(names)})")
        if self.randomisation.unit == "impression" and "page_good_rate" in metric_names:
            raise ValueError("page_good_rate judges whole pages, which randomisation.unit: impression splits; "
                             "drop the metric or randomise by session or user")

    def _offline_policy_fits_arms(self, names: list[str]) -> None:
        ope = self.offline_policy
        if ope is None:
            return
        for key in ("target", "logged"):
            arm = getattr(ope, key)
            if arm is not None and arm not in names:
                raise ValueError(f"offline_policy.{key}: {arm!r} is not an arm" + did_you_mean(arm, names))
        if ope.logged == ope.target:
            raise ValueError("offline_policy: the target is evaluated on another arm's log (logged == target)")
        if ope.policy is None and next(a for a in self.arms if a.name == ope.target).ranker is None:
            raise ValueError(f"offline_policy: arm {ope.target!r} has no ranker; give its policy as a table "
                             "(offline_policy.policy)")

    @property
    def control_arm(self) -> Arm:
        return next(a for a in self.arms if a.name == (self.control or self.arms[0].name))

    @property
    def treatment_arm(self) -> Arm:
        """The treatment of the headline comparison (the only one of a two-arm experiment)."""
        first = self.comparison_pairs[0][0]
        return next(a for a in self.arms if a.name == first)

    @property
    def comparison_pairs(self) -> list[tuple[str, str]]:
        """(treatment, control) of every comparison: the listed ``comparisons`` in their order, then every
        other treatment against the control in arm order (the pairs the decision needs)."""
        pairs = [(c.treatment, c.control) for c in self.comparisons]
        control = self.control_arm.name
        listed = {frozenset(p) for p in pairs}
        pairs += [(a.name, control) for a in self.arms
                  if a.name != control and frozenset((a.name, control)) not in listed]
        return pairs

    @property
    def correction(self) -> str:
        """The multiple-testing correction: as configured, or Holm by default when several comparisons
        share the family (an A/B/n experiment)."""
        st = self.statistics
        if "correction" in st.model_fields_set or len(self.comparison_pairs) == 1:
            return st.correction
        return "holm"

    @property
    def weights(self) -> dict[str, float]:
        return {a.name: (a.weight if a.weight is not None else 1.0) for a in self.arms}

    @property
    def salt(self) -> str:
        return self.randomisation.salt or self.name


def json_schema() -> str:
    """The JSON Schema of experiment files (shipped as experiments/experiment.schema.json)."""
    import json

    schema = Experiment.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "abplatform experiment"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _node_at(root: yaml.Node, loc: tuple) -> tuple[yaml.Node, bool]:
    """The YAML node at a pydantic error location (the deepest one that exists) and whether it is exact."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next((v for k, v in node.value if k.value == part), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == part), None)
                return (key or node), key is not None
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root: yaml.Node, loc: tuple) -> yaml.Node | None:
    parent, _ = _node_at(root, loc[:-1])
    if isinstance(parent, yaml.MappingNode):
        return next((k for k, _ in parent.value if k.value == loc[-1]), None)
    return None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (for "did you mean" on unknown keys)."""
    model: Any = Experiment
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


MAX_EXPANDED_NODES = 100_000


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once its aliases are expanded (memoised: an alias bomb costs no time)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a node that refers to itself counts once
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size


def _duplicate_keys(node: yaml.Node, path: str, out: list[tuple[yaml.Node, str]], seen_nodes: set[int]) -> None:
    if id(node) in seen_nodes:  # an alias of a node already checked
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            if k.value in seen:
                out.append((k, f"{path}{'.' if path else ''}{k.value}"))
            seen.add(k.value)
            _duplicate_keys(v, f"{path}{'.' if path else ''}{k.value}", out, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _duplicate_keys(v, f"{path}[{i}]", out, seen_nodes)


def _where(path: Path, node: yaml.Node | None) -> str:
    if node is None:
        return str(path)
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _without_tags(loc: tuple) -> tuple:
    """A pydantic error location without the union tag it inserts ('expression' in ....expression.expression)."""
    return tuple(x for i, x in enumerate(loc)
                 if not (x in ("column", "constant", "expression") and i + 1 < len(loc) and loc[i + 1] == x))


def _loc_str(loc: tuple) -> str:
    return "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in loc).lstrip(".") or "(top level)"


#: Nesting of YAML collections an experiment file may have (it needs 4); deeper is refused before the
#: recursive parts (yaml's composer, the checks below, pydantic) see it.
MAX_YAML_DEPTH = 50


def _yaml_depth(text: str) -> int:
    """The deepest nesting of flow collections ([...] / {...}) and indentation, from yaml's tokens
    (the scanner is iterative: no recursion on hostile input)."""
    depth = deepest = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
                              yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)):
            depth -= 1
    return deepest


def experiment_problems(path: Path, text: str) -> tuple[Experiment | None, list[str]]:
    """Parse and validate an experiment; every problem as 'FILE:LINE:COL: field.path: message'."""
    try:
        return _experiment_problems(path, text)
    except RecursionError:  # a fallback: the depth check below should come first
        return None, [f"{path}: too deeply nested (an experiment file nests at most {MAX_YAML_DEPTH} levels)"]


def _experiment_problems(path: Path, text: str) -> tuple[Experiment | None, list[str]]:
    try:
        depth = _yaml_depth(text)
        if depth > MAX_YAML_DEPTH:
            return None, [(f"{path}: too deeply nested ({depth:,} levels of YAML lists / mappings; "
                           f"an experiment file nests at most {MAX_YAML_DEPTH})")]
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        size = _expanded_size(root, {}) if root is not None else 0
        if size > MAX_EXPANDED_NODES:
            return None, [(f"{path}: YAML expands to {size:,} nodes through aliases (at most "
                           f"{MAX_EXPANDED_NODES:,}); an experiment file needs no alias bombs")]
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        return None, [f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})"]
    if not isinstance(raw, dict) or root is None:
        return None, [f"{path}: expected a mapping of experiment settings at the top level"]
    dupes: list[tuple[yaml.Node, str]] = []
    _duplicate_keys(root, "", dupes, set())
    problems = [f"{_where(path, k)}: {field}: duplicate key (the later value would silently win)" for k, field in dupes]
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        for err in e.errors():
            loc = _without_tags(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                node = _key_node(root, loc)
                model = _model_at(loc)
                msg = f"unknown key {loc[-1]!r}" + (did_you_mean(loc[-1], model.model_fields) if model else "")
                if model:
                    msg += f"; allowed: {', '.join(model.model_fields)}"
            elif err["type"] == "missing":
                node, _ = _node_at(root, loc[:-1])
                msg = f"missing required key {loc[-1]!r}"
                loc = loc[:-1]
            else:
                node, _ = _node_at(root, loc)
                if "input" in err and err["type"] not in ("value_error", "assertion_error"):
                    msg += f", got {err['input']!r}"
            problems.append(f"{_where(path, node)}: {_loc_str(loc)}: {msg}")
        return None, problems
    return (None if problems else exp), problems


def load_experiment(path: str | Path) -> tuple[Experiment, str]:
    """Parse and validate an experiment file; returns it with the sha256 of its text."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such experiment file")
    try:
        text = read_input(p, "experiment file").decode("utf-8")  # once, at most 64 MiB
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it (the sha256 is of this)
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    exp, problems = experiment_problems(p, text)
    if problems or exp is None:
        raise InputError("\n".join(problems), problems)
    return exp, hashlib.sha256(text.encode()).hexdigest()


def setting_location(path: Path, loc: tuple[str | int, ...]) -> str:
    """``FILE:LINE:COL: field.path`` of a setting of an experiment file (the deepest part that exists), for
    errors found when the data is read."""
    try:
        root = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        root = None
    node = _node_at(root, loc)[0] if root is not None else None
    return f"{_where(Path(path), node)}: {_loc_str(loc)}"


def resolve_ranker(name: str, config_path: Path) -> str:
    """A ranker name with ``rankings:FILE`` relative to the working directory, else to the experiment file."""
    if not name.startswith("rankings:"):
        return name
    p = Path(name.removeprefix("rankings:"))
    return name if p.is_absolute() or p.exists() else f"rankings:{config_path.parent / p}"
