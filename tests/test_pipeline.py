"""The pipeline next to a results store written by an earlier version of the platform."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SMALL_RUN_YAML, WORLD_YAML, world_cache


def _to_old_format(report: dict) -> dict:
    """report.json as the platform wrote it before the typed Report: SRM rows by segment with one
    ``n_<arm>`` column per arm, no decision checks, no top-level alpha."""
    for s in report["srm_by_segment"]:
        s.update({f"n_{arm}": n for arm, n in s.pop("units").items()})
    report["decision"].pop("checks")
    report.pop("alpha")
    return report


@pytest.mark.slow
def test_an_unreadable_paired_run_does_not_crash_the_gate(small_run, small_world, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(small_run.parents[1], results)
    index = json.loads((results / "index.json").read_text())
    assert [e["experiment"] for e in index] == ["small"]
    index[0]["mode"] = "online"  # the earlier run is now the online half of the pair
    (results / "index.json").write_text(json.dumps(index))
    old = results / index[0]["path"] / "report.json"
    old.write_text(json.dumps(_to_old_format(json.loads(old.read_text()))))
    cache = world_cache(small_world, tmp_path / "cache")
    (tmp_path / "small.yaml").write_text(SMALL_RUN_YAML.format(world=WORLD_YAML, cache=cache))
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "gate", "small.yaml", "--results", str(results)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.returncode != 1 or "HOLD" in res.stdout, res.stdout + res.stderr
    assert "warning: skipping paired run" in res.stderr and str(old) in res.stderr, res.stderr[-2000:]
