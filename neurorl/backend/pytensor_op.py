"""The compiled (JAX) likelihood as a PyTensor Op, so PyMC models use the executable built once per machine.

``LoglikOp(agent, env, layout, uniform, obs, x)`` maps ``theta`` ``(D, n)`` (and the ``valid`` mask, an input so
that K-fold can change it through a shared variable) to each subject's log-likelihood ``(n,)``; its gradient is
the exact one of :class:`neurorl.backend.compiled.JaxLoglik` (order 1), computed in the same call as the value
and returned as the Op's second output, so PyMC's value-and-gradient function evaluates the learning rule once per
leapfrog step. PyTensor compiles only the small remaining graph (priors, transforms), in seconds.

The Op pickles by its specification (agent, task structure, layout, data), not by its executable: a sampler that
runs chains in other processes loads the executable there from the on-disk cache.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

__all__ = ["LoglikOp"]


class LoglikOp(Op):
    """``loglik = op(theta, valid)``; see the module docstring."""

    __props__ = ("token",)

    def __init__(self, agent, env, layout, uniform: dict, obs: dict, x=None, *, quiet=None):
        self.agent, self.env, self.layout, self.uniform = agent, env, layout, dict(uniform)
        self.obs = {k: np.ascontiguousarray(v) for k, v in obs.items() if k != "valid"}
        self.valid0 = np.ascontiguousarray(obs["valid"], dtype=bool)  # the trials the data have (K-fold removes some)
        self.x = x
        self.quiet = quiet
        self.token = id(self)  # one Op per model: PyTensor must not merge two models' likelihoods
        self._fn = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fn"] = None
        return state

    def _function(self):
        if self._fn is None:
            from .compiled import jax_loglik

            self._fn = jax_loglik(self.agent, self.env, order=1, layout=self.layout, uniform=self.uniform,
                                  quiet=self.quiet)
        return self._fn

    def make_node(self, theta, valid):
        theta = pt.as_tensor_variable(theta)
        valid = pt.as_tensor_variable(valid)
        return Apply(self, [theta, valid], [pt.dvector(), pt.dmatrix()])

    def perform(self, node, inputs, outputs):
        theta, valid = inputs
        out = self._function()(np.asarray(theta, dtype=float), {**self.obs, "valid": valid}, self.x, check=False)
        outputs[0][0] = np.asarray(out["loglik"], dtype=float)
        outputs[1][0] = np.asarray(out["grad"], dtype=float)

    def grad(self, inputs, output_grads):
        from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented

        theta, valid = inputs
        g_ll, g_grad = output_grads
        if not isinstance(g_grad.type, DisconnectedType):
            # second derivatives are not provided by this Op: a symbolic marker that fails only if evaluated
            return [grad_not_implemented(self, 0, theta, "the gradient output has no derivative (no Hessian)"),
                    disconnected_type()]
        _, grad = self(theta, valid)
        return [g_ll[None, :] * grad, disconnected_type()]

    def connection_pattern(self, node):
        return [[True, True], [False, False]]

    def jax_function(self):
        """The Op as a pure JAX function ``(theta, valid) -> (loglik, grad)`` for samplers that compile the model
        in JAX (:mod:`neurorl.backend.traced`; the gradient output is dropped by XLA when unused)."""
        from .traced import traced_loglik

        f = traced_loglik(self.agent, self.env, self.layout, self.uniform,
                          {**self.obs, "valid": self.valid0}, self.x)

        def loglik_and_grad(theta, valid):
            ll = f(theta, valid)
            return ll, f.value_and_grad(theta, valid)[1]

        return loglik_and_grad


def _register_jax():
    """Teach PyTensor's JAX linker (numpyro/blackjax sampling in PyMC, nutpie's JAX backend) this Op."""
    try:
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:  # pragma: no cover - PyTensor without its JAX linker
        return

    @jax_funcify.register(LoglikOp)
    def _jax_loglik_op(op, node=None, **kwargs):
        return op.jax_function()


_register_jax()
