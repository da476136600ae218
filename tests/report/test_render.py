"""Renderings of the report: the interval labels follow the report's alpha; the gate's JSON and the CI
step summary carry the report's decision."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from abplatform.report.model import SegmentResult
from abplatform.report.render import gate_summary, markdown, print_report, publish_to_ci
from tests.report.factory import metric, report


def with_segments(alpha: float):
    seg = SegmentResult(**{**metric(improved=True).__dict__, "segment": "query_segment", "segment_value": "head"})
    return report(alpha=alpha, segments=[seg])


def console_text(rep) -> str:
    console = Console(record=True, width=240, force_terminal=False)
    print_report(rep, console)
    return console.export_text()


@pytest.mark.parametrize("alpha,label", [(0.1, "90% CI"), (0.05, "95% CI"), (0.01, "99% CI"), (0.2, "80% CI")])
def test_interval_labels_follow_alpha(alpha, label):
    rep = with_segments(alpha)
    assert rep.confidence_label == label
    others = {"80% CI", "90% CI", "95% CI", "99% CI"} - {label}
    md = markdown(rep)
    header = next(line for line in md.splitlines() if line.startswith("| metric | role |"))
    assert f"| {label} (rel) |" in header
    assert f"| {label} | p |" in md  # the segment table
    text = console_text(rep)
    assert f"{label} (rel)" in text and f"Relative lift by segment ({label})" in text
    for other in others:
        assert other not in md and other not in text


def test_gate_summary_and_ci_outputs_carry_the_decision(tmp_path, monkeypatch):
    rep = report(metrics=[metric(p_value_adjusted=0.5)])
    summary = gate_summary(rep)
    assert summary["decision"] == "hold" == rep.decision.decision and summary["reasons"] == rep.decision.reasons
    assert [m["metric"] for m in summary["metrics"]] == ["item_ctr"]
    json.dumps(summary, allow_nan=False)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output.txt"))
    publish_to_ci(rep)
    assert (tmp_path / "output.txt").read_text() == "decision=hold\n"
    assert (tmp_path / "summary.md").read_text() == markdown(rep) + "\n"


@pytest.mark.slow
def test_a_real_runs_stored_renderings_are_those_of_its_report(small_run):
    """report.md and junit.xml in the run folder are the renderings of its report.json: one decision."""
    from abplatform.report.model import Report
    from abplatform.report.render import junit_xml

    rep = Report.from_json((small_run / "report.json").read_text())
    assert (small_run / "report.md").read_text() == markdown(rep)
    assert (small_run / "junit.xml").read_bytes() == junit_xml(rep)
    assert f"**Decision: {rep.decision.decision.upper()}**" in markdown(rep)


@pytest.mark.slow
def test_a_run_at_alpha_0_1_is_labelled_90_percent(small_world, tmp_path):
    from abplatform.pipeline import run_offline
    from tests.conftest import SMALL_RUN_YAML, WORLD_YAML, world_cache

    yaml = SMALL_RUN_YAML.format(world=WORLD_YAML, cache=world_cache(small_world, tmp_path / "cache"))
    (tmp_path / "a10.yaml").write_text(yaml.replace("name: small", "name: alpha10") + "statistics: {alpha: 0.1}\n")
    run_dir, rep = run_offline(tmp_path / "a10.yaml", tmp_path / "results")
    assert rep.alpha == 0.1 and rep.confidence_label == "90% CI"
    md = (run_dir / "report.md").read_text()
    assert "| 90% CI (rel) |" in md and "95% CI" not in md
    assert "90% CI (rel)" in console_text(rep)
