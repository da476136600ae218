"""The replay executor for an experiment's ``data.engine``: worker processes (duckdb, the default)
or Spark tasks. The replayed files are the same either way."""

from __future__ import annotations

from typing import Any

from abplatform.errors import InputError
from abplatform.replay.run import Executor, LocalExecutor
from abplatform.spark_session import ENGINES, spark_options


def make_executor(engine: str = "duckdb", spark_settings: Any = None, workers: int = 1) -> Executor:
    """Local worker processes for ``duckdb``; one Spark job (``{master, conf}``) for ``spark``."""
    if engine == "duckdb":
        return LocalExecutor(workers)
    if engine == "spark":
        options = spark_options(spark_settings)
        try:
            from abplatform.replay.spark_executor import SparkExecutor
        except ImportError:
            raise InputError("engine: spark needs pyspark (pip install 'abplatform[spark]') and Java 17") from None
        return SparkExecutor(**options)
    raise InputError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
