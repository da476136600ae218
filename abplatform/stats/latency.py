"""Serving-cost guardrail from the replay's per-batch scoring times (ms per query).

One-sided Welch t-test on log time per query (Welch 1947): H0 log t_T <= log t_C + log(1 + margin)
against H1 "the treatment is slower than the control by more than the margin"; breached when H0 is
rejected at alpha. Batch times are noisy on a shared machine; testing the mean of many batches
instead of comparing two totals keeps an A/A run from tripping the guardrail.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from abplatform.report.model import LatencyGuardrail


def latency_guardrail(batches: dict[str, list[float]], control: str, treatment: str, margin: float | None,
                      alpha: float) -> LatencyGuardrail | None:
    """The test, or None without a margin or with fewer than 3 finite batch times per arm."""
    c, t = np.log(batches.get(control) or [np.nan]), np.log(batches.get(treatment) or [np.nan])
    if margin is None or len(c) < 3 or len(t) < 3 or not (np.isfinite(c).all() and np.isfinite(t).all()):
        return None
    p = float(sps.ttest_ind(t - np.log1p(margin), c, equal_var=False, alternative="greater").pvalue)
    return LatencyGuardrail(control_ms=float(np.exp(c.mean())), treatment_ms=float(np.exp(t.mean())),
                            ratio=float(np.exp(t.mean() - c.mean())), margin=margin, p_value=p,
                            batches=[len(c), len(t)], breached=bool(p < alpha))
