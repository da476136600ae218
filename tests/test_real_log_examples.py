"""Logs shaped unlike ours, end to end through the CLI, with every number checked against a computation
straight from the CSV files (csv + numpy, no platform code): the query-less slot-level log with per-file
arms (unit: impression, off-policy estimate of the Thompson-sampling arm on the random arm's log) and the
session-randomised log (unit: session, clicks as yes/no through a mapping expression).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

EXAMPLES = Path(__file__).parents[1] / "experiments"
pytestmark = pytest.mark.slow  # CLI subprocesses


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abplatform.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(EXAMPLES, root / "experiments", ignore=shutil.ignore_patterns("onesearch_online_ab"))
    return root / "experiments"


def test_the_shipped_logs_are_what_the_script_makes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "data" / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.slot_level_log(tmp_path / "slot")
    module.session_randomised_log(tmp_path / "session")
    for made, shipped in ((tmp_path / "slot", EXAMPLES / "data" / "slot_level_log"),
                          (tmp_path / "session", EXAMPLES / "data" / "session_randomised")):
        files = sorted(p.relative_to(made) for p in made.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file())
        for f in files:
            assert (made / f).read_bytes() == (shipped / f).read_bytes(), f


def _one_run(results: Path) -> dict:
    (run,) = [d for exp in results.iterdir() if exp.is_dir() for d in exp.iterdir() if d.is_dir()]
    return json.loads((run / "report.json").read_text())


def test_slot_level_log_with_per_file_arms(examples):
    res = cli("analyze", "slot_level_ab.yaml", "--results", "out", cwd=examples)
    assert res.returncode == 0, res.stderr
    report = _one_run(examples / "out")
    assert report["analysis"]["unit"] == "impression"
    assert "impressions random" in res.stdout  # the SRM line speaks of the unit
    arms = {a: _rows(EXAMPLES / "data" / "slot_level_log" / a / "all.csv") for a in ("random", "bts")}
    # unit = impression: n is the rows of each file, item CTR the files' click rate
    ctr = {a: np.mean([int(r["click"]) for r in rows]) for a, rows in arms.items()}
    (m,) = report["metrics"]
    assert (m["n_control"], m["n_treatment"]) == (len(arms["random"]), len(arms["bts"]))
    assert m["control_value"] == pytest.approx(ctr["random"], rel=1e-12)
    assert m["treatment_value"] == pytest.approx(ctr["bts"], rel=1e-12)
    # one impression per unit: the test is Welch's on 0/1 values, i.e. scipy's on the clicks
    clicks = {a: np.array([int(r["click"]) for r in rows], float) for a, rows in arms.items()}
    welch = stats.ttest_ind(clicks["bts"], clicks["random"], equal_var=False)
    assert m["abs_p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    # positions stay as logged: every slot 1..3 is in the estimate's per-position table
    ope = report["offline_policy"]
    assert [p["position"] for p in ope["positions"]] == [1, 2, 3]
    # IPW and SNIPW of the bts table on the random file, from the CSVs (obp's formulas)
    policy = {(int(r["position"]), int(r["item_id"])): float(r["probability"])
              for r in _rows(EXAMPLES / "data" / "slot_level_log" / "bts" / "policy.csv")}
    rows = arms["random"]
    w = np.array([policy[(int(r["position"]), int(r["item_id"]))] / float(r["propensity_score"]) for r in rows])
    reward = clicks["random"]
    by = {e["estimator"]: e for e in ope["estimates"]}
    assert by["ips"]["value"] == pytest.approx(np.mean(w * reward), rel=1e-9)
    assert by["snips"]["value"] == pytest.approx(np.sum(w * reward) / np.sum(w), rel=1e-9)
    assert ope["n_rows"] == len(rows)
    assert ope["ess"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-9)
    # the bts arm's own log beside it, and the off-policy estimate agrees with it
    assert ope["on_policy"]["value"] == pytest.approx(ctr["bts"], rel=1e-12)
    assert by["snips"]["ci_low"] < ctr["bts"] < by["snips"]["ci_high"]


def test_evaluate_prints_the_same_estimate(examples, tmp_path):
    res = cli("evaluate", "slot_level_ab.yaml", "--json", str(tmp_path / "ope.json"), cwd=examples)
    assert res.returncode == 0, res.stderr
    ope = json.loads((tmp_path / "ope.json").read_text())["offline_policy"]
    assert {e["estimator"] for e in ope["estimates"]} == {"ips", "snips", "dr", "dm"}
    assert "snips" in res.stdout and "on-policy" in res.stdout


def test_session_randomised_log(examples):
    res = cli("analyze", "session_randomised_ab.yaml", "--results", "out2", cwd=examples)
    assert res.returncode == 0, res.stderr
    report = _one_run(examples / "out2")
    assert report["analysis"]["unit"] == "session"
    events = _rows(EXAMPLES / "data" / "session_randomised" / "events.csv")
    sessions: dict[str, dict[str, list[int]]] = {"A": {}, "B": {}}
    for r in events:
        sessions[r["bucket"]].setdefault(r["sess"], []).append(r["clk"] == "yes")
    (m,) = report["metrics"]
    assert (m["n_control"], m["n_treatment"]) == (len(sessions["A"]), len(sessions["B"]))
    # item CTR per session-unit: a ratio of sums over sessions (clicks / impressions)
    for arm, key in (("A", "control_value"), ("B", "treatment_value")):
        clicks = sum(sum(v) for v in sessions[arm].values())
        shown = sum(len(v) for v in sessions[arm].values())
        assert m[key] == pytest.approx(clicks / shown, rel=1e-12)
    assert {s["segment"] for s in report["segments"]} == {"device"}


def test_session_randomised_log_split_three_ways(examples):
    """The same CSV as an A/B/n test: every third session relabelled C by a mapping expression; each arm's
    item CTR, the SRM over three arms and Holm over the two comparisons, against the CSV by hand."""
    text = (examples / "session_randomised_ab.yaml").read_text()
    text = text.replace("arm: bucket}", "arm: {expression: \"CASE WHEN sess % 3 = 0 THEN 'C' ELSE bucket END\"}}")
    text = text.replace("arms:\n  - {name: A}\n  - {name: B}", "control: A\narms:\n  - {name: A}\n  - {name: B}\n"
                        "  - {name: C}")
    (examples / "three.yaml").write_text(text.replace("name: session_randomised_ab", "name: three"))
    res = cli("analyze", "three.yaml", "--results", "out_three", cwd=examples)
    assert res.returncode == 0, res.stderr
    report = _one_run(examples / "out_three")
    clicks: dict[str, list[bool]] = {"A": [], "B": [], "C": []}
    sessions: dict[str, set[str]] = {"A": set(), "B": set(), "C": set()}
    for r in _rows(EXAMPLES / "data" / "session_randomised" / "events.csv"):
        arm = "C" if int(r["sess"]) % 3 == 0 else r["bucket"]
        clicks[arm].append(r["clk"] == "yes")
        sessions[arm].add(r["sess"])
    assert report["srm"]["units"] == {a: len(v) for a, v in sessions.items()}
    units = [len(v) for v in sessions.values()]
    assert report["srm"]["p_value"] == pytest.approx(stats.chisquare(units).pvalue, rel=1e-9)
    comparisons = report["comparisons"]
    assert [(c["treatment"], c["control"]) for c in comparisons] == [("B", "A"), ("C", "A")]
    for c in comparisons:
        (m,) = c["metrics"]
        assert m["control_value"] == pytest.approx(np.mean(clicks[c["control"]]), rel=1e-12)
        assert m["treatment_value"] == pytest.approx(np.mean(clicks[c["treatment"]]), rel=1e-12)
    p = [c["metrics"][0]["p_value"] for c in comparisons]
    holm = sorted(p)[0] * 2, max(sorted(p)[0] * 2, sorted(p)[1])
    assert sorted(c["metrics"][0]["p_value_adjusted"] for c in comparisons) == pytest.approx(
        [min(v, 1.0) for v in holm], rel=1e-12)
    # no comparison between B and C is listed: one winner over A is promoted, two hold
    winners = [c["treatment"] for c in comparisons if c["decision"]["decision"] == "promote"]
    assert report["decision"]["arm"] == (winners[0] if len(winners) == 1 else None)


def test_session_randomised_log_read_per_user_reports_the_leak(examples):
    """The same log declared as randomised by user: its users are in both arms, which check-data says."""
    text = (examples / "session_randomised_ab.yaml").read_text().replace("unit: session", "unit: user")
    (examples / "per_user.yaml").write_text(text.replace("name: session_randomised_ab", "name: per_user"))
    res = cli("check-data", "per_user.yaml", cwd=examples)
    assert res.returncode == 2, res.stdout + res.stderr
    visitors: dict[str, set[str]] = {}
    for r in _rows(EXAMPLES / "data" / "session_randomised" / "events.csv"):
        visitors.setdefault(r["visitor"], set()).add(r["bucket"])
    leaked = sum(len(b) > 1 for b in visitors.values())
    assert f"{leaked} unit(s) logged in more than one arm, e.g. unit_id 'v" in res.stderr
    ok = cli("check-data", "session_randomised_ab.yaml", cwd=examples)
    assert ok.returncode == 0, ok.stderr
    assert "sample ratio (sessions per arm" in ok.stdout


def test_check_data_holds_on_a_sample_ratio_mismatch(examples):
    """check-data EXPERIMENT.yaml runs analyze's SRM check before computing: exit 1 when it would hold."""
    text = (examples / "slot_level_ab.yaml").read_text().replace("- {name: random}", "- {name: random, weight: 0.8}")
    (examples / "srm.yaml").write_text(text.replace("- {name: bts}", "- {name: bts, weight: 0.2}"))
    res = cli("check-data", "srm.yaml", cwd=examples)
    assert res.returncode == 1, res.stdout + res.stderr
    n = {a: len(_rows(EXAMPLES / "data" / "slot_level_log" / a / "all.csv")) for a in ("random", "bts")}
    p = stats.chisquare([n["random"], n["bts"]], [0.8 * sum(n.values()), 0.2 * sum(n.values())]).pvalue
    assert f"p = {p:.4g}" in res.stdout and "FAILED" in res.stdout


def test_a_ctr_only_log_needs_only_the_columns_item_ctr_reads(tmp_path):
    """Contract profile: unit, session, position, item, clicked and arm are enough for item CTR (no query,
    segments, purchases, orders, revenue, times); the check names the metric when one needs more."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    n = 600
    unit = rng.integers(0, 200, n)
    arm = np.where(unit % 2 == 0, "a", "b")
    (tmp_path / "log").mkdir()
    pq.write_table(pa.table({"session_id": np.arange(n), "unit_id": [f"u{u}" for u in unit], "arm": arm}),
                   tmp_path / "log" / "sessions.parquet")
    k = rng.integers(1, 6, n)
    sid = np.repeat(np.arange(n), k)
    pos = np.concatenate([np.arange(1, j + 1) for j in k]).astype(np.int16)
    clicked = rng.random(len(sid)) < np.where(arm[sid] == "b", 0.12, 0.08)
    pq.write_table(pa.table({"session_id": sid, "position": pos, "item_id": rng.integers(0, 50, len(sid)),
                             "clicked": clicked}), tmp_path / "log" / "impressions.parquet")
    base = "name: ctr_only\ndata: {path: log}\narms: [{name: a}, {name: b}]\nmetrics:\n  - {name: item_ctr, role: primary}\n"
    (tmp_path / "e.yaml").write_text(base)
    res = cli("analyze", "e.yaml", "--results", "out", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (m,) = _one_run(tmp_path / "out")["metrics"]
    for a, key in (("a", "control_value"), ("b", "treatment_value")):
        assert m[key] == pytest.approx(clicked[arm[sid] == a].mean(), rel=1e-12)
    (tmp_path / "f.yaml").write_text(base.replace("name: ctr_only", "name: more") + "  - {name: order_volume}\n")
    res = cli("analyze", "f.yaml", "--results", "out", cwd=tmp_path)
    assert res.returncode == 2
    assert "missing column 'orders'" in res.stderr and "needed by metric order_volume" in res.stderr


def test_arm_pattern_and_a_column_as_the_unit(examples):
    """tables with an {arm} pattern read the same rows as one glob per arm; a sessions column (here an
    extra source column, device) can be the randomisation unit, and the assignment-leak check counts it."""
    text = (examples / "slot_level_ab.yaml").read_text()
    pattern = text.replace('impressions: {random: "random/*.csv", bts: "bts/all.csv"}',
                           'impressions: "{arm}/all.csv"').replace("name: slot_level_ab", "name: by_pattern")
    assert pattern != text
    (examples / "by_pattern.yaml").write_text(pattern)
    res = cli("analyze", "by_pattern.yaml", "--results", "out3", cwd=examples)
    assert res.returncode == 0, res.stderr
    (m,) = _one_run(examples / "out3")["metrics"]
    files = {a: _rows(EXAMPLES / "data" / "slot_level_log" / a / "all.csv") for a in ("random", "bts")}
    assert (m["n_control"], m["n_treatment"]) == (len(files["random"]), len(files["bts"]))
    text = (examples / "session_randomised_ab.yaml").read_text()
    (examples / "by_device.yaml").write_text(text.replace("unit: session", "unit: device")
                                             .replace("name: session_randomised_ab", "name: by_device")
                                             .replace("segments: [device]", "segments: []"))
    res = cli("analyze", "by_device.yaml", "--results", "out4", cwd=examples)
    # both devices are in both arms: randomised by device, that is an assignment leak, named by the unit
    devices: dict[str, set[str]] = {}
    for r in _rows(EXAMPLES / "data" / "session_randomised" / "events.csv"):
        devices.setdefault(r["device"], set()).add(r["bucket"])
    leaked = sorted(d for d, arms in devices.items() if len(arms) > 1)
    assert res.returncode == 2, res.stdout
    assert (f"{len(leaked)} unit(s) logged in more than one arm, e.g. device {leaked[0]!r}; expected each device "
            "in exactly one arm") in res.stderr
    assert not (examples / "out4").exists() or not any((examples / "out4").iterdir())
