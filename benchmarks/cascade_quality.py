"""The multi-stage cascade baseline against V1 and V2: offline runs on the synthetic world with its true users.

Run by hand: ``.venv/bin/python benchmarks/cascade_quality.py [--users 3000 --days 7 --pre-days 7 --items 2000]``.
Rewrites the part of ``benchmarks/cascade.md`` between its ``results`` markers.

For each of V1 and V2, one ``abplatform`` offline run (``run_offline``, the world's oracle users, CUPED, no
multiplicity correction, the serving cost measured by the pipeline on 256-query batches) with the cascade as
control and the other ranker as treatment, so each lift is that ranker's over the cascade, as OneSearch
reports its own (item CTR +1.67%, buyers +2.40%, orders +3.22%; Chen et al., arXiv:2509.03236). Also: item
CTR lifts by query complexity, and the cascade's fitted models (the same fit the runs make). The world is
generated (or reused) under ``--cache-dir``; the replays are cached there by configuration and code.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from abplatform.dataset import Dataset
from abplatform.pipeline import ensure_world, run_offline
from abplatform.rankers import CascadeRanker, Catalog
from abplatform.report.model import Report
from abplatform.world.generate import WorldParams

OUT = Path(__file__).with_name("cascade.md")
METRICS = ("item_ctr", "buyer_conversion", "order_volume", "page_good_rate", "relevance")
TREATMENTS = ("v1", "v2")
MARKERS = ("<!-- results -->", "<!-- /results -->")


def experiment(treatment: str, world: dict, cache_dir: str) -> dict:
    return {
        "name": f"cascade_vs_{treatment}",
        "data": {"world": world, "cache_dir": cache_dir},
        "arms": [{"name": "cascade", "ranker": "cascade"}, {"name": treatment, "ranker": treatment}],
        "metrics": [{"name": m, "role": "primary" if m == "item_ctr" else "secondary"} for m in METRICS],
        "segments": ["query_complexity"],
        "statistics": {"alpha": 0.05, "cuped": True, "correction": "none"},
        "simulation": {"behaviour": "oracle"},
        "decision": {"latency_margin": 5.0},  # measured and reported; a margin this wide never decides
    }


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.2f}%"


def lift(m) -> str:
    return f"{pct(m.rel_effect)} [{pct(m.rel_ci_low)}, {pct(m.rel_ci_high)}]"


def lift_table(reports: dict[str, Report]) -> list[str]:
    lines = ["| metric | cascade | " + " | ".join(f"{t} | {t} lift over the cascade [95% CI] | p" for t in reports)
             + " |", "|---|---|" + "---|---|---|" * len(reports)]
    for metric in METRICS:
        rows = {t: next(m for m in r.metrics if m.metric == metric) for t, r in reports.items()}
        first = next(iter(rows.values()))
        lines.append(f"| {metric} | {first.control_value:.4f} | " + " | ".join(
            f"{m.treatment_value:.4f} | {lift(m)} | {m.p_value:.2g}" for m in rows.values()) + " |")
    return lines


def segment_table(reports: dict[str, Report]) -> list[str]:
    values = sorted({s.segment_value for r in reports.values() for s in r.segments if s.metric == "item_ctr"})
    lines = ["| query complexity | " + " | ".join(f"{t} item CTR lift over the cascade [95% CI]" for t in reports)
             + " |", "|---|" + "---|" * len(reports)]
    for value in values:
        cells = [lift(next(s for s in r.segments if s.metric == "item_ctr" and s.segment_value == value))
                 for r in reports.values()]
        lines.append(f"| {value} | " + " | ".join(cells) + " |")
    return lines


def serving_table(reports: dict[str, Report]) -> list[str]:
    lines = ["| comparison | cascade CPU ms / query | other CPU ms / query | cascade / other [95% CI] |",
             "|---|---|---|---|"]
    for t, r in reports.items():
        g = r.latency_guardrail
        assert g is not None and g.ratio and g.ratio_ci_low and g.ratio_ci_high
        lines.append(f"| cascade vs {t} ({g.repetitions} pairs of {g.batch_size} queries) | "
                     f"{g.cpu_ms_per_query['cascade']:.4f} | {g.cpu_ms_per_query[t]:.4f} | "
                     f"{1 / g.ratio:.2f} [{1 / g.ratio_ci_high:.2f}, {1 / g.ratio_ci_low:.2f}] |")
    return lines


def model_table(ranker: CascadeRanker) -> list[str]:
    rank, pre = ranker.ranking_model, ranker.preranking_model
    pre_coef = dict(zip(pre.features, pre.coef, strict=True))
    lines = ["| feature | ranking model | pre-ranking model |", "|---|---|---|"]
    lines += [f"| {f} | {c:+.3f} | " + (f"{pre_coef[f]:+.3f}" if f in pre_coef else "") + " |"
              for f, c in zip(rank.features, rank.coef, strict=True)]
    lines += ["", "Position effects (logit, position 1 = 0), learnt in training and dropped when scoring:", "",
              "| model | " + " | ".join(str(p + 1) for p in range(len(rank.position_effect))) + " |",
              "|---|" + "---|" * len(rank.position_effect)]
    lines += [f"| {name} | " + " | ".join(f"{e:+.2f}" for e in m.position_effect) + " |"
              for name, m in (("ranking", rank), ("pre-ranking", pre))]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--pre-days", type=int, default=7)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", default="data")
    args = parser.parse_args()
    world = {"users": args.users, "days": args.days, "pre_days": args.pre_days, "items": args.items,
             "seed": args.seed}
    started = time.perf_counter()
    load = os.getloadavg()[0]
    reports: dict[str, Report] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for treatment in TREATMENTS:
            cfg = experiment(treatment, world, args.cache_dir)
            path = Path(tmp) / f"{cfg['name']}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            print(f"cascade vs {treatment}", flush=True)
            _, reports[treatment] = run_offline(path, Path(tmp) / "results")
    ds = Dataset(ensure_world(WorldParams(**world), Path(args.cache_dir)))
    ranker = CascadeRanker().fit(ds, Catalog.from_dataset(ds))
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    conditions = (f"Generated by `.venv/bin/python benchmarks/cascade_quality.py {flags}` on "
                  f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} / Python "
                  f"{platform.python_version()}, {os.cpu_count()} cores, load average {load:.1f} before and "
                  f"{os.getloadavg()[0]:.1f} after; {time.perf_counter() - started:.0f} s. Cascade defaults: "
                  f"retrieval_size {ranker.retrieval_size}, preranking_size {ranker.preranking_size}, l2 {ranker.l2}.")
    lines = [MARKERS[0], "", conditions, "",
             "### Lifts over the cascade (offline, the world's true users)", "", *lift_table(reports), "",
             "### Item CTR lift by query complexity", "", *segment_table(reports), "",
             "### Serving cost (the pipeline's measurement: CPU time of score + top-10, paired batches)", "",
             *serving_table(reports), "",
             "### The cascade's fitted models (logistic regressions on the pre-period's clicks; raw feature units)",
             "", *model_table(ranker), "", MARKERS[1]]
    text = OUT.read_text() if OUT.exists() else "# The multi-stage cascade baseline\n\n" + "\n".join(MARKERS) + "\n"
    pattern = re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1])
    OUT.write_text(re.sub(pattern, lambda _: "\n".join(lines), text, flags=re.S))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
