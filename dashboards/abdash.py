"""Shared pieces of the dashboard pages: cached loaders, number formats, tables with a CSV download,
and the plotly figures. Pages import this module (``app.py`` puts this folder on ``sys.path``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from abplatform import dashboard_data as dd
from abplatform.dashboard_data import fmt_ci, fmt_p, fmt_pct, fmt_value
from abplatform.report.model import MetricResult
from abplatform.report.render import ci_cell

ARM_COLOURS = dd.ARM_COLOURS
VERDICT_COLOURS = dd.VERDICT_COLOURS
OKABE_ITO = dd.OKABE_ITO
SEGMENT_COLOURS = [OKABE_ITO["blue"], OKABE_ITO["reddish_purple"], OKABE_ITO["bluish_green"],
                   OKABE_ITO["orange"], OKABE_ITO["sky_blue"], OKABE_ITO["vermillion"]]
SEGMENT_NAMES = {"query_segment": "query frequency", "query_complexity": "query complexity",
                 "user_type": "new vs returning"}
DIRECTION = {"increase": "↑ higher", "decrease": "↓ lower"}
RUN_KEY = "run"


# --- loading (cached: the index by its mtime, a report by its run id) ----------------------------

def root() -> str:
    return str(dd.results_root())


@st.cache_data(show_spinner=False, max_entries=16)
def _index(root_: str, mtime_ns: int) -> list[dict[str, Any]]:
    return dd.read_index(root_)


def runs(quiet: bool = False) -> list[dict[str, Any]]:
    """The index, newest first; a broken index.json is an error message (unless quiet) and no runs."""
    r = root()
    try:
        return _index(r, dd.index_mtime(r))
    except ValueError as e:
        if not quiet:
            st.error(f"Cannot read the run index: {e}", icon=":material/error:")
        return []


@st.cache_data(show_spinner=False, max_entries=256)
def _report(root_: str, run_id: str, path: str) -> dict[str, Any]:
    return dd.read_report(root_, path)


@st.cache_data(show_spinner=False, max_entries=256)
def _config(root_: str, run_id: str, path: str) -> dict[str, Any]:
    return dd.read_config(root_, path)


@st.cache_data(show_spinner=False, max_entries=64)
def _experiment_yaml(root_: str, run_id: str, path: str) -> str | None:
    return dd.read_experiment_yaml(root_, path)


def experiment_yaml(entry: dict[str, Any]) -> str | None:
    return _experiment_yaml(root(), entry["run_id"], entry["path"])


def report(entry: dict[str, Any]) -> dict[str, Any]:
    return _report(root(), entry["run_id"], entry["path"])


def config(entry: dict[str, Any]) -> dict[str, Any]:
    return _config(root(), entry["run_id"], entry["path"])


def by_path(quiet: bool = True) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in runs(quiet=quiet)}


def current() -> dict[str, Any] | None:
    """The run picked in the sidebar (None when there are no runs)."""
    entries = by_path()
    key = st.session_state.get(RUN_KEY)
    if key in entries:
        return entries[key]
    return next(iter(entries.values()), None)


def require_run() -> tuple[dict[str, Any], dict[str, Any]]:
    """The selected run and its report; for an A/B/n run, the report as the comparison picked in the
    sidebar (its rows, latency and long tail in the report's own fields; the decision stays the run's)."""
    entry = current()
    if entry is None:
        st.info(f"No runs yet in `{root()}`. Make one with `abplatform run EXPERIMENT.yaml` "
                "(or `make demo`), then reload this page.")
        st.stop()
    return entry, comparison_view(safe_report(entry))


COMPARISON_KEY = "comparison"


def comparison_view(rep: dict[str, Any]) -> dict[str, Any]:
    comparisons = rep.get("comparisons") or []
    if not comparisons:
        return rep
    names = [f"{c['treatment']} vs {c['control']}" for c in comparisons]
    with st.sidebar:
        if st.session_state.get(COMPARISON_KEY) not in names:
            st.session_state[COMPARISON_KEY] = names[0]
        name = st.selectbox("Comparison", names, key=COMPARISON_KEY,
                            help=f"This run has {len(rep.get('arms') or [])} arms; every page shows one comparison.")
    c = comparisons[names.index(name)]
    fields = ("control", "treatment", "metrics", "segments", "daily", "latency_guardrail", "long_tail")
    return {**rep, **{k: c.get(k) for k in fields}, "comparison_decision": c.get("decision")}


def safe_report(entry: dict[str, Any]) -> dict[str, Any]:
    """The run's report, or an error message and the end of this page when it cannot be read."""
    try:
        return report(entry)
    except (OSError, ValueError) as e:
        st.error(f"Cannot read run {entry['run_id']} ({entry['path']}): {e}", icon=":material/error:")
        st.stop()


def label(entry: dict[str, Any]) -> str:
    return dd.run_label(entry)


# --- formats ---------------------------------------------------------------------------------------

def pct(v: Any) -> str:
    return fmt_pct(dd.finite(v))


def ci(lo: Any, hi: Any, as_pct: bool = True) -> str:
    return fmt_ci(dd.finite(lo), dd.finite(hi), pct=as_pct)


def as_result(m: dict[str, Any]) -> MetricResult:
    """A report row (dict from report.json) as the typed row the report's renderings format."""
    return MetricResult(**{k: v for k, v in m.items() if k in MetricResult.__dataclass_fields__})


def val(v: Any) -> str:
    return fmt_value(dd.finite(v))


def pval(v: Any) -> str:
    return fmt_p(dd.finite(v))


def p_is(v: Any) -> str:
    """'p = 0.0123' or 'p < 0.0001'."""
    t = pval(v)
    return f"p {t[0]} {t[1:]}" if t.startswith("<") else f"p = {t}"


def correction(cfg: dict[str, Any]) -> str:
    return (cfg.get("statistics") or {}).get("correction", "none") if cfg else "not recorded"


def ci_level(cfg: dict[str, Any]) -> str:
    alpha = (cfg.get("statistics") or {}).get("alpha", 0.05)
    return f"{1 - alpha:.0%} CI"


def lift_cell(lift: Any, lo: Any, hi: Any) -> str:
    return f"{pct(lift)} {ci(lo, hi)}"


def metric_table(rows: list[dict[str, Any]], guardrail: bool = False, level: str = "95% CI") -> pd.DataFrame:
    """A metric row per line, formatted as the analyst reads it (signed %, CIs in brackets)."""
    out = []
    for m in rows:
        row = as_result(m)
        r = {"metric": m["metric"]}
        if "segment" in m:
            r = {"segment": SEGMENT_NAMES.get(m["segment"], m["segment"]), "value": m["segment_value"], **r}
        r.update({"role": m.get("role"), "direction": DIRECTION.get(m.get("direction"), m.get("direction")),
                  "control": val(m.get("control_value")), "treatment": val(m.get("treatment_value")),
                  "rel diff": pct(m.get("rel_effect")), "H1": row.hypothesis(),
                  level: ci_cell(row), "p": pval(m.get("p_value")),
                  f"{level} (adjusted)": ci_cell(row, adjusted=True), "p (adjusted)": pval(m.get("p_value_adjusted")),
                  "verdict": dd.VERDICT_MARKS[dd.verdict(m)],
                  "abs diff": val(m.get("abs_effect")),
                  f"abs diff {level}": fmt_ci(dd.finite(m.get("abs_ci_low")), dd.finite(m.get("abs_ci_high")),
                                              pct=False, alternative=m.get("alternative", "two-sided")),
                  "abs diff p": pval(m.get("abs_p_value"))})
        if guardrail:
            r.update({"margin": f"{m['margin']:.2%}" if dd.finite(m.get("margin")) is not None else "—",
                      "breached": "yes" if m.get("breached") else "no"})
        out.append(r)
    return pd.DataFrame(out)


def _row_style(row: pd.Series) -> list[str]:
    v = str(row.get("verdict", ""))
    colour = {"▲": VERDICT_COLOURS["better"], "▼": VERDICT_COLOURS["worse"]}.get(v[:1])
    if colour is None:
        return [""] * len(row)
    return [f"background-color: {colour}33" if c in ("rel diff", "verdict") else "" for c in row.index]


DECISION_COLOURS = {"PROMOTE": OKABE_ITO["bluish_green"], "HOLD": OKABE_ITO["orange"]}


def _decision_style(v: Any) -> str:
    colour = DECISION_COLOURS.get(str(v))
    return f"background-color: {colour}40; font-weight: 600" if colour else ""


def show_table(shown: pd.DataFrame, raw: pd.DataFrame | list[dict[str, Any]], name: str, key: str,
               colour_verdict: bool = False) -> None:
    """The formatted table, and a CSV download of the raw (unformatted) values behind it."""
    raw_df = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(raw)
    data: Any = shown
    if colour_verdict and "verdict" in shown.columns and not shown.empty:
        data = shown.style.apply(_row_style, axis=1)
    elif "decision" in shown.columns and not shown.empty:  # decision badges: the word, on its colour
        data = shown.style.map(_decision_style, subset=["decision"])
    st.dataframe(data, hide_index=True, key=f"table_{key}")
    st.download_button(f"Download {name} as CSV", raw_df.to_csv(index=False).encode(), file_name=f"{key}.csv",
                       mime="text/csv", key=f"csv_{key}", on_click="ignore", icon=":material/download:")


def decision_block(rep: dict[str, Any]) -> None:
    """The decision and its reasons in the words of report.json (what the gate prints)."""
    d = rep.get("decision") or {}
    word = str(d.get("decision", "unknown"))
    arm = f" {d['arm']}" if d.get("arm") and rep.get("comparisons") else ""
    st.badge(word.upper() + arm, color="green" if word == "promote" else "orange",
             icon=":material/check_circle:" if word == "promote" else ":material/pause_circle:")
    st.markdown(f"**Decision: {word.upper()}{arm}**" + (f" — {d['explanation']}" if arm or rep.get("comparisons")
                                                        and d.get("explanation") else ""))
    reasons = d.get("reasons") or []
    if reasons:
        st.markdown("\n".join(f"- {r}" for r in reasons))
    else:
        st.caption("No reasons recorded against shipping.")
    own = rep.get("comparison_decision")
    if own is not None:
        verdict = "beats" if own.get("decision") == "promote" else "does not beat"
        st.caption(f"This comparison: {rep.get('treatment')} {verdict} {rep.get('control')}.")


def srm_banner(rep: dict[str, Any]) -> None:
    srm = rep.get("srm") or {}
    units = ", ".join(f"{a} {n:,}" for a, n in (srm.get("units") or {}).items())
    text = f"units {units}; {srm.get('test') or 'chi-square'} {p_is(srm.get('p_value'))}"
    if srm.get("failed"):
        st.error(f"**Sample ratio mismatch** — the split is off ({text}). The assignment or logging is "
                 "broken; do not trust the effects below until it is explained.", icon=":material/warning:")
    else:
        st.success(f"Sample ratio check passed ({text}).", icon=":material/balance:")


# --- figures ---------------------------------------------------------------------------------------

def _err(x: list[float | None], lo: list[float | None], hi: list[float | None]) -> dict[str, Any]:
    plus = [None if v is None or h is None else h - v for v, h in zip(x, hi)]
    minus = [None if v is None or l_ is None else v - l_ for v, l_ in zip(x, lo)]
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 2, "width": 6}


def forest(labels: list[str], series: list[dict[str, Any]], title: str, ref: float | None = 0.0,
           x_title: str = "relative lift, treatment vs control", dodge: bool = True) -> go.Figure:
    """Point estimates with CI whiskers; one trace per series, dodged vertically around each label.

    Each series: name, x, lo, hi (lists aligned with ``labels``; None where missing), colour (one
    colour or a list, one per label), symbol."""
    fig = go.Figure()
    k = len(series)
    step = 0.5 / max(k, 1)
    for j, s in enumerate(series):
        off = (j - (k - 1) / 2) * step if k > 1 and dodge else 0.0
        x = [dd.finite(v) for v in s["x"]]
        lo = [dd.finite(v) for v in s["lo"]]
        hi = [dd.finite(v) for v in s["hi"]]
        texts = [f"{lab}: {fmt_pct(v)} {fmt_ci(a, b)}" for lab, v, a, b in zip(labels, x, lo, hi)]
        fig.add_trace(go.Scatter(
            name=s["name"], x=x, y=[i + off for i in range(len(labels))], mode="markers",
            marker={"color": s["colour"], "size": 11, "symbol": s.get("symbol", "circle"),
                    "line": {"color": "#000000", "width": 1}},
            error_x={**_err(x, lo, hi), "color": s["colour"] if isinstance(s["colour"], str) else "#555555"},
            hovertext=texts, hoverinfo="text+name"))
    if ref is not None:
        fig.add_vline(x=ref, line_dash="dash", line_color="#555555")
    fig.update_layout(title=title, height=120 + 46 * max(len(labels), 1) * (1 + 0.3 * (k - 1) * dodge),
                      margin={"l": 10, "r": 10, "t": 50, "b": 40}, showlegend=k > 1,
                      legend={"orientation": "h", "y": -0.15})
    fig.update_yaxes(tickvals=list(range(len(labels))), ticktext=labels, autorange="reversed")
    fig.update_xaxes(title=x_title, tickformat="+.1%", zeroline=False)
    return fig


def metrics_forest(rows: list[dict[str, Any]], title: str, adjusted: bool = False) -> go.Figure:
    sfx = "_adjusted" if adjusted else ""
    return forest([m["metric"] for m in rows], [{
        "name": "treatment vs control", "x": [m.get("rel_effect") for m in rows],
        "lo": [m.get(f"rel_ci_low{sfx}") for m in rows], "hi": [m.get(f"rel_ci_high{sfx}") for m in rows],
        "colour": [VERDICT_COLOURS[dd.verdict(m)] for m in rows]}], title)


def daily_figure(rows: list[dict[str, Any]], metric: str, band: str) -> go.Figure:
    days = [r["day"] for r in rows]
    lift = [dd.finite(r.get("rel_effect")) for r in rows]
    lo = [dd.finite(r.get("rel_ci_low")) for r in rows]
    hi = [dd.finite(r.get("rel_ci_high")) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(name="upper bound", x=days, y=hi, mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(name=band, x=days, y=lo, mode="lines", line={"width": 0}, fill="tonexty",
                             fillcolor="rgba(230,159,0,0.25)", hoverinfo="skip"))
    fig.add_trace(go.Scatter(name="cumulative lift", x=days, y=lift, mode="lines+markers",
                             line={"color": ARM_COLOURS["treatment"], "width": 3},
                             hovertext=[f"{d}: {fmt_pct(v)} {fmt_ci(a, b)}" for d, v, a, b in zip(days, lift, lo, hi)],
                             hoverinfo="text"))
    fig.add_hline(y=0, line_dash="dash", line_color="#555555")
    fig.update_layout(title=f"Cumulative relative lift of {metric}, by day", height=400,
                      margin={"l": 10, "r": 10, "t": 50, "b": 40},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0})
    fig.update_yaxes(title="relative lift", tickformat="+.1%")
    fig.update_xaxes(title="data through day", type="category")
    return fig


def arm_bars(per_arm: dict[str, dict[str, Any]], measures: list[str], arms: list[str]) -> go.Figure:
    """One small panel per long-tail measure, one bar per arm (arm colours throughout)."""
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=measures)
    for i, meas in enumerate(measures, start=1):
        for j, arm in enumerate(arms):
            colour = ARM_COLOURS.get(arm, SEGMENT_COLOURS[j % len(SEGMENT_COLOURS)])
            fig.add_trace(go.Bar(name=arm, x=[arm], y=[dd.finite((per_arm.get(arm) or {}).get(meas))],
                                 marker_color=colour, legendgroup=arm, showlegend=i == 1,
                                 hovertemplate=f"{arm} · {meas}: %{{y:.4g}}<extra></extra>"), row=1, col=i)
    fig.update_layout(height=330, margin={"l": 10, "r": 10, "t": 60, "b": 30}, bargap=0.25,
                      legend={"orientation": "h", "y": -0.15})
    fig.update_xaxes(showticklabels=False)
    fig.update_annotations(font_size=11)
    return fig


def plot(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, key=key, config={"displaylogo": False})
