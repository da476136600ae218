"""The dashboard, page by page, with streamlit's AppTest: what each page shows equals report.json,
each plotly figure has the expected traces, and switching the run or the metric changes them."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

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


def assert_metric_table(df, rows: list[dict]) -> None:
    assert list(df["metric"]) == [m["metric"] for m in rows]
    for (_, shown), m in zip(df.iterrows(), rows):
        assert shown["control"] == fmt_value(m["control_value"])
        assert shown["treatment"] == fmt_value(m["treatment_value"])
        assert shown["abs diff"] == fmt_value(m["abs_effect"])
        assert shown["rel diff"] == fmt_pct(m["rel_effect"])
        # the interval beside each p-value is the one its test inverts (relative scale, one-sided for guardrails)
        report_row = MetricResult(**{k: v for k, v in m.items() if k in MetricResult.__dataclass_fields__})
        assert shown["95% CI"] == ci_cell(report_row) and shown["p"] == fmt_p(m["p_value"])
        assert shown["95% CI (adjusted)"] == ci_cell(report_row, adjusted=True)
        assert shown["p (adjusted)"] == fmt_p(m["p_value_adjusted"])
        assert shown["H1"] == report_row.hypothesis()
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
    df = app.dataframe[0].value
    assert list(df["run id"]) == [e["run_id"] for e in index]  # newest first
    assert list(df["primary lift"]) == [fmt_pct(e["primary_rel_effect"]) for e in index]
    assert list(df["source"]) == [e["mode"] for e in index]
    assert list(df["decision"]) == [e["decision"].upper() for e in index]
    styles = str(app.dataframe[0].proto.arrow_data.styler.styles)
    colours = {"promote": dd.OKABE_ITO["bluish_green"], "hold": dd.OKABE_ITO["orange"]}
    assert all(colours[e["decision"]] in styles for e in index)  # badge colours
    assert all(d.startswith(e["created"][:10]) for d, e in zip(df["date"], index))


def test_experiments_search_and_filters(app, dash_results):
    app.text_input(key="exp_search").input("tiny_online").run()
    df = app.dataframe[0].value
    assert list(df["run id"]) == [dash_results["h"]["run_id"]]
    app.text_input(key="exp_search").input("").run()
    app.multiselect(key="exp_decision").select("hold").run()
    holds = [e["run_id"] for e in dd.read_index(dash_results["root"]) if e["decision"] == "hold"]
    assert list(app.dataframe[0].value["run id"]) == holds and dash_results["h"]["run_id"] in holds
    app.multiselect(key="exp_decision").unselect("hold").run()
    app.multiselect(key="exp_mode").select("online").run()
    assert list(app.dataframe[0].value["source"]) == ["online"]


def test_experiments_csv_download_has_raw_index_values(app, dash_results, downloads):
    app.run()
    import io

    import pandas as pd

    csv = pd.read_csv(io.BytesIO(downloads["runs.csv"]))
    index = dd.read_index(dash_results["root"])
    assert list(csv["run_id"].astype(str)) == [e["run_id"] for e in index]
    assert all(close(a, e["primary_rel_effect"]) for a, e in zip(csv["primary_rel_effect"], index))


# --- Scorecard -----------------------------------------------------------------------------------

def test_scorecard_values_equal_report(app, dash_results, downloads):
    rep = dash_results["a"]
    goto(pick_run(app, rep), "scorecard")
    main = [m for m in rep["metrics"] if m["role"] != "guardrail"]
    guards = [m for m in rep["metrics"] if m["role"] == "guardrail"]
    assert_metric_table(app.dataframe[0].value, main)
    g = app.dataframe[1].value  # guardrails apart
    assert_metric_table(g, guards)
    assert list(g["margin"]) == [f"{m['margin']:.2%}" for m in guards]
    md = [m.value for m in app.markdown]
    assert f"**Decision: {rep['decision']['decision'].upper()}**" in md
    assert not app.error and "Sample ratio check passed" in app.success[0].value
    assert fmt_p(rep["srm"]["p_value"]) in app.success[0].value
    # the CSV holds the unformatted report values
    import io

    import pandas as pd

    csv = pd.read_csv(io.BytesIO(downloads["scorecard.csv"]))
    for (_, r), m in zip(csv.iterrows(), main):
        assert r["metric"] == m["metric"] and close(r["rel_effect"], m["rel_effect"])
        assert close(r["rel_ci_low"], m["rel_ci_low"]) and close(r["p_value_adjusted"], m["p_value_adjusted"])


def test_scorecard_switching_run_shows_its_decision_reasons_and_srm_banner(app, dash_results):
    goto(pick_run(app, dash_results["a"]), "scorecard")
    before = app.dataframe[0].value
    h = dash_results["h"]
    pick_run(app, h)
    after = app.dataframe[0].value
    assert list(after["rel diff"]) != list(before["rel diff"])
    assert_metric_table(after, [m for m in h["metrics"] if m["role"] != "guardrail"])
    md = [m.value for m in app.markdown]
    assert "**Decision: HOLD**" in md
    assert "\n".join(f"- {r}" for r in HOLD_REASONS) in md  # the reasons, word for word
    assert len(app.error) == 1 and "Sample ratio mismatch" in app.error[0].value


def test_scorecard_rows_are_coloured_by_direction_of_improvement(app, dash_results):
    goto(pick_run(app, dash_results["h"]), "scorecard")
    guards = app.dataframe[1]
    assert guards.value["verdict"].iloc[0] == "▼ worse"
    styles = str(guards.proto.arrow_data.styler.styles)
    assert dd.VERDICT_COLOURS["worse"] in styles


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
        assert list(app.dataframe[0].value["rel diff"]) == [fmt_pct(d["rel_effect"]) for d in daily]
        return lift["y"]

    first = check(rep["metrics"][0]["metric"])
    app.selectbox(key="lifts_metric").set_value("buyer_conversion").run()
    assert check("buyer_conversion") != first


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

    def check(metric):
        rows = [s for s in rep["segments"] if s["metric"] == metric]
        fig = charts(app)["segments_forest"]
        dims = list(dict.fromkeys(s["segment"] for s in rows))
        assert len(fig["data"]) == len(dims)
        for tr, dim in zip(fig["data"], dims):
            for x, plus, s in zip(tr["x"], tr["error_x"]["array"], rows):
                if s["segment"] == dim:
                    assert close(x, s["rel_effect"]) and close(x + plus, s["rel_ci_high"])
                else:
                    assert x is None
        df = app.dataframe[0].value
        assert list(df["value"]) == [s["segment_value"] for s in rows]
        assert list(df["rel diff"]) == [fmt_pct(s["rel_effect"]) for s in rows]
        srm = {(s["segment"], s["segment_value"]): s for s in rep["srm_by_segment"]}
        assert list(df["SRM p"]) == [fmt_p(srm[(s["segment"], s["segment_value"])]["p_value"]) for s in rows]
        assert list(df["units control"]) == [srm[(s["segment"], s["segment_value"])]["units"]["control"] for s in rows]
        return [t["x"] for t in fig["data"]]

    first = check("item_ctr")
    assert "passed in every segment" in app.success[0].value
    app.selectbox(key="segments_metric").set_value("order_volume").run()
    assert check("order_volume") != first


def test_segments_srm_failure_is_flagged(app, dash_results):
    h = dash_results["h"]
    goto(pick_run(app, h), "segments")
    bad = next(s for s in h["srm_by_segment"] if s["failed"] and s["segment"] != "all")
    assert len(app.error) == 1 and bad["segment_value"] in app.error[0].value
    assert "FAILED" in set(app.dataframe[1].value["status"])


# --- Long tail ----------------------------------------------------------------------------------------

def test_long_tail_empty_state_when_report_has_none(app, dash_results):
    goto(pick_run(app, dash_results["legacy"]), "long_tail")
    assert not app.get("plotly_chart")
    assert "No long-tail measurements" in app.info[0].value


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
    per_arm = app.dataframe[0].value
    assert list(per_arm["measure"]) == dd.LONG_TAIL_MEASURES
    assert list(per_arm["treatment"]) == [fmt_value(LONG_TAIL["per_arm"]["treatment"][m]) for m in dd.LONG_TAIL_MEASURES]
    assert_forest(figs["long_tail_forest"]["data"][0], h["long_tail"]["metrics"])
    assert list(app.dataframe[1].value["95% CI"]) == [
        ci_cell(MetricResult(**m)) for m in h["long_tail"]["metrics"]]


def test_policy_page_shows_the_report_sections(app, dash_results):
    from tests.dashboard.fixtures import INTERLEAVING, OFFLINE_POLICY

    goto(pick_run(app, dash_results["h"]), "policy")
    estimates = app.dataframe[0].value
    (snips,) = OFFLINE_POLICY["estimates"]
    assert list(estimates["per logged row"]) == [fmt_value(snips["value"]), fmt_value(0.08889)]
    assert list(estimates["per page"])[0] == fmt_value(snips["page_value"])
    assert "on-policy" in list(estimates["estimator"])[1]
    positions = app.dataframe[1].value
    assert list(positions["position"]) == [1, 2, 3]
    assert list(positions["snips"]) == [fmt_value(v) for v in (0.12, 0.09, 0.063)]
    assert [w.value for w in app.warning] == OFFLINE_POLICY["warnings"]
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
    df = app.dataframe[0].value
    assert list(df["observed CI"]) == [fmt_ci(r["observed_rel_ci_low"], r["observed_rel_ci_high"]) for r in rows]


def test_offline_vs_online_pairs_runs_and_switches(app, dash_results):
    a, b, h = dash_results["a"], dash_results["b"], dash_results["h"]
    goto(pick_run(app, a), "offline_online")
    pred = charts(app)["offline_online"]["data"][0]["x"]
    assert all(close(x, m["rel_effect"]) for x, m in zip(pred, a["metrics"]))
    obs = charts(app)["offline_online"]["data"][1]["x"]
    assert all(close(x, m["rel_effect"]) for x, m in zip(obs, h["metrics"]))
    app.selectbox(key="ovo_offline").set_value(f"tiny/{b['run_id']}").run()
    pred_b = charts(app)["offline_online"]["data"][0]["x"]
    assert pred_b != pred and all(close(x, m["rel_effect"]) for x, m in zip(pred_b, b["metrics"]))


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
    df = app.dataframe[0].value
    assert list(df["A lift"]) == [f"{fmt_pct(m['rel_effect'])} {fmt_ci(m['rel_ci_low'], m['rel_ci_high'])}"
                                  for m in a["metrics"]]
    app.selectbox(key="cmp_b").set_value(f"tiny_online/{h['run_id']}").run()
    assert_forest(charts(app)["compare_forest"]["data"][1], h["metrics"])


# --- cross-cutting -------------------------------------------------------------------------------------

def test_every_page_renders_and_imports_nothing_a_run_names(app, dash_results):
    """Every page renders for every run without an exception; run files are data, not code. (Render
    times are measured by dashboards/measure_render.py, not asserted in a timed test.)"""
    for rep in (dash_results["a"], dash_results["h"]):
        pick_run(app, rep)
        for page in PAGES:
            goto(app, page)
            assert not app.exception, (rep["run_id"], page)
    pick_run(app, dash_results["h"])
    goto(app, "scorecard")
    assert any("dashboard_canary_module:Boom" in c.value for c in app.code)  # shown as text ...
    assert "dashboard_canary_module" not in sys.modules  # ... never imported


def test_run_can_be_opened_from_a_link(dash_results, monkeypatch):
    """?run=<run id> preselects that run (links from CI summaries)."""
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["root"]))
    b = dash_results["b"]
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["run"] = b["run_id"]
    goto(at.run(), "scorecard")
    assert app_run_id(at) == b["run_id"]
    assert list(at.dataframe[0].value["rel diff"]) == [fmt_pct(m["rel_effect"]) for m in b["metrics"]
                                                       if m["role"] != "guardrail"]


def app_run_id(at: AppTest) -> str:
    return at.session_state["run"].rsplit("/", 1)[-1]


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
    import shutil

    root = tmp_path / "results"
    shutil.copytree(dash_results["root"], root)
    index = json.loads((root / "index.json").read_text())
    gone = next(e for e in index if e["run_id"] == dash_results["b"]["run_id"])
    shutil.rmtree(root / gone["path"])
    monkeypatch.setenv(dd.RESULTS_ENV, str(root))
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.selectbox(key="run").set_value(gone["path"]).run()
    for page in PAGES:
        goto(at, page)
    at.selectbox(key="cmp_b").set_value(gone["path"]).run()
    assert not at.exception and any(gone["run_id"] in e.value for e in at.error)
    goto(at, "scorecard")
    assert any(gone["run_id"] in e.value for e in at.error)


def test_an_abn_run_shows_each_comparison_on_every_page(dash_results, monkeypatch):
    """A three-arm run: the decision names the arm; the sidebar picks the comparison every page shows."""
    monkeypatch.setenv(dd.RESULTS_ENV, str(dash_results["abn_root"]))
    rep = dash_results["abn"]
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    goto(at, "scorecard")
    decision = rep["decision"]
    title = f"**Decision: {decision['decision'].upper()}" + (f" {decision['arm']}" if decision["arm"] else "")
    assert any(m.value.startswith(title) for m in at.markdown), [m.value for m in at.markdown]
    names = [f"{c['treatment']} vs {c['control']}" for c in rep["comparisons"]]
    assert at.selectbox(key="comparison").options == names
    for name, c in zip(names, rep["comparisons"]):
        at.selectbox(key="comparison").set_value(name).run()
        assert not at.exception
        shown = at.dataframe[0].value
        assert list(shown["rel diff"]) == [fmt_pct(m["rel_effect"]) for m in c["metrics"] if m["role"] != "guardrail"]
        for page in PAGES:
            goto(at, page)
            assert not at.exception, (name, page)
        goto(at, "scorecard")
