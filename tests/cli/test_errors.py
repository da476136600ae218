"""User mistakes: one line naming what is wrong, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow  # every test runs the CLI in a subprocess

ARMS = "arms:\n  - {name: control, ranker: v1}\n  - {name: treatment, ranker: v2}\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abplatform.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def assert_user_error(res: subprocess.CompletedProcess, *needles: str, cwd: Path) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    for needle in needles:
        assert needle in res.stderr, res.stderr
    assert not (cwd / "results").exists() or not any((cwd / "results").rglob("report.json"))


def test_missing_experiment_file(tmp_path):
    res = cli("run", "nope.yaml", cwd=tmp_path)
    assert_user_error(res, "nope.yaml: no such experiment file", cwd=tmp_path)
    assert len(res.stderr.strip().splitlines()) == 1


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    (tmp_path / "e.yaml").write_text("name: x\narms: [\n  {name: a\n")
    res = cli("run", "e.yaml", cwd=tmp_path)
    assert_user_error(res, "e.yaml:", "not valid YAML", cwd=tmp_path)


def test_unknown_ranker(tmp_path):
    (tmp_path / "e.yaml").write_text("name: x\narms:\n  - {name: control, ranker: v1}\n  - {name: t, ranker: v3}\n")
    res = cli("run", "e.yaml", cwd=tmp_path)
    assert_user_error(res, "arms[1].ranker", "unknown ranker 'v3'", cwd=tmp_path)


def test_missing_data_path(tmp_path):
    (tmp_path / "e.yaml").write_text("name: x\ndata: {path: no/such/logs}\n" + ARMS)
    res = cli("run", "e.yaml", cwd=tmp_path)
    assert_user_error(res, "data.path: no/such/logs does not exist", cwd=tmp_path)


def test_log_that_breaks_the_contract_lists_every_problem(copy_world, tmp_path):
    bad = copy_world  # a private copy: this test breaks it
    f = sorted((bad / "impressions").glob("*.parquet"))[0]
    t = pq.read_table(f)
    purchased = t["purchased"].to_numpy().copy()
    first_unclicked = int(np.flatnonzero(~t["clicked"].to_numpy())[0])
    purchased[first_unclicked] = True
    position = t["position"].to_numpy().copy()
    position[0] = 0
    t = t.set_column(t.schema.get_field_index("purchased"), "purchased", pa.array(purchased))
    t = t.set_column(t.schema.get_field_index("position"), "position", pa.array(position))
    t = pa.concat_tables([t, t.slice(5, 1)])  # one duplicate (session, position)
    pq.write_table(t, f)
    s = sorted((bad / "sessions").glob("*.parquet"))[0]
    pq.write_table(pq.read_table(s).drop_columns(["query_segment"]), s)
    # the segment listed needs the column (the default segments are those the log has)
    (tmp_path / "e.yaml").write_text(f"name: x\ndata: {{path: {bad.name}}}\nsegments: [query_segment]\n" + ARMS)
    res = cli("run", "e.yaml", cwd=tmp_path)
    assert_user_error(res, "sessions: missing column 'query_segment'", "needed by segment query_segment",
                      "position outside 1..10",
                      "purchase without a click", "duplicate key(s) (session_id, position)", cwd=tmp_path)
    assert all(line.startswith("error: ") for line in res.stderr.strip().splitlines())


def test_check_data_accepts_the_world(small_world, tmp_path):
    res = cli("check-data", str(small_world), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout


THREE = "  - {name: cascade, ranker: cascade}\n  - {name: v1, ranker: v1}\n  - {name: v2, ranker: v2}\n"


@pytest.mark.parametrize("text,needle", [
    ("name: x\narms:\n" + THREE, "control: missing: an experiment with 3 arms names its control arm"),
    ("name: x\ncontrol: v1\narms:\n" + THREE.replace("name: cascade", "name: v1"),
     "arm names must be unique: 'v1' is listed 2 times"),
    ("name: x\ncontrol: v1\narms:\n" + THREE.replace("ranker: cascade}", "ranker: cascade, weight: 0.5}")
     .replace("ranker: v1}", "ranker: v1, weight: 0.25}").replace("ranker: v2}", "ranker: v2, weight: 0.5}"),
     "arm weights must sum to 1 (or 100), got 1.25 over 3 arms"),
    ("name: x\ndata: {world: {preset: onesearh}}\ncontrol: v1\narms:\n" + THREE,
     "unknown world preset 'onesearh' (did you mean 'onesearch'?)"),
], ids=["no-control", "duplicate-arm", "k-arm-weights", "unknown-preset"])
def test_abn_mistakes_are_one_line_exit_2(tmp_path, text, needle):
    (tmp_path / "e.yaml").write_text(text)
    for command in ("validate", "run"):
        res = cli(command, "e.yaml", cwd=tmp_path)
        assert_user_error(res, "e.yaml:", needle, cwd=tmp_path)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
