"""Recurrent Q-learning on the mouse bandit, with and without the marginal-policy KL penalty.

deep.md §3 (DRQN after mobeets/q-rnn), agents.md §4 (marginal-policy KL penalty), tasks.md §1
(mouse bandit, trial-level and time-step variants; perseveration summaries), tasks.md §9
(half-triangle, memory variant).

What it does
------------
1. Trial-level mouse bandit (``mouse_bandit``, p_high 0.8, p_switch 0.02): trains a GRU(10)
   DRQN twice from the same seed, without the penalty and with it (``kl_beta``, ``kl_alpha``;
   q-rnn's evaluation values 1 and 0.99 by default), then plays evaluation sessions with frozen
   weights at the final temperature in three conditions:

   * ``none``      -- trained and evaluated without the penalty;
   * ``kl_eval``   -- the same network, acting with ``softmax(Q/tau + kl_beta * pibar)``;
   * ``kl_train``  -- trained with the penalty (stored reward ``r - kl_beta * penalty``) and
     evaluated with it.

   Perseveration summaries (neurorl.behaviour): P(high port) and P(switch) from -10 to +20
   trials around block changes, P(switch | 3-trial history word), overall P(switch); and a
   tabular check: q_learning with a perseveration bonus ``kappa`` fitted by maximum
   likelihood (neurorl.fitting.mle.MLE) to each condition's choices.
2. Time-step variant (``mouse_bandit_timestep``): the same comparison (none / kl_train), the
   penalty applied on decision rows only (``kl_decision_only``, the issue's open point);
   summaries on the decision rows.
3. Half-triangle memory variant (``half_triangle``, memory=True): a DRQN with hidden-state
   resets at episode ends (``reset_on_done``), epsilon-greedy; greedy success rate and steps.

The five training runs (trial-level none / kl_train, time-step none / kl_train, half-triangle) are
independent units of :mod:`neurorl.parallel` (through :func:`neurorl.agents.deep.common.over_seeds`):
each builds its network from ``seed``, trains it and plays its evaluation sessions on one torch thread,
and returns its numbers, evaluation trials and checkpoint to this process, which writes every file. The
results are the same serially, on local processes (``--workers N``) and on a Dask cluster
(``--scheduler ADDRESS``).

Usage::

    python analyses/train_drqn_mouse_bandit.py --seed 0
    python analyses/train_drqn_mouse_bandit.py --seed 0 --workers 5      # the five runs side by side
    python analyses/train_drqn_mouse_bandit.py --seed 0 --scheduler tcp://host:8786

Outputs in ``out/train_drqn_mouse_bandit_seed<seed>/``: ``training.png``, ``perseveration.png``,
``history_words.png``, ``timestep.png``, ``half_triangle.png``, checkpoints ``*.pt``, the
evaluation trials and latents (``trials_<condition>.nc``, ``latents_<condition>.nc``) and
``result.md``.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import neurorl as nr
from neurorl.agents.deep import common
from neurorl.agents.deep.drqn import DRQN, DRQNConfig
from neurorl.behaviour import decision_rows, p_switch_around_block_changes, switch_by_history


@dataclass
class Args:
    """Train recurrent Q-learning (DRQN) on the mouse bandit with and without the KL penalty."""

    seed: int = 0
    # trial-level mouse bandit
    n_episodes: int = 120
    episode_length: int = 200
    n_envs: int = 8
    updates_per_episode: int = 10
    hidden_size: int = 10
    gamma: float = 0.9
    lr: float = 3e-3
    tau_start: float = 0.5
    tau_min: float = 0.1
    decay: float = 0.97
    kl_beta: float = 1.0
    kl_alpha: float = 0.99
    eval_subjects: int = 20
    eval_trials: int = 800
    # time-step variant
    timestep: bool = True
    ts_episodes: int = 60
    ts_episode_length: int = 400
    # half-triangle memory variant
    half_triangle: bool = True
    ht_episodes: int = 100
    ht_eval_rows: int = 600
    # tabular fit of the DRQN's choices
    fit_tabular: bool = True
    out_root: str = "out"
    progress: bool = True
    workers: int = 0
    scheduler: str = ""


#: the training runs, one unit of neurorl.parallel each ("<part> <condition>")
RUNS = ("trial-level none", "trial-level kl_train", "time-step none", "time-step kl_train", "half-triangle memory")


def _config(args: Args, **kw) -> DRQNConfig:
    base = dict(hidden_size=args.hidden_size, gamma=args.gamma, lr=args.lr, episode_length=args.episode_length,
                n_envs=args.n_envs, updates_per_episode=args.updates_per_episode, seq_len=100, batch_episodes=16,
                learn_after=8, tau_start=args.tau_start, tau_min=args.tau_min, decay=args.decay)
    base.update(kw)
    return DRQNConfig(**base)


def _summaries(trials) -> dict:
    per = p_switch_around_block_changes(trials)
    hist = switch_by_history(trials, n_back=3)
    m = decision_rows(trials)
    c = trials["choice"].values
    sw, hi = [], []
    for i in range(c.shape[0]):
        ci = c[i][m[i]]
        sw.append(ci[1:] != ci[:-1])
        hi.append((ci == trials["high_port"].values[i][m[i]]))
    return {"around": per, "history": hist, "p_switch": float(np.mean(np.concatenate(sw))),
            "p_high": float(np.mean(np.concatenate(hi))),
            "reward_per_decision": float(np.nansum(trials["reward"].values * m) / m.sum())}


def _fit_kappa(trials, seed) -> dict:
    from neurorl.fitting.mle import MLE

    est = MLE(nr.make_agent("q_learning", perseveration=True), n_starts=3, rng=seed, progress=False).fit(trials)
    return {k: float(np.median(est.params_[k].values)) for k in ("alpha", "beta", "kappa")}


def _checkpoint(agent) -> bytes:
    """The agent's checkpoint (``DRQN.save``) as bytes, so that the calling process writes the file."""
    with tempfile.TemporaryDirectory() as d:
        return Path(agent.save(Path(d) / "checkpoint.pt")).read_bytes()


def half_triangle_task():
    """The half-triangle memory variant of part 3."""
    return nr.make_task("half_triangle", memory=True, max_steps=30)


def train_run(run: str, seed: int, *, args: Args) -> dict:
    """Train one network of ``RUNS`` from ``seed`` and play its evaluation sessions (one unit of work).

    Returns the training rewards, the training time, the evaluation summaries (trial-level runs: also
    the evaluation trials and latents) and the checkpoint bytes; writes nothing.
    """
    part, name = run.rsplit(" ", 1)
    res: dict = {}
    if part == "trial-level":
        kl = args.kl_beta if name == "kl_train" else 0.0
        ag = DRQN("mouse_bandit", _config(args, kl_beta=kl, kl_alpha=args.kl_alpha if kl else 0.0), seed=seed)
        t0 = time.perf_counter()
        ag.train(args.n_episodes, progress=args.progress)
        res["seconds"] = time.perf_counter() - t0
        # evaluation at the final temperature of training (the same schedule with and without the penalty)
        res["tau_eval"] = ag.tau()
        conds = {"none": 0.0, "kl_eval": args.kl_beta} if name == "none" else {"kl_train": args.kl_beta}
        res["evals"] = {}
        for cond, kl_eval in conds.items():
            tr, lat = ag.rollout(args.eval_subjects, args.eval_trials, rng=seed + 1000, tau=res["tau_eval"],
                                 kl_beta=kl_eval, kl_alpha=args.kl_alpha)
            res["evals"][cond] = (tr, lat, _summaries(tr))
    elif part == "time-step":
        kl = args.kl_beta if name == "kl_train" else 0.0
        cfg = _config(args, episode_length=args.ts_episode_length, kl_beta=kl, kl_alpha=args.kl_alpha if kl else 0.0,
                      kl_decision_only=bool(kl))
        ag = DRQN("mouse_bandit_timestep", cfg, seed=seed)
        t0 = time.perf_counter()
        ag.train(args.ts_episodes, progress=args.progress)
        res["seconds"] = time.perf_counter() - t0
        tr, _ = ag.rollout(args.eval_subjects, 3 * args.eval_trials, rng=seed + 2000, tau=ag.tau(), kl_beta=kl,
                           kl_alpha=args.kl_alpha)
        res["summary"] = _summaries(tr)
        res["decisions"] = int(tr["decision"].values.sum())
    elif run == "half-triangle memory":
        cfg = DRQNConfig(hidden_size=32, gamma=0.9, lr=1e-3, episode_length=300, n_envs=8, reset_on_done=True,
                         exploration="epsilon", epsilon_start=1.0, epsilon_min=0.05, decay=0.97, seq_len=30,
                         batch_episodes=32, updates_per_episode=20, learn_after=20, buffer_episodes=2000)
        ag = DRQN(half_triangle_task(), cfg, seed=seed)
        t0 = time.perf_counter()
        ag.train(args.ht_episodes, progress=args.progress)
        res["seconds"] = time.perf_counter() - t0
        tr, _ = ag.rollout(8, args.ht_eval_rows, rng=seed + 3000, greedy=True)
        done, rew = tr["done"].values, tr["reward"].values
        n_ep = int(done.sum())
        res["half_triangle"] = {"episodes": n_ep,
                                "success": float((rew[done] > 0).mean()) if n_ep else float("nan"),
                                "rows_per_episode": float(done.size / max(n_ep, 1))}
    else:
        raise ValueError(f"train_drqn_mouse_bandit: unknown run {run!r}; known: {RUNS}")
    res["reward"] = np.asarray(ag.history["reward"], float)
    res["checkpoint"] = _checkpoint(ag)
    return res


def _write_bytes(path: Path, data: bytes) -> None:
    from neurorl.results import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def main(args: Args) -> dict:
    """Run everything; return the numbers written to ``result.md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if args.workers < 0:
        raise ValueError(f"train_drqn_mouse_bandit: --workers must be >= 0, got {args.workers}")
    if args.workers and args.scheduler:
        raise ValueError("train_drqn_mouse_bandit: give --workers or --scheduler, not both")
    out = common.output_dir(__file__, args.seed, root=args.out_root)
    res: dict = {"timing_s": {}}
    sections: dict[str, str] = {}

    # ---------------------------------------------------------------- the training runs (units of neurorl.parallel)
    runs = [r for r in RUNS if (args.timestep or not r.startswith("time-step"))
            and (args.half_triangle or not r.startswith("half-triangle"))]
    t_all = time.perf_counter()
    # --workers / --scheduler open their own block; otherwise the runs go where the caller's
    # `with neurorl.parallel.parallel(...)` block sends them (serially outside any block)
    block = (nr.parallel.parallel(workers=args.workers or None, scheduler=args.scheduler or None)
             if args.workers or args.scheduler else contextlib.nullcontext(nr.parallel.current()))
    with block as ex:
        where = ex.describe()
        done = common.over_seeds(functools.partial(train_run, args=args), [args.seed], settings=runs,
                                 desc="DRQN training runs")
    done = {run: done[(run, args.seed)] for run in runs}
    res["wall_s"] = time.perf_counter() - t_all
    files = {"trial-level none": "drqn_mouse_bandit_none.pt", "trial-level kl_train": "drqn_mouse_bandit_kl_train.pt",
             "time-step none": "drqn_timestep_none.pt", "time-step kl_train": "drqn_timestep_kl_train.pt",
             "half-triangle memory": "drqn_half_triangle_memory.pt"}
    for run, r in done.items():
        res["timing_s"][run] = r["seconds"]
        _write_bytes(out / files[run], r["checkpoint"])

    # ---------------------------------------------------------------- 1. trial-level mouse bandit
    curves = {name: done[f"trial-level {name}"]["reward"] for name in ("none", "kl_train")}
    tau_eval = done["trial-level none"]["tau_eval"]
    evals = {**done["trial-level none"]["evals"], **done["trial-level kl_train"]["evals"]}
    for name, (tr, lat, _) in evals.items():
        nr.write_trials(tr, out / f"trials_{name}.nc")
        nr.write_latents(lat, out / f"latents_{name}.nc")
    res["trial_level"] = {k: {kk: v[2][kk] for kk in ("p_switch", "p_high", "reward_per_decision")}
                          for k, v in evals.items()}
    if args.fit_tabular:
        for k, (tr, _, _) in evals.items():
            res["trial_level"][k].update(_fit_kappa(tr, args.seed))

    # training curves
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, r in curves.items():
        k = max(1, len(r) // 20)
        ax.plot(np.convolve(r, np.ones(k) / k, mode="valid"), label=name)
    ax.set_xlabel("training episode")
    ax.set_ylabel(f"reward per trial (running mean of {k})")
    ax.set_title("DRQN, trial-level mouse bandit")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "training.png", dpi=120)
    plt.close(fig)

    # perseveration around block changes
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, (_, _, s) in evals.items():
        a = s["around"]
        axes[0].plot(a.offset, a.p_high, marker=".", label=name)
        axes[1].plot(a.offset, a.p_switch, marker=".", label=name)
    for ax, lab in zip(axes, ("P(high port)", "P(switch)")):
        ax.axvline(0, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel("trials from block change")
        ax.set_ylabel(lab)
    axes[0].legend()
    fig.suptitle(f"DRQN on mouse_bandit, evaluation at tau={tau_eval:.3f} ({args.eval_subjects} x "
                 f"{args.eval_trials} trials)")
    fig.tight_layout()
    fig.savefig(out / "perseveration.png", dpi=120)
    plt.close(fig)

    # history words, sorted by the no-penalty condition
    h0 = evals["none"][2]["history"]
    order = np.argsort(np.nan_to_num(h0.p_switch.values, nan=-1))
    words = h0.history.values[order]
    fig, ax = plt.subplots(figsize=(11, 3.4))
    w = 0.27
    for j, (name, (_, _, s)) in enumerate(evals.items()):
        ax.bar(np.arange(words.size) + (j - 1) * w, s["history"].p_switch.sel(history=words).values, w, label=name)
    ax.set_xticks(np.arange(words.size), words, rotation=90, family="monospace")
    ax.set_ylabel("P(switch | history)")
    ax.legend()
    ax.set_title("P(switch) by 3-trial history (A/a: same as the first choice, upper case rewarded)")
    fig.tight_layout()
    fig.savefig(out / "history_words.png", dpi=120)
    plt.close(fig)

    rows = ["| condition | P(switch) | P(high port) | reward / trial |" +
            (" q_learning+kappa fit: alpha | beta | kappa |" if args.fit_tabular else ""),
            "|---|---|---|---|" + ("---|---|---|" if args.fit_tabular else "")]
    for k, v in res["trial_level"].items():
        row = f"| {k} | {v['p_switch']:.3f} | {v['p_high']:.3f} | {v['reward_per_decision']:.3f} |"
        if args.fit_tabular:
            row += f" {v['alpha']:.3f} | {v['beta']:.2f} | {v['kappa']:.2f} |"
        rows.append(row)
    around = {k: v[2]["around"] for k, v in evals.items()}
    rows2 = ["| condition | P(high) -10..-1 | P(high) 0 | P(high) +1..+5 | P(high) +10..+20 | P(switch) 0..+3 |",
             "|---|---|---|---|---|---|"]
    for k, a in around.items():
        rows2.append(f"| {k} | {float(a.p_high.sel(offset=slice(-10, -1)).mean()):.3f} "
                     f"| {float(a.p_high.sel(offset=0)):.3f} | {float(a.p_high.sel(offset=slice(1, 5)).mean()):.3f} "
                     f"| {float(a.p_high.sel(offset=slice(10, 20)).mean()):.3f} "
                     f"| {float(a.p_switch.sel(offset=slice(0, 3)).mean()):.3f} |")
    res["around"] = {k: {"p_high_post_1_5": float(a.p_high.sel(offset=slice(1, 5)).mean())} for k, a in around.items()}
    sections["Trial-level mouse bandit"] = (
        f"Training: {args.n_episodes} episodes x {args.n_envs} sessions x {args.episode_length} trials, "
        f"{args.updates_per_episode} updates per episode; evaluation with frozen weights at tau = {tau_eval:.3f}, "
        f"kl_beta = {args.kl_beta}, kl_alpha = {args.kl_alpha} where the penalty is on "
        f"({sum(v[2]['around'].attrs['n_changes'] for v in evals.values()) // 3} block changes per condition).\n\n"
        + "\n".join(rows) + "\n\n" + "\n".join(rows2) +
        "\n\n![](training.png)\n\n![](perseveration.png)\n\n![](history_words.png)")

    # ---------------------------------------------------------------- 2. time-step variant
    if args.timestep:
        ts_res, ts_curves = {}, {}
        for name in ("none", "kl_train"):
            r = done[f"time-step {name}"]
            s = r["summary"]
            ts_res[name] = {kk: s[kk] for kk in ("p_switch", "p_high", "reward_per_decision")}
            ts_res[name]["decisions"] = r["decisions"]
            ts_curves[name] = s["around"]
        res["timestep"] = ts_res
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for name, a in ts_curves.items():
            axes[0].plot(a.offset, a.p_high, marker=".", label=name)
            axes[1].plot(a.offset, a.p_switch, marker=".", label=name)
        for ax, lab in zip(axes, ("P(high port)", "P(switch)")):
            ax.axvline(0, color="0.6", lw=0.8, ls="--")
            ax.set_xlabel("decisions from block change")
            ax.set_ylabel(lab)
        axes[0].legend()
        fig.suptitle("DRQN on mouse_bandit_timestep (decision rows)")
        fig.tight_layout()
        fig.savefig(out / "timestep.png", dpi=120)
        plt.close(fig)
        rows = ["| condition | decisions | P(switch) | P(high port) | reward / decision |", "|---|---|---|---|---|"]
        rows += [f"| {k} | {v['decisions']} | {v['p_switch']:.3f} | {v['p_high']:.3f} | "
                 f"{v['reward_per_decision']:.3f} |" for k, v in ts_res.items()]
        sections["Time-step variant"] = (
            f"Training: {args.ts_episodes} episodes x {args.n_envs} sessions x {args.ts_episode_length} rows; "
            "penalty on decision rows only. Summaries on decision rows.\n\n" + "\n".join(rows) +
            "\n\n![](timestep.png)")

    # ---------------------------------------------------------------- 3. half-triangle, memory variant
    if args.half_triangle:
        task = half_triangle_task()
        res["half_triangle"] = done["half-triangle memory"]["half_triangle"]
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(done["half-triangle memory"]["reward"], lw=0.8)
        ax.set_xlabel("training episode (8 x 300 rows, epsilon-greedy)")
        ax.set_ylabel(f"reward per row ({task.options['reward']:g} per success)")
        ax.set_title("DRQN GRU(32), half-triangle memory variant")
        fig.tight_layout()
        fig.savefig(out / "half_triangle.png", dpi=120)
        plt.close(fig)
        ht = res["half_triangle"]
        sections["Half-triangle, memory variant"] = (
            f"GRU(32) DRQN, epsilon-greedy 1 -> 0.05 (x0.97 per episode), {args.ht_episodes} episodes x 8 x 300 "
            "rows, hidden state reset at each task episode. Greedy evaluation (frozen weights, "
            f"8 x {args.ht_eval_rows} rows): "
            f"{ht['episodes']} episodes, success {ht['success']:.3f}, {ht['rows_per_episode']:.2f} rows per "
            "episode (the odor is visible only on the odor port, so success above 0.5 needs memory).\n\n"
            "![](half_triangle.png)")

    sections["Timing (s)"] = (f"Training time of each run (one torch thread each); the {len(runs)} runs took "
                              f"{res['wall_s']:.0f} s of wall time in all, run {where}.\n\n"
                              + "\n".join(f"* {k}: {v:.0f}" for k, v in res["timing_s"].items()))
    common.write_result(out / "result.md", "Recurrent Q-learning (DRQN) on the mouse bandit", args, sections)
    res["out"] = str(out)
    return res


if __name__ == "__main__":
    args = common.parse_args(Args)
    r = main(args)
    for k, v in r["trial_level"].items():
        print(k, {kk: round(vv, 3) for kk, vv in v.items()})
    if "timestep" in r:
        for k, v in r["timestep"].items():
            print("time-step", k, v)
    if "half_triangle" in r:
        print("half-triangle memory", r["half_triangle"])
    print("outputs in", r["out"])
