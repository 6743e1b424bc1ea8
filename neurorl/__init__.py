"""neurorl: reinforcement-learning models of behaviour and neural data.

Public API (heavy dependencies such as PyMC and torch are imported lazily, by
the submodules that need them):

* tasks: :func:`make_task`, :func:`list_tasks`
* agents: :func:`make_agent`, :func:`list_agents`
* :func:`simulate`, :func:`replay`
* :mod:`neurorl.parallel`: where independent units of work run (``with neurorl.parallel.parallel(workers=4):``)
* data: :func:`make_trials`, :func:`validate_trials`, :func:`from_table`,
  :func:`to_table`, :func:`read_trials`, :func:`write_trials`, :func:`read_latents`,
  :func:`write_latents`, :func:`read_simulation`, :func:`write_simulation`
"""

from . import parallel  # noqa: F401  (nr.parallel: the execution layer; light, numpy only)
from .agents.base import list_agents, make_agent, register_agent
from .io import (
    from_table, read_latents, read_simulation, read_trials, to_table, write_latents, write_simulation, write_trials,
)
from .schema import EnvSpec, make_trials, validate_trials
from .simulate import Simulation, replay, simulate
from .tasks.base import list_tasks, make_task, register_task

__version__ = "0.1.0"

__all__ = [
    "EnvSpec", "Simulation", "from_table", "list_agents", "list_tasks", "make_agent", "make_task",
    "make_trials", "read_trials", "register_agent", "register_task", "replay", "simulate", "to_table",
    "validate_trials", "write_trials", "read_latents", "write_latents", "read_simulation", "write_simulation",
    "__version__",
]
