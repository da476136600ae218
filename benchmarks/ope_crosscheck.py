"""The per-row off-policy estimators against an independent numpy transcription of obp's formulas (run by hand).

    .venv/bin/python benchmarks/ope_crosscheck.py [--sessions 20000] [--large-rows 1000000] [--seed 0]

1. Agreement: on the slot-level synthetic log of ``tests/offline/slot_world.py`` (3 slots, 80 items,
   PBM clicks, epsilon-greedy logging with exact marginal propensities), for full pages, partial
   pages (60% of sessions keep one random slot) and one slot per page, and for three targets (the
   Thompson-like stochastic table per (context, slot, item), the same per (slot, item), a
   deterministic ranker): the largest absolute difference between ``abplatform.offline.ope`` and
   ``tests/offline/obp_reference.py`` (obp's IPW, SNIPW, DM, DR in obp's dense shapes) over the
   per-row, per-position and per-page values of each estimator.
2. The partial-page regression: on one slot per page, per-row SNIPW and IPW beside what the former
   per-session code reported (IPS summed over positions and divided by all sessions; SNIPS summed
   over positions, i.e. a per-page value).
3. Runtime at ~``--large-rows`` logged rows (half the sessions keep one slot): the platform's
   ``evaluate_rows`` (all four estimators with per-position and per-page values, session-clustered
   CIs and weight diagnostics) against the numpy reference's point estimates (obp's dense
   (rows, items, slots) arrays, built and evaluated in chunks of 50,000 rows to bound memory), each
   timed best of ``--repeats``; peak memory of the platform call by tracemalloc.
Prints Markdown (the tables of benchmarks/ope_crosscheck.md).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abplatform.offline import ope
from tests.offline import obp_reference as obp
from tests.offline.slot_world import (
    SlotWorld,
    deterministic_target,
    draw_log,
    item_index,
    make_world,
    stochastic_target,
)

ESTIMATORS = ("ips", "snips", "dr", "dm")
LOGS = {"full pages": 0.0, "partial pages (60% one slot)": 0.6, "one slot per page": 1.0}
CHUNK = 50_000


def reward_model(world: SlotWorld, ctx: np.ndarray) -> ope.RewardModel:
    return lambda rows, items, positions: world.q_hat[ctx[rows], positions - 1, item_index(items)]


def dense(table: np.ndarray, world: SlotWorld, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """obp's action_dist and q_hat, (rows, n_actions, len_list), for rows of contexts ``ctx``."""
    return np.transpose(table[ctx], (0, 2, 1)), np.transpose(world.q_hat[ctx], (0, 2, 1))


def agreement(world: SlotWorld, sessions: int, seed: int) -> list[tuple[str, str, dict[str, float]]]:
    out = []
    for log_name, partial in LOGS.items():
        log = draw_log(world, sessions, seed, epsilon=0.3, partial=partial)
        targets = {"stochastic per (context, slot)": stochastic_target(world, True),
                   "stochastic per slot": stochastic_target(world, False),
                   "deterministic ranker": deterministic_target(world, log)}
        for target_name, (target, table) in targets.items():
            action_dist, q_hat = dense(table, world, log.ctx)
            args = (log.rows.rewards, log.item, log.slot, log.rows.propensity, action_dist, q_hat)
            per_row, per_slot = obp.policy_values(*args), obp.by_position(*args)
            res = ope.evaluate_rows(log.rows, target, reward_model(world, log.ctx), warn=False)
            diffs = {}
            for name in ESTIMATORS:
                e = res[name]
                ref_slots = np.array([per_slot[k][name] for k in sorted(per_slot)])
                diffs[name] = max(abs(e.per_row - per_row[name]), float(np.abs(e.per_position - ref_slots).max()),
                                  abs(e.clicks_per_session - ref_slots.sum()))
            out.append((log_name, target_name, diffs))
    return out


def partial_page_regression(world: SlotWorld, sessions: int, seed: int) -> dict[str, float]:
    log = draw_log(world, sessions, seed, epsilon=1.0, partial=1.0)
    target, table = deterministic_target(world, log)
    res = ope.evaluate_rows(log.rows, target, warn=False)
    w = table[log.ctx, log.slot, log.item] / log.rows.propensity
    wr = w * log.rows.rewards
    per_session_ips = sum(wr[log.slot == k].sum() for k in range(3)) / sessions  # the former IPS
    per_session_snips = sum(wr[log.slot == k].sum() / w[log.slot == k].sum() for k in range(3))  # former SNIPS
    return {"ips": res["ips"].per_row, "snips": res["snips"].per_row, "page_ips": res["ips"].clicks_per_session,
            "page_snips": res["snips"].clicks_per_session, "old_ips": per_session_ips,
            "old_snips": per_session_snips, "rows": len(log.rows)}


def reference_large(world: SlotWorld, table: np.ndarray, log) -> dict[str, float]:
    """obp's point estimates (per row) on a large log, dense arrays built a chunk of rows at a time."""
    n = len(log.rows)
    sums = dict.fromkeys(ESTIMATORS, 0.0)
    sum_w = 0.0
    for lo in range(0, n, CHUNK):
        s = slice(lo, min(n, lo + CHUNK))
        action_dist, q_hat = dense(table, world, log.ctx[s])
        rounds = obp.round_rewards(log.rows.rewards[s], log.item[s], log.slot[s], log.rows.propensity[s],
                                   action_dist, q_hat)
        for name in ESTIMATORS:
            sums[name] += float(rounds[name].sum())
        sum_w += float((action_dist[np.arange(s.stop - s.start), log.item[s], log.slot[s]]
                        / log.rows.propensity[s]).sum())
    values = {name: total / n for name, total in sums.items()}
    values["snips"] = sums["snips"] / sum_w
    return values


def best_of(repeats: int, fn):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def runtime(world: SlotWorld, rows: int, seed: int, repeats: int) -> list[dict]:
    log = draw_log(world, rows // 2, seed, epsilon=0.3, partial=0.5)  # 2 rows per session on average
    out = []
    for target_name, (target, table) in {"stochastic per (context, slot)": stochastic_target(world, True),
                                         "deterministic ranker": deterministic_target(world, log)}.items():
        model = reward_model(world, log.ctx)
        t_platform, res = best_of(repeats, lambda t=target, m=model: ope.evaluate_rows(log.rows, t, m, warn=False))
        t_reference, ref = best_of(repeats, lambda t=table: reference_large(world, t, log))
        tracemalloc.start()
        ope.evaluate_rows(log.rows, target, model, warn=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        diff = max(abs(res[name].per_row - ref[name]) for name in ESTIMATORS)
        out.append({"target": target_name, "rows": len(log.rows), "sessions": len(log.session_ids),
                    "platform": t_platform, "reference": t_reference, "peak_mb": peak / 2**20, "diff": diff})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20_000)
    ap.add_argument("--large-rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    world = make_world(args.seed)
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}\n")
    print(f"### numpy (obp formulas) vs platform: max abs difference, {args.sessions:,} sessions\n")
    print("| log | target | " + " | ".join(ESTIMATORS) + " |\n|---|---|" + "---|" * len(ESTIMATORS))
    for log_name, target_name, diffs in agreement(world, args.sessions, args.seed + 1):
        print(f"| {log_name} | {target_name} | " + " | ".join(f"{diffs[e]:.1e}" for e in ESTIMATORS) + " |")
    r = partial_page_regression(world, 60_000, args.seed + 2)
    print(f"\n### One slot per page ({r['rows']:,} rows, uniform logging, deterministic target)\n")
    print("| | IPS | SNIPS |\n|---|---|---|")
    print(f"| per row (the estimand) | {r['ips']:.5f} | {r['snips']:.5f} |")
    print(f"| per page (sum over slots) | {r['page_ips']:.5f} | {r['page_snips']:.5f} |")
    print(f"| former per-session code | {r['old_ips']:.5f} | {r['old_snips']:.5f} |")
    print(f"\n### Runtime, ~{args.large_rows:,} logged rows (best of {args.repeats})\n")
    print("| target | rows | sessions | platform (s) | numpy reference (s) | platform / reference | "
          "platform peak (MB) | max abs diff per row |\n|---|---|---|---|---|---|---|---|")
    for t in runtime(world, args.large_rows, args.seed + 3, args.repeats):
        print(f"| {t['target']} | {t['rows']:,} | {t['sessions']:,} | {t['platform']:.2f} | {t['reference']:.2f} | "
              f"{t['platform'] / t['reference']:.2f} | {t['peak_mb']:.0f} | {t['diff']:.1e} |")


if __name__ == "__main__":
    main()
