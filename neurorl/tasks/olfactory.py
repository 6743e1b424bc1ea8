"""Olfactory half-triangle task (tasks.md §9; deep.md §2).

[S: NiloufarRazmi/RL_Olfaction ``TriangleTask/environment_tensor.py``,
``TriangleTask/environment_lights_tensor.py``, ``docs/2024-02-12_Lab-meeting``]

A 5 x 5 grid, tile ``5 * row + col`` with row 0 on top. Ports: West 0, North 4, South 20,
East 24. Each episode draws, uniformly and independently, a triangle -- upper
(``col >= row``, holds the North port) or lower (``row >= col``, holds South); both hold West
and East, 15 tiles each including the diagonal --, an odor (A or B) and a start tile over the
triangle (ports included); the cue starts at "none". Actions 0 up, 1 down, 2 left, 3 right;
a move off the border or through the diagonal wall leaves the agent in place (upper: left
stops at ``col = row``, down at ``row = col``; lower: right stops at ``col = row``, up at
``row = col``). Being at the odor port (North in the upper, South in the lower triangle) after
a move sets the cue to the odor. Afterwards reaching West or East ends the episode; it pays
``reward`` if odor A is taken to West or odor B to East, 0 at the wrong port. No step cost.

States (what the agent observes): ``state = tile + 25 * context``, context 0 none, 1 odor A,
2 odor B, and with ``lights=True`` 3 North light, 4 South light (75 or 125 states). Network
inputs (:meth:`HalfTriangle.features`): ``one_hot(tile, 25) ‖ one_hot(odor cue, 3)`` = 28
dims, plus ``‖ one_hot(light ∈ {off, North, South}, 3)`` = 31 dims with lights (as in the
source).

Assumptions
-----------
[A] As in the source, the cue is set whenever a move ends *at* the odor port, including a
    blocked move that leaves the agent on it; an episode that starts on the odor port
    therefore needs one step (a bump, or leaving and coming back) to smell the odor.
[A] ``max_steps`` (default 100): the step that reaches it without a terminal port ends the
    episode (``done = True``) and is flagged by the covariate ``truncated`` so that deep
    agents can bootstrap through it (the source has no limit inside the environment; the
    training loop cut episodes). ``max_steps=None`` disables truncation.
[A] Memory variant (``memory=True``, proposed on the slides, not implemented in the source):
    the odor identity is shown only while the agent is on the odor port after smelling it;
    elsewhere the context is blank. The state index is what the agent observes, so tabular
    agents see only ``(tile, shown cue)``; the hidden cue is the covariate ``cue``. The
    lights (if on) are shown as in the full task, so with ``memory=True, lights=True`` the
    light going off still reveals *that* the port was visited, only the identity must be
    remembered.
[A] Every state keeps all four actions available (blocked moves leave the agent in place),
    including the unreachable ones (e.g. tile 1 with the South light, or tile 3 with a shown
    cue in memory mode), as the EnvSpec requires one available action per state.
[A] Diagonal aliasing [D]: without lights the 28-dim input does not say which triangle the
    agent is in. On the five diagonal tiles (0, 6, 12, 18, 24) before the odor the moves that
    make progress in one triangle are blocked in the other, so a deterministic memoryless
    policy (greedy DQN) from a diagonal start succeeds in at most one of the two triangles:
    the best greedy success rate over the 30 start (tile, triangle) pairs is 25/30. The
    lights (``lights=True``) remove the ambiguity (:meth:`HalfTriangle.aliased_start`).
[A] Codes: ``triangle`` 0 upper, 1 lower; ``odor`` 1 A, 2 B (the cue code it produces);
    ``cue`` 0 none, 1 A, 2 B (the underlying cue, before the trial's move).

Checks [D]: the shortest rewarded path from a start tile is the grid distance to the odor port
inside the triangle (1 if the start is the port) plus 4 (port to the correct West/East port
along the border), e.g. 4 + 4 = 8 from West in the upper triangle.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["HalfTriangle", "N_TILES", "WEST", "NORTH", "SOUTH", "EAST", "UPPER", "LOWER"]

N_ROWS = N_COLS = 5
N_TILES = N_ROWS * N_COLS
WEST, NORTH, SOUTH, EAST = 0, 4, 20, 24
UPPER, LOWER = 0, 1
NONE, ODOR_A, ODOR_B, LIGHT_N, LIGHT_S = 0, 1, 2, 3, 4
#: (d_row, d_col) of actions 0 up, 1 down, 2 left, 3 right
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))
ODOR_PORT = np.array([NORTH, SOUTH])  # indexed by triangle


def _in_triangle(row: int, col: int, triangle: int) -> bool:
    return col >= row if triangle == UPPER else row >= col


def _build_successors() -> np.ndarray:
    """``succ[triangle, tile, action]``; tiles outside the triangle map to themselves."""
    succ = np.empty((2, N_TILES, 4), np.int64)
    for tri in (UPPER, LOWER):
        for tile in range(N_TILES):
            r, c = divmod(tile, N_COLS)
            for a, (dr, dc) in enumerate(MOVES):
                nr_, nc_ = r + dr, c + dc
                ok = (0 <= nr_ < N_ROWS and 0 <= nc_ < N_COLS and _in_triangle(r, c, tri)
                      and _in_triangle(nr_, nc_, tri))
                succ[tri, tile, a] = nr_ * N_COLS + nc_ if ok else tile
    return succ


_SUCC = _build_successors()
_TILES = tuple(np.array([t for t in range(N_TILES) if _in_triangle(*divmod(t, N_COLS), tri)], np.int64)
               for tri in (UPPER, LOWER))


@register_task
class HalfTriangle(Task):
    """The olfactory half-triangle navigation task (tasks.md §9).

    Parameters
    ----------
    reward : float, default 10.0
        Paid for odor A at West or odor B at East (10 in the Feb 2024 version, 1 later).
    max_steps : int or None, default 100
        Episode length limit (truncation, ``done = True``, covariate ``truncated``).
    memory : bool, default False
        Memory variant: the odor is shown only on the odor port (module docstring).
    lights : bool, default False
        Pre-odor light cue naming the triangle (North light upper, South light lower),
        switched off at the odor port [S: ``environment_lights_tensor.py``].

    Notes
    -----
    Covariates: ``tile``, ``cue`` (underlying, before the move), ``triangle``, ``odor``,
    ``episode`` (0-based per subject), ``step`` (0-based within the episode), ``truncated``.
    Helpers: :meth:`features`, :meth:`decode`, :meth:`encode`, :meth:`start`,
    :meth:`all_starts`, :meth:`shortest_path`, :meth:`transition`, :meth:`aliased_start`.
    """

    name = "half_triangle"
    covariates = {"tile": (), "cue": (), "triangle": (), "odor": (), "episode": (), "step": (), "truncated": ()}
    episodic = True
    default_n_trials = 300

    def __init__(self, *, reward: float = 10.0, max_steps: int | None = 100, memory: bool = False,
                 lights: bool = False):
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.integer, np.floating)) \
                or not np.isfinite(reward):
            raise ValueError(f"half_triangle: reward must be a finite number, got {reward!r}")
        if max_steps is not None:
            if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
                raise ValueError(f"half_triangle: max_steps must be a positive int or None, got {max_steps!r}")
            max_steps = int(max_steps)
        for label, v in (("memory", memory), ("lights", lights)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"half_triangle: {label} must be True or False, got {v!r}")
        super().__init__(reward=float(reward), max_steps=max_steps, memory=bool(memory), lights=bool(lights))
        self.n_contexts = 5 if lights else 3
        self._env = EnvSpec.default(N_TILES * self.n_contexts, 4)

    # ------------------------------------------------------------------ encoding
    def encode(self, tile, context) -> np.ndarray:
        """State index ``tile + 25 * context``."""
        return (np.asarray(tile, np.int64) + N_TILES * np.asarray(context, np.int64)).astype(np.int64)

    def decode(self, state) -> tuple[np.ndarray, np.ndarray]:
        """``(tile, context)`` of state indices."""
        s = np.asarray(state, np.int64)
        if s.size and (s.min() < 0 or s.max() >= self.env.n_states):
            raise ValueError(f"half_triangle: state out of range [0, {self.env.n_states})")
        return s % N_TILES, s // N_TILES

    def features(self, state) -> np.ndarray:
        """Network inputs: ``one_hot(tile, 25) ‖ one_hot(cue, 3)`` (‖ ``one_hot(light, 3)`` with lights).

        Parameters
        ----------
        state : int or array_like of int
            Observed state indices (any shape).

        Returns
        -------
        ndarray, float32, shape ``state.shape + (28,)`` (31 with lights)
        """
        tile, ctx = self.decode(state)
        odor = np.where(ctx < 3, ctx, 0)
        parts = [np.eye(N_TILES, dtype=np.float32)[tile], np.eye(3, dtype=np.float32)[odor]]
        if self.options["lights"]:
            parts.append(np.eye(3, dtype=np.float32)[np.where(ctx >= 3, ctx - 2, 0)])
        return np.concatenate(parts, axis=-1)

    def _observed_context(self, tile, cue, triangle):
        light = np.where(cue == NONE, LIGHT_N + triangle, NONE) if self.options["lights"] else np.zeros_like(cue)
        if self.options["memory"]:
            shown = np.where(tile == ODOR_PORT[triangle], cue, NONE)
        else:
            shown = cue
        return np.where(shown > 0, shown, light).astype(np.int64)

    # ------------------------------------------------------------------ structure
    def triangle_tiles(self, triangle: int) -> np.ndarray:
        """The 15 tiles of a triangle (0 upper, 1 lower), ascending."""
        return _TILES[int(triangle)].copy()

    def successors(self, triangle: int) -> np.ndarray:
        """``(25, 4)`` tile reached by each action (tiles outside the triangle map to themselves)."""
        return _SUCC[int(triangle)].copy()

    def transition(self, tile, cue, triangle, odor, action):
        """Deterministic dynamics of the underlying state (arrays broadcast).

        Returns
        -------
        next_tile, next_cue, reward, terminated : ndarray
        """
        tile, cue, triangle, odor, action = (np.asarray(x, np.int64) for x in (tile, cue, triangle, odor, action))
        nxt = _SUCC[triangle, tile, action]
        new_cue = np.where(nxt == ODOR_PORT[triangle], odor, cue)
        post = new_cue > NONE
        terminated = post & ((nxt == WEST) | (nxt == EAST))
        good = ((new_cue == ODOR_A) & (nxt == WEST)) | ((new_cue == ODOR_B) & (nxt == EAST))
        reward = np.where(terminated & good, self.options["reward"], 0.0)
        return nxt, new_cue, reward, terminated

    def shortest_path(self, tile, triangle, odor) -> np.ndarray:
        """Fewest steps from a start (cue none) to the rewarded port, by breadth-first search.

        Parameters
        ----------
        tile, triangle, odor : int or array_like of int (broadcast)
            Start tile (inside the triangle), triangle (0 upper, 1 lower), odor (1 A, 2 B).

        Returns
        -------
        ndarray of int
        """
        tile, triangle, odor = np.broadcast_arrays(*(np.asarray(x, np.int64) for x in (tile, triangle, odor)))
        out = np.empty(tile.shape, np.int64)
        for idx in np.ndindex(tile.shape):
            out[idx] = self._bfs(int(tile[idx]), int(triangle[idx]), int(odor[idx]))
        return out

    def _bfs(self, tile: int, triangle: int, odor: int) -> int:
        if triangle not in (UPPER, LOWER) or odor not in (ODOR_A, ODOR_B):
            raise ValueError(f"half_triangle.shortest_path: triangle must be 0/1 and odor 1/2, got {triangle}, {odor}")
        if tile not in _TILES[triangle]:
            raise ValueError(f"half_triangle.shortest_path: tile {tile} is not in triangle {triangle}")
        seen = {(tile, NONE)}
        queue = deque([(tile, NONE, 0)])
        while queue:
            t, c, d = queue.popleft()
            for a in range(4):
                nt, nc, r, term = self.transition(t, c, triangle, odor, a)
                nt, nc = int(nt), int(nc)
                if term:
                    if r > 0:
                        return d + 1
                    continue
                if (nt, nc) not in seen:
                    seen.add((nt, nc))
                    queue.append((nt, nc, d + 1))
        raise ValueError(f"half_triangle.shortest_path: no rewarded path from tile {tile}")  # pragma: no cover

    def all_starts(self) -> dict:
        """Every start condition once: 15 tiles x 2 triangles x 2 odors = 60 rows.

        Returns ``{"tile", "triangle", "odor"}`` int arrays.
        """
        rows = [(t, tri, od) for tri in (UPPER, LOWER) for od in (ODOR_A, ODOR_B) for t in _TILES[tri]]
        arr = np.array(rows, np.int64)
        return {"tile": arr[:, 0], "triangle": arr[:, 1], "odor": arr[:, 2]}

    def aliased_start(self, tile, triangle=None) -> np.ndarray:
        """True where a start tile's first observation does not identify the triangle.

        Diagonal tiles before the odor, unless the lights are on (module docstring).
        """
        tile = np.asarray(tile, np.int64)
        r, c = np.divmod(tile, N_COLS)
        return (r == c) & (not self.options["lights"])

    # ------------------------------------------------------------------ dynamics
    def start(self, tile, triangle, odor, episode=None) -> dict:
        """Task state with given start conditions (one subject per element), for evaluation."""
        tile, triangle, odor = (np.atleast_1d(np.asarray(x, np.int64)) for x in (tile, triangle, odor))
        for t, tri, od in zip(tile, triangle, odor):
            if tri not in (UPPER, LOWER) or od not in (ODOR_A, ODOR_B) or t not in _TILES[tri]:
                raise ValueError(f"half_triangle.start: invalid start (tile {t}, triangle {tri}, odor {od})")
        n = tile.shape[0]
        return {"tile": tile.copy(), "cue": np.zeros(n, np.int64), "triangle": triangle.copy(), "odor": odor.copy(),
                "episode": np.zeros(n, np.int64) if episode is None else np.asarray(episode, np.int64).copy(),
                "step": np.zeros(n, np.int64)}

    def _draw(self, n, rng):
        triangle = rng.integers(0, 2, size=n)
        odor = 1 + rng.integers(0, 2, size=n)
        k = rng.integers(0, 15, size=n)
        tile = np.where(triangle == UPPER, _TILES[UPPER][k], _TILES[LOWER][k])
        return tile.astype(np.int64), triangle.astype(np.int64), odor.astype(np.int64)

    def reset(self, n, rng):
        tile, triangle, odor = self._draw(n, rng)
        return self.start(tile, triangle, odor) if n else {
            k: np.zeros(0, np.int64) for k in ("tile", "cue", "triangle", "odor", "episode", "step")}

    def observe(self, ts):
        return self.encode(ts["tile"], self._observed_context(ts["tile"], ts["cue"], ts["triangle"]))

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        tile, cue, tri, odor, episode, step = (ts[k] for k in ("tile", "cue", "triangle", "odor", "episode", "step"))
        nxt, new_cue, reward, terminated = self.transition(tile, cue, tri, odor, action)
        ms = self.options["max_steps"]
        truncated = ~terminated & (step + 1 >= ms) if ms is not None else np.zeros_like(terminated)
        done = terminated | truncated
        next_state = self.encode(nxt, self._observed_context(nxt, new_cue, tri))
        out = {"reward": reward.astype(float), "next_state": next_state, "done": done.astype(bool),
               "tile": tile.copy(), "cue": cue.copy(), "triangle": tri.copy(), "odor": odor.copy(),
               "episode": episode.copy(), "step": step.copy(), "truncated": truncated.astype(bool)}
        new_tile, new_tri, new_odor = self._draw(tile.shape[0], rng)
        ts = {
            "tile": np.where(done, new_tile, nxt).astype(np.int64),
            "cue": np.where(done, NONE, new_cue).astype(np.int64),
            "triangle": np.where(done, new_tri, tri).astype(np.int64),
            "odor": np.where(done, new_odor, odor).astype(np.int64),
            "episode": episode + done.astype(np.int64),
            "step": np.where(done, 0, step + 1).astype(np.int64),
        }
        return ts, out
