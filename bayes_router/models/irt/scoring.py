"""Held-out log scores of reliability models on new questions, with intervals.

Two scores per test question q (higher is better; natural log):

* per call: sum over q's calls of log E_theta[p(y_qm | theta)] (the log pointwise predictive
  density, each call predicted alone);
* joint: log E_theta[p(y_q1, ..., y_qM | theta)], all of q's calls predicted together. For v1 the
  calls are independent given theta; for the IRT model they share the unknown difficulty, so the
  joint density integrates it once per draw (Gauss-Hermite), which is where correlated errors
  across models show.

Questions are independent, calls of one question are not, so intervals come from the spread of
the per-question scores (mean +- 1.96 standard errors), and a difference between two models is
taken question by question (paired).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from bayes_router.models.irt.prediction import ability_draws, hermite_rule


def _log_bernoulli(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    P = np.clip(P.astype(np.float64), 1e-12, 1 - 1e-12)
    return np.where(y[None, :], np.log(P), np.log1p(-P))


def _per_question(values: np.ndarray, qids: np.ndarray) -> pd.Series:
    return pd.Series(values).groupby(qids).sum()


def per_call_scores(model, calls: pd.DataFrame, **predict_kwargs) -> pd.Series:
    """Per test question: the sum over its calls of log E_theta p(y | theta), (questions,)."""
    return per_call_scores_from(model.p_correct(calls, **predict_kwargs).values, calls)


def per_call_scores_from(P: np.ndarray, calls: pd.DataFrame) -> pd.Series:
    """:func:`per_call_scores` from posterior draws ``P`` of P(correct), (draws, calls)."""
    ll = _log_bernoulli(P, calls["correct"].to_numpy(dtype=bool))
    lpd = logsumexp(ll, axis=0) - np.log(ll.shape[0])
    return _per_question(lpd, calls["question_id"].to_numpy())


def joint_scores_independent(model, calls: pd.DataFrame, **predict_kwargs) -> pd.Series:
    """Per test question: log E_theta prod_m p(y_qm | theta) for a model whose calls are
    independent given theta (v1)."""
    P = model.p_correct(calls, **predict_kwargs).values
    ll = _log_bernoulli(P, calls["correct"].to_numpy(dtype=bool))
    codes, qids = pd.factorize(calls["question_id"].to_numpy())
    per_q = np.zeros((ll.shape[0], len(qids)))
    np.add.at(per_q.T, codes, ll.T)
    return pd.Series(logsumexp(per_q, axis=0) - np.log(ll.shape[0]), index=qids).sort_index()


def joint_scores_irt(model, calls: pd.DataFrame, n_draws: int | None = None, questions=None) -> pd.Series:
    """Per NEW test question: log E_theta integral prod_m p(y_qm | theta, d) Normal(d; text . w, sigma) dd."""
    from bayes_router.models.reliability.prediction import thinned

    calls = calls.reset_index(drop=True)
    d = model._posterior_draws()
    sel = thinned(d["alpha"].shape[0], n_draws)
    m_idx, s_idx = model.design.codes(calls)
    s_idx = np.where(s_idx < 0, -1, s_idx)
    X = model._new_question_features(calls, np.ones(len(calls), dtype=bool), questions)
    ab = ability_draws(d, sel, m_idx, s_idx, len(model.subjects)).astype(np.float64)
    disc = d["discrimination"][sel][:, m_idx].astype(np.float64)
    mu = d["text_weight"][sel].astype(np.float64) @ X.T
    sd = d["sigma_difficulty"][sel].astype(np.float64)[:, None]
    sign = np.where(calls["correct"].to_numpy(dtype=bool), 1.0, -1.0)
    codes, qids = pd.factorize(calls["question_id"].to_numpy())
    points, weights = hermite_rule(model.irt_config["quadrature_nodes"])
    per_node = []
    for t in points.astype(np.float64):
        eta = ab - disc * (mu + sd * t)
        ll = -np.logaddexp(0.0, -sign * eta)  # log sigmoid(+-eta)
        per_q = np.zeros((len(sel), len(qids)))
        np.add.at(per_q.T, codes, ll.T)
        per_node.append(per_q)
    joint = logsumexp(np.stack(per_node), axis=0, b=weights.astype(np.float64)[:, None, None])
    return pd.Series(logsumexp(joint, axis=0) - np.log(len(sel)), index=qids).sort_index()


def summarize(scores: pd.Series, n_calls_per_question: float = 1.0) -> dict:
    """Mean per question (divided by ``n_calls_per_question`` for a per-call figure) and its 95% interval."""
    v = scores.to_numpy(dtype=float) / n_calls_per_question
    se = v.std(ddof=1) / np.sqrt(len(v))
    return {"mean": float(v.mean()), "ci95": [float(v.mean() - 1.96 * se), float(v.mean() + 1.96 * se)],
            "n_questions": int(len(v))}


def paired_difference(a: pd.Series, b: pd.Series, n_calls_per_question: float = 1.0) -> dict:
    """``a - b`` question by question (same questions), summarized as :func:`summarize`."""
    a, b = a.sort_index(), b.sort_index()
    if not a.index.equals(b.index):
        raise ValueError("paired_difference: the two score series cover different questions")
    return summarize(a - b, n_calls_per_question)
