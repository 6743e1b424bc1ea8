"""Successor-representation agent (agents.md §10) and the revaluation task.

The reference below is a plain per-subject, per-trial loop of the module's equations, written
independently of the ops-layer rule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurorl as nr
from neurorl.agents.successor import mixture_weights


def _softmax(x, avail, beta):
    z = [beta * v if ok else -math.inf for v, ok in zip(x, avail)]
    m = max(z)
    e = [math.exp(v - m) if v > -math.inf else 0.0 for v in z]
    tot = sum(e)
    return [v / tot for v in e]


def reference(trials, params, *, representation, components, gamma, sweeps=None):
    """Policies (subject, trial, action) of the successor agent by explicit loops."""
    item = trials["item"].values
    avail_t = trials["available"].values
    S, A = item.shape
    I = int(item.max()) + 1
    n, T = trials.sizes["subject"], trials.sizes["trial"]
    out = np.zeros((n, T, A))
    for i in range(n):
        p = {k: float(params[k].values[i]) for k in params.data_vars}
        w = [float(np.asarray(x)) for x in mixture_weights({k: np.asarray(v) for k, v in p.items()}, components)]
        H = [[1.0 if a == b else 0.0 for b in range(I)] for a in range(I)]
        M = [[1.0 if a == b else 0.0 for b in range(S)] for a in range(S)]
        Ws = [0.0] * S
        R = [0.0] * I
        Tm = [[0.0] * S for _ in range(I)]
        Qmf = [0.0] * I

        def tables():
            tab = {}
            if "sr" in components:
                if representation == "state":
                    V = [sum(M[x][y] * Ws[y] for y in range(S)) for x in range(S)]
                    tab["sr"] = [R[k] + gamma * sum(Tm[k][y] * V[y] for y in range(S)) for k in range(I)]
                else:
                    tab["sr"] = [sum(H[k][j] * R[j] for j in range(I)) for k in range(I)]
            if "mb" in components:
                q = list(R)
                for _ in range(sweeps or S):
                    V = [max(q[item[x, a]] for a in range(A) if avail_t[x, a]) for x in range(S)]
                    q = [R[k] + gamma * sum(Tm[k][y] * V[y] for y in range(S)) for k in range(I)]
                tab["mb"] = q
            if "mf" in components:
                tab["mf"] = list(Qmf)
            return [sum(wc * tab[c][k] for c, wc in zip(components, w)) for k in range(I)]

        for t in range(T):
            s = int(trials["state"].values[i, t])
            mix = tables()
            pol = _softmax([mix[item[s, a]] for a in range(A)], avail_t[s], p["beta"])
            out[i, t] = pol
            if not trials["valid"].values[i, t]:
                continue
            a = int(trials["choice"].values[i, t])
            r = float(trials["reward"].values[i, t])
            d = bool(trials["done"].values[i, t])
            s2 = int(trials["next_state"].values[i, t])
            k = item[s, a]
            c = 0.0 if d else gamma
            newH = [row[:] for row in H]
            if "sr" in components and representation == "state_action":
                pol2 = _softmax([mix[item[s2, b]] for b in range(A)], avail_t[s2], p["beta"])
                for j in range(I):
                    hn = sum(pol2[b] * H[item[s2, b]][j] for b in range(A))
                    target = (1.0 if j == k else 0.0) + c * hn
                    newH[k][j] = H[k][j] + p["alpha_sr"] * (target - H[k][j])
            if "sr" in components and representation == "state":
                newM = [row[:] for row in M]
                for y in range(S):
                    target = (1.0 if y == s else 0.0) + c * M[s2][y]
                    newM[s][y] = M[s][y] + p["alpha_sr"] * (target - M[s][y])
                M = newM
                Ws[s] += p["alpha_w"] * (r - Ws[s])
            H = newH
            if "mf" in components:
                nxt = max(Qmf[item[s2, b]] for b in range(A) if avail_t[s2, b])
                Qmf[k] += p["alpha_mf"] * (r + (0.0 if d else gamma * nxt) - Qmf[k])
            if "sr" in components or "mb" in components:
                R[k] += p["alpha_w"] * (r - R[k])
            if "mb" in components or ("sr" in components and representation == "state"):
                for y in range(S):
                    target = 0.0 if d else (1.0 if y == s2 else 0.0)
                    Tm[k][y] += p["alpha_t"] * (target - Tm[k][y])
    return out


CONFIGS = [
    {"representation": "state_action", "components": ("sr",)},
    {"representation": "state", "components": ("sr",)},
    {"representation": "state_action", "components": ("mb",)},
    {"representation": "state_action", "components": ("mf",)},
    {"representation": "state_action", "components": ("mf", "sr", "mb")},
    {"representation": "state", "components": ("sr", "mb")},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c["representation"] + "-" + "+".join(c["components"]))
def test_matches_slow_reference(config):
    agent = nr.make_agent("successor", gamma=0.9, **config)
    sim = nr.simulate(agent, nr.make_task("revaluation", condition="mixed", n_learning=6, n_relearning=4),
                      n_subjects=3, n_trials=50, rng=4)
    ref = reference(sim.trials, sim.params, gamma=0.9, **config)
    np.testing.assert_allclose(sim.latents["policy"].values, ref, rtol=1e-10, atol=1e-12)


def test_sr_matrix_converges_to_analytic_on_a_chain():
    """After many passive passes through 1 -> 3 -> 5 (deterministic), H[(3, go)] = e_3go + gamma e_5go."""
    agent = nr.make_agent("successor", gamma=0.9)
    task = nr.make_task("revaluation", condition="control", n_learning=60, n_relearning=0)
    sim = nr.simulate(agent, task, n_subjects=1, n_trials=240, rng=0,
                      params={"alpha_sr": 0.5, "alpha_w": 0.5, "beta": 1e-12})
    env = task.env
    rows = sim.latents["sr_row"].values[0]
    st = sim.trials["state"].values[0]
    last3 = np.flatnonzero(st == 3)[-1]
    expected = np.zeros(env.n_items)
    expected[env.item[3, 0]] = 1.0
    expected[env.item[5, 0]] = 0.9
    np.testing.assert_allclose(rows[last3], expected, atol=1e-6)
    # root row under the uniform policy: mean of the two chains' SRs, each e_root + g e_start + g^2 e_mid + g^3 e_end
    last0 = np.flatnonzero(st == 0)[-1]
    exp0 = np.zeros(env.n_items)
    for a, (s1, s2, s3) in enumerate([(1, 3, 5), (2, 4, 6)]):
        exp0[env.item[0, a]] += 0.5
        for k, x in enumerate((s1, s2, s3), start=1):
            exp0[env.item[x, 0]] += 0.5 * 0.9 ** k
    np.testing.assert_allclose(rows[last0], exp0, atol=1e-4)


def _first_test_p2(agent, condition, n=40):
    sim = nr.simulate(agent, nr.make_task("revaluation", condition=condition), n_subjects=n, rng=1)
    first = np.argmax(sim.trials["test"].values.astype(bool), axis=1)
    return float(sim.latents["policy"].values[np.arange(n), first, 1].mean())


@pytest.mark.parametrize("components,revalues", [
    (("sr",), {"reward": True, "transition": False}),
    (("mb",), {"reward": True, "transition": True}),
    (("mf",), {"reward": False, "transition": False}),
])
def test_revaluation_signature(components, revalues):
    agent = nr.make_agent("successor", components=components)
    control = _first_test_p2(agent, "control")
    for cond, yes in revalues.items():
        p = _first_test_p2(agent, cond)
        assert (p > control + 0.4) == yes, (components, cond, p, control)


def test_mb_sweeps_of_the_longest_episode_are_exact():
    """Block design (27 states): value iteration with as many sweeps as an episode's most moves gives the values of
    the full S sweeps (the slow reference, run with S), because the learnt model has no longer path."""
    task = nr.make_task("revaluation", condition="mixed", n_blocks=3, n_learning=3, n_relearning=2, n_test=1)
    agent = nr.make_agent("successor", components=("mb",), gamma=0.9, sweeps=task.max_moves)
    sim = nr.simulate(agent, task, n_subjects=2, n_trials=90, rng=2)
    assert task.env.n_states == 27 and task.max_moves == 4
    ref = reference(sim.trials, sim.params, representation="state_action", components=("mb",), gamma=0.9)
    np.testing.assert_allclose(sim.latents["policy"].values, ref, rtol=1e-10, atol=1e-12)
    # and a horizon shorter than the longest episode is a different model: the root's values lag
    two = nr.make_agent("successor", components=("mb",), gamma=0.9, sweeps=2)
    lag = nr.replay(two, sim.trials, sim.params)["q_mb"].values - nr.replay(agent, sim.trials, sim.params)["q_mb"].values
    assert np.abs(lag).max() > 0.1


def test_hybrid_weights_on_simplex():
    p = {"w_mb": np.array([0.2]), "share_sr": np.array([0.5])}
    w = mixture_weights(p, ("mf", "sr", "mb"))
    np.testing.assert_allclose(np.concatenate([np.ravel(x) for x in w]), [0.4, 0.4, 0.2])


def test_bad_options_and_big_tasks():
    with pytest.raises(ValueError, match="components"):
        nr.make_agent("successor", components=("sr", "td"))
    with pytest.raises(ValueError, match="representation"):
        nr.make_agent("successor", representation="item")
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="sweeps"):
            nr.make_agent("successor", components=("mb",), sweeps=bad)
    with pytest.raises(ValueError, match="no 'mb'"):
        nr.make_agent("successor", sweeps=3)
    with pytest.raises(ValueError, match="at most 64 items"):
        nr.make_agent("successor").check_task(nr.make_task("maze"))
