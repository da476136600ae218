"""Streamlit's AppTest runs the app as ``sys.modules["__main__"]`` and leaves it there; a later test
that spawns processes (multiprocessing re-runs the parent's ``__main__`` file in each child) would then
run the dashboard app in its workers. Every test here gives the real ``__main__`` back."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_main_module() -> Iterator[None]:
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main
