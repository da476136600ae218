"""Measure how long each dashboard page takes to render in a real browser (run by hand).

    .venv/bin/python dashboards/measure_render.py [RESULTS_DIR] [--passes 3]

Starts ``streamlit run`` on a free 127.0.0.1 port against RESULTS_DIR (default ``results``), opens
it in headless Chromium (Playwright, /usr/bin/chromium), and for each page clicks its sidebar link
and times until the page is complete: its title is shown, the script run has finished (stApp's
data-test-script-state), no element is stale and every plotly chart has drawn its traces. Pass 1 includes
loading plotly.js into the browser; later passes are what an analyst sees when moving between pages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from browser import DONE_JS, served_page

PAGES = ["Scorecard", "Forest plot & daily lift", "Segments", "Long tail & information bubble",
         "Offline vs online", "Off-policy & interleaving", "Compare two runs", "Experiments"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="?", default="results")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    with served_page(args.results, 1400, 1000) as (page, url):
        t0 = time.perf_counter()
        page.goto(url)
        page.get_by_role("heading", name="Experiments").wait_for()
        page.wait_for_function(DONE_JS)
        print(f"first load (Experiments): {time.perf_counter() - t0:.3f} s")
        times: dict[str, list[float]] = {p: [] for p in PAGES}
        side = page.locator("[data-testid='stSidebar']")
        for _ in range(args.passes):
            for name in PAGES:
                t0 = time.perf_counter()
                side.get_by_role("link", name=name).click()
                page.wait_for_url(lambda u: True)
                page.get_by_role("heading").filter(has_text=name.split(" &")[0].split(" two")[0]).first.wait_for()
                th = time.perf_counter() - t0
                page.wait_for_function(DONE_JS, polling=20)
                times[name].append(time.perf_counter() - t0)
                if os.environ.get("MEASURE_VERBOSE"):
                    print(f"  {name}: title after {th:.3f} s, complete after {times[name][-1]:.3f} s")
    print(f"{'page':34s} {'pass 1':>8s} {'median later':>13s} {'max later':>10s}")
    for name, ts in times.items():
        later = ts[1:] or ts
        print(f"{name:34s} {ts[0]:8.3f} {statistics.median(later):13.3f} {max(later):10.3f}")


if __name__ == "__main__":
    main()
