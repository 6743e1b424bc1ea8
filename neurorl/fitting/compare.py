"""Model comparison: random-effects Bayesian model selection and information criteria.

Reference: ``reference/fitting.md`` section 5 (information criteria) and section
5.1 (random-effects BMS exactly as ``VBA_groupBMC`` of the MBB-team VBA toolbox;
Stephan et al. 2009, NeuroImage 46:1004; Rigoux et al. 2014, NeuroImage 84:971).

Contents
--------
:func:`bms`
    Random-effects Bayesian model selection from a (model x subject) table of
    log evidences: posterior Dirichlet counts, subject attributions, expected
    frequencies, exceedance probabilities, Bayesian omnibus risk and protected
    exceedance probabilities. Returns a :class:`BMSResult`.
:func:`dirichlet_exceedance`
    Exceedance probabilities of a Dirichlet distribution by 1-D quadrature.
:func:`compare_table`
    AIC and BIC per subject and summed over subjects, with deltas to the best
    model, from per-model fit summaries (:data:`COMPARE_INPUT` documents them).
:func:`plot_bms`
    Bar chart of expected frequencies with exceedance probabilities.

Random-effects BMS (section 5.1)
--------------------------------
With ``L`` the K x N log evidences and prior counts ``a0``::

    E_k  = psi(a_k) - psi(sum(a))
    r_kn = softmax_k(L_kn + E_k)
    a    = a0 + sum_n r_.n
    F1   = sum_nk r_kn (L_kn + E_k) + lnG(sum a0) - sum lnG(a0_k) + sum (a0_k - 1) E_k
           - sum_nk r_kn ln r_kn + sum lnG(a_k) - lnG(sum a) - sum (a_k - 1) E_k
    F0   = sum_n [logsumexp_k L_kn - ln K]
    BOR  = 1 / (1 + exp(F1 - F0))
    ep_k = int_0^inf Gamma(x; a_k, 1) prod_{j != k} P(a_j, x) dx
    pxp  = (1 - BOR) ep + BOR / K

Assumptions and choices
-----------------------
[A1] The iteration follows ``VBA_groupBMC``: the posterior starts at the prior
     (``a = a0``, ``r_.n = a0 / sum(a0)``) and its free energy is F(1); each
     step updates ``r`` then ``a`` and appends F. By default it runs to the
     fixed point: it stops when no Dirichlet count changes by more than
     ``tol = 1e-10`` (at most 100000 evaluations). ``stop="vba"`` keeps VBA's
     rule, ``|F(it) - F(it-1)| <= 1e-4`` or ``it >= 32``, which can stop short
     of the fixed point on weak evidence. ``max_iter`` counts free-energy
     evaluations, the initial one included (at most ``max_iter - 1``
     updates), as VBA's ``MaxIter``. Stopping at ``max_iter`` without meeting
     ``tol`` warns (VBA stops silently).
[A2] The prior is ``a0 = ones(K)`` (one count per model); with families
     ``a0_k = 1 / |family of k|`` (one count per family), never normalised.
     This avoids defect (1) of PyPI ``groupBMC`` 1.0 (``a0 = 1/K``) and the null
     uses ``-ln K`` whatever ``a0`` is (defect (2): ``ln a0`` in place of
     ``-ln K``); exceedance probabilities are not renormalised (defect (4)).
[A3] ``F0`` is written as the exact log evidence of the null,
     ``sum_n logsumexp_k(L_kn) - N ln K``; VBA's
     ``sum_nk g_kn (L_kn - ln K - ln g_kn)`` with ``g = softmax(L)`` is the same
     number. The ``r ln r`` entropy uses ``0 ln 0 = 0`` (VBA adds ``eps`` inside
     the log, a difference below 1e-15).
[A4] Family level (``families`` given): family counts ``C' a``, attributions
     ``C' r``, exceedance probabilities on ``C' a``; the family null fixes the
     model frequencies at ``f0_k = 1 / (n_families |family of k|)`` and its free
     energy is the exact ``sum_n logsumexp_k(L_kn + ln f0_k)``. VBA's
     ``FE_null`` evaluates this bound at ``g = softmax(L)`` rather than at its
     optimum ``softmax(L + ln f0)``; the two agree when the families have equal
     sizes and otherwise ours is the tighter (larger) value. The family BOR
     compares ``F1`` with this null, and the family pxp is
     ``(1 - BOR_f) ep_f + BOR_f / n_families`` (VBA computes no family pxp).
     The model-level BOR and pxp always use the uniform model null (``-ln K``).
[A5] Exceedance probabilities are computed by quadrature after the change of
     variable ``u = P(a_k, x)`` (the Gamma(a_k) CDF), ``ep_k = int_0^1
     prod_{j != k} P(a_j, P^{-1}(a_k, u)) du``: a bounded monotone integrand on
     [0, 1] whatever ``a_k`` is (no singularity at 0 for ``a_k < 1``, no
     narrow peak for large ``a_k``); absolute error about 1e-10. VBA's default
     samples a Dirichlet instead; mfit's ``bms.m`` also samples.
[A6] Information criteria (section 5): per subject ``AIC = -2 log L + 2 d`` and
     ``BIC = -2 log L + d ln n`` with ``n`` that subject's number of choices and
     ``d`` the parameters fitted to that subject; group totals are sums over
     subjects (each subject fitted separately). Deltas are to the lowest total
     (per subject: to the lowest value for that subject); for the Laplace log
     evidence the delta is ``best - value`` (non-negative, log-evidence units).
     ``-bic / 2`` of the returned table is a (model, subject) log-evidence table
     ready for :func:`bms`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._lazy import scipy_special as _sp
from ..schema import SUBJECT

MODEL = "model"
FAMILY = "family"

__all__ = ["MODEL", "FAMILY", "BMSResult", "bms", "dirichlet_exceedance", "compare_table", "plot_bms",
           "COMPARE_INPUT", "equivalence_classes", "verdict", "EQUIVALENCE_ATOL", "MIN_DELTA_IC"]

#: Models whose pointwise log-likelihoods agree to this (nats, on every trial) form one equivalence class.
EQUIVALENCE_ATOL = 1e-6
#: Smaller differences of total AIC/BIC are "not distinguishable".
MIN_DELTA_IC = 2.0


# --------------------------------------------------------------------------------------------------
# exceedance probabilities
# --------------------------------------------------------------------------------------------------

def dirichlet_exceedance(alpha: Sequence[float] | np.ndarray) -> np.ndarray:
    """Exceedance probabilities of a Dirichlet distribution.

    ``ep_k = P(f_k > f_j for all j != k)`` for ``f ~ Dirichlet(alpha)``, from
    ``ep_k = int_0^inf Gamma(x; a_k, 1) prod_{j != k} P(a_j, x) dx`` (Soch &
    Allefeld 2016; ``P`` is the regularised lower incomplete gamma function),
    integrated by adaptive quadrature in ``u = P(a_k, x)`` (assumption [A5]).

    Parameters
    ----------
    alpha : array_like, shape (K,)
        Positive, finite Dirichlet counts; K >= 2.

    Returns
    -------
    numpy.ndarray, shape (K,)
        Exceedance probabilities (not renormalised; they sum to 1 up to the
        quadrature error, about 1e-10).

    Raises
    ------
    ValueError
        If ``alpha`` is not 1-D, has fewer than two entries, or an entry is not
        positive and finite.
    """
    a = np.asarray(alpha, dtype=float)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"dirichlet_exceedance: alpha must be 1-D with at least 2 entries, got shape {a.shape}")
    bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
    if bad.size:
        raise ValueError(f"dirichlet_exceedance: alpha[{bad[0]}] = {a[bad[0]]!r} is not positive and finite")
    K = a.size
    ep = np.empty(K)
    for k in range(K):
        others = np.delete(a, k)

        def integrand(u: float, ak: float = a[k], others: np.ndarray = others) -> float:
            x = _sp.gammaincinv(ak, u)
            return float(np.prod(_sp.gammainc(others, x)))

        from scipy import integrate  # imported here: scipy.integrate costs 0.3-0.8 s to import

        val, _ = integrate.quad(integrand, 0.0, 1.0, epsabs=1e-12, epsrel=1e-10, limit=500)
        ep[k] = min(max(val, 0.0), 1.0)
    return ep


# --------------------------------------------------------------------------------------------------
# random-effects BMS
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class BMSResult:
    """Result of :func:`bms` (random-effects Bayesian model selection).

    Per-model quantities are :class:`xarray.DataArray` objects over the dim
    ``model`` (``family`` for :attr:`families`), keeping the model names of the
    input; scalars are floats. ``print(result)`` shows a table;
    :meth:`to_dataset` and :meth:`summary` convert it.

    Attributes
    ----------
    alpha : xarray.DataArray (model)
        Posterior Dirichlet counts ``a = a0 + sum_n r_.n``.
    alpha0 : xarray.DataArray (model)
        Prior Dirichlet counts ``a0``.
    r : xarray.DataArray (model, subject)
        Posterior probability that each subject's data were generated by each
        model (columns sum to 1).
    frequencies : xarray.DataArray (model)
        Expected model frequencies ``a / sum(a)``.
    frequency_sd : xarray.DataArray (model)
        Posterior standard deviation of the frequencies,
        ``sqrt(a_k (A - a_k) / (A^2 (A + 1)))`` with ``A = sum(a)``.
    ep : xarray.DataArray (model)
        Exceedance probabilities ``P(f_k > f_j for all j != k)``.
    pxp : xarray.DataArray (model)
        Protected exceedance probabilities ``(1 - bor) ep + bor / K``.
    bor : float
        Bayesian omnibus risk ``1 / (1 + exp(F1 - F0))``: posterior probability
        that all models are equally frequent.
    F1 : float
        Free energy (lower bound on the log evidence) of the random-effects
        hypothesis at the last iteration.
    F0 : float
        Log evidence of the null (frequencies fixed at ``1 / K``; for the
        family level, equal family frequencies).
    free_energy : numpy.ndarray
        Free energy after each VB step, the prior's first.
    n_iter : int
        Number of free-energy evaluations (``len(free_energy)``).
    converged : bool
        Whether the last change of free energy was at most ``tol``.
    families : BMSResult or None
        Family-level result (dim ``family``), when families were given.
    """

    alpha: xr.DataArray
    alpha0: xr.DataArray
    r: xr.DataArray
    frequencies: xr.DataArray
    frequency_sd: xr.DataArray
    ep: xr.DataArray
    pxp: xr.DataArray
    bor: float
    F1: float
    F0: float
    free_energy: np.ndarray = field(default_factory=lambda: np.empty(0))
    n_iter: int = 0
    converged: bool = True
    families: "BMSResult | None" = None

    @property
    def dim(self) -> str:
        """Name of the per-model dim (``"model"`` or ``"family"``)."""
        return self.alpha.dims[0]

    def summary(self) -> pd.DataFrame:
        """Per-model table: alpha0, alpha, frequency, frequency_sd, ep, pxp."""
        return pd.DataFrame(
            {
                "alpha0": self.alpha0.values,
                "alpha": self.alpha.values,
                "frequency": self.frequencies.values,
                "frequency_sd": self.frequency_sd.values,
                "ep": self.ep.values,
                "pxp": self.pxp.values,
            },
            index=pd.Index(self.alpha[self.dim].values, name=self.dim),
        )

    def to_dataset(self) -> xr.Dataset:
        """All results as one :class:`xarray.Dataset` (scalars as 0-d variables).

        Family-level variables, when present, are prefixed ``family_``.
        """
        ds = xr.Dataset(
            {
                "alpha": self.alpha, "alpha0": self.alpha0, "r": self.r, "frequencies": self.frequencies,
                "frequency_sd": self.frequency_sd, "ep": self.ep, "pxp": self.pxp,
                "bor": self.bor, "F1": self.F1, "F0": self.F0,
                "free_energy": ("iteration", np.asarray(self.free_energy)),
            },
            attrs={"n_iter": self.n_iter, "converged": int(self.converged), "method": "VBA_groupBMC"},
        )
        if self.families is not None:
            fam = self.families
            for name in ("alpha", "alpha0", "r", "frequencies", "frequency_sd", "ep", "pxp"):
                ds[f"family_{name}"] = getattr(fam, name)
            ds["family_bor"] = fam.bor
            ds["family_F0"] = fam.F0
        return ds

    def __repr__(self) -> str:
        n_sub = self.r.sizes[SUBJECT] if SUBJECT in self.r.dims else self.r.shape[1]
        status = "converged" if self.converged else "NOT converged"
        lines = [
            f"BMSResult: {self.alpha.size} {self.dim}s x {n_sub} subjects "
            f"(random-effects BMS, VB {status} after {self.n_iter} free-energy evaluations)",
            self.summary().to_string(float_format=lambda v: f"{v:.4g}"),
            f"BOR = {self.bor:.4g}   F1 = {self.F1:.6g}   F0 = {self.F0:.6g}",
        ]
        if self.families is not None:
            fam = self.families
            lines += ["families:", fam.summary().to_string(float_format=lambda v: f"{v:.4g}"),
                      f"family BOR = {fam.bor:.4g}   family F0 = {fam.F0:.6g}"]
        return "\n".join(lines)

    __str__ = __repr__


def _label(x: Any) -> Any:
    """A coordinate label as a plain Python value (for messages)."""
    return x.item() if isinstance(x, np.generic) else x


def _as_evidence(log_evidence: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate ``log_evidence``; return (L (K, N) float, model labels, subject labels)."""
    if isinstance(log_evidence, xr.DataArray):
        dims = set(log_evidence.dims)
        if dims != {MODEL, SUBJECT}:
            raise ValueError(
                f"bms: log_evidence DataArray must have dims ('{MODEL}', '{SUBJECT}'), got {log_evidence.dims}")
        da = log_evidence.transpose(MODEL, SUBJECT)
        models = da[MODEL].values if MODEL in da.coords else np.arange(da.sizes[MODEL])
        subjects = da[SUBJECT].values if SUBJECT in da.coords else np.arange(da.sizes[SUBJECT])
        values = da.values
    elif isinstance(log_evidence, xr.Dataset):
        raise TypeError("bms: log_evidence must be a DataArray (model, subject) or an array, not a Dataset; "
                        "select one variable, e.g. -table['bic'] / 2")
    else:
        values = np.asarray(log_evidence)
        if values.ndim != 2:
            raise ValueError(f"bms: log_evidence must be 2-D (model x subject), got shape {values.shape}")
        models = np.arange(values.shape[0])
        subjects = np.arange(values.shape[1])
    if values.dtype == object or not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise TypeError(f"bms: log_evidence must be numeric, got dtype {values.dtype}")
    L = np.asarray(values, dtype=float)
    K, N = L.shape
    if K < 2:
        raise ValueError(f"bms: need at least 2 models, got {K}")
    if N < 1:
        raise ValueError("bms: need at least 1 subject, got 0")
    bad = np.argwhere(~np.isfinite(L))
    if bad.size:
        k, n = bad[0]
        raise ValueError(
            f"bms: log evidence is {L[k, n]} for model {_label(models[k])!r} (index {k}), "
            f"subject {_label(subjects[n])!r} "
            f"(index {n}); every entry must be finite ({len(bad)} non-finite entries in all)")
    return L, np.asarray(models), np.asarray(subjects)


def _family_matrix(families: Any, models: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (C (K, F) 0/1 membership, family names) from a families specification."""
    K = models.size
    if isinstance(families, Mapping):
        names = list(families.keys())
        groups = list(families.values())
    elif isinstance(families, Sequence) and not isinstance(families, str):
        names = [f"family{i}" for i in range(len(families))]
        groups = list(families)
    else:
        raise TypeError("bms: families must be a mapping name -> models or a sequence of model lists")
    if len(groups) < 2:
        raise ValueError(f"bms: families must define at least 2 families, got {len(groups)}")
    label_to_index = {m.item() if hasattr(m, "item") else m: i for i, m in enumerate(models)}
    C = np.zeros((K, len(groups)))
    for f, (name, members) in enumerate(zip(names, groups)):
        if isinstance(members, str) or not isinstance(members, Sequence | np.ndarray):
            members = [members]
        if len(members) == 0:
            raise ValueError(f"bms: family {name!r} is empty")
        for m in members:
            key = m.item() if hasattr(m, "item") else m
            if key in label_to_index:
                idx = label_to_index[key]
            elif isinstance(key, int | np.integer) and not isinstance(key, bool) and 0 <= key < K:
                idx = int(key)
            else:
                raise ValueError(f"bms: family {name!r} names model {m!r}, which is not among the models "
                                 f"{[_label(m) for m in models]}")
            if C[idx].any():
                other = names[int(np.flatnonzero(C[idx])[0])]
                raise ValueError(f"bms: model {_label(models[idx])!r} is in family {other!r} and family {name!r}; "
                                 "families must not overlap")
            C[idx, f] = 1.0
    missing = np.flatnonzero(C.sum(axis=1) == 0)
    if missing.size:
        raise ValueError(f"bms: models {[_label(models[i]) for i in missing]} belong to no family; families must cover "
                         "every model")
    return C, np.asarray(names)


def _free_energy(L: np.ndarray, r: np.ndarray, a: np.ndarray, a0: np.ndarray) -> float:
    """Free energy F1 of section 5.1 for attributions ``r`` (K, N) and counts ``a``."""
    E = _sp.digamma(a) - _sp.digamma(a.sum())
    elj = float(np.sum(r * (L + E[:, None]))) + _sp.gammaln(a0.sum()) - _sp.gammaln(a0).sum() + np.sum((a0 - 1) * E)
    s_qm = -float(np.sum(_sp.xlogy(r, r)))
    s_qf = _sp.gammaln(a).sum() - _sp.gammaln(a.sum()) - np.sum((a - 1) * E)
    return float(elj + s_qm + s_qf)


def _summaries(alpha: np.ndarray, alpha0: np.ndarray, r: np.ndarray, bor: float, F1: float, F0: float,
               labels: np.ndarray, subjects: np.ndarray, dim: str, **extra: Any) -> BMSResult:
    A = alpha.sum()
    freq = alpha / A
    sd = np.sqrt(alpha * (A - alpha) / (A**2 * (A + 1)))
    ep = dirichlet_exceedance(alpha)
    pxp = (1.0 - bor) * ep + bor / alpha.size
    coords = {dim: labels}

    def da(v: np.ndarray, name: str) -> xr.DataArray:
        return xr.DataArray(v, dims=(dim,), coords=coords, name=name)

    return BMSResult(
        alpha=da(alpha, "alpha"), alpha0=da(alpha0, "alpha0"),
        r=xr.DataArray(r, dims=(dim, SUBJECT), coords={dim: labels, SUBJECT: subjects}, name="r"),
        frequencies=da(freq, "frequencies"), frequency_sd=da(sd, "frequency_sd"), ep=da(ep, "ep"),
        pxp=da(pxp, "pxp"), bor=float(bor), F1=float(F1), F0=float(F0), **extra)


def _bor(F1: float, F0: float) -> float:
    # 1 / (1 + exp(F1 - F0)) without overflow
    d = F1 - F0
    return float(math.exp(-d) / (1.0 + math.exp(-d))) if d > 0 else float(1.0 / (1.0 + math.exp(d)))


#: Stopping rules of :func:`bms`: ``name -> (default max_iter, default tol)``.
BMS_STOP = {"fixed-point": (100_000, 1e-10), "vba": (32, 1e-4)}


def bms(log_evidence: Any, *, families: Any = None, stop: str = "fixed-point", max_iter: int | None = None,
        tol: float | None = None) -> BMSResult:
    """Random-effects Bayesian model selection, as ``VBA_groupBMC``.

    Treats each subject's generating model as a random draw from group
    frequencies ``f ~ Dirichlet(a0)`` and inverts this hierarchy by variational
    Bayes (Stephan et al. 2009; Rigoux et al. 2014), reporting exceedance
    probabilities and the Bayesian omnibus risk (section 5.1 of
    ``reference/fitting.md``; assumptions [A1]-[A5] of this module).

    Parameters
    ----------
    log_evidence : numpy.ndarray or xarray.DataArray, shape (K, N)
        Log evidence of each of K >= 2 models for each of N subjects (for
        example a Laplace approximation, or ``-BIC / 2``). Rows are models. A
        DataArray must have dims ``("model", "subject")`` (in either order);
        its coordinates label the results. Every entry must be finite.
    families : mapping or sequence, optional
        Partition of the models into families: a mapping ``family name ->
        list of models`` or a sequence of lists; models are given by their
        ``model`` coordinate label or by position. Sets the prior to one count
        per family (``a0_k = 1 / |family of k|``) and adds a family-level
        result (:attr:`BMSResult.families`).
    stop : {"fixed-point", "vba"}, default "fixed-point"
        ``"fixed-point"``: iterate to the fixed point -- stop when no
        Dirichlet count changes by more than ``tol`` (default 1e-10) in an
        update, at most ``max_iter`` (default 100000) free-energy evaluations.
        ``"vba"``: VBA's own rule, to reproduce numbers published with it --
        stop when the free energy changes by at most ``tol`` (default 1e-4,
        VBA's ``TolFun``) or after ``max_iter`` (default 32, VBA's
        ``MaxIter``) evaluations; on weak evidence it can stop visibly short
        of the fixed point (exceedance probabilities off by ~1e-3).
    max_iter : int, optional
        Maximum number of free-energy evaluations, the initial one included.
    tol : float, optional
        Tolerance of the stopping rule (see ``stop``).

    Returns
    -------
    BMSResult
        Posterior counts, attributions, expected frequencies, exceedance and
        protected exceedance probabilities, BOR, ``F1`` and ``F0``.

    Raises
    ------
    ValueError
        If an entry is NaN or infinite (the message names the model and the
        subject), the shape or dims are wrong, there are fewer than 2 models,
        or ``families`` does not partition the models.

    Warns
    -----
    RuntimeWarning
        If the free energy has not settled within ``max_iter`` evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> L = np.array([[-10.0, -12.0, -9.0], [-14.0, -13.0, -15.0]])
    >>> res = bms(L)
    >>> float(res.frequencies.sum())
    1.0
    """
    if stop not in BMS_STOP:
        raise ValueError(f"bms: stop must be one of {sorted(BMS_STOP)}, got {stop!r}")
    max_iter = BMS_STOP[stop][0] if max_iter is None else max_iter
    tol = BMS_STOP[stop][1] if tol is None else tol
    if int(max_iter) != max_iter or max_iter < 2:
        raise ValueError(f"bms: max_iter must be an integer >= 2 (it counts the initial free energy), got {max_iter}")
    if not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"bms: tol must be finite and >= 0, got {tol}")
    L, models, subjects = _as_evidence(log_evidence)
    K, N = L.shape

    if families is not None:
        C, fam_names = _family_matrix(families, models)
        a0 = C @ (1.0 / C.sum(axis=0))          # 1 / |family of k|
    else:
        C, fam_names = None, None
        a0 = np.ones(K)

    # VB iteration (VBA_groupBMC): start at the prior, then r-update, a-update, free energy.
    a = a0.copy()
    r = np.tile((a0 / a0.sum())[:, None], (1, N))
    F = [_free_energy(L, r, a, a0)]
    converged = False
    while True:
        E = _sp.digamma(a) - _sp.digamma(a.sum())
        tmp = L + E[:, None]
        g = np.exp(tmp - tmp.max(axis=0, keepdims=True))
        r = g / g.sum(axis=0, keepdims=True)
        a_prev, a = a, a0 + r.sum(axis=1)
        F.append(_free_energy(L, r, a, a0))
        change = abs(F[-1] - F[-2]) if stop == "vba" else float(np.max(np.abs(a - a_prev)))
        if change <= tol:
            converged = True
            break
        if len(F) >= max_iter:
            break
    if not converged:
        what = "free energy" if stop == "vba" else "largest Dirichlet count"
        warnings.warn(
            f"bms: the {what} changed by {change:.3g} > tol = {tol:g} at the last of max_iter = {max_iter} "
            f"evaluations (stop={stop!r}); increase max_iter", RuntimeWarning, stacklevel=2)

    F1 = F[-1]
    lse = _sp.logsumexp(L, axis=0)
    F0 = float(np.sum(lse) - N * math.log(K))
    bor = _bor(F1, F0)

    fam_result = None
    if C is not None:
        n_fam = C.shape[1]
        f0 = C @ (1.0 / C.sum(axis=0)) / n_fam
        F0_fam = float(np.sum(_sp.logsumexp(L + np.log(f0)[:, None], axis=0)))
        fam_result = _summaries(C.T @ a, C.T @ a0, C.T @ r, _bor(F1, F0_fam), F1, F0_fam, fam_names, subjects,
                                FAMILY, free_energy=np.asarray(F), n_iter=len(F), converged=converged)

    return _summaries(a, a0, r, bor, F1, F0, models, subjects, MODEL, free_energy=np.asarray(F), n_iter=len(F),
                      converged=converged, families=fam_result)


# --------------------------------------------------------------------------------------------------
# information criteria
# --------------------------------------------------------------------------------------------------

COMPARE_INPUT = """\
Expected input of :func:`compare_table`: one ``xarray.Dataset`` per model with

=========================  ===================  =====================================================
variable                   dims                 meaning
=========================  ===================  =====================================================
``loglik``                 (subject)            maximised log-likelihood log L(theta_hat) per subject
``n_params``               () or (subject)      number of parameters fitted to each subject (d)
``n_trials``               (subject)            number of choices entering the likelihood (n)
``laplace_log_evidence``   (subject), optional  Laplace approximation of log p(y_i | m)
``ibic``                   (), optional         group integrated BIC (Huys et al. 2011)
=========================  ===================  =====================================================

All models must hold the same subject labels (any order; the first model's order is kept).
"""


def _model_input(name: Any, ds: Any) -> dict[str, Any]:
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"compare_table: results[{name!r}] must be an xarray.Dataset (see COMPARE_INPUT), "
                        f"got {type(ds).__name__}")
    for v in ("loglik", "n_params", "n_trials"):
        if v not in ds:
            raise ValueError(f"compare_table: results[{name!r}] has no variable {v!r} (see COMPARE_INPUT)")
    if ds["loglik"].dims != (SUBJECT,):
        raise ValueError(f"compare_table: results[{name!r}].loglik must have dims ('{SUBJECT}',), "
                         f"got {ds['loglik'].dims}")
    subjects = ds[SUBJECT].values if SUBJECT in ds.coords else np.arange(ds.sizes[SUBJECT])
    if len(pd.unique(subjects)) != subjects.size:
        raise ValueError(f"compare_table: results[{name!r}] has duplicated subject labels")
    out: dict[str, Any] = {"subjects": subjects}
    n_sub = subjects.size
    for v, allowed in (("loglik", [(SUBJECT,)]), ("n_params", [(), (SUBJECT,)]), ("n_trials", [(SUBJECT,)]),
                       ("laplace_log_evidence", [(SUBJECT,)]), ("ibic", [()])):
        if v not in ds:
            continue
        da = ds[v]
        if da.dims not in allowed:
            raise ValueError(f"compare_table: results[{name!r}].{v} must have dims "
                             f"{' or '.join(map(str, allowed))}, got {da.dims}")
        x = np.broadcast_to(np.asarray(da.values, dtype=float), (n_sub,) if da.dims else ()).copy()
        bad = np.flatnonzero(~np.isfinite(np.atleast_1d(x)))
        if bad.size:
            where = f"subject {_label(subjects[bad[0]])!r} (index {bad[0]})" if da.dims else "the scalar"
            raise ValueError(f"compare_table: results[{name!r}].{v} is not finite at {where}")
        if v == "n_params":
            x = np.broadcast_to(x, (n_sub,)).copy()
            bad = np.flatnonzero((x < 0) | (x != np.round(x)))
            if bad.size:
                raise ValueError(f"compare_table: results[{name!r}].n_params must be a non-negative integer, got "
                                 f"{x[bad[0]]} for subject {_label(subjects[bad[0]])!r} (index {bad[0]})")
        if v == "n_trials":
            bad = np.flatnonzero((x < 1) | (x != np.round(x)))
            if bad.size:
                raise ValueError(f"compare_table: results[{name!r}].n_trials must be a positive integer, got "
                                 f"{x[bad[0]]} for subject {_label(subjects[bad[0]])!r} (index {bad[0]})")
        out[v] = x
    return out


def equivalence_classes(pointwise: Mapping[Any, Any], atol: float = EQUIVALENCE_ATOL) -> list[list[Any]]:
    """Group models whose pointwise log-likelihoods agree to ``atol`` on every trial.

    Parameters
    ----------
    pointwise : mapping
        ``model name -> array`` of per-trial (or per-subject) log-likelihoods, all of one shape; NaN entries
        (invalid trials) must coincide.
    atol : float
        Largest absolute difference (nats) between two models on any trial for them to be equivalent.

    Returns
    -------
    list of list
        The classes (transitive closure of the pairwise relation), each in the given model order, in the order of
        their first model.
    """
    names = list(pointwise)
    vals = [np.asarray(getattr(pointwise[n], "values", pointwise[n]), dtype=float) for n in names]
    parent = list(range(len(names)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = vals[i], vals[j]
            if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
                continue
            ok = ~np.isnan(a)
            if ok.any() and float(np.max(np.abs(a[ok] - b[ok]))) <= atol:
                parent[root(j)] = root(i)
    classes: dict[int, list[Any]] = {}
    for i, n in enumerate(names):
        classes.setdefault(root(i), []).append(n)
    return list(classes.values())


def verdict(scores: Mapping[Any, float], *, classes: Sequence[Sequence[Any]] | None = None,
            higher_is_better: bool = False, margin: float | Mapping[Any, float] = MIN_DELTA_IC) -> str:
    """The best model, or why there is none: ``"NAME"``, ``"A = B (equivalent)"`` or ``"not distinguishable:
    A, B = C"``.

    Parameters
    ----------
    scores : mapping
        ``model -> total score`` (AIC/BIC: lower is better; elpd: higher).
    classes : sequence of sequences, optional
        Equivalence classes (:func:`equivalence_classes`); members are reported together, joined by ``=``.
    higher_is_better : bool
    margin : float or mapping
        A model whose score is within ``margin`` of the best is not distinguishable from it (a mapping gives each
        model its own margin, e.g. the standard error of its difference to the best).
    """
    names = list(scores)
    sign = -1.0 if higher_is_better else 1.0
    val = {n: sign * float(scores[n]) for n in names}
    best = min(names, key=lambda n: val[n])
    cls = {n: [n] for n in names}
    for c in classes or []:
        members = [m for m in c if m in val]
        for m in members:
            cls[m] = members
    tied = [n for n in names if n in cls[best] or val[n] == val[best] or val[n] - val[best] < (
        margin.get(n, 0.0) if isinstance(margin, Mapping) else margin)]
    groups: list[list[Any]] = []
    for n in tied:
        g = [m for m in cls[n]]
        if g not in groups:
            groups.append(g)
    text = [" = ".join(str(m) for m in g) for g in groups]
    if len(groups) == 1:
        return text[0] + (" (equivalent: identical pointwise log-likelihoods)" if len(groups[0]) > 1 else "")
    return "not distinguishable: " + ", ".join(text)


def compare_table(results: Mapping[Any, xr.Dataset], *, pointwise: Mapping[Any, Any] | None = None) -> xr.Dataset:
    """AIC and BIC per subject and summed over subjects, with deltas to the best model.

    Parameters
    ----------
    results : mapping
        ``model name -> xarray.Dataset`` with variables ``loglik`` (subject),
        ``n_params`` (scalar or subject), ``n_trials`` (subject) and, optionally,
        ``laplace_log_evidence`` (subject) and ``ibic`` (scalar); see
        :data:`COMPARE_INPUT`. ``n_trials`` is the number of choices in each
        subject's likelihood (the ``n`` of BIC).

    Returns
    -------
    xarray.Dataset
        Dims ``model`` (in the order given) and ``subject``. Per subject
        (model, subject): ``loglik``, ``n_params``, ``n_trials``, ``aic``
        (``-2 log L + 2 d``), ``bic`` (``-2 log L + d ln n``), ``delta_aic`` and
        ``delta_bic`` (to the lowest value for that subject). Totals (model):
        ``aic_total``, ``bic_total``, ``loglik_total``, ``n_params_total``,
        ``delta_aic_total``, ``delta_bic_total`` (to the lowest total). With
        ``laplace_log_evidence`` in every model: that variable, its
        ``laplace_log_evidence_total`` and ``delta_laplace_total`` (best minus
        value, >= 0). With ``ibic`` in every model: ``ibic`` and ``delta_ibic``.
        ``equivalence_class`` (model): models in one class have the same
        pointwise log-likelihoods (to :data:`EQUIVALENCE_ATOL`). ``attrs``
        ``best_aic`` and ``best_bic`` give the verdict of :func:`verdict`: the
        best model only when every model outside its equivalence class is at
        least :data:`MIN_DELTA_IC` worse, else ``"not distinguishable: ..."``;
        ``attrs["equivalent"]`` lists the classes of several models (JSON).
        ``-table["bic"] / 2``
        can be passed to :func:`bms`; ``table[[...]].to_dataframe()`` gives a
        pandas table.

    Raises
    ------
    ValueError
        If a model lacks a variable, has non-finite values (the message names
        the model, the variable and the subject), non-integer counts, or other
        subjects than the first model.
    TypeError
        If an entry is not an ``xarray.Dataset``.

    Other Parameters
    ----------------
    pointwise : mapping, optional
        ``model name -> (subject, trial)`` per-trial log-likelihoods (NaN on
        invalid trials) to find equivalent models; default: the per-subject
        ``loglik``.

    Notes
    -----
    Assumption [A6]: each subject is fitted separately, so the group criteria
    are sums of the per-subject ones (``ln n`` uses each subject's own count).
    """
    if not isinstance(results, Mapping) or len(results) == 0:
        raise ValueError("compare_table: results must be a non-empty mapping model name -> xarray.Dataset")
    names = list(results.keys())
    parsed = {name: _model_input(name, results[name]) for name in names}
    ref = parsed[names[0]]["subjects"]
    ref_set = set(ref.tolist())
    for name in names[1:]:
        subs = parsed[name]["subjects"]
        s = set(subs.tolist())
        if s != ref_set:
            missing = sorted(ref_set - s, key=str)[:5]
            extra = sorted(s - ref_set, key=str)[:5]
            raise ValueError(f"compare_table: results[{name!r}] has other subjects than results[{names[0]!r}] "
                             f"(missing {missing}, extra {extra})")
        order = pd.Index(subs).get_indexer(ref)
        parsed[name] = {k: (v[order] if (isinstance(v, np.ndarray) and v.ndim == 1 and k != "ibic") else v)
                        for k, v in parsed[name].items()}

    def stack(v: str) -> np.ndarray:
        return np.stack([parsed[n][v] for n in names])

    loglik, d, n = stack("loglik"), stack("n_params"), stack("n_trials")
    aic = -2.0 * loglik + 2.0 * d
    bic = -2.0 * loglik + d * np.log(n)
    dims2 = (MODEL, SUBJECT)
    ds = xr.Dataset(
        {
            "loglik": (dims2, loglik), "n_params": (dims2, d), "n_trials": (dims2, n),
            "aic": (dims2, aic), "bic": (dims2, bic),
            "delta_aic": (dims2, aic - aic.min(axis=0)), "delta_bic": (dims2, bic - bic.min(axis=0)),
        },
        coords={MODEL: np.asarray(names, dtype=object) if not all(isinstance(x, str) for x in names)
                else np.asarray(names), SUBJECT: ref},
    )
    ds["loglik_total"] = ds["loglik"].sum(SUBJECT)
    ds["n_params_total"] = ds["n_params"].sum(SUBJECT)
    ds["aic_total"] = ds["aic"].sum(SUBJECT)
    ds["bic_total"] = ds["bic"].sum(SUBJECT)
    ds["delta_aic_total"] = ds["aic_total"] - ds["aic_total"].min()
    ds["delta_bic_total"] = ds["bic_total"] - ds["bic_total"].min()
    have_lap = ["laplace_log_evidence" in parsed[nm] for nm in names]
    if all(have_lap):
        lap = stack("laplace_log_evidence")
        ds["laplace_log_evidence"] = (dims2, lap)
        ds["laplace_log_evidence_total"] = ds["laplace_log_evidence"].sum(SUBJECT)
        ds["delta_laplace_total"] = ds["laplace_log_evidence_total"].max() - ds["laplace_log_evidence_total"]
    elif any(have_lap):
        warnings.warn("compare_table: laplace_log_evidence is missing for "
                      f"{[nm for nm, h in zip(names, have_lap) if not h]}; it is left out of the table",
                      UserWarning, stacklevel=2)
    have_ibic = ["ibic" in parsed[nm] for nm in names]
    if all(have_ibic):
        ds["ibic"] = (MODEL, np.array([float(parsed[nm]["ibic"]) for nm in names]))
        ds["delta_ibic"] = ds["ibic"] - ds["ibic"].min()
    elif any(have_ibic):
        warnings.warn(f"compare_table: ibic is missing for {[nm for nm, h in zip(names, have_ibic) if not h]}; "
                      "it is left out of the table", UserWarning, stacklevel=2)
    if pointwise is not None:
        if set(pointwise) != set(names):
            raise ValueError(f"compare_table: pointwise has models {list(pointwise)}, results {names}")
        pw = {}
        for nm in names:
            da = pointwise[nm]
            if isinstance(da, xr.DataArray) and SUBJECT in da.dims:
                da = da.sel({SUBJECT: ref})
            pw[nm] = np.asarray(getattr(da, "values", da), dtype=float)
    else:
        pw = {nm: ds["loglik"].sel({MODEL: nm}).values for nm in names}
    classes = equivalence_classes(pw)
    cls_index = {nm: i for i, c in enumerate(classes) for nm in c}
    ds["equivalence_class"] = (MODEL, np.array([cls_index[nm] for nm in names]))
    ds.attrs["equivalent"] = json.dumps([[str(m) for m in c] for c in classes if len(c) > 1])
    for crit in ("aic", "bic"):
        ds.attrs[f"best_{crit}"] = verdict({nm: float(v) for nm, v in zip(names, ds[f"{crit}_total"].values)},
                                           classes=classes)
    ds.attrs["criteria"] = "AIC = -2 log L + 2 d; BIC = -2 log L + d ln n (n = choices); totals sum over subjects"
    return ds


# --------------------------------------------------------------------------------------------------
# plotting
# --------------------------------------------------------------------------------------------------

def plot_bms(result: BMSResult, ax: Any = None) -> Any:
    """Bar chart of a :func:`bms` result.

    Bars show the expected frequencies with +-1 posterior SD; markers show the
    exceedance (circles) and protected exceedance (diamonds) probabilities; the
    dashed line marks chance, ``1 / K``; the title gives the BOR. Pass
    ``result.families`` to plot the family level.

    Parameters
    ----------
    result : BMSResult
        Output of :func:`bms`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is made when omitted.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if not isinstance(result, BMSResult):
        raise TypeError(f"plot_bms: result must be a BMSResult from bms(), got {type(result).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.0, 0.9 * result.alpha.size + 1.5), 3.2))
    labels = [str(x) for x in result.alpha[result.dim].values]
    x = np.arange(len(labels))
    K = len(labels)
    ax.bar(x, result.frequencies.values, yerr=result.frequency_sd.values, width=0.6, color="0.75",
           edgecolor="0.3", capsize=3, label="expected frequency")
    ax.plot(x, result.ep.values, "o", color="C0", label="ep")
    ax.plot(x, result.pxp.values, "D", color="C3", mfc="none", label="pxp")
    ax.axhline(1.0 / K, ls="--", lw=0.8, color="0.4")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if max(len(s) for s in labels) > 6 else 0, ha="right"
                       if max(len(s) for s in labels) > 6 else "center")
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel(result.dim)
    ax.set_ylabel("probability")
    ax.set_title(f"RFX-BMS (BOR = {result.bor:.3g})")
    ax.legend(frameon=False, fontsize="small")
    return ax
