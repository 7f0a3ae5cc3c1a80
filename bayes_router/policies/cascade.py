"""The ``cascade`` policies: cheapest -> mid -> largest, stop at the first confident answer.

Tier i is called on every question still open; the question stops there when the
post-call confidence of that answer clears ``threshold``. Questions that reach the last
tier take its answer whatever its confidence. Every tier invoked is charged (through
:meth:`TestCalls.call`).

Post-call confidence = the posterior-mean p(correct) of the post-call ReliabilityModel
for that very answer (the public MMLU-Pro logs have no self-reported confidence: the
post-call model uses the parsed hurdle, so an unparsed answer has confidence 0 and always
escalates, and the completion-token count).

``cascade-confidence`` (:class:`ConfidenceCascadePolicy`) is the same walk on the model's
own stated confidence instead, as the three-tier confidence-cascade write-ups describe.
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
            raise InputError(f"policy {self.name}: tiers {unknown or tiers} are not in the pool {ctx.models}")
        super().fit(ctx)
        self.tiers_ = tiers
        self._fit_signal(ctx)
        return self

    def _fit_signal(self, ctx: RoutingContext) -> None:
        ctx.reliability("post")  # fit (or reuse) on train now, not during routing

    def _confidence(self, obs: pd.DataFrame, pre: pd.DataFrame) -> np.ndarray:
        """The confidence of each observed answer, shape (rows,): here the post-call p(correct)."""
        rows = obs.merge(pre, on=["question_id", "model"], how="left", validate="one_to_one")
        return self.ctx_.reliability("post").p_correct_mean(rows)

    def route(self, calls: TestCalls) -> pd.Series:
        self._check_fitted()
        pre = calls.precall().drop(columns=["prompt_tokens"])
        thr = float(self.params["threshold"])
        open_q = np.asarray(calls.question_ids, dtype=np.int64)
        answers = pd.Series(None, index=pd.Index(open_q, name="question_id"), name="answer", dtype=object)
        records = []
        for i, model in enumerate(self.tiers_):
            if len(open_q) == 0:
                break
            obs = calls.call(open_q, [model] * len(open_q))
            conf = self._confidence(obs, pre)
            last = i == len(self.tiers_) - 1
            stop = np.ones(len(open_q), bool) if last else cascade_stops(conf, thr)
            preds = obs["pred"].to_numpy(dtype=object)
            answers.loc[open_q[stop]] = [None if pd.isna(p) else str(p) for p in preds[stop]]
            records.append(pd.DataFrame({"question_id": open_q, "tier": i, "model": model,
                                         "confidence": conf, "stopped": stop}))
            open_q = open_q[~stop]
        self.decisions_ = pd.concat(records, ignore_index=True)
        return answers


@register
class ConfidenceCascadePolicy(CascadePolicy):
    """``cascade-confidence``: the same cascade, stopping on the model's own STATED confidence.

    Each tier's answer carries the confidence the model wrote (the log's ``confidence``, in
    [0, 1]; the calibration study asked for 0-100%, a 1-5 scale maps to 0.2 steps); the
    question stops at the first answer stated at ``threshold`` or more. An answer without a
    stated confidence or without a parsable letter never stops the cascade (the next tier is
    asked), and the last tier answers whatever it says. Every tier invoked is charged. Nothing
    is fitted: the threshold is the knob its frontier sweeps, denser near 1 where stated
    confidences pile up (0.9, 0.95, 1.0). Needs a log with stated confidence: ``fit`` refuses
    a train log in which a tier has none.
    """

    name = "cascade-confidence"
    needs_confidence = True
    knob_grid = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97, 0.99, 1.0, 1.01)
    defaults = {"threshold": 0.9, "tiers": None}

    def _fit_signal(self, ctx: RoutingContext) -> None:
        log = ctx.train_log[ctx.train_log["model"].isin(self.tiers_)]
        stated = log.groupby("model", observed=True)["confidence"].count()
        missing = [m for m in self.tiers_ if int(stated.get(m, 0)) == 0]
        if missing:
            raise InputError(f"policy {self.name}: the log has no stated confidence (column 'confidence') "
                             f"for {missing}")

    def _confidence(self, obs: pd.DataFrame, pre: pd.DataFrame) -> np.ndarray:
        conf = pd.to_numeric(obs["confidence"], errors="coerce").to_numpy(dtype=float)
        parsed = obs["parsed"].to_numpy(dtype=bool)
        return np.where(parsed & np.isfinite(conf), conf, -np.inf)  # -inf: never clears a threshold
