"""``bayes-router bench -o bench/results.json [--quick] [--full-pool]``."""

from __future__ import annotations

import argparse

HELP = "benchmark the reliability models: nutpie vs PyMC NUTS, memory, p_correct speed, online updates"
DESCRIPTION = """Benchmark the reliability models and write the numbers as JSON.

Fits the same post-call model (3 models x 4000 questions of LOG, default the trio
Llama-3.1-8B, Mixtral-8x7B, Llama-3.1-70B) with nutpie and with PyMC's own NUTS,
each in its own process, and reports for each: wall time (compilation included),
min bulk ESS, min bulk ESS per second and the nutpie/PyMC ratio, convergence
(R-hat <= 1.01, ESS >= 400, no divergences) and peak memory (MB). Then times
p_correct for 4000 questions x 3 models with 1000 posterior draws (ms).
--full-pool adds the pre- and post-call models on every model and question of
the log (24 models x 12,032 questions). Every fit draws 4000 in total by default
(2 x 2000 on 2 cores): with 2 x 1000 the trio's slope spread (3 models) had bulk
ESS 251-500 over seeds, and the whole pool's largest R-hat among 336 model x
subject effects sat near 1.01 by chance alone. Without LOG the benchmark runs on a SIMULATED log and says so.
Timings are pessimistic when other work shares the cores; the load average is recorded.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bayes_router.study.bench import DEFAULT_LOG

    p.add_argument("--log", default=DEFAULT_LOG, metavar="LOG",
                   help=f"call log (default {DEFAULT_LOG}; a SIMULATED log if it does not exist)")
    p.add_argument("--models", default="trio", metavar="POOL|A,B,C",
                   help="pool name or models of the 3-model benchmark (default: the trio pool)")
    p.add_argument("--questions", type=int, default=4000, metavar="N", help="questions (default 4000)")
    p.add_argument("--draws", type=int, default=None,
                   help="draws per chain of every fit (default: 4000 in total, i.e. 2000 per chain with 2 chains)")
    p.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    p.add_argument("--chains", type=int, default=None, help="chains (default: 4 with >= 4 cores, else 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small sizes (500 questions, 300 draws): a smoke run")
    p.add_argument("--full-pool", action="store_true", help="also fit pre and post models on the whole log")
    p.add_argument("--convergence-seeds", default=None, metavar="S,S,...",
                   help="also fit every reliability fit of the study (trio, tiers and all x pre, post; the train "
                        "questions of 4000) once per sampler seed, the split fixed, and record each fit's pass rate "
                        "and worst variable (e.g. 0,1,2,3; about an hour on 2 cores)")
    p.add_argument("--skip-speed", action="store_true",
                   help="only the convergence fits of --convergence-seeds (no timing of samplers or p_correct)")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS.json", help="where to write the results")


def run(args: argparse.Namespace) -> int:
    from bayes_router.data.io import write_json
    from bayes_router.data.pools import resolve_models
    from bayes_router.errors import InputError
    from bayes_router.study.bench import run_bench

    if args.questions < 2 or (args.draws is not None and args.draws < 1) or args.tune < 1:
        raise InputError("--questions must be >= 2 and --draws/--tune >= 1")
    from bayes_router.commands import split_names
    from bayes_router.study.bench import convergence_over_seeds

    models = resolve_models(args.models)
    try:
        seeds = [int(s) for s in split_names(args.convergence_seeds, "--convergence-seeds") or []]
    except ValueError:
        raise InputError(f"--convergence-seeds: integers separated by commas, got {args.convergence_seeds!r}") from None
    if args.skip_speed and not seeds:
        raise InputError("--skip-speed needs --convergence-seeds (else there is nothing to run)")
    res = {} if args.skip_speed else run_bench(args.log, models, args.questions, args.draws, args.tune, args.chains,
                                                 args.seed, quick=args.quick, full_pool=args.full_pool)
    if seeds:
        res["convergence"] = convergence_over_seeds(args.log, seeds, split_seed=args.seed, draws=args.draws,
                                                    tune=args.tune, chains=args.chains)
    path = write_json(args.output, res)
    print(f"wrote {path}; targets met: {res.get('targets_met')}")
    if "convergence" in res:
        from bayes_router.study.bench import convergence_table

        print(convergence_table(res["convergence"]).to_string())
    errors = [f"{k}: {v['error']}" for k, v in res.get("post_call_trio", {}).items() if "error" in v]
    if errors:
        raise InputError("benchmark fit failed: " + "; ".join(errors))
    return 0
