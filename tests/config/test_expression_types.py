"""Expression types and bounds: what the checker accepts is what duckdb can run (see the property in
``test_expression_properties``); each refusal is one line naming the expression and what is expected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from abplatform.config import load_experiment
from abplatform.errors import InputError
from abplatform.expressions import ExpressionError, check_expression, infer_type, parse_expression, to_sql

BASE = "name: demo\narms:\n  - {name: control, ranker: v1}\n  - {name: treatment, ranker: v2}\n"

GOOD = [
    ("clicked", "column"), ("revenue * 2 - orders", "column"), ("-revenue", "column"), ("(position)", "column"),
    ("position <= 3", "filter"), ("query_segment = 'tail' AND NOT is_new_user", "filter"),
    ("ts >= '2024-05-01'", "filter"), ("ts BETWEEN '2024-05-01' AND '2024-05-02 12:00:00'", "filter"),
    ("arm IS NULL", "filter"), ("propensity IS NOT NULL", "filter"), ("clicked IS TRUE", "filter"),
    ("position IN (1, 2, NULL)", "filter"), ("query IN ('shoes', 'boots')", "filter"),
    ("clicked = purchased", "filter"),
    ("position > 1", "column"),  # a condition summed counts its true rows (CAST(bool AS DOUBLE) is 0 / 1)
]

BAD = [
    ("query", "column", "'query' is a string column; a metric sums numbers or true/false"),
    ("ts", "column", "'ts' is a timestamp column"),
    ("query", "filter", "a filter is a condition (true/false)"),
    ("position", "filter", "'position' is a number column; a filter is a condition"),
    ("query > 1", "filter", "cannot compare 'query' (string) with 1 (number)"),
    ("ts > 1", "filter", "cannot compare 'ts' (timestamp) with 1 (number)"),
    ("ts > 'soon'", "filter", "'soon' is not a timestamp"),
    ("clicked = 1", "filter", "cannot compare 'clicked' (true/false) with 1 (number)"),
    ("-clicked", "column", "arithmetic (unary -) needs numbers"),
    ("query + 1", "column", "arithmetic (+) needs numbers"),
    ("position IS 1", "filter", "IS takes only NULL, TRUE or FALSE"),
    ("position IS TRUE", "filter", "IS TRUE / IS FALSE tests a condition"),
    ("query BETWEEN 1 AND 2", "filter", "cannot compare 'query' (string) with 1 (number)"),
    ("position IN ('a', 2)", "filter", "cannot compare 'position' (number) with 'a' (string)"),
    ("(1, 2)", "column", "tuples (a, b) are not allowed"),
    ("clicked AND 1", "filter", "1 is a number; AND combines conditions"),
    ("1e400", "column", "not finite"),
]


@pytest.mark.parametrize("text,role", GOOD, ids=[g[0] for g in GOOD])
def test_well_typed_expressions_are_accepted(text, role):
    check_expression(text, role)


@pytest.mark.parametrize("text,role,message", BAD, ids=[b[0] + "/" + b[1] for b in BAD])
def test_ill_typed_expressions_are_refused_in_one_line(text, role, message):
    with pytest.raises(ExpressionError) as err:
        check_expression(text, role)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("text,message", [
    ("+".join(["orders"] * 1500), "too long (10,499 characters"),
    ("+".join(["1"] * 200), "too long (399 terms; at most 300)"),
    ("+".join(["1"] * 120), "too long (239 parts; at most 200)"),
    ("(" * 3000 + "1" + ")" * 3000, "too long"),
    ("(" * 21 + "1" + ")" * 21, "too deeply nested (21 levels of parentheses"),
    ("- " * 310 + "1", "too long (311 terms; at most 300)"),
    ("NOT " * 200 + "clicked", "too deeply nested"),  # the parser's RecursionError, caught
    ("NOT " * 51 + "clicked", "too deeply nested (52 levels; at most 50)"),
    ("- " * 60 + "1", "too deeply nested"),
])
def test_size_and_depth_are_bounded_before_anything_recurses(text, message):
    with pytest.raises(ExpressionError) as err:
        parse_expression(text)
    assert message in str(err.value), str(err.value)


def test_the_limits_themselves_parse():
    check_expression("(" * 20 + "position" + ")" * 20, "column")
    check_expression("NOT " * 40 + "clicked", "filter")
    check_expression("+".join(["orders"] * 40), "column")
    assert infer_type(parse_expression("clicked AND position > 1")) == "true/false"


def test_integer_arithmetic_is_computed_as_double():
    sql = to_sql(check_expression("orders * (100000) * 100000", "column"))
    assert sql == "CAST(i.orders AS DOUBLE) * (CAST(100000 AS DOUBLE)) * CAST(100000 AS DOUBLE)"
    assert to_sql(check_expression("position <= 3", "filter")) == "i.position <= 3"  # comparisons untouched


@pytest.mark.parametrize("yaml_tail", ["owner: " + "[" * 3000 + "]" * 3000 + "\n",
                                       "owner: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"])
def test_deeply_nested_yaml_is_one_input_error(tmp_path: Path, yaml_tail: str):
    f = tmp_path / "deep.yaml"
    f.write_text(BASE + yaml_tail)
    with pytest.raises(InputError) as err:  # the CLI's exit 2
        load_experiment(f)
    expected = f"{f}: too deeply nested (3,001 levels of YAML lists / mappings; an experiment file nests at most 50)"
    assert err.value.problems == [expected]


@pytest.mark.slow
def test_validate_cli_on_deep_yaml_and_deep_expressions_exits_2_with_one_line(tmp_path: Path):
    cases = {"lists.yaml": BASE + "owner: " + "[" * 3000 + "]" * 3000 + "\n",
             "parens.yaml": BASE + "metrics:\n  - {name: item_ctr, role: primary}\n  - {name: x, type: mean, "
                            "numerator: {column: clicked, filter: \"" + "(" * 3000 + "clicked" + ")" * 3000 + "\"}}\n",
             "nots.yaml": BASE + "metrics:\n  - {name: item_ctr, role: primary}\n  - {name: x, type: mean, "
                          "numerator: {column: clicked, filter: \"" + "NOT " * 200 + "clicked\"}}\n"}
    exe = Path(sys.executable).parent / "abplatform"
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        r = subprocess.run([str(exe), "validate", str(tmp_path / name)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert "too deeply nested" in r.stderr or "too long" in r.stderr, r.stderr
