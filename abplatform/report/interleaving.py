"""The interleaving section of ``report.json``: plain dataclasses (standard library only), rebuilt from
JSON by :mod:`abplatform.report.model` from their type hints.

Filled by :func:`abplatform.offline.interleaving.interleaving_report`, where the statistics are defined.
Numbers that are not finite (no preference, no decisive session) are None. "control" is ranker A,
"treatment" ranker B; a positive preference favours the treatment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(kw_only=True)
class InterleavingSampleSize:
    """Sessions for 80% (``power``) power at the report's alpha: interleaving's sign test against an A/B
    test of item CTR (units split 50/50), each from its own effect and variance measured in the simulation.

    interleaving: d = ((z_{1−α/2}/2 + z_{power} √(q(1−q)))/(q − 1/2))² decisive observations,
    q = treatment_win_share/(treatment_win_share + control_win_share), over the decisive share;
    A/B: N = (z_{1−α/2} + z_{power})² · 2(σ²_control + σ²_treatment)/δ² units, δ the difference in item CTR,
    σ² the per-unit variance of the linearised item CTR. Units become sessions at ``sessions_per_unit``
    (also the interleaving's, when its observations are units). ``ratio`` = ab_sessions / interleaving_sessions.
    """

    power: float
    sessions_per_unit: float
    treatment_win_share: float  # P(an observation is a win for the treatment's team)
    control_win_share: float
    interleaving_sessions: float | None  # the sign test
    interleaving_t_test_sessions: float | None  # the t-test of the preference
    ab_metric: str = "item_ctr"
    ab_control_value: float | None = None
    ab_treatment_value: float | None = None
    ab_control_variance: float | None = None  # per unit
    ab_treatment_variance: float | None = None
    ab_units: float | None = None
    ab_sessions: float | None = None
    ratio: float | None = None


@dataclass(kw_only=True)
class InterleavingResult:
    """One interleaved comparison: credits per session (``credit_rule``), observations per ``unit``.

    ``preference`` = Σ credit / sessions (with wins: (wins_treatment − wins_control)/(wins + losses + ties)
    over sessions), its CI the t interval (cluster-robust per unit); ``sign_test_p_value`` decides
    ``significant``; ``preferred`` is the arm whose team won more observations (None on a tie).
    """

    source: Literal["simulated", "logged"]
    unit: Literal["session", "unit"]
    credit_rule: Literal["wins", "click_difference"]
    control: str
    treatment: str
    alpha: float
    n: int  # observations: sessions or units
    sessions: int
    sessions_with_clicks: int
    sessions_with_credited_clicks: int
    wins_control: int
    wins_treatment: int
    ties: int
    preference: float | None
    preference_ci_low: float | None
    preference_ci_high: float | None
    treatment_win_rate: float | None  # of the decisive observations
    treatment_win_rate_ci_low: float | None
    treatment_win_rate_ci_high: float | None
    sign_test_p_value: float
    t_test_p_value: float
    preferred: str | None
    significant: bool
    sample_size: InterleavingSampleSize | None = None  # simulated only
