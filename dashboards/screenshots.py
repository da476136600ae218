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
from pathlib import Path

from browser import DONE_JS, served_page

PAGES = ["experiments", "scorecard", "lifts", "segments", "long_tail", "offline_online", "policy", "compare"]


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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with served_page(args.results, args.width, 800) as (page, url):
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


if __name__ == "__main__":
    main()
