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

guard = rep.get("latency_guardrail")
wall = rep.get("latency_ms_per_query") or {}
if rep.get("mode") == "offline" or guard or wall:
    import pandas as pd

    st.subheader("Serving cost (latency guardrail)")
    status = (guard or {}).get("status") or ("breached" if (guard or {}).get("breached") else None)
    if not guard or status == "not_evaluated" or guard.get("ratio") is None:
        st.info(f"Not evaluated: {(guard or {}).get('reason') or 'no serving-cost measurement in this run'}.")
    else:
        lo, hi, margin = guard.get("ratio_ci_low"), guard.get("ratio_ci_high"), guard.get("margin")
        text = (f"**{status}** — treatment / control CPU time per query {guard['ratio']:.3f}"
                + (f", {level} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")
                + (f", margin {margin:.0%}" if margin is not None else ""))
        {"ok": st.success, "inconclusive": st.warning}.get(status, st.error)(text)
        per_arm = guard.get("cpu_ms_per_query") or {}
        if per_arm:
            raw = [{"arm": a, "cpu_ms_per_query": v} for a, v in per_arm.items()]
            shown = pd.DataFrame([{"arm": a, "CPU ms per query": f"{v:.5f}"} for a, v in per_arm.items()])
            abdash.show_table(shown, raw, "serving cost", "latency")
        if guard.get("repetitions"):
            st.caption(f"{guard['repetitions']} paired repetitions of {guard.get('batch_size')} queries, "
                       f"CPU clock {guard.get('timer')}: both rankers score the same batch back to back.")
    if wall:
        st.caption("Replay wall clock, ms per query (for information; it moves with machine load and does not "
                   "decide): " + ", ".join(f"{a} {v:.4f}" for a, v in wall.items()))
