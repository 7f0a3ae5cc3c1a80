"""``bayes-router online LOG --models POOL --questions N [--seed S] [--policies P,Q] -o ONLINE.json``."""

from __future__ import annotations

import argparse
import time

from bayes_router.commands import split_names

HELP = "route questions one at a time, learning from bandit feedback (ONLINE.json)"
DESCRIPTION = """Online routing: questions arrive one at a time, the router pays and learns.

A stream of N questions answered by every model of --models is drawn with --seed
and shown in --orders random arrival orders (seeds S, S+1, ...). For each question
a policy calls a model, is charged the call's logged cost (USD), sees only that
call's outcome and signals, and updates its posterior before the next question.
Online policies start from the prior, or, with --warm-start K, from the outcomes of
every model on K other questions.

Policies (default: all):
  thompson                 Thompson sampling on a sequential Laplace posterior of each
                           (model, subject) logit with the hierarchical prior
  ucb                      Bayes-UCB: the (1 - 1/t) posterior quantile of P(correct)
  greedy                   the posterior mean of P(correct)
  linucb-budget            PILOT-style LinUCB on subject and log length, within a budget
                           of half the big model's spend
  offline:bayes-adaptive   fitted once on --offline-train other questions (NUTS fits
                           of the reliability models), then frozen

All choose by expected utility correct - L * cost_usd with L = --cost-scale (1/USD).
Per policy, ONLINE.json holds the final cumulative accuracy and cost per question,
and curves after each question (mean over orders, 5%-95% bands): accuracy, cost per
question, regret against the oracle (cheapest correct model) and pseudo-regret against
the best model per subject in hindsight, plus the mean seconds per update.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="call log (Parquet, the call-log schema)")
    p.add_argument("--models", required=True, metavar="POOL|A,B,C",
                   help="a pool name from bayes_router/pools.yaml, or comma-separated models, cheapest first")
    p.add_argument("--questions", type=int, default=4000, metavar="N", help="questions streamed (default 4000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stream, the splits and the first order (default 0)")
    p.add_argument("--policies", default=None, metavar="P,Q",
                   help="comma-separated online policy names (default: all five)")
    p.add_argument("--orders", type=int, default=5, metavar="K",
                   help="arrival orders (seeds S..S+K-1) for the bands (default 5)")
    p.add_argument("--cost-scale", type=float, default=100.0, metavar="L",
                   help="lambda in utility = correct - L * cost_usd, per USD (default 100)")
    p.add_argument("--warm-start", type=int, default=0, metavar="K",
                   help="questions whose every outcome the online policies see first (default 0: the prior)")
    p.add_argument("--offline-train", type=int, default=2000, metavar="M",
                   help="questions the offline reference is fitted on (default 2000)")
    p.add_argument("--draws", type=int, default=None,
                   help="posterior draws per chain of the offline fits (default: 4000 in total)")
    p.add_argument("--tune", type=int, default=1000, help="tuning steps per chain of the offline fits (default 1000)")
    p.add_argument("--process-noise", type=float, default=0.0, metavar="Q",
                   help="forgetting of thompson/ucb/greedy: logit variance added per question (default 0)")
    p.add_argument("--prices", default=None, metavar="CSV", help="price table (default: data/prices.csv)")
    p.add_argument("-o", "--output", required=True, metavar="ONLINE.json", help="where to write the results")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import warnings

    from bayes_router.data.io import load_call_log, write_json
    from bayes_router.data.pools import resolve_models
    from bayes_router.data.prices import load_prices
    from bayes_router.errors import InputError
    from bayes_router.study.online import DEFAULT_ONLINE_POLICIES, online_study

    models = resolve_models(args.models)
    if args.questions < 2:
        raise InputError(f"--questions must be at least 2, got {args.questions}")
    if args.orders < 1:
        raise InputError(f"--orders must be at least 1, got {args.orders}")
    if args.cost_scale < 0 or args.process_noise < 0:
        raise InputError("--cost-scale and --process-noise must be non-negative")
    policies = split_names(args.policies, "--policies") or DEFAULT_ONLINE_POLICIES
    prices = load_prices(args.prices) if args.prices else None
    params = {n: {"process_noise": args.process_noise} for n in ("thompson", "ucb", "greedy")} \
        if args.process_noise > 0 else None
    t0 = time.perf_counter()
    log = load_call_log(args.log)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        result = online_study(
            log, models, n_questions=args.questions, seed=args.seed, policies=policies, n_orders=args.orders,
            cost_scale=args.cost_scale, warm_start_questions=args.warm_start,
            offline_train_questions=args.offline_train, prices=prices, policy_params=params,
            sampler_config={"draws": args.draws, "tune": args.tune}, progress=not args.no_progress,
        )
    result["meta"]["seconds_total"] = round(time.perf_counter() - t0, 3)
    path = write_json(args.output, result)
    print(f"{len(models)} models, {args.questions} questions, {args.orders} orders, cost_scale {args.cost_scale:g}/USD, "
          f"warm start {args.warm_start} questions")
    print(f"{'policy':<26}{'accuracy':>10}{'USD/1000 q':>12}{'regret':>10}{'pseudo-regret':>15}{'ms/update':>11}")
    for name, p in result["policies"].items():
        pseudo = p["curve"].get("regret_vs_best_fixed")
        print(f"{name:<26}{p['accuracy']:>10.4f}{1000 * p['cost_per_question']:>12.4f}"
              f"{p['curve']['regret'][-1]:>10.1f}{'' if pseudo is None else f'{pseudo[-1]:.1f}':>15}"
              f"{1000 * p['seconds_per_update']:>11.3f}")
    print(f"wrote {path}")
    return 0
