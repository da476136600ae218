"""A slot-level synthetic log with exact truth, for the per-row off-policy estimators.

Contexts with hidden attractions over 80 items; pages of 3 slots; clicks from a position-based
model P(click) = GAMMA[k] * attraction(x, a). The logging policy shows a uniformly random ordered 3 of
the 80 items (``epsilon`` = 1) or, with probability 1 - epsilon, its own fixed top 3 of the context:
pi_b(a | x, k) = (1 - epsilon) 1[a = its top item at k] + epsilon / 80, exactly. Some sessions keep only
one random slot of their page (a partial page); which is independent of items and clicks. Targets: a
Thompson-sampling-like stochastic policy (the frequency of each item at each slot over posterior draws
ranked, a table per (context, slot, item) whose rows each sum to 1) and a deterministic ranker.
Item ids are not 0..79 (1000 + 7 j) and session ids have gaps, so ids and indices cannot be confused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abplatform.offline.logged_rows import LoggedRows
from abplatform.offline.target_policy import DeterministicPages, StochasticPolicy

N_ITEMS = 80
K = 3
GAMMA = np.array([1.0, 0.6, 0.35])
ITEM_IDS = 1000 + 7 * np.arange(N_ITEMS)


def item_index(item_ids: np.ndarray) -> np.ndarray:
    return (np.asarray(item_ids) - 1000) // 7


@dataclass(frozen=True)
class SlotWorld:
    attraction: np.ndarray  # (n_ctx, N_ITEMS)
    logging_top: np.ndarray  # (n_ctx, K) item index the logging policy prefers at each slot
    target_table: np.ndarray  # (n_ctx, K, N_ITEMS) pi_e(a | x, k) of the stochastic target
    target_top: np.ndarray  # (n_ctx, K) item index the deterministic target shows at each slot
    q_hat: np.ndarray  # (n_ctx, K, N_ITEMS) a deliberately wrong reward model

    @property
    def n_ctx(self) -> int:
        return len(self.attraction)

    def click_probability(self) -> np.ndarray:
        """(n_ctx, K, N_ITEMS) the true P(click | x, a, k)."""
        return GAMMA[None, :, None] * self.attraction[:, None, :]

    def deterministic_table(self) -> np.ndarray:
        """(n_ctx, K, N_ITEMS) the deterministic target as one-hot probabilities."""
        table = np.zeros((self.n_ctx, K, N_ITEMS))
        table[np.arange(self.n_ctx)[:, None], np.arange(K)[None, :], self.target_top] = 1.0
        return table


def make_world(seed: int = 0, n_ctx: int = 30, draws: int = 2000) -> SlotWorld:
    g = np.random.default_rng(seed)
    attraction = g.beta(1.2, 10, (n_ctx, N_ITEMS))
    logging_top = np.argsort(-(attraction + g.normal(0, 0.15, attraction.shape)), axis=1)[:, :K]
    # Thompson-like: rank posterior draws Beta(1 + s, 1 + 40 - s) of 40 pseudo-impressions per item
    succ = g.binomial(40, attraction)
    samples = g.beta(1 + succ, 1 + 40 - succ, (draws, n_ctx, N_ITEMS))
    top = np.argsort(-samples, axis=2)[:, :, :K]  # (draws, n_ctx, K)
    table = np.zeros((n_ctx, K, N_ITEMS))
    for k in range(K):
        np.add.at(table, (np.arange(n_ctx)[None, :], k, top[:, :, k]), 1.0 / draws)
    target_top = np.argsort(-(attraction + g.normal(0, 0.05, attraction.shape)), axis=1)[:, :K]
    q_hat = np.clip(1.3 * GAMMA[None, :, None] * attraction[:, None, :] + 0.01 * g.random((n_ctx, K, N_ITEMS)), 0, 1)
    return SlotWorld(attraction, logging_top, table, target_top, q_hat)


def uniform_pages(g: np.random.Generator, n: int) -> np.ndarray:
    """(n, K) uniformly random ordered K = 3 distinct items: each draw uniform over the items not yet drawn
    (a draw among the 80 - j left, shifted past the j drawn before it in increasing order)."""
    first = g.integers(0, N_ITEMS, n)
    second = g.integers(0, N_ITEMS - 1, n)
    second += second >= first
    third = g.integers(0, N_ITEMS - 2, n)
    third += third >= np.minimum(first, second)
    third += third >= np.maximum(first, second)
    return np.column_stack([first, second, third])


@dataclass(frozen=True)
class SlotLog:
    rows: LoggedRows
    ctx: np.ndarray  # (n,) context of each row
    slot: np.ndarray  # (n,) 0-based slot
    item: np.ndarray  # (n,) item index
    session_ctx: np.ndarray  # (n_sessions,) context of each session
    session_ids: np.ndarray  # (n_sessions,)


def draw_log(world: SlotWorld, n_sessions: int, seed: int, epsilon: float = 1.0, partial: float = 0.5) -> SlotLog:
    """A log of ``n_sessions`` pages; a share ``partial`` of them keeps one random slot only."""
    g = np.random.default_rng(seed)
    session_ids = np.arange(n_sessions, dtype=np.int64) * 3 + 11
    ctx = g.integers(0, world.n_ctx, n_sessions)
    random_pages = uniform_pages(g, n_sessions)
    explore = g.random(n_sessions) < epsilon
    pages = np.where(explore[:, None], random_pages, world.logging_top[ctx])
    propensity = epsilon / N_ITEMS + (1 - epsilon) * (pages == world.logging_top[ctx])
    clicks = g.random((n_sessions, K)) < GAMMA * np.take_along_axis(world.attraction[ctx], pages, axis=1)
    keep = np.ones((n_sessions, K), bool)
    one_slot = g.random(n_sessions) < partial
    keep[one_slot] = False
    keep[one_slot, g.integers(0, K, int(one_slot.sum()))] = True
    s, k = np.nonzero(keep)
    rows = LoggedRows(session_ids[s], k + 1, ITEM_IDS[pages[s, k]], clicks[s, k].astype(float), propensity[s, k],
                      ctx[s])
    return SlotLog(rows, ctx[s], k, pages[s, k], ctx, session_ids)


def true_values(world: SlotWorld, log: SlotLog, table: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Exact per-row, per-slot and per-page value of the target ``table`` on the log's contexts and slots."""
    per_row = (table[log.ctx, log.slot] * world.click_probability()[log.ctx, log.slot]).sum(axis=1)
    per_slot = np.array([per_row[log.slot == k].mean() for k in range(K)])
    return float(per_row.mean()), per_slot, float(per_slot.sum())


def stochastic_target(world: SlotWorld, by_context: bool = True) -> tuple[StochasticPolicy, np.ndarray]:
    """The Thompson-like table as the platform's StochasticPolicy, per (context, slot, item) or per (slot,
    item) (its mean over contexts), and its dense (n_ctx, K, N_ITEMS) form."""
    if by_context:
        table = world.target_table
        c, k, a = np.indices(table.shape).reshape(3, -1)
        return StochasticPolicy(k + 1, ITEM_IDS[a], table.ravel(), c), table
    per_slot = world.target_table.mean(axis=0)
    k, a = np.indices(per_slot.shape).reshape(2, -1)
    return StochasticPolicy(k + 1, ITEM_IDS[a], per_slot.ravel()), np.broadcast_to(per_slot, world.target_table.shape)


def deterministic_target(world: SlotWorld, log: SlotLog) -> tuple[DeterministicPages, np.ndarray]:
    pages = ITEM_IDS[world.target_top[log.session_ctx]]
    return DeterministicPages(log.session_ids, pages, "deterministic ranker"), world.deterministic_table()
