"""Deep (torch) agents: trainers rather than ``decide``/``learn`` rules (deep.md).

The deep agents are **not** registered in neurorl's tabular agent registry: they are
trained by gradient descent on a task and then exported as trials + latents in the
neurorl schema (:func:`neurorl.agents.deep.common.to_latents`), so that
:func:`neurorl.replay`, the fitting modules and :mod:`neurorl.decoding` work on them
unchanged.

torch is an optional dependency (``pip install neurorl[deep]``). Importing this package
does not import torch; the submodules import it inside functions (through
:func:`~neurorl.agents.deep.common.require_torch`).

Submodules
----------
common
    torch import guard, seeding, network inputs, replay buffers, checkpoints, progress,
    latent export, the analyses' argument convention.
dqn
    Deep Q-network (deep.md §1-2).
drqn, a2c
    Recurrent Q-learning and A2C-LSTM meta-RL (deep.md §3-4).
multiregion
    Multi-region recurrent Q-networks (GRU regions with routed inputs, switchable feedforward and
    feedback weights) trained by the DRQN machinery.
"""

__all__ = ["common", "dqn", "drqn", "a2c", "multiregion"]
