"""Tabular SVPG (agents.md §11): a plain per-subject loop of the equations, and limiting cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurorl as nr


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def reference(trials, params, *, n_particles, gamma, seed, prior_sd):
    """Mixture policies (subject, trial, action) and spreads by explicit loops over particles and pairs."""
    item, avail = trials["item"].values, trials["available"].values
    n, T = trials.sizes["subject"], trials.sizes["trial"]
    A = avail.shape[1]
    I = int(trials.attrs["n_items"])
    xi = np.random.default_rng(seed).standard_normal((n_particles, I))
    pol = np.zeros((n, T, A))
    spread = np.zeros((n, T))
    for i in range(n):
        eta, alpha, alpha_v, sigma0 = (float(params[k].values[i]) for k in ("eta", "alpha", "alpha_v", "sigma0"))
        th = [sigma0 * xi[j].copy() for j in range(n_particles)]
        V = np.zeros(avail.shape[0])
        for t in range(T):
            s = int(trials["state"].values[i, t])
            ok = avail[s]
            pis = []
            for j in range(n_particles):
                lg = np.array([th[j][item[s, a]] if ok[a] else -np.inf for a in range(A)])
                pis.append(_softmax(lg))
            mix = sum(pis) / n_particles
            pol[i, t] = mix
            pairs = [(j, k) for j in range(n_particles) for k in range(j + 1, n_particles)]
            sq = {(j, k): float(np.sum((th[j] - th[k]) ** 2)) for j, k in pairs}
            spread[i, t] = np.mean([math.sqrt(v) for v in sq.values()]) if pairs else 0.0
            a = int(trials["choice"].values[i, t])
            r = float(trials["reward"].values[i, t])
            d = bool(trials["done"].values[i, t])
            s2 = int(trials["next_state"].values[i, t])
            delta = r + (0.0 if d else gamma * V[s2]) - V[s]
            V[s] += alpha_v * delta
            g = []
            for j in range(n_particles):
                gj = np.zeros(I)
                for b in range(A):
                    if ok[b]:
                        gj[item[s, b]] += delta * pis[j][a] / mix[a] * ((1.0 if b == a else 0.0) - pis[j][b])
                if prior_sd is not None:
                    gj -= alpha * th[j] / prior_sd ** 2
                g.append(gj)
            h = max(float(np.median(list(sq.values()))) / math.log(n_particles), 1e-6) if pairs else 1.0
            new = []
            for k in range(n_particles):
                phi = np.zeros(I)
                for j in range(n_particles):
                    kern = math.exp(-float(np.sum((th[j] - th[k]) ** 2)) / h)
                    phi += kern * g[j] + alpha * (-2.0 / h) * (th[j] - th[k]) * kern
                new.append(th[k] + eta * phi / n_particles)
            th = new
    return pol, spread


@pytest.mark.parametrize("n_particles,prior_sd,task", [(5, 2.0, "mouse_bandit"), (4, None, "branching"),
                                                       (1, 2.0, "two_step")])
def test_matches_slow_reference(n_particles, prior_sd, task):
    agent = nr.make_agent("svpg", n_particles=n_particles, prior_sd=prior_sd, gamma=0.8, seed=3)
    sim = nr.simulate(agent, task, n_subjects=3, n_trials=80, rng=1,
                      params={"eta": 0.7, "alpha": 0.5, "alpha_v": 0.3, "sigma0": 0.8})
    pol, spread = reference(sim.trials, sim.params, n_particles=n_particles, gamma=0.8, seed=3, prior_sd=prior_sd)
    np.testing.assert_allclose(sim.latents["policy"].values, pol, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sim.latents["particle_spread"].values, spread, rtol=1e-9, atol=1e-12)


def test_median_network_is_the_median():
    from neurorl.agents.svpg import median_sorting_network
    from neurorl.backend import NUMPY

    rng = np.random.default_rng(0)
    for m in (1, 2, 5, 10):
        x = rng.random((m, 4))
        np.testing.assert_allclose(median_sorting_network(list(x), NUMPY), np.median(x, axis=0), rtol=1e-15)


def test_repulsion_spreads_particles():
    """Same data and start: a larger temperature alpha keeps the particles further apart."""
    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=4, n_trials=300, rng=2)
    base = {"eta": 0.5, "alpha_v": 0.2, "sigma0": 0.5}
    lo = nr.replay("svpg", sim.trials, {**base, "alpha": 1e-4})
    hi = nr.replay("svpg", sim.trials, {**base, "alpha": 2.0})
    assert np.all(hi["particle_spread"].values[:, -1] > lo["particle_spread"].values[:, -1])


def test_bad_options():
    with pytest.raises(ValueError, match="n_particles"):
        nr.make_agent("svpg", n_particles=0)
    with pytest.raises(ValueError, match="prior_sd"):
        nr.make_agent("svpg", prior_sd=-1.0)
