"""Replay is deterministic: the same events whatever the batch size or number of workers."""

import pyarrow.parquet as pq
import pytest

import numpy as np

from abplatform.dataset import Dataset
from abplatform.rankers import candidate_matrix
from abplatform.replay import replay
from tests.conftest import replay_spec


def _tables(path):
    return {t: pq.read_table(path / t).sort_by([("session_id", "ascending")] + (
        [("position", "ascending")] if t == "impressions" else []))
        for t in ("sessions", "impressions", "page_labels")} | {"relevance_labels": pq.read_table(path / "relevance_labels")}


@pytest.mark.parametrize("batch_size,workers", [(97, 1), (100_000, 2)])
def test_replay_independent_of_batch_size_and_workers(small_world, small_replay, tmp_path, batch_size, workers):
    spec = replay_spec(small_world, batch_size=batch_size, workers=workers)
    other = replay(Dataset(small_world), spec, tmp_path / "r").path
    a, b = _tables(small_replay), _tables(other)
    for name in a:
        assert a[name].equals(b[name]), name


def test_replay_writes_the_contract(small_replay):
    from abplatform.validate import validate_dataset

    counts = validate_dataset(Dataset(small_replay), require_arm=True)
    assert counts["impressions"] == 10 * counts["sessions"]


def test_a_different_seed_changes_responses_not_rankings(small_world, small_replay, tmp_path):
    spec = replay_spec(small_world, seed=6, batch_size=8192)
    other = replay(Dataset(small_world), spec, tmp_path / "r").path
    a, b = _tables(small_replay)["impressions"], _tables(other)["impressions"]
    assert a["item_id"].equals(b["item_id"])
    assert not a["clicked"].equals(b["clicked"])


def test_candidate_matrix_groups_and_pads():
    m = candidate_matrix(np.array([5, 3, 9]), np.array([3, 5, 3, 5, 5]), np.array([30, 52, 10, 51, 50]))
    assert m.tolist() == [[50, 51, 52], [10, 30, -1], [-1, -1, -1]]
