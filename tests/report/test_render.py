"""Renderings of the report: the interval labels follow the report's alpha; the gate's JSON and the CI
step summary carry the report's decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from abplatform.report.model import SegmentResult
from abplatform.gate import publish_to_ci
from abplatform.report.render import gate_summary, markdown, print_report
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
    assert f"| {label} | p |" in header
    assert f"| rel diff | {label} | p |" in md  # the segment table
    text = console_text(rep)
    assert f"Relative lift by segment ({label}; exploratory)" in text
    for other in others:
        assert other not in md and other not in text


def test_gate_summary_and_ci_outputs_carry_the_decision(tmp_path, monkeypatch):
    rep = report(metrics=[metric(p_value_adjusted=0.5)])
    summary = gate_summary(rep)
    assert summary["decision"] == "hold" == rep.decision.decision and summary["reasons"] == rep.decision.reasons
    assert [m["metric"] for m in summary["metrics"]] == ["item_ctr"]
    # each verdict beside the interval and p-value of the test it read
    row, m = summary["metrics"][0], rep.metrics[0]
    assert (row["ci_low"], row["ci_high"], row["p_value"]) == (m.rel_ci_low, m.rel_ci_high, m.p_value)
    assert (row["ci_low_adjusted"], row["ci_high_adjusted"]) == m.interval(adjusted=True)
    json.dumps(summary, allow_nan=False)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output.txt"))
    publish_to_ci(rep)
    assert (tmp_path / "output.txt").read_text() == "decision=hold\narm=\n"
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
    assert "| 90% CI | p |" in md and "95% CI" not in md
    assert "90% CI" in console_text(rep) and "95% CI" not in console_text(rep)


# --- the gate's output files: all written, or none (exit 2 naming the file, never a hold) ----------------

def _ci_env(monkeypatch, summary, output) -> None:
    for var, value in (("GITHUB_STEP_SUMMARY", summary), ("GITHUB_OUTPUT", output)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(value))


@pytest.mark.parametrize("where", ["junit", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"])
@pytest.mark.parametrize("what", ["a folder", "a missing folder", "the root"])
def test_an_output_that_cannot_be_written_is_named_and_nothing_is_written(where, what, tmp_path, monkeypatch):
    from abplatform.errors import InputError

    bad = {"a folder": tmp_path, "a missing folder": tmp_path / "gone" / "out.txt", "the root": Path("/")}[what]
    paths = {"junit": tmp_path / "junit.xml", "GITHUB_STEP_SUMMARY": tmp_path / "summary.md",
             "GITHUB_OUTPUT": tmp_path / "output.txt"} | {where: bad}
    if where != "GITHUB_STEP_SUMMARY":
        paths["GITHUB_STEP_SUMMARY"].write_text("earlier steps\n")
    _ci_env(monkeypatch, paths["GITHUB_STEP_SUMMARY"], paths["GITHUB_OUTPUT"])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError) as err:
        publish_to_ci(report(), paths["junit"])
    label = "--junit" if where == "junit" else where
    assert str(err.value).startswith(f"{label}: cannot write {bad}: ") and len(err.value.problems) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if where != "GITHUB_STEP_SUMMARY":
        assert paths["GITHUB_STEP_SUMMARY"].read_text() == "earlier steps\n"


def test_a_failure_after_the_check_restores_every_file(tmp_path, monkeypatch):
    """The check passes but opening (a race) or writing (a full disk) fails: what was written is undone."""
    from abplatform import files
    from abplatform.errors import InputError

    junit, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    junit.write_text("the previous junit\n")
    summary.write_text("earlier steps\n")
    _ci_env(monkeypatch, summary, "/dev/full")  # writes fail with ENOSPC, like a full disk
    with pytest.raises(InputError, match="GITHUB_OUTPUT: cannot write /dev/full: No space left on device"):
        publish_to_ci(report(), junit)
    assert junit.read_text() == "the previous junit\n" and summary.read_text() == "earlier steps\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "summary.md"]
    monkeypatch.setattr(files, "unwritable", lambda path: None)  # the folder vanishes after the check
    _ci_env(monkeypatch, tmp_path / "new-summary.md", tmp_path / "gone" / "output.txt")
    with pytest.raises(InputError, match="GITHUB_OUTPUT: cannot write .*gone/output.txt: No such file"):
        publish_to_ci(report(), junit)
    assert junit.read_text() == "the previous junit\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "summary.md"]


def test_all_outputs_written_when_all_can_be(tmp_path, monkeypatch):
    junit, summary, output = tmp_path / "junit.xml", tmp_path / "summary.md", tmp_path / "output.txt"
    summary.write_text("earlier steps\n")
    _ci_env(monkeypatch, summary, output)
    rep = report()
    publish_to_ci(rep, junit)
    from abplatform.report.render import junit_xml

    assert junit.read_bytes() == junit_xml(rep) and output.read_text() == "decision=promote\narm=treatment\n"
    assert summary.read_text() == "earlier steps\n" + markdown(rep) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "output.txt", "summary.md"]


def test_segment_section_has_one_heterogeneity_line_per_metric_and_segment():
    from abplatform.report.model import SegmentHeterogeneity

    def het(metric, segment, **kw):
        base = {"treatment": "treatment", "control": "control", "metric": metric, "segment": segment, "q": 14.2,
                "df": 2, "p_value": 0.00083, "p_value_adjusted": 0.0025, "differs": True, "cells": 3,
                "values_per_unit": 2.28}
        return SegmentHeterogeneity(**{**base, **kw})

    rows = [het("item_ctr", "query_segment"),
            het("relevance", "query_segment", q=1.3, p_value=0.52, p_value_adjusted=0.52, differs=False, df=1,
                cells=2, cells_not_estimable=1),
            het("item_ctr", "user_type", q=None, df=0, p_value=None, p_value_adjusted=None, differs=False, cells=1,
                cells_not_estimable=1, values_per_unit=1.0)]
    rep = with_segments(0.05)
    rep.heterogeneity = rows
    md = markdown(rep)
    section = md.split("## By segment")[1].split("\n## ")[0]
    assert "Does the effect differ across a segment's values? Cochran's Q" in section and "Holm" in section
    lines = [ln for ln in section.splitlines() if ln.startswith("- ")]
    assert lines == [
        ("- query_segment · item_ctr: Q = 14.20 on 2 df, p = 0.0008, Holm p = 0.0025 — effect differs across values "
         "(units in 2.28 values on average: conservative)"),
        ("- query_segment · relevance: Q = 1.30 on 1 df, p = 0.5200, Holm p = 0.5200 — no evidence it differs "
         "(1 value not estimable, left out; units in 2.28 values on average: conservative)"),
        "- user_type · item_ctr: no test (1 estimable value, two needed; 1 value not estimable, left out)"]
    assert rep.comparison_list()[0].heterogeneity == rows
