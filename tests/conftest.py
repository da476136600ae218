"""Shared fixtures: one small synthetic world and its V1-vs-V2 replay, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from abplatform.dataset import Dataset
from abplatform.rankers import Catalog, V1Ranker, V2Ranker
from abplatform.simulate import ReplayArm, ReplaySpec, replay
from abplatform.world.generate import WorldParams, generate_world

SMALL_WORLD = WorldParams(users=3000, days=5, pre_days=3, items=2000, seed=11)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    return generate_world(SMALL_WORLD, tmp_path_factory.mktemp("world") / "w")


def fitted_arms(world: Path) -> list[ReplayArm]:
    ds = Dataset(world)
    catalog = Catalog.from_dataset(ds)
    return [ReplayArm("control", V1Ranker().fit(ds, catalog)), ReplayArm("treatment", V2Ranker().fit(ds, catalog))]


@pytest.fixture(scope="session")
def small_replay(small_world, tmp_path_factory) -> Path:
    spec = ReplaySpec(arms=fitted_arms(small_world), salt="test-salt", seed=5, batch_size=700, workers=1)
    return replay(Dataset(small_world), spec, tmp_path_factory.mktemp("replay") / "r").path
