"""The baseline users compare us with: a plain per-subject scipy script (Rescorla-Wagner + softmax, MAP).

Standalone on purpose (imports only numpy, scipy and pandas), so ``benchmarks/cold_start.py`` can time it as a
whole fresh process on the same CSV as ``neurorl fit``. For each subject: ``scipy.optimize.minimize``
(L-BFGS-B, finite-difference gradients, the box |theta| <= 15) of the negative log posterior written as a Python
trial loop, on the unconstrained scale (logit alpha, log beta) with N(0, 2.5^2) priors -- the model, priors and
box of ``neurorl fit --agent q_learning --method map`` (q0 = 0). Writes one row per subject.

Run:  python benchmarks/plain_scipy_fit.py data.csv estimates.csv
"""

from __future__ import annotations

import math
import sys

BOUND = 15.0
PRIOR_SD = 2.5
Q0 = 0.0  # neurorl's q_learning default (hBayesDM's convention)


def plain_nll(x, choice, reward, prior_sd=None, q0=0.5):
    """Negative log-likelihood (or log posterior) of one subject: the loop people write by hand."""
    alpha = 1.0 / (1.0 + math.exp(-x[0]))
    beta = math.exp(x[1])
    q = [q0, q0]
    nll = 0.0
    for c, r in zip(choice, reward):
        z0, z1 = beta * q[0], beta * q[1]
        m = max(z0, z1)
        lse = m + math.log(math.exp(z0 - m) + math.exp(z1 - m))
        nll -= (z1 if c == 1 else z0) - lse
        q[c] += alpha * (r - q[c])
    if prior_sd is not None:
        nll += 0.5 * (x[0] ** 2 + x[1] ** 2) / prior_sd ** 2 + 2 * math.log(prior_sd * math.sqrt(2 * math.pi))
    return nll


def main(path_in: str, path_out: str) -> None:
    import numpy as np
    import pandas as pd
    from scipy.optimize import minimize

    df = pd.read_csv(path_in)
    rows = []
    for subject, d in df.groupby("subject", sort=True):
        d = d.sort_values("trial")
        c, r = d["choice"].astype(int).tolist(), d["reward"].astype(float).tolist()
        res = minimize(plain_nll, np.zeros(2), args=(c, r, PRIOR_SD, Q0), method="L-BFGS-B",
                       bounds=[(-BOUND, BOUND)] * 2)
        rows.append({"subject": subject, "alpha": 1.0 / (1.0 + math.exp(-res.x[0])), "beta": math.exp(res.x[1]),
                     "neg_log_posterior": res.fun, "converged": bool(res.success)})
    out = pd.DataFrame(rows)
    out.to_csv(path_out, index=False)
    print(f"{len(out)} subjects; mean alpha {out['alpha'].mean():.3f}, beta {out['beta'].mean():.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
