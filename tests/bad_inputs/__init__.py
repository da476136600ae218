"""A tiny, valid event log in the contract's schema (a few dozen users), written in milliseconds.

The bad-input corpus (``tests/test_bad_inputs.py``) copies it and breaks one thing per case; the
security and property tests use it as a small real dataset. Nothing here is stored on disk in
the repository: every file is generated into a temporary folder by the test that needs it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from abplatform.contract import TABLES

EXPERIMENT_START = datetime(2026, 6, 1, tzinfo=timezone.utc)
PRE_START = EXPERIMENT_START - timedelta(days=7)
QUERIES = [("shoes", "head", "simple"), ("red shoes", "torso", "attribute"),
           ("red leather shoes under 50", "tail", "multi"), ("something for the beach", "tail", "indirect")]


def tiny_tables(users: int = 40, page: int = 5, seed: int = 3, arms: tuple[str, str] = ("control", "treatment"),
                with_arm: bool = True) -> dict[str, pa.Table]:
    """The contract's tables for ``users`` users: 1-3 experiment sessions and 0-2 pre-period sessions each."""
    rng = np.random.default_rng(seed)
    out: dict[str, pa.Table] = {}
    next_sid = 1
    for period, start, lo, hi in (("", EXPERIMENT_START, 1, 4), ("pre_", PRE_START, 0, 3)):
        per_user = rng.integers(lo, hi, size=users)
        unit = np.repeat(np.arange(users), per_user)
        n = len(unit)
        sid = np.arange(next_sid, next_sid + n, dtype=np.int64)
        next_sid += n
        q = rng.integers(0, len(QUERIES), size=n)
        secs = rng.integers(0, 7 * 86400, size=n)
        ts = [start + timedelta(seconds=int(s)) for s in secs]
        arm = [arms[u % 2] if with_arm else None for u in unit]
        out[f"{period}sessions"] = pa.table({
            "session_id": sid, "unit_id": [f"u{u:03d}" for u in unit], "ts": ts,
            "query": [QUERIES[i][0] for i in q], "query_segment": [QUERIES[i][1] for i in q],
            "query_complexity": [QUERIES[i][2] for i in q], "is_new_user": (unit % 5 == 0),
            "arm": arm}, schema=TABLES["sessions"].schema)
        isid = np.repeat(sid, page)
        pos = np.tile(np.arange(1, page + 1, dtype=np.int16), n)
        clicked = rng.random(n * page) < 0.3 / np.sqrt(pos)
        purchased = clicked & (rng.random(n * page) < 0.3)
        orders = np.where(purchased, rng.integers(1, 3, size=n * page), 0).astype(np.int32)
        out[f"{period}impressions"] = pa.table({
            "session_id": isid, "position": pos, "item_id": rng.integers(100, 130, size=n * page).astype(np.int64),
            "clicked": clicked, "purchased": purchased, "orders": orders, "revenue": orders * 19.5,
            "propensity": np.where(rng.random(n * page) < 0.8, 0.5, np.nan), "team": pa.nulls(n * page, pa.string())},
            schema=TABLES["impressions"].schema)
    for imp in ("impressions", "pre_impressions"):  # an unknown propensity is null (NaN is refused)
        out[imp] = out[imp].set_column(
            7, TABLES["impressions"].schema.field("propensity"),
            pa.array([None if np.isnan(p) else p for p in out[imp]["propensity"].to_numpy(zero_copy_only=False)],
                     pa.float64()))
    out["relevance_labels"] = pa.table({
        "query": [q for q, _, _ in QUERIES for _ in range(10)],
        "item_id": np.tile(np.arange(100, 110, dtype=np.int64), len(QUERIES)),
        "grade": rng.integers(0, 4, size=10 * len(QUERIES)).astype(np.int8)}, schema=TABLES["relevance_labels"].schema)
    judged = out["sessions"]["session_id"].to_numpy()[::3]
    out["page_labels"] = pa.table({"session_id": judged, "good": rng.random(len(judged)) < 0.7},
                                  schema=TABLES["page_labels"].schema)
    return out


def write_tiny(path: Path, tables: dict[str, pa.Table] | None = None, **kwargs) -> Path:
    """Write the tiny log as ``path/<table>.parquet`` and return ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    for name, t in (tables or tiny_tables(**kwargs)).items():
        pq.write_table(t, path / f"{name}.parquet")
    return path


EXPERIMENT_YAML = """name: tiny
data: {{path: {path}}}
arms:
  - {{name: control, ranker: v1}}
  - {{name: treatment, ranker: v2}}
segments: [query_segment]
{extra}"""


def tiny_experiment(folder: Path, data: str = "logs", extra: str = "", name: str = "tiny.yaml") -> Path:
    f = folder / name
    f.write_text(EXPERIMENT_YAML.format(path=data, extra=extra))
    return f
