"""A first look at a call log: accuracy by model and subject, cost per model,
token distributions, and the questions every model fails.

Every function takes a validated call log (see :mod:`bayes_router.data.schema`) and
returns a pandas DataFrame (or a dict of plain numbers for JSON), so the
notebook ``01_data_overview`` only draws. Plotting functions take and return
matplotlib axes. Intervals on accuracies are Jeffreys intervals: the central
95% of the Beta(k + 1/2, n - k + 1/2) posterior of a success rate with k
successes in n calls.

Units: costs in USD, tokens as counted by :mod:`bayes_router.data.tokens`
(prompt tokens of MMLU-Pro logs are estimates that include a fixed few-shot
overhead; see the importer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_router.data.split import questions_answered_by_all, sample_questions
from bayes_router.errors import InputError

#: Jeffreys prior Beta(1/2, 1/2) for the intervals on success rates.
JEFFREYS = 0.5


def jeffreys_interval(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of the Beta(k + 1/2, n - k + 1/2) posterior; broadcasts over arrays.

    ``k`` successes out of ``n`` trials (n > 0). Returns (lower, upper) in [0, 1].
    As Brown, Cai and DasGupta (2001) recommend, the lower bound is 0 when k = 0
    and the upper bound 1 when k = n, so the interval always holds k / n.
    """
    from scipy.stats import beta

    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise InputError("jeffreys_interval: need 0 <= k <= n and n > 0")
    tail = (1.0 - level) / 2.0
    a, b = k + JEFFREYS, n - k + JEFFREYS
    lo = np.where(k == 0, 0.0, beta.ppf(tail, a, b))
    hi = np.where(k == n, 1.0, beta.ppf(1.0 - tail, a, b))
    return lo, hi


def restrict(
    log: pd.DataFrame,
    models: Sequence[str] | None = None,
    n_questions: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """The rows of ``log`` for ``models`` (all if None) on ``n_questions`` questions they all answered.

    Questions are drawn with :func:`bayes_router.data.split.sample_questions` (the one
    way to choose questions), so every model is compared on the same questions.
    """
    models = sorted(log["model"].unique()) if models is None else list(models)
    ids = sample_questions(log, models, n_questions, seed=seed)
    keep = log["model"].isin(models) & log["question_id"].isin(pd.Index(ids))
    return log[keep].reset_index(drop=True)


def accuracy_by_model_and_subject(log: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Long table, one row per (model, subject): n_calls, n_correct, accuracy, acc_lo, acc_hi.

    Accuracy counts unparsed answers (pred null) as wrong, as the schema does.
    ``acc_lo``/``acc_hi`` bound the Jeffreys interval at ``level``.
    """
    g = log.groupby(["model", "subject"], observed=True)["correct"]
    out = pd.DataFrame({"n_calls": g.size(), "n_correct": g.sum().astype("int64")}).reset_index()
    out["accuracy"] = out["n_correct"] / out["n_calls"]
    out["acc_lo"], out["acc_hi"] = jeffreys_interval(out["n_correct"], out["n_calls"], level)
    out["model"] = out["model"].astype(str)
    out["subject"] = out["subject"].astype(str)
    return out


def accuracy_matrix(log: pd.DataFrame) -> pd.DataFrame:
    """Accuracy as a (model x subject) matrix, models sorted by overall accuracy (best first)."""
    long = accuracy_by_model_and_subject(log)
    mat = long.pivot(index="model", columns="subject", values="accuracy")
    order = log.groupby("model", observed=True)["correct"].mean().sort_values(ascending=False)
    return mat.loc[[str(m) for m in order.index]]


def model_summary(log: pd.DataFrame, prices: pd.DataFrame | None = None, level: float = 0.95) -> pd.DataFrame:
    """One row per model, sorted by mean cost per call (cheapest first).

    Columns: n_calls, accuracy, acc_lo, acc_hi (Jeffreys), parse_rate (share of
    calls with an extracted answer), cost_per_call_usd (mean USD per call),
    total_cost_usd, cost_per_correct_usd (total USD / correct answers; inf if
    none), prompt_tokens_mean, completion_tokens_mean (tokens per call) and, if
    ``prices`` (from :func:`bayes_router.data.prices.load_prices`) is given,
    usd_per_m_input and usd_per_m_output.
    """
    g = log.groupby("model", observed=True)
    out = pd.DataFrame(
        {
            "n_calls": g.size(),
            "n_correct": g["correct"].sum().astype("int64"),
            "parse_rate": g["parsed"].mean(),
            "cost_per_call_usd": g["cost_usd"].mean(),
            "total_cost_usd": g["cost_usd"].sum(),
            "prompt_tokens_mean": g["prompt_tokens"].mean(),
            "completion_tokens_mean": g["completion_tokens"].mean(),
        }
    )
    out.index = out.index.astype(str)
    out.index.name = "model"
    out["accuracy"] = out["n_correct"] / out["n_calls"]
    out["acc_lo"], out["acc_hi"] = jeffreys_interval(out["n_correct"], out["n_calls"], level)
    with np.errstate(divide="ignore"):
        out["cost_per_correct_usd"] = np.where(
            out["n_correct"] > 0, out["total_cost_usd"] / out["n_correct"].clip(lower=1), np.inf
        )
    if prices is not None:
        known = out.index.intersection(prices.index)
        out["usd_per_m_input"] = prices["usd_per_m_input"].reindex(out.index)
        out["usd_per_m_output"] = prices["usd_per_m_output"].reindex(out.index)
        if len(known) < len(out):
            missing = sorted(set(out.index) - set(known))
            raise InputError(f"price table has no row for {missing[:5]}")
    cols = [
        "n_calls", "accuracy", "acc_lo", "acc_hi", "parse_rate", "cost_per_call_usd",
        "total_cost_usd", "cost_per_correct_usd", "prompt_tokens_mean", "completion_tokens_mean",
    ]
    cols += [c for c in ("usd_per_m_input", "usd_per_m_output") if c in out.columns]
    return out[cols].sort_values(["cost_per_call_usd", "accuracy"], ascending=[True, False])


def token_quantiles(log: pd.DataFrame, quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> pd.DataFrame:
    """Quantiles of prompt and completion tokens per call, per model.

    Index: model; columns: a MultiIndex (``prompt_tokens`` | ``completion_tokens``, quantile).
    """
    q = list(quantiles)
    parts = {
        col: log.groupby("model", observed=True)[col].quantile(q).unstack()
        for col in ("prompt_tokens", "completion_tokens")
    }
    out = pd.concat(parts, axis=1)
    out.index = out.index.astype(str)
    return out


def models_correct_per_question(log: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """For each question every model in ``models`` answered: how many of them got it right.

    Columns: question_id, subject, source, n_models, n_correct. Only questions
    answered by all the models are kept, so the counts are comparable.
    """
    models = sorted(log["model"].unique()) if models is None else list(models)
    ids = questions_answered_by_all(log, models)
    sub = log[log["model"].isin(models) & log["question_id"].isin(pd.Index(ids))]
    g = sub.groupby("question_id")
    out = pd.DataFrame(
        {
            "subject": g["subject"].first().astype(str),
            "source": g["source"].first().astype(str),
            "n_models": g["model"].nunique().astype("int64"),
            "n_correct": g["correct"].sum().astype("int64"),
        }
    ).reset_index()
    return out


def questions_every_model_fails(log: pd.DataFrame, models: Sequence[str] | None = None) -> pd.DataFrame:
    """The questions that no model in ``models`` (all models in the log if None) answers correctly.

    Same columns as :func:`models_correct_per_question`, restricted to n_correct == 0.
    These bound any router from above: no choice of model gets them right.
    """
    per_q = models_correct_per_question(log, models)
    return per_q[per_q["n_correct"] == 0].reset_index(drop=True)


def all_fail_by_subject(log: pd.DataFrame, models: Sequence[str] | None = None, level: float = 0.95) -> pd.DataFrame:
    """Per subject: n_questions, n_all_fail, share_all_fail (with Jeffreys interval), sorted by share."""
    per_q = models_correct_per_question(log, models)
    per_q["all_fail"] = per_q["n_correct"] == 0
    g = per_q.groupby("subject")["all_fail"]
    out = pd.DataFrame({"n_questions": g.size(), "n_all_fail": g.sum().astype("int64")})
    out["share_all_fail"] = out["n_all_fail"] / out["n_questions"]
    out["share_lo"], out["share_hi"] = jeffreys_interval(out["n_all_fail"], out["n_questions"], level)
    return out.sort_values("share_all_fail", ascending=False)


def all_fail_examples(log: pd.DataFrame, fails: pd.DataFrame, texts: pd.DataFrame | None, n: int = 5,
                      max_chars: int = 600) -> str:
    """The first ``n`` questions of ``fails`` (:func:`questions_every_model_fails`) as text:
    id, subject, correct answer and the question's text (cut at ``max_chars``), from
    ``texts`` (question_id, text; None: the texts are not beside the log)."""
    if texts is None:
        return "question texts not shown: none beside the log"
    text = texts.set_index("question_id")["text"]
    subject = fails.set_index("question_id")["subject"]
    lines = []
    for qid in fails["question_id"].head(n):
        answer = log.loc[log["question_id"] == qid, "answer"].iloc[0]
        lines.append(f"--- question {qid} ({subject.at[qid]}), correct answer {answer}")
        lines.append(str(text.get(qid, "(text not stored)"))[:max_chars])
    return "\n".join(lines)


def overview_headline(log: pd.DataFrame, models: Sequence[str] | None = None) -> dict:
    """Headline numbers of the overview as plain JSON-able values.

    Keys: n_rows, n_models, n_questions, n_subjects, models (per model: accuracy
    with 95% Jeffreys interval, parse_rate, cost_per_call_usd, mean tokens),
    oracle_accuracy (share of common questions some model gets right: the
    ceiling of any router over these models), n_all_fail, share_all_fail.
    """
    models = sorted(log["model"].unique()) if models is None else list(models)
    sub = log[log["model"].isin(models)]
    summary = model_summary(sub)
    per_q = models_correct_per_question(sub, models)
    n_common = len(per_q)
    n_fail = int((per_q["n_correct"] == 0).sum())
    return {
        "n_rows": int(len(sub)),
        "n_models": len(models),
        "n_questions": int(sub["question_id"].nunique()),
        "n_common_questions": int(n_common),
        "n_subjects": int(sub["subject"].nunique()),
        "models": {
            m: {
                "n_calls": int(r.n_calls),
                "accuracy": float(r.accuracy),
                "accuracy_ci95": [float(r.acc_lo), float(r.acc_hi)],
                "parse_rate": float(r.parse_rate),
                "cost_per_call_usd": float(r.cost_per_call_usd),
                "prompt_tokens_mean": float(r.prompt_tokens_mean),
                "completion_tokens_mean": float(r.completion_tokens_mean),
            }
            for m, r in summary.iterrows()
        },
        "oracle_accuracy": float(1.0 - n_fail / n_common) if n_common else None,
        "n_all_fail": n_fail,
        "share_all_fail": float(n_fail / n_common) if n_common else None,
    }


# --------------------------------------------------------------------------- plots


def plot_accuracy_heatmap(matrix: pd.DataFrame, ax=None):
    """Heatmap of a (model x subject) accuracy matrix with values written in the cells."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.75 * matrix.shape[1], 1.0 + 0.4 * matrix.shape[0]))
    im = ax.imshow(matrix.to_numpy(dtype=float), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    if matrix.size <= 600:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                v = matrix.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.5 else "black")
    ax.set_xlabel("subject (MMLU-Pro category)")
    ax.set_ylabel("model (best overall first)")
    ax.set_title("Accuracy by model and subject")
    ax.figure.colorbar(im, ax=ax, label="accuracy (share of questions correct)")
    return ax


def plot_cost_vs_accuracy(summary: pd.DataFrame, ax=None, annotate: bool = True):
    """Mean cost per call (USD, log scale) against accuracy with 95% intervals, one point per model."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 5.5))
    yerr = np.vstack([summary["accuracy"] - summary["acc_lo"], summary["acc_hi"] - summary["accuracy"]])
    ax.errorbar(summary["cost_per_call_usd"], summary["accuracy"], yerr=yerr, fmt="o", ms=5,
                capsize=2, label="model (accuracy, 95% interval)")
    if annotate:
        for m, r in summary.iterrows():
            ax.annotate(m, (r.cost_per_call_usd, r.accuracy), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("mean cost per call (USD, log scale)")
    ax.set_ylabel("accuracy (share of questions correct)")
    ax.set_title("Cost and accuracy per model")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def plot_token_distributions(log: pd.DataFrame, axes=None, models: Sequence[str] | None = None):
    """Box plots of prompt and completion tokens per call, per model (two axes, shared model order)."""
    import matplotlib.pyplot as plt

    models = sorted(log["model"].unique()) if models is None else list(models)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 0.8 + 0.35 * len(models)), sharey=True)
    for ax, col, label in zip(axes, ("prompt_tokens", "completion_tokens"),
                              ("prompt tokens per call (estimated, incl. few-shot prefix)",
                               "completion tokens per call"), strict=True):
        data = [log.loc[log["model"] == m, col].to_numpy() for m in models]
        ax.boxplot(data, orientation="horizontal", showfliers=False, whis=(5, 95), tick_labels=models)
        if col == "completion_tokens":  # heavy right tail: a few runaway generations
            ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel(f"{label} (tokens{', symlog scale' if col == 'completion_tokens' else ''})")
        ax.set_title(f"{col.replace('_', ' ')} (box 25-75%, whiskers 5-95%)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_ylabel("model")
    return axes


def plot_models_correct_histogram(per_question: pd.DataFrame, ax=None):
    """Histogram of how many models answer each question correctly (0 = every model fails)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    n_models = int(per_question["n_models"].max()) if len(per_question) else 0
    counts = per_question["n_correct"].value_counts().reindex(range(n_models + 1), fill_value=0)
    bars = ax.bar(counts.index, counts.to_numpy(), color="tab:blue", label="questions")
    bars[0].set_color("tab:red")
    bars[0].set_label("every model fails")
    ax.set_xlabel(f"number of models (of {n_models}) answering correctly")
    ax.set_ylabel("questions (count)")
    ax.set_title("How many models get each question right")
    ax.legend()
    return ax


def plot_all_fail_by_subject(table: pd.DataFrame, ax=None):
    """Horizontal bars: share of questions every model fails, per subject, with 95% intervals."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.8 + 0.35 * len(table)))
    t = table.sort_values("share_all_fail")
    err = np.vstack([t["share_all_fail"] - t["share_lo"], t["share_hi"] - t["share_all_fail"]])
    ax.barh(t.index.astype(str), t["share_all_fail"], xerr=err, capsize=2, color="tab:red",
            label="share every model fails (95% interval)")
    ax.set_xlabel("share of questions no model answers correctly")
    ax.set_ylabel("subject")
    ax.set_title("Questions every model fails, by subject")
    ax.legend(loc="lower right")
    return ax
