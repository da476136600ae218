"""Per-metric verdicts from the row's one test (``compare``): significance, improvement, breach.

* ``significant``: the row's test rejects H0 at α — adjusted p-value (= the p-value without
  correction) < α, which is the same as "the adjusted interval excludes the null".
* Primary and secondary metrics (H0: no effect): ``improved`` / ``degraded`` = significant and
  the effect points with / against ``direction``.
* Guardrails (H0 at the margin, one-sided; e.g. FDA, "Non-Inferiority Clinical Trials to
  Establish Effectiveness", 2016): with ``guardrail_test="harm"`` the test's H1 is "worse than
  the margin" and ``breached`` = significant; with ``"noninferiority"`` H1 is "no worse than the
  margin" and ``breached`` = not significant (non-inferiority not shown). A guardrail's
  ``degraded`` is its ``breached``; it is never ``improved``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .types import MetricSpec


def metric_verdicts(*, effect: np.ndarray, p_value_adjusted: np.ndarray, alpha: float, specs: Sequence[MetricSpec],
                    guardrail_test: str = "harm") -> pd.DataFrame:
    """Decision columns: significant, improved, degraded, margin, breached."""
    sign = np.array([1.0 if s.direction == "increase" else -1.0 for s in specs])
    guard = np.array([s.role == "guardrail" for s in specs], dtype=bool)
    significant = np.nan_to_num(p_value_adjusted, nan=1.0) < alpha
    breached = guard & (significant if guardrail_test == "harm" else ~significant)
    with np.errstate(invalid="ignore"):
        improved = ~guard & significant & (sign * effect > 0)
        degraded = np.where(guard, breached, significant & (sign * effect < 0))
    margin = np.array([s.margin if (s.role == "guardrail" and s.margin is not None) else np.nan for s in specs])
    return pd.DataFrame({"significant": significant, "improved": improved, "degraded": degraded.astype(bool),
                         "margin": margin, "breached": breached})
