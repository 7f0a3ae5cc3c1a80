"""``bayes-router import-calibration-study SRC --questions QSRC -o LOG.parquet [--prices CSV]``."""

from __future__ import annotations

import argparse
import time

HELP = "import the public LLM calibration study (answers with stated confidence) into a call log"
DESCRIPTION = """Import the LLM calibration study's MMLU-Pro results into a call log (log_source llm-calibration-study).

SRC is a folder of mmlu_pro_<MODEL>_eval_all_None.csv files (one per model, one row per
question, from github.com/Linwei94/LLM-Calibration-Study results/), or one such file.
Row i is the i-th MMLU-Pro test question by question_id; QSRC supplies the questions:
a folder of MMLU-Pro outputs (as for import-mmlu-pro) or a LOG.questions.parquet with its
LOG.parquet beside it (what import-mmlu-pro writes). A file whose row count or subject
sequence does not match the questions, that lacks a column, holds confidences on a scale
other than 0-1, or names a model missing from the price table is refused; nothing is written.

Columns: answer = the study's (revised) key, pred = its extracted answer (empty: unparsed),
confidence = the stated confidence (0-1), mean_token_prob = mean token probability of the
response, decisiveness = a judge's 0-1 score; empty stays null, and the rare values outside
[0, 1] (parse errors of the study) become null with a warning. completion_tokens = the study's
token_length (Llama-4-Maverick tokenizer); prompt_tokens is an ESTIMATE: cl100k_base tokens of
the question and options plus the study's fixed instruction text. Cost: tokens times the price
table (USD per million tokens). Writes LOG.parquet and LOG.questions.parquet beside it.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder of mmlu_pro_<MODEL>_eval_all_None.csv files, or one file")
    p.add_argument("--questions", required=True, metavar="QSRC",
                   help="the MMLU-Pro questions: a folder of MMLU-Pro outputs, or LOG.questions.parquet beside its log")
    p.add_argument("-o", "--output", required=True, metavar="LOG.parquet", help="call log to write")
    p.add_argument("--prices", metavar="CSV", default=None,
                   help="price table (model,usd_per_m_input,usd_per_m_output,...); "
                        "default data/prices_calibration_study.csv")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.calibration_study import import_calibration_study
    from bayes_router.data.io import write_call_log

    t0 = time.perf_counter()
    log, questions = import_calibration_study(
        args.src, args.questions, prices=args.prices, progress=not args.no_progress
    )
    path = write_call_log(log, args.output, questions=questions)
    secs = time.perf_counter() - t0
    size_mb = path.stat().st_size / 1e6
    summary = log.groupby("model", observed=True).agg(
        accuracy=("correct", "mean"), parsed=("parsed", "mean"),
        with_confidence=("confidence", lambda s: s.notna().mean()),
        usd_per_1000=("cost_usd", lambda s: 1000 * s.mean()),
    )
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {path} ({len(log):,} calls, {log['model'].nunique()} models, "
          f"{log['question_id'].nunique():,} questions, {size_mb:.1f} MB) in {secs:.1f} s")
    return 0
