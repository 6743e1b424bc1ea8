"""Gridworld: the Mattar & Daw (2018) maze (tasks.md §4).

Layout [S: nisheetpatel/DynamicResourceAllocator ``scripts/task.py`` Maze]: 6 rows x 9 columns,
cells ``(row, col)`` with row 0 on top, state index ``row * 9 + col``. Start (2, 0), goal (0, 8),
obstacles (1, 2), (2, 2), (3, 2), (0, 7), (1, 7), (2, 7), (4, 5). Actions 0 up, 1 down, 2 left,
3 right; a move off the border or into an obstacle leaves the agent where it is. Every step that
does not enter the goal pays ``-step_cost``; entering the goal pays ``goal_reward`` and ends the
episode; the next episode starts at the start cell. No step limit. At episode ``change_episode``
obstacle (0, 7) disappears and the goal moves to (0, 6). Checks [D]: shortest path 14 steps
before the change (undiscounted return 13 * -1 + 10 = -3), 8 after (+3).

Assumptions
-----------
[A] Episodes are counted from 0 per subject; the changed layout applies from episode
    ``change_episode`` on (so 3,000 episodes, 0..2999, are run on the original maze by default).
    The change happens between episodes, so no subject is ever inside an obstacle or on a goal.
[A] After the change the old goal (0, 8) is an ordinary free cell.
[A] Obstacle cells and the goal are states of the :class:`~neurorl.schema.EnvSpec` (every action
    marked available there, as the EnvSpec requires at least one) but are never shown on a
    trial. On the trial that enters the goal, ``next_state`` is the goal and ``done`` is True.
[A] ``step_cost`` is a cost: the per-step reward is ``-step_cost`` (default 1, i.e. -1 per step).
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["Maze", "N_ROWS", "N_COLS", "START", "GOAL", "OBSTACLES", "CHANGED_GOAL", "REMOVED_OBSTACLE"]

N_ROWS, N_COLS = 6, 9
START = (2, 0)
GOAL = (0, 8)
OBSTACLES = ((1, 2), (2, 2), (3, 2), (0, 7), (1, 7), (2, 7), (4, 5))
CHANGED_GOAL = (0, 6)
REMOVED_OBSTACLE = (0, 7)
#: (d_row, d_col) of actions 0 up, 1 down, 2 left, 3 right
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _index(cell) -> int:
    return int(cell[0]) * N_COLS + int(cell[1])


@register_task
class Maze(Task):
    """The Mattar & Daw (2018) maze with a mid-session change (tasks.md §4).

    Parameters
    ----------
    step_cost : float, default 1.0
        Cost of a step that does not enter the goal (reward ``-step_cost``).
    goal_reward : float, default 10.0
        Reward on entering the goal.
    change_episode : int or None, default 3000
        First (0-based) episode played on the changed maze: obstacle (0, 7) removed, goal
        moved to (0, 6). ``None``: never change.

    Notes
    -----
    State ``row * 9 + col``; actions 0 up, 1 down, 2 left, 3 right. Covariates: ``episode``
    (0-based episode counter of the subject) and ``changed`` (the trial was played on the
    changed maze). :meth:`tables` gives the deterministic successor and reward tables of
    either layout and :meth:`optimal_values` their value-iteration solution.
    """

    name = "maze"
    covariates = {"episode": (), "changed": ()}
    episodic = True
    default_n_trials = 2000

    def __init__(self, *, step_cost: float = 1.0, goal_reward: float = 10.0, change_episode: int | None = 3000):
        for label, v in (("step_cost", step_cost), ("goal_reward", goal_reward)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
                raise ValueError(f"maze: {label} must be a finite number, got {v!r}")
        if change_episode is not None:
            if isinstance(change_episode, bool) or not isinstance(change_episode, (int, np.integer)):
                raise ValueError(f"maze: change_episode must be a non-negative int or None, got {change_episode!r}")
            if change_episode < 0:
                raise ValueError(f"maze: change_episode must be >= 0 (or None for no change), got {change_episode}")
            change_episode = int(change_episode)
        super().__init__(step_cost=float(step_cost), goal_reward=float(goal_reward), change_episode=change_episode)
        self._env = EnvSpec.default(N_ROWS * N_COLS, 4)
        self._tables = {False: self._build(False), True: self._build(True)}

    # ------------------------------------------------------------------ structure
    @property
    def start_state(self) -> int:
        """State index of the start cell (2, 0)."""
        return _index(START)

    def goal_state(self, changed: bool = False) -> int:
        """State index of the goal: (0, 8), or (0, 6) after the change."""
        return _index(CHANGED_GOAL if changed else GOAL)

    def obstacle_mask(self, changed: bool = False) -> np.ndarray:
        """Bool ``(54,)``: the cell is an obstacle in the original (or changed) layout."""
        mask = np.zeros(N_ROWS * N_COLS, bool)
        for cell in OBSTACLES:
            if not (changed and cell == REMOVED_OBSTACLE):
                mask[_index(cell)] = True
        return mask

    def _build(self, changed: bool) -> dict:
        S, A = N_ROWS * N_COLS, 4
        blocked = self.obstacle_mask(changed)
        goal = self.goal_state(changed)
        succ = np.empty((S, A), np.int64)
        for s in range(S):
            r, c = divmod(s, N_COLS)
            for a, (dr, dc) in enumerate(MOVES):
                nr_, nc_ = r + dr, c + dc
                inside = 0 <= nr_ < N_ROWS and 0 <= nc_ < N_COLS
                succ[s, a] = nr_ * N_COLS + nc_ if inside and not blocked[nr_ * N_COLS + nc_] else s
        reward = np.where(succ == goal, self.options["goal_reward"], -self.options["step_cost"])
        terminal = np.zeros(S, bool)
        terminal[goal] = True
        return {"successor": succ, "reward": reward.astype(float), "terminal": terminal, "obstacle": blocked}

    def tables(self, changed: bool = False) -> dict:
        """Deterministic dynamics of one layout.

        Returns
        -------
        dict
            ``successor`` int ``(54, 4)``: state reached by each action; ``reward`` float
            ``(54, 4)``: reward of that move; ``terminal`` bool ``(54,)``: the goal;
            ``obstacle`` bool ``(54,)``. Rows of obstacles and of the goal are filled by the
            same rule but are never visited. Copies; editing them does not change the task.
        """
        return {k: v.copy() for k, v in self._tables[bool(changed)].items()}

    def optimal_values(self, gamma: float = 0.9, changed: bool = False, *, tol: float = 1e-12,
                       max_iter: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
        """Optimal state and action values by value iteration.

        ``Q(s, a) = R(s, a) + gamma * V(s')`` with ``V(goal) = 0`` (terminal) and
        ``V(s) = max_a Q(s, a)``.

        Parameters
        ----------
        gamma : float, default 0.9
            Discount factor (0.9 in Mattar & Daw 2018), in [0, 1).
        changed : bool, default False
            Use the layout after the change.
        tol, max_iter
            Stop when the largest value change is below ``tol``; raise if not reached.

        Returns
        -------
        V : ndarray, shape (54,)
            NaN on obstacles, 0 at the goal.
        Q : ndarray, shape (54, 4)
            NaN on obstacle rows and on the goal row.
        """
        if not 0.0 <= gamma < 1.0:
            raise ValueError(f"maze.optimal_values: gamma must be in [0, 1), got {gamma}")
        t = self._tables[bool(changed)]
        succ, R, term, obst = t["successor"], t["reward"], t["terminal"], t["obstacle"]
        V = np.zeros(succ.shape[0])
        for _ in range(max_iter):
            Q = R + gamma * np.where(term[succ], 0.0, V[succ])
            new = np.where(term | obst, 0.0, Q.max(axis=1))
            delta = np.max(np.abs(new - V))
            V = new
            if delta < tol:
                break
        else:
            raise ValueError(f"maze.optimal_values: no convergence to tol={tol} in {max_iter} iterations")
        Q = R + gamma * np.where(term[succ], 0.0, V[succ])
        V = np.where(obst, np.nan, V)
        Q = np.where((obst | term)[:, None], np.nan, Q)
        return V, Q

    # ------------------------------------------------------------------ dynamics
    def _is_changed(self, episode: np.ndarray) -> np.ndarray:
        ce = self.options["change_episode"]
        return np.zeros(episode.shape, bool) if ce is None else episode >= ce

    def reset(self, n, rng):
        return {"pos": np.full(n, self.start_state, np.int64), "episode": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["pos"].copy()

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        pos, episode = ts["pos"], ts["episode"]
        changed = self._is_changed(episode)
        t0, t1 = self._tables[False], self._tables[True]
        nxt = np.where(changed, t1["successor"][pos, action], t0["successor"][pos, action])
        reward = np.where(changed, t1["reward"][pos, action], t0["reward"][pos, action])
        done = np.where(changed, t1["terminal"][nxt], t0["terminal"][nxt])
        out = {"reward": reward.astype(float), "next_state": nxt.astype(np.int64), "done": done.astype(bool),
               "episode": episode.copy(), "changed": changed.copy()}
        ts = {"pos": np.where(done, self.start_state, nxt).astype(np.int64),
              "episode": episode + done.astype(np.int64)}
        return ts, out
