"""The pipeline next to a results store written by an earlier version of the platform."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SMALL_RUN_YAML, WORLD_YAML, world_cache


def _to_old_format(report: dict) -> dict:
    """report.json as the platform wrote it before the typed Report: SRM rows by segment with one
    ``n_<arm>`` column per arm, no decision checks, no top-level alpha."""
    for s in report["srm_by_segment"]:
        s.update({f"n_{arm}": n for arm, n in s.pop("units").items()})
    report["decision"].pop("checks")
    report.pop("alpha")
    return report


@pytest.mark.slow
def test_an_unreadable_paired_run_does_not_crash_the_gate(small_run, small_world, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(small_run.parents[1], results)
    index = json.loads((results / "index.json").read_text())
    assert [e["experiment"] for e in index] == ["small"]
    index[0]["mode"] = "online"  # the earlier run is now the online half of the pair
    (results / "index.json").write_text(json.dumps(index))
    old = results / index[0]["path"] / "report.json"
    old.write_text(json.dumps(_to_old_format(json.loads(old.read_text()))))
    cache = world_cache(small_world, tmp_path / "cache")
    (tmp_path / "small.yaml").write_text(SMALL_RUN_YAML.format(world=WORLD_YAML, cache=cache))
    res = subprocess.run([sys.executable, "-m", "abplatform.cli", "gate", "small.yaml", "--results", str(results)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.returncode != 1 or "HOLD" in res.stdout, res.stdout + res.stderr
    assert "warning: skipping paired run" in res.stderr and str(old) in res.stderr, res.stderr[-2000:]


@pytest.mark.slow
def test_report_tests_heterogeneity_and_keeps_each_segment_values_daily_looks(small_run):
    """Cochran's Q of every metric × segment is recomputed from the report's own segment rows (its
    abs_effect and abs_se), Holm across the segment's metrics; every segment value's daily looks end on
    the segment table's row (cumulative: the last day is the whole period)."""
    import numpy as np
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    from abplatform.report.model import Report
    from abplatform.stats.heterogeneity import cochran_q

    rep = Report.from_json((small_run / "report.json").read_text())
    metrics = [m.metric for m in rep.metrics]
    assert [(h.segment, h.metric) for h in rep.heterogeneity] == [("query_segment", m) for m in metrics]
    for h in rep.heterogeneity:
        cells = [s for s in rep.segments if (s.segment, s.metric) == (h.segment, h.metric)]
        assert len(cells) == 3 and all(s.abs_se is not None for s in cells)
        again = cochran_q(np.array([s.abs_effect for s in cells], dtype=float),
                          np.array([s.abs_se for s in cells], dtype=float))
        assert h.q == pytest.approx(again.q, rel=1e-12) and h.p_value == pytest.approx(again.p_value, rel=1e-9)
        assert (h.df, h.cells, h.cells_not_estimable) == (again.df, again.cells, again.cells_not_estimable) == (2, 3, 0)
        assert (h.treatment, h.control) == ("treatment", "control")
        assert h.values_per_unit is not None and h.values_per_unit > 1  # a user's sessions span query frequencies
    holm = multipletests([h.p_value for h in rep.heterogeneity], method="holm")[1]
    assert [h.p_value_adjusted for h in rep.heterogeneity] == pytest.approx(list(holm), rel=1e-12)
    assert [h.differs for h in rep.heterogeneity] == [p < rep.alpha for p in holm]
    assert rep.comparison_list()[0].heterogeneity == rep.heterogeneity

    days = sorted({d.day for d in rep.daily})
    series = {(s.metric, s.segment, s.segment_value): s for s in rep.daily_segments}
    assert len(series) == len(rep.segments) == len(metrics) * 3
    for seg in rep.segments:
        s = series[(seg.metric, seg.segment, seg.segment_value)]
        assert s.days == days  # every value has users from the first day on in this world
        assert (s.n_control[-1], s.n_treatment[-1]) == (seg.n_control, seg.n_treatment)
        for col in ("control_value", "treatment_value", "rel_effect", "p_value", "rel_ci_low", "rel_ci_high"):
            want = getattr(seg, col)  # None: the open side of a guardrail's one-sided interval
            got = getattr(s, col)[-1]
            assert got is None if want is None else got == pytest.approx(want, rel=1e-9), (col, seg.metric)
        assert all(a <= b for a, b in zip(s.n_control, s.n_control[1:], strict=False))  # cumulative
    # every column of every look in the run folder, and the report's series are its relative columns
    table = pd.read_parquet(small_run / "daily_segments.parquet")
    assert len(table) == len(series) * len(days)
    last = table[table["day"] == days[-1]].set_index(["metric", "segment_value"])
    for seg in rep.segments:
        assert last.loc[(seg.metric, seg.segment_value), "abs_effect"] == pytest.approx(seg.abs_effect, rel=1e-9)
    assert "Does the effect differ across a segment's values?" in (small_run / "report.md").read_text()
    for h in rep.heterogeneity:
        assert f"query_segment · {h.metric}: Q = {h.q:.2f} on 2 df" in (small_run / "report.md").read_text()


@pytest.mark.slow
def test_report_carries_pre_period_balance_and_each_days_sample_ratio(small_run):
    """The health checks of a real run: the pre-period A/A test of every metric (Welch on the pre-period
    per-unit values, from the run's own sufficient statistics; Holm across the metrics) and the sample
    ratio of each day's new users (they add up to the overall units; each day tested against 50/50)."""
    import numpy as np
    import pandas as pd
    from scipy import stats as sps

    from abplatform.report.model import Report
    from abplatform.report.render import markdown
    from abplatform.stats import srm_test
    from abplatform.stats.multiple import holm

    rep = Report.from_json((small_run / "report.json").read_text())
    suff = pd.read_parquet(small_run / "sufficient_stats.parquet")
    suff = suff[suff["segment"] == "all"].set_index(["metric", "arm"])
    assert [b.metric for b in rep.balance] == [m.metric for m in rep.metrics]
    assert rep.comparison_list()[0].balance == rep.balance
    for b in rep.balance:
        assert (b.treatment, b.control, b.threshold) == ("treatment", "control", 0.001)
        if b.type == "ratio":
            continue
        arms = {}
        for arm in ("control", "treatment"):
            r = suff.loc[(b.metric, arm)]
            mean = r["sum_xp"] / r["n"]
            arms[arm] = (mean, np.sqrt((r["sum_xp2"] - r["sum_xp"] ** 2 / r["n"]) / (r["n"] - 1)), r["n"])
        ref = sps.ttest_ind_from_stats(*arms["treatment"], *arms["control"], equal_var=False)
        assert b.p_value == pytest.approx(ref.pvalue, rel=1e-9) and b.t == pytest.approx(ref.statistic, rel=1e-9)
        assert b.control_pre_value == pytest.approx(arms["control"][0])
    assert [b.p_value_adjusted for b in rep.balance] == pytest.approx(list(holm(np.array([b.p_value for b in
                                                                                        rep.balance]))))
    assert not any(b.failed for b in rep.balance)  # a randomised split

    days = sorted({d.day for d in rep.daily})
    assert [d.day for d in rep.srm_by_day] == days
    for arm in ("control", "treatment"):
        assert sum(d.units[arm] for d in rep.srm_by_day) == rep.srm.units[arm]
    first = sorted((d for d in rep.daily if d.metric == rep.metrics[0].metric), key=lambda d: d.day)
    assert [d.units["control"] for d in rep.srm_by_day] == list(np.diff([0] + [d.n_control for d in first]))
    for d in rep.srm_by_day:
        assert d.p_value == pytest.approx(srm_test(d.units, {"control": 1.0, "treatment": 1.0}).p_value)
    assert [d.p_value_adjusted for d in rep.srm_by_day] == pytest.approx(
        list(holm(np.array([d.p_value for d in rep.srm_by_day]))))
    md = markdown(rep)
    assert "Pre-period balance (A/A check" in md and ": ok (smallest Holm p" in md
    assert f"Holm across {len(days)} days" in md
    # an older report.json (before the health checks) still reads, with empty sections
    old = json.loads((small_run / "report.json").read_text())
    for k in ("balance", "srm_by_day"):
        old.pop(k)
    again = Report.from_dict(old)
    assert again.balance == [] and again.srm_by_day == []
    assert "Pre-period balance: not evaluated" in markdown(again)
