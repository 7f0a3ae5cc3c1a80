"""``bayes-router collect --base-url URL --models A,B,C --questions QSRC --store DIR [...]``."""

from __future__ import annotations

import argparse
import os
import sys

HELP = "call an OpenAI-compatible endpoint on sampled MMLU-Pro questions, every call stored durably"
DESCRIPTION = """Collect live calls from an OpenAI-compatible chat-completions endpoint.

Samples --n questions from QSRC with the same function and --seed as `evaluate`
(QSRC: a folder of MMLU-Pro model_outputs_* files, a call log, or the questions
parquet written beside one) and asks every model in --models each of them with a
zero-shot chain-of-thought prompt for the answer letter and a confidence in percent
(JSON mode unless --no-json-mode; a text parse where the endpoint refuses it).

The API key is read from the environment variable OPENAI_API_KEY only, and never
written to the store, a log, the progress bar or an error. Without it, requests
go out without credentials (local servers, the replay server).

Durability: every finished call is committed to DIR/calls.sqlite3 (SQLite, WAL,
one transaction per call) before it counts. Run again with the same --store and
it resumes: answered (question, model) pairs are never requested again; failed
calls (their reason is stored) are retried. Killing the process, kill -9 included,
loses at most the calls in flight.

Before starting it prints the estimated spend (price table, or usage.cost where
the server reports it). --max-usd stops cleanly before a call that could take the
spend past the budget (each call in flight reserves its worst case, max_tokens).
Retries: 429, 408, 5xx, timeouts and connection errors, with exponential backoff
and jitter, never sooner than the server's Retry-After. 401/403 stop the run.
Exit status 0 when every pair is answered, 1 when some remain (failed or budget).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-url", required=True, metavar="URL",
                   help="the API root, e.g. https://api.openai.com/v1 (requests go to URL/chat/completions)")
    p.add_argument("--models", required=True, metavar="A,B,C",
                   help="comma-separated model names as the endpoint knows them (or a pool name); each needs a "
                        "row in the price table")
    p.add_argument("--questions", required=True, metavar="QSRC",
                   help="MMLU-Pro outputs folder or file, a call log, or LOG.questions.parquet beside a log")
    p.add_argument("--store", required=True, metavar="DIR", help="the store folder (created; reused to resume)")
    p.add_argument("--n", type=int, default=None, metavar="N", help="questions to sample (default: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed, as for evaluate (default 0)")
    p.add_argument("--concurrency", type=int, default=8, metavar="K", help="calls in flight at most (default 8)")
    p.add_argument("--rate", type=float, default=None, metavar="PER_S",
                   help="client-side limit on requests started per second (default: none)")
    p.add_argument("--prices", default=None, metavar="CSV", help="price table (default data/prices.csv)")
    p.add_argument("--max-usd", type=float, default=None, metavar="USD", help="budget in USD for this store in total (earlier runs' spend counts); no call starts "
                        "that could cross it")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="wall-clock limit per attempt (default 120)")
    p.add_argument("--max-retries", type=int, default=6, help="retries per call after the first attempt (default 6)")
    p.add_argument("--backoff-base", type=float, default=1.0, metavar="S",
                   help="first backoff step in seconds, doubled per retry, jittered (default 1)")
    p.add_argument("--backoff-max", type=float, default=60.0, metavar="S", help="largest backoff step (default 60)")
    p.add_argument("--max-tokens", type=int, default=1024, help="completion token limit per call (default 1024)")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    p.add_argument("--no-json-mode", action="store_true", help="do not ask for response_format json_object")
    p.add_argument("--stream", action="store_true", help="stream responses (records time to first token)")
    p.add_argument("--logprobs", action="store_true", help="ask for log-probabilities (-> mean_token_prob)")
    p.add_argument("--dry-run", action="store_true",
                   help="sample the questions and print the estimated spend; call nothing, write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.pools import resolve_models
    from bayes_router.live.client import redact
    from bayes_router.live.collect import collect

    key = os.environ.get("OPENAI_API_KEY") or None
    if key is None:
        print("note: OPENAI_API_KEY is not set; calling without credentials", file=sys.stderr)
    options = {"timeout_s": args.timeout, "max_retries": args.max_retries, "backoff_base_s": args.backoff_base,
               "backoff_max_s": args.backoff_max, "rate_per_s": args.rate, "json_mode": not args.no_json_mode,
               "stream": args.stream, "logprobs": args.logprobs, "max_tokens": args.max_tokens,
               "temperature": args.temperature}
    try:
        result = collect(args.base_url, resolve_models(args.models), args.questions, args.store, n_questions=args.n,
                         seed=args.seed, concurrency=args.concurrency, prices=args.prices, max_usd=args.max_usd,
                         api_key=key, progress=not args.no_progress, client_options=options,
                         dry_run=args.dry_run)
    except KeyboardInterrupt:
        print("collect: interrupted; every finished call is in the store, run again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # the key must not leak through any message, ours or a library's
        exc.args = tuple(redact(str(a), key) if isinstance(a, str) else a for a in exc.args)
        raise
    if args.dry_run:
        return 0
    print(f"answered {result.answered}, failed {result.failed}, spent ${result.spent_usd:.4f} in total; "
          f"{result.already_answered + result.answered}/{result.pairs_total} pairs answered in {args.store}")
    for line in result.failures[:5]:
        print(f"  failed: {line}", file=sys.stderr)
    if result.stopped_by_budget:
        print(f"stopped at the budget (--max-usd {args.max_usd:g}); raise it and run again to continue",
              file=sys.stderr)
    if result.remaining:
        print(f"{result.remaining} pairs not answered yet; run again with the same --store to retry them",
              file=sys.stderr)
        return 1
    return 0
