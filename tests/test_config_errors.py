"""Config mistakes: each is reported with its file:line:column, field path and a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from abplatform.config import experiment_problems, json_schema

BASE = """name: demo
arms:
  - {name: control, ranker: v1}
  - {name: treatment, ranker: v2}
"""
ABN = "name: demo\narms:\n  - {name: cascade, ranker: cascade}\n  - {name: v1, ranker: v1}\n  - {name: v2, ranker: v2}\n"


def _user_metric(column: str, filter: str | None = None) -> str:
    """BASE with item_ctr and a user metric ``x`` (its column at 7:47, a filter after ``column: "clicked"`` at 7:66)."""
    parts = [f'column: "{column}"'] + ([f'filter: "{filter}"'] if filter else [])
    return (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n"
            "  - {name: x, type: mean, numerator: {" + ", ".join(parts) + "}}\n")


# (yaml text, expected "line:col: path" fragment, expected message fragment)
MISTAKES = [
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, alternative: bigger}\n", ":6:50: metrics[0].alternative",
     "Input should be 'two-sided', 'greater' or 'less'"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, equal_var: true}\n", ":6:5: metrics[0]",
     "equal_var: 'item_ctr' is a ratio metric"),
    (BASE + "metrics:\n  - {name: relevance, role: guardrail, alternative: less}\n", ":6:5: metrics[0]",
     "alternative: a guardrail's test is one-sided by decision.guardrail_test"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, alternative: less}\n", ":6:5: metrics[0]",
     "this primary metric could never improve"),
    (BASE + "statistics: {correction_scope: everything}\n", ":5:32: statistics.correction_scope",
     "Input should be 'primary' or 'all'"),
    ("name: demo\narms: [\n", ":3:1", "not valid YAML"),
    ("- just\n- a list\n", "", "expected a mapping"),
    ("arms:\n  - {name: a, ranker: v1}\n  - {name: b, ranker: v2}\n", ":1:1: (top level)", "missing required key 'name'"),
    ("name: demo\n", ":1:1: (top level)", "missing required key 'arms'"),
    (BASE + "owner: [1, 2]\n", ":5:8: owner", "valid string"),
    (BASE + "descripton: x\n", ":5:1: descripton", "did you mean 'description'"),
    ("name: demo\narms:\n  - {name: control, ranker: v1}\n", ":3:3: arms", "at least 2"),
    ("name: demo\narms:\n  - {name: control, ranker: v1}\n  - {name: t, ranker: v3}\n", ":4:23: arms[1].ranker",
     "unknown ranker 'v3'"),
    ("name: demo\narms:\n  - {name: control, ranker: v1}\n  - {name: control, ranker: v2}\n", ":3:3: arms",
     "arm names must be unique: 'control' is listed 2 times"),
    ("name: demo\narms:\n  - {name: a, ranker: v1, weight: 0.5}\n  - {name: b, ranker: v2, weight: 0.4}\n",
     ":3:3: arms", "weights must sum to 1 (or 100), got 0.9 over 2 arms"),
    ("name: demo\narms:\n  - {name: a, ranker: v1, weight: 0.5}\n  - {name: b, ranker: v2}\n", ":3:3: arms",
     "every arm or for none"),
    # A/B/n: the control is named, arm names are distinct, k weights sum to 1, comparisons name arms
    (ABN, ":1:1: (top level)", "control: missing: an experiment with 3 arms names its control arm"),
    (ABN.replace("{name: v1,", "{name: v2,") + "control: cascade\n", ":3:3: arms",
     "arm names must be unique: 'v2' is listed 2 times"),
    (ABN.replace("ranker: cascade}", "ranker: cascade, weight: 0.5}").replace("ranker: v1}", "ranker: v1, weight: 0.3}")
     .replace("ranker: v2}", "ranker: v2, weight: 0.3}") + "control: cascade\n", ":3:3: arms",
     "arm weights must sum to 1 (or 100), got 1.1 over 3 arms"),
    (ABN + "control: cascade\ncomparisons: [{treatment: v3, control: v1}]\n", ":1:1: (top level)",
     "comparisons[0].treatment: 'v3' is not an arm (arms: cascade, v1, v2)"),
    (ABN + "control: cascade\ncomparisons: [{treatment: cascade, control: v1}]\n", ":1:1: (top level)",
     "comparisons[0]: 'cascade' is the control, every treatment's control already; list {treatment: v1, control: "
     "cascade}"),
    (ABN + "control: cascade\ncomparisons: [{treatment: v2, control: v2}]\n", ":1:1: (top level)",
     "comparisons[0]: compares 'v2' with itself"),
    (ABN + "control: cascade\ncomparisons: [{treatment: v2, control: v1}]\nstatistics: {correction: dunnett}\n",
     ":1:1: (top level)", "dunnett compares treatments with the control (cascade); comparison v2 vs v1 is not one"),
    (ABN + "control: cascade\ninterleaving: {}\n", ":1:1: (top level)",
     "team draft interleaves two rankers; this experiment has 3 arms"),
    (ABN + "control: cascade\nstatistics: {sequential: {method: confidence_sequence}}\n", ":1:1: (top level)",
     "sequential testing is for two arms; this experiment has 3"),
    ("name: demo\narms:\n  - {name: a, ranker: v1, weight: -1}\n  - {name: b, ranker: v2, weight: 2}\n",
     ":3:35: arms[0].weight", "greater than 0"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n  - {name: item_ctr}\n", ":1:1: (top level)",
     "listed twice"),
    (BASE + "metrics:\n  - {name: buyer_conversoin, role: primary}\n", ":6:5: metrics[0]",
     "did you mean 'buyer_conversion'"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primery}\n", ":6:28: metrics[0].role", "'primary'"),
    (BASE + "metrics:\n  - {name: item_ctr}\n", ":1:1: (top level)", "no metric has role: primary"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, margin: 5}\n", ":6:45: metrics[0].margin", "less than 1"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n  - {name: x, type: ratio, numerator: {column: clicked}}\n",
     ":7:5: metrics[1]", "needs a denominator"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n  - {name: x, type: mean, numerator: {agg: sum}}\n",
     ":7:38: metrics[1].numerator", "needs a column"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n  - {name: x, numerator: {column: clicked}}\n",
     ":7:5: metrics[1]", "needs a type"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n"
            "  - {name: x, type: mean, numerator: {column: clicked, filter: \"1=1; DROP TABLE sessions\"}}\n",
     ":7:64: metrics[1].numerator.filter", "must be one expression"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n"
            "  - {name: x, type: mean, numerator: {column: \"read_csv('/etc/passwd')\"}}\n",
     ":7:47: metrics[1].numerator.column", "function calls are not allowed"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n"
            "  - {name: x, type: mean, numerator: {column: clicked, filter: \"position IN (SELECT 1)\"}}\n",
     ":7:64: metrics[1].numerator.filter", "sub-queries are not allowed"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary}\n"
            "  - {name: x, type: mean, numerator: {column: clikced}}\n",
     ":7:47: metrics[1].numerator.column", "did you mean 'clicked'"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, type: mean, numerator: {column: clicked}}\n",
     ":6:5: metrics[0]", "is a built-in metric"),
    (BASE + "statistics: {alpha: 1.5}\n", ":5:21: statistics.alpha", "less than 0.5"),
    (BASE + "statistics: {corection: holm}\n", ":5:14: statistics.corection", "did you mean 'correction'"),
    (BASE + "statistics: {correction: bonferoni}\n", ":5:26: statistics.correction", "'holm'"),
    (BASE + "statistics: {relative_ci: wald}\n", ":5:27: statistics.relative_ci", "'fieller'"),
    (BASE + "segments: [query_segment, query_segment]\n", ":1:1: (top level)", "listed twice"),
    (BASE + "segments: [query_segment, \"country; DROP\"]\n", ":5:27: segments[1]", "should match pattern"),
    (BASE + "data: {}\n", ":5:7: data", "exactly one of 'world' or 'path'"),
    (BASE + "data: {world: {users: 0}}\n", ":5:23: data.world.users", "greater than 0"),
    (BASE + "data: {path: logs, mapping: {sesions: {unit_id: user}}}\n", ":5:7: data", "unknown table 'sesions'"),
    (BASE + "data: {path: logs, mapping: {sessions: {unit: user}}}\n", ":5:7: data", "did you mean 'unit_id'"),
    (BASE + "data: {world: {users: 10}, mode: online}\n", ":5:7: data", "replayed offline"),
    (BASE + "simulation: {workers: 0}\n", ":5:23: simulation.workers", "greater than or equal to 1"),
    (BASE + "statistics: {alpha: 0.05}\nstatistics: {alpha: 0.01}\n", ":6:1: statistics", "duplicate key"),
    (BASE + "x: !!python/object/apply:os.system ['echo hacked']\n", ":5:4", "not valid YAML"),
    # names the results store uses itself, or that no file system takes
    (BASE.replace("name: demo", "name: index.json"), ":1:7: name", "'index.json' is reserved"),
    (BASE.replace("name: demo", "name: INDEX.JSON"), ":1:7: name", "'INDEX.JSON' is reserved"),
    (BASE.replace("name: demo", "name: .tmp-x"), ":1:7: name", "'.tmp-x' starts with '.'"),
    (BASE.replace("name: demo", "name: .index.lock"), ":1:7: name", "'.index.lock' starts with '.'"),
    (BASE.replace("name: demo", "name: " + "x" * 300), ":1:7: name", "too long (300 characters; at most 200"),
    # user metrics that would crash the run: types checked against the contract at validate time
    (_user_metric("query"), ":7:47: metrics[1].numerator.column",
     "'query' is a string column; a metric sums numbers or true/false"),
    (_user_metric("ts"), ":7:47: metrics[1].numerator.column", "'ts' is a timestamp column"),
    (_user_metric("clicked", "query"), ":7:66: metrics[1].numerator.filter",
     "'query' is a string column; a filter is a condition (true/false)"),
    (_user_metric("clicked", "query > 1"), ":7:66: metrics[1].numerator.filter",
     "cannot compare 'query' (string) with 1 (number)"),
    (_user_metric("-clicked"), ":7:47: metrics[1].numerator.column",
     "'clicked' is a true/false column; arithmetic (unary -) needs numbers"),
    (_user_metric("clicked + 1"), ":7:47: metrics[1].numerator.column",
     "'clicked' is a true/false column; arithmetic (+) needs numbers"),
    (_user_metric("clicked", "position IS 1"), ":7:66: metrics[1].numerator.filter",
     "IS takes only NULL, TRUE or FALSE"),
    (_user_metric("clicked", "query BETWEEN 1 AND 2"), ":7:66: metrics[1].numerator.filter",
     "'query BETWEEN 1 AND 2': cannot compare 'query' (string) with 1 (number)"),
    (_user_metric("(1, 2)"), ":7:47: metrics[1].numerator.column", "tuples (a, b) are not allowed"),
    (_user_metric("clicked", "position IN ((1, 2))"), ":7:66: metrics[1].numerator.filter",
     "tuples (a, b) are not allowed"),
    (_user_metric("clicked", "ts > 'yesterday'"), ":7:66: metrics[1].numerator.filter",
     "'yesterday' is not a timestamp"),
    (_user_metric("1e400"), ":7:47: metrics[1].numerator.column", "1e400 is too large a number"),
    # expressions too large for the parser or the database, and YAML too deep for the YAML parser
    (_user_metric(" + ".join(["orders"] * 1500)), ":7:47: metrics[1].numerator.column",
     "is too long (13,497 characters; at most 1,000)"),
    (_user_metric("+".join(["orders"] * 140)), ":7:47: metrics[1].numerator.column",
     "is too long (279 parts; at most 200)"),
    (_user_metric("clicked", "(" * 3000 + "clicked" + ")" * 3000), ":7:66: metrics[1].numerator.filter", "is too long"),
    (_user_metric("clicked", "(" * 30 + "clicked" + ")" * 30), ":7:66: metrics[1].numerator.filter",
     "is too deeply nested (30 levels of parentheses; at most 20)"),
    (_user_metric("clicked", "NOT " * 3000 + "clicked"), ":7:66: metrics[1].numerator.filter", "is too long"),
    (_user_metric("clicked", "NOT " * 60 + "clicked"), ":7:66: metrics[1].numerator.filter",
     "is too deeply nested (61 levels; at most 50)"),
    (BASE + "owner: " + "[" * 3000 + "]" * 3000 + "\n", "", "too deeply nested (3,001 levels of YAML lists"),
    (BASE + "x:\n" + "".join("  " * k + "- \n" for k in range(1, 3000)), "", "too deeply nested (3,000 levels"),
    # numbers the schema took and the run choked on
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, cap_value: .nan}\n", ":6:48: metrics[0].cap_value",
     "finite number"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, cap_value: .inf}\n", ":6:48: metrics[0].cap_value",
     "finite number"),
    (BASE + "statistics: {pre_period_days: 1.0e+20}\n", ":5:31: statistics.pre_period_days", "exceeded maximum size"),
    (BASE + "statistics: {pre_period_days: 10000}\n", ":5:31: statistics.pre_period_days",
     "less than or equal to 3650"),
    (BASE + "data: {world: {seed: -1}}\n", ":5:22: data.world.seed", "greater than or equal to 0"),
    (BASE + "data: {world: {preset: onesarch}}\n", ":5:24: data.world.preset",
     "unknown world preset 'onesarch' (did you mean 'onesearch'?); expected one of classic, onesearch"),
    (BASE + "simulation: {seed: 9223372036854775808}\n", ":5:20: simulation.seed",
     "less than or equal to 9223372036854775807"),
    (BASE + "data: {world: {users: 1.0e+12}}\n", ":5:23: data.world.users", "less than or equal to 10000000"),
    (BASE + "decision: {latency_margin: .inf}\n", ":5:28: decision.latency_margin", "finite number"),
    (BASE + "metrics:\n  - {name: item_ctr, role: primary, mde: .inf}\n", ":6:42: metrics[0].mde", "finite number"),
]


@pytest.mark.parametrize("text,where,message", MISTAKES, ids=[m[2][:40] for m in MISTAKES])
def test_mistake_is_located_and_explained(text, where, message):
    exp, problems = experiment_problems(Path("exp.yaml"), text)
    assert exp is None
    assert problems, "no problem reported"
    assert any(where in p and message in p for p in problems), problems
    assert all(p.startswith("exp.yaml") for p in problems)


def test_all_problems_are_listed_at_once():
    text = BASE.replace("ranker: v2", "ranker: v9") + "statistics: {alpha: 3, corection: holm}\n"
    _, problems = experiment_problems(Path("exp.yaml"), text)
    assert len(problems) == 3, problems


def test_examples_are_valid_and_reference_the_schema():
    for f in sorted((Path(__file__).parents[1] / "experiments").glob("*.yaml")):
        exp, problems = experiment_problems(f, f.read_text())
        assert not problems, problems
        assert f.read_text().startswith("# yaml-language-server: $schema=./experiment.schema.json")


def test_shipped_json_schema_is_current():
    shipped = (Path(__file__).parents[1] / "experiments" / "experiment.schema.json").read_text()
    assert json.loads(shipped) == json.loads(json_schema())


def test_ten_line_file_is_enough():
    exp, problems = experiment_problems(Path("exp.yaml"), BASE)
    assert not problems
    assert exp.control_arm.name == "control" and exp.statistics.alpha == 0.05 and exp.data.mode == "offline"


def test_a_name_of_200_characters_is_fine_and_the_store_names_are_reserved():
    from abplatform.config import MAX_NAME_LENGTH, RESERVED_NAMES
    from abplatform.store import INDEX

    exp, problems = experiment_problems(Path("exp.yaml"), BASE.replace("name: demo", "name: " + "x" * 200))
    assert not problems and exp.name == "x" * MAX_NAME_LENGTH
    assert INDEX in RESERVED_NAMES
    for ok in ("index.json.v2", "my.index.json", "a..b"):
        assert not experiment_problems(Path("exp.yaml"), BASE.replace("name: demo", f"name: {ok}"))[1], ok
