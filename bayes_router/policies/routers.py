"""Learned routers in the style of RouteLLM: scikit-learn estimators of p(correct) from question texts.

Each router subclasses :class:`sklearn.base.BaseEstimator` (``repr``, ``get_params``,
``set_params`` and ``sklearn.base.clone`` work): ``fit(questions, Y)`` with ``Y`` the
(n_questions, n_models) 0/1 correctness of the TRAIN questions (a DataFrame names the
models), and ``p_correct(questions)`` the predicted p(correct), a DataFrame questions x
models, a ``random_state`` and no hidden global state. The policies that route with them
live in :mod:`bayes_router.policies.learned`; scikit-learn is imported only here, so
importing the policy registry stays cheap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator


class _TextFeatures:
    """TF-IDF of the question text (+ subject one-hot + standardized log length), fitted on train."""

    def __init__(self, max_features: int = 20000, with_meta: bool = True):
        self.max_features = max_features
        self.with_meta = with_meta

    def fit(self, questions: pd.DataFrame) -> _TextFeatures:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.tfidf_ = TfidfVectorizer(
            max_features=self.max_features, ngram_range=(1, 2), min_df=2, sublinear_tf=True,
            stop_words="english",
        )
        texts = questions["text"].fillna("").astype(str)
        try:
            self.tfidf_.fit(texts)
        except ValueError:  # tiny corpora: every bigram appears once
            self.tfidf_.set_params(min_df=1).fit(texts)
        self.subjects_ = sorted(questions["subject"].astype(str).unique())
        loglen = np.log1p(texts.str.len().to_numpy(float))
        self.len_mean_, self.len_sd_ = float(loglen.mean()), float(loglen.std() or 1.0)
        return self

    def transform(self, questions: pd.DataFrame):
        from scipy import sparse

        texts = questions["text"].fillna("").astype(str)
        x = self.tfidf_.transform(texts)
        if not self.with_meta:
            return x.tocsr()
        subj = questions["subject"].astype(str).to_numpy()
        onehot = np.stack([subj == s for s in self.subjects_], axis=1).astype(float)
        z = ((np.log1p(texts.str.len().to_numpy(float)) - self.len_mean_) / self.len_sd_)[:, None]
        return sparse.hstack([x, sparse.csr_matrix(onehot), sparse.csr_matrix(z)]).tocsr()


def _check_xy(questions: pd.DataFrame, Y) -> tuple[np.ndarray, list]:
    """(Y as a float array, the model names: Y's columns when a DataFrame, else 0..n_models-1)."""
    models = list(Y.columns) if isinstance(Y, pd.DataFrame) else None
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 2 or Y.shape[0] != len(questions):
        raise ValueError(f"Y must be (n_questions, n_models); got {Y.shape} for {len(questions)} questions")
    return Y, models if models is not None else list(range(Y.shape[1]))


def _frame(questions: pd.DataFrame, P: np.ndarray, models: list) -> pd.DataFrame:
    """p(correct) as a DataFrame: one row per question (indexed by question_id where the frame has it)."""
    index = (pd.Index(questions["question_id"].to_numpy(), name="question_id") if "question_id" in questions
             else questions.index)
    return pd.DataFrame(np.asarray(P, dtype=float), index=index, columns=pd.Index(models, name="model"))


class KNNRouter(BaseEstimator):
    """p(correct) of each model = smoothed mean correctness of the k nearest train questions.

    ``prior_strength`` pseudo-questions at the model's train accuracy are added to the k
    neighbours (weighted by cosine similarity), so rare neighbourhoods shrink to the mean.
    """

    def __init__(self, n_neighbors: int = 20, prior_strength: float = 2.0, random_state: int | None = None):
        self.n_neighbors = n_neighbors
        self.prior_strength = prior_strength
        self.random_state = random_state

    def fit(self, questions: pd.DataFrame, Y) -> KNNRouter:
        from sklearn.neighbors import NearestNeighbors

        Y, self.models_ = _check_xy(questions, Y)
        self.features_ = _TextFeatures(with_meta=False).fit(questions)
        X = self.features_.transform(questions)
        k = min(self.n_neighbors, X.shape[0])
        self.nn_ = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X)
        self.Y_ = Y
        self.base_rate_ = Y.mean(axis=0)
        return self

    def p_correct(self, questions: pd.DataFrame) -> pd.DataFrame:
        """Predicted p(correct), questions x models."""
        X = self.features_.transform(questions)
        dist, idx = self.nn_.kneighbors(X)
        w = np.clip(1.0 - dist, 0.0, None) + 1e-6  # cosine similarity as weight
        num = np.einsum("qk,qkm->qm", w, self.Y_[idx]) + self.prior_strength * self.base_rate_
        return _frame(questions, num / (w.sum(axis=1, keepdims=True) + self.prior_strength), self.models_)


class MFRouter(BaseEstimator):
    """Logistic matrix factorization with text features for new questions.

    ``logit p[q, m] = b_m + (x_q W) . v_m`` with ``x_q`` = [truncated-SVD of TF-IDF
    (``n_components``), subject one-hot, log length], W: (features, dim), V: (models, dim).
    Fitted by L-BFGS on the mean Bernoulli log-loss + ``alpha`` (||W||^2 + ||V||^2).
    """

    def __init__(self, dim: int = 16, n_components: int = 64, alpha: float = 1e-3, max_iter: int = 500,
                 random_state: int | None = 0):
        self.dim = dim
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.random_state = random_state

    def _dense_features(self, questions: pd.DataFrame) -> np.ndarray:
        texts = questions["text"].fillna("").astype(str)
        t = self.svd_.transform(self.features_.tfidf_.transform(texts))
        subj = questions["subject"].astype(str).to_numpy()
        onehot = np.stack([subj == s for s in self.features_.subjects_], axis=1).astype(float)
        z = ((np.log1p(texts.str.len().to_numpy(float)) - self.features_.len_mean_) / self.features_.len_sd_)
        X = np.hstack([t, onehot, z[:, None]])
        return (X - self.x_mean_) / self.x_sd_ if hasattr(self, "x_mean_") else X

    def fit(self, questions: pd.DataFrame, Y) -> MFRouter:
        from scipy.optimize import minimize
        from sklearn.decomposition import TruncatedSVD

        Y, self.models_ = _check_xy(questions, Y)
        self.features_ = _TextFeatures(with_meta=False).fit(questions)
        T = self.features_.tfidf_.transform(questions["text"].fillna("").astype(str))
        n_comp = max(1, min(self.n_components, T.shape[1] - 1, T.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=n_comp, random_state=self.random_state).fit(T)
        X = self._dense_features(questions)
        self.x_mean_, self.x_sd_ = X.mean(axis=0), X.std(axis=0) + 1e-8
        X = (X - self.x_mean_) / self.x_sd_
        n, d = X.shape
        M, k = Y.shape[1], self.dim
        rng = np.random.default_rng(self.random_state)
        base = np.clip(Y.mean(axis=0), 1e-3, 1 - 1e-3)
        theta0 = np.concatenate([
            rng.normal(0, 0.01, d * k), rng.normal(0, 0.1, M * k), np.log(base / (1 - base)),
        ])
        alpha = self.alpha

        def unpack(theta):
            return theta[: d * k].reshape(d, k), theta[d * k: d * k + M * k].reshape(M, k), theta[d * k + M * k:]

        def loss_grad(theta):
            W, V, b = unpack(theta)
            U = X @ W
            s = U @ V.T + b
            loss = np.mean(np.logaddexp(0, s) - Y * s) * M + alpha * (np.sum(W * W) + np.sum(V * V))
            G = (1 / (1 + np.exp(-s)) - Y) / n
            gW = X.T @ (G @ V) + 2 * alpha * W
            gV = G.T @ U + 2 * alpha * V
            gb = G.sum(axis=0)
            return loss, np.concatenate([gW.ravel(), gV.ravel(), gb])

        res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        self.W_, self.V_, self.b_ = unpack(res.x)
        self.converged_ = bool(res.success)
        return self

    def p_correct(self, questions: pd.DataFrame) -> pd.DataFrame:
        """Predicted p(correct), questions x models."""
        X = self._dense_features(questions)
        s = (X @ self.W_) @ self.V_.T + self.b_
        return _frame(questions, 1 / (1 + np.exp(-s)), self.models_)


class ClassifierRouter(BaseEstimator):
    """One L2 logistic regression per model on TF-IDF + subject one-hot + log length."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, random_state: int | None = 0):
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, questions: pd.DataFrame, Y) -> ClassifierRouter:
        from sklearn.linear_model import LogisticRegression

        Y, self.models_ = _check_xy(questions, Y)
        self.features_ = _TextFeatures(with_meta=True).fit(questions)
        X = self.features_.transform(questions)
        self.estimators_ = []
        for j in range(Y.shape[1]):
            y = Y[:, j].astype(int)
            if y.min() == y.max():  # a model always right (or wrong) on train: constant
                self.estimators_.append(float(y[0]))
                continue
            clf = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
            self.estimators_.append(clf.fit(X, y))
        return self

    def p_correct(self, questions: pd.DataFrame) -> pd.DataFrame:
        """Predicted p(correct), questions x models."""
        X = self.features_.transform(questions)
        cols = [
            np.full(X.shape[0], est) if isinstance(est, float) else est.predict_proba(X)[:, 1]
            for est in self.estimators_
        ]
        return _frame(questions, np.stack(cols, axis=1), self.models_)
