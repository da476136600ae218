"""``abplatform plan``: the numbers against an independent computation from the per-unit rows of the shared
small world (pandas / numpy here, duckdb SQL in the engine), statsmodels' power solvers and a brute-force
accrual fit; the shipped online log's control-arm baseline; the usage of the command (exit 2 for a bad file
or --out before any work, exit 3 without a pre-period)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from statsmodels.stats.power import NormalIndPower

from abplatform.cli import main
from tests.conftest import WORLD_YAML, world_cache

REPO = Path(__file__).resolve().parents[2]

PLAN_YAML = """\
name: small_plan
data: {{world: {world}, cache_dir: {cache}}}
arms: [{{name: control, ranker: v1, weight: 0.6}}, {{name: treatment, ranker: v2, weight: 0.4}}]
metrics:
  - {{name: item_ctr, role: primary, mde: 0.05}}
  - {{name: buyer_conversion, mde: 0.1}}
  - {{name: order_volume}}
statistics: {{alpha: 0.1, cuped: true}}
"""


def plan_cli(*args: str, monkeypatch, capsys) -> tuple[int, str, str]:
    """``abplatform plan ARGS`` in process, through the console entry ``main()`` (its exit codes)."""
    monkeypatch.setattr(sys, "argv", ["abplatform", "plan", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    res = capsys.readouterr()
    return int(exc.value.code or 0), res.out, res.err


@pytest.fixture(scope="module")
def plan_yaml(small_world, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("plan")
    cache = world_cache(small_world, base / "cache")
    path = base / "plan.yaml"
    path.write_text(PLAN_YAML.format(world=WORLD_YAML, cache=cache))
    return path


@pytest.fixture(scope="module")
def planned(plan_yaml) -> dict:
    """The plan's JSON for 10 days at 85% power."""
    from abplatform.planning import plan_experiment

    return json.loads(json.dumps(plan_experiment(plan_yaml, days=10, power=0.85).to_dict()))


def _table(world: Path, name: str, columns: list[str]) -> pd.DataFrame:
    return pq.read_table(world / name, columns=columns).to_pandas()


def _units(world: Path, period: str) -> pd.DataFrame:
    """Per-unit totals of one period, straight from the parquet rows (the test's own reduction)."""
    sessions = _table(world, f"{period}sessions", ["session_id", "unit_id"])
    imps = _table(world, f"{period}impressions", ["session_id", "clicked", "purchased", "orders"])
    per_session = imps.groupby("session_id").agg(impressions=("clicked", "size"), clicks=("clicked", "sum"),
                                                 purchases=("purchased", "sum"), orders=("orders", "sum"))
    joined = sessions.join(per_session, on="session_id").fillna(0)
    return joined.groupby("unit_id")[["impressions", "clicks", "purchases", "orders"]].sum()


def _accrual_curve(world: Path) -> np.ndarray:
    pre = pq.read_table(world / "pre_sessions", columns=["unit_id", "ts"])
    days = pd.to_datetime(pc.cast(pre["ts"], "date32").to_numpy(zero_copy_only=False))
    first = pd.Series(days).groupby(pre["unit_id"].to_numpy(zero_copy_only=False)).min()
    calendar = pd.date_range(days.min(), days.max(), freq="D")
    return first.value_counts().reindex(calendar, fill_value=0).cumsum().to_numpy(dtype=float)


def test_accrual_fit_matches_the_curve_and_a_brute_force_fit(planned, small_world):
    acc = planned["accrual"]
    curve = _accrual_curve(small_world)
    assert acc["observed"] == curve.tolist() and acc["days"] == len(curve) == 3
    d = np.arange(1, len(curve) + 1)
    b_grid = np.arange(0.01, 1.0 + 1e-12, 1e-5)
    a_grid = np.array([(d**b) @ curve / ((d**b) @ (d**b)) for b in b_grid])  # best a for each b
    sse = np.array([np.sum((curve - a * d**b) ** 2) for a, b in zip(a_grid, b_grid, strict=True)])
    best = int(np.argmin(sse))
    assert acc["model"] == "power"
    assert acc["b"] == pytest.approx(b_grid[best], abs=2e-5)
    assert acc["a"] == pytest.approx(a_grid[best], rel=1e-4)
    fitted = acc["a"] * d ** acc["b"]
    assert acc["fitted"] == pytest.approx(fitted.tolist())
    assert acc["rmse_units"] == pytest.approx(np.sqrt(np.mean((curve - fitted) ** 2)))
    # units after 10 days, split 60/40 by the arms' weights; the linear figure for comparison
    u = planned["units"]
    assert u["total"] == pytest.approx(acc["a"] * 10 ** acc["b"])
    assert (u["control"], u["treatment"]) == pytest.approx((0.6 * u["total"], 0.4 * u["total"]))
    assert u["linear_total"] == pytest.approx(curve[-1] / 3 * 10)
    check = acc["check"]
    assert check["days"] == planned["baseline"]["days"] == 5
    assert check["observed_units"] == planned["baseline"]["units"] == len(_units(small_world, ""))


def test_baseline_variance_cuped_and_mde_match_an_independent_computation(planned, small_world):
    exp, pre = _units(small_world, ""), _units(small_world, "pre_")
    pre = pre.reindex(exp.index, fill_value=0)  # units without a pre-period carry 0 (as the engine does)
    rows = {m["metric"]: m for m in planned["metrics"]}
    assert planned["cuped"] is True and planned["baseline"]["arm"] is None  # the world's log carries no arm
    n = len(exp)
    share, alpha, power, total = 0.4, 0.1, 0.85, planned["units"]["total"]
    nc, nt = (1 - share) * total, share * total

    # buyer conversion: a proportion, σ² = p(1 − p); ρ² the squared correlation with the pre-period's
    bc, bc_p = (exp.purchases > 0).to_numpy(float), (pre.purchases > 0).to_numpy(float)
    r = rows["buyer_conversion"]
    assert r["baseline_units"] == n
    assert r["baseline_value"] == pytest.approx(bc.mean())
    assert r["sigma2"] == pytest.approx(bc.mean() * (1 - bc.mean()))
    assert r["rho2"] == pytest.approx(np.corrcoef(bc, bc_p)[0, 1] ** 2, rel=1e-6)
    assert r["variance_factor"] == pytest.approx(1 - r["rho2"])
    es = NormalIndPower().solve_power(nobs1=nc, ratio=nt / nc, alpha=alpha, power=power)
    assert r["mde_abs"] == pytest.approx(es * np.sqrt(r["sigma2"]), rel=1e-4)
    assert r["mde_abs_cuped"] == pytest.approx(es * np.sqrt(r["sigma2"] * (1 - r["rho2"])), rel=1e-4)
    n1 = NormalIndPower().solve_power(effect_size=0.1 * bc.mean() / np.sqrt(r["sigma2"]), alpha=alpha, power=power,
                                      ratio=share / (1 - share))
    assert r["units_needed"] == pytest.approx(n1 / (1 - share), abs=2)
    acc = planned["accrual"]
    assert r["days_needed"] == np.ceil((r["units_needed"] / acc["a"]) ** (1 / acc["b"]))
    assert r["units_needed_cuped"] < r["units_needed"]

    # item CTR: a ratio; ρ² between the linearised values (x − R·y)/ȳ of the two periods
    x, y, xp, yp = (exp.clicks.to_numpy(float), exp.impressions.to_numpy(float), pre.clicks.to_numpy(float),
                    pre.impressions.to_numpy(float))
    ratio, ratio_p = x.sum() / y.sum(), xp.sum() / yp.sum()
    lin, lin_p = (x - ratio * y) / y.mean(), (xp - ratio_p * yp) / yp.mean()
    r = rows["item_ctr"]
    assert r["baseline_value"] == pytest.approx(ratio)
    assert r["sigma2"] == pytest.approx(np.var(lin, ddof=1), rel=2e-3)  # × the small-sample factor k ≈ 1 + O(1/n)
    assert r["rho2"] == pytest.approx(np.corrcoef(lin, lin_p)[0, 1] ** 2, rel=1e-6)

    # order volume: a mean with no mde configured (the MDE after 10 days only)
    r = rows["order_volume"]
    assert r["sigma2"] == pytest.approx(np.var(exp.orders, ddof=1))
    assert r["planned_mde"] is None and r["units_needed"] is None and r["days_needed"] is None


def test_the_table_and_the_json_through_the_command(plan_yaml, planned, tmp_path, monkeypatch, capsys):
    out_file = tmp_path / "plan.json"
    code, out, err = plan_cli(str(plan_yaml), "--days", "10", "--power", "0.85", "--json", "--out", str(out_file),
                              monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert json.loads(out_file.read_text()) == doc
    doc["config_path"] = planned["config_path"]
    assert doc == planned
    code, out, err = plan_cli(str(plan_yaml), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    for needle in ("Power plan: small_plan", "alpha 0.1, power 80%", "5 days", "Accrual (pre-period, 3 days",
                   "U(d) = ", "check on the experiment window", "1 − ρ²", "MDE (CUPED)", "units needed",
                   "item_ctr", "buyer_conversion", "order_volume"):
        assert needle in out, out


def test_the_shipped_online_log_plans_on_its_control_arm(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    code, out, err = plan_cli("experiments/onesearch_online_ab.yaml", "--json", monkeypatch=monkeypatch,
                              capsys=capsys)
    assert code == 0, err
    doc = json.loads(out)
    sessions = pq.read_table(REPO / "experiments/data/onesearch_online_ab/sessions.parquet",
                             columns=["user_id", "variant"]).to_pandas()
    assert doc["baseline"]["arm"] == "control"
    assert doc["baseline"]["units"] == sessions.loc[sessions.variant == "control", "user_id"].nunique()
    assert doc["accrual"]["check"]["observed_units"] == sessions["user_id"].nunique()
    assert doc["days"] == doc["baseline"]["days"] == 7 and doc["cuped"] is True


def test_a_bad_experiment_file_is_exit_2_naming_the_field(plan_yaml, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan_yaml.read_text().replace("mde: 0.05", "mde: -0.05"))
    code, out, err = plan_cli(str(bad), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and out == ""
    assert "metrics[0].mde" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_unwritable_out_is_exit_2_before_any_work(small_world, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    exp = tmp_path / "e.yaml"
    exp.write_text(PLAN_YAML.format(world=WORLD_YAML, cache=cache))  # an empty cache: work would generate a world
    code, out, err = plan_cli(str(exp), "--out", str(tmp_path / "no" / "such" / "plan.json"),
                              monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: --out: cannot write") and "does not exist" in err
    assert list(cache.iterdir()) == []


def _log_copy(small_world: Path, dst: Path) -> Path:
    """A dataset folder of the shared world's tables (hard links: the test replaces, never modifies, a file)."""
    shutil.copytree(small_world, dst, copy_function=os.link, ignore=shutil.ignore_patterns("truth", "world.json"))
    return dst


def _log_yaml(tmp_path: Path, log: Path) -> Path:
    exp = tmp_path / "log.yaml"
    exp.write_text(f"name: log_plan\ndata: {{path: {log}}}\narms: [{{name: control, ranker: v1}}, "
                   "{name: treatment, ranker: v2}]\nmetrics: [{name: buyer_conversion, role: primary, mde: 0.1}]\n")
    return exp


def test_no_pre_period_is_exit_3(small_world, tmp_path, monkeypatch, capsys):
    log = _log_copy(small_world, tmp_path / "log")
    shutil.rmtree(log / "pre_sessions")
    shutil.rmtree(log / "pre_impressions")
    code, out, err = plan_cli(str(_log_yaml(tmp_path, log)), monkeypatch=monkeypatch, capsys=capsys)
    assert code == 3 and out == ""
    last = err.strip().splitlines()[-1]  # after the progress line
    assert last.startswith("cannot evaluate:") and "no pre-period sessions" in last and "Traceback" not in err


def test_a_pre_period_of_two_days_falls_back_to_linear_accrual(small_world, tmp_path, monkeypatch, capsys):
    log = _log_copy(small_world, tmp_path / "log")
    table = pq.read_table(log / "pre_sessions")
    days = pc.cast(table["ts"], "date32")
    kept = table.filter(pc.less(days, pc.max(days)))  # drop the last of the three pre-period days
    impressions = pq.read_table(log / "pre_impressions")
    impressions = impressions.filter(pc.is_in(impressions["session_id"], kept["session_id"]))
    for name, t in (("pre_sessions", kept), ("pre_impressions", impressions)):
        shutil.rmtree(log / name)
        (log / name).mkdir()
        pq.write_table(t, log / name / "part-0.parquet")
    code, out, err = plan_cli(str(_log_yaml(tmp_path, log)), "--json", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    acc = json.loads(out)["accrual"]
    assert acc["model"] == "linear" and acc["days"] == 2 and acc["b"] == 1.0
    assert acc["a"] == pytest.approx(acc["observed"][-1] / 2)
    assert "fewer than 3" in acc["note"]
    code, out, err = plan_cli(str(_log_yaml(tmp_path, log)), monkeypatch=monkeypatch, capsys=capsys)
    assert "linear fallback" in out and "linear accrual" in out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_the_spark_engine_gives_the_same_plan(plan_yaml, planned, tmp_path):
    pytest.importorskip("pyspark", reason="pyspark not installed (pip install 'abplatform[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java 17")
    from abplatform.planning import plan_experiment

    exp = tmp_path / "spark.yaml"
    exp.write_text(plan_yaml.read_text().replace("cache_dir:", "engine: spark, spark: {master: 'local[1]'}, "
                                                               "cache_dir:"))
    doc = json.loads(json.dumps(plan_experiment(exp, days=10, power=0.85).to_dict()))
    assert doc["engine"] == "spark"
    skip = ("config_path", "engine")
    assert _close({k: v for k, v in doc.items() if k not in skip}, {k: v for k, v in planned.items() if k not in skip})


def _close(a, b) -> bool:
    """Equal, numbers to 1e-9 relative (the two engines sum in different orders)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9)
        return True
    assert a == b
    return True
