"""Private helpers shared by the tabular agents (soft Q, actor-critic, distributional TD).

Next-state identification
-------------------------
The per-trial observation (``agents.base.OBS_KEYS``) describes the next state
only through ``next_items`` and ``next_avail``. Agents that keep a table over
*states* (a state-value critic) or that need the next state's shown values
(``EnvSpec.known_value``) must know which state was reached.
:func:`next_state_weights` recovers it:

* if the observation carries ``next_state`` (int, clipped to the state range)
  it is used directly (exact);
* otherwise the next state is the state whose row of ``EnvSpec.item`` equals
  ``next_items``. The rows are compared through an exact integer key
  ``sum_a item[s, a] * n_items**a`` (exact in float64 while
  ``n_items**n_actions < 2**53``). Where several states share one item row
  (e.g. the probe states ``12 + o`` and ``24 + o`` of ``memory_2afc``) the
  weights are spread evenly over them [A]: the bootstrap then uses their mean.
  This only matters when such a state is reached by a trial that does not end
  its episode (never in ``memory_2afc``, where every trial is terminal).

The result is a weight matrix ``(n, n_states)`` whose rows sum to one (a
one-hot row whenever the state is identified), so every use is a weighted sum
and works under both backends.
"""

from __future__ import annotations

import numpy as np

__all__ = ["next_state_weights", "next_values", "item_row_keys"]

_EXACT = 2.0**53


def item_row_keys(env) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys of the item rows of ``env`` and the weights that build them.

    Returns
    -------
    keys : ndarray of float, shape (n_states,)
        ``sum_a item[s, a] * n_items**a``.
    weights : ndarray of float, shape (n_actions,)
        ``n_items**a``.

    Raises
    ------
    ValueError
        If the keys would not be exact in float64 (``n_items**n_actions >= 2**53``).
    """
    base = float(max(env.n_items, 1))
    if base ** env.n_actions >= _EXACT:
        raise ValueError(
            f"cannot identify the next state from its items: n_items**n_actions = {env.n_items}**{env.n_actions} "
            "is too large for exact float64 keys; the observation needs a 'next_state' entry"
        )
    weights = base ** np.arange(env.n_actions, dtype=float)
    keys = np.asarray(env.item, dtype=float) @ weights
    return keys, weights


def next_state_weights(obs: dict, env, ops):
    """Weights ``(n, n_states)`` of the state reached on the trial (see module docstring)."""
    if "next_state" in obs:
        return ops.onehot(obs["next_state"], env.n_states)
    keys, weights = item_row_keys(env)
    nk = ops.sum(obs["next_items"] * ops.asarray(weights), axis=-1)
    match = ops.where(ops.abs(nk[:, None] - ops.asarray(keys)[None, :]) < 0.5, 1.0, 0.0)
    return match / ops.maximum(ops.sum(match, axis=-1, keepdims=True), 1.0)


def next_values(learnt_next, w_next, env, ops):
    """Next-state action values with shown (known) values substituted.

    Parameters
    ----------
    learnt_next : tensor (n, A) or (n, A, K)
        Values gathered from the agent's table at ``next_items``.
    w_next : tensor (n, n_states)
        :func:`next_state_weights`.

    Returns
    -------
    tensor of the shape of ``learnt_next``
        ``sum_s w[s] * where(known[s, a], known_value[s, a], learnt_next[a])``.
    """
    known = np.isfinite(env.known_value)
    if not known.any():
        return learnt_next
    kf = ops.asarray(known.astype(float))
    kv = ops.asarray(np.where(known, env.known_value, 0.0))
    frac = ops.sum(w_next[:, :, None] * kf[None], axis=1)  # (n, A): share of weight on known entries
    shown = ops.sum(w_next[:, :, None] * kv[None], axis=1)  # (n, A): weighted shown values
    extra = learnt_next.ndim - 2
    for _ in range(extra):
        frac, shown = frac[..., None], shown[..., None]
    return learnt_next * (1.0 - frac) + shown
