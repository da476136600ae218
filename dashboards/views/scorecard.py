"""Scorecard: every metric's values and differences with CIs; guardrails apart; SRM; decision."""

import streamlit as st

import abdash

entry, rep = abdash.require_run()
cfg = abdash.config(entry)
level = abdash.ci_level(cfg)

st.title(f"Scorecard · {rep.get('experiment')}")
src = rep.get("source") or {}
st.caption(f"run `{rep.get('run_id')}` · {rep.get('mode')} · created {str(rep.get('created', ''))[:19]} UTC · "
           f"seed {rep.get('seed')} · config `{str(rep.get('config_sha256', ''))[:12]}` · "
           f"data `{src.get('path', '?')}` ({src.get('first_session', '?')[:10]} → {src.get('last_session', '?')[:10]}) · "
           f"{rep.get('treatment')} vs {rep.get('control')}")

abdash.decision_block(rep)
abdash.srm_banner(rep)

metrics = rep.get("metrics") or []
main = [m for m in metrics if m.get("role") != "guardrail"]
guards = [m for m in metrics if m.get("role") == "guardrail"]
corr = abdash.correction(cfg)
st.caption(f"Relative difference = treatment / control − 1. p (adjusted): multiple-testing correction "
           f"'{corr}'. Direction: which way is better for the metric. Shaded by direction of improvement: ▲ better, ▼ worse, ● no significant change.")

st.subheader("Primary and secondary metrics")
if main:
    abdash.show_table(abdash.metric_table(main, level=level), main, "metrics", "scorecard", colour_verdict=True)
else:
    st.info("This run has no primary or secondary metrics.")

st.subheader("Guardrails")
if guards:
    abdash.show_table(abdash.metric_table(guards, guardrail=True, level=level), guards, "guardrails",
                      "guardrails", colour_verdict=True)
else:
    st.info("No guardrail metrics are configured for this experiment.")

text = abdash.experiment_yaml(entry)
if text is not None:
    with st.expander("Experiment file of this run (experiment.yaml, shown as text)"):
        st.code(text, language="yaml")

lat = rep.get("latency_ms_per_query") or {}
if lat:
    st.subheader("Ranker scoring latency")
    import pandas as pd

    raw = [{"arm": a, "ms_per_query": v} for a, v in lat.items()]
    shown = pd.DataFrame([{"arm": a, "ms per query": f"{v:.4f}"} for a, v in lat.items()])
    abdash.show_table(shown, raw, "latency", "latency")
