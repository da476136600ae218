"""SIGKILL at random moments never leaves a partial run visible; a rerun gives identical numbers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abplatform.store import ResultsStore
from tests.conftest import WORLD_YAML, world_cache

RUN_FILES = {"experiment.yaml", "config.json", "scorecard.parquet", "daily.parquet", "srm.parquet",
             "sufficient_stats.parquet", "report.json", "report.md", "junit.xml"}


def _check_store(results: Path) -> int:
    """Every indexed run is complete; every visible run folder is complete. Returns the number of runs."""
    store = ResultsStore(results)
    index = store.index()
    for entry in index:
        assert RUN_FILES <= {f.name for f in store.run_dir(entry).iterdir()}, entry
    exp_dir = results / "crash"
    visible = [d for d in exp_dir.iterdir() if not d.name.startswith(".")] if exp_dir.exists() else []
    for d in visible:
        assert RUN_FILES <= {f.name for f in d.iterdir()}, d
    assert {e["run_id"] for e in index} <= {d.name for d in visible}
    return len(index)


def _numbers(report: dict) -> list:
    return [(m["metric"], m["control_value"], m["treatment_value"], m["p_value"], m["rel_ci_low"])
            for m in report["metrics"]]


@pytest.mark.slow
def test_sigkill_never_leaves_a_partial_run(small_world, tmp_path):
    cache = world_cache(small_world, tmp_path / "cache")
    (tmp_path / "crash.yaml").write_text(f"""name: crash
data: {{world: {WORLD_YAML}, cache_dir: {cache}}}
arms: [{{name: control, ranker: v1}}, {{name: treatment, ranker: v2}}]
segments: [query_segment]
""")
    cmd = [sys.executable, "-m", "abplatform.cli", "run", "crash.yaml", "--no-segments"]
    rng = random.Random(20261129)
    kills = attempts = 0
    while kills < 10 and attempts < 40:  # until 10 kills have landed mid-run, whatever the machine's speed
        attempts += 1
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(0.2, 3.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        _check_store(tmp_path / "results")
    assert kills >= 10
    for _ in range(2):
        subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    n = _check_store(tmp_path / "results")
    reports = [json.loads((tmp_path / "results" / e["path"] / "report.json").read_text())
               for e in ResultsStore(tmp_path / "results").index()[-2:]]
    assert n >= 2
    assert _numbers(reports[0]) == _numbers(reports[1])
    # the killed writers' temporary folders (run folders, the replay) were removed by the next writer
    assert not [p for p in tmp_path.rglob(".tmp-*") if p.is_dir()]
