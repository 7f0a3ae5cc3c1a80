"""``bayes-router export DIR -o LOG.parquet``."""

from __future__ import annotations

import argparse

HELP = "write the calls collected in a store as a call log (log_source 'live')"
DESCRIPTION = """Write the answered calls of a collection store as a call log.

DIR is a --store folder of `bayes-router collect`. The log follows the call-log
schema (bayes_router.data.schema), log_source "live", with the optional columns mean_token_prob
and ttft_s where real values exist; the question texts go beside it
(LOG.questions.parquet). The parquet metadata "bayes_router" records the endpoint,
the dates of the first and last call (UTC), how many calls had estimated tokens or
price-table costs, the failed pairs left out and, for a replay, the replayed log's
source. Failed calls are not in the log. Written atomically.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", metavar="DIR", help="a collection store folder (collect --store)")
    p.add_argument("-o", "--output", required=True, metavar="LOG.parquet", help="call log to write")


def run(args: argparse.Namespace) -> int:
    from bayes_router.live.export import export_call_log

    log, info = export_call_log(args.store, args.output)
    acc = log.groupby("model", observed=True).agg(calls=("question_id", "size"), accuracy=("correct", "mean"),
                                                   parsed=("parsed", "mean"), cost_usd=("cost_usd", "sum"))
    print(acc.to_string(float_format=lambda v: f"{v:.4f}"))
    replay = f"; a REPLAY of a {info['replay_of']} log" if info.get("replay_of") else ""
    print(f"wrote {args.output} ({info['calls']} calls from {info['endpoint']}, {info['first_call_utc']} to "
          f"{info['last_call_utc']}; {info['failed_pairs_left_out']} failed pairs left out{replay})")
    return 0
