"""Property: a user metric that the experiment file's validation accepts runs through the real
metrics engine on a tiny log without a database error (random expressions over the contract's
session and impression columns, well- and ill-typed alike)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from abplatform.config import Experiment
from abplatform.contract import IMPRESSIONS, SESSIONS
from abplatform.dataset import Dataset
from abplatform.errors import EvaluationError, InputError
from abplatform.metrics.engine import MetricsEngine
from abplatform.scorecard import experiment_metrics
from tests.bad_inputs import write_tiny

COLUMNS = sorted({c.name for c in (*SESSIONS.columns, *IMPRESSIONS.columns)})
LITERALS = ["0", "1", "3", "-2", "2.5", "100000", "1e300", "1e400", "99999999999999999999",
            "'tail'", "'shoes'", "''", "'2024-05-01'", "'2024-05-01 12:00:00'", "'abc'", "'2024-13-01'",
            "TRUE", "FALSE", "NULL"]
BINARY = ["+", "-", "*", "/", "=", "<>", "<", "<=", ">", ">=", "AND", "OR"]

atoms = st.sampled_from(COLUMNS) | st.sampled_from(LITERALS)


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(BINARY), inner),
        st.builds(lambda op, a: f"{op} {a}", st.sampled_from(["NOT", "-"]), inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda a, rhs: f"{a} IS {rhs}", inner, st.sampled_from(["NULL", "NOT NULL", "TRUE", "FALSE", "1"])),
        st.builds(lambda a, lo, hi: f"{a} BETWEEN {lo} AND {hi}", inner, inner, inner),
        st.builds(lambda a, xs: f"{a} IN ({', '.join(xs)})", inner, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda a, b: f"({a}, {b})", inner, inner),
    )


any_typed = st.recursive(atoms, _extend, max_leaves=6)  # mostly ill-typed

# well-typed on purpose: numbers and conditions built from the contract's numeric / bool / string columns
NUMERIC = [c.name for c in (*SESSIONS.columns, *IMPRESSIONS.columns) if c.type_name.startswith(("int", "double"))]
BOOL = [c.name for c in (*SESSIONS.columns, *IMPRESSIONS.columns) if c.type_name == "bool"]
STRING = [c.name for c in (*SESSIONS.columns, *IMPRESSIONS.columns) if c.type_name == "string"]
numbers = st.recursive(
    st.sampled_from(NUMERIC) | st.sampled_from(["0", "1", "2.5", "100000", "1e300", "NULL"]),
    lambda n: st.builds(lambda a, op, b: f"({a} {op} {b})", n, st.sampled_from(["+", "-", "*", "/"]), n)
    | st.builds(lambda a: f"-{a}", n), max_leaves=5)
conditions = st.recursive(
    st.sampled_from(BOOL)
    | st.builds(lambda a, op, b: f"{a} {op} {b}", numbers, st.sampled_from(["=", "<>", "<", ">="]), numbers)
    | st.builds(lambda c: f"{c} = 'tail'", st.sampled_from(STRING))
    | st.builds(lambda a, lo, hi: f"{a} BETWEEN {lo} AND {hi}", numbers, numbers, numbers)
    | st.sampled_from(["ts >= '2024-05-01'", "arm IS NULL", "propensity IS NOT NULL", "position IN (1, 2, NULL)"]),
    lambda c: st.builds(lambda a, op, b: f"({a} {op} {b})", c, st.sampled_from(["AND", "OR"]), c)
    | st.builds(lambda a: f"NOT {a}", c) | st.builds(lambda a: f"{a} IS FALSE", c), max_leaves=4)
expressions = any_typed | numbers | conditions
TRIED = {"configs": 0, "accepted": 0}


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory) -> Dataset:
    return Dataset(write_tiny(tmp_path_factory.mktemp("tiny") / "logs"))


def _experiment(agg: str, column: str | None, filter: str | None) -> Experiment:
    numerator = {"agg": agg, **({"column": column} if column else {}), **({"filter": filter} if filter else {})}
    return Experiment.model_validate({
        "name": "prop", "arms": [{"name": "control", "ranker": "v1"}, {"name": "treatment", "ranker": "v2"}],
        "data": {"path": "logs"}, "segments": [],
        "metrics": [{"name": "item_ctr", "role": "primary"},
                    {"name": "x", "type": "ratio", "numerator": numerator,
                     "denominator": {"agg": "count", **({"filter": filter} if filter else {})}}]})


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(agg=st.sampled_from(["sum", "max", "count"]), column=expressions, filter=st.none() | expressions)
def test_what_validates_runs(tiny_log: Dataset, agg: str, column: str, filter: str | None) -> None:
    TRIED["configs"] += 1
    try:
        exp = _experiment(agg, column, filter)
    except ValidationError:
        return
    TRIED["accepted"] += 1
    metrics = experiment_metrics(exp)
    try:
        engine = MetricsEngine(tiny_log, metrics)
        try:
            engine.sufficient_stats(metrics)
        finally:
            engine.close()
    except (InputError, EvaluationError):
        pass


def test_report_counts() -> None:
    """Runs after the property (file order): it was exercised, and some of it was accepted."""
    print(f"\nexpression property: {TRIED['configs']} configs tried, {TRIED['accepted']} accepted")  # noqa: T201
    if TRIED["configs"]:
        assert TRIED["configs"] >= 300 and TRIED["accepted"] >= 30, TRIED


def test_known_good_expressions_are_accepted_and_run(tiny_log: Dataset) -> None:
    for column, filter in [("clicked", "position <= 3"),
                           ("revenue * 2 - orders", "query_segment = 'tail' AND NOT is_new_user"),
                           ("orders * 100000 * 100000", None),  # computed as DOUBLE: no INT32 overflow
                           ("position", "ts > '2024-01-01' AND arm IS NOT NULL"),
                           ("-revenue", "position IN (1, 2, 3) AND clicked IS TRUE"),
                           ("1", "query BETWEEN 'a' AND 'm'")]:
        exp = _experiment("sum", column, filter)
        metrics = experiment_metrics(exp)
        engine = MetricsEngine(tiny_log, metrics)
        try:
            engine.sufficient_stats(metrics)
        finally:
            engine.close()

