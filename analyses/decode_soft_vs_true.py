"""Decoding soft vs true values from synthetic populations with known ground truth.

Reference: ``reference/decoding.md`` §4 (pseudosession nulls for slowly varying latents), §6 (soft vs
true values as competing latents: identical folds and identical pseudosession draws for both
candidates; report their correlation; near-collinear candidates need a different task), §7 (synthetic
populations with ground truth; calibrate the false-positive rate on null populations).
``reference/agents.md`` §2 (soft Q-learning: ``v_soft = v + tau H(pi)`` on one-step tasks).

What is run
-----------
A soft Q-learning agent plays the mouse bandit (one session of ``n_trials`` trials per repetition).
From its latents :func:`neurorl.decoding.synthetic_population` builds a population whose tuned units
encode either ``v_soft`` (the soft state value), or ``v`` (the true value of the acting policy), or
nothing (all weights 0: drift-only units). Half of the units are tuned, half are drift-only; every
unit has a slow AR(1) drift, half of its variance shared by all units. Two population codes are run:
Poisson spike counts with a log link (realistic, but the comparison's linear model is then
misspecified) and Gaussian rates with a linear code (the comparison's model is right).
:func:`neurorl.decoding.compare_latents` scores both candidates (``v`` and ``v_soft``) by
cross-validated R^2 on the same blocked folds and calibrates them with the same ``n_null``
pseudosessions (:func:`neurorl.decoding.pseudosession_latents`: new sessions from the task
generator, choices re-simulated by the agent at its parameters).

Decision rule per repetition ([A]): the population statistic is the mean over units of the paired
difference ``R^2(v) - R^2(v_soft)``; if its pseudosession p-value (two-sided, centred on the null mean)
is below ``alpha`` the comparison *identifies* ``v`` (positive) or ``v_soft`` (negative), otherwise it
is *undecided*. A candidate is *detected* when its population score beats its pseudosession null
(one-sided p < ``alpha``). On populations that encode neither, every detection is a false positive;
the same populations are also tested against i.i.d. trial shuffles of the candidates (shared shuffles)
to compare with a null that ignores autocorrelation.

Assumptions and choices ([A])
-----------------------------
* [A] Agent parameters: tau = 0.5, eta = eta_true = 0.2 (choices depend on values, entropy varies);
  the pseudosessions use the same parameters (in a real analysis: the subject's fitted ones).
* [A] Populations: 100 units (50 tuned, 50 drift-only), 8 bins of 50 ms, drift AR(1) coefficient 0.99
  over trials, ``shared_drift = 0.5`` (recording drift and arousal move many units together); tuned
  weights +-effect (random sign) at the peak of the within-trial kernel. Poisson: 10 Hz baseline,
  effect 1.0 (log-rate change per SD of the latent), drift SD 0.3 (log-rate). Gaussian: offset 10,
  noise SD 10, effect 3 (rate change per SD), drift SD 1. Effects were chosen so that both latents are
  detected in every encoding population; they are not calibrated to any recording.
* [A] compare_latents defaults: activity summed over the bins, OLS ``y ~ 1 + candidate``, 5 blocked
  folds; 100 pseudosessions (smallest attainable p = 1/101).
* [A] ``v`` and ``v_soft`` are nearly collinear on this task (correlation about 0.98: on one-step tasks
  they differ only by ``tau H``), so the comparison rests on the few percent of variance they do not
  share; this is the hard, realistic case, not a best case.

Usage::

    python analyses/decode_soft_vs_true.py --seed 0
    python analyses/decode_soft_vs_true.py --quick

Outputs: ``results/decode_soft_vs_true_seed<seed>/`` (``result.md``, ``time_course.png``,
``population_difference.png``, ``repetitions.csv``) and, unless ``--quick`` or ``--no-docs``,
``docs/analyses/decode_soft_vs_true.md`` with ``docs/analyses/img/decode_soft_vs_true_*.png``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binom

import neurorl as nr
from neurorl.analysis import AnalysisOutput, parse_args
from neurorl.decoding import compare_latents, permutation_null, pseudosession_latents, synthetic_population
from neurorl.plotting.decoding import plot_time_course

NAME = "decode_soft_vs_true"
REPO = Path(__file__).resolve().parents[1]
CANDIDATES = ("v", "v_soft")


@dataclass
class Args:
    """Decoding soft vs true values from synthetic populations (pseudosession nulls)."""

    seed: int = 0
    quick: bool = False
    n_trials: int = 1000
    n_units: int = 100
    n_time: int = 8
    codes: str = "poisson,gaussian"
    poisson_effect: float = 1.0
    poisson_drift: float = 0.3
    gaussian_effect: float = 3.0
    gaussian_drift: float = 1.0
    noise_sd: float = 10.0
    n_reps: int = 10
    n_null_reps: int = 20
    n_null: int = 100
    tau: float = 0.5
    eta: float = 0.2
    drift_rho: float = 0.99
    shared_drift: float = 0.5
    alpha: float = 0.05
    out_root: str = ""
    docs_dir: str = ""
    docs: bool = True


QUICK = {"n_trials": 300, "n_units": 20, "n_time": 4, "codes": "poisson", "n_reps": 2, "n_null_reps": 2, "n_null": 20}


# ----------------------------------------------------------------------------- one repetition
def one_rep(encoded, code, args, rng, *, time_resolved=False, shuffle=False):
    """Simulate a session and a population, compare the candidates; return a row of results."""
    task = nr.make_task("mouse_bandit")
    params = {"tau": args.tau, "eta": args.eta, "eta_true": args.eta}
    r_sim, r_pop, r_null, r_perm = rng.spawn(4)
    sim = nr.simulate("soft_q", task, n_trials=args.n_trials, params=params, rng=r_sim)
    effect = args.poisson_effect if code == "poisson" else args.gaussian_effect
    enc = {encoded: effect} if encoded != "none" else {"v": 0.0}
    kw = ({"drift": args.poisson_drift} if code == "poisson"
          else {"drift": args.gaussian_drift, "noise_sd": args.noise_sd})
    neural, truth = synthetic_population(sim.latents, encode=enc, n_units=args.n_units, n_time=args.n_time,
                                         kind=code, baseline=10.0, drift_rho=args.drift_rho,
                                         shared_drift=args.shared_drift, rng=r_pop, **kw)
    null = pseudosession_latents("soft_q", task, params, n=args.n_null, n_trials=args.n_trials, rng=r_null)
    ds = compare_latents(neural, sim.latents, CANDIDATES, null_latents=null,
                         time="resolved" if time_resolved else "pooled")
    row = {"code": code, "encoded": encoded, "effect": effect if encoded != "none" else 0.0}
    if time_resolved:
        return row, ds
    diff = float(ds["population_diff"].values[0])
    p = float(ds["p_population"].values[0])
    nd = ds["null_population_diff"].values[:, 0]
    row.update(diff=diff, p_diff=p, z_diff=(diff - nd.mean()) / nd.std(),
               p_v=float(ds["p_population_score"].sel(candidate="v")),
               p_v_soft=float(ds["p_population_score"].sel(candidate="v_soft")),
               corr=float(ds["correlation"].values[0, 1]),
               decision=("v" if diff > 0 else "v_soft") if p < args.alpha else "undecided")
    tuned = ~np.isin(truth["group"].values, ["untuned", "null"])
    if encoded != "none":
        row["unit_accuracy"] = float(np.mean(ds["best"].values[tuned] == encoded))
    if shuffle:
        z = {c: sim.latents[c].values[0] for c in CANDIDATES}
        seed = int(r_perm.integers(2**31))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # AnticonservativeNullWarning: the point of this comparison
            perm = {c: permutation_null(z[c], args.n_null, rng=seed) for c in CANDIDATES}
        dsp = compare_latents(neural, sim.latents, CANDIDATES, null_latents=perm)
        row.update(p_v_shuffle=float(dsp["p_population_score"].sel(candidate="v")),
                   p_v_soft_shuffle=float(dsp["p_population_score"].sel(candidate="v_soft")),
                   p_diff_shuffle=float(dsp["p_population"].values[0]))
    return row, ds


# ----------------------------------------------------------------------------- figures
def _fig_time(examples):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(examples), figsize=(4.3 * len(examples), 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, ds) in zip(axes, examples):
        score = ds["score"].sel(candidate="v") - ds["score"].sel(candidate="v_soft")
        null = ds["null_score"].sel(candidate="v") - ds["null_score"].sel(candidate="v_soft")
        plot_time_course(score.mean("unit"), null.mean("unit"), ax=ax, label="R2(v) - R2(v_soft)", color="k",
                         chance=0.0, ylabel="population mean difference of CV R2")
        ax.set_title(title, fontsize="medium")
        ax.legend(frameon=False, fontsize="x-small")
    fig.tight_layout()
    return fig


def _fig_diff(df, codes, args):
    import matplotlib.pyplot as plt

    groups = [(c, e) for c in codes for e in ("none", "v", "v_soft")]
    fig, ax = plt.subplots(figsize=(2.6 * len(groups) / 3 + 4, 3.6))
    rng = np.random.default_rng(0)
    for i, (code, enc) in enumerate(groups):
        sub = df[(df["encoded"] == enc) & (df["code"] == code)]
        col = {"none": "0.4", "v": "C0", "v_soft": "C3"}[enc]
        x = i + 0.12 * rng.standard_normal(len(sub))
        sig = (sub["p_diff"] < args.alpha).values
        ax.plot(x[sig], sub["z_diff"].values[sig], "o", color=col)
        ax.plot(x[~sig], sub["z_diff"].values[~sig], "o", mfc="none", color=col)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{c}\n{'neither' if e == 'none' else e}" for c, e in groups])
    ax.set_xlabel("population code / encoded latent")
    ax.set_ylabel("R2(v) - R2(v_soft), z vs null")
    ax.set_title("population comparison per repetition (filled: p < alpha)", fontsize="medium")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- main
def main(args: Args) -> dict:
    """Run all repetitions, write figures and the markdown result; return the headline numbers."""
    output = AnalysisOutput.start(NAME, args, quick=QUICK, repo=REPO)
    args = output.args
    t0 = time.perf_counter()
    out, _ = output.dirs()
    codes = [c.strip() for c in args.codes.split(",") if c.strip()]
    bad = [c for c in codes if c not in ("poisson", "gaussian")]
    if bad:
        raise ValueError(f"{NAME}: codes must be 'poisson' and/or 'gaussian', got {bad}")
    conds = [(c, e) for c in codes for e in ("none", "v_soft", "v")]
    rng = np.random.default_rng(args.seed)
    r_reps, r_ex = rng.spawn(2)
    rows = []
    for (code, enc), rc in zip(conds, r_reps.spawn(len(conds))):
        for rr in rc.spawn(args.n_null_reps if enc == "none" else args.n_reps):
            row, _ = one_rep(enc, code, args, rr, shuffle=(enc == "none"))
            rows.append(row)
    df = pd.DataFrame(rows)
    df.to_csv(out / "repetitions.csv", index=False)
    examples = []
    for enc, rr in zip(("v_soft", "v", "none"), r_ex.spawn(3)):
        _, ds = one_rep(enc, codes[0], args, rr, time_resolved=True)
        examples.append((f"{codes[0]}: encodes {enc if enc != 'none' else 'neither'}", ds))
    output.save(_fig_time(examples), "time_course")
    output.save(_fig_diff(df, codes, args), "population_difference")
    runtime = time.perf_counter() - t0

    a = args.alpha
    table = ["| code | encoded | reps | identified v_soft | identified v | undecided | detected (either "
             "candidate) | tuned units assigned correctly |", "|---|---|---|---|---|---|---|---|"]
    ftable = ["| code | null | P(detect v) | P(detect v_soft) | P(detect either) | P(prefer one candidate) |",
              "|---|---|---|---|---|---|"]
    ident, fpr = {}, {}
    for code in codes:
        for enc in ("v_soft", "v", "none"):
            sub = df[(df["encoded"] == enc) & (df["code"] == code)]
            dec = sub["decision"].value_counts(normalize=True)
            det = float(np.mean((sub["p_v"] < a) | (sub["p_v_soft"] < a)))
            ua = f"{sub['unit_accuracy'].mean():.2f}" if enc != "none" else "–"
            table.append(f"| {code} | {enc if enc != 'none' else 'neither'} | {len(sub)} | "
                         f"{dec.get('v_soft', 0):.2f} | {dec.get('v', 0):.2f} | {dec.get('undecided', 0):.2f} | "
                         f"{det:.2f} | {ua} |")
            if enc != "none":
                ident[f"{code}:{enc}"] = {"correct": float(dec.get(enc, 0)),
                                          "wrong": float(dec.get("v" if enc == "v_soft" else "v_soft", 0))}
        none = df[(df["encoded"] == "none") & (df["code"] == code)]
        f = {"v": float(np.mean(none["p_v"] < a)), "v_soft": float(np.mean(none["p_v_soft"] < a)),
             "any": float(np.mean((none["p_v"] < a) | (none["p_v_soft"] < a))),
             "difference": float(np.mean(none["p_diff"] < a)),
             "v_shuffle": float(np.mean(none["p_v_shuffle"] < a)),
             "v_soft_shuffle": float(np.mean(none["p_v_soft_shuffle"] < a)),
             "any_shuffle": float(np.mean((none["p_v_shuffle"] < a) | (none["p_v_soft_shuffle"] < a))),
             "difference_shuffle": float(np.mean(none["p_diff_shuffle"] < a)), "n": len(none)}
        fpr[code] = f
        ftable.append(f"| {code} | pseudosessions | {f['v']:.2f} | {f['v_soft']:.2f} | {f['any']:.2f} | "
                      f"{f['difference']:.2f} |")
        ftable.append(f"| {code} | i.i.d. trial shuffles | {f['v_shuffle']:.2f} | {f['v_soft_shuffle']:.2f} | "
                      f"{f['any_shuffle']:.2f} | {f['difference_shuffle']:.2f} |")
    corr = float(df["corr"].mean())
    n_none = args.n_null_reps
    headline = (
        f"Correlation of `v` and `v_soft` over trials: **{corr:.3f}** (mean over sessions). Decisions at "
        f"alpha = {a} with {args.n_null} pseudosessions ({args.n_reps} repetitions per encoding row, "
        f"{n_none} for 'neither'):\n\n" + "\n".join(table) + "\n\n"
        "False positives on populations that encode neither:\n\n" + "\n".join(ftable) + "\n\n"
        f"With {n_none} null repetitions per code a rate of 0 has a 95 % upper bound of "
        f"{1 - 0.05 ** (1 / max(n_none, 1)):.2f} (one-sided binomial), so these rates show whether a null is "
        f"grossly miscalibrated, not whether it sits exactly at alpha.\n"
    )
    w_all = max(v["wrong"] for v in ident.values())
    parts = [f"{code} code: {ident[code + ':v_soft']['correct']:.0%} of v_soft and {ident[code + ':v']['correct']:.0%} "
             f"of v populations" for code in codes]
    asym = ""
    if {"poisson", "gaussian"} <= set(codes):
        dp = abs(ident["poisson:v_soft"]["correct"] - ident["poisson:v"]["correct"])
        dg = abs(ident["gaussian:v_soft"]["correct"] - ident["gaussian:v"]["correct"])
        if dp > dg + 0.2:
            asym = ("The asymmetry of the Poisson rows comes from the code, not from the candidates: the units "
                    "fire with a log link while the comparison fits linear models, and with the linear-Gaussian "
                    "code, where the model is right, the two candidates are recovered about equally often. ")
    fp_pseudo = max(fpr[c]["any"] for c in codes)
    fp_rates = ", ".join(f"{fpr[c]['any']:.2f} ({c})" for c in codes)
    fp_shuffle = max(fpr[c]["any_shuffle"] for c in codes)
    pref_pseudo = max(fpr[c]["difference"] for c in codes)
    pref_pseudo_txt = ", ".join(f"{fpr[c]['difference']:.2f}" for c in codes)
    k = round(pref_pseudo * n_none)
    p_binom = float(binom.sf(k - 1, n_none, a)) if k > 0 else 1.0
    binom_txt = (f"is compatible with alpha = {a} (binomial P(>= {k} of {n_none}) = {p_binom:.2f})" if p_binom >= 0.05
                 else f"is above alpha = {a} (binomial P(>= {k} of {n_none}) = {p_binom:.3f})")
    pref_shuffle = ", ".join(f"{fpr[c]['difference_shuffle']:.2f} ({c})" for c in codes)
    det_shuffle = ", ".join(f"{fpr[c]['any_shuffle']:.2f} ({c})" for c in codes)
    if max(fpr[c]["difference_shuffle"] for c in codes) > pref_pseudo + 0.1:
        shuffle_word = (
            f"with i.i.d. trial shuffles as the null, detection rates are {det_shuffle}, but the paired comparison "
            f"prefers one candidate in {pref_shuffle} of the populations that encode neither (pseudosessions: "
            f"{pref_pseudo_txt}): shuffled latents lose the "
            f"slow structure through which a real latent correlates with drifting activity by chance, so the null "
            f"of the difference is far too narrow (decoding.md §4)")
    elif fp_shuffle > fp_pseudo + 0.05:
        shuffle_word = (f"i.i.d. shuffles of the same latents reach detection rates of {det_shuffle} (decoding.md §4: "
                        "a null that destroys autocorrelation is too narrow)")
    else:
        shuffle_word = (f"in this run i.i.d. shuffles of the same latents did not do clearly worse (detection "
                        f"{det_shuffle}, preference {pref_shuffle})")
    interp = (
        f"When a population encodes one of the two values, the pseudosession-calibrated comparison identifies "
        f"the encoded one in {'; '.join(parts)}, and "
        f"{'never' if w_all == 0 else f'at most {w_all:.0%} of the time'} picks the wrong one; the rest are "
        f"undecided. {asym}Power is limited because the two candidates correlate at {corr:.2f}: on a one-step "
        f"task `v_soft` differs from `v` only by tau H(pi), so only a few percent of the variance can separate "
        f"them. Both candidates are detected in nearly every encoding population (each explains the shared "
        f"part), so detection alone says nothing about which value is encoded. On populations that encode "
        f"neither, the pseudosession null gives detection rates of "
        f"{fp_rates} at alpha = {a}, while "
        f"{shuffle_word}. Limits: synthetic units with a known code and a known agent at its true parameters; "
        f"real data add parameter uncertainty (latents at fitted, not true, parameters), other tuned "
        f"variables and mixed selectivity; the false-positive rates rest on {n_none} null populations per code "
        f"(the largest pseudosession preference rate, {pref_pseudo:.2f}, {binom_txt}). "
        f"A task where soft and true values decorrelate (downstream choices of unequal entropy) would give "
        f"more power than any statistic."
    )
    what = (
        f"`{output.command()}` (seed {args.seed}; runtime {runtime:.0f} s).\n\n"
        f"Per repetition: `soft_q` (tau = {args.tau}, eta = eta_true = {args.eta}) plays `mouse_bandit` for "
        f"{args.n_trials} trials; `synthetic_population` with {args.n_units} units ({args.n_units // 2} tuned), "
        f"{args.n_time} time bins, drift AR(1) {args.drift_rho} with shared fraction {args.shared_drift}; "
        f"Poisson code: effect {args.poisson_effect}, drift SD {args.poisson_drift}; Gaussian code: effect "
        f"{args.gaussian_effect}, noise SD {args.noise_sd}, drift SD {args.gaussian_drift}. `compare_latents` "
        f"with candidates v and v_soft, {args.n_null} pseudosessions from `pseudosession_latents`, activity "
        f"pooled over bins, 5 blocked folds."
    )
    figures = [
        ("time_course", f"Example repetitions ({codes[0]} code), time-resolved: population mean of the paired "
                        "difference R^2(v) - R^2(v_soft) per time bin, with its pseudosession band (the same "
                        "draws for both candidates). Above the band favours v, below favours v_soft."),
        ("population_difference", "Every repetition: the population difference R^2(v) - R^2(v_soft) as a "
                                  "z-score against its pseudosession null (filled: p < alpha). Positive favours "
                                  "v, negative v_soft."),
    ]
    output.write("Decoding soft vs true values from synthetic populations",
                 {"What was run": what, "Headline numbers": headline, "Figures": "", "Interpretation": interp}, figures)
    return {"runtime_s": runtime, "correlation": corr, "identification": ident, "fpr": fpr}


if __name__ == "__main__":
    res = main(parse_args(Args))
    print(f"corr(v, v_soft) {res['correlation']:.3f}; identification "
          + ", ".join(f"{k}: correct {v['correct']:.2f} wrong {v['wrong']:.2f}"
                      for k, v in res["identification"].items()))
    for code, f in res["fpr"].items():
        print(f"FPR {code} (neither encoded, {f['n']} populations): pseudosession detect-either {f['any']:.2f}, "
              f"prefer {f['difference']:.2f}; shuffle detect-either {f['any_shuffle']:.2f}")
    print(f"runtime {res['runtime_s']:.0f} s")
