"""Runs the metrics SQL in ``sql/`` with duckdb: event log -> per-arm sufficient statistics.

Stage 1 reduces impressions to one row per session (the only pass over impression rows),
stage 2 to one row per unit (per segment value, up to a day), stage 3 to per-arm sums for each
metric. Python receives only stage 3's few hundred rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from string import Template

import duckdb
import pandas as pd

from abplatform.contract import PAGE_LABELS, RELEVANCE_LABELS
from abplatform.dataset import Dataset, duck_type
from abplatform.errors import InputError
from abplatform.metrics.base import Metric

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
SEGMENT_COLUMNS = ("query_segment", "query_complexity", "user_type")
OVERALL = "all"


def sql_template(name: str) -> Template:
    return Template((SQL_DIR / name).read_text())


def _empty_view(con, name: str, schema) -> None:
    cols = ", ".join(f"CAST(NULL AS {duck_type(f.type)}) AS {f.name}" for f in schema)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cols} WHERE FALSE")


BUILTIN_UNIT_COLUMNS = ("impressions", "clicks", "purchases", "orders", "revenue", "judged_impressions",
                        "grade_sum", "judged_pages", "good_pages", "sessions")


def metric_expressions(metric: Metric) -> dict[str, str]:
    """SQL for x, y, xp, yp and the cap of one metric (stage 3 parameters)."""
    names = BUILTIN_UNIT_COLUMNS + tuple(c.name for c in metric.columns)
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b")

    def to_pre(expr: str) -> str:
        return pattern.sub(lambda m: f"pre_{m.group(1)}", expr)

    y = metric.denominator or "1"
    if metric.cap_value is not None:
        cap = repr(float(metric.cap_value))
    elif metric.cap_percentile is not None:  # over the units of the same segment value (or daily look)
        cap = (f"quantile_cont(CAST({metric.numerator} AS DOUBLE), {float(metric.cap_percentile)}) "
               "OVER (PARTITION BY segment_value)")
    else:
        cap = "CAST(NULL AS DOUBLE)"
    return {"metric": metric.name, "x": metric.numerator, "y": y, "xp": to_pre(metric.numerator),
            "yp": to_pre(y), "x_cap": cap}


def user_column_sql(metrics: Sequence[Metric]) -> dict[str, str]:
    """Stage 1 and 2 fragments for the per-unit columns of user-defined metrics."""
    cols = {c.name: c for m in metrics for c in m.columns}
    session_agg = {"sum": "SUM", "count": "SUM", "max": "MAX"}
    aggs, columns, exp_, pre, select = [], [], [], [], []
    for c in cols.values():
        value = "1" if c.agg == "count" else f"CAST({c.value} AS DOUBLE)"
        aggs.append(f",\n        {session_agg[c.agg]}(CASE WHEN {c.condition} THEN {value} ELSE 0 END) AS {c.name}")
        columns.append(f",\n    CAST(COALESCE(i.{c.name}, 0) AS DOUBLE) AS {c.name}")
        unit_agg = "MAX" if c.agg == "max" else "SUM"
        exp_.append(f",\n        {unit_agg}({c.name}) AS {c.name}")
        pre.append(f",\n        {unit_agg}({c.name}) AS {c.name}")
        select.append(f",\n    COALESCE(p.{c.name}, 0) AS pre_{c.name}")
    return {"user_aggs": "".join(aggs), "user_columns": "".join(columns), "user_exp": "".join(exp_),
            "user_pre": "".join(pre), "user_select": "".join(select)}


class MetricsEngine:
    """Sufficient statistics of metrics over a dataset's event log (experiment sessions with an arm)."""

    def __init__(self, dataset: Dataset, metrics: Sequence[Metric] = (), threads: int | None = None,
                 extra_segments: Sequence[str] = (), pre_period_days: int | None = None,
                 memory_limit: str | None = "1GB"):
        self.dataset = dataset
        self.user_sql = user_column_sql(metrics)
        self.memory_limit = memory_limit
        self.extra_segments = tuple(extra_segments)
        self.pre_period_days = pre_period_days
        self.con = dataset.connect(threads)
        if memory_limit and isinstance(self.con, duckdb.DuckDBPyConnection):
            # duckdb spills to disk past this: the analysis of a 50M-impression log stays under 2 GB
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute("SET preserve_insertion_order = false")
        for name, schema in (("relevance_labels", RELEVANCE_LABELS.schema), ("page_labels", PAGE_LABELS.schema)):
            if not dataset.has(name):
                _empty_view(self.con, name, schema)
        stage1 = sql_template("01_session_values.sql")
        self._check_extra_segments()
        tables = {"relevance_labels": "relevance_labels", "page_labels": "page_labels",
                  "user_aggs": self.user_sql["user_aggs"], "user_columns": self.user_sql["user_columns"],
                  "extra_segments": "".join(f",\n    CAST(s.{c} AS VARCHAR) AS seg_{c}" for c in self.extra_segments)}
        self.con.execute("CREATE TEMP TABLE session_values AS "
                         + stage1.substitute(sessions="sessions", impressions="impressions", **tables))
        if dataset.has("pre_sessions") and dataset.has("pre_impressions"):
            pre_tables = {**tables, "extra_segments": "".join(f",\n    CAST(NULL AS VARCHAR) AS seg_{c}"
                                                              for c in self.extra_segments)}
            self.con.execute("CREATE TEMP TABLE pre_session_values AS "
                             + stage1.substitute(sessions="pre_sessions", impressions="pre_impressions", **pre_tables))
        else:
            self.con.execute("CREATE TEMP TABLE pre_session_values AS SELECT * FROM session_values WHERE FALSE")
        self.has_pre = self.con.execute("SELECT COUNT(*) FROM pre_session_values").fetchall()[0][0] > 0

    def _check_extra_segments(self) -> None:
        present = {r[0] for r in self.con.execute("DESCRIBE sessions").fetchall()}
        for c in self.extra_segments:
            if c not in present:
                raise InputError(f"{self.dataset.path}/sessions: segment column {c!r} not found "
                                 f"(columns: {', '.join(sorted(present))})")

    def _pre_filter(self) -> str:
        if self.pre_period_days is None:
            return "TRUE"
        return (f"day >= CAST((SELECT MIN(day) FROM session_values WHERE arm IS NOT NULL) "
                f"- INTERVAL {int(self.pre_period_days)} DAY AS DATE)")

    def close(self) -> None:
        self.con.close()

    def _segment_sql(self, segment: str) -> str:
        if segment == OVERALL:
            return f"'{OVERALL}'"
        return f"seg_{segment}" if segment in self.extra_segments else segment

    def days(self) -> list[str]:
        rows = self.con.execute("SELECT DISTINCT day FROM session_values WHERE arm IS NOT NULL ORDER BY day").fetchall()
        return [r[0].isoformat() for r in rows]

    def _unit_values(self, segment: str, source: str = "session_values") -> None:
        self.con.execute("CREATE OR REPLACE TEMP TABLE unit_values AS "
                         + sql_template("02_unit_values.sql").substitute(
                             segment=self._segment_sql(segment), source=source, pre_filter=self._pre_filter(),
                             user_exp=self.user_sql["user_exp"],
                             user_pre=self.user_sql["user_pre"], user_select=self.user_sql["user_select"]))

    def _arm_stats(self, metrics: Sequence[Metric]) -> pd.DataFrame:
        stage3 = sql_template("03_arm_stats.sql")
        query = "\nUNION ALL\n".join(f"({stage3.substitute(metric_expressions(m))})" for m in metrics)
        return self.con.execute(query + "\nORDER BY metric, arm, segment_value").df()

    def sufficient_stats(self, metrics: Sequence[Metric], segments: Sequence[str] = ()) -> pd.DataFrame:
        """One row per (metric, segment, segment value, arm); ``segment`` is 'all' for the overall row."""
        frames = []
        for segment in (OVERALL, *segments):
            self._unit_values(segment)
            df = self._arm_stats(metrics)
            df.insert(1, "segment", segment)
            frames.append(df)
        return self._finish(pd.concat(frames, ignore_index=True), metrics)

    def daily_sufficient_stats(self, metrics: Sequence[Metric]) -> pd.DataFrame:
        """Cumulative statistics up to and including each day (for daily looks). One stage-2 pass
        per look: joining every session to all later looks in one query multiplies the rows by
        the number of looks and costs several times the memory on large logs."""
        frames = []
        for day in self.days():
            self._unit_values(OVERALL, f"(SELECT * FROM session_values WHERE day <= DATE '{day}') upto_day")
            df = self._arm_stats(metrics)
            df.insert(1, "day", day)
            frames.append(df)
        return self._finish(pd.concat(frames, ignore_index=True), metrics).drop(columns="segment_value")

    def _finish(self, df: pd.DataFrame, metrics: Sequence[Metric]) -> pd.DataFrame:
        types = {m.name: m.type for m in metrics}
        not_ratio = df["metric"].map(types) != "ratio"
        y_cols = ["sum_y", "sum_y2", "sum_xy", "sum_x2y", "sum_xy2", "sum_y3", "sum_yp", "sum_yp2", "sum_xp_yp", "sum_x_yp", "sum_y_xp", "sum_y_yp"]
        df.loc[not_ratio, y_cols] = float("nan")
        if not self.has_pre:
            df[[c for c in df.columns if c.startswith("sum_") and ("xp" in c or "yp" in c)]] = float("nan")
        df["n"] = df["n"].astype("int64")
        return df

    def long_tail_stats(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """Sufficient statistics of the per-user long-tail metrics, and per-arm coverage and Gini;
        None when the dataset has no catalog or no pre-period (tail items are defined by it)."""
        from abplatform.metrics.long_tail import HEAD_SHARE, LONG_TAIL_METRICS

        if not (self.dataset.has("items") and self.dataset.has("pre_impressions")):
            return None
        script = sql_template("04_long_tail.sql").substitute(head_share=repr(HEAD_SHARE))
        code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
        for statement in (s.strip() for s in code.split(";")):
            if statement:
                self.con.execute(statement)
        self.con.execute("CREATE OR REPLACE TEMP TABLE unit_values AS "
                         f"SELECT *, '{OVERALL}' AS segment_value FROM long_tail_units")
        stage3 = sql_template("03_arm_stats.sql")
        no_cap = "CAST(NULL AS DOUBLE)"
        query = "\nUNION ALL\n".join(
            f"({stage3.substitute(metric=m.name, x=m.numerator, y=m.denominator or '1', xp='0', yp='0', x_cap=no_cap)})"
            for m in LONG_TAIL_METRICS)
        suff = self._finish(self.con.execute(query + "\nORDER BY metric, arm").df(), LONG_TAIL_METRICS)
        cov = [c for c in suff.columns if c.startswith("sum_") and ("xp" in c or "yp" in c)]
        suff[cov] = float("nan")
        arms = self.con.execute("SELECT * FROM long_tail_arms ORDER BY arm").df()
        return suff, arms

    def unit_counts(self, segments: Sequence[str] = ()) -> pd.DataFrame:
        """Units per arm overall and per segment value (the sample-ratio check's input)."""
        frames = []
        for segment in (OVERALL, *segments):
            seg = self._segment_sql(segment)
            df = self.con.execute(f"""
                SELECT '{segment}' AS segment, segment_value, arm, COUNT(*) AS units FROM (
                    SELECT DISTINCT unit_id, arm, {seg} AS segment_value FROM session_values WHERE arm IS NOT NULL)
                GROUP BY segment_value, arm ORDER BY segment_value, arm""").df()
            frames.append(df)
        return pd.concat(frames, ignore_index=True)
