"""Results folders for the dashboard tests (imported by test_dashboard_app / test_dashboard_browser).

Two real offline runs of a tiny world (different simulation seeds, so their numbers differ), a
"legacy" copy of the first without the newer report sections, and one hand-made "online" run
derived from the first: it holds, fails the sample-ratio check (overall
and in one segment) and carries the sections other issues will add (``long_tail``,
``offline_vs_online``), so both a filled panel and an empty state can be tested.
"""

from __future__ import annotations

import copy
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import WORLD_YAML, world_cache

TINY_YAML = """\
name: tiny
description: dashboard test world
owner: search-quality
data: {{world: {world}, cache_dir: {cache}}}
arms: [{{name: control, ranker: v1}}, {{name: treatment, ranker: v2}}]
metrics:
  - {{name: item_ctr, role: primary}}
  - {{name: buyer_conversion, role: secondary}}
  - {{name: order_volume, role: secondary}}
  - {{name: relevance, role: guardrail, margin: 0.01}}
statistics: {{sequential: {{method: confidence_sequence}}, correction: holm}}
simulation: {{seed: {seed}, workers: 1}}
"""

# an A/B/n run (its own results folder): V1 as control, V2, and V1 again as a null arm
ABN_YAML = """\
name: tiny_abn
data: {{world: {world}, cache_dir: {cache}}}
control: v1
arms: [{{name: v1, ranker: v1}}, {{name: v2, ranker: v2}}, {{name: v1b, ranker: v1}}]
comparisons: [{{treatment: v2, control: v1b}}]
metrics:
  - {{name: item_ctr, role: primary}}
  - {{name: buyer_conversion, role: secondary}}
  - {{name: relevance, role: guardrail, margin: 0.01}}
simulation: {{workers: 1}}
decision: {{latency_margin: 5.0, latency_repetitions: 40}}
"""

HOLD_REASONS = ["guardrail relevance: non-inferiority not shown (margin -1.00%)",
                "sample ratio mismatch: chi-square p = 0.0000 < 0.001"]

LONG_TAIL = {
    "per_arm": {
        "control": {"tail_impression_share": 0.081, "tail_click_share": 0.064, "coverage": 0.412,
                    "exposure_gini": 0.731, "category_entropy": 3.41, "novelty": 0.522},
        "treatment": {"tail_impression_share": 0.117, "tail_click_share": 0.095, "coverage": 0.538,
                      "exposure_gini": 0.655, "category_entropy": 3.77, "novelty": 0.587},
    },
}


OFFLINE_POLICY = {
    "estimand": "value per logged row", "target": "arm treatment: the policy table policy.csv", "alpha": 0.05,
    "n_rows": 3939, "n_sessions": 3939, "ess": 135.6, "max_weight": 21.5, "weight_explosion": True,
    "estimates": [{"estimator": "snips", "value": 0.09203, "se": 0.026, "ci_low": 0.04118, "ci_high": 0.1429,
                   "page_value": 0.2732, "page_ci_low": 0.1278, "page_ci_high": 0.4186,
                   "per_position": [{"position": k, "value": v, "n_rows": 1300}
                                    for k, v in ((1, 0.12), (2, 0.09), (3, 0.063))]}],
    "positions": [{"position": k, "n_rows": 1300, "ess": 36.6 + k} for k in (1, 2, 3)],
    "warnings": ["ESS 36.6 < 100 at positions [1, 2, 3]"],
    "on_policy": {"value": 0.08889, "ci_low": 0.08014, "ci_high": 0.09765, "n_rows": 4061, "n_sessions": 4061},
}
INTERLEAVING = {
    "source": "simulated", "unit": "session", "credit_rule": "wins", "control": "control", "treatment": "treatment",
    "alpha": 0.05, "n": 5000, "sessions": 5000, "sessions_with_clicks": 2100, "sessions_with_credited_clicks": 2050,
    "wins_control": 700, "wins_treatment": 980, "ties": 3320, "preference": 0.056, "preference_ci_low": 0.04,
    "preference_ci_high": 0.072, "treatment_win_rate": 0.583, "treatment_win_rate_ci_low": 0.56,
    "treatment_win_rate_ci_high": 0.607, "sign_test_p_value": 1e-11, "t_test_p_value": 2e-11,
    "preferred": "treatment", "significant": True,
    "sample_size": {"power": 0.8, "sessions_per_unit": 9.0, "treatment_win_share": 0.196,
                    "control_win_share": 0.14, "interleaving_sessions": 317.0, "interleaving_t_test_sessions": 300.0,
                    "ab_sessions": 1296.0, "ratio": 4.09},
}


def _handmade(real: dict, run_id: str, created: str) -> dict:
    rep = copy.deepcopy(real)
    rep.update(run_id=run_id, created=created, mode="online", experiment="tiny_online")
    rep["decision"] = {"decision": "hold", "reasons": list(HOLD_REASONS), "checks": [
        {"name": "relevance", "kind": "guardrail", "passed": False, "blocking": True, "reason": HOLD_REASONS[0]},
        {"name": "sample_ratio", "kind": "srm", "passed": False, "blocking": True, "reason": HOLD_REASONS[1]}]}
    rep["srm"] = {**rep["srm"], "failed": True, "p_value": 1e-6, "chi2": 23.9}
    for rows in (rep["metrics"], rep["segments"], rep["daily"]):
        for m in rows:
            for k in ("rel_effect", "rel_ci_low", "rel_ci_high", "abs_effect", "abs_ci_low", "abs_ci_high",
                      "rel_ci_low_adjusted", "rel_ci_high_adjusted", "abs_ci_low_adjusted", "abs_ci_high_adjusted"):
                if m.get(k) is not None:
                    m[k] = m[k] * 0.5 - 0.01
            m["improved"], m["degraded"] = False, m["metric"] == "relevance"
    seg = next(s for s in rep["srm_by_segment"] if s["segment"] != "all")
    seg.update(failed=True, p_value=2e-5)
    lt = copy.deepcopy(LONG_TAIL)
    lt["metrics"] = [{**copy.deepcopy(real["metrics"][0]), "metric": "tail_click_share_user", "role": "secondary",
                      "rel_effect": 0.21, "rel_ci_low": 0.12, "rel_ci_high": 0.30, "improved": True},
                     {**copy.deepcopy(real["metrics"][0]), "metric": "novelty_user", "role": "secondary",
                      "rel_effect": 0.07, "rel_ci_low": -0.01, "rel_ci_high": 0.15, "improved": False}]
    rep["long_tail"] = lt
    rep["offline_policy"], rep["interleaving"] = copy.deepcopy(OFFLINE_POLICY), copy.deepcopy(INTERLEAVING)
    rep["offline_vs_online"] = [
        {"metric": m["metric"], "predicted_rel_effect": m["rel_effect"], "predicted_rel_ci_low": m["rel_ci_low"],
         "predicted_rel_ci_high": m["rel_ci_high"], "observed_rel_effect": o["rel_effect"],
         "observed_rel_ci_low": o["rel_ci_low"], "observed_rel_ci_high": o["rel_ci_high"],
         "prediction_inside_observed_ci": (o["rel_ci_low"] is not None and o["rel_ci_high"] is not None
                                           and m["rel_effect"] is not None
                                           and o["rel_ci_low"] <= m["rel_effect"] <= o["rel_ci_high"]),
         "offline_run_id": real["run_id"], "online_run_id": run_id, "offline_experiment": real["experiment"],
         "online_experiment": "tiny_online"}
        for m, o in zip(real["metrics"], rep["metrics"])]
    return rep


def build_results(base: Path, world: Path) -> dict:
    """Make (once per base folder) the results folders; return {'root', 'a', 'b', 'h', 'legacy', 'only_a',
    'abn_root', 'abn'}."""
    from abplatform.pipeline import run_offline

    done = base / "done.json"
    if done.is_file():
        return {k: (Path(v) if k in ("root", "only_a", "abn_root") else v)
                for k, v in json.loads(done.read_text()).items()}
    root, cache = base / "results", world_cache(world, base / "data")
    reports = {}
    for name, seed in (("a", 1), ("b", 2)):
        y = base / f"tiny_{name}.yaml"
        y.write_text(TINY_YAML.format(world=WORLD_YAML, cache=cache, seed=seed))
        _, report = run_offline(y, root)
        reports[name] = report.to_dict()  # the pages read report.json as plain data
    # the hand-made online run, published like a real one (folder, then index entry)
    created = (datetime.fromisoformat(reports["b"]["created"]) + timedelta(seconds=5)).astimezone(timezone.utc)
    run_id = created.strftime("%Y%m%dT%H%M%S%fZ")
    h = _handmade(reports["a"], run_id, created.isoformat())
    d = root / "tiny_online" / run_id
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps(h, indent=1))
    # its config names the offline experiment it is paired with (compare_to), as an online run's would
    cfg = json.loads((root / "tiny" / reports["a"]["run_id"] / "config.json").read_text())
    cfg.update(name="tiny_online", compare_to="tiny", owner="search-quality",
               description="hand-made online run: sample ratio mismatch, guardrail not shown")
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    from abplatform.report.model import Report
    from abplatform.report.render import markdown

    (d / "report.md").write_text(markdown(Report.from_dict(h)))
    # a run folder may name code (a ranker's dotted path): the dashboard must never import it
    (d / "experiment.yaml").write_text("name: tiny_online\narms:\n  - {name: control, ranker: v1}\n"
                                       "  - {name: treatment, ranker: dashboard_canary_module:Boom}\n")
    # a run in the format of before the long_tail section existed (the panels' empty states)
    old_created = datetime.fromisoformat(reports["a"]["created"]) - timedelta(days=1)
    legacy = {k: v for k, v in copy.deepcopy(reports["a"]).items() if k not in ("long_tail", "offline_vs_online")}
    legacy.update(experiment="tiny_legacy", run_id=old_created.strftime("%Y%m%dT%H%M%S%fZ"),
                  created=old_created.isoformat())
    (root / "tiny_legacy" / legacy["run_id"]).mkdir(parents=True)
    (root / "tiny_legacy" / legacy["run_id"] / "report.json").write_text(json.dumps(legacy, indent=1))
    index = json.loads((root / "index.json").read_text())
    index.insert(0, {"created": legacy["created"], "mode": "offline", "decision": legacy["decision"]["decision"],
                     "primary_metric": "item_ctr", "primary_rel_effect": legacy["metrics"][0]["rel_effect"],
                     "config_sha256": legacy["config_sha256"], "experiment": "tiny_legacy",
                     "run_id": legacy["run_id"], "path": f"tiny_legacy/{legacy['run_id']}"})
    index.append({"created": h["created"], "mode": "online", "decision": "hold", "primary_metric": "item_ctr",
                  "primary_rel_effect": h["metrics"][0]["rel_effect"], "config_sha256": "f" * 64,
                  "experiment": "tiny_online", "run_id": run_id, "path": f"tiny_online/{run_id}"})
    (root / "index.json").write_text(json.dumps(index, indent=1))
    # a second results folder with a single run (empty states of compare / offline-vs-online)
    only_a = base / "only_a"
    ea = next(e for e in index if e["run_id"] == reports["a"]["run_id"])
    shutil.copytree(root / ea["path"], only_a / ea["path"])
    (only_a / "index.json").write_text(json.dumps([ea]))
    abn_root = base / "abn"
    (base / "tiny_abn.yaml").write_text(ABN_YAML.format(world=WORLD_YAML, cache=cache))
    _, abn = run_offline(base / "tiny_abn.yaml", abn_root)
    out = {"root": str(root), "only_a": str(only_a), "abn_root": str(abn_root), "a": reports["a"], "b": reports["b"],
           "h": h, "legacy": legacy, "abn": abn.to_dict()}
    done.write_text(json.dumps(out))
    return {**out, "root": root, "only_a": only_a, "abn_root": abn_root}


@pytest.fixture(scope="session")
def dash_results(request, tmp_path_factory) -> dict:
    """The results folders; ``ABPLATFORM_DASHBOARD_FIXTURES=<folder>`` keeps them there between sessions
    (for working on the dashboard: delete the folder after changing this file)."""
    import os

    keep = os.environ.get("ABPLATFORM_DASHBOARD_FIXTURES")
    base = Path(keep) if keep else tmp_path_factory.getbasetemp() / "dashboard"
    base.mkdir(parents=True, exist_ok=True)
    if (base / "done.json").is_file():
        return build_results(base, Path())
    return build_results(base, request.getfixturevalue("small_world"))
