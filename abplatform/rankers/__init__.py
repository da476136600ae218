"""Rankers: the built-in V1, V2 and cascade, and user classes named by dotted path (``pkg.module:Class``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from abplatform.errors import InputError
from abplatform.rankers.base import CandidateBatch, Catalog, Ranker, candidate_matrix, rank
from abplatform.rankers.cascade import CascadeRanker
from abplatform.rankers.precomputed import PrecomputedRanker
from abplatform.rankers.v1 import V1Ranker
from abplatform.rankers.v2 import V2Ranker
from abplatform.vocabulary import BUILTIN_RANKER_NAMES

BUILTIN_RANKERS = {"v1": V1Ranker, "v2": V2Ranker, "cascade": CascadeRanker}
assert tuple(BUILTIN_RANKERS) == BUILTIN_RANKER_NAMES  # the config checks names without importing rankers

__all__ = ["BUILTIN_RANKERS", "CandidateBatch", "CascadeRanker", "Catalog", "PrecomputedRanker", "Ranker", "V1Ranker",
           "V2Ranker", "candidate_matrix", "load_ranker_class", "make_ranker", "rank"]


def make_ranker(name: str, params: Mapping[str, Any] | None = None, *, where: str = "ranker") -> Ranker:
    """Build an unfitted ranker: a built-in name, ``package.module:Class`` or ``rankings:FILE.parquet``."""
    params = dict(params or {})
    if name.startswith("rankings:"):
        return PrecomputedRanker(name.removeprefix("rankings:"))
    cls: Any
    if ":" in name:
        cls = load_ranker_class(name, where=where)
    else:
        cls = BUILTIN_RANKERS.get(name)
        if cls is None:
            known = ", ".join(sorted(BUILTIN_RANKERS))
            raise InputError(f"{where}: unknown ranker {name!r} (expected one of {known}, or package.module:Class)")
    try:
        ranker = cls(**params)
    except TypeError as e:
        raise InputError(f"{where}: bad parameters for ranker {name!r} ({e})") from None
    if not isinstance(ranker, Ranker):
        raise InputError(f"{where}: {name!r} is not a ranker (needs name, fit(dataset, catalog) and score(batch))")
    return ranker


def load_ranker_class(name: str, *, where: str = "ranker") -> type:
    """The class named by ``package.module:Class``, checked before anything of it is called: it must be a
    class with callable ``fit`` and ``score`` (``os:system`` or a module constant is refused, not run)."""
    module_name, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise InputError(f"{where}: cannot load ranker class {name!r} ({e})") from None
    expected = "a ranker is a class with fit(dataset, catalog) and score(batch) methods"
    if not isinstance(obj, type):
        kind = "a function" if callable(obj) else f"a {type(obj).__name__} value"
        raise InputError(f"{where}: {name!r} is not a ranker class but {kind}; {expected}")
    missing = [m for m in ("fit", "score") if not callable(getattr(obj, m, None))]
    if missing:
        raise InputError(f"{where}: {name!r} is not a ranker (class {obj.__name__} has no "
                         f"{' or '.join(missing)} method); {expected}")
    return obj
