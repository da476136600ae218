"""Export the synthetic world's "online A/B test" as a log in a foreign schema.

The online truth of the synthetic world is the world's own behaviour model answering each arm's
pages (an oracle replay with its own seed). Written with other column names than the contract's
(as a real logging system would), it exercises the import path: an experiment reads it with
``data.mapping``. ``ONLINE_MAPPING`` is that mapping.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from abplatform.dataset import Dataset
from abplatform.rankers import Catalog, make_ranker
from abplatform.replay import ReplayArm, ReplaySpec, replay
from abplatform.world.oracle import oracle_users_and_raters

ONLINE_MAPPING: dict[str, dict[str, str]] = {
    "sessions": {"session_id": "sid", "unit_id": "user_id", "ts": "event_time", "query": "q",
                 "query_segment": "q_band", "query_complexity": "q_type", "is_new_user": "new_user", "arm": "variant"},
    "impressions": {"session_id": "sid", "position": "rank", "item_id": "sku", "clicked": "click",
                    "purchased": "buy", "orders": "n_orders", "revenue": "gmv", "propensity": "prop"},
    "relevance_labels": {"query": "q", "item_id": "sku", "grade": "label"},
    "page_labels": {"session_id": "sid", "good": "page_ok"},
}
ONLINE_MAPPING["pre_sessions"] = ONLINE_MAPPING["sessions"]
ONLINE_MAPPING["pre_impressions"] = ONLINE_MAPPING["impressions"]


def export_online_log(world_dir: Path, out_dir: Path, control: str = "v1", treatment: str = "v2",
                      salt: str = "online-ab", seed: int = 2024) -> Path:
    """Run the world's online A/B test and write ``<table>.parquet`` files with foreign column names."""
    ds = Dataset(world_dir)
    catalog = Catalog.from_dataset(ds)
    arms = [ReplayArm(name, make_ranker(r).fit(ds, catalog)) for name, r in (("control", control),
                                                                                 ("treatment", treatment))]
    users, raters = oracle_users_and_raters(world_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".replay-", dir=out_dir.parent) as scratch:
        log = Path(scratch) / "log"
        replay(ds, ReplaySpec(arms=arms, salt=salt, seed=seed, behaviour=users, rater=raters), log)
        for table, mapping in ONLINE_MAPPING.items():
            t = pq.read_table(log / table)
            t = t.rename_columns([mapping.get(c, c) for c in t.column_names])
            pq.write_table(t, out_dir / f"{table}.parquet", compression="zstd")
    return out_dir
