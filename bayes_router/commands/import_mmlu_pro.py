"""``bayes-router import-mmlu-pro SRC -o LOG.parquet [--prices CSV]``."""

from __future__ import annotations

import argparse
import time

HELP = "import the public MMLU-Pro evaluation outputs into a call log (Parquet)"
DESCRIPTION = """Import the public MMLU-Pro evaluation outputs into a call log.

SRC is a folder of model_outputs_<MODEL>_5shots.zip or .json files, or one file.
Writes LOG.parquet (one row per question x model, the call-log schema of bayes_router.data.schema) and,
beside it, LOG.questions.parquet with the question texts (for text-based routers).

Tokens: completion tokens are counted from the response text with tiktoken's
cl100k_base encoding; prompt tokens are estimated as tokens(question + options)
+ --few-shot-overhead (the 5-shot prefix is not in the files). Cost: tokens times
the price table (USD per million tokens). Nothing is written if any file is refused.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bayes_router.data.tokens import DEFAULT_FEW_SHOT_OVERHEAD

    p.add_argument("src", metavar="SRC", help="folder of model_outputs_* files, or one .zip/.json file")
    p.add_argument("-o", "--output", required=True, metavar="LOG.parquet", help="call log to write")
    p.add_argument("--prices", metavar="CSV", default=None,
                   help="price table (model,usd_per_m_input,usd_per_m_output,...); default data/prices.csv")
    p.add_argument("--few-shot-overhead", type=int, default=DEFAULT_FEW_SHOT_OVERHEAD, metavar="TOKENS",
                   help=f"prompt tokens added per call for the 5-shot prefix (default {DEFAULT_FEW_SHOT_OVERHEAD})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.io import write_call_log
    from bayes_router.data.mmlu_pro import import_mmlu_pro

    t0 = time.perf_counter()
    log, questions = import_mmlu_pro(
        args.src, prices=args.prices, few_shot_overhead=args.few_shot_overhead, progress=not args.no_progress
    )
    path = write_call_log(log, args.output, questions=questions)
    secs = time.perf_counter() - t0
    size_mb = path.stat().st_size / 1e6
    summary = log.groupby("model", observed=True).agg(questions=("question_id", "size"), accuracy=("correct", "mean"))
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {path} ({len(log):,} calls, {log['model'].nunique()} models, "
          f"{log['question_id'].nunique():,} questions, {size_mb:.1f} MB) in {secs:.1f} s")
    return 0
