"""Long tail and information bubble: tail exposure and clicks, coverage, concentration, diversity per arm."""

import abdash
import pandas as pd
import streamlit as st

from abplatform import dashboard_data as dd

entry, rep, cfg = abdash.run_page("Long tail & information bubble")
level = abdash.ci_level(cfg)

DESCRIPTIONS = {
    "tail_impression_share": "share of impressions given to long-tail items (higher: less bubble)",
    "tail_click_share": "share of clicks that land on long-tail items",
    "coverage": "share of the catalog shown at least once",
    "exposure_gini": "Gini of impressions over items (lower: exposure less concentrated)",
    "category_entropy": "entropy of shown categories, bits (higher: more diverse pages)",
    "novelty": "how unfamiliar shown items are to the user, bits (higher: less bubble)",
}

lt = rep.get("long_tail")
if not lt:
    unit = (rep.get("analysis") or {}).get("unit", "user")
    if unit != "user":
        why = (f"the randomisation unit of this run is the {unit}: the per-user long-tail measures need users as "
               "the unit.")
    elif rep.get("mode") == "online":
        why = ("its data has no item catalog (an `items` table with each item's category) or no pre-period "
               "(`pre_impressions`, which defines the tail items). Add both to the log's tables and analyse it "
               "again to see this panel.")
    else:
        why = ("the run was made by a version of abplatform that did not yet measure tail-item exposure and "
               "click share, catalog coverage, exposure Gini, category entropy and novelty per arm. Re-run the "
               "experiment with a current version to see this panel.")
    st.info(f"**No long-tail measurements in this run.** Its `report.json` has no `long_tail` section: {why}",
            icon=":material/info:")
    st.stop()

per_arm = lt.get("per_arm") or {}
arms = [a for a in (rep.get("control"), rep.get("treatment")) if a in per_arm] + \
       [a for a in per_arm if a not in (rep.get("control"), rep.get("treatment"))]
measures = [m for m in dd.LONG_TAIL_MEASURES if any(m in (per_arm.get(a) or {}) for a in arms)] + \
           sorted({m for a in arms for m in (per_arm.get(a) or {})} - set(dd.LONG_TAIL_MEASURES))

if per_arm and measures:
    st.header("Per arm")
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
    abdash.show_table(pd.DataFrame(shown), raw, "long-tail measures per arm", "long_tail_per_arm",
                      num=[*arms, f"{t} vs {c}"])
else:
    st.info("The `long_tail` section has no per-arm measures.")

rows = lt.get("metrics") or []
st.header("Per-user long-tail metrics, with confidence intervals")
if rows:
    abdash.plot(abdash.metrics_forest(rows, f"Relative lift of long-tail metrics ({level})"), "long_tail_forest")
    shown = []
    for m in rows:
        row = dd.as_result(m)
        shown.append({"metric": m["metric"], "control": abdash.val(m.get("control_value")),
                      "treatment": abdash.val(m.get("treatment_value")), "rel diff": abdash.pct(m.get("rel_effect")),
                      level: dd.ci_cell(row), "p": abdash.pval(m.get("p_value")),
                      "verdict": dd.VERDICT_MARKS[dd.verdict(m)]})
    abdash.show_table(pd.DataFrame(shown), rows, "long-tail metrics", "long_tail_metrics", colour_verdict=True,
                      num=["control", "treatment", "rel diff", "p"])
else:
    st.info("The `long_tail` section has no per-user metrics with confidence intervals.")
