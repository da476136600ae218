"""A metric is a per-unit numerator x (and, for ratio metrics, a denominator y) over unit values.

Metrics are analysed at the level of the randomisation unit (the user), never as a binomial
over impressions: a ratio metric such as item CTR is Σ clicks / Σ impressions over users, with
its variance by the delta method (Deng, Knoblich & Lu 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

from abplatform.vocabulary import Aggregation, Direction, MetricType, Role

__all__ = ["Aggregation", "Direction", "Metric", "MetricType", "Role", "UnitColumn"]


@dataclass(frozen=True)
class UnitColumn:
    """A per-unit column of a user-defined metric: ``agg`` of ``value`` over the unit's impressions
    where ``condition`` holds (``value`` and ``condition`` are checked SQL from
    :mod:`abplatform.expressions`; ``count`` ignores ``value``; ``max`` gives 0/1 indicators)."""

    name: str
    agg: Aggregation
    value: str = "1"
    condition: str = "TRUE"


@dataclass(frozen=True)
class Metric:
    """``numerator`` / ``denominator`` are SQL expressions over the columns of ``sql/02_unit_values.sql``;
    the same expressions over ``pre_<column>`` give the CUPED covariate."""

    name: str
    type: MetricType
    numerator: str
    denominator: str | None = None
    description: str = ""
    direction: Direction = "increase"
    role: Role = "secondary"
    margin: float | None = None  # relative non-inferiority margin (guardrails)
    cap_value: float | None = None  # winsorise x at an absolute value ...
    cap_percentile: float | None = None  # ... or at a percentile of the pooled per-unit values
    columns: tuple[UnitColumn, ...] = ()  # per-unit columns a user-defined metric adds to the SQL

    def __post_init__(self) -> None:
        if (self.type == "ratio") != (self.denominator is not None):
            raise ValueError(f"metric {self.name}: a denominator is required for ratio metrics and only for them")

    def with_options(self, **changes) -> Metric:
        from dataclasses import replace

        return replace(self, **changes)
