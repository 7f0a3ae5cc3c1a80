"""Hand-made call logs and stubbed reliability models for exact policy tests (P2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_router.data.schema import validate_call_log
from bayes_router.models.reliability import ReliabilityModel

#: USD per million tokens (same for input and output), per model.
PRICES = {"small": 1.0, "mid": 4.0, "big": 10.0}
PROMPT = 1000


def make_log(rows) -> pd.DataFrame:
    """rows: (question_id, model, answer, pred or None, completion_tokens) -> a valid call log."""
    recs = []
    for qid, model, answer, pred, ctoks in rows:
        recs.append({
            "question_id": qid, "model": model, "subject": "math", "source": "hand-made",
            "question_chars": 200, "n_options": 4, "answer": answer, "pred": pred,
            "parsed": pred is not None, "correct": pred == answer, "prompt_tokens": PROMPT,
            "completion_tokens": ctoks, "cost_usd": (PROMPT + ctoks) * PRICES[model] / 1e6,
            "confidence": np.nan, "latency_s": np.nan, "log_source": "hand-made",
        })
    df = pd.DataFrame.from_records(recs)
    df["pred"] = df["pred"].astype("string")
    return validate_call_log(df, "<hand-made log>")


class StubReliability:
    """p_correct returning fixed probabilities: pre-call by model; post-call by model and
    whether the answer was short (completion_tokens < 100), 0 when unparsed. One draw: (1, rows)."""

    def __init__(self, stage: str, pre: dict, post_short: dict | None = None, post_long: dict | None = None):
        self.stage, self.pre = stage, pre
        self.post_short, self.post_long = post_short or {}, post_long or {}
        self.covariates_used = ["parsed", "completion_tokens"] if stage == "post" else []

    p_correct_mean = ReliabilityModel.p_correct_mean  # the package's one posterior-mean rule, on this p_correct

    def p_correct(self, calls: pd.DataFrame, n_draws=None) -> xr.DataArray:
        models = calls["model"].astype(str).to_numpy()
        if self.stage == "pre":
            p = np.array([self.pre[m] for m in models])
        else:
            short = calls["completion_tokens"].to_numpy() < 100
            p = np.array([self.post_short[m] if s else self.post_long[m] for m, s in zip(models, short, strict=True)])
            p = np.where(calls["parsed"].to_numpy(dtype=bool), p, 0.0)
        return xr.DataArray(p[None, :].astype(np.float32), dims=("draw", "call"),
                            coords={"draw": [0], "call": calls.index.to_numpy()})


_REAL: dict = {}


def real_trio_context(real_trio_log, trio):
    """One small real-data setup (400 trio questions, 30% test, seed 0, short NUTS runs) shared by
    the real smoke tests of both policy test files, so the reliability fits run once per session."""
    from bayes_router.data.split import rows_for, sample_questions, train_test_split
    from bayes_router.policies import RoutingContext

    if "ctx" not in _REAL:
        ids = sample_questions(real_trio_log, trio, 400, seed=0)
        train_ids, test_ids = train_test_split(ids, 0.3, seed=0)
        _REAL["ctx"] = RoutingContext(train_log=rows_for(real_trio_log, trio, train_ids), models=list(trio),
                                      cost_scale=100.0, seed=0,
                                      sampler_config={"draws": 100, "tune": 150, "chains": 1})
        _REAL["test"] = rows_for(real_trio_log, trio, test_ids)
    return _REAL["ctx"], _REAL["test"]
