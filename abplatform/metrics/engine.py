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


def _unit_column_pattern(metric: Metric) -> re.Pattern:
    names = BUILTIN_UNIT_COLUMNS + tuple(c.name for c in metric.columns)
    return re.compile(r"\b(" + "|".join(names) + r")\b")


def metric_expressions(metric: Metric, prefix: str = "") -> dict[str, str]:
    """SQL for x, y, xp, yp and the cap of one metric (stage 3 parameters), over the unit columns
    named ``prefix`` + column (``prev_`` for a unit's previous cumulative state)."""
    pattern = _unit_column_pattern(metric)

    def prefixed(expr: str, p: str) -> str:
        return pattern.sub(lambda m: f"{p}{m.group(1)}", expr) if p else expr

    y = metric.denominator or "1"
    x = prefixed(metric.numerator, prefix)
    if metric.cap_value is not None:
        cap = repr(float(metric.cap_value))
    elif metric.cap_percentile is not None:  # over the units of the same segment value (or daily look)
        cap = f"quantile_cont(CAST({x} AS DOUBLE), {float(metric.cap_percentile)}) OVER (PARTITION BY segment_value)"
    else:
        cap = "CAST(NULL AS DOUBLE)"
    return {"x": x, "y": prefixed(y, prefix), "xp": prefixed(metric.numerator, "pre_"), "yp": prefixed(y, "pre_"),
            "x_cap": cap}


def user_column_sql(metrics: Sequence[Metric]) -> dict[str, str]:
    """Stage 1 and 2 fragments for the per-unit columns of user-defined metrics."""
    cols = {c.name: c for m in metrics for c in m.columns}
    session_agg = {"sum": "SUM", "count": "SUM", "max": "MAX"}
    aggs, columns, totals, select = [], [], [], []
    for c in cols.values():
        value = "1" if c.agg == "count" else f"CAST({c.value} AS DOUBLE)"
        aggs.append(f",\n        {session_agg[c.agg]}(CASE WHEN {c.condition} THEN {value} ELSE 0 END) AS {c.name}")
        columns.append(f",\n    CAST(COALESCE(i.{c.name}, 0) AS DOUBLE) AS {c.name}")
        totals.append(f",\n    {'MAX' if c.agg == 'max' else 'SUM'}({c.name}) AS {c.name}")
        select.append(f",\n    COALESCE(p.{c.name}, 0) AS pre_{c.name}")
    return {"user_aggs": "".join(aggs), "user_columns": "".join(columns), "user_totals": "".join(totals),
            "user_select": "".join(select)}


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
        self.con.execute("CREATE TEMP TABLE pre_unit_values AS " + sql_template("02_unit_totals.sql").substitute(
            keys="unit_id", group_by="unit_id", source="pre_session_values", filter=self._pre_filter(),
            user_totals=self.user_sql["user_totals"]))

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

    def _unit_values_sql(self, segment: str, source: str = "session_values") -> str:
        segment = self._segment_sql(segment)
        totals = sql_template("02_unit_totals.sql").substitute(
            keys=f"unit_id,\n    arm,\n    {segment} AS segment_value", group_by=f"unit_id, arm, {segment}",
            source=source, filter="arm IS NOT NULL", user_totals=self.user_sql["user_totals"])
        return sql_template("02_unit_values.sql").substitute(unit_totals=totals, user_select=self.user_sql["user_select"])

    def _unit_values(self, segment: str, source: str = "session_values") -> None:
        self.con.execute("CREATE OR REPLACE TEMP TABLE unit_values AS " + self._unit_values_sql(segment, source))

    def _arm_stats(self, metrics: Sequence[Metric], cumulative: bool = False) -> pd.DataFrame:
        """Stage 3 over ``unit_values``; with ``cumulative``, over ``unit_states`` as per-day
        increments (each unit-day's new state weighted +1, its previous state -1)."""
        stage3, rows = sql_template("03_arm_stats.sql"), sql_template("03_unit_rows.sql")

        def metric_rows(m: Metric) -> str:
            if not cumulative:
                return rows.substitute(metric_expressions(m), source="unit_values", weight="1", filter="TRUE")
            return (rows.substitute(metric_expressions(m), source="unit_states", weight="1", filter="TRUE")
                    + "\n    UNION ALL\n"
                    + rows.substitute(metric_expressions(m, "prev_"), source="unit_states", weight="-1",
                                      filter="NOT is_first"))

        query = "\nUNION ALL\n".join(f"({stage3.substitute(metric=m.name, rows=metric_rows(m))})" for m in metrics)
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
        """Cumulative statistics up to and including each day (for daily looks), in one stage-2
        pass at (unit, day) grain: every sum is a sum over units of a function of the unit's
        running totals, so it is the cumulative sum over days of f(new state) - f(previous state)
        (sql/02_cumulative_unit_states.sql). Percentile caps depend on each look's units as a
        whole, so metrics with one get a stage-2 pass per look instead."""
        days = self.days()
        telescoped = [m for m in metrics if m.cap_percentile is None]
        capped_per_look = [m for m in metrics if m.cap_percentile is not None]
        frames = []
        if telescoped and days:
            self.con.execute("CREATE OR REPLACE TEMP TABLE unit_states AS "
                             + sql_template("02_cumulative_unit_states.sql").substitute(
                                 self._state_columns(telescoped), unit_values=self._unit_values_sql("day")))
            increments = self._arm_stats(telescoped, cumulative=True)
            frames.append(_accumulate_days(increments, days))
            self.con.execute("DROP TABLE unit_states")
        for day in days if capped_per_look else ():
            self._unit_values(OVERALL, f"(SELECT * FROM session_values WHERE day <= DATE '{day}') upto_day")
            df = self._arm_stats(capped_per_look)
            df.insert(1, "day", day)
            frames.append(df.drop(columns="segment_value"))
        daily = pd.concat(frames, ignore_index=True).sort_values(["day", "metric", "arm"], kind="stable")
        return self._finish(daily.reset_index(drop=True), metrics)

    def _state_columns(self, metrics: Sequence[Metric]) -> dict[str, str]:
        """Window fragments of sql/02_cumulative_unit_states.sql for the unit columns the metrics
        use: a running sum minus the current row is the previous state (cheaper than a second
        window frame). Without a pre-period the covariates are constant zeros, kept out of the
        window's sort."""
        names = list(dict.fromkeys(n for m in metrics
                                   for n in _unit_column_pattern(m).findall(f"{m.numerator} {m.denominator or ''}")))
        user_max = {c.name for m in metrics for c in m.columns if c.agg == "max"}
        running = {n: f"MAX({n}) OVER running" if n in user_max else f"SUM({n}) OVER running" for n in names}
        previous = {n: f"MAX({n}) OVER before" if n in user_max else f"({running[n]}) - {n}" for n in names}
        return {"cumulative": "".join(f",\n    {running[n]} AS {n}" for n in names),
                "previous": "".join(f",\n    {previous[n]} AS prev_{n}" for n in names),
                "pre_columns": "".join(f",\n    pre_{n}" if self.has_pre else f",\n    CAST(0 AS DOUBLE) AS pre_{n}"
                                       for n in names)}

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
        stage3, rows = sql_template("03_arm_stats.sql"), sql_template("03_unit_rows.sql")
        no_cap = "CAST(NULL AS DOUBLE)"
        query = "\nUNION ALL\n".join(
            "({})".format(stage3.substitute(metric=m.name, rows=rows.substitute(
                source="unit_values", weight="1", filter="TRUE", x=m.numerator, y=m.denominator or "1", xp="0",
                yp="0", x_cap=no_cap)))
            for m in LONG_TAIL_METRICS)
        suff = self._finish(self.con.execute(query + "\nORDER BY metric, arm").df(), LONG_TAIL_METRICS)
        cov = [c for c in suff.columns if c.startswith("sum_") and ("xp" in c or "yp" in c)]
        suff[cov] = float("nan")
        arms = self.con.execute("SELECT * FROM long_tail_arms ORDER BY arm").df()
        return suff, arms


def _accumulate_days(increments: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """Per-day increments of the sufficient statistics -> cumulative statistics at every look
    (a day without sessions in an arm repeats the previous look); rows before an arm's first
    unit are dropped, as a look over no units has no statistics."""
    increments = increments.assign(day=pd.to_datetime(increments.pop("segment_value")).dt.strftime("%Y-%m-%d"))
    sums = [c for c in increments.columns if c == "n" or c.startswith("sum_")]
    frames = []
    for (metric, arm), g in increments.groupby(["metric", "arm"], sort=True):
        looks = g.set_index("day")[sums].reindex(days, fill_value=0).cumsum()
        looks.insert(0, "arm", arm)
        looks.insert(0, "metric", metric)
        frames.append(looks.rename_axis("day").reset_index())
    daily = pd.concat(frames, ignore_index=True)
    daily = daily[daily["n"] > 0]
    return daily[["metric", "day", "arm", *sums]]
