"""Experiments: every run in the index, with its decision, date, source and primary-metric lift."""

import streamlit as st

import abdash
from abplatform import dashboard_data as dd

st.title("Experiments")
entries = abdash.runs()
if not entries:
    st.info(f"No runs yet in `{abdash.root()}`. Make one with `abplatform run EXPERIMENT.yaml` "
            "(or `make demo`), then reload this page.")
    st.stop()

c1, c2, c3 = st.columns([3, 1, 1])
query = c1.text_input("Search", key="exp_search", placeholder="experiment, run id, metric or config hash")
decisions = c2.multiselect("Decision", ["promote", "hold"], key="exp_decision")
modes = c3.multiselect("Source", ["offline", "online"], key="exp_mode")

raw = dd.runs_frame(entries)
mask = raw["decision"].isin(decisions) if decisions else raw["decision"].notna() | True
if modes:
    mask &= raw["mode"].isin(modes)
if query.strip():
    q = query.strip().lower()
    hay = raw[["experiment", "run_id", "primary_metric", "config_sha256", "decision", "mode"]].astype(str)
    mask &= hay.apply(lambda col: col.str.lower().str.contains(q, regex=False)).any(axis=1)
raw = raw[mask].reset_index(drop=True)

shown = raw.assign(
    decision=[str(d).upper() + (f" {a}" if isinstance(a, str) and a else "") for d, a in zip(raw["decision"], raw["arm"])],
    created=[str(c)[:16].replace("T", " ") + " UTC" for c in raw["created"]],
    primary_rel_effect=[abdash.pct(v) for v in raw["primary_rel_effect"]],
    config_sha256=[str(c)[:12] for c in raw["config_sha256"]],
)[["decision", "experiment", "created", "mode", "primary_metric", "primary_rel_effect", "run_id", "config_sha256"]]
shown.columns = ["decision", "experiment", "date", "source", "primary metric", "primary lift", "run id", "config"]

st.caption(f"{len(raw)} of {len(entries)} run(s) · newest first · pick a run in the sidebar to open its pages")
abdash.show_table(shown, raw, "runs", "runs")
