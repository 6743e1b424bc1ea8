"""Signatures that separate DRA from maximum-entropy (soft) RL: psychometric slopes and equal-value branching.

Reference: ``reference/agents.md`` §2 (soft Q-learning; one-step caveat; branching prediction
``P(0 -> 2) = 1 / (1 + 2^-gamma)`` at every temperature), §3 (DRA: ``P(a) = Phi(dq / S)`` with a
state-dependent ``S``, so the effective temperature ``S / 1.702`` varies by state -- "the signature
against a one-temperature softmax"), ``reference/tasks.md`` §3 (memory 2AFC probes) and §5
(equal-value branching task).

Part 1 -- psychometric slopes (``memory_2afc``). DRA and soft Q-learning subjects learn the frequency x
stakes task (``n_train`` trials) and are then probed (``n_test`` trials): option ``o`` against a known
sure amount ``mu_o - 4`` or ``mu_o + 4``. The psychometric slope of option ``o`` is measured from the
choices, in logit units per reward unit, ``b_o = (logit P(o | sure = mu_o - 4) - logit P(o | sure =
mu_o + 4)) / 8`` (two points; a bias of the learnt mean cancels). A one-temperature softmax predicts
``b_o = 1 / tau`` for every option; DRA predicts ``b_o = logit(Phi(4 / sigma_o)) / 4``, which varies
with the precision it allocated to ``o``. Regular (non-probe) trials give a second view: P(choose
the better option) against the true value difference of the pair, by condition.

Part 2 -- equal-value branching (``branching``). Every path has the same return; soft Q-learning at
several temperatures, DRA and Q-learning learn the task and we record P(0 -> 2) at the root.

Assumptions and choices ([A])
-----------------------------
* [A] The soft Q-learning temperature of part 1 is matched to DRA: ``tau = 1 / mean_o b_o(DRA)``
  (rounded to 2 decimals), so both agents have the same average probe slope and only its spread can
  differ. Learning rates: soft ``eta = eta_true = alpha_q`` of DRA (0.2); DRA as in
  ``analyses/dra_allocation.py`` (2AFC row of agents.md §3).
* [A] Choice proportions are clipped to ``[0.5/n, 1 - 0.5/n]`` before the logit; CIs are 2.5-97.5 %
  percentiles of a bootstrap over subjects (counts resampled by subject).
* [A] Branching: ``gamma = 0.98`` for all agents (the source's); soft ``eta = 0.1``; DRA
  ``sigma_base = 1``, ``sigma0 = 0.5`` (rewards are 0/1 here), other DRA parameters at their defaults;
  Q-learning ``alpha = 0.1``, ``beta = 2`` (larger beta locks some subjects into one branch before
  state 4 is learnt, a learning-dynamics artefact). "Late" = the last ``late_frac`` of the episodes.

Usage::

    python analyses/dra_vs_maxent_signatures.py --seed 0
    python analyses/dra_vs_maxent_signatures.py --quick

Outputs: ``results/dra_vs_maxent_signatures_seed<seed>/`` (``result.md``, ``psychometric.png``,
``slopes.png``, ``branching.png``) and, unless ``--quick`` or ``--no-docs``,
``docs/analyses/dra_vs_maxent_signatures.md`` with ``docs/analyses/img/dra_vs_maxent_signatures_*.png``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

import neurorl as nr
from neurorl.analysis import AnalysisOutput, parse_args
from neurorl.tasks.memory import N_OPTIONS, OPTION_MEANS, pair_options

NAME = "dra_vs_maxent_signatures"
REPO = Path(__file__).resolve().parents[1]
CONDITIONS = ("frequent / high stakes", "frequent / low stakes", "rare / high stakes", "rare / low stakes")


@dataclass
class Args:
    """DRA vs max-ent signatures: per-option psychometric slopes and the equal-value branching task."""

    seed: int = 0
    quick: bool = False
    # part 1: memory 2AFC
    n_subjects: int = 60
    n_train: int = 1500
    n_test: int = 1500
    alpha_q: float = 0.2
    alpha_sigma: float = 0.2
    lam: float = 0.1
    sigma_base: float = 5.0
    tau: float = 0.0  # 0: matched to DRA's mean probe slope
    # part 2: branching
    branch_subjects: int = 200
    branch_trials: int = 3000
    taus: str = "0.3,1,3"
    late_frac: float = 0.3
    n_boot: int = 500
    out_root: str = ""
    docs_dir: str = ""
    docs: bool = True


QUICK = {"n_subjects": 8, "n_train": 300, "n_test": 400, "branch_subjects": 20, "branch_trials": 450, "n_boot": 50}


# ----------------------------------------------------------------------------- part 1: psychometric slopes
def _probe_counts(task, trials, n_train):
    """Per subject and option: [n, k] with the sure amount below (option better by 4) and above."""
    st = trials["state"].values
    ch = trials["choice"].values
    T = st.shape[1]
    d = task.describe_states(st)
    probe = d["probe"] & (np.arange(T)[None, :] >= n_train)
    below = d["sure_offset"] < 0
    chose = ch == 0
    c = np.zeros((st.shape[0], N_OPTIONS, 4))
    for o in range(N_OPTIONS):
        m = probe & (d["option"] == o)
        c[:, o] = np.stack([(m & below).sum(1), (m & below & chose).sum(1),
                            (m & ~below).sum(1), (m & ~below & chose).sum(1)], axis=1)
    return c


def _regular_counts(trials, n_train):
    """Per subject and regular choice state: [n, k] of choosing the better option of the pair."""
    st = trials["state"].values
    ch = trials["choice"].values
    T = st.shape[1]
    late = np.arange(T)[None, :] >= n_train
    c = np.zeros((st.shape[0], N_OPTIONS, 2))
    for s in range(N_OPTIONS):
        a, b = pair_options(s)
        better = 0 if OPTION_MEANS[a] > OPTION_MEANS[b] else 1
        m = (st == s) & late
        c[:, s] = np.stack([m.sum(1), (m & (ch == better)).sum(1)], axis=1)
    return c


def _clipped(k, n):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(k / n, 0.5 / n, 1 - 0.5 / n)


def _slopes(c):
    """Logit slope per option (last axis groups) from summed probe counts (..., 4)."""
    p_lo = _clipped(c[..., 1], c[..., 0])
    p_hi = _clipped(c[..., 3], c[..., 2])
    return (logit(p_lo) - logit(p_hi)) / 8.0, p_lo, p_hi


def _cond(c_opt):
    """Sum option counts (..., 12, k) into the four conditions (..., 4, k)."""
    return np.stack([c_opt[..., 3 * g:3 * g + 3, :].sum(-2) for g in range(4)], axis=-2)


def _boot(c_subj, fn, n_boot, rng):
    idx = rng.integers(0, c_subj.shape[0], (n_boot, c_subj.shape[0]))
    b = np.array([fn(c_subj[i].sum(0)) for i in idx])
    return np.nanpercentile(b, [2.5, 97.5], axis=0)


def psychometric_part(args, rng):
    task = nr.make_task("memory_2afc", probes_from=args.n_train)
    T = args.n_train + args.n_test
    r_dra, r_soft, r_boot = rng.spawn(3)
    dra = nr.make_agent("dra", sigma_base=args.sigma_base)
    sim_d = nr.simulate(dra, task, n_subjects=args.n_subjects, n_trials=T, rng=r_dra,
                        params={"alpha_q": args.alpha_q, "alpha_sigma": args.alpha_sigma, "lam": args.lam})
    c_d = _probe_counts(task, sim_d.trials, args.n_train)
    b_d = _slopes(c_d.sum(0))[0]
    tau = args.tau if args.tau > 0 else round(float(1.0 / np.nanmean(b_d)), 2)
    soft = nr.make_agent("soft_q")
    sim_s = nr.simulate(soft, task, n_subjects=args.n_subjects, n_trials=T, rng=r_soft,
                        params={"tau": tau, "eta": args.alpha_q, "eta_true": args.alpha_q})
    c_s = _probe_counts(task, sim_s.trials, args.n_train)
    # DRA's allocated sigma of each option on its probe trials (the latent of action 0)
    st = sim_d.trials["state"].values
    d = task.describe_states(st)
    probe = d["probe"] & (np.arange(T)[None, :] >= args.n_train)
    sig = sim_d.latents["sigma"].values[..., 0]
    sigma_opt = np.array([sig[probe & (d["option"] == o)].mean() for o in range(N_OPTIONS)])
    out = {"tau": tau, "sigma_opt": sigma_opt}
    for lab, c, sim in (("dra", c_d, sim_d), ("soft_q", c_s, sim_s)):
        b_opt, _, _ = _slopes(c.sum(0))
        b_cond, p_lo, p_hi = _slopes(_cond(c.sum(0)))
        ci_cond = _boot(c, lambda x: _slopes(_cond(x))[0], args.n_boot, r_boot)

        def ratios(x):
            b = _slopes(_cond(x))[0]
            return np.array([(b[0] + b[1]) / (b[2] + b[3]), (b[0] + b[2]) / (b[1] + b[3])])

        reg = _regular_counts(sim.trials, args.n_train)
        out[lab] = {"b_opt": b_opt, "b_cond": b_cond, "ci_cond": ci_cond, "p_lo": p_lo, "p_hi": p_hi,
                        "ratios": ratios(c.sum(0)), "ratio_ci": _boot(c, ratios, args.n_boot, r_boot),
                        "reg": reg.sum(0), "n_probes": int(c[..., [0, 2]].sum()),
                        "reward": float(np.nanmean(sim.trials["reward"].values[:, args.n_train:]))}
    return out


# ----------------------------------------------------------------------------- part 2: branching
def branching_part(args, rng):
    task = nr.make_task("branching")
    gamma = task.gamma
    taus = [float(t) for t in args.taus.split(",") if t.strip()]
    runs = [(f"soft_q tau={t:g}", nr.make_agent("soft_q", gamma=gamma), {"tau": t, "eta": 0.1, "eta_true": 0.1})
            for t in taus]
    runs += [("dra", nr.make_agent("dra", gamma=gamma, sigma_base=1.0, sigma0=0.5), {}),
             ("q_learning", nr.make_agent("q_learning", gamma=gamma), {"alpha": 0.1, "beta": 2.0})]
    out = {}
    for (label, agent, params), r in zip(runs, rng.spawn(len(runs))):
        sim = nr.simulate(agent, task, n_subjects=args.branch_subjects, n_trials=args.branch_trials, params=params,
                          rng=r)
        st, ch = sim.trials["state"].values, sim.trials["choice"].values
        H = sim.latents["entropy"].values
        root = [ch[i][st[i] == 0] for i in range(st.shape[0])]  # one root choice per episode
        n_ep = min(len(x) for x in root)
        R = np.array([x[:n_ep] for x in root], float)  # (subject, episode): 1 = to state 2
        H0 = np.array([H[i][st[i] == 0][:n_ep] for i in range(st.shape[0])])
        k = max(1, round(args.late_frac * n_ep))
        late = R[:, -k:].mean(1)
        ci = np.percentile(late[rng.integers(0, late.size, (args.n_boot, late.size))].mean(1), [2.5, 97.5])
        out[label] = {"curve": R.mean(0), "late": float(late.mean()), "ci": ci, "sd": float(late.std()),
                          "entropy": float(H0[:, -k:].mean()), "n_ep": n_ep}
    out["theory_soft"] = 1.0 / (1.0 + 2.0 ** (-gamma))
    out["gamma"] = gamma
    return out


# ----------------------------------------------------------------------------- figures
def _fig_psychometric(ps):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    grid = np.linspace(-6, 6, 121)
    for ax, lab in zip(axes[:2], ("dra", "soft_q")):
        r = ps[lab]
        for g, name in enumerate(CONDITIONS):
            ax.plot([-4, 4], [r["p_hi"][g], r["p_lo"][g]], "o", color=f"C{g}")
            bias = 0.5 * (logit(r["p_lo"][g]) + logit(r["p_hi"][g]))
            ax.plot(grid, expit(r["b_cond"][g] * grid + bias), color=f"C{g}", label=f"{name}: b = {r['b_cond'][g]:.2f}")
        ax.set_title(f"{lab}{' (tau = {:g})'.format(ps['tau']) if lab == 'soft_q' else ''}: probes", fontsize="medium")
        ax.set_xlabel("option mean - sure amount")
        ax.set_ylabel("P(choose the option)")
        ax.legend(frameon=False, fontsize="x-small", loc="upper left")
    dv = np.array([abs(OPTION_MEANS[a] - OPTION_MEANS[b]) for a, b in map(pair_options, range(N_OPTIONS))])
    for ax, lab in zip(axes[2:], ("dra", "soft_q")):
        reg = ps[lab]["reg"]
        p = reg[:, 1] / np.maximum(reg[:, 0], 1)
        for g, name in enumerate(CONDITIONS):
            s = slice(3 * g, 3 * g + 3)
            ax.plot(dv[s] + 0.12 * (g - 1.5), p[s], "o", color=f"C{g}", label=name)
        x = np.linspace(0, 8.5, 100)
        ax.plot(x, expit(x / ps["tau"]), "k--", lw=1, label=f"one temperature tau = {ps['tau']:g}")
        ax.set_ylim(0.45, 1.02)
        ax.set_xlabel("value difference of the pair")
        ax.set_ylabel("P(choose the better option)")
        ax.set_title(f"{lab}: regular trials (test phase)", fontsize="medium")
        ax.legend(frameon=False, fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig


def _fig_slopes(ps):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    ax = axes[0]
    s = np.linspace(1.5, 5.5, 100)
    ax.plot(s, logit(norm.cdf(4 / s)) / 4, "k-", lw=1, label="DRA theory logit(Phi(4/sigma))/4")
    for g, name in enumerate(CONDITIONS):
        o = slice(3 * g, 3 * g + 3)
        ax.plot(ps["sigma_opt"][o], ps["dra"]["b_opt"][o], "o", color=f"C{g}", label=name)
    ax.axhline(1 / ps["tau"], color="C7", ls="--", lw=1, label=f"soft_q 1/tau = {1 / ps['tau']:.2f}")
    ax.set_xlabel("DRA memory SD of the option (probe trials)")
    ax.set_ylabel("probe slope b (logit / reward unit)")
    ax.set_title("slope follows allocated precision (DRA)", fontsize="medium")
    ax.legend(frameon=False, fontsize="x-small")
    ax = axes[1]
    x = np.arange(4)
    for k, (lab, col) in enumerate((("dra", "C0"), ("soft_q", "C7"))):
        r = ps[lab]
        yerr = [r["b_cond"] - r["ci_cond"][0], r["ci_cond"][1] - r["b_cond"]]
        ax.errorbar(x + (k - 0.5) * 0.2, r["b_cond"], yerr=yerr,
                    fmt="o", color=col, capsize=3, label=lab)
    ax.axhline(1 / ps["tau"], color="C7", ls="--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([c.replace(" / ", "\n") for c in CONDITIONS], fontsize="small")
    ax.set_ylabel("probe slope b (logit / reward unit)")
    ax.set_title("slope per condition (95 % CI over subjects)", fontsize="medium")
    ax.legend(frameon=False, fontsize="small")
    fig.tight_layout()
    return fig


def _fig_branching(br, args):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
    labels = [k for k in br if isinstance(br[k], dict)]
    ax = axes[0]
    for i, lab in enumerate(labels):
        c = br[lab]["curve"]
        w = max(1, len(c) // 40)
        m = np.convolve(c, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, len(c)), m, color=f"C{i}", label=lab)
    ax.axhline(br["theory_soft"], color="k", ls="--", lw=1,
               label=f"soft theory 1/(1+2^-gamma) = {br['theory_soft']:.3f}")
    ax.axhline(0.5, color="k", ls=":", lw=1)
    ax.set_xlabel("episode")
    ax.set_ylabel("P(0 -> 2) (mean over subjects)")
    ax.set_title("root choice toward the branch with a further choice", fontsize="medium")
    ax.legend(frameon=False, fontsize="x-small", ncol=2)
    ax = axes[1]
    y = np.arange(len(labels))
    late = np.array([br[k]["late"] for k in labels])
    ci = np.array([br[k]["ci"] for k in labels])
    ax.errorbar(late, y, xerr=[late - ci[:, 0], ci[:, 1] - late], fmt="o", color="k", capsize=3)
    ax.axvline(br["theory_soft"], color="k", ls="--", lw=1)
    ax.axvline(0.5, color="k", ls=":", lw=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize="small")
    ax.set_xlabel(f"P(0 -> 2), last {args.late_frac:.0%} of episodes")
    ax.set_title("late choice probability (95 % CI)", fontsize="medium")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- main
def main(args: Args) -> dict:
    """Run both parts, write figures and the markdown result; return the headline numbers."""
    output = AnalysisOutput.start(NAME, args, quick=QUICK, repo=REPO)
    args = output.args
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    r1, r2 = rng.spawn(2)
    ps = psychometric_part(args, r1)
    t1 = time.perf_counter() - t0
    br = branching_part(args, r2)
    t2 = time.perf_counter() - t0 - t1
    output.save(_fig_psychometric(ps), "psychometric")
    output.save(_fig_slopes(ps), "slopes")
    output.save(_fig_branching(br, args), "branching")
    runtime = time.perf_counter() - t0
    d, s = ps["dra"], ps["soft_q"]
    blabels = [k for k in br if isinstance(br[k], dict)]
    res = {
        "tau": ps["tau"],
        "dra_slopes": [float(x) for x in d["b_cond"]], "soft_slopes": [float(x) for x in s["b_cond"]],
        "dra_freq_ratio": float(d["ratios"][0]), "dra_stakes_ratio": float(d["ratios"][1]),
        "soft_freq_ratio": float(s["ratios"][0]), "soft_stakes_ratio": float(s["ratios"][1]),
        "dra_slope_cv": float(np.nanstd(d["b_opt"]) / np.nanmean(d["b_opt"])),
        "soft_slope_cv": float(np.nanstd(s["b_opt"]) / np.nanmean(s["b_opt"])),
        "branching": {k: br[k]["late"] for k in blabels}, "branching_theory": br["theory_soft"],
        "runtime_s": runtime,
    }
    rows = ["| condition | DRA slope b [95 % CI] | soft_q slope b [95 % CI] |", "|---|---|---|"]
    for g, name in enumerate(CONDITIONS):
        rows.append(f"| {name} | {d['b_cond'][g]:.3f} [{d['ci_cond'][0, g]:.3f}, {d['ci_cond'][1, g]:.3f}] | "
                    f"{s['b_cond'][g]:.3f} [{s['ci_cond'][0, g]:.3f}, {s['ci_cond'][1, g]:.3f}] |")
    rrows = ["| ratio | DRA [95 % CI] | soft_q [95 % CI] |", "|---|---|---|"]
    for i, nm in enumerate(("frequent / rare", "high / low stakes")):
        rrows.append(f"| {nm} | {d['ratios'][i]:.2f} [{d['ratio_ci'][0, i]:.2f}, {d['ratio_ci'][1, i]:.2f}] | "
                     f"{s['ratios'][i]:.2f} [{s['ratio_ci'][0, i]:.2f}, {s['ratio_ci'][1, i]:.2f}] |")
    brows = ["| agent | P(0 -> 2), late [95 % CI] | SD over subjects | root entropy (nats) |", "|---|---|---|---|"]
    for k in blabels:
        b = br[k]
        brows.append(f"| {k} | {b['late']:.3f} [{b['ci'][0]:.3f}, {b['ci'][1]:.3f}] | {b['sd']:.3f} | "
                     f"{b['entropy']:.3f} |")
    headline = (
        f"**Probe psychometric slopes** (logit per reward unit; {args.n_subjects} subjects per agent, "
        f"{d['n_probes']} DRA and {s['n_probes']} soft_q probe trials; soft_q tau = {ps['tau']:g}, matched "
        f"to DRA's mean slope):\n\n" + "\n".join(rows) + "\n\n" + "\n".join(rrows) + "\n\n"
        f"Coefficient of variation of the 12 per-option slopes: DRA {res['dra_slope_cv']:.2f}, soft_q "
        f"{res['soft_slope_cv']:.2f} (one temperature predicts 0 up to sampling noise).\n\n"
        f"**Equal-value branching** ({args.branch_subjects} subjects x {args.branch_trials} moves, gamma = "
        f"{br['gamma']}; theory for soft Q-learning at any tau: {br['theory_soft']:.3f}; true-value agents: "
        f"0.5):\n\n" + "\n".join(brows) + "\n"
    )
    dv = np.array([abs(OPTION_MEANS[i] - OPTION_MEANS[j]) for i, j in map(pair_options, range(N_OPTIONS))])
    p4 = {}
    for lab in ("dra", "soft_q"):
        reg = ps[lab]["reg"]
        sets = [[s_ for s_ in range(3 * g, 3 * g + 3) if dv[s_] == 4] for g in (0, 2)]
        p4[lab] = [reg[idx, 1].sum() / max(reg[idx, 0].sum(), 1) for idx in sets]
    soft_keys = [k for k in blabels if k.startswith("soft_q")]
    soft_ok = all(abs(br[k]["late"] - br["theory_soft"]) < 0.03 for k in soft_keys)
    interp = (
        f"A one-temperature softmax gives every option the same psychometric slope; soft Q-learning's probe "
        f"slopes are {', '.join(f'{x:.2f}' for x in s['b_cond'])} across the four conditions (frequent/rare "
        f"ratio {s['ratios'][0]:.2f}, high/low stakes ratio {s['ratios'][1]:.2f}), as the model says (1/tau = "
        f"{1 / ps['tau']:.2f}; learnt means that lag the true means shift the curve but the two-offset slope "
        f"cancels that bias; the small remaining spread is sampling noise plus learning during the probe phase, "
        f"since pooled proportions average over values that keep moving and the two-point estimate is exact "
        f"only for fixed values). DRA's slopes at the same average are "
        f"{', '.join(f'{x:.2f}' for x in d['b_cond'])}: steeper for frequent and for high-stakes options "
        f"(ratios {d['ratios'][0]:.2f} and {d['ratios'][1]:.2f}), and each option's slope follows the "
        f"precision the agent allocated to it (left of Figure 2), so the effective temperature differs by "
        f"state. On regular trials the same holds at a fixed value difference: at spacing 4 (pairs 14/10 and "
        f"10/6) P(choose the better option) is {p4['dra'][0]:.2f} in the frequent and {p4['dra'][1]:.2f} in the "
        f"rare high-stakes set for DRA, {p4['soft_q'][0]:.2f} and {p4['soft_q'][1]:.2f} for soft_q. In the "
        f"branching task, "
        f"where all paths pay the same, soft Q-learning prefers the branch that leads to a further choice "
        f"with the probability predicted by soft value iteration at every temperature tested "
        f"({'all within 0.03 of' if soft_ok else 'not all within 0.03 of'} {br['theory_soft']:.3f}), while "
        f"DRA and Q-learning are indifferent (about 0.5): the entropy bonus, not the values, drives the "
        f"preference. Limits: slopes are estimated from only two probe offsets, rare-set probes are fewer "
        f"(wider CIs), and these are simulated agents with one parameter setting each; with real data the "
        f"slope differences must be tested against a model that allows per-condition temperatures, and a "
        f"small temperature can lock soft Q-learning into one branch before it has learnt (not shown)."
    )
    what = (
        f"`{output.command()}` (seed {args.seed}; runtime {runtime:.0f} s: psychometric part {t1:.0f} s, "
        f"branching {t2:.0f} s).\n\n"
        f"Part 1: `memory_2afc` with probes from trial {args.n_train}, {args.n_train + args.n_test} trials per "
        f"subject; `dra` (alpha_q = {args.alpha_q}, alpha_sigma = {args.alpha_sigma}, lam = {args.lam}, "
        f"sigma_base = {args.sigma_base}) and `soft_q` (tau = {ps['tau']:g}, eta = eta_true = {args.alpha_q}). "
        f"Part 2: `branching` with `soft_q` at tau = {args.taus} (eta = 0.1), `dra` (sigma_base = 1, "
        f"sigma0 = 0.5) and `q_learning` (alpha = 0.1, beta = 2), gamma = {br['gamma']} for all."
    )
    figures = [
        ("psychometric", "Left pair: probe psychometric functions per condition, pooled over subjects "
                         "(points: choice proportions at the two offsets; lines: the logistic through both "
                         "points, slope b). Right pair: regular trials of the test phase, P(choose the better "
                         "option) against the value difference of the pair; dashed: soft_q's one-temperature "
                         "curve."),
        ("slopes", "Left: per-option probe slope of DRA against the memory SD it allocated to the option, "
                   "with the theoretical curve; dashed: soft_q's 1/tau. Right: slope per condition with 95 % "
                   "bootstrap CIs for both agents."),
        ("branching", "Equal-value branching task: P(0 -> 2) over episodes (running mean) and over the last "
                      f"{args.late_frac:.0%} of episodes (95 % CI over subjects); dashed: soft value-iteration "
                      "prediction, dotted: 0.5."),
    ]
    output.write("DRA vs maximum-entropy RL: psychometric slopes and equal-value branching",
                 {"What was run": what, "Headline numbers": headline, "Figures": "", "Interpretation": interp}, figures)
    return res


if __name__ == "__main__":
    res = main(parse_args(Args))
    print(f"probe slopes (logit/unit) DRA {np.round(res['dra_slopes'], 3).tolist()} vs soft_q (tau {res['tau']}) "
          f"{np.round(res['soft_slopes'], 3).tolist()}; frequent/rare ratio DRA {res['dra_freq_ratio']:.2f} vs "
          f"soft {res['soft_freq_ratio']:.2f}; high/low ratio DRA {res['dra_stakes_ratio']:.2f} vs soft "
          f"{res['soft_stakes_ratio']:.2f}")
    print("branching P(0->2): " + ", ".join(f"{k} {v:.3f}" for k, v in res["branching"].items())
          + f" (theory {res['branching_theory']:.3f}); runtime {res['runtime_s']:.0f} s")
