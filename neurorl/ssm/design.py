"""Data checks, response coding and the parameter layout of a DDM regression (shared by MAP, NUTS and PPC).

Response coding
---------------
``coding="accuracy"`` (HDDM's default): ``response`` is 1 for a correct response (upper boundary), 0 for an error;
``v`` is the drift towards the correct response and ``z`` the starting point towards it.

``coding="stimulus"`` (HDDMStimCoding): ``response`` is 1 for the response mapped to the upper boundary and 0 for the
other; the ``stimulus`` column says which response is correct on each trial (1 upper, 0 lower). With
``split_param="v"`` (default) the drift is mirrored: ``v_eff = v`` when the stimulus is 1 and ``-v`` when it is 0, so
``v`` is the drift towards the correct response and ``z`` is a response bias towards the upper response. With
``split_param="z"`` the starting point is mirrored: ``z_eff = z`` for stimulus 1 and ``1 - z`` for stimulus 0 (``z``
is a bias towards the correct response) and ``v`` is used as it is (give it its own formula, e.g.
``v ~ 0 + C(stim)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from .formula import LINKS, ParamFormula
from .kernel import PARAMS

__all__ = ["DEFAULT_FIXED", "Layout", "prepare_data"]

#: values of parameters that are not given a formula (``v``, ``a``, ``t0`` get the formula "1")
DEFAULT_FIXED = {"z": 0.5, "sv": 0.0, "p_outlier": 0.0}
CODINGS = ("accuracy", "stimulus")


def _rows(mask, df, limit=5):
    idx = np.flatnonzero(np.asarray(mask))
    return ", ".join(str(df.index[i]) for i in idx[:limit]) + (f" and {idx.size - limit} more" if idx.size > limit
                                                                  else "")


def prepare_data(data, *, rt: str, response: str, subject: str, stimulus: str | None, coding: str,
                 trial: str = "trial") -> pd.DataFrame:
    """A checked tidy copy of ``data`` with internal columns ``_rt``, ``_resp``, ``_subj`` (codes), ``_trial``,
    ``_stim`` (1/0 or absent).

    ``data`` is a pandas DataFrame (one row per trial) or a neurorl trials ``xarray.Dataset`` (its valid trials, with
    ``choice`` as the response unless a ``response`` variable exists). Errors name the column and the rows.
    """
    if isinstance(data, xr.Dataset):
        from ..io import to_table

        df = to_table(data)
        if response not in df.columns and response == "response" and "choice" in df.columns:
            df = df.rename(columns={"choice": "response"})
    elif isinstance(data, pd.DataFrame):
        df = data.copy()
    else:
        raise TypeError(f"ssm: data must be a pandas DataFrame or a trials xarray.Dataset, got {type(data).__name__}")
    if coding not in CODINGS:
        raise ValueError(f"ssm: coding must be one of {CODINGS}, got {coding!r}")
    need = [rt, response, subject] + ([stimulus] if coding == "stimulus" else [])
    if coding == "stimulus" and stimulus is None:
        raise ValueError("ssm: coding='stimulus' needs stimulus='<column saying which response is correct>'")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"ssm: data has no column(s) {missing} (columns: {list(df.columns)}); name them with "
                         "rt=, response=, subject= (HDDM data: subject='subj_idx')")
    if len(df) == 0:
        raise ValueError("ssm: data has no rows")
    r = pd.to_numeric(df[rt], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(r) | (r <= 0)
    if bad.any():
        hint = (" Negative times look like HDDM's signed RT (lower boundary negative): give rt=|rt| and the "
                "boundary in the response column." if np.any(r < 0) else "")
        raise ValueError(f"ssm: column {rt!r} must hold positive reaction times in seconds; {int(bad.sum())} "
                         f"row(s) do not (rows {_rows(bad, df)}).{hint}")
    if np.nanmedian(r) > 20:
        raise ValueError(f"ssm: column {rt!r} has median {np.nanmedian(r):.4g}; reaction times must be in seconds "
                         "(divide milliseconds by 1000)")
    resp = pd.to_numeric(df[response], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isin(resp, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"ssm: column {response!r} must be 0 (lower boundary) or 1 (upper boundary); "
                         f"{int(bad.sum())} row(s) are not (rows {_rows(bad, df)}, e.g. {df[response].iloc[np.flatnonzero(bad)[0]]!r})")
    if df[subject].isna().any():
        raise ValueError(f"ssm: column {subject!r} has missing subject labels (rows {_rows(df[subject].isna(), df)})")
    df["_rt"] = r
    df["_resp"] = resp
    labels, codes = np.unique(df[subject].to_numpy(), return_inverse=True)
    df["_subj"] = codes
    if trial in df.columns:
        df["_trial"] = df[trial].to_numpy()
        dup = df.duplicated(subset=[subject, trial])
        if dup.any():
            raise ValueError(f"ssm: (subject, {trial}) pairs repeat in rows {_rows(dup, df)}")
    else:
        df["_trial"] = df.groupby(subject, sort=False).cumcount().to_numpy()
    if coding == "stimulus":
        s = pd.to_numeric(df[stimulus], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isin(s, (0.0, 1.0))
        if bad.any():
            raise ValueError(f"ssm: stimulus column {stimulus!r} must be 1 (upper response correct) or 0 (lower); "
                             f"{int(bad.sum())} row(s) are not (rows {_rows(bad, df)})")
        df["_stim"] = s
    df.attrs["subject_labels"] = labels
    return df


class Layout:
    """Free coefficients of a DDM regression and the map from them to per-trial parameters.

    The unconstrained vector ``theta`` holds, for each parameter with a formula (in :data:`PARAMS` order): its fixed
    coefficients ``beta`` (``K``), then ``log sd`` of its subject effects (``R``), then the standardised subject
    offsets ``u`` (``S x R``, subject-major). Per trial ``t`` of subject ``s``::

        eta_t = X_t . beta + sum_r Z_tr sd_r u_sr,     param_t = link(eta_t)
    """

    def __init__(self, formulas: dict[str, ParamFormula], fixed: dict[str, float], data: pd.DataFrame,
                 coding: str, split_param: str, infos=None):
        self.formulas, self.fixed, self.coding, self.split_param = formulas, dict(fixed), coding, split_param
        self.n_subjects = len(data.attrs["subject_labels"])
        self.subj = data["_subj"].to_numpy()
        self.n = len(data)
        self.blocks = {}
        self.infos = {}
        pos = 0
        names = []
        for p in PARAMS:
            if p not in formulas:
                continue
            f = formulas[p]
            X, cols, info = f.design(data, None if infos is None else infos[p][0])
            Z, rcols, rinfo = f.random_design(data, None if infos is None else infos[p][1])
            self.infos[p] = (info, rinfo)
            K, R = X.shape[1], Z.shape[1]
            b = {"X": X, "Z": Z, "cols": cols, "rcols": rcols,
                 "beta": slice(pos, pos + K), "lsd": slice(pos + K, pos + K + R),
                 "u": slice(pos + K + R, pos + K + R + self.n_subjects * R)}
            names += [f"{p}:{c}" for c in cols] + [f"{p}_sd:{c}" for c in rcols] + \
                [f"{p}_offset:{c}[{s}]" for s in range(self.n_subjects) for c in rcols]
            pos += K + R + self.n_subjects * R
            self.blocks[p] = b
        self.size = pos
        self.free_rows = tuple(PARAMS.index(p) for p in self.blocks)
        self.names = names
        self.sign_v = np.ones(self.n)
        self.mirror_z = np.zeros(self.n, bool)
        if coding == "stimulus":
            lower = data["_stim"].to_numpy() == 0
            if split_param == "v":
                self.sign_v[lower] = -1.0
            else:
                self.mirror_z[lower] = True

    # ---------------------------------------------------------------------------------------------------------
    def unpack(self, theta):
        """``{param: (beta, sd, u (S, R))}`` from a vector ``theta``."""
        out = {}
        for p, b in self.blocks.items():
            R = len(b["rcols"])
            out[p] = (theta[b["beta"]], np.exp(theta[b["lsd"]]), theta[b["u"]].reshape(self.n_subjects, R))
        return out

    def eta(self, p, beta, sd, u, X=None, Z=None, subj=None):
        b = self.blocks[p]
        X = b["X"] if X is None else X
        Z = b["Z"] if Z is None else Z
        subj = self.subj if subj is None else subj
        e = X @ beta
        if Z.shape[1]:
            e = e + np.sum(Z * (sd[None, :] * u[subj]), axis=1)
        return e

    def trial_params(self, theta, *, effective: bool = True):
        """``(6, n)`` per-trial parameters (``effective``: after response coding, as the kernel takes them) and the
        linear predictors ``{param: eta}``."""
        vals = self.unpack(theta)
        P = np.empty((len(PARAMS), self.n))
        etas = {}
        for i, p in enumerate(PARAMS):
            if p in self.blocks:
                etas[p] = self.eta(p, *vals[p])
                P[i] = LINKS[p].inv(etas[p])
            else:
                P[i] = self.fixed[p]
        if effective:
            P = self.apply_coding(P)
        return P, etas

    def apply_coding(self, P):
        P = P.copy()
        P[0] = P[0] * self.sign_v
        P[2] = np.where(self.mirror_z, 1.0 - P[2], P[2])
        return P

    def coding_factor(self, i):
        """d P_eff[i] / d P[i] per trial."""
        if i == 0:
            return self.sign_v
        if i == 2:
            return np.where(self.mirror_z, -1.0, 1.0)
        return np.ones(self.n)
