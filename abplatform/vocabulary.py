"""The platform's shared words, named once: the literal choices of a config, the segment columns,
the built-in ranker names and the sufficient sums the metrics SQL returns and the statistics read.

Pure Python: the config, the SQL generator, the statistics and the summary reader all derive from
these, and importing it costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from typing import Literal, get_args

MetricType = Literal["proportion", "mean", "ratio"]
Direction = Literal["increase", "decrease"]
Role = Literal["primary", "secondary", "guardrail"]
RelativeCI = Literal["delta", "log", "fieller"]
Correction = Literal["none", "holm", "bh", "dunnett"]
CorrectionScope = Literal["primary", "all"]
Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[Alternative, ...] = ("two-sided", "greater", "less")
SequentialMethod = Literal["confidence_sequence", "obrien_fleming"]
GuardrailTest = Literal["harm", "noninferiority"]
Aggregation = Literal["sum", "count", "max"]
Engine = Literal["duckdb", "spark"]
Mode = Literal["offline", "online"]
WorldBehaviour = Literal["pbm", "cascade"]  # how the synthetic world's true users browse
ClickModelName = Literal["pbm", "cascade", "dbn", "ubm"]  # users fitted on the logs
SimulatedUsers = Literal["pbm", "cascade", "dbn", "ubm", "oracle"]
OpeEstimator = Literal["ips", "snips", "dr", "dm"]  # obp's IPW, SNIPW, DR and DirectMethod
CreditRule = Literal["wins", "click_difference"]

METRIC_TYPES: tuple[str, ...] = get_args(MetricType)
DIRECTIONS: tuple[str, ...] = get_args(Direction)
ROLES: tuple[str, ...] = get_args(Role)
ENGINES: tuple[str, ...] = get_args(Engine)

SEGMENT_COLUMNS = ("query_segment", "query_complexity", "user_type")
#: A randomisation unit -> the sessions column that identifies it (None: the row's own key); any other
#: unit names a sessions column itself.
UNIT_COLUMNS = {"user": "unit_id", "session": None, "impression": None, "request": "request_id"}
BUILTIN_RANKER_NAMES = ("v1", "v2", "cascade")
#: The synthetic world's presets (abplatform/world/presets.py), named here so the config checks them without
#: importing the world.
WORLD_PRESET_NAMES = ("classic", "onesearch")

# The sufficient statistics per (metric, arm[, segment, day]) besides n: the per-unit values whose
# product each sums (x numerator, y denominator, xp / yp their pre-period values for CUPED).
SUFFICIENT_SUMS: dict[str, tuple[str, ...]] = {
    "sum_x": ("x",), "sum_x2": ("x", "x"),
    "sum_y": ("y",), "sum_y2": ("y", "y"), "sum_xy": ("x", "y"),
    "sum_x2y": ("x", "x", "y"), "sum_xy2": ("x", "y", "y"), "sum_y3": ("y", "y", "y"),
    "sum_xp": ("xp",), "sum_xp2": ("xp", "xp"), "sum_x_xp": ("x", "xp"),
    "sum_yp": ("yp",), "sum_yp2": ("yp", "yp"), "sum_xp_yp": ("xp", "yp"),
    "sum_x_yp": ("x", "yp"), "sum_y_xp": ("y", "xp"), "sum_y_yp": ("y", "yp"),
}
_COVARIATE = {"xp", "yp"}
RATIO_SUMS = ("sum_y", "sum_y2", "sum_xy")  # the denominator's sums: ratio metrics only
SMALL_SAMPLE_SUMS = tuple(s for s, f in SUFFICIENT_SUMS.items() if len(f) == 3)  # the small-sample correction's
COVARIATE_SUMS = tuple(s for s, f in SUFFICIENT_SUMS.items() if _COVARIATE & set(f))  # CUPED's, x's first


def did_you_mean(name: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    hint = get_close_matches(str(name), sorted(map(str, choices)), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def unit_column(unit: str) -> str | None:
    """The sessions column that identifies a randomisation unit (None for session and impression)."""
    return UNIT_COLUMNS.get(unit, unit)
