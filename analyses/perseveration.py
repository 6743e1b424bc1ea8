"""Policy compression and perseveration on the mouse bandit.

Reference: ``reference/agents.md`` §4 (policy compression: ``pi(a|s) ∝ P(a) exp(beta theta(s, a))``
with a learnt action marginal ``P``; online actor-critic of Lai & Gershman 2024; Blahut-Arimoto and the
reward-complexity frontier) and §9 (RFLR of Beron et al. 2022), ``reference/tasks.md`` §1 (mouse
two-armed bandit with Markov block switches; P(switch) around block changes; P(switch | 3-trial
history word)), ``reference/fitting.md`` §6 (predictive summaries).

What is run
-----------
* Generators on ``mouse_bandit`` (p_high 0.8, p_switch 0.02): the policy-compression actor-critic
  (``policy_compression``, fixed beta) at several inverse temperatures and marginal learning rates,
  Q-learning, and RFLR at the published 80-20 mouse fit (alpha, beta, tau) = (0.78, 2.05, 1.43)
  (agents.md §9) as a mouse-like reference.
* Behavioural summaries from :mod:`neurorl.behaviour`: P(switch) and P(high port) around block changes
  and P(switch | history word).
* An RFLR fit (MAP, :class:`neurorl.fitting.MAP`) to every generator's choices: the fitted
  stickiness ``alpha`` measures perseveration in a common currency.
* A sweep of beta x alpha_p of policy compression (P(switch), P(high port), reward rate).
* The reward-complexity frontier (:func:`neurorl.agents.policy_compression.reward_complexity_curve`)
  of the task with the hidden high port as the state, and every generator's empirical point
  (I(Z; A), reward rate).

Why the frontier uses the hidden port as state ([D]): the bandit has one observable state, so
``I(S; A) = 0`` for every policy. With the hidden port ``z`` as the state, ``Q(z, a) = p_high`` if
``a = z`` else ``1 - p_high``, and any agent's joint distribution of (z, choice) defines a policy
``pi(a | z)`` whose expected reward is exactly the agent's reward rate, so every agent lies on or
below this frontier; its distance from it is the price of not knowing z.

Assumptions and choices ([A])
-----------------------------
* [A] Policy-compression parameters: alpha_theta = 0.5, alpha_v = 0.1 and beta / alpha_p as listed.
  With the defaults (beta = 5, alpha_theta = alpha_p = 0.1) the agent locks into one port after a few
  trials and never follows a reversal (P(switch) ~ 0.002, P(high port) ~ 0.5): the actor's step is
  ``alpha_theta delta beta (onehot - pi)`` and vanishes as pi becomes deterministic, and the marginal
  then pulls the policy further toward the chosen port. The values used here span the range from
  noisy to locked.
* [A] Q-learning: alpha = 0.5, beta = 3.
* [A] Empirical point of a generator: plug-in mutual information of (high port, choice) over all its
  subjects' trials pooled (pseudo-count 0.1 per cell; upward bias about 1 / (2 N) nats, negligible),
  and the expected reward of its pooled policy ``p_high P(high) + (1 - p_high)(1 - P(high))`` (the
  realised reward rate minus outcome noise). Pooling makes p(z) about 1/2 as in the frontier;
  per-subject points would not be comparable (a subject meets few blocks, so its own p(z) is not 1/2,
  and a perseverating subject can score above 1/2 with I = 0).
* [A] RFLR fit: MAP with the agent's default priors (N(0, 2.5^2) on the unconstrained scale), 3
  starts; MAP rather than MLE because locked-in subjects (no switches) have their MLE at infinity.
* [A] A block change is a trial whose high port differs from the previous trial's
  (``neurorl.behaviour``); offsets -10..20.

Usage::

    python analyses/perseveration.py --seed 0
    python analyses/perseveration.py --quick

Outputs: ``results/perseveration_seed<seed>/`` (``result.md``, ``block_switch.png``, ``history.png``,
``sweep.png``, ``reward_complexity.png``) and, unless ``--quick`` or ``--no-docs``,
``docs/analyses/perseveration.md`` with ``docs/analyses/img/perseveration_*.png``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import neurorl as nr
from neurorl.agents.policy_compression import reward_complexity_curve
from neurorl.analysis import AnalysisOutput, parse_args
from neurorl.behaviour import p_switch_around_block_changes, switch_by_history
from neurorl.fitting import MAP

NAME = "perseveration"
REPO = Path(__file__).resolve().parents[1]
RFLR_MOUSE = {"alpha": 0.78, "beta": 2.05, "tau": 1.43}


@dataclass
class Args:
    """Policy compression and perseveration on the mouse bandit."""

    seed: int = 0
    quick: bool = False
    n_subjects: int = 100
    n_trials: int = 800
    p_high: float = 0.8
    pc_betas: str = "1.0,1.5,2.0"
    pc_alpha_p: float = 0.01
    pc_alpha_theta: float = 0.5
    sweep_betas: str = "0.5,0.75,1,1.25,1.5,1.75,2,2.5"
    sweep_alpha_ps: str = "0.0001,0.01,0.03"
    sweep_subjects: int = 40
    rflr_starts: int = 3
    timestep: bool = True
    ts_subjects: int = 100
    ts_rows: int = 3000
    ts_beta: float = 1.5
    drqn: bool = True
    drqn_episodes: int = 40
    drqn_rows: int = 300
    drqn_envs: int = 4
    drqn_kl_beta: float = 1.0
    drqn_kl_alpha: float = 0.99
    drqn_eval_subjects: int = 20
    out_root: str = ""
    docs_dir: str = ""
    docs: bool = True


QUICK = {"n_subjects": 10, "n_trials": 300, "sweep_betas": "1,2", "sweep_alpha_ps": "0.01", "sweep_subjects": 5,
             "rflr_starts": 1, "ts_subjects": 6, "ts_rows": 400, "drqn_episodes": 2, "drqn_rows": 60, "drqn_envs": 2,
         "drqn_eval_subjects": 2}


# ----------------------------------------------------------------------------- analysis pieces
def generators(args):
    """(label, agent, params) of every generator."""
    pc = nr.make_agent("policy_compression")
    out = [(f"PC beta={float(b):g}", pc, {"beta": float(b), "alpha_theta": args.pc_alpha_theta,
                                          "alpha_p": args.pc_alpha_p,
                                               "alpha_v": 0.1})
           for b in args.pc_betas.split(",") if b.strip()]
    out.append(("Q-learning", nr.make_agent("q_learning"), {"alpha": 0.5, "beta": 3.0}))
    out.append(("RFLR (mouse fit)", nr.make_agent("rflr"), dict(RFLR_MOUSE)))
    return out


def mutual_information(z, c, pseudo=0.1):
    """Plug-in I(Z; A) in nats of two binary sequences, with a pseudo-count per cell."""
    counts = np.full((2, 2), pseudo)
    np.add.at(counts, (np.asarray(z, int), np.asarray(c, int)), 1.0)
    p = counts / counts.sum()
    return float(np.sum(p * np.log(p / (p.sum(1, keepdims=True) * p.sum(0, keepdims=True)))))


def summarise(trials, p_high):
    c, z, r = trials["choice"].values, trials["high_port"].values, trials["reward"].values
    block = p_switch_around_block_changes(trials, (-10, 20))
    hist = switch_by_history(trials, 3)
    ph = float((c == z).mean())
    return {"p_switch": float((c[:, 1:] != c[:, :-1]).mean()), "p_high": ph,
                "reward": float(r.mean()), "expected_reward": p_high * ph + (1 - p_high) * (1 - ph), "block": block,
                "hist": hist, "p_switch_after": float(block["p_switch"].sel(offset=slice(0, 4)).mean()),
                "p_switch_before": float(block["p_switch"].sel(offset=slice(-10, -1)).mean()),
                "info": mutual_information(z.ravel(), c.ravel()),
                "lose_shift": float(hist["p_switch"].sel(history="aaa") - hist["p_switch"].sel(history="AAA"))}


def rflr_fit(trials, args, rng):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MAP("rflr", n_starts=args.rflr_starts, rng=rng, progress=False).fit(trials)
    p = est.params_
    return {k: float(np.median(p[k].values)) for k in ("alpha", "beta", "tau")}


# ----------------------------------------------------------------------------- time-step variant (wait action)
def timestep_generators(args):
    """(label, agent, params) on the time-step task with a wait action (agents.md §4 open point)."""
    pc = {"beta": args.ts_beta, "alpha_theta": args.pc_alpha_theta, "alpha_p": args.pc_alpha_p, "alpha_v": 0.1}
    return [("PC, decision-only marginal", nr.make_agent("policy_compression", null_action=2), pc),
            ("PC, marginal over all actions", nr.make_agent("policy_compression"), pc),
            ("Q-learning", nr.make_agent("q_learning"), {"alpha": 0.5, "beta": 3.0})]


def summarise_timestep(trials, latents):
    """Decision-row summaries of a time-step session: switching, tracking, waiting and the marginal."""
    dec = trials["decision"].values.astype(bool)
    c, z, r = trials["choice"].values, trials["high_port"].values, trials["reward"].values
    ph = trials["phase"].values
    sw, hi, after = [], [], []
    for i in range(c.shape[0]):
        ci, zi = c[i, dec[i]], z[i, dec[i]]
        sw.append(ci[1:] != ci[:-1])
        hi.append(ci == zi)
        change = np.flatnonzero(zi[1:] != zi[:-1]) + 1  # first decision of each new block
        for k in change:
            after.extend((ci[k:k + 5][1:] != ci[k:k + 5][:-1]).tolist())
    go = ph == 1
    out = {"n_decisions": int(dec.sum()), "p_switch": float(np.mean(np.concatenate(sw))),
           "p_high": float(np.mean(np.concatenate(hi))),
           "p_switch_after": float(np.mean(after)) if after else float("nan"),
           "wait_go": float(np.mean(c[go] == 2)), "wait_iti": float(np.mean(c[ph == 0] == 2)),
           "reward_per_decision": float(r.sum() / max(dec.sum(), 1))}
    if "marginal" in latents:
        out["marginal"] = latents["marginal"].values[:, trials.sizes["trial"] // 2:].mean(axis=(0, 1)).tolist()
    return out


def timestep_part(args, rng):
    task = nr.make_task("mouse_bandit_timestep", include_null_action=True, p_rew_max=args.p_high)
    res = {}
    gens = timestep_generators(args)
    for (lab, agent, params), rs in zip(gens, rng.spawn(len(gens))):
        sim = nr.simulate(agent, task, n_subjects=args.ts_subjects, n_trials=args.ts_rows, params=params, rng=rs)
        res[lab] = summarise_timestep(sim.trials, sim.latents)
    return res


def _has_torch() -> bool:
    """Whether the optional deep extra (torch) is installed; without it the DRQN part is skipped."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


DRQN_CONDITIONS = (("DRQN, no penalty", 0.0, False),
                   ("DRQN, penalty, decision-only marginal (choices only)", 1.0, True),
                   ("DRQN, penalty, marginal over all actions", 1.0, False))


def drqn_timestep_part(args, seed: int) -> dict:
    """The DRQN (deep.md §3) on the same time-step task with a wait action, trained without the marginal-policy KL
    penalty, with the decision-only marginal over the choice actions (``kl_decision_only``; the definition of
    neurorl.agents.choice_marginal shared with ``policy_compression(null_action=2)``) and with q-rnn's marginal over
    all actions; evaluated with frozen weights at the final temperature, penalty and marginal running as trained."""
    from neurorl.agents.deep.drqn import DRQN, DRQNConfig

    task = nr.make_task("mouse_bandit_timestep", include_null_action=True, p_rew_max=args.p_high)
    res = {}
    for lab, kl_on, decision_only in DRQN_CONDITIONS:
        kl = args.drqn_kl_beta * kl_on
        cfg = DRQNConfig(hidden_size=10, gamma=0.9, lr=3e-3, episode_length=args.drqn_rows, n_envs=args.drqn_envs,
                         updates_per_episode=10, seq_len=min(100, args.drqn_rows), batch_episodes=16, learn_after=8,
                         tau_start=0.5, tau_min=0.1, decay=0.97, kl_beta=kl, kl_alpha=args.drqn_kl_alpha if kl else 0.0,
                         kl_decision_only=decision_only)
        t0 = time.perf_counter()
        ag = DRQN(task, cfg, seed=seed)
        ag.train(args.drqn_episodes, progress=False)
        tr, lat = ag.rollout(args.drqn_eval_subjects, args.ts_rows, rng=seed + 2000, tau=ag.tau())
        res[lab] = summarise_timestep(tr, lat)
        res[lab]["kl_marginal"] = lat.attrs["kl_marginal"] if kl else "--"
        res[lab]["seconds"] = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- figures
def _fig_block(results):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i, (lab, r) in enumerate(results.items()):
        b = r["block"]
        axes[0].plot(b["offset"], b["p_switch"], color=f"C{i}", label=lab)
        axes[1].plot(b["offset"], b["p_high"], color=f"C{i}", label=lab)
    for ax, yl in zip(axes, ("P(switch)", "P(choose the new high port)")):
        ax.axvline(0, color="0.5", ls=":", lw=1)
        ax.set_xlabel("trials from block change")
        ax.set_ylabel(yl)
    axes[0].set_yscale("log")
    axes[0].legend(frameon=False, fontsize="x-small")
    axes[0].set_title("switching around block changes", fontsize="medium")
    axes[1].set_title("tracking the high port", fontsize="medium")
    fig.tight_layout()
    return fig


def _fig_history(results):
    import matplotlib.pyplot as plt

    labs = list(results)
    ref = results[labs[-1]]["hist"]
    order = np.argsort(np.nan_to_num(ref["p_switch"].values, nan=-1))
    words = ref["history"].values[order]
    fig, ax = plt.subplots(figsize=(11, 3.6))
    w = 0.8 / len(labs)
    x = np.arange(len(words))
    for i, lab in enumerate(labs):
        p = results[lab]["hist"]["p_switch"].values[order]
        ax.bar(x + (i - (len(labs) - 1) / 2) * w, p, w, color=f"C{i}", label=lab)
    ax.set_xticks(x)
    ax.set_xticklabels(words, rotation=90, family="monospace")
    ax.set_ylabel("P(switch | history)")
    ax.set_title("conditional switch probabilities (A/a = same port as the window's first choice, "
                 "B/b = other; upper case = rewarded); sorted by the last agent", fontsize="medium")
    ax.legend(frameon=False, fontsize="x-small", ncol=3)
    fig.tight_layout()
    return fig


def _fig_sweep(sweep, betas, aps):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for j, ap in enumerate(aps):
        for ax, key in zip(axes, ("p_switch", "p_high", "reward")):
            ax.plot(betas, [sweep[(b, ap)][key] for b in betas], "o-", color=f"C{j}", label=f"alpha_p = {ap:g}")
    for ax, yl in zip(axes, ("P(switch)", "P(high port)", "reward rate")):
        ax.set_xlabel("beta (policy compression)")
        ax.set_ylabel(yl)
    axes[0].set_yscale("log")
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle("policy compression on the mouse bandit: inverse temperature x marginal learning rate",
                 fontsize="medium")
    fig.tight_layout()
    return fig


def _fig_frontier(curve, results):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 4))
    ax.plot(curve["information"], curve["value"], "k-", lw=1.5, label="frontier (Blahut-Arimoto)")
    for i, (lab, r) in enumerate(results.items()):
        ax.plot(r["info"], r["expected_reward"], "o", color=f"C{i}", ms=7, label=lab)
    ax.set_xlabel("I(high port; choice) (nats)")
    ax.set_ylabel("expected reward per trial")
    ax.set_title("reward-complexity (hidden port as state)", fontsize="medium")
    ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- main
def main(args: Args) -> dict:
    """Simulate, summarise, fit RFLR, sweep, draw the frontier; write the result; return headline numbers."""
    output = AnalysisOutput.start(NAME, args, quick=QUICK, repo=REPO)
    args = output.args
    t0 = time.perf_counter()
    task = nr.make_task("mouse_bandit", p_high=args.p_high)
    gens = generators(args)
    rng = np.random.default_rng(args.seed)
    r_sim, r_fit, r_sweep = rng.spawn(3)
    r_ts = np.random.default_rng([args.seed, 1])  # a separate stream: the trial-level results do not change
    results = {}
    for (lab, agent, params), rs, rf in zip(gens, r_sim.spawn(len(gens)), r_fit.spawn(len(gens))):
        sim = nr.simulate(agent, task, n_subjects=args.n_subjects, n_trials=args.n_trials, params=params, rng=rs)
        results[lab] = summarise(sim.trials, args.p_high)
        results[lab]["rflr"] = rflr_fit(sim.trials, args, rf)
    t_main = time.perf_counter() - t0
    betas = [float(b) for b in args.sweep_betas.split(",") if b.strip()]
    aps = [float(a) for a in args.sweep_alpha_ps.split(",") if a.strip()]
    pc = nr.make_agent("policy_compression")
    sweep = {}
    for (b, ap), rs in zip([(b, ap) for ap in aps for b in betas], r_sweep.spawn(len(betas) * len(aps))):
        sim = nr.simulate(pc, task, n_subjects=args.sweep_subjects, n_trials=args.n_trials, rng=rs,
                          params={"beta": b, "alpha_p": ap, "alpha_theta": args.pc_alpha_theta, "alpha_v": 0.1})
        s = summarise(sim.trials, args.p_high)
        sweep[(b, ap)] = {k: s[k] for k in ("p_switch", "p_high", "reward")}
    Q = np.array([[args.p_high, 1 - args.p_high], [1 - args.p_high, args.p_high]])
    curve = reward_complexity_curve(Q, np.array([0.5, 0.5]), np.linspace(0.05, 15, 60))
    order_i = np.argsort(curve["information"].values)
    for r in results.values():
        r["gap"] = float(np.interp(r["info"], curve["information"].values[order_i], curve["value"].values[order_i])
                         - r["expected_reward"])
    ts = timestep_part(args, r_ts) if args.timestep else None
    drqn_ts = drqn_timestep_part(args, args.seed) if args.timestep and args.drqn and _has_torch() else None
    output.save(_fig_block(results), "block_switch")
    output.save(_fig_history(results), "history")
    output.save(_fig_sweep(sweep, betas, aps), "sweep")
    output.save(_fig_frontier(curve, results), "reward_complexity")
    runtime = time.perf_counter() - t0

    rows = ["| generator | P(switch) | P(switch), 10 trials before a change | P(switch), first 5 of a block | "
            "P(high port) | reward rate | I(Z;A) nats | below frontier by | RFLR fit alpha (stickiness) | beta | tau |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for lab, r in results.items():
        f = r["rflr"]
        rows.append(f"| {lab} | {r['p_switch']:.3f} | {r['p_switch_before']:.3f} | {r['p_switch_after']:.3f} | "
                    f"{r['p_high']:.3f} | {r['reward']:.3f} | {r['info']:.3f} | {r['gap']:.3f} | {f['alpha']:.2f} | "
                    f"{f['beta']:.2f} "
                    f"| {f['tau']:.2f} |")
    vmax = float(curve["value"].max())
    best_pc = max((k for k in results if k.startswith("PC")), key=lambda k: results[k]["reward"])
    words = ["AAA", "aaa", "AAa", "Aaa"]
    hrows = ["| generator | " + " | ".join(f"P(switch \\| {w})" for w in words) + " |", "|---|" + "---|" * len(words)]
    for lab, r in results.items():
        h = r["hist"]["p_switch"]
        hrows.append(f"| {lab} | " + " | ".join(f"{float(h.sel(history=w)):.3f}" for w in words) + " |")
    headline = (
        f"{args.n_subjects} simulated subjects x {args.n_trials} trials per generator, `mouse_bandit` "
        f"(p_high = {args.p_high}, p_switch = 0.02); policy compression with alpha_theta = {args.pc_alpha_theta}, "
        f"alpha_p = {args.pc_alpha_p}, alpha_v = 0.1; RFLR fits are medians over subjects (MAP).\n\n"
        + "\n".join(rows) + "\n\n" + "\n".join(hrows) + "\n\n"
        f"Frontier: the best possible reward rate is {vmax:.3f} at I = ln 2 = 0.693 nats (a policy that always "
        f"knows the high port). 'Below frontier by' = frontier value at the generator's I(Z;A) minus its "
        f"expected reward. Lose-shift contrast P(switch | aaa) - P(switch | AAA): "
        + ", ".join(f"{k} {r['lose_shift']:+.3f}" for k, r in results.items()) + ".\n"
    )
    ref = results["RFLR (mouse fit)"]
    alphas = ", ".join(f"{k} {r['rflr']['alpha']:.2f}" for k, r in results.items())
    pcs = [k for k in results if k.startswith("PC")]
    pc_ls = ", ".join(f"{results[k]['lose_shift']:+.2f}" for k in pcs)
    ls_word = ("less" if max(results[k]["lose_shift"] for k in pcs)
               < min(results["Q-learning"]["lose_shift"], ref["lose_shift"]) else "not consistently less")
    lock = {ap: next((b for b in betas if sweep[(b, ap)]["p_switch"] < 0.01), None) for ap in aps}
    lock_txt = ", ".join(f"beta >= {lock[ap]:g} for alpha_p = {ap:g}" if lock[ap] is not None
                         else f"not within beta <= {max(betas):g} for alpha_p = {ap:g}" for ap in aps)
    mid = [b for b in betas if all(lock[ap] is None or b < lock[ap] for ap in aps)]
    b_mid = mid[-1] if mid else betas[0]
    mid_txt = ", ".join(f"{sweep[(b_mid, ap)]['p_switch']:.3f} (alpha_p = {ap:g})" for ap in aps)
    gaps = [r["gap"] for r in results.values()]
    best_sweep = max(v["reward"] for v in sweep.values())
    interp = (
        f"On a one-state bandit the policy-compression cost is the divergence of the current policy from the "
        f"running marginal of its own past choices, so compression pulls the policy toward what the agent has been "
        f"doing. The simulations show two regimes. At low beta choices are noisy (P(switch) "
        f"{results[pcs[0]]['p_switch']:.2f} at {pcs[0]}); above a threshold the agent locks into one port and "
        f"stops following reversals (P(switch) {results[pcs[-1]]['p_switch']:.3f}, P(high port) "
        f"{results[pcs[-1]]['p_high']:.2f} at {pcs[-1]}). The sweep (Figure 3) locates the lock-in at {lock_txt}: "
        f"it happens even with a nearly frozen marginal, so it comes from the actor-critic update itself, whose "
        f"step alpha_theta delta beta (onehot - pi) vanishes once pi is nearly deterministic. What the marginal "
        f"adds is stickiness below the threshold: at beta = {b_mid:g}, P(switch) is {mid_txt}. Compared with "
        f"Q-learning and the mouse-fit RFLR, the policy-compression agents' switching depends {ls_word} on the "
        f"last outcomes (lose-shift contrast {pc_ls} vs {results['Q-learning']['lose_shift']:+.2f} and "
        f"{ref['lose_shift']:+.2f}) and they track the high port less well (best reward rate of the "
        f"policy-compression generators "
        f"{results[best_pc]['reward']:.3f}, best in the sweep {best_sweep:.3f}, vs "
        f"{results['Q-learning']['reward']:.3f} and {ref['reward']:.3f}). "
        f"The RFLR fit puts a number on every generator's perseveration (alpha, the weight of the previous "
        f"choice in the logit: {alphas}). The mouse-like RFLR generator combines little switching within blocks "
        f"with fast recovery after a change; in these simulations policy compression reaches a low switch rate "
        f"only by giving up the recovery. On the reward-complexity plane every generator sits on the frontier "
        f"(gaps between {min(gaps):+.3f} and {max(gaps):+.3f}, i.e. within estimation noise): with two "
        f"symmetric hidden states, any policy that treats the two ports alike is the optimal channel for its "
        f"own accuracy, so here the frontier converts accuracy into information about the port rather than "
        f"separating the agents; they differ by where they sit along it (I(Z;A) <= "
        f"{max(results[k]['info'] for k in pcs):.3f} nats for policy compression vs "
        f"{results['Q-learning']['info']:.3f} and {ref['info']:.3f}). Limits: one parameter setting per "
        f"generator, no fitting of policy compression itself (see analyses/model_recovery.py), the published "
        f"online rule without any decay of the actor's preferences (a decay is not part of the rule; not "
        f"tested), and a frontier defined on the hidden port, which no agent observes."
    )
    what = (
        f"`{output.command()}` (seed {args.seed}; runtime {runtime:.0f} s: generators and RFLR fits "
        f"{t_main:.0f} s).\n\n"
        f"Generators: `policy_compression` at beta = {args.pc_betas}, `q_learning` (alpha 0.5, beta 3), `rflr` at "
        f"(alpha, beta, tau) = (0.78, 2.05, 1.43). Summaries: `neurorl.behaviour.p_switch_around_block_changes` and "
        f"`switch_by_history` (3-trial words). RFLR fitted by `neurorl.fitting.MAP` ({args.rflr_starts} starts). "
        f"Sweep: beta = {args.sweep_betas} x alpha_p = {args.sweep_alpha_ps}, {args.sweep_subjects} subjects each. "
        f"Frontier: `neurorl.agents.policy_compression.reward_complexity_curve` with Q(z, a) from p_high and "
        f"p(z) = 1/2."
    )
    figures = [
        ("block_switch", "P(switch) (log scale) and P(choose the new high port) around block changes, pooled "
                         "over subjects."),
        ("history", "P(switch | previous three choices and outcomes) for every generator."),
        ("sweep", "Policy compression over beta and the marginal learning rate alpha_p: overall P(switch), "
                  "P(high port) and reward rate."),
        ("reward_complexity", "Reward-complexity frontier with the hidden high port as the state, and each "
                              "generator's mutual information between high port and choice (pooled over subjects) "
                              "and the expected reward of its pooled policy."),
    ]
    sections = {"What was run": what, "Headline numbers": headline, "Figures": "", "Interpretation": interp}
    if ts is not None:
        sections["Time-step variant with a wait action"] = _timestep_text(ts, args)
    if drqn_ts is not None:
        sections["Time-step variant with a wait action: the DRQN's KL-to-marginal penalty"] = _drqn_text(drqn_ts, args)
    output.write("Policy compression and perseveration on the mouse bandit", sections, figures)
    out = {"runtime_s": runtime, "frontier_max": vmax,
           **{lab: {k: v for k, v in r.items() if k not in ("block", "hist")} for lab, r in results.items()}}
    if ts is not None:
        out["timestep"] = ts
    if drqn_ts is not None:
        out["drqn_timestep"] = drqn_ts
    return out


def _timestep_text(ts, args) -> str:
    rows = ["| generator | decisions | P(switch) between decisions | P(switch), first 5 decisions of a block | "
            "P(high port) | reward per decision | P(wait), go period | P(wait), ITI | mean marginal (left, right, "
            "wait), second half |", "|---|---|---|---|---|---|---|---|---|"]
    for lab, r in ts.items():
        m = ", ".join(f"{x:.2f}" for x in r["marginal"]) if "marginal" in r else "--"
        rows.append(f"| {lab} | {r['n_decisions']} | {r['p_switch']:.3f} | {r['p_switch_after']:.3f} | "
                    f"{r['p_high']:.3f} | {r['reward_per_decision']:.3f} | {r['wait_go']:.3f} | {r['wait_iti']:.3f} | "
                    f"{m} |")
    d, a = ts["PC, decision-only marginal"], ts["PC, marginal over all actions"]
    more = "more" if d["p_switch"] > a["p_switch"] else "less"
    return (
        f"`mouse_bandit_timestep` with `include_null_action=True` (action 2 = wait; p_rew_max = {args.p_high}, "
        f"p_switch 0.02, ITI Geometric(0.5), no abort penalty), {args.ts_subjects} subjects x {args.ts_rows} rows "
        f"per generator. Policy compression at beta = {args.ts_beta}, alpha_theta = {args.pc_alpha_theta}, alpha_p "
        f"= {args.pc_alpha_p}, alpha_v = 0.1, with the decision-only marginal (`null_action=2`: the marginal over "
        "left/right only, no cost on wait rows, the wait-or-act decision uncompressed; "
        "neurorl/agents/policy_compression.py) and with the published marginal over all three actions. Summaries "
        "on the task's decision rows (covariate `decision`).\n\n" + "\n".join(rows) + "\n\n"
        f"With the marginal over choices only, the wait action carries no marginal mass ({d['marginal'][2]:.2f} vs "
        f"{a['marginal'][2]:.2f} with the published rule) and the agent switches {more} between decisions "
        f"(P(switch) {d['p_switch']:.3f} vs {a['p_switch']:.3f}; P(high port) {d['p_high']:.3f} vs "
        f"{a['p_high']:.3f}). One parameter setting, simulated data. The DRQN's penalty with the same decision-only "
        "marginal follows in the next section."
    )


def _drqn_text(res, args) -> str:
    rows = ["| condition | marginal | decisions | P(switch) between decisions | P(switch), first 5 decisions of a block | "
            "P(high port) | reward per decision | P(wait), go period | P(wait), ITI | mean marginal (left, right, "
            "wait), second half | train + eval time (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for lab, r in res.items():
        m = ", ".join(f"{x:.2f}" for x in r["marginal"]) if "marginal" in r else "--"
        rows.append(f"| {lab} | {r['kl_marginal']} | {r['n_decisions']} | {r['p_switch']:.3f} | "
                    f"{r['p_switch_after']:.3f} | {r['p_high']:.3f} | {r['reward_per_decision']:.3f} | "
                    f"{r['wait_go']:.3f} | {r['wait_iti']:.3f} | {m} | {r['seconds']:.0f} |")
    labs = [lab for lab, _, _ in DRQN_CONDITIONS]
    none, dec, allm = (res[k] for k in labs)
    return (
        f"The same task (`include_null_action=True`), a GRU(10) DRQN (neurorl/agents/deep/drqn.py; seed {args.seed}) "
        f"trained for {args.drqn_episodes} episodes x {args.drqn_envs} sessions x {args.drqn_rows} rows (lr 3e-3, "
        "tau 0.5 -> 0.1, decay 0.97, 10 updates per episode) in three conditions: no penalty; the marginal-policy "
        f"KL penalty (kl_beta = {args.drqn_kl_beta}, kl_alpha = {args.drqn_kl_alpha}, q-rnn's values) with "
        "`kl_decision_only=True`, which on a task with a wait action uses the decision-only marginal of "
        "neurorl/agents/choice_marginal.py (the definition `policy_compression(null_action=2)` uses: the marginal on "
        "left/right only, the penalty log pi_c(a) - log pibar(a) with pi_c the policy conditional on acting, on "
        "decision rows only); and q-rnn's rule with the marginal over all three actions on every row. Evaluation: "
        f"{args.drqn_eval_subjects} sessions x {args.ts_rows} rows with frozen weights at the final temperature, "
        "penalty and marginal running as in training. Summaries on decision rows, as above.\n\n" + "\n".join(rows)
        + "\n\n"
        f"The decision-only marginal puts no mass on wait (mean marginal {', '.join(f'{x:.2f}' for x in dec['marginal'])}"
        f" vs {', '.join(f'{x:.2f}' for x in allm['marginal'])} with the marginal over all actions). P(switch) "
        f"between decisions: {none['p_switch']:.3f} without the penalty, {dec['p_switch']:.3f} with the decision-only "
        f"marginal, {allm['p_switch']:.3f} with the marginal over all actions (P(high port) {none['p_high']:.3f}, "
        f"{dec['p_high']:.3f}, {allm['p_high']:.3f}). One seed and one training budget per condition: differences "
        "of a few hundredths between conditions are within what another seed could change (not tested here)."
    )


if __name__ == "__main__":
    res = main(parse_args(Args))
    for lab, r in res.items():
        if isinstance(r, dict) and lab not in ("timestep", "drqn_timestep"):
            print(f"{lab}: P(switch) {r['p_switch']:.3f}, P(high) {r['p_high']:.3f}, reward {r['reward']:.3f}, "
                  f"I(Z;A) {r['info']:.3f}, RFLR alpha {r['rflr']['alpha']:.2f}")
    print(f"frontier max reward {res['frontier_max']:.3f}; runtime {res['runtime_s']:.0f} s")
