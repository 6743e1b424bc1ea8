"""Multi-region recurrent Q-networks (the olfactory-navigation project's single- vs multi-region question).

:class:`MultiRegionQNetwork` is a chain of recurrent modules ("regions"), each a GRU cell with its own input
routing; region ``i`` receives the previous hidden state of region ``i - 1`` through feedforward weights and of
region ``i + 1`` through feedback weights, and the Q readout reads the last region (the "motor" end of the chain,
by default). Either inter-region pathway can be switched off: its weights are then *not created* (no parameters,
nothing to learn), so that region's update is exactly the one without that input.

:class:`MultiRegionDRQN` is the existing :class:`~neurorl.agents.deep.drqn.DRQN` (episode replay, Polyak target,
exploration schedules, export of trials and latents) with this network in place of the single GRU; the training
machinery is unchanged.

Update, per row ``t`` and region ``i`` (inputs ``x_t``; ``P_i`` the routing matrix that selects region ``i``'s
input features)::

    u_i,t = [P_i x_t ‖ h_{i-1,t-1} (feedforward) ‖ h_{i+1,t-1} (feedback)]
    h_i,t = GRUCell_i(u_i,t, h_i,t-1)
    Q_t   = W [h_{readout regions, t}] + b

The input to region ``i`` from its neighbours is their state at ``t - 1`` (one step of conduction delay), so that
all regions update in parallel. With the DRQN's inputs on ``half_triangle`` (``one_hot(tile, 25) ‖ one_hot(cue, 3)
‖ r_{t-1} ‖ one_hot(a_{t-1}, 4)``), :func:`half_triangle_routes` sends the odour cue and the previous reward to an
"olfactory" region and the tile and the previous action to a "spatial" region, which drives Q.

Hidden latents: ``hidden`` holds all regions' units concatenated in region order (``hidden_unit``); the network's
:attr:`~MultiRegionQNetwork.region_units` gives each region's slice and :func:`region_hidden` splits a latents
dataset by region for decoding.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from .common import require_torch
from .drqn import DRQN, DRQNConfig

torch = require_torch()
nn = torch.nn

__all__ = ["MultiRegionDRQN", "MultiRegionQNetwork", "half_triangle_routes", "region_hidden"]


class MultiRegionQNetwork(nn.Module):
    """A chain of GRU regions with routed inputs and switchable feedforward / feedback weights.

    Parameters
    ----------
    n_inputs : int
        Length of the input vector.
    n_actions : int
    routes : mapping
        ``region name -> input feature indices`` (ordered: the chain runs in this order). Every index must be in
        ``[0, n_inputs)``; an input may go to several regions.
    sizes : mapping or int
        Units per region (an int: the same for every region).
    feedforward, feedback : bool
        Create the ``i - 1 -> i`` (feedforward) and ``i + 1 -> i`` (feedback) inter-region weights.
    readout : sequence of str, optional
        Regions read by the Q head (default: the last one).
    """

    def __init__(self, n_inputs: int, n_actions: int, routes: Mapping[str, Sequence[int]], sizes: Mapping[str, int] | int,
                 *, feedforward: bool = True, feedback: bool = True, readout: Sequence[str] | None = None):
        super().__init__()
        names = list(routes)
        if len(names) < 1:
            raise ValueError("MultiRegionQNetwork: give at least one region in routes")
        sizes = {k: int(sizes) for k in names} if isinstance(sizes, (int, np.integer)) else dict(sizes)
        for k in names:
            idx = np.asarray(list(routes[k]), int)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= n_inputs:
                raise ValueError(f"MultiRegionQNetwork: route of region {k!r} must be non-empty indices in "
                                 f"[0, {n_inputs}), got {list(routes[k])}")
            if k not in sizes or int(sizes[k]) < 1:
                raise ValueError(f"MultiRegionQNetwork: region {k!r} needs a size >= 1 (sizes={sizes})")
        readout = list(readout) if readout is not None else [names[-1]]
        bad = [r for r in readout if r not in names]
        if bad or not readout:
            raise ValueError(f"MultiRegionQNetwork: readout regions {bad or readout} are not among {names}")
        self.names, self.sizes, self.readout_names = names, {k: int(sizes[k]) for k in names}, readout
        self.feedforward, self.feedback = bool(feedforward), bool(feedback)
        for k in names:
            self.register_buffer(f"route_{k}", torch.as_tensor(np.asarray(list(routes[k]), np.int64)))
        self.cells = nn.ModuleDict()
        self.ff = nn.ModuleDict()
        self.fb = nn.ModuleDict()
        for i, k in enumerate(names):
            self.cells[k] = nn.GRUCell(len(routes[k]), self.sizes[k])
            if feedforward and i > 0:
                self.ff[k] = nn.Linear(self.sizes[names[i - 1]], 3 * self.sizes[k], bias=False)
            if feedback and i < len(names) - 1:
                self.fb[k] = nn.Linear(self.sizes[names[i + 1]], 3 * self.sizes[k], bias=False)
        self.head = nn.Linear(sum(self.sizes[k] for k in readout), n_actions)
        offsets = np.cumsum([0] + [self.sizes[k] for k in names])
        #: ``region -> slice`` of its units in the concatenated hidden state
        self.region_units = {k: slice(int(offsets[i]), int(offsets[i + 1])) for i, k in enumerate(names)}
        self.hidden_size = int(offsets[-1])
        with torch.no_grad():
            for k in names:
                c, H = self.cells[k], self.sizes[k]
                for g in range(3):
                    nn.init.orthogonal_(c.weight_hh[g * H:(g + 1) * H])
                nn.init.xavier_uniform_(c.weight_ih)
                nn.init.zeros_(c.bias_ih)
                nn.init.zeros_(c.bias_hh)
            for m in list(self.ff.values()) + list(self.fb.values()):
                nn.init.xavier_uniform_(m.weight)
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def _cell(self, k: str, x, h, extra):
        """GRU cell of region ``k`` with the inter-region input ``extra`` (3H gate pre-activations) added to the
        input-side pre-activations (torch's GRUCell equations, written out)."""
        c, H = self.cells[k], self.sizes[k]
        gi = x @ c.weight_ih.T + c.bias_ih + extra
        gh = h @ c.weight_hh.T + c.bias_hh
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h

    def forward(self, x, h0=None):
        """``x`` (B, L, D) -> ``(q (B, L, A), hidden sequence (B, L, H_total), last hidden (1, B, H_total))``,
        the interface of :class:`~neurorl.agents.deep.drqn.RecurrentQNetwork`."""
        B, L, _ = x.shape
        if h0 is None:
            h = {k: x.new_zeros(B, self.sizes[k]) for k in self.names}
        else:
            h = {k: h0[0, :, self.region_units[k]] for k in self.names}
        routed = {k: x[..., getattr(self, f"route_{k}")] for k in self.names}
        seq = []
        for t in range(L):
            new = {}
            for i, k in enumerate(self.names):
                extra = 0.0
                if k in self.ff:
                    extra = extra + self.ff[k](h[self.names[i - 1]])
                if k in self.fb:
                    extra = extra + self.fb[k](h[self.names[i + 1]])
                new[k] = self._cell(k, routed[k][:, t], h[k], extra)
            h = new
            seq.append(torch.cat([h[k] for k in self.names], dim=-1))
        hs = torch.stack(seq, dim=1)
        read = torch.cat([hs[..., self.region_units[k]] for k in self.readout_names], dim=-1)
        return self.head(read), hs, hs[:, -1][None]


def half_triangle_routes(task, n_actions: int = 4) -> dict[str, list[int]]:
    """Routes of the DRQN inputs on ``half_triangle``: ``olfactory`` <- odour cue ‖ previous reward (‖ lights when
    the task has them); ``spatial`` <- tile ‖ previous action.

    The DRQN input is ``features(state) ‖ r_{t-1} ‖ one_hot(a_{t-1})`` with ``features = one_hot(tile, 25) ‖
    one_hot(cue, 3) [‖ one_hot(light, 3)]`` (neurorl/tasks/olfactory.py).
    """
    from .common import n_features

    if getattr(task, "name", None) != "half_triangle":
        raise ValueError(f"half_triangle_routes: needs the half_triangle task, got {getattr(task, 'name', task)!r}")
    nf = n_features(task)
    tile = list(range(25))
    cue = list(range(25, nf))  # odour cue (and lights)
    return {"olfactory": cue + [nf], "spatial": tile + list(range(nf + 1, nf + 1 + n_actions))}


class MultiRegionDRQN(DRQN):
    """:class:`~neurorl.agents.deep.drqn.DRQN` with a :class:`MultiRegionQNetwork`.

    Parameters
    ----------
    task : Task or str
    config : DRQNConfig, optional
        ``hidden_size`` and ``cell`` are not used (the regions set them).
    seed : int
    routes : mapping, optional
        Region routing (default :func:`half_triangle_routes` on half_triangle).
    sizes : mapping or int
        Units per region (default 16).
    feedforward, feedback : bool
        Inter-region pathways (see :class:`MultiRegionQNetwork`).
    readout : sequence of str, optional
    **overrides
        DRQNConfig fields.
    """

    def __init__(self, task, config: DRQNConfig | None = None, *, seed: int = 0, routes=None, sizes=16,
                 feedforward: bool = True, feedback: bool = True, readout=None, **overrides):
        super().__init__(task, config, seed=seed, **overrides)
        routes = half_triangle_routes(self.task, self.n_actions) if routes is None else routes
        torch.manual_seed(self.seed)  # the network's initialisation depends on the seed only
        self.net = MultiRegionQNetwork(self.n_inputs, self.n_actions, routes, sizes, feedforward=feedforward,
                                       feedback=feedback, readout=readout)
        self.target_net = copy.deepcopy(self.net)
        for p in self.target_net.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)

    def rollout(self, *args, **kwargs):
        """:meth:`DRQN.rollout`, with the region of every hidden unit as the coordinate ``region`` of
        ``hidden_unit`` and the pathways in ``attrs``."""
        trials, lat = super().rollout(*args, **kwargs)
        region = np.empty(self.net.hidden_size, dtype=object)
        for k, sl in self.net.region_units.items():
            region[sl] = k
        lat = lat.assign_coords(region=("hidden_unit", region.astype(str)))
        lat.attrs.update({"agent": "multiregion_drqn", "regions": repr(self.net.sizes),
                          "feedforward": int(self.net.feedforward), "feedback": int(self.net.feedback),
                          "readout": repr(self.net.readout_names)})
        return trials, lat


def region_hidden(latents: xr.Dataset) -> dict[str, xr.DataArray]:
    """``region -> hidden (subject, trial, hidden_unit)`` of a :meth:`MultiRegionDRQN.rollout` latents dataset."""
    if "region" not in latents.coords:
        raise ValueError("region_hidden: the latents have no 'region' coordinate (not from MultiRegionDRQN.rollout)")
    reg = latents["region"].values
    return {str(k): latents["hidden"].isel(hidden_unit=np.flatnonzero(reg == k)) for k in dict.fromkeys(reg)}
