"""Compare two runs: what differs between them — the experiment config and the data and code they ran on —
setting by setting, from each run's config.json and report.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from abplatform import dashboard_data as dd
from tests.dashboard.fixtures import dash_results  # noqa: F401
from tests.dashboard.test_app import APP, goto, pick_run, table

pytestmark = pytest.mark.slow


def _config(root: Path, rep: dict) -> dict:
    return json.loads((root / rep["experiment"] / rep["run_id"] / "config.json").read_text())


def test_compare_lists_the_config_and_provenance_differences(dash_results, monkeypatch):
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["root"]))
    a, b = dash_results["a"], dash_results["b"]
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    goto(pick_run(at, a), "compare")
    at.selectbox(key="cmp_b").set_value(f"tiny/{b['run_id']}").run()
    assert not at.exception
    # the two runs differ in their simulation seed only: that row, with both values, in the page's HTML
    ca, cb = _config(dash_results["root"], a), _config(dash_results["root"], b)
    assert (ca["simulation"]["seed"], cb["simulation"]["seed"]) == (1, 2)
    config = table(at, "diff_expe")
    assert config.values.tolist() == [["simulation.seed", "1", "2"]]
    assert any(e.label == "Experiment config: 1 difference(s)" for e in at.expander), [e.label for e in at.expander]
    provenance = table(at, "diff_data")
    assert ["seed", "1", "2"] in provenance.values.tolist()
    # the same data (one world): its hash is not among the differences
    assert not any(k.startswith("data.hash") for k in provenance["setting"])
