"""A daily promotion gate on a growing log: false positives under A/A and power on a true lift (issue 14 item 3).

    .venv/bin/python benchmarks/sequential_gate.py [--sims 4000] [--per-day 700] [--days 14]

Each simulated experiment adds ``per_day`` new users per arm per day for ``days`` days; at every
daily look the analysis sees the cumulative users so far (cumulative sufficient statistics, one
``day`` row per look). The gate promotes at the first look where the primary metric is
``improved`` (two-sided test at α = 0.05 significant, effect in the metric's good direction).
Two primary metrics, each gated on its own: a conversion proportion (p = 0.10) and a heavy-tailed
mean (revenue per user: 30% buyers × lognormal(0, 1.2), CV 3.6).

Procedures: naive fixed-horizon (``compare`` without ``sequential`` at every look), the
confidence sequence (``SequentialSpec(method="confidence_sequence")``, tuned at the default N* =
5000 and at the final day's total), and O'Brien–Fleming alpha spending (``planned_n`` = the
final day's total users). Every simulated experiment is one by-group (``by=["sim"]``), so each
procedure is one ``compare`` call over all experiments and looks. Writes its tables into
benchmarks/stats.md between the gate markers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from abplatform.stats import MetricSpec, SequentialSpec, compare
from abplatform.stats.moments import suff_from_units
from stats_monte_carlo import _md  # the same Markdown table (run as benchmarks/sequential_gate.py)

OUT = Path(__file__).with_name("stats.md")
START, END = "<!-- gate:start -->", "<!-- gate:end -->"
ALPHA = 0.05
P_CONV = 0.10
BUY, SIGMA = 0.30, 1.2


def _cv(metric: str) -> float:
    if metric == "conversion":
        return float(np.sqrt((1 - P_CONV) / P_CONV))
    return float(np.sqrt(np.exp(SIGMA**2) / BUY - 1))


def _lift_for_power(metric: str, n: int, power: float = 0.8) -> float:
    """Relative lift X with the given power for the two-sided fixed-horizon test at n units/arm:
    X·mean = (z_{1-α/2} + z_power)·√((var_c + var_t)/n), var_t the treated arm's variance (fixed point)."""
    z = stats.norm.isf(ALPHA / 2) + stats.norm.isf(1 - power)
    x = 0.0
    for _ in range(50):
        if metric == "conversion":
            pt = P_CONV * (1 + x)
            rel_var = (P_CONV * (1 - P_CONV) + pt * (1 - pt)) / P_CONV**2
        else:
            rel_var = _cv(metric) ** 2 * (1 + (1 + x) ** 2)
        x = z * np.sqrt(rel_var / n)
    return round(float(x), 3)


def _day_units(rng, metric: str, shape: tuple[int, ...], lift: float) -> np.ndarray:
    if metric == "conversion":
        return (rng.random(shape) < P_CONV * (1 + lift)).astype(float)
    return (rng.random(shape) < BUY) * rng.lognormal(0.0, SIGMA, shape) * (1 + lift)


def simulate(rng, sims: int, days: int, per_day: int, lifts: dict[str, float]) -> pd.DataFrame:
    """Cumulative per-arm sufficient statistics: one row per (metric, sim, arm, day)."""
    frames = []
    for metric, lift in lifts.items():
        cum: dict[str, np.ndarray] | None = None
        for day in range(1, days + 1):
            daily = [suff_from_units(_day_units(rng, metric, (sims, per_day), arm_lift)) for arm_lift in (0.0, lift)]
            sums = {k: np.stack([d[k] for d in daily], axis=1) for k in daily[0]}  # (sims, 2)
            cum = sums if cum is None else {k: cum[k] + sums[k] for k in sums}
            frames.append(pd.DataFrame({
                "metric": metric, "sim": np.repeat(np.arange(sims), 2), "arm": np.tile(["c", "t"], sims), "day": day,
                **{k: v.ravel() for k, v in cum.items()},
            }))
    return pd.concat(frames, ignore_index=True)


SPECS = {"conversion": MetricSpec("proportion"), "revenue": MetricSpec("mean")}


def procedures(days: int, per_day: int) -> dict[str, dict]:
    final_n = 2 * days * per_day
    return {
        "naive fixed-horizon, every look": {},
        "confidence sequence, N* = 5000 (default)": {"sequential": SequentialSpec(method="confidence_sequence")},
        f"confidence sequence, N* = {final_n:,} (final day)": {
            "sequential": SequentialSpec(method="confidence_sequence", tuning_n=final_n)},
        f"O'Brien–Fleming, planned_n = {final_n:,}": {
            "sequential": SequentialSpec(method="obrien_fleming", planned_n=final_n)},
    }


def run(suff: pd.DataFrame, days: int, per_day: int) -> dict[str, pd.DataFrame]:
    cards = {}
    for name, kw in procedures(days, per_day).items():
        t0 = time.time()
        by = ["sim", "day"] if "sequential" not in kw else ["sim"]
        cards[name] = compare(suff, SPECS, "c", "t", alpha=ALPHA, by=by, **kw)
        print(f"  {name}: {time.time() - t0:.1f} s", flush=True)
    return cards


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _first_day(card: pd.DataFrame, col: str) -> pd.Series:
    """Per (metric, sim): the first look where ``col`` is true (NaN if never)."""
    hit = card[card[col]]
    return hit.groupby(["metric", "sim"]).day.min()


def aa_table(cards: dict[str, pd.DataFrame], sims: int, days: int) -> list[dict]:
    rows = []
    for metric in SPECS:
        naive = cards["naive fixed-horizon, every look"]
        last = naive[(naive.metric == metric) & (naive.day == days)]
        rows.append({"primary metric": metric, "procedure": f"single fixed-horizon test on day {days} only",
                     "any significant": _pct(last.significant.mean()), "improved (promotes)": _pct(last.improved.mean())})
        for name, card in cards.items():
            c = card[card.metric == metric]
            rows.append({
                "primary metric": metric, "procedure": name + (" (gate every day)" if name.startswith("naive") else ""),
                "any significant": _pct(c.groupby("sim").significant.any().mean()),
                "improved (promotes)": _pct(c.groupby("sim").improved.any().mean()),
            })
    return rows


def power_table(cards: dict[str, pd.DataFrame], lifts: dict[str, float], sims: int, days: int) -> list[dict]:
    rows = []
    naive = cards["naive fixed-horizon, every look"]
    for metric, lift in lifts.items():
        fixed = naive[(naive.metric == metric) & (naive.day == days)].improved.mean()
        fixed_hit = (naive[(naive.metric == metric) & (naive.day == days)].set_index("sim").improved
                     .reindex(range(sims), fill_value=False).to_numpy(dtype=float))
        rows.append({"primary metric": metric, "true lift": f"{lift:+.1%}", "procedure": f"fixed-horizon test on day {days}",
                     f"power by day {days}": _pct(fixed), "power lost vs fixed (± MC SE, paired)": "—",
                     "median day of promotion": str(days)})
        for name, card in cards.items():
            if name.startswith("naive"):
                continue
            first = _first_day(card[card.metric == metric], "improved")
            power = len(first) / sims
            hit = np.zeros(sims)
            hit[first.loc[metric].index.to_numpy()] = 1.0
            diff = fixed_hit - hit
            rows.append({
                "primary metric": metric, "true lift": f"{lift:+.1%}", "procedure": name,
                f"power by day {days}": _pct(power),
                "power lost vs fixed (± MC SE, paired)": f"{100 * diff.mean():.1f} ± {100 * diff.std() / np.sqrt(sims):.1f} pts",
                "median day of promotion": f"{first.median():.0f}" if len(first) else "—",
            })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=4000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--per-day", type=int, default=700)
    ap.add_argument("--seed", type=int, default=20261130)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    load = os.getloadavg()
    t0 = time.time()
    n_final = args.days * args.per_day
    lifts = {m: _lift_for_power(m, n_final) for m in SPECS}

    print("A/A", flush=True)
    aa = aa_table(run(simulate(rng, args.sims, args.days, args.per_day, {m: 0.0 for m in SPECS}), args.days,
                      args.per_day), args.sims, args.days)
    for r in aa:
        print(r, flush=True)
    print(f"true lift {lifts}", flush=True)
    pw = power_table(run(simulate(rng, args.sims, args.days, args.per_day, lifts), args.days, args.per_day), lifts,
                     args.sims, args.days)
    for r in pw:
        print(r, flush=True)
    elapsed = time.time() - t0
    se5 = 100 * np.sqrt(0.05 * 0.95 / args.sims)
    se80 = 100 * np.sqrt(0.8 * 0.2 / args.sims)
    body = "\n\n".join([
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/sequential_gate.py --sims "
        f"{args.sims} --days {args.days} --per-day {args.per_day} --seed {args.seed}` in {elapsed / 60:.1f} min (2 cores; "
        f"1-min load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after — other jobs were running when it is "
        f"above ~1). {args.sims} simulated experiments per table; Monte Carlo standard error ±{se5:.2f} points at a 5% "
        f"rate, ±{100 * np.sqrt(0.025 * 0.975 / args.sims):.2f} at 2.5%, ±{se80:.2f} at 80%.",
        f"### Sequential gate, A/A: {args.days} daily looks, {args.per_day:,} new users/arm/day "
        f"({n_final:,}/arm at the end)\n\n"
        "Share of experiments with a significant result at any look (two-sided α = 0.05) and with a promotion "
        "(`improved`: significant and the effect favourable). A valid procedure keeps \"any significant\" ≤ 5% and "
        "promotions ≤ 2.5%.\n\n" + _md(aa),
        f"### Sequential gate, true lift (≈ 80% fixed-horizon power on day {args.days})\n\n"
        f"Lift per metric from X·mean = (z₀.₉₇₅ + z₀.₈)·√((var_c + var_t)/n) at n = {n_final:,}/arm (control CV: "
        f"conversion {_cv('conversion'):.1f}, revenue {_cv('revenue'):.1f}). Power = share of experiments promoted at some "
        f"look up to day {args.days} (a sequential gate may promote earlier; the fixed-horizon test looks once, on day "
        f"{args.days}).\n\n" + _md(pw),
    ])
    text = OUT.read_text()
    if START not in text:
        text = text.rstrip("\n") + f"\n\n## Sequential promotion gate (issue 14 item 3)\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    OUT.write_text(head + START + "\n" + body + "\n" + END + rest.split(END, 1)[1])
    print(body)


if __name__ == "__main__":
    main()
