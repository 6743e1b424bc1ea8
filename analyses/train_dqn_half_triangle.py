"""Train a DQN on the olfactory half-triangle task (deep.md §1-2; tasks.md §9).

The 28-54-54-54-4 ReLU Q-network of NiloufarRazmi/RL_Olfaction is trained with replay,
ε-greedy exploration (warm-up then exponential decay), a Polyak target network and the Huber
loss on three variants of the task:

* ``plain`` -- the task as specified (input ``one_hot(tile) ‖ one_hot(cue)``). Before the
  odor the diagonal tiles do not reveal the triangle, so a greedy memoryless policy can
  succeed from a diagonal start in only one of the two triangles: the best possible greedy
  success rate over all starts is 25/30 = 0.833 (neurorl/tasks/olfactory.py, [A] diagonal
  aliasing); every non-diagonal start can be solved by the shortest path.
* ``lights`` -- the later version with a pre-odor light naming the triangle (31 inputs):
  the optimal policy reaches the rewarded port by the shortest path from every start.
* ``memory`` -- the odor is shown only on the odor port; away from it a feed-forward network
  sees the same input before and after the odor, so its greedy policy cannot both approach
  the port and leave it: it loops and (nearly) never collects the reward -- the control that
  motivates recurrent agents (deep.md §2-3).

γ = 0.9 (the Feb 2024 version [S]) rather than the later 0.99: with reward 10 the values of
paths one step apart differ by 10 % instead of 1 %, so the greedy policy settles on the
shortest paths within a few hundred episodes. Other settings: :class:`DQNConfig` defaults.

Greedy evaluation plays each of the 60 start conditions (15 tiles x 2 triangles x 2 odors)
once and compares the steps taken with the breadth-first shortest path.

Usage::

    python analyses/train_dqn_half_triangle.py --seed 0 --n-episodes 600
    python analyses/train_dqn_half_triangle.py --seed 0 --workers 3    # the three variants side by side

Outputs in ``out/train_dqn_half_triangle_seed<seed>/``: ``training_curves.png``,
``evaluation_<variant>.csv``, ``dqn_<variant>.pt`` (checkpoints) and ``result.md``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import numpy as np

import neurorl as nr
from neurorl.agents.deep import common
from neurorl.agents.deep.dqn import DQN, DQNConfig


@dataclass
class Args:
    """Train a DQN on the olfactory half-triangle task."""

    seed: int = 0
    n_episodes: int = 600
    max_steps: int = 100
    plain: bool = True
    lights: bool = True
    memory: bool = True
    lr: float = 1e-3
    gamma: float = 0.9
    warmup_episodes: int = 100
    eps_decay: float = 0.01
    eps_end: float = 0.1
    learning_starts: int = 1000
    out_root: str = "out"
    progress: bool = True
    workers: int = 0


def _smooth(x, k):
    x = np.asarray(x, float)
    k = max(1, min(k, len(x)))
    c = np.convolve(np.nan_to_num(x), np.ones(k) / k, mode="valid")
    return np.arange(k - 1, len(x)), c


def train_variant(v: str, seed: int, *, cfg, args, out) -> dict:
    """Train, evaluate and save one variant from one seed (one unit of work)."""
    task = nr.make_task("half_triangle", max_steps=args.max_steps, lights=(v == "lights"), memory=(v == "memory"))
    agent = DQN(cfg)
    t0 = time.perf_counter()
    history = agent.train(task, args.n_episodes, seed=seed, progress=args.progress)
    seconds = time.perf_counter() - t0
    ev = agent.evaluate(task)
    ev.to_dataframe().to_csv(out / f"evaluation_{v}.csv")
    agent.save(out / f"dqn_{v}.pt")
    result = dict(ev.attrs)
    result["unaliased_excess"] = float(np.nanmean(ev["excess_steps"].values[~ev["aliased"].values])) \
        if (~ev["aliased"].values & ev["success"].values).any() else float("nan")
    result["n_updates"] = agent.n_updates_
    result["train_steps"] = int(history["steps"].sum())
    return {"result": result, "history": history, "seconds": seconds}


def main(args: Args) -> dict:
    """Train, evaluate and report; returns ``{variant: evaluation attributes}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = common.output_dir(__file__, args.seed, root=args.out_root)
    cfg = DQNConfig(lr=args.lr, gamma=args.gamma, warmup_episodes=args.warmup_episodes, eps_decay=args.eps_decay,
                    eps_end=args.eps_end, learning_starts=args.learning_starts)
    variants = [v for v in ("plain", "lights", "memory") if getattr(args, v)]
    if not variants:
        raise ValueError("train_dqn_half_triangle: enable at least one of --plain, --lights, --memory")
    # one unit of neurorl.parallel per variant (--workers N: side by side, one torch thread each)
    with nr.parallel.parallel(workers=args.workers or None):
        runs = common.over_seeds(functools.partial(train_variant, cfg=cfg, args=args, out=out), [args.seed],
                                 settings=variants, desc="DQN variants")
    results = {v: runs[(v, args.seed)]["result"] for v in variants}
    histories = {v: runs[(v, args.seed)]["history"] for v in variants}
    timings = {v: runs[(v, args.seed)]["seconds"] for v in variants}

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    k = max(1, args.n_episodes // 30)
    for v, h in histories.items():
        for ax, name in zip(axes, ("success", "steps", "loss")):
            x, y = _smooth(h[name].values, k)
            ax.plot(x, y, label=v)
    for ax, title in zip(axes, ("rewarded episodes (running mean)", "steps per episode", "mean Huber loss")):
        ax.set_title(title)
        ax.set_xlabel("episode")
    axes[2].set_yscale("log")
    axes[0].legend()
    fig.suptitle(f"DQN 28-54-54-54-4 on half_triangle, seed {args.seed}")
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=120)
    plt.close(fig)

    rows = ["| variant | greedy success | non-diagonal success | optimal-length episodes | mean steps (successes) "
            "| mean shortest (same starts) | mean excess steps | training steps | train time (s) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for v, r in results.items():
        rows.append(f"| {v} | {r['success_rate']:.3f} | {r['success_rate_unaliased']:.3f} | {r['optimal_rate']:.3f} "
                    f"| {r['mean_steps']:.2f} | {r['mean_shortest']:.2f} | {r['mean_excess_steps']:.2f} "
                    f"| {r['train_steps']} | {timings[v]:.0f} |")
    notes = (
        "Greedy evaluation: each of the 60 start conditions (15 tiles x 2 triangles x 2 odors) played once with "
        "epsilon = 0, compared with the breadth-first shortest path to the rewarded port.\n\n"
        "* `plain` (28 inputs): the best possible greedy success rate is 25/30 = 0.833, since before the odor the "
        "five diagonal tiles do not reveal the triangle and a memoryless deterministic policy fails from a "
        "diagonal start in one of the two triangles; all other starts are solvable by the shortest path.\n"
        "* `lights` (31 inputs): a pre-odor light names the triangle, so 1.0 with zero excess steps is optimal.\n"
        "* `memory`: the odor is shown only on the odor port. Away from the port the input is the same before and "
        "after the odor, so a greedy feed-forward policy cannot both approach the port and leave it; it loops, and "
        "success stays near 0 (a memoryless policy can at best serve one odor per triangle from some starts).\n"
    )
    common.write_result(out / "result.md", "DQN on the olfactory half-triangle task", args,
                        {"Result": "\n".join(rows), "Notes": notes, "Figure": "![](training_curves.png)"})
    return results


if __name__ == "__main__":
    args = common.parse_args(Args)
    res = main(args)
    for v, r in res.items():
        print(f"{v}: success {r['success_rate']:.3f} (non-diagonal {r['success_rate_unaliased']:.3f}), "
              f"mean steps {r['mean_steps']:.2f} vs shortest {r['mean_shortest']:.2f}, "
              f"optimal-length {r['optimal_rate']:.3f}")
