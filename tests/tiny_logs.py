"""Tiny hand-made call logs with known answers, for exact policy tests (not simulated draws:
every outcome and cost is written out, so expected accuracies and costs follow by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_router.data.prices import call_cost_usd
from bayes_router.data.schema import validate_call_log
from bayes_router.models.reliability import ReliabilityModel

MODELS = ["s", "m", "b"]
PRICE = {"s": 0.1, "m": 0.5, "b": 2.0}  # USD per million tokens, input and output alike


class StubReliability:
    """A stand-in pre-call reliability model with fixed p(correct) per (question, model)."""

    def __init__(self, p: dict[tuple[int, str], float], n_draws: int = 4):
        self.p = p
        self.n_draws = n_draws

    p_correct_mean = ReliabilityModel.p_correct_mean  # the package's one posterior-mean rule, on this p_correct

    def p_correct(self, calls: pd.DataFrame, n_draws=None) -> xr.DataArray:
        """The fixed p(correct) of each call, repeated over ``n_draws`` draws: DataArray (draw, call)."""
        row = np.array([self.p[(int(q), str(m))] for q, m in zip(calls["question_id"], calls["model"], strict=True)])
        return xr.DataArray(np.tile(row, (self.n_draws, 1)), dims=("draw", "call"),
                            coords={"draw": np.arange(self.n_draws), "call": calls.index.to_numpy()})


def tiny_log(correct: np.ndarray, prompt_tokens=None, completion_tokens=None, models=MODELS) -> pd.DataFrame:
    """A valid call log: question q (0..n-1) x model j, ``correct[q, j]`` known.

    Answer letter is "A"; a correct call predicts "A", a wrong one "B" (or nothing when
    ``correct`` holds -1: unparsed). Costs: call_cost_usd with PRICE per model.
    """
    correct = np.asarray(correct)
    n, k = correct.shape
    if prompt_tokens is None:
        prompt_tokens = 100 + 10 * np.arange(n)[:, None] + np.zeros((n, k), dtype=int)
    if completion_tokens is None:
        completion_tokens = 50 + 7 * np.arange(n)[:, None] + 20 * np.arange(k)[None, :]
    prompt_tokens = np.broadcast_to(prompt_tokens, (n, k))
    completion_tokens = np.broadcast_to(completion_tokens, (n, k))
    rows = []
    for q in range(n):
        for j, m in enumerate(models):
            c = int(correct[q, j])
            pred = "A" if c == 1 else ("B" if c == 0 else None)
            rows.append({
                "question_id": q, "model": m, "subject": "math" if q % 2 == 0 else "law", "source": "hand-made",
                "question_chars": 200 + 13 * q, "n_options": 4, "answer": "A", "pred": pred,
                "parsed": pred is not None, "correct": c == 1,
                "prompt_tokens": int(prompt_tokens[q, j]), "completion_tokens": int(completion_tokens[q, j]),
                "cost_usd": float(call_cost_usd(prompt_tokens[q, j], completion_tokens[q, j], PRICE.get(m, 1.0),
                                                PRICE.get(m, 1.0))),
                "confidence": np.nan, "latency_s": np.nan, "log_source": "hand-made",
            })
    df = pd.DataFrame(rows)
    df["pred"] = df["pred"].astype("string")
    return validate_call_log(df, where="tiny log")


def tiny_questions(n: int) -> pd.DataFrame:
    words = ["alpha", "beta", "gamma", "delta"]
    return pd.DataFrame({
        "question_id": np.arange(n, dtype=np.int64),
        "subject": ["math" if q % 2 == 0 else "law" for q in range(n)],
        "text": [f"question {q} about {words[q % 4]} and {words[(q // 4) % 4]}" for q in range(n)],
    })


#: 12 questions x (s, m, b): 1 right, 0 wrong, -1 unparsed.
CORRECT_12 = np.array([
    [1, 1, 1],
    [0, 1, 1],
    [0, 0, 1],
    [0, 0, 0],
    [1, 0, 1],
    [-1, 1, 1],
    [0, -1, 1],
    [1, 1, 0],
    [0, 0, -1],
    [1, 1, 1],
    [0, 1, 0],
    [0, 0, 1],
])
