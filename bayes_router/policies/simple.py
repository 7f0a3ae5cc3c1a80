"""Reference policies: ``always:<model>``, ``random`` and the ``oracle`` upper bound."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.policies import register
from bayes_router.policies.base import Policy, RoutingContext, TestCalls, answer_with


@register
class AlwaysPolicy(Policy):
    """Call one fixed model on every question (registry name ``always:<model>``)."""

    name = "always"
    defaults = {"model": None}

    def fit(self, ctx: RoutingContext) -> AlwaysPolicy:
        if self.params["model"] not in ctx.models:
            raise InputError(f"policy always:{self.params['model']}: model not in the pool {ctx.models}")
        return super().fit(ctx)

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        choice = pd.Series(self.params["model"], index=calls.question_ids)
        return answer_with(calls, choice)


@register
class RandomPolicy(Policy):
    """Call one model drawn uniformly at random per question (seeded by the run's seed).

    ``weights`` (one per pool model, optional) draws models with those probabilities.
    """

    name = "random"
    defaults = {"weights": None}

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        models = self.ctx_.models
        w = self.params["weights"]
        if w is not None:
            w = np.asarray(w, dtype=float)
            if w.shape != (len(models),) or (w < 0).any() or w.sum() <= 0:
                raise InputError(f"policy random: weights must be {len(models)} non-negative numbers")
            w = w / w.sum()
        rng = np.random.default_rng(self.ctx_.seed + 104_729)
        picks = rng.choice(len(models), size=len(calls), p=w)
        choice = pd.Series(np.asarray(models, dtype=object)[picks], index=calls.question_ids)
        return answer_with(calls, choice)


@register
class OraclePolicy(Policy):
    """Upper bound: per question, the cheapest model that answers correctly; where none
    does, the cheapest model. "Cheapest" is by the realized cost (USD) of that very call,
    ties broken by pool order. It sees outcomes (``peek_correct``): it is not a policy
    anyone can run, only the ceiling of what routing between these models can reach."""

    name = "oracle"

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        truth = calls.peek_correct()
        order = {m: i for i, m in enumerate(calls.models)}
        truth = truth.assign(
            _wrong=~truth["correct"].astype(bool), _order=truth["model"].map(order)
        ).sort_values(["question_id", "_wrong", "cost_usd", "_order"])
        # Sorted by (wrong last, cost, pool order): the first row per question is the pick.
        first = truth.drop_duplicates("question_id", keep="first").set_index("question_id")["model"]
        return answer_with(calls, first)
