"""Small recurrent networks fitted directly to choices (and optionally RTs): data-driven cognitive models.

After the tiny RNNs of Ji-An, Benna & Mattar (2025) and the disentangled RNNs of Miller et al. (2023): a GRU with a
handful of units reads, on each trial, the current state and the previous trial's choice and outcome, and outputs
the logits of the current choice. It is fitted by maximum likelihood (Adam, full batch) on the trials of the
training folds, with early stopping on held-out blocks of those trials, and scored on the held-out trials of the
same exact-CV folds as the RL models (:func:`neurorl.fitting.cv.block_folds`), so that both go in one table
(:func:`neurorl.fitting.heldout.heldout_table`).

The networks are written in JAX (already needed by the compiled likelihoods), not torch: a tiny GRU is a long
sequential loop of very small operations, which JAX compiles into one ``lax.scan``. Measured on the shared 2-core
machine under load (3 subjects x 150 trials, 2 units, value + gradient + Adam step): torch's ``nn.GRU`` 117 ms per
step, the jitted JAX step 0.9 ms (plus about 5 s to compile once per data shape). Fitting therefore needs no torch.

Network
-------
Input at trial ``t`` of a subject: ``one_hot(state_t)`` (only when the task has several states) ``‖
one_hot(choice_{t-1}) ‖ reward_{t-1}`` (zeros on the first trial and after an invalid trial) ``‖ e_subject``
(a learnt embedding of ``subject_embedding`` dims, when asked). ``h_t = GRU(x_t, h_{t-1})``, ``h_{-1} = 0``;
``logits_t = W h_t + b`` with unavailable actions masked out; ``p(choice_t) = softmax(logits_t)``. With ``rt=True``
a second head gives ``mu_t, log sigma_t`` of ``log RT_t`` (log-normal RT, scored on trials with a finite RT).

Assumptions and choices
-----------------------
[A1] The network *sees* every valid trial of a subject (as input, in order); the loss and the score count only the
     trials of the given mask. Invalid trials feed zeros for their outcome into the next trial.
[A2] Early stopping: the training trials of each subject are cut into ``val_blocks`` contiguous blocks
     (:func:`block_folds`); one of them (the same index for every subject, drawn from ``seed``) is the validation
     block. Training stops when the validation loss has not improved for ``patience`` steps (or after ``max_epochs``)
     and the best weights are restored; the network is not refitted on the validation block afterwards.
[A3] ``per_subject=True`` fits one network per subject (no sharing); otherwise one network for all subjects, with a
     learnt subject embedding when ``subject_embedding > 0`` (the embedding of a subject is learnt from its training
     trials only; new subjects cannot be scored).
[A4] Full-batch Adam with ``weight_decay`` (L2) on every weight; ``n_init`` random initialisations, the one with the
     lowest validation loss kept.
[A5] Reward input is the raw reward (NaN on invalid trials is replaced by 0).
[A6] Training windows (``window``, default 50 trials): during training the hidden state is reset to zero at the
     start of windows of ``window`` trials whose offset is redrawn at every step; the validation loss and every
     score run each subject's trials as one unbroken sequence. Reason (measured): trained on unbroken sequences,
     a 2-unit GRU fitted to a heuristic agent's choices scored 0.94 nats per trial on a held-out *first* block
     (2.3 nats on whole stretches, against 0.19 on its training trials): it kept the strategy in its hidden state,
     never learnt to re-synchronise it from its inputs, and started out of phase on trials it was never trained
     from. Windows force it to recover the strategy from the recent inputs within a few trials.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..schema import ACTION, SUBJECT, TRIAL
from .cv import as_folds, block_folds

__all__ = ["ChoiceRNN", "plot_dynamics", "preference_dynamics"]

HIDDEN_UNIT = "hidden_unit"
LOG2PI = float(np.log(2 * np.pi))


def _jax():
    import jax
    import jax.numpy as jnp

    from ..backend import jax_ops  # noqa: F401  (float64 on, as for every compiled likelihood)

    return jax, jnp


def _inputs(trials: xr.Dataset, n_states: int, n_actions: int) -> np.ndarray:
    """Network inputs ``(subject, trial, features)`` (module docstring)."""
    state = np.asarray(trials["state"].values, int)
    choice = np.asarray(trials["choice"].values, int)
    valid = np.asarray(trials["valid"].values, bool)
    reward = np.nan_to_num(np.asarray(trials["reward"].values, float))
    n, T = choice.shape
    parts = []
    if n_states > 1:
        parts.append(np.eye(n_states)[np.clip(state, 0, n_states - 1)] * valid[..., None])
    prev_c = np.zeros((n, T, n_actions))
    prev_r = np.zeros((n, T, 1))
    ok = valid[:, :-1] & (choice[:, :-1] >= 0)
    oh = np.eye(n_actions)[np.clip(choice[:, :-1], 0, n_actions - 1)]
    prev_c[:, 1:] = oh * ok[..., None]
    prev_r[:, 1:, 0] = np.where(ok, reward[:, :-1], 0.0)
    parts += [prev_c, prev_r]
    return np.concatenate(parts, axis=-1)


def _init_params(rng: np.random.Generator, n_in, n_actions, H, n_subjects, emb, rt, cell) -> dict:
    """Xavier-uniform input and readout weights, orthogonal recurrent blocks, zero biases (as the DRQN)."""
    G = 3 if cell == "gru" else 1
    lim = np.sqrt(6.0 / (n_in + emb + G * H))
    wh = np.concatenate([np.linalg.qr(rng.standard_normal((H, H)))[0] for _ in range(G)], axis=1)
    p = {"Wi": rng.uniform(-lim, lim, (n_in + emb, G * H)), "Wh": wh, "bi": np.zeros(G * H), "bh": np.zeros(G * H),
         "Wo": rng.uniform(-1, 1, (H, n_actions)) * np.sqrt(6.0 / (H + n_actions)), "bo": np.zeros(n_actions)}
    if emb:
        p["E"] = rng.normal(0.0, 0.1, (n_subjects, emb))
    if rt:
        p["Wr"] = np.zeros((H, 2))
        p["br"] = np.zeros(2)
    return p


def _forward(p, x, subj, cell, reset=None):
    """``(logits (n, T, A), rt_out (n, T, 2) or None, hidden (n, T, H))`` (JAX); ``reset`` (n, T) sets the hidden
    state to zero before the trials where it is 1 (training windows)."""
    jax, jnp = _jax()
    H = p["Wh"].shape[0]
    if "E" in p:
        e = p["E"][subj]
        x = jnp.concatenate([x, jnp.broadcast_to(e[:, None, :], x.shape[:2] + e.shape[-1:])], axis=-1)
    gi = x @ p["Wi"] + p["bi"]

    def gru(h, inp):
        g, keep = inp
        h = h * keep[:, None]
        gh = h @ p["Wh"] + p["bh"]
        r = jax.nn.sigmoid(g[:, :H] + gh[:, :H])
        z = jax.nn.sigmoid(g[:, H:2 * H] + gh[:, H:2 * H])
        n = jnp.tanh(g[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1.0 - z) * n + z * h
        return h, h

    def rnn(h, inp):
        g, keep = inp
        h = jnp.tanh(g + (h * keep[:, None]) @ p["Wh"] + p["bh"])
        return h, h

    keep = jnp.ones(x.shape[:2]) if reset is None else 1.0 - reset
    _, hs = jax.lax.scan(gru if cell == "gru" else rnn, jnp.zeros((x.shape[0], H)),
                         (jnp.swapaxes(gi, 0, 1), jnp.swapaxes(keep, 0, 1)))
    hs = jnp.swapaxes(hs, 0, 1)
    rt_out = hs @ p["Wr"] + p["br"] if "Wr" in p else None
    return hs @ p["Wo"] + p["bo"], rt_out, hs


def _trial_loglik(p, x, subj, avail, choice, rt, cell, reset=None):
    """Per-trial choice and RT log-likelihoods ``(n, T)`` (RT: 0 where no finite positive RT), hidden, logits."""
    jax, jnp = _jax()
    logits, rt_out, hs = _forward(p, x, subj, cell, reset)
    logits = jnp.where(avail, logits, -jnp.inf)
    logp = jax.nn.log_softmax(logits, axis=-1)
    c = jnp.clip(choice, 0, None)
    ll = jnp.take_along_axis(logp, c[..., None], axis=-1)[..., 0]
    ll = jnp.where(choice >= 0, ll, 0.0)
    rll = None
    if rt_out is not None:
        mu, log_s = rt_out[..., 0], jnp.clip(rt_out[..., 1], -5.0, 5.0)
        ok = jnp.isfinite(rt) & (rt > 0)
        lr = jnp.log(jnp.where(ok, rt, 1.0))
        rll = jnp.where(ok, -lr - log_s - 0.5 * LOG2PI - 0.5 * ((lr - mu) / jnp.exp(log_s)) ** 2, 0.0)
    return ll, rll, hs, logits


_STEP_CACHE: dict = {}


def _adam_step(cell: str, lr: float, wd: float, clip: float):
    """A jitted ``(params, m, v, k, data...) -> (params, m, v, train_loss, val_loss)`` Adam step (cached): L2
    penalty ``wd``, gradient clipped to global norm ``clip`` (0 = off)."""
    key = (cell, float(lr), float(wd), float(clip))
    if key in _STEP_CACHE:
        return _STEP_CACHE[key]
    jax, jnp = _jax()
    b1, b2, eps = 0.9, 0.999, 1e-8

    def nll(p, x, subj, avail, choice, rt, mask, reset):
        ll, rll, _, _ = _trial_loglik(p, x, subj, avail, choice, rt, cell, reset)
        tot = ll if rll is None else ll + rll
        return -(tot * mask).sum() / jnp.maximum(mask.sum(), 1.0)

    def step(p, m, v, k, x, subj, avail, choice, rt, mtr, mva, reset):
        loss, g = jax.value_and_grad(nll)(p, x, subj, avail, choice, rt, mtr, reset)
        vloss = nll(p, x, subj, avail, choice, rt, mva, None)  # validation as scored: one continuous sequence
        g = jax.tree_util.tree_map(lambda gi, pi: gi + wd * pi, g, p)  # L2 (Adam with weight decay, as torch's)
        if clip > 0:
            norm = jnp.sqrt(sum(jnp.sum(gi * gi) for gi in jax.tree_util.tree_leaves(g)))
            g = jax.tree_util.tree_map(lambda gi: gi * jnp.minimum(1.0, clip / (norm + 1e-12)), g)
        m = jax.tree_util.tree_map(lambda mi, gi: b1 * mi + (1 - b1) * gi, m, g)
        v = jax.tree_util.tree_map(lambda vi, gi: b2 * vi + (1 - b2) * gi * gi, v, g)
        mh = 1.0 - b1 ** k
        vh = 1.0 - b2 ** k
        p = jax.tree_util.tree_map(lambda pi, mi, vi: pi - lr * (mi / mh) / (jnp.sqrt(vi / vh) + eps), p, m, v)
        return p, m, v, loss, vloss

    fn = jax.jit(step)
    _STEP_CACHE[key] = fn
    return fn


class ChoiceRNN:
    """A small GRU fitted to choices (scikit-learn style: options here, ``fit`` returns ``self``).

    Parameters
    ----------
    hidden_size : int
        Recurrent units (1-4 for a "tiny" RNN; more allowed).
    cell : {"gru", "rnn"}
    subject_embedding : int
        Dims of a learnt per-subject embedding appended to the input (0: none).
    per_subject : bool
        One network per subject instead of one shared network ([A3]).
    rt : bool
        Also model log reaction times (log-normal head).
    lr, weight_decay, grad_clip : float
        Adam learning rate, L2 penalty, and the largest global gradient norm (0: no clipping).
    window : int or None
        Training windows ([A6]): the hidden state is reset to zero every ``window`` trials (at a random offset drawn
        anew at each step) while training; None trains on unbroken sequences.
    max_epochs, patience : int
        Full-batch steps at most, and steps without validation improvement before stopping ([A2]).
    val_blocks : int
        Training trials of each subject are cut into this many blocks; one is the validation block.
    n_init : int
        Random initialisations ([A4]).
    seed : int
        Seeds the initial weights and the choice of validation block.
    progress : bool
        Show a progress bar over initialisations / subjects / folds.

    Attributes
    ----------
    params_ : dict of numpy arrays, or a list of them (one per subject)
        Weights: ``Wi``, ``bi`` (input), ``Wh``, ``bh`` (recurrent; GRU gates r, z, n in that order), ``Wo``, ``bo``
        (choice readout), ``E`` (subject embeddings), ``Wr``, ``br`` (RT head).
    history_ : list of dict
        Per fit: ``train_loss`` and ``val_loss`` per step (nats per trial), ``best_epoch``, ``n_epochs``.
    n_params_ : int
        Trainable parameters per subject (shared weights plus the subject's own embedding).
    """

    def __init__(self, hidden_size: int = 2, *, cell: str = "gru", subject_embedding: int = 0,
                 per_subject: bool = False, rt: bool = False, lr: float = 0.02, weight_decay: float = 1e-5,
                 grad_clip: float = 1.0, window: int | None = 50, max_epochs: int = 3000, patience: int = 300,
                 val_blocks: int = 5, n_init: int = 1, seed: int = 0,
                 progress: bool = False):
        self.hidden_size = hidden_size
        self.cell = cell
        self.subject_embedding = subject_embedding
        self.per_subject = per_subject
        self.rt = rt
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.window = window
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_blocks = val_blocks
        self.n_init = n_init
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ checks
    def _check(self):
        for k in ("hidden_size", "max_epochs", "patience", "n_init"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"ChoiceRNN: {k} must be an integer >= 1, got {v!r}")
        if isinstance(self.subject_embedding, bool) or not isinstance(self.subject_embedding, (int, np.integer)) \
                or self.subject_embedding < 0:
            raise ValueError(f"ChoiceRNN: subject_embedding must be an integer >= 0, got {self.subject_embedding!r}")
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer))
                                        or self.window < 1):
            raise ValueError(f"ChoiceRNN: window must be None or an integer >= 1, got {self.window!r}")
        if self.per_subject and self.subject_embedding:
            raise ValueError("ChoiceRNN: per_subject=True fits separate networks; subject_embedding must be 0")
        if self.cell not in ("gru", "rnn"):
            raise ValueError(f"ChoiceRNN: cell must be 'gru' or 'rnn', got {self.cell!r}")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"ChoiceRNN: lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if isinstance(self.val_blocks, bool) or not isinstance(self.val_blocks, (int, np.integer)) \
                or self.val_blocks < 2:
            raise ValueError(f"ChoiceRNN: val_blocks must be an integer >= 2, got {self.val_blocks!r}")

    def _arrays(self, trials: xr.Dataset):
        from ..schema import env_spec, validate_trials

        validate_trials(trials)
        env = env_spec(trials)
        x = _inputs(trials, env.n_states, env.n_actions)
        state = np.clip(np.asarray(trials["state"].values, int), 0, env.n_states - 1)
        avail = np.asarray(env.available, bool)[state]  # (n, T, A)
        choice = np.asarray(trials["choice"].values, int)
        rt = np.asarray(trials["rt"].values, float) if "rt" in trials else np.full(choice.shape, np.nan)
        return env, x, avail, choice, rt

    def _mask(self, trials, mask):
        valid = np.asarray(trials["valid"].values, bool)
        if mask is None:
            return valid
        mask = np.asarray(getattr(mask, "values", mask))
        if mask.shape != valid.shape or mask.dtype != bool:
            raise ValueError(f"ChoiceRNN: mask must be a boolean (subject, trial) array of shape {valid.shape}, got "
                             f"{mask.dtype} {mask.shape}")
        bad = mask & ~valid
        if bad.any():
            i, t = np.argwhere(bad)[0]
            raise ValueError(f"ChoiceRNN: the mask marks trial {int(trials[TRIAL].values[t])} of subject "
                             f"{trials[SUBJECT].values[i]!r}, which is not valid")
        return mask

    # ------------------------------------------------------------------ fitting
    def _fit_one(self, x, subj, avail, choice, rt, train, val, n_subjects, seed):
        """Fit one network on the ``train`` mask with early stopping on ``val``; returns (params, history)."""
        jax, jnp = _jax()
        step = _adam_step(self.cell, self.lr, self.weight_decay, self.grad_clip)
        data = tuple(jnp.asarray(a) for a in (x, subj, avail, choice, rt, train.astype(float), val.astype(float)))
        best = None
        for init in range(self.n_init):
            rng = np.random.default_rng([int(seed), init])
            p = {k: jnp.asarray(v) for k, v in _init_params(rng, x.shape[-1], avail.shape[-1], self.hidden_size,
                                                           n_subjects, self.subject_embedding, self.rt,
                                                           self.cell).items()}
            m = jax.tree_util.tree_map(jnp.zeros_like, p)
            v = jax.tree_util.tree_map(jnp.zeros_like, p)
            hist = {"train_loss": [], "val_loss": []}
            best_val, best_p, best_epoch, since = np.inf, p, 0, 0
            for epoch in range(self.max_epochs):
                p_before = p
                reset = np.zeros(x.shape[:2])
                if self.window:
                    reset[:, int(rng.integers(self.window))::self.window] = 1.0
                p, m, v, loss, vloss = step(p, m, v, float(epoch + 1), *data, jnp.asarray(reset))
                loss, vloss = float(loss), float(vloss)  # both at the weights before this step
                hist["train_loss"].append(loss)
                hist["val_loss"].append(vloss)
                if not np.isfinite(loss):
                    break
                if vloss < best_val - 1e-6:
                    best_val, best_p, best_epoch, since = vloss, p_before, epoch, 0
                else:
                    since += 1
                    if since >= self.patience:
                        break
            hist["best_epoch"] = best_epoch
            hist["best_val_loss"] = best_val
            hist["n_epochs"] = len(hist["train_loss"])
            if best is None or best_val < best[1]["best_val_loss"]:
                best = ({k: np.asarray(w) for k, w in best_p.items()}, hist)
        return best

    # ------------------------------------------------------------------ API
    def fit(self, trials: xr.Dataset, mask=None) -> ChoiceRNN:
        """Fit to the choices (and RTs with ``rt=True``) of ``trials`` on the trials of ``mask``.

        Parameters
        ----------
        trials : xarray.Dataset
        mask : (subject, trial) bool, optional
            Trials whose likelihood trains the network (default: every valid trial). Every valid trial is still
            given as input ([A1]).
        """
        self._check()
        env, x, avail, choice, rt = self._arrays(trials)
        train_all = self._mask(trials, mask)
        short = np.flatnonzero(train_all.sum(axis=1) < self.val_blocks)
        if short.size:
            raise ValueError(f"ChoiceRNN.fit: subject {trials[SUBJECT].values[short[0]]!r} has fewer than "
                             f"val_blocks={self.val_blocks} training trials")
        vb = int(np.random.default_rng(self.seed).integers(self.val_blocks))
        val = block_folds(train_all, self.val_blocks)[vb]
        train = train_all & ~val
        n = choice.shape[0]
        self.n_actions_, self.n_states_, self.env_ = env.n_actions, env.n_states, env
        self.subjects_ = trials[SUBJECT].values
        self.val_block_ = vb
        if self.per_subject:
            nets, hists = [], []
            it = range(n)
            if self.progress:
                from ..progress import iterate

                it = iterate(it, True, "ChoiceRNN per subject", total=n)
            for i in it:
                sl = slice(i, i + 1)
                net, h = self._fit_one(x[sl], np.zeros(1, np.int64), avail[sl], choice[sl], rt[sl], train[sl],
                                       val[sl], 1, self.seed + i)
                nets.append(net)
                hists.append(h)
            self.params_, self.history_ = nets, hists
        else:
            net, h = self._fit_one(x, np.arange(n, dtype=np.int64), avail, choice, rt, train, val, n, self.seed)
            self.params_, self.history_ = net, [h]
        first = self.params_[0] if isinstance(self.params_, list) else self.params_
        self.n_params_ = int(sum(np.size(w) for k, w in first.items() if k != "E"))
        if "E" in first:
            self.n_params_ += int(first["E"].shape[1])  # per subject: its own embedding
        return self

    def _check_fitted(self, trials):
        if not hasattr(self, "params_"):
            raise AttributeError("this ChoiceRNN is not fitted yet; call fit(trials) first")
        subs = trials[SUBJECT].values
        if len(subs) != len(self.subjects_) or not np.array_equal(subs, self.subjects_):
            raise ValueError("ChoiceRNN: score and latents need the fitted subjects in the fitted order "
                             f"(fitted {list(self.subjects_)[:8]}, got {list(subs)[:8]})")

    def _forward(self, trials):
        _, jnp = _jax()
        self._check_fitted(trials)
        _, x, avail, choice, rt = self._arrays(trials)
        nets = self.params_ if isinstance(self.params_, list) else [self.params_]
        outs = []
        for i, p in enumerate(nets):
            sl = slice(i, i + 1) if isinstance(self.params_, list) else slice(None)
            subj = np.zeros(1, np.int64) if isinstance(self.params_, list) else np.arange(choice.shape[0])
            o = _trial_loglik({k: jnp.asarray(w) for k, w in p.items()}, jnp.asarray(x[sl]), jnp.asarray(subj),
                              jnp.asarray(avail[sl]), jnp.asarray(choice[sl]), jnp.asarray(rt[sl]), self.cell)
            outs.append([None if a is None else np.asarray(a, float) for a in o])
        ll = np.concatenate([o[0] for o in outs])
        rll = None if outs[0][1] is None else np.concatenate([o[1] for o in outs])
        h = np.concatenate([o[2] for o in outs])
        logits = np.concatenate([o[3] for o in outs])
        return ll, rll, h, logits

    def score(self, trials: xr.Dataset, mask=None, *, include_rt: bool = False) -> xr.DataArray:
        """Per-trial log-likelihood ``(subject, trial)`` of the choices (plus RTs with ``include_rt``), NaN outside
        ``mask`` (default: the valid trials)."""
        mask = self._mask(trials, mask)
        ll, rll, _, _ = self._forward(trials)
        if include_rt:
            if rll is None:
                raise ValueError("ChoiceRNN.score: include_rt=True needs a network fitted with rt=True")
            ll = ll + rll
        return xr.DataArray(np.where(mask, ll, np.nan), dims=(SUBJECT, TRIAL),
                            coords={SUBJECT: trials[SUBJECT].values, TRIAL: trials[TRIAL].values}, name="loglik")

    def latents(self, trials: xr.Dataset) -> xr.Dataset:
        """Hidden units and choice probabilities on the trials' ``(subject, trial)`` grid, for decoding.

        Variables: ``hidden`` (subject, trial, hidden_unit) -- the state ``h_t`` that produced the choice of trial
        ``t``; ``logits`` and ``policy`` (subject, trial, action); ``log_prob`` of the observed choice; ``entropy``
        (nats). NaN on invalid trials.
        """
        ll, _, h, logits = self._forward(trials)
        valid = np.asarray(trials["valid"].values, bool)
        with np.errstate(invalid="ignore"):
            z = logits - np.max(logits, axis=-1, keepdims=True)
            p = np.exp(z)
            p = p / p.sum(-1, keepdims=True)
            ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
        nan = lambda a: np.where(valid.reshape(valid.shape + (1,) * (a.ndim - 2)), a, np.nan)
        coords = {SUBJECT: trials[SUBJECT].values, TRIAL: trials[TRIAL].values,
                  ACTION: np.arange(logits.shape[-1]), HIDDEN_UNIT: np.arange(h.shape[-1])}
        return xr.Dataset(
            {"hidden": ((SUBJECT, TRIAL, HIDDEN_UNIT), nan(h)), "logits": ((SUBJECT, TRIAL, ACTION), nan(logits)),
             "policy": ((SUBJECT, TRIAL, ACTION), nan(p)), "log_prob": ((SUBJECT, TRIAL), nan(ll)),
             "entropy": ((SUBJECT, TRIAL), nan(ent))},
            coords=coords, attrs={"agent": "choice_rnn", "options": repr(self)})

    def cross_validate(self, trials: xr.Dataset, folds=5, *, include_rt: bool = False) -> xr.DataArray:
        """Exact K-fold held-out log-likelihood ``(subject, trial)``: in fold ``f`` a network is fitted on the valid
        trials outside ``folds[f]`` and scores the trials of ``folds[f]`` (the folds of
        :func:`neurorl.fitting.cv.block_folds`, shared with :func:`neurorl.fitting.heldout.heldout_loglik_rl`).
        The estimator is left fitted to the last fold."""
        folds = as_folds(trials, folds, "ChoiceRNN.cross_validate")
        valid = np.asarray(trials["valid"].values, bool)
        out = np.full(valid.shape, np.nan)
        it = range(folds.shape[0])
        if self.progress:
            from ..progress import iterate

            it = iterate(it, True, "ChoiceRNN folds", total=folds.shape[0])
        self.fold_history_ = []
        for f in it:
            self.fit(trials, valid & ~folds[f])
            sc = self.score(trials, folds[f], include_rt=include_rt).values
            out[folds[f]] = sc[folds[f]]
            self.fold_history_.append(self.history_)
        return xr.DataArray(out, dims=(SUBJECT, TRIAL),
                            coords={SUBJECT: trials[SUBJECT].values, TRIAL: trials[TRIAL].values},
                            name="heldout_loglik", attrs={"agent": repr(self), "k": int(folds.shape[0])})

    def __repr__(self) -> str:
        return (f"ChoiceRNN(hidden_size={self.hidden_size}, cell={self.cell!r}, subject_embedding="
                f"{self.subject_embedding}, per_subject={self.per_subject}, rt={self.rt}, window={self.window})")


# ---------------------------------------------------------------------------------------------- dynamics
def preference_dynamics(latents: xr.Dataset, trials: xr.Dataset) -> pd.DataFrame:
    """Trial-to-trial change of the choice preference after each action x outcome (Ji-An, Benna & Mattar 2025).

    Works for any model whose latents hold ``policy`` (subject, trial, action) on the trials' grid -- a fitted
    :class:`ChoiceRNN` or an RL agent replayed at its estimates -- on two-action tasks.

    Returns
    -------
    pandas.DataFrame
        One row per pair of consecutive valid trials: ``subject``, ``trial``, ``logit`` (``log p(1) / p(0)`` before
        trial ``t``'s choice), ``next_logit`` (before trial ``t + 1``), ``delta`` = ``next_logit - logit``,
        ``choice`` and ``reward`` of trial ``t``, and ``condition`` (e.g. ``"A1 rewarded"``; reward > 0 counts as
        rewarded).
    """
    pol = latents["policy"].transpose(SUBJECT, TRIAL, ACTION).values
    if pol.shape[-1] != 2:
        raise ValueError(f"preference_dynamics needs a two-action task; the policy has {pol.shape[-1]} actions")
    valid = np.asarray(trials["valid"].values, bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log(pol[..., 1]) - np.log(pol[..., 0])
    choice = np.asarray(trials["choice"].values, int)
    reward = np.asarray(trials["reward"].values, float)
    ok = valid[:, :-1] & valid[:, 1:] & np.isfinite(lg[:, :-1]) & np.isfinite(lg[:, 1:])
    i, t = np.nonzero(ok)
    c = choice[i, t]
    r = reward[i, t] > 0
    return pd.DataFrame({
        "subject": trials[SUBJECT].values[i], "trial": trials[TRIAL].values[t], "logit": lg[i, t],
        "next_logit": lg[i, t + 1], "delta": lg[i, t + 1] - lg[i, t], "choice": c, "reward": reward[i, t],
        "condition": [f"A{int(a)} {'rewarded' if w else 'unrewarded'}" for a, w in zip(c, r)]})


def plot_dynamics(df: pd.DataFrame, ax: Any = None, *, title: str | None = None, source: str | None = None):
    """Scatter of the preference change against the preference, one colour per action x outcome.

    Parameters
    ----------
    df : DataFrame from :func:`preference_dynamics`
    ax : matplotlib Axes, optional
    title, source : str, optional
        Title, and a note naming the data (printed under the axis).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.8))
    colours = {"A0 rewarded": "tab:blue", "A0 unrewarded": "tab:cyan", "A1 rewarded": "tab:red",
               "A1 unrewarded": "tab:orange"}
    for cond in sorted(df["condition"].unique()):
        d = df[df["condition"] == cond]
        ax.scatter(d["logit"], d["delta"], s=6, alpha=0.5, color=colours.get(cond), label=cond)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("preference logit log p(A1)/p(A0) on trial t (nats)")
    ax.set_ylabel("change of the logit to trial t+1 (nats)")
    if title:
        ax.set_title(title, fontsize=9)
    if source:
        ax.annotate(f"data: {source}", (0, -0.2), xycoords="axes fraction", fontsize=7, va="top")
    ax.legend(fontsize=7, markerscale=2)
    return ax
