"""The typed report: report.json round-trips exactly; a malformed one is a ReportFormatError naming the
field, which the gate turns into exit 3 (could not evaluate), never a hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from abplatform.errors import EXIT_CANNOT_EVALUATE, EvaluationError
from abplatform.gate import exit_code, load_run
from abplatform.report.model import Report, ReportFormatError
from tests.report.factory import metric, report


def test_handmade_report_round_trips():
    rep = report(metrics=[metric(improved=True), metric("relevance", "guardrail", margin=0.01, breached=True)])
    text = rep.to_json()
    back = Report.from_json(text)
    assert back == rep
    assert back.to_json() == text
    assert Report.from_dict(json.loads(text)).to_dict() == json.loads(text)


def test_heterogeneity_and_daily_segment_series_round_trip_and_older_reports_read():
    from abplatform.report.model import DailySegmentSeries, SegmentHeterogeneity

    het = SegmentHeterogeneity(treatment="treatment", control="control", metric="item_ctr", segment="query_segment",
                               q=3.1, df=2, p_value=0.21, p_value_adjusted=0.42, cells=3, values_per_unit=2.3)
    nan_test = SegmentHeterogeneity(treatment="treatment", control="control", metric="item_ctr", segment="user_type",
                                    q=None, df=0, p_value=None, p_value_adjusted=None, cells=1, cells_not_estimable=1)
    series = DailySegmentSeries(metric="item_ctr", segment="query_segment", segment_value="tail",
                                days=["2026-06-01", "2026-06-02"], n_control=[None, 40], n_treatment=[3, 41],
                                control_value=[None, 0.1], treatment_value=[0.2, 0.12], rel_effect=[None, 0.2],
                                rel_ci_low=[None, -0.1], rel_ci_high=[None, 0.5], p_value=[None, 0.3])
    rep = report(heterogeneity=[het, nan_test], daily_segments=[series])
    back = Report.from_json(rep.to_json())
    assert back == rep and back.to_json() == rep.to_json()
    assert back.daily_segments[0].looks()[1] == {
        "day": "2026-06-02", "metric": "item_ctr", "segment": "query_segment", "segment_value": "tail",
        "n_control": 40, "n_treatment": 41, "control_value": 0.1, "treatment_value": 0.12, "rel_effect": 0.2,
        "rel_ci_low": -0.1, "rel_ci_high": 0.5, "p_value": 0.3}
    # a report.json of before these sections (and before abs_se) reads, with the sections empty
    doc = json.loads(rep.to_json())
    for k in ("heterogeneity", "daily_segments"):
        doc.pop(k)
    for m in doc["metrics"]:
        m.pop("abs_se")
    old = Report.from_dict(doc)
    assert old.heterogeneity == [] and old.daily_segments == [] and old.metrics[0].abs_se is None
    with pytest.raises(ReportFormatError, match=r"report.daily_segments\[0\].n_control\[0\]: expected int"):
        Report.from_dict({**json.loads(rep.to_json()), "daily_segments": [{**json.loads(rep.to_json())[
            "daily_segments"][0], "n_control": ["40", 40]}]})


def test_health_sections_round_trip_render_and_older_reports_read():
    """Pre-period balance (per comparison × metric) and each day's sample ratio: report.json round-trips, report.md
    has a line for each (failed ones named), and a report.json from before them reads with both empty."""
    from abplatform.report.model import Comparison, DailySrm, PrePeriodBalance
    from abplatform.report.render import balance_line, daily_srm_line, markdown

    ok = PrePeriodBalance(treatment="treatment", control="control", metric="item_ctr", type="ratio", n_control=900,
                          n_treatment=910, control_pre_value=0.1, treatment_pre_value=0.101, diff=0.001, rel_diff=0.01,
                          se=0.002, df=1800.5, t=0.5, p_value=0.62, p_value_adjusted=0.62)
    untested = PrePeriodBalance(treatment="treatment", control="control", metric="orders", n_control=900,
                                n_treatment=910, control_pre_value=0.0, treatment_pre_value=0.0, diff=0.0)
    days = [DailySrm(day="2026-06-01", units={"control": 500, "treatment": 510}, p_value=0.75, chi2=0.1,
                     failed=False, p_value_adjusted=1.0),
            DailySrm(day="2026-06-02", units={"control": 300, "treatment": 150}, p_value=1e-12, chi2=50.0,
                     test="binomial", failed=True, p_value_adjusted=2e-12)]
    rep = report(balance=[ok, untested], srm_by_day=days)
    back = Report.from_json(rep.to_json())
    assert back == rep and back.to_json() == rep.to_json()
    assert back.comparison_list()[0].balance == [ok, untested]
    md = markdown(back)
    assert "Holm across 2 days, fails at adjusted p < 0.001): **FAILED** on 2026-06-02 (control 300, treatment 150; " \
           "Holm p < 0.0001)" in md
    assert "Pre-period balance (A/A check" in md and ": ok (smallest Holm p = 0.6200, item_ctr)" in md
    bad = report(balance=[PrePeriodBalance(**{**ok.__dict__, "p_value_adjusted": 1e-5, "failed": True})])
    assert "**FAILED** for item_ctr: control 0.1, treatment 0.101, Holm p < 0.0001" in balance_line(bad)
    # an A/B/n report: each comparison carries its own rows
    c = Comparison(treatment="v2", control="v1", decision=rep.decision, metrics=rep.metrics,
                   balance=[PrePeriodBalance(**{**ok.__dict__, "treatment": "v2", "control": "v1"})])
    abn = report(comparisons=[c, Comparison(treatment="v3", control="v1", decision=rep.decision, metrics=rep.metrics)],
                 arms=["v1", "v2", "v3"])
    assert Report.from_json(abn.to_json()).comparisons[0].balance[0].comparison == "v2 vs v1"
    doc = json.loads(rep.to_json())
    for k in ("balance", "srm_by_day"):
        doc.pop(k)
    old = Report.from_dict(doc)
    assert old.balance == [] and old.srm_by_day == []
    assert daily_srm_line(old).startswith("Exposures per day: not evaluated")
    assert balance_line(old).startswith("Pre-period balance: not evaluated")


@pytest.mark.slow
def test_a_real_runs_report_json_round_trips_byte_for_byte(small_run):
    text = (small_run / "report.json").read_text()
    rep = Report.from_json(text)
    assert rep.to_json() == text
    # the typed report carries what the file says, with attribute access
    doc = json.loads(text)
    assert rep.decision.decision == doc["decision"]["decision"] and rep.alpha == doc["alpha"] == 0.05
    assert [m.metric for m in rep.metrics] == ["item_ctr", "buyer_conversion", "relevance"]
    assert rep.srm.units == doc["srm"]["units"] and sum(rep.srm.units.values()) > 0
    assert [c.name for c in rep.decision.checks] == ["item_ctr", "buyer_conversion", "relevance", "sample_ratio",
                                                     "latency"]
    assert all(set(s.units) == {"control", "treatment"} for s in rep.srm_by_segment) and rep.srm_by_segment
    assert not any(k.startswith("n_") for s in doc["srm_by_segment"] for k in s)


def _edited(edit) -> str:
    doc = report().to_dict()
    edit(doc)
    return json.dumps(doc)


MALFORMED = {
    "empty object": ("{}", "missing field 'experiment'"),
    "a list": ("[]", "report: expected an object, got list"),
    "no srm": (_edited(lambda d: d.pop("srm")), "missing field 'srm'"),
    "not json": ("{", "not JSON"),
    "srm of the wrong kind": (_edited(lambda d: d.update(srm=[d["srm"]])), "report.srm: expected an object, got list"),
    "a metric without its name": (_edited(lambda d: d["metrics"][0].pop("metric")),
                                  "report.metrics[0]: missing field 'metric'"),
    "a decision without checks' kind": (_edited(lambda d: d["decision"]["checks"][0].pop("kind")),
                                        "report.decision.checks[0]: missing field 'kind'"),
    "units as text": (_edited(lambda d: d["srm"].update(units={"control": "1000"})),
                      "report.srm.units.control: expected int, got str"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_from_json_names_what_is_wrong(case):
    text, message = MALFORMED[case]
    with pytest.raises(ReportFormatError) as err:
        Report.from_json(text)
    assert message in str(err.value)


def _run_folder(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    (d / "report.json").write_text(text)
    return d


@pytest.mark.parametrize("case", ["empty object", "a list", "no srm"])
def test_gate_cannot_evaluate_a_malformed_report(case, tmp_path):
    text, message = MALFORMED[case]
    with pytest.raises(EvaluationError, match="unreadable report") as err:
        load_run(_run_folder(tmp_path, text))
    assert message in str(err.value)
    assert err.value.exit_code == EXIT_CANNOT_EVALUATE == 3


def test_gate_exit_code_follows_the_decision(tmp_path):
    promote = report()
    hold = report(metrics=[metric()])  # the primary did not improve
    assert (promote.decision.decision, hold.decision.decision) == ("promote", "hold")
    assert exit_code(load_run(_run_folder(tmp_path, promote.to_json()))) == 0
    assert exit_code(hold) == 1


@pytest.mark.slow
@pytest.mark.parametrize("case", ["empty object", "a list", "no srm"])
def test_gate_cli_exits_3_on_a_run_folder_with_a_malformed_report(case, small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    text, message = MALFORMED[case]
    (run / "report.json").write_text(text)
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "gate", str(run)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot evaluate: "), res.stderr
    assert message in lines[0]


# --- values of the wrong kind inside a field ------------------------------------------------------------

WRONG_VALUES = {
    "a p-value as text": (_edited(lambda d: d["metrics"][0].update(p_value_adjusted="0.03")), "p_value_adjusted"),
    "alpha as text": (_edited(lambda d: d.update(alpha="0.05")), "alpha"),
    "a misspelt decision": (_edited(lambda d: d["decision"].update(decision="promte")), "decision"),
    "an unknown mode": (_edited(lambda d: d.update(mode="banana")), "mode"),
}


@pytest.mark.parametrize("case", list(WRONG_VALUES))
def test_from_json_rejects_values_of_the_wrong_kind(case):
    text, field = WRONG_VALUES[case]
    try:
        Report.from_json(text)
    except ReportFormatError as e:
        assert field in str(e)
    else:
        raise AssertionError(f"{case}: accepted")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["a p-value as text", "a misspelt decision"])
def test_gate_cli_exits_3_on_values_of_the_wrong_kind(case, tmp_path):
    run = _run_folder(tmp_path, WRONG_VALUES[case][0])
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "gate", str(run), "--junit", "junit.xml"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 3, res.stdout + res.stderr
