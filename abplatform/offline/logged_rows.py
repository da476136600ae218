"""The logged rows off-policy estimators read: one entry per logged impression, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedRows:
    """One entry per logged impression: its session, position (1-based, as logged), item, reward and
    logging propensity (NaN where unknown); ``contexts``: the session's key a per-context target looks up."""

    session_ids: np.ndarray  # (n,) int64
    positions: np.ndarray  # (n,) int64
    item_ids: np.ndarray  # (n,) int64
    rewards: np.ndarray  # (n,) float
    propensity: np.ndarray  # (n,) float
    contexts: np.ndarray | None = None  # (n,)

    def __post_init__(self) -> None:
        n = len(self.session_ids)
        columns = (self.positions, self.item_ids, self.rewards, self.propensity)
        if any(len(c) != n for c in columns) or (self.contexts is not None and len(self.contexts) != n):
            raise ValueError(f"every column of the logged rows must have {n} entries")

    def __len__(self) -> int:
        return len(self.session_ids)

    def subset(self, rows: np.ndarray) -> LoggedRows:
        return LoggedRows(self.session_ids[rows], self.positions[rows], self.item_ids[rows], self.rewards[rows],
                          self.propensity[rows], None if self.contexts is None else self.contexts[rows])
