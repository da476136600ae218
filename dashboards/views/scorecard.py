"""Scorecard: the verdict and its checklist, then every metric with its interval drawn, guardrails with
their margin, power and CUPED behind a toggle, serving cost, and the run's files."""

import abdash
import streamlit as st

from abplatform import dashboard_data as dd
from abplatform.report.render import latency_details

entry, rep, cfg = abdash.run_page("Scorecard", full=True)
level = abdash.ci_level(cfg)
typed = abdash.typed(entry)
corr = typed.analysis.correction
adjusted = corr != "none"

metrics = rep.get("metrics") or []
st.header("Metrics")
if metrics:
    abdash.scorecard_table(rep, metrics, level, adjusted, "scorecard")
    st.caption(f"Lift = {rep.get('treatment')} / {rep.get('control')} − 1. "
               + (f"Intervals and p-values are {corr}-adjusted for multiple testing, as the decision reads them. "
                  if adjusted else "")
               + "Interval bar: the row's CI on one scale for the table; thin line = no change, dashed line = a "
                 "guardrail's margin, dot = estimate. Verdict: ▲ better, ▼ worse, ● no significant change, in "
                 "the metric's own direction.")
    if st.toggle("Show test details: n per arm, power (MDE), CUPED, unadjusted and absolute intervals",
                 key="scorecard_details"):
        abdash.details_tables(rep, metrics, level, "scorecard_details")
    abdash.download(metrics, "metrics", "scorecard")
else:
    st.info("This run has no metrics.")

st.header("Serving cost (latency guardrail)")
guard = rep.get("latency_guardrail")
c = next((c for c in typed.comparison_list()
          if (c.treatment, c.control) == (rep.get("treatment"), rep.get("control"))), typed.comparison_list()[0])
line = dd.latency_line(typed, c, None, several=False)
text = f"{abdash.STATUS[line.status][0]} {line.detail}"
{"pass": st.success, "warn": st.warning, "fail": st.error}.get(line.status, st.info)(text)
st.caption("As report.md has it: " + latency_details(c.latency_guardrail, typed.confidence_label))
if guard and guard.get("cpu_ms_per_query"):
    per_arm = guard["cpu_ms_per_query"]
    st.html(abdash.html_table(["arm", "CPU time per query"], [[a, dd.fmt_duration_ms(v)] for a, v in per_arm.items()],
                              "latency", num=["CPU time per query"]))
    abdash.download([{"arm": a, "cpu_ms_per_query": v} for a, v in per_arm.items()], "serving cost", "latency")
wall = rep.get("latency_ms_per_query") or {}
if wall:
    st.caption("Replay wall clock per query (for information; it moves with machine load and does not decide): "
               + ", ".join(f"{a} {dd.fmt_duration_ms(v)}" for a, v in wall.items()))

st.header("This run's files")
md = abdash.report_md(entry)
if md is not None:
    st.download_button("Download report.md", md.encode(), file_name=f"{rep.get('experiment')}-{rep.get('run_id')}.md",
                       mime="text/markdown", key="report_md", on_click="ignore", icon=":material/description:")
else:
    st.caption("This run folder has no report.md.")
text = abdash.experiment_yaml(entry)
if text is not None:
    with st.expander("Experiment file of this run (experiment.yaml, shown as text)"):
        st.code(text, language="yaml")
