"""The experiment file (``experiments/*.yaml``): a pydantic v2 schema with defaults for everything
but the name and the arms, so a ten-line file is a complete experiment.
"""

from __future__ import annotations

import hashlib
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from abplatform.contract import TABLES
from abplatform.errors import InputError
from abplatform.expressions import parse_expression
from abplatform.metrics import BUILTIN_METRICS
from abplatform.metrics.engine import SEGMENT_COLUMNS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldSource(_Model):
    """The built-in synthetic search world (generated once per parameter set, then cached)."""

    users: Annotated[int, Field(gt=0)] = 50_000
    days: Annotated[int, Field(gt=0, le=366)] = 14
    pre_days: Annotated[int, Field(ge=0, le=366)] = 7
    items: Annotated[int, Field(ge=1000)] = 20_000
    seed: int = 7
    behaviour: Literal["pbm", "cascade"] = "pbm"


class SparkSettings(_Model):
    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)


class DataSource(_Model):
    """Where the event log comes from: the synthetic world, or logs on disk."""

    world: WorldSource | None = None
    path: str | None = Field(None, description="A dataset folder (parquet / CSV tables) or a .duckdb file.")
    tables: dict[str, str] = Field(default_factory=dict,
                                   description="File (or glob) per contract table, relative to path.")
    mapping: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Per table, contract column -> source column (for imported logs).")
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark: SparkSettings | None = None
    cache_dir: str = Field("data", description="Where generated worlds and replays are cached.")

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.world is None) == (self.path is None):
            raise ValueError("give exactly one of 'world' or 'path'")
        for table, cols in {**self.tables, **self.mapping}.items():
            if table not in TABLES:
                raise ValueError(f"unknown table {table!r} (expected one of {', '.join(TABLES)})")
        for table, cols in self.mapping.items():
            known = {c.name for c in TABLES[table].columns}
            bad = sorted(set(cols) - known)
            if bad:
                hint = get_close_matches(bad[0], sorted(known), n=1)
                raise ValueError(f"mapping.{table}: {bad[0]!r} is not a column of {table}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return self


class Arm(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]
    ranker: str = Field(description="Built-in ranker name (v1, v2) or package.module:Class.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the ranker.")
    weight: Annotated[float, Field(gt=0)] = 1.0


class Randomisation(_Model):
    unit: Literal["user"] = "user"
    salt: str | None = Field(None, description="Hash salt; defaults to the experiment name.")


class Aggregate(_Model):
    """A per-unit aggregate over the unit's impressions: ``agg`` of ``column`` where ``filter`` holds.

    ``column`` and ``filter`` are expressions over the contract's session and impression columns
    (comparisons, arithmetic, AND / OR / NOT — no functions, no sub-queries)."""

    agg: Literal["sum", "count", "max"] = "sum"
    column: str | None = None
    filter: str | None = None

    @field_validator("column", "filter")
    @classmethod
    def _safe(cls, v: str | None) -> str | None:
        if v is not None:
            parse_expression(v)
        return v

    @model_validator(mode="after")
    def _column_needed(self) -> Aggregate:
        if self.agg != "count" and self.column is None:
            raise ValueError(f"agg {self.agg!r} needs a column")
        return self


class MetricConfig(_Model):
    """A built-in metric by name, or a user-defined one (type + numerator [+ denominator])."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    type: Literal["proportion", "mean", "ratio"] | None = None
    numerator: Aggregate | None = None
    denominator: Aggregate | None = None
    role: Literal["primary", "secondary", "guardrail"] = "secondary"
    direction: Literal["increase", "decrease"] | None = None
    margin: Annotated[float, Field(gt=0, lt=1)] | None = None
    mde: Annotated[float, Field(gt=0)] | None = Field(None, description="Relative minimum detectable effect.")
    cap_value: float | None = None
    cap_percentile: Annotated[float, Field(gt=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _definition(self) -> MetricConfig:
        builtin = self.name in BUILTIN_METRICS
        if builtin and (self.type or self.numerator or self.denominator):
            raise ValueError(f"{self.name!r} is a built-in metric; give a user-defined metric another name")
        if not builtin:
            if self.numerator is None:
                hint = get_close_matches(self.name, list(BUILTIN_METRICS), n=1)
                raise ValueError(f"unknown metric {self.name!r}"
                                 + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                 + f"; built-in metrics: {', '.join(BUILTIN_METRICS)}; "
                                 "a user-defined metric needs a type and a numerator")
            if self.type is None:
                raise ValueError(f"user-defined metric {self.name!r} needs a type (proportion, mean or ratio)")
            if (self.type == "ratio") != (self.denominator is not None):
                raise ValueError("a ratio metric needs a denominator, and only a ratio metric has one")
        if self.cap_value is not None and self.cap_percentile is not None:
            raise ValueError("give at most one of cap_value and cap_percentile")
        return self


class Sequential(_Model):
    method: Literal["confidence_sequence", "obrien_fleming"] = "confidence_sequence"
    tuning_n: Annotated[float, Field(gt=0)] = 5000.0
    planned_units: Annotated[float, Field(gt=0)] | None = None


class Statistics(_Model):
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    relative_ci: Literal["delta", "log", "fieller"] = "delta"
    cuped: bool = True
    correction: Literal["none", "holm", "bh"] = "none"
    sequential: Sequential | None = None
    srm_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.001


class Decision(_Model):
    """Promote when every primary metric improves significantly, no guardrail is breached and SRM passes."""

    guardrail_test: Literal["harm", "noninferiority"] = Field(
        "harm", description="harm: hold when a guardrail is significantly worse beyond its margin; "
                            "noninferiority: hold unless non-inferiority within the margin is shown.")
    block_on_srm: bool = True


class Simulation(_Model):
    behaviour: Literal["oracle"] = "oracle"
    seed: int = 1
    page_size: Annotated[int, Field(ge=1, le=50)] = 10
    batch_size: Annotated[int, Field(ge=1)] = 8192
    workers: Annotated[int, Field(ge=1, le=64)] = 2


class Experiment(_Model):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    owner: str = ""
    data: DataSource = Field(default_factory=lambda: DataSource(world=WorldSource()))
    arms: Annotated[list[Arm], Field(min_length=2, max_length=2)]
    control: str | None = Field(None, description="Name of the control arm; defaults to the first arm.")
    randomisation: Randomisation = Field(default_factory=Randomisation)
    metrics: list[MetricConfig] = Field(
        default_factory=lambda: [MetricConfig(name="item_ctr", role="primary")]
        + [MetricConfig(name=m) for m in BUILTIN_METRICS if m != "item_ctr"]
    )
    statistics: Statistics = Field(default_factory=Statistics)
    segments: list[Literal[SEGMENT_COLUMNS]] = Field(default_factory=lambda: list(SEGMENT_COLUMNS))  # type: ignore[valid-type]
    decision: Decision = Field(default_factory=Decision)
    simulation: Simulation = Field(default_factory=Simulation)
    compare_to: str | None = Field(None, description="Experiment whose latest run of the other mode (offline / "
                                                     "online) is set beside this one; defaults to this name.")

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not an arm (arms: {', '.join(names)})")
        metric_names = [m.name for m in self.metrics]
        dupes = sorted({m for m in metric_names if metric_names.count(m) > 1})
        if dupes:
            raise ValueError(f"metric {dupes[0]!r} is listed twice")
        if not any(m.role == "primary" for m in self.metrics):
            raise ValueError("no metric has role: primary (the decision needs at least one)")
        if self.data.world is not None and self.data.mapping:
            raise ValueError("data.mapping applies to logs on disk (data.path), not to the synthetic world")
        return self

    @property
    def control_arm(self) -> Arm:
        return next(a for a in self.arms if a.name == (self.control or self.arms[0].name))

    @property
    def treatment_arm(self) -> Arm:
        return next(a for a in self.arms if a.name != self.control_arm.name)

    @property
    def salt(self) -> str:
        return self.randomisation.salt or self.name


def load_experiment(path: str | Path) -> tuple[Experiment, str]:
    """Parse and validate an experiment file; returns it with the sha256 of its text."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such experiment file")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        raise InputError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{p}: expected a mapping of experiment settings at the top level")
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
            problems.append(f"{p}: {loc or '(top level)'}: {err['msg']}")
        raise InputError(problems[0] if len(problems) == 1 else "\n".join(problems), problems) from None
    return exp, hashlib.sha256(text.encode()).hexdigest()
