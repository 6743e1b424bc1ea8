"""neurorl.ssm vs HSSM on the same simulated hierarchical DDM regression, in one run.

The data (seeded): ``S`` subjects x ``T`` trials, ``v = 1 + b_v[s] + 0.5 x``, ``log a = log 1.5 + b_a[s]``,
``t0 = 0.3``, ``z = 0.5``, with ``b_v ~ N(0, 0.3^2)`` and ``b_a ~ N(0, 0.1^2)``. Both sides fit

    v ~ 1 + x + (1|subject),   a ~ 1 + (1|subject) (log link),   t0 (one value; neurorl: log link),   z = 0.5

by NUTS: neurorl with ``DDM(..., method="nuts", nuts_sampler=...)`` (default numpyro on the model transpiled to
JAX; ``--nuts-sampler pymc`` for PyMC's NUTS calling the compiled kernel), HSSM 0.3.x with its
*analytical* Navarro--Fuss likelihood (``loglik_kind="analytical"``, ``link_settings="log_logit"``,
``p_outlier=0``; its approximate likelihoods download networks at run time), default sampler. HSSM is a
benchmark-only dependency: it pins its own pymc/jax, so install it in a separate environment and pass that
interpreter::

    python -m venv /work/venv-hssm && /work/venv-hssm/bin/pip install "hssm>=0.3,<0.4"
    python benchmarks/ssm_vs_hssm.py --hssm-python /work/venv-hssm/bin/python

The HSSM side runs in a subprocess (this file, ``--hssm-worker``, imports only numpy, pandas and hssm there).
HSSM's analytical DDM uses half the boundary separation as its ``a`` (it doubles ``a`` inside ``logp_ddm``); its
``a`` intercept is shifted by ``log 2`` to the separation scale used here (and by HDDM). Printed: each group
estimate of both (posterior mean and sd, on the same scale), their standardised difference
``|m1 - m2| / sqrt(sd1^2 + sd2^2)`` (agreement within posterior uncertainty: below 2), the wall time (total,
including model building and compilation, and sampling alone) and the ESS per second of sampling (minimum bulk ESS
over the group parameters; also per total time). Priors differ between the two packages (each uses its defaults),
which matters little with these data sizes.

RL-DDM: the issue asks for the RL-DDM side by side "where HSSM supports it". The run asks the HSSM interpreter
(``--hssm-rl-worker``: the models ``hssm.HSSM`` accepts, the RL classes it exports, and the decision likelihood of
the RL-SSM configurations it ships, read from ``hssm/likelihoods/rldm.py`` without importing it, since that import
downloads networks) and prints the answer. HSSM 0.3.0 has no RL-DDM with an analytical likelihood -- its RL-SSM
models (``rlssm1``, ``rlssm2``, ``rlwmssm_v2``) use LAN networks (angle, LBA) and are not reachable from
``hssm.HSSM`` -- so the RL-DDM comparison prints that it was not run, and why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

GROUP = ("v:Intercept", "v:x", "a:Intercept", "t0", "v_sd", "a_sd")


def simulate(n_subjects: int, n_trials: int, seed: int) -> pd.DataFrame:
    from neurorl.ssm import simulate_ddm

    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        x = rng.normal(size=n_trials)
        rows.append(pd.DataFrame({"subject": s, "x": x, "v": 1.0 + 0.3 * rng.normal() + 0.5 * x,
                                  "a": np.exp(np.log(1.5) + 0.1 * rng.normal()), "z": 0.5, "t0": 0.3}))
    df = simulate_ddm(pd.concat(rows, ignore_index=True), rng=seed + 1)
    return df[["subject", "x", "rt", "response"]]


# ----------------------------------------------------------------------------------------------------- neurorl
def run_neurorl(df, args) -> dict:
    import arviz as az

    from neurorl.ssm import DDM

    t = time.perf_counter()
    fit = DDM("v ~ 1 + x + (1|subject)", "a ~ 1 + (1|subject)", t0="1", hierarchical=False, method="nuts",
              draws=args.draws, tune=args.tune, chains=args.chains, rng=args.seed, progress=False,
              nuts_sampler=args.nuts_sampler).fit(df)
    total = time.perf_counter() - t
    post = fit.idata_.posterior
    draws = {"v:Intercept": post["v"].sel(v_coef="Intercept"), "v:x": post["v"].sel(v_coef="x"),
             "a:Intercept": post["a"].sel(a_coef="Intercept"), "t0": np.exp(post["t0"].sel(t0_coef="Intercept")),
             "v_sd": post["v_sd"].sel(v_rcoef="Intercept"), "a_sd": post["a_sd"].sel(a_rcoef="Intercept")}
    out = {}
    for k, d in draws.items():
        out[k] = {"mean": float(d.mean()), "sd": float(d.std()),
                  "ess": float(az.ess(d.drop_vars([c for c in d.coords if c not in ("chain", "draw")])
                                       .to_dataset(name="x"))["x"])}
    return {"params": out, "total_s": total, "sample_s": fit.sample_seconds_, "divergent": fit.n_divergent_}


# ----------------------------------------------------------------------------------------------------- HSSM
def hssm_worker(data_path: str, out_path: str, draws: int, tune: int, chains: int, seed: int) -> None:
    """Runs under the HSSM interpreter: fit, then write the summary as JSON."""
    import arviz as az
    import hssm

    df = pd.read_csv(data_path)
    df["participant_id"] = df["subject"].astype(str)
    df["response"] = np.where(df["response"] == 1, 1, -1)
    t = time.perf_counter()
    model = hssm.HSSM(
        data=df[["participant_id", "x", "rt", "response"]], model="ddm", loglik_kind="analytical",
        include=[{"name": "v", "formula": "v ~ 1 + x + (1|participant_id)"},
                 {"name": "a", "formula": "a ~ 1 + (1|participant_id)"}],
        z=0.5, p_outlier=0.0, link_settings="log_logit")
    t_build = time.perf_counter()
    idata = model.sample(draws=draws, tune=tune, chains=chains, cores=1, random_seed=seed, progressbar=False)
    t_end = time.perf_counter()
    post = idata.posterior
    names = list(post.data_vars)

    def pick(pred):
        hits = [n for n in names if pred(n)]
        return hits[0] if hits else None

    mapping = {"v:Intercept": pick(lambda n: n == "v_Intercept"), "v:x": pick(lambda n: n == "v_x"),
               "a:Intercept": pick(lambda n: n == "a_Intercept"), "t0": pick(lambda n: n == "t"),
               "v_sd": pick(lambda n: n.startswith("v_1|") and n.endswith("sigma")),
               "a_sd": pick(lambda n: n.startswith("a_1|") and n.endswith("sigma"))}
    out = {}
    for k, n in mapping.items():
        if n is None:
            continue
        d = post[n]
        # HSSM's analytical DDM doubles its `a` (hssm/likelihoods/analytical.py: ``a = a * 2.0``): its `a` is half
        # the boundary separation, so its log-link intercept is log(separation) - log 2
        shift = float(np.log(2.0)) if k == "a:Intercept" else 0.0
        out[k] = {"mean": float(d.mean()) + shift, "sd": float(d.std()),
                  "ess": float(az.ess(d.to_dataset(name="x"))["x"]), "name": n}
    div = int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else -1
    with open(out_path, "w") as fh:
        json.dump({"params": out, "total_s": t_end - t, "sample_s": t_end - t_build, "divergent": div,
                   "version": hssm.__version__, "variables": names}, fh)


def hssm_rl_worker(out_path: str) -> None:
    """Runs under the HSSM interpreter: does this HSSM offer an RL-DDM with an analytical likelihood?

    Looked up, not assumed: the models ``hssm.HSSM(model=...)`` accepts (``hssm._types.SupportedModels``), whether
    the package exports an RL model class, and which decision model its shipped RL-SSM configurations use
    (``hssm.likelihoods.rldm``)."""
    import typing

    import hssm

    supported = list(typing.get_args(getattr(hssm._types, "SupportedModels", typing.Literal[()])))
    rl_models = [m for m in supported if m.lower().startswith(("rl", "rlssm", "rldm"))]
    rl_class = [n for n in dir(hssm) if n.upper().startswith("RL")]
    shipped = {}
    # read, not imported: importing hssm.likelihoods.rldm downloads its networks at import time
    src = os.path.join(os.path.dirname(hssm.__file__), "likelihoods", "rldm.py")
    if os.path.exists(src):
        import ast

        with open(src) as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "rlssm_model_config_list"
                                                    for t in node.targets):
                configs = ast.literal_eval(node.value)
                shipped = {k: {"decision_model": v.get("decision_model"),
                               "network": v.get(v.get("decision_model", ""), "")} for k, v in configs.items()}
    analytical = [k for k, v in shipped.items() if isinstance(v, dict) and v.get("decision_model") == "analytical"]
    with open(out_path, "w") as fh:
        json.dump({"version": hssm.__version__, "rl_models": rl_models, "rl_classes": rl_class, "shipped": shipped,
                   "supported": bool(rl_models or rl_class) and bool(analytical)}, fh)


def hssm_rl_support(args) -> dict | None:
    """Ask the HSSM interpreter whether it has an RL-DDM with an analytical likelihood (:func:`hssm_rl_worker`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, "rl.json")
        proc = subprocess.run([args.hssm_python, os.path.abspath(__file__), "--hssm-rl-worker", out_path],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out_path):
            print(f"HSSM RL check failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        with open(out_path) as fh:
            return json.load(fh)


def print_rl_support(info: dict) -> None:
    """Say plainly whether the RL-DDM side-by-side can run."""
    if info["supported"]:
        print(f"HSSM {info['version']} lists an RL-DDM with an analytical likelihood: {info}")
        return
    shipped = ", ".join(f"{k} ({v.get('decision_model')}: {v.get('network')})" for k, v in info["shipped"].items()
                        if isinstance(v, dict)) or "none"
    print(f"RL-DDM side by side: NOT RUN. HSSM {info['version']} has no RL-DDM with an analytical likelihood: "
          f"hssm.HSSM(model=...) accepts no RL model ({len(info['rl_models'])} RL names among its supported "
          f"models; RL classes exported: {info['rl_classes'] or 'none'}), and the RL-SSM configurations it ships "
          f"use approximate (network) decision likelihoods only: {shipped}. (Its low-level builder "
          "hssm.rl.likelihoods.builder could wrap a user-written JAX density, which is not HSSM's analytical "
          "likelihood.) neurorl's RL-DDM: MAP/EMMAP/fit_bayes(agent, rt=WienerRT()), or neurorl.ssm.RLDDM with "
          "formulas.")


def run_hssm(df, args) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        data_path, out_path = os.path.join(tmp, "data.csv"), os.path.join(tmp, "hssm.json")
        df.to_csv(data_path, index=False)
        cmd = [args.hssm_python, os.path.abspath(__file__), "--hssm-worker", data_path, out_path,
               "--draws", str(args.draws), "--tune", str(args.tune), "--chains", str(args.chains),
               "--seed", str(args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out_path):
            print(f"HSSM run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
            return None
        with open(out_path) as fh:
            return json.load(fh)


def _default_hssm_python() -> str:
    try:
        import hssm  # noqa: F401
        return sys.executable
    except ImportError:
        return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=10)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--tune", type=int, default=500)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nuts-sampler", default="numpyro", choices=("pymc", "numpyro"), help="neurorl's sampler")
    p.add_argument("--hssm-python", default=None, help="interpreter with hssm 0.3.x (default: this one if it has "
                                                       "hssm)")
    p.add_argument("--hssm-worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--hssm-rl-worker", metavar="OUT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.hssm_worker:
        hssm_worker(*args.hssm_worker, args.draws, args.tune, args.chains, args.seed)
        return 0
    if args.hssm_rl_worker:
        hssm_rl_worker(args.hssm_rl_worker)
        return 0
    args.hssm_python = args.hssm_python or _default_hssm_python()
    df = simulate(args.subjects, args.trials, args.seed)
    print(f"data: {args.subjects} subjects x {args.trials} trials (seed {args.seed}); NUTS {args.chains} chains x "
          f"({args.tune} tune + {args.draws} draws), chains sequential in one process on both sides")
    res = {"neurorl": run_neurorl(df, args)}
    if args.hssm_python:
        h = run_hssm(df, args)
        if h is not None:
            res["hssm"] = h
    else:
        print("HSSM not available: pass --hssm-python (an interpreter with hssm 0.3.x installed)")
    print(f"\n{'group parameter':<14}" + "".join(f"{k + ' mean (sd)':>24}" for k in res) +
          ("   |diff|/sd   agree" if len(res) == 2 else ""))
    for k in GROUP:
        line = f"{k:<14}"
        vals = [res[s]["params"].get(k) for s in res]
        for v in vals:
            line += f"{v['mean']:>15.4f} ({v['sd']:.4f})" if v else f"{'n/a':>24}"
        if len(vals) == 2 and all(vals):
            z = abs(vals[0]["mean"] - vals[1]["mean"]) / np.hypot(vals[0]["sd"], vals[1]["sd"])
            line += f"   {z:9.2f}   {'yes' if z < 2 else 'NO'}"
        print(line)
    print()
    for s, r in res.items():
        ess = min(v["ess"] for v in r["params"].values())
        print(f"{s:<8} total {r['total_s']:7.1f} s, sampling {r['sample_s']:7.1f} s, divergences {r['divergent']}, "
              f"min bulk ESS {ess:7.1f}: ESS/s {ess / r['sample_s']:.2f} (sampling), {ess / r['total_s']:.2f} (total)")
    if args.hssm_python:
        info = hssm_rl_support(args)
        if info is not None:
            print_rl_support(info)
    if len(res) == 2:
        e = {s: min(v["ess"] for v in r["params"].values()) for s, r in res.items()}
        print(f"ESS/s ratio neurorl / HSSM: {e['neurorl'] / res['neurorl']['sample_s'] / (e['hssm'] / res['hssm']['sample_s']):.2f}"
              f" (sampling), {e['neurorl'] / res['neurorl']['total_s'] / (e['hssm'] / res['hssm']['total_s']):.2f} "
              "(total)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
