"""Layering: the replay knows users only through its interfaces (no import of the synthetic world, even
when it replays with fitted users), and the gate reads a finished run without the analysis stack.
Each check runs in a fresh interpreter, which prints the ``abplatform`` modules it has imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.report.factory import report

pytestmark = pytest.mark.slow  # a fresh interpreter per check

DUMP = "\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('abplatform'))))\n"


def modules_after(code: str, *args: str, cwd: Path | None = None) -> set[str]:
    res = subprocess.run([sys.executable, "-c", code + DUMP, *args], capture_output=True, text=True, timeout=300,
                         cwd=cwd)
    assert res.returncode == 0, res.stderr
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def under(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)}


def test_importing_the_replay_imports_no_world_module():
    modules = modules_after("import abplatform.replay\nimport abplatform.replay.executors")
    assert "abplatform.replay.run" in modules
    assert under(modules, "abplatform.world") == set()


REPLAY_WITH_FITTED_USERS = """
import sys
from pathlib import Path
from abplatform.dataset import Dataset
from abplatform.offline.behaviour import FittedBehaviour
from abplatform.rankers import Catalog, V1Ranker, V2Ranker
from abplatform.replay import ReplayArm, ReplaySpec, replay

ds = Dataset(Path(sys.argv[1]))
catalog = Catalog.from_dataset(ds)
arms = [ReplayArm("control", V1Ranker().fit(ds, catalog)), ReplayArm("treatment", V2Ranker().fit(ds, catalog))]
users = FittedBehaviour("pbm", 10).fit(ds, catalog)
res = replay(ds, ReplaySpec(arms=arms, salt="layering", seed=3, behaviour=users), Path(sys.argv[2]))
assert res.sessions > 0 and res.impressions == 10 * res.sessions, (res.sessions, res.impressions)
"""


def test_a_replay_with_fitted_users_imports_no_world_module(small_world, tmp_path):
    modules = modules_after(REPLAY_WITH_FITTED_USERS, str(small_world), str(tmp_path / "replayed"))
    assert {"abplatform.replay.run", "abplatform.offline.behaviour"} <= modules
    assert under(modules, "abplatform.world") == set()
    assert (tmp_path / "replayed" / "impressions").is_dir()


def test_the_gate_imports_no_analysis_module(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(report().to_json())
    code = ("import sys\nfrom pathlib import Path\nfrom abplatform.gate import exit_code, load_run\n"
            "from abplatform.report.render import gate_summary, junit_xml, markdown\n"
            "r = load_run(Path(sys.argv[1]))\nassert exit_code(r) == 0\njunit_xml(r); markdown(r); gate_summary(r)")
    modules = modules_after(code, str(run))
    assert {"abplatform.gate", "abplatform.report.model"} <= modules
    heavy = under(modules, "abplatform.pipeline", "abplatform.scorecard", "abplatform.stats", "abplatform.metrics")
    assert heavy == set()
