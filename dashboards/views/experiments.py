"""Experiments: every run in the index, with its decision, date, source, owner and primary-metric lift;
each row opens the run."""

import html
from urllib.parse import quote

import abdash
import streamlit as st

from abplatform import dashboard_data as dd

st.title("Experiments")
entries = abdash.runs()
if not entries:
    st.info(f"No runs yet in results folder {abdash.root_name()}. Make one with `abplatform run EXPERIMENT.yaml` "
            "(or `make demo`), then reload this page.")
    st.stop()

sel = abdash.current()
if sel is not None:
    abdash.health(sel, who=f"Selected run ({sel.get('experiment')} …{str(sel.get('run_id'))[-6:]})", quiet_ok=True)

c1, c2, c3 = st.columns([3, 1, 1])
query = c1.text_input("Search", key="exp_search", placeholder="experiment, owner, run id, metric or config hash")
decisions = c2.multiselect("Decision", ["promote", "hold"], key="exp_decision")
modes = c3.multiselect("Source", ["offline", "online"], key="exp_mode")

raw = dd.runs_frame(entries)
raw["owner"] = [abdash.config(e).get("owner") for e in entries]
raw["description"] = [abdash.config(e).get("description") for e in entries]
mask = raw["decision"].isin(decisions) if decisions else raw["decision"].notna() | True
if modes:
    mask &= raw["mode"].isin(modes)
if query.strip():
    q = query.strip().lower()
    hay = raw[["experiment", "owner", "run_id", "primary_metric", "config_sha256", "decision", "mode"]].astype(str)
    mask &= hay.apply(lambda col: col.str.lower().str.contains(q, regex=False)).any(axis=1)
raw = raw[mask].reset_index(drop=True)

st.caption(f"{len(raw)} of {len(entries)} run(s) · newest first · click an experiment to open its scorecard")
rows = []
for _, r in raw.iterrows():
    link = abdash.H(f'<a href="scorecard?run={quote(str(r["run_id"]))}" target="_self">'
                    f'{html.escape(str(r["experiment"]))}</a>'
                    + (f"<span class='sub'>{html.escape(str(r['description']))}</span>"
                       if isinstance(r["description"], str) else ""))
    rows.append([abdash.badge(str(r["decision"]), r["arm"] if isinstance(r["arm"], str) else None), link,
                 str(r["created"])[:16].replace("T", " ") + " UTC", r["mode"],
                 r["owner"] if isinstance(r["owner"], str) else "—", r["primary_metric"],
                 abdash.pct(r["primary_rel_effect"]), abdash.H(f"<code>…{html.escape(str(r['run_id'])[-8:])}</code>")])
st.html(abdash.html_table(["decision", "experiment", "date", "source", "owner", "primary metric", "primary lift",
                           "run id"], rows, "runs", num=["primary lift"]))
abdash.download(raw, "runs", "runs")
