"""One reconciled verdict from every model-comparison criterion.

:func:`reconcile` takes what :func:`neurorl.fitting.compare.compare_table`, :func:`neurorl.fitting.compare.bms`
and a predictive criterion (exact cross-validation, :func:`neurorl.fitting.cv.cv_compare`, or Laplace-PSIS-LOO,
:func:`neurorl.fitting.loo.loo_compare`) produce, and returns one table (one row per equivalence class of models)
and one sentence: which models cannot be told apart, which is best and by how much, how sure, and -- where the
criteria disagree -- which one to trust here and why. The rules are documented in ``docs/fitting.md`` ("Which
criterion to trust"); in short:

R1. **Equivalence.** Models whose pointwise log-likelihoods are identical are one model (one row, ``A = B``).
R2. **Ties.** A model is *distinguishable* from the best by a criterion only if it is worse by more than the
    criterion's margin: the paired standard error of the pointwise difference for cross-validation / LOO,
    :data:`~neurorl.fitting.compare.MIN_DELTA_IC` (2) for BIC, :data:`MIN_DELTA_LAPLACE` (1 nat) for the Laplace log
    evidence.
R3. **Which evidence.** The Laplace log evidence is used when it is finite for every model and subject (every
    Hessian positive definite); otherwise ``-BIC/2``. BMS runs on that same evidence.
R4. **Which predictive score.** Exact cross-validation when computed. Laplace-PSIS-LOO only when it is reliable
    (no subject with ``k_approx > 0.7``, fewer than :data:`MAX_HIGH_K_FRACTION` of trials with high Pareto k);
    an unreliable LOO is not used for the verdict (``compare`` replaces the affected subjects by exact CV).
R5. **BMS.** Exceedance probabilities are reported beside the BOR. When ``BOR >= BOR_MAX`` (0.05) BMS cannot tell
    the models apart at the group level and contributes no winner, whatever its exceedance probabilities -- a high
    ``ep`` with a high BOR is an artefact of the Dirichlet posterior, not evidence.
R6. **Winner.** A model is named best only when the evidence criterion (R3) and the predictive criterion (R4) both
    name it (outside ties) and BMS (R5) does not name another; otherwise there is no winner and the sentence says
    which criterion tied or disagreed. When a criterion ties, the others are not allowed to break the tie.
R7. **Which to trust when they disagree.** For *which model generated the data* trust the evidence (Laplace if
    reliable, else BIC), because cross-validation rewards flexible models that predict as well; for *which model
    predicts new choices* trust exact cross-validation. The verdict states both and names no winner.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .compare import MIN_DELTA_IC

__all__ = ["Verdict", "reconcile", "BOR_MAX", "MIN_DELTA_LAPLACE", "MAX_HIGH_K_FRACTION", "PXP_SURE"]

#: BMS names no winner when the Bayesian omnibus risk is at least this.
BOR_MAX = 0.05
#: Laplace log-evidence differences (nats) under this are ties (a Bayes factor under e).
MIN_DELTA_LAPLACE = 1.0
#: LOO is judged unreliable when more than this fraction of trials has Pareto k above good_k.
MAX_HIGH_K_FRACTION = 0.1
#: protected exceedance probability above which BMS is "sure".
PXP_SURE = 0.95


@dataclass
class Verdict:
    """Result of :func:`reconcile`.

    Attributes
    ----------
    sentence : str
        The verdict, one sentence.
    winner : str or None
        The best model (or equivalence class ``"A = B"``), or None when the evidence does not name one.
    table : pandas.DataFrame
        One row per equivalence class: evidence and predictive differences to the best, BMS frequency, ep, pxp.
    reasons : list of str
        Why there is (or is not) a winner, one clause per criterion.
    sources : dict
        Which evidence and which predictive criterion were used, and why.
    """

    sentence: str
    winner: str | None
    table: pd.DataFrame
    reasons: list[str] = field(default_factory=list)
    sources: dict = field(default_factory=dict)

    def to_dataset(self) -> xr.Dataset:
        """The table on dim ``model_class`` with the sentence, winner, reasons and sources in ``attrs``."""
        ds = xr.Dataset.from_dataframe(self.table.rename_axis("model_class"))
        ds.attrs.update(sentence=self.sentence, winner=self.winner or "", reasons=json.dumps(self.reasons),
                        sources=json.dumps(self.sources))
        return ds

    def __str__(self) -> str:
        return self.table.to_string(float_format=lambda v: f"{v:.3g}") + "\n" + self.sentence

    __repr__ = __str__


def _best_of(scores: dict, margins: dict, higher: bool) -> tuple[str, list[str]]:
    """Best class and the classes tied with it (within their margin)."""
    sign = 1.0 if higher else -1.0
    best = max(scores, key=lambda n: sign * scores[n])
    tied = [n for n in scores if n != best and sign * (scores[best] - scores[n]) <= margins.get(n, 0.0)]
    return best, tied


def _fmt_set(names) -> str:
    return ", ".join(names)


def reconcile(table: xr.Dataset, bms: Any = None, predictive: xr.Dataset | None = None, *,
              predictive_name: str | None = None, loo_reliable: bool | None = None,
              fallback_subjects: list | None = None) -> Verdict:
    """One table and one sentence from AIC/BIC/Laplace, BMS and cross-validation (rules R1-R7 of this module).

    Parameters
    ----------
    table : xarray.Dataset
        Output of :func:`neurorl.fitting.compare.compare_table` (``equivalence_class``, ``bic_total`` and, when
        present, ``laplace_log_evidence_total``).
    bms : BMSResult or xarray.Dataset, optional
        Random-effects BMS on the evidence of R3 (``BMSResult`` or its ``to_dataset()``).
    predictive : xarray.Dataset, optional
        Output of :func:`neurorl.fitting.cv.cv_compare` (``elpd``, ``se_delta``) or
        :func:`neurorl.fitting.loo.loo_compare` (``elpd_loo``, ``se_delta``, ``n_high_k``, ``n_poor_approx``).
    predictive_name : str, optional
        How to call it in the sentence (default: "exact CV" or "LOO" from its variables).
    loo_reliable : bool, optional
        Override the reliability judgement of a LOO table (default: rule R4).
    fallback_subjects : list, optional
        Subjects whose LOO was replaced by exact CV for every model (mentioned in the sentence).

    Returns
    -------
    Verdict
    """
    names = [str(m) for m in table["model"].values]
    cls_id = table["equivalence_class"].values if "equivalence_class" in table else np.arange(len(names))
    classes: dict[int, list[str]] = {}
    for nm, c in zip(names, cls_id):
        classes.setdefault(int(c), []).append(nm)
    label = {nm: " = ".join(classes[int(c)]) for nm, c in zip(names, cls_id)}
    reps = [members[0] for members in classes.values()]  # one representative per class
    rlab = [label[r] for r in reps]
    idx = {nm: i for i, nm in enumerate(names)}
    reasons: list[str] = []
    sources: dict[str, str] = {}
    rows: dict[str, dict[str, float]] = {label[r]: {} for r in reps}
    named: dict[str, str | None] = {}

    # ---- evidence (R3)
    use_lap = "laplace_log_evidence_total" in table and bool(np.all(np.isfinite(table["laplace_log_evidence"])))
    if use_lap:
        ev = {label[r]: float(table["laplace_log_evidence_total"].values[idx[r]]) for r in reps}
        ev_name, margin, higher = "Laplace log evidence", MIN_DELTA_LAPLACE, True
        sources["evidence"] = "laplace (finite for every model and subject)"
    else:
        ev = {label[r]: float(table["bic_total"].values[idx[r]]) for r in reps}
        ev_name, margin, higher = "BIC", MIN_DELTA_IC, False
        sources["evidence"] = "bic" + (" (Laplace not finite for some subject)" if "laplace_log_evidence_total"
                                       in table else "")
    best_ev, tied_ev = _best_of(ev, {k: margin for k in ev}, higher)
    for lab in rlab:
        d = (ev[best_ev] - ev[lab]) if higher else (ev[lab] - ev[best_ev])
        rows[lab]["delta_evidence"] = d  # >= 0: how much worse than the best
        rows[lab]["delta_bic"] = float(table["bic_total"].values[idx[lab.split(" = ")[0]]]
                                       - table["bic_total"].values.min())
    unit = "nats" if use_lap else "BIC units"
    if tied_ev:
        named["evidence"] = None
        reasons.append(f"by {ev_name} {_fmt_set([best_ev] + tied_ev)} are within {margin:g} {unit} (a tie)")
    else:
        named["evidence"] = best_ev
        second = sorted((l for l in rlab if l != best_ev), key=lambda l: rows[l]["delta_evidence"])
        gap = rows[second[0]]["delta_evidence"] if second else math.inf
        reasons.append(f"{ev_name} favours {best_ev} by {gap:.1f} {unit} over {second[0] if second else '-'}")

    # ---- predictive (R4)
    pname = None
    if predictive is not None:
        is_loo = "elpd_loo" in predictive
        pname = predictive_name or ("LOO" if is_loo else f"exact CV ({predictive.attrs.get('method', 'kfold')})")
        col = "elpd_loo" if is_loo else "elpd"
        pnames = [str(m) for m in predictive["model"].values]
        reliable = True
        if is_loo and loo_reliable is None:
            n_pts = float(np.asarray(table["n_trials"].values)[0].sum())
            poor = predictive["n_poor_approx"].values if "n_poor_approx" in predictive else np.zeros(len(pnames))
            high = predictive["n_high_k"].values if "n_high_k" in predictive else np.zeros(len(pnames))
            reliable = bool(np.all(poor == 0) and np.all(high <= MAX_HIGH_K_FRACTION * n_pts))
        elif is_loo:
            reliable = bool(loo_reliable)
        sources["predictive"] = pname + ("" if reliable else " (unreliable: not used for the verdict)")
        el = {label[r]: float(predictive[col].values[pnames.index(r)]) for r in reps if r in pnames}
        best_p = max(el, key=el.get)
        # the paired SE of each class to the best: recompute relative to our best when the table's best differs
        se = {label[r]: float(predictive["se_delta"].values[pnames.index(r)]) for r in reps if r in pnames}
        for lab in el:
            rows[lab]["elpd"] = el[lab]
            rows[lab]["delta_elpd"] = el[best_p] - el[lab]
            rows[lab]["se_delta_elpd"] = se[lab]
        tied_p = [l for l in el if l != best_p and el[best_p] - el[l] <= se[l]]
        if not reliable:
            named["predictive"] = None
            reasons.append(f"{pname} is unreliable (Pareto k diagnostics) and is not used")
        elif tied_p:
            named["predictive"] = None
            worst_tie = min(tied_p, key=lambda l: el[best_p] - el[l])
            reasons.append(f"by {pname} {best_p} leads {worst_tie} by {el[best_p] - el[worst_tie]:.2f} ± "
                           f"{se[worst_tie]:.2f}, under one standard error (a tie)")
        else:
            named["predictive"] = best_p
            second = min((l for l in el if l != best_p), key=lambda l: el[best_p] - el[l], default=None)
            if second is not None:
                d, s = el[best_p] - el[second], se[second]
                reasons.append(f"{pname} favours {best_p} by {d:.1f} ± {s:.1f} nats over {second} "
                               f"({d / s if s > 0 else math.inf:.1f} SE)")
    if fallback_subjects:
        fb = [str(x) for x in fallback_subjects]
        reasons.append(f"LOO was unreliable for {len(fb)} subject(s) ({', '.join(fb[:6])}"
                       f"{', ...' if len(fb) > 6 else ''}), which were scored by exact CV for every model")

    # ---- BMS (R5)
    bor = None
    if bms is not None:
        get = (lambda k: np.asarray(getattr(bms, k).values if hasattr(getattr(bms, k, None), "values")
                                    else getattr(bms, k))) if not isinstance(bms, xr.Dataset) else \
            (lambda k: np.asarray(bms[k].values))
        freq, fsd, ep, pxp = get("frequencies"), get("frequency_sd"), get("ep"), get("pxp")
        bor = float(get("bor"))
        bnames = [str(m) for m in (bms.alpha["model"].values if not isinstance(bms, xr.Dataset)
                                   else bms["model"].values)]
        for lab in rlab:
            members = [bnames.index(m) for m in lab.split(" = ") if m in bnames]
            rows[lab]["bms_frequency"] = float(freq[members].sum())
            rows[lab]["bms_frequency_sd"] = float(np.sqrt(np.sum(fsd[members] ** 2)))
            rows[lab]["ep"] = float(ep[members].sum())
            rows[lab]["pxp"] = float(pxp[members].sum())
        top = max(rlab, key=lambda l: rows[l]["ep"])
        sources["bms"] = f"on the {sources['evidence'].split(' ')[0]} evidence"
        if bor >= BOR_MAX:
            named["bms"] = None
            reasons.append(f"BMS cannot tell the models apart (BOR = {bor:.2f} >= {BOR_MAX:g}): the exceedance "
                           f"probability {rows[top]['ep']:.2f} of {top} (pxp {rows[top]['pxp']:.2f}) is not "
                           "evidence for it")
        else:
            named["bms"] = top
            reasons.append(f"BMS (BOR = {bor:.2g}) gives {top} the largest frequency "
                           f"{rows[top]['bms_frequency']:.2f} ± {rows[top]['bms_frequency_sd']:.2f}, pxp "
                           f"{rows[top]['pxp']:.2f}")

    # ---- winner (R6, R7)
    ev_w, pr_w, bm_w = named.get("evidence"), named.get("predictive"), named.get("bms")
    pred_used = "predictive" in named and not sources.get("predictive", "").endswith("used for the verdict)")
    winner = ev_w
    if pred_used and pr_w != ev_w:
        winner = None
    if "bms" in named and bm_w != ev_w:
        winner = None
    disagree = ""
    if ev_w is not None and pred_used and pr_w is not None and ev_w != pr_w:
        disagree = (f"the criteria disagree ({ev_name}: {ev_w}; {pname}: {pr_w}): for which model generated the "
                    f"data trust {ev_name}, for predicting new choices trust {pname}")
    elif ev_w is not None and bm_w is not None and ev_w != bm_w:
        disagree = (f"the criteria disagree ({ev_name} total: {ev_w}; BMS: {bm_w}): the models differ across "
                    "subjects -- read the BMS frequencies")
    indist = [l for l in rlab if " = " in l]
    if len(rlab) == 1:  # every model in one equivalence class: there is nothing to compare (R1)
        sentence = (f"Identical models (same pointwise likelihood): {rlab[0]}. No winner: on these data the models "
                    "are one model, so no criterion can prefer one of them.")
        df = pd.DataFrame.from_dict(rows, orient="index")
        df.index.name = "model_class"
        return Verdict(sentence, None, df, ["the models are identical on these data"], sources)
    head = ""
    if indist:
        head = "Identical models (same pointwise likelihood): " + "; ".join(indist) + ". "
    if winner is not None:
        sure = ""
        if bm_w == winner and rows[winner].get("pxp", 0) >= PXP_SURE:
            sure = f" (sure: pxp {rows[winner]['pxp']:.2f})"
        sentence = head + f"Best model: {winner}{sure} -- " + "; ".join(reasons) + "."
    else:
        sentence = head + "No winner: " + (disagree + "; " if disagree else "") + "; ".join(reasons) + "."
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "model_class"
    sort_key = "delta_elpd" if ("delta_elpd" in df and df["delta_elpd"].notna().all()) else "delta_evidence"
    df = df.sort_values(sort_key)
    return Verdict(sentence, winner, df, reasons, sources)
