"""End to end in a real browser: `streamlit run` on 127.0.0.1 driven by Playwright + Debian's Chromium.

Open the app, pick a run in the sidebar, open the forest-plot page, switch the daily-lift metric, wait
until plotly has drawn the traces, and save screenshots under tests/artifacts/ (gitignored); check
that the scorecard does not scroll sideways at 1280 px and that axe-core finds no serious or critical
accessibility violation on any page. Skipped, with the reason printed, where Chromium, playwright or
(for the accessibility test) axe-core is not installed.
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def server(request):
    if not os.access(CHROMIUM, os.X_OK):
        _skip(f"{CHROMIUM} not found (install Debian's chromium: apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip("the playwright package is not installed (pip install -e '.[dev]')")
    dash_results = request.getfixturevalue("dash_results")  # built only when the browser test can run
    port = _free_port()
    env = {**os.environ, dd.RESULTS_ENV: str(dash_results["root"])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"), "--server.address",
         "127.0.0.1", "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats",
         "false", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                pytest.fail(f"streamlit did not start on {url}:\n{out}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


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
        page.locator("table.ab").first.wait_for()
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
