"""What report.json carries about an off-policy evaluation of a target policy (``analysis: offline_policy``).

Pure Python (dataclasses only), like :mod:`abplatform.report.model`, which rebuilds these from JSON
by their type hints: every field is a plain type (``float | None``, ``int``, ``str``, ``bool``, a
list of numbers or of these dataclasses). A value JSON cannot hold (NaN, infinity) is ``None``.
:func:`abplatform.offline.policy_evaluation.evaluate_policy` fills them from the estimators of
:mod:`abplatform.offline.ope`, whose docstring defines the estimand and the intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class PositionValue:
    """One estimator's value at one position (slot, 1-based as logged): the target's click-through
    rate there, over the logged rows of that slot, with its CI at the report's level."""

    position: int
    value: float | None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_rows: int = 0


@dataclass(kw_only=True)
class PolicyEstimate:
    """One estimator (``ips``, ``snips`` — obp's IPW and SNIPW —, ``dr`` or ``dm``): the value per logged
    row (the estimand), per position, and per page (the sum over the logged positions: expected clicks
    on a full page)."""

    estimator: str
    value: float | None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    per_position: list[PositionValue] = field(default_factory=list)
    page_value: float | None = None
    page_se: float | None = None
    page_ci_low: float | None = None
    page_ci_high: float | None = None


@dataclass(kw_only=True)
class PositionWeights:
    """The importance weights of one position: Kish ESS (sum w)^2 / sum w^2, the share of its
    logged rows whose item the target would show there (mean pi_e(a_i | x_i, k)), and the largest
    single weight's share of the weight mass."""

    position: int
    n_rows: int
    ess: float | None = None
    match_rate: float | None = None
    max_weight_share: float | None = None


@dataclass(kw_only=True)
class OnPolicyValue:
    """The target's own logged value, when it also ran online: mean reward of its logged rows, with a
    CLT interval clustered by session (the check an off-policy estimate should agree with)."""

    value: float | None
    se: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_rows: int = 0
    n_sessions: int = 0


@dataclass(kw_only=True)
class OfflinePolicyEvaluation:
    """An off-policy evaluation of one target policy on one log."""

    estimand: str
    target: str  # what the target is, e.g. "ranker v2 (deterministic pages)" or a table's path
    alpha: float = 0.05
    n_rows: int = 0
    n_sessions: int = 0
    estimates: list[PolicyEstimate] = field(default_factory=list)
    ess: float | None = None  # Kish ESS of all logged rows' weights
    positions: list[PositionWeights] = field(default_factory=list)
    max_weight: float | None = None
    weight_explosion: bool = False  # any reason in warnings is about the weights
    warnings: list[str] = field(default_factory=list)
    on_policy: OnPolicyValue | None = None

    def estimate(self, estimator: str) -> PolicyEstimate | None:
        return next((e for e in self.estimates if e.estimator == estimator), None)
