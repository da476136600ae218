"""The world's online A/B log (``abplatform world export-ab``): an oracle replay of the world written with
foreign column names, which the shipped online experiment's mapping reads back."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import yaml

from abplatform.dataset import Dataset
from abplatform.replay import replay
from abplatform.validate import validate_dataset
from abplatform.world.export import ONLINE_MAPPING, export_online_log
from tests.conftest import replay_spec

REPO = Path(__file__).resolve().parents[2]


def _sorted(t):
    keys = [c for c in ("session_id", "position", "query", "item_id") if c in t.column_names]
    return t.sort_by([(k, "ascending") for k in keys])


def test_export_is_the_oracle_replay_under_foreign_names(small_world, tmp_path):
    out = export_online_log(small_world, tmp_path / "ab")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in ONLINE_MAPPING)
    assert [p.name for p in tmp_path.iterdir()] == ["ab"]  # the scratch replay is gone
    direct = replay(Dataset(small_world), replay_spec(small_world, salt="online-ab", seed=2024, batch_size=8192),
                    tmp_path / "direct").path
    for table, mapping in ONLINE_MAPPING.items():
        exported = pq.read_table(out / f"{table}.parquet")
        back = {v: k for k, v in mapping.items()}
        exported = exported.rename_columns([back.get(c, c) for c in exported.column_names])
        expected = pq.read_table(direct / table)
        assert exported.column_names == expected.column_names, table
        assert _sorted(exported).equals(_sorted(expected)), table
    arms = set(pq.read_table(out / "sessions.parquet")["variant"].to_pylist())
    assert arms == {"control", "treatment"}


def test_the_shipped_online_experiment_reads_the_export(small_world, tmp_path):
    out = export_online_log(small_world, tmp_path / "ab")
    exp = yaml.safe_load((REPO / "experiments" / "onesearch_online_ab.yaml").read_text())
    assert exp["data"]["mapping"] == ONLINE_MAPPING
    counts = validate_dataset(Dataset(out, mapping=exp["data"]["mapping"]), require_arm=True)
    sessions = pq.read_table(out / "sessions.parquet").num_rows
    assert counts["sessions"] == sessions > 0 and counts["impressions"] == 10 * sessions
