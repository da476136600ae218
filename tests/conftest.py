"""Shared fixtures: ONE small synthetic world and its V1-vs-V2 replay, built once per test session.

Every test that needs a world uses this one: directly (``small_world``, a folder), or through an
experiment file (``world_yaml`` is its ``data.world`` mapping and ``world_cache(folder)`` lays the world
into a fresh ``cache_dir`` under the name the pipeline looks for, so it is reused, not regenerated).
Tests must not modify the shared world: ``copy_world`` gives a private copy to break. A session-end
check fails the run if any file of the world or of the replay changed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from abplatform.dataset import Dataset
from abplatform.rankers import Catalog, V1Ranker, V2Ranker
from abplatform.replay import ReplayArm, ReplaySpec, replay
from abplatform.world.generate import WorldParams, generate_world
from abplatform.world.oracle import OracleBehaviour, WorldRaters
from abplatform.world.truth import load_truth

SMALL_WORLD = WorldParams(users=3000, days=5, pre_days=3, items=2000, seed=11)
#: The shared world as an experiment file's ``data.world`` (flow-style YAML).
WORLD_YAML = (f"{{users: {SMALL_WORLD.users}, days: {SMALL_WORLD.days}, pre_days: {SMALL_WORLD.pre_days}, "
              f"items: {SMALL_WORLD.items}, seed: {SMALL_WORLD.seed}}}")


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(f.relative_to(root)): (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(root.rglob("*"))
            if f.is_file()}


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    path = generate_world(SMALL_WORLD, tmp_path_factory.mktemp("world") / "w")
    before = _snapshot(path)
    yield path
    assert _snapshot(path) == before, "a test modified the shared world (use copy_world / world_cache)"


def world_cache(small_world: Path, cache_dir: Path) -> Path:
    """``cache_dir`` holding the shared world as the pipeline's cached world of ``WORLD_YAML``
    (files hard-linked: the pipeline only reads a cached world). Returns ``cache_dir``."""
    dst = cache_dir / f"world-{SMALL_WORLD.fingerprint()}"
    if not dst.exists():
        shutil.copytree(small_world, dst, copy_function=os.link)
    return cache_dir


@pytest.fixture
def copy_world(small_world, tmp_path) -> Path:
    """A private copy of the shared world (real copies, safe to modify)."""
    return Path(shutil.copytree(small_world, tmp_path / "world-copy"))


def fitted_arms(world: Path) -> list[ReplayArm]:
    ds = Dataset(world)
    catalog = Catalog.from_dataset(ds)
    return [ReplayArm("control", V1Ranker().fit(ds, catalog)), ReplayArm("treatment", V2Ranker().fit(ds, catalog))]


def replay_spec(world: Path, **options) -> ReplaySpec:
    """The shared replay's spec (``options`` override it): V1 vs V2, the world's oracle users and raters."""
    truth = load_truth(world)
    kw = {"salt": "test-salt", "seed": 5, "batch_size": 700, "workers": 1, "behaviour": OracleBehaviour(truth),
          "rater": WorldRaters(truth)}
    return ReplaySpec(arms=fitted_arms(world), **{**kw, **options})


@pytest.fixture(scope="session")
def small_replay(small_world, tmp_path_factory) -> Path:
    path = replay(Dataset(small_world), replay_spec(small_world), tmp_path_factory.mktemp("replay") / "r").path
    before = _snapshot(path)
    yield path
    assert _snapshot(path) == before, "a test modified the shared replay"


SMALL_RUN_YAML = """\
name: small
data: {{world: {world}, cache_dir: {cache}}}
arms: [{{name: control, ranker: v1}}, {{name: treatment, ranker: v2}}]
metrics:
  - {{name: item_ctr, role: primary}}
  - {{name: buyer_conversion}}
  - {{name: relevance, role: guardrail, margin: 0.01}}
segments: [query_segment]
simulation: {{behaviour: oracle, workers: 1, batch_size: 400}}
decision: {{latency_margin: 5.0}}  # the latency check is reported (batches of 400: enough samples), never decides
"""


@pytest.fixture(scope="session")
def small_run(small_world, tmp_path_factory) -> Path:
    """A real offline run (V1 vs V2 on the shared world) through the pipeline: its run folder. Tests
    must not modify it (copy it to break it)."""
    from abplatform.pipeline import run_offline

    base = tmp_path_factory.mktemp("small_run")
    cache = world_cache(small_world, base / "cache")
    (base / "small.yaml").write_text(SMALL_RUN_YAML.format(world=WORLD_YAML, cache=cache))
    run_dir, _ = run_offline(base / "small.yaml", base / "results")
    before = _snapshot(run_dir)
    yield run_dir
    assert _snapshot(run_dir) == before, "a test modified the shared run folder"
