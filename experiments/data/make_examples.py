"""Regenerate the example logs that are not the built-in world's, shaped like real logs we did not make.

``slot_level_log/``: a query-less slot-level recommendation log shaped like a public fashion
recommender's (the Open Bandit Dataset): 3 slots per page and 80 items, one logged slot per page
(the log keeps one impression of each page), one CSV per logging policy (``random/`` uniform
random, ``bts/`` Bernoulli Thompson sampling), an unnamed row-index column, ``timestamp,
item_id, position, click, propensity_score``, hashed user features and user–item affinities; no
user id, no query, no purchases. Pages (rounds) were randomised to a policy, and the index is the
round number, unique over both files. ``bts/policy.csv`` holds the Thompson-sampling policy's
probability of each item at each slot — the stochastic target of the off-policy example.

``session_randomised/``: a search log randomised by *session* (a user's sessions fall in either
arm), one CSV of impressions carrying their session's columns under the logging system's own
names (``sess, visitor, bucket, served_at, device, slot, product, clk``), no queries.

Run ``python experiments/data/make_examples.py`` (deterministic: the same bytes every time;
``tests/test_real_log_examples.py`` checks the shipped files are exactly this script's output).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ITEMS, SLOTS = 80, 3
EXAMINATION = np.array([1.0, 0.7, 0.45])  # the slot-level log's true position effect (PBM)


def _attraction(rng: np.random.Generator) -> np.ndarray:
    """Per-item click probability at the top slot: most items rarely clicked, a few popular ones."""
    return np.clip(rng.beta(0.8, 30.0, ITEMS) + 0.002, 0.0, 0.3)


def thompson_probabilities(attraction: np.ndarray, seed: int = 5) -> np.ndarray:
    """(SLOTS, ITEMS) probability that Bernoulli Thompson sampling (Beta posteriors after a burn-in of
    simulated clicks) shows each item at each slot, by Monte Carlo (as the dataset's own
    ``propensity_score`` of its BTS policy); rows sum to 1."""
    rng = np.random.default_rng(seed)
    shown = 400 * np.ones(ITEMS)
    clicks = rng.binomial(400, attraction)
    draws = rng.beta(1 + clicks, 1 + shown - clicks, size=(20_000, ITEMS))
    order = np.argsort(-draws, axis=1)[:, :SLOTS]  # the top 3 sampled items fill the slots
    probs = np.zeros((SLOTS, ITEMS))
    for k in range(SLOTS):
        probs[k] = np.bincount(order[:, k], minlength=ITEMS) / len(order)
    probs = np.maximum(probs, 1e-4)  # every item keeps some support (as the dataset's scores do)
    return probs / probs.sum(axis=1, keepdims=True)


def slot_level_log(out: Path, rounds: int = 8000, seed: int = 11) -> None:
    rng = np.random.default_rng(seed)
    attraction = _attraction(rng)
    bts = thompson_probabilities(attraction)
    policy = rng.integers(0, 2, rounds)  # 0 random, 1 bts: each round randomised to a policy
    slot = rng.integers(0, SLOTS, rounds)  # the one slot of the page the log keeps
    item = np.where(policy == 0, rng.integers(0, ITEMS, rounds),
                    [rng.choice(ITEMS, p=bts[k]) for k in slot])
    propensity = np.where(policy == 0, 1.0 / ITEMS, bts[slot, item])
    click = rng.random(rounds) < EXAMINATION[slot] * attraction[item]
    start = datetime(2019, 11, 24, tzinfo=UTC)
    times = np.cumsum(rng.exponential(2.5, rounds))
    features = rng.integers(0, 2**32, size=(rounds, 4))
    affinity = rng.normal(0, 1, size=(rounds, 5)).round(4)
    header = ["", "timestamp", "item_id", "position", "click", "propensity_score",
              *(f"user_feature_{j}" for j in range(4)), *(f"user-item_affinity_{j}" for j in range(5))]
    for p, name in enumerate(("random", "bts")):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "all.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            for r in np.flatnonzero(policy == p):
                ts = (start + timedelta(seconds=float(times[r]))).isoformat(sep=" ", timespec="microseconds")
                w.writerow([r, ts, int(item[r]), int(slot[r]) + 1, int(click[r]), f"{propensity[r]:.10g}",
                            *(f"{f:08x}" for f in features[r]), *(f"{a:.4f}" for a in affinity[r])])
    with open(out / "bts" / "policy.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["position", "item_id", "probability"])
        for k in range(SLOTS):
            for i in range(ITEMS):
                w.writerow([k + 1, i, f"{bts[k, i]:.12g}"])


def session_randomised_log(out: Path, users: int = 800, seed: int = 13, lift: float = 0.2) -> None:
    """Sessions randomised 50/50 to A (control) or B (treatment, item CTR ×(1 + lift)); 10 slots per page."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 3, 3, tzinfo=UTC)
    device = np.where(rng.random(users) < 0.6, "mobile", "desktop")
    taste = rng.gamma(2.0, 0.5, users)  # users differ in how much they click
    examination = 1.0 / np.arange(1, 11) ** 0.8
    sid = 0
    with open(out / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sess", "visitor", "bucket", "served_at", "device", "slot", "product", "clk"])
        for u in range(users):
            for _ in range(1 + rng.poisson(2.0)):
                sid += 1
                bucket = "B" if rng.random() < 0.5 else "A"
                when = start + timedelta(minutes=float(rng.uniform(0, 7 * 24 * 60)))
                products = rng.choice(5000, 10, replace=False)
                p = 0.08 * taste[u] * examination * (1 + lift if bucket == "B" else 1.0)
                clicks = rng.random(10) < np.clip(p, 0, 1)
                for k in range(10):
                    w.writerow([sid, f"v{u:05d}", bucket, when.isoformat(timespec="seconds"), device[u], k + 1,
                                int(products[k]), "yes" if clicks[k] else "no"])


def main() -> None:
    slot_level_log(HERE / "slot_level_log")
    session_randomised_log(HERE / "session_randomised")


if __name__ == "__main__":
    main()
