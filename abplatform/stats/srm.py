"""Sample-ratio mismatch: observed unit counts against the configured split.

Source: Fabijan et al. (2019), "Diagnosing sample ratio mismatch in online controlled experiments",
KDD; the test is ``scipy.stats.chisquare`` with expected counts N·w_a/Σw. The default threshold
p < 0.001 is the conventional one (a mismatch that rare is a bug, not chance); a failed SRM means
the comparison is not trustworthy and must block promotion.

Which test: Pearson's chi-square goodness of fit, except for two arms when the smaller expected
count is below :data:`EXACT_BELOW` (1000 units): there the exact binomial test
(``scipy.stats.binomtest``, two-sided, of the first arm's count against its planned share) is
used, as the chi-square's normal approximation is poor in the tails for small counts and the
threshold sits deep in the tail. Above it the two agree to a few percent of p at the threshold.
``SrmResult.test`` says which ("chi-square" or "binomial").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .types import SrmResult

DEFAULT_SRM_THRESHOLD = 0.001
EXACT_BELOW = 1000  # two arms: the exact binomial test when an expected count is below this


def srm_test(observed: Mapping[str, int], weights: Mapping[str, float],
             threshold: float = DEFAULT_SRM_THRESHOLD) -> SrmResult:
    """SRM test (chi-square, or exact binomial for two arms with small counts; see the module);
    arms with a weight but no observations count as 0 units."""
    arms = list(weights)
    unknown = set(observed) - set(arms)
    if unknown:
        raise ValueError(f"observed arms {sorted(unknown)} have no configured weight")
    w = np.array([float(weights[a]) for a in arms])
    if len(arms) < 2 or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("SRM needs at least two arms with positive weights")
    obs = np.array([int(observed.get(a, 0)) for a in arms], dtype=float)
    if np.any(obs < 0):
        raise ValueError("observed counts must be >= 0")
    total = obs.sum()
    expected = total * w / w.sum()
    test = "binomial" if len(arms) == 2 and expected.min() < EXACT_BELOW else "chi-square"
    if total == 0:
        chi2, p = 0.0, 1.0
    else:
        res = stats.chisquare(obs, expected)
        chi2, p = float(res.statistic), float(res.pvalue)
        if test == "binomial":
            p = float(stats.binomtest(int(obs[0]), int(total), float(w[0] / w.sum())).pvalue)
    return SrmResult(
        chi2=chi2,
        p_value=p,
        df=len(arms) - 1,
        observed={a: int(o) for a, o in zip(arms, obs, strict=True)},
        expected={a: float(e) for a, e in zip(arms, expected, strict=True)},
        threshold=threshold,
        test=test,
    )


def srm_table(counts: pd.DataFrame, weights: Mapping[str, float], by: Sequence[str] = (),
              threshold: float = DEFAULT_SRM_THRESHOLD) -> pd.DataFrame:
    """SRM overall (``by=()``) or per segment: one row per by-group with ``n_<arm>``, chi2, p_value, failed, test.

    ``counts`` has columns ``arm``, ``n`` and the ``by`` columns, one row per (by-group, arm)
    (e.g. the suff rows of one metric, or assignment counts).
    """
    by = list(by)
    if counts.duplicated([*by, "arm"]).any():
        raise ValueError(f"counts must have one row per {[*by, 'arm']}")
    rows = []
    groups = counts.groupby(by, sort=True, dropna=False) if by else [((), counts)]
    for key, g in groups:
        res = srm_test(dict(zip(g["arm"], g["n"].astype(int), strict=True)), weights, threshold)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), **{f"n_{a}": o for a, o in res.observed.items()},
                     "chi2": res.chi2, "p_value": res.p_value, "failed": res.failed, "test": res.test})
    return pd.DataFrame(rows)
