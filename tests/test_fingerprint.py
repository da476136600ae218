"""The data fingerprint hashes every file a dataset is read from: CSV logs too (every all-CSV dataset
used to get the same hash from 0 files), and one changed click changes it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from abplatform.dataset import Dataset
from abplatform.pipeline import data_fingerprint

LOG = Path(__file__).parents[1] / "experiments" / "data" / "onesearch_online_ab"


def _as_csv(folder: Path) -> Path:
    folder.mkdir()
    con = duckdb.connect()
    for table in ("sessions", "impressions"):
        con.execute(f"COPY (SELECT * FROM read_parquet('{LOG / table}.parquet') ORDER BY ALL) "
                    f"TO '{folder / table}.csv' (HEADER)")
    con.close()
    return folder


def _fingerprint(folder: Path):
    mapping = {"sessions": {"session_id": "sid", "unit_id": "user_id", "ts": "event_time"}}
    return data_fingerprint(Dataset(folder, mapping=mapping), {"sessions": 1})


def test_csv_files_are_hashed_and_one_click_changes_the_hash(tmp_path):
    a = _fingerprint(_as_csv(tmp_path / "a"))
    b_dir = _as_csv(tmp_path / "b")
    assert a.files == 2 and _fingerprint(b_dir).hash == a.hash  # same bytes, same hash, another folder
    lines = (b_dir / "impressions.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    click = header.index("click")
    row[click] = "false" if row[click] == "true" else "true"
    (b_dir / "impressions.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    assert _fingerprint(b_dir).hash != a.hash


def test_only_the_files_read_are_hashed(tmp_path):
    folder = _as_csv(tmp_path / "log")
    before = _fingerprint(folder)
    (folder / "notes.parquet").write_bytes(b"not a table of the dataset")
    assert _fingerprint(folder).hash == before.hash
    assert [p.name for p in Dataset(folder).input_files()] == ["impressions.csv", "sessions.csv"]
