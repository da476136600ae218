"""The results store: immutable, atomically written run folders and an index of them.

A run is written into ``<root>/<experiment>/.tmp-<run id>`` and renamed to
``<root>/<experiment>/<run id>`` only when every file is on disk, so a crash leaves no
complete-looking folder. The index (``<root>/index.json``) is then rewritten under a file lock
by write-to-temporary + ``os.replace``, so readers never see a torn or partial index and never
see a run that is not complete.

The index heals: when it is missing, not JSON, not a list of run summaries, or stale (it lists
runs whose folders are gone, or misses complete run folders — a writer killed between the rename
and the index rewrite), the next write rebuilds it from the run folders (each complete run folder
holds ``report.json``) with a warning, and ``abplatform index rebuild`` does the same by hand.
Readers of a broken index get the run folders on disk instead of an error. Temporary files and
folders of writers that no longer exist are removed on the next write.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INDEX = "index.json"
TMP_PREFIX = ".tmp-"
PENDING = f"{TMP_PREFIX}pending-"  # <experiment>/.tmp-pending-<run id>.<pid>: a run renamed but not yet indexed
REPORT = "report.json"
Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")


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
    """Write ``data`` beside ``path`` and rename it over ``path``: readers see the old or the new file, never
    part of one; on an error (a full disk) the temporary file is removed and ``path`` is unchanged."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
            if d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)
            else:  # a temporary file (``.tmp-index.json.<pid>``, a pending marker)
                d.unlink(missing_ok=True)


@contextmanager
def atomic_directory(final: Path, replace: bool | Callable[[Path], bool] = False) -> Iterator[Path]:
    """A folder filled in the ``with`` block and published as ``final`` only when the block completes.

    The block writes into ``.tmp-<name>.<pid>`` beside ``final`` (unique per process, so concurrent
    writers never touch each other's work); on success its files are fsynced and it is renamed to
    ``final``, on error it is removed. When ``final`` already exists it is replaced if ``replace``
    (or if ``replace(final)`` is true: a cache keeps a complete folder another process has just
    published with the same content, which that process may be reading, and replaces an incomplete
    one); otherwise it is kept and the new folder dropped. Temporary folders of dead writers of the
    same name are removed first.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(final.parent, f"{TMP_PREFIX}{final.name}.*")
    tmp = final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # our own pid's leftover: a previous attempt in this process
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if final.exists() and (replace(final) if callable(replace) else replace):
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

    def _read_index(self) -> tuple[list[dict[str, Any]] | None, str]:
        """The index's entries, or None and why it cannot be used (missing, not JSON, not a list of runs)."""
        try:
            entries = json.loads((self.root / INDEX).read_bytes())
        except FileNotFoundError:
            return None, "missing"
        except (OSError, ValueError) as e:
            return None, f"not readable JSON ({e})"
        if not isinstance(entries, list):
            return None, f"not a list of runs (a JSON {type(entries).__name__})"
        if not all(isinstance(e, dict) and isinstance(e.get("path"), str) for e in entries):
            return None, "not a list of run summaries"
        return entries, ""

    def index(self) -> list[dict[str, Any]]:
        """Summaries of complete runs, oldest first (safe to call while runs are being written).

        When the index is missing or broken, the summaries of the complete run folders on disk."""
        entries, _ = self._read_index()
        if entries is not None:
            return entries
        return sorted(self._summaries(self._run_folders(), _quiet), key=_order)

    def _run_folders(self) -> list[Path]:
        """Complete run folders (``<experiment>/<run id>/report.json``), except those still being indexed."""
        folders = []
        for exp in _subfolders(self.root):
            pending = {p.name[len(PENDING):].rsplit(".", 1)[0] for p in exp.glob(f"{PENDING}*")
                       if _pid_alive(p.name)}
            folders += [d for d in _subfolders(exp) if d.name not in pending and (d / REPORT).is_file()]
        return folders

    def _summaries(self, folders: list[Path], warn: Warn) -> list[dict[str, Any]]:
        """The index entries of run folders, from their report.json (unreadable ones skipped with a warning)."""
        out = []
        for d in folders:
            try:
                out.append({**run_summary(json.loads((d / REPORT).read_bytes())), "experiment": d.parent.name,
                            "run_id": d.name, "path": str(d.relative_to(self.root))})
            except (OSError, ValueError, TypeError, AttributeError) as e:
                warn(f"warning: {d}: not indexed ({REPORT} is unreadable: {e})")
        return out

    def _clean_tmp(self) -> None:
        """Remove the temporary files and folders of writers that no longer exist."""
        remove_stale_tmp(self.root)
        for exp in _subfolders(self.root):
            remove_stale_tmp(exp)

    def _heal(self, warn: Warn, force: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The index, rebuilt from the run folders when it is missing, broken or stale (call under the lock).

        Returns the entries and what was done: ``reason`` (why it was rebuilt, "" when it was
        kept), ``added`` (run folders indexed) and ``dropped`` (entries whose folder is gone)."""
        self._clean_tmp()
        entries, reason = self._read_index()
        folders = self._run_folders()
        if entries is None:
            if reason == "missing" and not folders and not force:
                return [], {"reason": "", "added": [], "dropped": []}
            new = sorted(self._summaries(folders, warn), key=_order)
            return new, {"reason": reason, "added": [e["path"] for e in new], "dropped": [], "rebuilt": True}
        kept: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        for e in entries:
            (kept if (self.root / e["path"]).is_dir() else dropped).append(e)
        indexed = {os.path.normpath(e["path"]) for e in kept}
        missing = [d for d in folders if str(d.relative_to(self.root)) not in indexed]
        added = sorted(self._summaries(missing, warn), key=_order)
        parts = ([f"{len(added)} run folder(s) not indexed"] if added else []) + (
            [f"{len(dropped)} entr(ies) whose run folder is gone"] if dropped else [])
        return kept + added, {"reason": "stale (" + ", ".join(parts) + ")" if parts else "",
                              "added": [e["path"] for e in added], "dropped": [e["path"] for e in dropped]}

    def rebuild(self, warn: Warn = _stderr) -> dict[str, Any]:
        """Rebuild the index from the run folders if it is missing, broken or stale; what was done."""
        with self._lock():
            entries, done = self._heal(warn, force=True)
            if done["reason"]:
                write_atomic(self.root / INDEX, json.dumps(entries, indent=1).encode())
        return {**done, "runs": len(entries)}

    def write_run(self, experiment: str, run_id: str, write: Callable[[Path], None],
                  summary: dict[str, Any], warn: Warn = _stderr) -> Path:
        """Call ``write(tmp_dir)`` to fill the run, then publish it and add ``summary`` to the index.

        A broken or stale index is rebuilt from the run folders first (with a warning through ``warn``)."""
        exp_dir = self.root / experiment
        exp_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(exp_dir)
        final = exp_dir / run_id
        rel = str(final.relative_to(self.root))
        pending = exp_dir / f"{PENDING}{run_id}.{os.getpid()}"
        pending.touch()  # the run is ours until it is indexed: another writer does not index it for us
        try:
            with atomic_directory(final) as tmp:
                write(tmp)
            with self._lock():
                entries, done = self._heal(warn)
                if done["reason"]:
                    warn(f"warning: {self.root / INDEX} was {done['reason']}; rebuilt it from the run folders "
                         f"({len(entries)} run(s))")
                entries = [e for e in entries if os.path.normpath(e["path"]) != rel]
                entries.append({**summary, "experiment": experiment, "run_id": run_id, "path": rel})
                write_atomic(self.root / INDEX, json.dumps(entries, indent=1).encode())
        finally:
            pending.unlink(missing_ok=True)
        return final

    def run_dir(self, entry: dict[str, Any]) -> Path:
        return self.root / entry["path"]


def run_summary(report: dict[str, Any]) -> dict[str, Any]:
    """A run's index entry, less its experiment, run id and path: read from its report.json (the
    pipeline indexes a new run with the same function)."""
    if not isinstance(report, dict):
        raise ValueError(f"expected an object, got {type(report).__name__}")
    decision = report.get("decision")
    metrics = report.get("metrics")
    primary = next((m for m in metrics if isinstance(m, dict) and m.get("role") == "primary"), None) \
        if isinstance(metrics, list) else None
    return {"created": report.get("created"), "mode": report.get("mode"),
            "decision": decision.get("decision") if isinstance(decision, dict) else None,
            # the arm to promote, named for A/B/n runs (a two-arm run's is its treatment)
            "arm": decision.get("arm") if isinstance(decision, dict) and report.get("comparisons") else None,
            "primary_metric": primary.get("metric") if primary else None,
            "primary_rel_effect": primary.get("rel_effect") if primary else None,
            "config_sha256": report.get("config_sha256")}


def _order(entry: dict[str, Any]) -> tuple[str, str]:
    return str(entry.get("created") or ""), str(entry.get("run_id") or "")


def _quiet(_: str) -> None:
    pass


def _subfolders(parent: Path) -> list[Path]:
    """Sub-folders that are not the store's own (dot-names: temporary folders, the lock)."""
    try:
        return sorted(d for d in parent.iterdir() if not d.name.startswith(".") and d.is_dir())
    except OSError:
        return []


def _pid_alive(name: str) -> bool:
    pid = name.rsplit(".", 1)[-1]
    return pid.isdigit() and _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
