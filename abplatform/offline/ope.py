"""Off-policy estimates of a target policy's clicks, per logged row, from a log with known propensities.

Data. Each logged impression i is one round of bandit feedback: its session's context x_i, the
position (slot) k_i as logged — never renumbered, so a log of slots 2 and 3 only estimates slots 2
and 3 —, the item a_i, the reward r_i (clicked) and the logging propensity p_i = pi_b(a_i | x_i, k_i),
the logging policy's marginal probability of that item at that slot (:class:`LoggedRows`). A
session may log every slot of its page or only some (a partial page).

Estimand: the Open Bandit Pipeline's (Saito, Aihara, Matsutani & Narita 2021; ``IPW``, ``SNIPW``,
``DirectMethod``, ``DR`` of obp/ope/estimators.py), the target's expected reward **per logged row**,
V = 1/n sum_i E_{a ~ pi_e(.|x_i, k_i)} E[r | x_i, a, k_i], with the target pi_e
(:mod:`.target_policy`: deterministic pages or a stochastic table). With the importance weight
w_i = pi_e(a_i | x_i, k_i) / p_i and a reward model q(x, a, k) (e.g. a click model):

* IPW:   V = 1/n sum_i w_i r_i
* SNIPW: V = sum_i w_i r_i / sum_i w_i                       (over all logged rows)
* DM:    V = 1/n sum_i sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i)
* DR:    V = 1/n sum_i [sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i) + w_i (r_i - q(x_i, a_i, k_i))]

(obp's DM divides by sum_a pi_e, which is 1 wherever the target shows an item; here a slot the
target leaves empty is worth 0.) Beside it, **per position** k: the same estimators over the rows
logged at k (the target's click-through rate at slot k); **per page**: the sum of the per-position
values over the logged positions (expected clicks on a full page of the target; on a log of full
pages, the expected clicks per session). Each logged slot is one round, so the item-position
assumption of Li, Kim & Zitouni (2018, "Offline Evaluation of Ranking Policies with Click Models",
KDD, sec. 4) is what makes w_i exact: the click at k depends only on x, the item at k and k (true
under position-based examination, PBM). IPW and DR are then unbiased (DR whatever the reward model,
as w_i (r_i - q) corrects it wherever the target can show a_i); SNIPW is consistent.

Inference. Rows of one session are not independent (one user, one query, one page), so every
interval is a normal (CLT) interval from influence values **clustered by session**: each estimate
is a ratio sum_G a_i / sum_G b_i over its rows G (b_i = 1 for IPW, DM and DR, b_i = w_i for SNIPW),
with influence d_i = (a_i - V b_i) / sum_G b_i (for SNIPW the delta method), and
Var = C/(C-1) sum_s (sum_{i in s} d_i)^2 over the C sessions with rows in G. The per-page value's
influence is each row's per-position one, so its variance keeps the covariance of a session's
slots. The DM's interval ignores the reward model's own fitting error.

Weights. The Kish effective sample size ESS = (sum w)^2 / sum w^2, overall and per position. The
result is flagged (``WeightDiagnostics.exploded``) and a :class:`WeightExplosionWarning` raised when,
at a logged position where the target shows items, ESS < ``min_ess`` (default 100: too few effective
rows for a CLT interval), one row holds more than ``max_weight_share`` of the weight mass (1% by
default), or no logged row there has a positive weight (no support). Rows stay numpy arrays from
duckdb; no DataFrame of impressions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from scipy.stats import norm

from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.offline.clickmodels import (
    NO_ITEM,
    ClickModel,
    QueryVocab,
    click_log_from_duckdb,
    make_click_model,
)
from abplatform.offline.logged_rows import LoggedRows
from abplatform.offline.target_policy import DeterministicPages, TargetPolicy
from abplatform.rankers import CandidateBatch, Catalog, Ranker, candidate_matrix, rank

DEFAULT_MIN_ESS = 100.0
DEFAULT_MAX_WEIGHT_SHARE = 0.01
SUPPORT_ENTRIES_PER_CHUNK = 1 << 21  # (row, item) pairs of a target's distribution expanded at once

RewardModel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``q(rows, item_ids, positions) -> (m,)`` predicted P(click) of each item at the position, for the
context of logged row ``rows[j]`` (indices into the :class:`LoggedRows`). The estimators call it only
on (row, item) pairs the target can show there."""


class WeightExplosionWarning(UserWarning):
    """Importance weights too concentrated for the estimate's CI to be trusted."""


# --------------------------------------------------------------------------------------------
# logged rows
# --------------------------------------------------------------------------------------------
IMPRESSION_COLUMNS = ("session_id", "position", "item_id", "clicked", "propensity")


def _require_columns(con: duckdb.DuckDBPyConnection, ds: Dataset, table: str, needed: tuple[str, ...]) -> None:
    """An InputError naming the first column of ``needed`` that the log's ``table`` lacks (a contract
    column the log does not have reads as NULL in the view: ``Dataset.absent_columns``)."""
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()} - ds.absent_columns(table)
    missing = [c for c in needed if c not in present]
    if missing:
        raise InputError(f"{ds.path}: table {table} has no column {missing[0]!r} (needed for off-policy "
                         "evaluation)")


def _propensities(values: Any) -> np.ndarray:
    """A fetched propensity column as floats, NaN where null (duckdb hands nulls back masked)."""
    return np.ma.filled(values.astype(float), np.nan) if np.ma.isMaskedArray(values) else np.asarray(values, float)


def load_logged_rows(dataset: Dataset | str | Path, context: str | None = None) -> LoggedRows:
    """Every row of the dataset's ``impressions`` (sorted by session and position), with the session's
    column ``context`` of ``sessions`` as each row's context when asked."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    if not ds.has("impressions"):
        raise InputError(f"{ds.path}: no impressions table (needed for off-policy evaluation)")
    con = ds.connect()
    try:
        _require_columns(con, ds, "impressions", IMPRESSION_COLUMNS)
        cols = "i.session_id, i.position, i.item_id, i.clicked, i.propensity"
        source = "impressions i"
        if context == "session_id":
            cols += ", i.session_id AS context"
        elif context is not None:
            if not ds.has("sessions"):
                raise InputError(f"{ds.path}: no sessions table (needed for the context column {context!r})")
            _require_columns(con, ds, "sessions", ("session_id", context))
            cols += f', s."{context}" AS context'
            source += " JOIN sessions s USING (session_id)"
        data = con.execute(f"SELECT {cols} FROM {source} ORDER BY i.session_id, i.position").fetchnumpy()
    finally:
        con.close()
    return LoggedRows(np.asarray(data["session_id"], np.int64), np.asarray(data["position"], np.int64),
                      np.asarray(data["item_id"], np.int64), np.asarray(data["clicked"], float),
                      _propensities(data["propensity"]), None if context is None else np.asarray(data["context"]))


# --------------------------------------------------------------------------------------------
# logged pages (one row per session) and a ranker's pages
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoggedPages:
    """One row per logged session; columns are positions 1..k (item id -1 = not logged there)."""

    session_ids: np.ndarray  # (n,) int64, ascending
    unit_ids: np.ndarray  # (n,) str (object)
    queries: np.ndarray  # (n,) str (object)
    item_ids: np.ndarray  # (n, k) int64
    clicks: np.ndarray  # (n, k) bool
    propensity: np.ndarray  # (n, k) float; NaN where unknown or no item
    candidates: np.ndarray | None = None  # (n, C) candidate item ids, -1 padded

    def __len__(self) -> int:
        return len(self.session_ids)

    def subset(self, rows: np.ndarray) -> LoggedPages:
        return LoggedPages(self.session_ids[rows], self.unit_ids[rows], self.queries[rows], self.item_ids[rows],
                           self.clicks[rows], self.propensity[rows],
                           None if self.candidates is None else self.candidates[rows])

    def rows(self) -> LoggedRows:
        """The logged cells as rows (sorted by session, then position; unlogged positions left out), each
        row's context its session's query."""
        r, c = np.nonzero(self.item_ids != NO_ITEM)
        return LoggedRows(self.session_ids[r], c + 1, self.item_ids[r, c], self.clicks[r, c].astype(float),
                          self.propensity[r, c], self.queries[r])


def load_logged_pages(dataset: Dataset | str | Path, k: int = 10, candidates: bool = True) -> LoggedPages:
    """The logged pages of ``dataset`` (its ``sessions`` and ``impressions``; ``candidates`` if asked)."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    for table in ("sessions", "impressions") + (("candidates",) if candidates else ()):
        if not ds.has(table):
            why = "to rank the target's pages" if table == "candidates" else "for off-policy evaluation"
            raise InputError(f"{ds.path}: no {table} table (needed {why})")
    con = ds.connect()
    try:
        _require_columns(con, ds, "sessions", ("session_id", "unit_id", "query"))
        _require_columns(con, ds, "impressions", IMPRESSION_COLUMNS)
        s = con.execute("""SELECT session_id, unit_id, query FROM sessions
                           WHERE session_id IN (SELECT session_id FROM impressions) ORDER BY session_id""").fetchnumpy()
        imp = con.execute(f"""SELECT session_id, position, item_id, clicked, propensity FROM impressions
                              WHERE position BETWEEN 1 AND {int(k)}""").fetchnumpy()
        cand = None
        if candidates:
            _require_columns(con, ds, "candidates", ("session_id", "item_id"))
            c = con.execute("SELECT session_id, item_id FROM candidates").fetchnumpy()
            cand = (np.asarray(c["session_id"], np.int64), np.asarray(c["item_id"], np.int64))
    finally:
        con.close()
    ids = np.asarray(s["session_id"], np.int64)
    n = len(ids)
    rows = np.searchsorted(ids, np.asarray(imp["session_id"], np.int64))
    cols = np.asarray(imp["position"], np.int64) - 1
    item_ids = np.full((n, k), NO_ITEM, np.int64)
    clicks = np.zeros((n, k), bool)
    prop = np.full((n, k), np.nan)
    item_ids[rows, cols] = np.asarray(imp["item_id"], np.int64)
    clicks[rows, cols] = np.asarray(imp["clicked"], bool)
    prop[rows, cols] = _propensities(imp["propensity"])
    cand_matrix = candidate_matrix(ids, *cand) if cand is not None else None
    return LoggedPages(ids, np.asarray(s["unit_id"], object), np.asarray(s["query"], object), item_ids, clicks, prop,
                       cand_matrix)


def ranker_pages(ranker: Ranker, catalog: Catalog, logged: LoggedPages, k: int | None = None,
                 batch_size: int = 8192) -> np.ndarray:
    """(n, k) item ids the fitted ``ranker`` shows on each logged session's candidates (-1 = none)."""
    if logged.candidates is None:
        raise ValueError("logged pages carry no candidates; load them with candidates=True")
    k = k or logged.item_ids.shape[1]
    out = np.full((len(logged), k), NO_ITEM, np.int64)
    for lo in range(0, len(logged), batch_size):
        hi = min(len(logged), lo + batch_size)
        cand_rows = catalog.rows(logged.candidates[lo:hi])
        batch = CandidateBatch(logged.session_ids[lo:hi], list(logged.queries[lo:hi]), cand_rows)
        shown = rank(ranker.score(batch), cand_rows, k)
        out[lo:hi] = np.where(shown >= 0, catalog.item_ids[np.maximum(shown, 0)], NO_ITEM)
    return out


# --------------------------------------------------------------------------------------------
# reward models: click-model baselines
# --------------------------------------------------------------------------------------------
def fit_click_model(dataset: Dataset | str | Path, name: str = "pbm", k: int = 10,
                    **params) -> tuple[ClickModel, QueryVocab]:
    """A click model fitted by EM on the dataset's logged ``impressions``, and its query vocabulary."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    con = ds.connect()
    try:
        log, vocab = click_log_from_duckdb(con, "sessions", "impressions", k=k)
    finally:
        con.close()
    return make_click_model(name, **params).fit(log), vocab


def query_ids_for(vocab: QueryVocab, queries: np.ndarray) -> np.ndarray:
    """Dense query ids in ``vocab``; queries it lacks get fresh ids (the model backs off for them)."""
    start = max(vocab.values(), default=-1) + 1
    uniq, inv = np.unique(np.asarray(queries, dtype=object).astype(str), return_inverse=True)
    extra = iter(range(start, start + len(uniq)))
    ids = np.array([vocab[q] if q in vocab else next(extra) for q in uniq], dtype=np.int64)
    return ids[inv]


def click_model_baseline(model: ClickModel, vocab: QueryVocab, queries: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """(n, k) the model's marginal P(click) at each position of ``pages`` (0 where no item)."""
    p = model.click_probabilities(query_ids_for(vocab, queries), pages)
    return np.where(pages >= 0, p, 0.0)


def page_rewards(pages: DeterministicPages, q_pages: np.ndarray, rows: LoggedRows) -> RewardModel:
    """The reward model of deterministic ``pages``: ``q_pages`` (aligned with ``pages.pages``, e.g.
    :func:`click_model_baseline` of them) at each row's session and position. The target's own item
    is the only one it can show there, so that is the only item asked about."""
    def q(index: np.ndarray, item_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return q_pages[pages.page_rows(rows.session_ids[index]), positions - 1]
    return q


def click_model_rewards(model: ClickModel, vocab: QueryVocab, queries: np.ndarray) -> RewardModel:
    """A reward model from a click model, for any target: q(x_i, a, k) = the model's P(click) on item a
    at position k of a page showing a alone, for row i's query ``queries[i]``. Under the item-position
    assumption (PBM: examination_k x attraction(query, a)) this is the click model's own prediction."""
    query_ids = query_ids_for(vocab, queries)

    def q(index: np.ndarray, item_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        if len(index) == 0:
            return np.zeros(0)
        at = np.arange(len(index))
        page = np.full((len(index), int(positions.max())), NO_ITEM, np.int64)
        page[at, positions - 1] = item_ids
        return model.click_probabilities(query_ids[index], page)[at, positions - 1]
    return q


# --------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One estimator's estimate of the target's value: per logged row (the estimand: ``per_row``, with
    ``per_row_se`` and ``per_row_ci``), per logged position (``positions``), and per page, the sum over
    positions: ``clicks_per_session`` with ``se`` and ``ci`` (expected clicks on a full target page;
    its clicks per session when every session logs every position). ``ctr`` = per page / the target's
    expected items per page (its item click-through rate)."""

    estimator: str
    per_row: float
    per_row_se: float
    per_row_ci: tuple[float, float]
    positions: np.ndarray  # (k,) the logged positions, ascending
    per_position: np.ndarray  # (k,) CTR at each position
    per_position_se: np.ndarray  # (k,)
    per_position_ci: np.ndarray  # (k, 2)
    clicks_per_session: float  # per page
    se: float
    ci: tuple[float, float]
    ctr: float
    ctr_ci: tuple[float, float]


@dataclass(frozen=True)
class WeightDiagnostics:
    n: int  # logged rows
    positions: np.ndarray  # (k,) logged positions
    ess: np.ndarray  # (k,) Kish effective sample size per position
    match_rate: np.ndarray  # (k,) of the rows logged at k, the mean pi_e(a_i | x_i, k): the share the target shows
    max_weight: float
    max_weight_share: np.ndarray  # (k,) max_i w_i / sum_i w_i over the rows at k
    ess_total: float  # Kish ESS of all rows
    exploded: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def ess_min(self) -> float:
        return float(np.min(self.ess)) if len(self.ess) else float("nan")


@dataclass(frozen=True)
class OPEResult:
    estimates: dict[str, Estimate]
    weights: WeightDiagnostics
    alpha: float
    n_rows: int
    n_sessions: int
    position_rows: np.ndarray  # (k,) logged rows per position

    def __getitem__(self, name: str) -> Estimate:
        return self.estimates[name]

    def rows(self) -> list[dict]:
        """One plain dict per estimator (for tables and JSON)."""
        return [{"estimator": e.estimator, "per_row": e.per_row, "per_row_ci_low": e.per_row_ci[0],
                 "per_row_ci_high": e.per_row_ci[1], "clicks_per_session": e.clicks_per_session, "se": e.se,
                 "ci_low": e.ci[0], "ci_high": e.ci[1], "ctr": e.ctr, "ctr_ci_low": e.ctr_ci[0],
                 "ctr_ci_high": e.ctr_ci[1], "ess_min": self.weights.ess_min, "n_rows": self.n_rows,
                 "n_sessions": self.n_sessions} for e in self.estimates.values()]


def kish_ess(weights: np.ndarray, axis: int = 0) -> np.ndarray:
    """Kish's effective sample size (sum w)^2 / sum w^2 along ``axis`` (0 where all weights are 0)."""
    w = np.asarray(weights, dtype=float)
    s, s2 = w.sum(axis=axis), (w * w).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s2 > 0, s * s / np.where(s2 > 0, s2, 1.0), 0.0)


def importance_weights(rows: LoggedRows, target_probability: np.ndarray) -> np.ndarray:
    """(n,) w_i = pi_e(a_i | x_i, k_i) / p_i; an InputError when a row the target can show (pi_e > 0) has
    no propensity in (0, 1] (the others weigh 0 whatever their propensity)."""
    used = target_probability > 0
    p = np.where(used, rows.propensity, 1.0)
    bad = used & ~((p > 0) & (p <= 1))  # NaN fails both comparisons
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "null" if np.isnan(rows.propensity[i]) else f"{rows.propensity[i]:g}, not in (0, 1],"
        raise InputError(f"impressions.propensity is {what} for {int(bad.sum())} logged rows the target can show "
                         f"(first: session {rows.session_ids[i]}, position {rows.positions[i]}, item "
                         f"{rows.item_ids[i]}): off-policy estimation needs the logging policy's propensities")
    return np.where(used, target_probability / p, 0.0)


@dataclass(frozen=True)
class _Clusters:
    """Who is clustered with whom: each row's session and position codes, and the (position, session) cells."""

    session: np.ndarray  # (n,) session code
    n_sessions: int
    position: np.ndarray  # (n,) index into positions
    positions: np.ndarray  # (k,) logged positions
    cell: np.ndarray  # (n,) code of the row's (position, session)
    cell_position: np.ndarray  # (cells,) position index of each cell
    sessions_per_position: np.ndarray  # (k,)

    @classmethod
    def of(cls, rows: LoggedRows) -> _Clusters:
        _, session = np.unique(rows.session_ids, return_inverse=True)
        positions, position = np.unique(rows.positions, return_inverse=True)
        n_sessions = int(session.max()) + 1 if len(session) else 0
        cells, cell = np.unique(position.astype(np.int64) * max(n_sessions, 1) + session, return_inverse=True)
        cell_position = cells // max(n_sessions, 1)
        return cls(session, n_sessions, position, positions, cell, cell_position,
                   np.bincount(cell_position, minlength=len(positions)))


def _clustered_variance(sum_of_squares: Any, clusters: np.ndarray | int) -> np.ndarray:
    """C/(C-1) sum_s S_s^2 from ``sum_of_squares`` = sum_s S_s^2 over C clusters (NaN when C < 2)."""
    c = np.asarray(clusters, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 1, c / (c - 1) * sum_of_squares, np.nan)


def _ratio_estimate(name: str, a: np.ndarray, b: np.ndarray, cl: _Clusters, z: float, page_items: float) -> Estimate:
    """sum a / sum b over all rows, per position and summed over positions, with clustered CIs."""
    k = len(cl.positions)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den != 0, num / np.where(den != 0, den, 1.0), 0.0)  # no weight, no estimate: 0

    total_b = b.sum()
    value = float(ratio(a.sum(), total_b))
    influence = ratio(a - value * b, total_b)
    se = float(np.sqrt(_clustered_variance(np.sum(np.bincount(cl.session, influence, cl.n_sessions) ** 2),
                                           cl.n_sessions)))
    b_k = np.bincount(cl.position, b, k)
    per_pos = ratio(np.bincount(cl.position, a, k), b_k)
    influence_k = ratio(a - per_pos[cl.position] * b, b_k[cl.position])
    cell_sums = np.bincount(cl.cell, influence_k)
    per_pos_se = np.sqrt(_clustered_variance(np.bincount(cl.cell_position, cell_sums ** 2, k),
                                             cl.sessions_per_position))
    page = float(per_pos.sum())
    page_se = float(np.sqrt(_clustered_variance(np.sum(np.bincount(cl.session, influence_k, cl.n_sessions) ** 2),
                                                cl.n_sessions)))
    page_ci = (page - z * page_se, page + z * page_se)
    with np.errstate(invalid="ignore", divide="ignore"):
        ctr = page / page_items if page_items > 0 else float("nan")
        ctr_ci = (page_ci[0] / page_items, page_ci[1] / page_items) if page_items > 0 else (ctr, ctr)
    return Estimate(name, value, se, (value - z * se, value + z * se), cl.positions, per_pos, per_pos_se,
                    np.column_stack([per_pos - z * per_pos_se, per_pos + z * per_pos_se]), page, page_se, page_ci,
                    ctr, ctr_ci)


def _model_terms(rows: LoggedRows, target: TargetPolicy, reward_model: RewardModel) -> tuple[np.ndarray, np.ndarray]:
    """(n,) sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i) and (n,) q(x_i, a_i, k_i) where pi_e(a_i) > 0 (else 0),
    expanding the target's distribution a chunk of rows at a time."""
    n = len(rows)
    expected, factual = np.zeros(n), np.zeros(n)
    step = max(1, SUPPORT_ENTRIES_PER_CHUNK // max(target.max_support, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        row, item, prob = target.distribution(rows, np.arange(lo, hi))
        q = np.asarray(reward_model(row, item, rows.positions[row]), float)
        expected[lo:hi] = np.bincount(row - lo, prob * q, hi - lo)
        logged = item == rows.item_ids[row]  # at most one entry per row: a distribution lists each item once
        factual[row[logged]] = q[logged]
    return expected, factual


def evaluate_rows(rows: LoggedRows, target: TargetPolicy, reward_model: RewardModel | None = None, *,
                  alpha: float = 0.05, min_ess: float = DEFAULT_MIN_ESS,
                  max_weight_share: float = DEFAULT_MAX_WEIGHT_SHARE, warn: bool = True) -> OPEResult:
    """IPW and SNIPW (keys ``ips``, ``snips``), and DR and DM with a ``reward_model``, of ``target`` on the
    logged ``rows``: per row, per position and per page, with session-clustered CIs at level 1 - ``alpha``
    (see the module doc)."""
    n = len(rows)
    cl = _Clusters.of(rows)
    if cl.n_sessions < 2:
        raise ValueError("off-policy estimation needs at least 2 sessions")
    pi_logged = target.probabilities(rows, rows.item_ids)
    w = importance_weights(rows, pi_logged)
    r = np.asarray(rows.rewards, float)
    ones = np.ones(n)
    mass = target.mass(rows)
    k = len(cl.positions)
    rows_k = np.bincount(cl.position, minlength=k)
    page_items = float((np.bincount(cl.position, mass, k) / rows_k).sum())
    z = float(norm.ppf(1 - alpha / 2))
    terms = {"ips": (w * r, ones), "snips": (w * r, w)}
    if reward_model is not None:
        expected, factual = _model_terms(rows, target, reward_model)
        terms["dr"] = (expected + w * (r - factual), ones)
        terms["dm"] = (expected, ones)
    estimates = {name: _ratio_estimate(name, a, b, cl, z, page_items) for name, (a, b) in terms.items()}
    diag = weight_diagnostics(w, cl.position, cl.positions, pi_logged, mass, min_ess, max_weight_share)
    if warn and diag.exploded:
        warnings.warn("off-policy weights explode: " + "; ".join(diag.reasons), WeightExplosionWarning, stacklevel=2)
    return OPEResult(estimates, diag, alpha, n, cl.n_sessions, rows_k)


def weight_diagnostics(w: np.ndarray, position_index: np.ndarray, positions: np.ndarray, target_probability: np.ndarray,
                       mass: np.ndarray, min_ess: float = DEFAULT_MIN_ESS,
                       max_weight_share: float = DEFAULT_MAX_WEIGHT_SHARE) -> WeightDiagnostics:
    """ESS, match rate and weight concentration per logged position (``position_index`` of each row into
    ``positions``); only rows logged at a position count for it, and only positions where the target
    shows items (``mass`` > 0) can raise a reason."""
    k = len(positions)
    rows_k = np.bincount(position_index, minlength=k)
    sum_w, sum_w2 = np.bincount(position_index, w, k), np.bincount(position_index, w * w, k)
    ess = np.where(sum_w2 > 0, sum_w ** 2 / np.where(sum_w2 > 0, sum_w2, 1.0), 0.0)
    match_rate = np.bincount(position_index, target_probability, k) / np.maximum(rows_k, 1)
    max_w = np.zeros(k)
    np.maximum.at(max_w, position_index, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(sum_w > 0, max_w / np.where(sum_w > 0, sum_w, 1.0), np.inf)
    shows = np.bincount(position_index, mass, k) > 0
    reasons = []
    unsupported = shows & (sum_w == 0)
    if unsupported.any():
        reasons.append(f"no logged support at positions {positions[unsupported].tolist()}")
    low = shows & (sum_w > 0) & (ess < min_ess)
    if low.any():
        reasons.append(f"ESS {ess[low].min():.1f} < {min_ess:g} at positions {positions[low].tolist()}")
    heavy = shows & (sum_w > 0) & (share > max_weight_share)
    if heavy.any():
        reasons.append(f"one row holds {share[heavy].max():.1%} (> {max_weight_share:.1%}) of the weight "
                       f"at positions {positions[heavy].tolist()}")
    return WeightDiagnostics(len(w), positions, ess, match_rate, float(w.max()) if w.size else 0.0, share,
                             float(kish_ess(w)), bool(reasons), reasons)


# --------------------------------------------------------------------------------------------
# a ranker's pages on logged pages
# --------------------------------------------------------------------------------------------
def evaluate_pages(logged_items: np.ndarray, clicks: np.ndarray, propensity: np.ndarray, target_items: np.ndarray,
                   baseline: np.ndarray | None = None, **kwargs) -> OPEResult:
    """:func:`evaluate_rows` on (n, k) page matrices, column j = position j + 1 (logged item -1: that
    position was not logged in that session); ``baseline[i, j]``: a model's P(click) of the target's
    item at position j + 1 of session i, for DR and DM."""
    n = len(logged_items)
    pages = LoggedPages(np.arange(n, dtype=np.int64), np.zeros(n, object), np.zeros(n, object),
                        np.asarray(logged_items, np.int64), np.asarray(clicks, bool), np.asarray(propensity, float))
    rows = pages.rows()
    target = DeterministicPages(pages.session_ids, target_items)
    reward = page_rewards(target, np.asarray(baseline, float), rows) if baseline is not None else None
    return evaluate_rows(rows, target, reward, **kwargs)


def evaluate_ranker(logged: LoggedPages, target_items: np.ndarray, click_model: ClickModel | None = None,
                    vocab: QueryVocab | None = None, **kwargs) -> OPEResult:
    """Off-policy estimates of the pages ``target_items`` (e.g. :func:`ranker_pages`) on ``logged``.

    With a fitted ``click_model`` (and its query ``vocab``) the DR and DM estimates use its
    predictions for the target pages as the reward model.
    """
    rows = logged.rows()
    target = DeterministicPages(logged.session_ids, target_items)
    reward = None
    if click_model is not None:
        q_pages = click_model_baseline(click_model, vocab or {}, logged.queries, target_items)
        reward = page_rewards(target, q_pages, rows)
    return evaluate_rows(rows, target, reward, **kwargs)
