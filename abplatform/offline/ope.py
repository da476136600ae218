"""Off-policy estimates of a target ranker's clicks from a log with known propensities.

Estimand. For a target ranker t, V(t) = E_x sum_k P(click at position k | x, t(x)): the expected
clicks per session (and its per-position terms V_k, the click-through rate at position k), over
the logged sessions' contexts x (query, user, candidate set). Item CTR = V / mean page length.

Estimators: the **item-position (IP) estimators** of Li, Kim & Zitouni (2018), "Offline
Evaluation of Ranking Policies with Click Models", KDD, sec. 4 ("item-position model"). They
assume the click at position k depends only on the context, the item at k and k itself, which
holds under position-based examination (PBM: P(click) = P(E_k) * attraction(x, item)) and
makes the per-(item, position) importance weight exact. With the logged item a_ik, its click
c_ik and its logged *marginal* propensity p_ik = P_log(a_ik at k | x_i), and the target's item
t_ik at k (the target is deterministic):

* IPS:   V_k = 1/n sum_i w_ik c_ik,                      w_ik = 1[a_ik = t_ik] / p_ik
* SNIPS: V_k = sum_i w_ik c_ik / sum_i w_ik              (self-normalised; E[w_ik] = 1)
* DR:    V_k = 1/n sum_i [q_ik + w_ik (c_ik - q_ik)]     (Dudik, Langford & Li 2011, per position)
* DM:    V_k = 1/n sum_i q_ik                            (direct method, the baseline alone)

where q_ik is the baseline model's P(click at k) for the target page (by default the fitted click
model of :mod:`.clickmodels`). IPS and DR are unbiased when the propensities are right and the
item-position assumption holds (DR whatever the baseline, as w_ik != 0 only where a_ik = t_ik);
SNIPS is consistent. Li et al.'s PBM estimator (pooling an item's clicks across positions) needs
the logging policy's marginals at *all* positions, which the event log does not record; it is
not implemented.

Inference: the unit is the **session** — sessions are treated as i.i.d. draws of (x, logged
page, clicks), so each estimate is a mean of per-session influence values (summed over
positions) and its CI is the CLT normal interval; for SNIPS the per-position ratio is linearised
(delta method). Users with many sessions make this slightly optimistic; the DM's CI ignores the
baseline model's own fitting error.

Weights: per position the Kish effective sample size ESS_k = (sum_i w_ik)^2 / sum_i w_ik^2. The
result is flagged (``WeightDiagnostics.exploded``) and a :class:`WeightExplosionWarning` raised
when, at any position, ESS_k < ``min_ess`` (default 100: too few effective sessions for a CLT
interval), one session holds more than ``max_weight_share`` of the weight mass
(max_i w_ik / sum_i w_ik > 0.01 by default), or the target's item was never logged there
(no support). Impression rows stay numpy arrays from duckdb; no DataFrame.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import norm

from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.offline.clickmodels import ClickModel, QueryVocab, click_log_from_duckdb, make_click_model
from abplatform.rankers import CandidateBatch, Catalog, Ranker, candidate_matrix, rank

DEFAULT_MIN_ESS = 100.0
DEFAULT_MAX_WEIGHT_SHARE = 0.01


class WeightExplosionWarning(UserWarning):
    """Importance weights too concentrated for the estimate's CI to be trusted."""


# --------------------------------------------------------------------------------------------
# logged pages
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoggedPages:
    """One row per logged session; columns are positions 1..k (item id -1 = no item there)."""

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


def load_logged_pages(dataset: Dataset | str | Path, k: int = 10, candidates: bool = True) -> LoggedPages:
    """The logged pages of ``dataset`` (its ``sessions`` and ``impressions``; ``candidates`` if asked)."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    con = ds.connect()
    try:
        s = con.execute("""SELECT session_id, unit_id, query FROM sessions
                           WHERE session_id IN (SELECT session_id FROM impressions) ORDER BY session_id""").fetchnumpy()
        imp = con.execute(f"""SELECT session_id, position, item_id, clicked, propensity FROM impressions
                              WHERE position BETWEEN 1 AND {int(k)}""").fetchnumpy()
        cand = None
        if candidates:
            if not ds.has("candidates"):
                raise InputError(f"{ds.path}: no candidates table (needed to rank the target's pages)")
            c = con.execute("SELECT session_id, item_id FROM candidates").fetchnumpy()
            cand = (np.asarray(c["session_id"], np.int64), np.asarray(c["item_id"], np.int64))
    finally:
        con.close()
    ids = np.asarray(s["session_id"], np.int64)
    n = len(ids)
    rows = np.searchsorted(ids, np.asarray(imp["session_id"], np.int64))
    cols = np.asarray(imp["position"], np.int64) - 1
    item_ids = np.full((n, k), -1, np.int64)
    clicks = np.zeros((n, k), bool)
    prop = np.full((n, k), np.nan)
    item_ids[rows, cols] = np.asarray(imp["item_id"], np.int64)
    clicks[rows, cols] = np.asarray(imp["clicked"], bool)
    p = imp["propensity"]
    prop[rows, cols] = np.ma.filled(p.astype(float), np.nan) if np.ma.isMaskedArray(p) else np.asarray(p, float)
    cand_matrix = candidate_matrix(ids, *cand) if cand is not None else None
    return LoggedPages(ids, np.asarray(s["unit_id"], object), np.asarray(s["query"], object), item_ids, clicks, prop,
                       cand_matrix)


def ranker_pages(ranker: Ranker, catalog: Catalog, logged: LoggedPages, k: int | None = None,
                 batch_size: int = 8192) -> np.ndarray:
    """(n, k) item ids the fitted ``ranker`` shows on each logged session's candidates (-1 = none)."""
    if logged.candidates is None:
        raise ValueError("logged pages carry no candidates; load them with candidates=True")
    k = k or logged.item_ids.shape[1]
    out = np.full((len(logged), k), -1, np.int64)
    for lo in range(0, len(logged), batch_size):
        hi = min(len(logged), lo + batch_size)
        cand_rows = catalog.rows(logged.candidates[lo:hi])
        batch = CandidateBatch(logged.session_ids[lo:hi], list(logged.queries[lo:hi]), cand_rows)
        shown = rank(ranker.score(batch), cand_rows, k)
        out[lo:hi] = np.where(shown >= 0, catalog.item_ids[np.maximum(shown, 0)], -1)
    return out


# --------------------------------------------------------------------------------------------
# click-model baseline
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


# --------------------------------------------------------------------------------------------
# estimators
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One estimator's estimate of the target's clicks per session, per position and item CTR."""

    estimator: str
    clicks_per_session: float
    se: float
    ci: tuple[float, float]
    per_position: np.ndarray  # (k,) CTR at each position
    per_position_se: np.ndarray  # (k,)
    ctr: float  # item CTR = clicks per session / mean target page length
    ctr_ci: tuple[float, float]


@dataclass(frozen=True)
class WeightDiagnostics:
    n: int
    ess: np.ndarray  # (k,) Kish effective sample size per position
    match_rate: np.ndarray  # (k,) of the sessions that logged position k, the share whose item there is the target's
    max_weight: float
    max_weight_share: np.ndarray  # (k,) max_i w_ik / sum_i w_ik
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

    def __getitem__(self, name: str) -> Estimate:
        return self.estimates[name]

    def rows(self) -> list[dict]:
        """One plain dict per estimator (for tables and JSON)."""
        return [{"estimator": e.estimator, "clicks_per_session": e.clicks_per_session, "se": e.se,
                 "ci_low": e.ci[0], "ci_high": e.ci[1], "ctr": e.ctr, "ctr_ci_low": e.ctr_ci[0],
                 "ctr_ci_high": e.ctr_ci[1], "ess_min": self.weights.ess_min, "n": self.weights.n}
                for e in self.estimates.values()]


def kish_ess(weights: np.ndarray, axis: int = 0) -> np.ndarray:
    """Kish's effective sample size (sum w)^2 / sum w^2 along ``axis`` (0 where all weights are 0)."""
    w = np.asarray(weights, dtype=float)
    s, s2 = w.sum(axis=axis), (w * w).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s2 > 0, s * s / np.where(s2 > 0, s2, 1.0), 0.0)


def ip_weights(logged_items: np.ndarray, propensity: np.ndarray, target_items: np.ndarray) -> np.ndarray:
    """(n, k) item-position importance weights 1[logged item = target item] / logged propensity."""
    match = (logged_items == target_items) & (target_items >= 0)
    p = np.where(match, propensity, 1.0)
    if np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("a logged item the target also shows has no positive propensity")
    return np.where(match, 1.0 / p, 0.0)


def evaluate_pages(logged_items: np.ndarray, clicks: np.ndarray, propensity: np.ndarray, target_items: np.ndarray,
                   baseline: np.ndarray | None = None, *, alpha: float = 0.05, min_ess: float = DEFAULT_MIN_ESS,
                   max_weight_share: float = DEFAULT_MAX_WEIGHT_SHARE, warn: bool = True) -> OPEResult:
    """IPS, SNIPS (and DR, DM when ``baseline`` is given) of the target pages' clicks; arrays (n, k).

    ``baseline[i, k]``: a model's P(click at k) for the target page of session i (its item t_ik).
    """
    clicks = np.asarray(clicks, dtype=float)
    n, _ = clicks.shape
    if n < 2:
        raise ValueError("off-policy estimation needs at least 2 sessions")
    w = ip_weights(logged_items, propensity, target_items)
    z = float(norm.ppf(1 - alpha / 2))
    page_len = float((target_items >= 0).sum(axis=1).mean())
    wc = w * clicks
    influence: dict[str, np.ndarray] = {"ips": wc}  # (n, k) per-session influence values, mean = estimate
    sum_w = w.sum(axis=0)
    w_bar = sum_w / n
    with np.errstate(invalid="ignore", divide="ignore"):
        snips_k = np.where(sum_w > 0, wc.sum(axis=0) / np.where(sum_w > 0, sum_w, 1.0), 0.0)
        # delta method for the ratio: psi_ik = V_k + (w c - V_k w) / w_bar_k, mean = V_k
        lin = np.where(w_bar > 0, (wc - snips_k * w) / np.where(w_bar > 0, w_bar, 1.0), 0.0)
    influence["snips"] = snips_k + lin
    if baseline is not None:
        q = np.where(target_items >= 0, np.asarray(baseline, dtype=float), 0.0)
        influence["dr"] = q + w * (clicks - q)
        influence["dm"] = q
    estimates = {}
    for name, psi in influence.items():
        per_pos = psi.mean(axis=0)
        per_pos_se = psi.std(axis=0, ddof=1) / np.sqrt(n)
        total = psi.sum(axis=1)
        value, se = float(total.mean()), float(total.std(ddof=1) / np.sqrt(n))
        ci = (value - z * se, value + z * se)
        estimates[name] = Estimate(name, value, se, ci, per_pos, per_pos_se, value / page_len,
                                   (ci[0] / page_len, ci[1] / page_len))
    diag = weight_diagnostics(w, logged_items, min_ess, max_weight_share, target_items)
    if warn and diag.exploded:
        warnings.warn("off-policy weights explode: " + "; ".join(diag.reasons), WeightExplosionWarning, stacklevel=2)
    return OPEResult(estimates, diag, alpha)


def weight_diagnostics(w: np.ndarray, logged_items: np.ndarray, min_ess: float = DEFAULT_MIN_ESS,
                       max_weight_share: float = DEFAULT_MAX_WEIGHT_SHARE,
                       target_items: np.ndarray | None = None) -> WeightDiagnostics:
    n, k = w.shape
    logged = logged_items >= 0  # a position a partial page did not log (-1) is no match, even against -1
    match = logged & (logged_items == target_items) if target_items is not None else logged
    with np.errstate(invalid="ignore", divide="ignore"):
        match_rate = np.where(logged.any(axis=0), match.sum(axis=0) / np.maximum(logged.sum(axis=0), 1), np.nan)
    ess = kish_ess(w, axis=0)
    sum_w = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(sum_w > 0, w.max(axis=0) / np.where(sum_w > 0, sum_w, 1.0), np.inf)
    shows = (target_items >= 0).any(axis=0) if target_items is not None else np.ones(k, bool)
    reasons = []
    unsupported = np.flatnonzero(shows & (sum_w == 0))
    if len(unsupported):
        reasons.append(f"no logged support at positions {(unsupported + 1).tolist()}")
    low = np.flatnonzero(shows & (sum_w > 0) & (ess < min_ess))
    if len(low):
        reasons.append(f"ESS {ess[low].min():.1f} < {min_ess:g} at positions {(low + 1).tolist()}")
    heavy = np.flatnonzero(shows & (sum_w > 0) & (share > max_weight_share))
    if len(heavy):
        reasons.append(f"one session holds {share[heavy].max():.1%} (> {max_weight_share:.1%}) of the weight "
                       f"at positions {(heavy + 1).tolist()}")
    return WeightDiagnostics(n, ess, match_rate, float(w.max()) if w.size else 0.0, share,
                             bool(reasons), reasons)


def evaluate_ranker(logged: LoggedPages, target_items: np.ndarray, click_model: ClickModel | None = None,
                    vocab: QueryVocab | None = None, **kwargs) -> OPEResult:
    """Off-policy estimates of the pages ``target_items`` (e.g. :func:`ranker_pages`) on ``logged``.

    With a fitted ``click_model`` (and its query ``vocab``) the DR and DM estimates use its
    predictions for the target pages as the baseline.
    """
    if np.isnan(np.where(logged.item_ids >= 0, logged.propensity, 0.0)).any():
        raise InputError("impressions.propensity is null for logged items: off-policy estimation needs the "
                         "logging policy's propensities")
    baseline = None
    if click_model is not None:
        baseline = click_model_baseline(click_model, vocab or {}, logged.queries, target_items)
    return evaluate_pages(logged.item_ids, logged.clicks, logged.propensity, target_items, baseline, **kwargs)
