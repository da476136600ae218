"""abplatform dashboard — entry point (``abplatform dashboard`` or ``make dashboard``).

Reads only the results folder (``$ABPLATFORM_RESULTS``, default ``results``): its index.json and
each run folder's report.json / config.json / report.md. It never imports or runs code a run names.
The theme and toolbar come from ``.streamlit/config.toml`` beside this script (Streamlit reads a
script-level config for ``streamlit run``).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import abdash  # noqa: E402
import streamlit as st  # noqa: E402

st.set_page_config(page_title="abplatform", page_icon=":material/science:", layout="wide",
                   initial_sidebar_state=380)  # wide enough for a run's label
st.html(abdash.CSS)

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
# Streamlit's own sidebar menu is a list whose items are not all list items (an accessibility checker's
# "serious" finding); the same links, drawn with st.page_link, are plain links under two headings.
nav = st.navigation(pages, position="hidden")


def _sync_run_with_url(entries: dict[str, dict]) -> None:
    """``?run=<run id>`` chooses the run; the sidebar's choice is written back, so a copied link opens the
    run on screen. A link to a run this folder does not have is said so on every page (no silent
    fallback to another run) until a run is picked."""
    wanted = st.query_params.get("run")
    by_id = {e["run_id"]: k for k, e in entries.items()}
    key = st.session_state.get(abdash.RUN_KEY)
    if key is not None and key not in entries:
        del st.session_state[abdash.RUN_KEY]  # that run left the index
        key = None
    shown = entries[key]["run_id"] if key else None
    if wanted and wanted != shown and wanted != st.session_state.get("_run_seen"):
        if wanted in by_id:  # a link (or the browser's address bar) names a run: follow it
            st.session_state[abdash.RUN_KEY] = by_id[wanted]
            st.session_state.pop(abdash.UNKNOWN_RUN_KEY, None)
        else:
            st.session_state[abdash.UNKNOWN_RUN_KEY] = wanted
            st.session_state.pop(abdash.RUN_KEY, None)
    elif key is None and not st.session_state.get(abdash.UNKNOWN_RUN_KEY):
        st.session_state[abdash.RUN_KEY] = next(iter(entries))


def _picked() -> None:
    """A run picked in the sidebar wins over the link the page was opened with."""
    st.session_state.pop(abdash.UNKNOWN_RUN_KEY, None)
    st.session_state["_run_seen"] = st.query_params.get("run")


with st.sidebar:
    for section, items in pages.items():
        st.markdown(f"<p class='ab-nav'>{section}</p>", unsafe_allow_html=True)
        for page in items:
            st.page_link(page)
    entries = abdash.by_path()  # a broken index.json is reported on the page itself
    if entries:
        _sync_run_with_url(entries)
        unknown = st.session_state.get(abdash.UNKNOWN_RUN_KEY)
        st.selectbox("Run", list(entries), key=abdash.RUN_KEY, index=None if unknown else 0,
                     format_func=lambda k: abdash.label(entries[k]), on_change=_picked,
                     placeholder="Pick a run", help="Newest first: decision · experiment · date (UTC) · end of the "
                                                    "run id. Every 'Selected run' page shows this run.")
        key = st.session_state.get(abdash.RUN_KEY)
        if key in entries:
            sel = entries[key]
            st.query_params["run"] = sel["run_id"]
            st.session_state["_run_seen"] = sel["run_id"]
            cfg = abdash.config(sel)
            st.caption(f"run id `{sel['run_id']}` · {sel.get('mode')} · {sel.get('experiment')} · created "
                       f"{str(sel.get('created', ''))[:16].replace('T', ' ')} UTC"
                       + (f" · owner {cfg['owner']}" if cfg.get("owner") else ""))
        elif unknown:
            st.error(f"No run `{unknown}` in this results folder.", icon=":material/link_off:")
    st.caption(f"Results folder: `{abdash.root_name()}` · {len(entries)} run(s)")

nav.run()
