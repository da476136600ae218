"""The atomic-directory helper: concurrent writers of one folder, a writer killed mid-way, an error in the
block. A published folder is always one writer's complete content; no temporary folder is left."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest

from abplatform.store import TMP_PREFIX, atomic_directory

FILES = 20


def fill(folder: Path, writer: str) -> None:
    for k in range(FILES):
        (folder / f"f{k:02d}.txt").write_text(f"{writer}:{k}\n" * 500)


def complete_content(folder: Path) -> str:
    """The one writer whose complete content ``folder`` holds (fails on a mix or a partial folder)."""
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == [f"f{k:02d}.txt" for k in range(FILES)]
    writers = {f.read_text().split(":", 1)[0] for f in files}
    assert len(writers) == 1, writers
    (writer,) = writers
    assert all(f.read_text() == f"{writer}:{k}\n" * 500 for k, f in enumerate(files))
    return writer


def temp_folders(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(TMP_PREFIX))


def _writer(final: str, name: str, barrier, replace: bool) -> None:
    with atomic_directory(Path(final), replace=replace) as tmp:
        fill(tmp, name)
        barrier.wait(timeout=30)  # both writers are inside their block at the same time


@pytest.mark.parametrize("replace", [False, True])
def test_two_concurrent_writers_both_succeed(tmp_path, replace):
    ctx = mp.get_context("fork")
    final = tmp_path / "out" / "run"
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(final), f"w{i}", barrier, replace)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert complete_content(final) in {"w0", "w1"}
    assert temp_folders(final.parent) == []
    assert sorted(p.name for p in final.parent.iterdir()) == ["run"]


def _stuck_writer(final: str, ready) -> None:
    with atomic_directory(Path(final)) as tmp:
        fill(tmp, "killed")
        ready.set()
        signal.pause()  # killed here, mid-way


def test_a_killed_writer_leaves_a_temp_folder_the_next_writer_removes(tmp_path):
    ctx = mp.get_context("fork")
    final = tmp_path / "run"
    ready = ctx.Event()
    p = ctx.Process(target=_stuck_writer, args=(str(final), ready))
    p.start()
    assert ready.wait(timeout=60)
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=60)  # reaped: its pid is no longer alive
    assert p.exitcode == -signal.SIGKILL
    assert not final.exists()
    assert temp_folders(tmp_path) == [f"{TMP_PREFIX}run.{p.pid}"]
    with atomic_directory(final) as tmp:
        assert temp_folders(tmp_path) == [tmp.name] == [f"{TMP_PREFIX}run.{os.getpid()}"]  # the dead one is gone
        fill(tmp, "next")
    assert complete_content(final) == "next"
    assert temp_folders(tmp_path) == []


def test_a_live_writers_temp_folder_is_left_alone(tmp_path):
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    p = ctx.Process(target=_stuck_writer, args=(str(tmp_path / "run"), ready))
    p.start()
    try:
        assert ready.wait(timeout=60)
        with atomic_directory(tmp_path / "run") as tmp:
            fill(tmp, "mine")
            assert f"{TMP_PREFIX}run.{p.pid}" in temp_folders(tmp_path)
        assert complete_content(tmp_path / "run") == "mine"
        assert temp_folders(tmp_path) == [f"{TMP_PREFIX}run.{p.pid}"]
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=60)


def test_an_error_in_the_block_leaves_nothing(tmp_path):
    final = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_directory(final) as tmp:
            fill(tmp, "broken")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_an_error_leaves_an_existing_folder_as_it_was(tmp_path):
    final = tmp_path / "run"
    with atomic_directory(final) as tmp:
        fill(tmp, "first")
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(final, replace=True) as tmp:
            fill(tmp, "second")
            raise KeyboardInterrupt
    assert complete_content(final) == "first"
    assert temp_folders(tmp_path) == []


@pytest.mark.parametrize("replace,expected", [(False, "first"), (True, "second")])
def test_an_existing_folder_is_kept_or_replaced(tmp_path, replace, expected):
    final = tmp_path / "run"
    for name in ("first", "second"):
        with atomic_directory(final, replace=replace) as tmp:
            fill(tmp, name)
    assert complete_content(final) == expected
    assert temp_folders(tmp_path) == []


def test_a_cache_keeps_a_complete_folder_published_meanwhile_and_replaces_an_incomplete_one(tmp_path):
    """Two runs filling the same cache (world, replay): the second must not delete what the first
    published and may be reading; a folder without its completion mark is replaced."""
    final = tmp_path / "world-abc"

    def replace(existing):
        return not (existing / "done").is_file()

    with atomic_directory(final, replace=replace) as tmp:
        (tmp / "done").write_text("first")
        final.mkdir()  # another process publishes a complete folder while this one is still writing
        (final / "done").write_text("other")
    assert (final / "done").read_text() == "other"
    assert [p.name for p in tmp_path.iterdir()] == ["world-abc"]
    (final / "done").unlink()  # now incomplete: the next writer replaces it
    with atomic_directory(final, replace=replace) as tmp:
        (tmp / "done").write_text("second")
    assert (final / "done").read_text() == "second"
