"""Readers (the dashboard's loader) never see an error or a torn run while runs are being written.

Two writer processes publish runs through ``ResultsStore.write_run`` with a slow fake writer (so
the windows between files are wide); two reader processes and a reader thread loop over the index
and every indexed run's ``report.json`` and files the whole time. Every read must parse, every
indexed run must be complete and match its index entry, the index must only ever grow, and at
the end it must hold every run of both writers (no lost update under the index lock).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import threading
import time
from pathlib import Path

import pytest

from abplatform.dashboard_data import read_config, read_index, read_report
from abplatform.store import ResultsStore, new_run_id
from tests.report.factory import metric, report

RUNS_PER_WRITER = 12
FILES = ("scorecard.parquet", "segments.parquet", "daily.parquet")
METRICS = 8  # per report.json: a few kB, several write() calls


def _payload(run_id: str, name: str) -> bytes:
    return hashlib.sha256(f"{run_id}/{name}".encode()).digest() * 4096  # 128 kB, content tied to the run


def writer(root: str, experiment: str, seed: int) -> None:
    store = ResultsStore(root)
    for k in range(RUNS_PER_WRITER):
        run_id = f"{new_run_id()}-{seed}-{k}"

        def write(tmp: Path) -> None:
            for name in FILES:
                (tmp / name).write_bytes(_payload(run_id, name))
                time.sleep(0.005)
            # the digests of the run's files travel in its config.json (the dashboard's other loader)
            files = {n: hashlib.sha256(_payload(run_id, n)).hexdigest() for n in FILES}
            (tmp / "config.json").write_text(json.dumps({"files": files}, indent=2))
            rep = report(experiment=experiment, run_id=run_id, metrics=[metric(rel_effect=0.01 * k)] * METRICS)
            (tmp / "report.json").write_text(rep.to_json())

        store.write_run(experiment, run_id, write, {"created": run_id, "mode": "online", "decision": "hold"})


def read_once(root: str, seen: set[str]) -> int:
    """One pass of the dashboard's loader; raises AssertionError on anything torn or missing."""
    entries = read_index(root)  # the dashboard's reader: parses the index, newest first
    raw = ResultsStore(root).index()
    assert isinstance(raw, list)
    ids = {e["run_id"] for e in entries}
    assert seen <= ids, f"runs disappeared from the index: {sorted(seen - ids)[:3]}"
    for e in entries:
        report = read_report(root, e["path"])
        assert report["run_id"] == e["run_id"] and report["experiment"] == e["experiment"]
        assert len(report["metrics"]) == METRICS
        run = Path(root) / e["path"]
        files = read_config(root, e["path"])["files"]
        assert set(files) == set(FILES), (e["run_id"], files)
        for name, digest in files.items():
            assert hashlib.sha256((run / name).read_bytes()).hexdigest() == digest, (e["run_id"], name)
    seen |= ids
    return len(entries)


def reader(root: str, stop, out) -> None:
    seen: set[str] = set()
    reads, errors = 0, []
    while not stop.is_set():
        try:
            read_once(root, seen)
            reads += 1
        except Exception as e:  # report every failure, keep reading
            errors.append(f"{type(e).__name__}: {e}")
    out.put({"reads": reads, "errors": errors[:5], "n_errors": len(errors), "seen": len(seen)})


@pytest.mark.slow  # five processes for several seconds
def test_readers_see_no_errors_and_no_torn_runs(tmp_path):
    root = str(tmp_path / "results")
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    readers = [ctx.Process(target=reader, args=(root, stop, out)) for _ in range(2)]
    for p in readers:
        p.start()
    thread_result: dict = {}

    def in_process_reader() -> None:
        seen: set[str] = set()
        thread_result["reads"], thread_result["errors"] = 0, []
        while not stop.is_set():
            try:
                read_once(root, seen)
                thread_result["reads"] += 1
            except Exception as e:
                thread_result["errors"].append(f"{type(e).__name__}: {e}")

    t = threading.Thread(target=in_process_reader)
    t.start()
    writers = [ctx.Process(target=writer, args=(root, f"exp{i % 2}", i)) for i in range(2)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0
    # the readers' last pass must start after the last run was published: wait a few passes' time
    t0 = time.perf_counter()
    read_once(root, set())
    time.sleep(0.2 + 3 * (time.perf_counter() - t0))
    stop.set()
    results = [out.get(timeout=60) for _ in readers]
    for p in readers:
        p.join(timeout=30)
    t.join(timeout=30)
    for r in results + [{"errors": thread_result["errors"], "n_errors": len(thread_result["errors"]),
                         "reads": thread_result["reads"], "seen": None}]:
        assert r["n_errors"] == 0, r["errors"]
        assert r["reads"] > 5, r
    final = ResultsStore(root).index()
    assert len(final) == 2 * RUNS_PER_WRITER == len({e["run_id"] for e in final})
    assert read_once(root, set()) == 2 * RUNS_PER_WRITER
    assert all(r["seen"] == 2 * RUNS_PER_WRITER for r in results)
    # no temporary folders or index files left behind
    leftovers = [p.name for p in Path(root).rglob(".tmp-*")]
    assert not leftovers, leftovers
