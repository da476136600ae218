"""No way in through config or data: YAML is loaded safely, filters and user metrics cannot inject
SQL or call functions, identifiers and paths are quoted, the dashboard binds to loopback and only
parses JSON, and a dotted-path ranker is imported only when the user runs that experiment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abplatform.config import experiment_problems
from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.expressions import ExpressionError, parse_expression, to_sql
from tests.bad_inputs import tiny_experiment, write_tiny
from tests.report.factory import report

BASE = "name: sec\narms:\n  - {name: control, ranker: v1}\n  - {name: treatment, ranker: v2}\n"


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abplatform.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_refused(res: subprocess.CompletedProcess, *needles: str) -> list[str]:
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out, out
    for n in needles:
        assert n in res.stderr, res.stderr
    return res.stderr.strip().splitlines()


def no_run_written(folder: Path) -> bool:
    results = folder / "results"
    return not results.exists() or (not (results / "index.json").exists()
                                    and not [d for d in results.iterdir() if d.is_dir()])


# --- YAML --------------------------------------------------------------------------------------

PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/module:os",
    "!!python/object:abplatform.config.Experiment {{}}",
]


@pytest.mark.parametrize("tag", PYTHON_TAGS, ids=[t.split()[0] for t in PYTHON_TAGS])
def test_yaml_python_tags_are_rejected(tag, tmp_path):
    marker = tmp_path / "pwned"
    exp, problems = experiment_problems(Path("e.yaml"), BASE + "description: " + tag.format(marker=marker) + "\n")
    assert exp is None and any("not valid YAML" in p for p in problems), problems
    assert not marker.exists()


@pytest.mark.slow
def test_yaml_tag_through_the_cli_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "e.yaml").write_text(BASE + f"owner: !!python/object/apply:os.system ['touch {marker}']\n")
    for command in ("validate", "run"):
        lines = assert_refused(cli(command, "e.yaml", cwd=tmp_path), "e.yaml:5:", "not valid YAML")
        assert len(lines) == 1
    assert not marker.exists() and no_run_written(tmp_path)


def _alias_bomb(levels: int = 9) -> str:
    names = "abcdefghijkl"[:levels]
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    text += "".join(f"{c}: &{c} [" + ", ".join([f"*{p}"] * 9) + "]\n" for p, c in zip(names, names[1:]))
    return text + BASE


@pytest.mark.slow
def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    (tmp_path / "bomb.yaml").write_text(_alias_bomb())
    start = time.monotonic()
    try:
        res = cli("validate", "bomb.yaml", cwd=tmp_path, timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail("abplatform validate did not answer an alias bomb within 8 s")
    assert time.monotonic() - start < 8
    assert_refused(res, "bomb.yaml")


# --- expressions -------------------------------------------------------------------------------

INJECTIONS = [
    ("1=1; DROP TABLE sessions", "must be one expression"),
    ("clicked; DROP TABLE impressions; --", "must be one expression"),
    ("position IN (SELECT 1)", "sub-queries are not allowed"),
    ("EXISTS (SELECT * FROM sessions)", "not allowed"),
    ("(SELECT COUNT(*) FROM read_csv('/etc/passwd')) > 0", "not allowed"),
    ("read_csv('/etc/passwd')", "function calls are not allowed"),
    ("read_parquet('/etc/shadow') IS NULL", "function calls are not allowed"),
    ("getenv('HOME') = 'x'", "not allowed"),
    ("length(query) > 3", "function calls are not allowed"),
    ("clicked::VARCHAR = 'true'", "not allowed"),
    ("CAST(clicked AS INT) = 1", "not allowed"),
    ("CASE WHEN clicked THEN 1 ELSE 0 END = 1", "not allowed"),
    ("query LIKE '%a%'", "not allowed"),
    ("sessions.arm = 'control'", "without a table name"),
    ("src.main.sessions.arm = 'x'", "without a table name"),
    ('"read_csv(\'/etc/passwd\')" = 1', "unknown column"),
    ("password = 'x'", "unknown column"),
    ("$1 = 1", "not allowed"),
    ("clicked OR 1=1) UNION SELECT * FROM read_csv('/etc/passwd') --", "cannot parse"),
]


@pytest.mark.parametrize("text,why", INJECTIONS, ids=[t for t, _ in INJECTIONS])
def test_filters_cannot_inject_sql_or_call_functions(text, why):
    with pytest.raises(ExpressionError) as err:
        parse_expression(text)
    assert why in str(err.value), str(err.value)


def test_a_string_literal_full_of_sql_stays_a_literal(tmp_path):
    from abplatform.metrics.engine import MetricsEngine
    from abplatform.scorecard import _unit_column
    from abplatform.config import Aggregate
    from abplatform.metrics.base import Metric

    evil = "x'); DROP TABLE sessions; SELECT * FROM read_csv('/etc/passwd'); --"
    expr = "query = '" + evil.replace("'", "''") + "' OR query = 'shoes'"
    sql = to_sql(parse_expression(expr))
    assert sql.count("sq.query") == 2 and "DROP TABLE" in sql  # inside the quoted literal, re-escaped
    col = _unit_column("u_evil", Aggregate(agg="count", filter=expr))
    metric = Metric("evil", "mean", "u_evil", columns=(col,))
    ds = Dataset(write_tiny(tmp_path / "logs"))
    engine = MetricsEngine(ds, [metric])
    try:
        got = engine.sufficient_stats([metric])
        assert engine.con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] > 0  # still there
    finally:
        engine.close()
    # only the 'shoes' sessions' impressions are counted: the literal matched nothing
    import pyarrow.parquet as pq

    s = pq.read_table(tmp_path / "logs" / "sessions.parquet").to_pandas()
    i = pq.read_table(tmp_path / "logs" / "impressions.parquet").to_pandas().merge(s, on="session_id")
    assert got["sum_x"].sum() == (i["query"] == "shoes").sum()


@pytest.mark.slow
def test_user_metric_injection_end_to_end(tmp_path):
    write_tiny(tmp_path / "logs")
    extra = ("metrics:\n  - {name: item_ctr, role: primary}\n"
             "  - {name: a, type: mean, numerator: {column: clicked, filter: \"1=1; DROP TABLE sessions\"}}\n"
             "  - {name: b, type: mean, numerator: {column: \"read_csv('/etc/passwd')\"}}\n"
             "  - {name: c, type: mean, numerator: {column: clicked, filter: \"position IN (SELECT 1)\"}}\n"
             "  - {name: d, type: ratio, numerator: {column: clicked}, denominator: {agg: count, "
             "filter: \"getenv('HOME') IS NULL\"}}\n")
    tiny_experiment(tmp_path, extra=extra)
    for command in ("validate", "analyze"):
        lines = assert_refused(cli(command, "tiny.yaml", cwd=tmp_path), "must be one expression",
                               "function calls are not allowed", "sub-queries are not allowed")
        assert len(lines) == 4, lines
        assert all(line.startswith("error: tiny.yaml:") for line in lines)
    assert no_run_written(tmp_path)


def test_mapped_column_names_are_quoted_identifiers(tmp_path):
    write_tiny(tmp_path / "logs")
    evil = 'unit_id" FROM read_csv(\'/etc/passwd\') --'
    with pytest.raises(InputError, match="source column .* not found"):
        Dataset(tmp_path / "logs", mapping={"sessions": {"unit_id": evil}}).connect()


def test_paths_with_quotes_are_quoted(tmp_path):
    from abplatform.validate import validate_dataset

    folder = write_tiny(tmp_path / "lo'gs; DROP TABLE x; --")
    assert validate_dataset(Dataset(folder))["sessions"] > 0


# --- dashboard ---------------------------------------------------------------------------------

def test_dashboard_binds_loopback_by_default(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from abplatform import cli as cli_mod

    names = {c.name or c.callback.__name__ for c in cli_mod.app.registered_commands}
    if "dashboard" not in names:
        pytest.skip("no 'abplatform dashboard' command yet")
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append(argv))
    res = CliRunner().invoke(cli_mod.app, ["dashboard", "--results", str(tmp_path)])
    assert res.exit_code == 0, res.output
    (argv,) = calls
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert "--browser.gatherUsageStats" in argv
    # no shipped Streamlit config overrides the address
    for cfg in (Path(cli_mod.__file__).parents[1] / "dashboards").rglob("config.toml"):
        assert "0.0.0.0" not in cfg.read_text(), cfg


EVIL = "import pathlib\npathlib.Path(__file__).with_suffix('.imported').write_text('imported')\nclass Evil:\n    pass\n"


@pytest.fixture
def evil_module(tmp_path) -> tuple[Path, Path]:
    pkg = tmp_path / "plugins"
    pkg.mkdir()
    (pkg / "evil_ranker_mod.py").write_text(EVIL)
    return pkg, pkg / "evil_ranker_mod.imported"


def test_dashboard_loader_only_parses_json(evil_module, tmp_path, monkeypatch):
    from abplatform import dashboard_data as dd
    from abplatform.store import ResultsStore

    pkg, marker = evil_module
    monkeypatch.syspath_prepend(str(pkg))
    root = tmp_path / "results"

    def write(run: Path) -> None:
        (run / "experiment.yaml").write_text(BASE.replace("ranker: v2", "ranker: evil_ranker_mod:Evil"))
        (run / "config.json").write_text(json.dumps({"arms": [{"name": "t", "ranker": "evil_ranker_mod:Evil"}]}))
        # a complete report whose treatment arm is named like the ranker's dotted path
        rep = report(experiment="sec", run_id="r1", treatment="evil_ranker_mod:Evil")
        (run / "report.json").write_text(rep.to_json())

    ResultsStore(root).write_run("sec", "r1", write, {"created": "now"})
    entries = dd.read_index(root)
    assert dd.read_report(root, entries[0]["path"])["treatment"] == "evil_ranker_mod:Evil"
    assert dd.read_config(root, entries[0]["path"])["arms"][0]["ranker"] == "evil_ranker_mod:Evil"
    dd.runs_frame(entries)
    assert not marker.exists() and "evil_ranker_mod" not in sys.modules
    with pytest.raises(ValueError, match="outside the results folder"):
        dd.run_dir(root, "../../etc")


# --- dotted-path rankers -----------------------------------------------------------------------

@pytest.mark.slow
def test_dotted_ranker_is_imported_only_by_run(evil_module, tmp_path):
    pkg, marker = evil_module
    env = {"PYTHONPATH": str(pkg)}
    write_tiny(tmp_path / "logs")
    tiny_experiment(tmp_path, extra="")
    yaml = (tmp_path / "tiny.yaml").read_text().replace("ranker: v2", "ranker: evil_ranker_mod:Evil")
    (tmp_path / "tiny.yaml").write_text(yaml)
    res = cli("validate", "tiny.yaml", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert not marker.exists(), "validate imported the ranker module"
    # the online analysis of a log and the gate on its run folder do not build rankers either
    res = cli("analyze", "tiny.yaml", "--no-segments", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    run_dir = next(p for p in (tmp_path / "results" / "tiny").iterdir() if not p.name.startswith("."))
    res = cli("gate", str(run_dir), cwd=tmp_path, env=env)
    assert res.returncode in (0, 1), res.stderr
    assert not marker.exists(), "analyze / gate imported the ranker module"
    # running the experiment offline is the one place it is loaded (here: refused, it is no ranker)
    (tmp_path / "off.yaml").write_text(yaml.replace("data: {path: logs}", "data: {path: logs, mode: offline}"))
    res = cli("run", "off.yaml", cwd=tmp_path, env=env)
    assert_refused(res, "is not a ranker")
    assert marker.exists()


# --- plug-ins are classes: nothing else named by a dotted path is called -----------------------------

NOT_RANKERS = {
    "os:system": ("command", "is not a ranker class but a function"),
    "subprocess:Popen": ("args", "is not a ranker (class Popen has no fit or score method)"),
    "subprocess:check_call": ("args", "is not a ranker class but a function"),
    "builtins:exec": ("source", "is not a ranker class but a function"),
    "os:sep": (None, "is not a ranker class but a str value"),
    "pathlib:Path": (None, "is not a ranker (class Path has no fit or score method)"),
}


@pytest.mark.parametrize("name", list(NOT_RANKERS))
def test_a_dotted_ranker_that_is_not_a_ranker_class_is_refused_before_it_is_called(name, tmp_path):
    from abplatform.rankers import make_ranker

    marker = tmp_path / "pwned"
    arg, message = NOT_RANKERS[name]
    command = {"command": f"touch {marker}", "args": ["touch", str(marker)],
               "source": f"open({str(marker)!r}, 'w').close()"}
    params = {arg: command[arg]} if arg else {}
    with pytest.raises(InputError) as err:
        make_ranker(name, params, where="e.yaml: arms[1].ranker")
    assert str(err.value).startswith(f"e.yaml: arms[1].ranker: {name!r} ") and message in str(err.value)
    assert "fit(dataset, catalog) and score(batch)" in str(err.value)
    time.sleep(0.05)  # a Popen would have run by now
    assert not marker.exists()


def test_a_ranker_class_needs_callable_fit_and_score(tmp_path, monkeypatch):
    from abplatform.rankers import make_ranker

    (tmp_path / "half_rankers.py").write_text(
        "CALLS = []\n"
        "class NoScore:\n    name = 'x'\n    def __init__(self):\n        CALLS.append('init')\n"
        "    def fit(self, dataset, catalog):\n        return self\n"
        "class ScoreNotCallable(NoScore):\n    score = 3\n"
        "class Good(NoScore):\n    def score(self, batch):\n        return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import half_rankers

    for cls in ("NoScore", "ScoreNotCallable"):
        with pytest.raises(InputError, match=f"class {cls} has no score method"):
            make_ranker(f"half_rankers:{cls}")
    assert half_rankers.CALLS == []  # never instantiated
    assert make_ranker("half_rankers:Good").name == "x" and half_rankers.CALLS == ["init"]


@pytest.mark.parametrize("expression", [
    "CAST(a AS \"x) AS clicked, 1 AS y FROM t --\")",  # a quoted type name would be written back as SQL
    "CAST(a AS \"INT) > 0; COPY (SELECT 42) TO 'pwned.csv'; SELECT (1\")",
    "CAST(a AS STRUCT(b INT))",
    "read_csv('/etc/passwd')",
])
def test_mapping_expressions_cannot_carry_sql(expression):
    from abplatform.expressions import ExpressionError, check_mapping_expression

    with pytest.raises(ExpressionError):
        check_mapping_expression(expression)


def test_mapping_casts_are_rebuilt_from_their_kind():
    from abplatform.expressions import check_mapping_expression, mapping_sql

    assert mapping_sql(check_mapping_expression("CAST(slot AS BIGINT) > 0 AND \"my col\" = 'a'")) == \
        "CAST(\"slot\" AS BIGINT) > 0 AND \"my col\" = 'a'"
