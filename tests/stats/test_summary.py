"""Summary files (CSV / JSON): the scorecard from aggregates, and line-numbered errors for bad rows."""

import hashlib
import json
import re

import numpy as np
import pytest
from scipy import stats

from abplatform.errors import InputError
from abplatform.stats.summary import analyze_summary_file, read_summary, summary_scorecard

CSV = """metric,arm,type,n,sum_x,sum_x2,sum_y,sum_y2,sum_xy,direction,role,margin
revenue,control,mean,3407,1396.87,52377.9767,,,,,,
revenue,treatment,mean,3461,2422.7,134698.29,,,,,,
buyers,control,proportion,28,14,,,,,,,
buyers,treatment,proportion,30,16,,,,,,,
ctr,control,ratio,1000,520,900,10000,130000,6500,increase,guardrail,0.05
ctr,treatment,ratio,1000,560,980,10100,131000,6900,increase,guardrail,0.05
"""


def test_csv_scorecard_reproduces_reference_vectors(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(CSV)
    card = summary_scorecard(path).set_index("metric")
    assert card.loc["revenue", "p_value"] == pytest.approx(0.02016, abs=5e-6)
    delta = summary_scorecard(path, relative_ci="delta").set_index("metric")
    assert delta.loc["buyers", "rel_ci_low"] == pytest.approx(-0.47767, abs=5e-6)
    assert card.loc["ctr", "control_value"] == pytest.approx(0.052)
    assert card.loc["ctr", "role"] == "guardrail" and card.loc["ctr", "margin"] == 0.05
    assert set(card.treatment_arm) == {"treatment"}


def test_json_with_options(tmp_path):
    rows = [
        {"metric": "revenue", "arm": "B", "type": "mean", "n": 3461, "sum_x": 2422.7, "sum_x2": 134698.29},
        {"metric": "revenue", "arm": "A", "type": "mean", "n": 3407, "sum_x": 1396.87, "sum_x2": 52377.9767},
    ]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"control": "A", "alpha": 0.01, "rows": rows}, indent=2))
    suff, specs, options = read_summary(path)
    assert options["control"] == "A" and options["treatments"] == ["B"] and options["alpha"] == 0.01
    card = summary_scorecard(path)
    assert card.abs_effect.iloc[0] == pytest.approx(0.29) and not card.significant.iloc[0]


def test_bad_rows_are_reported_with_file_line_and_field(tmp_path):
    bad = """metric,arm,type,n,sum_x,sum_x2
revenue,A,mean,-3,1396.87,52377.9767
revenue,B,mean,3461,2422.7,1.0
conv,A,binomial,28,14,
conv,B,proportion,0,16,
"""
    path = tmp_path / "bad.csv"
    path.write_text(bad)
    with pytest.raises(InputError) as err:
        read_summary(path)
    msg = str(err.value)
    assert f"{path}:2: field 'n': expected a positive integer, got -3" in msg
    assert f"{path}:3: field 'sum_x2': negative variance" in msg
    assert f"{path}:4: field 'type': expected one of proportion, mean, ratio, got 'binomial'" in msg
    assert f"{path}:5: field 'n': expected a positive integer, got 0" in msg


def test_missing_ratio_columns_and_missing_arm(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("metric,arm,type,n,sum_x,sum_x2\nctr,A,ratio,10,5,5\nctr,B,ratio,10,5,5\nm,A,mean,10,5,5\n")
    with pytest.raises(InputError) as err:
        read_summary(path)
    msg = str(err.value)
    assert f"{path}:2: field 'sum_y': required for a ratio metric" in msg
    assert "metric 'm' has no row for arm 'B'" in msg


def test_json_line_numbers(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"metric": "m", "arm": "A", "type": "mean", "n": 5, "sum_x": 1, "sum_x2": 1},\n'
                    '  {"metric": "m", "arm": "B", "type": "mean", "n": 5, "sum_x": 10, "sum_x2": 1}\n]\n')
    with pytest.raises(InputError, match=r"bad.json:3: field 'sum_x2': negative variance"):
        read_summary(path)


@pytest.mark.parametrize("equal_var", [False, True])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_mean_rows_match_scipy_ttest_ind(tmp_path, equal_var, alternative):
    rng = np.random.default_rng(1)
    xc, xt = rng.normal(5, 2, 40), rng.normal(5.6, 3, 55)
    rows = [{"metric": "m", "arm": a, "type": "mean", "n": len(x), "sum_x": float(x.sum()),
             "sum_x2": float((x**2).sum()), "alternative": alternative, "equal_var": equal_var}
            for a, x in (("c", xc), ("t", xt))]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"rows": rows}))
    r = summary_scorecard(path, relative_ci="fieller").iloc[0]
    ref = stats.ttest_ind(xt, xc, equal_var=equal_var, alternative=alternative)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.abs_p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_proportion_test_columns_and_guardrail_default_is_harm(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("metric,arm,type,n,sum_x,test,role\n"
                    "b,c,proportion,200,20,pooled,primary\nb,t,proportion,210,30,pooled,primary\n"
                    "g,c,proportion,200,50,fisher,guardrail\ng,t,proportion,210,40,fisher,guardrail\n")
    card = summary_scorecard(path).set_index("metric")
    from statsmodels.stats.proportion import proportions_ztest

    assert card.loc["b", "p_value"] == pytest.approx(proportions_ztest([30, 20], [210, 200])[1], rel=1e-9)
    # harm (the runs' default): H1 "worse", one-sided: fisher's 'less' p-value
    assert card.loc["g", "alternative"] == "less"
    assert card.loc["g", "p_value"] == pytest.approx(
        stats.fisher_exact([[40, 170], [50, 150]], alternative="less").pvalue)


@pytest.mark.parametrize("row,fragment", [
    ({"alternative": "bigger"}, "field 'alternative': expected one of two-sided, greater, less, got 'bigger'"),
    ({"test": "exact"}, "field 'test': expected one of welch, wald, pooled, continuity, fisher, got 'exact'"),
    ({"test": "fisher"}, "field 'test': test 'fisher' is a test of proportions; a mean metric takes welch"),
    ({"equal_var": "maybe"}, "field 'equal_var': expected true or false, got 'maybe'"),
])
def test_bad_row_options(tmp_path, row, fragment):
    rows = [{"metric": "m", "arm": a, "type": "mean", "n": 10, "sum_x": 5, "sum_x2": 10, **row} for a in "ct"]
    path = tmp_path / "s.json"
    path.write_text(json.dumps(rows, indent=1))
    with pytest.raises(InputError, match=re.escape(fragment)):
        read_summary(path)


@pytest.mark.parametrize("options,fragment", [
    ({"weights": {"c": 1, "x": 1}}, "field 'weights': expected a weight for each arm ['c', 't']; unknown arms ['x']"),
    ({"weights": {"c": 1, "t": -1}}, "field 'weights': expected positive numbers"),
    ({"guardrail_test": "maybe"}, "field 'guardrail_test': expected one of harm, noninferiority, got 'maybe'"),
    ({"sequential": {"method": "obrien_fleming"}}, "'planned_units': expected a positive number"),
])
def test_bad_options_name_the_key_and_its_line(tmp_path, options, fragment):
    rows = [{"metric": "m", "arm": a, "type": "mean", "n": 10, "sum_x": 5, "sum_x2": 10} for a in "ct"]
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"rows": rows, **options}, indent=1))
    with pytest.raises(InputError, match=re.escape(fragment)) as err:
        analyze_summary_file(path)
    assert str(err.value).startswith(f"{path}:")


def test_units_must_agree_across_metrics_for_the_srm(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("metric,arm,type,n,sum_x\na,c,proportion,100,10\na,t,proportion,100,12\n"
                    "b,c,proportion,100,10\nb,t,proportion,90,12\n")
    with pytest.raises(InputError, match=re.escape(f"{path}:5: field 'n': metric 'b' has n = 90 in arm 't'")):
        analyze_summary_file(path)


def test_cli_writes_the_same_report_as_a_run(tmp_path):
    from abplatform.report.model import Report
    from abplatform.summary_report import summary_reports, write_reports

    path = tmp_path / "s.csv"
    path.write_text("metric,arm,type,n,sum_x,test\nb,c,proportion,400,40,continuity\nb,t,proportion,420,70,continuity\n")
    analysis, reports = summary_reports(path, alpha=0.1)
    (folder,) = write_reports(reports, tmp_path / "out")
    report = Report.from_json((folder / "report.json").read_text())
    assert report.mode == "online" and report.alpha == 0.1 and report.srm.test == "binomial"
    assert report.srm.p_value == pytest.approx(stats.binomtest(400, 820, 0.5).pvalue)
    assert report.source.hash == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    m = report.metrics[0]
    yates = stats.chi2_contingency([[70, 350], [40, 360]], correction=True).pvalue
    assert m.test == "continuity" and m.test_scale == "absolute" and m.p_value == pytest.approx(yates)
    assert report.decision.decision == "promote"
    assert "(absolute)" in (folder / "report.md").read_text() and (folder / "junit.xml").exists()
