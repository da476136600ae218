"""End to end in a real browser: `streamlit run` on 127.0.0.1 (one server per results folder) driven by
Playwright + Debian's Chromium.

Every page of a promote run (offline, sequential), a hold run (online, sample ratio failed), a three-arm run
and a broken results folder, with what an analyst must see: the verdict card's checklist and latency line,
the health banners and details, the data fingerprint, report.json's numbers in the page's text, the ?run=
link kept, the sidebar's run label drawn whole, plain-words errors without traceback or server path. Also:
pick a run in the sidebar, switch the daily-lift metric and wait until plotly has drawn the traces, no
sideways scroll of the scorecard at 1280 px, axe-core on every page; screenshots under tests/artifacts/
(gitignored). Skipped, with the reason printed, where Chromium, playwright or (for the accessibility test)
axe-core is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from abplatform import dashboard_data as dd
from tests.dashboard.fixtures import dash_results  # noqa: F401

CHROMIUM = os.environ.get("ABPLATFORM_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # tests/artifacts (git-ignored)
#: axe-core's browser bundle; .ci/run installs it with npm into tests/artifacts/axe
AXE = Path(os.environ.get("ABPLATFORM_AXE", ARTIFACTS / "axe" / "node_modules" / "axe-core" / "axe.min.js"))

pytestmark = pytest.mark.slow  # a Streamlit server and a headless browser


def _skip(reason: str) -> None:
    print(f"SKIP dashboard browser test: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LONG_NAME = "onesearch_semantic_reranker_v2_vs_lexical_baseline_2026_holiday"


def _start(root: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, dd.RESULTS_ENV: str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"), "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats",
         "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _wait_up(proc: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.fail(f"streamlit did not start on {url}:\n{out}")
        time.sleep(0.2)


def _broken_root(base: Path, dash_results: dict) -> Path:
    """A copy of the results folder with a run whose report.json is gone (the folder deleted after the index
    listed it) and one whose report.json is not a report (cut short); the test breaks its index.json later."""
    root = base / "broken_results"
    shutil.copytree(dash_results["root"], root)
    index = {e["run_id"]: e for e in json.loads((root / "index.json").read_text())}
    shutil.rmtree(root / index[dash_results["b"]["run_id"]]["path"])
    cut = root / index[dash_results["h"]["run_id"]]["path"] / "report.json"
    cut.write_text(cut.read_text()[:5000])
    # the newest run: a long experiment and arm name (the sidebar's label must still show date and run id)
    a = json.loads(json.dumps(dash_results["a"]))
    a.update(experiment=LONG_NAME, run_id="20991231T235959000000Z", created="2099-12-31T23:59:59+00:00")
    (root / LONG_NAME / a["run_id"]).mkdir(parents=True)
    shutil.copy(root / index[dash_results["a"]["run_id"]]["path"] / "config.json", root / LONG_NAME / a["run_id"])
    (root / LONG_NAME / a["run_id"] / "report.json").write_text(json.dumps(a))
    entries = [{**index[dash_results["a"]["run_id"]], "experiment": LONG_NAME, "run_id": a["run_id"],
                "created": a["created"], "arm": "semantic_reranker_with_a_long_name",
                "path": f"{LONG_NAME}/{a['run_id']}"}, *index.values()]
    (root / "index.json").write_text(json.dumps(entries))
    return root


@pytest.fixture(scope="module")
def servers(request, tmp_path_factory):
    """One `streamlit run` per results folder — "main" (the promote, hold/SRM-failed/online and legacy runs),
    "abn" (the three-arm run), "broken" (a copy with a run folder gone and a report cut short) — started
    together once per module, each only when the browser test can run."""
    if not os.access(CHROMIUM, os.X_OK):
        _skip(f"{CHROMIUM} not found (install Debian's chromium: apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip("the playwright package is not installed (pip install -e '.[dev]')")
    dash_results = request.getfixturevalue("dash_results")  # built only when the browser test can run
    roots = {"main": Path(dash_results["root"]), "abn": Path(dash_results["abn_root"]),
             "broken": _broken_root(tmp_path_factory.mktemp("browser"), dash_results)}
    procs = {name: _start(root) for name, root in roots.items()}
    try:
        for proc, url in procs.values():
            _wait_up(proc, url)
        yield {name: url for name, (_, url) in procs.items()} | {f"{name}_root": str(r) for name, r in roots.items()}
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def server(servers):
    return servers["main"]


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        except Exception as e:  # a chromium that cannot start here (missing libraries, ...)
            _skip(f"chromium could not start: {str(e).splitlines()[0]}")
        ctx = browser.new_context(viewport={"width": 1400, "height": 1500})
        pg = ctx.new_page()
        pg.set_default_timeout(20_000)
        yield pg
        browser.close()


def _pick(page, container, option_text: str) -> None:
    """Open a streamlit selectbox and click the option with this text."""
    container.get_by_role("combobox").click()
    page.get_by_role("option", name=option_text, exact=True).click()


def _traces(page, chart_index: int) -> int:
    return page.locator(".js-plotly-plot").nth(chart_index).locator(".trace").count()


def test_browser_pick_run_switch_metric_and_screenshot(server, page, dash_results):
    ARTIFACTS.mkdir(exist_ok=True)
    a = dash_results["a"]
    index = {e["run_id"]: e for e in dd.read_index(dash_results["root"])}

    page.goto(server)
    page.get_by_role("heading", name="Experiments").wait_for()
    page.locator("table.ab").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "dashboard_experiments.png"), full_page=True)

    # pick a run in the sidebar (the newest is selected first; choose the offline run "a")
    sidebar = page.locator("[data-testid='stSidebar']")
    _pick(page, sidebar.locator("[data-testid='stSelectbox']").first, dd.run_label(index[a["run_id"]]))
    page.get_by_text(f"run id {a['run_id']}").wait_for()

    # scorecard: the decision and the first metric's relative lift as report.json has them, in the page's text
    t0 = time.perf_counter()
    sidebar.get_by_role("link", name="Scorecard").click()
    page.get_by_text(f"Decision: {a['decision']['decision'].upper()}").first.wait_for()
    page.locator("table.ab[data-key='scorecard']").wait_for()
    scorecard_s = time.perf_counter() - t0
    from abplatform.formats import fmt_pct

    assert fmt_pct(a["metrics"][0]["rel_effect"]) in page.locator("[data-testid='stMain']").inner_text()
    assert f"run={a['run_id']}" in page.url  # the address names the run on screen
    page.screenshot(path=str(ARTIFACTS / "dashboard_scorecard.png"), full_page=True)

    # forest plot + daily lift; wait until plotly has drawn the traces
    t0 = time.perf_counter()
    sidebar.get_by_role("link", name="Forest plot & daily lift").click()
    page.locator(".js-plotly-plot").nth(1).locator(".trace").first.wait_for()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2 && "
                           "[...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.trace'))")
    lifts_s = time.perf_counter() - t0
    first_metric = a["metrics"][0]["metric"]
    assert f"Cumulative relative lift of {first_metric}" in page.locator(".js-plotly-plot").nth(1).inner_text()
    assert _traces(page, 0) == 1  # forest: one trace (one point per metric)
    assert _traces(page, 1) == 3  # daily: upper bound, band, cumulative lift

    # switch the daily-lift metric and wait for the redrawn chart
    main = page.locator("[data-testid='stMain']")
    _pick(page, main.locator("[data-testid='stSelectbox']").first, "buyer_conversion")
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot .gtitle')].some(t => t.textContent.includes('buyer_conversion'))")
    chart = page.locator(".js-plotly-plot").nth(1)
    chart.locator(".trace").first.wait_for()
    assert _traces(page, 1) == 3
    # the drawn points are the report's daily rows for that metric
    ys = page.evaluate("() => { const g = document.querySelectorAll('.js-plotly-plot')[1];"
                       " return g.data.find(t => t.name === 'cumulative lift').y; }")
    daily = sorted((d for d in a["daily"] if d["metric"] == "buyer_conversion"), key=lambda d: d["day"])
    assert [round(y, 12) for y in ys] == [round(d["rel_effect"], 12) for d in daily]
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dashboard_lifts.png"), full_page=True)

    timings = {"scorecard_s": round(scorecard_s, 3), "forest_and_daily_s": round(lifts_s, 3)}
    (ARTIFACTS / "dashboard_browser_timings.json").write_text(json.dumps(timings, indent=1))
    print(f"browser render times: {timings}")


DONE_JS = """() => !!document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]') &&
  !document.querySelector('[data-stale="true"]') &&
  [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.trace'))"""


def test_browser_every_page_draws_for_a_run_with_all_sections(server, page, dash_results):
    """The hand-made online run has long_tail and offline_vs_online: every page draws its charts."""
    ARTIFACTS.mkdir(exist_ok=True)
    h = dash_results["h"]
    index = {e["run_id"]: e for e in dd.read_index(dash_results["root"])}
    page.goto(server)
    sidebar = page.locator("[data-testid='stSidebar']")
    _pick(page, sidebar.locator("[data-testid='stSelectbox']").first, dd.run_label(index[h["run_id"]]))
    page.get_by_text(f"run id {h['run_id']}").wait_for()
    # Segments: the forest plot and a segment value's daily drill-down
    expected = {"Segments": 2, "Long tail & information bubble": 2, "Offline vs online": 1, "Compare two runs": 1}
    for name, n_charts in expected.items():
        sidebar.get_by_role("link", name=name).click()
        page.get_by_role("heading").filter(has_text=name.split(" &")[0].split(" two")[0]).first.wait_for()
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {n_charts}")
        page.wait_for_function(DONE_JS)
        assert page.locator(".js-plotly-plot").count() == n_charts
        page.locator("table.ab:visible").first.wait_for()  # the folded health tables come first
        slug = name.split(" ")[0].lower()
        page.screenshot(path=str(ARTIFACTS / f"dashboard_{slug}.png"), full_page=True)
    # the scorecard of this run: HOLD, its reasons verbatim, the SRM banner
    sidebar.get_by_role("link", name="Scorecard").click()
    page.get_by_text("Decision: HOLD").first.wait_for()
    for reason in h["decision"]["reasons"]:
        page.get_by_text(reason).first.wait_for()
    page.get_by_text("Sample ratio mismatch").first.wait_for()
    page.wait_for_function(DONE_JS)
    page.locator("table.ab[data-key='scorecard']").wait_for()
    page.screenshot(path=str(ARTIFACTS / "dashboard_scorecard_hold.png"), full_page=True)


def _open(page, server, path: str, run_id: str) -> None:
    page.goto(f"{server}/{path}?run={run_id}")
    page.get_by_text(f"run id {run_id}").wait_for()
    page.wait_for_function(DONE_JS)


def test_browser_scorecard_fits_1280_px_without_sideways_scroll(server, page, dash_results):
    """At 1280×800 nothing on the scorecard scrolls sideways, and the guardrail's verdict is above the fold."""
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        for rep in (dash_results["a"], dash_results["h"]):
            _open(page, server, "scorecard", rep["run_id"])
            page.locator("table.ab[data-key='scorecard']").wait_for()
            widths = page.evaluate("""() => ({doc: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
              main: [...document.querySelectorAll('[data-testid="stMain"], [data-testid="stMainBlockContainer"]')]
                      .map(e => e.scrollWidth - e.clientWidth),
              tables: [...document.querySelectorAll('.ab-wrap')].map(e => e.scrollWidth - e.clientWidth)})""")
            assert widths["doc"][0] <= widths["doc"][1], widths
            assert all(w <= 0 for w in widths["main"] + widths["tables"]), widths
            line = page.locator("ul.ab-checks li").filter(has_text="Guardrail relevance").first
            box = line.bounding_box()
            assert box is not None and box["y"] + box["height"] <= 800, box
    finally:
        page.set_viewport_size({"width": 1400, "height": 1500})


def test_browser_accessibility_axe_core_no_serious_violations(server, page, dash_results):
    """axe-core (WCAG 2 A/AA rules) on every page of a promote, a hold and an A/B/n-free run: no violation of
    impact serious or critical (contrast, lists, names, ...)."""
    if not AXE.is_file():
        _skip(f"axe-core not found at {AXE} (npm install --prefix tests/artifacts/axe axe-core; .ci/run does)")
    page.set_viewport_size({"width": 1280, "height": 800})
    found = {}
    try:
        for rep in (dash_results["a"], dash_results["h"]):
            for path in ("", "scorecard", "lifts", "segments", "long_tail", "offline_online", "policy", "compare"):
                _open(page, server, path, rep["run_id"])
                page.add_script_tag(path=str(AXE))
                violations = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']}))
                  .violations.filter(v => ['serious', 'critical'].includes(v.impact))
                  .map(v => v.id + ': ' + v.help + ' — ' + v.nodes.slice(0, 3).map(n => n.html.slice(0, 120)).join(' | '))""")
                if violations:
                    found[f"{path or 'experiments'} ({rep['experiment']})"] = violations
    finally:
        page.set_viewport_size({"width": 1400, "height": 1500})
    assert not found, json.dumps(found, indent=1, ensure_ascii=False)


RUN_PAGES = ["scorecard", "lifts", "segments", "long_tail", "offline_online", "policy"]
RUN_PICKER = "[data-testid='stSidebar'] input[role='combobox']"
LABEL_FITS_JS = """(picker) => { const i = document.querySelector(picker);
  const cs = getComputedStyle(i); const c = document.createElement('canvas').getContext('2d'); c.font = cs.font;
  return {value: i.value, text: c.measureText(i.value).width,
          room: i.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)}; }"""


def _label_fit(page) -> dict:
    """The run picker's label: its value, its width in the input's font and the room the input gives it. The
    sidebar can land after the main script run, so wait for the picker first."""
    page.locator(RUN_PICKER).first.wait_for(state="attached")
    return page.evaluate(LABEL_FITS_JS, RUN_PICKER)


def _visit(page, url: str, path: str, run_id: str | None) -> tuple[str, str]:
    """Open a page (of a run, by its ?run= link); (all of its text, folded parts included; the visible text).
    No exception box, no traceback, and the address still names the run."""
    page.goto(f"{url}/{path}" + (f"?run={run_id}" if run_id else ""))
    if run_id:
        page.get_by_text(f"run id {run_id}").wait_for()
    page.wait_for_function(DONE_JS)
    if run_id and path in RUN_PAGES and not page.locator("[data-testid='stAlert']").filter(
            has_text="Cannot show run").count():
        # the verdict card and the folded health sections (st.html and expanders can land after the script run)
        page.locator("section.ab-card").wait_for(state="attached")
        page.locator("table.ab[data-key='fingerprint']").wait_for(state="attached")
        page.wait_for_function(DONE_JS)
    main = page.locator("[data-testid='stMain']")
    text, visible = main.text_content() or "", main.inner_text()
    assert page.locator("[data-testid='stException']").count() == 0, (path, visible[:2000])
    assert "Traceback" not in text
    if run_id:
        assert f"run={run_id}" in page.url, (path, page.url)  # the ?run= link round trip
    return text, visible


def _assert_run_page(text: str, visible: str, rep: dict, path: str) -> None:
    """What an analyst must see on every page of a run: the verdict and its checklist (folded but in the page
    off the scorecard) with every primary, guardrail and the latency line in the report's formats, the
    health banners, the health details and the data fingerprint."""
    from abplatform.report.model import Report
    from abplatform.report.render import decision_title

    typed = Report.from_dict(rep)
    assert f"Decision: {decision_title(typed)}" in visible, path
    for line in dd.checklist(typed):
        assert line.label in text and line.detail in text, (path, line)
        if path == "scorecard":  # open there
            assert line.label in visible, (path, line)
    assert "Serving cost (latency)" in text
    if typed.srm.failed:
        assert "Sample ratio mismatch" in visible, path
    else:
        assert "Health checks passed" in visible, path
    assert "Exposures per arm per day" in text and typed.source.hash in text and typed.code_version in text
    day = typed.srm_by_day[0]
    assert all(f"{n:,} (" in text for n in day.units.values()), path


def test_browser_every_page_of_a_promote_sequential_and_a_hold_srm_failed_online_run(server, page, dash_results):
    """Every page in the browser for the promote run (offline, sequential: confidence sequence) and the hold run
    (online, sample ratio failed overall and in a segment): the checklist, the latency line, the banners, the
    numbers of report.json in the page's text and the ?run= link kept on every page."""
    from abplatform.formats import fmt_pct

    page.set_viewport_size({"width": 1280, "height": 900})
    try:
        for key in ("a", "h"):
            rep = dash_results[key]
            for path in ["", *RUN_PAGES, "compare"]:
                text, visible = _visit(page, server, path, rep["run_id"])
                if path in RUN_PAGES:
                    _assert_run_page(text, visible, rep, path)
                    assert rep["mode"] in visible  # offline / online in the run's caption
                if path == "scorecard":
                    for m in rep["metrics"]:
                        assert fmt_pct(m["rel_effect"]) in visible, m["metric"]
                    assert "As report.md has it:" in visible
                if path == "lifts" and key == "a":  # sequential: the daily band is a confidence sequence
                    assert "confidence sequence" in visible
                if path == "" and key == "h":
                    assert "Sample ratio mismatch" in visible  # the pages about all runs name it too
            fit = _label_fit(page)
            assert fit["value"] == dd.run_label(next(e for e in dd.read_index(dash_results["root"])
                                                     if e["run_id"] == rep["run_id"]))
            assert fit["text"] <= fit["room"], fit  # the sidebar's label is not cut
    finally:
        page.set_viewport_size({"width": 1400, "height": 1500})


def test_browser_every_page_of_a_k_arm_run(servers, page, dash_results):
    """The three-arm run: the verdict names the arm, the checklist has every comparison with its latency line,
    the sidebar picks the comparison every page shows, and the scorecard fits 1280 px."""
    from playwright.sync_api import expect

    from abplatform.report.model import Report
    from abplatform.report.render import decision_title

    url, rep = servers["abn"], dash_results["abn"]
    typed = Report.from_dict(rep)
    page.set_viewport_size({"width": 1280, "height": 800})
    try:
        for path in ["", *RUN_PAGES, "compare"]:
            text, visible = _visit(page, url, path, rep["run_id"])
            if path not in RUN_PAGES:
                continue
            _assert_run_page(text, visible, rep, path)
            assert f"Decision: {decision_title(typed)}" in visible
            for c in typed.comparison_list():
                beats = "beats" if c.decision.promote else "does not beat"
                assert f"{c.name}: {c.treatment} {beats} {c.control}" in text, path
            if path == "scorecard":
                widths = page.evaluate("""() => [['page', document.documentElement.scrollWidth
                  - document.documentElement.clientWidth], ...[...document.querySelectorAll('.ab-wrap')].map(e =>
                  [e.querySelector('table').dataset.key, e.scrollWidth - e.clientWidth])]""")
                assert all(w <= 0 for _, w in widths), widths
        # every comparison in turn: the scorecard's arms follow the sidebar
        _visit(page, url, "scorecard", rep["run_id"])
        sidebar = page.locator("[data-testid='stSidebar']")
        for c in typed.comparison_list()[1:]:
            _pick(page, sidebar.locator("[data-testid='stSelectbox']").nth(1), c.name)
            page.get_by_text(f"This page shows {c.name}").wait_for()
            page.wait_for_function(DONE_JS)
            head = page.locator("table.ab[data-key='scorecard'] thead th")
            expect(head.nth(1)).to_have_text(c.control)  # the arms by name follow the comparison
            expect(head.nth(2)).to_have_text(c.treatment)
        page.screenshot(path=str(ARTIFACTS / "dashboard_abn_scorecard.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": 1400, "height": 1500})


def test_browser_broken_results_folder_says_what_is_wrong_in_plain_words(servers, page, dash_results):
    """A run folder deleted after the index listed it, a report.json cut short and then an index.json that is
    not JSON: every page says so in plain words — no traceback, no exception box, no server path — and a
    long experiment name's label still shows its date and run id in the sidebar."""
    url, root = servers["broken"], Path(servers["broken_root"])
    gone, cut = dash_results["b"]["run_id"], dash_results["h"]["run_id"]
    for path in ["", *RUN_PAGES]:
        text, visible = _visit(page, url, path, gone)
        if path:
            assert f"Cannot show run {gone}" in visible and "moved or deleted" in visible, path
        assert str(root) not in text and "/tmp" not in text and "Errno" not in text, path
    for path in RUN_PAGES[:2]:
        text, visible = _visit(page, url, path, cut)
        assert f"Cannot show run {cut}" in visible and "not a report this version can read" in visible, path
        assert str(root) not in text and "/tmp" not in text
    # the newest run has a long name: its label is shortened in the middle and fits the picker
    _visit(page, url, "scorecard", None)
    fit = _label_fit(page)
    assert fit["text"] <= fit["room"], fit
    assert fit["value"].endswith(" · 12-31 · …00000Z") and "…" in fit["value"].split(" · ")[1], fit
    # the index itself broken: the pages say so, and no run is shown
    (root / "index.json").write_text("[{oops")
    for path in ("", "scorecard"):
        text, visible = _visit(page, url, path, None)
        assert "Cannot read the run index" in visible and "not valid JSON" in visible, path
        assert str(root) not in text and "/tmp" not in text, path
