"""Typed inputs and outputs of the statistics engine (specs are frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from abplatform.vocabulary import (
    ALTERNATIVES,
    DIRECTIONS,
    METRIC_TYPES,
    ROLES,
    Alternative,
    Correction,
    CorrectionScope,
    Direction,
    MetricType,
    RelativeCI,
    Role,
    SequentialMethod,
)

__all__ = [
    "ALTERNATIVES",
    "DIRECTIONS",
    "METRIC_TYPES",
    "PROPORTION_TESTS",
    "ROLES",
    "Alternative",
    "Correction",
    "CorrectionScope",
    "Direction",
    "MetricSpec",
    "MetricType",
    "ProportionTest",
    "RelativeCI",
    "Role",
    "SequentialSpec",
    "SrmResult",
]

ProportionTest = Literal["welch", "wald", "pooled", "continuity", "fisher"]
PROPORTION_TESTS: tuple[ProportionTest, ...] = ("welch", "wald", "pooled", "continuity", "fisher")


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is analysed and read.

    ``margin`` is the relative margin of a guardrail (0.01 = "may not get more than 1% worse");
    ``None`` tests the guardrail at 0. ``alternative`` (primary and secondary metrics; guardrails
    take theirs from the guardrail test) is on the treatment-minus-control scale: ``greater``
    tests H1: T > C. ``equal_var``: Student's pooled-variance t instead of Welch's (not for
    ratio metrics, whose variance is a delta-method linearisation). ``test`` (proportions only):
    ``welch`` (the default: Welch t on the 0/1 values) or one of the tests of
    ``abplatform.stats.proportion_tests`` (``wald``, ``pooled``, ``continuity``, ``fisher``).
    """

    type: MetricType = "mean"
    direction: Direction = "increase"
    role: Role = "primary"
    margin: float | None = None
    alternative: Alternative = "two-sided"
    equal_var: bool = False
    test: ProportionTest = "welch"

    def __post_init__(self) -> None:
        if self.type not in METRIC_TYPES:
            raise ValueError(f"metric type must be one of {METRIC_TYPES}, got {self.type!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        if self.margin is not None and not (0 < self.margin < 1):
            raise ValueError(f"margin must be in (0, 1), got {self.margin!r}")
        if self.alternative not in ALTERNATIVES:
            raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {self.alternative!r}")
        if self.equal_var and self.type == "ratio":
            raise ValueError("equal_var is for mean and proportion metrics; a ratio metric's variance is a "
                             "delta-method linearisation with no pooled form")
        if self.test not in PROPORTION_TESTS:
            raise ValueError(f"unknown test {self.test!r}; use {', '.join(PROPORTION_TESTS)}")
        if self.test != "welch" and self.type != "proportion":
            raise ValueError(f"test {self.test!r} is a test of proportions; a {self.type} metric takes welch")
        if self.test != "welch" and self.equal_var:
            raise ValueError(f"equal_var is Student's pooled t; test {self.test!r} has its own variance")
        if self.test in ("continuity", "fisher") and self.margin is not None:
            raise ValueError(f"test {self.test!r} tests no change (absolute difference / odds ratio 1); a "
                             "relative guardrail margin needs welch, wald or pooled")


@dataclass(frozen=True)
class SequentialSpec:
    """Sequential monitoring of cumulative looks (one look per value of ``look``, e.g. per day).

    ``method="confidence_sequence"``: GrowthBook's asymptotic confidence sequence, valid at any
    number of looks; ``tuning_n`` is the total sample size at which it is tightest (gbstats
    default 5000). ``method="obrien_fleming"``: Lan–DeMets O'Brien–Fleming alpha spending over
    information fractions t = n_look / ``planned_n`` (units of both arms); ``planned_n`` is
    required. The suff rows of each look must hold the *cumulative* sums up to that look. A suff
    without the look column is the current look; ``earlier_n`` are the units (both arms) at the
    looks before it, for the alpha already spent.
    """

    method: SequentialMethod = "confidence_sequence"
    look: str = "day"
    tuning_n: float = 5000.0
    planned_n: float | None = None
    earlier_n: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in ("confidence_sequence", "obrien_fleming"):
            raise ValueError(f"unknown sequential method {self.method!r}")
        if self.method == "obrien_fleming" and (self.planned_n is None or self.planned_n <= 0):
            raise ValueError("obrien_fleming needs planned_n > 0 (planned units in both arms)")
        if self.tuning_n <= 0:
            raise ValueError("tuning_n must be > 0")


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch test of observed unit counts against the planned split (``test``: which one)."""

    chi2: float
    p_value: float
    df: int
    observed: dict[str, int] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.001
    test: str = "chi-square"  # or "binomial" (exact, two arms with a small expected count; ``srm``)

    @property
    def failed(self) -> bool:
        """True when the split is implausible (p below ``threshold``): results must not be trusted."""
        return bool(self.p_value < self.threshold)
