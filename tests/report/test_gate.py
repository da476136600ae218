"""The gate end to end: exit codes 0/1/2/3, JUnit, GitHub step summary and outputs, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import WORLD_YAML, world_cache

pytestmark = pytest.mark.slow  # every test runs the CLI in a subprocess


def experiment(tmp: Path, name: str, treatment: str, cache: Path) -> Path:
    f = tmp / f"{name}.yaml"
    f.write_text(f"""name: {name}
data: {{world: {WORLD_YAML}, cache_dir: {cache}}}
arms:
  - {{name: control, ranker: v1}}
  - {{name: treatment, ranker: {treatment}}}
metrics:
  - {{name: item_ctr, role: primary}}
  - {{name: buyer_conversion}}
  - {{name: relevance, role: guardrail, margin: 0.01}}
segments: []
simulation: {{behaviour: oracle, batch_size: 400}}
randomisation: {{salt: gate-tests}}
decision: {{latency_margin: 5.0}}  # the latency case is reported; timing noise on a tiny world must not decide
""")
    return f


def gate(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abplatform.cli", "gate", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cache(small_world, tmp_path_factory) -> Path:
    """The experiments' cache_dir: the shared world (linked in), and the replays these tests share."""
    return world_cache(small_world, tmp_path_factory.mktemp("cache"))


def test_promote_exit_0_with_junit_summary_and_output(tmp_path, cache):
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    res = gate(str(experiment(tmp_path, "v2_wins", "v2", cache)), "--junit", "junit.xml", cwd=tmp_path,
               env={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(output)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PROMOTE" in res.stdout
    assert output.read_text() == "decision=promote\narm=treatment\n"
    assert "**Decision: PROMOTE**" in summary.read_text()
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    # one test case per check of the decision rule, in the decision's order
    assert [c.get("name") for c in suite.iter("testcase")] == ["item_ctr", "buyer_conversion", "relevance",
                                                               "sample_ratio", "latency"]
    assert suite.get("tests") == "5" and suite.get("failures") == "0"
    run_dirs = list((tmp_path / "results" / "v2_wins").iterdir())
    assert len(run_dirs) == 1 and (run_dirs[0] / "junit.xml").is_file()


def test_hold_exit_1_names_the_reason(tmp_path, cache):
    res = gate(str(experiment(tmp_path, "aa", "v1", cache)), "--json", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["decision"] == "hold"
    assert any("primary metric item_ctr did not improve significantly" in r for r in doc["reasons"])
    run_dir = next((tmp_path / "results" / "aa").iterdir())
    suite = ET.parse(run_dir / "junit.xml").getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["item_ctr"]
    # gating the stored run folder gives the same answer without recomputing
    again = gate(str(run_dir), "--json", cwd=tmp_path)
    assert again.returncode == 1 and json.loads(again.stdout) == doc


def test_guardrail_breach_exit_1_names_the_guardrail(tmp_path, cache):
    f = experiment(tmp_path, "worse", "v2", cache)
    f.write_text(f.read_text().replace("ranker: v2}", "ranker: v2, params: {w_rel: 0.0, w_lex: 0.0}}"))
    res = gate(str(f), "--json", cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    reasons = json.loads(res.stdout)["reasons"]
    assert any(r.startswith("guardrail relevance is significantly worse") for r in reasons), reasons


def test_user_ranker_class_and_precomputed_rankings(tmp_path, cache):
    """A dotted-path user class and a rankings file plug in like the built-ins (and a bad one holds)."""
    (tmp_path / "myrankers.py").write_text(
        "class ReverseV1:\n"
        "    name = 'reverse_v1'\n"
        "    def fit(self, dataset, catalog):\n"
        "        from abplatform.rankers import V1Ranker\n"
        "        self.v1 = V1Ranker().fit(dataset, catalog)\n"
        "        return self\n"
        "    def score(self, batch):\n"
        "        return -self.v1.score(batch)\n")
    f = experiment(tmp_path, "user_class", "myrankers:ReverseV1", cache)
    res = gate(str(f), "--json", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 1, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    ctr = next(m for m in doc["metrics"] if m["metric"] == "item_ctr")
    assert ctr["rel_effect"] < 0 and ctr["p_value"] < 0.05  # reversing V1 must hurt

    # V2's own scores, exported as a rankings file, reproduce the V2 arm exactly
    import pyarrow as pa
    import pyarrow.parquet as pq

    from abplatform.dataset import Dataset
    from abplatform.rankers import CandidateBatch, Catalog, V2Ranker, candidate_matrix

    world = next(cache.glob("world-*"))
    ds = Dataset(world)
    catalog = Catalog.from_dataset(ds)
    v2 = V2Ranker().fit(ds, catalog)
    s, c = pq.read_table(world / "sessions"), pq.read_table(world / "candidates")
    ids = s["session_id"].to_numpy()
    cands = candidate_matrix(ids, c["session_id"].to_numpy(), c["item_id"].to_numpy())
    scores = v2.score(CandidateBatch(ids, s["query"].to_pylist(), catalog.rows(cands)))
    ok = cands >= 0
    pq.write_table(pa.table({"session_id": np.repeat(ids, cands.shape[1])[ok.ravel()], "item_id": cands[ok],
                             "score": scores[ok]}), tmp_path / "v2_scores.parquet")
    via_file = experiment(tmp_path, "via_file", "'rankings:v2_scores.parquet'", cache)
    direct = experiment(tmp_path, "direct", "v2", cache)
    a = json.loads(gate(str(via_file), "--json", cwd=tmp_path).stdout)["metrics"]
    b = json.loads(gate(str(direct), "--json", cwd=tmp_path).stdout)["metrics"]
    assert a == b


def test_invalid_config_exit_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("name: x\narms: []\n")
    res = gate("bad.yaml", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith("error: bad.yaml:2:7: arms:")
    assert "Traceback" not in res.stderr


def test_cannot_evaluate_exit_3(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    res = gate("not_a_run", cwd=tmp_path)
    assert res.returncode == 3
    assert "no report.json" in res.stderr


def test_online_log_missing_an_arm_exit_3(tmp_path):
    import shutil

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    src = Path(__file__).parents[2] / "experiments"
    shutil.copytree(src / "data" / "onesearch_online_ab", tmp_path / "log")
    s = pq.read_table(tmp_path / "log" / "sessions.parquet")
    s = s.filter(pc.equal(s["variant"], "control"))
    pq.write_table(s, tmp_path / "log" / "sessions.parquet")
    for table in ("impressions", "page_labels"):
        t = pq.read_table(tmp_path / "log" / f"{table}.parquet")
        pq.write_table(t.filter(pc.is_in(t["sid"], s["sid"])), tmp_path / "log" / f"{table}.parquet")
    text = (src / "onesearch_online_ab.yaml").read_text().replace("path: data/onesearch_online_ab", "path: log")
    (tmp_path / "online.yaml").write_text(text)
    res = gate("online.yaml", cwd=tmp_path)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "no sessions for arm 'treatment'" in res.stderr
