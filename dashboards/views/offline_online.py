"""Offline vs online: the offline replay's predicted lift against the online A/B result, per metric."""

import pandas as pd
import streamlit as st

import abdash
from abplatform import dashboard_data as dd

entry, rep = abdash.require_run()
st.title(f"Offline vs online · {rep.get('experiment')}")

rows = rep.get("offline_vs_online")
if rows:
    st.caption(f"As recorded in run `{rep.get('run_id')}` (report.json, `offline_vs_online`).")
else:
    entries = abdash.runs()
    offline = [e for e in entries if e.get("mode") == "offline"]
    online = [e for e in entries if e.get("mode") == "online"]
    if not offline or not online:
        st.info("**Nothing to compare yet.** This needs an offline run (`abplatform run`: the replay's "
                "prediction) and an online run (`abplatform analyze`: the A/B log's result) — the results "
                f"folder has {len(offline)} offline and {len(online)} online run(s), and this run's "
                "`report.json` has no `offline_vs_online` section.", icon=":material/info:")
        st.stop()
    same = lambda e: e.get("experiment") == rep.get("experiment")  # noqa: E731
    off_default = entry if entry.get("mode") == "offline" else next((e for e in offline if same(e)), offline[0])
    on_default = entry if entry.get("mode") == "online" else next((e for e in online if same(e)), online[0])
    c1, c2 = st.columns(2)
    off_keys, on_keys = [e["path"] for e in offline], [e["path"] for e in online]
    lookup = abdash.by_path()
    off_key = c1.selectbox("Offline run (prediction)", off_keys, index=off_keys.index(off_default["path"]),
                           format_func=lambda k: abdash.label(lookup[k]), key="ovo_offline")
    on_key = c2.selectbox("Online run (observed)", on_keys, index=on_keys.index(on_default["path"]),
                          format_func=lambda k: abdash.label(lookup[k]), key="ovo_online")
    rows = dd.pair_offline_online(abdash.safe_report(lookup[off_key]), abdash.safe_report(lookup[on_key]))
    if not rows:
        st.info("These two runs have no metric in common.")
        st.stop()

labels = [r["metric"] for r in rows]
fig = abdash.forest(labels, [
    {"name": "offline prediction", "x": [r.get("predicted_rel_effect") for r in rows],
     "lo": [r.get("predicted_rel_ci_low") for r in rows], "hi": [r.get("predicted_rel_ci_high") for r in rows],
     "colour": abdash.OKABE_ITO["sky_blue"], "symbol": "diamond"},
    {"name": "online result", "x": [r.get("observed_rel_effect") for r in rows],
     "lo": [r.get("observed_rel_ci_low") for r in rows], "hi": [r.get("observed_rel_ci_high") for r in rows],
     "colour": abdash.OKABE_ITO["black"], "symbol": "circle"},
], "Predicted (offline) vs observed (online) relative lift")
abdash.plot(fig, "offline_online")

shown = []
for r in rows:
    p, o = dd.finite(r.get("predicted_rel_effect")), dd.finite(r.get("observed_rel_effect"))
    lo, hi = dd.finite(r.get("observed_rel_ci_low")), dd.finite(r.get("observed_rel_ci_high"))
    shown.append({"metric": r["metric"], "predicted lift": abdash.pct(p),
                  "predicted CI": abdash.ci(r.get("predicted_rel_ci_low"), r.get("predicted_rel_ci_high")),
                  "observed lift": abdash.pct(o),
                  "observed CI": abdash.ci(lo, hi),
                  "observed − predicted": "n/a" if p is None or o is None else f"{(o - p) * 100:+.2f} pp",
                  "prediction inside observed CI": "n/a" if None in (p, lo, hi) else ("yes" if lo <= p <= hi else "no")})
abdash.show_table(pd.DataFrame(shown), rows, "offline vs online", "offline_vs_online")
