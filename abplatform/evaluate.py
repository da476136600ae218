"""An experiment's off-policy evaluation (its ``offline_policy`` section): one arm's policy estimated on
the rows another arm logged with propensities, with the target arm's own logged value beside it.

The target is a probability table (a stochastic policy, :func:`~abplatform.offline.target_policy.load_target_policy`)
or the target arm's ranker, fitted on the dataset and ranking each logged session's candidates
(deterministic pages). DR and DM use a click model fitted on the log as their reward model. The
estimators and their estimand are :mod:`abplatform.offline.ope`'s (obp's, per logged row).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from abplatform.config import Experiment, OfflinePolicy, resolve_ranker, setting_location
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.offline.ope import (
    LoggedRows,
    click_model_rewards,
    fit_click_model,
    load_logged_pages,
    load_logged_rows,
    ranker_pages,
)
from abplatform.offline.policy_evaluation import evaluate_policy, on_policy_value
from abplatform.offline.target_policy import DeterministicPages, StochasticPolicy, TargetPolicy, load_target_policy
from abplatform.rankers import Catalog, make_ranker
from abplatform.report.offline_policy import OfflinePolicyEvaluation


def _session_values(dataset: Dataset, column: str, session_ids: np.ndarray) -> np.ndarray:
    """A sessions column for each of ``session_ids`` (sorted ascending)."""
    con = dataset.connect()
    try:
        got = con.execute(f"SELECT session_id, CAST({column} AS VARCHAR) AS v FROM sessions "
                          "ORDER BY session_id").fetchnumpy()
    finally:
        con.close()
    ids = np.asarray(got["session_id"], np.int64)
    values = np.asarray(got["v"], dtype=object)
    at = np.clip(np.searchsorted(ids, session_ids), 0, max(len(ids) - 1, 0))
    if len(ids) == 0:
        return np.full(len(session_ids), None, dtype=object)
    return np.where(ids[at] == session_ids, values[at], np.full(len(session_ids), None, dtype=object))


def target_policy_table(cfg: OfflinePolicy, config_path: Path) -> StochasticPolicy:
    """The target's probability table (``offline_policy.policy``, relative to the experiment file), checked."""
    assert cfg.policy is not None
    path = Path(cfg.policy) if Path(cfg.policy).is_absolute() else config_path.parent / cfg.policy
    if not path.is_file():
        raise InputError(f"{setting_location(config_path, ('offline_policy', 'policy'))}: {cfg.policy} does not exist")
    return load_target_policy(path, description=f"arm {cfg.target}: the policy table {cfg.policy}")


def _target(cfg: OfflinePolicy, exp: Experiment, config_path: Path, dataset: Dataset, rows: LoggedRows,
            k: int) -> TargetPolicy:
    if cfg.policy is not None:
        return target_policy_table(cfg, config_path)
    arm = next(a for a in exp.arms if a.name == cfg.target)
    assert arm.ranker is not None  # the config refuses a target with neither a ranker nor a table
    catalog = Catalog.from_dataset(dataset)
    ranker = make_ranker(resolve_ranker(arm.ranker, config_path), arm.params,
                         where=f"{config_path}: arms").fit(dataset, catalog)
    logged = load_logged_pages(dataset, k=k)
    keep = np.isin(logged.session_ids, rows.session_ids)
    logged = logged.subset(np.flatnonzero(keep))
    return DeterministicPages(logged.session_ids, ranker_pages(ranker, catalog, logged, k),
                              description=f"arm {cfg.target}: ranker {arm.ranker} (deterministic pages)")


def evaluate_offline_policy(exp: Experiment, config_path: Path, dataset: Dataset) -> OfflinePolicyEvaluation:
    """The experiment's ``offline_policy`` analysis on ``dataset`` (already validated)."""
    cfg = exp.offline_policy
    if cfg is None:
        raise InputError(f"{config_path}: no offline_policy section (what to evaluate, on which arm's log)")
    k = exp.data.slots or exp.simulation.page_size
    rows = load_logged_rows(dataset, context=cfg.context)
    arms = _session_values(dataset, "arm", rows.session_ids)
    own = arms == cfg.target
    # default: every row of another arm; a log without arms (offline: the world's) is all logged
    has_arm = arms != None  # noqa: E711 (elementwise)
    logged = (arms == cfg.logged) if cfg.logged is not None else (~own & has_arm if has_arm.any() else ~own)
    if not logged.any():
        raise InputError(f"{config_path}: offline_policy: no logged rows of "
                         + (f"arm {cfg.logged!r}" if cfg.logged else f"an arm other than {cfg.target!r}"))
    log = rows.subset(np.flatnonzero(logged))
    reward = None
    if cfg.reward_model is not None and {"dr", "dm"} & set(cfg.estimators):
        model, vocab = fit_click_model(dataset, cfg.reward_model, k=k)
        queries = _session_values(dataset, "query", log.session_ids)
        reward = click_model_rewards(model, vocab, np.where(queries == None, "", queries))  # noqa: E711
    on_policy = on_policy_value(rows.rewards[own], rows.session_ids[own], exp.statistics.alpha) if own.any() else None
    result = evaluate_policy(log, _target(cfg, exp, config_path, dataset, log, k), reward,
                             alpha=exp.statistics.alpha, min_ess=cfg.min_ess, max_weight_share=cfg.max_weight_share,
                             warn=False, on_policy=on_policy)
    result.estimates = [e for e in result.estimates if e.estimator in cfg.estimators]
    return result
