"""Runs the metrics SQL in ``sql/`` with duckdb: event log -> per-arm sufficient statistics.

Stage 1 reduces impressions to one row per session (the only pass over impression rows),
stage 2 to one row per unit (per segment value, up to a day), stage 3 to per-arm sums for each
metric. Python receives only stage 3's few hundred rows.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from string import Template
from typing import Literal

import duckdb
import pandas as pd

from abplatform.contract import PAGE_LABELS, RELEVANCE_LABELS
from abplatform.dataset import Dataset, duck_type, quote_identifier
from abplatform.errors import InputError
from abplatform.metrics.base import Metric
from abplatform.resources import sql_dir
from abplatform.vocabulary import SUFFICIENT_SUMS, unit_column

SQL_DIR = sql_dir()  # the package data abplatform.sql (top-level sql/ in the repository)
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


@dataclass(frozen=True)
class MetricExpressions:
    x: str
    y: str
    xp: str
    yp: str
    cap: str | None


def metric_expressions(metric: Metric, prefix: str = "") -> MetricExpressions:
    """SQL for a metric's x, y, xp, yp and the cap on x, over the unit columns named ``prefix`` +
    column (``prev_`` for a unit's previous cumulative state); the cap is None without one."""
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
        cap = None
    return MetricExpressions(x=x, y=prefixed(y, prefix), xp=prefixed(metric.numerator, "pre_"),
                             yp=prefixed(y, "pre_"), cap=cap)


def metric_moments(metric: Metric, covariates: bool) -> list[str]:
    """The sums a metric's statistics use: those with y only for ratio metrics (y is 1 otherwise),
    those with a covariate only when there is a pre-period."""
    return [s for s, factors in SUFFICIENT_SUMS.items()
            if (metric.type == "ratio" or not {"y", "yp"} & set(factors))
            and (covariates or not {"xp", "yp"} & set(factors))]


def arm_stats_sql(metrics: Sequence[Metric], source: str, covariates: bool, cumulative: bool = False) -> str:
    """Stage 3 (sql/03_arm_stats.sql) for all ``metrics`` in one scan of ``source``; with
    ``cumulative``, over unit-day states (sql/02_cumulative_unit_states.sql) as per-day increments
    (one row per arm, segment value and day)."""
    values, capped, sums = [], [], ["CAST(SUM(1 - prev_weight) AS BIGINT) AS n" if cumulative else "COUNT(*) AS n"]
    states = ("", "prev_") if cumulative else ("",)
    for i, metric in enumerate(metrics):
        m = f"m{i}_"
        for state in states:
            e = metric_expressions(metric, state)
            x_raw, x, y, cap = f"{m}{state}x_raw", f"{m}{state}x", f"{m}{state}y", e.cap
            values += [f"{_as_double(e.x, state)} AS {x_raw}", f"{_as_double(e.y, state)} AS {y}"]
            if metric.cap_percentile is not None:  # a window: computed in v, applied in capped
                values.append(f"{cap} AS {m}{state}cap")
                cap = f"{m}{state}cap"
            capped += [f"CASE WHEN {x_raw} > {cap} THEN {cap} ELSE {x_raw} END AS {x}" if cap else f"{x_raw} AS {x}", y]
        if covariates:
            e = metric_expressions(metric)
            values += [f"CAST({e.xp} AS DOUBLE) AS {m}xp", f"CAST({e.yp} AS DOUBLE) AS {m}yp"]
            capped += [f"{m}xp", f"{m}yp"]
        for name in metric_moments(metric, covariates):
            new = " * ".join(m + f for f in SUFFICIENT_SUMS[name])
            prev = " * ".join(m + ("prev_" + f if f in ("x", "y") else f) for f in SUFFICIENT_SUMS[name])
            sums.append(f"SUM({new} - prev_weight * {prev}) AS {m}{name}" if cumulative else f"SUM({new}) AS {m}{name}")
    indent = ",\n        "
    return sql_template("03_arm_stats.sql").substitute(
        source=source, prev_weight="CASE WHEN is_first THEN 0 ELSE 1 END" if cumulative else "0",
        look=",\n        day" if cumulative else "", look_key=", day" if cumulative else "",
        values="".join(indent + v for v in values), capped="".join(indent + c for c in capped),
        sums="".join(",\n    " + c for c in sums))


def _as_double(sql: str, state: str) -> str:
    """A unit value as DOUBLE; a unit's first day has no previous state (NULL for max columns),
    and its weight there is 0, so its value is 0."""
    return f"CASE WHEN is_first THEN 0 ELSE CAST({sql} AS DOUBLE) END" if state == "prev_" else f"CAST({sql} AS DOUBLE)"


def long_arm_stats(wide: pd.DataFrame, metrics: Sequence[Metric]) -> pd.DataFrame:
    """Stage 3's one row per (arm, segment value[, day]) -> one row per (metric, arm, segment value[,
    day]) with n and every sum of SUFFICIENT_SUMS (NaN where the metric does not use it)."""
    keys = ["arm", "segment_value", *(["day"] if "day" in wide.columns else [])]
    frames = []
    for i, metric in enumerate(metrics):
        f = wide[[*keys, "n"]].copy()
        f.insert(0, "metric", metric.name)
        for name in SUFFICIENT_SUMS:
            f[name] = wide[f"m{i}_{name}"].astype(float) if f"m{i}_{name}" in wide else float("nan")
        frames.append(f)
    df = pd.concat(frames, ignore_index=True).sort_values(["metric", *keys], kind="stable")
    df["n"] = df["n"].astype("int64")
    return df.reset_index(drop=True)


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
                 memory_limit: str | None = "1GB", unit: str = "user"):
        self.dataset = dataset
        self.unit = unit
        self.user_sql = user_column_sql(metrics)
        self.memory_limit = memory_limit
        self.extra_segments = tuple(extra_segments)
        self.pre_period_days = pre_period_days
        self.con = dataset.connect(threads)
        if memory_limit and isinstance(self.con, duckdb.DuckDBPyConnection):
            # duckdb spills to disk past this, so the analysis of a large log stays within a memory budget
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute("SET preserve_insertion_order = false")
        for name, schema in (("relevance_labels", RELEVANCE_LABELS.schema), ("page_labels", PAGE_LABELS.schema)):
            if not dataset.has(name):
                _empty_view(self.con, name, schema)
        self._check_extra_segments()
        sessions, impressions = self._unit_tables("sessions", "impressions")
        self.con.execute("CREATE TEMP TABLE session_values AS " + self._session_values_sql(sessions, impressions))
        # the pre-period's units are users: other units (sessions, requests, impressions) do not recur in it
        if dataset.has("pre_sessions") and dataset.has("pre_impressions") and unit == "user":
            sessions, impressions = self._unit_tables("pre_sessions", "pre_impressions")
            self.con.execute("CREATE TEMP TABLE pre_session_values AS "
                             + self._session_values_sql(sessions, impressions, segments=False))
        else:
            self.con.execute("CREATE TEMP TABLE pre_session_values AS SELECT * FROM session_values WHERE FALSE")
        self.has_pre = self.con.execute("SELECT COUNT(*) FROM pre_session_values").fetchall()[0][0] > 0
        self.con.execute("CREATE TEMP TABLE pre_unit_values AS " + sql_template("02_unit_totals.sql").substitute(
            keys="unit_id", group_by="unit_id", source="pre_session_values", filter=self._pre_filter(),
            user_totals=self.user_sql["user_totals"]))

    def _unit_tables(self, sessions: str, impressions: str) -> tuple[str, str]:
        """The tables stage 1 reads for the randomisation unit: the period's own, or for
        ``impression`` views in which every impression is a session of its own, so each unit's totals
        are one impression's: id session_id·64 + position, distinct because the validation holds
        positions to 1..50 (``data.slots`` / ``simulation.page_size``), and within BIGINT for any
        session id below 2^57."""
        if self.unit != "impression":
            return sessions, impressions
        rekey = "i.session_id * 64 + i.position"
        cols = [r[0] for r in self.con.execute(f"DESCRIBE {sessions}").fetchall()]
        session_cols = ", ".join(f"CAST({rekey} AS VARCHAR) AS unit_id" if c == "unit_id" else
                                 f"{rekey} AS session_id" if c == "session_id" else f"s.{quote_identifier(c)}"
                                 for c in cols)
        imp_cols = ", ".join(f"{rekey} AS session_id" if c == "session_id" else f"i.{quote_identifier(c)}"
                             for c in (r[0] for r in self.con.execute(f"DESCRIBE {impressions}").fetchall()))
        self.con.execute(f"CREATE TEMP VIEW unit_{sessions} AS SELECT {session_cols} FROM {impressions} i "
                         f"JOIN {sessions} s ON s.session_id = i.session_id")
        self.con.execute(f"CREATE TEMP VIEW unit_{impressions} AS SELECT {imp_cols} FROM {impressions} i")
        return f"unit_{sessions}", f"unit_{impressions}"

    def _unit_sql(self) -> str:
        """Stage 1's unit_id: the randomisation unit's column (text), or the session's id."""
        column = unit_column(self.unit)
        if column is None:  # session, or impression (its re-keyed sessions)
            return "CAST(s.session_id AS VARCHAR)"
        return "s.unit_id" if column == "unit_id" else f"CAST(s.{quote_identifier(column)} AS VARCHAR)"

    def _session_values_sql(self, sessions: str, impressions: str, segments: bool = True) -> str:
        """Stage 1 over one period's tables; ``segments=False`` for the pre-period, which has no segment values."""
        user_aggs = self.user_sql["user_aggs"]
        extra = "".join(f",\n    CAST({'s.' + c if segments else 'NULL'} AS VARCHAR) AS seg_{c}"
                        for c in self.extra_segments)
        return sql_template("01_session_values.sql").substitute(
            sessions=sessions, impressions=impressions, relevance_labels="relevance_labels",
            page_labels="page_labels", user_aggs=user_aggs, user_columns=self.user_sql["user_columns"],
            impression_sessions=(f"\n    JOIN {sessions} sq ON sq.session_id = i.session_id"
                                 if "sq." in user_aggs else ""),
            extra_segments=extra, unit=self._unit_sql())

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
        rows = self.con.execute("SELECT DISTINCT day FROM session_values WHERE arm IS NOT NULL AND day IS NOT NULL "
                                "ORDER BY day").fetchall()
        return [r[0].isoformat() for r in rows]

    def _unit_values_sql(self, segment: str, source: str = "session_values", by_day: bool = False) -> str:
        """Stage 2: one row per (unit, arm, segment value), or with ``by_day`` per (unit, arm, segment
        value, day) — the unit's totals over its sessions of that value (on that day)."""
        segment = self._segment_sql(segment)
        day = ",\n    day" if by_day else ""
        totals = sql_template("02_unit_totals.sql").substitute(
            keys=f"unit_id,\n    arm,\n    {segment} AS segment_value{day}",
            group_by=f"unit_id, arm, {segment}{', day' if by_day else ''}",
            source=source, filter="arm IS NOT NULL", user_totals=self.user_sql["user_totals"])
        return sql_template("02_unit_values.sql").substitute(unit_totals=totals,
                                                             user_select=self.user_sql["user_select"])

    def _arm_stats(self, metrics: Sequence[Metric], source: str, cumulative: bool = False,
                   covariates: bool | None = None) -> pd.DataFrame:
        """Stage 3's wide result (see :func:`long_arm_stats`); covariates by default when there is a pre-period."""
        covariates = self.has_pre if covariates is None else covariates
        return self.con.execute(arm_stats_sql(metrics, source, covariates, cumulative)).df()

    def sufficient_stats(self, metrics: Sequence[Metric], segments: Sequence[str] = ()) -> pd.DataFrame:
        """One row per (metric, segment, segment value, arm); ``segment`` is 'all' for the overall row."""
        frames = []
        for segment in (OVERALL, *segments):
            df = long_arm_stats(self._arm_stats(metrics, f"({self._unit_values_sql(segment)}) unit_values"), metrics)
            df.insert(1, "segment", segment)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def daily_sufficient_stats(self, metrics: Sequence[Metric]) -> pd.DataFrame:
        """Cumulative statistics up to and including each day (for daily looks), in one stage-2
        pass at (unit, day) grain: every sum is a sum over units of a function of the unit's
        running totals, so it is the cumulative sum over days of f(new state) - f(previous state)
        (sql/02_cumulative_unit_states.sql). Percentile caps depend on each look's units as a
        whole, so metrics with one get a stage-2 pass per look instead."""
        daily = self._daily_looks(metrics, OVERALL)
        daily = daily.sort_values(["day", "metric", "arm"], kind="stable")
        return daily[["metric", "day", "arm", "n", *SUFFICIENT_SUMS]].reset_index(drop=True)

    def daily_segment_sufficient_stats(self, metrics: Sequence[Metric], segments: Sequence[str]) -> pd.DataFrame:
        """Cumulative statistics of every segment value up to and including each day: one row per
        (metric, segment, segment value, day, arm), as :meth:`daily_sufficient_stats` computes the
        overall looks (a unit's running totals over its sessions of that value, one stage-2 pass per
        segment at (unit, value, day) grain; percentile caps over each look's units of the value, as
        :meth:`sufficient_stats` caps them). A look's sums are those of :meth:`sufficient_stats` on the
        sessions up to that day, so the last day's equal the segment table's."""
        columns = ["metric", "segment", "segment_value", "day", "arm", "n", *SUFFICIENT_SUMS]
        frames = []
        for segment in segments:
            looks = self._daily_looks(metrics, segment).sort_values(["segment_value", "day", "metric", "arm"],
                                                                    kind="stable")
            looks.insert(1, "segment", segment)
            frames.append(looks[columns])
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)

    def _daily_looks(self, metrics: Sequence[Metric], segment: str) -> pd.DataFrame:
        """Cumulative looks per (metric, arm, value of ``segment``, day): columns metric, arm,
        segment_value, day, n and the sums (empty for a log without session times)."""
        days = self.days()
        telescoped = [m for m in metrics if m.cap_percentile is None]
        capped_per_look = [m for m in metrics if m.cap_percentile is not None]
        frames = []
        if telescoped and days:
            states = sql_template("02_cumulative_unit_states.sql").substitute(
                self._state_columns(telescoped), unit_values=self._unit_values_sql(segment, by_day=True))
            increments = self._arm_stats(telescoped, f"({states}) unit_states", cumulative=True)
            frames.append(long_arm_stats(_accumulate_days(increments, days), telescoped))
        for day in days if capped_per_look else ():
            upto_day = f"(SELECT * FROM session_values WHERE day <= DATE '{day}') upto_day"
            look = self._arm_stats(capped_per_look, f"({self._unit_values_sql(segment, upto_day)}) unit_values")
            frames.append(long_arm_stats(look, capped_per_look).assign(day=day))
        if not frames:  # a log without session times has no daily looks
            return pd.DataFrame(columns=["metric", "arm", "segment_value", "day", "n", *SUFFICIENT_SUMS])
        return pd.concat(frames, ignore_index=True)[["metric", "arm", "segment_value", "day", "n", *SUFFICIENT_SUMS]]

    def _state_columns(self, metrics: Sequence[Metric]) -> dict[str, str]:
        """Window fragments of sql/02_cumulative_unit_states.sql for the unit columns the metrics
        use: a running sum minus the current row is the previous state (cheaper than a second
        window frame). The pre-period covariates pass through (stage 3 reads them only with a pre-period)."""
        names = list(dict.fromkeys(n for m in metrics
                                   for n in _unit_column_pattern(m).findall(f"{m.numerator} {m.denominator or ''}")))
        user_max = {c.name for m in metrics for c in m.columns if c.agg == "max"}
        running = {n: f"MAX({n}) OVER running" if n in user_max else f"SUM({n}) OVER running" for n in names}
        previous = {n: f"MAX({n}) OVER before" if n in user_max else f"({running[n]}) - {n}" for n in names}
        return {"cumulative": "".join(f",\n    {running[n]} AS {n}" for n in names),
                "previous": "".join(f",\n    {previous[n]} AS prev_{n}" for n in names),
                "pre_columns": "".join(f",\n    pre_{n}" for n in names) if self.has_pre else ""}

    def long_tail_stats(self) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """Sufficient statistics of the per-user long-tail metrics, and per-arm coverage and Gini;
        None when the dataset has no catalog or no pre-period (tail items are defined by it)."""
        from abplatform.metrics.long_tail import HEAD_SHARE, LONG_TAIL_METRICS

        if not (self.dataset.has("items") and self.dataset.has("pre_impressions")) or self.unit != "user":
            return None  # tail items come from the pre-period's exposure; the per-user values need users
        script = sql_template("04_long_tail.sql").substitute(head_share=repr(HEAD_SHARE))
        code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
        with self._one_thread():
            for statement in (s.strip() for s in code.split(";")):
                if statement:
                    self.con.execute(statement)
            units = f"(SELECT *, '{OVERALL}' AS segment_value FROM long_tail_units) u"
            suff = long_arm_stats(self._arm_stats(LONG_TAIL_METRICS, units, covariates=False), LONG_TAIL_METRICS)
            arms = self.con.execute("SELECT * FROM long_tail_arms ORDER BY arm").df()
        return suff, arms

    @contextlib.contextmanager
    def _one_thread(self) -> Iterator[None]:
        """duckdb on one thread: sums of non-integer per-user floats (the long-tail values) in one order,
        so their last bits — and every rerun's report — are the same."""
        threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]  # type: ignore[index]
        self.con.execute("SET threads = 1")
        try:
            yield
        finally:
            self.con.execute(f"SET threads = {int(threads)}")

    # -- power planning (abplatform/planning.py) ---------------------------------------------------------

    def logged_arms(self) -> list[str]:
        """The arms the experiment period's sessions carry (empty for a log without arms, e.g. the world's)."""
        rows = self.con.execute("SELECT DISTINCT arm FROM session_values WHERE arm IS NOT NULL ORDER BY arm").fetchall()
        return [r[0] for r in rows]

    def new_unit_curve(self, period: Literal["pre", "experiment"] = "pre") -> pd.DataFrame:
        """The period's accrual curve: per calendar day from its first to its last session, ``new_units``
        (units first seen that day) and ``units`` (distinct units seen up to and including it).

        ``pre``: the whole pre-period (``statistics.pre_period_days`` bounds the CUPED covariates only);
        ``experiment``: the experiment period's units with an arm, or every unit when its sessions carry
        none. A few rows per period (one per day); empty when the period has no sessions."""
        table = "pre_session_values" if period == "pre" else "session_values"
        where = "TRUE"
        if period == "experiment" and self.logged_arms():
            where = "arm IS NOT NULL"
        sql = (f"SELECT d.day, COALESCE(f.new_units, 0) AS new_units\n"
               f"FROM (SELECT DISTINCT day FROM {table} WHERE {where}) d\n"
               f"LEFT JOIN (\n"
               f"    SELECT first_day, COUNT(*) AS new_units\n"
               f"    FROM (SELECT unit_id, MIN(day) AS first_day FROM {table} WHERE {where} GROUP BY unit_id) u\n"
               f"    GROUP BY first_day\n"
               f") f ON f.first_day = d.day\n"
               f"ORDER BY d.day")
        found = self.con.execute(sql).df()
        if found.empty:
            return pd.DataFrame({"day": pd.Series(dtype=str), "new_units": pd.Series(dtype="int64"),
                                 "units": pd.Series(dtype="int64")})
        days = pd.to_datetime(found["day"])
        calendar = pd.date_range(days.min(), days.max(), freq="D")  # a day without sessions adds no units
        new = found.set_index(days)["new_units"].astype("int64").reindex(calendar, fill_value=0)
        return pd.DataFrame({"day": calendar.strftime("%Y-%m-%d"), "new_units": new.to_numpy(),
                             "units": new.cumsum().to_numpy()})

    def baseline_sufficient_stats(self, metrics: Sequence[Metric], arm: str | None = None) -> pd.DataFrame:
        """One pooled sample's sufficient statistics, one row per metric (``arm`` names the sample):
        the experiment period's units of ``arm``, or with ``arm=None`` every unit of the period whether
        or not its sessions carry an arm — the baseline of power planning. The CUPED covariates are the
        pre-period's, joined as in :meth:`sufficient_stats`; with ``pre_period_days`` and ``arm=None``
        their window is counted back from the period's first session (the engine's own window is counted
        from the first session with an arm, which a log without arms does not have)."""
        label = "'" + (arm if arm is not None else OVERALL).replace("'", "''") + "'"
        totals = sql_template("02_unit_totals.sql").substitute(
            keys=f"unit_id,\n    {label} AS arm,\n    '{OVERALL}' AS segment_value", group_by="unit_id",
            source="session_values", filter=f"arm = {label}" if arm is not None else "TRUE",
            user_totals=self.user_sql["user_totals"])
        units = sql_template("02_unit_values.sql").substitute(unit_totals=totals,
                                                              user_select=self.user_sql["user_select"])
        if arm is None and self.pre_period_days is not None and self.has_pre:
            pre = sql_template("02_unit_totals.sql").substitute(
                keys="unit_id", group_by="unit_id", source="pre_session_values",
                filter=(f"day >= CAST((SELECT MIN(day) FROM session_values) "
                        f"- INTERVAL {int(self.pre_period_days)} DAY AS DATE)"),
                user_totals=self.user_sql["user_totals"])
            # the CTE shadows the engine's table of the same name inside this query only
            units = f"WITH pre_unit_values AS (\n{pre}\n)\nSELECT * FROM (\n{units}\n) baseline_units"
        return long_arm_stats(self._arm_stats(metrics, f"({units}) unit_values"), metrics)


def _accumulate_days(increments: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """Stage 3's per-day increments (one row per arm, segment value and day) -> cumulative statistics
    at every look (a day without sessions in an arm and value repeats the previous look); rows before
    the first unit of an arm and value are dropped, as a look over no units has no statistics."""
    increments = increments.assign(day=pd.to_datetime(increments["day"]).dt.strftime("%Y-%m-%d"))
    sums = [c for c in increments.columns if c not in ("arm", "segment_value", "day")]
    frames = []
    for (arm, value), g in increments.groupby(["arm", "segment_value"], sort=True, dropna=False):
        looks = g.set_index("day")[sums].reindex(days, fill_value=0).cumsum()
        looks.insert(0, "arm", str(arm))
        looks.insert(1, "segment_value", value if isinstance(value, str) else None)  # values are text, or NULL
        frames.append(looks.rename_axis("day").reset_index())
    looks = pd.concat(frames, ignore_index=True)
    return looks[looks["n"] > 0]
