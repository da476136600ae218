"""The dashboard served on a free 127.0.0.1 port and a headless Chromium page on it — for the by-hand
scripts that drive a real browser (``measure_render.py``, ``screenshots.py``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: True once the page is complete: the script run has finished, nothing is stale, every plotly chart drew.
DONE_JS = """() => !!document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]') &&
  !document.querySelector('[data-stale="true"]') &&
  [...document.querySelectorAll('.js-plotly-plot')].every(p => p.querySelector('.trace'))"""


@contextmanager
def served_page(results: str | Path, width: int, height: int) -> Iterator[tuple[Any, str]]:
    """(Playwright page, the app's URL): ``streamlit run dashboards/app.py`` on RESULTS, Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Path(__file__).resolve().parent / "app.py"
    env = {**os.environ, "ABPLATFORM_RESULTS": str(Path(results).resolve())}
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
            try:
                yield browser.new_page(viewport={"width": width, "height": height}), url
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
