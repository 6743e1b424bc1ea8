"""Reward-scale checks shared by the agents whose defaults assume a reward scale (docs/agents.md, "Reward scale").

Some agents have options or parameter bounds in reward units that the data cannot rescale (DRA's memory SDs, the
Kalman-filter bandit's observation noise and value bounds, the actor-critic's logit scale). Their
``check_data``, which every estimator calls before fitting, compares the range of the rewards in the data with
the scale those defaults assume and warns, naming the options that match the data, when they differ by more than
a factor (each agent's docstring says which). The warning never changes the model: the user decides.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["reward_range", "warn_reward_scale"]


def reward_range(trials) -> tuple[float, float, float] | None:
    """``(min, max, max - min)`` of the finite rewards on valid trials of a trials dataset; None if there are none."""
    r = np.asarray(trials["reward"].values, dtype=float)
    if "valid" in trials:
        r = r[np.asarray(trials["valid"].values, dtype=bool)]
    r = r[np.isfinite(r)]
    if r.size == 0:
        return None
    lo, hi = float(r.min()), float(r.max())
    return lo, hi, hi - lo


def warn_reward_scale(agent: str, trials, *, assumed: float, factor: float, what: str, fix) -> bool:
    """Warn (``UserWarning``) when the reward range of ``trials`` differs from ``assumed`` by more than ``factor``.

    Parameters
    ----------
    agent : str
        The agent's name (starts the message).
    trials : xarray.Dataset
    assumed : float
        The reward range the agent's current options assume.
    factor : float
        Tolerated ratio (> 1) between the data's range and ``assumed``.
    what : str
        Which options or parameters are in reward units, and what they assume.
    fix : callable
        ``fix(span) -> str``: the options (or rescaling) that match a range ``span``.

    Returns
    -------
    bool
        Whether it warned.
    """
    rr = reward_range(trials)
    if rr is None or not rr[2] > 0:
        return False
    lo, hi, span = rr
    if assumed / factor <= span <= assumed * factor:
        return False
    warnings.warn(
        f"{agent}: {what}, but the rewards in these data span [{lo:g}, {hi:g}] (range {span:g}, "
        f"{'over' if span > assumed else 'under'} {factor:g} times the range of {assumed:g} assumed). {fix(span)}; "
        "see docs/agents.md, 'Reward scale'", UserWarning, stacklevel=4)
    return True
