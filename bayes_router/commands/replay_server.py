"""``bayes-router replay-server LOG [--host 127.0.0.1] [--port P] [faults]``."""

from __future__ import annotations

import argparse

HELP = "serve a call log as an OpenAI-compatible chat-completions endpoint (a replay, for tests and demos)"
DESCRIPTION = """Serve a call log as an OpenAI-compatible chat-completions endpoint.

Answers POST /v1/chat/completions (plain or streamed) from LOG: for a question of
the log (found by its text among LOG.questions.parquet, the way the collect prompt
sends it) and a model of the log, the logged letter, confidence and token counts,
in the requested format. Every response is marked as a replay (header
x-bayes-router-replay, "replay": true, system_fingerprint "replay"): it never
pretends to be a model. GET /replay/stats counts requests per (question, model).

Faults for testing clients: --share-429 with --retry-after seconds, --share-500,
--share-slow with --slow seconds, --share-malformed (the JSON body cut in half).
Serves until interrupted (Ctrl-C).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="call log (Parquet) with LOG.questions.parquet beside it")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, metavar="P", help="port (default 8000; 0: a free one)")
    p.add_argument("--share-429", type=float, default=0.0, metavar="F", help="share of 429 responses (default 0)")
    p.add_argument("--retry-after", type=float, default=1.0, metavar="S", help="Retry-After of the 429s (default 1)")
    p.add_argument("--share-500", type=float, default=0.0, metavar="F", help="share of 500 responses (default 0)")
    p.add_argument("--share-slow", type=float, default=0.0, metavar="F", help="share of slow responses (default 0)")
    p.add_argument("--slow", type=float, default=2.0, metavar="S", help="delay of a slow response (default 2)")
    p.add_argument("--share-malformed", type=float, default=0.0, metavar="F",
                   help="share of responses with a malformed JSON body (default 0)")
    p.add_argument("--report-cost", action="store_true", help="report the logged cost in usage.cost")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default 0)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from bayes_router.live.replay import Faults, build_app, free_port

    faults = Faults(share_429=args.share_429, retry_after_s=args.retry_after, share_500=args.share_500,
                    share_slow=args.share_slow, slow_s=args.slow, share_malformed=args.share_malformed,
                    report_cost=args.report_cost, seed=args.seed)
    app = build_app(args.log, faults)
    port = args.port or free_port(args.host)
    print(f"replaying {args.log} at http://{args.host}:{port}/v1 (a replay, not a model); Ctrl-C stops",
          flush=True)
    uvicorn.run(app, host=args.host, port=port, log_level="warning", access_log=False)
    return 0
