"""Named presets of the synthetic world: its calibration knobs (and the ranker settings a preset's story needs).

* ``classic`` — the world as it always was: every :class:`~abplatform.world.generate.WorldParams` knob at its
  default (what benchmarks written before presets existed measured).
* ``onesearch`` — calibrated so that, replayed with the world's true users, the built-in rankers' relative
  lifts land near OneSearch-V2's published online A/B results (V2 over V1: item CTR +3.98%, buyers +3.05%, orders
  +2.11%, page good rate +1.65%, relevance +1.37%; V1 over the cascade: item CTR +1.67%, buyers +2.40%, orders
  +3.22%). It fixes its catalog (``catalog_seed``), as a marketplace has one: the experiment's seed draws the users,
  their sessions and responses on the same items (another catalog moves the purchase-driven lifts by several
  points, more than the calibration's goal). It also sets its raters' scale (stricter than the classic raters':
  the published relevance and page good figures are judgements on a scale nobody publishes).
  ``benchmarks/calibrate_world.py`` searched the knobs on the mean of two seeds at the demo's size
  (:data:`CALIBRATION_SIZE`: 140,000 users, 14 days, 7 pre-period days, 20,000 items; relevance measured as the
  scorecard measures it, over labelled pairs only; V1's buyer conversion kept near 35%, for the demo's power);
  ``benchmarks/calibration.md`` has the search, how far each figure landed on fresh seeds and the check through
  the real pipeline. At another size the lifts move (the rankers learn from a larger
  or smaller pre-period).

A preset sets the world's knobs only; the size, seed and behaviour come from the experiment
(``data.world``), as without a preset. The ranker settings (:attr:`WorldPreset.rankers`) are not applied
behind the experiment's back: an experiment that wants them gives them as its arms' ``params:``
(``experiments/onesearch_v2_vs_v1.yaml`` does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from abplatform.errors import InputError
from abplatform.vocabulary import WORLD_PRESET_NAMES
from abplatform.world.generate import WorldParams

#: The world size the onesearch preset was searched and its lifts are measured at: the demo's (``data.world``'s
#: defaults but 140,000 users; the fourth calibration's search ran at 120,000, ``benchmarks/calibration.md``).
CALIBRATION_SIZE = {"users": 140_000, "days": 14, "pre_days": 7, "items": 20_000}
#: What an experiment's ``data.world`` gives besides the preset (its size, seed and users' behaviour).
OVERRIDES = ("users", "days", "pre_days", "items", "seed", "behaviour")


@dataclass(frozen=True)
class WorldPreset:
    description: str
    knobs: Mapping[str, Any] = field(default_factory=dict)  # WorldParams fields the preset sets
    rankers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # ranker name -> constructor params


WORLD_PRESETS: dict[str, WorldPreset] = {
    "classic": WorldPreset("The original world: every knob at its default."),
    "onesearch": WorldPreset(
        "Calibrated to OneSearch-V2's published online lifts (benchmarks/calibration.md).",
        knobs={
            "catalog_seed": 7,
            "complexity_shares": (0.7617, 0.0183, 0.22, 0.0),
            "synonym_rate": 0.0,
            "pre_logging_epsilon": 0.6635,
            "popularity_quality": 0.7054,
            "attraction_quality": 0.7106,
            "attraction_appeal": 0.6093,
            "activity_sigma": 0.3606,
            "purchase_intercept": -6.0092,
            "purchase_quality": 0.136,
            # extra orders grow with quality up to 3.15 (about the mean quality of what is bought), then saturate
            "orders_quality": 0.4869,
            "orders_quality_cap": 3.1531,
            # the raters: a parent category's other leaf is off-topic (grade 0), and a page is good from a mean
            # top-5 grade of about 2.3
            "grade_cuts": (0.26, 0.45, 0.8),
            "page_good_threshold": 2.3374,
        },
        rankers={
            # the legacy cascade's lexical retrieval returns one page's worth of BM25 matches (its recall limit)
            "cascade": {"retrieval_size": 10, "preranking_size": 10},
            # V2's relevance term weighted down (0.5: off the threshold near 0.3 below which its pages leave the
            # intended category abruptly) so its click and purchase priors mix in other categories' items; its
            # purchase term off (the search took it to 0: it moves V2's order lift against its CTR lift)
            "v2": {"w_rel": 0.5285, "w_purchase": 0.0},
            # V1's CTR prior a shade stronger than its default (1.0)
            "v1": {"w_ctr": 1.0301},
        },
    ),
}
assert tuple(WORLD_PRESETS) == WORLD_PRESET_NAMES  # the config checks names without importing the world


def preset_world_params(preset: str | None = None, **overrides: Any) -> WorldParams:
    """The world of ``preset`` (None: the classic world's defaults) with ``overrides`` — any of
    :data:`OVERRIDES` — for its size, seed and behaviour."""
    name = preset or "classic"
    if name not in WORLD_PRESETS:
        raise InputError(f"unknown world preset {name!r} (expected one of {', '.join(WORLD_PRESETS)})")
    extra = sorted(set(overrides) - set(OVERRIDES))
    if extra:
        raise InputError(f"world preset {name!r}: {extra[0]!r} is not a size, seed or behaviour setting "
                         f"(expected one of {', '.join(OVERRIDES)})")
    return dataclasses.replace(WorldParams(**WORLD_PRESETS[name].knobs), **overrides)


def preset_ranker_params(preset: str | None, ranker: str) -> dict[str, Any]:
    """The constructor params ``preset`` documents for the built-in ``ranker`` ({} when none)."""
    return dict(WORLD_PRESETS[preset or "classic"].rankers.get(ranker, {}))
