"""Replay speed and memory at 1M and 5M logged sessions (issue 4), run by hand:

    .venv/bin/python benchmarks/replay_speed.py --world benchmarks/out/world-130000

The 5M-session input tiles the 1M-session world five times with fresh session ids (the same
users and queries), so it needs no bigger world. For each size, in fresh subprocesses:
replay wall time through V1 and V2 with 2 workers (oracle users), CPU seconds (parent and
workers), peak RSS (parent and largest worker), and the time just to rewrite the replay's output
event log to parquet (read + write with the replay's own writer and settings) — the I/O floor —
once in one process and once in 2 processes (as the replay runs), the fair comparison; the CPU
seconds of the 2-process rewrite give a ratio that load from other jobs moves less than wall
time. The load average is recorded with each run (the machine is shared). Then a plain
per-session Python loop doing the same replay on a sample of sessions gives the speed-up of the
vectorised batches. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

TILE = r"""
import duckdb, shutil, sys
from pathlib import Path
src, dst, copies = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
if dst.exists(): shutil.rmtree(dst)
dst.mkdir(parents=True)
for t in ("items", "pre_sessions", "pre_impressions", "truth"):
    shutil.copytree(src / t, dst / t)
shutil.copy2(src / "world.json", dst / "world.json")
for t in ("sessions", "candidates"):
    (dst / t).mkdir()
    for c in range(copies):
        for f in sorted((src / t).glob("*.parquet")):
            duckdb.execute(f"COPY (SELECT * REPLACE (session_id + {c} * 1000000000000 AS session_id) "
                           f"FROM read_parquet('{f}')) TO '{dst / t / f'c{c}-{f.name}'}' (FORMAT parquet)")
"""

REPLAY = r"""
import json, os, resource, sys, time
from pathlib import Path
from abplatform.dataset import Dataset
from abplatform.rankers import Catalog, V1Ranker, V2Ranker
from abplatform.replay import ReplayArm, ReplaySpec, replay
from abplatform.world.oracle import oracle_users_and_raters
world, out = Path(sys.argv[1]), Path(sys.argv[2])
ds = Dataset(world); cat = Catalog.from_dataset(ds)
arms = [ReplayArm("control", V1Ranker().fit(ds, cat)), ReplayArm("treatment", V2Ranker().fit(ds, cat))]
def cpu():
    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
load, c0, t0 = os.getloadavg()[0], cpu(), time.perf_counter()
users, raters = oracle_users_and_raters(ds.path)
res = replay(ds, ReplaySpec(arms=arms, salt="bench", workers=2, behaviour=users, rater=raters), out)
wall = time.perf_counter() - t0
print(json.dumps({"sessions": res.sessions, "impressions": res.impressions, "seconds": wall, "cpu_seconds": cpu() - c0,
                  "load_before": load, "load_after": os.getloadavg()[0],
                  "rss_parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""

REWRITE = r"""
import json, multiprocessing as mp, resource, sys, time
from pathlib import Path
import pyarrow.parquet as pq
from abplatform.replay.run import keep_freed_memory, write_parquet  # the replay's own writer and workers' setup
out, tmp, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
tables = ("sessions", "impressions", "page_labels", "relevance_labels")
files = [(f, tmp / t / f.name) for t in tables for f in sorted((out / t).glob("*.parquet"))]
def rewrite(pair):
    write_parquet(pq.read_table(pair[0]), pair[1])
for t in tables:
    (tmp / t).mkdir(parents=True, exist_ok=True)
def cpu():
    return sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
c0, t0 = cpu(), time.perf_counter()
if workers > 1:  # the replay's way: a forked pool, one file per task
    with mp.get_context("fork").Pool(workers, initializer=keep_freed_memory) as pool:
        for _ in pool.imap_unordered(rewrite, files):
            pass
else:
    keep_freed_memory()
    for pair in files:
        rewrite(pair)
print(json.dumps({"seconds": time.perf_counter() - t0, "cpu_seconds": cpu() - c0}))
"""

NAIVE = r"""
import json, sys, time
import numpy as np, pyarrow.parquet as pq
from pathlib import Path
from abplatform.dataset import Dataset
from abplatform.world.oracle import OracleBehaviour
from abplatform.rankers import CandidateBatch, Catalog, V1Ranker, V2Ranker, rank
from abplatform.rankers import candidate_matrix
from abplatform.replay.assignment import assign
from abplatform.world.truth import load_truth
world, n = Path(sys.argv[1]), int(sys.argv[2])
ds = Dataset(world); cat = Catalog.from_dataset(ds)
rankers = [V1Ranker().fit(ds, cat), V2Ranker().fit(ds, cat)]
behaviour = OracleBehaviour(load_truth(world))
f = sorted((world / "sessions").glob("*.parquet"))[0]
s = pq.read_table(f).slice(0, n); c = pq.read_table(str(f).replace("sessions", "candidates"))
ids, units, queries = s["session_id"].to_numpy(), s["unit_id"].to_pylist(), s["query"].to_pylist()
cands = cat.rows(candidate_matrix(ids, c["session_id"].to_numpy(), c["item_id"].to_numpy()))
t0 = time.perf_counter()
rows = []
for i in range(len(ids)):  # one session at a time: assign, score, rank, respond
    arm = int(assign("bench", [units[i]], [1, 1])[0])
    batch = CandidateBatch(ids[i:i + 1], [queries[i]], cands[i:i + 1])
    shown = rank(rankers[arm].score(batch), batch.candidate_rows, 10)
    r = behaviour.respond(1, ids[i:i + 1], [queries[i]], [units[i]], shown)
    rows.extend(zip(np.repeat(ids[i], 10), shown[0], r.clicked[0], r.purchased[0], r.orders[0]))
print(json.dumps({"sessions": len(ids), "seconds": time.perf_counter() - t0}))
"""


def run(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", default="benchmarks/out/world-130000", help="a ~1M-session world")
    ap.add_argument("--out", default="benchmarks/out")
    ap.add_argument("--naive-sessions", type=int, default=3000)
    args = ap.parse_args()
    out = Path(args.out)
    tiled = out / "world-5x"
    subprocess.run([sys.executable, "-c", TILE, args.world, tiled, "5"], check=True)
    rows = []
    for name, world in (("1x", Path(args.world)), ("5x", tiled)):
        dest = out / f"replay-speed-{name}"
        shutil.rmtree(dest, ignore_errors=True)  # removing an old result is no part of the replay
        r = run(REPLAY, world, dest)
        floors = {}
        for workers in (1, 2):
            floors[workers] = run(REWRITE, dest, out / f"rewrite-{name}", workers)
            shutil.rmtree(out / f"rewrite-{name}")
        rows.append({"input": name, **r, "write_1p": floors[1]["seconds"], "write_2p": floors[2]["seconds"],
                     "write_cpu": floors[2]["cpu_seconds"]})
        print(rows[-1], flush=True)
    naive = run(NAIVE, args.world, args.naive_sessions)
    print(naive)
    print("\n| input | sessions | impressions | replay wall (s) | sessions/s | load avg (1 min, before / after) "
          "| write-only wall, 1 / 2 processes (s) | replay / write-only wall, 1 / 2 processes "
          "| replay CPU (s) | write-only CPU (s) | replay / write-only CPU "
          "| peak RSS parent (MB) | peak RSS largest worker (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input']} | {r['sessions']:,} | {r['impressions']:,} | {r['seconds']:.1f} | "
              f"{r['sessions'] / r['seconds']:,.0f} | {r['load_before']:.1f} / {r['load_after']:.1f} | "
              f"{r['write_1p']:.1f} / {r['write_2p']:.1f} | {r['seconds'] / r['write_1p']:.1f}× / "
              f"{r['seconds'] / r['write_2p']:.1f}× | {r['cpu_seconds']:.1f} | {r['write_cpu']:.1f} | "
              f"{r['cpu_seconds'] / r['write_cpu']:.1f}× | {r['rss_parent_mb']:,.0f} | {r['rss_worker_mb']:,.0f} |")
    naive_rate = naive["sessions"] / naive["seconds"]
    print(f"\nPlain per-session Python loop: {naive_rate:,.0f} sessions/s on one core "
          f"({naive['sessions']:,} sessions); vectorised replay at 1M: "
          f"{rows[0]['sessions'] / rows[0]['seconds'] / naive_rate:,.0f}x faster (2 workers).")


if __name__ == "__main__":
    main()
