"""What the dashboard reads: the run index and the run folders' ``report.json`` — nothing else.

Pure functions without Streamlit (the app wraps them in ``st.cache_data``, keyed by run id; a run
folder is immutable, so a run id names its content for good). The loader only *parses JSON*: it
never imports or executes anything a run names (a ranker's dotted path in ``experiment.yaml`` is
data to show, not code to load), and it refuses index entries whose path leaves the results folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from abplatform.formats import (  # noqa: F401 (the pages use them)
    fmt_ci,
    fmt_duration_ms,
    fmt_p,
    fmt_pct,
    fmt_pp,
    fmt_rate,
    fmt_value,
)
from abplatform.report.model import (
    Check,
    Comparison,
    DailySegmentSeries,
    MetricResult,
    Report,
    SegmentHeterogeneity,
)
from abplatform.report.render import ci_cell, latency_details

RESULTS_ENV = "ABPLATFORM_RESULTS"
INDEX = "index.json"

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {"orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
             "grey": "#999999"}
#: Arm colours, the same on every page: control blue, treatment orange.
ARM_COLOURS = {"control": OKABE_ITO["blue"], "treatment": OKABE_ITO["orange"]}
#: Verdict colours: better (in the metric's direction) bluish green, worse vermillion, no change grey.
VERDICT_COLOURS = {"better": OKABE_ITO["bluish_green"], "worse": OKABE_ITO["vermillion"],
                   "no change": OKABE_ITO["grey"]}
VERDICT_MARKS = {"better": "▲ better", "worse": "▼ worse", "no change": "● no change"}
#: Text colours for verdict words on a white page, darker than the Okabe–Ito fills so that text
#: reaches a contrast of at least 4.5:1 (WCAG AA).
VERDICT_TEXT = {"better": "#00664C", "worse": "#A63A00", "no change": "#4D4D4D"}
#: Segment values in their natural order (head → torso → tail ...); others follow alphabetically.
SEGMENT_ORDER = {"query_segment": ["head", "torso", "tail"],
                 "query_complexity": ["simple", "attribute", "multi", "indirect"],
                 "user_type": ["new", "returning"]}
#: The files a run folder written by abplatform holds (besides report.json) that the pages read.
RUN_FILES = ("report.md", "config.json")

LONG_TAIL_MEASURES = ["tail_impression_share", "tail_click_share", "coverage", "exposure_gini",
                      "category_entropy", "novelty"]


def results_root(default: str | Path = "results") -> Path:
    return Path(os.environ.get(RESULTS_ENV) or default)


def index_mtime(root: str | Path) -> int:
    """Modification time of the index (ns), 0 when there is none: the cache key of ``read_index``."""
    try:
        return (Path(root) / INDEX).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def read_index(root: str | Path) -> list[dict[str, Any]]:
    """Run summaries, newest first. A missing index is an empty list; a broken one raises ValueError."""
    path = Path(root) / INDEX
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as e:
        raise ValueError(f"{INDEX} is not valid JSON ({e})") from None  # no server path: the page shows it
    if not isinstance(entries, list):
        raise ValueError(f"{INDEX} is not a list of run summaries")
    runs = [e for e in entries if isinstance(e, dict) and e.get("run_id") and e.get("path")]
    return sorted(runs, key=lambda e: (str(e.get("created", "")), str(e["run_id"])), reverse=True)


def run_dir(root: str | Path, rel_path: str) -> Path:
    """The run folder of an index entry; refuses a path that leaves the results folder."""
    base = Path(root).resolve()
    d = (base / rel_path).resolve()
    if d != base and base not in d.parents:
        raise ValueError(f"run path {rel_path!r} is outside the results folder {base}")
    return d


def read_report(root: str | Path, rel_path: str) -> dict[str, Any]:
    """The run's report.json, read into the typed :class:`~abplatform.report.model.Report` (so the pages
    show what the gate reads) and handed to the pages as plain data; ``ValueError`` when it is not a
    report this version can read."""
    return Report.from_json((run_dir(root, rel_path) / "report.json").read_text()).to_dict()


def read_report_md(root: str | Path, rel_path: str) -> str | None:
    """The run's report.md (the Markdown report the pipeline wrote), or None when the folder has none."""
    try:
        return (run_dir(root, rel_path) / "report.md").read_text(errors="replace")
    except FileNotFoundError:
        return None


def missing_files(root: str | Path, rel_path: str) -> list[str]:
    """Which of the files a complete run folder has (``RUN_FILES``) this one lacks."""
    d = run_dir(root, rel_path)
    return [f for f in RUN_FILES if not (d / f).is_file()]


def read_experiment_yaml(root: str | Path, rel_path: str, limit: int = 200_000) -> str | None:
    """The experiment file the run copied, as text to show (never parsed into rankers or imported)."""
    try:
        return (run_dir(root, rel_path) / "experiment.yaml").read_text(errors="replace")[:limit]
    except FileNotFoundError:
        return None


def read_config(root: str | Path, rel_path: str) -> dict[str, Any]:
    """The validated config the run used (config.json), or {} for runs without one."""
    try:
        return json.loads((run_dir(root, rel_path) / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# --- small helpers the pages share -------------------------------------------------------------

def finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def verdict(row: dict[str, Any]) -> str:
    """better / worse / no change, in the metric's own direction (report's improved/degraded flags)."""
    if row.get("improved"):
        return "better"
    if row.get("degraded") or row.get("breached"):
        return "worse"
    return "no change"


def decision_word(entry: dict[str, Any]) -> str:
    """"PROMOTE", "HOLD", "PROMOTE v2" (the arm, when the index names one and it is not "treatment")."""
    word = str(entry.get("decision") or "?").upper()
    arm = entry.get("arm")
    return word + (f" {arm}" if arm and arm != "treatment" else "")


#: The text box of the sidebar's run picker holds 270 px of text at 12.48 px (.78rem, Source Sans; 380 px
#: sidebar): 21.6 em. Streamlit's selectbox cannot wrap, so a longer label is cut at its end — the date and
#: run id. A label is kept to ``LABEL_EM``, measured by :func:`text_em` (each character's width as
#: Chromium draws it, rounded up; the browser test measures the drawn labels).
LABEL_EM = 21.6
#: The longest arm name a label keeps whole.
LABEL_ARM_CHARS = 10
# character widths in em of the picker's font (Source Sans as Chromium draws it, rounded up to 0.01 em);
# any other character counts as 1 em
_EM_CLASSES = {0.2: ' ', 0.25: "',.:;ij|·", 0.26: 'l', 0.27: 'I', 0.29: '!', 0.3: 'f', 0.31: '()[]{}', 0.32: '-',
               0.34: 't', 0.35: '/\\r', 0.42: '*s', 0.43: '"?z', 0.45: 'x', 0.46: 'c', 0.47: 'vy', 0.48: 'JY',
               0.49: 'L', 0.5: '0123456789#$+<=>F^_ek~', 0.51: 'ag', 0.52: 'VX', 0.53: 'E', 0.54: 'STZ',
               0.55: 'A`hnou', 0.56: 'bdpq', 0.57: 'PR', 0.58: 'CK', 0.59: 'B', 0.61: '&', 0.62: 'DG', 0.65: 'NU',
               0.66: 'H', 0.67: 'OQ', 0.72: 'w', 0.73: 'M', 0.79: 'W', 0.83: '%m', 0.85: '@', 0.95: '…'}
_CHAR_EM = {c: em for em, chars in _EM_CLASSES.items() for c in chars}


def text_em(text: str) -> float:
    """The width of ``text`` in the picker's font, in em (an upper estimate)."""
    return sum(_CHAR_EM.get(c, 1.0) for c in text)


def abbreviate(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most ``limit`` characters ("onesearch_…_vs_v1"): both ends of a
    name are what tells names apart (a prefix shared by a team's experiments, a version at the end)."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[:limit]
    head = limit // 2
    tail = limit - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def run_label(entry: dict[str, Any], width_em: float = LABEL_EM) -> str:
    """Picker label, short enough for the sidebar: decision (and arm), experiment, date (month-day, UTC; the
    full time is beside the picker) and the run id's distinctive tail, so two runs never read alike. A long
    experiment name (and a long arm) is shortened in its middle until the label fits ``width_em`` (the
    picker's width; :func:`text_em`), so its date and run id always show."""
    created = str(entry.get("created", ""))[5:10]
    rid = str(entry.get("run_id", ""))
    experiment = str(entry.get("experiment", "?"))
    arm = str(entry.get("arm") or "")
    arm = "" if arm == "treatment" else abbreviate(arm, LABEL_ARM_CHARS)
    rest = f" · {created} · …{rid[-6:]}"

    def label(name_chars: int, arm_chars: int) -> str:
        word = str(entry.get("decision") or "?").upper() + (f" {abbreviate(arm, arm_chars)}" if arm else "")
        return f"{word} · {abbreviate(experiment, name_chars)}{rest}"

    # the experiment's name keeps 12 characters if it can (the arm shortened first), else 6
    for name_min in (12, 6):
        for arm_chars in range(len(arm), min(4, len(arm)) - 1, -1) if arm else (0,):
            for name_chars in range(len(experiment), min(name_min, len(experiment)) - 1, -1):
                text = label(name_chars, arm_chars)
                if text_em(text) <= width_em:
                    return text
    return label(6, 4)


def runs_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """The index as a table (raw values; the page formats them)."""
    cols = ["experiment", "run_id", "created", "mode", "decision", "arm", "primary_metric", "primary_rel_effect",
            "config_sha256", "path"]
    return pd.DataFrame([{c: e.get(c) for c in cols} for e in entries], columns=cols)


def pair_candidates(rep: dict[str, Any], cfg: dict[str, Any], entries: list[dict[str, Any]],
                    config_of: Any) -> list[dict[str, Any]]:
    """The runs of the other mode that this run is paired with, newest first, as the pipeline pairs them:
    runs of the experiment named by this run's ``compare_to`` (its own name when unset), and runs whose
    own ``compare_to`` names this run's experiment. ``config_of(entry)`` reads a run's config.json."""
    other = "online" if rep.get("mode") == "offline" else "offline"
    name = rep.get("experiment")
    target = (cfg or {}).get("compare_to") or name
    out = []
    for e in entries:
        if e.get("mode") != other:
            continue
        if e.get("experiment") == target or (config_of(e) or {}).get("compare_to") == name:
            out.append(e)
    return out


def _world(cfg: dict[str, Any]) -> Any:
    return ((cfg or {}).get("data") or {}).get("world")


def pair_warnings(offline: dict[str, Any], online: dict[str, Any], off_cfg: dict[str, Any],
                  on_cfg: dict[str, Any]) -> list[str]:
    """Why the offline prediction and the online result may not be about the same thing."""
    out = []
    off_name, on_name = offline.get("experiment"), online.get("experiment")
    linked = (off_name == on_name or (off_cfg or {}).get("compare_to") == on_name
              or (on_cfg or {}).get("compare_to") == off_name)
    if not linked:
        out.append(f"The two runs are of different experiments ({off_name} and {on_name}) and neither names the "
                   "other in `compare_to`: they may not test the same change.")
    wa, wb = _world(off_cfg), _world(on_cfg)
    if wa and wb and wa != wb:
        out.append("The two runs simulated different worlds (their `data.world` settings differ), so their "
                   "users, items and behaviour are not the same.")
    sa, sb = offline.get("source") or {}, online.get("source") or {}
    fa, la, fb, lb = (str(sa.get("first_session", ""))[:10], str(sa.get("last_session", ""))[:10],
                      str(sb.get("first_session", ""))[:10], str(sb.get("last_session", ""))[:10])
    if all((fa, la, fb, lb)) and (la < fb or lb < fa):
        out.append(f"Their data cover different periods (offline {fa} → {la}, online {fb} → {lb}).")
    if (offline.get("control"), offline.get("treatment")) != (online.get("control"), online.get("treatment")):
        out.append(f"They compare different arms (offline {offline.get('treatment')} vs {offline.get('control')}, "
                   f"online {online.get('treatment')} vs {online.get('control')}).")
    return out


def pair_offline_online(offline: dict[str, Any], online: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the ``offline_vs_online`` shape built from an offline and an online report's metrics."""
    obs = {m["metric"]: m for m in online.get("metrics", [])}
    rows = []
    for m in offline.get("metrics", []):
        o = obs.get(m["metric"])
        if o is None:
            continue
        rows.append({"metric": m["metric"], "predicted_rel_effect": m.get("rel_effect"),
                     "predicted_rel_ci_low": m.get("rel_ci_low"), "predicted_rel_ci_high": m.get("rel_ci_high"),
                     "observed_rel_effect": o.get("rel_effect"), "observed_rel_ci_low": o.get("rel_ci_low"),
                     "observed_rel_ci_high": o.get("rel_ci_high"), "offline_run_id": offline.get("run_id"),
                     "online_run_id": online.get("run_id")})
    return rows


# --- units ----------------------------------------------------------------------------------------

#: How a metric's values read: "pct" (a rate or share: 12.65%, differences in percentage points),
#: "count" (an amount per unit), "grade" (a 0–3 relevance grade) or "plain"; and what it measures.
METRIC_UNITS: dict[str, tuple[str, str]] = {
    "item_ctr": ("pct", "clicks per impression, %"),
    "buyer_conversion": ("pct", "share of users who bought, %"),
    "page_good_rate": ("pct", "share of judged pages rated good, %"),
    "order_volume": ("count", "orders per user"),
    "relevance": ("grade", "mean relevance grade, 0–3"),
    "tail_impression_share": ("pct", "share of impressions on tail items, %"),
    "tail_click_share": ("pct", "share of clicks on tail items, %"),
    "coverage": ("pct", "share of the catalog shown at least once, %"),
    "exposure_gini": ("plain", "Gini of exposure over items, 0–1"),
    "category_entropy": ("plain", "entropy of shown categories, bits"),
    "novelty": ("plain", "−log2 pre-period popularity share, bits"),
}


def metric_unit(name: str, mtype: str | None = None) -> tuple[str, str]:
    """(kind, description) of a metric's values; a proportion not listed reads as a share."""
    if name in METRIC_UNITS:
        return METRIC_UNITS[name]
    if mtype == "proportion":
        return ("pct", "share of units, %")
    return ("plain", "")


def fmt_metric_value(v: Any, kind: str) -> str:
    """A metric value in its unit: "12.65%" for a share, "1.846" otherwise."""
    return fmt_rate(finite(v)) if kind == "pct" else fmt_value(finite(v))


def fmt_metric_diff(v: Any, kind: str) -> str:
    """An absolute difference in the metric's unit: "+2.21 pp" for a share, "+0.6546" otherwise."""
    f = finite(v)
    if kind == "pct":
        return fmt_pp(f)
    return "n/a" if f is None else ("+" if f > 0 else "") + fmt_value(f)


# --- estimability, verdicts, segment order -------------------------------------------------------

def as_result(m: dict[str, Any]) -> MetricResult:
    """A report row (plain dict from report.json) as the typed row the report's renderings format."""
    return MetricResult(**{k: v for k, v in m.items() if k in MetricResult.__dataclass_fields__})


def as_heterogeneity(h: dict[str, Any]) -> SegmentHeterogeneity:
    """A heterogeneity row of report.json as the typed row the report's renderings format."""
    return SegmentHeterogeneity(**{k: v for k, v in h.items() if k in SegmentHeterogeneity.__dataclass_fields__})


def segment_looks(series: dict[str, Any], direction: str = "increase") -> list[dict[str, Any]]:
    """A segment value's daily series of report.json as one row per look (``day``, values, lift, band, p),
    with the metric's ``direction`` for the band's verdict."""
    typed = DailySegmentSeries(**{k: v for k, v in series.items() if k in DailySegmentSeries.__dataclass_fields__})
    return [{**look, "direction": direction} for look in typed.looks()]


def estimable(m: dict[str, Any]) -> bool:
    """False for a degenerate row: no effect, a missing bound of a two-sided interval, or an interval of
    zero width (e.g. a segment where neither arm had any event) — shown as "not estimable", not ±0."""
    row = as_result(m)
    lo, hi = (finite(x) for x in row.interval())
    if row.test_scale == "relative" and finite(m.get("rel_effect")) is None:
        return False
    if row.alternative == "two-sided" and (lo is None or hi is None):
        return False
    return not (lo is not None and hi is not None and hi - lo <= 1e-12)


def band_verdict(m: dict[str, Any]) -> str:
    """better / worse / no change as the drawn interval says it (relative scale): above or below zero in the
    metric's direction; a daily row's verdict then never contradicts its band."""
    lo, hi = finite(m.get("rel_ci_low")), finite(m.get("rel_ci_high"))
    up = m.get("direction", "increase") != "decrease"
    if lo is not None and lo > 0:
        return "better" if up else "worse"
    if hi is not None and hi < 0:
        return "worse" if up else "better"
    return "no change"


def segment_sort_key(segment: str, value: str) -> tuple[int, str]:
    order = SEGMENT_ORDER.get(segment, [])
    return (order.index(value), "") if value in order else (len(order), str(value))


# --- the verdict's checklist ----------------------------------------------------------------------

@dataclass
class CheckLine:
    """One line of the verdict card: ``status`` pass / fail (blocks the promotion) / warn / info."""

    status: str
    label: str
    detail: str
    comparison: str = ""


def p_is(v: Any) -> str:
    """"p = 0.0123" or "p < 0.0001"."""
    t = fmt_p(finite(v))
    return f"p {t[0]} {t[1:]}" if t.startswith("<") else f"p = {t}"


def _adjusted(report: Report) -> bool:
    return report.analysis.correction != "none"


def metric_detail(report: Report, m: MetricResult) -> str:
    """A metric's result in one line, in the report's formats: lift, the interval and p-value of its test
    (adjusted when a correction is on), the hypothesis and, for a guardrail, its margin."""
    adj = _adjusted(report)
    tag = f" ({report.analysis.correction}-adjusted)" if adj else ""
    p = m.p_value_adjusted if adj else m.p_value
    text = f"{fmt_pct(m.rel_effect)}, {report.confidence_label}{tag} {ci_cell(m, adjusted=adj)}, {p_is(p)}"
    if m.role == "guardrail":
        margin = f"margin {fmt_pct(-m.margin if m.direction != 'decrease' else m.margin)}" \
            if m.margin is not None else "no margin"
        text += f"; {margin}, {report.analysis.guardrail_test} test ({m.test}), H1 {m.hypothesis()}"
    if m.underpowered and m.mde_rel is not None:
        text += f"; underpowered: MDE (80% power) {fmt_pct(m.mde_rel).lstrip('+')}"
    return text


def _metric_line(report: Report, c: Comparison, m: MetricResult, check: Check | None, several: bool) -> CheckLine:
    role = {"primary": "Primary", "secondary": "Secondary", "guardrail": "Guardrail"}.get(m.role, m.role)
    detail = metric_detail(report, m)
    if check is not None:
        status = "pass" if check.passed else ("fail" if check.blocking else "warn")
    elif m.role == "guardrail":
        status = "fail" if m.breached or m.degraded else "pass"
    else:
        status = "pass" if m.improved else "warn" if m.degraded else "info"
    if m.role == "guardrail":
        verdict = "within the margin" if status == "pass" else "non-inferiority not shown"
    else:
        verdict = ("significant improvement" if m.improved else "significant degradation" if m.degraded
                   else "not significant")
    if check is not None and not check.passed and check.reason:
        verdict = check.reason
    return CheckLine(status, f"{role} {m.metric}", f"{verdict} — {detail}", c.name if several else "")


def latency_line(report: Report, c: Comparison, check: Check | None, several: bool) -> CheckLine:
    """The serving-cost check: the ratio against 1 + margin with its CI, or why it was not evaluated."""
    lat = c.latency_guardrail
    text = latency_details(lat, report.confidence_label)
    if lat is None or lat.status == "not_evaluated" or lat.ratio is None:
        status = "info" if check is None or check.passed else ("fail" if check.blocking else "warn")
        return CheckLine(status, "Serving cost (latency)", text, c.name if several else "")
    limit = f"limit ×{1 + lat.margin:.2f} (margin {lat.margin:.0%})" if lat.margin is not None else "no margin"
    arms = ", ".join(f"{a} {fmt_duration_ms(v)}" for a, v in lat.cpu_ms_per_query.items())
    words = {"ok": "below the limit", "inconclusive": "inconclusive: the CI straddles the limit",
             "breached": "breached: the whole CI is above the limit"}.get(str(lat.status), str(lat.status))
    ci = ("" if lat.ratio_ci_low is None or lat.ratio_ci_high is None
          else f" {report.confidence_label} [{lat.ratio_ci_low:.3f}, {lat.ratio_ci_high:.3f}]")
    detail = (f"{words} — treatment / control CPU time per query ×{lat.ratio:.3f}{ci} vs {limit}"
              + (f"; CPU per query {arms}" if arms else ""))
    status = {"ok": "pass", "inconclusive": "warn", "breached": "fail"}.get(str(lat.status), "info")
    if check is not None:
        status = "pass" if check.passed else ("fail" if check.blocking else "warn")
    return CheckLine(status, "Serving cost (latency)", detail, c.name if several else "")


def _diversity_warnings(c: Comparison) -> list[str]:
    out: list[str] = []
    lt = c.long_tail
    if lt is None:
        return out
    for m in lt.metrics:
        if m.degraded:
            out.append(f"long-tail metric {m.metric} regressed significantly ({fmt_pct(m.rel_effect)})")
    ctl, trt = lt.per_arm.get(c.control) or {}, lt.per_arm.get(c.treatment) or {}
    worse_if = {"coverage": "lower", "category_entropy": "lower", "exposure_gini": "higher",
                "tail_impression_share": "lower"}
    for key, bad in worse_if.items():
        a, b = finite(ctl.get(key)), finite(trt.get(key))
        if a is None or b is None or a == 0 or key in {m.metric for m in lt.metrics}:
            continue
        rel = b / a - 1
        if (rel < -0.05 and bad == "lower") or (rel > 0.05 and bad == "higher"):
            out.append(f"{key} {bad} in {c.treatment} ({fmt_value(a)} → {fmt_value(b)}, {fmt_pct(rel)})")
    return out


def _comparison_lines(report: Report, c: Comparison, find: Any, several: bool) -> list[CheckLine]:
    """The checklist lines of one comparison: its primaries and guardrails, secondaries, serving cost and
    warnings; ``find(kinds, name, comparison)`` takes the decision's check for each."""
    lines: list[CheckLine] = []
    where = c.name if several else ""
    for m in c.metrics:
        if m.role in ("primary", "guardrail"):
            lines.append(_metric_line(report, c, m, find({m.role}, m.metric, c.name), several))
    sec = [m for m in c.metrics if m.role == "secondary"]
    for m in sec:
        find({"secondary"}, m.metric, c.name)
    if sec:
        marks = "; ".join(f"{m.metric} {VERDICT_MARKS[verdict(dataclasses.asdict(m))].split()[0]} "
                          f"{fmt_pct(m.rel_effect)}" for m in sec)
        lines.append(CheckLine("warn" if any(m.degraded for m in sec) else "info", "Secondary metrics",
                               f"{marks} (they inform, they do not decide)", where))
    lines.append(latency_line(report, c, find({"latency"}, None, c.name), several))
    lines += [CheckLine("warn", "Long tail & diversity", w, where) for w in _diversity_warnings(c)]
    under = [m.metric for m in c.metrics if m.underpowered]
    if under:
        lines.append(CheckLine("warn", "Power", "underpowered (observed MDE above the planned one): "
                               + ", ".join(under), where))
    return lines


def checklist(report: Report) -> list[CheckLine]:
    """The verdict's checklist, for a promote and a hold alike: every primary and guardrail (lift, interval,
    p, verdict), the secondaries, the sample-ratio check, serving cost, sequential validity, warnings
    (underpowered metrics, long-tail and diversity regressions) and any other check of the decision.
    Built from report.json's ``decision.checks`` and rows, in the report's own formats."""
    several = len(report.comparison_list()) > 1
    checks = report.decision.checks
    used: set[int] = set()

    def find(kind: set[str], name: str | None, comparison: str) -> Check | None:
        for i, ch in enumerate(checks):
            if i in used or ch.kind not in kind or (name is not None and ch.name != name):
                continue
            if ch.comparison and several and ch.comparison != comparison:
                continue
            used.add(i)
            return ch
        return None

    lines: list[CheckLine] = []
    srm = report.srm
    units = ", ".join(f"{a} {n:,}" for a, n in srm.units.items())
    srm_check = find({"srm"}, None, "")
    failed = srm.failed or (srm_check is not None and not srm_check.passed)
    why = (srm_check.reason if srm_check is not None and srm_check.reason else "mismatch: the split is off") \
        if failed else "the split matches the design"
    lines.append(CheckLine("fail" if failed else "pass", "Sample ratio",
                           f"{why} — {report.analysis.units_label} {units}; {srm.test} {p_is(srm.p_value)}"))
    bad_cells = [f"{s.segment} = {s.segment_value}" for s in report.srm_by_segment
                 if s.failed and s.segment != "all"]
    if bad_cells:
        lines.append(CheckLine("warn", "Sample ratio by segment",
                               "mismatch in " + ", ".join(bad_cells) + ": their segment lifts are not trustworthy"))
    for c in report.comparison_list():
        lines += _comparison_lines(report, c, find, several)
    seq = report.analysis.sequential
    if seq:
        lines.append(CheckLine("pass", "Sequential validity",
                               f"sequential ({seq}): the scorecard and the daily lifts are valid at this look, "
                               "however often the results were looked at (segments and long tail are "
                               "fixed-horizon)"))
    else:
        lines.append(CheckLine("info", "Sequential validity",
                               "fixed-horizon test: valid once, at the planned end; deciding earlier on the "
                               "daily lifts (peeking) inflates false positives"))
    for i, ch in enumerate(checks):
        if i in used:
            continue
        status = "pass" if ch.passed else ("fail" if ch.blocking else "warn")
        label = {"config": "Configuration", "choice": "Arm choice"}.get(ch.kind, ch.kind.capitalize())
        lines.append(CheckLine(status, f"{label} {ch.name}".strip(), ch.reason or "passed",
                               ch.comparison if several else ""))
    return lines


# --- health: what must be seen on every page -------------------------------------------------------

def run_health(entry: dict[str, Any], report: Report, missing: list[str]) -> list[tuple[str, str]]:
    """(level, message) per problem of the selected run — level "error" or "warning": a failed
    sample-ratio check (overall or in a segment), a breached or inconclusive latency check, an index
    entry that does not match its report.json, files missing from the run folder."""
    out: list[tuple[str, str]] = []
    srm = report.srm
    if srm.failed:
        units = ", ".join(f"{a} {n:,}" for a, n in srm.units.items())
        out.append(("error", (f"**Sample ratio mismatch** ({report.analysis.units_label} {units}; {srm.test} "
                             f"{p_is(srm.p_value)}). Assignment or logging is broken: do not trust any "
                             "effect of this run until it is explained.")))
    cells = [f"{s.segment} = {s.segment_value}" for s in report.srm_by_segment if s.failed and s.segment != "all"]
    if cells:
        out.append(("error", "**Sample ratio mismatch within segment(s):** " + ", ".join(cells)
                    + ". Their lifts are not trustworthy until the imbalance is explained."))
    several = len(report.comparison_list()) > 1
    for c in report.comparison_list():
        lat = c.latency_guardrail
        where = f" ({c.name})" if several else ""
        if lat is not None and lat.status == "breached":
            out.append(("error", f"**Serving cost breached{where}:** {latency_details(lat, report.confidence_label)}."))
        elif lat is not None and lat.status == "inconclusive":
            out.append(("warning", (f"**Serving cost inconclusive{where}:** "
                                   f"{latency_details(lat, report.confidence_label)}.")))
    if entry.get("run_id") != report.run_id or (entry.get("experiment") and entry["experiment"] != report.experiment):
        out.append(("error", (f"**Run integrity:** the index lists run `{entry.get('run_id')}` of "
                             f"{entry.get('experiment')}, but its folder holds run `{report.run_id}` of "
                             f"{report.experiment}. The folder was copied or overwritten; check the results store.")))
    if entry.get("decision") and entry["decision"] != report.decision.decision:
        out.append(("error", (f"**Run integrity:** the index says {str(entry['decision']).upper()}, the run's "
                             f"report.json says {report.decision.decision.upper()}.")))
    if missing:
        out.append(("warning", "**Incomplete run folder:** no " + " and no ".join(missing)
                    + " (made by hand or by an older version of abplatform); the pages use defaults where they "
                      "would read it."))
    bad_days = [d for d in report.srm_by_day if d.failed]
    if bad_days:
        days = "; ".join(f"{d.day} ({', '.join(f'{a} {n:,}' for a, n in d.units.items())}, "
                         f"Holm {p_is(d.p_value_adjusted)})" for d in bad_days)
        out.append(("error", (f"**Exposures per day off the split** on {days}: the new {report.analysis.units_label} "
                             "of that day do not follow the configured weights (Holm across days, threshold "
                             f"{bad_days[0].threshold:g}). Assignment or logging broke that day; its data bias "
                             "the effects.")))
    bad_balance = [b for c in report.comparison_list() for b in c.balance if b.failed]
    if bad_balance:
        rows = "; ".join(f"{b.metric}{f' ({b.comparison})' if several else ''}: {b.control} "
                         f"{fmt_value(b.control_pre_value)} vs {b.treatment} {fmt_value(b.treatment_pre_value)}, "
                         f"Holm {p_is(b.p_value_adjusted)}" for b in bad_balance)
        out.append(("error", (f"**Pre-period imbalance** — {rows}. The arms differed before the experiment began "
                             f"(Holm across metrics, threshold {bad_balance[0].threshold:g}): assignment depends on "
                             "past behaviour, or the pre-period data are joined wrongly. Do not trust the effects "
                             "(CUPED included) until it is explained.")))
    return out


def health_passed(report: Report) -> str:
    """The green line when every health check passed: what was checked (and what could not be)."""
    checked = ["sample ratio (overall, per segment" + (", per day)" if report.srm_by_day else ")")]
    if any(c.balance for c in report.comparison_list()):
        checked.append("pre-period balance")
    checked += ["serving cost", "run files"]
    text = "Health checks passed: " + ", ".join(checked) + "."
    if not any(c.balance for c in report.comparison_list()):
        text += " Pre-period balance not evaluated (no pre-period covariates in this run)."
    return text


# --- health details: exposures per day, pre-period balance, data fingerprint -----------------------

def exposure_rows(report: Report) -> list[dict[str, Any]]:
    """One row per day: the new units per arm, each arm's share, the day's sample-ratio test (p, Holm p) and
    whether it failed; from the report's ``srm_by_day``. An older report without it: the new units per arm
    from its daily rows (cumulative n of the headline comparison), untested (p None)."""
    if report.srm_by_day:
        return [{"day": d.day, "units": dict(d.units), "test": d.test, "p_value": d.p_value,
                 "p_value_adjusted": d.p_value_adjusted, "failed": d.failed} for d in report.srm_by_day]
    first = report.metrics[0].metric if report.metrics else None
    looks = sorted((r for r in report.daily if r.metric == first), key=lambda r: r.day)
    out, prev = [], {report.control: 0, report.treatment: 0}
    for r in looks:
        cum = {report.control: r.n_control or 0, report.treatment: r.n_treatment or 0}
        out.append({"day": r.day, "units": {a: cum[a] - prev[a] for a in cum}, "test": None, "p_value": None,
                    "p_value_adjusted": None, "failed": False})
        prev = cum
    return out


def balance_rows(report: Report) -> list[dict[str, Any]]:
    """The pre-period balance rows of every comparison, as plain data for a table."""
    return [{"comparison": b.comparison, **dataclasses.asdict(b)} for c in report.comparison_list() for b in c.balance]


def fingerprint_rows(report: Report) -> list[tuple[str, str]]:
    """(what, value) of the data and code behind the run: rows per table, the data's date range, files and hash,
    the code version, abplatform's version, the config's hash, Python, seed. Folders are named, not their
    server paths."""
    src = report.source
    rows = [("data folder", Path(src.path).name or src.path)]
    rows += [(f"rows: {table}", f"{n:,}") for table, n in src.rows.items()]
    rows += [("date range (sessions)", f"{src.first_session} → {src.last_session}"),
             ("data files", f"{src.files:,}"), ("data hash (blake2b)", src.hash),
             ("code version (package source and SQL)", report.code_version),
             ("abplatform version", report.abplatform_version), ("config sha256", report.config_sha256),
             ("Python", report.python), ("seed", str(report.seed)),
             ("event log", Path(report.event_log).name if report.event_log else "—")]
    return rows
