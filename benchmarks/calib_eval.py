"""Expected (noise-free) metrics of rankers' pages under a synthetic world's true users: the calibration's objective.

Every ranker ranks every experiment-period session of the world (common random numbers: the same users, queries
and candidates for every ranker), and each page's clicks, purchases, orders and raters' verdicts are taken in
expectation under the world's oracle behaviour model (position-based examination), not sampled:

* E[clicks] = sum over the page of attraction x examination; impressions: the items shown;
* P(user buys at least once) = 1 - prod over the user's shown cells of (1 - P(click) P(purchase | click));
* E[orders] = sum of P(click) P(purchase | click) (1 + extra orders' Poisson mean);
* relevance as the scorecard measures it (``abplatform/metrics/relevance.py``, ``sql/01_session_values.sql``): the
  mean grade over shown cells whose (query, item) pair carries a label. In the pipeline the raters judge the pages
  of a 5% sample of sessions (the world's ``Stream.LABEL`` draw by session id) in both arms, and a label then
  covers its pair wherever either arm shows it, which weights frequent (query, item) pairs up. Emulated per
  comparison: the users are split 50/50 (a fixed draw), the label set is the treatment's pairs on the judged
  sessions of one half and the control's on those of the other, and each ranker's relevance is the mean grade
  of its cells (every session) whose pair is in that set. Page good: the probability that the top 5's mean
  grade plus the rater's noise reaches the world's threshold (``behaviour.RaterScale``; the judged pages are a
  random sample, so every page).

Metric by metric as the scorecard defines them (item CTR a ratio of sums over users, buyer conversion the mean of
users' P(buy), order volume the mean of users' E[orders], page good rate and relevance means over pages and cells),
plus the long-tail directions of ``sql/04_long_tail.sql`` (tail impression share, exposure Gini, mean category
entropy per user). The lift's 95% interval is a bootstrap over users (Poisson weights), the uncertainty of a
finite population of users in one world, not of sampled responses (there are none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from abplatform.dataset import Dataset
from abplatform.offline.ope import load_logged_pages, ranker_pages
from abplatform.rankers import Catalog, make_ranker
from abplatform.rng import Stream, uniforms
from abplatform.world.behaviour import EXAMINATION, RaterScale, grades
from abplatform.world.generate import pair_grade_noise, unit_rows
from abplatform.world.truth import load_truth

METRICS = ("item_ctr", "buyer_conversion", "order_volume", "page_good_rate", "relevance")
TAIL = ("tail_impression_share", "exposure_gini", "category_entropy")


@dataclass
class LabelContext:
    """Which sessions the raters judge and the fixed 50/50 split of users the label emulation uses."""

    user_index: np.ndarray  # per session
    judged: np.ndarray  # per session, bool
    half: np.ndarray  # per session, bool: the user is in the treatment's half


@dataclass
class ArmTotals:
    """Per user sums of one ranker's expected responses (users in a fixed order shared by all rankers)."""

    clicks: np.ndarray
    impressions: np.ndarray
    p_buy: np.ndarray
    orders: np.ndarray
    good: np.ndarray  # expected good pages
    pages: np.ndarray
    grades: np.ndarray
    tail_impressions: np.ndarray
    entropy: np.ndarray
    gini: float
    pair_keys: np.ndarray | None = None  # (sessions, k) query code x items + item row; -1 where nothing shown
    cell_grades: np.ndarray | None = None  # (sessions, k) the raters' grade of each shown cell
    labels: LabelContext | None = None
    cell_relevance: np.ndarray | None = None  # (sessions, k) true relevance per cell (0 where nothing is shown)
    grade_noise: np.ndarray | None = None  # (sessions, k) the raters' uniform draw per cell

    def labelled(self, label_set: np.ndarray) -> ArmTotals:
        """These totals with relevance over the cells whose pair is in ``label_set`` (sorted keys)."""
        assert self.pair_keys is not None and self.cell_grades is not None and self.labels is not None
        mask = np.isin(self.pair_keys, label_set, assume_unique=False) & (self.pair_keys >= 0)
        n = len(self.clicks)
        uidx = self.labels.user_index
        judged = np.bincount(uidx, mask.sum(1), minlength=n)
        grades = np.bincount(uidx, np.where(mask, self.cell_grades, 0).sum(1), minlength=n)
        return dataclasses.replace(self, grades=grades, judged=judged)

    judged: np.ndarray | None = None  # per user labelled impressions (None: every impression counts)

    def rescored(self, scale: RaterScale) -> ArmTotals:
        """These totals with the grades, relevance and page good rate of raters on ``scale`` (the world's own, or
        another: the rankers' pages and the users' responses do not read the raters, so nothing else changes)."""
        assert self.cell_relevance is not None and self.grade_noise is not None and self.labels is not None
        assert self.pair_keys is not None
        g = grades(self.cell_relevance, self.grade_noise, scale)
        cells = np.where(self.pair_keys >= 0, g, 0).astype(np.int8)
        uidx, n = self.labels.user_index, len(self.clicks)
        return dataclasses.replace(
            self, cell_grades=cells, grades=np.bincount(uidx, cells.sum(1), minlength=n),
            good=np.bincount(uidx, scale.page_good_probability(g[:, :5].mean(axis=1)), minlength=n))

    def metrics(self, w: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Metric values, weighted by ``w`` (users x replicates) for a bootstrap, else once."""
        def s(x):
            return x @ w if w is not None else x.sum()
        n = s(np.ones_like(self.clicks))
        return {"item_ctr": s(self.clicks) / s(self.impressions), "buyer_conversion": s(self.p_buy) / n,
                "order_volume": s(self.orders) / n, "page_good_rate": s(self.good) / s(self.pages),
                "relevance": s(self.grades) / s(self.judged if self.judged is not None else self.impressions),
                "tail_impression_share": s(self.tail_impressions) / s(self.impressions),
                "category_entropy": s(self.entropy) / n}


def tail_items(world: Path, n_items: int, head_share: float = 0.2) -> np.ndarray:
    """Boolean per item row: the bottom 80% by pre-period impressions (ties by item id), as sql/04_long_tail.sql."""
    counts = duckdb.connect().execute(
        f"SELECT item_id, COUNT(*) FROM read_parquet('{world}/pre_impressions/*.parquet') GROUP BY item_id").fetchnumpy()
    n = np.zeros(n_items)
    n[np.asarray(list(counts.values())[0])] = np.asarray(list(counts.values())[1])
    order = np.lexsort((np.arange(n_items), -n))
    rank = np.empty(n_items, np.int64)
    rank[order] = np.arange(1, n_items + 1)
    return rank > head_share * n_items


def gini(exposure: np.ndarray) -> float:
    x = np.sort(exposure)
    m = len(x)
    r = np.arange(1, m + 1)
    return float(((2 * r - m - 1) * x).sum() / (m * x.sum()))


def evaluate(world: str | Path, arms: dict[str, tuple[str, dict]], batch: int = 50_000) -> dict[str, ArmTotals]:
    """Each arm's (ranker name, params) fitted on the world's pre-period and evaluated in expectation."""
    world = Path(world)
    ds = Dataset(world)
    catalog = Catalog.from_dataset(ds)
    truth = load_truth(world)
    model = truth.model
    logged = load_logged_pages(ds, k=10)
    users, user_index = np.unique(logged.unit_ids.astype(str), return_inverse=True)
    user_rows = unit_rows(logged.unit_ids)
    n_users, n_items = len(users), len(catalog)
    tail = tail_items(world, n_items)
    n_cat = int(truth.items.leaf.max()) + 1
    _, query_codes = np.unique(logged.queries.astype(str), return_inverse=True)
    labels = LabelContext(user_index, uniforms(truth.seed, logged.session_ids, Stream.LABEL)[:, 0] < truth.label_rate,
                          (np.random.default_rng(12345).random(n_users) < 0.5)[user_index])
    out = {}
    for name, (ranker_name, params) in arms.items():
        ranker = make_ranker(ranker_name, params).fit(ds, catalog)
        pages = catalog.rows(ranker_pages(ranker, catalog, logged, k=10))
        t = {k: np.zeros(n_users) for k in ("clicks", "impressions", "log_no_buy", "orders", "pages", "tail")}
        cat_counts = np.zeros((n_users, n_cat))
        exposure = np.zeros(n_items)
        pair_keys = np.where(pages >= 0, query_codes[:, None].astype(np.int64) * n_items + pages, -1)
        cell_relevance = np.zeros(pages.shape)
        grade_noise = np.zeros(pages.shape)
        for lo in range(0, len(logged), batch):
            hi = min(len(logged), lo + batch)
            shown, uidx, urows = pages[lo:hi], user_index[lo:hi], user_rows[lo:hi]
            queries = list(logged.queries[lo:hi])
            intent = truth.intents(queries)
            valid = shown >= 0
            cells = model._cells(urows, shown)
            a, rel = model.attraction(intent, urows, shown, cells)
            click = np.where(valid, a * EXAMINATION[: shown.shape[1]], 0.0)
            p_buy = model.purchase_probability(rel, cells, np.arange(rel.size)).reshape(rel.shape)
            buy = click * p_buy
            orders = buy * (1.0 + model.extra_orders_mean(cells[3]))
            cell_relevance[lo:hi], grade_noise[lo:hi] = rel, pair_grade_noise(truth.seed, queries, shown)
            rows = np.maximum(shown, 0)
            for key, per_session in (("clicks", click.sum(1)), ("impressions", valid.sum(1)),
                                     ("log_no_buy", np.log1p(-buy).sum(1)), ("orders", orders.sum(1)),
                                     ("pages", np.ones(hi - lo)), ("tail", (valid & tail[rows]).sum(1))):
                t[key] += np.bincount(uidx, per_session, minlength=n_users)
            leaf = truth.items.leaf[rows]
            np.add.at(cat_counts, (np.repeat(uidx, shown.shape[1])[valid.ravel()], leaf.ravel()[valid.ravel()]), 1)
            exposure += np.bincount(shown[valid], minlength=n_items)
        share = cat_counts / np.maximum(cat_counts.sum(1, keepdims=True), 1)
        entropy = -(np.where(share > 0, share * np.log2(np.where(share > 0, share, 1)), 0)).sum(1)
        # the raters' part (grades, relevance, page good) from the cells, on the world's own scale
        unjudged = np.zeros(n_users)
        out[name] = ArmTotals(t["clicks"], t["impressions"], -np.expm1(t["log_no_buy"]), t["orders"], unjudged,
                              t["pages"], unjudged, t["tail"], entropy, gini(exposure), pair_keys, None, labels,
                              cell_relevance, grade_noise).rescored(truth.raters)
    return out


def lifts(totals: dict[str, ArmTotals], treatment: str, control: str, replicates: int = 200,
          seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """(relative lift, 95% low, 95% high) per metric of ``treatment`` over ``control``; Gini: (difference, nan, nan)."""
    t, c = totals[treatment], totals[control]
    if t.pair_keys is not None and t.labels is not None and c.pair_keys is not None:
        lab = t.labels
        label_set = np.unique(np.concatenate([t.pair_keys[lab.judged & lab.half].ravel(),
                                              c.pair_keys[lab.judged & ~lab.half].ravel()]))
        t, c = t.labelled(label_set), c.labelled(label_set)
    point_t, point_c = t.metrics(), c.metrics()
    n = len(t.clicks)
    out = {}
    if replicates:
        w = np.random.default_rng(seed).poisson(1.0, (n, replicates)).astype(float)
        bt, bc = t.metrics(w), c.metrics(w)
    for m in point_t:
        rel = point_t[m] / point_c[m] - 1
        if replicates:
            boot = bt[m] / bc[m] - 1
            out[m] = (float(rel), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
        else:
            out[m] = (float(rel), float("nan"), float("nan"))
    out["exposure_gini"] = (t.gini - c.gini, float("nan"), float("nan"))
    return out
