"""Interleaving vs an A/B test on the built-in world: the sessions each needs for 80% power, and why
the gap is not the literature's 10-100x (run by hand; ~3 min on 2 cores, worlds cached under data/).

    .venv/bin/python benchmarks/interleaving_sample_size.py [--users 20000] [--seed 7] [--reps 1000]

Two worlds of --users users (seed --seed), alike but for the users' true behaviour: position-based
examination ("pbm", the demo's) and cascade ("cascade": the user scans down and stops after a click
with probability 0.5, 0.8 after a purchase). V1 = A (control), V2 = B (treatment), fitted on each
world's pre-period. Every figure comes from :mod:`abplatform.offline.interleaving`:
``simulate_sessions`` ranks every logged session with both rankers, team-drafts their pages and lets
the world's true users (or the PBM users the pipeline fits on the logs) click on the interleaved page
and on each ranker's own page; ``analyse`` / ``ab_ratio_metric`` / ``compare_sample_sizes`` turn the
per-session clicks into the sessions each test needs (CLT formulas in that module's docstring).

Tables (written between the markers of benchmarks/interleaving.md; everything also to
--out/interleaving_sample_size.json):

1. the sessions each method needs, per world, users and unit of analysis;
2. a check of those predictions: the empirical power over --reps random samples of users of the
   predicted size (the users' own sessions, as an experiment would get them);
3. the session mix: no click, ties, decisive sessions, how much the two rankers' pages overlap;
4. a decomposition of the ratio into independent factors (clustering of sessions in users; pairing —
   showing both rankers to the same session; the interleaved page itself), measured with a second,
   independent simulation (seed + 1) of the same sessions;
5. credit rules and A/B metrics; 6. page length; 7. effect size (a treatment between V1 and V2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from abplatform.dataset import Dataset
from abplatform.offline import interleaving as il
from abplatform.offline.behaviour import FittedBehaviour
from abplatform.offline.ope import load_logged_pages
from abplatform.pipeline import ensure_world
from abplatform.rankers import CandidateBatch, Catalog, Ranker, V1Ranker, V2Ranker
from abplatform.world.generate import WorldParams
from abplatform.world.oracle import OracleBehaviour
from abplatform.world.truth import load_truth

OUT = Path(__file__).with_name("interleaving.md")
START, END = "<!-- results:start -->", "<!-- results:end -->"
ALPHA, POWER = 0.05, 0.8
Z2 = float((stats.norm.isf(ALPHA / 2) + stats.norm.ppf(POWER)) ** 2)


class Blend:
    """A treatment between A and B: candidates ordered by (1 − w)·rank under A + w·rank under B."""

    name = "blend"

    def __init__(self, a: Ranker, b: Ranker, weight: float):
        self.a, self.b, self.weight = a, b, weight

    def fit(self, dataset: Dataset, catalog: Catalog) -> Blend:
        return self

    def score(self, batch: CandidateBatch) -> np.ndarray:
        def ranks(scores: np.ndarray) -> np.ndarray:
            key = np.where(batch.candidate_rows >= 0, -scores, np.inf)
            return np.argsort(np.argsort(key, axis=1, kind="stable"), axis=1).astype(float)

        return -((1 - self.weight) * ranks(self.a.score(batch)) + self.weight * ranks(self.b.score(batch)))


def load(users: int, seed: int, behaviour: str, data: Path) -> dict:
    path = ensure_world(WorldParams(users=users, seed=seed, behaviour=behaviour), data)
    ds = Dataset(path)
    catalog = Catalog.from_dataset(ds)
    return {"path": path, "dataset": ds, "catalog": catalog, "logged": load_logged_pages(ds),
            "v1": V1Ranker().fit(ds, catalog), "v2": V2Ranker().fit(ds, catalog),
            "oracle": OracleBehaviour(load_truth(path))}


def simulate(w: dict, seed: int, users=None, treatment=None, page_size: int = 10) -> il.SimulatedSessions:
    return il.simulate_sessions(w["logged"], w["v1"], treatment or w["v2"], w["catalog"], users or w["oracle"], seed,
                                page_size=page_size)


def sizes(sim: il.SimulatedSessions, unit: il.Unit, rule: il.CreditRule = "wins") -> il.SampleSizeComparison:
    codes = sim.interleaved.unit_codes
    assert codes is not None
    analysis = il.analyse(sim.interleaved, credit_rule=rule, unit=unit, alpha=ALPHA)
    return il.compare_sample_sizes(analysis, il.ab_ratio_metric(codes, sim.clicks_a, sim.shown_a, sim.clicks_b,
                                                                sim.shown_b), POWER)


# --------------------------------------------------------------------------------------------
# 2. empirical power at the predicted sizes
# --------------------------------------------------------------------------------------------
def sign_test_p(wins: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Two-sided binomial test at 1/2 (scipy's binomtest, vectorised: p = min(1, 2 F(min(k, d − k))))."""
    d = wins + losses
    return np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(wins, losses), d, 0.5))


def empirical_power(sim: il.SimulatedSessions, predicted: dict[str, float], reps: int,
                    seed: int) -> dict[str, tuple[float, float]]:
    """Per method: (share of ``reps`` samples in which the test rejects at ALPHA, mean users sampled). A sample
    is users in random order, with all their sessions, up to the first whose sessions reach the predicted
    number (users are heavy-tailed: a fixed number of them would give a very variable number of sessions)."""
    codes = sim.interleaved.unit_codes
    assert codes is not None

    def per_user(v: np.ndarray) -> np.ndarray:
        return np.bincount(codes, np.asarray(v, float))

    m = per_user(np.ones(len(codes)))
    credit = np.sign(sim.interleaved.team_b - sim.interleaved.team_a)
    wins_b, wins_a, total = per_user(credit > 0), per_user(credit < 0), per_user(credit)
    xa, ya, xb, yb = (per_user(v) for v in (sim.clicks_a, sim.shown_a, sim.clicks_b, sim.shown_b))
    g = np.random.default_rng(seed)
    out = {}
    for method, sessions in predicted.items():
        width = min(len(m), int(10 * sessions / m.mean()) + 50)  # enough users to reach the target in every sample
        idx = np.argsort(g.random((reps, len(m))), axis=1)[:, :width]
        before = np.cumsum(m[idx], axis=1) - m[idx]
        take = before < sessions  # the users up to the first who reaches the target
        assert (~take[:, -1]).all(), "a sample did not reach its target"

        def summed(v: np.ndarray, where: np.ndarray, idx: np.ndarray = idx) -> np.ndarray:
            return np.where(where, v[idx], 0.0).sum(axis=1)

        if method == "ab":  # every other user of the random order to treatment
            arm_b = take & (np.arange(width) % 2 == 0)
            arm_a = take & (np.arange(width) % 2 == 1)
            se2, diff = np.zeros(reps), np.zeros(reps)
            for x, y, sel, sign in ((xb, yb, arm_b, 1), (xa, ya, arm_a, -1)):
                n, sx, sy = sel.sum(axis=1), summed(x, sel), summed(y, sel)
                r = sx / sy
                resid = np.where(sel, x[idx] - r[:, None] * y[idx], 0.0)
                se2 += (resid**2).sum(axis=1) / (n - 1) / (sy / n) ** 2 / n  # delta method
                diff += sign * r
            p = 2 * stats.norm.sf(np.abs(diff) / np.sqrt(se2))
        elif method == "interleaving, sessions, sign":
            p = sign_test_p(summed(wins_b, take), summed(wins_a, take))
        elif method == "interleaving, units, sign":
            p = sign_test_p(summed((total > 0).astype(float), take), summed((total < 0).astype(float), take))
        else:  # interleaving, units, t: one-sample t-test of psi = pref + (S_u - pref m_u) / mean(m)
            n = take.sum(axis=1)
            pref = summed(total, take) / summed(m, take)
            psi = pref[:, None] + (total[idx] - pref[:, None] * m[idx]) / (summed(m, take) / n)[:, None]
            mean = np.where(take, psi, 0.0).sum(axis=1) / n
            var = np.where(take, (psi - mean[:, None]) ** 2, 0.0).sum(axis=1) / (n - 1)
            p = 2 * stats.t.sf(np.abs(mean) / np.sqrt(var / n), n - 1)
        out[method] = (float(np.mean(p < ALPHA)), float(take.sum(axis=1).mean()))
    return out


# --------------------------------------------------------------------------------------------
# 3.-4. session mix and decomposition
# --------------------------------------------------------------------------------------------
def session_mix(sim: il.SimulatedSessions) -> dict[str, float]:
    s = sim.interleaved
    decisive = s.team_a != s.team_b
    return {"no_click": float((s.clicks == 0).mean()), "tie_with_clicks": float(((s.clicks > 0) & ~decisive).mean()),
            "decisive": float(decisive.mean()), "b_share_of_decisive": float((s.team_b > s.team_a)[decisive].mean()),
            "same_page": float(sim.same_page.mean()), "overlap": float(sim.overlap.mean()),
            "clicks_interleaved": float(s.clicks.mean()), "clicks_a": float(sim.clicks_a.mean()),
            "clicks_b": float(sim.clicks_b.mean())}


def decomposition(sim: il.SimulatedSessions, replicate: il.SimulatedSessions) -> dict[str, float]:
    """Sessions per design, all in clicks per session (every page here shows 10 items, so item CTR = clicks / 10):

    * ab_users: item CTR per user (the real A/B test, sessions clustered in users);
    * ab_sessions: sessions randomised one by one, 2-sample test: Z² · 2(V_A + V_B)/δ²;
    * paired: each session shown both pages, clicks drawn independently: Z² · Var(d)/δ², d = c_B − c_A,
      Var(d) = V_A + V_B − 2 Cov(μ_A, μ_B); Cov(μ_A, μ_B), the per-session click propensity shared by
      both pages, estimated as the covariance of A's clicks in one simulation with B's in the independent
      replicate; h = 2 Cov / (V_A + V_B) is the share of the variance pairing removes;
    * interleaving: the sign test over sessions.
    """
    a, b = sim.clicks_a.astype(float), sim.clicks_b.astype(float)
    a2, b2 = replicate.clicks_a.astype(float), replicate.clicks_b.astype(float)
    delta = float((b - a).mean())
    v_a, v_b = float(a.var(ddof=1)), float(b.var(ddof=1))
    shared = float((np.cov(a, b2)[0, 1] + np.cov(a2, b)[0, 1]) / 2)
    per_session = sizes(sim, "session")
    return {"ab_users": per_session.ab_sessions, "ab_sessions": Z2 * 2 * (v_a + v_b) / delta**2,
            "paired": Z2 * (v_a + v_b - 2 * shared) / delta**2, "interleaving": per_session.interleaving_sessions,
            "h": 2 * shared / (v_a + v_b), "v_a": v_a, "v_b": v_b, "delta_clicks": delta}


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------
def fmt(x: float, digits: int = 0) -> str:
    return "∞" if not np.isfinite(x) else f"{x:,.{digits}f}"


def headline_rows(name: str, sim: il.SimulatedSessions) -> tuple[list[str], dict]:
    rows, raw = [], {}
    for unit in ("session", "unit"):
        s = sizes(sim, unit)
        pref = il.analyse(sim.interleaved, unit=unit)
        raw[unit] = {"ab_sessions": s.ab_sessions, "ab_units": s.ab_units,
                     "interleaving_sessions": s.interleaving_sessions,
                     "interleaving_t_sessions": s.interleaving_t_sessions, "ratio": s.ratio, "p_b": s.p_b,
                     "p_a": s.p_a, "preference": pref.preference, "ctr_a": s.ab.value_a, "ctr_b": s.ab.value_b}
        lift = s.ab.value_b / s.ab.value_a - 1
        rows.append(f"| {name} | {unit} | {s.ab.value_a:.4f} → {s.ab.value_b:.4f} ({lift:+.1%}) "
                    f"| {fmt(s.ab_sessions)} ({fmt(s.ab_units)}) | {pref.preference:.3f} "
                    f"| {s.p_b / (s.p_a + s.p_b):.3f} "
                    f"| {fmt(s.interleaving_sessions)} | {fmt(s.interleaving_t_sessions)} | **{s.ratio:.1f}×** "
                    f"| {s.ab_sessions / s.interleaving_t_sessions:.1f}× |")
    return rows, raw


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--sim-seed", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.0f}s] {msg}", file=sys.stderr, flush=True)  # noqa: T201

    seed = args.sim_seed
    worlds = {b: load(args.users, args.seed, b, args.data) for b in ("pbm", "cascade")}
    say("worlds loaded, rankers fitted")
    sims = {b: simulate(w, seed) for b, w in worlds.items()}
    replicates = {b: simulate(w, seed + 1) for b, w in worlds.items()}
    say("oracle simulations done")
    w = worlds["pbm"]
    fitted_users = FittedBehaviour("pbm", 10).fit(w["dataset"], w["catalog"])
    fitted = simulate(w, seed, users=fitted_users)
    fitted_replicate = simulate(w, seed + 1, users=fitted_users)
    say("fitted-PBM simulations done")
    logged = w["logged"]
    n_sessions, n_users = len(logged), len(np.unique(logged.unit_ids.astype(str)))
    report: dict = {"users": n_users, "sessions": n_sessions, "world_seed": args.seed, "sim_seed": seed}

    # 1. headline
    md = ["### 1. Sessions for 80% power", "",
          ("| world, users | interleaving unit | A/B item CTR A → B | A/B sessions (users) | preference Δ "
           "| B's share of decisive | interleaving sessions, sign test | … t-test | ratio (sign test) "
           "| ratio (t-test) |"),
          "|---|---|---|---|---|---|---|---|---|---|"]
    report["headline"] = {}
    for name, sim in (("pbm, true users", sims["pbm"]), ("pbm, fitted PBM users", fitted),
                      ("cascade, true users", sims["cascade"])):
        rows, raw = headline_rows(name, sim)
        md += rows
        report["headline"][name] = raw

    # 2. empirical power
    md += ["", "### 2. The predictions checked: empirical power at the predicted size", "",
           (f"{args.reps} samples of users in random order, all their sessions, up to the first user whose "
            "sessions reach the predicted number (A/B: every other user of the order to each arm); the test at "
            "α = 0.05 on the clicks of the simulation above."), "",
           "| world | test | predicted sessions | mean users sampled | empirical power |", "|---|---|---|---|---|"]
    report["empirical_power"] = {}
    for b in ("pbm", "cascade"):
        sim = sims[b]
        s_sess, s_unit = sizes(sim, "session"), sizes(sim, "unit")
        predicted = {"ab": s_sess.ab_sessions, "interleaving, sessions, sign": s_sess.interleaving_sessions,
                     "interleaving, units, sign": s_unit.interleaving_sessions,
                     "interleaving, units, t": s_unit.interleaving_t_sessions}
        power = empirical_power(sim, predicted, args.reps, seed)
        report["empirical_power"][b] = {k: {"predicted_sessions": predicted[k], "power": power[k][0],
                                            "mean_users": power[k][1]} for k in predicted}
        for k in predicted:
            md.append(f"| {b} | {k} | {fmt(predicted[k])} | {power[k][1]:,.1f} | {power[k][0]:.1%} |")
    say("empirical power done")

    # 3. session mix
    md += ["", "### 3. The session mix on the interleaved page", "",
           ("| world, users | no click | clicks, tie | decisive | B's share of decisive "
            "| identical top 10 | items both top 10s share | clicks/session: A page, B page, interleaved |"),
           "|---|---|---|---|---|---|---|---|"]
    report["session_mix"] = {}
    for name, sim in (("pbm, true users", sims["pbm"]), ("pbm, fitted PBM users", fitted),
                      ("cascade, true users", sims["cascade"])):
        mix = session_mix(sim)
        report["session_mix"][name] = mix
        md.append(f"| {name} | {mix['no_click']:.1%} | {mix['tie_with_clicks']:.1%} | {mix['decisive']:.1%} "
                  f"| {mix['b_share_of_decisive']:.3f} | {mix['same_page']:.1%} "
                  f"| {mix['overlap']:.2f} of 10 | {mix['clicks_a']:.3f}, {mix['clicks_b']:.3f}, "
                  f"{mix['clicks_interleaved']:.3f} |")

    # 4. decomposition
    md += ["", "### 4. Where the ratio comes from (sessions, per-session sign test)", "",
           ("ratio = A/B per user ÷ interleaving = (A/B per user ÷ A/B per session) × (A/B per session ÷ paired) × "
           "(paired ÷ interleaving). Paired: every session shown both rankers' own pages, clicks independent."), "",
           ("| world, users | A/B per user | A/B per session | paired pages | interleaving | clustering | pairing "
           "(of which 2× from one sample instead of two) | share of click variance pairing removes (h) "
           "| interleaved page vs paired pages | ratio |"), "|---|---|---|---|---|---|---|---|---|---|"]
    report["decomposition"] = {}
    for name, sim, replicate in (("pbm, true users", sims["pbm"], replicates["pbm"]),
                                 ("pbm, fitted PBM users", fitted, fitted_replicate),
                                 ("cascade, true users", sims["cascade"], replicates["cascade"])):
        d = decomposition(sim, replicate)
        report["decomposition"][name] = d
        md.append(f"| {name} | {fmt(d['ab_users'])} | {fmt(d['ab_sessions'])} | {fmt(d['paired'])} "
                  f"| {fmt(d['interleaving'])} | {d['ab_users'] / d['ab_sessions']:.2f}× "
                  f"| {d['ab_sessions'] / d['paired']:.2f}× | {d['h']:.1%} | {d['paired'] / d['interleaving']:.2f}× "
                  f"| **{d['ab_users'] / d['interleaving']:.1f}×** |")

    # 5. credit rules and A/B metrics
    md += ["", "### 5. Credit rules and A/B metrics (sessions)", "",
           ("The sign test is the same for every credit rule (they agree on each session's sign); the rules "
            "differ in the t-test. Raw click difference: c_B − c_A per session (benchmark only). A/B tests per "
            "user: item CTR, and the share of sessions with a click."), "",
           ("| world | test | effect: A → B, or mean credit | sd per session | sessions for 80% power "
            "| ratio vs A/B item CTR | ratio vs A/B sessions with a click |"), "|---|---|---|---|---|---|---|"]
    report["credit_rules"] = {}
    for b in ("pbm", "cascade"):
        sim = sims[b]
        codes = sim.interleaved.unit_codes
        assert codes is not None
        ones = np.ones(len(codes))
        ctr = sizes(sim, "session").ab
        success = il.ab_ratio_metric(codes, sim.clicks_a > 0, ones, sim.clicks_b > 0, ones)
        ab = {name: (metric, metric.units_needed(ALPHA, POWER) * n_sessions / n_users)
              for name, metric in (("A/B, item CTR", ctr), ("A/B, sessions with a click", success))}
        rows = {"sign test": (float("nan"), float("nan"), sizes(sim, "session").interleaving_sessions)}
        for rule in ("wins", "click_difference"):
            a = il.analyse(sim.interleaved, credit_rule=rule, unit="session")
            rows[f"t-test, {rule}"] = (a.preference, np.sqrt(a.variance),
                                       il.t_test_sample_size(a.preference, a.variance, ALPHA, POWER))
        raw = (sim.interleaved.team_b - sim.interleaved.team_a).astype(float)
        rows["t-test, raw click difference"] = (raw.mean(), raw.std(ddof=1),
                                                il.t_test_sample_size(raw.mean(), raw.var(ddof=1), ALPHA, POWER))
        report["credit_rules"][b] = {**{k: {"value_a": m.value_a, "value_b": m.value_b, "sessions": n}
                                        for k, (m, n) in ab.items()}, **{k: list(v) for k, v in rows.items()}}
        for k, (m, n) in ab.items():
            md.append(f"| {b} | {k} | {m.value_a:.3f} → {m.value_b:.3f} | – | {fmt(n)} | | |")
        for k, (pref, sd, n) in rows.items():
            md.append(f"| {b} | interleaving, {k} | {fmt(pref, 3) if np.isfinite(pref) else '–'} "
                      f"| {fmt(sd, 3) if np.isfinite(sd) else '–'} | {fmt(n)} | {ab['A/B, item CTR'][1] / n:.1f}× "
                      f"| {ab['A/B, sessions with a click'][1] / n:.1f}× |")
    say("decomposition and credit rules done")

    # 6. page length, 7. effect size
    md += ["", "### 6. Page length (sessions, per-session sign test)", "",
           ("| world | page length | A/B item CTR lift | A/B sessions | B's share of decisive | decisive sessions "
           "| interleaving sessions | ratio |"), "|---|---|---|---|---|---|---|---|"]
    report["page_length"] = {}
    for b, wld in worlds.items():
        for k in (10, 5, 3):
            sim = sims[b] if k == 10 else simulate(wld, seed, page_size=k)
            s = sizes(sim, "session")
            report["page_length"][f"{b}-{k}"] = {"ab_sessions": s.ab_sessions,
                                                 "interleaving_sessions": s.interleaving_sessions, "ratio": s.ratio}
            md.append(f"| {b} | {k} | {s.ab.value_b / s.ab.value_a - 1:+.1%} | {fmt(s.ab_sessions)} "
                      f"| {s.p_b / (s.p_a + s.p_b):.3f} | {s.p_a + s.p_b:.1%} | {fmt(s.interleaving_sessions)} "
                      f"| {s.ratio:.1f}× |")
    say("page lengths done")
    md += ["", "### 7. Effect size: treatments between V1 and V2 (sessions, per-session sign test)", "",
           ("Treatment = candidates ordered by (1 − w)·rank under V1 + w·rank under V2 (w = 1: V2 itself, its own "
           "scores)."), "",
           ("| world | w | A/B item CTR lift | A/B sessions | items both top 10s share | B's share of decisive "
            "| decisive | interleaving sessions | ratio |"), "|---|---|---|---|---|---|---|---|---|"]
    report["effect_size"] = {}
    for b, wld in worlds.items():
        for weight in (1.0, 0.5, 0.25):
            sim = sims[b] if weight == 1.0 else simulate(wld, seed, treatment=Blend(wld["v1"], wld["v2"], weight))
            s = sizes(sim, "session")
            report["effect_size"][f"{b}-{weight}"] = {"lift": s.ab.value_b / s.ab.value_a - 1,
                                                      "ab_sessions": s.ab_sessions,
                                                      "interleaving_sessions": s.interleaving_sessions,
                                                      "ratio": s.ratio, "overlap": float(sim.overlap.mean())}
            md.append(f"| {b} | {weight:g} | {s.ab.value_b / s.ab.value_a - 1:+.1%} | {fmt(s.ab_sessions)} "
                      f"| {sim.overlap.mean():.2f} of 10 | {s.p_b / (s.p_a + s.p_b):.3f} | {s.p_a + s.p_b:.1%} "
                      f"| {fmt(s.interleaving_sessions)} | {s.ratio:.1f}× |")
    say("effect sizes done")

    report["seconds"] = time.perf_counter() - t0
    (args.out / "interleaving_sample_size.json").write_text(json.dumps(report, indent=1, default=float))
    md = [(f"World seed {args.seed}, {args.users:,} users generated: {n_sessions:,} logged sessions of "
           f"{n_users:,} users ({n_sessions / n_users:.2f} sessions per user), pages of 10 from 30 candidates; "
           f"simulation seed {seed} (replicate {seed + 1}); α = {ALPHA}, power {POWER:.0%}. "
           f"{report['seconds']:.0f} s on this machine (2 cores)."), "", *md]
    body = "\n".join(md)
    text = OUT.read_text() if OUT.exists() else f"# Interleaving vs A/B\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    OUT.write_text(head + START + "\n" + body + "\n" + END + rest.split(END, 1)[1])
    print(body)  # noqa: T201


if __name__ == "__main__":
    main()
