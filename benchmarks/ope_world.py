"""Off-policy estimates of V1's and V2's clicks beside their true values on synthetic worlds (run by hand).

    .venv/bin/python benchmarks/ope_world.py [--users 20000] [--seeds 7,8,9] [--out benchmarks/out/offline]

For each world seed: generate the world (cached under --out), load the logged experiment period
(epsilon-randomised V1, epsilon = 0.1, logged marginal propensities), fit V1 and V2 on the
pre-period and a PBM click model (EM) on the logged impressions, rank every logged session's
candidates with V1 and V2, and estimate each ranker's clicks per session and item CTR with IPS,
SNIPS, DR (PBM baseline) and DM. The truth is the exact expectation under the world's
position-based behaviour model for the ranker's pages on the same sessions. Prints a Markdown
table (the one in benchmarks/offline.md) and writes ope_world.json under --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from abplatform.dataset import Dataset
from abplatform.offline import ope
from abplatform.rankers import Catalog, V1Ranker, V2Ranker
from abplatform.world.generate import WorldParams, generate_world
from abplatform.world.oracle import oracle_click_probabilities


def world_path(out: Path, users: int, seed: int) -> Path:
    path = out / f"world-{users}-s{seed}"
    if not (path / "world.json").is_file():
        generate_world(WorldParams(users=users, seed=seed), path)
    return path


def prepare(world: Path) -> dict:
    """Logged pages, fitted rankers' pages for every logged session, and the fitted PBM click model."""
    ds = Dataset(world)
    logged = ope.load_logged_pages(ds)
    catalog = Catalog.from_dataset(ds)
    pages = {r.name: ope.ranker_pages(r.fit(ds, catalog), catalog, logged) for r in (V1Ranker(), V2Ranker())}
    t0 = time.perf_counter()
    model, vocab = ope.fit_click_model(ds, "pbm")
    return {"logged": logged, "catalog": catalog, "pages": pages, "model": model, "vocab": vocab,
            "fit_seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--seeds", default="7,8,9")
    ap.add_argument("--out", default="benchmarks/out/offline")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        world = world_path(out, args.users, seed)
        t0 = time.perf_counter()
        prep = prepare(world)
        logged = prep["logged"]
        truths = {}
        for name, pages in prep["pages"].items():
            truth_cells = oracle_click_probabilities(world, logged, pages)
            truth = float(truth_cells.sum(axis=1).mean())
            truths[name] = truth
            page_len = float((pages >= 0).sum(axis=1).mean())
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ope.WeightExplosionWarning)
                res = ope.evaluate_ranker(logged, pages, prep["model"], prep["vocab"])
            for e in res.estimates.values():
                rows.append({
                    "seed": seed, "sessions": len(logged), "ranker": name, "estimator": e.estimator,
                    "estimate": e.clicks_per_session, "se": e.se, "ci_low": e.ci[0], "ci_high": e.ci[1],
                    "truth": truth, "covers": bool(e.ci[0] <= truth <= e.ci[1]),
                    "ctr": e.ctr, "ctr_ci": list(e.ctr_ci), "true_ctr": truth / page_len,
                    "per_position": e.per_position.tolist(), "true_per_position": truth_cells.mean(axis=0).tolist(),
                    "ess_min": res.weights.ess_min, "ess_mean": float(res.weights.ess.mean()),
                    "match_rate_mean": float(res.weights.match_rate.mean()), "max_weight": res.weights.max_weight,
                    "flagged": res.weights.exploded, "warned": bool(caught),
                })
        print(f"seed {seed}: {len(logged):,} sessions, {time.perf_counter() - t0:.0f}s "
              f"(click model fit {prep['fit_seconds']:.0f}s); true V2/V1 - 1 = {truths['v2'] / truths['v1'] - 1:+.2%}",
              file=sys.stderr, flush=True)
    (out / "ope_world.json").write_text(json.dumps(rows, indent=1))
    print("| world seed | sessions | ranker | estimator | clicks/session (95% CI) | true | covered | "
          "item CTR est. | true item CTR | ESS min / mean per position | max weight |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['sessions']:,} | {r['ranker']} | {r['estimator']} | {r['estimate']:.4f} "
              f"({r['ci_low']:.4f}, {r['ci_high']:.4f}) | {r['truth']:.4f} | {'yes' if r['covers'] else 'no'} | "
              f"{r['ctr']:.4f} | {r['true_ctr']:.4f} | {r['ess_min']:,.0f} / {r['ess_mean']:,.0f} | "
              f"{r['max_weight']:.0f} |")
    print("\nLift V2 / V1 - 1 (point estimates; truth exact):")
    print("| world seed | true | ips | snips | dr | dm |\n|---|---|---|---|---|---|")
    for seed in sorted({r["seed"] for r in rows}):
        get = {(r["ranker"], r["estimator"]): r for r in rows if r["seed"] == seed}
        true_lift = get[("v2", "ips")]["truth"] / get[("v1", "ips")]["truth"] - 1
        est = [get[("v2", e)]["estimate"] / get[("v1", e)]["estimate"] - 1 for e in ("ips", "snips", "dr", "dm")]
        print(f"| {seed} | {true_lift:+.2%} | " + " | ".join(f"{x:+.2%}" for x in est) + " |")


if __name__ == "__main__":
    main()
