"""Summary files (CSV / JSON): the scorecard from aggregates, and line-numbered errors for bad rows."""

import json

import pytest

from abplatform.errors import InputError
from abplatform.stats.summary import read_summary, summary_scorecard

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
    assert card.loc["buyers", "rel_ci_low"] == pytest.approx(-0.47767, abs=5e-6)
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
