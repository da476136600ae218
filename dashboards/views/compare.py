"""Compare two runs: each metric's lift in run A and run B, side by side."""

import abdash
import pandas as pd
import streamlit as st

from abplatform import dashboard_data as dd

st.title("Compare two runs")
lookup = abdash.by_path()
if len(lookup) < 2:
    st.info(f"Comparing needs at least two runs; results folder {abdash.root_name()} has {len(lookup)}.")
    st.stop()
keys = list(lookup)
cur = abdash.current()
a_idx = keys.index(cur["path"]) if cur else 0
b_idx = 1 if a_idx == 0 else 0
c1, c2 = st.columns(2)
a_key = c1.selectbox("Run A", keys, index=a_idx, format_func=lambda k: abdash.label(lookup[k]), key="cmp_a")
b_key = c2.selectbox("Run B", keys, index=b_idx, format_func=lambda k: abdash.label(lookup[k]), key="cmp_b")
ra, rb = abdash.safe_report(lookup[a_key]), abdash.safe_report(lookup[b_key])
abdash.health(lookup[a_key], who=f"Run A ({ra.get('experiment')} …{ra.get('run_id', '')[-6:]})", quiet_ok=True)
abdash.health(lookup[b_key], who=f"Run B ({rb.get('experiment')} …{rb.get('run_id', '')[-6:]})", quiet_ok=True)

for col, r, name in ((c1, ra, "A"), (c2, rb, "B")):
    d = (r.get("decision") or {}).get("decision", "?")
    col.markdown(f"**{name}: {r.get('experiment')}** · `{r.get('run_id')}` · {r.get('mode')} · "
                 f"config `{str(r.get('config_sha256', ''))[:12]}`")
    col.html(str(abdash.badge(str(d), (r.get("decision") or {}).get("arm") if r.get("comparisons") else None)))


def flat(d: object, prefix: str = "") -> dict[str, str]:
    """A nested config or fingerprint as dotted keys → values (lists of objects indexed)."""
    if isinstance(d, dict):
        return {k: v for key, val in d.items() for k, v in flat(val, f"{prefix}{key}.").items()}
    if isinstance(d, list) and any(isinstance(v, (dict, list)) for v in d):
        return {k: v for i, val in enumerate(d) for k, v in flat(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): str(d)}


def provenance(r: dict) -> dict:
    return {"data": r.get("source") or {}, "code_version": r.get("code_version"),
            "abplatform_version": r.get("abplatform_version"), "seed": r.get("seed"), "mode": r.get("mode")}


for what, fa, fb in (("Experiment config", flat(abdash.config(lookup[a_key])), flat(abdash.config(lookup[b_key]))),
                     ("Data and code", flat(provenance(ra)), flat(provenance(rb)))):
    keys_ab = [k for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
    if not keys_ab:
        st.caption(f"{what}: identical in both runs.")
        continue
    with st.expander(f"{what}: {len(keys_ab)} difference(s)", expanded=what == "Data and code"):
        rows = [(k, fa.get(k, "—"), fb.get(k, "—")) for k in keys_ab]
        st.html(str(abdash.html_table(["setting", "run A", "run B"], rows, key=f"diff_{what[:4].lower()}")))

ma = {m["metric"]: m for m in ra.get("metrics") or []}
mb = {m["metric"]: m for m in rb.get("metrics") or []}
names = list(dict.fromkeys([*ma, *mb]))
get = lambda d, m, k: (d.get(m) or {}).get(k)  # noqa: E731
fig = abdash.forest(names, [
    {"name": "A", "x": [get(ma, m, "rel_effect") for m in names], "lo": [get(ma, m, "rel_ci_low") for m in names],
     "hi": [get(ma, m, "rel_ci_high") for m in names], "colour": abdash.OKABE_ITO["blue"], "symbol": "circle"},
    {"name": "B", "x": [get(mb, m, "rel_effect") for m in names], "lo": [get(mb, m, "rel_ci_low") for m in names],
     "hi": [get(mb, m, "rel_ci_high") for m in names], "colour": abdash.OKABE_ITO["reddish_purple"],
     "symbol": "square"},
], "Relative lift in run A and run B")
abdash.plot(fig, "compare_forest")

shown, raw = [], []
for m in names:
    a, b = ma.get(m) or {}, mb.get(m) or {}
    ea, eb = dd.finite(a.get("rel_effect")), dd.finite(b.get("rel_effect"))
    lift_a = abdash.lift_cell(a.get("rel_effect"), a.get("rel_ci_low"), a.get("rel_ci_high")) if a else "—"
    lift_b = abdash.lift_cell(b.get("rel_effect"), b.get("rel_ci_low"), b.get("rel_ci_high")) if b else "—"
    shown.append({"metric": m, "role": a.get("role") or b.get("role"),
                  "A lift": lift_a,
                  "A verdict": abdash.verdict_cell(dd.verdict(a)) if a else "—",
                  "B lift": lift_b,
                  "B verdict": abdash.verdict_cell(dd.verdict(b)) if b else "—",
                  "B − A": "n/a" if ea is None or eb is None else f"{(eb - ea) * 100:+.2f} pp"})
    raw.append({"metric": m, **{f"a_{k}": v for k, v in a.items() if k != "metric"},
                **{f"b_{k}": v for k, v in b.items() if k != "metric"}})
abdash.show_table(pd.DataFrame(shown), raw, "comparison", "compare", colour_verdict=True,
                  num=["B − A"])
