"""Calibrating a back-off on held-out logs.

The back-off of a per-pair parameter (:mod:`.backoff`) is a GLM fitted on the pairs of the
training log, but it is used for the pairs the logging policy rarely or never shows — exactly
the pairs a new ranker brings up. A misspecified GLM fitted on the seen pairs need not be
calibrated for those. On the synthetic world, with the model fitted on 80% of the sessions,
the attraction back-off over-predicts the clicks on the held-out 20%'s unseen pairs.

The remedy is recalibration on held-out data (as Platt scaling recalibrates a classifier on a
held-out set): fit the model on a training split of the sessions, then choose one factor
``kappa`` on the back-off, ``b_qu = kappa * GLM(x_qu)``, that maximises the log-likelihood of the
held-out split. Pairs seen in training keep their fitted values, so only the held-out pages'
unseen pairs move the likelihood: ``kappa`` is a maximum-likelihood calibration of the back-off
on the pairs it serves. The final model is then refitted on all sessions with that ``kappa``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize_scalar

from abplatform import rng
from abplatform.rng import Stream

from .backoff import BackedOffRate
from .data import ClickLog

HELD_OUT_SEED = 20240917
KAPPA_BOUNDS = (0.5, 2.0)


def held_out_pages(log: ClickLog, fraction: float = 0.2) -> np.ndarray:
    """(n,) bool: the pages held out, a ``fraction`` of the sessions drawn by a hash of the session id
    (of the row number if the log has no session ids), independent of any other split of the log."""
    keys = log.session_ids if log.session_ids is not None else np.arange(len(log), dtype=np.int64)
    return rng.uniforms(HELD_OUT_SEED, np.asarray(keys, dtype=np.int64), Stream.HELD_OUT)[:, 0] < fraction


def fit_calibration(rate: BackedOffRate, held_out_log_likelihood: Callable[[], float]) -> float:
    """The ``kappa`` in ``KAPPA_BOUNDS`` maximising ``held_out_log_likelihood()`` with ``rate.calibration = kappa``.

    ``rate`` belongs to a model fitted on the training split; its ``calibration`` is set for each
    trial value (this moves the unseen pairs' predictions only) and restored afterwards. Bounded
    Brent search on ``log kappa``.
    """
    before = rate.calibration

    def loss(log_kappa: float) -> float:
        rate.calibration = before * float(np.exp(log_kappa))
        return -held_out_log_likelihood()

    try:
        best = minimize_scalar(loss, bounds=tuple(np.log(KAPPA_BOUNDS)), method="bounded",
                               options={"xatol": 1e-3})
    finally:
        rate.calibration = before
    return before * float(np.exp(best.x))
