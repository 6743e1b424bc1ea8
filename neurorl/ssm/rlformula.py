"""Formulas on the parameters of an RL-DDM (or any agent): compiled to the estimators' trial-wise covariates.

One call::

    from neurorl.ssm import RLDDM
    fit = RLDDM("q_learning", "a ~ 1 + theta", rt=WienerRT(fixed={"w": 0.5})).fit(trials)    # hierarchical EM-MAP
    fit.coefs_        # group coefficients (link scale): a:Intercept, a:theta, and every other parameter
    fit.estimator_    # the neurorl.fitting.EMMAP (or HierarchicalBayes) that ran: result_, params_, evidence ...
    RLDDM("q_learning", "a ~ 1 + theta", "v_scale ~ 1 + C(cond)", method="nuts").fit(trials)   # PyMC NUTS

Design (one definition of everything)
-------------------------------------
The RL-DDM is :class:`neurorl.fitting.WithRT` -- the agent's own learning rule and the Wiener density of
:mod:`neurorl.fitting.wiener` (through :class:`~neurorl.fitting.observation.WienerRT` or
:class:`~neurorl.ssm.SigmoidWienerRT`). A formula does not add a model: :func:`compile_formulas` evaluates its
right-hand side with ``patsy`` on the valid trials (``C()``, interactions, functions as in :mod:`neurorl.ssm.formula`)
and hands every design column except the intercept to the estimators' ``covariates=`` mechanism
(:mod:`neurorl.fitting.mle` [A11], :mod:`neurorl.fitting.bayes` [A8])::

    param_t = transform(theta_param + sum_c theta_param_c * x_ct)

so the intercept is the parameter's own row and each column a slope row. ``transform`` is the parameter's
(:mod:`neurorl.params`: log for ``a`` and ``v_scale``, logit for ``w``, a logit scaled to (0, 2 s) for ``t0``),
which plays the role of the link. The estimators then do the rest, hierarchically:

* ``method="emmap"`` (default): :class:`neurorl.fitting.EMMAP`, a Gaussian group distribution over subjects for
  every row (intercepts *and* slopes; Huys et al. 2011), each subject fitted by MAP under it with the exact
  gradients and Hessians of the compiled likelihood.
* ``method="nuts"``: :func:`neurorl.fitting.bayes.fit_bayes`, non-centred subject effects for every row
  (``theta_i = group_mean + group_sd * offset_i``) sampled by NUTS.

Every coefficient therefore varies by subject (``(1 + terms | subject)`` with independent effects): a formula may
write that random part or leave it out, but a different one (a subset of terms, or none with
``hierarchical=False``) is refused, since the estimators give every row a subject distribution.

Assumptions
-----------
[A1] A formula must keep its intercept (the parameter's own row): ``0 + C(cond)`` is refused with a message; write
     ``1 + C(cond)`` (treatment coding: the intercept is the first level).
[A2] Design columns are computed on the valid trials and set to 0 on the others (the estimators ignore them there).
     A new trials variable is added for every column that is not already a variable (named ``f"{param}__{col}"``
     with non-alphanumerics replaced by ``_``); the slope rows are then ``f"{param}_{variable}"``.
[A3] ``z`` is accepted for the Wiener start point ``w`` (and ``v`` is refused: the drift is ``v_scale`` times the
     value difference, give ``v_scale`` a formula).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pandas as pd
import xarray as xr

from .formula import _design, parse_formula

__all__ = ["RLDDM", "compile_formulas"]

_ALIASES = {"z": "w"}


def _valid_table(trials: xr.Dataset, subject: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The valid trials as a table of every (subject, trial) variable, and the (subject, trial) mask."""
    valid = trials["valid"].values.astype(bool)
    cols = {"subject": np.broadcast_to(trials[subject].values[:, None], valid.shape)[valid]}
    for name, var in trials.data_vars.items():
        if var.dims == (subject, "trial"):
            cols[str(name)] = var.values[valid]
    return pd.DataFrame(cols), valid


def compile_formulas(trials: xr.Dataset, formulas, agent, *, subject: str = "subject"):
    """Turn formulas on an agent's parameters into trials variables and the estimators' ``covariates``.

    Parameters
    ----------
    trials : xarray.Dataset
        A trials dataset (dims ``subject, trial``) holding the covariates the formulas name.
    formulas : iterable of str
        ``"param ~ rhs"`` for free parameters of ``agent`` (module docstring).
    agent : Agent
        The agent (e.g. a :class:`neurorl.fitting.WithRT`).
    subject : str

    Returns
    -------
    trials : xarray.Dataset
        ``trials`` with a variable per derived design column ([A2]).
    covariates : dict
        ``{param: [variable, ...]}`` for ``covariates=`` of MAP, EMMAP and ``fit_bayes``.
    coefs : dict
        ``{layout row name: coefficient name}``: ``param`` -> ``"param:Intercept"``, each slope row ->
        ``"param:column"`` (patsy's column name).
    """
    free = list(agent.param_names)
    covariates, coefs, new = {}, {}, {}
    table, valid = _valid_table(trials, subject)
    seen = set()
    for text in formulas:
        if not isinstance(text, str) or "~" not in text:
            raise ValueError(f"RLDDM: formulas are strings 'param ~ rhs', got {text!r}")
        lhs = text.split("~", 1)[0].strip()
        param = _ALIASES.get(lhs, lhs) if lhs not in free else lhs
        if lhs == "v" and "v" not in free:
            raise ValueError(f"RLDDM formula {text!r}: the RL-DDM's drift is v_scale times the value difference; "
                             "give v_scale (the drift scaling) a formula")
        if param not in free:
            fixed = sorted(getattr(agent, "fixed", {}) or {})
            raise ValueError(f"RLDDM formula {text!r}: {lhs!r} is not a free parameter of {agent.name!r} (free: "
                             f"{free}{'; fixed: ' + str(fixed) if fixed else ''})")
        if param in seen:
            raise ValueError(f"RLDDM: two formulas for {param!r}")
        seen.add(param)
        # parse_formula checks the (terms|subject) syntax; it knows the DDM's parameter names, so parse as 'v'
        f = parse_formula("v ~ " + text.split("~", 1)[1], subject=subject, hierarchical=False)
        X, cols, _ = _design(f.fixed, table, None, text)
        if "Intercept" not in cols:
            raise ValueError(f"RLDDM formula {text!r}: it has no intercept; the intercept is the parameter's own "
                             "row, so write it with one (e.g. '1 + C(cond)', treatment coding)")
        if f.random is not None:
            _, rcols, _ = _design(f.random, table, None, text)
            if list(rcols) != list(cols):
                raise ValueError(f"RLDDM formula {text!r}: every coefficient of an RL-DDM varies by subject (the "
                                 f"estimators give every row a subject distribution), so the subject part must be "
                                 f"({f.fixed}|{subject}) or left out; got ({f.random}|{subject})")
        coefs[param] = f"{param}:Intercept"
        names = []
        for j, c in enumerate(cols):
            if c == "Intercept":
                continue
            if c in trials.data_vars and trials[c].dims == (subject, "trial") and np.allclose(
                    np.asarray(trials[c].values, float)[valid], X[:, j]):
                var = c
            else:
                var = f"{param}__" + re.sub(r"[^0-9A-Za-z]+", "_", c).strip("_")
                if var in trials.data_vars or var in new:
                    raise ValueError(f"RLDDM formula {text!r}: the variable {var!r} for column {c!r} already exists")
                full = np.zeros(valid.shape)
                full[valid] = X[:, j]
                new[var] = ((subject, "trial"), full)
            names.append(var)
            coefs[f"{param}_{var}"] = f"{param}:{c}"
        if names:
            covariates[param] = names
    return trials.assign(new) if new else trials, covariates, coefs


class RLDDM:
    """An RL-DDM (any agent with a Wiener RT model) whose parameters take formulas over trial covariates.

    Parameters
    ----------
    agent : Agent or str
        The learning agent (e.g. ``"q_learning"`` or ``make_agent("q_learning", dual_rates=True)``).
    *formulas : str
        ``"param ~ rhs"`` on any free parameter of the joint model: ``a``, ``t0``, ``w`` (or ``z``), ``v_scale``
        (``v_max``, ``v_mod`` with the sigmoid drift), ``sv``, and the agent's own (``alpha``, ...).
    rt : RT model, optional
        Default :class:`neurorl.fitting.observation.WienerRT` (``w`` free); e.g. ``WienerRT(fixed={"w": 0.5})`` or
        :class:`neurorl.ssm.SigmoidWienerRT`.
    method : {"emmap", "nuts"}
        Hierarchical EM-MAP or NUTS (module docstring).
    subject : str
    rng : int, Generator or None
    progress : bool
    **options
        Passed to :class:`neurorl.fitting.EMMAP` (``n_starts``, ``max_em_iter``, ...) or
        :func:`neurorl.fitting.bayes.fit_bayes` (``draws``, ``tune``, ``chains``, ``sampler``, ...).

    Attributes
    ----------
    coefs_ : xarray.Dataset
        Group coefficients over ``coef`` (``"a:Intercept"``, ``"a:theta"``, and each other parameter's name), on the
        unconstrained (link) scale: ``estimate`` (group mean), ``se`` (NUTS: posterior sd; EM-MAP: NaN, it gives
        the group means no standard error), ``group_sd`` and, for NUTS, ``lower``/``upper`` (2.5/97.5 %),
        ``r_hat``, ``ess_bulk``.
    estimator_ : EMMAP or HierarchicalBayes
        The fitted estimator (``result_``, ``params_``, ``evidence_``, ``pointwise_loglik_``, LOO ...).
    agent_, trials_, covariates_, coef_names_
        The joint agent, the trials with the derived covariates, the ``covariates=`` given to the estimator and
        the ``{row: coefficient}`` map.
    """

    def __init__(self, agent, *formulas: str, rt=None, method: str = "emmap", subject: str = "subject", rng=None,
                 progress: bool = True, **options):
        self.agent, self.formulas, self.rt, self.method = agent, formulas, rt, method
        self.subject, self.rng, self.progress, self.options = subject, rng, progress, options

    def _agent(self):
        from ..fitting.joint import with_rt
        from ..fitting.observation import WienerRT

        return with_rt(self.agent, self.rt if self.rt is not None else WienerRT())

    def fit(self, trials: xr.Dataset) -> RLDDM:
        """Fit to a trials dataset (choices and RTs in seconds; the covariates the formulas name)."""
        if self.method not in ("emmap", "nuts"):
            raise ValueError(f"RLDDM: method must be 'emmap' or 'nuts', got {self.method!r}")
        if not isinstance(trials, xr.Dataset):
            raise TypeError("RLDDM.fit needs a neurorl trials xarray.Dataset (neurorl.io.from_table makes one from "
                            f"a table), got {type(trials).__name__}")
        t0 = time.perf_counter()
        agent = self._agent()
        data, cov, coefs = compile_formulas(trials, self.formulas, agent, subject=self.subject)
        self.agent_, self.trials_, self.covariates_, self.coef_names_ = agent, data, cov, coefs
        if self.method == "emmap":
            from ..fitting.mle import EMMAP

            est = EMMAP(agent, covariates=cov or None, rng=self.rng, progress=self.progress, **self.options)
            est.fit(data)
            rows = [str(r) for r in est.group_mean_["param"].values]
            mu, sd = est.group_mean_.values, est.group_sd_.values
            # no standard error: EM-MAP's group means have none (the subjects' Laplace variances are taken under the
            # shrinking group prior, so group_sd / sqrt(n) would understate the uncertainty); use method="nuts"
            self.coefs_ = xr.Dataset(
                {"estimate": ("coef", mu), "se": ("coef", np.full(len(mu), np.nan)), "group_sd": ("coef", sd),
                 "row": ("coef", np.array(rows, dtype=object))},
                coords={"coef": [coefs.get(r, r) for r in rows]},
                attrs={"scale": "unconstrained (each parameter's transform: the link)", "estimator": "EMMAP",
                       "se": "none for EM-MAP group means (NaN): use method='nuts' for their uncertainty",
                       "n_subjects": int(data.sizes[self.subject])})
        else:
            from ..fitting.bayes import fit_bayes

            est = fit_bayes(agent, data, covariates=cov or None, progress=self.progress,
                            random_seed=self.rng, **self.options)
            post = est.idata_.posterior
            rows = [str(r) for r in post["group_mean"]["param"].values]
            gm = post["group_mean"].stack(sample=("chain", "draw")).transpose("param", "sample").values
            gs = post["group_sd"].stack(sample=("chain", "draw")).transpose("param", "sample").values
            import arviz as az

            summ = az.summary(est.idata_, var_names=["group_mean"], round_to="none")
            self.coefs_ = xr.Dataset(
                {"estimate": ("coef", gm.mean(1)), "se": ("coef", gm.std(1, ddof=1)),
                 "lower": ("coef", np.quantile(gm, 0.025, axis=1)), "upper": ("coef", np.quantile(gm, 0.975, axis=1)),
                 "group_sd": ("coef", gs.mean(1)), "r_hat": ("coef", summ["r_hat"].to_numpy()),
                 "ess_bulk": ("coef", summ["ess_bulk"].to_numpy()), "row": ("coef", np.array(rows, dtype=object))},
                coords={"coef": [coefs.get(r, r) for r in rows]},
                attrs={"scale": "unconstrained (each parameter's transform: the link)", "estimator": "NUTS",
                       "interval": "posterior 95 % (2.5 / 97.5 % quantiles)"})
        self.estimator_ = est
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def __repr__(self) -> str:
        return f"RLDDM({self.agent!r}, {', '.join(map(repr, self.formulas))}, method={self.method!r})"
