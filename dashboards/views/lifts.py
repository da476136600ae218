"""Forest plot of every metric's relative lift with CIs, and the cumulative daily lift of one metric."""

import streamlit as st

import abdash

entry, rep = abdash.require_run()
cfg = abdash.config(entry)
level = abdash.ci_level(cfg)
metrics = rep.get("metrics") or []

st.title(f"Forest plot & daily lift · {rep.get('experiment')}")
st.caption(f"run `{rep.get('run_id')}` · {rep.get('mode')} · {rep.get('treatment')} vs {rep.get('control')}")
if not metrics:
    st.info("This run's report has no metrics.")
    st.stop()

corr = abdash.correction(cfg)
adjusted = st.toggle(f"Multiplicity-adjusted CIs (correction: {corr})", key="lifts_adjusted",
                     help="Widen each CI for the number of metrics tested, as the decision does.")
title = f"Relative lift, treatment vs control ({level}{', adjusted' if adjusted else ''})"
abdash.plot(abdash.metrics_forest(metrics, title, adjusted=adjusted), "forest")
st.caption("Colour: ▲ better (bluish green), ▼ worse (vermillion), ● no significant change (grey), each "
           "in the metric's own direction. Dashed line: no difference.")

st.subheader("Cumulative lift by day")
names = [m["metric"] for m in metrics]
metric = st.selectbox("Metric", names, key="lifts_metric")
daily = sorted((r for r in rep.get("daily") or [] if r.get("metric") == metric), key=lambda r: r["day"])
seq = (cfg.get("statistics") or {}).get("sequential")
band = (f"{level[:-3]} confidence sequence ({seq.get('method')}; valid at every look)" if seq
        else f"{level} (fixed-horizon; not valid for peeking)")
if not daily:
    st.info(f"No daily rows for {metric} in this run.")
    st.stop()
abdash.plot(abdash.daily_figure(daily, metric, band), "daily")
st.caption(f"Each day shows the lift on all data up to and including that day. Band: {band}.")
shown = abdash.metric_table(daily, level=level)
shown.insert(0, "day", [r["day"] for r in daily])
abdash.show_table(shown[["day", "control", "treatment", "rel diff", level, "p", "verdict"]],
                  daily, f"daily rows of {metric}", f"daily_{metric}")
