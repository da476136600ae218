"""Forest plot of every metric's relative lift with CIs, and the cumulative daily lift of one metric."""

import abdash
import streamlit as st

from abplatform import dashboard_data as dd

entry, rep, cfg = abdash.run_page("Forest plot & daily lift")
level = abdash.ci_level(cfg)
metrics = rep.get("metrics") or []
if not metrics:
    st.info("This run's report has no metrics.")
    st.stop()

corr = abdash.correction(cfg)
adjusted = st.toggle(f"Multiplicity-adjusted CIs (correction: {corr})", key="lifts_adjusted",
                     help="Widen each CI for the number of metrics tested, as the decision does.")
title = f"Relative lift, treatment vs control ({level}{', adjusted' if adjusted else ''})"
abdash.plot(abdash.metrics_forest(metrics, title, adjusted=adjusted), "forest")
st.caption("Colour and symbol: ▲ better (bluish green), ▼ worse (vermillion), ● no significant change (grey), each "
           "in the metric's own direction. Dashed line: no difference.")

st.header("Cumulative lift by day")
names = [m["metric"] for m in metrics]
metric = abdash.metric_picker(names, "lifts_metric")
daily = sorted((r for r in rep.get("daily") or [] if r.get("metric") == metric), key=lambda r: r["day"])
band = abdash.daily_band(rep, cfg, level)
if not daily:
    st.info(f"No daily rows for {metric} in this run.")
    st.stop()
abdash.plot(abdash.daily_figure(daily, metric, band), "daily")
st.caption(f"Each day shows the lift on all data up to and including that day. Band: {band}. The verdict of a "
           "day is read from its band: ▲ or ▼ only when the band excludes zero.")
kind, _ = dd.metric_unit(metric)
rows = []
for r in daily:
    est = dd.estimable(r)
    rows.append([r["day"], dd.fmt_metric_value(r.get("control_value"), kind),
                 dd.fmt_metric_value(r.get("treatment_value"), kind),
                 abdash.pct(r.get("rel_effect")) if est else "not estimable",
                 abdash.ci(r.get("rel_ci_low"), r.get("rel_ci_high")) if est else "—", abdash.pval(r.get("p_value")),
                 abdash.verdict_cell(dd.band_verdict(r)) if est else "not estimable"])
st.html(abdash.html_table(["day", rep.get("control") or "control", rep.get("treatment") or "treatment", "rel diff",
                           f"band ({level})", "p", "verdict"], rows, f"daily_{metric}",
                          num=["rel diff", "p"], ci_cols=[f"band ({level})"]))
abdash.download(daily, f"daily rows of {metric}", f"daily_{metric}")
