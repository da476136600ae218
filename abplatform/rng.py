"""Counter-based randomness keyed by (seed, key, stream, column).

Every random number the simulator draws is a pure function of the seed, an entity key (session
id, user id) and a small stream number, so a result never depends on batch size, worker count or
engine: the same (seed, key, stream, column) always gives the same uniform. The mixer is
SplitMix64's finaliser (Steele, Lea & Flood 2014), applied to a combination of the inputs.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

import numpy as np


class Stream(IntEnum):
    """Every stream number the platform draws from, in one place, so no two draws share one."""

    CLICK = 11  # a user's click uniforms, one per position (world oracle and fitted users alike)
    PURCHASE = 12
    ORDERS = 13
    STOP = 14  # the cascade user's stop-after-click draw
    RATER = 15  # the raters' page-judgement noise
    LOGGING = 21  # the logging policy's sampled pages
    LABEL = 22  # which pages the raters judge
    GRADE = 23  # the raters' per-pair grade noise
    INTERLEAVE_COIN = 31  # team-draft's coin: which ranker picks first
    HELD_OUT = 41  # the click models' held-out sessions

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_POW_53 = float(2**53)


U64 = TypeVar("U64", np.ndarray, np.uint64)  # an array of keys, or one scalar


def _mix(z: U64) -> U64:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash64(seed: int, keys: np.ndarray, stream: int = 0) -> np.ndarray:
    """A 64-bit hash of (seed, key, stream) per key."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + np.uint64(stream) * _M2)
        return _mix(np.asarray(keys).astype(np.uint64) * _GOLDEN ^ base)


def uniforms(seed: int, keys: np.ndarray, stream: int, ncols: int = 1) -> np.ndarray:
    """Uniforms on [0, 1) of shape (len(keys), ncols); row i depends only on (seed, keys[i], stream)."""
    h = hash64(seed, keys, stream)
    cols = np.arange(1, ncols + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = _mix(h[:, None] + cols[None, :] * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) / _TWO_POW_53


def normals(seed: int, keys: np.ndarray, stream: int, ncols: int = 1) -> np.ndarray:
    """Standard normals by the inverse CDF of :func:`uniforms` (same keying guarantees)."""
    from scipy.special import ndtri

    u = uniforms(seed, keys, stream, ncols)
    return ndtri(np.clip(u, 1e-16, 1 - 1e-16))
