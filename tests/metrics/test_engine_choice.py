"""`data.engine: spark` in an experiment runs the same metrics SQL and replay on Spark, with the same numbers."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'abplatform[spark]')")

from abplatform.pipeline import run_offline  # noqa: E402


def test_experiment_on_spark_matches_duckdb(tmp_path):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    reports = {}
    for engine in ("duckdb", "spark"):
        f = tmp_path / f"{engine}.yaml"
        f.write_text(f"""name: engines_{engine}
data:
  world: {{users: 1500, days: 3, pre_days: 2, items: 1500, seed: 5}}
  cache_dir: {tmp_path / 'cache'}
  engine: {engine}
arms: [{{name: control, ranker: v1}}, {{name: treatment, ranker: v2}}]
randomisation: {{salt: same-salt}}
simulation: {{behaviour: oracle, workers: 1}}
segments: [query_segment]
decision: {{latency_margin: null}}
""")
        reports[engine] = run_offline(f, tmp_path / "results")[1]
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
