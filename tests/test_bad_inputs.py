"""The bad-input corpus: each case breaks one thing in a tiny valid log (or summary file), runs the
real CLI in a subprocess and expects one clear line naming the file and the field / line, exit
code 2, no traceback and nothing written to the results store.

The table in ``docs/bad_inputs.md`` is generated from ``CASES`` (and the YAML mistakes of
``tests/test_config_errors.py``); ``test_doc_is_in_sync`` keeps it current. Regenerate it with
``.venv/bin/python -m tests.test_bad_inputs``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.bad_inputs import tiny_experiment, tiny_tables, write_tiny

DOC = Path(__file__).parents[1] / "docs" / "bad_inputs.md"
Tables = dict[str, pa.Table]


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # what is wrong, for the docs
    command: str  # analyze | run | check-data | analyze-summary
    build: Callable[[Path], list[str]]  # writes the inputs into a folder, returns the CLI arguments
    where: str  # the file the message must name
    expect: tuple[str, ...]  # fragments of that one line
    lines: int = 1
    xfail: str | None = None
    exit: int = 2  # 2: invalid input ("error: ..." lines), 3: could not evaluate ("cannot evaluate: ...")
    shown: str | None = None  # the command line in the docs, when it is not ``abplatform COMMAND ...``
    env: tuple[tuple[str, str], ...] = ()  # environment variables of the CLI process
    after: Callable[[Path], None] | None = None  # checks the folder afterwards (nothing destroyed or half-written)
    not_as_root: str | None = None  # why the case cannot be run as root (skipped then)


# --- building blocks ---------------------------------------------------------------------------

def _set(t: pa.Table, col: str, values, nullable: bool = False) -> pa.Table:
    i = t.schema.get_field_index(col)
    field = t.schema.field(i)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=field.type)
    return t.set_column(i, pa.field(col, arr.type, nullable=nullable or field.nullable), arr)


def _edit(t: pa.Table, col: str, row: int, value, nullable: bool = False) -> pa.Table:
    values = t[col].to_pylist()
    values[row] = value
    return _set(t, col, pa.array(values, type=t.schema.field(col).type), nullable)


def logs(command: str, mutate: Callable[[Tables], None] | None = None, after: Callable[[Path], None] | None = None,
         yaml_extra: str = "", data: str = "logs") -> Callable[[Path], list[str]]:
    """A builder: the tiny log, ``mutate`` applied to its tables, ``after`` applied to its files."""
    def build(folder: Path) -> list[str]:
        tables = tiny_tables()
        if mutate:
            mutate(tables)
        write_tiny(folder / "logs", tables)
        if after:
            after(folder / "logs")
        if command == "check-data":
            return ["check-data", data]
        tiny_experiment(folder, data=data, extra=yaml_extra)
        return [command, "tiny.yaml", "--no-segments"]
    return build


def table_op(name: str, fn: Callable[[pa.Table], pa.Table]) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[name] = fn(tables[name])
    return mutate


def to_csv(name: str, delimiter: str = ",", edit: Callable[[str], str] | None = None,
           encoding: str = "utf-8") -> Callable[[Path], None]:
    def after(folder: Path) -> None:
        f = folder / f"{name}.parquet"
        csv = folder / f"{name}.csv"
        pacsv.write_csv(pq.read_table(f), csv, pacsv.WriteOptions(delimiter=delimiter, quoting_style="none"))
        f.unlink()
        text = csv.read_text()
        csv.write_bytes((edit(text) if edit else text).encode(encoding))
    return after


def csv_cell(line: int, column: int, value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        rows = text.splitlines()
        cells = rows[line - 1].split(",")
        cells[column] = value
        rows[line - 1] = ",".join(cells)
        return "\n".join(rows) + "\n"
    return edit


def first_unit_with_sessions(t: pa.Table, k: int) -> int:
    units = t["unit_id"].to_pylist()
    return next(i for i, u in enumerate(units) if units.count(u) >= k)


def unit_in_two_arms(tables: Tables) -> None:
    s = tables["sessions"]
    row = first_unit_with_sessions(s, 2)
    arm = s["arm"][row].as_py()
    tables["sessions"] = _edit(s, "arm", row, "treatment" if arm == "control" else "control")


def first_purchase(t: pa.Table) -> int:
    return t["orders"].to_pylist().index(next(o for o in t["orders"].to_pylist() if o > 0))


def unknown_arm(tables: Tables) -> None:
    """Every session of one unit logged in an arm the experiment does not have."""
    s = tables["sessions"]
    arms = ["v3" if u == "u000" else a for u, a in zip(s["unit_id"].to_pylist(), s["arm"].to_pylist(), strict=True)]
    tables["sessions"] = _set(s, "arm", arms)


def csv_purchase_cell(column: int, value: str) -> Callable[[str], str]:
    """Set a cell of the first CSV row with an order (orders is column 5)."""
    def edit(text: str) -> str:
        rows = text.splitlines()
        line = next(k for k, r in enumerate(rows[1:], 1) if r.split(",")[5] not in ("0", ""))
        cells = rows[line].split(",")
        cells[column] = value
        rows[line] = ",".join(cells)
        return "\n".join(rows) + "\n"
    return edit


def position_gap(t: pa.Table) -> pa.Table:
    return _edit(t, "position", 4, 9)  # session 1 shows positions 1..4 and 9: 5..8 were never shown


def unknown_session(t: pa.Table) -> pa.Table:
    sid = t["session_id"].to_pylist()
    return _set(t, "session_id", [999_999 if s == sid[0] else s for s in sid])


def purchase_without_click(t: pa.Table) -> pa.Table:
    row = t["clicked"].to_pylist().index(False)
    t = _edit(t, "purchased", row, True)
    t = _edit(t, "orders", row, 1)
    return _edit(t, "revenue", row, 19.5)


def orders_without_purchase(t: pa.Table) -> pa.Table:
    row = t["purchased"].to_pylist().index(False)
    return _edit(t, "orders", row, 2)


def purchase_without_order(t: pa.Table) -> pa.Table:
    row = t["purchased"].to_pylist().index(True)
    t = _edit(t, "orders", row, 0)
    return _edit(t, "revenue", row, 0.0)


def revenue_without_order(t: pa.Table) -> pa.Table:
    row = t["orders"].to_pylist().index(0)
    return _edit(t, "revenue", row, 12.0)


def before_pre_period(t: pa.Table) -> pa.Table:
    return _edit(t, "ts", 3, datetime(2026, 5, 27, 12, tzinfo=UTC))


def ts_no_tz(t: pa.Table) -> pa.Table:
    return _set(t, "ts", t["ts"].cast(pa.timestamp("us")))


def empty_file(folder: Path) -> None:
    (folder / "impressions.parquet").write_bytes(b"")


def truncate(folder: Path) -> None:
    f = folder / "impressions.parquet"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def corrupt(folder: Path) -> None:
    f = folder / "impressions.parquet"
    data = bytearray(f.read_bytes())
    for i in range(200, 1200):
        data[i] ^= 0x5A
    f.write_bytes(bytes(data))


def not_parquet(folder: Path) -> None:
    (folder / "sessions.parquet").write_text("session_id,unit_id\n1,u001\n")


def world_json(folder: Path) -> None:
    (folder / "world.json").write_text(json.dumps({"experiment_window": ["2026-06-01", "2026-06-05"],
                                                   "pre_window": ["2026-05-25", "2026-06-01"]}))


def no_candidates_offline(folder: Path) -> list[str]:
    write_tiny(folder / "logs", tiny_tables(with_arm=False))
    tiny_experiment(folder, extra="").write_text(
        (folder / "tiny.yaml").read_text().replace("data: {path: logs}", "data: {path: logs, mode: offline}"))
    return ["run", "tiny.yaml", "--no-segments"]


def to_duckdb(only: tuple[str, ...] | None = None) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        con = duckdb.connect(str(folder / "logs.duckdb"))
        for name, t in tiny_tables().items():
            if only is None or name in only:
                con.register("t", t)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM t")
                con.unregister("t")
        con.close()
        return ["check-data", "logs.duckdb"]
    return build


def not_a_database(folder: Path) -> list[str]:
    (folder / "logs.duckdb").write_text("just some text, not a duckdb database\n")
    tiny_experiment(folder, data="logs.duckdb")
    return ["analyze", "tiny.yaml", "--no-segments"]


def world_into(out: str, make: Callable[[Path], None], *flags: str) -> Callable[[Path], list[str]]:
    """``world generate --out OUT`` (a tiny world) after ``make(folder)`` put something there."""
    def build(folder: Path) -> list[str]:
        make(folder)
        return ["world", "generate", "--out", out, "--users", "50", "--items", "1000", "--days", "1",
                "--pre-days", "1", *flags]
    return build


def someone_elses_folder(folder: Path) -> None:
    (folder / "mydata").mkdir()
    (folder / "mydata" / "notes.txt").write_text("months of work\n")


def someone_elses_file(folder: Path) -> None:
    (folder / "notes.txt").write_text("months of work\n")


def untouched(*names: str) -> Callable[[Path], None]:
    def check(folder: Path) -> None:
        for name in names:
            assert (folder / name).read_text() == "months of work\n", name
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".tmp-")]
    return check


def ranker_run(ranker: str, params: str = "{}") -> Callable[[Path], list[str]]:
    """``run`` of an offline experiment whose treatment ranker is ``ranker`` with ``params``."""
    def build(folder: Path) -> list[str]:
        write_tiny(folder / "logs")
        text = tiny_experiment(folder).read_text()
        text = text.replace("data: {path: logs}", "data: {path: logs, mode: offline}")
        (folder / "tiny.yaml").write_text(text.replace("ranker: v2}", f"ranker: '{ranker}', params: {params}}}"))
        return ["run", "tiny.yaml", "--no-segments"]
    return build


def nothing_ran(folder: Path) -> None:
    assert not (folder / "pwned").exists(), "the plug-in was called"


def named(name: str) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        write_tiny(folder / "logs")
        tiny_experiment(folder).write_text((folder / "tiny.yaml").read_text().replace("name: tiny", f"name: {name}"))
        return ["analyze", "tiny.yaml", "--no-segments"]
    return build


def gate_run(*flags: str, report_json: str | None = None) -> Callable[[Path], list[str]]:
    """``gate run FLAGS`` on a run folder holding a complete report (or ``report_json``)."""
    def build(folder: Path) -> list[str]:
        from tests.report.factory import report

        (folder / "run").mkdir()
        (folder / "run" / "report.json").write_text(report().to_json() if report_json is None else report_json)
        (folder / "summary.md").write_text("earlier steps\n")
        return ["gate", "run", *flags]
    return build


def report_without(field: str) -> str:
    from tests.report.factory import report

    doc = report().to_dict()
    del doc[field]
    return json.dumps(doc)


def nothing_half_written(folder: Path) -> None:
    assert (folder / "summary.md").read_text() == "earlier steps\n"
    assert sorted(p.name for p in folder.iterdir()) == ["run", "summary.md"], list(folder.iterdir())


def schema_out(out: str) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        return ["schema", "--out", out]
    return build


def nothing_written(folder: Path) -> None:
    assert not list(folder.iterdir()), list(folder.iterdir())


def results_at(command: str, results: str, make: Callable[[Path], None] | None = None) -> Callable[[Path], list[str]]:
    """``COMMAND tiny.yaml --results RESULTS`` (``run`` of an offline experiment: its replay would be the
    computing) after ``make(folder)``."""
    def build(folder: Path) -> list[str]:
        write_tiny(folder / "logs")
        text = tiny_experiment(folder).read_text()
        if command != "analyze":
            (folder / "tiny.yaml").write_text(text.replace("data: {path: logs}", "data: {path: logs, mode: offline}"))
        if make:
            make(folder)
        return [command, "tiny.yaml", *(["--no-segments"] if command != "gate" else []), "--results", results]
    return build


def nothing_computed(folder: Path) -> None:
    assert not (folder / "data").exists(), "the replay ran before the results folder was checked"
    assert sorted(p.name for p in folder.iterdir() if p.name not in ("results", "notes.txt")) == ["logs", "tiny.yaml"]


def read_only_results(folder: Path) -> None:
    (folder / "results").mkdir()
    (folder / "results").chmod(0o555)


SUMMARY_HEADER = "metric,arm,type,n,sum_x,sum_x2"
GOOD_ROWS = ["revenue,control,mean,400,210.5,900.25", "revenue,treatment,mean,410,230.0,990.0"]


def summary(text: str, name: str = "summary.csv", encoding: str = "utf-8") -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        (folder / name).write_bytes(text.encode(encoding))
        return ["analyze-summary", name]
    return build


def csv_rows(*rows: str, header: str = SUMMARY_HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def summary_out(out: str, file: str | None = None) -> Callable[[Path], list[str]]:
    """``analyze-summary summary.csv --out OUT`` on a good summary file (or ``analyze-summary FILE``)."""
    def build(folder: Path) -> list[str]:
        summary(csv_rows(*GOOD_ROWS))(folder)
        return ["analyze-summary", file or "summary.csv", *(["--out", out] if out else [])]
    return build


def only_the_summary(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["summary.csv"], list(folder.iterdir())


RATIO_HEADER = "metric,arm,type,n,sum_x,sum_x2,sum_y,sum_y2,sum_xy"

# --- the corpus --------------------------------------------------------------------------------

S, I = "logs/sessions.parquet", "logs/impressions.parquet"
CASES: list[Case] = [
    # schema
    Case("missing-column", "sessions without the column query_segment", "analyze",
         logs("analyze", table_op("sessions", lambda t: t.drop_columns(["query_segment"]))), S,
         ("missing column 'query_segment'",)),
    Case("wrong-type", "impressions.position stored as text", "check-data",
         logs("check-data", table_op("impressions", lambda t: _set(t, "position", t["position"].cast(pa.string())))),
         I, ("column 'position' has type VARCHAR, expected int16",)),
    Case("timestamp-without-timezone", "sessions.ts without a time zone", "check-data",
         logs("check-data", table_op("sessions", ts_no_tz)), S,
         ("column 'ts' has type TIMESTAMP, expected timestamp[us, tz=UTC]",)),
    Case("null-unit", "two sessions with a null unit_id", "check-data",
         logs("check-data", table_op("sessions", lambda t: _edit(_edit(t, "unit_id", 0, None, True), "unit_id", 5, None))),
         S, ("2 null value(s) in required column 'unit_id'",)),
    Case("null-clicked", "an impression with clicked = null", "check-data",
         logs("check-data", table_op("impressions", lambda t: _edit(t, "clicked", 7, None, True))), I,
         ("1 null value(s) in required column 'clicked'",)),
    Case("duplicate-position", "the same (session, position) logged twice", "run",
         logs("run", table_op("impressions", lambda t: pa.concat_tables([t, t.slice(2, 1)]))), I,
         ("1 duplicate key(s) (session_id, position), e.g. session_id 1 position 3",)),
    Case("duplicate-session", "a session row logged twice", "check-data",
         logs("check-data", table_op("sessions", lambda t: pa.concat_tables([t, t.slice(4, 1)]))), S,
         ("duplicate key(s) (session_id), e.g. session_id 5",)),
    Case("missing-table", "no impressions table", "check-data",
         logs("check-data", after=lambda f: (f / "impressions.parquet").unlink()), "logs/impressions",
         ("missing table (required",)),
    Case("no-sessions", "a sessions table with zero rows", "check-data",
         logs("check-data", table_op("sessions", lambda t: t.slice(0, 0))), S,
         ("no rows (expected at least one session)",)),
    # impressions: counts and consistency
    Case("negative-orders", "orders = -1 on an impression", "check-data",
         logs("check-data", table_op("impressions", lambda t: _edit(t, "orders", 3, -1))), I,
         ("1 row(s) with negative orders or revenue (expected >= 0), e.g. session_id 1",)),
    Case("purchase-without-click", "an item purchased but not clicked", "check-data",
         logs("check-data", table_op("impressions", purchase_without_click)), I,
         ("purchase without a click (purchased implies clicked)",)),
    Case("orders-without-purchase", "orders > 0 on an item not purchased", "check-data",
         logs("check-data", table_op("impressions", orders_without_purchase)), I,
         ("orders without a purchase (orders must be 0 unless purchased)",)),
    Case("purchase-without-order", "purchased = true with orders = 0", "check-data",
         logs("check-data", table_op("impressions", purchase_without_order)), I,
         ("purchase with no order (orders must be >= 1 when purchased)",)),
    Case("revenue-without-order", "revenue > 0 with orders = 0", "check-data",
         logs("check-data", table_op("impressions", revenue_without_order)), I,
         ("revenue without an order (revenue comes from orders)",)),
    Case("position-zero", "position 0 (positions are 1-based)", "check-data",
         logs("check-data", table_op("impressions", lambda t: _edit(t, "position", 0, 0))), I,
         ("row(s) with position outside 1..50",), lines=2),
    Case("position-never-shown", "a page of 5 with an item at position 9 (5..8 never shown)", "check-data",
         logs("check-data", table_op("impressions", position_gap)), I,
         ("positions that were never shown, e.g. session_id 1 logs position 9 but only 5 item(s)",)),
    Case("unknown-session", "impressions of a session that is not in sessions", "check-data",
         logs("check-data", table_op("impressions", unknown_session)), I,
         ("5 impression(s) whose session_id is not in sessions, e.g. session_id 999999",)),
    Case("nan-revenue", "revenue = NaN on an impression with an order (parquet)", "analyze",
         logs("analyze", table_op("impressions", lambda t: _edit(t, "revenue", first_purchase(t), float("nan")))), I,
         ("1 row(s) with a NaN or infinite value in column 'revenue', e.g. session_id", "= nan")),
    Case("inf-revenue-csv", "revenue = inf in impressions.csv", "check-data",
         logs("check-data", after=to_csv("impressions", edit=csv_purchase_cell(6, "inf"))), "logs/impressions.csv",
         ("1 row(s) with a NaN or infinite value in column 'revenue'", "= inf; expected a finite number")),
    Case("nan-propensity", "a logging propensity of NaN (parquet)", "check-data",
         logs("check-data", table_op("impressions", lambda t: _edit(t, "propensity", 0, float("nan")))), I,
         ("1 row(s) with a NaN or infinite value in column 'propensity', e.g. session_id 1 position 1 = nan",)),
    Case("nan-propensity-csv", "a logging propensity of NaN in impressions.csv (as in parquet)", "check-data",
         logs("check-data", after=to_csv("impressions", edit=csv_cell(2, 7, "nan"))), "logs/impressions.csv",
         ("1 row(s) with a NaN or infinite value in column 'propensity', e.g. session_id 1 position 1 = nan",)),
    Case("inf-pre-period-revenue", "revenue = -inf in the pre-period impressions", "run",
         logs("run", table_op("pre_impressions", lambda t: _edit(t, "revenue", first_purchase(t), float("-inf")))),
         "logs/pre_impressions.parquet", ("NaN or infinite value in column 'revenue'", "= -inf")),
    Case("propensity-above-one", "a logging propensity of 1.5", "check-data",
         logs("check-data", table_op("impressions", lambda t: _edit(t, "propensity", 0, 1.5))), I,
         ("propensity outside (0, 1]",)),
    # sessions: values and time
    Case("unknown-segment", "query_segment 'HEAD' (values are lower-case)", "check-data",
         logs("check-data", table_op("sessions", lambda t: _edit(t, "query_segment", 2, "HEAD"))), S,
         ("column 'query_segment' = 'HEAD'; expected one of head, torso, tail",)),
    Case("session-before-pre-period", "an experiment session dated inside the pre-period", "check-data",
         logs("check-data", table_op("sessions", before_pre_period)), S,
         ("session(s) with column 'ts' at or before the last pre-period session", "e.g. session_id 4")),
    Case("session-in-future", "a session dated in 2100", "check-data",
         logs("check-data", table_op("sessions", lambda t: _edit(t, "ts", 1, datetime(2100, 1, 1, tzinfo=UTC)))),
         S, ("implausible column 'ts', e.g. session_id 2",)),
    Case("epoch-zero", "a pre-period session at 1970-01-01 (ts = 0)", "check-data",
         logs("check-data", table_op("pre_sessions", lambda t: _edit(t, "ts", 0, datetime(1970, 1, 1, tzinfo=UTC)))),
         "logs/pre_sessions.parquet", ("implausible column 'ts'", "after 2000-01-01")),
    Case("outside-world-window", "sessions after the experiment window of world.json", "check-data",
         logs("check-data", after=world_json), S, ("outside the experiment window [2026-06-01, 2026-06-05) of world.json",)),
    # online A/B logs
    Case("unit-in-two-arms", "one user logged in both arms", "analyze",
         logs("analyze", unit_in_two_arms), S, ("1 unit(s) logged in more than one arm",)),
    Case("unit-in-two-arms-check-data", "one user logged in both arms: check-data says what analyze would",
         "check-data", logs("check-data", unit_in_two_arms), S, ("1 unit(s) logged in more than one arm",)),
    Case("session-without-arm", "a session of an online A/B log without an arm", "analyze",
         logs("analyze", table_op("sessions", lambda t: _edit(t, "arm", 3, None))), S,
         ("1 session(s) with no arm, e.g. session_id 4",)),
    Case("arm-not-in-config", "an online log with sessions in arm 'v3' (the experiment has control, treatment)",
         "analyze", logs("analyze", unknown_arm), S,
         ("3 session(s) with arm 'v3', which is not an arm of the experiment (configured arms: control, treatment)",
          "e.g. session_id 1")),
    Case("mapping-unknown-column", "data.mapping names a source column the log does not have", "analyze",
         logs("analyze", yaml_extra="", data="logs"), "tiny.yaml:2:",
         ("data.mapping.sessions.unit_id: source column 'user' not found (did you mean",),
         xfail=None),
    # files
    Case("empty-parquet", "impressions.parquet is an empty (0-byte) file", "check-data",
         logs("check-data", after=empty_file), I, ("empty file (0 bytes), expected a parquet file",)),
    Case("truncated-parquet", "impressions.parquet cut in half (no footer)", "run",
         logs("run", after=truncate), I, ("not a parquet file (truncated: no parquet footer)",)),
    Case("corrupt-parquet", "impressions.parquet with 1 kB of flipped bytes (footer intact)", "analyze",
         logs("analyze", after=corrupt), I, ("cannot read (",)),
    Case("not-parquet", "sessions.parquet that is really a CSV file", "check-data",
         logs("check-data", after=not_parquet), S, ("not a parquet file (another format)",)),
    Case("csv-wrong-delimiter", "sessions.csv separated by '^'", "analyze",
         logs("analyze", after=to_csv("sessions", "^")), "logs/sessions.csv",
         ("read as a single column", "wrong delimiter")),
    Case("csv-latin1", "sessions.csv saved as Latin-1", "check-data",
         logs("check-data", after=to_csv("sessions", edit=lambda s: s.replace("shoes", "chaussures d'été"),
                                      encoding="latin-1")), "logs/sessions.csv:", ("not UTF-8 text (byte 0xe9)",)),
    Case("csv-utf16", "sessions.csv saved as UTF-16", "check-data",
         logs("check-data", after=to_csv("sessions", encoding="utf-16")), "logs/sessions.csv:1",
         ("UTF-16 text; expected the sessions table as UTF-8 CSV",)),
    Case("csv-bad-value", "impressions.csv with position 'abc' on line 4", "check-data",
         logs("check-data", after=to_csv("impressions", edit=csv_cell(4, 1, "abc"))), "logs/impressions.csv:4",
         ("column 'position': 'abc' is not a int16 value",)),
    Case("csv-decimal-comma", "impressions.csv with ';' separators and decimal commas", "check-data",
         logs("check-data", after=to_csv("impressions", ";", edit=lambda s: s.replace("19.5", "19,5"))),
         "logs/impressions.csv:", ("column 'revenue': '19,5' is not a double value",)),
    Case("csv-empty", "sessions.csv is an empty file", "check-data",
         logs("check-data", after=to_csv("sessions", edit=lambda s: "")), "logs/sessions.csv",
         ("empty file (0 bytes), expected a header row and data",)),
    Case("csv-header-only", "sessions.csv with a header and no rows", "check-data",
         logs("check-data", after=to_csv("sessions", edit=lambda s: s.splitlines()[0] + "\n")), "logs/sessions.csv",
         ("no rows (expected at least one session)",)),
    Case("not-a-database", "data.path is a .duckdb file that is not a database", "analyze",
         not_a_database, "logs.duckdb", ("not a readable duckdb database",)),
    Case("database-missing-table", "a duckdb database with sessions only", "check-data",
         to_duckdb(("sessions",)), "logs.duckdb/impressions", ("missing table (required",)),
    # labels
    Case("grade-out-of-range", "a relevance grade of 7", "check-data",
         logs("check-data", table_op("relevance_labels", lambda t: _edit(t, "grade", 0, 7))),
         "logs/relevance_labels.parquet", ("1 grade(s) outside 0..3 in column 'grade', e.g. 7",)),
    Case("page-label-unknown-session", "a page label for a session that is not in the log", "check-data",
         logs("check-data", table_op("page_labels", lambda t: _edit(t, "session_id", 0, 424242))),
         "logs/page_labels.parquet", ("1 page label(s) for sessions that are not in the log, e.g. session_id 424242",)),
    Case("offline-without-candidates", "mode: offline on a log without candidates and items", "run",
         no_candidates_offline, "logs/candidates", ("missing table (required to replay the log offline",), lines=2),
    # summary files
    Case("summary-negative-variance", "sum_x2 < (sum_x)^2/n", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0], "revenue,treatment,mean,410,230.0,10.0")), "summary.csv:3",
         ("field 'sum_x2': negative variance",)),
    Case("summary-n-zero", "n = 0", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0], "revenue,treatment,mean,0,230.0,990.0")), "summary.csv:3",
         ("field 'n': expected a positive integer, got 0",)),
    Case("summary-n-one", "n = 1 for a mean metric (no variance)", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0], "revenue,treatment,mean,1,2.0,4.0")), "summary.csv:3",
         ("field 'n': expected at least 2 units for a mean metric",)),
    Case("summary-missing-column", "no sum_x column", "analyze-summary",
         summary("metric,arm,type,n,sumx,sum_x2\nrevenue,control,mean,400,210.5,900.25\n"), "summary.csv:1",
         ("missing column 'sum_x' (found 'sumx')",)),
    Case("summary-unknown-type", "type 'binomial'", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0], "revenue,treatment,binomial,410,230.0,990.0")), "summary.csv:3",
         ("field 'type': expected one of proportion, mean, ratio, got 'binomial'",)),
    Case("summary-non-numeric", "sum_x = 'twelve'", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0], "revenue,treatment,mean,410,twelve,990.0")), "summary.csv:3",
         ("field 'sum_x': expected a number, got 'twelve'",)),
    Case("summary-proportion-above-n", "a proportion with sum_x > n", "analyze-summary",
         summary(csv_rows("buyers,control,proportion,100,40,", "buyers,treatment,proportion,100,140,")),
         "summary.csv:3", ("field 'sum_x': expected a count between 0 and n = 100",)),
    Case("summary-duplicate-row", "the same metric and arm twice", "analyze-summary",
         summary(csv_rows(*GOOD_ROWS, GOOD_ROWS[1])), "summary.csv:4",
         ("duplicate row for metric 'revenue' arm 'treatment' (first at line 3)",)),
    Case("summary-one-arm", "rows for one arm only", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0])), "summary.csv:1", ("need at least two arms",)),
    Case("summary-zero-denominator", "a ratio metric whose denominator sums to 0", "analyze-summary",
         summary(csv_rows("ctr,control,ratio,10,0,0,0,0,0", "ctr,treatment,ratio,10,1,1,2,2,1", header=RATIO_HEADER)),
         "summary.csv:2", ("field 'sum_y': the ratio's denominator sums to 0",)),
    Case("summary-empty", "an empty summary file", "analyze-summary", summary(""), "summary.csv:1",
         ("not a readable CSV file",)),
    Case("summary-wrong-delimiter", "a summary CSV separated by ';'", "analyze-summary",
         summary(csv_rows(*GOOD_ROWS).replace(",", ";")), "summary.csv:1", ("read as a single column",)),
    Case("summary-utf16", "a summary CSV saved as UTF-16", "analyze-summary",
         summary(csv_rows(*GOOD_ROWS), encoding="utf-16"), "summary.csv:1", ("not UTF-8 text (byte 0xff)",)),
    Case("summary-invalid-json", "a JSON summary with a missing bracket", "analyze-summary",
         summary('[\n  {"metric": "m", "arm": "a"\n', name="summary.json"), "summary.json:3", ("invalid JSON",)),
    Case("summary-unknown-alternative", "alternative 'bigger'", "analyze-summary",
         summary(csv_rows("revenue,control,mean,400,210.5,900.25,bigger", "revenue,treatment,mean,410,230.0,990.0,",
                          header=SUMMARY_HEADER + ",alternative")), "summary.csv:2",
         ("field 'alternative': expected one of two-sided, greater, less, got 'bigger'",)),
    Case("summary-equal-var-on-ratio", "equal_var true on a ratio metric", "analyze-summary",
         summary(csv_rows("ctr,control,ratio,10,5,5,20,50,12,true", "ctr,treatment,ratio,10,6,6,20,50,13,",
                          header=RATIO_HEADER + ",equal_var")), "summary.csv:2",
         ("field 'equal_var': expected false for a ratio metric",)),
    Case("summary-exact-test-on-a-mean", "test 'fisher' on a mean metric", "analyze-summary",
         summary(csv_rows(GOOD_ROWS[0] + ",fisher", GOOD_ROWS[1] + ",", header=SUMMARY_HEADER + ",test")),
         "summary.csv:2", ("field 'test': test 'fisher' is a test of proportions; a mean metric takes welch",)),
    Case("summary-unknown-test", "test 'exact' on a proportion", "analyze-summary",
         summary(csv_rows("buyers,control,proportion,100,40,,exact", "buyers,treatment,proportion,100,45,,",
                          header=SUMMARY_HEADER + ",test")), "summary.csv:2",
         ("field 'test': expected one of welch, wald, pooled, continuity, fisher, got 'exact'",)),
    Case("summary-bad-weights", "weights for an arm that is not in the file", "analyze-summary",
         summary('{"weights": {"control": 1, "other": 1},\n "rows": [\n'
                 '  {"metric": "m", "arm": "control", "type": "proportion", "n": 100, "sum_x": 40},\n'
                 '  {"metric": "m", "arm": "treatment", "type": "proportion", "n": 100, "sum_x": 45}]}\n',
                 name="summary.json"), "summary.json:1",
         ("field 'weights': expected a weight for each arm ['control', 'treatment']; unknown arms ['other']",)),
    # outputs that are not ours to replace
    Case("world-into-a-folder-not-ours", "world generate --out a non-empty folder that is not a world", "world",
         world_into("mydata", someone_elses_folder), "mydata",
         ("not empty and not a world abplatform wrote", "--force"), shown="world generate --out mydata",
         after=untouched("mydata/notes.txt")),
    Case("world-over-a-file", "world generate --out an existing file, even with --force", "world",
         world_into("notes.txt", someone_elses_file, "--force"), "notes.txt", ("exists and is not a folder",),
         shown="world generate --out notes.txt --force", after=untouched("notes.txt")),
    Case("world-over-the-working-folder", "world generate --out . --force (the folder it runs in)", "world",
         world_into(".", someone_elses_file, "--force"), ".", ("is the working folder or contains it",),
         shown="world generate --out . --force", after=untouched("notes.txt")),
    Case("experiment-named-index-json", "an experiment named index.json (the store's own index)", "analyze",
         named("index.json"), "tiny.yaml:1:7: name", ("'index.json' is reserved",)),
    Case("experiment-named-like-a-temp-folder", "an experiment named .tmp-x (the store's temporary names)", "analyze",
         named(".tmp-x"), "tiny.yaml:1:7: name", ("starts with '.'",)),
    Case("experiment-name-too-long", "a 300-character experiment name", "analyze", named("x" * 300),
         "tiny.yaml:1:7: name", ("too long (300 characters; at most 200",)),
    # plug-ins
    Case("ranker-is-a-function", "ranker os:system (a function) with params {command: touch pwned}", "run",
         ranker_run("os:system", "{command: touch pwned}"), "tiny.yaml: arms[1].ranker",
         ("'os:system' is not a ranker class but a function",), after=nothing_ran),
    Case("ranker-is-a-constant", "ranker os:sep (a module attribute that is not a class)", "run",
         ranker_run("os:sep"), "tiny.yaml: arms[1].ranker", ("'os:sep' is not a ranker class but a str value",)),
    Case("ranker-class-without-fit", "ranker subprocess:Popen (a class without fit and score)", "run",
         ranker_run("subprocess:Popen", "{args: [touch, pwned]}"), "tiny.yaml: arms[1].ranker",
         ("is not a ranker (class Popen has no fit or score method)",), after=nothing_ran),
    # the gate's own outputs and inputs: never exit 1 (hold) for its own errors
    Case("gate-junit-is-a-folder", "gate --junit . (a folder)", "gate", gate_run("--junit", "."), "--junit",
         ("cannot write .: it is a folder, not a file",), shown="gate run --junit .", after=nothing_half_written),
    Case("gate-junit-in-a-missing-folder", "gate --junit into a folder that does not exist", "gate",
         gate_run("--junit", "out/junit.xml"), "--junit", ("cannot write out/junit.xml: folder out does not exist",),
         shown="gate run --junit out/junit.xml", after=nothing_half_written),
    Case("gate-step-summary-is-root", "GITHUB_STEP_SUMMARY=/", "gate", gate_run("--junit", "junit.xml"),
         "GITHUB_STEP_SUMMARY", ("cannot write /: it is a folder, not a file",), env=(("GITHUB_STEP_SUMMARY", "/"),),
         shown="GITHUB_STEP_SUMMARY=/ abplatform gate run --junit junit.xml", after=nothing_half_written),
    Case("gate-output-in-a-missing-folder", "GITHUB_OUTPUT in a folder that does not exist (the summary is fine)",
         "gate", gate_run("--junit", "junit.xml"), "GITHUB_OUTPUT",
         ("cannot write gone/output.txt: folder gone does not exist",),
         env=(("GITHUB_STEP_SUMMARY", "summary.md"), ("GITHUB_OUTPUT", "gone/output.txt")),
         shown="GITHUB_OUTPUT=gone/output.txt abplatform gate run --junit junit.xml", after=nothing_half_written),
    Case("gate-report-empty-object", "a run folder whose report.json is {}", "gate", gate_run(report_json="{}"),
         "run/report.json", ("unreadable report", "missing field 'experiment'"), exit=3, shown="gate run"),
    Case("gate-report-a-list", "a run folder whose report.json is []", "gate", gate_run(report_json="[]"),
         "run/report.json", ("unreadable report", "expected an object, got list"), exit=3, shown="gate run"),
    Case("gate-report-without-srm", "a run folder whose report.json has no srm", "gate",
         gate_run(report_json=report_without("srm")), "run/report.json", ("unreadable report", "missing field 'srm'"), exit=3,
         shown="gate run"),
    # outputs that cannot be written: exit 2 naming the path, before any work, nothing half-written
    Case("schema-out-is-a-folder", "schema --out . (a folder)", "schema", schema_out("."), "--out",
         ("cannot write .: it is a folder, not a file",), shown="schema --out .", after=nothing_written),
    Case("schema-out-in-a-missing-folder", "schema --out into a folder that does not exist", "schema",
         schema_out("gone/schema.json"), "--out", ("cannot write gone/schema.json: folder gone does not exist",),
         shown="schema --out gone/schema.json", after=nothing_written),
    Case("schema-out-disk-full", "schema --out /dev/full (a full disk)", "schema", schema_out("/dev/full"), "--out",
         ("cannot write /dev/full: No space left on device",), shown="schema --out /dev/full", after=nothing_written),
    Case("summary-out-is-a-folder", "analyze-summary --out . (a folder)", "analyze-summary", summary_out("."),
         "--out", ("cannot write .: it is a folder, not a file",), shown="analyze-summary summary.csv --out .",
         after=only_the_summary),
    Case("summary-out-in-a-missing-folder", "analyze-summary --out into a folder that does not exist",
         "analyze-summary", summary_out("gone/card.json"), "--out",
         ("cannot write gone/card.json: folder gone does not exist",),
         shown="analyze-summary summary.csv --out gone/card.json", after=only_the_summary),
    Case("summary-out-disk-full", "analyze-summary --out /dev/full (a full disk)", "analyze-summary",
         summary_out("/dev/full"), "--out", ("cannot write /dev/full: No space left on device",),
         shown="analyze-summary summary.csv --out /dev/full", after=only_the_summary),
    Case("run-results-is-a-file", "run --results naming a file (checked before the replay)", "run",
         results_at("run", "notes.txt", someone_elses_file), "--results",
         ("cannot write runs into notes.txt: it is a file, not a folder",),
         shown="run tiny.yaml --results notes.txt", after=lambda f: (untouched("notes.txt")(f), nothing_computed(f))),
    Case("analyze-results-is-a-file", "analyze --results naming a file", "analyze",
         results_at("analyze", "notes.txt", someone_elses_file), "--results",
         ("cannot write runs into notes.txt: it is a file, not a folder",),
         shown="analyze tiny.yaml --results notes.txt", after=untouched("notes.txt")),
    Case("gate-results-is-a-file", "gate tiny.yaml --results naming a file (checked before the replay)", "gate",
         results_at("gate", "notes.txt", someone_elses_file), "--results",
         ("cannot write runs into notes.txt: it is a file, not a folder",),
         shown="gate tiny.yaml --results notes.txt", after=lambda f: (untouched("notes.txt")(f), nothing_computed(f))),
    Case("results-not-writable-even-by-root", "run --results under /sys (no one may write there)", "run",
         results_at("run", "/sys/abplatform-results"), "--results",
         ("cannot write runs into /sys/abplatform-results: permission denied",),
         shown="run tiny.yaml --results /sys/abplatform-results", after=nothing_computed),
    Case("results-read-only", "run --results into a read-only folder (chmod 555)", "run",
         results_at("run", "results", read_only_results), "--results",
         ("cannot write runs into results: permission denied",), shown="run tiny.yaml (results/ is chmod 555)",
         after=nothing_computed, not_as_root="root writes into a chmod 555 folder"),
    # pipes and devices as inputs: read once, at most 64 MiB
    Case("summary-from-dev-zero", "analyze-summary /dev/zero (endless input)", "analyze-summary",
         summary_out("", "/dev/zero"), "/dev/zero", ("too large (more than 64 MiB); expected a summary file",),
         shown="analyze-summary /dev/zero", after=only_the_summary),
]


def _mapping_case(folder: Path) -> list[str]:
    write_tiny(folder / "logs")
    tiny_experiment(folder, extra="").write_text((folder / "tiny.yaml").read_text().replace(
        "data: {path: logs}", "data: {path: logs, mapping: {sessions: {unit_id: user}}}"))
    return ["analyze", "tiny.yaml", "--no-segments"]


EXAMPLES = Path(__file__).parents[1] / "experiments"


def slot_example(edit: Callable[[str], str] = lambda y: y, data: Callable[[Path], None] | None = None,
                 command: str = "analyze") -> Callable[[Path], list[str]]:
    """A builder: the shipped slot-level example (query-less CSV log, per-file arms), its YAML edited."""
    def build(folder: Path) -> list[str]:
        import shutil

        shutil.copytree(EXAMPLES / "data" / "slot_level_log", folder / "data" / "slot_level_log")
        if data:
            data(folder / "data" / "slot_level_log")
        (folder / "slot.yaml").write_text(edit((EXAMPLES / "slot_level_ab.yaml").read_text()))
        return [command, "slot.yaml"]
    return build


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new)
    return edit


def _policy_off_by(delta: float) -> Callable[[Path], None]:
    def data(folder: Path) -> None:
        f = folder / "bts" / "policy.csv"
        rows = f.read_text().splitlines()
        cells = rows[5].split(",")
        cells[2] = repr(float(cells[2]) + delta)
        rows[5] = ",".join(cells)
        f.write_text("\n".join(rows) + "\n")
    return data


def _position_beyond_slots(folder: Path) -> None:
    f = folder / "random" / "all.csv"
    rows = f.read_text().splitlines()
    cells = rows[3].split(",")
    cells[3] = "4"
    rows[3] = ",".join(cells)
    f.write_text("\n".join(rows) + "\n")


CASES += [
    Case("mapping-constant-of-the-wrong-type", "a mapping constant 'yes' for the boolean column clicked", "analyze",
         slot_example(_replace("clicked: click", "clicked: {constant: 'yes'}")), "slot.yaml:",
         ("mapping.impressions.clicked: constant 'yes' is not a bool value",)),
    Case("mapping-expression-forbidden-function", "a mapping expression calling read_csv", "analyze",
         slot_example(_replace("clicked: click", "clicked: {expression: \"read_csv('/etc/passwd') > 0\"}")),
         "slot.yaml:", ("function read_csv is not allowed",)),
    Case("mapping-expression-unknown-column", "a mapping expression over a column the log does not have",
         "analyze", slot_example(_replace("clicked: click", "clicked: {expression: \"clicks > 0\"}")),
         "slot.yaml:", ("mapping.impressions.clicked: expression 'clicks > 0': source column 'clicks' not found",
                        "did you mean 'click'")),
    Case("arm-pattern-matching-no-file", "a per-arm file pattern that matches no file", "analyze",
         slot_example(_replace('bts: "bts/all.csv"', 'bts: "thompson/*.csv"')), "slot.yaml:",
         ("data.tables.impressions.bts: no file matches 'thompson/*.csv'",)),
    Case("arm-files-for-an-unknown-arm", "per-arm files for an arm the experiment does not have", "analyze",
         slot_example(_replace('bts: "bts/all.csv"', 'ts: "bts/all.csv"')), "slot.yaml:",
         ("data.tables.impressions: 'ts' is not an arm",)),
    Case("policy-not-summing-to-one", "a stochastic target policy whose probabilities at one slot sum to 1.1",
         "analyze", slot_example(data=_policy_off_by(0.1)), "policy.csv:",
         ("sum",)),
    Case("positions-beyond-the-slots", "a logged position 4 in a log declared with slots: 3", "analyze",
         slot_example(data=_position_beyond_slots), "slot_level_log/impressions",
         ("position outside 1..3",)),
    Case("sparse-pages-not-declared", "a slot-level log (one slot per page) without positions: sparse", "analyze",
         slot_example(_replace("  positions: sparse", "")), "slot_level_log/impressions",
         ("positions that were never shown", "data.positions: sparse")),
    Case("metric-needs-a-missing-column", "buyer_conversion on a log without purchases", "analyze",
         slot_example(_replace("  - {name: item_ctr, role: primary}",
                               "  - {name: item_ctr, role: primary}\n  - {name: buyer_conversion}")),
         "slot_level_log/impressions", ("missing column 'purchased'", "needed by metric buyer_conversion")),
    Case("unit-column-missing", "randomisation.unit naming a column the log does not have", "analyze",
         slot_example(_replace("unit: impression", "unit: request")), "slot_level_log/impressions",
         ("missing column 'request_id'", "needed by randomisation.unit: request")),
]
CASES = [Case(c.id, c.what, c.command, _mapping_case, c.where, c.expect, c.lines, c.xfail)
         if c.id == "mapping-unknown-column" else c for c in CASES]
BY_ID = {c.id: c for c in CASES}


# --- running them ------------------------------------------------------------------------------

CI_VARIABLES = ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT")  # set when the tests themselves run in CI


def run_case(case: Case, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    args = case.build(folder)
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES} | dict(case.env)
    return subprocess.run([sys.executable, "-m", "abplatform.cli", *args], cwd=folder, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every selected case, run in parallel subprocesses (each CLI start-up is mostly imports)."""
    wanted = [BY_ID[i.callspec.params["case"]] for i in request.session.items
              if getattr(i, "module", None) is sys.modules[__name__] and hasattr(i, "callspec")
              and "case" in i.callspec.params]
    wanted = [c for c in wanted if not (c.not_as_root and AS_ROOT)]
    root = tmp_path_factory.mktemp("bad")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {c.id: pool.submit(run_case, c, root / c.id) for c in wanted}
        return {k: (f.result(), root / k) for k, f in futures.items()}


PREFIX = {2: "error: ", 3: "cannot evaluate: "}
AS_ROOT = os.geteuid() == 0


def _marks(c: Case) -> list:
    marks = [pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail else []
    if c.not_as_root:
        marks.append(pytest.mark.skipif(AS_ROOT, reason=c.not_as_root))
    return marks


@pytest.mark.parametrize("case", [pytest.param(c.id, marks=_marks(c)) for c in CASES])
@pytest.mark.slow
def test_bad_input(case: str, outcomes) -> None:
    c = BY_ID[case]
    res, folder = outcomes[case]
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    assert res.returncode == c.exit, out
    lines = res.stderr.strip().splitlines()
    assert all(line.startswith(PREFIX[c.exit]) for line in lines), res.stderr
    assert len(lines) == c.lines, res.stderr
    assert any(c.where in line and all(e in line for e in c.expect) for line in lines), res.stderr
    if c.after:
        c.after(folder)
    results = folder / "results"
    if results.exists():
        assert not (results / "index.json").exists()
        assert not [d for d in results.iterdir() if d.is_dir()], list(results.iterdir())


def test_the_tiny_log_itself_is_valid(tmp_path) -> None:
    from abplatform.dataset import Dataset
    from abplatform.validate import validate_dataset

    counts = validate_dataset(Dataset(write_tiny(tmp_path / "logs")), require_arm=True)
    assert counts["sessions"] > 50 and counts["impressions"] == 5 * counts["sessions"]


@pytest.mark.parametrize("how", ["absolute", "brackets", "absolute-brackets", "glob"])
def test_tables_paths_that_work(tmp_path, how) -> None:
    """data.tables: an absolute path, '[' / ']' in a file name, a glob; the tables it does not name keep
    their default locations (logs/<table>.parquet)."""
    from abplatform.dataset import Dataset
    from abplatform.validate import validate_dataset

    logs = write_tiny(tmp_path / "logs")
    other = tmp_path / ("export [2026-06]" if "brackets" in how else "export")
    other.mkdir()
    name = "impressions[v2].parquet" if "brackets" in how else "impressions.parquet"
    (logs / "impressions.parquet").rename(other / name)
    rel = {"absolute": str(other / name), "brackets": f"../{other.name}/{name}",
           "absolute-brackets": str(other / name), "glob": "../export/*.parquet"}[how]
    ds = Dataset(logs, tables={"impressions": rel})
    counts = validate_dataset(ds, require_arm=True)
    assert counts["impressions"] == 5 * counts["sessions"] and counts["page_labels"] > 0
    con = ds.connect()
    assert con.execute("SELECT COUNT(*) FROM impressions").fetchone()[0] == counts["impressions"]
    con.close()


def test_tables_in_the_cli_with_an_absolute_path(tmp_path) -> None:
    """The same through ``analyze``: exit 0 and a run in the store (not NotImplementedError)."""
    logs = write_tiny(tmp_path / "logs")
    (logs / "sessions.parquet").rename(tmp_path / "sessions [a].parquet")
    tiny_experiment(tmp_path).write_text((tmp_path / "tiny.yaml").read_text().replace(
        "data: {path: logs}", f"data: {{path: logs, tables: {{sessions: '{tmp_path}/sessions [a].parquet'}}}}"))
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "analyze", "tiny.yaml", "--no-segments"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "results" / "index.json").read_text())[0]["mode"] == "online"


def test_enough_cases() -> None:
    from tests.test_config_errors import MISTAKES

    assert len(CASES) >= 40 and len(CASES) + len(MISTAKES) >= 80
    assert len(set(BY_ID)) == len(CASES)


# --- the table in the docs ---------------------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def doc_tables() -> str:
    from tests.test_config_errors import MISTAKES

    lines = [f"### Logs, labels and summary files ({len(CASES)} cases, `tests/test_bad_inputs.py`)", "",
             "| # | case | command | what is wrong | exit | the one line names | expected message (fragments) |",
             "|---|---|---|---|---|---|---|"]
    for k, c in enumerate(CASES, 1):
        cmd = {"check-data": "check-data logs", "analyze-summary": "analyze-summary FILE"}.get(c.command,
                                                                                             f"{c.command} tiny.yaml")
        cmd = c.shown if c.shown and "abplatform " in c.shown else f"abplatform {c.shown or cmd}"
        msg = f"{PREFIX[c.exit]}… " + " … ".join(f"`{_md(e)}`" for e in c.expect)
        if c.lines > 1:
            msg += f" (+{c.lines - 1} more line{'s' if c.lines > 2 else ''})"
        if c.xfail:
            msg += " — **not yet: " + _md(c.xfail) + "**"
        if c.not_as_root:
            msg += " (skipped when the tests run as root: " + _md(c.not_as_root) + ")"
        lines.append(f"| {k} | `{c.id}` | `{_md(cmd)}` | {_md(c.what)} | {c.exit} | `{_md(c.where)}` | {msg} |")
    lines += ["", f"### Experiment files ({len(MISTAKES)} cases, `tests/test_config_errors.py`)", "",
              "Checked with `abplatform validate` / `run` (the same parser), exit 2: the line names "
              "`exp.yaml:LINE:COL: field`.",
              "", "| # | location | expected message (fragment) |", "|---|---|---|"]
    for k, (_, where, message) in enumerate(MISTAKES, 1):
        lines.append(f"| {k} | `exp.yaml{_md(where)}` | `{_md(message)}` |")
    return "\n".join(lines) + "\n"


START, END = "<!-- cases:start -->", "<!-- cases:end -->"


def test_doc_is_in_sync() -> None:
    text = DOC.read_text()
    assert text.split(START)[1].split(END)[0].strip() == doc_tables().strip(), \
        "docs/bad_inputs.md is stale: run .venv/bin/python -m tests.test_bad_inputs"


if __name__ == "__main__":
    text = DOC.read_text()
    head, rest = text.split(START)
    DOC.write_text(head + START + "\n" + doc_tables() + END + rest.split(END)[1])
    print(f"{DOC}: {len(CASES)} cases")
