"""A store that heals: an index that is missing, not JSON, not a list or stale is rebuilt from the run
folders (on the next write, with a warning, and by ``abplatform index rebuild``); readers of a broken
index do not crash; the temporary files of killed writers are removed on the next write; and a run
SIGKILLed between its folder's rename and the index rewrite is indexed by the next write."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abplatform.store import INDEX, ResultsStore

DEAD_PID = 2**22 + 12345  # above the default pid_max: never a live process


def _report(experiment: str, run_id: str, created: str, mode: str = "offline") -> dict:
    return {"experiment": experiment, "run_id": run_id, "created": created, "mode": mode,
            "config_sha256": "abc", "decision": {"decision": "promote", "reasons": []},
            "metrics": [{"metric": "ctr", "role": "secondary", "rel_effect": 0.5},
                        {"metric": "revenue", "role": "primary", "rel_effect": 0.02}]}


def _publish(store: ResultsStore, experiment: str, run_id: str, warnings: list[str] | None = None) -> Path:
    def write(tmp: Path) -> None:
        (tmp / "report.json").write_text(json.dumps(_report(experiment, run_id, f"2026-01-01T00:00:{run_id}")))

    summary = {"created": f"2026-01-01T00:00:{run_id}", "mode": "offline", "decision": "promote",
               "primary_metric": "revenue", "primary_rel_effect": 0.02, "config_sha256": "abc"}
    return store.write_run(experiment, run_id, write, summary,
                           warn=(warnings.append if warnings is not None else lambda _: None))


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    s = ResultsStore(tmp_path / "results")
    for k in ("01", "02"):
        _publish(s, "exp", k)
    return s


def _ids(store: ResultsStore) -> list[str]:
    return [e["run_id"] for e in json.loads((store.root / INDEX).read_text())]


@pytest.mark.parametrize("damage", ["missing", "not-json", "object", "list-of-numbers", "truncated"])
def test_a_broken_index_is_rebuilt_on_the_next_write(store, damage):
    index = store.root / INDEX
    full = index.read_text()
    {"missing": lambda: index.unlink(), "not-json": lambda: index.write_text("not json {"),
     "object": lambda: index.write_text("{}"), "list-of-numbers": lambda: index.write_text("[1, 2]"),
     "truncated": lambda: index.write_text(full[: len(full) // 2])}[damage]()
    assert [e["run_id"] for e in store.index()] == ["01", "02"]  # a reader gets the run folders, no error
    warnings: list[str] = []
    _publish(store, "exp", "03", warnings)
    assert _ids(store) == ["01", "02", "03"]
    assert len(warnings) == 1 and "rebuilt it from the run folders" in warnings[0], warnings
    entry = json.loads(index.read_text())[0]
    assert entry == {"created": "2026-01-01T00:00:01", "mode": "offline", "decision": "promote", "arm": None,
                     "primary_metric": "revenue", "primary_rel_effect": 0.02, "config_sha256": "abc",
                     "experiment": "exp", "run_id": "01", "path": "exp/01"}


def test_a_stale_index_is_repaired(store):
    import shutil

    shutil.rmtree(store.root / "exp" / "01")  # deleted by hand
    (store.root / "other" / "07").mkdir(parents=True)  # a complete run folder the index does not list
    (store.root / "other" / "07" / "report.json").write_text(json.dumps(_report("other", "07", "2026-01-01T00:00:07")))
    (store.root / "other" / "08").mkdir()  # not a complete run (no report.json): never indexed
    warnings: list[str] = []
    _publish(store, "exp", "09", warnings)
    assert _ids(store) == ["02", "07", "09"]
    assert "1 run folder(s) not indexed" in warnings[0] and "1 entr(ies) whose run folder is gone" in warnings[0]
    warnings.clear()
    _publish(store, "exp", "10", warnings)
    assert warnings == []  # healthy again: no warning, nothing rebuilt


def test_an_unreadable_report_is_skipped_with_a_warning(store):
    (store.root / INDEX).unlink()
    (store.root / "exp" / "01" / "report.json").write_text("{torn")
    warnings: list[str] = []
    _publish(store, "exp", "03", warnings)
    assert _ids(store) == ["02", "03"]
    assert any("exp/01: not indexed (report.json is unreadable" in w for w in warnings), warnings


def test_leftover_temporary_files_are_removed_on_the_next_write(store):
    root = store.root
    leftovers = [root / f".tmp-index.json.{DEAD_PID}", root / "exp" / f".tmp-pending-05.{DEAD_PID}"]
    for f in leftovers:
        f.write_text("x")
    folders = [root / f".tmp-exp.{DEAD_PID}", root / "exp" / f".tmp-05.{DEAD_PID}",
               root / "other" / f".tmp-06.{DEAD_PID}"]
    for d in folders:
        d.mkdir(parents=True)
        (d / "report.json").write_text("{}")
    alive = root / "exp" / f".tmp-07.{os.getppid()}"  # a live writer's folder is left alone
    alive.mkdir()
    _publish(store, "exp", "03")
    assert not any(p.exists() for p in leftovers + folders)
    assert alive.is_dir()
    assert _ids(store) == ["01", "02", "03"]


def test_the_pipeline_reader_does_not_crash_on_a_broken_index(store):
    from abplatform.pipeline import _paired_report

    class Exp:
        name, compare_to = "exp-online", "exp"

    (store.root / INDEX).write_text("{}")
    said: list[str] = []
    # the paired offline runs are found in the run folders; their reports are not full reports: skipped, said
    assert _paired_report(store, Exp(), "online", said.append) is None  # type: ignore[arg-type]
    assert len(said) == 2 and all(s.startswith("warning: skipping paired run") for s in said)


CLI = [sys.executable, "-m", "abplatform.cli", "index", "rebuild"]


def test_index_rebuild_command(store, tmp_path):
    (store.root / INDEX).write_text("not json")
    res = subprocess.run([*CLI, "--results", str(store.root)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "was not readable JSON" in res.stdout and "2 run(s), 2 added, 0 dropped" in res.stdout, res.stdout
    assert _ids(store) == ["01", "02"]
    res = subprocess.run([*CLI, "--results", str(store.root)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "up to date (2 run(s))" in res.stdout, res.stdout
    res = subprocess.run([*CLI, "--results", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "no such folder" in res.stderr


KILLED_WRITER = """
import json, sys
from abplatform.store import ResultsStore

def write(tmp):
    (tmp / "report.json").write_text(json.dumps({"created": "2026-01-01T00:00:99", "mode": "online",
                                                 "decision": {"decision": "hold"}, "metrics": []}))

ResultsStore(sys.argv[1]).write_run("exp", "99", write, {"created": "x"})
"""


@pytest.mark.parametrize("heal", ["next-write", "index-rebuild"])
def test_sigkill_between_the_rename_and_the_index_rewrite(store, heal):
    """The writer renames its run folder, then waits for the index lock, which the test holds: it is
    killed right inside the window, so the run is complete on disk but not indexed."""
    root = store.root
    with open(root / ".index.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not (root / "exp" / "99" / "report.json").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert _ids(store) == ["01", "02"]  # the window: complete on disk, not indexed
    assert list((root / "exp").glob(".tmp-pending-99.*"))  # the killed writer's marker is left behind
    if heal == "next-write":
        warnings: list[str] = []
        _publish(store, "exp", "03", warnings)
        assert "1 run folder(s) not indexed" in warnings[0]
        assert _ids(store) == ["01", "02", "99", "03"]
    else:
        res = subprocess.run([*CLI, "--results", str(root)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "+ exp/99" in res.stdout, res.stdout + res.stderr
        assert _ids(store) == ["01", "02", "99"]
    entry = next(e for e in json.loads((root / INDEX).read_text()) if e["run_id"] == "99")
    assert entry["mode"] == "online" and entry["decision"] == "hold" and entry["path"] == "exp/99"
    assert not [p.name for p in root.rglob(".tmp-*")]  # the marker and any temporary file are gone


def test_a_run_being_indexed_by_a_live_writer_is_not_taken_over(store):
    """A complete folder whose writer is alive and waiting for the lock is that writer's to index."""
    (store.root / "exp" / "50").mkdir()
    (store.root / "exp" / "50" / "report.json").write_text(json.dumps(_report("exp", "50", "2026-01-01T00:00:50")))
    marker = store.root / "exp" / f".tmp-pending-50.{os.getpid()}"
    marker.touch()
    warnings: list[str] = []
    _publish(store, "exp", "03", warnings)
    assert warnings == [] and _ids(store) == ["01", "02", "03"]
    marker.unlink()
