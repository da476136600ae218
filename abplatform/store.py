"""The results store: immutable, atomically written run folders and an index of them.

A run is written into ``<root>/<experiment>/.tmp-<run id>`` and renamed to
``<root>/<experiment>/<run id>`` only when every file is on disk, so a crash leaves no
complete-looking folder. The index (``<root>/index.json``) is then rewritten under a file lock
by write-to-temporary + ``os.replace``, so readers never see a torn or partial index and never
see a run that is not complete.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INDEX = "index.json"
TMP_PREFIX = ".tmp-"


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_tree(root: Path) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def remove_stale_tmp(parent: Path, pattern: str = f"{TMP_PREFIX}*") -> None:
    """Remove temporary folders (``<prefix>...<pid>``) of writers that no longer exist (killed runs)."""
    for d in parent.glob(pattern):
        pid = d.name.rsplit(".", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


@contextmanager
def atomic_directory(final: Path, replace: bool = False) -> Iterator[Path]:
    """A folder filled in the ``with`` block and published as ``final`` only when the block completes.

    The block writes into ``.tmp-<name>.<pid>`` beside ``final`` (unique per process, so concurrent
    writers never touch each other's work); on success its files are fsynced and it is renamed to
    ``final``, on error it is removed. When ``final`` already exists it is replaced if ``replace``,
    otherwise kept (a cache another process has just filled with the same content) and the new
    folder dropped. Temporary folders of dead writers of the same name are removed first.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(final.parent, f"{TMP_PREFIX}{final.name}.*")
    tmp = final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # our own pid's leftover: a previous attempt in this process
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists() and replace:
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)  # another writer published the same folder first
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ResultsStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    @contextmanager
    def _lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".index.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def index(self) -> list[dict[str, Any]]:
        """Summaries of complete runs, oldest first (safe to call while runs are being written)."""
        try:
            return json.loads((self.root / INDEX).read_text())
        except FileNotFoundError:
            return []

    def write_run(self, experiment: str, run_id: str, write: Callable[[Path], None],
                  summary: dict[str, Any]) -> Path:
        """Call ``write(tmp_dir)`` to fill the run, then publish it and add ``summary`` to the index."""
        exp_dir = self.root / experiment
        exp_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(exp_dir)
        final = exp_dir / run_id
        with atomic_directory(final) as tmp:
            write(tmp)
        with self._lock():
            entries = self.index()
            entries.append({**summary, "experiment": experiment, "run_id": run_id,
                            "path": str(final.relative_to(self.root))})
            write_atomic(self.root / INDEX, json.dumps(entries, indent=1).encode())
        return final

    def run_dir(self, entry: dict[str, Any]) -> Path:
        return self.root / entry["path"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
