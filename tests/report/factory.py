"""Hand-made typed reports for tests that need a report without running an experiment."""

from __future__ import annotations

from typing import Any

from abplatform.decision import DecisionRule, decide
from abplatform.report.model import DataFingerprint, MetricResult, Report, SrmCheck


def metric(name: str = "item_ctr", role: str = "primary", **kw: Any) -> MetricResult:
    """A metric result; verdict flags and numbers default to "no change"."""
    base = {"metric": name, "role": role, "type": "proportion", "direction": "increase", "n_control": 1000,
            "n_treatment": 1000, "control_value": 0.10, "treatment_value": 0.11, "abs_effect": 0.01,
            "abs_ci_low": -0.002, "abs_ci_high": 0.022, "rel_effect": 0.10, "rel_ci_low": -0.02, "rel_ci_high": 0.22,
            "p_value": 0.03, "p_value_adjusted": 0.03}
    return MetricResult(**{**base, **kw})


def srm(failed: bool = False, p_value: float | None = None) -> SrmCheck:
    return SrmCheck(p_value=(1e-6 if failed else 0.61) if p_value is None else p_value, chi2=23.9 if failed else 0.26,
                    failed=failed, units={"control": 1000, "treatment": 1000})


def report(metrics: list[MetricResult] | None = None, srm_check: SrmCheck | None = None, alpha: float = 0.05,
           rule: DecisionRule | None = None, **kw: Any) -> Report:
    """A complete report whose decision is ``decide`` of its metrics and SRM check."""
    metrics = [metric(improved=True, significant=True)] if metrics is None else metrics
    srm_check = srm_check or srm()
    rule = rule or DecisionRule(alpha=alpha)
    fields = {
        "experiment": "handmade", "run_id": "20260601T000000000000Z", "created": "2026-06-01T00:00:00+00:00",
        "mode": "online", "config_path": "handmade.yaml", "config_sha256": "0" * 64, "abplatform_version": "0.1.0",
        "code_version": "0" * 16, "python": "3.11.7", "seed": 1, "alpha": alpha,
        "source": DataFingerprint(path="logs", rows={"sessions": 2000}, files=1, hash="0" * 32,
                                  first_session="2026-06-01 00:00:00", last_session="2026-06-05 00:00:00"),
        "event_log": "logs", "control": "control", "treatment": "treatment",
        "decision": decide(metrics, srm_check, rule), "srm": srm_check, "metrics": metrics}
    return Report(**{**fields, **kw})
