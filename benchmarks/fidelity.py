"""Fidelity of the fitted-behaviour replay on the synthetic world, where the true behaviour is known.

Run by hand: ``.venv/bin/python benchmarks/fidelity.py [--users 50000] [--models pbm,cascade,dbn,ubm]``.
Writes ``benchmarks/fidelity.md`` (keeping its ``onesearch`` section). For the classic world (PBM-like truth) and
a cascade-like classic world:

1. replays V2 vs V1 with the world's true behaviour (``simulation.behaviour: oracle``) and with
   each click model + purchase model fitted on the world's logged impressions, and tabulates the
   relative lift per metric (item CTR, buyer conversion, order volume) with its 95% CI, and
   whether each predicted lift lies inside the oracle lift's CI;
2. fits each click model on 80% of the logged sessions (split by a hash of the session id) and
   reports held-out click perplexity per rank and its mean on the other 20%.

``--preset onesearch`` instead runs V2 vs V1 on the calibrated ``onesearch`` world (its PBM-like truth) with the
true users and with the fitted PBM users, for the five OneSearch metrics (item CTR, buyer conversion, order
volume, page good rate, relevance), and rewrites only the ``onesearch`` section of ``benchmarks/fidelity.md``.

The worlds are generated into ``--cache-dir`` (default ``data/fidelity``, its own folder: a world
cached under ``data/`` by an older version of the generator keeps its fingerprint but not its
behaviour). Replays are cached by config, so delete ``<cache-dir>/replays`` after code changes.
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from pathlib import Path

import numpy as np
import yaml

from abplatform.dataset import Dataset
from abplatform.offline.behaviour import FittedBehaviour
from abplatform.offline.clickmodels import click_log_from_duckdb
from abplatform.pipeline import run_offline
from abplatform.rankers import Catalog

OUT = Path(__file__).with_name("fidelity.md")
METRICS = ("item_ctr", "buyer_conversion", "order_volume")
ONESEARCH_METRICS = ("item_ctr", "buyer_conversion", "order_volume", "page_good_rate", "relevance")
ONESEARCH_MARKERS = ("<!-- onesearch -->", "<!-- /onesearch -->")


def experiment(name: str, users: int, world_behaviour: str, behaviour: str, cache_dir: str,
               preset: str | None = None, metrics: tuple[str, ...] = METRICS) -> dict:
    """V1 vs V2 on the world; with a preset, each arm carries the ranker settings the preset documents."""
    from abplatform.world.presets import preset_ranker_params

    world = {"users": users, "days": 14, "seed": 7, "behaviour": world_behaviour} | ({"preset": preset} if preset else {})
    arms = [{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}]
    for arm in arms:
        if preset and (params := preset_ranker_params(preset, arm["ranker"])):
            arm["params"] = params
    return {
        "name": name,
        "data": {"world": world, "cache_dir": cache_dir},
        "arms": arms,
        "metrics": [{"name": m, "role": "primary" if i < 2 else "secondary"} for i, m in enumerate(metrics)],
        "statistics": {"alpha": 0.05, "cuped": True, "correction": "none"},
        # one salt for every run: the same users in each arm, so a prediction and its truth differ by the users'
        # model only, not by another split of the users (the salt defaults to the experiment's name)
        "randomisation": {"salt": "fidelity"},
        "simulation": {"behaviour": behaviour},
    }


def run(cfg: dict, workdir: Path) -> tuple[dict, float, str]:
    path = workdir / f"{cfg['name']}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    fit_seconds = []

    def say(msg: str, *progress) -> None:
        if progress:
            return
        print("   ", msg, flush=True)
        if msg.startswith("Fitting the"):
            fit_seconds.append(time.perf_counter())
        elif msg.startswith("Replaying") and fit_seconds:
            fit_seconds.append(time.perf_counter())

    start = time.perf_counter()
    run_dir, report = run_offline(path, results=workdir / "results", say=say)
    total = time.perf_counter() - start
    fit = fit_seconds[1] - fit_seconds[0] if len(fit_seconds) == 2 else float("nan")
    metrics = {m["metric"]: m for m in report.to_dict()["metrics"]}
    return metrics, fit, f"{total:.0f}"


def world_dir(cache_dir: str, users: int, behaviour: str) -> Path:
    from abplatform.pipeline import ensure_world
    from abplatform.world.generate import WorldParams

    return ensure_world(WorldParams(users=users, days=14, seed=7, behaviour=behaviour), Path(cache_dir))


def perplexities(world: Path, models: list[str]) -> dict[str, tuple[np.ndarray, float]]:
    """Held-out perplexity per rank (80/20 split of sessions by a hash of the session id)."""
    dataset = Dataset(world)
    catalog = Catalog.from_dataset(dataset)
    con = dataset.connect()
    try:
        log, vocab = click_log_from_duckdb(con, "sessions", "impressions", k=10)
    finally:
        con.close()
    test = (log.session_ids * 2654435761 % 2**32) % 5 == 0
    train_log, test_log = log.subset(~test), log.subset(test)
    out = {}
    for name in models:
        start = time.perf_counter()
        fb = FittedBehaviour(name).fit(dataset, catalog, log=train_log, vocab=vocab)
        seconds = time.perf_counter() - start
        out[name] = (fb.click_model.perplexity(test_log), seconds)
        print(f"  {name}: perplexity {np.nanmean(out[name][0]):.4f} (fit {seconds:.0f} s)", flush=True)
    return out


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f}%"


def fidelity_table(oracle: dict, fitted: dict[str, tuple[dict, float, str]],
                   metrics: tuple[str, ...] = METRICS) -> list[str]:
    lines = ["| metric | true lift (oracle) [95% CI] | " + " | ".join(
        f"{name} predicted [95% CI] | inside?" for name in fitted) + " |",
        "|---|---|" + "---|---|" * len(fitted)]
    for metric in metrics:
        o = oracle[metric]
        row = [metric, f"{pct(o['rel_effect'])} [{pct(o['rel_ci_low'])}, {pct(o['rel_ci_high'])}]"]
        for name, (m, _, _) in fitted.items():
            p = m[metric]
            inside = o["rel_ci_low"] <= p["rel_effect"] <= o["rel_ci_high"]
            row += [f"{pct(p['rel_effect'])} [{pct(p['rel_ci_low'])}, {pct(p['rel_ci_high'])}]",
                    "**yes**" if inside else "no"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| | " + " | ".join(fitted) + " |", "|---|" + "---|" * len(fitted),
              "| control item CTR (oracle: {:.4f}) | ".format(oracle["item_ctr"]["control_value"])
              + " | ".join(f"{m['item_ctr']['control_value']:.4f}" for m, _, _ in fitted.values()) + " |",
              "| behaviour fit, s | " + " | ".join(f"{f:.0f}" for _, f, _ in fitted.values()) + " |",
              "| whole run (fit + replay + scorecard), s | " + " | ".join(t for _, _, t in fitted.values()) + " |"]
    return lines


def perplexity_table(results: dict[str, tuple[np.ndarray, float]]) -> list[str]:
    k = len(next(iter(results.values()))[0])
    lines = ["| model | " + " | ".join(f"@{r + 1}" for r in range(k)) + " | mean | fit s |",
             "|---|" + "---|" * (k + 2)]
    best = min(np.nanmean(p) for p, _ in results.values())
    for name, (p, s) in results.items():
        mean = np.nanmean(p)
        mean_s = f"**{mean:.4f}**" if mean <= best + 5e-5 else f"{mean:.4f}"
        lines.append(f"| {name} | " + " | ".join(f"{v:.4f}" for v in p) + f" | {mean_s} | {s:.0f} |")
    return lines


def onesearch(users: int, cache_dir: str, workdir: Path) -> None:
    """V2 vs V1 on the onesearch world: the fitted PBM users' predicted lifts against the true users' lifts, for
    the five OneSearch metrics; rewrites the ``onesearch`` section of ``fidelity.md``."""
    from abplatform.world.presets import preset_ranker_params

    started = time.perf_counter()
    runs = {b: run(experiment(f"fid_onesearch_{b}", users, "pbm", b, cache_dir, "onesearch", ONESEARCH_METRICS),
                   workdir) for b in ("oracle", "pbm")}
    oracle, fitted = runs["oracle"][0], {"pbm": runs["pbm"]}
    inside = sum(oracle[m]["rel_ci_low"] <= fitted["pbm"][0][m]["rel_effect"] <= oracle[m]["rel_ci_high"]
                 for m in ONESEARCH_METRICS)
    lines = [ONESEARCH_MARKERS[0], "",
             f"## Onesearch world: V2 vs V1, fitted PBM users against the true users ({users} users)", "",
             f"Generated by `benchmarks/fidelity.py --preset onesearch --users {users}` on {platform.machine()} / "
             f"Python {platform.python_version()} (2 cores, shared with other jobs); {time.perf_counter() - started:.0f} s. "
             "The world of the `onesearch` preset (abplatform/world/presets.py; seed 7, 14 days, 7 pre-period days, "
             "20,000 items: one of the calibration worlds of benchmarks/calibration.md), PBM-like true users; "
             "the arms with the preset's ranker settings (V1: "
             f"{preset_ranker_params('onesearch', 'v1')}; V2: {preset_ranker_params('onesearch', 'v2')}). "
             "Same statistics as above (CUPED, no "
             "multiplicity correction); both runs split the users alike (one salt), so the prediction and the truth "
             "differ by the users' model alone — the page good rate, judged by the same raters on the same pages, "
             "is the same in both.", "",
             *fidelity_table(oracle, fitted, ONESEARCH_METRICS), "",
             f"The fitted PBM users' predicted lift is inside the true lift's 95% CI for {inside} of "
             f"{len(ONESEARCH_METRICS)} metrics.", "", ONESEARCH_MARKERS[1]]
    text = OUT.read_text() if OUT.exists() else "# Fidelity of the fitted-behaviour replay\n"
    block = "\n".join(lines)
    pattern = re.escape(ONESEARCH_MARKERS[0]) + ".*?" + re.escape(ONESEARCH_MARKERS[1])
    text = (re.sub(pattern, lambda _: block, text, flags=re.S) if ONESEARCH_MARKERS[0] in text
            else text.rstrip("\n") + "\n\n" + block + "\n")
    OUT.write_text(text)
    print(f"wrote {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--models", default="pbm,cascade,dbn,ubm")
    parser.add_argument("--cache-dir", default="data/fidelity")
    parser.add_argument("--worlds", default="pbm,cascade")
    parser.add_argument("--preset", choices=("classic", "onesearch"), default="classic")
    args = parser.parse_args()
    models = args.models.split(",")
    workdir = Path(args.cache_dir) / "runs"
    workdir.mkdir(parents=True, exist_ok=True)
    if args.preset == "onesearch":
        onesearch(args.users, args.cache_dir, workdir)
        return
    sections = []
    for world_behaviour in args.worlds.split(","):
        print(f"world with {world_behaviour}-like behaviour", flush=True)
        tag = f"fid_{world_behaviour}"
        oracle, _, _ = run(experiment(f"{tag}_oracle", args.users, world_behaviour, "oracle", args.cache_dir), workdir)
        fitted = {m: run(experiment(f"{tag}_{m}", args.users, world_behaviour, m, args.cache_dir), workdir)
                  for m in models}
        print("  held-out perplexity", flush=True)
        ppl = perplexities(world_dir(args.cache_dir, args.users, world_behaviour), models)
        sections.append((world_behaviour, oracle, fitted, ppl))

    lines = ["# Fidelity of the fitted-behaviour replay", "",
             f"Generated by `benchmarks/fidelity.py --users {args.users} --models {args.models} --worlds {args.worlds}` "
             f"on {platform.machine()} / Python {platform.python_version()} (2 cores, shared with other jobs).", "",
             "V2 vs V1 replayed on the synthetic world's experiment-period sessions; relative lifts with 95% CIs "
             "(delta method, CUPED, no multiplicity correction). *True lift*: the world's own behaviour model "
             "(oracle). *Predicted*: a click model + purchase/order model fitted on the world's logged impressions "
             "(epsilon = 0.1 randomised V1 logging with propensities), features from the logs and the catalog only. "
             "Inside: the predicted lift lies inside the oracle lift's 95% CI.", ""]
    for world_behaviour, oracle, fitted, ppl in sections:
        lines += [f"## Classic world with {world_behaviour}-like true behaviour ({args.users} users)", "",
                  "### Predicted vs true lift", ""] + fidelity_table(oracle, fitted)
        lines += ["", "### Held-out click perplexity (train on 80% of logged sessions, test on 20%)", "",
                  "Lower is better; bold: best mean. Literature reference on Yandex logs (Chuklin et al. 2015): "
                  "PBM ~ 1.318, UBM ~ 1.282, DBN ~ 1.280 — not comparable in level.", ""]
        lines += perplexity_table(ppl) + [""]
    previous = OUT.read_text() if OUT.exists() else ""
    kept = re.search(re.escape(ONESEARCH_MARKERS[0]) + ".*?" + re.escape(ONESEARCH_MARKERS[1]), previous, flags=re.S)
    OUT.write_text("\n".join(lines) + "\n" + (f"\n{kept.group(0)}\n" if kept else ""))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
