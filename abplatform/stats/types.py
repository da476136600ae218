"""Typed inputs and outputs of the statistics engine (specs are frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from abplatform.vocabulary import (
    DIRECTIONS,
    METRIC_TYPES,
    ROLES,
    Correction,
    Direction,
    MetricType,
    RelativeCI,
    Role,
    SequentialMethod,
)

__all__ = ["DIRECTIONS", "METRIC_TYPES", "ROLES", "Correction", "Direction", "MetricSpec", "MetricType", "RelativeCI",
           "Role", "SequentialSpec", "SrmResult"]


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is analysed and read.

    ``margin`` is the relative non-inferiority margin of a guardrail (0.01 = "may not get more
    than 1% worse"); ``None`` means the guardrail is only checked for a significant degradation.
    """

    type: MetricType = "mean"
    direction: Direction = "increase"
    role: Role = "primary"
    margin: float | None = None

    def __post_init__(self) -> None:
        if self.type not in METRIC_TYPES:
            raise ValueError(f"metric type must be one of {METRIC_TYPES}, got {self.type!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.margin is not None and not (0 < self.margin < 1):
            raise ValueError(f"margin must be in (0, 1), got {self.margin!r}")


@dataclass(frozen=True)
class SequentialSpec:
    """Sequential monitoring of cumulative looks (one look per value of ``look``, e.g. per day).

    ``method="confidence_sequence"``: GrowthBook's asymptotic confidence sequence, valid at any
    number of looks; ``tuning_n`` is the total sample size at which it is tightest (gbstats
    default 5000). ``method="obrien_fleming"``: Lan–DeMets O'Brien–Fleming alpha spending over
    information fractions t = n_look / ``planned_n`` (units of both arms); ``planned_n`` is
    required. The suff rows of each look must hold the *cumulative* sums up to that look.
    """

    method: SequentialMethod = "confidence_sequence"
    look: str = "day"
    tuning_n: float = 5000.0
    planned_n: float | None = None

    def __post_init__(self) -> None:
        if self.method not in ("confidence_sequence", "obrien_fleming"):
            raise ValueError(f"unknown sequential method {self.method!r}")
        if self.method == "obrien_fleming" and (self.planned_n is None or self.planned_n <= 0):
            raise ValueError("obrien_fleming needs planned_n > 0 (planned units in both arms)")
        if self.tuning_n <= 0:
            raise ValueError("tuning_n must be > 0")


@dataclass(frozen=True)
class SrmResult:
    """Chi-square sample-ratio-mismatch test of observed unit counts against the planned split."""

    chi2: float
    p_value: float
    df: int
    observed: dict[str, int] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.001

    @property
    def failed(self) -> bool:
        """True when the split is implausible (p below ``threshold``): results must not be trusted."""
        return bool(self.p_value < self.threshold)
