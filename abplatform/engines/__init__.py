"""Execution engines for the metrics SQL and the replay: duckdb (built in) and Apache Spark
(``pip install 'abplatform[spark]'``). Both run the same ``sql/`` and the same replay code and give
the same numbers; choose with the experiment's ``data.engine`` (``duckdb`` | ``spark``) and
``data.spark`` (``{master, conf}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from abplatform.dataset import Dataset
from abplatform.errors import InputError
from abplatform.metrics.engine import MetricsEngine

ENGINES = ("duckdb", "spark")


def _settings(spark_settings: Any) -> dict[str, Any]:
    """``{master, conf}`` from a dict, a pydantic model or None."""
    if spark_settings is None:
        return {}
    if hasattr(spark_settings, "model_dump"):
        spark_settings = spark_settings.model_dump()
    if not isinstance(spark_settings, Mapping):
        raise InputError(f"spark settings must be a mapping with master and conf, got {type(spark_settings).__name__}")
    unknown = sorted(set(spark_settings) - {"master", "conf"})
    if unknown:
        raise InputError(f"spark settings: unknown field {unknown[0]!r} (expected master, conf)")
    out = {k: v for k, v in spark_settings.items() if v is not None}
    return out


def _spark_module():
    try:
        from abplatform.engines import spark
    except ImportError:
        raise InputError("engine: spark needs pyspark (pip install 'abplatform[spark]') and Java 17") from None
    return spark


def make_metrics_engine(dataset: Dataset, engine: str = "duckdb", spark_settings: Any = None,
                        *args: Any, **kwargs: Any) -> MetricsEngine:
    """The metrics engine for ``engine``: same public methods and output frames either way.

    ``spark_settings``: ``{master, conf}`` (a dict or the config's ``data.spark`` model, None for
    local[2]). Further arguments are :class:`MetricsEngine`'s (``metrics``, ``threads``,
    ``extra_segments``, ...), passed on unchanged to either engine."""
    if engine == "duckdb":
        return MetricsEngine(dataset, *args, **kwargs)
    if engine == "spark":
        s = _settings(spark_settings)
        opts = {"master": s["master"]} if "master" in s else {}
        return _spark_module().SparkMetricsEngine(dataset, *args, conf=s.get("conf") or {}, **opts, **kwargs)
    raise InputError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")


def make_replay(engine: str = "duckdb", spark_settings: Any = None) -> Callable[..., Any]:
    """A function with :func:`abplatform.simulate.replay`'s signature ``(dataset, spec, out_dir, progress=None)``
    running the partitions locally (worker processes) or as Spark tasks. Same files either way."""
    if engine == "duckdb":
        from abplatform.simulate import replay

        return replay
    if engine == "spark":
        s = _settings(spark_settings)
        mod = _spark_module()
        kwargs = {"master": s["master"]} if "master" in s else {}

        def run(dataset: Dataset, spec, out_dir: str | Path, progress=None):
            return mod.spark_replay(dataset, spec, out_dir, progress=progress, conf=s.get("conf") or {}, **kwargs)

        return run
    raise InputError(f"unknown engine {engine!r} (expected one of {', '.join(ENGINES)})")


__all__ = ["ENGINES", "make_metrics_engine", "make_replay"]
