"""CUPED / regression adjustment with a pre-period covariate, pooled across arms.

Source: Deng, Xu, Kohavi & Walker (2013), "Improving the sensitivity of online controlled
experiments by utilizing pre-experiment data", WSDM; ratio metrics through their linearised
values as in Deng, Knoblich & Lu (2018) (the covariate of a ratio metric is the same ratio in the
pre-period, linearised the same way).

Per arm a:  value_adj = value_a − θ·(pre_value_a − pre_value_pooled)
            var_adj   = var_a − 2θ·cov_a + θ²·pre_var_a     (per unit; Var(value_adj) ≈ var_adj / n_a)
with one θ for both arms, θ = Σ_a (n_a − ddof)·cov_a / Σ_a (n_a − ddof)·pre_var_a — the pooled
within-arm slope, i.e. the common-slope ANCOVA coefficient. The covariate is measured before
treatment, so E[pre_value_t − pre_value_c] = 0 under randomisation and the adjusted difference is
unbiased for any θ (estimating θ costs O(1/n) bias). Units with no pre-period activity carry
xp = yp = 0: that is still a pre-treatment value distributed identically in both arms, so the
estimator stays unbiased; those units just gain no variance reduction. (For ratio metrics whose
pre-period denominator Σyp is 0 in an arm no covariate exists and the row is left unadjusted.)
Rows without covariate sums are left unadjusted (θ = 0, variance_reduction = 0). With the ratio
small-sample correction (``moments``) the adjusted variance is scaled by the same leverage factor k
as the unadjusted one (an approximation: the leverages are those of the unadjusted ratio).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .moments import ArmMoments


@dataclass(frozen=True)
class CupedResult:
    control: ArmMoments
    treatment: ArmMoments
    theta: np.ndarray


def cuped_adjust(control: ArmMoments, treatment: ArmMoments) -> CupedResult:
    """Adjust both arms with the pooled θ; returns adjusted moments and θ per row."""
    with np.errstate(divide="ignore", invalid="ignore"):
        w_c = control.n - control.ddof
        w_t = treatment.n - treatment.ddof
        theta = (w_c * control.cov + w_t * treatment.cov) / (w_c * control.pre_var + w_t * treatment.pre_var)
        pooled = (control.pre_num + treatment.pre_num) / (control.pre_den + treatment.pre_den)
        ok = (np.isfinite(theta) & np.isfinite(pooled) & np.isfinite(control.pre_value)
              & np.isfinite(treatment.pre_value))
        theta = np.where(ok, theta, 0.0)

        def adjust(arm: ArmMoments) -> ArmMoments:
            shift = np.where(ok, theta * (arm.pre_value - pooled), 0.0)
            # arm.var carries the ratio small-sample factor k; scale the covariate terms alike
            var = np.where(ok, arm.var + arm.leverage_factor * (theta**2 * arm.pre_var - 2 * theta * arm.cov), arm.var)
            return replace(arm, value=arm.value - shift, var=var)

        return CupedResult(adjust(control), adjust(treatment), theta)
