"""Replay partitions as Spark tasks: the :class:`~abplatform.replay.run.Executor` for ``engine: spark``.

The replay's own partition function runs once per co-partitioned (sessions, candidates) file pair
as a Spark task (``mapInArrow`` over a DataFrame of partition indices), with the replay state
broadcast once. Every random draw is keyed by (seed, session id), so the files it writes are the
files a local replay writes. Executors read the input files and write the output files by path,
so the dataset and the output folder must be on storage every executor mounts at the same path
(local disk for ``local[N]``; NFS / a FUSE mount of the lake on a cluster).

Needs ``pip install 'abplatform[spark]'`` (pyspark >= 4) and Java 17.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from abplatform.replay.run import Partition, PartitionFn, PartitionResult, ReplayState
from abplatform.spark_session import DEFAULT_MASTER, spark_session

# isort: split
# pyspark after spark_session, whose import raises a friendly ImportError when pyspark is missing
from pyspark.sql import SparkSession

_RESULT_SCHEMA = pa.schema([("index", pa.int64()), ("result", pa.string())])
_RESULT_DDL = "index BIGINT, result STRING"
REPLAY_JOB_GROUP = "abplatform-replay"


def _partition_task(fn: PartitionFn, state_bc, parts: list[Partition]) -> Callable:
    """The ``mapInArrow`` function: ``fn(state, part)`` on each partition index it receives."""

    def run(batches):
        for batch in batches:
            for i in batch.column(0).to_pylist():
                result = fn(state_bc.value, parts[i])
                yield pa.RecordBatch.from_pylist([{"index": i, "result": json.dumps(result)}], schema=_RESULT_SCHEMA)

    return run


def _absolute(part: Partition) -> Partition:
    index, sessions_file, candidates_file = part
    return index, os.path.abspath(sessions_file), os.path.abspath(candidates_file)


class SparkExecutor:
    """One Spark job per replay: one task per partition (``workers`` is the cluster's business)."""

    def __init__(self, spark: SparkSession | None = None, master: str = DEFAULT_MASTER,
                 conf: Mapping[str, Any] | None = None):
        self.spark = spark if spark is not None else spark_session(master, conf)

    def map(self, fn: PartitionFn, state: ReplayState, parts: Sequence[Partition]) -> Iterator[PartitionResult]:
        parts = [_absolute(p) for p in parts]
        state = dataclasses.replace(state, out=Path(os.path.abspath(state.out)))
        sc = self.spark.sparkContext
        bc = sc.broadcast(state)
        sc.setJobGroup(REPLAY_JOB_GROUP, f"abplatform replay: {len(parts)} partitions")
        try:
            rows = (self.spark.range(0, len(parts), 1, numPartitions=len(parts))
                    .mapInArrow(_partition_task(fn, bc, parts), _RESULT_DDL).toArrow().to_pylist())
        finally:
            # None removes a local property (Spark's setLocalProperty); pyspark's annotation says str
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            sc.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]
            bc.destroy()
        for r in sorted(rows, key=lambda r: r["index"]):
            yield tuple(json.loads(r["result"]))
