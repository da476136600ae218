"""The same ~10M-impression scorecard on duckdb and on Spark local[2]: wall time and peak memory.

    .venv/bin/python benchmarks/spark_vs_duckdb.py [--data DIR] [--out benchmarks/out/spark]

``--data``: a replayed event log (a dataset folder with arms). Without it, a 130k-user world is
generated (``generate_world(WorldParams(users=130000))``, ~1.0M sessions, ~10M impressions) and
replayed V1 vs V2 into ``--out`` first (not timed).

Each engine runs in a fresh subprocess that calls the real ``abplatform.scorecard.build_scorecard``
(unit counts and SRM, sufficient statistics overall and for the 3 segmentations, the 14 cumulative
daily looks, then the statistics); for Spark, its ``MetricsEngine`` is swapped for
``SparkMetricsEngine``. Peak memory is the peak summed RSS of the subprocess and all its
descendants (the Spark JVM and its Python workers), sampled every 0.1 s from /proc. Prints a
Markdown table and checks that the two scorecards agree (1e-9 relative).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

STEP = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore", FutureWarning)
engine, data, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
from abplatform import scorecard
from abplatform.config import Experiment
from abplatform.dataset import Dataset
exp = Experiment(name="bench", arms=[{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}])
timings = {}
if engine == "spark":
    from abplatform.metrics.spark_engine import SparkMetricsEngine
    from abplatform.spark_session import spark_session
    t = time.perf_counter()
    spark = spark_session("local[2]")
    spark.range(1).count()
    timings["spark_start_s"] = time.perf_counter() - t

    def factory(dataset, engine, spark_settings, *args, **kwargs):  # make_metrics_engine's, the warm session reused
        return SparkMetricsEngine(dataset, *args, spark=spark, **kwargs)

    scorecard.make_metrics_engine = factory
t = time.perf_counter()
card = scorecard.build_scorecard(Dataset(data), exp)
timings["scorecard_s"] = time.perf_counter() - t
timings["total_s"] = time.perf_counter() - t0
card.overall.to_parquet(f"{out}/overall-{engine}.parquet")
card.sufficient_stats.to_parquet(f"{out}/suff-{engine}.parquet")
print(json.dumps(timings))
"""


def tree_rss_mb(root: int) -> float:
    """Summed RSS of ``root`` and its descendants, from /proc."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parent[int(d)] = int(fields[1])
            rss[int(d)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p and c not in tree:
                tree.add(c)
                frontier.append(c)
    return sum(rss.get(p, 0) for p in tree) / 2**20


def run(engine: str, data: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", STEP, engine, str(data), str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    th.join()
    if proc.returncode:
        raise SystemExit(f"{engine} failed:\n{stderr[-3000:]}")
    res = json.loads(stdout.strip().splitlines()[-1])
    return {"engine": engine, "process_wall_s": wall, "peak_rss_mb": peak[0], **res}


def ensure_data(out: Path) -> Path:
    from abplatform.dataset import Dataset
    from abplatform.rankers import Catalog, V1Ranker, V2Ranker
    from abplatform.replay import ReplayArm, ReplaySpec, replay
    from abplatform.world.oracle import oracle_users_and_raters
    from abplatform.world.generate import WorldParams, generate_world

    world, rep = out / "world-130000", out / "replay-130000"
    if not (rep / "world.json").is_file():
        if not (world / "world.json").is_file():
            generate_world(WorldParams(users=130_000), world)
        ds = Dataset(world)
        cat = Catalog.from_dataset(ds)
        arms = [ReplayArm("control", V1Ranker().fit(ds, cat)), ReplayArm("treatment", V2Ranker().fit(ds, cat))]
        users, raters = oracle_users_and_raters(world)
        replay(ds, ReplaySpec(arms=arms, salt="bench", workers=2, behaviour=users, rater=raters), rep)
    return rep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="a replayed dataset folder (default: generate a 130k-user world)")
    ap.add_argument("--out", default="benchmarks/out/spark")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve() if args.data else ensure_data(out)

    import duckdb

    n_imp = duckdb.sql(f"SELECT COUNT(*) FROM read_parquet('{data}/impressions/*.parquet')").fetchall()[0][0]
    n_ses = duckdb.sql(f"SELECT COUNT(*) FROM read_parquet('{data}/sessions/*.parquet')").fetchall()[0][0]
    print(f"data: {data} ({n_ses:,} sessions, {n_imp:,} impressions)", flush=True)
    rows = []
    for engine in ("duckdb", "spark"):
        rows.append(run(engine, data, out))
        print(json.dumps(rows[-1]), flush=True)

    import numpy as np
    import pandas as pd

    a, b = pd.read_parquet(out / "suff-duckdb.parquet"), pd.read_parquet(out / "suff-spark.parquet")
    num = [c for c in a.columns if c.startswith("sum_") or c == "n"]
    same_suff = (len(a) == len(b) and a[["metric", "segment", "segment_value", "arm"]].equals(
        b[["metric", "segment", "segment_value", "arm"]])
        and np.allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-9, atol=0, equal_nan=True))
    oa, ob = pd.read_parquet(out / "overall-duckdb.parquet"), pd.read_parquet(out / "overall-spark.parquet")
    fl = [c for c in oa.columns if pd.api.types.is_float_dtype(oa[c])]
    same_card = np.allclose(oa[fl].to_numpy(float), ob[fl].to_numpy(float), rtol=1e-9, atol=0, equal_nan=True)
    print(f"\nsufficient statistics equal (1e-9 rel): {same_suff}; scorecards equal: {same_card}")
    d, s = rows
    print("\n| engine | Spark start-up (s) | scorecard (s) | process wall (s) | peak RSS, process tree (MB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r.get('spark_start_s', 0):.1f} | {r['scorecard_s']:.1f} | "
              f"{r['process_wall_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    print(f"\nSpark / duckdb: scorecard {s['scorecard_s'] / d['scorecard_s']:.1f}x, "
          f"process wall {s['process_wall_s'] / d['process_wall_s']:.1f}x, memory {s['peak_rss_mb'] / d['peak_rss_mb']:.1f}x")


if __name__ == "__main__":
    main()
