"""Offline vs online: the offline replay's predicted lift against the online A/B result, per metric.

The runs are paired as the pipeline pairs them (the experiment's ``compare_to``, or the same experiment
name); another run can be set beside this one by hand, with a warning saying how the two differ."""

import abdash
import streamlit as st

from abplatform import dashboard_data as dd

entry, rep, cfg = abdash.run_page("Offline vs online")

rows = rep.get("offline_vs_online")
if rows:
    r0 = rows[0]
    st.caption(f"As recorded in this run's report.json (`offline_vs_online`): offline run `{r0.get('offline_run_id')}` "
               f"of {r0.get('offline_experiment')} beside online run `{r0.get('online_run_id')}` of "
               f"{r0.get('online_experiment')}.")
    if r0.get("offline_experiment") != r0.get("online_experiment"):
        st.caption(f"Paired through `compare_to`: {r0.get('offline_experiment')} ↔ {r0.get('online_experiment')}.")
else:
    entries = abdash.runs()
    mode = rep.get("mode")
    other = "online" if mode == "offline" else "offline"
    others = [e for e in entries if e.get("mode") == other]
    target = cfg.get("compare_to") or rep.get("experiment")
    paired = dd.pair_candidates(rep, cfg, entries, abdash.config)
    how = (f"`compare_to: {cfg['compare_to']}` in its config" if cfg.get("compare_to")
           else f"the same experiment name ({rep.get('experiment')}); set `compare_to` to pair it with another")
    if not others:
        st.info(f"**Nothing to compare yet.** This needs an offline run (`abplatform run`: the replay's prediction) "
                f"and an online run (`abplatform analyze`: the A/B log's result). The results folder has no {other} "
                "run, and this run's `report.json` has no `offline_vs_online` section.", icon=":material/info:")
        st.stop()
    lookup = abdash.by_path()
    keys = [e["path"] for e in paired] + [e["path"] for e in others if e not in paired]
    if paired:
        st.caption(f"This {mode} run is paired with {len(paired)} {other} run(s) by {how}; the newest is shown.")
        index = 0
    else:
        st.warning(f"**No {other} run is paired with this run.** The pipeline pairs by {how}, and the results "
                   f"folder has no {other} run of {target}. Pick one below to set beside it anyway — the "
                   "comparison is then yours to justify.", icon=":material/link_off:")
        index = None
    pick = st.selectbox(f"{other.capitalize()} run", keys, index=index, key="ovo_other",
                        format_func=lambda k: abdash.label(lookup[k])
                        + ("" if lookup[k] in paired else " (not paired)"),
                        placeholder=f"Pick an {other} run")
    if pick is None:
        st.stop()
    chosen = abdash.safe_report(lookup[pick])
    for c in chosen.get("comparisons") or []:  # an A/B/n run: the comparison this page shows
        if (c["treatment"], c["control"]) == (rep.get("treatment"), rep.get("control")):
            chosen = {**chosen, "metrics": c["metrics"], "control": c["control"], "treatment": c["treatment"]}
    ccfg = abdash.config(lookup[pick])
    off, on = (rep, chosen) if mode == "offline" else (chosen, rep)
    off_cfg, on_cfg = (cfg, ccfg) if mode == "offline" else (ccfg, cfg)
    for w in dd.pair_warnings(off, on, off_cfg, on_cfg):
        st.warning(w, icon=":material/warning:")
    rows = dd.pair_offline_online(off, on)
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
    inside = "n/a" if None in (p, lo, hi) else ("✔ yes" if lo <= p <= hi else "✖ no")
    shown.append([r["metric"], abdash.pct(p), abdash.ci(r.get("predicted_rel_ci_low"), r.get("predicted_rel_ci_high")),
                  abdash.pct(o), abdash.ci(lo, hi),
                  "n/a" if p is None or o is None else f"{(o - p) * 100:+.2f} pp", inside])
st.html(abdash.html_table(["metric", "predicted lift", "predicted CI", "observed lift", "observed CI",
                           "observed − predicted", "prediction inside observed CI"], shown, "offline_vs_online",
                          num=["predicted lift", "observed lift", "observed − predicted"],
                          ci_cols=["predicted CI", "observed CI"]))
abdash.download(rows, "offline vs online", "offline_vs_online")
