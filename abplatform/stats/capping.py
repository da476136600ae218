"""Capping (winsorisation) of per-unit values — the reference for what the SQL metrics layer does.

Source: Kohavi, Tang & Xu (2020), "Trustworthy Online Controlled Experiments", ch. 22 (capping
outliers). Capping happens per unit *before* aggregation, so the statistics engine sees ordinary
sufficient statistics of the capped values. A percentile cap is computed over both arms pooled
(one threshold for the whole experiment, so it cannot differ by arm); an absolute cap is a
constant from the metric definition. Capping changes the estimand (the mean of the capped value)
and is applied identically to both arms, so the comparison stays unbiased for that estimand.
"""

from __future__ import annotations

import numpy as np


def cap_values(values: np.ndarray, *, upper: float | None = None, quantile: float | None = None) -> np.ndarray:
    """min(x, cap) with cap = ``upper`` or the pooled ``quantile`` (e.g. 0.99) of ``values``.

    ``values`` holds the per-unit values of both arms together; with both given, the smaller cap wins.
    Quantiles use numpy's default (linear interpolation), as duckdb's ``quantile_cont``.
    """
    x = np.asarray(values, dtype=float)
    caps = [np.inf]
    if upper is not None:
        caps.append(float(upper))
    if quantile is not None:
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        caps.append(float(np.quantile(x, quantile)))
    return np.minimum(x, min(caps))
