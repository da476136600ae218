"""The metrics engine for an experiment's ``data.engine``: duckdb (built in) or Apache Spark
(``pip install 'abplatform[spark]'``). Both run the same ``sql/`` and give the same numbers."""

from __future__ import annotations

from typing import Any

from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.metrics.engine import MetricsEngine
from abplatform.spark_session import ENGINES, spark_options


def make_metrics_engine(dataset: Dataset, engine: str = "duckdb", spark_settings: Any = None,
                        *args: Any, **kwargs: Any) -> MetricsEngine:
    """The metrics engine for ``engine``: same public methods and output frames either way.

    ``spark_settings``: ``{master, conf}`` (a dict or the config's ``data.spark`` model, None for
    local[2]). Further arguments are :class:`MetricsEngine`'s (``metrics``, ``threads``,
    ``extra_segments``, ...), passed on unchanged to either engine."""
    if engine == "duckdb":
        return MetricsEngine(dataset, *args, **kwargs)
    if engine == "spark":
        options = spark_options(spark_settings)
        try:
            from abplatform.metrics.spark_engine import SparkMetricsEngine
        except ImportError:
            raise InputError("engine: spark needs pyspark (pip install 'abplatform[spark]') and Java 17") from None
        return SparkMetricsEngine(dataset, *args, **options, **kwargs)
    raise InputError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")
