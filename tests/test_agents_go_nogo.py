"""Go/no-go agents gng_m1..gng_m4 against a transcription of hBayesDM's Stan model block."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.schema import EnvSpec


def _inv_logit(x):
    return 1.0 / (1.0 + np.exp(-x))


def hbayesdm_gng_m4(cue, pressed, outcome, xi, ep, b, pi, rho_rew, rho_pun):
    """Plain transcription of ``gng_m4.stan`` (generated quantities) for one subject.

    Cues are 0-based here. Returns per-trial log-likelihood and the regressors
    Qgo, Qnogo, Wgo, Wnogo, SV (stored before the update, as in the Stan file).
    """
    T = len(cue)
    wv_g = np.zeros(4)
    wv_ng = np.zeros(4)
    qv_g = np.zeros(4)
    qv_ng = np.zeros(4)
    sv = np.zeros(4)
    pgo = np.zeros(4)
    out = {k: np.zeros(T) for k in ("log_lik", "Qgo", "Qnogo", "Wgo", "Wnogo", "SV")}
    for t in range(T):
        c = cue[t]
        wv_g[c] = qv_g[c] + b + pi * sv[c]
        wv_ng[c] = qv_ng[c]
        pgo[c] = _inv_logit(wv_g[c] - wv_ng[c])
        pgo[c] *= 1 - xi
        pgo[c] += xi / 2
        out["log_lik"][t] = np.log(pgo[c]) if pressed[t] else np.log(1 - pgo[c])
        out["Qgo"][t] = qv_g[c]
        out["Qnogo"][t] = qv_ng[c]
        out["Wgo"][t] = wv_g[c]
        out["Wnogo"][t] = wv_ng[c]
        out["SV"][t] = sv[c]
        if outcome[t] >= 0:
            sv[c] += ep * (rho_rew * outcome[t] - sv[c])
        else:
            sv[c] += ep * (rho_pun * outcome[t] - sv[c])
        if pressed[t]:
            if outcome[t] >= 0:
                qv_g[c] += ep * (rho_rew * outcome[t] - qv_g[c])
            else:
                qv_g[c] += ep * (rho_pun * outcome[t] - qv_g[c])
        else:
            if outcome[t] >= 0:
                qv_ng[c] += ep * (rho_rew * outcome[t] - qv_ng[c])
            else:
                qv_ng[c] += ep * (rho_pun * outcome[t] - qv_ng[c])
    return out


PARAMS = {
    "gng_m1": {"xi": [0.05, 0.2, 0.1], "eps": [0.2, 0.4, 0.1], "rho": [3.0, 1.5, 6.0]},
    "gng_m2": {"xi": [0.05, 0.2, 0.1], "eps": [0.2, 0.4, 0.1], "rho": [3.0, 1.5, 6.0], "b": [0.5, -0.3, 1.2]},
    "gng_m3": {"xi": [0.05, 0.2, 0.1], "eps": [0.2, 0.4, 0.1], "rho": [3.0, 1.5, 6.0], "b": [0.5, -0.3, 1.2],
               "pi": [0.5, 1.5, -0.7]},
    "gng_m4": {"xi": [0.05, 0.2, 0.1], "eps": [0.2, 0.4, 0.1], "rho_rew": [3.0, 1.5, 6.0],
               "rho_pun": [1.0, 4.0, 2.5], "b": [0.5, -0.3, 1.2], "pi": [0.5, 1.5, -0.7]},
}


def _m4_args(params, i):
    """The gng_m4 parameters that reproduce the nested model (absent b, pi = 0; one rho)."""
    g = {k: np.asarray(v, float)[i] for k, v in params.items()}
    rho_rew = g.get("rho_rew", g.get("rho"))
    rho_pun = g.get("rho_pun", g.get("rho"))
    return dict(xi=g["xi"], ep=g["eps"], b=g.get("b", 0.0), pi=g.get("pi", 0.0), rho_rew=rho_rew, rho_pun=rho_pun)


@pytest.mark.parametrize("model", ["gng_m1", "gng_m2", "gng_m3", "gng_m4"])
def test_loglik_and_regressors_match_hbayesdm_transcription(model):
    params = PARAMS[model]
    sim = nr.simulate(model, "go_nogo", n_subjects=3, n_trials=240, params=params, rng=1)
    tr = sim.trials
    assert set(np.unique(tr["reward"].values)) <= {-1.0, 0.0, 1.0}
    assert (tr["reward"].values < 0).any() and (tr["reward"].values > 0).any()
    lat = nr.replay(model, tr, params)
    choice = tr["choice"].values
    ll = np.log(np.take_along_axis(lat["policy"].values, choice[..., None], -1)[..., 0])
    for i in range(3):
        ref = hbayesdm_gng_m4(tr["state"].values[i], choice[i], tr["reward"].values[i], **_m4_args(params, i))
        np.testing.assert_allclose(ll[i], ref["log_lik"], rtol=1e-12, atol=1e-14)
        for ours, theirs in (("q_go", "Qgo"), ("q_nogo", "Qnogo"), ("w_go", "Wgo"), ("w_nogo", "Wnogo"),
                             ("sv", "SV")):
            np.testing.assert_allclose(lat[ours].values[i], ref[theirs], rtol=1e-12, atol=1e-14, err_msg=ours)


def test_m4_uses_rho_pun_for_negative_outcomes_by_hand():
    # one cue, go twice: outcome -1 then +1
    xi, eps, b, pi, rr, rp = 0.1, 0.5, 0.2, 2.0, 3.0, 5.0
    tr = nr.make_trials([[0, 0, 0]], [[1, 1, 0]], [[-1.0, 1.0, 0.0]], n_states=4, n_actions=2)
    lat = nr.replay("gng_m4", tr, dict(xi=xi, eps=eps, b=b, pi=pi, rho_rew=rr, rho_pun=rp))
    # trial 0: all values 0, P(go) = sigmoid(b)(1 - xi) + xi/2
    p0 = (1 - xi) / (1 + np.exp(-b)) + xi / 2
    # after outcome -1 (rho_pun = 5): Q_go = SV = 0.5 * (-5) = -2.5
    qgo1 = sv1 = -2.5
    p1 = (1 - xi) / (1 + np.exp(-(qgo1 + b + pi * sv1))) + xi / 2
    # after outcome +1 (rho_rew = 3): Q_go = SV = -2.5 + 0.5 * (3 + 2.5) = 0.25
    p2 = (1 - xi) / (1 + np.exp(-(0.25 + b + pi * 0.25))) + xi / 2
    np.testing.assert_allclose(lat["policy"].values[0, :, 1], [p0, p1, p2], rtol=1e-13)
    np.testing.assert_allclose(lat["rpe"].values[0], [-5.0, 3.0 + 2.5, 0.0 - 0.0], atol=1e-13)
    np.testing.assert_allclose(lat["sv"].values[0], [0.0, -2.5, 0.25], atol=1e-13)
    np.testing.assert_allclose(lat["q"].values[0], [[0, 0], [0, -2.5], [0, 0.25]], atol=1e-13)


def test_shared_soft_latents_are_the_action_weights():
    sim = nr.simulate("gng_m3", "go_nogo", n_subjects=2, n_trials=40, params={"xi": 0.0 + 1e-9}, rng=4)
    lat = sim.latents
    np.testing.assert_array_equal(lat["q_soft"].values[..., 0], lat["w_nogo"].values)
    np.testing.assert_array_equal(lat["q_soft"].values[..., 1], lat["w_go"].values)
    # with (almost) no lapse, v_soft = logsumexp(W)
    w = lat["q_soft"].values
    np.testing.assert_allclose(lat["v_soft"].values, np.logaddexp(w[..., 0], w[..., 1]), atol=1e-8)


def test_requires_two_actions_and_go_nogo_task():
    agent = nr.make_agent("gng_m2")
    with pytest.raises(ValueError, match="exactly 2 actions"):
        agent.start(agent.resolve(None, 1), EnvSpec.default(4, 3), 1)
    with pytest.raises(ValueError, match="go_nogo"):
        nr.simulate(agent, "mouse_bandit", n_trials=5)
    assert nr.make_agent("gng_m4").param_names == ("xi", "eps", "rho_rew", "rho_pun", "b", "pi")
    assert nr.make_agent("gng_m1").param_names == ("xi", "eps", "rho")
