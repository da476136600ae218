"""Segments: every metric × every segment value as a heatmap (head → torso → tail) with the test of whether
each metric's effect differs across a segment's values, one metric's lifts by segment as a forest plot, the
cumulative daily lift of one segment value, and the sample-ratio check of each segment."""

import html

import abdash
import streamlit as st

from abplatform import dashboard_data as dd
from abplatform.report.render import (
    fmt_q,
    heterogeneity_caption,
    heterogeneity_notes,
    heterogeneity_verdict,
    shared_units_note,
)

entry, rep, cfg = abdash.run_page("Segments")
level = abdash.ci_level(cfg)
adjusted = abdash.correction(cfg) not in ("none", "not recorded")

segs = rep.get("segments") or []
if not segs:
    st.info("This run has no per-segment results (the experiment configured no segments).")
    st.stop()

names = [m["metric"] for m in rep.get("metrics") or []] or sorted({s["metric"] for s in segs})
srm = {(s["segment"], s["segment_value"]): s for s in rep.get("srm_by_segment") or []}
dim_order = [d for d in dd.SEGMENT_ORDER if any(s["segment"] == d for s in segs)] + \
    [d for d in dict.fromkeys(s["segment"] for s in segs) if d not in dd.SEGMENT_ORDER]


def natural(dim: str, value: str) -> tuple:
    """Segments in their natural order: query frequency head → torso → tail first, then the others."""
    return (dim_order.index(dim) if dim in dim_order else len(dim_order), *dd.segment_sort_key(dim, value))


cells = sorted({(s["segment"], s["segment_value"]) for s in segs}, key=lambda k: natural(*k))
by = {(s["segment"], s["segment_value"], s["metric"]): s for s in segs}
ctl, trt = rep.get("control") or "control", rep.get("treatment") or "treatment"

st.header("Every metric in every segment")
rows, klass, groups = [], {}, {}
for i, (dim, value) in enumerate(cells):
    if i == 0 or dim != cells[i - 1][0]:
        groups[i] = abdash.SEGMENT_NAMES.get(dim, dim)
    s = srm.get((dim, value)) or {}
    units = s.get("units") or {}
    srm_text = ("✖ SRM " if s.get("failed") else "") + abdash.p_is(s.get("p_value")).replace("p", "SRM p", 1) \
        if s else "no SRM check"
    row = [value, abdash.H(f"{units.get(ctl, 'n/a'):,} / {units.get(trt, 'n/a'):,}<span class='sub'>"
                           f"{html.escape(srm_text)}</span>") if units else "n/a"]
    for j, m in enumerate(names):
        r = by.get((dim, value, m))
        if r is None:
            row.append("—")
            continue
        if not dd.estimable(r):
            row.append("not estimable")
            klass[(i, 2 + j)] = "t-ne"
            continue
        kind = dd.verdict(r)
        mark = dd.VERDICT_MARKS[kind].split()[0]
        row.append(abdash.H(f"{mark} {html.escape(abdash.pct(r.get('rel_effect')))}<span class='sub'>"
                            f"{html.escape(dd.ci_cell(dd.as_result(r), adjusted=adjusted))}</span>"))
        if kind != "no change":
            klass[(i, 2 + j)] = f"t-{kind}"
    rows.append(row)
adjusted_note = " (adjusted per metric across cells)" if adjusted else ""
st.html(abdash.html_table(["value", f"units {ctl} / {trt}", *names], rows, "segments_heatmap", groups=groups,
                          cell_class=klass, num=[f"units {ctl} / {trt}", *names],
                          caption=f"Relative lift and {level}{adjusted_note}"
                                  "; shaded ▲ better / ▼ worse when significant, in the metric's own direction. "
                                  "Exploratory: segment cells are not what the decision reads."))

st.header("Does the effect differ across a segment's values?")
het = rep.get("heterogeneity") or []
if het:
    het = sorted(het, key=lambda h: (dim_order.index(h["segment"]) if h["segment"] in dim_order else len(dim_order),
                                     names.index(h["metric"]) if h["metric"] in names else len(names)))
    het_rows, het_groups = [], {}
    for i, h in enumerate(het):
        typed_h = dd.as_heterogeneity(h)
        if i == 0 or h["segment"] != het[i - 1]["segment"]:  # one heading per segment, with its shared units
            shared = shared_units_note(typed_h)
            het_groups[i] = abdash.SEGMENT_NAMES.get(h["segment"], h["segment"]) + (f" ({shared})" if shared else "")
        verdict = heterogeneity_verdict(typed_h)
        het_rows.append([h["metric"], fmt_q(typed_h.q), str(typed_h.df) if typed_h.q is not None else "—",
                         abdash.pval(typed_h.p_value), abdash.pval(typed_h.p_value_adjusted),
                         abdash.H(f"<b>{html.escape(verdict)}</b>") if typed_h.differs else verdict,
                         heterogeneity_notes(typed_h, shared_units=False) or "—"])
    st.html(abdash.html_table(["metric", "Q", "df", "p", "Holm p", "verdict", "values left out"], het_rows,
                              "segments_heterogeneity", num=["Q", "df", "p", "Holm p"], groups=het_groups,
                              caption=heterogeneity_caption(float(rep.get("alpha") or 0.05))))
    abdash.download(het, "heterogeneity tests", "segments_heterogeneity")
else:
    st.info("This run's report has no heterogeneity tests (a report written before they existed, or no segment "
            "with two values).")

st.header("One metric by segment")
metric = abdash.metric_picker(names, "segments_metric")
rows_m = sorted((s for s in segs if s["metric"] == metric), key=lambda s: natural(s["segment"], s["segment_value"]))
overall = next((m for m in rep.get("metrics") or [] if m["metric"] == metric), None)
dims = list(dict.fromkeys(s["segment"] for s in rows_m))
labels = [f"{s['segment_value']} ({abdash.SEGMENT_NAMES.get(s['segment'], s['segment'])})" for s in rows_m]
series = []
for j, dim in enumerate(dims):
    mask = [s["segment"] == dim and dd.estimable(s) for s in rows_m]
    series.append({"name": abdash.SEGMENT_NAMES.get(dim, dim),
                   "x": [s["rel_effect"] if m else None for s, m in zip(rows_m, mask, strict=True)],
                   "lo": [s["rel_ci_low"] if m else None for s, m in zip(rows_m, mask, strict=True)],
                   "hi": [s["rel_ci_high"] if m else None for s, m in zip(rows_m, mask, strict=True)],
                   "colour": abdash.SEGMENT_COLOURS[j % len(abdash.SEGMENT_COLOURS)],
                   "symbol": ["circle", "square", "diamond", "triangle-up"][j % 4]})
fig = abdash.forest(labels, series, f"Relative lift of {metric} by segment ({level})", dodge=False)
if overall is not None and dd.finite(overall.get("rel_effect")) is not None:
    fig.add_vline(x=overall["rel_effect"], line_dash="dot", line_color=abdash.ARM_COLOURS["treatment"],
                  annotation_text=f"overall {abdash.pct(overall['rel_effect'])}", annotation_position="top")
abdash.plot(fig, "segments_forest")

kind_u, _ = dd.metric_unit(metric)
table = []
for s in rows_m:
    cell = srm.get((s["segment"], s["segment_value"]), {})
    units = cell.get("units") or {}
    est = dd.estimable(s)
    table.append([abdash.SEGMENT_NAMES.get(s["segment"], s["segment"]), s["segment_value"],
                  f"{units.get(ctl, 0):,} / {units.get(trt, 0):,}" if units else "n/a",
                  ("✖ FAILED" if cell.get("failed") else "✔ ok") + f" ({abdash.p_is(cell.get('p_value'))})",
                  dd.fmt_metric_value(s.get("control_value"), kind_u),
                  dd.fmt_metric_value(s.get("treatment_value"), kind_u),
                  abdash.pct(s.get("rel_effect")) if est else "not estimable",
                  dd.ci_cell(dd.as_result(s)) if est else "—", abdash.pval(s.get("p_value")),
                  abdash.verdict_cell(dd.verdict(s)) if est else "not estimable"])
st.html(abdash.html_table(["segment", "value", f"units {ctl} / {trt}", "SRM", ctl, trt, "rel diff", level, "p",
                           "verdict"], table, f"segments_{metric}",
                          num=[f"units {ctl} / {trt}", ctl, trt, "rel diff", "p"], ci_cols=[level]))
abdash.download(rows_m, f"segment rows of {metric}", f"segments_{metric}")

st.header(f"Cumulative lift of {metric} in one segment value")
drill = {(s["segment"], s["segment_value"]): s for s in rep.get("daily_segments") or [] if s["metric"] == metric}
if not drill:
    st.info(f"This run's report has no daily looks of {metric} per segment value (a report written before they "
            "existed, or a log without session times).")
else:
    def value_label(key: tuple[str, str]) -> str:
        return f"{abdash.SEGMENT_NAMES.get(key[0], key[0])}: {key[1]}"

    keys = sorted(drill, key=lambda k: natural(*k))
    options = [value_label(k) for k in keys]
    if st.session_state.get("segments_value") not in options:  # a metric or run without the value picked before
        st.session_state["segments_value"] = options[0]
    picked = st.selectbox("Segment value", options, key="segments_value",
                          help="The daily cumulative lift of the metric picked above, in this segment value only.")
    key = keys[options.index(picked)]
    direction = (overall or {}).get("direction", "increase")
    looks = dd.segment_looks(drill[key], direction)
    overall_daily = sorted((r for r in rep.get("daily") or [] if r.get("metric") == metric), key=lambda r: r["day"])
    band = abdash.daily_band(rep, cfg, level, series=drill[key])
    abdash.plot(abdash.daily_figure(looks, f"{metric} in {picked}", band, overall=overall_daily), "segments_daily")
    st.caption(f"Each day shows the lift in {picked} on all its data up to and including that day; the last day is "
               f"the segment table's row. Band: {band}. Dotted: the overall cumulative lift. Exploratory, like every "
               "segment cell.")
    drill_rows = []
    for r in looks:
        est = dd.finite(r.get("rel_effect")) is not None
        drill_rows.append([r["day"], f"{r['n_control'] or 0:,} / {r['n_treatment'] or 0:,}",
                           dd.fmt_metric_value(r.get("control_value"), kind_u),
                           dd.fmt_metric_value(r.get("treatment_value"), kind_u),
                           abdash.pct(r.get("rel_effect")) if est else "not estimable",
                           abdash.ci(r.get("rel_ci_low"), r.get("rel_ci_high")) if est else "—",
                           abdash.pval(r.get("p_value")),
                           abdash.verdict_cell(dd.band_verdict(r)) if est else "not estimable"])
    st.html(abdash.html_table(["day", f"units {ctl} / {trt}", ctl, trt, "rel diff", f"band ({level})", "p",
                               "verdict"], drill_rows, f"segments_daily_{metric}",
                              num=[f"units {ctl} / {trt}", ctl, trt, "rel diff", "p"], ci_cols=[f"band ({level})"]))
    abdash.download(looks, f"daily looks of {metric} in {picked}", f"segments_daily_{metric}")

st.header("Sample ratio by segment")
srm_rows = sorted(rep.get("srm_by_segment") or [],
                  key=lambda s: (-1, 0, "") if s["segment"] == "all" else natural(s["segment"], s["segment_value"]))
arms = list(dict.fromkeys(a for s in srm_rows for a in (s.get("units") or {})))
st.html(abdash.html_table(
    ["segment", "value", *[f"n {a}" for a in arms], "chi-square", "p", "status"],
    [[abdash.SEGMENT_NAMES.get(s["segment"], s["segment"]), s["segment_value"],
      *[f"{(s.get('units') or {}).get(a, 0):,}" for a in arms],
      f"{s['chi2']:.3f}" if dd.finite(s.get("chi2")) is not None else "n/a", abdash.pval(s.get("p_value")),
      "✖ FAILED" if s.get("failed") else "✔ ok"] for s in srm_rows],
    "srm_by_segment", num=[*[f"n {a}" for a in arms], "chi-square", "p"]))
abdash.download(srm_rows, "SRM by segment", "srm_by_segment")
