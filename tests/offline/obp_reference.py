"""An independent numpy transcription of the Open Bandit Pipeline's estimators (obp/ope/estimators.py:
``InverseProbabilityWeighting``, ``SelfNormalizedInverseProbabilityWeighting``, ``DirectMethod``,
``DoublyRobust``), in obp's dense shapes, written from their published formulas — it imports nothing
from the platform. The tests and ``benchmarks/ope_crosscheck.py`` compare the platform with it.

Shapes as in obp: ``action`` (n,) an index into the actions, ``position`` (n,) 0-based slot,
``pscore`` (n,) pi_b(a_t | x_t) at that slot, ``action_dist`` and ``q_hat`` (n, n_actions, len_list).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def round_rewards(reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
                  action_dist: np.ndarray, q_hat: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each estimator's ``_estimate_round_rewards`` (SNIPW's before its division by mean(iw))."""
    t = np.arange(len(reward))
    iw = action_dist[t, action, position] / pscore
    out = {"ips": reward * iw, "snips": reward * iw}
    if q_hat is not None:
        q_at_position = q_hat[t, :, position]
        pi_at_position = action_dist[t, :, position]
        # obp: np.average(q, weights=pi, axis=1) = sum_a pi q / sum_a pi, and sum_a pi = 1 on these targets
        dm = (q_at_position * pi_at_position).sum(axis=1) / pi_at_position.sum(axis=1)
        out["dm"] = dm
        out["dr"] = dm + iw * (reward - q_hat[t, action, position])
    return out


def policy_values(reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
                  action_dist: np.ndarray, q_hat: np.ndarray | None = None) -> dict[str, float]:
    """obp's ``estimate_policy_value`` of each estimator: the mean of its round rewards (SNIPW: / mean iw)."""
    t = np.arange(len(reward))
    iw = action_dist[t, action, position] / pscore
    rounds = round_rewards(reward, action, position, pscore, action_dist, q_hat)
    values = {name: float(r.mean()) for name, r in rounds.items()}
    values["snips"] = float(np.mean(reward * iw / iw.mean()))
    return values


def by_position(reward: np.ndarray, action: np.ndarray, position: np.ndarray, pscore: np.ndarray,
                action_dist: np.ndarray, q_hat: np.ndarray | None = None) -> dict[int, dict[str, float]]:
    """obp's estimators on the rounds of each slot alone (0-based slot -> estimator -> value)."""
    return {int(k): policy_values(reward[m], action[m], position[m], pscore[m], action_dist[m],
                                  None if q_hat is None else q_hat[m])
            for k in np.unique(position) for m in [position == k]}


def clustered_se(values: np.ndarray, weights: np.ndarray, groups: np.ndarray, sessions: np.ndarray) -> float:
    """The session-clustered standard error of sum_g [sum_{i in g} values_i / sum_{i in g} weights_i], by a
    loop over rows: influence (values_i - V_g weights_i) / sum_g weights, summed per session,
    Var = C/(C-1) sum_s S_s^2 (weights 1: a mean; weights w: the self-normalised ratio)."""
    num: dict[int, float] = defaultdict(float)
    den: dict[int, float] = defaultdict(float)
    for v, w, g in zip(values.tolist(), weights.tolist(), groups.tolist(), strict=True):
        num[g] += v
        den[g] += w
    per_session: dict[int, float] = defaultdict(float)
    for v, w, g, s in zip(values.tolist(), weights.tolist(), groups.tolist(), sessions.tolist(), strict=True):
        per_session[s] += (v - num[g] / den[g] * w) / den[g]
    c = len(per_session)
    return float(np.sqrt(c / (c - 1) * sum(x * x for x in per_session.values())))
