"""Model-agnostic behavioural summaries of a trials dataset (tasks.md §1, §2).

Each function reads only the trials dataset (``choice``, ``reward``, ``valid`` and task
covariates), so it applies equally to recorded animals, tabular agents and deep agents.

:func:`p_switch_around_block_changes`
    P(switch) and P(choose the high port) from ``window[0]`` to ``window[1]`` trials around
    block changes of the mouse bandit (Beron et al. 2022; tasks.md §1 "Summaries").
:func:`switch_by_history`
    P(switch | ``n_back``-trial history word) with the letters A/a/B/b (tasks.md §1).
:func:`p_better_by_trial_in_episode`
    Within-episode learning curve of meta-RL bandit episodes: P(choose the better arm) by
    trial within episode (tasks.md §2, Wang et al. 2018).
:func:`two_step_stay`
    P(repeat the first-stage choice) by previous outcome (rewarded / unrewarded) and
    transition (common / rare) in the two-step task (tasks.md §7; Daw et al. 2011).
:func:`decision_rows`
    The rows of a dataset that carry decisions (all valid rows of a trial-level task; the
    ``decision`` rows of the time-step mouse bandit).

Conventions and assumptions ([A], chosen here)
----------------------------------------------
[A] A *switch* on trial t is ``choice_t != choice_{t-1}`` between consecutive decision rows of
    the same subject; the first decision of a subject has no switch value.
[A] Rows used: valid rows, and, when the dataset has a boolean ``decision`` covariate
    (``mouse_bandit_timestep``), only rows where it is True (the other rows are ITI / waiting
    steps, not choices). This selection is explicit in :func:`decision_rows` and stated in the
    ``rows`` attribute of every result.
[A] A block change is a decision row whose ``high_port`` differs from that of the previous
    decision row of the same subject; offset 0 is that first trial of the new block. Offsets
    run from ``window[0]`` to ``window[1]`` inclusive; every change contributes the offsets that
    exist in its session (counts ``n`` per offset are returned), even if another change
    falls inside the window (as in the usual block-aligned averages).
[A] History words (Beron et al. 2022): the ``n_back`` decisions before trial t, oldest first;
    a letter is ``A``/``a`` when the choice equals the oldest choice of the window and
    ``B``/``b`` otherwise; upper case when rewarded (reward > 0). The word is paired with
    P(choice_t != choice_{t-1}). All ``2 * 4**(n_back - 1)`` words are listed (p NaN when unseen).
[A] ``two_step_stay``: a two-step trial is a valid stage-1 row followed by a valid stage-2 row
    of the same ``episode``; stay on trial k means the stage-1 choice of trial k + 1 equals that of
    trial k (consecutive two-step trials of the same subject); rewarded means reward > 0.
[A] ``p_better_by_trial_in_episode``: the better arm is the one with the larger ``p``
    covariate; trials with tied probabilities are excluded (counted in the ``n_tied`` attr).
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from .schema import SUBJECT, TRIAL

__all__ = ["decision_rows", "p_switch_around_block_changes", "switch_by_history", "history_words",
           "p_better_by_trial_in_episode", "two_step_stay"]


def _need(trials: xr.Dataset, names, what: str) -> None:
    if not isinstance(trials, xr.Dataset):
        raise TypeError(f"{what}: trials must be an xarray.Dataset, got {type(trials).__name__}")
    missing = [k for k in names if k not in trials]
    if missing:
        raise ValueError(f"{what}: trials dataset lacks {missing}; have {sorted(trials.data_vars)}")


def decision_rows(trials: xr.Dataset) -> np.ndarray:
    """Boolean mask ``(subject, trial)`` of the rows that carry decisions.

    ``valid`` rows, restricted to ``decision`` rows when the dataset has a ``decision``
    covariate (time-step tasks).
    """
    _need(trials, ["choice"], "decision_rows")
    valid = trials["valid"].values.astype(bool) if "valid" in trials else trials["choice"].values >= 0
    if "decision" in trials:
        valid = valid & trials["decision"].values.astype(bool)
    return valid


def _rows_note(trials) -> str:
    return "valid & decision" if "decision" in trials else "valid"


def _per_subject(trials, names, what):
    """Yield per-subject arrays (decision rows only) of the named variables."""
    mask = decision_rows(trials)
    arrays = {k: trials[k].transpose(SUBJECT, TRIAL, ...).values for k in names}
    for i in range(mask.shape[0]):
        keep = mask[i]
        yield {k: v[i][keep] for k, v in arrays.items()}


def p_switch_around_block_changes(trials: xr.Dataset, window=(-10, 20)) -> xr.Dataset:
    """P(switch) and P(high port) around block changes (tasks.md §1, Beron et al. 2022).

    Parameters
    ----------
    trials : xarray.Dataset
        Trials with ``choice`` and the ``high_port`` covariate (``mouse_bandit``,
        ``mouse_bandit_timestep`` or recorded data mapped to it), pooled over subjects.
    window : (int, int), default (-10, 20)
        First and last offset, inclusive; offset 0 is the first trial of the new block.

    Returns
    -------
    xarray.Dataset
        On dim ``offset``: ``p_switch`` (NaN where no switch value exists), ``p_high``,
        ``n`` (block changes contributing to ``p_high``) and ``n_switch`` (to ``p_switch``);
        attributes ``n_changes`` and ``rows``.
    """
    what = "p_switch_around_block_changes"
    _need(trials, ["choice", "high_port"], what)
    try:
        lo, hi = (int(w) for w in window)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: window must be two integers (first, last), got {window!r}") from None
    if lo > hi:
        raise ValueError(f"{what}: window must satisfy first <= last, got {window!r}")
    offsets = np.arange(lo, hi + 1)
    sw_sum = np.zeros(offsets.size)
    sw_n = np.zeros(offsets.size, np.int64)
    hi_sum = np.zeros(offsets.size)
    hi_n = np.zeros(offsets.size, np.int64)
    n_changes = 0
    for d in _per_subject(trials, ["choice", "high_port"], what):
        c, z = d["choice"], d["high_port"]
        T = c.size
        if T < 2:
            continue
        switch = np.r_[np.nan, (c[1:] != c[:-1]).astype(float)]
        high = (c == z).astype(float)
        for t0 in np.flatnonzero(z[1:] != z[:-1]) + 1:
            n_changes += 1
            idx = t0 + offsets
            ok = (idx >= 0) & (idx < T)
            hi_sum[ok] += high[idx[ok]]
            hi_n[ok] += 1
            ok_s = ok.copy()
            ok_s[ok] &= ~np.isnan(switch[idx[ok]])
            sw_sum[ok_s] += switch[idx[ok_s]]
            sw_n[ok_s] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        p_switch = np.where(sw_n > 0, sw_sum / np.maximum(sw_n, 1), np.nan)
        p_high = np.where(hi_n > 0, hi_sum / np.maximum(hi_n, 1), np.nan)
    return xr.Dataset(
        {"p_switch": ("offset", p_switch), "p_high": ("offset", p_high), "n": ("offset", hi_n),
         "n_switch": ("offset", sw_n)},
        coords={"offset": offsets}, attrs={"n_changes": n_changes, "rows": _rows_note(trials)},
    )


def history_words(n_back: int) -> list[str]:
    """All history words of length ``n_back``: first letter A/a, then A/a/B/b (product order)."""
    if isinstance(n_back, bool) or not isinstance(n_back, (int, np.integer)) or n_back < 1:
        raise ValueError(f"history_words: n_back must be an integer >= 1, got {n_back!r}")
    return ["".join(w) for w in itertools.product("Aa", *(["AaBb"] * (int(n_back) - 1)))]


def switch_by_history(trials: xr.Dataset, n_back: int = 3) -> xr.Dataset:
    """P(switch | history word of the previous ``n_back`` decisions) (tasks.md §1).

    Parameters
    ----------
    trials : xarray.Dataset
        Trials with ``choice`` and ``reward`` (any two-choice task), pooled over subjects.
    n_back : int, default 3
        Length of the history word.

    Returns
    -------
    xarray.Dataset
        On dim ``history`` (the words of :func:`history_words`): ``p_switch`` (NaN for unseen
        words) and ``n`` (occurrences); attribute ``rows``.
    """
    what = "switch_by_history"
    _need(trials, ["choice", "reward"], what)
    words = history_words(n_back)
    index = {w: i for i, w in enumerate(words)}
    s_sum = np.zeros(len(words))
    n = np.zeros(len(words), np.int64)
    for d in _per_subject(trials, ["choice", "reward"], what):
        c, r = d["choice"], np.nan_to_num(np.asarray(d["reward"], float)) > 0
        for t in range(n_back, c.size):
            past, rew = c[t - n_back:t], r[t - n_back:t]
            letters = [("A" if same else "B") if rw else ("a" if same else "b")
                       for same, rw in zip(past == past[0], rew)]
            k = index["".join(letters)]
            n[k] += 1
            s_sum[k] += float(c[t] != c[t - 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, s_sum / np.maximum(n, 1), np.nan)
    return xr.Dataset({"p_switch": ("history", p), "n": ("history", n)}, coords={"history": words},
                      attrs={"n_back": int(n_back), "rows": _rows_note(trials)})


def p_better_by_trial_in_episode(trials: xr.Dataset) -> xr.Dataset:
    """Within-episode learning curve: P(choose the better arm) by trial within episode.

    Parameters
    ----------
    trials : xarray.Dataset
        Trials with ``choice`` and the covariates ``trial_in_episode`` and ``p`` (per action)
        of ``wang_bandit``.

    Returns
    -------
    xarray.Dataset
        On dim ``trial_in_episode``: ``p_better``, ``sem`` (binomial standard error) and ``n``;
        attributes ``n_tied`` (trials without a better arm, excluded) and ``rows``.
    """
    what = "p_better_by_trial_in_episode"
    _need(trials, ["choice", "trial_in_episode", "p"], what)
    mask = decision_rows(trials)
    p = trials["p"].transpose(SUBJECT, TRIAL, ...).values
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"{what}: covariate 'p' must be (subject, trial, action) with 2 actions, got {p.shape}")
    c = trials["choice"].transpose(SUBJECT, TRIAL).values
    k = trials["trial_in_episode"].transpose(SUBJECT, TRIAL).values
    tied = mask & (p[..., 0] == p[..., 1])
    use = mask & ~tied
    better = np.argmax(p, axis=-1)
    hit = (c == better)[use].astype(float)
    kk = k[use].astype(np.int64)
    if kk.size == 0:
        raise ValueError(f"{what}: no usable trials (all rows invalid or tied)")
    K = int(kk.max()) + 1
    n = np.bincount(kk, minlength=K)
    s = np.bincount(kk, weights=hit, minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        pb = np.where(n > 0, s / np.maximum(n, 1), np.nan)
        sem = np.sqrt(pb * (1 - pb) / np.maximum(n, 1))
    return xr.Dataset({"p_better": ("trial_in_episode", pb), "sem": ("trial_in_episode", sem),
                       "n": ("trial_in_episode", n)}, coords={"trial_in_episode": np.arange(K)},
                      attrs={"n_tied": int(tied.sum()), "rows": _rows_note(trials)})


def two_step_stay(trials: xr.Dataset) -> xr.Dataset:
    """P(stay) with the first-stage choice by previous outcome and transition (tasks.md §7).

    Parameters
    ----------
    trials : xarray.Dataset
        Two-step rows with ``choice``, ``reward``, ``valid`` and the covariates ``stage``,
        ``common`` and ``episode`` (task ``two_step``), pooled over subjects.

    Returns
    -------
    xarray.Dataset
        ``p_stay`` and ``n`` on dims ``outcome`` (``"rewarded"``, ``"unrewarded"``) x
        ``transition`` (``"common"``, ``"rare"``); attribute ``n_trials`` (two-step trials with
        a following trial). A model-free learner stays more after reward whatever the
        transition; a model-based one shows the outcome x transition interaction.
    """
    what = "two_step_stay"
    _need(trials, ["choice", "reward", "stage", "common", "episode"], what)
    valid = trials["valid"].values.astype(bool) if "valid" in trials else trials["choice"].values >= 0
    get = {k: trials[k].transpose(SUBJECT, TRIAL).values for k in ("choice", "reward", "stage", "common", "episode")}
    s_sum = np.zeros((2, 2))
    n = np.zeros((2, 2), np.int64)
    total = 0
    for i in range(valid.shape[0]):
        st, ep = get["stage"][i], get["episode"][i]
        first = np.flatnonzero(valid[i][:-1] & valid[i][1:] & (st[:-1] == 1) & (st[1:] == 2) & (ep[:-1] == ep[1:]))
        c1 = get["choice"][i][first]
        rew = np.nan_to_num(np.asarray(get["reward"][i][first + 1], float)) > 0
        com = get["common"][i][first].astype(bool)
        consecutive = ep[first[1:]] == ep[first[:-1]] + 1
        for k in np.flatnonzero(consecutive):
            o, tr = (0 if rew[k] else 1), (0 if com[k] else 1)
            n[o, tr] += 1
            s_sum[o, tr] += float(c1[k + 1] == c1[k])
            total += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, s_sum / np.maximum(n, 1), np.nan)
    return xr.Dataset({"p_stay": (("outcome", "transition"), p), "n": (("outcome", "transition"), n)},
                      coords={"outcome": ["rewarded", "unrewarded"], "transition": ["common", "rare"]},
                      attrs={"n_trials": total})
