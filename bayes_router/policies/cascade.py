"""The ``cascade`` policy: cheapest -> mid -> largest, stop at the first confident answer.

Tier i is called on every question still open; the question stops there when the
post-call confidence of that answer clears ``threshold``. Questions that reach the last
tier take its answer whatever its confidence. Every tier invoked is charged (through
:meth:`TestCalls.call`).

Post-call confidence = the posterior-mean p(correct) of the post-call ReliabilityModel
for that very answer (the public MMLU-Pro logs have no self-reported confidence: the
post-call model uses the parsed hurdle, so an unparsed answer has confidence 0 and always
escalates, and the completion-token count).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.policies import register
from bayes_router.policies.base import Policy, RoutingContext, TestCalls


def cascade_stops(confidence, threshold: float) -> np.ndarray:
    """Which answers end the cascade: ``confidence >= threshold`` (a probability in [0, 1])."""
    return np.asarray(confidence, dtype=float) >= float(threshold)


@register
class CascadePolicy(Policy):
    """Cheapest -> largest tiers of the pool, stop at the first answer whose post-call
    confidence is at least ``threshold`` (the knob swept for its frontier).

    ``tiers``: the models in calling order (default: the pool sorted by mean train cost per
    call, cheapest first).
    After :meth:`route`, ``decisions_`` holds per question the tiers called, the stopping
    tier and the confidence of each answer.
    """

    name = "cascade"
    may_call_twice = True
    knob = "threshold"
    knob_grid = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)
    defaults = {"threshold": 0.6, "tiers": None}

    def fit(self, ctx: RoutingContext) -> CascadePolicy:
        if self.params["tiers"]:
            tiers = list(self.params["tiers"])
        else:  # cheapest first by mean TRAIN cost per call (USD), whatever order the pool was given in
            mean_cost = ctx.train_log.groupby("model", observed=True)["cost_usd"].mean()
            tiers = sorted(ctx.models, key=lambda m: (float(mean_cost.get(m, np.inf)), ctx.models.index(m)))
        unknown = [m for m in tiers if m not in ctx.models]
        if unknown or not tiers:
            raise InputError(f"policy cascade: tiers {unknown or tiers} are not in the pool {ctx.models}")
        super().fit(ctx)
        self.tiers_ = tiers
        ctx.reliability("post")  # fit (or reuse) on train now, not during routing
        return self

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        post_rm = self.ctx_.reliability("post")
        pre = calls.precall().drop(columns=["prompt_tokens"])
        thr = float(self.params["threshold"])
        open_q = np.asarray(calls.question_ids, dtype=np.int64)
        answers = pd.Series(None, index=pd.Index(open_q, name="question_id"), name="answer", dtype=object)
        records = []
        for i, model in enumerate(self.tiers_):
            if len(open_q) == 0:
                break
            obs = calls.call(open_q, [model] * len(open_q))
            rows = obs.merge(pre, on=["question_id", "model"], how="left", validate="one_to_one")
            conf = np.asarray(post_rm.predict_proba(rows), dtype=float).mean(axis=0)
            last = i == len(self.tiers_) - 1
            stop = np.ones(len(open_q), bool) if last else cascade_stops(conf, thr)
            preds = obs["pred"].to_numpy(dtype=object)
            answers.loc[open_q[stop]] = [None if pd.isna(p) else str(p) for p in preds[stop]]
            records.append(pd.DataFrame({"question_id": open_q, "tier": i, "model": model,
                                         "confidence": conf, "stopped": stop}))
            open_q = open_q[~stop]
        self.decisions_ = pd.concat(records, ignore_index=True)
        return answers
