"""The one way to choose questions and split them into train and test.

Used by ``evaluate``, ``fit``, the notebooks and the tests alike. Splits are by
question (never by row), so no test question is seen by any fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_router.errors import InputError


def questions_answered_by_all(log: pd.DataFrame, models: Sequence[str]) -> np.ndarray:
    """Sorted ids of the questions that every model in ``models`` has a row for."""
    models = list(models)
    unknown = sorted(set(models) - set(log["model"].unique()))
    if unknown:
        raise InputError(f"models not in the log: {unknown} (the log has {sorted(log['model'].unique())})")
    sub = log[log["model"].isin(models)]
    counts = sub.groupby("question_id")["model"].nunique()
    return np.sort(counts.index[counts == len(set(models))].to_numpy(dtype=np.int64))


def answer_key_conflicts(
    log: pd.DataFrame, models: Sequence[str], question_ids: Sequence[int] | None = None
) -> np.ndarray:
    """Sorted ids of the questions whose ``answer`` (key) differs among the rows of ``models``.

    Sources graded against different revisions of a key (the MMLU-Pro key was revised), so
    one question can carry two keys in one pool. ``question_ids`` restricts the search; a
    frame without an ``answer`` column has no conflicts.
    """
    if "answer" not in log.columns:
        return np.array([], dtype=np.int64)
    sub = log[log["model"].isin(list(models))]
    if question_ids is not None:
        sub = sub[sub["question_id"].isin(pd.Index(np.asarray(question_ids, dtype=np.int64)))]
    keys = sub.groupby("question_id")["answer"].nunique(dropna=False)
    return np.sort(keys.index[keys > 1].to_numpy(dtype=np.int64))


def sample_questions(
    log: pd.DataFrame, models: Sequence[str], n_questions: int | None = None, seed: int = 0,
    exclude_answer_key_conflicts: bool = True,
) -> np.ndarray:
    """``n_questions`` ids (all if None) drawn without replacement from those every model answered.

    By default a question whose key differs among the pool's rows is left out before the
    draw (:func:`answer_key_conflicts`), so every question is scored against one key and a
    model's accuracy on the sample is the mean of its rows' ``correct``.
    """
    ids = questions_answered_by_all(log, models)
    if exclude_answer_key_conflicts:
        ids = np.setdiff1d(ids, answer_key_conflicts(log, models, ids))
    if len(ids) == 0:
        raise InputError(f"no question is answered by every model in {list(models)}"
                         + (" with one answer key" if exclude_answer_key_conflicts else ""))
    if n_questions is None or n_questions >= len(ids):
        return ids
    if n_questions < 2:
        raise InputError(f"--questions must be at least 2, got {n_questions}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=n_questions, replace=False))


def train_test_split(question_ids: Sequence[int], test_frac: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split question ids into (train, test), each sorted; the same seed gives the same split."""
    if not 0.0 < test_frac < 1.0:
        raise InputError(f"--test-frac must be in (0, 1), got {test_frac}")
    ids = np.asarray(sorted(set(int(q) for q in question_ids)), dtype=np.int64)
    if len(ids) < 2:
        raise InputError("need at least 2 questions to split into train and test")
    rng = np.random.default_rng(seed + 7919)  # offset: independent of the sampling draw above
    perm = rng.permutation(ids)
    n_test = min(max(1, int(round(test_frac * len(ids)))), len(ids) - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def rows_for(log: pd.DataFrame, models: Sequence[str], question_ids: Sequence[int]) -> pd.DataFrame:
    """The rows of ``log`` for these models and questions."""
    qset = pd.Index(np.asarray(question_ids, dtype=np.int64))
    return log[log["model"].isin(list(models)) & log["question_id"].isin(qset)].reset_index(drop=True)
