"""Reward and transition revaluation task after Momennejad et al. (2017, Nat Hum Behav 1:680; agents.md §10).

Structure
---------
Two three-step chains, ``1 -> 3 -> 5`` and ``2 -> 4 -> 6`` (the paper's state numbers), reached from
a root where the subject chooses a chain. States here:

======  =====================================================================================
state   meaning
======  =====================================================================================
0       root, free choice: action 0 -> state 1, action 1 -> state 2 (the test choice)
1, 2    start states of the two chains (one move, action 0)
3, 4    middle states (one move, action 0): 3 -> 5 and 4 -> 6 (swapped in transition revaluation)
5, 6    terminal states (one move, action 0, "collect"): pays the state's reward and ends the episode
7, 8    root, forced: only action 0 (-> 1) in state 7, only action 1 (-> 2) in state 8
======  =====================================================================================

The forced roots share the value-table items of the free root (``EnvSpec.item[7, 0] = item[0, 0]``,
``item[8, 1] = item[0, 1]``), so a forced move teaches the same (root, action) values, as the passive
learning phase of the paper did; the free-choice rows are where choices carry information.

Phases (episodes; every subject follows the same schedule)
----------------------------------------------------------
1. Learning, ``n_learning`` episodes from a root: forced to chain 1, forced to chain 2, free, repeated
   in that order; each episode is 4 rows (root, start, middle, terminal). State 5 pays ``r_high``,
   state 6 ``r_low``: chain 1 is the better one.
2. Relearning, ``n_relearning`` episodes that start at a middle state (3, 4, 3, 4, ...; 2 rows each).
   ``condition`` decides what changed: ``"reward"`` -- terminal rewards swap (5 pays ``r_low``, 6 pays
   ``r_high``); ``"transition"`` -- middle transitions swap (3 -> 6, 4 -> 5), rewards unchanged;
   ``"control"`` -- nothing changes.
3. Test, free-choice episodes from the root under the phase-2 contingencies until the session ends.
   In both revaluation conditions chain 2 is now the better one; in the control it is not.

The first test row is the revaluation probe: its decision latents depend only on phases 1-2. A
model-free learner never updates the root during phase 2 (so does not revalue), a model-based learner
revalues after both changes, and a successor-representation learner only after the reward change.

Covariates (per row, dims ``()``)
---------------------------------
``phase`` (1, 2, 3), ``condition`` (0 control, 1 reward, 2 transition), ``episode`` (0-based),
``free_choice`` (1 on free-root rows, else 0), ``test`` (1 on the free-root row of a test episode).

Assumptions
-----------
[A] Rewards are deterministic unless ``reward_sd > 0`` (Gaussian noise added to the terminal payoff);
    non-terminal moves pay 0. The paper's monetary rewards are scaled to ``r_high = 1``, ``r_low = 0``.
[A] Test episodes give feedback (the rows continue through the chain under the new contingencies), so
    test choices after the first reflect relearning too; the revaluation signature is read from the
    first test row (the analysis uses the decision latent ``policy`` there).
[A] ``condition="mixed"`` gives subject ``i`` the condition ``("reward", "transition", "control")[i % 3]``
    (one simulation covers all three; the ``condition`` covariate records it).
[A] A ``done`` row's ``next_state`` is the first state of the next episode (nothing is bootstrapped
    from it).

Blocks (``n_blocks > 1``; within-subject design)
------------------------------------------------
Momennejad et al. (2017) ran every participant through several blocks, each with new stimuli and its own
revaluation (reward, transition or control). Here block ``b`` is a fresh copy of the 9-state MDP: states
``9 b + s`` and value-table items ``8 b + i`` (``s``, ``i`` the single-block indices above), so nothing learnt in
one block transfers to the next (for a learner whose tables are per state / item). Each block runs
``n_learning`` + ``n_relearning`` + ``n_test`` episodes (phases 1, 2, 3); the last block's test phase runs until
the session ends. With ``condition="mixed"`` subject ``i``'s block ``b`` has condition
``("control", "reward", "transition")[(i + b) % 3]`` (so with 3 blocks every subject meets all three, in a
rotated order); otherwise every block has ``condition``. Covariates ``block`` (0-based) and ``episode``
(0-based within the session) are added to the per-row record.
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["Revaluation", "CONDITIONS"]

CONDITIONS = ("control", "reward", "transition")
ROOT, FORCED_1, FORCED_2 = 0, 7, 8
#: base successor of the single-move states 1-4
_NEXT = {1: 3, 2: 4, 3: 5, 4: 6}


def _num(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and bool(np.isfinite(v))


@register_task
class Revaluation(Task):
    """Momennejad et al. (2017) reward / transition revaluation task (module docstring).

    Parameters
    ----------
    condition : {"reward", "transition", "control", "mixed"}, default "reward"
        What changes in phase 2 (``"mixed"``: cycles over subjects).
    n_learning : int, default 18
        Phase-1 episodes (4 rows each; forced 1, forced 2, free, repeated).
    n_relearning : int, default 12
        Phase-2 episodes (2 rows each, from states 3 and 4 alternately).
    r_high, r_low : float, default 1.0, 0.0
        Terminal payoffs (phase 1: state 5 pays ``r_high``, state 6 ``r_low``).
    reward_sd : float, default 0.0
        SD of Gaussian noise on terminal payoffs.
    n_blocks : int, default 1
        Blocks per session, each a fresh copy of the MDP (module docstring, "Blocks").
    n_test : int, default 4
        Test episodes of every block but the last (whose test phase runs until the session ends).
    """

    name = "revaluation"
    covariates = {"phase": (), "condition": (), "episode": (), "free_choice": (), "test": (), "block": ()}
    episodic = True
    default_n_trials = 18 * 4 + 12 * 2 + 6 * 4

    def __init__(self, *, condition: str = "reward", n_learning: int = 18, n_relearning: int = 12,
                 r_high: float = 1.0, r_low: float = 0.0, reward_sd: float = 0.0, n_blocks: int = 1,
                 n_test: int = 4):
        if condition not in CONDITIONS + ("mixed",):
            raise ValueError(f"revaluation: condition must be one of {CONDITIONS + ('mixed',)}, got {condition!r}")
        for name, v in (("n_learning", n_learning), ("n_relearning", n_relearning), ("n_test", n_test)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"revaluation: {name} must be an int >= 0, got {v!r}")
        if isinstance(n_blocks, bool) or not isinstance(n_blocks, (int, np.integer)) or n_blocks < 1:
            raise ValueError(f"revaluation: n_blocks must be an int >= 1, got {n_blocks!r}")
        if n_blocks > 1 and n_learning + n_relearning + n_test < 1:
            raise ValueError("revaluation: with n_blocks > 1 a block needs at least one episode "
                             "(n_learning + n_relearning + n_test >= 1)")
        for name, v in (("r_high", r_high), ("r_low", r_low), ("reward_sd", reward_sd)):
            if not _num(v):
                raise ValueError(f"revaluation: {name} must be a finite number, got {v!r}")
        if reward_sd < 0:
            raise ValueError(f"revaluation: reward_sd must be >= 0, got {reward_sd!r}")
        super().__init__(condition=condition, n_learning=int(n_learning), n_relearning=int(n_relearning),
                         r_high=float(r_high), r_low=float(r_low), reward_sd=float(reward_sd),
                         **({} if n_blocks == 1 else {"n_blocks": int(n_blocks), "n_test": int(n_test)}))
        self._n_blocks, self._n_test = int(n_blocks), int(n_test)
        available = np.zeros((9, 2), bool)
        available[:, 0] = True
        available[ROOT, 1] = True
        available[FORCED_2] = [False, True]
        item = np.zeros((9, 2), np.int64)
        item[ROOT] = [0, 1]
        item[FORCED_1] = [0, 1]
        item[FORCED_2] = [0, 1]
        for s in range(1, 7):
            item[s] = [s + 1, s + 1]  # action 1 is unavailable there; its item is never used
        B = self._n_blocks
        item = np.concatenate([item + 8 * b for b in range(B)])
        self._env = EnvSpec(9 * B, 2, 8 * B, item, np.tile(available, (B, 1)), np.full((9 * B, 2), np.nan))

    # -- schedule ---------------------------------------------------------------------
    #: the most moves an episode makes (root, chain start, middle, terminal); a model-based learner's value iteration
    #: is exact with this many sweeps (``successor(components=("mb",), sweeps=Revaluation.max_moves)``)
    max_moves = 4

    def block_of(self, episode: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(block, episode within the block)`` of each session episode index."""
        e = np.asarray(episode)
        o = self.options
        per = o["n_learning"] + o["n_relearning"] + self._n_test
        if self._n_blocks == 1:
            return np.zeros_like(e), e
        b = np.minimum(e // per, self._n_blocks - 1)
        return b, e - b * per

    def episode_start(self, episode: np.ndarray) -> np.ndarray:
        """First state of each episode index (see the phases in the module docstring)."""
        b, e = self.block_of(episode)
        nl, nr_ = self.options["n_learning"], self.options["n_relearning"]
        learn = np.array([FORCED_1, FORCED_2, ROOT])[e % 3]
        relearn = np.where((e - nl) % 2 == 0, 3, 4)
        local = np.where(e < nl, learn, np.where(e < nl + nr_, relearn, ROOT))
        return (local + 9 * b).astype(np.int64)

    def phase(self, episode: np.ndarray) -> np.ndarray:
        """Phase (1, 2, 3) of each episode index."""
        _, e = self.block_of(episode)
        nl, nr_ = self.options["n_learning"], self.options["n_relearning"]
        return np.where(e < nl, 1, np.where(e < nl + nr_, 2, 3)).astype(np.int64)

    def condition_code(self, subject_code: np.ndarray, episode: np.ndarray) -> np.ndarray:
        """Condition code (0 control, 1 reward, 2 transition) of each row: the subject's code, rotated by block
        under ``condition="mixed"``."""
        if self.options["condition"] != "mixed":
            return np.asarray(subject_code)
        b, _ = self.block_of(episode)
        return (np.asarray(subject_code) + b) % 3

    def reset(self, n, rng):
        cond = self.options["condition"]
        code = np.arange(n) % 3 if cond == "mixed" else np.full(n, CONDITIONS.index(cond))
        ep = np.zeros(n, np.int64)
        return {"s": self.episode_start(ep), "episode": ep, "condition": code.astype(np.int64)}

    def observe(self, ts):
        return ts["s"].copy()

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        s_glob, ep, code = ts["s"], ts["episode"], ts["condition"]
        block = s_glob // 9
        s = s_glob - 9 * block  # the state within its block
        cond = self.condition_code(code, ep)
        ph = self.phase(ep)
        changed = ph >= 2
        swap_t = changed & (cond == 2)
        swap_r = changed & (cond == 1)
        root = (s == ROOT) | (s == FORCED_1) | (s == FORCED_2)
        nxt = np.where(root, 1 + action, 0)
        for a, b in _NEXT.items():
            nxt = np.where(s == a, b, nxt)
        mid = (s == 3) | (s == 4)
        nxt = np.where(mid & swap_t, 11 - nxt, nxt)  # 5 <-> 6
        terminal = (s == 5) | (s == 6)
        o = self.options
        pay5 = np.where(swap_r, o["r_low"], o["r_high"])
        pay6 = np.where(swap_r, o["r_high"], o["r_low"])
        noise = rng.standard_normal(s.shape[0]) * o["reward_sd"]  # one draw per row keeps streams aligned
        reward = np.where(s == 5, pay5, np.where(s == 6, pay6, 0.0)) + np.where(terminal, noise, 0.0)
        new_ep = ep + terminal.astype(np.int64)
        nxt = np.where(terminal, self.episode_start(new_ep), nxt + 9 * block).astype(np.int64)
        out = {
            "reward": reward.astype(float),
            "next_state": nxt,
            "done": terminal.copy(),
            "phase": ph,
            "condition": cond.astype(np.int64),
            "episode": ep.copy(),
            "free_choice": (s == ROOT).astype(np.int64),
            "test": ((s == ROOT) & (ph == 3)).astype(np.int64),
            "block": block.astype(np.int64),
        }
        return {"s": nxt, "episode": new_ep, "condition": code.copy()}, out
