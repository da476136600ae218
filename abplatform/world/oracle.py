"""The synthetic world's true users and raters, behind the replay's interfaces.

The pipeline hands these to the replay when the logs come from the world: the oracle users answer
pages with the world's hidden behaviour model (to check how good the fitted users' prediction is),
and the raters judge a sample of the replayed pages, as manual evaluation would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from abplatform.dataset import Dataset
from abplatform.rankers import Catalog
from abplatform.replay.behaviour import Encoded, Responses
from abplatform.world.generate import judge, unit_rows
from abplatform.world.truth import WorldTruth, load_truth


class OracleBehaviour:
    """The synthetic world's true behaviour model (needs the world's hidden truth)."""

    def __init__(self, truth: WorldTruth):
        self.truth = truth

    def respond(self, seed, session_ids, queries, unit_ids, shown_rows) -> Responses:
        queries, units = Encoded.of(queries), Encoded.of(unit_ids)
        return self.truth.model.respond(seed, session_ids, queries.per_value(self.truth.intents).take(queries.codes),
                                        unit_rows(units.values)[units.codes], shown_rows)


class WorldRaters:
    """The world's raters: a grade per shown (query, item) and a page verdict for a sample of pages."""

    def __init__(self, truth: WorldTruth):
        self.truth = truth

    def judge(self, session_ids: np.ndarray, queries: Encoded, shown_rows: np.ndarray) -> tuple[pa.Table, pa.Table]:
        intents = queries.per_value(self.truth.intents).take(queries.codes)  # the oracle's lookups, once per query
        return judge(self.truth.seed, self.truth.label_rate, session_ids, queries, intents, self.truth.items,
                     shown_rows, self.truth.raters)


def oracle_users_and_raters(world_dir: Path) -> tuple[OracleBehaviour, WorldRaters]:
    """The world's true users and its raters, for a replay of the world in ``world_dir``."""
    truth = load_truth(world_dir)
    return OracleBehaviour(truth), WorldRaters(truth)


def oracle_click_probabilities(world_dir: str | Path, logged, pages: np.ndarray) -> np.ndarray:
    """(n, k) exact P(click) per position of ``pages`` for the sessions of ``logged`` (an
    :class:`abplatform.offline.ope.LoggedPages`) under the world's position-based behaviour model:
    the truth the off-policy estimates are checked against."""
    return OracleClicks(world_dir).probabilities(logged.unit_ids, logged.queries, pages)


class OracleClicks:
    """Clicks from the synthetic world's true behaviour model (its own mode: pbm or cascade)."""

    def __init__(self, world_dir: str | Path):
        self.truth = load_truth(Path(world_dir))
        self.catalog = Catalog.from_dataset(Dataset(world_dir))

    def probabilities(self, unit_ids: np.ndarray, queries: np.ndarray, pages: np.ndarray) -> np.ndarray:
        """(n, k) exact marginal P(click) per position under position-based examination."""
        return self.truth.model.click_probabilities(self.truth.intents(list(queries)), unit_rows(unit_ids),
                                                    self.catalog.rows(pages))

    def __call__(self, unit_ids: np.ndarray, queries: np.ndarray, session_ids: np.ndarray, pages: np.ndarray,
                 seed: int) -> np.ndarray:
        resp = self.truth.model.respond(seed, np.asarray(session_ids), self.truth.intents(list(queries)),
                                        unit_rows(unit_ids), self.catalog.rows(pages))
        return resp.clicked
