"""Calibration of the confidence a model STATES about its own answer.

Where a call log has the model's own stated confidence (the ``confidence`` column, in
[0, 1]; the calibration study asked for "Confidence (0-100)"), three predictors of
P(correct) are compared per model on the held-out questions of an evaluation's split:

* ``stated``: the raw stated confidence;
* ``stated_ts``: the stated confidence after temperature scaling
  (:class:`bayes_router.models.calibration.TemperatureScaling`, one temperature per model
  fitted on the TRAIN questions). A stated 0% or 100% would stay fixed under temperature
  scaling (a logit of +-inf), so stated values are read within [0.01, 0.99] first;
* ``bayes_post``: the posterior-mean post-call p(correct) of the Bayesian reliability model
  (given), when one is available.

All three are scored on the same rows: the test calls of the model that carry a stated
confidence (an unparsed answer with a stated confidence counts, as wrong). Metrics: ECE
(equal-width bins), Brier score and log loss with bootstrap intervals
(:func:`bayes_router.models.calibration.calibration_metrics`); the overconfidence gap (mean
stated confidence minus accuracy); the *overconfident-wrong rate*, the share of wrong answers
stated at 0.9 or more; and the AUROC of the stated confidence (how well it separates right
from wrong answers, whatever its calibration).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.models.calibration import (
    TemperatureScaling,
    calibration_metrics,
    plot_reliability_diagram,
    reliability_table,
)
from bayes_router.study.metrics import bootstrap_indices, percentile_ci

#: Stated confidence is read within these bounds before temperature scaling (see module doc).
STATED_CLIP = (0.01, 0.99)
#: The level at which a wrong answer counts as overconfident.
OVERCONFIDENT_AT = 0.9
PREDICTORS = ("stated", "stated_ts", "bayes_post")


def overconfident_wrong_rate(correct, stated, level: float = OVERCONFIDENT_AT) -> float:
    """Share of the wrong answers (with a stated confidence) stated at ``level`` or more; NaN if
    none is wrong. ``correct``: (n,) bool; ``stated``: (n,) in [0, 1], NaN where none was stated."""
    c = np.asarray(correct, dtype=bool)
    s = np.asarray(stated, dtype=float)
    wrong = ~c & np.isfinite(s)
    return float((s[wrong] >= level).mean()) if wrong.any() else float("nan")


def auroc(correct, score) -> float:
    """Area under the ROC curve of ``score`` for separating right (1) from wrong (0) answers
    (Mann-Whitney, ties counted one half); NaN when one class is empty."""
    from scipy.stats import rankdata

    y = np.asarray(correct, dtype=bool)
    s = np.asarray(score, dtype=float)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def stated_predictions(log: pd.DataFrame, models: Sequence[str], train_ids, test_ids,
                       bayes_post: pd.Series | None = None) -> pd.DataFrame:
    """The three predictors on the test calls with a stated confidence, one row per call.

    ``log``: a call log with stated confidence; ``bayes_post``: optional posterior-mean post-call
    p(correct) indexed by (question_id, model) for the test calls. Returns columns model,
    question_id, correct, stated, stated_ts, bayes_post (NaN where not given), temperature.
    """
    rows = log[log["model"].isin(list(models))]
    out = []
    for m in models:
        own = rows[rows["model"] == m]
        train = own[own["question_id"].isin(train_ids) & own["confidence"].notna()]
        test = own[own["question_id"].isin(test_ids) & own["confidence"].notna()]
        if train.empty or test.empty:
            raise InputError(f"model {m!r}: no stated confidence (column 'confidence') on the train or test questions")
        ts = TemperatureScaling().fit(np.clip(train["confidence"].to_numpy(float), *STATED_CLIP),
                                      train["correct"].to_numpy(bool))
        stated = test["confidence"].to_numpy(float)
        frame = pd.DataFrame({
            "model": m, "question_id": test["question_id"].to_numpy(np.int64),
            "correct": test["correct"].to_numpy(bool), "stated": stated,
            "stated_ts": ts.transform(np.clip(stated, *STATED_CLIP)), "temperature": ts.temperature_,
        })
        if bayes_post is not None:
            key = pd.MultiIndex.from_arrays([frame["question_id"], frame["model"]])
            frame["bayes_post"] = bayes_post.reindex(key).to_numpy(dtype=float)
        else:
            frame["bayes_post"] = np.nan
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def stated_calibration_table(predictions: pd.DataFrame, n_bins: int = 15, n_boot: int = 200,
                             seed: int = 0) -> pd.DataFrame:
    """Per model and predictor: ECE, Brier, log loss (95% bootstrap intervals), and for the raw
    stated confidence the accuracy, mean stated, overconfidence gap, overconfident-wrong rate
    (each with an interval) and AUROC. One row per (model, predictor); ``n`` calls."""
    records = []
    for m, g in predictions.groupby("model", sort=False):
        y = g["correct"].to_numpy(bool)
        for pred in PREDICTORS:
            p = g[pred].to_numpy(float)
            if not np.isfinite(p).all():
                continue
            rec = {"model": m, "predictor": pred, "temperature": float(g["temperature"].iloc[0])
                   if pred == "stated_ts" else np.nan}
            rec.update(calibration_metrics(y, p, n_bins=n_bins, n_boot=n_boot, seed=seed))
            if pred == "stated":
                rec.update(_stated_extras(y, p, n_boot, seed))
            records.append(rec)
    return pd.DataFrame.from_records(records)


def _stated_extras(y: np.ndarray, stated: np.ndarray, n_boot: int, seed: int) -> dict:
    idx = bootstrap_indices(len(y), max(n_boot, 1), seed)
    gap = stated - y
    wrong = ~y
    ocw = [overconfident_wrong_rate(y[r], stated[r]) for r in idx]
    return {
        "accuracy": float(y.mean()),
        "overconfidence_gap": float(gap.mean()), "overconfidence_gap_ci95": percentile_ci(gap[idx].mean(axis=1)),
        "overconfident_wrong_rate": overconfident_wrong_rate(y, stated),
        "overconfident_wrong_rate_ci95": percentile_ci(np.asarray(ocw)[np.isfinite(ocw)]) if wrong.any() else None,
        "n_wrong": int(wrong.sum()),
        "auroc": auroc(y, stated),
    }


def plot_stated_reliability(predictions: pd.DataFrame, n_bins: int = 10, ncols: int = 3):
    """Reliability diagrams, one panel per model: raw stated confidence, temperature-scaled
    stated confidence and the Bayesian post-call probability (where given). Returns the figure."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(predictions["model"]))
    nrows = int(np.ceil(len(models) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.0 * nrows), squeeze=False)
    styles = {"stated": ("C3", "stated"), "stated_ts": ("C1", "stated, temperature-scaled"),
              "bayes_post": ("C0", "Bayesian post-call")}
    for ax, m in zip(axes.ravel(), models, strict=False):
        g = predictions[predictions["model"] == m]
        y = g["correct"].to_numpy(bool)
        for pred, (color, label) in styles.items():
            p = g[pred].to_numpy(float)
            if np.isfinite(p).all():
                table = reliability_table(y, p, n_bins)
                plot_reliability_diagram(table=table, ax=ax, label=label, color=color, show_counts=pred == "stated")
        ax.set_title(f"{m} (n={len(g)})", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes.ravel()[len(models):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def pool_stated_calibration(log: pd.DataFrame, models: Sequence[str], n_questions: int | None, test_frac: float,
                            seed: int, sampler_config: dict | None = None, bayes: bool = True):
    """The three predictors of one pool on THE split of :func:`bayes_router.study.evaluate.prepare`
    (the same questions, split and seed as notebook 03's evaluation of the pool).

    ``bayes``: also fit (on the train questions) the post-call reliability model and add its
    posterior-mean p(correct). Returns (predictions as in :func:`stated_predictions`,
    {stage: ConvergenceReport} of the fits made, empty without ``bayes``).
    """
    from bayes_router.study.evaluate import prepare
    from bayes_router.study.notebook import load_or_fit_posteriors, posterior_mean_p_correct

    setup = prepare(log, list(models), None, n_questions, test_frac, seed=seed, sampler_config=sampler_config)
    post, reports = None, {}
    if bayes:
        posts = load_or_fit_posteriors(setup, stages=("post",))
        test = setup.test_rows
        p = posterior_mean_p_correct(posts.models["post"], test)
        post = pd.Series(p, index=pd.MultiIndex.from_arrays([test["question_id"].to_numpy(), test["model"].to_numpy()]))
        reports = posts.convergence()
    pred = stated_predictions(log, models, setup.train_question_ids, setup.test_question_ids, post)
    return pred, reports


def plot_models_overview(raw: pd.DataFrame, title: str):
    """One point per model: ECE of its raw stated confidence and its overconfident-wrong rate
    against its accuracy (``raw``: the ``stated`` rows of :func:`stated_calibration_table`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(raw["accuracy"], raw["ece_equal_width"], s=14, label="ECE of stated confidence")
    ax.scatter(raw["accuracy"], raw["overconfident_wrong_rate"], s=14, marker="x",
               label=f"share of wrong answers stated >= {OVERCONFIDENT_AT}")
    ax.axhline(0.05, color="grey", ls=":", lw=1, label="ECE 0.05")
    ax.set_xlabel("accuracy on the held-out questions")
    ax.set_ylabel("ECE / share")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return fig
