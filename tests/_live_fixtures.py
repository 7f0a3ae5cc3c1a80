"""A SIMULATED cached log for the live-collection tests: questions with lettered options,
three models with confidence and latency, and a price table matching the simulation."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from bayes_router.data.io import write_call_log
from bayes_router.data.simulate import simulate_call_log
from bayes_router.data.tokens import format_question

MODELS = ["small", "mid", "big"]
FAKE_KEY = "sk-test-FAKEKEY-0123456789abcdefXYZ"


def write_simulated_log(folder: Path, n_questions: int = 60, seed: int = 3) -> tuple[Path, Path]:
    """(log path, price table path) of a SIMULATED log whose question texts carry their options."""
    log, questions, truth = simulate_call_log(n_questions, models=MODELS, with_confidence=True,
                                              with_latency=True, seed=seed)
    n_opt = log.drop_duplicates("question_id").set_index("question_id")["n_options"]
    questions["text"] = [
        format_question(f"{text} (simulated question {qid})", [f"option {k} of {qid}" for k in range(n_opt[qid])])
        for qid, text in zip(questions["question_id"], questions["text"], strict=True)
    ]
    path = write_call_log(log, folder / "simulated.parquet", questions=questions)
    prices = folder / "prices.csv"
    pd.DataFrame({"model": MODELS, "usd_per_m_input": truth.usd_per_m,
                  "usd_per_m_output": truth.usd_per_m}).to_csv(prices, index=False)
    return path, prices


def collect_cmd(base_url: str, qsrc: Path, store: Path, prices: Path, *extra: str) -> list[str]:
    """The command line of a `bayes-router collect` subprocess with fast retry settings."""
    return [sys.executable, "-m", "bayes_router.cli", "collect", "--base-url", base_url, "--models", ",".join(MODELS),
            "--questions", str(qsrc), "--prices", str(prices), "--store", str(store),
            "--backoff-base", "0.02", "--timeout", "10", "--no-progress", *extra]
