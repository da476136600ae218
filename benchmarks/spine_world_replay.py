"""World generation and replay at 250k and 1M sessions: wall time and peak RSS (run by hand).

    .venv/bin/python benchmarks/spine_world_replay.py [--out benchmarks/out]

Each step runs in a fresh subprocess so its peak RSS (ru_maxrss of the child) is its own.
Prints a Markdown table; the figures in benchmarks/README.md come from one run of this script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

STEP = r"""
import json, sys, time, resource
from pathlib import Path
step, users, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
t0 = time.perf_counter()
if step == "generate":
    from abplatform.world.generate import WorldParams, generate_world
    generate_world(WorldParams(users=users), out / f"world-{users}")
    import duckdb
    n = duckdb.execute(f"SELECT COUNT(*) FROM read_parquet('{out}/world-{users}/sessions/*.parquet')").fetchall()[0][0]
else:
    from abplatform.dataset import Dataset
    from abplatform.rankers import Catalog, V1Ranker, V2Ranker
    from abplatform.replay import ReplayArm, ReplaySpec, replay
    from abplatform.world.oracle import oracle_users_and_raters
    ds = Dataset(out / f"world-{users}")
    cat = Catalog.from_dataset(ds)
    arms = [ReplayArm("control", V1Ranker().fit(ds, cat)), ReplayArm("treatment", V2Ranker().fit(ds, cat))]
    oracle, raters = oracle_users_and_raters(ds.path)
    res = replay(ds, ReplaySpec(arms=arms, salt="bench", workers=2, behaviour=oracle, rater=raters), out / f"replay-{users}")
    n = res.sessions
wall = time.perf_counter() - t0
rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"step": step, "users": users, "sessions": n, "seconds": wall,
                  "peak_rss_mb": max(rss_self, rss_children) / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/out")
    ap.add_argument("--users", default="33000,130000", help="comma-separated world sizes (users)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for users in [int(u) for u in args.users.split(",")]:
        for step in ("generate", "replay"):
            res = subprocess.run([sys.executable, "-c", STEP, step, str(users), str(out)], check=True,
                                 capture_output=True, text=True)
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print("\n| step | users | sessions | wall (s) | sessions/s | peak RSS (MB) |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['users']:,} | {r['sessions']:,} | {r['seconds']:.1f} | "
              f"{r['sessions'] / r['seconds']:,.0f} | {r['peak_rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()
