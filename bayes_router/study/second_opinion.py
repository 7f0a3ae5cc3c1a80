"""What can a second opinion add at best? A model-free ceiling for every two-call policy.

A second call can only change the outcome on a question where exactly one of the two answers is
right, and only if the final answer is then the right one of two that disagree. So for a first
model F and a candidate second model M, over the test questions and calling M on every one:

* the **perfect pick**: P(F wrong, M right), what any two-call policy gains at most over F alone;
* a **learned pick**: a gradient-boosted classifier fitted on the TRAIN questions where exactly one
  of F and M is right, of "M's is the right one", from both calls' signals (extracted or not, log
  completion tokens, logit stated confidence where logged), the subject and the question's log
  length; on test, where the two letters differ, M's answer replaces F's when the classifier gives
  it more than 1/2. A flexible point-estimate pick, to set beside a router's own pick.

Gains are final right minus F right, per test question, with paired bootstrap intervals. Calling M
only where a router expects it to pay is cheaper and gains at most what calling it everywhere
with the same pick gains (roughly: a pick can also hurt), so the learned row bounds, in practice,
what a router with these signals reaches at that cost. The ceiling reads only the log: no
reliability model, nothing simulated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.models.reliability.design import signal_missing_mask, transform
from bayes_router.study.metrics import bootstrap_indices, bootstrap_mean_ci

#: Fewest train questions with exactly one of the two right for a learned pick to be fitted.
MIN_PICK_TRAIN = 30
#: The columns the ceiling reads from the log (besides the signals, which may be absent).
NEEDED = ("question_id", "model", "subject", "question_chars", "pred", "parsed", "correct", "cost_usd")


def _wide(rows: pd.DataFrame, model: str, question_ids: np.ndarray) -> pd.DataFrame:
    """``model``'s call on each of ``question_ids`` (one row each, in that order), with its signals."""
    calls = rows[rows["model"] == model].drop_duplicates("question_id").set_index("question_id")
    missing = np.setdiff1d(question_ids, calls.index.to_numpy())
    if len(missing):
        raise InputError(f"second-opinion ceiling: {model} has no call on {len(missing)} of the questions "
                         f"(e.g. {missing[:3].tolist()}); use questions every model answered")
    calls = calls.loc[question_ids]
    out = pd.DataFrame({"correct": calls["correct"].to_numpy(dtype=bool),
                        "letter": calls["pred"].astype(str).where(calls["parsed"].to_numpy(dtype=bool), "").to_numpy(),
                        "parsed": calls["parsed"].to_numpy(dtype=float),
                        "cost": calls["cost_usd"].to_numpy(dtype=float)})
    out["log_tokens"] = _signal(calls, "completion_tokens", "log1p")
    out["logit_confidence"] = _signal(calls, "confidence", "logit")  # NaN: none stated
    return out


def _signal(calls: pd.DataFrame, column: str, how: str) -> np.ndarray:
    """The transformed signal of each call, NaN where missing or not logged (the classifier takes NaN
    as its own branch: a missing confidence says something, as in the reliability model)."""
    if column not in calls.columns:
        return np.full(len(calls), np.nan)
    x = transform(pd.to_numeric(calls[column], errors="coerce").to_numpy(dtype=float), how)
    return np.where(signal_missing_mask(calls, column), np.nan, x)


def _features(first: pd.DataFrame, second: pd.DataFrame, meta: pd.DataFrame) -> np.ndarray:
    """Both calls' signals, the subject code (last column, categorical) and the log question length."""
    cols = [first[c].to_numpy() for c in ("parsed", "log_tokens", "logit_confidence")]
    cols += [second[c].to_numpy() for c in ("parsed", "log_tokens", "logit_confidence")]
    cols += [np.log(np.maximum(meta["question_chars"].to_numpy(dtype=float), 1.0)), meta["subject_code"].to_numpy()]
    return np.column_stack(cols).astype(float)


def _learned_switch(train: tuple, test: tuple, seed: int) -> tuple[np.ndarray | None, int]:
    """Where to take the second answer on the test questions (bool, or None when too few train
    questions have exactly one right), and how many train questions the pick was fitted on."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    (f_tr, s_tr, m_tr), (f_te, s_te, m_te) = train, test
    one = f_tr["correct"].to_numpy() ^ s_tr["correct"].to_numpy()
    labels = s_tr["correct"].to_numpy()[one]
    if one.sum() < MIN_PICK_TRAIN or labels.all() or not labels.any():
        return None, int(one.sum())
    X = _features(f_tr, s_tr, m_tr)[one]
    logged = ~np.isnan(X).all(axis=0)  # a signal the log lacks (MMLU-Pro: confidence) is left out
    # shallow trees, few leaves: a few hundred labelled questions, and the pick must not memorise them
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                                         categorical_features=[int(logged.sum()) - 1], random_state=seed)
    clf.fit(X[:, logged], labels)
    differ = f_te["letter"].to_numpy() != s_te["letter"].to_numpy()
    p_second = clf.predict_proba(_features(f_te, s_te, m_te)[:, logged])[:, 1]
    return differ & (p_second > 0.5), int(one.sum())


def _meta(rows: pd.DataFrame, question_ids: np.ndarray, subjects: pd.Index) -> pd.DataFrame:
    first = rows.drop_duplicates("question_id").set_index("question_id").loc[question_ids]
    return pd.DataFrame({"question_chars": first["question_chars"].to_numpy(dtype=float),
                         "subject_code": subjects.get_indexer(first["subject"].astype(str))})


def second_opinion_ceiling(log: pd.DataFrame, first: str, candidates: Sequence[str], train_question_ids,
                           test_question_ids, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One row per candidate second model after ``first``: ``cost_ratio`` (mean cost of both calls on
    every test question over ``first``'s alone), ``p_exactly_one_right``, ``perfect_pick_gain`` and
    ``learned_pick_gain`` (final right - first right, mean over test questions) with their ``_ci95``,
    ``learned_pick_right`` (share of the exactly-one-right test questions where the learned pick
    ends right) and ``n_pick_train``; sorted by learned gain. Gains are probabilities (x 100: points).
    The split is the caller's: fit only on ``train_question_ids``; one answer key per question is
    the caller's too (:func:`bayes_router.data.split.sample_questions` leaves out conflicts)."""
    missing = [c for c in NEEDED if c not in log.columns]
    if missing:
        raise InputError(f"second-opinion ceiling: the log lacks column(s) {missing}")
    train = np.asarray(train_question_ids, dtype=np.int64)
    test = np.asarray(test_question_ids, dtype=np.int64)
    if len(test) == 0 or len(train) == 0:
        raise InputError("second-opinion ceiling: needs train and test questions")
    if np.intersect1d(train, test).size:
        raise InputError("second-opinion ceiling: a question is both train and test")
    models = [first, *[m for m in candidates if m != first]]
    if len(models) == 1:
        raise InputError(f"second-opinion ceiling: no candidate second model besides {first}")
    rows = log[log["model"].isin(models) & log["question_id"].isin(np.concatenate([train, test]))]
    subjects = pd.Index(sorted(rows["subject"].astype(str).unique()))
    meta = {"train": _meta(rows, train, subjects), "test": _meta(rows, test, subjects)}
    calls = {m: {"train": _wide(rows, m, train), "test": _wide(rows, m, test)} for m in models}
    idx = bootstrap_indices(len(test), n_boot, seed)
    f = calls[first]["test"]
    y_first = f["correct"].to_numpy()
    records = []
    for m in models[1:]:
        s = calls[m]["test"]
        y_second = s["correct"].to_numpy()
        switch, n_train = _learned_switch((calls[first]["train"], calls[m]["train"], meta["train"]),
                                          (f, s, meta["test"]), seed)
        one = y_first ^ y_second
        perfect = (~y_first & y_second).astype(float)
        record = {"second": m, "cost_ratio": float((f["cost"] + s["cost"]).mean() / f["cost"].mean()),
                  "p_exactly_one_right": float(one.mean()),
                  "perfect_pick_gain": float(perfect.mean()), "perfect_pick_gain_ci95": bootstrap_mean_ci(perfect, idx, level),
                  "learned_pick_gain": None, "learned_pick_gain_ci95": None, "learned_pick_right": None,
                  "n_pick_train": n_train}
        if switch is not None:
            final = np.where(switch, y_second, y_first)
            gain = final.astype(float) - y_first
            record.update(learned_pick_gain=float(gain.mean()), learned_pick_gain_ci95=bootstrap_mean_ci(gain, idx, level),
                          learned_pick_right=float(final[one].mean()) if one.any() else None)
        records.append(record)
    table = pd.DataFrame.from_records(records)
    order = table["learned_pick_gain"].fillna(-np.inf).sort_values(ascending=False).index
    return table.loc[order].reset_index(drop=True)


def most_accurate_on_train(log: pd.DataFrame, models: Sequence[str], train_question_ids) -> str:
    """The model with the highest accuracy on the train questions (ties: the cheaper): the reference
    "best single model", chosen without looking at the test questions."""
    rows = log[log["model"].isin(list(models)) & log["question_id"].isin(np.asarray(train_question_ids))]
    by = rows.groupby("model").agg(accuracy=("correct", "mean"), cost=("cost_usd", "mean"))
    return str(by.sort_values(["accuracy", "cost"], ascending=[False, True]).index[0])


def plot_ceiling(table: pd.DataFrame, first: str, title: str):
    """Gain over ``first`` alone (points, 95% intervals) against the cost ratio of calling each
    candidate on every question: the perfect pick (open) and the learned pick (filled)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    x = table["cost_ratio"].to_numpy()
    for col, style, label in (("perfect_pick_gain", dict(mfc="none", color="0.5"), "perfect pick (ceiling)"),
                              ("learned_pick_gain", dict(color="C0"), "learned pick (gradient boosting, fitted on train)")):
        ok = table[col].notna().to_numpy()
        y = 100 * table.loc[ok, col].to_numpy(dtype=float)
        ci = 100 * np.array(table.loc[ok, f"{col}_ci95"].tolist(), dtype=float).reshape(-1, 2)
        ax.errorbar(x[ok], y, yerr=[y - ci[:, 0], ci[:, 1] - y], fmt="o", capsize=2, label=label, **style)
    ax.axhline(0.0, color="k", lw=0.8)
    best = table.dropna(subset=["learned_pick_gain"]).head(3)  # the table is sorted by learned gain
    for _, row in best.iterrows():
        ax.annotate(row["second"], (row["cost_ratio"], 100 * row["learned_pick_gain"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=7, color="C0")
    ax.set_xscale("log")
    times = plt.FuncFormatter(lambda v, _: f"{v:g}\u00d7")
    ax.xaxis.set_major_formatter(times)
    ax.xaxis.set_minor_formatter(times)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(f"cost of both calls on every question / cost of {first} alone (log scale)")
    ax.set_ylabel(f"accuracy gain over {first} alone (points)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
