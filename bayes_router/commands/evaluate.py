"""``bayes-router evaluate LOG --models A,B,C [...] -o RESULTS.json``."""

from __future__ import annotations

import argparse
import sys
import time

from bayes_router.commands import add_sampler_arguments, split_names

HELP = "compare routing policies on held-out questions with honest cost accounting (RESULTS.json)"
DESCRIPTION = """Compare routing policies on held-out questions.

Samples N questions answered by every model in --models (fixed --seed), splits
them BY QUESTION into train and test (--test-frac), fits every policy on the
train questions only (the Bayesian reliability models included), and runs each
policy on the test questions. Every call a policy makes is charged its logged
cost (USD); answers are scored against the correct letter.

--models lists the pool from the cheapest tier to the largest; the last one is
"the big model" of the always-big comparison and of the budgets (batch
allocation budgets are fractions of always-big's expected cost).

--cost-scale is lambda in utility = correct - lambda * cost_usd, in 1/USD: the
accuracy a researcher would give up to save one USD per question. E.g. 200
means saving $0.001 per question is worth 0.2 percentage points of accuracy.

Policies (default: all): always:<model> for each model, random, oracle,
bayes-adaptive, cascade, threshold, ndch, ndch-p, mip, knn, mf, classifier.
Intervals are 95% percentile bootstrap intervals over test questions. Question
texts (LOG.questions.parquet beside the log) are needed by knn, mf, classifier.

Writes RESULTS.json atomically and prints a table.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="call log (Parquet, the call-log schema)")
    p.add_argument("--models", required=True, metavar="POOL|A,B,C",
                   help="a pool name from bayes_router/pools.yaml, or comma-separated models, cheapest "
                        "tier first, the big model last")
    p.add_argument("--questions", type=int, default=None, metavar="N",
                   help="questions to sample among those every model answered (default: all)")
    p.add_argument("--test-frac", type=float, default=0.3, metavar="F", help="share held out for testing (default 0.3)")
    p.add_argument("--cost-scale", type=float, default=0.0, metavar="L",
                   help="lambda in utility = correct - L * cost_usd, per USD (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, split, fits and bootstrap (default 0)")
    p.add_argument("--policies", default=None, metavar="P,Q",
                   help="comma-separated policy names (default: all registered)")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS.json", help="where to write the results")
    add_sampler_arguments(p, "2")
    p.add_argument("--pre-posterior", default=None, metavar="POSTERIOR.nc",
                   help="reuse a pre-call posterior from `bayes-router fit` (must be fitted on this very split)")
    p.add_argument("--post-posterior", default=None, metavar="POSTERIOR.nc",
                   help="reuse a post-call posterior from `bayes-router fit` (must be fitted on this very split)")
    p.add_argument("--n-boot", type=int, default=1000, metavar="B",
                   help="bootstrap resamples of the test questions (default 1000)")
    p.add_argument("--no-frontiers", action="store_true",
                   help="skip the knob sweeps (each frontier is then the policy's one point)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import warnings

    from bayes_router.data.io import load_call_log, load_questions, questions_path, write_json
    from bayes_router.data.pools import resolve_models
    from bayes_router.errors import InputError
    from bayes_router.study.evaluate import evaluate

    models = resolve_models(args.models)
    policies = split_names(args.policies, "--policies")
    for flag in ("draws", "tune", "chains", "n_boot"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.questions is not None and args.questions < 2:
        raise InputError(f"--questions must be at least 2, got {args.questions}")
    if not args.cost_scale >= 0 or args.cost_scale == float("inf"):
        raise InputError(f"--cost-scale must be a non-negative number (per USD), got {args.cost_scale}")
    from bayes_router.models.reliability import read_config_file

    model_config, sampler_config = read_config_file(args.config) if args.config else ({}, {})
    flags = {"sampler": args.sampler, "draws": args.draws, "tune": args.tune, "chains": args.chains}
    sampler_config = {**sampler_config, **{k: v for k, v in flags.items() if v is not None}}
    t0 = time.perf_counter()
    log = load_call_log(args.log)
    questions = load_questions(args.log) if questions_path(args.log).exists() else None
    if questions is None:
        text_based = {"knn", "mf", "classifier"}
        wanted = set(policies) if policies else text_based
        if wanted & text_based:
            raise InputError(f"{questions_path(args.log)}: question texts not found; they are needed by "
                             f"{sorted(wanted & text_based)} (or leave those out with --policies)")
    reliability = {}
    if args.pre_posterior or args.post_posterior:
        from bayes_router.models.reliability import ReliabilityModel

        for stage, path in (("pre", args.pre_posterior), ("post", args.post_posterior)):
            if path:
                rm = ReliabilityModel.load(path)
                if rm.stage != stage:
                    raise InputError(f"{path}: a {rm.stage}-call posterior, expected {stage}-call")
                reliability[stage] = rm
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        results = evaluate(
            log, models, questions=questions, n_questions=args.questions, test_frac=args.test_frac,
            cost_scale=args.cost_scale, seed=args.seed, policies=policies,
            sampler_config=sampler_config, model_config=model_config,
            progress=not args.no_progress, n_boot=args.n_boot, frontiers=not args.no_frontiers,
            reliability=reliability or None,
        )
    path = write_json(args.output, results)
    print(format_table(results))
    for stage, verdict in results["meta"].get("reliability_diagnostics", {}).items():
        if not verdict.get("passed", True):
            print(f"warning: the {stage}-call reliability posterior failed a convergence check: "
                  + "; ".join(verdict.get("failures", [])), file=sys.stderr)
    print(f"wrote {path} ({results['meta']['n_train']} train / {results['meta']['n_test']} test questions) "
          f"in {time.perf_counter() - t0:.1f} s")
    return 0


def format_table(results: dict) -> str:
    """A plain-text table: accuracy and cost with 95% intervals, calls, AIQ."""
    head = f"{'policy':<40} {'accuracy [95% CI]':<24} {'USD/question [95% CI]':<34} {'calls':>5} {'2nd':>5} {'AIQ':>6}"
    lines = [head, "-" * len(head)]
    for name, r in results["policies"].items():
        lo, hi = r["accuracy_ci95"]
        clo, chi = r["cost_ci95"]
        second = f"{r['second_call_rate']:.2f}" if "second_call_rate" in r else "-"
        lines.append(
            f"{name[:40]:<40} {r['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]    "
            f"{r['cost_per_question']:.3e} [{clo:.3e}, {chi:.3e}] {r['calls_per_question']:>5.2f} {second:>5} "
            f"{results['aiq'].get(name, float('nan')):>6.3f}"
        )
    return "\n".join(lines)
