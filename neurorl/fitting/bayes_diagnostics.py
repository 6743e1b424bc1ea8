"""Convergence diagnostics of the hierarchical Bayesian fits: :func:`diagnose`, :class:`BayesWarning` and the
thresholds they warn at ([A4]).

The model, its samplers and its assumptions [A1]..[A10] are described in :mod:`neurorl.fitting.bayes`, which
re-exports every name here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

#: R-hat above this warns ([A4])
RHAT_MAX = 1.01
#: bulk/tail ESS below this many per chain warns ([A4])
ESS_PER_CHAIN_MIN = 100


class BayesWarning(UserWarning):
    """Warnings of the Bayesian fits: convergence diagnostics, Pareto k, Monte Carlo error."""


def _label(v):
    return v.item() if isinstance(v, np.generic) else v


def _fmt_list(items: Sequence, limit: int = 8) -> str:
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(str(s) for s in items[:limit]) + more


def diagnose(idata, *, var_names: Sequence[str] = ("group_mean", "group_sd", "theta"), label: str = "",
             warn: bool = True) -> xr.Dataset:
    """Convergence diagnostics of a posterior sample; warn with what to do ([A4]).

    Parameters
    ----------
    idata : arviz.InferenceData
        With ``posterior`` and ``sample_stats`` (``diverging``).
    var_names : sequence of str
        Posterior variables to check (those absent are skipped).
    label : str
        Prefix of the warning messages (e.g. the model name or a K-fold fold).
    warn : bool
        Issue :class:`BayesWarning` for every failed check.

    Returns
    -------
    xarray.Dataset
        Scalars ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``, ``n_divergent``, ``n_max_treedepth``,
        ``n_draws``, ``n_chains``; attribute ``messages`` holds the warnings' texts (also when ``warn=False``).
    """
    import arviz as az

    post = idata.posterior
    names = [v for v in var_names if v in post]
    if not names:
        raise ValueError(f"none of {list(var_names)} is a posterior variable (have {sorted(post.data_vars)})")
    sub = post[names]
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(sub)
        ess_b = az.ess(sub, method="bulk")
        ess_t = az.ess(sub, method="tail")

    def flat(ds):
        out = []
        for v in names:
            da = ds[v]
            if da.ndim == 0:
                out.append((v, float(da)))
                continue
            st = da.stack(__i__=da.dims)
            for k in range(st.sizes["__i__"]):
                idx = st["__i__"].values[k]
                idx = idx if isinstance(idx, tuple) else (idx,)
                out.append((f"{v}[{', '.join(str(_label(j)) for j in idx)}]", float(st.values[k])))
        return out

    rh, eb, et = flat(rhat), flat(ess_b), flat(ess_t)
    ss = idata.sample_stats if "sample_stats" in idata.groups() else None
    n_div = int(ss["diverging"].sum()) if ss is not None and "diverging" in ss else 0
    n_depth = 0
    for key in ("reached_max_treedepth", "maxdepth_reached"):
        if ss is not None and key in ss:
            n_depth = int(ss[key].sum())
    msgs = []
    pre = f"{label}: " if label else ""
    bad = [n for n, v in rh if not (v <= RHAT_MAX)]
    if bad:
        msgs.append(f"{pre}R-hat above {RHAT_MAX} for {len(bad)} quantities ({_fmt_list(bad)}): the chains "
                    "disagree. Run longer (more tune and draws, e.g. tune=2000, draws=2000); if it persists, look "
                    "for multimodality (arviz.plot_trace) or reparametrise / tighten the priors of these parameters")
    ess_min = ESS_PER_CHAIN_MIN * n_chains
    low = [n for n, v in eb if not (v >= ess_min)] + [n + " (tail)" for n, v in et if not (v >= ess_min)]
    if low:
        msgs.append(f"{pre}effective sample size below {ess_min} ({ESS_PER_CHAIN_MIN} per chain) for {len(low)} "
                    f"quantities ({_fmt_list(low)}): posterior means and intervals of these are imprecise. Draw "
                    "more samples (draws=...) or more chains; if every subject has many informative trials "
                    "(RL-DDM), parametrization='centred' gives several times the ESS per draw")
    if n_div:
        msgs.append(f"{pre}{n_div} divergent transition(s) after tuning ({n_div / (n_chains * n_draws):.1%} of "
                    "draws): the sampler missed part of the posterior, which may be biased. Raise target_accept "
                    "(e.g. 0.95) and tune; if they persist, reparametrise: tighten the group_sd prior of the "
                    "parameters involved (priors={name: {'sigma': 0.5}}), fix weakly identified parameters "
                    "(fixed=...), or, for very data-rich subjects (RL-DDM), sample centred (parametrization='centred')")
    if n_depth:
        msgs.append(f"{pre}{n_depth} draw(s) hit the maximum tree depth: sampling was inefficient (and may be "
                    "incomplete). Increase the tree depth (sampler_kwargs={'maxdepth': 12} for nutpie, "
                    "{'max_treedepth': 12} for pymc) or reparametrise strongly correlated parameters")
    if warn:
        for m in msgs:
            warnings.warn(m, BayesWarning, stacklevel=3)
    return xr.Dataset(
        {"max_rhat": ((), max(v for _, v in rh) if rh else np.nan),
         "min_ess_bulk": ((), min(v for _, v in eb) if eb else np.nan),
         "min_ess_tail": ((), min(v for _, v in et) if et else np.nan),
         "n_divergent": ((), n_div), "n_max_treedepth": ((), n_depth),
         "n_draws": ((), n_draws), "n_chains": ((), n_chains)},
        attrs={"messages": list(msgs), "var_names": list(names)})
