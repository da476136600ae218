"""Sessions needed for significance: team-draft interleaving vs an A/B test of V1 vs V2 (run by hand).

    .venv/bin/python benchmarks/interleaving_sample_size.py [--users 20000] [--seed 7] [--reps 20]

On one synthetic world (the logged experiment period; V1 and V2 fitted on the pre-period):

* A/B test: users split 50/50 by a hash of (salt, user), each session shows its arm's ranking,
  clicks drawn from the world's true (position-based) behaviour; user-level item CTR compared by
  the delta method (``abplatform.stats.compare``, ratio metric), two-sided p.
* Interleaving: every session shows the team-draft interleaving of V1's and V2's rankings; clicks
  from the world's true behaviour (the "oracle" row) or from the PBM click model fitted on the
  logs (the "fitted PBM" row, the offline prediction); two-sided sign test on the credits.

Each repetition r draws a fresh assignment salt / team-draft coins / clicks (seed r) and a
random order of the users, then grows the sample user by user along a geometric grid: the same
first-m users (and their sessions) feed both methods. Reported: per method, the median over
repetitions of the first grid size with p < 0.05, the smallest grid size with power >= 80%, and
a CLT extrapolation from the whole world (n_80 = n (z_0.975 + z_0.8)^2 se^2 / effect^2).
Writes interleaving_sample_size.json under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ope_world import prepare, world_path  # noqa: E402

from abplatform import rng  # noqa: E402
from abplatform.replay.assignment import assign  # noqa: E402
from abplatform.offline import interleaving as il  # noqa: E402
from abplatform.stats import MetricSpec, compare  # noqa: E402
from abplatform.world.oracle import OracleClicks  # noqa: E402

Z80 = float(stats.norm.ppf(0.975) + stats.norm.ppf(0.8))


def ab_p_values(user_of_session, user_rank, arm_of_user, clicks, shown, grid, n_users):
    """Delta-method p-value of the user-level CTR difference using the first m users, m in grid."""
    x = np.bincount(user_of_session, clicks.sum(axis=1), minlength=n_users)
    y = np.bincount(user_of_session, shown.sum(axis=1), minlength=n_users)
    has = np.bincount(user_of_session, minlength=n_users) > 0
    order = np.argsort(user_rank)
    order = order[has[order]]
    rows = []
    for arm, name in ((0, "control"), (1, "treatment")):
        sel = arm_of_user[order] == arm
        cs = {k: np.concatenate([[0.0], np.cumsum(np.where(sel, v, 0.0))])
              for k, v in (("n", np.ones(len(order))), ("sum_x", x[order]), ("sum_x2", x[order] ** 2),
                           ("sum_y", y[order]), ("sum_y2", y[order] ** 2), ("sum_xy", x[order] * y[order]))}
        for m in grid:
            m = min(m, len(order))
            rows.append({"metric": "item_ctr", "arm": name, "size": m, **{k: v[m] for k, v in cs.items()}})
    suff = pd.DataFrame(rows)
    suff["n"] = suff["n"].astype(np.int64)
    res = compare(suff, {"item_ctr": MetricSpec(type="ratio")}, "control", "treatment", by=["size"])
    p = res.set_index("size")["p_value"]
    return np.array([p.get(min(m, len(order)), np.nan) for m in grid]), res


def sign_p_values(credits, session_rank, sessions_at):
    """Sign-test p-value using the sessions of the first m users (sessions ordered by their user's rank)."""
    c = credits[np.argsort(session_rank, kind="stable")]
    wins = np.concatenate([[0], np.cumsum(c > 0)])
    losses = np.concatenate([[0], np.cumsum(c < 0)])
    out = []
    for s in sessions_at:
        d = wins[s] + losses[s]
        out.append(stats.binomtest(int(wins[s]), int(d)).pvalue if d else 1.0)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", default="benchmarks/out/offline")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    world = world_path(out, args.users, args.seed)
    prep = prepare(world)
    logged = prep["logged"]
    p1, p2 = prep["pages"]["v1"], prep["pages"]["v2"]
    oracle = OracleClicks(world)
    prob = {0: oracle.probabilities(logged.unit_ids, logged.queries, p1),
            1: oracle.probabilities(logged.unit_ids, logged.queries, p2)}
    shown = {0: p1 >= 0, 1: p2 >= 0}
    units, user_of_session = np.unique(logged.unit_ids.astype(str), return_inverse=True)
    n_users, n_sessions, k = len(units), len(logged), p1.shape[1]
    grid = np.unique(np.geomspace(4, n_users, 60).astype(int))
    print(f"prepared {n_sessions:,} sessions of {n_users:,} users in {time.perf_counter() - t0:.0f}s",
          file=sys.stderr, flush=True)

    methods = ("ab", "interleaving_oracle", "interleaving_fitted")
    p_vals = {m: [] for m in methods}
    sessions_grid = []
    full = {}
    for r in range(args.reps):
        g = np.random.default_rng([args.seed, r])
        user_rank = g.permutation(n_users)
        session_rank = user_rank[user_of_session]
        sessions_at = np.searchsorted(np.sort(session_rank), grid, side="left")  # sessions of the first m users
        sessions_grid.append(sessions_at)
        # A/B: assignment by user hash, clicks from the true behaviour model
        arm_of_user = assign(f"ab-rep-{r}", list(units), [1, 1])
        arm = arm_of_user[user_of_session]
        u = rng.uniforms(1000 + r, logged.session_ids, 41, k)
        clicks = np.where(arm[:, None] == 1, u < prob[1], u < prob[0])
        shown_ab = np.where(arm[:, None] == 1, shown[1], shown[0])
        p, res = ab_p_values(user_of_session, user_rank, arm_of_user, clicks, shown_ab, grid, n_users)
        p_vals["ab"].append(p)
        last = res.iloc[-1]
        full.setdefault("ab", []).append({"effect": float(last["abs_effect"]), "se": float(last["abs_se"]),
                                          "rel_effect": float(last["rel_effect"]), "p": float(last["p_value"]),
                                          "units": int(last["n_control"] + last["n_treatment"]),
                                          "sessions": n_sessions})
        # interleaving: team-draft pages, clicks from the oracle and from the fitted PBM
        inter = il.team_draft(logged.session_ids, p1, p2, seed=1000 + r)
        p_int = oracle.probabilities(logged.unit_ids, logged.queries, inter.pages)
        c_oracle = rng.uniforms(1000 + r, logged.session_ids, 42, k) < p_int
        c_fitted = il.click_model_clicks(prep["model"], prep["vocab"], logged.queries, logged.session_ids,
                                         inter.pages, seed=1000 + r)
        for name, c in (("interleaving_oracle", c_oracle), ("interleaving_fitted", c_fitted)):
            cred = il.credit(inter.teams, c)
            p_vals[name].append(sign_p_values(cred, session_rank, sessions_at))
            t = il.interleaving_test(cred)
            se = float(cred.std(ddof=1) / np.sqrt(len(cred)))
            full.setdefault(name, []).append({"effect": t.mean_credit, "se": se, "win_rate": t.win_rate,
                                              "ties": t.ties / t.n, "p": t.sign_p_value, "units": n_users,
                                              "sessions": n_sessions})
        print(f"rep {r}: {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)

    sessions_grid = np.array(sessions_grid)
    mean_sessions = sessions_grid.mean(axis=0)
    summary = {}
    for m in methods:
        p = np.array(p_vals[m])
        sig = p < 0.05
        first = [int(np.argmax(row)) if row.any() else -1 for row in sig]
        users_first = [int(grid[i]) if i >= 0 else np.nan for i in first]
        sessions_first = [int(sessions_grid[r, i]) if i >= 0 else np.nan for r, i in enumerate(first)]
        power = sig.mean(axis=0)
        i80 = int(np.argmax(power >= 0.8)) if (power >= 0.8).any() else -1
        f = full[m]
        effect, se = np.mean([x["effect"] for x in f]), np.mean([x["se"] for x in f])
        n80_sessions = n_sessions * (Z80 * se / effect) ** 2
        summary[m] = {
            "median_users_first_significant": float(np.nanmedian(users_first)),
            "median_sessions_first_significant": float(np.nanmedian(sessions_first)),
            "users_power80": int(grid[i80]) if i80 >= 0 else None,
            "sessions_power80": float(mean_sessions[i80]) if i80 >= 0 else None,
            "clt_sessions_n80": float(n80_sessions),
            "clt_users_n80": float(n80_sessions * n_users / n_sessions),
            "full_world_effect": float(effect), "full_world_se": float(se),
            "full_world": f,
            "power_curve": [{"users": int(u), "sessions": float(s), "power": float(pw)}
                            for u, s, pw in zip(grid, mean_sessions, power)],
        }
    (out / "interleaving_sample_size.json").write_text(json.dumps(
        {"users": n_users, "sessions": n_sessions, "reps": args.reps, "seed": args.seed, "summary": summary},
        indent=1, default=float))
    print(f"World seed {args.seed}: {n_sessions:,} sessions of {n_users:,} users, {args.reps} repetitions, "
          f"{time.perf_counter() - t0:.0f}s.\n")
    print("| method | whole-world effect (se) | median sessions (users) at first p < 0.05 | "
          "sessions (users) at 80% power | CLT n80 sessions (users) |")
    print("|---|---|---|---|---|")
    for m, s in summary.items():
        p80 = (f"{s['sessions_power80']:,.0f} ({s['users_power80']:,})" if s["users_power80"] else "not reached")
        print(f"| {m} | {s['full_world_effect']:.5f} ({s['full_world_se']:.5f}) | "
              f"{s['median_sessions_first_significant']:,.0f} ({s['median_users_first_significant']:,.0f}) | "
              f"{p80} | {s['clt_sessions_n80']:,.0f} ({s['clt_users_n80']:,.0f}) |")
    ab = summary["ab"]
    for m in methods[1:]:
        s = summary[m]
        print(f"\nA/B / {m}: first-significant sessions ratio "
              f"{ab['median_sessions_first_significant'] / s['median_sessions_first_significant']:.1f}x, "
              f"80%-power sessions ratio "
              f"{(ab['sessions_power80'] or np.nan) / (s['sessions_power80'] or np.nan):.1f}x, "
              f"CLT n80 ratio {ab['clt_sessions_n80'] / s['clt_sessions_n80']:.1f}x")


if __name__ == "__main__":
    main()
