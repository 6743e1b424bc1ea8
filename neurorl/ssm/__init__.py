"""Sequential sampling models: drift-diffusion regressions with formulas on every parameter (HDDM/HSSM users' home).

::

    from neurorl.ssm import DDM, predictive_check, plot_qp
    fit = DDM("v ~ 1 + C(stim)", "a ~ 1 + theta:C(conf)", subject="subj_idx").fit(df)     # MAP
    fit = DDM("v ~ 1 + C(stim)", method="nuts").fit(df)                                    # PyMC NUTS
    plot_qp(predictive_check(fit, by="stim"))

See docs/ssm.md ("from HDDM/HSSM to neurorl") and the module docstrings of :mod:`neurorl.ssm.model` (the model and
estimators), :mod:`neurorl.ssm.formula` (formulas, links, priors), :mod:`neurorl.ssm.design` (response coding),
:mod:`neurorl.ssm.kernel` (the compiled likelihood), :mod:`neurorl.ssm.ppc` (simulation and checks),
:mod:`neurorl.ssm.rlddm` (RL-DDM variants for :class:`neurorl.fitting.WithRT`) and :mod:`neurorl.ssm.rlformula`
(formulas on an RL-DDM's parameters, :class:`RLDDM`).
"""

from .model import DDM, SSMWarning
from .ppc import plot_qp, plot_rt_distributions, predictive_check, simulate_ddm
from .rlddm import SigmoidWienerRT
from .rlformula import RLDDM, compile_formulas

__all__ = ["DDM", "RLDDM", "SSMWarning", "SigmoidWienerRT", "compile_formulas", "plot_qp", "plot_rt_distributions",
           "predictive_check", "simulate_ddm"]
