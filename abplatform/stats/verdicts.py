"""Per-metric verdicts: significance, direction of improvement, guardrail non-inferiority.

* ``significant``: adjusted p-value (= p-value without correction) < α.
* ``improved`` / ``degraded``: significant and the effect points with / against ``direction``.
* Guardrail non-inferiority (one-sided, relative margin m; e.g. Schuirmann-type one-sided test,
  FDA "Non-inferiority clinical trials" guidance 2016): for direction "increase"
  H0: rel ≤ −m vs H1: rel > −m; for "decrease" H0: rel ≥ +m vs H1: rel < +m. The statistic is
  the relative test on the scale of the chosen relative CI (``relative.relative_z``), the
  one-sided p-value half the two-sided reference p-value in the favourable direction (exact for
  the t reference; the two-sided-at-2α reading for the sequential ones). ``breached`` is True
  when non-inferiority is *not* shown (noninferior_p_value ≥ α) — the conservative gate reading;
  a guardrail without a margin is breached when it is significantly degraded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .types import MetricSpec


def metric_verdicts(
    *,
    abs_effect: np.ndarray,
    p_value_adjusted: np.ndarray,
    alpha: float,
    specs: Sequence[MetricSpec],
    ni_z: Callable[[np.ndarray], np.ndarray],
    p_of: Callable[[np.ndarray], np.ndarray],
    guardrail_test: str = "noninferiority",
) -> pd.DataFrame:
    """Decision columns: significant, improved, degraded, margin, noninferior_p_value, breached.

    ``guardrail_test="harm"`` reads a guardrail with a margin the other way round: breached when
    H0 "no worse than the margin" is rejected; for the same one-sided statistic that p-value is
    1 − noninferior_p_value.
    """
    sign = np.array([1.0 if s.direction == "increase" else -1.0 for s in specs])
    significant = np.nan_to_num(p_value_adjusted, nan=1.0) < alpha
    with np.errstate(invalid="ignore"):
        improved = significant & (sign * abs_effect > 0)
        degraded = significant & (sign * abs_effect < 0)
    guard = np.array([s.role == "guardrail" for s in specs])
    margin = np.array([s.margin if (s.role == "guardrail" and s.margin is not None) else np.nan for s in specs])
    has_margin = np.isfinite(margin)
    ni_p = np.full(len(specs), np.nan)
    if has_margin.any():
        r0 = np.where(has_margin, -sign * margin, np.nan)
        zz = sign * ni_z(r0)
        p_two = p_of(zz)
        ni_p = np.where(has_margin, np.where(zz > 0, p_two / 2, 1 - p_two / 2), np.nan)
    if guardrail_test == "harm":
        breached = guard & np.where(has_margin, np.nan_to_num(1 - ni_p, nan=1.0) < alpha, degraded)
    else:
        breached = guard & np.where(has_margin, ~(np.nan_to_num(ni_p, nan=1.0) < alpha), degraded)
    return pd.DataFrame(
        {
            "significant": significant,
            "improved": improved,
            "degraded": degraded,
            "margin": margin,
            "noninferior_p_value": ni_p,
            "breached": breached,
        }
    )
