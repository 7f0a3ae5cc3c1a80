"""Learned routers in the style of RouteLLM, fitted on the TRAIN split only.

Each router is a scikit-learn-style estimator over question texts:
``fit(questions, Y)`` with ``Y`` the (n_questions, n_models) 0/1 correctness of
the train questions, ``predict_proba(questions) -> (n_questions, n_models)``
predicted p(correct), a ``random_state`` and no hidden global state.

* :class:`KNNRouter` (``knn``): mean correctness of the k nearest training
  questions by cosine similarity of TF-IDF vectors (smoothed toward each
  model's train accuracy).
* :class:`MFRouter` (``mf``): logistic matrix factorization of question x model
  correctness, ``logit p[q, m] = b_m + (W x_q) . v_m``, where ``x_q`` are text
  features (TF-IDF reduced by truncated SVD, subject one-hot, log length), so a
  NEW question gets its latent factors from its text (RouteLLM's MF router).
* :class:`ClassifierRouter` (``classifier``): one L2 logistic regression per model
  on TF-IDF + subject one-hot + standardized log length.

The policy calls ``argmax_m  p_hat[q, m] - cost_scale * expected_cost[q, m]`` (USD);
``cost_scale`` is its knob (default: the run's cost_scale), swept for the frontier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.policies import register
from bayes_router.policies.base import (
    Policy,
    RoutingContext,
    TestCalls,
    answer_with,
    expected_cost,
    precall_matrix,
)


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


def _check_xy(questions: pd.DataFrame, Y) -> np.ndarray:
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 2 or Y.shape[0] != len(questions):
        raise ValueError(f"Y must be (n_questions, n_models); got {Y.shape} for {len(questions)} questions")
    return Y


class KNNRouter:
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

        Y = _check_xy(questions, Y)
        self.features_ = _TextFeatures(with_meta=False).fit(questions)
        X = self.features_.transform(questions)
        k = min(self.n_neighbors, X.shape[0])
        self.nn_ = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X)
        self.Y_ = Y
        self.base_rate_ = Y.mean(axis=0)
        return self

    def predict_proba(self, questions: pd.DataFrame) -> np.ndarray:
        X = self.features_.transform(questions)
        dist, idx = self.nn_.kneighbors(X)
        w = np.clip(1.0 - dist, 0.0, None) + 1e-6  # cosine similarity as weight
        num = np.einsum("qk,qkm->qm", w, self.Y_[idx]) + self.prior_strength * self.base_rate_
        return num / (w.sum(axis=1, keepdims=True) + self.prior_strength)


class MFRouter:
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

        Y = _check_xy(questions, Y)
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

    def predict_proba(self, questions: pd.DataFrame) -> np.ndarray:
        X = self._dense_features(questions)
        s = (X @ self.W_) @ self.V_.T + self.b_
        return 1 / (1 + np.exp(-s))


class ClassifierRouter:
    """One L2 logistic regression per model on TF-IDF + subject one-hot + log length."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, random_state: int | None = 0):
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, questions: pd.DataFrame, Y) -> ClassifierRouter:
        from sklearn.linear_model import LogisticRegression

        Y = _check_xy(questions, Y)
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

    def predict_proba(self, questions: pd.DataFrame) -> np.ndarray:
        X = self.features_.transform(questions)
        cols = [
            np.full(X.shape[0], est) if isinstance(est, float) else est.predict_proba(X)[:, 1]
            for est in self.estimators_
        ]
        return np.stack(cols, axis=1)


class LearnedRouterPolicy(Policy):
    """argmax_m p_hat[q, m] - cost_scale * expected_cost[q, m] with p_hat from a text router."""

    knob = "cost_scale"
    router_params: tuple[str, ...] = ()

    def make_router(self):
        raise NotImplementedError

    def fit(self, ctx: RoutingContext) -> LearnedRouterPolicy:
        super().fit(ctx)
        if ctx.questions is None:
            raise InputError(f"policy '{self.name}' needs the question texts (LOG.questions.parquet beside the log)")
        if self.params.get("cost_scale") is None:
            self.params["cost_scale"] = float(ctx.cost_scale)
        Y = (ctx.train_log.pivot(index="question_id", columns="model", values="correct")[ctx.models]
             .astype(float))
        if Y.isna().any().any():
            raise InputError(f"policy '{self.name}': some train questions lack a row for a pool model")
        q = ctx.questions.set_index("question_id")
        missing = Y.index.difference(q.index)
        if len(missing):
            raise InputError(f"question texts missing for train questions, e.g. {missing[:5].tolist()}")
        train_q = q.loc[Y.index].reset_index()
        self.router_ = self.make_router().fit(train_q, Y.to_numpy())
        self.train_question_ids_ = Y.index.to_numpy(dtype=np.int64)  # for leakage checks
        self._matrices: dict = {}
        return self

    def matrices(self, calls: TestCalls) -> tuple[np.ndarray, np.ndarray]:
        """(P_hat, C): (n_test, n_models) predicted success and expected cost (USD)."""
        key = tuple(calls.question_ids.tolist())
        if key not in self._matrices:
            pre = calls.precall()
            q = self.ctx_.questions.set_index("question_id").loc[calls.question_ids].reset_index()
            P = self.router_.predict_proba(q)
            C = precall_matrix(pre, expected_cost(self.ctx_, pre), self.ctx_.models).reindex(calls.question_ids)
            self._matrices[key] = (np.asarray(P, float), C.to_numpy())
        return self._matrices[key]

    def knob_values(self) -> list:
        """Given values, or 0 plus a geometric grid of cost_scale (per USD) scaled so that
        cost_scale x (mean expected cost of the big model) runs from 0.01 to 10."""
        given = self.params.get("knob_values")
        if given is not None:
            return list(given)
        if not self.fitted_:
            return [self.params.get("cost_scale") or 0.0]
        log = self.ctx_.train_log
        big_cost = float(log.loc[log["model"] == self.ctx_.models[-1], "cost_usd"].mean())
        grid = np.geomspace(0.01, 10.0, 16) / max(big_cost, 1e-12)
        return [0.0] + [float(v) for v in grid]

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        P, C = self.matrices(calls)
        utility = P - float(self.params["cost_scale"]) * C
        pick = np.argmax(utility, axis=1)
        choice = pd.Series(np.asarray(self.ctx_.models, dtype=object)[pick], index=calls.question_ids)
        return answer_with(calls, choice)


@register
class KNNPolicy(LearnedRouterPolicy):
    name = "knn"
    defaults = {"cost_scale": None, "n_neighbors": 20, "prior_strength": 2.0}

    def make_router(self):
        return KNNRouter(self.params["n_neighbors"], self.params["prior_strength"], random_state=self.ctx_.seed)


@register
class MFPolicy(LearnedRouterPolicy):
    name = "mf"
    defaults = {"cost_scale": None, "dim": 16, "n_components": 64, "alpha": 1e-3}

    def make_router(self):
        return MFRouter(dim=self.params["dim"], n_components=self.params["n_components"],
                        alpha=self.params["alpha"], random_state=self.ctx_.seed)


@register
class ClassifierPolicy(LearnedRouterPolicy):
    name = "classifier"
    defaults = {"cost_scale": None, "C": 1.0}

    def make_router(self):
        return ClassifierRouter(C=self.params["C"], random_state=self.ctx_.seed)
