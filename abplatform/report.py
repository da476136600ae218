"""Scorecard renderings: report.json (the machine-readable truth), report.md and the console table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from abplatform.formats import fmt_ci, fmt_p, fmt_pct, fmt_value
from abplatform.scorecard import Scorecard

METRIC_COLUMNS = ["metric", "role", "type", "direction", "n_control", "n_treatment", "control_value",
                  "treatment_value", "abs_effect", "abs_ci_low", "abs_ci_high", "rel_effect", "rel_ci_low",
                  "rel_ci_high", "p_value", "p_value_adjusted", "abs_ci_low_adjusted", "abs_ci_high_adjusted",
                  "rel_ci_low_adjusted", "rel_ci_high_adjusted", "variance_reduction", "significant", "improved",
                  "degraded", "margin", "noninferior_p_value", "breached", "mde_rel", "planned_mde", "underpowered"]


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


def records(df: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    return [{c: _clean(v) for c, v in zip(cols, row)} for row in df[cols].itertuples(index=False, name=None)]


def scorecard_json(card: Scorecard) -> dict[str, Any]:
    srm_all = card.srm[card.srm["segment"] == "all"].iloc[0]
    return {
        "control": card.control,
        "treatment": card.treatment,
        "decision": {"decision": card.decision.label, "reasons": card.decision.reasons},
        "srm": {"p_value": _clean(srm_all["p_value"]), "chi2": _clean(srm_all["chi2"]), "failed": bool(srm_all["failed"]),
                "units": {a: _clean(srm_all[f"n_{a}"]) for a in (card.control, card.treatment)}},
        "metrics": records(card.overall, METRIC_COLUMNS),
        "segments": records(card.segments, ["segment", "segment_value", *METRIC_COLUMNS]),
        "srm_by_segment": records(card.srm),
        "daily": records(card.daily, ["day", *METRIC_COLUMNS]),
        **({} if card.long_tail is None else {"long_tail": long_tail_json(card)}),
    }


def long_tail_json(card: Scorecard) -> dict[str, Any]:
    per_arm: dict[str, dict[str, Any]] = {}
    for _, r in card.long_tail_arms.iterrows():
        per_arm[r["arm"]] = {"coverage": _clean(r["coverage"]), "exposure_gini": _clean(r["exposure_gini"])}
    for _, m in card.long_tail.iterrows():
        per_arm.setdefault(card.control, {})[m["metric"]] = _clean(m["control_value"])
        per_arm.setdefault(card.treatment, {})[m["metric"]] = _clean(m["treatment_value"])
    return {"per_arm": per_arm, "metrics": records(card.long_tail, METRIC_COLUMNS)}


def _metric_rows(metrics: list[dict[str, Any]]) -> list[list[str]]:
    return [[m["metric"], m["role"], fmt_value(m["control_value"]), fmt_value(m["treatment_value"]),
             fmt_value(m["abs_effect"]), fmt_pct(m["rel_effect"]), fmt_ci(m["rel_ci_low"], m["rel_ci_high"]),
             fmt_p(m["p_value"]), fmt_p(m["p_value_adjusted"])] for m in metrics]


HEADERS = ["metric", "role", "control", "treatment", "abs diff", "rel diff", "95% CI (rel)", "p", "p adj"]


def markdown(report: dict[str, Any]) -> str:
    d = report["decision"]
    lines = [f"# {report['experiment']} — {report['run_id']}", "",
             f"**Decision: {d['decision'].upper()}**" + ("" if not d["reasons"] else ""), ""]
    lines += [f"- {r}" for r in d["reasons"]]
    srm = report["srm"]
    units = ", ".join(f"{a}: {n}" for a, n in srm["units"].items())
    lines += ["", f"Mode: {report['mode']} · units {units} · SRM p = {fmt_p(srm['p_value'])}"
              + (" **(FAILED)**" if srm["failed"] else ""), ""]
    lines += ["| " + " | ".join(HEADERS) + " | MDE (80% power) |", "|" + "---|" * (len(HEADERS) + 1)]
    lines += ["| " + " | ".join(r) + f" | {fmt_pct(m.get('mde_rel'))} |"
              for r, m in zip(_metric_rows(report["metrics"]), report["metrics"])]
    under = [m["metric"] for m in report["metrics"] if m.get("underpowered")]
    if under:
        lines += ["", f"Underpowered (observed MDE above the planned one): {', '.join(under)}."]
    if report.get("segments"):
        lines += ["", "## By segment", "", "| segment | value | metric | rel diff | 95% CI | p |", "|---|---|---|---|---|---|"]
        for s in report["segments"]:
            lines.append(f"| {s['segment']} | {s['segment_value']} | {s['metric']} | {fmt_pct(s['rel_effect'])} | "
                         f"{fmt_ci(s['rel_ci_low'], s['rel_ci_high'])} | {fmt_p(s['p_value'])} |")
    if report.get("offline_vs_online"):
        rows = report["offline_vs_online"]
        lines += ["", f"## Offline prediction vs online result ({rows[0]['offline_experiment']} "
                      f"{rows[0]['offline_run_id']} vs {rows[0]['online_experiment']} {rows[0]['online_run_id']})", "",
                  "| metric | predicted lift | 95% CI | observed lift | 95% CI | prediction inside observed CI |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['metric']} | {fmt_pct(r['predicted_rel_effect'])} | "
                         f"{fmt_ci(r['predicted_rel_ci_low'], r['predicted_rel_ci_high'])} | "
                         f"{fmt_pct(r['observed_rel_effect'])} | {fmt_ci(r['observed_rel_ci_low'], r['observed_rel_ci_high'])} | "
                         f"{'yes' if r['prediction_inside_observed_ci'] else 'no'} |")
    if report.get("long_tail"):
        lt = report["long_tail"]
        lines += ["", "## Long tail and information bubble", "",
                  "| metric | control | treatment | rel diff | 95% CI | p |", "|---|---|---|---|---|---|"]
        for m in lt["metrics"]:
            lines.append(f"| {m['metric']} | {fmt_value(m['control_value'])} | {fmt_value(m['treatment_value'])} | "
                         f"{fmt_pct(m['rel_effect'])} | {fmt_ci(m['rel_ci_low'], m['rel_ci_high'])} | {fmt_p(m['p_value'])} |")
        for key in ("coverage", "exposure_gini"):
            vals = " · ".join(f"{a}: {fmt_value(v.get(key))}" for a, v in lt["per_arm"].items())
            lines.append(f"| {key} (per arm) | {vals} | | | | |")
    if report.get("latency_ms_per_query"):
        lines += ["", "## Ranker scoring latency (ms per query, replay)", ""]
        lines += [f"- {a}: {v:.4f}" for a, v in report["latency_ms_per_query"].items()]
    return "\n".join(lines) + "\n"


def print_report(report: dict[str, Any], console: Console | None = None, segments: bool = True) -> None:
    console = console or Console()
    t = Table(title=f"{report['experiment']} · {report['mode']} · run {report['run_id']}")
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("metric", "role") else "right")
    for row in _metric_rows(report["metrics"]):
        t.add_row(*row)
    console.print(t)
    srm = report["srm"]
    units = ", ".join(f"{a} {n}" for a, n in srm["units"].items())
    console.print(f"Sample ratio check: units {units}; chi-square p = {fmt_p(srm['p_value'])}"
                  + (" [red]FAILED[/red]" if srm["failed"] else " (ok)"))
    if segments and report.get("segments"):
        st = Table(title="Relative lift by segment (95% CI)")
        for h in ("segment", "value", *[m["metric"] for m in report["metrics"]]):
            st.add_column(h, justify="left" if h in ("segment", "value") else "right")
        by_key: dict[tuple[str, str], dict[str, str]] = {}
        for s in report["segments"]:
            cell = f"{fmt_pct(s['rel_effect'])} {fmt_ci(s['rel_ci_low'], s['rel_ci_high'])}"
            by_key.setdefault((s["segment"], s["segment_value"]), {})[s["metric"]] = cell
        for (seg, val), cells in by_key.items():
            st.add_row(seg, val, *[cells.get(m["metric"], "") for m in report["metrics"]])
        console.print(st)
    d = report["decision"]
    colour = "green" if d["decision"] == "promote" else "yellow"
    console.print(f"Decision: [bold {colour}]{d['decision'].upper()}[/bold {colour}]")
    for r in d["reasons"]:
        console.print(f"  - {r}")
