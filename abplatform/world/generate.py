"""The built-in synthetic search world, streamed to a dataset in the event-log contract.

``generate_world(params, out_dir)`` writes, partition by partition (a fixed number of users per
partition, so memory stays flat as the world grows):

* ``items/`` — the catalog (Zipf popularity, long tail, titles with synonyms);
* ``pre_sessions/``, ``pre_impressions/`` — a pre-period logged by a cold-start BM25 policy;
* ``sessions/``, ``impressions/``, ``candidates/`` — the experiment period logged by V1 (fitted on
  the pre-period) with epsilon-randomisation, the propensity of each shown item recorded;
* ``relevance_labels/``, ``page_labels/`` — manual judgements of a sample of pages;
* ``truth/`` — the hidden truth (user preferences, item quality, query intents) that only the
  simulator's oracle behaviour model and the raters read; ``world.json`` — the parameters.

Randomness: world structure uses numpy generators seeded by (seed, stage, partition); user
responses use counter-based uniforms keyed by (seed, session id) (:mod:`abplatform.rng`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abplatform import rng
from abplatform.contract import ATTRIBUTE_NAMES, CANDIDATES, IMPRESSIONS, ITEMS, PAGE_LABELS, RELEVANCE_LABELS, SESSIONS
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.rankers import Catalog, V1Ranker
from abplatform.rankers.base import CandidateBatch, rank
from abplatform.rng import Stream
from abplatform.store import atomic_directory
from abplatform.world import behaviour
from abplatform.world.behaviour import BehaviourModel, ItemTruth, RaterScale, ResponseCoefficients, SessionIntent
from abplatform.world.vocab import ATTRIBUTES, LEAVES

USERS_PER_PARTITION = 5000
COMPLEXITY_SHARES = {"simple": 0.45, "attribute": 0.30, "multi": 0.15, "indirect": 0.10}
EXP_SESSION_OFFSET = 500_000_000_000


@dataclass(frozen=True)
class WorldParams:
    users: int = 50_000
    days: int = 14
    pre_days: int = 7
    items: int = 20_000
    sessions_per_user_day: float = 0.55
    # the spread of users' activity: log sessions per day is normal with this sigma (mean kept at
    # sessions_per_user_day). Heavy-tailed activity concentrates sessions, and purchases, on users who buy anyway
    activity_sigma: float = 1.2
    new_user_share: float = 0.2
    candidates: int = 30
    page_size: int = 10
    logging_epsilon: float = 0.1
    label_rate: float = 0.05
    behaviour: str = "pbm"
    seed: int = 7
    start_date: str = "2026-06-01"
    # calibration knobs (abplatform/world/presets.py; benchmarks/calibration.md). The defaults are the classic
    # world's: with them the generator draws exactly what it drew before the knobs existed.
    # the query mix: shares of simple, attribute, multi-constraint and indirect queries (COMPLEXITY_SHARES' order)
    complexity_shares: tuple[float, float, float, float] = (0.45, 0.30, 0.15, 0.10)
    synonym_rate: float = 0.3  # share of titles naming their category by a synonym (lexical match misses them)
    popularity_quality: float = 0.3  # weight of standardised log popularity in an item's true quality
    attraction_quality: float = 0.6  # the oracle's click attraction per unit of item quality
    # ... per unit of item appeal: a second item trait (N(0, 1), independent of popularity and quality) that draws
    # clicks but not purchases or orders (0: no appeal, none drawn)
    attraction_appeal: float = 0.0
    purchase_intercept: float = -5.0  # the logit of the oracle's P(purchase | click) at relevance and quality 0
    purchase_relevance: float = 2.0  # the oracle's P(purchase | click) per unit of relevance
    purchase_quality: float = 0.5  # ... per unit of item quality
    orders_quality: float = 0.25  # extra orders per purchase (Poisson mean) per unit of item quality ...
    # ... up to this quality, beyond which re-orders saturate (None: they never do)
    orders_quality_cap: float | None = None
    pre_logging_epsilon: float | None = None  # the pre-period's exploration rate (None: logging_epsilon)
    # the raters' scale (behaviour.RaterScale): relevance cut points of grades 1-3, and the mean top-5 grade a
    # page needs to be judged good, with the rater's noise on it
    grade_cuts: tuple[float, float, float] = RaterScale.grade_cuts
    page_good_threshold: float = RaterScale.page_good_threshold
    page_rater_noise: float = RaterScale.page_rater_noise
    # the catalog's own seed (None: ``seed``). A preset calibrated on one catalog fixes it, as a marketplace has
    # one catalog: then ``seed`` draws the users, their sessions and responses, and the catalog stays the same
    catalog_seed: int | None = None

    def __post_init__(self) -> None:
        shares = self.complexity_shares
        if len(shares) != len(COMPLEXITY_SHARES) or min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
            raise ValueError(f"complexity_shares: {len(COMPLEXITY_SHARES)} non-negative shares summing to 1 "
                             f"({', '.join(COMPLEXITY_SHARES)}), got {shares}")
        if self.activity_sigma < 0:
            raise ValueError(f"activity_sigma: a standard deviation >= 0, got {self.activity_sigma}")
        self.raters()  # its own checks
        for name in ("synonym_rate", "logging_epsilon", "pre_logging_epsilon"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name}: a rate in [0, 1], got {value}")

    def response(self) -> ResponseCoefficients:
        """The oracle behaviour model's coefficients these parameters set."""
        return ResponseCoefficients(attraction_quality=self.attraction_quality,
                                    attraction_appeal=self.attraction_appeal,
                                    purchase_intercept=self.purchase_intercept,
                                    purchase_relevance=self.purchase_relevance,
                                    purchase_quality=self.purchase_quality, orders_quality=self.orders_quality,
                                    orders_quality_cap=self.orders_quality_cap)

    def raters(self) -> RaterScale:
        """The raters' scale these parameters set."""
        return RaterScale(self.grade_cuts, self.page_good_threshold, self.page_rater_noise)

    def fingerprint(self) -> str:
        """Parameters plus the generator's own code (world and logging-policy ranker modules), so a
        cached world is regenerated when the code that made it changes."""
        h = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        package = Path(__file__).resolve().parents[1]
        policy = [package / "rankers" / name for name in ("base.py", "text.py", "v1.py")]
        for f in sorted([*(package / "world").glob("*.py"), *policy]):
            h.update(f.read_bytes())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# catalog and users
# --------------------------------------------------------------------------------------------
def _make_catalog(p: WorldParams) -> tuple[pa.Table, ItemTruth, np.ndarray]:
    seed = p.seed if p.catalog_seed is None else p.catalog_seed
    g = np.random.default_rng([seed, 0])
    n = p.items
    leaf_weights = 1.0 / np.arange(1, len(LEAVES) + 1) ** 0.5
    leaf = g.choice(len(LEAVES), size=n, p=leaf_weights / leaf_weights.sum())
    parents = sorted({lf.parent for lf in LEAVES})
    parent_of_leaf = np.array([parents.index(lf.parent) for lf in LEAVES])
    attrs = np.stack([g.integers(0, len(v), n) for v in ATTRIBUTES.values()], axis=1)
    median = np.array([lf.median_price for lf in LEAVES])[leaf]
    price = np.round(median * np.exp(g.normal(0, 0.5, n)), 0) - 0.01
    price = np.maximum(price, 0.99)
    log_pop = -1.0 * np.log(g.permutation(n) + 1.0)  # Zipf(1) popularity, random item order
    quality = p.popularity_quality * (log_pop - log_pop.mean()) / log_pop.std() + 0.95 * g.normal(0, 1, n)
    titles = []
    title_word = 1.0 - p.synonym_rate  # 0.7 for the classic 0.3, bit for bit
    u = g.random((n, 5))
    for i in range(n):
        lf = LEAVES[leaf[i]]
        word = lf.word if u[i, 0] < title_word else lf.synonyms[int(u[i, 0] * 10) % len(lf.synonyms)]
        parts = [ATTRIBUTES["brand"][attrs[i, 0]].title()]
        if u[i, 1] < 0.8:
            parts.append(ATTRIBUTES["colour"][attrs[i, 1]])
        if u[i, 2] < 0.6:
            parts.append(ATTRIBUTES["material"][attrs[i, 2]])
        parts.append(word)
        if u[i, 3] < 0.6:
            parts.append(f"for {ATTRIBUTES['style'][attrs[i, 3]]} use")
        titles.append(" ".join(parts))
    item_ids = np.arange(n, dtype=np.int64)
    table = pa.table(
        {
            "item_id": item_ids,
            "title": titles,
            "category": [LEAVES[k].word for k in leaf],
            "parent_category": [LEAVES[k].parent for k in leaf],
            **{name: [ATTRIBUTES[name][c] for c in attrs[:, a]] for a, name in enumerate(ATTRIBUTE_NAMES)},
            "price": price,
        },
        schema=ITEMS.schema,
    )
    # appeal from a stream of its own, so the classic world's draws stay as they were
    appeal = np.random.default_rng([seed, 0, 1]).normal(0, 1, n) if p.attraction_appeal else None
    truth = ItemTruth(leaf=leaf, parent=parent_of_leaf[leaf], attrs=attrs, price=price, median_price=median,
                      quality=quality, appeal=appeal)
    return table, truth, log_pop


@dataclass(frozen=True)
class Users:
    pref: np.ndarray  # (n_users, n_leaves) latent category preference (mean 0)
    price_sens: np.ndarray
    rate: np.ndarray  # sessions per day
    is_new: np.ndarray


def _make_users(p: WorldParams) -> Users:
    g = np.random.default_rng([p.seed, 1])
    n = p.users
    pref = 0.8 * g.normal(0, 1, (n, len(LEAVES)))
    price_sens = np.exp(g.normal(0, 0.5, n))
    # heavy-tailed activity: lognormal with sigma activity_sigma, mean = sessions_per_user_day
    rate = p.sessions_per_user_day * np.exp(g.normal(-p.activity_sigma ** 2 / 2, p.activity_sigma, n))
    is_new = g.random(n) < p.new_user_share
    return Users(pref, price_sens, rate, is_new)


def unit_id(rows: np.ndarray) -> list[str]:
    return [f"u{r:07d}" for r in rows]


def unit_rows(unit_ids: list[str] | np.ndarray) -> np.ndarray:
    """The user row in each unit id ("u0000042" -> 42)."""
    try:  # parsed by Arrow, cheaper than int() per id: the oracle asks for every session
        ids = pa.array(unit_ids, pa.string())
        if ids.null_count:
            raise pa.ArrowInvalid("null unit id")
        return pc.cast(pc.utf8_slice_codeunits(ids, 1), pa.int64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # what Arrow will not parse, int() decides
        return np.array([int(u[1:]) for u in unit_ids], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# queries: intents and their phrasing
# --------------------------------------------------------------------------------------------
def _phrase_queries(g: np.random.Generator, leaf: np.ndarray,
                    shares: Sequence[float] = tuple(COMPLEXITY_SHARES.values()),
                    ) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Draw complexity (``shares`` of the kinds of :data:`COMPLEXITY_SHARES`, in its order), attribute constraints
    and price caps for each session's leaf; phrase the query."""
    n = len(leaf)
    kinds = list(COMPLEXITY_SHARES)
    complexity = g.choice(len(kinds), size=n, p=list(shares))
    attrs = np.full((n, 4), -1)
    caps = np.full(n, np.inf)
    u = g.random((n, 8))
    values = [g.integers(0, len(v), n) for v in ATTRIBUTES.values()]
    queries: list[str] = []
    for i in range(n):
        lf = LEAVES[leaf[i]]
        kind = kinds[complexity[i]]
        cap = None
        if kind == "simple":
            q = lf.word
        elif kind == "attribute":
            a = int(u[i, 0] * 3)  # brand, colour or material
            attrs[i, a] = values[a][i]
            q = f"{ATTRIBUTES[ATTRIBUTE_NAMES[a]][attrs[i, a]]} {lf.word}"
        elif kind == "multi":
            first = int(u[i, 0] * 4)
            second = (first + 1 + int(u[i, 1] * 3)) % 4
            for a in (first, second):
                attrs[i, a] = values[a][i]
            words = [ATTRIBUTES[name][attrs[i, a]] for a, name in enumerate(ATTRIBUTE_NAMES[:3]) if attrs[i, a] >= 0]
            q = " ".join([*words, lf.word])
            if attrs[i, 3] >= 0:
                q += f" for {ATTRIBUTES['style'][attrs[i, 3]]}"
            if u[i, 2] < 0.5:
                cap = max(5, int(round(lf.median_price * (0.6 + 0.8 * u[i, 3]) / 5) * 5))
        else:
            need = lf.needs[int(u[i, 4] * len(lf.needs))]
            if "{style}" in need:
                attrs[i, 3] = values[3][i]
                need = need.format(style=ATTRIBUTES["style"][attrs[i, 3]])
            q = need
            if u[i, 2] < 0.3:
                cap = max(5, int(round(lf.median_price * (0.6 + 0.8 * u[i, 3]) / 5) * 5))
        if cap is not None:
            caps[i] = cap
            q += f" under {cap}"
        queries.append(q)
    return queries, [kinds[c] for c in complexity], attrs, caps


def query_keys(queries: list[str]) -> np.ndarray:
    """A stable 63-bit key per query string (for label noise keyed by query and item)."""
    uniq, inv = np.unique(np.asarray(queries, dtype=object).astype(str), return_inverse=True)
    keys = np.array([int.from_bytes(hashlib.blake2b(q.encode(), digest_size=8).digest(), "little") >> 1
                     for q in uniq], dtype=np.int64)
    return keys[inv]


def pair_grade_noise(seed: int, queries: list[str], items: np.ndarray) -> np.ndarray:
    """The raters' uniform draw per (query, item) cell: the same pair always draws the same."""
    keys = (query_keys(queries)[:, None] * 1_000_003 + items).astype(np.int64)
    return rng.uniforms(seed, keys.ravel(), Stream.GRADE)[:, 0].reshape(keys.shape)


def grade_pairs(seed: int, queries: list[str], items: np.ndarray, rel: np.ndarray,
                scale: RaterScale) -> np.ndarray:
    """Raters' grades for (query, item) cells; the same pair always gets the same grade."""
    return behaviour.grades(rel, pair_grade_noise(seed, queries, items), scale)


# --------------------------------------------------------------------------------------------
# retrieval: the candidate set a ranker orders
# --------------------------------------------------------------------------------------------
def _draw_unique(g: np.random.Generator, pool: np.ndarray, cum_weights: np.ndarray, n: int, k: int) -> np.ndarray:
    """Per row, the first k distinct items of 3k weighted draws with replacement from ``pool``; -1 pads."""
    u = g.random((n, 3 * k)) * cum_weights[-1]
    return _first_distinct(pool[np.searchsorted(cum_weights, u, side="right").clip(max=len(pool) - 1)], k)


def _dedupe_rows(m: np.ndarray) -> np.ndarray:
    """Each row's distinct non-negative values, ascending, padded with -1 at the end."""
    big = np.iinfo(np.int64).max
    s = np.sort(np.where(m >= 0, m, big), axis=1)
    s[:, 1:][s[:, 1:] == s[:, :-1]] = big
    s = np.sort(s, axis=1)
    return np.where(s == big, -1, s)


def _retrieve(g: np.random.Generator, p: WorldParams, it: ItemTruth, log_pop: np.ndarray,
              intent: SessionIntent) -> np.ndarray:
    """About ``p.candidates`` distinct candidates per session, as a retrieval system would return:
    up to 5 items of the intended leaf that match the query's first constrained attribute, popular
    items of the leaf (14 in all from the leaf), 8 popular items of its parent category and 8
    popular items from elsewhere; popularity-weighted draws (weight popularity^0.7)."""
    n = len(intent.leaf)
    n_leaf, n_parent, n_match = 14, 8, 5
    n_global = p.candidates - n_leaf - n_parent
    weight = np.exp(0.7 * log_pop)
    by_popularity = np.argsort(-log_pop, kind="stable")
    parts = []
    for lf in np.unique(intent.leaf):
        sess = np.flatnonzero(intent.leaf == lf)
        leaf_items = np.flatnonzero(it.leaf == lf)
        parent = it.parent[leaf_items[0]]
        # the popular end of the parent category and of the rest of the catalog
        parent_items = by_popularity[(it.parent[by_popularity] == parent) & (it.leaf[by_popularity] != lf)][:200]
        glob = by_popularity[it.parent[by_popularity] != parent][:300]
        block = np.full((len(sess), n_match + n_leaf + n_parent + n_global), -1, dtype=np.int64)
        block[:, n_match:n_match + n_leaf] = _draw_unique(g, leaf_items, np.cumsum(weight[leaf_items]),
                                                          len(sess), n_leaf)
        block[:, n_match + n_leaf:-n_global] = _draw_unique(g, parent_items, np.cumsum(weight[parent_items]),
                                                            len(sess), n_parent)
        block[:, -n_global:] = _draw_unique(g, glob, np.cumsum(weight[glob]), len(sess), n_global)
        constrained = intent.attrs[sess] >= 0
        first_attr = np.where(constrained.any(axis=1), constrained.argmax(axis=1), -1)
        for a in range(intent.attrs.shape[1]):
            wanted = intent.attrs[sess, a]
            for v in np.unique(wanted[first_attr == a]):
                rows = np.flatnonzero((first_attr == a) & (wanted == v))
                matching = leaf_items[it.attrs[leaf_items, a] == v]
                if len(matching):
                    block[rows, :n_match] = _draw_unique(g, matching, np.cumsum(weight[matching]), len(rows), n_match)
        # the leaf pool keeps n_leaf items: attribute matches first, then popular ones
        leaf_part = _dedupe_rows(block[:, :n_match + n_leaf])
        matched_first = np.concatenate([block[:, :n_match], leaf_part], axis=1)
        parts.append((sess, np.concatenate([_first_distinct(matched_first, n_leaf), block[:, n_match + n_leaf:]],
                                           axis=1)))
    out = np.full((n, n_leaf + n_parent + n_global), -1, dtype=np.int64)
    for sess, block in parts:
        out[sess] = block
    return _dedupe_rows(out)


def _first_distinct(m: np.ndarray, k: int) -> np.ndarray:
    """The first k distinct non-negative values of each row in order of appearance, -1 padded."""
    n, _ = m.shape
    order = np.argsort(m, axis=1, kind="stable")
    s = np.take_along_axis(m, order, axis=1)
    repeat = np.zeros_like(m, dtype=bool)
    repeat[:, 1:] = s[:, 1:] == s[:, :-1]
    first = np.empty_like(repeat)
    np.put_along_axis(first, order, ~repeat, axis=1)
    first &= m >= 0
    rank = np.cumsum(first, axis=1)
    keep = first & (rank <= k)
    out = np.full((n, k), -1, dtype=np.int64)
    rows, cols = np.nonzero(keep)
    out[rows, rank[rows, cols] - 1] = m[rows, cols]
    return out


# --------------------------------------------------------------------------------------------
# logging: epsilon-randomised ranker with known propensities
# --------------------------------------------------------------------------------------------
def log_pages(seed: int, session_ids: np.ndarray, scores: np.ndarray, candidates: np.ndarray,
              k: int, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """Shown pages and each shown item's marginal propensity of being at its position.

    With probability 1 - epsilon the page is the ranker's top k; otherwise a uniformly random
    ordered k of the session's C candidates. So P(item at position j) = (1 - eps) 1[ranker puts it
    at j] + eps / C.
    """
    _, c = candidates.shape
    ranked = rank(scores, candidates, k)
    u = rng.uniforms(seed, session_ids, Stream.LOGGING, 1 + c)
    explore = u[:, 0] < epsilon
    random_order = np.argsort(np.where(candidates >= 0, u[:, 1:], 2.0), axis=1)[:, :k]
    shown = np.where(explore[:, None], np.take_along_axis(candidates, random_order, axis=1), ranked)
    n_valid = (candidates >= 0).sum(axis=1, keepdims=True)
    propensity = epsilon / n_valid + (1 - epsilon) * (shown == ranked)
    return shown, propensity


# --------------------------------------------------------------------------------------------
# one partition of sessions
# --------------------------------------------------------------------------------------------
@dataclass
class Partition:
    sessions: pa.Table
    impressions: pa.Table
    candidates: pa.Table
    relevance_labels: pa.Table
    page_labels: pa.Table
    queries: pa.Table  # truth: query -> intent


def _sessions_for(p: WorldParams, users: Users, user_rows: np.ndarray, days: int, start: datetime,
                  g: np.random.Generator, first_session_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = np.minimum(g.poisson(users.rate[user_rows] * days), 50 * days)
    rows = np.repeat(user_rows, counts)
    # seconds from the period start, each session uniform over the period (independently of its user:
    # sorting the draws first gave user 1 the earliest sessions, and put 99.85% of users on one day)
    offsets = g.random(len(rows)) * days * 86400
    # keep each user's sessions in time order, users in id order
    order = np.lexsort((offsets, rows))
    rows, offsets = rows[order], offsets[order]
    ts = np.datetime64(start.replace(tzinfo=None), "us") + (offsets * 1e6).astype("timedelta64[us]")
    ids = first_session_id + np.arange(len(rows), dtype=np.int64)
    return rows, ts, ids


def _build_partition(p: WorldParams, it: ItemTruth, log_pop: np.ndarray, users: Users, model: BehaviourModel,
                     policy: V1Ranker, catalog: Catalog, user_rows: np.ndarray, phase: str, part: int,
                     segments: dict[str, str] | None) -> Partition:
    start = datetime.fromisoformat(p.start_date).replace(tzinfo=UTC)
    g = np.random.default_rng([p.seed, 2 if phase == "pre" else 3, part])
    if phase == "pre":
        user_rows = user_rows[~users.is_new[user_rows]]
        days, start = p.pre_days, start - timedelta(days=p.pre_days)
        first_id = 1 + part * 10_000_000
    else:
        days, first_id = p.days, EXP_SESSION_OFFSET + part * 10_000_000
    rows, ts, ids = _sessions_for(p, users, user_rows, days, start, g, first_id)
    n = len(rows)
    # the leaf of each session's intent: category popularity tilted by the user's taste
    leaf_pop = np.log(np.bincount(it.leaf, minlength=len(LEAVES)) / len(it.leaf))
    leaf = np.argmax(leaf_pop[None, :] + users.pref[rows] + g.gumbel(size=(n, len(LEAVES))), axis=1)
    queries, complexity, attrs, caps = _phrase_queries(g, leaf, p.complexity_shares)
    parents = sorted({lf.parent for lf in LEAVES})
    intent = SessionIntent(leaf=leaf, parent=np.array([parents.index(LEAVES[k].parent) for k in leaf]),
                           attrs=attrs, price_cap=caps)
    cands = _retrieve(g, p, it, log_pop, intent)
    scores = policy.score(CandidateBatch(ids, queries, cands))
    epsilon = p.pre_logging_epsilon if phase == "pre" and p.pre_logging_epsilon is not None else p.logging_epsilon
    shown, propensity = log_pages(p.seed, ids, scores, cands, p.page_size, epsilon)
    resp = model.respond(p.seed, ids, intent, rows, shown)
    k = p.page_size
    seg = [segments.get(q, "tail") for q in queries] if segments is not None else ["tail"] * n
    sessions = pa.table({
        "session_id": ids, "unit_id": unit_id(rows), "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "query": queries, "query_segment": seg, "query_complexity": complexity,
        "is_new_user": users.is_new[rows], "arm": pa.nulls(n, pa.string()),
    }, schema=SESSIONS.schema)
    on_page = (shown >= 0).ravel()
    impressions = pa.table({
        "session_id": np.repeat(ids, k)[on_page],
        "position": np.tile(np.arange(1, k + 1, dtype=np.int16), n)[on_page],
        "item_id": shown.ravel()[on_page], "clicked": resp.clicked.ravel()[on_page],
        "purchased": resp.purchased.ravel()[on_page], "orders": resp.orders.ravel()[on_page],
        "revenue": resp.revenue.ravel()[on_page], "propensity": propensity.ravel()[on_page],
        "team": pa.nulls(int(on_page.sum()), pa.string()),
    }, schema=IMPRESSIONS.schema)
    is_cand = (cands >= 0).ravel()
    candidates = pa.table({"session_id": np.repeat(ids, cands.shape[1])[is_cand], "item_id": cands.ravel()[is_cand]},
                          schema=CANDIDATES.schema)
    rel_labels, page_labels = judge(p.seed, p.label_rate, ids, queries, intent, it, shown, p.raters())
    queries_truth = pa.table({"query": queries, "leaf": leaf, "parent": intent.parent,
                              **{f"attr_{a}": attrs[:, j] for j, a in enumerate(ATTRIBUTE_NAMES)},
                              "price_cap": caps})
    return Partition(sessions, impressions, candidates, rel_labels, page_labels, queries_truth)


def judge(seed: int, label_rate: float, ids: np.ndarray, queries: Sequence[str], intent: SessionIntent,
          it: ItemTruth, shown: np.ndarray, scale: RaterScale) -> tuple[pa.Table, pa.Table]:
    """Manual evaluation of a sample of pages: a grade per shown (query, item) and a page verdict."""
    judged = rng.uniforms(seed, ids, Stream.LABEL)[:, 0] < label_rate
    sel = np.flatnonzero(judged)
    sel_queries = [queries[i] for i in sel.tolist()]
    rel = behaviour.relevance(intent.take(sel), it, shown[sel])
    g = grade_pairs(seed, sel_queries, shown[sel], rel, scale)
    good = behaviour.judge_pages(seed, ids[sel], g, scale)
    k = shown.shape[1]
    valid = shown[sel].ravel() >= 0
    rel_labels = pa.table({
        "query": pa.array(np.repeat(np.asarray(sel_queries, dtype=object), k)[valid], pa.string()),
        "item_id": shown[sel].ravel()[valid], "grade": g.ravel()[valid],
    }, schema=RELEVANCE_LABELS.schema)
    page_labels = pa.table({"session_id": ids[sel], "good": good}, schema=PAGE_LABELS.schema)
    return rel_labels, page_labels


# --------------------------------------------------------------------------------------------
# the whole world
# --------------------------------------------------------------------------------------------
def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def _query_segments(con: duckdb.DuckDBPyConnection, pre_sessions_glob: str) -> dict[str, str]:
    """Head / torso / tail by pre-period frequency: queries covering the first, second and last third of traffic."""
    rows = con.sql(f"""
        WITH f AS (SELECT query, COUNT(*) AS n FROM read_parquet('{pre_sessions_glob}') GROUP BY query),
        c AS (SELECT query, SUM(n) OVER (ORDER BY n DESC, query ROWS UNBOUNDED PRECEDING) - n AS before,
                     SUM(n) OVER () AS total FROM f)
        SELECT query, CASE WHEN before < total / 3.0 THEN 'head'
                           WHEN before < 2 * total / 3.0 THEN 'torso' ELSE 'tail' END FROM c""").fetchall()
    return dict(rows)


WORLD_KIND = "abplatform-synthetic-world"  # world.json's "kind": the marker of a folder this generator wrote


def is_world(path: Path) -> bool:
    """Whether ``path`` is a world this generator wrote (its ``world.json`` carries :data:`WORLD_KIND`)."""
    try:
        meta = json.loads((path / "world.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == WORLD_KIND


def check_replaceable(out: Path, force: bool = False) -> None:
    """Refuse to replace ``out`` unless it is missing, an empty folder or a world this generator wrote
    (any folder when ``force``; never a file or a symbolic link)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"{out}: exists and is not a folder; refusing to replace it (choose another --out)")
    here = Path.cwd()
    if out.exists() and out.resolve() in (here, *here.parents):
        raise InputError(f"{out}: is the working folder or contains it; refusing to replace it (choose another --out)")
    if not force and out.is_dir() and any(out.iterdir()) and not is_world(out):
        raise InputError(f"{out}: not empty and not a world abplatform wrote; refusing to replace it "
                         "(--force replaces it, deleting everything in it)")


def generate_world(params: WorldParams, out_dir: str | Path, progress=None, force: bool = False,
                   keep_complete: bool = False) -> Path:
    """Generate the world into ``out_dir`` (written under a temporary name, renamed when complete).

    An existing ``out_dir`` is replaced only when it is an empty folder or a world written here (see
    :func:`is_world`), or any folder when ``force``; anything else is an :class:`InputError`, raised
    before any work and checked again just before the new world replaces it. With ``keep_complete``
    (a cache named by the parameters' fingerprint) a complete world found there at the end — another
    process generated the same world meanwhile, and may be reading it — is kept, not replaced."""
    out = Path(out_dir)
    check_replaceable(out, force)

    def replace(existing: Path) -> bool:
        return not (keep_complete and is_world(existing))

    with atomic_directory(out, replace=replace) as tmp:
        _generate_into(params, tmp, progress)
        check_replaceable(out, force)  # something may have appeared there while the world was generated
    return out


def _generate_into(params: WorldParams, tmp: Path, progress=None) -> None:
    items, it, log_pop = _make_catalog(params)
    _write(items, tmp / "items" / "part-00000.parquet")
    users = _make_users(params)
    truth = tmp / "truth"
    _write(pa.table({"item_id": items.column("item_id"), "leaf": it.leaf, "parent": it.parent,
                     **{f"attr_{a}": it.attrs[:, j] for j, a in enumerate(ATTRIBUTE_NAMES)},
                     "price": it.price, "median_price": it.median_price, "quality": it.quality,
                     **({"appeal": it.appeal} if it.appeal is not None else {}),
                     "log_popularity": log_pop}), truth / "items.parquet")
    _write(pa.table({"unit_id": unit_id(np.arange(params.users)), "price_sens": users.price_sens,
                     "rate": users.rate, "is_new": users.is_new,
                     **{f"pref_{k}": users.pref[:, k] for k in range(len(LEAVES))}}), truth / "users.parquet")
    model = BehaviourModel(it, users.pref, users.price_sens, params.behaviour, params.response())
    catalog = Catalog(items)
    n_parts = -(-params.users // USERS_PER_PARTITION)
    parts = [np.arange(i * USERS_PER_PARTITION, min(params.users, (i + 1) * USERS_PER_PARTITION))
             for i in range(n_parts)]
    con = duckdb.connect()
    # pre-period, logged by a cold-start policy (BM25 only); segments need the whole pre-period first
    cold_policy = V1Ranker().fit(Dataset(tmp), catalog)
    for i, rows in enumerate(parts):
        part = _build_partition(params, it, log_pop, users, model, cold_policy, catalog, rows, "pre", i, None)
        _write(part.sessions, tmp / "_pre_sessions" / f"part-{i:05d}.parquet")
        _write(part.impressions, tmp / "pre_impressions" / f"part-{i:05d}.parquet")
        _write(part.queries, truth / "queries" / f"pre-{i:05d}.parquet")
        if progress:
            progress("pre", i + 1, n_parts)
    segments = _query_segments(con, str(tmp / "_pre_sessions" / "*.parquet"))
    seg_table = pa.table({"query": list(segments), "segment": list(segments.values())})
    con.register("seg", seg_table)
    (tmp / "pre_sessions").mkdir()
    for f in sorted((tmp / "_pre_sessions").glob("*.parquet")):
        t = con.sql(f"""SELECT s.* REPLACE (seg.segment AS query_segment)
                            FROM read_parquet('{f}') s JOIN seg USING (query) ORDER BY s.session_id""").to_arrow_table()
        _write(t.cast(SESSIONS.schema), tmp / "pre_sessions" / f.name)
    shutil.rmtree(tmp / "_pre_sessions")
    # experiment period, logged by V1 fitted on the pre-period
    policy = V1Ranker().fit(Dataset(tmp), catalog)
    for i, rows in enumerate(parts):
        part = _build_partition(params, it, log_pop, users, model, policy, catalog, rows, "exp", i, segments)
        name = f"part-{i:05d}.parquet"
        for table in ("sessions", "impressions", "candidates", "relevance_labels", "page_labels"):
            _write(getattr(part, table), tmp / table / name)
        _write(part.queries, truth / "queries" / f"exp-{i:05d}.parquet")
        if progress:
            progress("experiment", i + 1, n_parts)
    # one row per query / per (query, item): the raters' grades are a function of the pair
    con.execute(f"""COPY (SELECT DISTINCT * FROM read_parquet('{truth / 'queries' / '*.parquet'}') ORDER BY query)
                    TO '{truth / 'queries.parquet'}' (FORMAT parquet)""")
    shutil.rmtree(truth / "queries")
    labels = con.sql(f"""SELECT DISTINCT * FROM read_parquet('{tmp / 'relevance_labels' / '*.parquet'}')
                             ORDER BY query, item_id""").to_arrow_table().cast(RELEVANCE_LABELS.schema)
    shutil.rmtree(tmp / "relevance_labels")
    _write(labels, tmp / "relevance_labels" / "part-00000.parquet")
    con.close()
    start = date.fromisoformat(params.start_date)
    meta = {"kind": WORLD_KIND, "params": dataclasses.asdict(params),
            "fingerprint": params.fingerprint(),
            "experiment_window": [start.isoformat(), (start + timedelta(days=params.days)).isoformat()],
            "pre_window": [(start - timedelta(days=params.pre_days)).isoformat(), start.isoformat()]}
    (tmp / "world.json").write_text(json.dumps(meta, indent=2))
