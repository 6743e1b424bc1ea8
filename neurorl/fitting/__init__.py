"""Fitting: likelihoods, estimators, model comparison, recovery and predictive checks.

``import neurorl`` does not import this package; ``import neurorl.fitting`` does (PyTensor is imported when a
likelihood is first compiled).
"""

from .bayes import HierarchicalBayes, fit_bayes
from .compare import BMSResult, bms, compare_table, dirichlet_exceedance, plot_bms
from .joint import WithRT, with_rt
from .loo import laplace_loo, loo_compare
from .mle import EMMAP, MAP, MLE, FitWarning
from .observation import LognormalRT, WienerRT, probit_logp, softmax_logp
from .ppc import plot_ppc, predictive_check
from .recovery import model_recovery, parameter_recovery, plot_model_recovery, plot_parameter_recovery
from .wiener import wiener_logpdf, wiener_p_upper

__all__ = [
    "HierarchicalBayes", "fit_bayes", "WithRT", "with_rt", "laplace_loo", "loo_compare",
    "BMSResult", "bms", "compare_table", "dirichlet_exceedance", "plot_bms",
    "EMMAP", "MAP", "MLE", "FitWarning",
    "LognormalRT", "WienerRT", "probit_logp", "softmax_logp",
    "plot_ppc", "predictive_check",
    "model_recovery", "parameter_recovery", "plot_model_recovery", "plot_parameter_recovery",
    "wiener_logpdf", "wiener_p_upper",
]
