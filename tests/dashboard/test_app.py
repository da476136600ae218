"""The dashboard, page by page, with streamlit's AppTest: what each page shows equals report.json,
each plotly figure has the expected traces, and switching the run or the metric changes them."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from abplatform import dashboard_data as dd
from abplatform.formats import fmt_ci, fmt_p, fmt_pct, fmt_value  # the report's own formats
from abplatform.report.model import MetricResult
from abplatform.report.render import ci_cell
from tests.dashboard.fixtures import HOLD_REASONS, LONG_TAIL, dash_results  # noqa: F401

pytest.importorskip("streamlit.testing.v1")
from streamlit.testing.v1 import AppTest  # noqa: E402

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
PAGES = ["experiments", "scorecard", "lifts", "segments", "long_tail", "offline_online", "policy", "compare"]

# the pages run in Streamlit's AppTest on results of two real pipeline runs (dash_results)
pytestmark = pytest.mark.slow


@pytest.fixture
def app(dash_results, monkeypatch):
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["root"]))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def pick_run(at: AppTest, rep: dict) -> AppTest:
    key = f"{rep['experiment']}/{rep['run_id']}"
    at.selectbox(key="run").set_value(key).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> dict[str, dict]:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def assert_forest(trace: dict, rows: list[dict], sfx: str = "") -> None:
    """x = rel_effect, whiskers reach rel_ci_low / rel_ci_high, one point per row."""
    assert len(trace["x"]) == len(rows)
    ex = trace["error_x"]
    for x, plus, minus, m in zip(trace["x"], ex["array"], ex["arrayminus"], rows):
        assert close(x, m["rel_effect"])
        # a one-sided interval (a guardrail's test) has one whisker: the missing bound is unbounded
        assert close(None if plus is None else x + plus, m[f"rel_ci_high{sfx}"])
        assert close(None if minus is None else x - minus, m[f"rel_ci_low{sfx}"])


class _Tables(HTMLParser):
    """The HTML tables of the page (st.html, ``<table data-key=...>``): header and cell texts; a cell's
    secondary line (``<span class="sub">``) follows a newline; group-heading rows are left out."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict] = {}
        self.key: str | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.key = a.get("data-key")
            self.tables[self.key] = {"head": [], "rows": []}
        elif tag == "tr":
            self.row, self.head = [], False
        elif tag in ("td", "th") and self.row is not None:
            self.cell, self.head = [], tag == "th"
        elif tag == "span" and self.cell is not None and "sub" in (a.get("class") or ""):
            self.cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None and self.key is not None:
            t = self.tables[self.key]
            if self.head:
                t["head"] = self.row
            elif len(self.row) == len(t["head"]):
                t["rows"].append(self.row)
            self.row = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(at: AppTest) -> dict[str, pd.DataFrame]:
    parser = _Tables()
    for h in at.html:
        parser.feed(h.value)
    return {k: pd.DataFrame(t["rows"], columns=t["head"]) for k, t in parser.tables.items()}


def table(at: AppTest, key: str) -> pd.DataFrame:
    found = tables(at)
    assert key in found, list(found)
    return found[key]


def first_line(cells) -> list[str]:
    return [c.split("\n")[0] for c in cells]


def page_text(at: AppTest) -> str:
    """What the page says, as text: markdown, captions, alerts, titles and the text of its HTML."""
    parts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "success", "info")
             for e in at.get(kind)]
    parts += [html.unescape(re.sub(r"<[^>]+>", " ", h.value)) for h in at.html]
    return re.sub(r"[ \t]+", " ", "\n".join(parts))


def assert_scorecard(df: pd.DataFrame, rows: list[dict], adjusted: bool = True) -> None:
    """The scorecard table equals the report: primaries, secondaries, then guardrails; values in their unit;
    the lift, the interval of the row's test and the p-value the decision reads, in the report's formats."""
    order = {"primary": 0, "secondary": 1, "guardrail": 2}
    rows = sorted(rows, key=lambda m: order[m["role"]])
    assert first_line(df["metric"]) == [m["metric"] for m in rows]
    ci_col, p_col = ("95% CI (adjusted)", "p (adjusted)") if adjusted else ("95% CI", "p")
    for (_, shown), m in zip(df.iterrows(), rows):
        kind, unit = dd.metric_unit(m["metric"], m["type"])
        assert shown.iloc[1] == dd.fmt_metric_value(m["control_value"], kind)
        assert shown.iloc[2] == dd.fmt_metric_value(m["treatment_value"], kind)
        assert shown["lift"] == fmt_pct(m["rel_effect"])
        assert shown[ci_col] == ci_cell(MetricResult(**{k: v for k, v in m.items()
                                                       if k in MetricResult.__dataclass_fields__}), adjusted=adjusted)
        assert shown[p_col] == fmt_p(m["p_value_adjusted" if adjusted else "p_value"])
        assert unit in shown["metric"]
        if m["role"] != "guardrail":
            assert shown["verdict"] == dd.VERDICT_MARKS[dd.verdict(m)]


@pytest.fixture
def downloads(monkeypatch):
    """Capture what each download button would serve (file name -> bytes)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    got: dict[str, bytes] = {}
    orig = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):
        if filename:
            got[filename] = path_or_data
        return orig(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return got


# --- Experiments ---------------------------------------------------------------------------------

def test_experiments_lists_every_run_with_badge_date_source_and_lift(app, dash_results):
    index = dd.read_index(dash_results["root"])
    df = table(app, "runs")
    assert [r[1:] for r in df["run id"]] == [e["run_id"][-8:] for e in index]  # newest first, the id's tail
    assert list(df["primary lift"]) == [fmt_pct(e["primary_rel_effect"]) for e in index]
    assert list(df["source"]) == [e["mode"] for e in index]
    # the decision by symbol and word, not by colour alone
    assert list(df["decision"]) == [("✔ " if e["decision"] == "promote" else "■ ") + e["decision"].upper()
                                    for e in index]
    assert all(d.startswith(e["created"][:10]) for d, e in zip(df["date"], index))
    assert "search-quality" in set(df["owner"])  # the owner from each run's config
    body = next(h.value for h in app.html if 'data-key="runs"' in h.value)
    for e in index:  # each row opens its run
        assert f'href="scorecard?run={e["run_id"]}"' in body


def test_experiments_search_and_filters(app, dash_results):
    app.text_input(key="exp_search").input("tiny_online").run()
    df = table(app, "runs")
    assert list(df["run id"]) == ["…" + dash_results["h"]["run_id"][-8:]]
    app.text_input(key="exp_search").input("").run()
    app.multiselect(key="exp_decision").select("hold").run()
    holds = [e["run_id"][-8:] for e in dd.read_index(dash_results["root"]) if e["decision"] == "hold"]
    assert [r[1:] for r in table(app, "runs")["run id"]] == holds
    app.multiselect(key="exp_decision").unselect("hold").run()
    app.multiselect(key="exp_mode").select("online").run()
    assert list(table(app, "runs")["source"]) == ["online"]


def test_experiments_csv_download_has_raw_index_values(app, dash_results, downloads):
    app.run()
    import io

    csv = pd.read_csv(io.BytesIO(downloads["runs.csv"]))
    index = dd.read_index(dash_results["root"])
    assert list(csv["run_id"].astype(str)) == [e["run_id"] for e in index]
    assert all(close(a, e["primary_rel_effect"]) for a, e in zip(csv["primary_rel_effect"], index))


# --- the verdict card, on every page -------------------------------------------------------------

def report_of(rep: dict):
    from abplatform.report.model import Report

    return Report.from_dict(rep)


def test_promote_verdict_card_has_the_checklist_in_the_reports_formats(app, dash_results):
    """A promote says why: every primary (lift, CI, significant), each guardrail (lift vs margin, test, p),
    SRM, the latency ratio against its margin with its CI, sequential validity, warnings."""
    rep = dash_results["a"]
    goto(pick_run(app, rep), "scorecard")
    text = page_text(app)
    r = report_of(rep)
    assert "Decision: PROMOTE" in text and "Every blocking check passed" in text
    for m in r.metrics:
        if m.role == "primary":
            line = dd.metric_detail(r, m)
            assert f"Primary {m.metric} — significant improvement — {line}" in text
            assert f"{fmt_pct(m.rel_effect)}, 95% CI (holm-adjusted) {ci_cell(m, adjusted=True)}" in line
        if m.role == "guardrail":
            assert f"Guardrail {m.metric} — within the margin — {fmt_pct(m.rel_effect)}" in text
            assert f"margin {fmt_pct(-m.margin)}, harm test ({m.test}), H1 {m.hypothesis()}" in text
    srm = rep["srm"]
    assert f"Sample ratio — the split matches the design — users control {srm['units']['control']:,}" in text
    lat = rep["latency_guardrail"]
    assert (f"Serving cost (latency) — below the limit — treatment / control CPU time per query ×{lat['ratio']:.3f} "
            f"95% CI [{lat['ratio_ci_low']:.3f}, {lat['ratio_ci_high']:.3f}] vs limit ×{1 + lat['margin']:.2f} "
            f"(margin {lat['margin']:.0%})") in text
    assert "Sequential validity — sequential (confidence_sequence)" in text  # TINY_YAML is sequential
    assert "✔ pass" in text and not app.error


def test_hold_verdict_card_names_every_failed_check_on_every_page(app, dash_results):
    h = dash_results["h"]
    pick_run(app, h)
    for page in PAGES[1:-1]:  # every "Selected run" page
        goto(app, page)
        text = page_text(app)
        assert "Decision: HOLD" in text, page
        failed = sum(not c["passed"] and c["blocking"] for c in h["decision"]["checks"])
        assert f"{failed} blocking checks failed" in text
        for reason in HOLD_REASONS:  # the reasons, word for word
            assert reason in text
        assert "✖ fails Guardrail relevance" in text and "✖ fails Sample ratio" in text
        # the health banner: the SRM failure overall and in its segment, on every page
        errors = " ".join(e.value for e in app.error)
        bad = next(s for s in h["srm_by_segment"] if s["failed"] and s["segment"] != "all")
        assert "Sample ratio mismatch" in errors and f"{bad['segment']} = {bad['segment_value']}" in errors, page


def test_srm_banner_reaches_the_pages_about_all_runs(app, dash_results):
    pick_run(app, dash_results["h"])
    for page in ("experiments", "compare"):
        goto(app, page)
        assert any("Sample ratio mismatch" in e.value for e in app.error), page


RUN_PAGES = ["scorecard", "lifts", "segments", "long_tail", "offline_online", "policy"]


def test_health_details_exposures_balance_and_fingerprint_on_every_run_page(app, dash_results):
    """Folded on every run page: each day's new units per arm with its sample-ratio test, the pre-period
    balance of every metric, and the data fingerprint — the report's numbers in the page's text."""
    a = dash_results["a"]
    pick_run(app, a)
    for page in RUN_PAGES:
        goto(app, page)
        text = page_text(app)
        assert "Health checks passed" in text and "per day" in text and "pre-period balance" in text, page
        days = table(app, "exposures")
        assert list(days["day"]) == [d["day"] for d in a["srm_by_day"]]
        for (_, shown), d in zip(days.iterrows(), a["srm_by_day"]):
            total = sum(d["units"].values())
            assert shown["new control"] == f"{d['units']['control']:,} ({d['units']['control'] / total:.1%})"
            assert shown["p (Holm, days)"] == fmt_p(d["p_value_adjusted"]) and shown["sample ratio"] == "✔ ok"
        bal = table(app, "balance")
        assert list(bal["metric"]) == [b["metric"] for b in a["balance"]]
        for (_, shown), b in zip(bal.iterrows(), a["balance"]):
            assert shown["control"] == fmt_value(b["control_pre_value"])
            assert shown["treatment"] == fmt_value(b["treatment_pre_value"])
            assert shown["p"] == fmt_p(b["p_value"]) and shown["Holm p"] == fmt_p(b["p_value_adjusted"])
            assert shown["balance"] == "✔ balanced"
        fp = dict(table(app, "fingerprint").values.tolist())
        src = a["source"]
        assert fp["data hash (blake2b)"] == src["hash"] and fp["code version (package source and SQL)"] == a["code_version"]
        assert fp["abplatform version"] == a["abplatform_version"] and fp["config sha256"] == a["config_sha256"]
        assert fp["date range (sessions)"] == f"{src['first_session']} → {src['last_session']}"
        for tbl, n in src["rows"].items():
            assert fp[f"rows: {tbl}"] == f"{n:,}"
        assert src["path"] not in text and fp["data folder"] == Path(src["path"]).name  # no server path


def _broken_health(report: dict) -> dict:
    """The report with one day off the split and a pre-period imbalance in its first metric."""
    rep = json.loads(json.dumps(report))
    day = rep["srm_by_day"][2]
    day.update(units={"control": 900, "treatment": 450}, p_value=1e-30, p_value_adjusted=5e-30, failed=True)
    b = rep["balance"][0]
    b.update(p_value=1e-9, p_value_adjusted=4e-9, failed=True)
    return rep


def test_a_day_off_the_split_and_a_pre_period_imbalance_are_banners_on_every_page(dash_results, tmp_path,
                                                                                   monkeypatch):
    root = copied_results(dash_results, tmp_path, monkeypatch)
    b = dash_results["b"]
    (root / "tiny" / b["run_id"] / "report.json").write_text(json.dumps(_broken_health(b)))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = b["run_id"]
    at.run()
    day, metric = b["srm_by_day"][2]["day"], b["balance"][0]["metric"]
    for page in RUN_PAGES:
        goto(at, page)
        errors = "\n".join(e.value for e in at.error)
        assert f"Exposures per day off the split** on {day} (control 900, treatment 450, Holm p < 0.0001)" in errors
        assert f"Pre-period imbalance** — {metric}: control" in errors and "Holm p < 0.0001" in errors, page
        assert "Health checks passed" not in page_text(at)
        assert table(at, "exposures")["sample ratio"].tolist()[2] == "✖ off the split"
        assert table(at, "balance")["balance"].tolist()[0] == "✖ imbalanced"
    for page in ("experiments", "compare"):  # the pages about every run name it too
        goto(at, page)
        assert any("Pre-period imbalance" in e.value for e in at.error), page


def test_a_report_from_before_the_health_checks_shows_daily_units_untested(dash_results, tmp_path, monkeypatch):
    root = copied_results(dash_results, tmp_path, monkeypatch)
    b = {k: v for k, v in json.loads(json.dumps(dash_results["b"])).items() if k not in ("balance", "srm_by_day")}
    (root / "tiny" / b["run_id"] / "report.json").write_text(json.dumps(b))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = b["run_id"]
    goto(at.run(), "scorecard")
    text = page_text(at)
    assert "Pre-period balance not evaluated" in text and "Exposures per day: not evaluated" in text
    days = table(at, "exposures")
    first = sorted((d for d in b["daily"] if d["metric"] == b["metrics"][0]["metric"]), key=lambda d: d["day"])
    assert list(days["day"]) == [d["day"] for d in first]
    assert days["new control"].iloc[0].startswith(f"{first[0]['n_control']:,} (")
    assert set(days["p"]) == {"n/a"} and "balance" not in tables(at)


def test_run_labels_fit_the_sidebar_and_keep_date_and_run_id():
    entry = {"decision": "promote", "created": "2026-12-07T02:13:10+00:00", "run_id": "20261207T021310123456Z"}
    short = dd.run_label({**entry, "experiment": "tiny"})
    assert short == "PROMOTE · tiny · 12-07 · …23456Z"
    names = ["onesearch_semantic_reranker_v2_vs_lexical_baseline_2026_holiday",
             "onesearch_semantic_reranker_v2_vs_lexical_baseline_2026_spring", "x" * 200]
    for arm in ("v2", "semantic_reranker_with_a_long_name"):
        labels = [dd.run_label({**entry, "experiment": n, "arm": arm}) for n in names]
        for lab in labels:
            assert dd.text_em(lab) <= dd.LABEL_EM, lab
            assert lab.startswith(f"PROMOTE {arm[:2]}") and lab.endswith(" · 12-07 · …23456Z"), lab
            assert "…" in lab.split(" · ")[1]  # cut in the middle: both ends of the name stay
    labels = [dd.run_label({**entry, "experiment": n, "arm": "v2"}) for n in names]
    assert labels[0] != labels[1]  # names that differ at their end stay apart
    name = labels[0].split(" · ")[1]
    assert name.startswith("ones") and name.endswith("liday") and len(name) >= 12
    assert dd.abbreviate("abcdefghij", 5) == "ab…ij" and dd.abbreviate("abc", 5) == "abc"
    demo = dd.run_label({**entry, "experiment": "onesearch_v2_vs_v1"})
    assert demo == "PROMOTE · onesearch_v2_vs_v1 · 12-07 · …23456Z"  # a usual name stays whole
    wide = dd.run_label({**entry, "experiment": "WWW_MMM_WWW_MMM_WWW_MMM"})
    assert dd.text_em(wide) <= dd.LABEL_EM and wide.endswith("…23456Z")


# --- Scorecard -----------------------------------------------------------------------------------

def test_scorecard_values_equal_report_and_report_md(app, dash_results, downloads):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "scorecard")
    df = table(app, "scorecard")
    assert_scorecard(df, rep["metrics"])
    # the same strings as the run's report.md (the adjusted interval and p, the lift)
    md = (Path(dash_results["root"]) / "tiny" / rep["run_id"] / "report.md").read_text()
    for _, row in df.iterrows():
        assert row["lift"] in md and row["95% CI (adjusted)"] in md
    text = page_text(app)
    for value in df["lift"]:
        assert value in text  # every number is in the page's text (no canvas)
    guard = df.iloc[first_line(df["metric"]).index("relevance")]
    assert guard["verdict"] == "✔ within margin"
    # the CSV holds the unformatted report values
    import io

    csv = pd.read_csv(io.BytesIO(downloads["scorecard.csv"]))
    for (_, r), m in zip(csv.iterrows(), rep["metrics"]):
        assert r["metric"] == m["metric"] and close(r["rel_effect"], m["rel_effect"])
        low = None if pd.isna(r["rel_ci_low"]) else r["rel_ci_low"]  # a one-sided guardrail interval
        assert close(low, m["rel_ci_low"]) and close(r["p_value_adjusted"], m["p_value_adjusted"])
    assert any(b.label == "Download report.md" for b in app.get("download_button"))


def test_scorecard_units_power_cuped_and_n_behind_the_toggle(app, dash_results):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "scorecard")
    df = table(app, "scorecard")
    ctr = next(m for m in rep["metrics"] if m["metric"] == "item_ctr")
    assert f"{ctr['control_value']:.2%}" in list(df["control"])  # a rate in %
    assert any("orders per user" in c for c in df["metric"]) and any("0–3" in c for c in df["metric"])
    assert "scorecard_details_power" not in tables(app)
    app.toggle(key="scorecard_details").set_value(True).run()
    power = table(app, "scorecard_details_power")
    assert list(power["n control"]) == [f"{m['n_control']:,}" for m in rep["metrics"]]
    assert list(power["CUPED variance reduction"]) == [f"{m['variance_reduction']:.2%}" for m in rep["metrics"]]
    assert list(power["MDE (80% power)"]) == [fmt_pct(m["mde_rel"]).lstrip("+") for m in rep["metrics"]]
    unadj = table(app, "scorecard_details_unadjusted")
    assert list(unadj["95% CI"]) == [ci_cell(MetricResult(**m)) for m in rep["metrics"]]
    assert list(unadj["p"]) == [fmt_p(m["p_value"]) for m in rep["metrics"]]


def test_scorecard_latency_line_as_report_md_and_in_microseconds(app, dash_results):
    from abplatform.report.model import LatencyGuardrail
    from abplatform.report.render import latency_details

    rep = dash_results["a"]
    goto(pick_run(app, rep), "scorecard")
    lat = rep["latency_guardrail"]
    text = page_text(app)
    assert latency_details(LatencyGuardrail(**lat), "95% CI") in text
    df = table(app, "latency")
    assert list(df["CPU time per query"]) == [dd.fmt_duration_ms(v) for v in lat["cpu_ms_per_query"].values()]
    assert all(v.endswith(" µs") for v in df["CPU time per query"])  # 0.0009 ms is 0.9 µs


def test_scorecard_switching_run_shows_its_decision(app, dash_results):
    goto(pick_run(app, dash_results["a"]), "scorecard")
    before = table(app, "scorecard")
    h = dash_results["h"]
    pick_run(app, h)
    after = table(app, "scorecard")
    assert list(after["lift"]) != list(before["lift"])
    assert_scorecard(after, h["metrics"])
    guard = after.iloc[first_line(after["metric"]).index("relevance")]
    assert guard["verdict"] == "✖ margin not shown"


# --- Forest plot & daily lift ----------------------------------------------------------------------

def test_forest_plot_traces_match_report_and_adjusted_toggle(app, dash_results):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "lifts")
    forest = charts(app)["forest"]
    assert [t["name"] for t in forest["data"]] == ["treatment vs control"]
    assert [t for t in forest["layout"]["yaxis"]["ticktext"]] == [m["metric"] for m in rep["metrics"]]
    assert_forest(forest["data"][0], rep["metrics"])
    app.toggle(key="lifts_adjusted").set_value(True).run()
    assert_forest(charts(app)["forest"]["data"][0], rep["metrics"], sfx="_adjusted")


def test_daily_lift_traces_and_switching_metric(app, dash_results):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "lifts")

    def check(metric):
        daily = sorted((d for d in rep["daily"] if d["metric"] == metric), key=lambda d: d["day"])
        fig = charts(app)["daily"]
        names = [t["name"] for t in fig["data"]]
        assert names[0] == "upper bound" and "confidence sequence" in names[1] and names[2] == "cumulative lift"
        hi, lo, lift = fig["data"]
        assert hi["x"] == [d["day"] for d in daily] and lo["fill"] == "tonexty"
        assert all(close(a, d["rel_effect"]) for a, d in zip(lift["y"], daily))
        assert all(close(a, d["rel_ci_low"]) for a, d in zip(lo["y"], daily))
        assert all(close(a, d["rel_ci_high"]) for a, d in zip(hi["y"], daily))
        df = table(app, f"daily_{metric}")
        assert list(df["rel diff"]) == [fmt_pct(d["rel_effect"]) for d in daily]
        assert list(df["band (95% CI)"]) == [fmt_ci(d["rel_ci_low"], d["rel_ci_high"]) for d in daily]
        return lift["y"]

    first = check(rep["metrics"][0]["metric"])
    app.selectbox(key="lifts_metric").set_value("buyer_conversion").run()
    assert check("buyer_conversion") != first
    assert app.query_params["metric"] == "buyer_conversion"  # the chosen metric is in the URL


def test_sequential_daily_verdicts_agree_with_their_band(app, dash_results):
    """A day is ▲ better only when its band (a confidence sequence: TINY_YAML is sequential) lies above zero."""
    rep = dash_results["a"]
    goto(pick_run(app, rep), "lifts")
    for metric in [m["metric"] for m in rep["metrics"]]:
        app.selectbox(key="lifts_metric").set_value(metric).run()
        daily = sorted((d for d in rep["daily"] if d["metric"] == metric), key=lambda d: d["day"])
        for verdict, d in zip(table(app, f"daily_{metric}")["verdict"], daily):
            lo, hi = d["rel_ci_low"], d["rel_ci_high"]
            if verdict.startswith("▲"):
                assert lo is not None and lo > 0, (metric, d["day"])
            elif verdict.startswith("▼"):
                assert hi is not None and hi < 0, (metric, d["day"])
            else:
                assert (lo is None or lo <= 0) and (hi is None or hi >= 0), (metric, d["day"])


def test_forest_changes_with_run(app, dash_results):
    goto(pick_run(app, dash_results["a"]), "lifts")
    xa = charts(app)["forest"]["data"][0]["x"]
    pick_run(app, dash_results["b"])
    xb = charts(app)["forest"]["data"][0]["x"]
    assert xa != xb
    assert_forest(charts(app)["forest"]["data"][0], dash_results["b"]["metrics"])


# --- Segments ---------------------------------------------------------------------------------------

def test_segments_lift_per_segment_with_srm(app, dash_results):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "segments")
    srm = {(s["segment"], s["segment_value"]): s for s in rep["srm_by_segment"]}

    def natural(s):
        dims = [d for d in dd.SEGMENT_ORDER if any(x["segment"] == d for x in rep["segments"])]
        return dims.index(s["segment"]), dd.segment_sort_key(s["segment"], s["segment_value"])

    def check(metric):
        rows = sorted((s for s in rep["segments"] if s["metric"] == metric), key=natural)
        fig = charts(app)["segments_forest"]
        dims = list(dict.fromkeys(s["segment"] for s in rows))
        assert len(fig["data"]) == len(dims)
        for tr, dim in zip(fig["data"], dims):
            for x, plus, s in zip(tr["x"], tr["error_x"]["array"], rows):
                if s["segment"] == dim:
                    assert close(x, s["rel_effect"]) and close(x + plus, s["rel_ci_high"])
                else:
                    assert x is None
        df = table(app, f"segments_{metric}")
        assert list(df["value"]) == [s["segment_value"] for s in rows]
        assert list(df["rel diff"]) == [fmt_pct(s["rel_effect"]) for s in rows]
        units = [srm[(s["segment"], s["segment_value"])]["units"] for s in rows]
        assert list(df["units control / treatment"]) == [f"{u['control']:,} / {u['treatment']:,}" for u in units]
        return [t["x"] for t in fig["data"]]

    first = check("item_ctr")
    assert "Health checks passed" in app.success[0].value
    app.selectbox(key="segments_metric").set_value("order_volume").run()
    assert check("order_volume") != first


def test_segments_heatmap_every_metric_in_natural_order(app, dash_results):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "segments")
    heat = table(app, "segments_heatmap")
    names = [m["metric"] for m in rep["metrics"]]
    assert list(heat.columns[2:]) == names
    values = list(heat["value"])
    assert values.index("head") < values.index("torso") < values.index("tail")  # head → torso → tail
    assert values[:3] == ["head", "torso", "tail"]
    by = {(s["segment_value"], s["metric"]): s for s in rep["segments"]}
    for _, row in heat.iterrows():
        for m in names:
            s = by[(row["value"], m)]
            mark = dd.VERDICT_MARKS[dd.verdict(s)].split()[0]
            assert row[m] == f"{mark} {fmt_pct(s['rel_effect'])}\n{ci_cell(dd.as_result(s), adjusted=True)}"


def test_degenerate_segment_is_not_estimable(dash_results, tmp_path, monkeypatch):
    root = copied_results(dash_results, tmp_path, monkeypatch)
    a = dash_results["a"]
    path = root / "tiny" / a["run_id"] / "report.json"
    rep = json.loads(path.read_text())
    cell = next(s for s in rep["segments"] if s["metric"] == "buyer_conversion" and s["segment_value"] == "tail")
    cell.update(rel_effect=0.0, rel_ci_low=0.0, rel_ci_high=0.0, rel_ci_low_adjusted=0.0, rel_ci_high_adjusted=0.0,
                control_value=0.0, treatment_value=0.0, improved=False, degraded=False)
    path.write_text(json.dumps(rep))
    assert not dd.estimable(cell)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = a["run_id"]
    goto(at.run(), "segments")
    heat = table(at, "segments_heatmap")
    assert heat.loc[heat["value"] == "tail", "buyer_conversion"].iloc[0] == "not estimable"
    assert "+0.00% [+0.00%, +0.00%]" not in page_text(at)


def test_segments_heterogeneity_table_has_the_reports_numbers(app, dash_results):
    """Cochran's Q per metric × segment, beside the heatmap: Q, df, p, Holm p and the verdict as report.md
    words them, one group per segment (query frequency first, metrics in the scorecard's order) headed by
    how much its values share units; every number in the page's text."""
    from abplatform.report.render import fmt_q, heterogeneity_verdict

    rep = dash_results["a"]
    goto(pick_run(app, rep), "segments")
    shown = table(app, "segments_heterogeneity")
    names = [m["metric"] for m in rep["metrics"]]
    dims = [d for d in dd.SEGMENT_ORDER if any(s["segment"] == d for s in rep["segments"])]
    assert len(dims) == 3
    het = sorted(rep["heterogeneity"], key=lambda h: (dims.index(h["segment"]), names.index(h["metric"])))
    assert len(het) == len(shown) == len(names) * len(dims)
    assert list(shown["metric"]) == [h["metric"] for h in het]
    for (_, row), h in zip(shown.iterrows(), het, strict=True):
        typed = dd.as_heterogeneity(h)
        assert row["Q"] == fmt_q(h["q"]) and row["Holm p"] == fmt_p(h["p_value_adjusted"])
        assert row["p"] == fmt_p(h["p_value"]) and row["df"] == (str(h["df"]) if h["q"] is not None else "—")
        assert row["verdict"] == heterogeneity_verdict(typed)
        assert (row["verdict"] == "effect differs across values") == (h["p_value_adjusted"] is not None
                                                                      and h["p_value_adjusted"] < rep["alpha"])
    text = page_text(app)
    assert "Cochran's Q" in text and "Holm" in text
    assert all(fmt_q(h["q"]) in text for h in het)
    shared = next(h for h in het if h["segment"] == "query_segment")["values_per_unit"]
    assert shared > 1 and f"query frequency (units in {shared:.2f} values on average: conservative)" in text
    assert "new vs returning (" not in text  # a user is new or returning: the values share no unit


def test_segments_drill_down_shows_one_values_cumulative_lift(app, dash_results):
    """Pick a metric and a segment value: its cumulative lift by day with its band, the overall lift dotted,
    the numbers in a table; the last day is the segment table's lift; another value draws other numbers."""
    rep = dash_results["a"]
    goto(pick_run(app, rep), "segments")
    app.selectbox(key="segments_metric").set_value("buyer_conversion").run()
    assert "query frequency: tail" in app.selectbox(key="segments_value").options

    def check(value):
        app.selectbox(key="segments_value").set_value(f"query frequency: {value}").run()
        assert not app.exception
        series = next(s for s in rep["daily_segments"]
                      if (s["metric"], s["segment"], s["segment_value"]) == ("buyer_conversion", "query_segment", value))
        fig = charts(app)["segments_daily"]
        names = [t["name"] for t in fig["data"]]
        assert names[0] == "upper bound" and "confidence sequence" in names[1]  # TINY_YAML is sequential
        assert names[2:] == ["cumulative lift", "overall (every unit)"]
        hi, lo, lift, overall = fig["data"]
        assert lift["x"] == series["days"] and lo["fill"] == "tonexty"
        assert all(close(a, b) for a, b in zip(lift["y"], series["rel_effect"], strict=True))
        assert all(close(a, b) for a, b in zip(lo["y"], series["rel_ci_low"], strict=True))
        assert all(close(a, b) for a, b in zip(hi["y"], series["rel_ci_high"], strict=True))
        daily = {d["day"]: d["rel_effect"] for d in rep["daily"] if d["metric"] == "buyer_conversion"}
        assert all(close(a, daily[d]) for a, d in zip(overall["y"], series["days"], strict=True))
        df = table(app, "segments_daily_buyer_conversion")
        assert list(df["day"]) == series["days"]
        assert list(df["rel diff"]) == [fmt_pct(v) for v in series["rel_effect"]]
        assert list(df["band (95% CI)"]) == [fmt_ci(a, b) for a, b in zip(series["rel_ci_low"], series["rel_ci_high"],
                                                                          strict=True)]
        assert list(df["units control / treatment"]) == [f"{a:,} / {b:,}" for a, b in
                                                         zip(series["n_control"], series["n_treatment"], strict=True)]
        cell = next(s for s in rep["segments"] if (s["metric"], s["segment"], s["segment_value"])
                    == ("buyer_conversion", "query_segment", value))
        assert df["rel diff"].iloc[-1] == fmt_pct(cell["rel_effect"])  # cumulative: the last day is the whole period
        assert fmt_pct(series["rel_effect"][-1]) in page_text(app)
        return lift["y"]

    assert check("tail") != check("head")


def test_segments_page_of_a_report_without_heterogeneity_or_daily_segments(dash_results, tmp_path, monkeypatch):
    """A report.json written before the heterogeneity and daily segment sections still reads, and says so."""
    from abplatform.report.model import Report

    root = copied_results(dash_results, tmp_path, monkeypatch)
    a = dash_results["a"]
    path = root / "tiny" / a["run_id"] / "report.json"
    rep = json.loads(path.read_text())
    for k in ("heterogeneity", "daily_segments"):
        rep.pop(k)
    for s in rep["segments"] + rep["metrics"] + rep["daily"]:
        s.pop("abs_se")
    path.write_text(json.dumps(rep))
    assert Report.from_dict(rep).heterogeneity == []
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = a["run_id"]
    goto(at.run(), "segments")
    text = page_text(at)
    assert "has no heterogeneity tests" in text and "has no daily looks of" in text
    assert "segments_heatmap" in tables(at) and "segments_heterogeneity" not in tables(at)


def test_segments_srm_failure_is_flagged(app, dash_results):
    h = dash_results["h"]
    goto(pick_run(app, h), "segments")
    bad = next(s for s in h["srm_by_segment"] if s["failed"] and s["segment"] != "all")
    assert any(bad["segment_value"] in e.value for e in app.error)
    assert "✖ FAILED" in set(table(app, "srm_by_segment")["status"])


# --- Long tail ----------------------------------------------------------------------------------------

def test_long_tail_empty_state_when_report_has_none(app, dash_results):
    goto(pick_run(app, dash_results["legacy"]), "long_tail")
    assert not app.get("plotly_chart")
    info = app.info[0].value
    assert "No long-tail measurements" in info and "did not yet measure" in info  # an offline run of an old version


def test_long_tail_of_an_online_run_without_catalog_says_why(dash_results, tmp_path, monkeypatch):
    """An online run without the section lacks an item catalog: not "an older version"."""
    root = copied_results(dash_results, tmp_path, monkeypatch)
    h = dash_results["h"]
    path = root / "tiny_online" / h["run_id"] / "report.json"
    rep = json.loads(path.read_text())
    rep["long_tail"] = None
    path.write_text(json.dumps(rep))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = h["run_id"]
    goto(at.run(), "long_tail")
    info = at.info[0].value
    assert "item catalog" in info and "did not yet measure" not in info


def test_long_tail_panel(app, dash_results):
    h = dash_results["h"]
    goto(pick_run(app, h), "long_tail")
    figs = charts(app)
    bars = figs["long_tail_arms"]["data"]
    assert {t["name"] for t in bars} == {"control", "treatment"}
    assert len(bars) == 2 * len(dd.LONG_TAIL_MEASURES)
    for t in bars:
        assert t["marker"]["color"] == dd.ARM_COLOURS[t["name"]]  # arm colours throughout
    by = {(t["name"], t["xaxis"]): t["y"][0] for t in bars}
    for i, meas in enumerate(dd.LONG_TAIL_MEASURES):
        ax = "x" if i == 0 else f"x{i + 1}"
        for arm in ("control", "treatment"):
            assert close(by[(arm, ax)], LONG_TAIL["per_arm"][arm][meas])
    per_arm = table(app, "long_tail_per_arm")
    assert list(per_arm["measure"]) == dd.LONG_TAIL_MEASURES
    assert list(per_arm["treatment"]) == [fmt_value(LONG_TAIL["per_arm"]["treatment"][m]) for m in dd.LONG_TAIL_MEASURES]
    assert_forest(figs["long_tail_forest"]["data"][0], h["long_tail"]["metrics"])
    assert list(table(app, "long_tail_metrics")["95% CI"]) == [
        ci_cell(MetricResult(**m)) for m in h["long_tail"]["metrics"]]


def test_policy_page_shows_the_report_sections(app, dash_results):
    from tests.dashboard.fixtures import INTERLEAVING, OFFLINE_POLICY

    goto(pick_run(app, dash_results["h"]), "policy")
    estimates = table(app, "ope_estimates")
    (snips,) = OFFLINE_POLICY["estimates"]
    assert list(estimates["per logged row"]) == [fmt_value(snips["value"]), fmt_value(0.08889)]
    assert list(estimates["per page"])[0] == fmt_value(snips["page_value"])
    assert "on-policy" in list(estimates["estimator"])[1]
    positions = table(app, "ope_positions")
    assert list(positions["position"]) == ["1", "2", "3"]
    assert list(positions["snips"]) == [fmt_value(v) for v in (0.12, 0.09, 0.063)]
    assert [w.value for w in app.warning][-len(OFFLINE_POLICY["warnings"]):] == OFFLINE_POLICY["warnings"]
    text = " ".join(m.value for m in app.markdown)
    assert f"wins treatment {INTERLEAVING['wins_treatment']:,}" in text and "4.1× fewer" in text


def test_policy_page_empty_state(app, dash_results):
    goto(pick_run(app, dash_results["legacy"]), "policy")
    assert "No off-policy estimate or interleaving" in app.info[0].value


def test_long_tail_panel_of_a_real_run_when_the_pipeline_writes_one(app, dash_results):
    a = dash_results["a"]
    if not a.get("long_tail"):
        pytest.skip("this checkout's pipeline does not write report['long_tail'] yet")
    goto(pick_run(app, a), "long_tail")
    per_arm = a["long_tail"]["per_arm"]
    bars = charts(app)["long_tail_arms"]["data"]
    for t in bars:
        meas = charts(app)["long_tail_arms"]["layout"]["annotations"][int((t["xaxis"][1:] or "1")) - 1]["text"]
        assert close(t["y"][0], per_arm[t["name"]][meas])
    if a["long_tail"].get("metrics"):
        assert_forest(charts(app)["long_tail_forest"]["data"][0], a["long_tail"]["metrics"])


# --- Offline vs online --------------------------------------------------------------------------------

def test_offline_vs_online_from_report_section(app, dash_results):
    h = dash_results["h"]
    goto(pick_run(app, h), "offline_online")
    fig = charts(app)["offline_online"]
    pred, obs = fig["data"]
    assert pred["name"] == "offline prediction" and obs["name"] == "online result"
    rows = h["offline_vs_online"]
    assert all(close(a, r["predicted_rel_effect"]) for a, r in zip(pred["x"], rows))
    assert all(close(a, r["observed_rel_effect"]) for a, r in zip(obs["x"], rows))
    df = table(app, "offline_vs_online")
    assert list(df["observed CI"]) == [fmt_ci(r["observed_rel_ci_low"], r["observed_rel_ci_high"]) for r in rows]
    assert "compare_to" in page_text(app)  # tiny_online ↔ tiny, paired through compare_to


def test_offline_vs_online_pairs_by_compare_to(app, dash_results):
    """Offline run a (experiment tiny) is paired with the online run whose config says compare_to: tiny."""
    a, b, h = dash_results["a"], dash_results["b"], dash_results["h"]
    goto(pick_run(app, a), "offline_online")
    assert app.selectbox(key="ovo_other").value == f"tiny_online/{h['run_id']}"
    assert not app.warning  # paired as the pipeline pairs: nothing to warn about
    pred = charts(app)["offline_online"]["data"][0]["x"]
    assert all(close(x, m["rel_effect"]) for x, m in zip(pred, a["metrics"]))
    obs = charts(app)["offline_online"]["data"][1]["x"]
    assert all(close(x, m["rel_effect"]) for x, m in zip(obs, h["metrics"]))
    goto(pick_run(app, b), "offline_online")
    pred_b = charts(app)["offline_online"]["data"][0]["x"]
    assert pred_b != pred and all(close(x, m["rel_effect"]) for x, m in zip(pred_b, b["metrics"]))


def test_offline_vs_online_never_pairs_an_unrelated_run_silently(app, dash_results):
    legacy, h = dash_results["legacy"], dash_results["h"]
    goto(pick_run(app, legacy), "offline_online")
    assert any("No online run is paired with this run" in w.value for w in app.warning)
    assert not app.get("plotly_chart") and app.selectbox(key="ovo_other").value is None
    app.selectbox(key="ovo_other").set_value(f"tiny_online/{h['run_id']}").run()
    assert any("different experiments" in w.value for w in app.warning)
    assert charts(app)["offline_online"]


def test_offline_vs_online_and_compare_empty_states(dash_results, monkeypatch):
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["only_a"]))
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    goto(at, "offline_online")
    assert "Nothing to compare yet" in at.info[0].value and not at.get("plotly_chart")
    goto(at, "compare")
    assert "at least two runs" in at.info[0].value


# --- Compare two runs ----------------------------------------------------------------------------------

def test_compare_two_runs(app, dash_results):
    a, b, h = dash_results["a"], dash_results["b"], dash_results["h"]
    goto(pick_run(app, a), "compare")
    app.selectbox(key="cmp_b").set_value(f"tiny/{b['run_id']}").run()
    ta, tb = charts(app)["compare_forest"]["data"]
    assert (ta["name"], tb["name"]) == ("A", "B")
    assert_forest(ta, a["metrics"])
    assert_forest(tb, b["metrics"])
    df = table(app, "compare")
    assert list(df["A lift"]) == [f"{fmt_pct(m['rel_effect'])} {fmt_ci(m['rel_ci_low'], m['rel_ci_high'])}"
                                  for m in a["metrics"]]
    app.selectbox(key="cmp_b").set_value(f"tiny_online/{h['run_id']}").run()
    assert_forest(charts(app)["compare_forest"]["data"][1], h["metrics"])
    assert any("Run B" in e.value and "Sample ratio mismatch" in e.value for e in app.error)


# --- cross-cutting -------------------------------------------------------------------------------------

def test_every_page_renders_and_imports_nothing_a_run_names(app, dash_results):
    """Every page renders for every run without an exception; run files are data, not code. (Render
    times are measured by dashboards/measure_render.py, not asserted in a timed test.)"""
    for rep in (dash_results["a"], dash_results["h"], dash_results["legacy"]):
        pick_run(app, rep)
        for page in PAGES:
            goto(app, page)
            assert not app.exception, (rep["run_id"], page)
    pick_run(app, dash_results["h"])
    goto(app, "scorecard")
    assert any("dashboard_canary_module:Boom" in c.value for c in app.code)  # shown as text ...
    assert "dashboard_canary_module" not in sys.modules  # ... never imported


def test_run_can_be_opened_from_a_link_and_the_link_follows_the_sidebar(dash_results, monkeypatch):
    """?run=<run id> opens that run (links from CI summaries); picking another run rewrites ?run=, so a copied
    link opens the run on screen; the chosen metric travels in ?metric=."""
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["root"]))
    a, b = dash_results["a"], dash_results["b"]
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = b["run_id"]
    goto(at.run(), "scorecard")
    assert app_run_id(at) == b["run_id"] and at.query_params["run"] == b["run_id"]
    assert_scorecard(table(at, "scorecard"), b["metrics"])
    pick_run(at, a)
    assert at.query_params["run"] == a["run_id"]
    goto(at, "lifts")
    at.selectbox(key="lifts_metric").set_value("order_volume").run()
    link = dict(at.query_params)
    assert link == {"run": a["run_id"], "metric": "order_volume"}
    # the copied link, in a new session
    again = AppTest.from_file(str(APP), default_timeout=30)
    again.query_params.update(link)
    again.run()
    goto(again, "lifts")
    assert app_run_id(again) == a["run_id"] and again.selectbox(key="lifts_metric").value == "order_volume"
    goto(again, "segments")
    assert again.selectbox(key="segments_metric").value == "order_volume"


def copied_results(dash_results: dict, tmp_path: Path, monkeypatch) -> Path:
    """A private copy of the tests' results folder (safe to break), the one the app reads."""
    root = tmp_path / "results"
    shutil.copytree(dash_results["root"], root)
    monkeypatch.setenv(dd.RESULTS_ENV, str(root))
    return root


def app_run_id(at: AppTest) -> str:
    return at.session_state["run"].rsplit("/", 1)[-1]


def test_an_unknown_run_id_says_so_and_opens_no_other_run(dash_results, monkeypatch):
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["root"]))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = "20990101T000000000000Z"
    at.run()
    for page in PAGES[1:-1]:
        goto(at, page)
        assert any("No run `20990101T000000000000Z`" in e.value for e in at.error), page
        assert "Decision:" not in page_text(at) and not at.get("plotly_chart"), page
    assert at.selectbox(key="run").value is None
    pick_run(at, dash_results["a"])
    goto(at, "scorecard")
    assert not at.error and at.query_params["run"] == dash_results["a"]["run_id"]


def test_run_integrity_index_and_folder_disagree(dash_results, tmp_path, monkeypatch):
    root = copied_results(dash_results, tmp_path, monkeypatch)
    index = json.loads((root / "index.json").read_text())
    entry = next(e for e in index if e["run_id"] == dash_results["b"]["run_id"])
    entry["run_id"] = "20260101T000000000000Z"
    (root / "index.json").write_text(json.dumps(index))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = "20260101T000000000000Z"
    at.run()
    for page in PAGES[1:-1]:
        goto(at, page)
        assert any("Run integrity" in e.value and dash_results["b"]["run_id"] in e.value for e in at.error), page


def test_incomplete_run_folder_is_a_warning(app, dash_results):
    goto(pick_run(app, dash_results["legacy"]), "scorecard")
    assert any("Incomplete run folder" in w.value and "report.md" in w.value for w in app.warning)


def test_loader_refuses_paths_outside_results_and_reads_newest_first(tmp_path, dash_results):
    with pytest.raises(ValueError, match="outside the results folder"):
        dd.run_dir(tmp_path, "../../etc")
    assert dd.read_index(tmp_path) == []
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        dd.read_index(tmp_path)
    runs = dd.read_index(dash_results["root"])
    assert [r["created"] for r in runs] == sorted((r["created"] for r in runs), reverse=True)


def test_broken_index_is_an_error_message_not_a_crash(tmp_path, monkeypatch):
    (tmp_path / "index.json").write_text("[oops")
    monkeypatch.setenv(dd.RESULTS_ENV, str(tmp_path))
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception
    assert any("not valid JSON" in e.value for e in at.error)


def test_dashboard_formats_without_the_stats_stack():
    """The loader formats numbers (abplatform.formats) without importing scipy / statsmodels / duckdb."""
    import subprocess
    import sys

    code = ("import sys, abplatform.dashboard_data as d; "
            "print(d.fmt_pct(0.1182884447), d.fmt_p(3e-5), d.fmt_ci(-0.0345, 0.2), d.fmt_value(float('nan'))); "
            "print(sorted(m for m in ('scipy', 'statsmodels', 'duckdb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["+11.83% <0.0001 [-3.45%, +20.00%] n/a", "[]"]


def test_a_run_folder_that_vanished_is_an_error_message(dash_results, tmp_path, monkeypatch):
    root = copied_results(dash_results, tmp_path, monkeypatch)
    index = json.loads((root / "index.json").read_text())
    gone = next(e for e in index if e["run_id"] == dash_results["b"]["run_id"])
    shutil.rmtree(root / gone["path"])
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.selectbox(key="run").set_value(gone["path"]).run()
    for page in PAGES:
        goto(at, page)
    at.selectbox(key="cmp_b").set_value(gone["path"]).run()
    assert not at.exception and any(gone["run_id"] in e.value for e in at.error)
    goto(at, "scorecard")
    errors = [e.value for e in at.error]
    assert any(gone["run_id"] in e and "moved or deleted" in e for e in errors)
    assert not any("Errno" in e or str(root) in e for e in errors)  # plain words, no server paths


def test_an_abn_run_shows_each_comparison_on_every_page(dash_results, monkeypatch):
    """A three-arm run: the verdict names the arm; the checklist has every comparison; the sidebar picks the
    comparison every page shows."""
    from abplatform.report.render import decision_title

    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["abn_root"]))
    rep = dash_results["abn"]
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    goto(at, "scorecard")
    title = decision_title(report_of(rep))
    assert title == f"{rep['decision']['decision'].upper()} {rep['decision']['arm']}"
    text = page_text(at)
    assert f"Decision: {title}" in text
    explanation = rep["decision"]["explanation"]
    assert explanation[0].upper() + explanation[1:] in text
    for c in rep["comparisons"]:
        beats = "beats" if c["decision"]["decision"] == "promote" else "does not beat"
        assert f"{c['treatment']} vs {c['control']}: {c['treatment']} {beats} {c['control']}" in text
        lat = c["latency_guardrail"]
        assert f"×{lat['ratio']:.3f}" in text
    names = [f"{c['treatment']} vs {c['control']}" for c in rep["comparisons"]]
    assert at.selectbox(key="comparison").options == names
    for name, c in zip(names, rep["comparisons"]):
        at.selectbox(key="comparison").set_value(name).run()
        assert not at.exception
        shown = table(at, "scorecard")
        assert_scorecard(shown, c["metrics"])
        assert list(shown.columns[1:3]) == [c["control"], c["treatment"]]  # arms by name
        for page in PAGES:
            goto(at, page)
            assert not at.exception, (name, page)
        goto(at, "scorecard")


def test_theme_hides_deploy_and_is_not_streamlit_red():
    import tomllib

    cfg = tomllib.loads((APP.parent / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["toolbarMode"] == "viewer"
    assert cfg["theme"]["primaryColor"].upper() not in ("#FF4B4B", "RED")
    assert cfg["client"]["showErrorDetails"] in ("type", "none")


def test_number_formats_in_units():
    assert dd.fmt_duration_ms(0.0071) == "7.1 µs"
    assert dd.fmt_duration_ms(12.5) == "12.5 ms"
    assert dd.fmt_metric_value(0.1265, "pct") == "12.65%" and dd.fmt_metric_diff(0.0221, "pct") == "+2.21 pp"
    assert dd.fmt_metric_value(1.846, "count") == "1.846"
