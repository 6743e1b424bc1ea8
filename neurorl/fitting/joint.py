"""Choices and reaction times in one likelihood: an agent plus an RT observation model.

Reference: fitting.md §2.1 (log-normal RT with policy-complexity predictors) and §2.2 (Wiener first-passage time;
RL-DDM of Pedersen, Frank & Biele 2017).

:class:`WithRT` wraps a learning agent and an RT model (:class:`~neurorl.fitting.observation.LognormalRT` or
:class:`~neurorl.fitting.observation.WienerRT`) into one :class:`~neurorl.agents.base.Agent`: its parameters are
the agent's followed by the RT model's, its ``decide``/``learn`` are the agent's own (one learning rule), and its
:meth:`WithRT.trial_loglik` is the joint log density of the trial's choice and RT. Everything that takes an agent
therefore takes it unchanged: ``simulate`` draws choices *and* RTs (written to ``trials["rt"]``), ``replay`` gives
the latents, and the likelihood graphs of :mod:`neurorl.fitting.graph` -- hence MLE, MAP, EM-MAP (``rt=`` option)
and the PyMC models -- score choices and RTs with exact gradients::

    MAP("q_learning", rt=WienerRT(fixed={"w": 0.5})).fit(trials)      # RL-DDM
    MAP("policy_compression", rt=LognormalRT()).fit(trials)           # RT ~ policy complexity

Per valid trial ``t`` with choice ``a_t`` and reaction time ``RT_t``:

``LognormalRT``
    ``log pi(a_t | s_t) + log N(log RT_t; mu_t, sigma^2) - log RT_t`` with ``mu_t = log(t0 + b1 |cost_t| + b2
    H_t / ln 2)``, ``H_t`` the policy entropy and ``cost_t = log pi(a_t|s_t) - log P(a_t)``.
``WienerRT``
    ``log WFPT(RT_t, a_t | v_t, a, w, t0[, sv])`` with drift ``v_t = v_scale * (Q_t(1) - Q_t(0))``: the
    diffusion produces the choice (action 1 = upper boundary) and its RT together, so the softmax term is not added.

Assumptions and choices
-----------------------
[A1] ``LognormalRT`` adds the Jacobian ``-log RT`` (a constant of the data) so that the joint is a density of RT in
     seconds, as the Wiener density is: evidence of log-normal and Wiener models of the same RTs can then be
     compared. (The source model scores log RT; differences between log-normal models are unchanged.)
[A2] ``P(a)`` in the policy cost is the agent's learnt marginal (latent ``marginal``, policy compression); agents
     without one are scored against the uniform policy over the available actions, ``P(a) = 1 / |A_t|`` (cost = the
     information the chosen action carries beyond a uniform default).
[A3] Trials with a missing RT (NaN) or one below ``LognormalRT.min_rt`` keep their choice term and drop the RT
     term (``check_data`` warns with the count); under ``WienerRT`` every valid trial must have an RT above the
     fixed ``t0`` (or above 0 when ``t0`` is free), otherwise ``check_data`` raises naming the subject and trial.
[A4] Under ``WienerRT`` the agent's parameters that cannot change the drift (the softmax temperature of a
     Q-learner, a lapse) do not enter the likelihood; they are fixed at their defaults, found once from the
     traced program of four trials of the rule (parameters the value difference does not depend on), and
     listed in :attr:`WithRT.unused`. A parameter that also shapes learning (e.g. the temperature of a soft
     backup) stays free. Pass ``fixed=`` to choose other values.
[A5] RT-model parameters whose names clash with the agent's (``w`` of the two-step hybrid) are prefixed ``rt_``.
[A6] ``value="q"`` (default) takes the drift's value difference from the agent's ``q`` latent at decision time;
     ``value="q_soft"`` (or any decision latent with an action axis) can be chosen. Wiener models need tasks with
     exactly two actions.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..agents.base import Agent, make_agent, scored_mask, take
from ..backend import NUMPY
from .observation import LognormalRT, ObservationModel, WienerRT

__all__ = ["WithRT", "with_rt"]


def _reaching(jaxpr) -> set:
    """Input variables of a jaxpr that some output depends on (walking equations backwards, into sub-jaxprs
    conservatively: every input of an equation whose output is needed is needed)."""
    from jax.extend.core import Var

    needed = {v for v in jaxpr.outvars if isinstance(v, Var)}
    for eqn in reversed(jaxpr.eqns):
        if any(o in needed for o in eqn.outvars):
            needed.update(v for v in eqn.invars if isinstance(v, Var))
    return needed


class WithRT(Agent):
    """An agent whose choices *and* reaction times are modelled (module docstring).

    Parameters
    ----------
    agent : Agent or str
        The learning agent.
    rt_model : LognormalRT or WienerRT
        The RT observation model (its own ``fixed`` parameters are kept).
    value : str
        Decision latent giving the Wiener drift's value difference (``"q"``; [A6]).
    fixed : dict, optional
        Fix more parameters of the joint model (agent or RT names, after [A5] renaming).
    """

    def __init__(self, agent: Agent | str, rt_model: ObservationModel, *, value: str = "q",
                 fixed: dict | None = None):
        agent = make_agent(agent)
        if isinstance(agent, WithRT):
            raise ValueError("the agent already has an RT model")
        if not isinstance(rt_model, (LognormalRT, WienerRT)):
            raise TypeError(f"rt_model must be a LognormalRT or WienerRT, got {type(rt_model).__name__}")
        self.agent, self.rt_model, self.value = agent, rt_model, str(value)
        self.name = f"{agent.name}+{rt_model.name}"
        self.family = agent.family
        self.tasks = agent.tasks
        self.null_policy_params = dict(agent.null_policy_params)
        self.simulation_only = agent.simulation_only
        self.wiener = isinstance(rt_model, WienerRT)
        if self.wiener and value not in agent.latent_dims:
            raise ValueError(f"{self.name}: value={value!r} is not a latent of {agent.name!r} "
                             f"(latents: {sorted(agent.latent_dims)})")
        self.latent_dims = {**agent.latent_dims, **({"drift": ()} if self.wiener else {"rt_mean_log": ()})}
        agent_names = {p.name for p in agent.all_params}
        self.rt_names = {p.name: (f"rt_{p.name}" if p.name in agent_names else p.name) for p in rt_model.all_params}
        self.unused = self._unused_agent_params() if self.wiener else ()
        all_fixed = dict(agent.fixed)
        all_fixed.update({self.rt_names[k]: v for k, v in rt_model.fixed.items()})
        spec = {p.name: p for p in agent.all_params}
        all_fixed.update({k: spec[k].default for k in self.unused if k not in all_fixed})
        all_fixed.update(fixed or {})
        self.options = {"value": self.value}
        self._init_params(all_fixed)

    # -- parameters ------------------------------------------------------------------
    def param_spec(self):
        rt = [dataclasses.replace(p, name=self.rt_names[p.name]) for p in self.rt_model.all_params]
        return list(self.agent.all_params) + rt

    def _rt_params(self, p: dict) -> dict:
        return {k: p[v] for k, v in self.rt_names.items() if v in p}

    def _unused_agent_params(self) -> tuple[str, ...]:
        """Agent parameters the drift does not depend on after four traced trials ([A4]).

        The rule is traced with JAX; a parameter whose forward-mode tangent never reaches the value difference
        has a structurally zero derivative (JAX propagates symbolic zeros), whatever the parameter values.
        """
        import jax
        import jax.numpy as jnp

        from ..backend import get_jax_ops
        from ..simulate import trial_obs
        from ..tasks.base import make_task

        ops = get_jax_ops()
        env = make_task(self.agent.tasks[0] if self.agent.tasks else "bandit").env
        if env.n_actions != 2:
            return ()
        n = 3
        free = [p.name for p in self.agent.params]
        rng = np.random.default_rng(0)
        obs = []
        for _ in range(4):
            state = rng.integers(0, env.n_states, n)
            obs.append(trial_obs(env, state, np.ones(n, bool), rng.integers(0, 2, n), rng.random(n),
                                 rng.integers(0, env.n_states, n), np.ones(n)))
        last = trial_obs(env, rng.integers(0, env.n_states, n))
        fixed = {k: jnp.full(n, float(v)) for k, v in self.agent.fixed.items()}
        spec = {p.name: p for p in self.agent.params}

        def drift(theta):
            p = {k: spec[k].to_constrained(theta[k], ops) for k in free}
            p.update(fixed)
            s = self.agent.start(p, env, n, ops)
            for o in obs:
                s, _ = self.agent.step(p, s, o, ops)
            return self._value_diff(self.agent.decide(p, s, last, ops))

        theta = {k: jnp.asarray(rng.normal(0.0, 0.5, n)) for k in free}
        jaxpr = jax.make_jaxpr(drift)(theta)
        # which inputs reach the output through the traced program (dependency analysis, not numbers)
        var = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(theta), jaxpr.jaxpr.invars)
        used = _reaching(jaxpr.jaxpr)
        return tuple(k for k in free if var[k] not in used)

    # -- the agent's rule ----------------------------------------------------------------
    def check_env(self, env) -> None:
        self.agent.check_env(env)
        if self.wiener and env.n_actions != 2:
            raise ValueError(f"{self.name}: the Wiener RT model needs tasks with exactly two actions (action 1 = "
                             f"upper boundary); this task has {env.n_actions}")
        if self.wiener and not np.asarray(env.available, bool).all():
            forced = np.flatnonzero(~np.asarray(env.available, bool).all(axis=1)).tolist()
            raise ValueError(f"{self.name}: the Wiener RT model is a choice between both actions, but state(s) "
                             f"{forced} offer only one (forced moves); fit the RTs of such tasks with "
                             "rt='lognormal', or keep only the two-choice states")

    def init(self, p, env, n, ops):
        return self.agent.start(p, env, n, ops)

    def _value_diff(self, dec):
        q = dec[self.value]
        return q[..., 1] - q[..., 0]

    def decide(self, p, s, obs, ops):
        dec = self.agent.decide(p, s, obs, ops)
        if self.wiener:
            dec["drift"] = self.rt_model.drift(self._rt_params(p), self._value_diff(dec), ops)
        dec["rt_params"] = self._rt_params(p)  # read by sample_choice (not a latent)
        return dec

    def learn(self, p, s, obs, dec, ops):
        new, lat = self.agent.learn(p, s, obs, dec, ops)
        if not self.wiener:
            cost = self._cost(obs, {**dec, **lat}, obs["choice"], ops)
            lat["rt_mean_log"] = self.rt_model.mean_log_rt(self._rt_params(p), cost, dec["entropy"], ops)
        return new, lat

    def _cost(self, obs, lat, choice, ops):
        """``log pi(a|s) - log P(a)`` ([A2])."""
        a1h = ops.onehot(choice, self.env.n_actions)
        log_pi = take(lat["log_policy"], a1h, ops)
        if "marginal" in lat:
            log_p = ops.log(take(lat["marginal"], a1h, ops))
        else:
            # float64 constants: PyTensor would make 1.0 a float32 constant and take log(2) in float32
            log_p = -ops.log(ops.sum(ops.where(obs["avail"], ops.asarray(1.0), ops.asarray(0.0)), axis=-1))
        return log_pi - log_p

    # -- likelihood ------------------------------------------------------------------------
    def trial_loglik(self, p, obs, lat, ops=NUMPY):
        """Joint log density of the trial's choice and RT ``(n,)`` (module docstring); 0 on invalid trials."""
        prt = self._rt_params(p)
        if self.wiener:
            resp = ops.asarray(obs["choice"]) * 1.0
            return self.rt_model.logp(prt, obs["rt"], resp, self._value_diff(lat), ops, mask=scored_mask(obs))
        choice_ll = self.agent.trial_loglik(p, obs, lat, ops)
        rt = obs["rt"]
        mask = scored_mask(obs) & (rt >= self.rt_model.min_rt)  # False for NaN
        cost = self._cost(obs, lat, obs["choice"], ops)
        rt_ll = self.rt_model.logp(prt, rt, cost, lat["entropy"], ops, mask=mask)
        return choice_ll + rt_ll + self.rt_model.log_jacobian(rt, ops, mask=mask)

    def check_data(self, trials) -> None:
        """Raise (or, for missing log-normal RTs, warn) about RTs this model cannot score ([A3])."""
        from ..schema import check_rt_seconds

        self.agent.check_data(trials)
        rt, valid = trials["rt"].values, trials["valid"].values.astype(bool)
        check_rt_seconds(rt, valid, where=f"{self.name}: trials['rt']")
        if self.wiener:
            t0 = self.fixed.get(self.rt_names["t0"])
            self.rt_model.check_data(rt, t0=t0, response=np.where(valid, trials["choice"].values, 0), valid=valid)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ok = self.rt_model.mask(rt, valid)
            if not ok.any():
                raise ValueError(f"{self.name}: no valid trial has a reaction time (trials['rt'] is NaN or below "
                                 f"min_rt={self.rt_model.min_rt} s everywhere); fit a choice-only model instead")
            n_out = int(valid.sum() - ok.sum())
            if n_out:
                warnings.warn(f"{self.name}: {n_out} valid trial(s) have no RT or an RT below min_rt="
                              f"{self.rt_model.min_rt} s; their choices are scored, their RTs are not",
                              stacklevel=3)

    # -- simulation ---------------------------------------------------------------------
    def sample_choice(self, dec, obs, rng):
        prt = dec["rt_params"]
        if self.wiener:
            resp, rt = self.rt_model.sample(prt, self._value_diff(dec), rng)
            return resp.astype(np.int64), {"rt": rt}
        choice, extra = self.agent.sample_choice(dec, obs, rng)
        cost = self._cost(obs, dec, choice, NUMPY)
        return choice, {**extra, "rt": self.rt_model.sample(prt, cost, dec["entropy"], rng)}

    def __repr__(self) -> str:
        fixed = f", fixed={self.fixed!r}" if self.fixed else ""
        return f"WithRT({self.agent!r}, {self.rt_model!r}, value={self.value!r}{fixed})"


def with_rt(agent: Agent | str, rt=None) -> Agent:
    """``agent`` itself when ``rt`` is None, else ``WithRT(agent, rt)``; ``rt`` may be ``"lognormal"`` or
    ``"wiener"`` (default options) or an RT model instance."""
    if rt is None:
        return make_agent(agent)
    if isinstance(rt, str):
        models = {"lognormal": LognormalRT, "wiener": WienerRT}
        if rt not in models:
            raise ValueError(f"unknown RT model {rt!r}; use one of {sorted(models)} or an RT model instance")
        rt = models[rt]()
    return WithRT(agent, rt)

