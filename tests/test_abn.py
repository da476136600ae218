"""A/B/n end to end: a three-arm offline run through the gate CLI — every comparison, one Holm family,
SRM over three arms, the arm to promote in the exit code, JUnit, $GITHUB_OUTPUT and the step summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from abplatform.report.model import Report
from tests.conftest import WORLD_YAML, world_cache

pytestmark = pytest.mark.slow  # the runs go through the CLI in a subprocess

THREE_ARMS = """name: {name}
data: {{world: {world}, cache_dir: {cache}}}
control: {control}
arms: [{arms}]
comparisons: [{comparisons}]
metrics:
  - {{name: item_ctr, role: primary}}
  - {{name: buyer_conversion}}
  - {{name: relevance, role: guardrail, margin: 0.01}}
segments: [query_segment]
statistics: {{cuped: false}}
simulation: {{behaviour: oracle, batch_size: 400}}
decision: {{latency_margin: 5.0, latency_repetitions: 40}}  # reported; timing noise on a tiny world never decides
"""


def _gate(tmp: Path, cache: Path, name: str, control: str, arms: str, comparisons: str) -> dict:
    f = tmp / f"{name}.yaml"
    f.write_text(THREE_ARMS.format(name=name, world=WORLD_YAML, cache=cache, control=control, arms=arms,
                                   comparisons=comparisons))
    env = {**os.environ, "GITHUB_OUTPUT": str(tmp / f"{name}.out"), "GITHUB_STEP_SUMMARY": str(tmp / f"{name}.md")}
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "gate", str(f), "--results", str(tmp / "results"),
                          "--junit", str(tmp / f"{name}.xml"), "--json"], cwd=tmp, capture_output=True, text=True,
                         timeout=900, env=env)
    run_dir = next((tmp / "results" / name).iterdir())
    return {"res": res, "run": run_dir, "report": Report.from_json((run_dir / "report.json").read_text()),
            "junit": ET.parse(tmp / f"{name}.xml").getroot(), "output": (tmp / f"{name}.out").read_text(),
            "summary": (tmp / f"{name}.md").read_text()}


@pytest.fixture(scope="module")
def runs(small_world, tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("abn")
    cache = world_cache(small_world, tmp / "cache")
    return {
        # v1b is V1 again: a null arm; v2 beats v1 and is compared with v1b too
        "promote": _gate(tmp, cache, "abn_promote", "v1", "{name: v1, ranker: v1}, {name: v2, ranker: v2}, "
                         "{name: v1b, ranker: v1}", "{treatment: v2, control: v1b}"),
        "hold": _gate(tmp, cache, "abn_hold", "cascade", "{name: cascade, ranker: cascade}, {name: v1, ranker: v1}, "
                      "{name: v2, ranker: v2}", "{treatment: v2, control: v1}"),
    }


def test_promote_names_the_arm_everywhere(runs):
    r = runs["promote"]
    rep: Report = r["report"]
    assert r["res"].returncode == 0, r["res"].stdout + r["res"].stderr
    assert (rep.decision.decision, rep.decision.arm) == ("promote", "v2")
    assert rep.decision.explanation == "v2 beats v1 on every check and beats v1b"
    assert r["output"] == "decision=promote\narm=v2\n"
    props = {p.get("name"): p.get("value") for p in r["junit"].find("properties")}
    assert props == {"decision": "promote", "arm": "v2"}
    assert r["junit"].get("failures") == "0"
    assert "**Decision: PROMOTE v2**" in r["summary"]
    gate_json = json.loads(r["res"].stdout[r["res"].stdout.index("{"):])
    assert (gate_json["decision"], gate_json["arm"]) == ("promote", "v2")
    assert [c["comparison"] for c in gate_json["comparisons"]] == ["v2 vs v1b", "v2 vs v1", "v1b vs v1"]


def test_hold_lists_every_comparison_against_the_control(runs):
    r = runs["hold"]
    rep: Report = r["report"]
    assert r["res"].returncode == 1
    assert r["output"] == "decision=hold\narm=\n"
    assert rep.decision.arm is None and rep.decision.reasons
    assert all(reason.split(": ")[0] in ("v1 vs cascade", "v2 vs cascade", "arm_choice") or "beat cascade" in reason
               for reason in rep.decision.reasons)
    failures = [c for c in r["junit"].iter("testcase") if c.find("failure") is not None]
    assert len(failures) == int(r["junit"].get("failures")) == len(rep.decision.reasons)
    assert "**Decision: HOLD**" in r["summary"] and "## v2 vs v1:" in r["summary"]


@pytest.mark.parametrize("case", ["promote", "hold"])
def test_report_reads_back_and_has_every_comparison(runs, case):
    rep: Report = runs[case]["report"]
    assert Report.from_json(rep.to_json()) == rep
    names = [c.name for c in rep.comparison_list()]
    assert len(names) == 3 and rep.comparisons[0].metrics == rep.metrics  # the headline comparison is the first
    assert rep.arms == list(rep.srm.units)


@pytest.mark.parametrize("case", ["promote", "hold"])
def test_srm_over_three_arms_is_scipy_chisquare(runs, case):
    rep: Report = runs[case]["report"]
    units = np.array(list(rep.srm.units.values()), float)
    expected = sps.chisquare(units, np.full(3, units.sum() / 3))
    assert rep.srm.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    # n per arm: the distinct users of each arm in the replayed log
    con = duckdb.connect()
    counted = dict(con.execute(f"SELECT arm, COUNT(DISTINCT unit_id) FROM '{rep.event_log}/sessions/**/*.parquet' "
                               "GROUP BY arm").fetchall())
    assert counted == rep.srm.units


@pytest.mark.parametrize("case", ["promote", "hold"])
def test_values_are_each_arms_and_holm_spans_the_comparisons(runs, case):
    rep: Report = runs[case]["report"]
    con = duckdb.connect()
    log = rep.event_log
    ctr = dict(con.execute(f"SELECT s.arm, AVG(CAST(i.clicked AS DOUBLE)) FROM '{log}/impressions/**/*.parquet' i "
                           f"JOIN '{log}/sessions/**/*.parquet' s USING (session_id) GROUP BY s.arm").fetchall())
    primaries = []
    for c in rep.comparison_list():
        m = c.metric("item_ctr")
        assert m.control_value == pytest.approx(ctr[c.control], rel=1e-12)  # no CUPED: the arm's own ratio
        assert m.treatment_value == pytest.approx(ctr[c.treatment], rel=1e-12)
        primaries.append(m)
    # Holm is the default with several comparisons: one family of the three item_ctr rows
    assert rep.analysis.correction == "holm"
    expected = multipletests([m.p_value for m in primaries], method="holm")[1]
    np.testing.assert_allclose([m.p_value_adjusted for m in primaries], expected, rtol=1e-12)
