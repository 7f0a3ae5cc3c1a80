"""Routing policies on learned routers in the style of RouteLLM, fitted on the TRAIN split only.

Each router (:mod:`bayes_router.policies.routers`) is a scikit-learn estimator over question
texts: ``fit(questions, Y)`` with ``Y`` the (n_questions, n_models) 0/1 correctness of the
train questions, ``p_correct(questions)`` the predicted p(correct) as a DataFrame questions x
models, a ``random_state`` and no hidden global state.

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
        self.router_ = self.make_router().fit(train_q, Y)
        self.train_question_ids_ = Y.index.to_numpy(dtype=np.int64)  # for leakage checks
        self._matrices: dict = {}
        return self

    def matrices(self, calls: TestCalls) -> tuple[np.ndarray, np.ndarray]:
        """(P_hat, C): (n_test, n_models) predicted success and expected cost (USD)."""
        key = tuple(calls.question_ids.tolist())
        if key not in self._matrices:
            pre = calls.precall()
            q = self.ctx_.questions.set_index("question_id").loc[calls.question_ids].reset_index()
            P = self.router_.p_correct(q)[self.ctx_.models]
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
        from bayes_router.policies.routers import KNNRouter

        return KNNRouter(self.params["n_neighbors"], self.params["prior_strength"], random_state=self.ctx_.seed)


@register
class MFPolicy(LearnedRouterPolicy):
    name = "mf"
    defaults = {"cost_scale": None, "dim": 16, "n_components": 64, "alpha": 1e-3}

    def make_router(self):
        from bayes_router.policies.routers import MFRouter

        return MFRouter(dim=self.params["dim"], n_components=self.params["n_components"],
                        alpha=self.params["alpha"], random_state=self.ctx_.seed)


@register
class ClassifierPolicy(LearnedRouterPolicy):
    name = "classifier"
    defaults = {"cost_scale": None, "C": 1.0}

    def make_router(self):
        from bayes_router.policies.routers import ClassifierRouter

        return ClassifierRouter(C=self.params["C"], random_state=self.ctx_.seed)


def __getattr__(name: str):
    """The routers, importable from here as before, without importing scikit-learn with the registry."""
    if name in ("KNNRouter", "MFRouter", "ClassifierRouter"):
        from bayes_router.policies import routers

        return getattr(routers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
