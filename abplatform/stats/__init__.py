"""Statistics engine: pure, vectorised functions over per-arm sufficient statistics.

Input ``suff``: one row per (metric, arm, *by-columns) with
``n`` (randomisation units), ``sum_x``, ``sum_x2`` (per-unit numerator x), ``sum_y``, ``sum_y2``,
``sum_xy`` (per-unit denominator y of ratio metrics; NaN otherwise) and, for CUPED, the
pre-period sums ``sum_xp``, ``sum_xp2``, ``sum_x_xp`` (+ ``sum_yp``, ``sum_yp2``, ``sum_xp_yp``,
``sum_x_yp``, ``sum_y_xp``, ``sum_y_yp`` for ratio metrics).

Capping / winsorisation: per-unit values are capped *before* aggregation, in SQL by the metrics
layer (a percentile cap computed over both arms pooled, or an absolute cap, per metric), so the
sums here are already sums of capped values and no statistic changes. ``capping.cap_values`` is
the reference implementation the SQL is tested against and the simulations use.
"""

from .balance import balance_table, daily_srm_table
from .capping import cap_values
from .compare import compare, compare_pairs
from .heterogeneity import cochran_q, heterogeneity_table
from .moments import suff_from_units
from .power import baseline_variance, mde, mde_columns, plan, power_at, sample_size
from .srm import DEFAULT_SRM_THRESHOLD, srm_table, srm_test
from .summary import read_summary, summary_scorecard
from .types import MetricSpec, SequentialSpec, SrmResult

__all__ = [
    "DEFAULT_SRM_THRESHOLD",
    "MetricSpec",
    "SequentialSpec",
    "SrmResult",
    "balance_table",
    "baseline_variance",
    "cap_values",
    "cochran_q",
    "compare",
    "compare_pairs",
    "daily_srm_table",
    "heterogeneity_table",
    "mde",
    "mde_columns",
    "plan",
    "power_at",
    "read_summary",
    "sample_size",
    "srm_table",
    "srm_test",
    "suff_from_units",
    "summary_scorecard",
]
