"""Files the user names on the command line.

Inputs are read once (a pipe or ``/dev/stdin`` works, nothing is opened twice) and at most
:data:`MAX_INPUT` bytes (``/dev/zero`` is refused in one line, not a ``MemoryError``). Outputs are
checked before any work (an output that cannot be written is exit 2 naming it, not a traceback after
the computing) and written all or nothing (beside the target, then renamed). Imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

from abplatform.errors import InputError
from abplatform.store import TMP_PREFIX, write_atomic

MAX_INPUT = 64 << 20  # bytes


def read_input(path: Path, what: str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of ``path`` read once (a file, a pipe or a device), at most ``limit`` of them;
    an :class:`InputError` naming ``path`` when it cannot be read or is larger."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as err:
        raise InputError(f"{path}: cannot read {what}: {err.strerror or err}") from None
    if len(data) > limit:
        raise InputError(f"{path}: too large (more than {limit >> 20} MiB); expected a {what}")
    return data


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written as a file (None when it looks writable)."""
    if path.is_dir():
        return "it is a folder, not a file"
    parent = path.parent
    if not parent.is_dir():
        return f"folder {parent} does not exist" if not parent.exists() else f"{parent} is not a folder"
    if not os.access(path if path.exists() else parent, os.W_OK):
        return "permission denied"
    return None


def check_output(path: Path, label: str = "--out") -> None:
    """An :class:`InputError` naming ``path`` (and the option ``label``) when it cannot be written."""
    reason = unwritable(path)
    if reason:
        raise InputError(f"{label}: cannot write {path}: {reason}")


def write_output(path: Path, data: bytes, label: str = "--out") -> None:
    """Write ``data`` to ``path`` all or nothing: a regular file (or a new one) is written beside it and
    renamed over it; a device or a pipe (``/dev/stdout``, ``/dev/full``) is written to directly. A failure
    (a full disk, no permission) is an :class:`InputError` naming ``path`` and leaves it as it was."""
    check_output(path, label)
    try:
        if path.exists() and not path.is_file():
            with open(path, "wb") as f:
                f.write(data)
        else:
            write_atomic(path, data)
    except OSError as err:
        raise InputError(f"{label}: cannot write {path}: {err.strerror or err}") from None


def unwritable_folder(path: Path) -> str | None:
    """Why files cannot be written into the folder ``path`` (created when missing); None when they can.
    Tries it (a probe file in the folder or its nearest existing parent, removed at once): permissions
    alone say nothing to root, and some folders (``/sys``) are not writable by anyone."""
    if path.exists() and not path.is_dir():
        return "it is a file, not a folder"
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    probe = existing / f"{TMP_PREFIX}probe.{os.getpid()}"  # a dead writer's leftover is cleaned by the store
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as err:
        return (err.strerror or str(err)).lower()
    return None


def check_results(path: Path, label: str = "--results") -> None:
    """An :class:`InputError` naming the results folder ``path`` when runs cannot be written into it."""
    reason = unwritable_folder(path)
    if reason:
        raise InputError(f"{label}: cannot write runs into {path}: {reason}")
