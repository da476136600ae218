"""A/A and known-lift Monte Carlo of the statistics engine (run by hand; seeded; ~minutes on 2 cores).

    .venv/bin/python benchmarks/stats_monte_carlo.py [--reps 4000] [--rel-reps 8000] [--seq-reps 2000]

Simulates whole experiments from per-unit data, reduces them to sufficient statistics exactly as
the SQL would (``suff_from_units``) and scores all replicates in one vectorised ``compare`` call
(one by-group per replicate). Writes the tables into benchmarks/stats.md between the markers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from abplatform.stats import MetricSpec, SequentialSpec, compare
from abplatform.stats.moments import suff_from_units

OUT = Path(__file__).with_name("stats.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _suff(c: dict, t: dict, extra: dict | None = None) -> pd.DataFrame:
    reps = len(c["n"])
    frames = [pd.DataFrame({"metric": "m", "arm": arm, "rep": np.arange(reps), **(extra or {}), **sums}) for arm, sums in (("c", c), ("t", t))]
    return pd.concat(frames, ignore_index=True)


def _within(cov: float, lo: float = 0.94, hi: float = 0.96) -> str:
    return f"{100 * cov:.1f}%" + ("" if lo <= cov <= hi else " ✗")


# ---- per-unit generators: return (x, y, xp, yp) arrays of shape (reps, n); lift is relative ---------------------------
def gen_proportion(rng, reps, n, lift):
    return (rng.random((reps, n)) < 0.10 * (1 + lift)).astype(float), None, None, None


def gen_mean_lognormal(sigma):
    def gen(rng, reps, n, lift):
        return rng.lognormal(0.0, sigma, (reps, n)) * (1 + lift), None, None, None
    return gen


def gen_ctr_lognormal(sigma, mu=2.5):
    """Item CTR per user: impressions 1 + ⌊lognormal(μ, σ)⌋, per-user CTR ~ Beta(1, 9)."""
    def gen(rng, reps, n, lift):
        imps = 1 + np.floor(rng.lognormal(mu, sigma, (reps, n)))
        p = rng.beta(1.0, 9.0, (reps, n)) * (1 + lift)
        return rng.binomial(imps.astype(np.int64), p).astype(float), imps, None, None
    return gen


def gen_ctr_negbin(rng, reps, n, lift):
    """Item CTR per user, moderately heavy tail: impressions 1 + NegBin(shape 0.5, mean 10) (CV ≈ 1.4)."""
    imps = 1 + rng.negative_binomial(0.5, 0.5 / 10.5, (reps, n))
    p = rng.beta(1.0, 9.0, (reps, n)) * (1 + lift)
    return rng.binomial(imps, p).astype(float), imps.astype(float), None, None


def _cap(x, y, q=0.99):
    """Winsorise per-unit values at the pooled (both arms) 99th percentile of each replicate, as the
    SQL does for x; for ratios also y (a y cap is not in the SQL yet)."""
    cx = np.quantile(np.concatenate([x[0], x[1]], axis=1), q, axis=1)[:, None]
    xc = [np.minimum(a, cx) for a in x]
    if y[0] is None:
        return xc, y
    cy = np.quantile(np.concatenate([y[0], y[1]], axis=1), q, axis=1)[:, None]
    return xc, [np.minimum(a, cy) for a in y]


def _capped_truth(gen, rng, lift, q=0.99, big=2_000_000):
    """Population values of the capped metric (caps at the pooled population 99th percentile)."""
    xs, ys = zip(*[gen(rng, 1, big, arm_lift)[:2] for arm_lift in (0.0, lift)])
    xc, yc = _cap([a for a in xs], [a for a in ys] if ys[0] is not None else [None, None], q)
    vals = [a.mean() if yc[0] is None else a.sum() / b.sum() for a, b in zip(xc, yc)]
    return vals[1] - vals[0], vals[1] / vals[0] - 1


SCENARIOS = [
    # name, type, generator, units/arm, control value, options
    ("proportion p=0.10", "proportion", gen_proportion, 2000, 0.10, {}),
    ("mean lognormal σ=1", "mean", gen_mean_lognormal(1.0), 1000, float(np.exp(0.5)), {}),
    ("mean lognormal σ=1.5, small", "mean", gen_mean_lognormal(1.5), 200, float(np.exp(1.5**2 / 2)), {}),
    ("mean lognormal σ=1.5, small, capped p99", "mean", gen_mean_lognormal(1.5), 200, None, {"cap": True}),
    ("ratio CTR, users lognormal σ=1.1 (world-calibrated)", "ratio", gen_ctr_lognormal(1.1), 2000, 0.10, {}),
    ("ratio CTR, users lognormal σ=1.1 (world-calibrated), small", "ratio", gen_ctr_lognormal(1.1), 200, 0.10, {}),
    ("… same, plain delta method (small_sample=False)", "ratio", gen_ctr_lognormal(1.1), 200, 0.10, {"plain": True}),
    ("ratio CTR, NegBin impressions, small", "ratio", gen_ctr_negbin, 200, 0.10, {}),
    ("ratio CTR, extreme users lognormal(1, 1.5), small", "ratio", gen_ctr_lognormal(1.5, 1.0), 200, 0.10, {}),
    ("… same, plain delta method (small_sample=False)", "ratio", gen_ctr_lognormal(1.5, 1.0), 200, 0.10, {"plain": True}),
    ("… same, x and y capped p99", "ratio", gen_ctr_lognormal(1.5, 1.0), 200, None, {"cap": True}),
]


def coverage_table(rng, reps: int) -> list[dict]:
    rows = []
    for name, mtype, gen, n, base, opts in SCENARIOS:
        for lift in (0.0, 0.05):
            xs, ys = [], []
            for arm_lift in (0.0, lift):
                x, y, _, _ = gen(rng, reps, n, arm_lift)
                xs.append(x)
                ys.append(y)
            row = {"scenario": name, "units/arm": n, "true lift": f"{lift:+.0%}"}
            if opts.get("cap"):
                xs, ys = _cap(xs, ys)
                true_abs, true_rel = _capped_truth(gen, rng, lift)
            else:
                true_abs, true_rel = base * lift, lift
            suff = _suff(*[suff_from_units(x, y) for x, y in zip(xs, ys)])
            for method in ("delta", "log", "fieller"):
                card = compare(suff, {"m": MetricSpec(mtype)}, "c", "t", by=["rep"], relative_ci=method,
                               small_sample=not opts.get("plain"))
                if method == "delta":
                    row["abs CI"] = _within(((card.abs_ci_low <= true_abs) & (true_abs <= card.abs_ci_high)).mean())
                row[f"rel {method}"] = _within(((card.rel_ci_low <= true_rel) & (true_rel <= card.rel_ci_high)).mean())
            if lift == 0:
                row["A/A FPR (abs)"] = f"{100 * (card.p_value < 0.05).mean():.1f}%"
            else:
                row["power (abs)"] = f"{100 * (card.p_value < 0.05).mean():.1f}%"
                if opts.get("cap"):
                    row["capped estimand vs uncapped lift"] = f"{100 * true_rel:+.2f}% vs +5%"
            rows.append(row)
            print(row, flush=True)
    return rows


# ---- relative-CI coverage (issue 14 item 2) ---------------------------------------------------------------------------
# Each generator takes (rng, reps, n, lift) and returns (x, y) of shape (reps, n); lifts are exactly multiplicative, so
# the true relative effect (T − C)/|C| is ``lift``.
def gen_orders_negbin(shape, mean):
    """Orders per user ~ NegBin(shape, mean·(1 + lift)) (shape fixed, so the mean scales exactly)."""
    def gen(rng, reps, n, lift):
        m = mean * (1 + lift)
        return rng.negative_binomial(shape, shape / (shape + m), (reps, n)).astype(float), None
    return gen


def gen_revenue_zilognormal(buy, sigma):
    """Revenue per user: a buyer with probability ``buy``, spending lognormal(0, σ)·(1 + lift); else 0."""
    def gen(rng, reps, n, lift):
        return (rng.random((reps, n)) < buy) * rng.lognormal(0.0, sigma, (reps, n)) * (1 + lift), None
    return gen


def gen_bernoulli(p):
    def gen(rng, reps, n, lift):
        return (rng.random((reps, n)) < p * (1 + lift)).astype(float), None
    return gen


def gen_ctr_users(a, b, mu=2.5, sigma=1.1):
    """Item CTR per user: impressions 1 + ⌊lognormal(μ, σ)⌋ (world-calibrated), per-user CTR ~ Beta(a, b)·(1 + lift)."""
    def gen(rng, reps, n, lift):
        imps = 1 + np.floor(rng.lognormal(mu, sigma, (reps, n)))
        p = rng.beta(a, b, (reps, n)) * (1 + lift)
        return rng.binomial(imps.astype(np.int64), p).astype(float), imps
    return gen


def gen_gamma(shape, scale):
    def gen(rng, reps, n, lift):
        return rng.gamma(shape, scale, (reps, n)) * (1 + lift), None
    return gen


REL_SCENARIOS = [
    # name, metric type, generator, units/arm, required row (False: a stress row beyond the rows)
    ("(1a) orders/user, NegBin(shape 0.05, mean 0.5): 89% zeros, CV 4.7", "mean", gen_orders_negbin(0.05, 0.5), 500, True),
    ("(1b) revenue/user, zero-inflated lognormal: 10% buyers × lognormal(0, 1), CV 5.1", "mean",
     gen_revenue_zilognormal(0.10, 1.0), 500, True),
    ("(2) proportion, CTR 0.5%", "proportion", gen_bernoulli(0.005), 10_000, True),
    ("(3) ratio clicks/impressions per user, CTR 3% (Beta(0.6, 19.4)), impressions 1 + ⌊lognormal(2.5, 1.1)⌋",
     "ratio", gen_ctr_users(0.6, 19.4), 3000, True),
    ("(4) mean, Gamma(shape 4, scale 2.5): mean 10, CV 0.5", "mean", gen_gamma(4.0, 2.5), 1000, True),
    ("stress: revenue/user, 10% buyers × lognormal(0, 1.5), CV 9.7", "mean", gen_revenue_zilognormal(0.10, 1.5), 500,
     False),
    ("stress: proportion, CTR 0.5%, 1,000 units/arm (~5 events/arm)", "proportion", gen_bernoulli(0.005), 1000, False),
]


def _suff_chunked(rng, gen, reps: int, n: int, lift: float, chunk: int = 500) -> dict:
    """Sufficient statistics of ``reps`` replicates, generated ``chunk`` replicates at a time (bounded memory)."""
    parts = []
    for start in range(0, reps, chunk):
        x, y = gen(rng, min(chunk, reps - start), n, lift)
        parts.append(suff_from_units(x, y))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def relative_ci_table(rng, reps: int) -> list[dict]:
    rows = []
    for name, mtype, gen, n, required in REL_SCENARIOS:
        for lift in (0.0, 0.10):
            suff = _suff(*[_suff_chunked(rng, gen, reps, n, arm_lift) for arm_lift in (0.0, lift)])
            row = {"scenario": name, "units/arm": f"{n:,}", "true lift": f"{lift:+.0%}"}
            below, not_est = [], []
            for method in ("delta", "log", "fieller"):
                card = compare(suff, {"m": MetricSpec(mtype)}, "c", "t", by=["rep"], relative_ci=method)
                est = card.test_scale.to_numpy() == "relative"
                lo, hi = card.rel_ci_low.to_numpy()[est], card.rel_ci_high.to_numpy()[est]
                cov = ((lo <= lift) & (lift <= hi)).mean() if est.any() else np.nan
                row[f"{method}"] = _within(cov) if required else f"{100 * cov:.1f}%"
                below.append(_pct((lo < -1).mean() if est.any() else 0.0))
                not_est.append(_pct(1 - est.mean()))
                if method == "fieller":
                    row["A/A FPR (fieller = abs test)" if lift == 0 else "power (fieller)"] = _pct((card.p_value < 0.05).mean())
            row["lower bound < −100% (d / l / f)"] = " / ".join(below)
            row["not estimable (d / l / f)"] = " / ".join(not_est)
            rows.append(row)
            print(row, flush=True)
    return rows


def cuped_table(rng, reps: int) -> list[dict]:
    rows = []
    # mean metric: 30% of users have no pre-period activity (xp = 0)
    def gen_mean(r, shape, lift):
        has = r.random(shape) < 0.7
        act = r.gamma(2.0, 1.0, shape)
        xp = (act + r.normal(0, 1.0, shape)) * has
        x = (act + r.normal(0, 1.0, shape)) * (1 + lift)
        return x, None, xp, None

    # ratio metric (CTR): pre-period impressions/clicks of the same user, none for 30% of users
    def gen_ratio(r, shape, lift):
        act = r.lognormal(0.0, 1.0, shape)
        p = r.beta(2.0, 18.0, shape)
        has = r.random(shape) < 0.7
        yp = r.poisson(10 * act) * has
        xp = r.binomial(yp, p)
        y = r.poisson(10 * act) + 1
        x = r.binomial(y, np.minimum(p * (1 + lift), 1))
        return x.astype(float), y.astype(float), xp.astype(float), yp.astype(float)

    for name, mtype, gen, n in (("mean, 30% without history", "mean", gen_mean, 1000), ("ratio CTR, 30% without history", "ratio", gen_ratio, 1000)):
        # ρ² of the (linearised) metric with its pre-period value, from one big sample
        x, y, xp, yp = gen(rng, (1, 2_000_000), 0.0)
        x, xp = x[0], xp[0]
        if mtype == "ratio":
            y, yp = y[0], yp[0]
            x = (x - x.sum() / y.sum() * y) / y.mean()
            xp = (xp - xp.sum() / yp.sum() * yp) / yp.mean()
        rho2 = np.corrcoef(x, xp)[0, 1] ** 2
        lift = 0.05
        arms = [suff_from_units(*gen(rng, (reps, n), arm_lift)) for arm_lift in (0.0, lift)]
        suff = _suff(*arms)
        plain = compare(suff, {"m": MetricSpec(mtype)}, "c", "t", by=["rep"])
        adj = compare(suff, {"m": MetricSpec(mtype)}, "c", "t", by=["rep"], cuped=True)
        true_rel = lift
        true_abs = (plain.control_value.mean()) * lift  # control value is unbiased; MC error negligible here
        ratio_emp = adj.abs_effect.var() / plain.abs_effect.var()
        row = {
            "scenario": name,
            "units/arm": n,
            "ρ²": f"{rho2:.3f}",
            "1 − ρ²": f"{1 - rho2:.3f}",
            "Var(adj)/Var(plain), empirical": f"{ratio_emp:.3f} ({100 * (ratio_emp / (1 - rho2) - 1):+.1f}%)",
            "mean reported variance_reduction": f"{adj.variance_reduction.mean():.3f}",
            "bias of adj. effect (in SEs)": f"{(adj.abs_effect.mean() - true_abs) / (adj.abs_effect.std() / np.sqrt(reps)):+.2f}",
            "abs CI coverage": _within(((adj.abs_ci_low <= true_abs) & (true_abs <= adj.abs_ci_high)).mean()),
            "rel CI (delta) coverage": _within(((adj.rel_ci_low <= true_rel) & (true_rel <= adj.rel_ci_high)).mean()),
        }
        rows.append(row)
        print(row, flush=True)
    return rows


def sequential_table(rng, reps: int, days: int = 14, per_day: int = 100) -> list[dict]:
    rows = []
    for lift in (0.0, 0.15):
        x = rng.normal(1.0, 1.0, (reps, 2, days, per_day))
        x[:, 1] += lift
        s1 = np.cumsum(x.sum(-1), axis=2)
        s2 = np.cumsum((x**2).sum(-1), axis=2)
        rep, arm, day = np.meshgrid(np.arange(reps), np.arange(2), np.arange(days), indexing="ij")
        suff = pd.DataFrame({
            "metric": "m", "rep": rep.ravel(), "arm": np.where(arm.ravel() == 0, "c", "t"), "day": day.ravel() + 1,
            "n": (day.ravel() + 1) * per_day, "sum_x": s1.ravel(), "sum_x2": s2.ravel(),
        })
        spec = {"m": MetricSpec("mean")}
        results = {
            "naive daily t-test": compare(suff, spec, "c", "t", by=["rep", "day"]),
            "confidence sequence (N*=5000)": compare(suff, spec, "c", "t", by=["rep"], sequential=SequentialSpec()),
            "O'Brien–Fleming spending (planned 14 days)": compare(
                suff, spec, "c", "t", by=["rep"], sequential=SequentialSpec(method="obrien_fleming", planned_n=2 * days * per_day)
            ),
        }
        fixed_last = results["naive daily t-test"].query("day == @days")
        for name, card in results.items():
            any_sig = card.groupby("rep").significant.any().mean()
            covered_all = card.assign(cov=(card.abs_ci_low <= lift) & (lift <= card.abs_ci_high)).groupby("rep")["cov"].all().mean()
            rows.append({
                "procedure": name,
                "true lift": f"{lift:+.2f} (abs, σ = 1)",
                "rejects at any of 14 looks": f"{100 * any_sig:.1f}%",
                "CI covers truth at all 14 looks": f"{100 * covered_all:.1f}%",
            })
            print(rows[-1], flush=True)
        rows.append({"procedure": "single fixed-horizon t-test on day 14", "true lift": f"{lift:+.2f} (abs, σ = 1)",
                     "rejects at any of 14 looks": f"{100 * fixed_last.significant.mean():.1f}%", "CI covers truth at all 14 looks": "—"})
    return rows


def _md(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--rel-reps", type=int, default=8000)
    ap.add_argument("--seq-reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    load = os.getloadavg()
    t0 = time.time()
    rel = relative_ci_table(rng, args.rel_reps)
    cov = coverage_table(rng, args.reps)
    cup = cuped_table(rng, args.reps)
    seq = sequential_table(rng, args.seq_reps)
    elapsed = time.time() - t0
    body = "\n\n".join([
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/stats_monte_carlo.py --reps "
        f"{args.reps} --rel-reps {args.rel_reps} --seq-reps {args.seq_reps} --seed {args.seed}` in {elapsed / 60:.1f} min "
        f"(2 cores; 1-min load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after — other jobs were running "
        f"when it is above ~1). ✗ marks a coverage outside 94–96%. Monte Carlo standard error of a 95% coverage: "
        f"±{100 * np.sqrt(0.95 * 0.05 / args.rel_reps):.2f} points with {args.rel_reps} replicates (relative-CI table), "
        f"±{100 * np.sqrt(0.95 * 0.05 / args.reps):.2f} with {args.reps} (other tables).",
        "### Relative-CI coverage by method (issue 14 item 2), A/A and +10% lift\n\n"
        "Coverage of the 95% relative interval [rel_ci_low, rel_ci_high] of each `relative_ci` method (default "
        "`fieller`), over the replicates where the relative effect is estimable; ✗ marks a required row outside "
        "94–96% (stress rows are unmarked). Then each method's share of intervals whose lower bound is below −100% "
        "and share not estimable (`test_scale == \"absolute\"`), delta / log / fieller. Power and A/A FPR are "
        "of the fieller row's test (two-sided, α = 0.05).\n\n" + _md(rel),
        "### Coverage of 95% CIs (absolute and each relative method), A/A and +5% lift\n\n" + _md(cov),
        "### CUPED: variance reduction vs ρ² (+5% lift)\n\n" + _md(cup),
        f"### Peeking: {args.seq_reps} experiments, 14 daily cumulative looks, 100 users/arm/day\n\n" + _md(seq),
    ])
    text = OUT.read_text() if OUT.exists() else f"# Statistics engine benchmarks\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    OUT.write_text(head + START + "\n" + body + "\n" + END + rest.split(END, 1)[1])
    print(body)


if __name__ == "__main__":
    main()
