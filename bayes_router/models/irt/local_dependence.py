"""Local independence of the IRT reliability model, checked by posterior predictive model checking.

The model says: given a question's difficulty (and the models' abilities), whether one model is
right tells nothing about whether another is. If two models fail together more often than their
shared difficulty explains (the same training data, the same misreading, a wrong key), the IRT
understates their joint failures and overstates what a second opinion from one after the other
can add: the question behind issue 14's whole-pool gap.

The statistic is Yen's Q3: per pair of models, the correlation over training questions of the
residuals y - P(right | draw). Its reference distribution under the model is not 0 (residuals of a
fitted model correlate about -1/(models - 1)), so it is calibrated by posterior predictive model
checking (Levy, Mislevy & Sinharay 2009): per posterior draw, Q3 of the observed outcomes against
Q3 of outcomes replicated from that draw, and ppp = P(Q3_replicated >= Q3_observed). A ppp near 0
flags a pair that fails (and succeeds) together more than the model allows; near 1, less.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError

#: Seed of the replicated outcomes (a fixed seed gives the same ppp).
REPLICATION_SEED = 20_261_129


def _residual_correlations(residuals: np.ndarray) -> np.ndarray:
    """Per draw, the (models, models) correlation over questions of ``residuals`` (draws, questions, models)."""
    r = residuals - residuals.mean(axis=1, keepdims=True)
    cov = np.einsum("dqi,dqj->dij", r, r)
    sd = np.sqrt(np.einsum("dii->di", cov))
    return cov / (sd[:, :, None] * sd[:, None, :])


def q3_ppmc(y: np.ndarray, p: np.ndarray, models, seed: int = REPLICATION_SEED) -> pd.DataFrame:
    """Posterior predictive Q3 per pair of models.

    ``y``: (questions, models) 0/1 outcomes; ``p``: (draws, questions, models) P(right) under each
    posterior draw, with each question's own difficulty. One row per pair (i < j): ``q3`` (mean over
    draws of the observed Q3), ``q3_replicated`` (mean of the replicated), ``excess`` (their
    difference) and ``ppp``."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if p.ndim != 3 or p.shape[1:] != y.shape:
        raise InputError(f"q3_ppmc: p must be (draws, {y.shape[0]}, {y.shape[1]}), got {p.shape}")
    rng = np.random.default_rng(seed)
    observed = _residual_correlations(y[None] - p)
    replicated = _residual_correlations((rng.random(p.shape) < p) - p)
    i, j = np.triu_indices(y.shape[1], k=1)
    names = list(models)
    return pd.DataFrame({
        "model_a": [names[a] for a in i], "model_b": [names[b] for b in j],
        "q3": observed[:, i, j].mean(axis=0), "q3_replicated": replicated[:, i, j].mean(axis=0),
        "excess": (observed - replicated)[:, i, j].mean(axis=0),
        "ppp": (replicated[:, i, j] >= observed[:, i, j]).mean(axis=0),
    })


def local_dependence(model, train_calls: pd.DataFrame, n_draws: int = 200, level: float = 0.05) -> pd.DataFrame:
    """:func:`q3_ppmc` of a fitted IRT model on its training questions answered by every model of the
    fit, sorted by ppp, with ``flagged``: ppp outside [level/2, 1 - level/2]. ``train_calls``: the
    calls the model was fitted on (or a subset); other questions are left out, as their difficulty
    has no posterior."""
    if getattr(model, "family", None) != "irt":
        raise InputError("local_dependence: needs a fit of the IRT family (family='irt')")
    if "p_unanswerable" in model._posterior_draws():
        # there the class is shared by a question's calls, so they are dependent given d by design
        raise InputError("local_dependence: not defined for a fit with the unanswerable class")
    calls = train_calls[train_calls["question_id"].isin(model.train_question_ids)
                        & train_calls["model"].isin(model.models)]
    calls = calls.drop_duplicates(["question_id", "model"])
    per_question = calls.groupby("question_id")["model"].nunique()
    complete = per_question.index[per_question == len(model.models)]
    if len(complete) < 50:
        raise InputError(f"local_dependence: {len(complete)} training questions are answered by every model "
                         "of the fit; need at least 50")
    calls = calls[calls["question_id"].isin(complete)].sort_values(["question_id", "model"]).reset_index(drop=True)
    order = pd.Index(sorted(model.models))  # the calls' model order within each question
    p = model.as_stage("pre").p_correct(calls, n_draws=n_draws, known_difficulty=True).values
    p = p.reshape(p.shape[0], len(complete), len(order))
    y = calls["correct"].to_numpy(dtype=float).reshape(len(complete), len(order))
    table = q3_ppmc(y, p, order)
    table["flagged"] = (table["ppp"] < level / 2) | (table["ppp"] > 1 - level / 2)
    return table.sort_values("ppp", kind="stable").reset_index(drop=True)
