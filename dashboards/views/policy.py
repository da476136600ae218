"""Off-policy estimate and interleaving: the run's offline_policy and interleaving sections."""

import abdash
import pandas as pd
import streamlit as st

from abplatform.report.interleaving import InterleavingResult, InterleavingSampleSize
from abplatform.report.render import interleaving_lines

entry, rep, cfg = abdash.run_page("Off-policy & interleaving")

ope, il = rep.get("offline_policy"), rep.get("interleaving")
if not ope and not il:
    st.info("**No off-policy estimate or interleaving in this run.** Add an `offline_policy:` section (an arm's "
            "policy estimated on another arm's logged propensities) or an `interleaving:` section to the "
            "experiment file and run it again.", icon=":material/info:")
    st.stop()

if ope:
    level = f"{1 - float(ope.get('alpha', 0.05)):.0%} CI"
    st.header(f"Off-policy estimate: {ope.get('target')}")
    st.caption(f"Estimand: {ope.get('estimand')}")
    st.markdown(f"Logged rows **{ope.get('n_rows', 0):,}** in {ope.get('n_sessions', 0):,} sessions · Kish effective "
                f"sample size **{abdash.val(ope.get('ess'))}** · largest weight {abdash.val(ope.get('max_weight'))}")
    rows, raw = [], []
    for e in ope.get("estimates") or []:
        rows.append({"estimator": e["estimator"], "per logged row": abdash.val(e.get("value")),
                     level: abdash.ci(e.get("ci_low"), e.get("ci_high"), as_pct=False),
                     "per page": abdash.val(e.get("page_value")),
                     f"{level} (page)": abdash.ci(e.get("page_ci_low"), e.get("page_ci_high"), as_pct=False)})
        raw.append({k: v for k, v in e.items() if k != "per_position"})
    on = ope.get("on_policy") or {}
    if on.get("value") is not None:
        rows.append({"estimator": f"on-policy (the target's own {on.get('n_rows', 0):,} logged rows)",
                     "per logged row": abdash.val(on["value"]),
                     level: abdash.ci(on.get("ci_low"), on.get("ci_high"), as_pct=False), "per page": "",
                     f"{level} (page)": ""})
        raw.append({"estimator": "on_policy", **on})
    abdash.show_table(pd.DataFrame(rows), raw, "off-policy estimates", "ope_estimates")
    positions = ope.get("positions") or []
    if positions:
        st.markdown("**Per position**")
        by_estimator = {e["estimator"]: {v["position"]: v for v in e.get("per_position") or []}
                        for e in ope.get("estimates") or []}
        table = [{"position": p["position"], "logged rows": f"{p['n_rows']:,}", "ESS": abdash.val(p.get("ess")),
                  **{name: abdash.val(values.get(p["position"], {}).get("value"))
                     for name, values in by_estimator.items()}} for p in positions]
        abdash.show_table(pd.DataFrame(table), positions, "per-position weights", "ope_positions")
    for w in ope.get("warnings") or []:
        st.warning(w, icon=":material/warning:")

if il:
    st.header("Interleaving")
    size = il.get("sample_size")
    result = InterleavingResult(**{**il, "sample_size": InterleavingSampleSize(**size) if size else None})
    for line in interleaving_lines(result):
        st.markdown(f"- {line}")
