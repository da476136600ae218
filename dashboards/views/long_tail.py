"""Long tail and information bubble: tail exposure and clicks, coverage, concentration, diversity per arm."""

import pandas as pd
import streamlit as st

import abdash
from abplatform import dashboard_data as dd

entry, rep = abdash.require_run()
level = abdash.ci_level(abdash.config(entry))
st.title(f"Long tail & information bubble · {rep.get('experiment')}")
st.caption(f"run `{rep.get('run_id')}` · {rep.get('mode')} · {rep.get('treatment')} vs {rep.get('control')}")

DESCRIPTIONS = {
    "tail_impression_share": "share of impressions given to long-tail items (higher: less bubble)",
    "tail_click_share": "share of clicks that land on long-tail items",
    "coverage": "share of the catalog shown at least once",
    "exposure_gini": "Gini of impressions over items (lower: exposure less concentrated)",
    "category_entropy": "entropy of shown categories (higher: more diverse pages)",
    "novelty": "how unfamiliar shown items are to the user (higher: less bubble)",
}

lt = rep.get("long_tail")
if not lt:
    st.info("**No long-tail measurements in this run.** Its `report.json` has no `long_tail` section: the "
            "run was made by a version of abplatform that did not yet measure tail-item exposure and click "
            "share, catalog coverage, exposure Gini, category entropy and novelty per arm. Re-run the "
            "experiment with a current version to see this panel.", icon=":material/info:")
    st.stop()

per_arm = lt.get("per_arm") or {}
arms = [a for a in (rep.get("control"), rep.get("treatment")) if a in per_arm] + \
       [a for a in per_arm if a not in (rep.get("control"), rep.get("treatment"))]
measures = [m for m in dd.LONG_TAIL_MEASURES if any(m in (per_arm.get(a) or {}) for a in arms)] + \
           sorted({m for a in arms for m in (per_arm.get(a) or {})} - set(dd.LONG_TAIL_MEASURES))

if per_arm and measures:
    st.subheader("Per arm")
    abdash.plot(abdash.arm_bars(per_arm, measures, arms), "long_tail_arms")
    c, t = rep.get("control"), rep.get("treatment")
    shown, raw = [], []
    for m in measures:
        vals = {a: dd.finite((per_arm.get(a) or {}).get(m)) for a in arms}
        row = {"measure": m, **{a: abdash.val(v) for a, v in vals.items()}}
        if c in vals and t in vals and vals[c] not in (None, 0) and vals[t] is not None:
            row[f"{t} vs {c}"] = abdash.pct(vals[t] / vals[c] - 1)
        row["meaning"] = DESCRIPTIONS.get(m, "")
        shown.append(row)
        raw.append({"measure": m, **vals})
    abdash.show_table(pd.DataFrame(shown), raw, "long-tail measures per arm", "long_tail_per_arm")
else:
    st.info("The `long_tail` section has no per-arm measures.")

rows = lt.get("metrics") or []
st.subheader("Per-user long-tail metrics, with confidence intervals")
if rows:
    abdash.plot(abdash.metrics_forest(rows, f"Relative lift of long-tail metrics ({level})"), "long_tail_forest")
    abdash.show_table(abdash.metric_table(rows, level=level), rows, "long-tail metrics", "long_tail_metrics",
                      colour_verdict=True)
else:
    st.info("The `long_tail` section has no per-user metrics with confidence intervals.")
