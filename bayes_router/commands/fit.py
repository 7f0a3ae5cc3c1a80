"""``bayes-router fit LOG --stage {pre,post} [--models A,B,C] [--questions N] [--seed S] [--sampler ...] -o POSTERIOR.nc``."""

from __future__ import annotations

import argparse
import sys
import time

from bayes_router.commands import add_sampler_arguments

HELP = "fit a hierarchical Bayesian reliability model (pre- or post-call) to a call log"
DESCRIPTION = """Fit a hierarchical Bayesian model of P(correct) to the TRAINING questions of a call log.

Questions are chosen and split the one way (bayes_router.data.split): --questions ids
drawn from those every model in --models answered, then a --test-frac share held
out by question. Only train questions are fitted; both id lists are stored in the
output's attributes so an evaluation can score the held-out questions.

  --stage pre   logit p = model intercept + subject effect + model x subject
                deviation + model slope on standardized log question length
  --stage post  adds model slopes on log completion tokens and, where the log
                holds them, confidence and log latency; an unparsed call is
                wrong with probability 1 (hurdle). Covariates the log lacks are
                left out and reported.

Prints the covariates used, an ArviZ diagnostics table (R-hat, bulk/tail ESS
per variable, divergences, E-BFMI) against R-hat <= 1.01, ESS >= 400, no
divergences, E-BFMI >= 0.3, and held-out log and Brier scores against a plain
logistic regression. A failed diagnostic prints a warning; --strict makes it
exit 1 (the posterior is still written, so it can be inspected).
Output: POSTERIOR.nc (ArviZ InferenceData, NetCDF), written atomically.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from bayes_router.models.reliability import STAGES

    p.add_argument("log", metavar="LOG", help="call log (Parquet)")
    p.add_argument("--stage", choices=STAGES, required=True, help="pre-call or post-call model")
    p.add_argument("--models", default=None, metavar="A,B,C",
                   help="a pool name from bayes_router/pools.yaml, or comma-separated models to fit "
                        "(default: every model in the log)")
    p.add_argument("--questions", type=int, default=None, metavar="N",
                   help="use N questions answered by every model (default: all of them)")
    p.add_argument("--test-frac", type=float, default=0.3, metavar="F",
                   help="share of questions held out for testing (default 0.3)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the question draw, split and sampler")
    add_sampler_arguments(p, "4 on machines with >= 4 cores, else 2")
    p.add_argument("--strict", action="store_true", help="exit 1 when a convergence diagnostic fails")
    p.add_argument("--no-progress", action="store_true", help="no progress display while sampling")
    p.add_argument("-o", "--output", required=True, metavar="POSTERIOR.nc", help="posterior to write (NetCDF)")


def run(args: argparse.Namespace) -> int:
    import warnings

    import numpy as np

    from bayes_router.data.io import load_call_log, load_questions
    from bayes_router.data.pools import resolve_models
    from bayes_router.data.split import rows_for, sample_questions, train_test_split
    from bayes_router.errors import InputError
    from bayes_router.models.diagnostics import convergence_report, held_out_scores
    from bayes_router.models.reliability import ReliabilityModel, read_config_file

    for name in ("draws", "tune"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.chains is not None and args.chains < 1:
        raise InputError(f"--chains must be at least 1, got {args.chains}")
    if not str(args.output).endswith(".nc"):
        raise InputError(f"-o {args.output}: the posterior is written as NetCDF; name it *.nc")
    model_config, sampler_config = read_config_file(args.config) if args.config else ({}, {})
    rm = ReliabilityModel(stage=args.stage, model_config=model_config, sampler_config=sampler_config)
    log = load_call_log(args.log)
    models = resolve_models(args.models) if args.models is not None else sorted(
        log["model"].astype(str).unique())
    ids = sample_questions(log, models, args.questions, seed=args.seed)
    train_ids, test_ids = train_test_split(ids, args.test_frac, seed=args.seed)
    train, test = rows_for(log, models, train_ids), rows_for(log, models, test_ids)
    print(f"fit {args.stage}-call model: {len(models)} models, {len(train_ids):,} train / {len(test_ids):,} test "
          f"questions, {len(train):,} train calls, sampler {args.sampler or rm.sampler_config['sampler']}")

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*idata_kwargs.*")
        texts = {"questions": load_questions(args.log)} if rm.family == "irt" else {}  # difficulty from text
        rm.fit(train, sampler=args.sampler, draws=args.draws, tune=args.tune, chains=args.chains,
               seed=args.seed, progress=not args.no_progress, **texts)
    secs = time.perf_counter() - t0
    rm.metadata.update({"log": str(args.log), "models_order": models, "test_frac": args.test_frac,
                        "test_question_ids": [int(q) for q in np.asarray(test_ids)], "fit_seconds": secs})
    print(f"sampled in {secs:.1f} s; covariates used: {rm.covariates_used}")
    for name, why in rm.covariates_dropped.items():
        print(f"  left out {name}: {why}")

    report = convergence_report(rm.idata)
    print(report)
    rm.metadata["diagnostics"] = report.to_dict()
    if len(test):
        scores = held_out_scores(rm, train, test, seed=args.seed)
        rm.metadata["held_out"] = scores
        s, d = scores["scores"], scores["differences"]["bayes_vs_logistic_regression"]
        print(f"held-out ({scores['n_test_calls']:,} calls): log score bayes {s['bayes']['log_score']:.4f} vs "
              f"logistic regression {s['logistic_regression']['log_score']:.4f} "
              f"(diff {d['log_score']['bayes_minus_other']:+.4f}, 95% CI {d['log_score']['ci95'][0]:+.4f} to "
              f"{d['log_score']['ci95'][1]:+.4f}); Brier {s['bayes']['brier']:.4f} vs "
              f"{s['logistic_regression']['brier']:.4f}")
    path = rm.save(args.output)
    print(f"wrote {path}")
    if not report.passed:
        for f in report.failures:
            warnings.warn(f"diagnostic failed: {f}", stacklevel=1)
        if args.strict:
            print("bayes-router fit: --strict: convergence diagnostics failed (posterior written for inspection)",
                  file=sys.stderr)
            return 1
    return 0
