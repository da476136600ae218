"""``world generate`` never destroys what is not ours: an existing --out is replaced only when it is an empty
folder or a world this generator wrote (``world.json`` of kind ``abplatform-synthetic-world``), or with
``force``; a file, a link or the working folder never. The pipeline's world cache keeps replacing its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from abplatform.errors import InputError
from abplatform.pipeline import ensure_world
from abplatform.world import generate
from abplatform.world.generate import WORLD_KIND, WorldParams, generate_world, is_world

TINY = WorldParams(users=50, items=1000, days=1, pre_days=1, seed=5)


def _not_generated(monkeypatch) -> list[Path]:
    """Make generation a stub that records its calls (the guard must refuse before any work)."""
    calls: list[Path] = []

    def fake(params, tmp, progress=None):
        calls.append(tmp)
        (tmp / "world.json").write_text(json.dumps({"kind": WORLD_KIND}))
    monkeypatch.setattr(generate, "_generate_into", fake)
    return calls


def test_a_folder_that_is_not_ours_is_refused_before_any_work(tmp_path, monkeypatch):
    calls = _not_generated(monkeypatch)
    out = tmp_path / "results"
    (out / "exp" / "run1").mkdir(parents=True)
    (out / "index.json").write_text("[]")
    with pytest.raises(InputError, match="not empty and not a world abplatform wrote") as err:
        generate_world(TINY, out)
    assert str(out) in str(err.value) and "--force" in str(err.value) and len(err.value.problems) == 1
    assert calls == [] and (out / "index.json").read_text() == "[]" and (out / "exp" / "run1").is_dir()


@pytest.mark.parametrize("marker", ['{"kind": "something-else"}', "not json", '["abplatform-synthetic-world"]'])
def test_a_world_json_without_our_kind_is_not_a_marker(marker, tmp_path, monkeypatch):
    _not_generated(monkeypatch)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "world.json").write_text(marker)
    assert not is_world(tmp_path / "w")
    with pytest.raises(InputError, match="not a world abplatform wrote"):
        generate_world(TINY, tmp_path / "w")


def test_force_replaces_a_folder_that_is_not_ours(tmp_path, monkeypatch):
    calls = _not_generated(monkeypatch)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("x")
    generate_world(TINY, out, force=True)
    assert len(calls) == 1 and sorted(p.name for p in out.iterdir()) == ["world.json"]


@pytest.mark.parametrize("force", [False, True])
def test_a_file_a_link_or_the_working_folder_is_never_replaced(force, tmp_path, monkeypatch):
    calls = _not_generated(monkeypatch)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "keep.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(InputError, match="exists and is not a folder"):
        generate_world(TINY, tmp_path / "notes.txt", force=force)
    with pytest.raises(InputError, match="exists and is not a folder"):
        generate_world(TINY, tmp_path / "link", force=force)
    monkeypatch.chdir(tmp_path / "target")
    for out in (Path("."), tmp_path):
        with pytest.raises(InputError, match="is the working folder or contains it"):
            generate_world(TINY, out, force=force)
    assert calls == [] and (tmp_path / "notes.txt").read_text() == "x"
    assert (tmp_path / "target" / "keep.txt").read_text() == "x"


def test_something_written_there_during_generation_is_not_replaced(tmp_path, monkeypatch):
    out = tmp_path / "w"

    def meanwhile(params, tmp, progress=None):
        out.mkdir()
        (out / "notes.txt").write_text("x")
    monkeypatch.setattr(generate, "_generate_into", meanwhile)
    with pytest.raises(InputError, match="not a world abplatform wrote"):
        generate_world(TINY, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # the new world's temporary folder is gone
    assert (out / "notes.txt").read_text() == "x"


def test_an_empty_folder_and_a_previous_world_are_replaced(tmp_path):
    out = tmp_path / "w"
    out.mkdir()
    generate_world(TINY, out)
    assert is_world(out) and json.loads((out / "world.json").read_text())["kind"] == WORLD_KIND
    (out / "sessions" / "extra.txt").write_text("from the previous world")
    generate_world(TINY, out)  # a world we wrote: replaced as a whole
    assert is_world(out) and not (out / "sessions" / "extra.txt").exists()


def test_the_pipeline_cache_replaces_its_own_damaged_world(tmp_path, monkeypatch):
    calls = _not_generated(monkeypatch)
    cached = tmp_path / f"world-{TINY.fingerprint()}"
    cached.mkdir()
    (cached / "sessions").mkdir()  # a cached world that lost its world.json
    assert ensure_world(TINY, tmp_path) == cached
    assert len(calls) == 1 and is_world(cached) and not (cached / "sessions").exists()
    assert ensure_world(TINY, tmp_path) == cached and len(calls) == 1  # then reused


@pytest.mark.slow
def test_cli_refuses_then_force_replaces(tmp_path):
    (tmp_path / "mydata").mkdir()
    (tmp_path / "mydata" / "notes.txt").write_text("months of work\n")
    args = [sys.executable, "-m", "abplatform.cli", "world", "generate", "--out", "mydata", "--users", "50",
            "--items", "1000", "--days", "1", "--pre-days", "1"]
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [
        ("error: mydata: not empty and not a world abplatform wrote; refusing to replace it "
         "(--force replaces it, deleting everything in it)")]
    assert (tmp_path / "mydata" / "notes.txt").read_text() == "months of work\n"
    res = subprocess.run([*args, "--force"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert is_world(tmp_path / "mydata") and not (tmp_path / "mydata" / "notes.txt").exists()
    res = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # now ours: no --force
    assert res.returncode == 0, res.stderr
