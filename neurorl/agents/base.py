"""The agent abstraction and registry.

An agent is a parameter spec plus a learning rule written once as two pure,
backend-generic functions:

``decide(p, s, obs, ops) -> latents``
    The policy and every decision-time latent for the trial (values *before*
    the trial's update). Must contain ``policy`` and ``log_policy``.
``learn(p, s, obs, dec, ops) -> (new_state, latents)``
    The update after the trial's choice and outcome; ``dec`` is what
    ``decide`` returned. Returns outcome-time latents such as ``rpe``.

``p`` maps parameter names to arrays of shape ``(n,)``; ``s`` is the agent's
state, a dict of arrays whose first axis is the subject; ``obs`` is a dict of
per-trial data (see :data:`OBS_KEYS`); ``ops`` is a backend from
:mod:`neurorl.backend`. The same two functions serve simulation and replay
(NumPy) and the likelihood and PyMC models (PyTensor, inside ``scan``), so
there is exactly one definition of every learning rule.

Trials with ``valid = False`` (missed responses, padding) leave the state
unchanged; :meth:`Agent.step` applies that mask so no rule has to.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..backend import NUMPY
from ..params import ParamModel
from ..schema import EnvSpec

__all__ = [
    "Agent", "register_agent", "make_agent", "list_agents", "AGENTS", "OBS_KEYS", "shared_latents",
    "softmax_policy", "with_lapse", "take", "VALUE_LATENTS",
]

#: Per-trial observation keys handed to ``decide``/``learn`` (all with a leading subject axis).
OBS_KEYS = {
    "state": "int (n,): state shown",
    "items": "int (n, A): value-table row of each action (EnvSpec.item[state])",
    "avail": "bool (n, A): available actions",
    "known": "bool (n, A): action's value is shown, not learnt",
    "known_value": "float (n, A): the shown value (0 where not known)",
    "valid": "bool (n,): trial is real and responded",
    "choice": "int (n,): chosen action (learn only)",
    "chosen_item": "int (n,): items[choice] (learn only)",
    "reward": "float (n,): outcome (learn only)",
    "done": "float (n,): 1 if the trial ended its episode (learn only)",
    "next_items": "int (n, A): items of the next state (learn only)",
    "next_avail": "bool (n, A): availability in the next state (learn only)",
    "next_state": "int (n,): state reached (learn only; meaningful where done = 0)",
    "next_known": "bool (n, A): shown values in the next state (learn only)",
    "next_known_value": "float (n, A): the shown values in the next state, 0 elsewhere (learn only)",
    "rt": "float (n,): reaction time in seconds, NaN where absent (learn only; read by RT observation models)",
    "loss": "float (n,): the loss part of the reward, reward = gain + loss (learn only; 0 where the data have "
            "no 'loss'; read by gain/loss learners)",
}

AGENTS: dict[str, type["Agent"]] = {}


def shared_latents(q, policy, tau, ops, *, q_soft=None, entropy=None):
    """The shared value latents from action values and a policy.

    ``v = sum(pi * q)``; ``v_soft = sum(pi * q_soft) + tau * H(pi)``, which equals
    ``tau * logsumexp(q_soft / tau)`` when ``pi = softmax(q_soft / tau)``
    (agents.md §2). Agents without their own soft critic pass ``q_soft = q``.
    """
    q_soft = q if q_soft is None else q_soft
    h = ops.entropy(policy) if entropy is None else entropy
    return {
        "q": q,
        "q_soft": q_soft,
        "v": ops.sum(policy * q, axis=-1),
        "v_soft": ops.sum(policy * q_soft, axis=-1) + tau * h,
        "entropy": h,
    }


def scored_mask(obs: dict):
    """The trials whose observed data enter the likelihood: ``valid`` and, when the observations carry it,
    ``scored`` (a valid trial that is not scored is learnt from but not scored; see :mod:`neurorl.schema`)."""
    return obs["valid"] & obs["scored"] if "scored" in obs else obs["valid"]


class Agent(ParamModel):
    """Base class of every agent.

    Subclasses set ``name``, ``family``, ``latent_dims`` and implement
    :meth:`param_spec`, :meth:`init`, :meth:`decide` and :meth:`learn`.

    Parameters
    ----------
    fixed : dict, optional
        Parameters held at a constant instead of being free (e.g.
        ``{"rho": 1.0}``). Fixed parameters are still passed to the rule and
        may sit on a closed bound (``{"w": 1.0}`` for a purely model-based agent).
    **options
        Structural options of the agent (documented per agent).
    """

    family: ClassVar[str] = ""
    #: extra dims (beyond subject, trial) of each latent the agent emits
    latent_dims: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: parameter values at which the policy is uniform over available actions
    null_policy_params: ClassVar[dict[str, float]] = {}
    #: latents that depend on per-simulation random draws (not reproduced by replay)
    simulation_only: ClassVar[tuple[str, ...]] = ()
    #: parameters that never affect choices: estimators fitting choices only hold them at their defaults
    choice_irrelevant: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, fixed: dict | None = None, **options):
        self.options = dict(options)
        self._init_params(fixed)

    # -- to implement (and param_spec) -----------------------------------------
    def init(self, p: dict, env: EnvSpec, n: int, ops) -> dict:
        """Initial agent state for ``n`` subjects (``self.env`` is already bound)."""
        raise NotImplementedError

    def decide(self, p: dict, s: dict, obs: dict, ops) -> dict:
        raise NotImplementedError

    def learn(self, p: dict, s: dict, obs: dict, dec: dict, ops) -> tuple[dict, dict]:
        raise NotImplementedError

    #: if set, :func:`simulate` accepts only these task names (e.g. go/no-go models)
    tasks: ClassVar[tuple[str, ...] | None] = None

    def check_env(self, env: EnvSpec) -> None:
        """Raise ``ValueError`` if the agent cannot run on this task structure.

        Called by ``start`` for simulation and replay alike (user data has no
        task object, only the structure recorded in the trials dataset).
        """

    def check_task(self, task) -> None:
        """Raise ``ValueError`` if the agent cannot be simulated on ``task``."""
        if self.tasks is not None and task.name not in self.tasks:
            raise ValueError(f"agent {self.name!r} runs only on tasks {list(self.tasks)}, not {task.name!r}")
        self.check_env(task.env)

    def supports(self, task) -> bool:
        """Whether :meth:`check_task` accepts ``task``."""
        try:
            self.check_task(task)
        except ValueError:
            return False
        return True

    # -- shared machinery ---------------------------------------------------------
    def start(self, p: dict, env: EnvSpec, n: int, ops=NUMPY) -> dict:
        """Bind the agent to a task structure and return its initial state."""
        self.check_env(env)
        self.env = env
        return self.init(p, env, n, ops)

    def step(self, p: dict, s: dict, obs: dict, ops=NUMPY) -> tuple[dict, dict]:
        """``decide`` then ``learn``; state is kept on trials that are not valid."""
        dec = self.decide(p, s, obs, ops)
        new, lat = self.learn(p, s, obs, dec, ops)
        valid = obs["valid"]
        kept = {}
        for k, old in s.items():
            v = valid
            for _ in range(old.ndim - 1):
                v = v[..., None]
            kept[k] = ops.where(v, new[k], old)
        return kept, {**dec, **lat}

    def trial_loglik(self, p: dict, obs: dict, lat: dict, ops=NUMPY):
        """Log-likelihood of one trial's observed data ``(n,)``; 0 on trials that are not scored
        (:func:`scored_mask`: invalid, or valid but marked ``scored = False``).

        ``lat`` holds the trial's decision and learning latents (``step``'s
        output). The default scores the choice, ``log policy[choice]``
        (fitting.md §1); observation models that also score reaction times
        (:class:`neurorl.fitting.joint.WithRT`) override it. The likelihood
        graphs of :mod:`neurorl.fitting.graph` (MLE, MAP, PyMC) call this.
        """
        chosen = ops.sum(lat["log_policy"] * ops.onehot(obs["choice"], self.env.n_actions), axis=-1)
        return ops.where(scored_mask(obs), chosen, 0.0)

    def check_data(self, trials) -> None:
        """Raise ``ValueError`` if this model cannot score ``trials`` (naming subject and trial).

        Called by the estimators before fitting; the default accepts any
        trials dataset (choices are checked by the schema).
        """

    def sample_choice(self, dec: dict, obs: dict, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Draw a choice per subject from ``dec['policy']`` (inverse-CDF sampling).

        Agents whose choice process is itself stochastic in a richer way (DRA's
        sampled memories) override this and return the extra draws as latents.
        """
        return sample_categorical(dec["policy"], rng), {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        fixed = f", fixed={self.fixed!r}" if self.fixed else ""
        return f"{type(self).__name__}({opts}{fixed})"


def sample_categorical(policy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``policy`` (rows sum to 1)."""
    u = rng.random(policy.shape[0])
    c = np.cumsum(policy, axis=1)
    choice = (c < (u * c[:, -1])[:, None]).sum(axis=1)
    return np.minimum(choice, policy.shape[1] - 1)


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Class decorator: add an agent to the registry (validates the entry)."""
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"register_agent expects an Agent subclass, got {cls!r}")
    if not cls.name or not cls.name.isidentifier():
        raise ValueError(f"agent class {cls.__name__} needs a `name` that is a valid identifier, got {cls.name!r}")
    if cls.name in AGENTS and AGENTS[cls.name] is not cls:
        raise ValueError(f"an agent named {cls.name!r} is already registered ({AGENTS[cls.name].__name__})")
    for method in ("param_spec", "init", "decide", "learn"):
        if getattr(cls, method) is getattr(Agent, method):
            raise TypeError(f"agent {cls.name!r} must implement {method}()")
    if "policy" not in cls.latent_dims:
        raise ValueError(f"agent {cls.name!r} must declare the 'policy' latent")
    AGENTS[cls.name] = cls
    return cls


def make_agent(name: str | Agent, **options: Any) -> Agent:
    """Create a registered agent by name, e.g. ``make_agent("q_learning", dual_rates=True)``."""
    if isinstance(name, Agent):
        if options:
            raise ValueError("options cannot be given together with an Agent instance")
        return name
    _load_builtin()
    try:
        cls = AGENTS[name]
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; registered agents: {sorted(AGENTS)}") from None
    import inspect

    sig = inspect.signature(cls.__init__)
    accepted = [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY
                or p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "self"]
    if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(f"agent {name!r} has no option(s) {unknown}; its options are {accepted} (parameters "
                            f"are fixed with fixed={{...}}, CLI fix.PARAM=VALUE)")
    return cls(**options)


def list_agents() -> list[str]:
    """Names of all registered agents."""
    _load_builtin()
    return sorted(AGENTS)


def _load_builtin() -> None:
    from . import _builtin  # noqa: F401  (registers the built-in agents)


def softmax_policy(logits, avail, ops):
    """``(policy, log_policy)`` of a softmax over the available actions."""
    logp = ops.log_softmax(ops.masked_logits(logits, avail))
    return ops.exp(logp), logp


def with_lapse(policy, avail, xi, ops):
    """``(1 - xi) * policy + xi * uniform(available)`` and its log."""
    availf = ops.where(avail, 1.0, 0.0)
    uniform = availf / ops.sum(availf, axis=-1, keepdims=True)
    mixed = (1.0 - xi[:, None]) * policy + xi[:, None] * uniform
    return mixed, ops.log(ops.where(avail, mixed, 1.0)) + ops.where(avail, 0.0, -1e30)


def take(x, onehot, ops):
    """``x[i, a_i]`` given a one-hot ``(n, A)`` selector."""
    return ops.sum(x * onehot, axis=-1)


# Latent dims shared by most agents.
VALUE_LATENTS = {
    "q": ("action",), "q_soft": ("action",), "v": (), "v_soft": (), "policy": ("action",),
    "entropy": (), "rpe": (), "chosen_value": (),
}

LOG2 = math.log(2.0)
