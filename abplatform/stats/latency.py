"""Serving-cost guardrail: the treatment/control ratio of CPU time per query, with a CI and a verdict.

Input: paired CPU times from :mod:`abplatform.replay.serving_cost` — repetition ``i`` scored one
query batch with both rankers back to back (ABBA order). Per pair, ``d_i = log(t_T,i / t_C,i)``; the
ratio is ``exp(mean d)``, the geometric mean of the paired ratios (the right summary of ratios of
run times: Fleming & Wallace 1986, "How not to lie with statistics: the correct way to summarize
benchmark results", CACM 29(3)), and its CI is the paired t interval (Student 1908) on the mean of
``d``, exponentiated: ``exp(mean d ± t_{n-1, 1-alpha/2} sd(d) / sqrt(n))``.

Why paired and on the log scale: machine load multiplies both arms' times alike within a pair (a
busy spell, a colder cache), so it cancels in the log ratio, which is what makes the verdict
stable under load; the differences of logs are close to symmetric, and with hundreds of pairs the
t interval's normal approximation holds. The pairs cycle through a fixed, seeded set of batches, so
the quantity estimated is the same in every rerun: only the noise differs.

Verdict, with threshold ``1 + margin``: ``breached`` when the whole CI lies above it, ``ok`` when the
whole CI lies below it, ``inconclusive`` when it straddles it (the equivalent of a two one-sided
test at alpha/2 each way); ``not_evaluated`` with a reason when there is nothing to test.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy import stats as sps

from abplatform.report.model import LatencyGuardrail

NO_MARGIN = "latency_margin is null"
ONLINE = "online run: an A/B log has no rankers to time (serving cost is measured offline)"


def not_evaluated(reason: str, margin: float | None = None) -> LatencyGuardrail:
    """The guardrail of a run that measured nothing, saying why in one line."""
    return LatencyGuardrail(status="not_evaluated", reason=reason, margin=margin)


def ratio_ci(control_seconds: np.ndarray, treatment_seconds: np.ndarray,
             alpha: float) -> tuple[float, float, float]:
    """(ratio, CI low, CI high): geometric mean of the paired treatment/control ratios and its paired t
    interval at level 1 - alpha."""
    d = np.log(np.asarray(treatment_seconds, float)) - np.log(np.asarray(control_seconds, float))
    n = len(d)
    mean = float(d.mean())
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def verdict(ci_low: float, ci_high: float, margin: float) -> Literal["ok", "inconclusive", "breached"]:
    """breached / ok / inconclusive: where the CI lies against 1 + margin."""
    if ci_low > 1 + margin:
        return "breached"
    if ci_high < 1 + margin:
        return "ok"
    return "inconclusive"


def latency_guardrail(control_seconds: np.ndarray, treatment_seconds: np.ndarray, *, margin: float | None,
                      alpha: float, batch_size: int, control: str = "control", treatment: str = "treatment",
                      timer: str = "process_time") -> LatencyGuardrail:
    """The guardrail from ``control_seconds[i]``, ``treatment_seconds[i]``: CPU seconds of the same
    batch of ``batch_size`` queries. Not evaluated without a margin, with fewer than 2 pairs, or
    with a time that is not positive and finite (a clock too coarse for the batch)."""
    c, t = np.asarray(control_seconds, float), np.asarray(treatment_seconds, float)
    if margin is None:
        return not_evaluated(NO_MARGIN)
    if len(c) != len(t):
        raise ValueError(f"latency_guardrail: {len(c)} control times but {len(t)} treatment times")
    if len(c) < 2:
        return not_evaluated(f"{len(c)} paired repetition(s) timed; the CI needs at least 2", margin)
    if not (np.isfinite(c).all() and np.isfinite(t).all() and (c > 0).all() and (t > 0).all()):
        return not_evaluated(f"a batch of {batch_size} queries timed at zero CPU seconds by {timer} "
                             "(clock too coarse): raise decision.latency_batch_size", margin)
    ratio, lo, hi = ratio_ci(c, t, alpha)
    per_query = 1000 / (len(c) * batch_size)
    return LatencyGuardrail(
        status=verdict(lo, hi, margin), margin=margin, ratio=ratio, ratio_ci_low=lo, ratio_ci_high=hi,
        cpu_ms_per_query={control: float(c.sum()) * per_query, treatment: float(t.sum()) * per_query},
        repetitions=len(c), batch_size=batch_size, timer=timer)
