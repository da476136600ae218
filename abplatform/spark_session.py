"""The Spark session both Spark paths use (the metrics SQL and the replay executor), and the
experiment's ``data.spark`` settings (``{master, conf}``).

Spark needs ``pip install 'abplatform[spark]'`` (pyspark >= 4) and Java 17; importing this module
does not (pyspark is imported when a session is made).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from abplatform.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("duckdb", "spark")

DEFAULT_MASTER = "local[2]"

# Settings every session gets (a caller's conf may override them for the session as a whole, but
# SparkMetricsEngine re-applies the spark.sql ones to its own isolated session).
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",  # days are UTC days (the contract's ts is UTC)
    "spark.sql.ansi.enabled": "true",  # overflow and bad casts fail loudly instead of wrapping
    "spark.ui.showConsoleProgress": "false",
}
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
}


def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, Any] | None = None,
                  app_name: str = "abplatform") -> SparkSession:
    """A Spark session for ``master`` (``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://...``).

    For local masters the driver binds to 127.0.0.1 and the Python workers run this interpreter,
    so they import the same abplatform and pyarrow. Reuses an active session (``getOrCreate``);
    settings that only apply at JVM start-up (e.g. ``spark.driver.memory``) are then ignored.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("engine: spark needs pyspark (pip install 'abplatform[spark]') and Java 17") from None
    # pyspark 4.3 warns about pandas 3 wherever it checks the pandas version; abplatform hands Spark
    # results over as Arrow and never through pyspark's pandas paths.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    local = master.startswith("local")
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    settings = {**BASE_CONF, **(LOCAL_CONF if local else {}), **{k: str(v) for k, v in (conf or {}).items()}}
    builder = SparkSession.builder.master(master).appName(app_name)
    for k, v in settings.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_options(settings: Any) -> dict[str, Any]:
    """``{master?, conf}`` from the experiment's ``data.spark`` (a dict, its pydantic model, or None),
    as keyword arguments of :func:`spark_session`."""
    if settings is None:
        return {"conf": {}}
    if hasattr(settings, "model_dump"):
        settings = settings.model_dump()
    if not isinstance(settings, Mapping):
        raise InputError(f"spark settings must be a mapping with master and conf, got {type(settings).__name__}")
    unknown = sorted(set(settings) - {"master", "conf"})
    if unknown:
        raise InputError(f"spark settings: unknown field {unknown[0]!r} (expected master, conf)")
    out: dict[str, Any] = {"conf": settings.get("conf") or {}}
    if settings.get("master") is not None:
        out["master"] = settings["master"]
    return out
