"""Deterministic assignment of randomisation units to arms.

Each unit's bucket is u = blake2b-64(salt ":" unit_id) / 2^64, a uniform on [0, 1) that no
engine's own hash function is involved in; the unit goes to the first arm whose cumulative
weight exceeds u. The same salt always gives the same arms; a different salt gives an
independent split. Assignments are stored with the events and never re-derived elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def bucket(salt: str, unit_ids: Sequence[str]) -> np.ndarray:
    """Uniform [0, 1) bucket per unit id."""
    prefix = salt.encode() + b":"
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + u.encode(), digest_size=8).digest(), "big") / 2.0**64
         for u in unit_ids),
        dtype=np.float64,
        count=len(unit_ids),
    )


def assign(salt: str, unit_ids: Sequence[str], weights: Sequence[float]) -> np.ndarray:
    """Index of the arm of each unit, for arms with the given (positive) weights."""
    w = np.asarray(weights, dtype=float)
    edges = np.cumsum(w / w.sum())
    edges[-1] = 1.0
    first: dict[str, int] = {}  # each distinct unit hashed once
    inverse = np.fromiter((first.setdefault(str(u), len(first)) for u in unit_ids), np.int64, len(unit_ids))
    return np.searchsorted(edges, bucket(salt, list(first)), side="right")[inverse]
