"""What the dashboard reads: the run index and the run folders' ``report.json`` — nothing else.

Pure functions without Streamlit (the app wraps them in ``st.cache_data``, keyed by run id; a run
folder is immutable, so a run id names its content for good). The loader only *parses JSON*: it
never imports or executes anything a run names (a ranker's dotted path in ``experiment.yaml`` is
data to show, not code to load), and it refuses index entries whose path leaves the results folder.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from abplatform.formats import fmt_ci, fmt_p, fmt_pct, fmt_value  # noqa: F401 (the pages use them)
from abplatform.report.model import Report

RESULTS_ENV = "ABPLATFORM_RESULTS"
INDEX = "index.json"

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {"orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
             "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
             "grey": "#999999"}
#: Arm colours, the same on every page: control blue, treatment orange.
ARM_COLOURS = {"control": OKABE_ITO["blue"], "treatment": OKABE_ITO["orange"]}
#: Verdict colours: better (in the metric's direction) bluish green, worse vermillion, no change grey.
VERDICT_COLOURS = {"better": OKABE_ITO["bluish_green"], "worse": OKABE_ITO["vermillion"],
                   "no change": OKABE_ITO["grey"]}
VERDICT_MARKS = {"better": "▲ better", "worse": "▼ worse", "no change": "● no change"}

LONG_TAIL_MEASURES = ["tail_impression_share", "tail_click_share", "coverage", "exposure_gini",
                      "category_entropy", "novelty"]


def results_root(default: str | Path = "results") -> Path:
    return Path(os.environ.get(RESULTS_ENV) or default)


def index_mtime(root: str | Path) -> int:
    """Modification time of the index (ns), 0 when there is none: the cache key of ``read_index``."""
    try:
        return (Path(root) / INDEX).stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def read_index(root: str | Path) -> list[dict[str, Any]]:
    """Run summaries, newest first. A missing index is an empty list; a broken one raises ValueError."""
    path = Path(root) / INDEX
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of run summaries")
    runs = [e for e in entries if isinstance(e, dict) and e.get("run_id") and e.get("path")]
    return sorted(runs, key=lambda e: (str(e.get("created", "")), str(e["run_id"])), reverse=True)


def run_dir(root: str | Path, rel_path: str) -> Path:
    """The run folder of an index entry; refuses a path that leaves the results folder."""
    base = Path(root).resolve()
    d = (base / rel_path).resolve()
    if d != base and base not in d.parents:
        raise ValueError(f"run path {rel_path!r} is outside the results folder {base}")
    return d


def read_report(root: str | Path, rel_path: str) -> dict[str, Any]:
    """The run's report.json, read into the typed :class:`~abplatform.report.model.Report` (so the pages
    show what the gate reads) and handed to the pages as plain data; ``ValueError`` when it is not a
    report this version can read."""
    return Report.from_json((run_dir(root, rel_path) / "report.json").read_text()).to_dict()


def read_experiment_yaml(root: str | Path, rel_path: str, limit: int = 200_000) -> str | None:
    """The experiment file the run copied, as text to show (never parsed into rankers or imported)."""
    try:
        return (run_dir(root, rel_path) / "experiment.yaml").read_text(errors="replace")[:limit]
    except FileNotFoundError:
        return None


def read_config(root: str | Path, rel_path: str) -> dict[str, Any]:
    """The validated config the run used (config.json), or {} for runs without one."""
    try:
        return json.loads((run_dir(root, rel_path) / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


# --- small helpers the pages share -------------------------------------------------------------

def finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def verdict(row: dict[str, Any]) -> str:
    """better / worse / no change, in the metric's own direction (report's improved/degraded flags)."""
    if row.get("improved"):
        return "better"
    if row.get("degraded") or row.get("breached"):
        return "worse"
    return "no change"


def run_label(entry: dict[str, Any]) -> str:
    """Picker label; ends with the run id's distinctive tail so two runs never read alike."""
    created = str(entry.get("created", ""))[:19].replace("T", " ")
    rid = str(entry.get("run_id", ""))
    decision = f"{entry.get('decision', '?')}" + (f" {entry['arm']}" if entry.get("arm") else "")
    return f"{entry.get('experiment', '?')} · {created} · {entry.get('mode', '?')} · {decision} · …{rid[-8:]}"


def runs_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """The index as a table (raw values; the page formats them)."""
    cols = ["experiment", "run_id", "created", "mode", "decision", "arm", "primary_metric", "primary_rel_effect",
            "config_sha256", "path"]
    return pd.DataFrame([{c: e.get(c) for c in cols} for e in entries], columns=cols)


def pair_offline_online(offline: dict[str, Any], online: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the ``offline_vs_online`` shape built from an offline and an online report's metrics."""
    obs = {m["metric"]: m for m in online.get("metrics", [])}
    rows = []
    for m in offline.get("metrics", []):
        o = obs.get(m["metric"])
        if o is None:
            continue
        rows.append({"metric": m["metric"], "predicted_rel_effect": m.get("rel_effect"),
                     "predicted_rel_ci_low": m.get("rel_ci_low"), "predicted_rel_ci_high": m.get("rel_ci_high"),
                     "observed_rel_effect": o.get("rel_effect"), "observed_rel_ci_low": o.get("rel_ci_low"),
                     "observed_rel_ci_high": o.get("rel_ci_high"), "offline_run_id": offline.get("run_id"),
                     "online_run_id": online.get("run_id")})
    return rows
