"""abplatform dashboard — entry point (``abplatform dashboard`` or ``make dashboard``).

Reads only the results folder (``$ABPLATFORM_RESULTS``, default ``results``): its index.json and
each run folder's report.json / config.json. It never imports or runs code a run names.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import streamlit as st  # noqa: E402

import abdash  # noqa: E402

st.set_page_config(page_title="abplatform", page_icon=":material/science:", layout="wide")

pages = {
    "Runs": [
        st.Page("views/experiments.py", title="Experiments", icon=":material/list:", default=True),
        st.Page("views/compare.py", title="Compare two runs", icon=":material/compare_arrows:"),
    ],
    "Selected run": [
        st.Page("views/scorecard.py", title="Scorecard", icon=":material/table_chart:"),
        st.Page("views/lifts.py", title="Forest plot & daily lift", icon=":material/show_chart:"),
        st.Page("views/segments.py", title="Segments", icon=":material/segment:"),
        st.Page("views/long_tail.py", title="Long tail & information bubble", icon=":material/bubble_chart:"),
        st.Page("views/offline_online.py", title="Offline vs online", icon=":material/compare:"),
        st.Page("views/policy.py", title="Off-policy & interleaving", icon=":material/model_training:"),
    ],
}
nav = st.navigation(pages)

with st.sidebar:
    entries = abdash.by_path()  # a broken index.json is reported on the page itself
    if entries:
        keys = list(entries)
        wanted = st.query_params.get("run")
        start = next((i for i, k in enumerate(keys) if entries[k]["run_id"] == wanted), 0)
        if abdash.RUN_KEY in st.session_state and st.session_state[abdash.RUN_KEY] not in entries:
            del st.session_state[abdash.RUN_KEY]  # that run left the index
        st.selectbox("Run", keys, index=start, key=abdash.RUN_KEY, format_func=lambda k: abdash.label(entries[k]),
                     help="Newest first. Every 'Selected run' page shows this run.")
        sel = entries[st.session_state[abdash.RUN_KEY]]
        st.caption(f"run id `{sel['run_id']}`")
    st.caption(f"Results folder: `{abdash.root()}` · {len(entries)} run(s)")

nav.run()
