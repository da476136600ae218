"""Segments: the lift of one metric per segment value, each with its own sample-ratio check."""

import pandas as pd
import streamlit as st

import abdash
from abplatform import dashboard_data as dd

entry, rep = abdash.require_run()
level = abdash.ci_level(abdash.config(entry))
st.title(f"Segments · {rep.get('experiment')}")
st.caption(f"run `{rep.get('run_id')}` · {rep.get('mode')} · {rep.get('treatment')} vs {rep.get('control')}")

segs = rep.get("segments") or []
if not segs:
    st.info("This run has no per-segment results (the experiment configured no segments).")
    st.stop()

names = [m["metric"] for m in rep.get("metrics") or []] or sorted({s["metric"] for s in segs})
metric = st.selectbox("Metric", names, key="segments_metric")
rows = [s for s in segs if s["metric"] == metric]
srm = {(s["segment"], s["segment_value"]): s for s in rep.get("srm_by_segment") or []}

failed = [f"{abdash.SEGMENT_NAMES.get(k[0], k[0])} = {k[1]}" for k, s in srm.items() if s.get("failed") and k[0] != "all"]
if failed:
    st.error("**Sample ratio mismatch within segment(s):** " + ", ".join(failed) + ". Their lifts are not "
             "trustworthy until the imbalance is explained.", icon=":material/warning:")
else:
    st.success("Sample ratio check passed in every segment.", icon=":material/balance:")

overall = next((m for m in rep.get("metrics") or [] if m["metric"] == metric), None)
dims = list(dict.fromkeys(s["segment"] for s in rows))
labels = [f"{s['segment_value']} ({abdash.SEGMENT_NAMES.get(s['segment'], s['segment'])})" for s in rows]
series = []
for j, dim in enumerate(dims):
    mask = [s["segment"] == dim for s in rows]
    series.append({"name": abdash.SEGMENT_NAMES.get(dim, dim),
                   "x": [s["rel_effect"] if m else None for s, m in zip(rows, mask)],
                   "lo": [s["rel_ci_low"] if m else None for s, m in zip(rows, mask)],
                   "hi": [s["rel_ci_high"] if m else None for s, m in zip(rows, mask)],
                   "colour": abdash.SEGMENT_COLOURS[j % len(abdash.SEGMENT_COLOURS)],
                   "symbol": ["circle", "square", "diamond", "triangle-up"][j % 4]})
fig = abdash.forest(labels, series, f"Relative lift of {metric} by segment ({level})", dodge=False)
if overall is not None and dd.finite(overall.get("rel_effect")) is not None:
    fig.add_vline(x=overall["rel_effect"], line_dash="dot", line_color=abdash.ARM_COLOURS["treatment"],
                  annotation_text=f"overall {abdash.pct(overall['rel_effect'])}", annotation_position="top")
abdash.plot(fig, "segments_forest")

shown = abdash.metric_table(rows, level=level)
shown = shown.drop(columns=["metric", "role", "direction", "abs diff", f"abs diff {level}"])
for i, arm in enumerate((rep.get("control"), rep.get("treatment"))):
    shown.insert(2 + i, f"units {arm}", [(srm.get((s["segment"], s["segment_value"]), {}).get("units") or {}).get(arm)
                                         for s in rows])
shown["SRM p"] = [abdash.pval(srm.get((s["segment"], s["segment_value"]), {}).get("p_value")) for s in rows]
shown["SRM"] = ["FAILED" if srm.get((s["segment"], s["segment_value"]), {}).get("failed") else "ok" for s in rows]
first = ["segment", "value", f"units {rep.get('control')}", f"units {rep.get('treatment')}", "SRM", "SRM p"]
shown = shown[first + [c for c in shown.columns if c not in first]]
abdash.show_table(shown, rows, f"segment rows of {metric}", f"segments_{metric}", colour_verdict=True)

st.subheader("Sample ratio by segment")
srm_rows = rep.get("srm_by_segment") or []
srm_shown = pd.DataFrame([{"segment": abdash.SEGMENT_NAMES.get(s["segment"], s["segment"]), "value": s["segment_value"],
                           **{f"n_{arm}": n for arm, n in (s.get("units") or {}).items()},
                           "chi-square": f"{s['chi2']:.3f}" if dd.finite(s.get("chi2")) is not None else "n/a",
                           "p": abdash.pval(s.get("p_value")), "status": "FAILED" if s.get("failed") else "ok"}
                          for s in srm_rows])
abdash.show_table(srm_shown, srm_rows, "SRM by segment", "srm_by_segment")
