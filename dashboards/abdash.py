"""Shared pieces of the dashboard pages: cached loaders, the run header (health banners and the verdict
card), HTML tables with a CSV download, and the plotly figures. Pages import this module (``app.py``
puts this folder on ``sys.path``).

Tables are HTML (``st.html``), not the canvas of ``st.dataframe``: every number is in the page's text,
so the browser's find and a screen reader reach it."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from abplatform import dashboard_data as dd
from abplatform.dashboard_data import fmt_ci, fmt_p, fmt_pct, fmt_value
from abplatform.report import render as dd_render
from abplatform.report.model import MetricResult, Report
from abplatform.report.render import ci_cell, decision_title

ARM_COLOURS = dd.ARM_COLOURS
VERDICT_COLOURS = dd.VERDICT_COLOURS
OKABE_ITO = dd.OKABE_ITO
SEGMENT_COLOURS = [OKABE_ITO["blue"], OKABE_ITO["reddish_purple"], OKABE_ITO["bluish_green"],
                   OKABE_ITO["orange"], OKABE_ITO["sky_blue"], OKABE_ITO["vermillion"]]
SEGMENT_NAMES = {"query_segment": "query frequency", "query_complexity": "query complexity",
                 "user_type": "new vs returning"}
DIRECTION = {"increase": "↑ higher", "decrease": "↓ lower"}
RUN_KEY = "run"
METRIC_PARAM = "metric"
UNKNOWN_RUN_KEY = "_unknown_run"
TEXT = "#1F2430"
MUTED = "#555B66"
STATUS = {"pass": ("✔", "pass"), "fail": ("✖", "fails"), "warn": ("⚠", "warning"), "info": ("ℹ", "note")}

CSS = """<style>
[data-testid="stMainBlockContainer"]{padding-top:3.4rem;padding-left:2.5rem;padding-right:2.5rem}
[data-testid="stMain"] h1{font-size:1.85rem;padding-top:.2rem}
[data-testid="stMain"] h2{font-size:1.35rem;padding-top:.6rem}
[data-testid="stCaptionContainer"]{color:#4A505B;opacity:1}
[data-testid="stCaptionContainer"] code,[data-testid="stSidebar"] code{color:#1F2430;background:#E6E9EE;opacity:1}
p.ab-nav{font-size:.8rem;font-weight:700;color:#555B66;margin:.6rem 0 .1rem 0;text-transform:uppercase;
  letter-spacing:.04em}
[data-testid="stSidebar"] input[role="combobox"]{font-size:.78rem;text-overflow:ellipsis}
[role="listbox"] [role="option"]{white-space:normal;overflow-wrap:anywhere;font-size:.85rem}
.ab-wrap{max-width:100%;overflow-x:auto;margin:0 0 .25rem 0}
table.ab{border-collapse:collapse;width:100%;font-size:.875rem;line-height:1.35;color:#1F2430}
table.ab th{background:#F3F5F8;text-align:left;font-weight:600;padding:.3rem .45rem;border-bottom:2px solid #C9CED6;
  vertical-align:bottom}
table.ab td{padding:.28rem .45rem;border-bottom:1px solid #E1E4EA;vertical-align:top}
table.ab td.num,table.ab th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.ab td.ci{white-space:nowrap;font-variant-numeric:tabular-nums}
table.ab tr.grp td{background:#FAFBFC;font-weight:600;color:#555B66;padding-top:.45rem}
table.ab .sub{display:block;color:#555B66;font-size:.78rem}
table.ab a{color:#005A8C}
.v-better{color:#00664C;font-weight:600}.v-worse{color:#A63A00;font-weight:600}.v-nochange{color:#4D4D4D}
td.t-better{background:#E3F2EC}td.t-worse{background:#FBE9E0}td.t-ne{background:#F3F5F8;color:#555B66}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;font-weight:700;font-size:.8rem;
  white-space:nowrap}
.badge.promote{background:#D7EEE5;color:#00664C}.badge.hold{background:#FFF1D6;color:#7A4A00}
.bar{position:relative;height:16px;min-width:110px;background:#F7F8FA;border-radius:3px}
.bar .z{position:absolute;top:0;bottom:0;width:0;border-left:1px solid #4D4D4D}
.bar .m{position:absolute;top:-2px;bottom:-2px;width:0;border-left:2px dashed #A63A00}
.bar .s{position:absolute;top:6px;height:4px;border-radius:2px}
.bar .d{position:absolute;top:3px;width:10px;height:10px;margin-left:-5px;border-radius:50%;border:1px solid #1F2430}
.ab-card{border:1px solid #C9CED6;border-left-width:8px;border-radius:6px;padding:.6rem .9rem;margin:.2rem 0 .6rem 0;
  color:#1F2430;background:#FFFFFF}
.ab-card.promote{border-left-color:#009E73}.ab-card.hold{border-left-color:#E69F00}
.ab-verdict{font-size:1.9rem;font-weight:800;letter-spacing:.02em;line-height:1.15}
.ab-card.promote .ab-verdict{color:#00664C}.ab-card.hold .ab-verdict{color:#7A4A00}
.ab-why{font-size:.95rem;margin:.15rem 0 .35rem 0}
.ab-sum{font-size:.85rem;color:#555B66}
ul.ab-checks{list-style:none;margin:.3rem 0 0 0;padding:0;font-size:.86rem}
ul.ab-checks li{padding:.14rem 0;border-top:1px solid #EEF0F3;margin:0}
ul.ab-checks li.cmp{font-weight:700;color:#1F2430;border-top:none;padding-top:.4rem}
.st{display:inline-block;min-width:5.6rem;font-weight:700}
.st-pass{color:#00664C}.st-fail{color:#A63A00}.st-warn{color:#7A4A00}.st-info{color:#555B66}
.ab-card details summary{cursor:pointer;font-size:.88rem;color:#005A8C;margin-top:.2rem}
table.ab[data-key="fingerprint"] td{overflow-wrap:anywhere;word-break:break-all}
</style>"""


class H(str):
    """A table cell that is HTML already (not escaped)."""


def esc(v: Any) -> str:
    return v if isinstance(v, H) else html.escape("" if v is None else str(v))


# --- loading (cached: the index by its mtime, a report by its run id) ----------------------------

def root() -> str:
    return str(dd.results_root())


def root_name() -> str:
    """The results folder as the page names it: its name, not the server's full path."""
    return Path(root()).resolve().name or root()


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
            st.error(f"Cannot read the run index (index.json of results folder {root_name()}): {e}",
                     icon=":material/error:")
        return []


def _index_readable() -> bool:
    """False when the index exists but cannot be read (``runs`` has said why)."""
    try:
        _index(root(), dd.index_mtime(root()))
    except ValueError:
        return False
    return True


@st.cache_data(show_spinner=False, max_entries=256)
def _report(root_: str, run_id: str, path: str) -> dict[str, Any]:
    return dd.read_report(root_, path)


@st.cache_resource(show_spinner=False, max_entries=64)
def _typed(root_: str, run_id: str, path: str) -> Report:
    return Report.from_dict(dd.read_report(root_, path))


@st.cache_data(show_spinner=False, max_entries=256)
def _config(root_: str, run_id: str, path: str) -> dict[str, Any]:
    return dd.read_config(root_, path)


@st.cache_data(show_spinner=False, max_entries=64)
def _experiment_yaml(root_: str, run_id: str, path: str) -> str | None:
    return dd.read_experiment_yaml(root_, path)


@st.cache_data(show_spinner=False, max_entries=64)
def _report_md(root_: str, run_id: str, path: str) -> str | None:
    return dd.read_report_md(root_, path)


@st.cache_data(show_spinner=False, max_entries=256)
def _missing(root_: str, run_id: str, path: str) -> list[str]:
    return dd.missing_files(root_, path)


def experiment_yaml(entry: dict[str, Any]) -> str | None:
    return _experiment_yaml(root(), entry["run_id"], entry["path"])


def report_md(entry: dict[str, Any]) -> str | None:
    return _report_md(root(), entry["run_id"], entry["path"])


def report(entry: dict[str, Any]) -> dict[str, Any]:
    return _report(root(), entry["run_id"], entry["path"])


def typed(entry: dict[str, Any]) -> Report:
    return _typed(root(), entry["run_id"], entry["path"])


def config(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        return _config(root(), entry["run_id"], entry["path"])
    except ValueError:
        return {}


def by_path(quiet: bool = True) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in runs(quiet=quiet)}


def current() -> dict[str, Any] | None:
    """The run picked in the sidebar (None when there are no runs, or a link named an unknown run and
    nothing has been picked since)."""
    entries = by_path()
    key = st.session_state.get(RUN_KEY)
    if key in entries:
        return entries[key]
    if st.session_state.get(UNKNOWN_RUN_KEY):
        return None
    return next(iter(entries.values()), None)


def read_error(entry: dict[str, Any], e: Exception) -> str:
    """Why a run cannot be shown, in plain words (no exception class, no server path)."""
    if isinstance(e, FileNotFoundError):
        why = "its report.json is gone (the run folder was moved or deleted after the index listed it)"
    elif isinstance(e, PermissionError):
        why = "its report.json cannot be read (no permission)"
    elif isinstance(e, ValueError) and "outside the results folder" in str(e):
        why = "the index points outside the results folder, which the dashboard refuses to read"
    elif isinstance(e, ValueError):
        why = f"its report.json is not a report this version can read ({e})"
    else:
        why = "its report.json cannot be read"
    return f"Cannot show run {entry['run_id']} of {entry.get('experiment', '?')}: {why}."


def safe_report(entry: dict[str, Any]) -> dict[str, Any]:
    """The run's report, or an error message and the end of this page when it cannot be read."""
    try:
        return report(entry)
    except (OSError, ValueError) as e:
        st.error(read_error(entry, e), icon=":material/error:")
        st.stop()


def require_run() -> tuple[dict[str, Any], dict[str, Any]]:
    """The selected run and its report; for an A/B/n run, the report as the comparison picked in the
    sidebar (its rows, latency and long tail in the report's own fields; the decision stays the run's)."""
    entry = current()
    if entry is None:
        wanted = st.session_state.get(UNKNOWN_RUN_KEY)
        if wanted:
            st.error(f"No run `{wanted}` in results folder {root_name()} (the link names a run this folder does "
                     "not have). Pick a run in the sidebar.", icon=":material/link_off:")
        elif runs(quiet=False) or dd.index_mtime(root()) == 0 or _index_readable():
            st.info(f"No runs yet in results folder {root_name()}. Make one with `abplatform run EXPERIMENT.yaml` "
                    "(or `make demo`), then reload this page.")
        st.stop()
    return entry, comparison_view(safe_report(entry))


def run_page(title: str, full: bool = False) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Every "Selected run" page opens alike: its title, what the run is, the health banners and the
    verdict card (the full checklist on the scorecard, folded elsewhere). Returns (entry, report as
    the chosen comparison, config)."""
    entry, rep = require_run()
    cfg = config(entry)
    st.title(f"{title} · {rep.get('experiment')}")
    run_caption(entry, rep, cfg)
    health(entry)
    health_details(entry)
    verdict_card(entry, rep, full=full)
    return entry, rep, cfg


def run_caption(entry: dict[str, Any], rep: dict[str, Any], cfg: dict[str, Any]) -> None:
    src = rep.get("source") or {}
    owner = cfg.get("owner")
    first, last = str(src.get("first_session", "?"))[:10], str(src.get("last_session", "?"))[:10]
    parts = [f"run `{rep.get('run_id')}`", str(rep.get("mode")), f"created {str(rep.get('created', ''))[:16]} UTC",
             f"owner {owner}" if owner else "owner not recorded",
             f"{rep.get('treatment')} vs {rep.get('control')}", f"data {first} → {last}",
             f"config `{str(rep.get('config_sha256', ''))[:12]}`"]
    st.caption(" · ".join(parts))
    if cfg.get("description"):
        st.caption(f"“{cfg['description']}”")


def health(entry: dict[str, Any], who: str = "", quiet_ok: bool = False) -> None:
    """The run's health banners: sample-ratio mismatch (overall or in a segment), serving cost breached
    or inconclusive, index and folder disagreeing, files missing. ``who`` names the run (pages that are
    not about one run); ``quiet_ok``: nothing when every check passed."""
    try:
        rep = typed(entry)
        problems = dd.run_health(entry, rep, _missing(root(), entry["run_id"], entry["path"]))
    except (OSError, ValueError):
        return  # safe_report says why
    for level in ("error", "warning"):
        texts = [t for lv, t in problems if lv == level]
        if texts:
            head = f"{who}:\n\n" if who else ""
            body = texts[0] if len(texts) == 1 else "\n".join(f"- {t}" for t in texts)
            (st.error if level == "error" else st.warning)(head + body, icon=":material/warning:")
    if not problems and not quiet_ok:
        st.success(dd.health_passed(rep), icon=":material/verified:")


def health_details(entry: dict[str, Any]) -> None:
    """Folded on every run page: the health checks in detail — each day's new units per arm with its
    sample-ratio test, the pre-period balance of every metric — and the data fingerprint (rows, date range,
    hashes, code and config versions)."""
    try:
        rep = typed(entry)
    except (OSError, ValueError):
        return
    days = dd.exposure_rows(rep)
    bal = dd.balance_rows(rep)
    bad = sum(d["failed"] for d in days) + sum(b["failed"] for b in bal)
    title = ("Health checks in detail: exposures per arm per day, pre-period balance"
             + (f" — {bad} failed" if bad else ""))
    with st.expander(title, icon=":material/monitor_heart:"):
        st.markdown(f"**Exposures per arm per day.** {dd_render.daily_srm_line(rep)}.")
        if days:
            arms = list(days[0]["units"])
            rows = []
            for d in days:
                total = sum(d["units"].values())
                shares = [f"{n:,} ({n / total:.1%})" if total else "0" for n in d["units"].values()]
                verdict = ("—" if d["p_value"] is None else
                           H('<span class="v-worse">✖ off the split</span>') if d["failed"]
                           else H('<span class="v-better">✔ ok</span>'))
                rows.append([d["day"], *shares, d["test"] or "—", pval(d["p_value"]), pval(d["p_value_adjusted"]),
                             verdict])
            cols = ["day", *(f"new {a}" for a in arms), "test", "p", "p (Holm, days)", "sample ratio"]
            st.html(html_table(cols, rows, "exposures", num=[*(f"new {a}" for a in arms), "p", "p (Holm, days)"],
                               caption="New units per arm that day (units first counted that day) and their share; "
                                       "the test is of that day's split against the configured weights."))
            download([{"day": d["day"], **{f"n_{a}": n for a, n in d["units"].items()}, "test": d["test"],
                       "p_value": d["p_value"], "p_value_adjusted": d["p_value_adjusted"], "failed": d["failed"]}
                      for d in days], "exposures per day", "exposures")
        st.markdown(f"**Pre-period balance.** {dd_render.balance_line(rep)}.")
        if bal:
            several = len(rep.comparison_list()) > 1
            rows = []
            for b in bal:
                verdict = (H('<span class="v-worse">✖ imbalanced</span>') if b["failed"]
                           else "no test" if b["p_value"] is None else H('<span class="v-better">✔ balanced</span>'))
                rows.append([*([b["comparison"]] if several else []), b["metric"], val(b["control_pre_value"]),
                             val(b["treatment_pre_value"]), pct(b["rel_diff"]), pval(b["p_value"]),
                             pval(b["p_value_adjusted"]), verdict])
            cols = [*(["comparison"] if several else []), "metric", "control", "treatment", "difference", "p",
                    "Holm p", "balance"]
            st.html(html_table(cols, rows, "balance", num=["control", "treatment", "difference", "p", "Holm p"],
                               caption="Each arm's pre-period value (per-unit mean; a ratio's Σ over Σ), before "
                                       "assignment: a randomised split differs by chance only. p: Welch's t test; "
                                       "Holm p: adjusted across the comparison's metrics."))
            download(bal, "pre-period balance", "balance")
    with st.expander("Data fingerprint: rows, date range, data hash, code and config versions",
                     icon=":material/fingerprint:"):
        st.html(html_table(["what", "value"], [list(r) for r in dd.fingerprint_rows(rep)], "fingerprint",
                           caption="What this run read and ran: the same data hash, code version and config "
                                   "hash reproduce its numbers."))


def verdict_card(entry: dict[str, Any], view: dict[str, Any], full: bool = False) -> None:
    """PROMOTE or HOLD (and the arm) in large type, why, and the checklist behind it — open on the
    scorecard, folded (still in the page's text) on the other pages."""
    rep = typed(entry)
    d = rep.decision
    kind = "promote" if d.promote else "hold"
    sym = "✔" if d.promote else "■"
    lines = dd.checklist(rep)
    mentioned = " ".join(f"{ln.label} {ln.detail}" for ln in lines)
    lines += [dd.CheckLine("fail", "Reason", r) for r in d.reasons if r not in mentioned]
    counts = {s: sum(ln.status == s for ln in lines) for s in STATUS}
    blocking = counts["fail"]
    if d.explanation and len(rep.comparison_list()) > 1:
        why = d.explanation[0].upper() + d.explanation[1:] + "."
    elif d.promote:
        why = "Every blocking check passed: the primary metrics improved, no guardrail was harmed beyond its margin."
    else:
        why = f"{blocking} blocking check{'s' if blocking != 1 else ''} failed — see the reasons marked ✖ below."
    summary = (f"{len(lines)} checks: {counts['pass']} passed, {counts['fail']} failed, {counts['warn']} "
               f"warning{'s' if counts['warn'] != 1 else ''}, {counts['info']} "
               f"note{'s' if counts['info'] != 1 else ''}")
    items, group = [], None
    for ln in lines:
        if ln.comparison and ln.comparison != group:
            group = ln.comparison
            c = next((c for c in rep.comparison_list() if c.name == group), None)
            beats = c is not None and c.decision.promote
            items.append(f'<li class="cmp">{esc(group)}: {esc(c.treatment if c else "")} '
                         f'{"beats" if beats else "does not beat"} {esc(c.control if c else "")}</li>')
        s, word = STATUS[ln.status]
        items.append(f'<li><span class="st st-{ln.status}">{s} {word}</span> <b>{esc(ln.label)}</b> — '
                     f'{esc(ln.detail)}</li>')
    checks = f'<ul class="ab-checks" aria-label="Decision checklist">{"".join(items)}</ul>'
    body = checks if full else f"<details><summary>Show the checklist ({esc(summary)})</summary>{checks}</details>"
    own = view.get("comparison_decision")
    this = ""
    if own is not None:
        verdict = "beats" if own.get("decision") == "promote" else "does not beat"
        this = (f'<div class="ab-sum">This page shows {esc(view.get("treatment"))} vs {esc(view.get("control"))}: '
                f'{esc(view.get("treatment"))} {verdict} {esc(view.get("control"))}.</div>')
    st.html(f'<section class="ab-card {kind}" aria-label="Decision">'
            f'<div class="ab-verdict"><span aria-hidden="true">{sym}</span> Decision: {esc(decision_title(rep))}</div>'
            f'<div class="ab-why">{esc(why)}</div><div class="ab-sum">{esc(summary)}</div>{this}{body}</section>')


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
    fields = ("control", "treatment", "metrics", "segments", "daily", "latency_guardrail", "long_tail",
              "heterogeneity", "daily_segments")
    return {**rep, **{k: c.get(k) for k in fields}, "comparison_decision": c.get("decision")}


def label(entry: dict[str, Any]) -> str:
    return dd.run_label(entry)


def metric_picker(names: list[str], key: str, label_: str = "Metric") -> str:
    """A metric picker whose choice is shared by the pages and kept in the URL (``?metric=``)."""
    wanted = st.query_params.get(METRIC_PARAM)
    if st.session_state.get(key) not in names:
        st.session_state[key] = wanted if wanted in names else names[0]
    elif wanted in names and wanted != st.session_state[key] and st.session_state.get(f"_{key}_seen") != wanted:
        st.session_state[key] = wanted  # the URL changed (a link): follow it
    metric = st.selectbox(label_, names, key=key)
    st.session_state[f"_{key}_seen"] = metric
    st.query_params[METRIC_PARAM] = metric
    return metric


# --- formats ---------------------------------------------------------------------------------------

def pct(v: Any) -> str:
    return fmt_pct(dd.finite(v))


def ci(lo: Any, hi: Any, as_pct: bool = True) -> str:
    return fmt_ci(dd.finite(lo), dd.finite(hi), pct=as_pct)


def as_result(m: dict[str, Any]) -> MetricResult:
    return dd.as_result(m)


def val(v: Any) -> str:
    return fmt_value(dd.finite(v))


def pval(v: Any) -> str:
    return fmt_p(dd.finite(v))


def p_is(v: Any) -> str:
    return dd.p_is(v)


def correction(cfg: dict[str, Any]) -> str:
    return (cfg.get("statistics") or {}).get("correction", "none") if cfg else "not recorded"


def ci_level(cfg: dict[str, Any]) -> str:
    alpha = (cfg.get("statistics") or {}).get("alpha", 0.05)
    return f"{1 - alpha:.0%} CI"


def daily_band(rep: dict[str, Any], cfg: dict[str, Any], level: str, series: dict[str, Any] | None = None) -> str:
    """What a daily look's band is: a confidence sequence (sequential analysis) or a fixed-horizon CI; for
    a segment value's ``series``, the method its own looks were tested with."""
    if series is not None:
        seq = series.get("sequential")
    else:
        seq = (cfg.get("statistics") or {}).get("sequential") or (rep.get("analysis") or {}).get("sequential")
    method = seq.get("method") if isinstance(seq, dict) else seq
    return (f"{level[:-3]} confidence sequence ({method}; valid at every look)" if seq
            else f"{level} (fixed-horizon; not valid for peeking)")


def lift_cell(lift: Any, lo: Any, hi: Any) -> str:
    return f"{pct(lift)} {ci(lo, hi)}"


def verdict_cell(kind: str) -> H:
    cls = {"better": "v-better", "worse": "v-worse"}.get(kind, "v-nochange")
    return H(f'<span class="{cls}">{html.escape(dd.VERDICT_MARKS[kind])}</span>')


def badge(decision: str, arm: str | None = None) -> H:
    kind = "promote" if decision == "promote" else "hold"
    sym = "✔" if kind == "promote" else "■"
    text = decision.upper() + (f" {arm}" if arm and arm != "treatment" else "")
    return H(f'<span class="badge {kind}"><span aria-hidden="true">{sym}</span> {html.escape(text)}</span>')


# --- tables ----------------------------------------------------------------------------------------

def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str, num: Sequence[str] = (),
               ci_cols: Sequence[str] = (), caption: str | None = None, groups: dict[int, str] | None = None,
               cell_class: dict[tuple[int, int], str] | None = None) -> str:
    """An HTML table: ``num`` columns right-aligned, ``ci_cols`` kept on one line; ``groups`` puts a
    group heading row before the row of that index; cells that are :class:`H` are HTML already."""
    nums, cis = set(num), set(ci_cols)

    def cls(c: str) -> str:
        return ' class="num"' if c in nums else ' class="ci"' if c in cis else ""

    head = "".join(f'<th scope="col"{cls(c)}>{esc(c)}</th>' for c in columns)
    body = []
    for i, row in enumerate(rows):
        if groups and i in groups:
            body.append(f'<tr class="grp"><td colspan="{len(columns)}">{esc(groups[i])}</td></tr>')
        cells = []
        for j, (c, v) in enumerate(zip(columns, row, strict=True)):
            extra = (cell_class or {}).get((i, j))
            base = "num" if c in nums else "ci" if c in cis else ""
            klass = " ".join(x for x in (base, extra) if x)
            cells.append(f'<td{f" class={chr(34)}{klass}{chr(34)}" if klass else ""}>{esc(v)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    style = f"caption-side:bottom;text-align:left;color:{MUTED};font-size:.8rem"
    cap = f"<caption style='{style}'>{esc(caption)}</caption>" if caption else ""
    return (f'<div class="ab-wrap"><table class="ab" data-key="{html.escape(key)}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def download(raw: pd.DataFrame | list[dict[str, Any]], name: str, key: str) -> None:
    raw_df = raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(raw)
    st.download_button(f"Download {name} as CSV", raw_df.to_csv(index=False).encode(), file_name=f"{key}.csv",
                       mime="text/csv", key=f"csv_{key}", on_click="ignore", icon=":material/download:")


def show_table(shown: pd.DataFrame, raw: pd.DataFrame | list[dict[str, Any]], name: str, key: str,
               colour_verdict: bool = False, num: Sequence[str] = ()) -> None:
    """The formatted table as HTML, and a CSV download of the raw (unformatted) values behind it."""
    columns = [str(c) for c in shown.columns]
    rows = []
    for _, r in shown.iterrows():
        row = []
        for c in shown.columns:
            v = r[c]
            if c == "verdict" and colour_verdict:
                kind = next((k for k, mark in dd.VERDICT_MARKS.items() if mark == v), None)
                v = verdict_cell(kind) if kind else v
            elif c == "decision" and isinstance(v, str) and v.split(" ")[0] in ("PROMOTE", "HOLD"):
                word, _, arm = v.partition(" ")
                v = badge(word.lower(), arm or None)
            row.append("" if v is None or (isinstance(v, float) and v != v) else v)
        rows.append(row)
    st.html(html_table(columns, rows, key, num=num))
    download(raw, name, key)


# --- the scorecard ---------------------------------------------------------------------------------

def _domain(rows: list[dict[str, Any]], adjusted: bool) -> tuple[float, float]:
    sfx = "_adjusted" if adjusted else ""
    vals = [0.0]
    for m in rows:
        for k in ("rel_effect", f"rel_ci_low{sfx}", f"rel_ci_high{sfx}"):
            v = dd.finite(m.get(k))
            if v is not None:
                vals.append(v)
        if m.get("role") == "guardrail" and dd.finite(m.get("null_effect")):
            vals.append(float(m["null_effect"]))
    lo, hi = min(vals), max(vals)
    pad = (hi - lo) * 0.08 or 0.01
    return lo - pad, hi + pad


def ci_bar(m: dict[str, Any], dom: tuple[float, float], adjusted: bool) -> H:
    """The interval drawn inline: the row's CI on a scale shared by the table, zero as a thin line, a
    guardrail's margin as a dashed line, the estimate as a dot; the same numbers in its label."""
    if m.get("test_scale", "relative") != "relative" or not dd.estimable(m):
        return H("")
    sfx = "_adjusted" if adjusted else ""
    lo_d, hi_d = dom

    def pos(v: float) -> float:
        return max(0.0, min(100.0, (v - lo_d) / (hi_d - lo_d) * 100))

    est = dd.finite(m.get("rel_effect"))
    lo, hi = dd.finite(m.get(f"rel_ci_low{sfx}")), dd.finite(m.get(f"rel_ci_high{sfx}"))
    colour = VERDICT_COLOURS[dd.verdict(m)]
    a, b = pos(lo if lo is not None else lo_d), pos(hi if hi is not None else hi_d)
    parts = [f'<span class="z" style="left:{pos(0):.1f}%"></span>']
    margin = dd.finite(m.get("null_effect")) if m.get("role") == "guardrail" else None
    if margin:
        parts.append(f'<span class="m" style="left:{pos(margin):.1f}%" title="margin {fmt_pct(margin)}"></span>')
    parts.append(f'<span class="s" style="left:{a:.1f}%;width:{max(b - a, 0.8):.1f}%;background:{colour}"></span>')
    if est is not None:
        parts.append(f'<span class="d" style="left:{pos(est):.1f}%;background:{colour}"></span>')
    text = f"{fmt_pct(est)} {ci_cell(as_result(m), adjusted)}" + (f", margin {fmt_pct(margin)}" if margin else "")
    return H(f'<div class="bar" role="img" aria-label="{html.escape(text)}" title="{html.escape(text)}">'
             f'{"".join(parts)}</div>')


def guardrail_verdict(m: dict[str, Any], checks: list[dict[str, Any]]) -> H:
    check = next((c for c in checks if c.get("kind") == "guardrail" and c.get("name") == m["metric"]), None)
    ok = (check["passed"] if check is not None else not (m.get("breached") or m.get("degraded")))
    if ok:
        return H('<span class="v-better">✔ within margin</span>')
    return H('<span class="v-worse">✖ margin not shown</span>')


def scorecard_table(rep: dict[str, Any], rows: list[dict[str, Any]], level: str, adjusted: bool, key: str) -> None:
    """One row per metric, grouped by role: values in their unit, the lift, the interval of the row's test
    (adjusted when a correction is on) drawn inline with zero and the guardrail margin, p and verdict."""
    ctl, trt = rep.get("control") or "control", rep.get("treatment") or "treatment"
    checks = [c for c in (rep.get("decision") or {}).get("checks") or []
              if not c.get("comparison") or c.get("comparison") == f"{trt} vs {ctl}"]
    ci_name = f"{level} (adjusted)" if adjusted else level
    p_name = "p (adjusted)" if adjusted else "p"
    cols = ["metric", ctl, trt, "lift", ci_name, p_name, "interval (0 and margin marked)", "verdict"]
    order = {"primary": 0, "secondary": 1, "guardrail": 2}
    ordered = sorted(rows, key=lambda m: order.get(m.get("role"), 3))
    dom = _domain(ordered, adjusted)
    out, groups, klass = [], {}, {}
    for i, m in enumerate(ordered):
        role = m.get("role")
        if i == 0 or role != ordered[i - 1].get("role"):
            groups[i] = {"primary": "Primary — decides", "secondary": "Secondary — informs",
                         "guardrail": "Guardrails — must not be harmed beyond the margin"}.get(role, str(role))
        kind, unit = dd.metric_unit(m["metric"], m.get("type"))
        row = as_result(m)
        est = dd.estimable(m)
        direction = DIRECTION.get(m.get("direction"), "")
        name = H(f"<b>{html.escape(m['metric'])}</b><span class='sub'>{html.escape(unit)}"
                 f"{' · ' if unit and direction else ''}{html.escape(direction)} is better</span>")
        verdict = guardrail_verdict(m, checks) if role == "guardrail" else verdict_cell(dd.verdict(m))
        out.append([name, dd.fmt_metric_value(m.get("control_value"), kind),
                    dd.fmt_metric_value(m.get("treatment_value"), kind),
                    pct(m.get("rel_effect")) if est else "not estimable",
                    ci_cell(row, adjusted=adjusted) if est else "—",
                    pval(m.get("p_value_adjusted" if adjusted else "p_value")), ci_bar(m, dom, adjusted), verdict])
        if est and dd.verdict(m) != "no change":
            klass[(i, 3)] = "t-" + dd.verdict(m)
    st.html(html_table(cols, out, key, num=[ctl, trt, "lift", p_name], ci_cols=[ci_name], groups=groups,
                       cell_class=klass))


def details_tables(rep: dict[str, Any], rows: list[dict[str, Any]], level: str, key: str) -> None:
    """The columns an analyst defends a number with, out of the main table: the test and sample, power
    and CUPED; the unadjusted and absolute intervals."""
    ctl, trt = rep.get("control") or "control", rep.get("treatment") or "treatment"
    out = []
    for m in rows:
        vr = dd.finite(m.get("variance_reduction"))
        out.append([m["metric"], as_result(m).hypothesis(), m.get("test", ""),
                    f"{m['n_control']:,}" if m.get("n_control") is not None else "n/a",
                    f"{m['n_treatment']:,}" if m.get("n_treatment") is not None else "n/a",
                    "n/a" if vr is None else f"{vr:.2%}",
                    pct(m.get("mde_rel")).lstrip("+"),
                    pct(m.get("planned_mde")).lstrip("+") if m.get("planned_mde") is not None else "not planned",
                    "⚠ underpowered" if m.get("underpowered") else "ok"])
    st.html(html_table(["metric", "H1", "test", f"n {ctl}", f"n {trt}", "CUPED variance reduction",
                        "MDE (80% power)", "planned MDE", "power"], out, f"{key}_power",
                       num=[f"n {ctl}", f"n {trt}", "CUPED variance reduction", "MDE (80% power)", "planned MDE"]))
    out = []
    for m in rows:
        row = as_result(m)
        kind, _ = dd.metric_unit(m["metric"], m.get("type"))
        out.append([m["metric"], pct(m.get("rel_effect")), ci_cell(row), pval(m.get("p_value")),
                    dd.fmt_metric_diff(m.get("abs_effect"), kind),
                    fmt_ci(dd.finite(m.get("abs_ci_low")), dd.finite(m.get("abs_ci_high")), pct=False,
                           alternative=m.get("alternative", "two-sided")),
                    pval(m.get("abs_p_value"))])
    st.html(html_table(["metric", "rel diff", level, "p", "abs diff", f"abs diff {level}", "abs diff p"], out,
                       f"{key}_unadjusted", num=["rel diff", "p", "abs diff", "abs diff p"],
                       ci_cols=[level, f"abs diff {level}"]))


# --- figures ---------------------------------------------------------------------------------------

def _err(x: list[float | None], lo: list[float | None], hi: list[float | None]) -> dict[str, Any]:
    plus = [None if v is None or h is None else h - v for v, h in zip(x, hi, strict=True)]
    minus = [None if v is None or l_ is None else v - l_ for v, l_ in zip(x, lo, strict=True)]
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
        texts = [f"{lab}: {fmt_pct(v)} {fmt_ci(a, b)}" for lab, v, a, b in zip(labels, x, lo, hi, strict=True)]
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


def daily_figure(rows: list[dict[str, Any]], metric: str, band: str,
                 overall: list[dict[str, Any]] | None = None) -> go.Figure:
    """The cumulative relative lift by day with its band; ``overall``: the overall daily rows of the same
    metric, drawn as a dotted reference line (a segment value's drill-down)."""
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
                             hovertext=[f"{d}: {fmt_pct(v)} {fmt_ci(a, b)}"
                                        for d, v, a, b in zip(days, lift, lo, hi, strict=True)],
                             hoverinfo="text"))
    if overall:
        by_day = {r["day"]: dd.finite(r.get("rel_effect")) for r in overall}
        ref = [by_day.get(d) for d in days]
        fig.add_trace(go.Scatter(name="overall (every unit)", x=days, y=ref, mode="lines",
                                 line={"color": ARM_COLOURS["control"], "width": 2, "dash": "dot"},
                                 hovertext=[f"{d}: overall {fmt_pct(v)}" for d, v in zip(days, ref, strict=True)],
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


def style(fig: go.Figure) -> go.Figure:
    """Our own look, readable: dark text on white for titles, ticks and legends (contrast ≥ 4.5:1)."""
    fig.update_layout(template="plotly_white", font={"color": TEXT, "size": 13},
                      title_font={"color": TEXT, "size": 15}, legend_font_color=TEXT,
                      paper_bgcolor="#FFFFFF", plot_bgcolor="#FFFFFF",
                      hoverlabel={"font_color": TEXT, "bgcolor": "#FFFFFF"})
    fig.update_xaxes(tickfont_color=TEXT, title_font_color=TEXT, gridcolor="#E1E4EA", linecolor="#8A919E")
    fig.update_yaxes(tickfont_color=TEXT, title_font_color=TEXT, gridcolor="#E1E4EA", linecolor="#8A919E")
    fig.update_annotations(font_color=TEXT)
    return fig


def plot(fig: go.Figure, key: str) -> None:
    st.plotly_chart(style(fig), key=key, theme=None, config={"displaylogo": False})
