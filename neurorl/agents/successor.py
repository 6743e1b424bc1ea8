"""Successor representation (Dayan 1993; Russek et al. 2017; Momennejad et al. 2017; agents.md §10).

One rule, written once against the ops layer, with optional model-free and model-based components
(Momennejad et al.'s hybrids). Tables are indexed by the task's value-table items
(``EnvSpec.item``: one item per (state, action) in most tasks) and states.

Successor representation (component ``"sr"``)
---------------------------------------------
``representation="state_action"`` (default): an item-by-item SR ``H``, initialised to the identity,
learnt by TD on every row (state s, chosen item i, next state s')::

    H[i, :] += alpha_sr * (e_i + gamma (1 - done) sum_a' pi(a'|s') H[item(s', a'), :] - H[i, :])

with ``pi(.|s')`` the agent's own acting policy at s' from the current tables (an expected-SARSA
target: the next choice is not known when the row is learnt). Reward weights per item,
``w[i] += alpha_w (r - w[i])``, and ``Q_SR = H w``.

``representation="state"``: a state-by-state SR ``M`` (identity at start),
``M[s, :] += alpha_sr (e_s + gamma (1 - done) M[s', :] - M[s, :])``, reward weights per state,
``w_s[s] += alpha_w (r - w_s[s])`` (the reward of a row is received in its state), ``V = M w_s``.
Action values come from a one-step look-ahead through a *learnt* one-step model (the agent is not
told the task's transitions): ``Q_SR(i) = R[i] + gamma sum_s' T[i, s'] V(s')``.

One-step model (shared by ``"mb"`` and the state representation)
----------------------------------------------------------------
``R[i] += alpha_w (r - R[i])``; ``T[i, :] += alpha_t ((1 - done) e_s' - T[i, :])`` (rows decay
toward 0 on episode ends, so ``sum_s' T[i, s']`` is the learnt probability of going on).

Model-based (component ``"mb"``)
--------------------------------
Value iteration on the learnt model, ``sweeps`` sweeps from ``Q = R``:
``Q <- R + gamma sum_s' T[., s'] max_{a' available} Q(item(s', a'))``. ``sweeps=None`` (default) is ``S``, the
number of states: exact for acyclic episodic tasks of at most ``S`` moves, a truncated look-ahead otherwise. An
episodic task whose longest episode is ``k`` moves is solved exactly by ``k`` sweeps (the learnt model only holds
transitions that occurred, so it has no longer path): e.g. ``sweeps=4`` for the revaluation task, whose block
design has 27 states (7x fewer sweeps, the same values to rounding; a test checks it). A smaller ``sweeps`` on a
task with longer paths is a planning horizon, a model of its own.

Model-free (component ``"mf"``)
-------------------------------
Q-learning, ``Q_MF[i] += alpha_mf (r + gamma (1 - done) max_a' Q_MF(s', a') - Q_MF[i])``.

Choice
------
``Q = sum_c w_c Q_c`` over the chosen components, ``pi = softmax(beta Q)`` over the available
actions (shown values, ``EnvSpec.known_value``, replace every component's value). Weights on the
simplex by stick-breaking from the last component: with components ``(c_1, ..., c_k)`` in canonical
order ``mf, sr, mb``, parameter ``w_<c_k>`` is the last weight, ``share_<c_j>`` (j = 2..k-1) the
fraction of what remains that goes to ``c_j``, and ``c_1`` takes the rest. With one component there
is no weight parameter.

Assumptions and choices
-----------------------
[A] The reward weights of the state-action SR and the one-step reward model ``R`` are the same
    quantity (expected immediate reward of an item) and share one table and one rate ``alpha_w``.
[A] Tables start at 0 (values), identity (SR) and 0 (transitions).
[A] The SR's expected-SARSA target uses the full acting policy at s' (all components, no lapse);
    the state SR is on-policy by construction (the next state's row, no action needed).
[A] Rows whose actions have shown values are learnt like any other (the shown value overrides only
    the decision).
[A] Tabular tables grow as items^2 and the model-based sweep as states x items x states: tasks with
    more than 64 items or states are refused with a clear error.

Latents
-------
``q`` (combined), ``q_sr`` / ``q_mf`` / ``q_mb`` (present components), ``policy``, ``entropy``,
``v`` (``sum pi q``), ``sr_row`` (the SR of the current state: ``M[s, :]`` over states for the
state representation; ``sum_a pi(a) H[item(s, a), :]`` over items for the state-action one),
``v_sr`` (SR value of the current state: ``M[s] w_s`` or ``sum_a pi(a) Q_SR(a)``), ``rpe`` (reward
prediction error of the SR's weights, ``r - w[i]`` or ``r - w_s[s]``; of ``R`` without SR),
``sr_pe`` (Euclidean norm of the vector SR prediction error), ``rpe_mf`` (with ``"mf"``),
``chosen_value``.
"""

from __future__ import annotations

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["Successor", "COMPONENTS", "mixture_weights"]

COMPONENTS = ("mf", "sr", "mb")
MAX_TABLE = 64


def mixture_weights(p: dict, components, ops=None) -> list:
    """Component weights from the stick-breaking parameters (module docstring), in ``components`` order."""
    k = len(components)
    if k == 1:
        return [1.0]
    last = components[-1]
    remain = 1.0 - p[f"w_{last}"]
    weights = [p[f"w_{last}"]]
    for c in reversed(components[1:-1]):
        weights.append(remain * p[f"share_{c}"])
        remain = remain * (1.0 - p[f"share_{c}"])
    weights.append(remain)
    return list(reversed(weights))


@register_agent
class Successor(Agent):
    """Successor-representation agent with optional model-free / model-based hybrid (module docstring).

    Parameters
    ----------
    representation : {"state_action", "state"}, default "state_action"
        Item-by-item SR ``H`` (``Q = H w``) or state-by-state SR ``M`` with a one-step look-ahead.
    components : sequence of {"mf", "sr", "mb"}, default ("sr",)
        Value components mixed in the choice (canonical order is used whatever the order given).
    gamma : float in [0, 1], default 0.95
        Discount factor.
    fixed : dict, optional
        Parameters held constant.
    """

    name = "successor"
    family = "successor"
    latent_dims = {**VALUE_LATENTS, "q_sr": ("action",), "q_mf": ("action",), "q_mb": ("action",),
                   "sr_row": ("successor",), "v_sr": (), "sr_pe": (), "rpe_mf": ()}
    null_policy_params = {"beta": 1e-12}

    def __init__(self, *, representation: str = "state_action", components=("sr",), gamma: float = 0.95,
                 sweeps: int | None = None, fixed=None):
        if representation not in ("state_action", "state"):
            raise ValueError(f"successor: representation must be 'state_action' or 'state', got {representation!r}")
        if isinstance(components, str):
            components = (components,)
        comps = tuple(components)
        bad = sorted(set(comps) - set(COMPONENTS))
        if bad or not comps or len(set(comps)) != len(comps):
            raise ValueError(f"successor: components must be distinct names from {COMPONENTS}, got {components!r}")
        comps = tuple(c for c in COMPONENTS if c in comps)
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"successor: gamma must be in [0, 1], got {gamma}")
        if sweeps is not None and (isinstance(sweeps, bool) or not isinstance(sweeps, (int, np.integer))
                                   or sweeps < 1):
            raise ValueError(f"successor: sweeps must be an int >= 1 or None (one per state), got {sweeps!r}")
        if sweeps is not None and "mb" not in comps:
            raise ValueError("successor: sweeps is the model-based component's number of value-iteration sweeps; "
                             f"components {comps} have no 'mb'")
        opts = {} if sweeps is None else {"sweeps": int(sweeps)}  # None keeps older spec files' options
        super().__init__(fixed=fixed, representation=representation, components=comps, gamma=float(gamma), **opts)

    # -- structure ----------------------------------------------------------------------
    @property
    def _has(self):
        return set(self.options["components"])

    @property
    def _state_sr(self):
        return "sr" in self._has and self.options["representation"] == "state"

    @property
    def _needs_model(self):
        return "mb" in self._has or self._state_sr

    def param_spec(self):
        has, comps = self._has, self.options["components"]
        rate = Param("alpha_sr", 0.0, 1.0, 0.3, doc="SR learning rate")
        spec = []
        if "sr" in has:
            spec.append(rate)
        if "sr" in has or "mb" in has:
            spec.append(rate.with_(name="alpha_w", doc="reward-weight (and one-step reward model) learning rate"))
        if self._needs_model:
            spec.append(rate.with_(name="alpha_t", doc="one-step transition-model learning rate"))
        if "mf" in has:
            spec.append(rate.with_(name="alpha_mf", doc="model-free learning rate"))
        spec.append(Param("beta", 0.0, float("inf"), 5.0, doc="inverse temperature"))
        if len(comps) > 1:
            spec.append(Param("w_" + comps[-1], 0.0, 1.0, 1.0 / len(comps), doc=f"weight of {comps[-1]}"))
            for j, c in enumerate(comps[1:-1], start=1):
                spec.append(Param("share_" + c, 0.0, 1.0, 1.0 / (j + 1),
                                  doc=f"fraction of the weight left by later components that goes to {c}"))
        return spec

    def check_env(self, env):
        if env.n_items > MAX_TABLE or env.n_states > MAX_TABLE:
            raise ValueError(f"{self.name}: tabular SR/model tables need at most {MAX_TABLE} items and states; "
                             f"this task has {env.n_items} items and {env.n_states} states")


    def init(self, p, env, n, ops):
        I, S = env.n_items, env.n_states
        st = {"R": ops.zeros((n, I))}
        if "sr" in self._has:
            if self._state_sr:
                st["M"] = ops.zeros((n, S, S)) + ops.asarray(np.eye(S))
                st["Ws"] = ops.zeros((n, S))
            else:
                st["H"] = ops.zeros((n, I, I)) + ops.asarray(np.eye(I))
        if self._needs_model:
            st["T"] = ops.zeros((n, I, S))
        if "mf" in self._has:
            st["Qmf"] = ops.zeros((n, I))
        return st

    # -- value tables -------------------------------------------------------------------
    def _item_tables(self, p, s, ops):
        """Full item-value tables ``(n, I)`` of each component and their mixture."""
        gamma, env = self.options["gamma"], self.env
        out = {}
        if "sr" in self._has:
            if self._state_sr:
                v = ops.sum(s["M"] * s["Ws"][:, None, :], axis=-1)  # (n, S)
                out["sr"] = s["R"] + gamma * ops.sum(s["T"] * v[:, None, :], axis=-1)
            else:
                out["sr"] = ops.sum(s["H"] * s["R"][:, None, :], axis=-1)
        if "mb" in self._has:
            avail = ops.asarray(env.available)[None]
            flat = np.asarray(env.item).ravel()  # item of each (state, action), a constant index
            q = s["R"]
            for _ in range(self.options.get("sweeps", env.n_states)):
                qsa = q[:, flat].reshape((-1, env.n_states, env.n_actions))  # (n, S, A): Q(item(s, a))
                v = ops.max(ops.where(avail, qsa, -1e30), axis=-1)  # (n, S)
                q = s["R"] + gamma * ops.sum(s["T"] * v[:, None, :], axis=-1)
            out["mb"] = q
        if "mf" in self._has:
            out["mf"] = s["Qmf"]
        comps = self.options["components"]
        w = mixture_weights(p, comps)
        mix = 0.0
        for c, wc in zip(comps, w):
            mix = mix + (wc if isinstance(wc, float) else wc[:, None]) * out[c]
        return out, mix

    def _at(self, table, items, known, known_value, ops):
        return ops.where(known, known_value, ops.gather(table, items))

    # -- rule ---------------------------------------------------------------------------
    def decide(self, p, s, obs, ops):
        tables, mix = self._item_tables(p, s, ops)
        items, known, kv = obs["items"], obs["known"], obs["known_value"]
        q = self._at(mix, items, known, kv, ops)
        policy, logp = softmax_policy(p["beta"][:, None] * q, obs["avail"], ops)
        out = shared_latents(q, policy, 1.0 / p["beta"], ops)
        out.update(policy=policy, log_policy=logp, _mix=mix)  # _mix: the item values, reused by learn
        for c in self.options["components"]:
            out["q_" + c] = self._at(tables[c], items, known, kv, ops)
        if "sr" in self._has:
            if self._state_sr:
                e_s = ops.onehot(obs["state"], self.env.n_states)
                out["sr_row"] = ops.sum(s["M"] * e_s[:, :, None], axis=1)
                vs = ops.sum(s["M"] * s["Ws"][:, None, :], axis=-1)
                out["v_sr"] = ops.sum(vs * e_s, axis=-1)
            else:
                oh = ops.onehot(items, self.env.n_items)  # (n, A, I)
                rows = ops.sum(oh[:, :, :, None] * s["H"][:, None, :, :], axis=2)  # (n, A, I)
                out["sr_row"] = ops.sum(policy[:, :, None] * rows, axis=1)
                out["v_sr"] = ops.sum(policy * out["q_sr"], axis=-1)
        return out

    def learn(self, p, s, obs, dec, ops):
        env, gamma = self.env, self.options["gamma"]
        I, S = env.n_items, env.n_states
        r = obs["reward"]
        cont = gamma * (1.0 - obs["done"])
        a1h = ops.onehot(obs["choice"], env.n_actions)
        i1h = ops.onehot(obs["chosen_item"], I)
        new = {}
        lat = {"chosen_value": take(dec["q"], a1h, ops)}
        r_pred = ops.sum(s["R"] * i1h, axis=-1)
        rpe = r - r_pred
        new["R"] = s["R"] + (p["alpha_w"] * rpe)[:, None] * i1h if ("sr" in self._has or "mb" in self._has) \
            else s["R"]
        if "sr" in self._has:
            if self._state_sr:
                e_s = ops.onehot(obs["state"], S)
                e_n = ops.onehot(obs["next_state"], S)
                m_s = ops.sum(s["M"] * e_s[:, :, None], axis=1)
                m_n = ops.sum(s["M"] * e_n[:, :, None], axis=1)
                err = e_s + cont[:, None] * m_n - m_s
                new["M"] = s["M"] + p["alpha_sr"][:, None, None] * e_s[:, :, None] * err[:, None, :]
                w_s = ops.sum(s["Ws"] * e_s, axis=-1)
                rpe = r - w_s
                new["Ws"] = s["Ws"] + (p["alpha_w"] * rpe)[:, None] * e_s
            else:
                nq = self._at(dec["_mix"], obs["next_items"], obs["next_known"], obs["next_known_value"], ops)
                pi_n, _ = softmax_policy(p["beta"][:, None] * nq, obs["next_avail"], ops)
                noh = ops.onehot(obs["next_items"], I)  # (n, A, I)
                h_next = ops.sum((pi_n[:, :, None] * noh)[:, :, :, None] * s["H"][:, None, :, :], axis=(1, 2))
                h_i = ops.sum(s["H"] * i1h[:, :, None], axis=1)
                err = i1h + cont[:, None] * h_next - h_i
                new["H"] = s["H"] + p["alpha_sr"][:, None, None] * i1h[:, :, None] * err[:, None, :]
            lat["sr_pe"] = ops.sqrt(ops.sum(err * err, axis=-1))
        if self._needs_model:
            e_n = ops.onehot(obs["next_state"], S) * (1.0 - obs["done"])[:, None]
            t_i = ops.sum(s["T"] * i1h[:, :, None], axis=1)
            new["T"] = s["T"] + p["alpha_t"][:, None, None] * i1h[:, :, None] * (e_n - t_i)[:, None, :]
        if "mf" in self._has:
            nq = ops.where(obs["next_known"], obs["next_known_value"], ops.gather(s["Qmf"], obs["next_items"]))
            nmax = ops.max(ops.where(obs["next_avail"], nq, -1e30), axis=-1)
            qa = ops.sum(s["Qmf"] * i1h, axis=-1)
            d_mf = r + cont * ops.where(obs["done"] > 0, 0.0, nmax) - qa
            new["Qmf"] = s["Qmf"] + (p["alpha_mf"] * d_mf)[:, None] * i1h
            lat["rpe_mf"] = d_mf
        lat["rpe"] = rpe if ("sr" in self._has or "mb" in self._has) else lat["rpe_mf"]
        return new, lat
