"""An off-policy evaluation as report.json carries it (:mod:`abplatform.report.offline_policy`).

:func:`evaluate_policy` runs the estimators of :mod:`abplatform.offline.ope` (estimand, formulas and
session-clustered intervals are defined there) on logged rows and a target, and turns the numpy
result into the report's plain dataclasses; :func:`on_policy_value` is the target's own logged
value, for when it also ran online.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import norm

from abplatform.offline.ope import (
    DEFAULT_MAX_WEIGHT_SHARE,
    DEFAULT_MIN_ESS,
    Estimate,
    LoggedRows,
    OPEResult,
    RewardModel,
    WeightExplosionWarning,
    evaluate_rows,
)
from abplatform.offline.target_policy import NO_ITEM, DeterministicPages, TargetPolicy
from abplatform.report.offline_policy import (
    OfflinePolicyEvaluation,
    OnPolicyValue,
    PolicyEstimate,
    PositionValue,
    PositionWeights,
)

ESTIMAND = ("expected reward (click) per logged impression row under the target policy: the mean over "
            "logged rows i of E[r | x_i, a, k_i] with a ~ pi_e(. | x_i, k_i) at the row's logged position k_i "
            "(Open Bandit Pipeline's policy value); per position: the target's click-through rate at that slot "
            "over the rows logged there; per page: the sum over the logged positions (expected clicks on a "
            "full page of the target). Intervals are normal (CLT) at the report's level, from influence values "
            "clustered by session.")


def _number(x: float) -> float | None:
    """A JSON number: NaN and infinities become None."""
    x = float(x)
    return x if math.isfinite(x) else None


def _policy_estimate(e: Estimate, rows_per_position: np.ndarray) -> PolicyEstimate:
    per_position = [
        PositionValue(position=int(k), value=_number(v), se=_number(se), ci_low=_number(lo), ci_high=_number(hi),
                      n_rows=int(n))
        for k, v, se, (lo, hi), n in zip(e.positions, e.per_position, e.per_position_se, e.per_position_ci,
                                          rows_per_position, strict=True)]
    return PolicyEstimate(estimator=e.estimator, value=_number(e.per_row), se=_number(e.per_row_se),
                          ci_low=_number(e.per_row_ci[0]), ci_high=_number(e.per_row_ci[1]),
                          per_position=per_position, page_value=_number(e.clicks_per_session),
                          page_se=_number(e.se), page_ci_low=_number(e.ci[0]), page_ci_high=_number(e.ci[1]))


def _unlogged_positions(target: TargetPolicy, result: OPEResult) -> list[str]:
    """Deterministic pages showing items at positions the log never has: the per-page value leaves them out."""
    if not isinstance(target, DeterministicPages):
        return []
    shown = np.flatnonzero((target.pages != NO_ITEM).any(axis=0)) + 1
    unlogged = np.setdiff1d(shown, result.weights.positions)
    if not len(unlogged):
        return []
    note = (f"the target shows items at positions {unlogged.tolist()}, which the log never has: the per-page "
            f"value covers the logged positions {result.weights.positions.tolist()} only")
    return [note]


def evaluate_policy(rows: LoggedRows, target: TargetPolicy, reward_model: RewardModel | None = None, *,
                    alpha: float = 0.05, min_ess: float = DEFAULT_MIN_ESS,
                    max_weight_share: float = DEFAULT_MAX_WEIGHT_SHARE, warn: bool = True,
                    on_policy: OnPolicyValue | None = None) -> OfflinePolicyEvaluation:
    """The report's off-policy evaluation of ``target`` on ``rows``: IPS and SNIPS (and DR and DM with a
    ``reward_model``), per row, per position and per page, the weights' ESS and every warning (also
    raised as a :class:`WeightExplosionWarning` with ``warn``). ``on_policy``: :func:`on_policy_value`
    of the target's own logged rows, if it ran online."""
    result = evaluate_rows(rows, target, reward_model, alpha=alpha, min_ess=min_ess,
                           max_weight_share=max_weight_share, warn=False)
    weights = result.weights
    if warn and weights.exploded:
        warnings.warn("off-policy weights explode: " + "; ".join(weights.reasons), WeightExplosionWarning,
                      stacklevel=2)
    positions = [PositionWeights(position=int(k), n_rows=int(n), ess=_number(ess), match_rate=_number(m),
                                 max_weight_share=_number(share))
                 for k, n, ess, m, share in zip(weights.positions, result.position_rows, weights.ess,
                                                weights.match_rate, weights.max_weight_share, strict=True)]
    return OfflinePolicyEvaluation(
        estimand=ESTIMAND, target=target.description, alpha=alpha, n_rows=result.n_rows,
        n_sessions=result.n_sessions,
        estimates=[_policy_estimate(e, result.position_rows) for e in result.estimates.values()],
        ess=_number(weights.ess_total), positions=positions, max_weight=_number(weights.max_weight),
        weight_explosion=weights.exploded, warnings=list(weights.reasons) + _unlogged_positions(target, result),
        on_policy=on_policy)


def on_policy_value(rewards: np.ndarray, session_ids: np.ndarray, alpha: float = 0.05) -> OnPolicyValue:
    """Mean reward of the logged rows (e.g. the target arm's own impressions), with a normal CI from the
    rows' deviations summed per session: Var = C/(C-1) sum_s (sum_{i in s} (r_i - mean))^2 / n^2."""
    r = np.asarray(rewards, float)
    n = len(r)
    if n == 0:
        return OnPolicyValue(value=None)
    _, session = np.unique(np.asarray(session_ids), return_inverse=True)
    c = int(session.max()) + 1
    value = float(r.mean())
    sums = np.bincount(session, (r - value) / n, c)
    se = math.sqrt(c / (c - 1) * float(np.sum(sums ** 2))) if c > 1 else float("nan")
    z = float(norm.ppf(1 - alpha / 2))
    return OnPolicyValue(value=value, se=_number(se), ci_low=_number(value - z * se), ci_high=_number(value + z * se),
                         n_rows=n, n_sessions=c)
