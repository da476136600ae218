"""End to end in a real browser: `streamlit run` on 127.0.0.1 driven by Playwright + Debian's Chromium.

Open the app, pick a run in the sidebar, open the forest-plot page, switch the daily-lift metric, wait
until plotly has drawn the traces, and save screenshots under tests/artifacts/ (gitignored).
Skipped, with the reason printed, where Chromium or playwright is not installed.
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
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "dashboard_experiments.png"), full_page=True)

    # pick a run in the sidebar (the newest is selected first; choose the offline run "a")
    sidebar = page.locator("[data-testid='stSidebar']")
    _pick(page, sidebar.locator("[data-testid='stSelectbox']").first, dd.run_label(index[a["run_id"]]))
    page.get_by_text(f"run id {a['run_id']}").wait_for()

    # scorecard: the decision and the first metric's relative lift as report.json has them
    t0 = time.perf_counter()
    sidebar.get_by_role("link", name="Scorecard").click()
    page.get_by_text(f"Decision: {a['decision']['decision'].upper()}").wait_for()
    page.locator("[data-testid='stDataFrame']").first.wait_for()
    scorecard_s = time.perf_counter() - t0
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
    expected = {"Segments": 1, "Long tail & information bubble": 2, "Offline vs online": 1, "Compare two runs": 1}
    for name, n_charts in expected.items():
        sidebar.get_by_role("link", name=name).click()
        page.get_by_role("heading").filter(has_text=name.split(" &")[0].split(" two")[0]).first.wait_for()
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {n_charts}")
        page.wait_for_function(DONE_JS)
        assert page.locator(".js-plotly-plot").count() == n_charts
        page.locator("[data-testid='stDataFrame'] canvas").first.wait_for()
        slug = name.split(" ")[0].lower()
        page.screenshot(path=str(ARTIFACTS / f"dashboard_{slug}.png"), full_page=True)
    # the scorecard of this run: HOLD, its reasons verbatim, the SRM banner
    sidebar.get_by_role("link", name="Scorecard").click()
    page.get_by_text("Decision: HOLD").wait_for()
    for reason in h["decision"]["reasons"]:
        page.get_by_text(reason, exact=True).wait_for()
    page.get_by_text("Sample ratio mismatch").first.wait_for()
    page.wait_for_function(DONE_JS)
    page.wait_for_function("[...document.querySelectorAll('[data-testid=\"stDataFrame\"]')].length >= 3 && "
                           "[...document.querySelectorAll('[data-testid=\"stDataFrame\"]')].every(d => d.querySelector('canvas'))")
    page.screenshot(path=str(ARTIFACTS / "dashboard_scorecard_hold.png"), full_page=True)
