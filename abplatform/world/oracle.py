"""The synthetic world's true users and raters, behind the replay's interfaces.

The pipeline hands these to the replay when the logs come from the world: the oracle users answer
pages with the world's hidden behaviour model (to check how good the fitted users' prediction is),
and the raters judge a sample of the replayed pages, as manual evaluation would.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from abplatform.replay.behaviour import Encoded, Responses
from abplatform.world.generate import judge, unit_rows
from abplatform.world.truth import WorldTruth


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
                     shown_rows)
