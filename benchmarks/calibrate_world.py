"""Calibrate the synthetic world's ``onesearch`` preset to OneSearch-V2's published online lifts.

Run by hand (each step rewrites its section of ``benchmarks/calibration.md``)::

    .venv/bin/python benchmarks/calibrate_world.py search     # the knob search (Levenberg-Marquardt), ~1 h
    .venv/bin/python benchmarks/calibrate_world.py table      # the preset's lifts at the calibration seed
    .venv/bin/python benchmarks/calibrate_world.py validate   # real offline runs on a world of a fresh seed

**Objective** (``search``, ``table``): for a knob setting, the world is generated at the calibration size
(:data:`abplatform.world.presets.CALIBRATION_SIZE`, seed 7); the cascade, V1 and V2 are fitted on its
pre-period as the pipeline fits them, each ranks *every* experiment-period session (common random numbers),
and the pages' clicks, purchases, orders and raters' verdicts are taken in expectation under the world's true
(oracle) users (``benchmarks/calib_eval.py``): no sampled response, no fitted click model. The lifts are
ratios of those expectations; the residuals are their distances to the eight published figures in
percentage points, plus a penalty when V2's mean category entropy per user is lower than V1's.

**Search**: Levenberg-Marquardt on the residuals over the knobs of :data:`KNOBS` (forward-difference
Jacobian, one world per knob and iteration, two worlds at a time), from the preset's current values,
within each knob's range. Every evaluation is appended to ``data/calib/search.jsonl``.

**Validation** (``validate``): the preset at :data:`VALIDATION_SEED` with :data:`VALIDATION_USERS` users, replayed
through the real pipeline (``run_offline``, ``simulation.behaviour: oracle``, CUPED, no multiplicity
correction): cascade vs V1 and V1 vs V2, each lift with its 95% CI against the ±0.5 pp goal.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from calib_eval import evaluate, lifts

from abplatform.pipeline import ensure_world
from abplatform.world.presets import CALIBRATION_SIZE, WORLD_PRESETS, preset_world_params

OUT = Path(__file__).with_name("calibration.md")
CACHE = Path("data/calib")
CALIBRATION_SEED = 7
VALIDATION_SEED = 2027
VALIDATION_USERS = 200_000
#: The published online lifts, % (Chen et al., OneSearch, arXiv:2509.03236; OneSearch-V2).
TARGETS = {
    ("v2", "v1", "item_ctr"): 3.98, ("v2", "v1", "buyer_conversion"): 3.05, ("v2", "v1", "order_volume"): 2.11,
    ("v2", "v1", "page_good_rate"): 1.65, ("v2", "v1", "relevance"): 1.37,
    ("v1", "cascade", "item_ctr"): 1.67, ("v1", "cascade", "buyer_conversion"): 2.40,
    ("v1", "cascade", "order_volume"): 3.22,
}
#: knob -> (low, high, finite-difference step). The complexity shares are searched as the attribute, multi
#: and indirect shares (simple takes the rest); "v2.X" is V2's constructor parameter X (a ranker setting the
#: preset carries), the others are WorldParams fields. The preset's other knobs (synonym_rate,
#: purchase_relevance) were searched in the first runs and then held (see calibration.md).
KNOBS = {
    "attraction_appeal": (0.0, 2.0, 0.1),
    "multi_share": (0.0, 0.4, 0.03),
    "indirect_share": (0.0, 0.3, 0.02),
    "pre_logging_epsilon": (0.05, 1.0, 0.1),
    "popularity_quality": (0.0, 1.5, 0.1),
    "attraction_quality": (0.0, 1.2, 0.1),
    "purchase_quality": (0.0, 1.5, 0.15),
    "purchase_intercept": (-8.0, -3.0, 0.3),
    "v2.w_rel": (0.2, 2.0, 0.03),
    "v2.w_purchase": (0.0, 1.5, 0.1),
}
#: the attribute queries' share, searched in the earlier runs and then held (its effect was within the noise)
HELD_ATTRIBUTE_SHARE = 0.0183
ENTROPY_WEIGHT = 0.5  # residual per percentage point of V2's category entropy below V1's


def knobs_of(preset: str = "onesearch") -> np.ndarray:
    """The preset's values of :data:`KNOBS` (a ranker parameter it does not set: the ranker's default)."""
    from abplatform.rankers import make_ranker

    params = preset_world_params(preset)
    values = {"multi_share": params.complexity_shares[2], "indirect_share": params.complexity_shares[3]}
    for k in KNOBS:
        if "." in k:
            ranker, name = k.split(".")
            values[k] = WORLD_PRESETS[preset].rankers.get(ranker, {}).get(name, getattr(make_ranker(ranker), name))
    return np.array([values[k] if k in values else getattr(params, k) for k in KNOBS])


def world_knobs(x: np.ndarray) -> dict:
    """World knobs and ranker settings ("v2.w_click") of a point of the search."""
    v = dict(zip(KNOBS, (round(float(a), 4) for a in x), strict=True))
    attribute = HELD_ATTRIBUTE_SHARE
    multi, indirect = (v.pop(k) for k in ("multi_share", "indirect_share"))
    shares = (round(1 - attribute - multi - indirect, 4), attribute, multi, indirect)
    return {"complexity_shares": shares, **v}


def arms(rankers: dict) -> dict[str, tuple[str, dict]]:
    return {name: (name, dict(rankers.get(name, {}))) for name in ("cascade", "v1", "v2")}


def measure(knobs: dict, seed: int = CALIBRATION_SEED, replicates: int = 0, keep: bool = False,
            size: dict | None = None) -> dict:
    """Lifts (%, with 95% bootstrap bounds when ``replicates``) of the onesearch preset's world with ``knobs``
    over its own; knobs named "ranker.param" set ranker parameters over the preset's."""
    rankers = {r: dict(p) for r, p in WORLD_PRESETS["onesearch"].rankers.items()}
    world_part = {}
    for k, v in knobs.items():
        if "." in k:
            ranker, name = k.split(".")
            rankers.setdefault(ranker, {})[name] = v
        else:
            world_part[k] = v
    params = dataclasses.replace(preset_world_params("onesearch", **(size or CALIBRATION_SIZE), seed=seed),
                                 **world_part)
    start = time.perf_counter()
    # each process its own cache: two evaluations of one world (ranker settings only) must not share it
    world = ensure_world(params, CACHE / f"p{os.getpid()}")
    generated = time.perf_counter() - start
    try:
        totals = evaluate(world, arms(rankers))
    finally:
        if not keep:
            shutil.rmtree(world, ignore_errors=True)
    out = {"knobs": knobs, "rankers": rankers, "seed": seed, "generate_s": round(generated, 1),
           "evaluate_s": round(time.perf_counter() - start - generated, 1), "lifts": {}, "levels": {}}
    for t, c in (("v2", "v1"), ("v1", "cascade")):
        for m, (rel, lo, hi) in lifts(totals, t, c, replicates=replicates).items():
            scale = 1.0 if m == "exposure_gini" else 100.0
            out["lifts"][f"{t}/{c}/{m}"] = [scale * rel, scale * lo, scale * hi]
    out["levels"] = {name: {m: float(v) for m, v in a.metrics().items()} | {"exposure_gini": a.gini}
                     for name, a in totals.items()}
    return out


def residuals(result: dict) -> np.ndarray:
    r = [result["lifts"][f"{t}/{c}/{m}"][0] - target for (t, c, m), target in TARGETS.items()]
    entropy = result["lifts"]["v2/v1/category_entropy"][0]
    return np.array([*r, ENTROPY_WEIGHT * min(entropy, 0.0)])


def _measure_x(x: np.ndarray) -> dict:
    return measure(world_knobs(x))


def search(iterations: int, log: Path) -> np.ndarray:
    """Levenberg-Marquardt from the preset's knobs; returns the best knobs found."""
    lo, hi, step = (np.array([v[i] for v in KNOBS.values()]) for i in range(3))
    x = knobs_of("onesearch")
    damping = 1.0
    with ProcessPoolExecutor(2) as pool:
        def run(points: list[np.ndarray]) -> list[dict]:
            results = list(pool.map(_measure_x, points))
            with log.open("a") as f:
                for res in results:
                    f.write(json.dumps(res) + "\n")
            return results

        best = run([x])[0]
        r = residuals(best)
        print(f"start: cost {r @ r:.2f}", flush=True)
        for it in range(iterations):
            # forward differences, stepping towards the inside of the range
            h = np.where(x + step <= hi, step, -step)
            probes = [x + h[j] * np.eye(len(x))[j] for j in range(len(x))]
            jac = np.stack([(residuals(res) - r) / h[j] for j, res in enumerate(run(probes))], axis=1)
            while True:
                a = jac.T @ jac
                dx = np.linalg.solve(a + damping * np.diag(np.diag(a) + 1e-9), -jac.T @ r)
                x_new = np.clip(x + dx, lo, hi)
                shares = [list(KNOBS).index(k) for k in ("multi_share", "indirect_share")]
                if x_new[shares].sum() > 0.5:
                    x_new[shares] *= 0.5 / x_new[shares].sum()
                res = run([x_new])[0]
                r_new = residuals(res)
                print(f"iteration {it}: damping {damping:g} cost {r_new @ r_new:.2f} (was {r @ r:.2f}) "
                      f"{world_knobs(x_new)}", flush=True)
                if r_new @ r_new < r @ r:
                    x, r, best = x_new, r_new, res
                    damping = max(damping / 3, 1e-3)
                    break
                damping *= 4
                if damping > 1e4:
                    return x
    return x


# --------------------------------------------------------------------------------------------
# the document
# --------------------------------------------------------------------------------------------
def write_section(marker: str, lines: list[str]) -> None:
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    text = OUT.read_text() if OUT.exists() else "# Calibrating the onesearch world\n"
    block = "\n".join([start, *lines, end])
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    OUT.write_text(text)


def conditions(started: float, load: float, args: list[str]) -> str:
    import platform
    return (f"Generated by `.venv/bin/python benchmarks/calibrate_world.py {' '.join(args)}` on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} / Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load average {load:.1f} before and {os.getloadavg()[0]:.1f} after; "
            f"{time.perf_counter() - started:.0f} s.")


def table(replicates: int) -> None:
    started, load = time.perf_counter(), os.getloadavg()[0]
    res = measure({}, replicates=replicates)
    lines = ["", conditions(started, load, ["table"]), "",
             f"The preset at the calibration size ({', '.join(f'{k} {v:,}' for k, v in CALIBRATION_SIZE.items())}), "
             f"seed {CALIBRATION_SEED}: expected lifts under the true users (every session ranked by every ranker); "
             f"95% interval: bootstrap over users ({replicates} Poisson-weight replicates). World generated in "
             f"{res['generate_s']:.0f} s, three rankers fitted and evaluated in {res['evaluate_s']:.0f} s.", "",
             "| comparison | metric | target | reached | 95% CI | distance (pp) |", "|---|---|---|---|---|---|"]
    for (t, c, m), target in TARGETS.items():
        v, lo, hi = res["lifts"][f"{t}/{c}/{m}"]
        lines.append(f"| {t} vs {c} | {m} | {target:+.2f}% | {v:+.2f}% | [{lo:+.2f}%, {hi:+.2f}%] | "
                     f"{v - target:+.2f} |")
    lines += ["", "Directions (V2 vs V1):", "", "| quantity | v1 | v2 | v2 vs v1 | wanted | holds? |",
              "|---|---|---|---|---|---|"]
    lv = res["levels"]
    for m, wanted, ok in (("tail_impression_share", "higher", lambda d: d > 0),
                          ("exposure_gini", "lower", lambda d: d < 0),
                          ("category_entropy", "not lower", lambda d: d >= 0)):
        d = res["lifts"][f"v2/v1/{m}"]
        diff = f"{d[0]:+.3f} (difference)" if m == "exposure_gini" else f"{d[0]:+.2f}% [{d[1]:+.2f}%, {d[2]:+.2f}%]"
        lines.append(f"| {m} | {lv['v1'][m]:.4f} | {lv['v2'][m]:.4f} | {diff} | {wanted} | "
                     f"{'yes' if ok(d[0]) else '**no**'} |")
    lines += ["", "Levels (expected, per ranker):", "", "| ranker | " + " | ".join(next(iter(lv.values()))) + " |",
              "|---|" + "---|" * len(next(iter(lv.values())))]
    lines += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in vals.values()) + " |" for name, vals in lv.items()]
    write_section("calibration", [*lines, ""])
    print("\n".join(lines))


def validate(users: int, seed: int, cache_dir: str) -> None:
    from abplatform.pipeline import run_offline

    started, load = time.perf_counter(), os.getloadavg()[0]
    world = {"preset": "onesearch", "users": users, "seed": seed,
             **{k: v for k, v in CALIBRATION_SIZE.items() if k != "users"}}
    rankers = WORLD_PRESETS["onesearch"].rankers
    metrics = ("item_ctr", "buyer_conversion", "order_volume", "page_good_rate", "relevance")
    reports, seconds = {}, {}
    t0 = time.perf_counter()
    params = preset_world_params("onesearch", **{k: v for k, v in world.items() if k != "preset"})
    ensure_world(params, Path(cache_dir), say=lambda *a: None)
    generate_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        for control, treatment in (("cascade", "v1"), ("v1", "v2")):
            cfg = {"name": f"calib_{control}_vs_{treatment}", "data": {"world": world, "cache_dir": cache_dir},
                   "arms": [{"name": a, "ranker": a, **({"params": dict(rankers[a])} if a in rankers else {})}
                            for a in (control, treatment)],
                   "metrics": [{"name": m, "role": "primary" if m == "item_ctr" else "secondary"} for m in metrics],
                   "statistics": {"alpha": 0.05, "cuped": True, "correction": "none"},
                   "simulation": {"behaviour": "oracle"}}
            path = Path(tmp) / f"{cfg['name']}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            t = time.perf_counter()
            _, reports[(treatment, control)] = run_offline(path, Path(tmp) / "results")
            seconds[(treatment, control)] = time.perf_counter() - t
            print(f"{treatment} vs {control}: {seconds[(treatment, control)]:.0f} s", flush=True)
    lines = ["", conditions(started, load, ["validate", "--users", str(users), "--seed", str(seed)]), "",
             f"The preset on a world of a fresh seed ({seed}) with {users:,} users (other size settings as "
             f"calibrated), replayed through the pipeline (`run_offline`, the world's true users, CUPED, no "
             f"multiplicity correction, users split 50/50): world generated in {generate_s:.0f} s; "
             + ", ".join(f"{t} vs {c} run (fit, replay, scorecard) {s:.0f} s" for (t, c), s in seconds.items())
             + ".", "",
             "| comparison | metric | target | reached [95% CI] | distance (pp) | within ±0.5 pp? | target in CI? |",
             "|---|---|---|---|---|---|---|"]
    for (t, c, m), target in TARGETS.items():
        r = next(x for x in reports[(t, c)].metrics if x.metric == m)
        v, lo, hi = 100 * r.rel_effect, 100 * r.rel_ci_low, 100 * r.rel_ci_high
        lines.append(f"| {t} vs {c} | {m} | {target:+.2f}% | {v:+.2f}% [{lo:+.2f}%, {hi:+.2f}%] | {v - target:+.2f} | "
                     f"{'yes' if abs(v - target) <= 0.5 else '**no**'} | {'yes' if lo <= target <= hi else 'no'} |")
    for (t, c), rep in reports.items():
        if rep.long_tail is None:
            continue
        lines += ["", f"Long tail, {t} vs {c}:", "", "| metric | " + f"{c} | {t} | lift [95% CI] |", "|---|---|---|---|"]
        for m in rep.long_tail.metrics:
            lines.append(f"| {m.metric} | {m.control_value:.4f} | {m.treatment_value:.4f} | "
                         f"{100 * m.rel_effect:+.2f}% [{100 * m.rel_ci_low:+.2f}%, {100 * m.rel_ci_high:+.2f}%] |")
        arms_ = rep.long_tail.per_arm
        lines.append(f"| exposure_gini (per arm) | {arms_[c]['exposure_gini']:.4f} | {arms_[t]['exposure_gini']:.4f} |"
                     f" {arms_[t]['exposure_gini'] - arms_[c]['exposure_gini']:+.4f} (difference) |")
    lines += ["", *demo_size(reports, users, generate_s, seconds)]
    write_section("validation", [*lines, ""])
    print("\n".join(lines))


def demo_size(reports: dict, users: int, generate_s: float, seconds: dict) -> list[str]:
    """Users a three-arm demo (cascade, V1, V2; equal split) needs for 80% power on V2 vs V1's item CTR and
    buyer conversion lifts at alpha 0.05, Holm over 2 primaries x 3 comparisons (bounded by Bonferroni,
    alpha / 6, two-sided), with CUPED: from the validation run's relative standard errors, which shrink as
    1 / sqrt(users per arm)."""
    from scipy.stats import norm

    z = norm.ppf(1 - 0.05 / 6 / 2) + norm.ppf(0.8)
    per_arm_run = users / 2
    rows, need = [], {}
    for (t, c, m), target in TARGETS.items():
        if (t, c) != ("v2", "v1") or m not in ("item_ctr", "buyer_conversion"):
            continue
        r = next(x for x in reports[(t, c)].metrics if x.metric == m)
        se = 100 * (r.rel_ci_high - r.rel_ci_low) / (2 * 1.959964)
        need[m] = per_arm_run * (z * se / target) ** 2
        rows.append(f"| {m} | {target:+.2f}% | {se:.3f} pp at {per_arm_run:,.0f} users per arm | "
                    f"{need[m]:,.0f} |")
    total = 3 * max(need.values())
    scale = total / users
    return ["### The three-arm demo's size", "",
            "Users per arm for 80% power on V2 vs V1 (two-sided, alpha 0.05 / 6: Holm over 2 primary metrics x 3 "
            "comparisons is at least this powerful), CUPED, from this run's standard errors (1 / sqrt(n)):", "",
            "| metric | V2 vs V1 lift | relative SE (this run) | users per arm needed |", "|---|---|---|---|", *rows,
            "",
            f"A three-arm demo (cascade, V1, V2, equal split) needs about **{total:,.0f} users** "
            f"(3 x {max(need.values()):,.0f}); V1 vs the cascade's smaller lifts (+1.67% CTR, +2.40% buyers) are not "
            f"powered at that size. Time, scaled linearly from this run ({users:,} users): world generation "
            f"~{generate_s * scale:.0f} s, each pairwise replay run ~"
            f"{np.mean(list(seconds.values())) * scale:.0f} s (the calibration was made at "
            f"{CALIBRATION_SIZE['users']:,} users; at another size the lifts move, see above)."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("search", "table", "validate"))
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--users", type=int, default=VALIDATION_USERS)
    parser.add_argument("--seed", type=int, default=VALIDATION_SEED)
    parser.add_argument("--cache-dir", default="data/calib")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.step == "search":
        x = search(args.iterations, CACHE / "search.jsonl")
        print("best knobs:", world_knobs(x))
    elif args.step == "table":
        table(args.replicates)
    else:
        validate(args.users, args.seed, args.cache_dir)


if __name__ == "__main__":
    main()
