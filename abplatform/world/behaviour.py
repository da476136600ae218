"""The world's ground-truth user behaviour and manual raters (the "oracle").

Only the simulator and the label generator read this module's inputs (the hidden truth);
rankers never do. Every draw takes uniforms from :mod:`abplatform.rng` keyed by session id,
so responses do not depend on batch size or worker count.

Model, per shown item i at position k of session s with intent q (leaf, attributes, price cap):

* relevance  r = cat(q, i) * 0.6^(mismatched attributes) * (0.3 if price > cap else 1)
  with cat = 1 for the intended leaf, 0.25 for its parent category, 0 otherwise;
* attraction a = sigmoid(-4.0 + 2.8 r + 0.6 quality_i + 0.8 pref_u(leaf_i) - 0.4 price_sens_u log(price_i / median));
* examination: position-based, P(E_k) = EXAMINATION[k] ("pbm"), or cascade-like ("cascade"):
  the user scans down and, after a click, stops with probability 0.5 (0.8 after a purchase);
* purchase | click: sigmoid(-5.0 + 2.0 r + 0.5 quality_i - 0.6 price_sens_u log(price_i / median));
* orders | purchase: 1 + Poisson(max(0.01, 0.25 + 0.25 min(quality_i, cap))); revenue = orders * price, with no cap
  in the classic world;
* raters (:class:`RaterScale`): grade 0-3 of a (query, item) pair by cut points 0.15, 0.45, 0.8 on r; a page is
  good when its top 5's mean grade plus N(0, 0.3) noise reaches 1.6.

The coefficients written 0.6 (attraction per unit of quality), -5.0, 2.0 and 0.5 (purchase's intercept, per unit of
relevance and of quality) and the second 0.25 (orders per unit of quality, up to the cap) are those of the classic
world; :class:`ResponseCoefficients` carries them (and :class:`RaterScale` the raters' numbers), and a world preset
may set them (:mod:`abplatform.world.presets`). A preset may also give items an appeal (N(0, 1), independent of
popularity and quality) that adds ``attraction_appeal`` x appeal_i to the attraction's logit only: a trait that draws
clicks but not purchases or orders. The classic world has none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, pdtr
from scipy.stats import norm, poisson

from abplatform import rng
from abplatform.replay.behaviour import Responses
from abplatform.rng import Stream

EXAMINATION = 1.0 / np.arange(1, 11) ** 0.75


@dataclass(frozen=True)
class ItemTruth:
    """Catalog arrays indexed by item row (item_id == row index in the world)."""

    leaf: np.ndarray
    parent: np.ndarray
    attrs: np.ndarray  # (n_items, 4) codes for brand, colour, material, style
    price: np.ndarray
    median_price: np.ndarray  # the leaf's median price, per item
    quality: np.ndarray
    appeal: np.ndarray | None = None  # a trait that draws clicks only (None: the classic world has none)


@dataclass(frozen=True)
class SessionIntent:
    """What each session's query asks for (a pure function of the query text)."""

    leaf: np.ndarray  # (n,)
    parent: np.ndarray  # (n,)
    attrs: np.ndarray  # (n, 4), -1 where the query does not constrain the attribute
    price_cap: np.ndarray  # (n,), inf where none

    def take(self, rows: np.ndarray) -> SessionIntent:
        """The intents of the given rows (e.g. each session's, from one per distinct query)."""
        return SessionIntent(self.leaf[rows], self.parent[rows], self.attrs[rows], self.price_cap[rows])


def relevance(intent: SessionIntent, items: ItemTruth, item_rows: np.ndarray,
              item_leaf: np.ndarray | None = None) -> np.ndarray:
    """True relevance in [0, 1] of each (session, item) cell; item_rows (n, c), -1 = padding.

    ``item_leaf``: each cell's ``items.leaf`` (padding as row 0), when the caller has gathered it already."""
    rows = np.maximum(item_rows, 0)
    cat = np.where(np.take(items.parent, rows) == intent.parent[:, None], 0.25, 0.0)
    cat[(np.take(items.leaf, rows) if item_leaf is None else item_leaf) == intent.leaf[:, None]] = 1.0
    n_attrs = intent.attrs.shape[1]
    mismatches = np.zeros(rows.shape, np.int8)
    for a in range(n_attrs):  # only the sessions whose query names the attribute
        named = np.flatnonzero(intent.attrs[:, a] >= 0)
        mismatches[named] += np.take(items.attrs[:, a], rows[named]) != intent.attrs[named, a][:, None]
    rel = cat * np.take(0.6 ** np.arange(n_attrs + 1), mismatches)
    # the 0.3 price factor only where the query has a cap (elsewhere the factor is 1, a no-op)
    capped = np.flatnonzero(intent.price_cap < np.inf)
    rel[capped] *= np.where(items.price[rows[capped]] > intent.price_cap[capped, None], 0.3, 1.0)
    rel[item_rows < 0] = 0.0
    return rel


@dataclass(frozen=True)
class RaterScale:
    """How the world's raters judge (defaults: the classic world's). A (query, item) grade is 0-3 by the
    relevance cut points ``grade_cuts`` (grade g needs relevance >= the g-th cut), moved one step by noise 10% of
    the time; a page is good when the mean grade of its top 5 plus the rater's N(0, ``page_rater_noise``) noise
    reaches ``page_good_threshold``. The published relevance and page good figures come from raters on a scale
    nobody publishes, so a preset may set it (:mod:`abplatform.world.presets`); only these two metrics read it."""

    grade_cuts: tuple[float, float, float] = (0.15, 0.45, 0.8)
    page_good_threshold: float = 1.6
    page_rater_noise: float = 0.3

    def __post_init__(self) -> None:
        cuts = self.grade_cuts
        if len(cuts) != 3 or not 0 < cuts[0] < cuts[1] < cuts[2] <= 1:
            raise ValueError(f"grade_cuts: three increasing relevance cut points in (0, 1], got {cuts}")
        if not 0 <= self.page_good_threshold <= 3:
            raise ValueError(f"page_good_threshold: a mean grade in [0, 3], got {self.page_good_threshold}")
        if self.page_rater_noise <= 0:
            raise ValueError(f"page_rater_noise: a standard deviation > 0, got {self.page_rater_noise}")

    def page_good_probability(self, top_mean_grade: np.ndarray) -> np.ndarray:
        """P(a page is judged good) given the mean grade of its top 5 (the rater's noise integrated out)."""
        return norm.sf((self.page_good_threshold - top_mean_grade) / self.page_rater_noise)


def grades(rel: np.ndarray, noise_u: np.ndarray, scale: RaterScale) -> np.ndarray:
    """A rater's 0-3 grade: cut points on relevance, moved one step by noise 10% of the time."""
    g = np.digitize(rel, scale.grade_cuts).astype(np.int8)
    step = np.where(noise_u < 0.05, -1, np.where(noise_u > 0.95, 1, 0))
    return np.clip(g + step, 0, 3).astype(np.int8)


@dataclass(frozen=True)
class ResponseCoefficients:
    """The behaviour model's coefficients that a world preset may change (defaults: the classic world's, as in
    the module's documentation): attraction's weight on quality, purchase's on relevance and quality, and the
    extra orders per unit of quality."""

    attraction_quality: float = 0.6
    attraction_appeal: float = 0.0  # attraction per unit of the items' appeal (which purchases ignore)
    purchase_intercept: float = -5.0
    purchase_relevance: float = 2.0
    purchase_quality: float = 0.5
    orders_quality: float = 0.25
    orders_quality_cap: float | None = None  # the quality beyond which extra orders stop growing (None: never)


class BehaviourModel:
    """Ground-truth responses to a shown page, given the hidden user and item truth."""

    def __init__(self, items: ItemTruth, user_pref: np.ndarray, user_price_sens: np.ndarray, mode: str = "pbm",
                 coefficients: ResponseCoefficients | None = None):
        if mode not in ("pbm", "cascade"):
            raise ValueError(f"behaviour mode must be 'pbm' or 'cascade', got {mode!r}")
        self.items, self.user_pref, self.user_price_sens, self.mode = items, user_pref, user_price_sens, mode
        self.coefficients = coefficients or ResponseCoefficients()
        self.log_price_ratio = np.log(items.price / items.median_price)  # per item, gathered per shown cell

    def _cells(self, user_rows: np.ndarray, shown: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-cell gathers that attraction, purchase and orders share: item rows, leaf, log price ratio,
        quality, and the user's price sensitivity per row."""
        rows = np.maximum(shown, 0)
        return (rows, *(np.take(x, rows) for x in (self.items.leaf, self.log_price_ratio, self.items.quality)),
                self.user_price_sens[user_rows][:, None])

    def attraction(self, intent: SessionIntent, user_rows: np.ndarray, shown: np.ndarray,
                   cells: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The attraction of every cell, and its relevance."""
        _, leaf, log_price, quality, sens = self._cells(user_rows, shown) if cells is None else cells
        rel = relevance(intent, self.items, shown, leaf)
        pref = np.take(self.user_pref, (user_rows * self.user_pref.shape[1])[:, None] + leaf)  # [user, leaf]
        c = self.coefficients
        logit = -4.0 + 2.8 * rel + c.attraction_quality * quality + 0.8 * pref - 0.4 * sens * log_price
        if c.attraction_appeal and self.items.appeal is not None:
            logit += c.attraction_appeal * np.take(self.items.appeal, np.maximum(shown, 0))
        return expit(logit), rel

    def purchase_probability(self, rel: np.ndarray, cells: tuple[np.ndarray, ...], flat: np.ndarray) -> np.ndarray:
        """P(purchase | click) of the cells at flat indices ``flat``, from ``rel`` and :meth:`_cells` of all cells."""
        sens = np.take(cells[4], flat // rel.shape[1])
        rel, log_price, quality = (np.take(x, flat) for x in (rel, cells[2], cells[3]))
        c = self.coefficients
        return expit(c.purchase_intercept + c.purchase_relevance * rel + c.purchase_quality * quality
                     - 0.6 * sens * log_price)

    def extra_orders_mean(self, quality: np.ndarray) -> np.ndarray:
        """The Poisson mean of a purchase's orders beyond the first, per item quality."""
        c = self.coefficients
        capped = quality if c.orders_quality_cap is None else np.minimum(quality, c.orders_quality_cap)
        return np.maximum(0.25 + c.orders_quality * capped, 0.01)

    def click_probabilities(self, intent: SessionIntent, user_rows: np.ndarray, shown: np.ndarray) -> np.ndarray:
        """Marginal P(click) per cell under the "pbm" mode (the cascade mode is sampled only)."""
        a, _ = self.attraction(intent, user_rows, shown)
        return np.where(shown >= 0, a * EXAMINATION[: shown.shape[1]], 0.0)

    def respond(self, seed: int, session_ids: np.ndarray, intent: SessionIntent, user_rows: np.ndarray,
                shown: np.ndarray) -> Responses:
        """Sample clicks, purchases and orders for pages ``shown`` (n, k item rows, -1 = empty slot)."""
        n, k = shown.shape
        cells = self._cells(user_rows, shown)  # gathered once for attraction, purchase and orders
        a, rel = self.attraction(intent, user_rows, shown, cells)
        u_click = rng.uniforms(seed, session_ids, Stream.CLICK, k)
        u_buy = rng.uniforms(seed, session_ids, Stream.PURCHASE, k)
        valid = shown >= 0
        # the cells a click can reach (all clicks under "pbm", more under "cascade"): only they need P(purchase);
        # flat indices, as fancy indexing with a boolean mask costs more than computing every cell
        reachable = valid & (u_click < (a * EXAMINATION[:k] if self.mode == "pbm" else a))
        p_buy = np.zeros((n, k))
        reached = np.flatnonzero(reachable)
        np.put(p_buy, reached, self.purchase_probability(rel, cells, reached))
        if self.mode == "pbm":
            clicked = reachable
            purchased = clicked & (u_buy < p_buy)
        else:
            u_stop = rng.uniforms(seed, session_ids, Stream.STOP, k)
            clicked = np.zeros((n, k), bool)
            purchased = np.zeros((n, k), bool)
            scanning = np.ones(n, bool)
            for pos in range(k):
                clicked[:, pos] = scanning & valid[:, pos] & (u_click[:, pos] < a[:, pos])
                purchased[:, pos] = clicked[:, pos] & (u_buy[:, pos] < p_buy[:, pos])
                stop_p = np.where(purchased[:, pos], 0.8, 0.5)
                scanning &= ~(clicked[:, pos] & (u_stop[:, pos] < stop_p))
        rows, quality = cells[0], cells[3]
        cell = np.flatnonzero(purchased)  # the purchased cells in row-major order, as a boolean mask gives them
        buyers = np.flatnonzero(purchased.any(axis=1))  # only sessions with a purchase need order draws
        u = rng.uniforms(seed, session_ids[buyers], Stream.ORDERS, k)[purchased[buyers]]
        lam = self.extra_orders_mean(np.take(quality, cell))
        orders, revenue = np.zeros((n, k), np.int32), np.zeros((n, k))
        np.put(orders, cell, 1 + poisson_quantiles(u, lam))
        np.put(revenue, cell, np.take(orders, cell) * self.items.price[np.take(rows, cell)])
        return Responses(clicked, purchased, orders, revenue)


def poisson_quantiles(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``scipy.stats.poisson.ppf(u, lam)`` (int32) for 0 <= u < 1, mostly without its inverse-gamma search
    (pdtrik, iterative, per draw): the smallest k with pdtr(k, lam) >= u, found by stepping k up. scipy rounds the
    search's k up and checks k - 1 with pdtr, so it gives that same k unless u lies within the search's
    rounding of pdtr(k - 1, lam); the draws within 1e-9 of it (a margin far wider than that) ask scipy."""
    k = np.zeros(len(u), np.int32)
    cdf = pdtr(0, lam)
    below = np.zeros(len(u))  # pdtr(k - 1, lam)
    todo = np.flatnonzero(cdf < u)
    while len(todo):
        k[todo] += 1
        below[todo] = cdf[todo]
        cdf[todo] = pdtr(k[todo], lam[todo])
        todo = todo[cdf[todo] < u[todo]]
    near = np.flatnonzero(u - below <= 1e-9)
    k[near] = np.asarray(poisson.ppf(u[near], lam[near])).astype(np.int32)
    return k


def judge_pages(seed: int, session_ids: np.ndarray, page_grades: np.ndarray,
                scale: RaterScale) -> np.ndarray:
    """A rater's good/bad verdict on a page: mean grade of the top 5 plus rater noise >= the scale's threshold."""
    noise = rng.normals(seed, session_ids, Stream.RATER)[:, 0] * scale.page_rater_noise
    top = page_grades[:, :5].astype(float)
    return (top.mean(axis=1) + noise) >= scale.page_good_threshold
