"""Synthetic neural populations that encode chosen latents, for ground-truth tests (decoding.md §7).

Generator (decoding.md §7 [A]): for unit ``n``, trial ``i`` and time bin ``b``

* Poisson: ``counts ~ Poisson(bin_width * exp(log(baseline_n) + sum_k w_nk g(b) z_k(i) + d_n(i)))``;
* Gaussian: ``rate = baseline_n + sum_k w_nk g(b) z_k(i) + d_n(i) + noise_sd * eps``, ``eps ~ N(0, 1)``;

where ``z_k`` is latent ``k`` standardised over the session's trials (mean 0, population SD 1), ``g`` a
within-trial kernel (peak 1), and ``d_n`` a slow task-independent drift: a stationary AR(1) over trials with SD
``drift`` and coefficient ``drift_rho``, the same within a trial.

Assumptions [A]
---------------
* [A1] Groups: the units are split into ``K + 1`` consecutive groups -- one per encoded latent (in the order of
  ``encode``) and a last group of drift-only untuned units (group ``"untuned"``; "null" is kept for null
  distributions) -- of ``n_units // (K + 1)`` units each; the remainder goes to the untuned group. Each tuned unit encodes only its latent, with weight ``+-effect`` (random sign). The weights
  are stored in the returned truth (``weight``, unit x latent), with each unit's ``group``.
* [A2] Default kernel: a Gaussian bump over the bin centres, peak at 40 % of the window, SD 15 % of the window,
  scaled to peak 1; any array of ``n_time`` values can be given.
* [A3] Drift: ``d(0) ~ N(0, drift^2)``, ``d(i) = rho d(i-1) + sqrt(1 - rho^2) drift e(i)``; ``shared_drift`` is
  the fraction of its variance common to all units (one shared series), the rest independent per unit. Drift enters
  every unit, tuned or not.
* [A4] Time bins start at the event: centres ``(b + 0.5) * bin_width_s``. The trial labels are the latents'
  ``trial_index`` (when merged with trials) or their ``trial`` coordinate; padding rows are left out.
* [A5] ``baseline`` is a rate in Hz for Poisson units (log link) and an additive offset for Gaussian units.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..schema import SUBJECT, TIME, TRIAL, UNIT
from ..tasks.base import as_rng
from .encoding import _column
from .neural import _as_dataset, make_neural, trial_labels

__all__ = ["synthetic_population", "default_kernel"]

LATENT = "latent"


def default_kernel(times) -> np.ndarray:
    """Gaussian bump over ``times`` (peak 1 at 40 % of the window, SD 15 % of the window)."""
    t = np.asarray(times, float)
    span = t[-1] - t[0] if t.size > 1 else 1.0
    return np.exp(-0.5 * ((t - (t[0] + 0.4 * span)) / (0.15 * span)) ** 2)


def _ar1(rng, n_trials, n_series, sd, rho):
    out = np.empty((n_trials, n_series))
    out[0] = rng.normal(0.0, 1.0, n_series)
    innov = np.sqrt(1.0 - rho**2)
    e = rng.normal(0.0, 1.0, (n_trials, n_series))
    for i in range(1, n_trials):
        out[i] = rho * out[i - 1] + innov * e[i]
    return sd * out


def synthetic_population(
    latents,
    *,
    encode: Mapping,
    n_units: int = 50,
    n_time: int = 20,
    kind: str = "poisson",
    drift: float = 0.0,
    drift_rho: float = 0.99,
    shared_drift: float = 0.0,
    baseline=10.0,
    noise_sd: float = 1.0,
    kernel=None,
    bin_width_s: float = 0.05,
    subject=0,
    rng=None,
):
    """Simulate a population whose units encode chosen latents of one subject.

    Parameters
    ----------
    latents : xarray.Dataset or tuple of Datasets
        Latents (and optionally trials) with dims ``(subject, trial)``, e.g. from :func:`neurorl.simulate`.
    encode : mapping
        ``{latent: effect}``; a latent is a variable name on ``trial``, ``(name, action)`` or ``"name[action]"``.
        ``effect`` is the weight magnitude: log-rate change per SD of the latent at the kernel peak (Poisson) or
        rate change per SD (Gaussian).
    n_units, n_time : int
        Units and time bins.
    kind : {"poisson", "gaussian"}
        Poisson counts, or Gaussian rates.
    drift, drift_rho, shared_drift : float
        Drift SD (log-rate units for Poisson), AR(1) coefficient over trials, shared fraction of its variance.
    baseline : float or array_like (n_units,)
        Baseline rate in Hz (Poisson) or offset (Gaussian).
    noise_sd : float
        Gaussian noise SD (Gaussian only).
    kernel : array_like (n_time,), optional
        Within-trial gain ``g(b)``; default :func:`default_kernel`.
    bin_width_s : float
        Bin width in seconds.
    subject : label
        Subject whose latents are encoded.
    rng : int, numpy.random.Generator or None

    Returns
    -------
    neural : xarray.DataArray
        ``counts`` (Poisson) or ``rate`` (Gaussian) with dims (trial, unit, time); trial = behavioural labels;
        unit coordinate ``group`` (the encoded latent or ``"untuned"``).
    truth : xarray.Dataset
        ``weight`` (unit, latent), ``group`` (unit), ``baseline`` (unit), ``kernel`` (time), ``z`` (trial,
        latent: the standardised latents), ``drift`` (trial, unit), ``log_rate`` or ``mean`` (trial, unit, time).
    """
    if kind not in ("poisson", "gaussian"):
        raise ValueError(f"synthetic_population: kind must be 'poisson' or 'gaussian', got {kind!r}")
    if not isinstance(encode, Mapping) or not encode:
        raise ValueError("synthetic_population: encode must be a non-empty mapping {latent: effect}")
    n_units, n_time = int(n_units), int(n_time)
    K = len(encode)
    if n_units < K + 1:
        raise ValueError(f"synthetic_population: {n_units} units cannot hold {K} tuned groups and a null group")
    if not 0.0 <= drift_rho < 1.0:
        raise ValueError(f"synthetic_population: drift_rho must be in [0, 1), got {drift_rho}")
    if not 0.0 <= shared_drift <= 1.0:
        raise ValueError(f"synthetic_population: shared_drift must be in [0, 1], got {shared_drift}")
    if drift < 0 or noise_sd < 0:
        raise ValueError("synthetic_population: drift and noise_sd must be non-negative")
    rng = as_rng(rng)
    ds = _as_dataset(latents)
    if SUBJECT in ds.dims:
        subs = ds[SUBJECT].values.tolist()
        if subject not in subs:
            raise ValueError(f"synthetic_population: subject {subject!r} not in the latents (subjects {subs[:8]})")
        ds = ds.sel({SUBJECT: subject})
    labels = trial_labels(ds)
    keep = labels >= 0 if labels.dtype.kind in "iuf" else np.ones(labels.shape, bool)
    ds = ds.isel({TRIAL: np.flatnonzero(keep)})
    labels = labels[keep].astype(np.int64) if labels.dtype.kind == "f" else labels[keep]
    T = labels.size
    names, z = [], []
    for spec in encode:
        name, da = _column(ds, spec)
        v = np.asarray(da.values, float)
        if not np.all(np.isfinite(v)):
            raise ValueError(f"synthetic_population: latent {name!r} is not finite on every trial")
        sd = v.std()
        if sd <= 1e-12:
            raise ValueError(f"synthetic_population: latent {name!r} is constant over the trials")
        names.append(name)
        z.append((v - v.mean()) / sd)
    z = np.column_stack(z)  # (T, K)
    effects = np.array([float(e) for e in encode.values()])
    size = n_units // (K + 1)
    group = np.array(["untuned"] * n_units, dtype=object)
    weight = np.zeros((n_units, K))
    for k, name in enumerate(names):
        sl = slice(k * size, (k + 1) * size)
        group[sl] = name
        weight[sl, k] = effects[k] * rng.choice([-1.0, 1.0], size)
    group = group.astype(str)
    times = (np.arange(n_time) + 0.5) * float(bin_width_s)
    g = default_kernel(times) if kernel is None else np.asarray(kernel, float)
    if g.shape != (n_time,):
        raise ValueError(f"synthetic_population: kernel has shape {g.shape}; expected ({n_time},)")
    base = np.broadcast_to(np.asarray(baseline, float), (n_units,)).copy()
    if kind == "poisson" and (base <= 0).any():
        raise ValueError("synthetic_population: Poisson baselines must be positive rates (Hz)")
    d = np.zeros((T, n_units))
    if drift > 0:
        shared = _ar1(rng, T, 1, drift, drift_rho)
        own = _ar1(rng, T, n_units, drift, drift_rho)
        d = np.sqrt(shared_drift) * shared + np.sqrt(1.0 - shared_drift) * own
    signal = (z @ weight.T)[:, :, None] * g[None, None, :]  # (T, N, B)
    if kind == "poisson":
        log_rate = np.log(base)[None, :, None] + signal + d[:, :, None]
        counts = rng.poisson(float(bin_width_s) * np.exp(log_rate))
        neural = make_neural(counts, trials=labels, times=times, kind="counts", bin_width_s=bin_width_s,
                             align_event="trial onset (synthetic)", unit_coords={"group": group})
        latent_var = ("log_rate", log_rate)
    else:
        mean = base[None, :, None] + signal + d[:, :, None]
        rate = mean + noise_sd * rng.normal(0.0, 1.0, mean.shape)
        neural = make_neural(rate, trials=labels, times=times, kind="rate", bin_width_s=bin_width_s,
                             align_event="trial onset (synthetic)", unit_coords={"group": group})
        latent_var = ("mean", mean)
    if SUBJECT in ds.coords:
        neural = neural.assign_coords({SUBJECT: ds[SUBJECT].values})
    units = neural[UNIT].values
    truth = xr.Dataset(
        {
            "weight": ((UNIT, LATENT), weight),
            "group": (UNIT, group),
            "baseline": (UNIT, base),
            "kernel": (TIME, g),
            "z": ((TRIAL, LATENT), z),
            "drift": ((TRIAL, UNIT), d),
            latent_var[0]: ((TRIAL, UNIT, TIME), latent_var[1]),
        },
        coords={TRIAL: labels, UNIT: units, TIME: times, LATENT: names},
        attrs={"kind": kind, "drift_sd": float(drift), "drift_rho": float(drift_rho),
               "shared_drift": float(shared_drift), "noise_sd": float(noise_sd) if kind == "gaussian" else 0.0,
               "bin_width_s": float(bin_width_s)},
    )
    return neural, truth
