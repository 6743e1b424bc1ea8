"""A2C-LSTM meta-reinforcement learning (Wang et al. 2018) on bandit episodes and the two-step task.

deep.md §4 (A2C-LSTM, the correct update), tasks.md §2 (Wang et al. 2018 episodes: task
``wang_bandit``) and §7 (two-step task; the meta-RL variant is the task ``wang_two_step``).

What it does
------------
1. ``wang_bandit`` (100-trial episodes, p_L ~ U(0, 1), p_R = 1 - p_L): trains an LSTM(48) A2C
   (RMSprop, gamma 0.9, beta_v = beta_e = 0.05) on batches of ``n_envs`` episodes, then freezes
   the weights and plays new episodes. Adaptation inside an episode is then carried by the
   recurrent state alone: the within-episode learning curve P(choose the better arm) by trial
   (neurorl.behaviour.p_better_by_trial_in_episode) is compared with the same architecture
   untrained, and evaluated on the fixed probability sets 0.9/0.1, 0.75/0.25, 0.6/0.4 (trained
   on the uniform draws only).
2. Two-step task, by default ``wang_two_step`` (Wang et al. 2018: common transitions 0.8; one
   second-stage state pays 0.9, the other 0.1, swapped with probability 0.025 per trial; 100
   two-step trials = 200 rows per meta-episode, returns across the trial ends): trains the same
   architecture (``ts_lr``, ``ts_n_envs``, ``ts_updates``), freezes it and reports, against the
   untrained network: reward per trial (chance 0.5; an agent that always knew the good state
   earns 0.74), first-stage stay probabilities by previous outcome x transition
   (neurorl.behaviour.two_step_stay; the model-based signature is the outcome x transition
   interaction: high after rewarded-common and unrewarded-rare trials), the within-episode
   learning curve P(first-stage choice = the better action) by trial, and the same curve
   aligned on the swaps of the good state. ``--ts-task two_step`` trains on the Daw et al.
   (2011) task instead (drifting probabilities in [0.25, 0.75], a second-stage choice).

Configuration that learns ``wang_two_step`` [measured here on CPU, seeds 0 and 1]: lr 2e-3, 32
meta-episodes per update; reward leaves chance after 300-400 updates and is ~0.69 by 700
(lr 1e-3 with 16 meta-episodes per update: after ~900-1000 updates). The reproductions train
20,000 updates of one episode at lr 7e-4 (deep.md §4). The Daw task (``--ts-task two_step``)
stayed at chance for 2,200 updates of 32 meta-episodes at lr 2e-3.

Usage::

    python analyses/train_a2c_meta_rl.py --seed 0
    python analyses/train_a2c_meta_rl.py --seed 0 --no-bandit      # two-step part only
    python analyses/train_a2c_meta_rl.py --seed 0 --workers 2      # both parts trained side by side

Outputs in ``out/train_a2c_meta_rl_seed<seed>/``: ``training.png``, ``within_episode.png``
(bandit), ``two_step_stay.png`` (2x2 stay probabilities), ``two_step_within_episode.png``,
checkpoints ``a2c_*.pt``, evaluation trials/latents ``*.nc`` and ``result.md``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import neurorl as nr
from neurorl.agents.deep import common
from neurorl.agents.deep.a2c import A2C, A2CConfig
from neurorl.behaviour import p_better_by_trial_in_episode, two_step_stay
from neurorl.tasks.meta_bandit import WANG_FIXED_SETS


@dataclass
class Args:
    """Train an A2C-LSTM meta-learner on wang_bandit episodes and on the two-step task."""

    seed: int = 0
    hidden_size: int = 48
    lr: float = 1e-3
    gamma: float = 0.9
    beta_v: float = 0.05
    beta_e: float = 0.05
    n_envs: int = 16
    # wang_bandit
    n_updates: int = 1500
    episode_length: int = 100
    eval_episodes: int = 400
    bandit: bool = True
    # two-step
    two_step: bool = True
    ts_task: str = "wang_two_step"
    ts_lr: float = 2e-3
    ts_n_envs: int = 32
    ts_updates: int = 1500
    ts_trials: int = 100
    p_common: float = 0.8
    ts_reward_prob: float = 0.9
    ts_switch_prob: float = 0.025
    out_root: str = "out"
    progress: bool = True
    workers: int = 0


def _curve_stats(curve) -> dict:
    p = curve.p_better
    part = lambda a, b: float(p.isel(trial_in_episode=slice(a, b)).mean())  # noqa: E731
    return {"trial_0": float(p.isel(trial_in_episode=0)), "trials_1_5": part(1, 6), "trials_10_20": part(10, 21),
            "trials_50_99": part(50, 100), "overall": float((p * curve.n).sum() / curve.n.sum())}


def _two_step_task(args: Args):
    if args.ts_task == "wang_two_step":
        return nr.make_task("wang_two_step", p_common=args.p_common, reward_prob=args.ts_reward_prob,
                            switch_prob=args.ts_switch_prob)
    if args.ts_task == "two_step":
        return nr.make_task("two_step", p_common=args.p_common)
    raise ValueError(f"train_a2c_meta_rl: ts_task must be 'wang_two_step' or 'two_step', got {args.ts_task!r}")


def first_stage_table(trials, p_common: float) -> dict:
    """Stage-1 rows of two-step trials as (subject, k) arrays.

    Returns ``choice``, ``better`` (the first-stage action with the higher expected reward
    given the row's reward probabilities: ``Q(a0) = pc V1 + (1 - pc) V2``, ``Q(a1) = (1 - pc) V1
    + pc V2``, ``V_s`` the better option of state ``s``; -1 when tied), ``q_best`` (its expected
    reward), ``trial`` (two-step trial within the meta-episode) and ``meta_episode``.
    """
    pc = float(p_common)
    st = trials["stage"].transpose("subject", "trial").values
    keep = st[0] == 1  # every subject has the same row structure (no padding in rollouts)

    def get(k):
        return trials[k].transpose("subject", "trial").values[:, keep]

    v1 = np.maximum(get("p_reward_1_0"), get("p_reward_1_1"))
    v2 = np.maximum(get("p_reward_2_0"), get("p_reward_2_1"))
    q0, q1 = pc * v1 + (1 - pc) * v2, (1 - pc) * v1 + pc * v2
    better = np.where(q0 > q1, 0, np.where(q1 > q0, 1, -1))
    return {"choice": get("choice"), "better": better, "q_best": np.maximum(q0, q1), "trial": get("episode"),
            "meta_episode": get("meta_episode")}


def p_better_by_trial(tab: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(first-stage choice = better action) by two-step trial within the meta-episode: ``(k, p, sem)``."""
    use = tab["better"] >= 0
    k = tab["trial"][use]
    hit = (tab["choice"] == tab["better"])[use].astype(float)
    n = np.bincount(k)
    p = np.bincount(k, hit, minlength=n.size) / np.maximum(n, 1)
    return np.arange(n.size), p, np.sqrt(p * (1 - p) / np.maximum(n, 1))


def p_better_around_swaps(tab: dict, before: int = 3, after: int = 15) -> tuple[np.ndarray, np.ndarray, int]:
    """P(choice = better action) on trials ``-before .. after`` around each change of the better action.

    Trial 0 is the first trial after the change (the change is not yet observable there); only
    trials of the same meta-episode count. Returns ``(lags, p, n_swaps)``.
    """
    lags = np.arange(-before, after + 1)
    s, n, swaps = np.zeros(lags.size), np.zeros(lags.size), 0
    for i in range(tab["choice"].shape[0]):
        b, c, ep = tab["better"][i], tab["choice"][i], tab["meta_episode"][i]
        for t in np.flatnonzero((b[1:] != b[:-1]) & (b[1:] >= 0) & (b[:-1] >= 0) & (ep[1:] == ep[:-1])) + 1:
            swaps += 1
            for j, lag in enumerate(lags):
                u = t + lag
                if 0 <= u < b.size and ep[u] == ep[t] and b[u] >= 0:
                    s[j] += float(c[u] == b[u])
                    n[j] += 1
    return lags, s / np.maximum(n, 1), swaps


def _config(args: Args) -> A2CConfig:
    return A2CConfig(hidden_size=args.hidden_size, lr=args.lr, gamma=args.gamma, beta_v=args.beta_v,
                     beta_e=args.beta_e, n_envs=args.n_envs, episode_length=args.episode_length)


def _part(part: str, args: Args):
    """``(task, config, updates, checkpoint name)`` of a part: ``"wang_bandit"`` or ``"two_step"``."""
    cfg = _config(args)
    if part == "wang_bandit":
        return nr.make_task("wang_bandit", episode_length=args.episode_length), cfg, args.n_updates, "a2c_wang_bandit"
    ts_cfg = A2CConfig(**{**cfg.__dict__, "episode_length": 2 * args.ts_trials, "lr": args.ts_lr,
                          "n_envs": args.ts_n_envs})
    return _two_step_task(args), ts_cfg, args.ts_updates, "a2c_two_step"


def train_part(part: str, seed: int, *, args: Args, out: str) -> dict:
    """One training run, a unit of :mod:`neurorl.parallel` (``--workers 2`` trains both parts side by side):
    trains the part's network, writes its checkpoint and returns the training history and seconds."""
    task, cfg, n_updates, name = _part(part, args)
    agent = A2C(task, cfg, seed=seed)
    t0 = time.perf_counter()
    agent.train(n_updates, progress=args.progress and not args.workers)
    seconds = time.perf_counter() - t0
    agent.save(Path(out) / f"{name}.pt")
    return {"history": {k: np.asarray(v) for k, v in agent.history.items()}, "seconds": seconds}


def _trained(part: str, args: Args, out) -> tuple[A2C, A2C]:
    """The part's network loaded from its checkpoint, and the same architecture untrained (same initial weights)."""
    task, cfg, _, name = _part(part, args)
    agent, control = A2C(task, cfg, seed=args.seed), A2C(task, cfg, seed=args.seed)
    agent.load(out / f"{name}.pt")
    return agent, control


def _two_step(args: Args, out, res: dict, sections: dict, plt) -> None:
    """Evaluate the trained two-step network; fills ``res``/``sections``."""
    ts_agent, ts_control = _trained("two_step", args, out)
    ts_task = ts_agent.task
    n_sub = max(1, args.eval_episodes // 8)
    ttr, tlat = ts_agent.rollout(n_sub, 4, rng=args.seed + 3000)
    nr.write_trials(ttr, out / "trials_two_step.nc")
    nr.write_latents(tlat, out / "latents_two_step.nc")
    ctr = ts_control.rollout(n_sub, 4, rng=args.seed + 3000)[0]
    runs = {"trained": ttr, "untrained": ctr}
    stays = {k: two_step_stay(t) for k, t in runs.items()}
    tabs = {k: first_stage_table(t, args.p_common) for k, t in runs.items()}
    d: dict = {}
    for k, sdat in stays.items():
        p = sdat.p_stay
        d[k] = {f"{o}/{t}": float(p.sel(outcome=o, transition=t)) for o in ("rewarded", "unrewarded")
                for t in ("common", "rare")}
        d[k]["n"] = {f"{o}/{t}": int(sdat.n.sel(outcome=o, transition=t)) for o in ("rewarded", "unrewarded")
                     for t in ("common", "rare")}
        d[k]["interaction"] = float(
            (p.sel(outcome="rewarded", transition="common") - p.sel(outcome="rewarded", transition="rare"))
            - (p.sel(outcome="unrewarded", transition="common") - p.sel(outcome="unrewarded", transition="rare")))
        d[k]["main_effect_reward"] = float(p.sel(outcome="rewarded").mean() - p.sel(outcome="unrewarded").mean())
        t = runs[k]
        d[k]["reward_per_trial"] = float(t["reward"].values[t["stage"].values == 2].mean())
        tab = tabs[k]
        use = tab["better"] >= 0
        d[k]["p_better"] = float((tab["choice"] == tab["better"])[use].mean())
    n2 = int((ttr["stage"].values == 2).sum())
    se = float(np.sqrt(0.25 / n2 + 0.25 / int((ctr["stage"].values == 2).sum())))
    gain = d["trained"]["reward_per_trial"] - d["untrained"]["reward_per_trial"]
    d["oracle_reward_per_trial"] = float(tabs["trained"]["q_best"].mean())
    d["learnt"] = bool(gain > 2 * se)
    d["n_test_trials"] = n2
    res["two_step"] = d

    # 2x2 stay probabilities
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharey=True)
    for ax, (k, sdat) in zip(axes, stays.items()):
        x = np.arange(2)
        ax.bar(x - 0.18, sdat.p_stay.sel(transition="common"), 0.36, label="common")
        ax.bar(x + 0.18, sdat.p_stay.sel(transition="rare"), 0.36, label="rare")
        ax.set_xticks(x, ["rewarded", "unrewarded"])
        ax.set_title(f"{k} (reward/trial {d[k]['reward_per_trial']:.3f})")
        ax.set_ylim(0, 1.2)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
    axes[0].set_ylabel("P(repeat first-stage choice)")
    axes[0].legend(title="previous transition", loc="upper center", ncol=2, fontsize=8, title_fontsize=8)
    fig.suptitle(f"A2C-LSTM on {ts_task.name} (p_common {args.p_common}), frozen weights, "
                 f"{4 * n_sub} test episodes")
    fig.tight_layout()
    fig.savefig(out / "two_step_stay.png", dpi=120)
    plt.close(fig)

    # within-episode learning: by trial, and around swaps of the better action
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    swaps = {}
    for k, tab in tabs.items():
        kk, p, sem = p_better_by_trial(tab)
        axes[0].plot(kk, p, label=k)
        axes[0].fill_between(kk, p - sem, p + sem, alpha=0.2)
        lags, ps, n_sw = p_better_around_swaps(tab)
        swaps[k] = n_sw
        axes[1].plot(lags, ps, "o-", ms=3, label=f"{k} ({n_sw} swaps)")

        def mean(a):
            return float(a.mean()) if a.size else float("nan")

        d[k]["trial_0"] = float(p[0])
        d[k]["trials_1_5"] = mean(p[1:6])
        d[k]["trials_10_99"] = mean(p[10:])
        d[k]["after_swap_0_2"] = mean(ps[(lags >= 0) & (lags <= 2)]) if n_sw else float("nan")
        d[k]["after_swap_5_15"] = mean(ps[lags >= 5]) if n_sw else float("nan")
        d[k]["before_swap"] = mean(ps[lags < 0]) if n_sw else float("nan")
    for ax in axes:
        ax.axhline(0.5, color="0.6", lw=0.8, ls="--")
        ax.set_ylabel("P(first-stage choice = better action)")
        ax.set_ylim(0, 1.0)
        ax.legend()
    axes[0].set_xlabel("two-step trial within episode")
    axes[0].set_title("from the episode start")
    axes[1].axvline(-0.5, color="0.4", lw=0.8)
    axes[1].set_xlabel("trials since the better action changed")
    axes[1].set_title("around swaps of the good second-stage state")
    fig.suptitle(f"A2C-LSTM({args.hidden_size}) on {ts_task.name} with frozen weights: learning inside episodes")
    fig.tight_layout()
    fig.savefig(out / "two_step_within_episode.png", dpi=120)
    plt.close(fig)

    rows = ["| network | rew/common | rew/rare | unrew/common | unrew/rare | reward effect | interaction |",
            "|---|---|---|---|---|---|---|"]
    for k in stays:
        r = d[k]
        rows.append(f"| {k} | {r['rewarded/common']:.3f} | {r['rewarded/rare']:.3f} | "
                    f"{r['unrewarded/common']:.3f} | {r['unrewarded/rare']:.3f} | {r['main_effect_reward']:.3f} "
                    f"| {r['interaction']:.3f} |")
    curve = ["| network | trial 0 | trials 1-5 | trials 10-99 | before swap | 0-2 after swap | 5-15 after swap |",
             "|---|---|---|---|---|---|---|"]
    for k in tabs:
        r = d[k]
        curve.append(f"| {k} | {r['trial_0']:.3f} | {r['trials_1_5']:.3f} | {r['trials_10_99']:.3f} | "
                     f"{r['before_swap']:.3f} | {r['after_swap_0_2']:.3f} | {r['after_swap_5_15']:.3f} |")
    verdict = ("the trained network earns more than the untrained control." if d["learnt"] else
               "**not learnt at this budget**: the trained network earns no more than the untrained control, "
               "so its stay probabilities carry no signature; raise --ts-updates.")
    sections["Two-step task"] = (
        f"Task {ts_task!r}. Training: {args.ts_updates} updates x {args.ts_n_envs} meta-episodes of "
        f"{args.ts_trials} two-step trials ({args.ts_updates * args.ts_n_envs} episodes; lr {args.ts_lr}; "
        "returns run across trial ends), "
        f"{res['timing_s']['two-step training']:.0f} s. Test: {4 * n_sub} new meta-episodes "
        f"({n2} two-step trials) with frozen weights.\n\n"
        "P(stay) with the first-stage choice by the previous trial's outcome and transition:\n\n"
        + "\n".join(rows) +
        f"\n\nReward per two-step trial: trained {d['trained']['reward_per_trial']:.3f}, untrained "
        f"{d['untrained']['reward_per_trial']:.3f} (difference {gain:+.3f}, 2 SE = {2 * se:.3f}; an agent that always "
        f"chose the better first-stage action: {d['oracle_reward_per_trial']:.3f}): {verdict}\n\n"
        "![](two_step_stay.png)\n\n"
        "P(first-stage choice = better action) inside episodes (frozen weights; 'swap' = the better action "
        "changed, trial 0 = the first trial after it):\n\n" + "\n".join(curve) +
        "\n\n![](two_step_within_episode.png)")


def main(args: Args) -> dict:
    """Train, evaluate with frozen weights and report; returns the numbers in ``result.md``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = common.output_dir(__file__, args.seed, root=args.out_root)
    res: dict = {"timing_s": {}}
    sections: dict[str, str] = {}

    # ---------------------------------------------------------------- training: one unit of neurorl.parallel per part
    parts = [p for p, on in (("wang_bandit", args.bandit), ("two_step", args.two_step)) if on]
    runs = {}
    if parts:
        with nr.parallel.parallel(workers=args.workers or None):
            done = common.over_seeds(functools.partial(train_part, args=args, out=str(out)), [args.seed],
                                     settings=parts, progress=args.progress and bool(args.workers),
                                     desc="A2C training runs")
        runs = {part: r for (part, _), r in done.items()}
    for part, r in runs.items():
        res["timing_s"][f"{'wang_bandit' if part == 'wang_bandit' else 'two-step'} training"] = r["seconds"]
    hist = {("wang_bandit" if part == "wang_bandit" else args.ts_task): r["history"] for part, r in runs.items()}

    # ---------------------------------------------------------------- 1. wang_bandit
    if args.bandit:
        agent, control = _trained("wang_bandit", args, out)
        n_sub = max(1, args.eval_episodes // 4)
        tr, lat = agent.rollout(n_sub, 4, rng=args.seed + 1000)
        nr.write_trials(tr, out / "trials_wang_bandit.nc")
        nr.write_latents(lat, out / "latents_wang_bandit.nc")
        curves = {"trained": p_better_by_trial_in_episode(tr),
                  "untrained": p_better_by_trial_in_episode(control.rollout(n_sub, 4, rng=args.seed + 1000)[0])}
        res["wang_bandit"] = {k: _curve_stats(c) for k, c in curves.items()}
        res["wang_bandit"]["reward_per_trial"] = float(tr["reward"].mean())
        res["wang_bandit"]["max_expected_reward"] = float(tr["p"].max("action").mean())
        sets = {}
        for pair in WANG_FIXED_SETS:
            fixed = nr.make_task("wang_bandit", episode_length=args.episode_length, prob_sets=[pair])
            sets[f"{pair[0]}/{pair[1]}"] = p_better_by_trial_in_episode(
                agent.rollout(n_sub, 4, rng=args.seed + 2000, task=fixed)[0])
        res["fixed_sets"] = {k: _curve_stats(c) for k, c in sets.items()}

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for name, c in curves.items():
            axes[0].plot(c.trial_in_episode, c.p_better, label=name)
            axes[0].fill_between(c.trial_in_episode, c.p_better - c.sem, c.p_better + c.sem, alpha=0.2)
        axes[0].axhline(0.5, color="0.6", lw=0.8, ls="--")
        axes[0].set_title("p_L ~ U(0, 1), p_R = 1 - p_L (training distribution)")
        for name, c in sets.items():
            axes[1].plot(c.trial_in_episode, c.p_better, label=name)
        axes[1].axhline(0.5, color="0.6", lw=0.8, ls="--")
        axes[1].set_title("fixed sets (not trained on)")
        for ax in axes:
            ax.set_xlabel("trial within episode")
            ax.set_ylabel("P(choose the better arm)")
            ax.set_ylim(0.3, 1.0)
            ax.legend()
        fig.suptitle(f"A2C-LSTM({args.hidden_size}) with frozen weights: learning inside episodes "
                     f"({4 * n_sub} test episodes each)")
        fig.tight_layout()
        fig.savefig(out / "within_episode.png", dpi=120)
        plt.close(fig)

        rows = ["| network / set | trial 0 | trials 1-5 | trials 10-20 | trials 50-99 | all trials |",
                "|---|---|---|---|---|---|"]
        for k, s in list(res["wang_bandit"].items())[:2] + list(res["fixed_sets"].items()):
            rows.append(f"| {k} | {s['trial_0']:.3f} | {s['trials_1_5']:.3f} | {s['trials_10_20']:.3f} "
                        f"| {s['trials_50_99']:.3f} | {s['overall']:.3f} |")
        wb = res["wang_bandit"]
        sections["Bandit episodes (wang_bandit)"] = (
            f"Training: {args.n_updates} updates x {args.n_envs} episodes of {args.episode_length} trials "
            f"({args.n_updates * args.n_envs} episodes). Test: new episodes with frozen weights, recurrent state reset "
            f"between episodes. P(choose the better arm) by trial within episode:\n\n" + "\n".join(rows) +
            f"\n\nReward per trial at test {wb['reward_per_trial']:.3f} (always choosing the better arm: "
            f"{wb['max_expected_reward']:.3f}; chance 0.5).\n\n![](within_episode.png)")

    # ---------------------------------------------------------------- 2. two-step
    if args.two_step:
        _two_step(args, out, res, sections, plt)
    if hist:
        fig, axes = plt.subplots(1, len(hist), figsize=(5 * len(hist), 3.4), squeeze=False)
        for ax, (k, h) in zip(axes[0], hist.items()):
            r = np.asarray(h["reward"]) * (1.0 if k == "wang_bandit" else 2.0)  # two rows per two-step trial
            w = max(1, len(r) // 25)
            ax.plot(np.convolve(r, np.ones(w) / w, mode="valid"))
            ax.set_title(k)
            ax.set_xlabel("update")
            ax.set_ylabel(f"reward per trial (running mean of {w})")
        fig.tight_layout()
        fig.savefig(out / "training.png", dpi=120)
        plt.close(fig)
        sections["Training curves"] = "![](training.png)"
    sections["Timing (s)"] = "\n".join(f"* {k}: {v:.0f}" for k, v in res["timing_s"].items())
    common.write_result(out / "result.md", "A2C-LSTM meta-RL (Wang et al. 2018)", args, sections)
    res["out"] = str(out)
    return res


if __name__ == "__main__":
    r = main(common.parse_args(Args))
    for k in ("wang_bandit", "fixed_sets", "two_step"):
        if k in r:
            print(k, r[k])
    print("outputs in", r["out"])
