"""Click models fitted on logs (PBM, cascade, DBN, UBM), purchase and order models, and their registry.

Every click model: ``make_click_model(name).fit(log, features=None)``, then
``click_probabilities(query_ids, item_ids)``, ``sample(query_ids, item_ids, u)``,
``log_likelihood(log)`` and ``perplexity(log)``; see :mod:`.base`.
"""

from __future__ import annotations

from .backoff import BackedOffRate, PairIndex
from .base import ClickModel
from .cascade import Cascade
from .data import NO_ITEM, ClickLog, FeatureFn, QueryVocab, click_log_from_duckdb
from .dbn import DBN
from .pbm import PBM
from .purchase import PurchaseModel
from .ubm import UBM

CLICK_MODELS: dict[str, type[ClickModel]] = {m.name: m for m in (PBM, Cascade, DBN, UBM)}


def make_click_model(name: str, **params) -> ClickModel:
    """A new, unfitted click model: ``name`` is one of ``pbm``, ``cascade``, ``dbn``, ``ubm``."""
    try:
        model = CLICK_MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown click model {name!r}; choose one of {sorted(CLICK_MODELS)}") from None
    return model(**params)


__all__ = [
    "CLICK_MODELS", "DBN", "NO_ITEM", "PBM", "UBM", "BackedOffRate", "Cascade", "ClickLog", "ClickModel",
    "FeatureFn", "PairIndex", "PurchaseModel", "QueryVocab", "click_log_from_duckdb", "make_click_model",
]
