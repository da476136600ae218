"""`data.engine: spark` in an experiment runs the same metrics SQL and replay on Spark, with the same numbers."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'abplatform[spark]')")

from abplatform.pipeline import run_offline  # noqa: E402
from tests.conftest import WORLD_YAML, world_cache  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")]


def test_experiment_on_spark_matches_duckdb(small_world, tmp_path):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    cache = world_cache(small_world, tmp_path / "cache")
    reports = {}
    for engine in ("duckdb", "spark"):
        f = tmp_path / f"{engine}.yaml"
        f.write_text(f"""name: engines_{engine}
data:
  world: {WORLD_YAML}
  cache_dir: {cache}
  engine: {engine}
arms: [{{name: control, ranker: v1}}, {{name: treatment, ranker: v2}}]
randomisation: {{salt: same-salt}}
simulation: {{behaviour: oracle, workers: 1}}
segments: [query_segment]
decision: {{latency_margin: null}}
""")
        reports[engine] = run_offline(f, tmp_path / "results")[1].to_dict()
    assert reports["duckdb"]["metrics"] and reports["duckdb"]["segments"] and reports["duckdb"]["daily"]
    for key in ("metrics", "segments", "srm_by_segment", "daily"):
        a, b = reports["duckdb"][key], reports["spark"][key]
        assert len(a) == len(b)
        for ra, rb in zip(a, b):
            assert ra.keys() == rb.keys()
            for k in ra:
                if isinstance(ra[k], float):
                    assert rb[k] == pytest.approx(ra[k], rel=1e-9, abs=1e-12), (key, k)
                else:
                    assert ra[k] == rb[k], (key, k)
