"""Dataset shapes a real log may have, on tiny CSV logs: arms from file patterns, sessions derived from
impressions with per-impression times, a unit column with missing values or a keyword name."""

from __future__ import annotations

from pathlib import Path

import pytest

from abplatform.config import experiment_problems
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.validate import validate_dataset

HEADER = "sess,visitor,bucket,served_at,slot,product,clk,grp\n"


def _write(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(r + "\n" for r in rows))


def _rows(first_session: int, bucket: str = "", grp: str = "g1", times: tuple[str, str] = ("00:00:01", "00:00:02")):
    return [f"{first_session},v{first_session},{bucket},2025-03-03 {times[0]}+00,1,10,1,{grp}",
            f"{first_session},v{first_session},{bucket},2025-03-03 {times[1]}+00,2,11,0,{grp}"]


MAPPING = {"sessions": {"unit_id": "visitor", "ts": "served_at", "arm": "bucket"},
           "impressions": {"session_id": "sess", "position": "slot", "item_id": "product",
                           "clicked": {"expression": "clk = 1"}}}


#: for logs whose arm comes from the file
FILE_ARMS = {**MAPPING, "sessions": {k: v for k, v in MAPPING["sessions"].items() if k != "arm"}}
PROFILE = {("sessions", "session_id"): "keys", ("impressions", "session_id"): "keys",
           ("impressions", "position"): "keys", ("impressions", "item_id"): "keys",
           ("impressions", "clicked"): "metric item_ctr", ("sessions", "arm"): "an online log"}


def _arms(ds: Dataset) -> dict[int, str]:
    con = ds.connect()
    try:
        return dict(con.execute("SELECT session_id, arm FROM sessions ORDER BY session_id").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize(("pattern", "files", "expected"), [
    ("logs/**/{arm}.csv", {"logs/control.csv": 1, "logs/deep/er/treatment.csv": 2}, {1: "control", 2: "treatment"}),
    ("logs/{arm}_*.csv", {"logs/control_v2_1.csv": 1, "logs/treatment_1.csv": 2}, {1: "control", 2: "treatment"}),
    ("[ab]/{arm}/*.csv", {"a/control/x.csv": 1, "b/treatment/y.csv": 2}, {1: "control", 2: "treatment"}),
])
def test_arm_patterns_read_every_file_with_its_arm(tmp_path, pattern, files, expected):
    for name, session in files.items():
        _write(tmp_path / name, _rows(session))
    ds = Dataset(tmp_path, tables={"impressions": pattern}, mapping=FILE_ARMS)
    assert _arms(ds) == expected


def test_derived_sessions_take_the_first_impressions_time_and_refuse_a_partly_missing_arm(tmp_path):
    _write(tmp_path / "ok.csv", _rows(1, "A", times=("00:00:05", "00:00:09")) + _rows(2, "B"))
    ds = Dataset(tmp_path, tables={"impressions": "ok.csv"}, mapping=MAPPING)
    counts = validate_dataset(ds, require_arm=True, arms=("A", "B"), profile=PROFILE)
    assert counts["sessions"] == 2
    con = ds.connect()
    assert str(con.execute("SELECT ts FROM sessions WHERE session_id = 1").fetchone()[0]).startswith(
        "2025-03-03 00:00:05")
    con.close()
    rows = _rows(3, "A")
    rows[1] = rows[1].replace(",A,", ",,")  # the session's second impression lost its arm
    _write(tmp_path / "bad.csv", rows + _rows(4, "B"))
    with pytest.raises(InputError, match="1 session\\(s\\) whose impressions disagree on column 'arm'"):
        validate_dataset(Dataset(tmp_path, tables={"impressions": "bad.csv"}, mapping=MAPPING), require_arm=True,
                         arms=("A", "B"), profile=PROFILE)


def test_a_unit_column_with_missing_values_or_a_keyword_name(tmp_path):
    _write(tmp_path / "log.csv", _rows(1, "A", grp="g1") + _rows(2, "B", grp="") + _rows(3, "B", grp="g2"))
    ds = Dataset(tmp_path, tables={"impressions": "log.csv"}, mapping=MAPPING)
    with pytest.raises(InputError, match="1 session\\(s\\) without a grp, e.g. session_id 2"):
        validate_dataset(ds, require_arm=True, arms=("A", "B"), unit="grp", profile=PROFILE)
    # a unit column named like an SQL keyword is quoted wherever it is used
    _write(tmp_path / "kw.csv", _rows(1, "A", grp="g1") + _rows(2, "B", grp="g2"))
    (tmp_path / "kw.csv").write_text((tmp_path / "kw.csv").read_text().replace(",grp\n", ",group\n", 1))
    ds = Dataset(tmp_path, tables={"impressions": "kw.csv"}, mapping=MAPPING)
    assert validate_dataset(ds, require_arm=True, arms=("A", "B"), unit="group", profile=PROFILE)["sessions"] == 2


def test_offline_experiments_randomise_by_user(tmp_path):
    text = ("name: x\ndata: {world: {users: 100}}\nrandomisation: {unit: session}\n"
            "arms: [{name: a, ranker: v1}, {name: b, ranker: v2}]\n")
    _, problems = experiment_problems(tmp_path / "x.yaml", text)
    assert len(problems) == 1 and "the offline replay assigns arms by user" in problems[0]


def test_an_arm_from_the_files_and_an_arm_column_is_refused(tmp_path):
    _write(tmp_path / "a" / "x.csv", _rows(1, "A"))
    _write(tmp_path / "b" / "y.csv", _rows(2, "B"))
    ds = Dataset(tmp_path, tables={"impressions": {"A": "a/*.csv", "B": "b/*.csv"}}, mapping=MAPPING)
    with pytest.raises(InputError, match="the arm is taken from the files, and 'a/\\*.csv' also has an arm column"):
        ds.connect()
    assert _arms(Dataset(tmp_path, tables={"impressions": {"A": "a/*.csv", "B": "b/*.csv"}}, mapping=FILE_ARMS)) \
        == {1: "A", 2: "B"}
