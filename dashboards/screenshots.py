"""Screenshots of every dashboard page, as docs/screenshots/ has them (run by hand).

    .venv/bin/python dashboards/screenshots.py RESULTS_DIR RUN_ID [--out docs/screenshots] [--prefix ""]
        [--pages scorecard,lifts,...] [--width 1280]

Starts ``streamlit run`` on a free 127.0.0.1 port against RESULTS_DIR, opens each page with
``?run=RUN_ID`` in headless Chromium (Playwright, /usr/bin/chromium), waits until the script run has
finished and every plotly chart has drawn, and saves the whole page (the window made as tall as the
page) as ``<prefix><page>.png``; ``--fold`` also saves what a 1280×800 window shows first.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PAGES = ["experiments", "scorecard", "lifts", "segments", "long_tail", "offline_online", "policy", "compare"]
DONE_JS = """() => !!document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]') &&
  !document.querySelector('[data-stale="true"]') &&
  [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.trace'))"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("run_id")
    ap.add_argument("--out", default="docs/screenshots")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--pages", default=",".join(PAGES))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--fold", action="store_true", help="also save the first 1280×800 of each page")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Path(__file__).resolve().parent / "app.py"
    env = {**os.environ, "ABPLATFORM_RESULTS": str(Path(args.results).resolve())}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
                             "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": args.width, "height": 800})
            for name in args.pages.split(","):
                page.set_viewport_size({"width": args.width, "height": 800})
                page.goto(f"{url}/{'' if name == 'experiments' else name}?run={args.run_id}")
                page.get_by_text(f"run id {args.run_id}").wait_for(timeout=30_000)
                page.wait_for_function(DONE_JS, timeout=30_000)
                page.wait_for_timeout(600)
                if args.fold:
                    page.screenshot(path=str(out / f"{args.prefix}{name}_1280x800.png"))
                height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
                page.set_viewport_size({"width": args.width, "height": min(int(height) + 40, 6000)})
                page.wait_for_timeout(800)
                page.wait_for_function(DONE_JS, timeout=30_000)
                page.screenshot(path=str(out / f"{args.prefix}{name}.png"))
                print(f"saved {out / (args.prefix + name)}.png")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
