"""Rows of the unconstrained parameter matrix and the constrained parameters they give (every backend)."""

from __future__ import annotations

from dataclasses import dataclass

from ..agents.base import Agent

__all__ = ["ThetaLayout", "params_of"]


@dataclass(frozen=True)
class ThetaLayout:
    """Rows of the unconstrained parameter matrix ``theta`` ``(n_rows, n_subjects)``.

    ``terms`` holds, for each free parameter of the agent in order,
    ``(name, base_row, ((slope_row, covariate_column), ...))``: the parameter
    on trial ``t`` is ``transform(theta[base_row] + sum theta[slope_row] *
    x[t, :, covariate_column])``. ``names`` names every row (slopes are named
    ``f"{param}_{covariate}"``); ``covariates`` names the columns of ``x``.
    """

    terms: tuple
    names: tuple
    covariates: tuple = ()

    @classmethod
    def plain(cls, agent: Agent) -> ThetaLayout:
        """One row per free parameter, no covariates."""
        return cls(tuple((p.name, i, ()) for i, p in enumerate(agent.params)), agent.param_names, ())

    @classmethod
    def with_covariates(cls, agent: Agent, covariates: dict) -> ThetaLayout:
        """``covariates``: parameter name -> tuple of covariate names (columns of ``x`` in first-seen order)."""
        names = list(agent.param_names)
        unknown = sorted(set(covariates) - set(names))
        if unknown:
            raise ValueError(
                f"covariates name parameter(s) {unknown} that are not free parameters of {agent.name!r} "
                f"(free: {names}{'; fixed: ' + str(sorted(agent.fixed)) if agent.fixed else ''})"
            )
        cols: list[str] = []
        terms = []
        rows = list(names)
        for i, p in enumerate(agent.params):
            slopes = []
            for c in covariates.get(p.name, ()):
                if c not in cols:
                    cols.append(c)
                slope = f"{p.name}_{c}"
                if slope in rows:
                    raise ValueError(f"covariate {c!r} is given twice for parameter {p.name!r}, or its slope "
                                     f"name {slope!r} clashes with another parameter")
                rows.append(slope)
                slopes.append((len(rows) - 1, cols.index(c)))
            terms.append((p.name, i, tuple(slopes)))
        return cls(tuple(terms), tuple(rows), tuple(cols))

    @property
    def n_rows(self) -> int:
        return len(self.names)

    @property
    def has_covariates(self) -> bool:
        return bool(self.covariates)

    def eta(self, theta, x=None):
        """Unconstrained value of every free parameter (NumPy).

        ``theta`` ``(n_rows, n)``; ``x`` ``(..., n, C)`` gives ``(..., n)`` per
        parameter (trial-wise), otherwise ``(n,)``.
        """
        out = {}
        for name, base, slopes in self.terms:
            e = theta[base]
            if slopes and x is not None:
                e = e + sum(theta[r] * x[..., c] for r, c in slopes)
            out[name] = e
        return out


def params_of(agent: Agent, layout: ThetaLayout, theta, x, ops):
    """Constrained parameters ``{name: (..., rows)}`` from ``theta`` ``(D, rows)`` and ``x`` ``(..., rows, C)``
    (a trial, or a chunk of trials)."""
    spec = {p.name: p for p in agent.params}
    out = {}
    for name, base, slopes in layout.terms:
        eta = theta[base]
        for r, c in slopes:
            eta = eta + theta[r] * x[..., c]
        out[name] = spec[name].to_constrained(eta, ops)
    for k, v in agent.fixed.items():
        out[k] = 0.0 * theta[0] + v
    return out


