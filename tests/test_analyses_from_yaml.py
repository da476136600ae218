"""Interleaving and off-policy evaluation reached from an experiment file: simulated interleaving and an
off-policy estimate of the treatment ranker in an offline run's report, and an interleaved log (a ``team``
column) analysed by ``abplatform evaluate`` — counted against a brute force over the CSV rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from abplatform.pipeline import run_offline
from abplatform.report.model import Report
from tests.conftest import SMALL_RUN_YAML, WORLD_YAML, world_cache

pytestmark = pytest.mark.slow


def test_offline_run_reports_interleaving_and_the_off_policy_estimate(small_world, tmp_path):
    text = SMALL_RUN_YAML.format(world=WORLD_YAML, cache=world_cache(small_world, tmp_path / "cache"))
    text += "interleaving: {credit_rule: wins, unit: session}\noffline_policy: {target: treatment}\n"
    (tmp_path / "small.yaml").write_text(text)
    run_dir, report = run_offline(tmp_path / "small.yaml", tmp_path / "results")
    again = Report.from_json((run_dir / "report.json").read_text())
    il = again.interleaving
    assert il is not None and il.source == "simulated" and il.unit == "session"
    assert il.wins_control + il.wins_treatment + il.ties == il.n == il.sessions
    # the sign test is scipy's binomial test of the treatment's wins among the decisive sessions
    p = stats.binomtest(il.wins_treatment, il.wins_control + il.wins_treatment, 0.5).pvalue
    assert il.sign_test_p_value == pytest.approx(p, rel=1e-9)
    assert il.sample_size is not None and il.sample_size.ratio is not None and il.sample_size.ratio > 0
    ope = again.offline_policy
    assert ope is not None and "ranker v2" in ope.target and ope.on_policy is None  # the world log has no v2 arm
    assert {e.estimator for e in ope.estimates} == {"ips", "snips", "dr", "dm"}
    md = (run_dir / "report.md").read_text()
    assert "## Interleaving" in md and "## Off-policy estimate" in md


def _interleaved_log(folder: Path, seed: int = 4) -> list[dict]:
    """A small interleaved log in CSV: sessions without arms, impressions with the team of each item."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    rows, sessions = [], []
    for sid in range(300):
        sessions.append({"session_id": sid, "unit_id": f"u{sid % 90}"})
        for pos in range(1, 7):
            team = "v1" if rng.random() < 0.5 else "v2"
            click = rng.random() < (0.12 if team == "v2" else 0.08)
            rows.append({"session_id": sid, "position": pos, "item_id": int(rng.integers(0, 400)),
                         "clicked": str(click).lower(), "team": team})
    for name, data in (("sessions", sessions), ("impressions", rows)):
        with open(folder / f"{name}.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)
    return rows


def test_evaluate_analyses_an_interleaved_log(tmp_path):
    rows = _interleaved_log(tmp_path / "log")
    (tmp_path / "il.yaml").write_text(
        "name: il\ndata: {path: log}\narms: [{name: v1}, {name: v2}]\nmetrics: [{name: item_ctr, role: primary}]\n"
        "interleaving: {unit: session}\n")
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "evaluate", "il.yaml", "--json", "out.json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    il = json.loads((tmp_path / "out.json").read_text())["interleaving"]
    per_session: dict[int, list[int]] = {}
    for r in rows:
        c = per_session.setdefault(r["session_id"], [0, 0])
        c[r["team"] == "v2"] += r["clicked"] == "true"
    wins_b = sum(b > a for a, b in per_session.values())
    wins_a = sum(a > b for a, b in per_session.values())
    assert (il["wins_treatment"], il["wins_control"], il["ties"]) == (wins_b, wins_a, 300 - wins_a - wins_b)
    assert il["sign_test_p_value"] == pytest.approx(stats.binomtest(wins_b, wins_a + wins_b).pvalue, rel=1e-9)
    assert il["source"] == "logged" and "no significant preference" in res.stdout or "preferred" in res.stdout
