"""Hierarchical Bayesian fits of several models as units of :mod:`neurorl.parallel`.

:func:`fit_bayes_models` fits every model of a list (or a dict label -> agent) to the same trials with
:func:`neurorl.fitting.bayes.fit_bayes`'s estimator, one model per unit of work: inside
``with neurorl.parallel.parallel(workers=N)`` (or on a Dask cluster) the models sample side by side. Each model's
sampler is seeded from the root ``random_seed`` and the model's position (:func:`neurorl.parallel.unit_seed`), so a
model's posterior does not depend on the other models, their order of completion or the number of workers.

A unit samples the model and computes its pointwise log-likelihood; the posterior (``arviz.InferenceData``) comes
back to this process, where the estimator is rebuilt around it (the PyMC model is built again, nothing is
resampled) and its diagnostics, summary and subject estimates are computed -- so convergence warnings are shown
here, and every fitted estimator has the methods of one fitted alone (``loo``, ``kfold``, ``latents`` ...).

Assumptions
-----------
[A1] On local processes or a Dask cluster each model's chains run one after the other in its worker (``cores=1``,
     unless given): Dask's worker processes cannot start processes of their own, and the parallelism is across
     models. PyMC seeds each chain from the sampler's seed, so the draws are those of chains run side by side.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

__all__ = ["fit_bayes_models"]


def _bayes_unit(u: dict, rng: np.random.Generator) -> dict:
    """One unit: sample one model (its sampler seeded by ``rng``) and return its posterior."""
    from .bayes import HierarchicalBayes

    est = HierarchicalBayes(u["agent"], **u["options"], random_seed=rng).fit(u["trials"])
    return {"idata": est.idata_, "sample_seconds": est.sample_seconds_, "compile_seconds": est.compile_seconds_,
            "loglik_seconds": est.loglik_seconds_, "sampler": est.sampler_}


def fit_bayes_models(agents: Sequence | Mapping, trials: xr.Dataset, *, random_seed=None, progress: bool = True,
                     **options) -> dict:
    """Fit a hierarchical Bayesian model of every agent to ``trials``, one model per unit of work.

    Parameters
    ----------
    agents : list of Agent/str, or dict label -> Agent/str
        The models (labels default to the agents' names, numbered when they repeat).
    trials : xarray.Dataset
    random_seed : int, numpy.random.SeedSequence or Generator, optional
        Root seed; model ``i`` samples with a generator from :func:`neurorl.parallel.unit_seed` ``(random_seed, i)``
        (None: fresh entropy, not reproducible).
    progress : bool, default True
        A progress bar over models (the samplers' own bars are off).
    **options
        :class:`neurorl.fitting.bayes.HierarchicalBayes` options shared by every model (``rt``, ``covariates``,
        ``priors``, ``draws``, ``tune``, ``chains``, ``cores``, ``sampler``, ...).

    Returns
    -------
    dict
        Label -> fitted :class:`~neurorl.fitting.bayes.HierarchicalBayes` (ready for
        :func:`neurorl.fitting.bayes.compare`).
    """
    from .. import parallel as _par
    from .bayes import HierarchicalBayes
    from .recovery import _labels

    if "random_seed" in options or "name" in options:
        raise ValueError("fit_bayes_models: the models' seeds and names come from random_seed and the labels")
    labels, objs = _labels(agents)
    if random_seed is None:
        random_seed = np.random.SeedSequence()
    ex = _par.current()
    opts = {**options, "progress": False}
    if ex.kind != "serial" and opts.get("cores") is None:
        opts["cores"] = 1  # [A1]
    units = [{"agent": a, "trials": trials, "options": {**opts, "name": lab}} for lab, a in zip(labels, objs)]
    t0 = time.perf_counter()
    parts = _par.map_units(_bayes_unit, units, seed=random_seed, progress=progress, desc="hierarchical fits",
                           compile_key=lambda u: repr(u["agent"]))
    out = {}
    for i, (lab, a, part) in enumerate(zip(labels, objs, parts)):
        est = HierarchicalBayes(a, **{**options, "progress": progress, "name": lab},
                                random_seed=np.random.default_rng(_par.unit_seed(random_seed, i)))
        est._prepare(trials)  # the model rebuilt and the generator advanced past the sampler's seed, as in fit
        est.compile_seconds_ = part["compile_seconds"]
        est.sample_seconds_ = part["sample_seconds"]
        est._finish(part["idata"], t0, loglik_seconds=part["loglik_seconds"])
        out[lab] = est
    return out
