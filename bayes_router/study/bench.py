"""Speed and memory benchmarks of the reliability models (``bayes-router bench``, ``make bench``).

Each fit runs in its own (spawned) process so its peak resident memory is its own.
Measured per sampler, on the post-call model of 3 models x 4000 questions:
wall time (compilation included), sampling time, min bulk ESS over the reported
variables, min bulk ESS per second of wall time, the convergence verdict, and peak
RSS (MB), and CPU seconds (all threads; on a shared machine CPU seconds divided
by the cores used estimate the unshared wall time). Then the time of ``p_correct`` for 4000 questions x 3 models with
1000 posterior draws (median of repeated runs), and the mean time per question of
online Thompson sampling (route + sequential posterior update) over the same 4000
questions in one arrival order, and the IRT family's fit on the trio's train questions
(``irt``). ``full_pool`` adds the pre- and post-call models on every model and question
of the log, and the IRT family on every model.

Timings depend on what else runs on the machine; the results record the load
average at the start and the core count so a reader can judge them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

DEFAULT_LOG = "data/logs/mmlu_pro.parquet"
TARGETS = {"post_trio_4000_fit_s": 120.0, "full_pool_fit_s": 600.0, "p_correct_ms": 100.0,
           "online_update_ms": 5.0, "irt_trio_4000_fit_s": 180.0, "irt_full_pool_fit_s": 900.0}
#: The IRT family's fits (issue 14's targets): the trio, and with ``full_pool`` every model.
IRT_CONFIG = {"family": {"name": "irt"}}


def _bench_data(log_path, models, n_questions, seed, train_only: bool = False):
    """(calls, description): real rows when the log exists, else a SIMULATED log (labelled).
    ``train_only``: the train questions of the one split (what the study's fits see)."""
    from bayes_router.data.io import load_call_log
    from bayes_router.data.simulate import simulate_call_log
    from bayes_router.data.split import rows_for, sample_questions, train_test_split

    if log_path and Path(log_path).exists():
        log = load_call_log(log_path)
        models = list(models) if models else sorted(log["model"].astype(str).unique())
        ids = sample_questions(log, models, n_questions, seed=seed)
        if train_only:
            ids, _ = train_test_split(ids, seed=seed)
        return rows_for(log, models, ids), {"source": str(log_path), "simulated": False, "models": models,
                                            "questions": int(len(ids)), "train_only": train_only}
    log, _, _ = simulate_call_log(n_questions=n_questions or 4000, models=("small", "mid", "big"), seed=seed)
    return log, {"source": "SIMULATED (no real log found)", "simulated": True, "models": ["small", "mid", "big"],
                 "questions": int(log["question_id"].nunique())}


def _fit_job(spec: dict, queue) -> None:
    """Child process: fit one model, report times, ESS, diagnostics and peak RSS."""
    try:
        import arviz as az

        from bayes_router.models.diagnostics import convergence_report, reported_variables
        from bayes_router.models.reliability import ReliabilityModel

        calls, data = _bench_data(spec["log"], spec["models"], spec["questions"], spec.get("split_seed", spec["seed"]),
                                  train_only=spec.get("train_only", False))
        rm = ReliabilityModel(spec["stage"], model_config=spec.get("model_config"),
                              sampler_config=spec.get("sampler_config"))
        texts = {}
        if rm.family == "irt":  # its difficulty prior reads the question texts, beside the log
            from bayes_router.data.io import load_questions

            texts = {"questions": load_questions(spec["log"])}
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rm.fit(calls, sampler=spec["sampler"], draws=spec["draws"], tune=spec["tune"], chains=spec["chains"],
                   seed=spec["seed"], progress=spec["progress"], **texts)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        names = [v for v in reported_variables(rm.idata) if v in rm.idata.posterior and rm.idata.posterior[v].size]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess = az.ess(rm.idata, var_names=names, method="bulk")
        min_ess = float(min(float(ess[v].min()) for v in names))
        st = rm.idata.sample_stats.attrs if "sample_stats" in rm.idata.groups() else {}
        report = convergence_report(rm.idata)
        if spec.get("save"):
            rm.save(spec["save"])
        queue.put({
            "stage": spec["stage"], "sampler": spec["sampler"], "data": data, "n_calls": int(len(calls)),
            "n_likelihood_cells": rm.metadata.get("n_likelihood_cells"),
            "parameterization": rm.metadata.get("parameterization"), "target_accept": rm.metadata.get("target_accept"),
            "mean_leapfrog_steps": float(rm.idata.sample_stats["n_steps"].mean())
            if "sample_stats" in rm.idata.groups() and "n_steps" in rm.idata.sample_stats else None,
            "draws": spec["draws"], "tune": spec["tune"], "chains": int(rm.metadata["chains"]),
            "wall_s": wall, "cpu_s": cpu, "sampling_s": float(st["sampling_time"]) if "sampling_time" in st else None,
            "min_bulk_ess": min_ess, "min_bulk_ess_per_s": min_ess / wall,
            "converged": report.passed, "diagnostics": report.to_dict(), "worst": report.worst(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        })
    except Exception as exc:  # reported, not raised: the parent writes what it has
        queue.put({"stage": spec["stage"], "sampler": spec["sampler"], "error": f"{exc.__class__.__name__}: {exc}"})


def _run_isolated(spec: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_fit_job, args=(spec, queue))
    p.start()
    result = queue.get()
    p.join()
    return result


def time_p_correct(posterior_path, calls, n_draws: int = 1000, repeats: int = 7) -> dict:
    """Median and min wall time (ms) of ``p_correct(calls, n_draws)`` after one warm-up call."""
    from bayes_router.models.reliability import ReliabilityModel

    rm = ReliabilityModel.load(posterior_path)
    rm.p_correct(calls, n_draws=n_draws)  # warm-up: caches the flattened posterior
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        P = rm.p_correct(calls, n_draws=n_draws)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"rows": int(len(calls)), "draws": int(P.shape[0]), "median_ms": float(np.median(times)),
            "min_ms": float(np.min(times)), "repeats": repeats}


def run_bench(log_path: str | None = DEFAULT_LOG, models="trio", n_questions: int = 4000, draws: int | None = None,
              tune: int = 1000, chains: int | None = None, seed: int = 0, quick: bool = False,
              full_pool: bool = False, samplers=("nutpie", "pymc"), progress: bool = False) -> dict:
    """Run the benchmarks; returns the results dict (see module docstring). ``quick``: 500 questions, 300 draws.

    ``draws`` per chain, None: the reliability model's default (4000 in total, 2 x 2000 on 2
    cores), for every fit: with 2 x 1000 the trio's slope spread (3 levels) had bulk ESS 251-500
    over seeds, and the whole pool's largest R-hat among 336 model x subject effects sat near 1.01.
    """
    from bayes_router.data.pools import resolve_models
    from bayes_router.models.reliability import default_chains, default_draws

    models = resolve_models(models)
    chains = chains or default_chains()
    draws = draws or default_draws(chains)
    if quick:
        n_questions, draws, tune = min(n_questions, 500), min(draws, 300), min(tune, 300)
    load1, load5, _ = os.getloadavg()
    out = {
        "schema_version": 1,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1m_at_start": load1, "load_average_5m_at_start": load5,
                    "note": "wall times include model compilation; other processes may share the cores"},
        "settings": {"quick": quick, "questions": n_questions, "draws": draws, "tune": tune, "chains": chains,
                     "seed": seed},
        "targets": TARGETS,
        "post_call_trio": {},
    }
    fit = {"draws": draws, "tune": tune, "chains": chains, "seed": seed, "progress": progress}
    _bench_post_call_trio(out, log_path, models, n_questions, samplers, fit)
    _bench_online_update(out, log_path, models, n_questions, seed)
    _bench_irt(out, log_path, models, n_questions, fit, full_pool)
    if full_pool:
        _bench_full_pool(out, log_path, samplers[0], fit)
    out["targets_met"] = _targets_met(out, quick)
    return out


def _bench_post_call_trio(out: dict, log_path, models, n_questions: int, samplers, fit: dict) -> None:
    """Fit the post-call model once per sampler (own process each), then time ``p_correct`` on the
    first sampler's posterior; fills ``post_call_trio``, the nutpie/pymc ESS-per-second ratio, ``p_correct``."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = str(Path(tmp) / "post_nutpie.nc")
        for sampler in samplers:
            spec = {"stage": "post", "sampler": sampler, "log": log_path, "models": list(models) if models else None,
                    "questions": n_questions, "draws": fit["draws"], "tune": fit["tune"], "chains": fit["chains"],
                    "seed": fit["seed"], "progress": fit["progress"], "save": saved if sampler == samplers[0] else None}
            print(f"bench: post-call model, {sampler}, {n_questions} questions ...", flush=True)
            res = _run_isolated(spec)
            out["post_call_trio"][sampler] = res
            print(f"  {sampler}: " + (res.get("error") or
                  f"wall {res['wall_s']:.1f} s, min bulk ESS {res['min_bulk_ess']:.0f} "
                  f"({res['min_bulk_ess_per_s']:.2f}/s), converged {res['converged']}, "
                  f"peak RSS {res['peak_rss_mb']:.0f} MB"), flush=True)
        fits = out["post_call_trio"]
        if all("error" not in fits.get(s, {"error": 1}) for s in ("nutpie", "pymc")):
            out["ess_per_s_ratio_nutpie_over_pymc"] = fits["nutpie"]["min_bulk_ess_per_s"] / fits["pymc"]["min_bulk_ess_per_s"]
        if Path(saved).exists():
            calls, _ = _bench_data(log_path, models, n_questions, fit["seed"])
            calls = calls.drop(columns=["correct"])
            out["p_correct"] = time_p_correct(saved, calls, n_draws=1000)
            print(f"  p_correct {out['p_correct']['rows']} rows x {out['p_correct']['draws']} draws: "
                  f"{out['p_correct']['median_ms']:.1f} ms (median)", flush=True)


def _bench_online_update(out: dict, log_path, models, n_questions: int, seed: int) -> None:
    """Time online Thompson sampling (route + posterior update), one question at a time: ``online_update``."""
    from bayes_router.study.online import time_online_updates

    calls, _ = _bench_data(log_path, models, n_questions, seed)
    out["online_update"] = time_online_updates(calls, models if log_path and Path(log_path).exists()
                                               else ["small", "mid", "big"], seed=seed)
    print(f"  online update ({out['online_update']['policy']}, {out['online_update']['questions']} questions): "
          f"{out['online_update']['mean_ms']:.3f} ms per question (mean)", flush=True)


def _bench_full_pool(out: dict, log_path, sampler: str, fit: dict) -> None:
    """Fit the pre- and post-call models on every model and question of the log: ``full_pool``."""
    out["full_pool"] = {}
    for stage in ("pre", "post"):
        spec = {"stage": stage, "sampler": sampler, "log": log_path, "models": None, "questions": None,
                "draws": fit["draws"], "tune": fit["tune"], "chains": fit["chains"],
                "seed": fit["seed"], "progress": fit["progress"]}
        print(f"bench: {stage}-call model on the whole pool ({sampler}) ...", flush=True)
        res = _run_isolated(spec)
        out["full_pool"][stage] = res
        print(f"  {stage}: " + (res.get("error") or f"wall {res['wall_s']:.1f} s, min bulk ESS "
                                             f"{res['min_bulk_ess']:.0f}, converged {res['converged']}"),
              flush=True)


def _bench_irt(out: dict, log_path, models, n_questions: int, fit: dict, full_pool: bool) -> None:
    """Fit the IRT family (its stages share one posterior) on the trio's train questions of
    ``n_questions`` and, with ``full_pool``, on every model's: ``irt``."""
    if not (log_path and Path(log_path).exists()):
        out["irt_skipped"] = "the IRT family needs a real log with its question texts"
        return
    out["irt"] = {}
    pools = {"trio": (models, n_questions)} | ({"full_pool": (None, None)} if full_pool else {})
    for name, (pool, questions) in pools.items():
        spec = {"stage": "pre", "sampler": "nutpie", "log": log_path, "models": pool, "questions": questions,
                "train_only": True, "model_config": IRT_CONFIG, **fit}
        out["irt"][name] = _run_isolated(spec)


#: every reliability fit the study makes, on the train questions of 4000 sampled ones: notebook 03 fits each
#: pool pre- and post-call (the calibration-study pools on their own log, which must be imported beside the
#: MMLU-Pro one)
STUDY_FITS = tuple((pool, stage) for pool in ("trio", "tiers", "all", "study-trio", "study-cascade", "study-api")
                   for stage in ("pre", "post"))


def convergence_over_seeds(log_path, seeds=(0, 1, 2, 3), fits=STUDY_FITS, n_questions: int = 4000,
                           split_seed: int = 0, draws: int | None = None, tune: int = 1000,
                           chains: int | None = None, model_config: dict | None = None) -> dict:
    """Fit each (pool, stage) of ``fits`` once per sampler seed, the split fixed (``split_seed``), each in
    its own process; returns ``{"fits": {"pool/stage": {"passed": k, "of": n, "runs": [...]}}, ...}``
    where each run records the seed, the verdict, the failures, the worst variable and the wall time.
    """
    from tqdm.auto import tqdm

    from bayes_router.data.pools import pool_log, pool_models

    out = {"seeds": list(seeds), "split_seed": split_seed, "questions": n_questions, "train_only": True,
           "draws": draws, "tune": tune, "chains": chains, "fits": {}}
    jobs = [(pool, stage, seed) for pool, stage in fits for seed in seeds]
    for pool, stage, seed in tqdm(jobs, desc="convergence over seeds", unit="fit"):
        # each pool reads its own log (pools.yaml `log:`), beside ``log_path``
        log = str(Path(log_path).with_name(f"{pool_log(pool)}.parquet")) if log_path else None
        spec = {"stage": stage, "sampler": "nutpie", "log": log, "models": pool_models(pool),
                "questions": n_questions, "draws": draws, "tune": tune, "chains": chains, "seed": seed,
                "split_seed": split_seed, "train_only": True, "progress": False, "model_config": model_config}
        res = _run_isolated(spec)
        run = {"seed": seed, "error": res["error"]} if "error" in res else {
            "seed": seed, "passed": res["converged"], "failures": res["diagnostics"]["failures"],
            "worst": res["worst"], "divergences": res["diagnostics"]["divergences"],
            "r_hat_max": res["diagnostics"]["r_hat_max"], "ess_bulk_min": res["diagnostics"]["ess_bulk_min"],
            "ess_tail_min": res["diagnostics"]["ess_tail_min"],
            "bfmi_min": min([b for b in res["diagnostics"]["bfmi"] if b is not None], default=None),
            "wall_s": res["wall_s"],
            "parameterization": res["parameterization"], "target_accept": res["target_accept"]}
        entry = out["fits"].setdefault(f"{pool}/{stage}", {"passed": 0, "of": 0, "runs": []})
        entry["runs"].append(run)
        entry["of"] += 1
        entry["passed"] += int(bool(run.get("passed")))
        tqdm.write(f"  {pool}/{stage} seed {seed}: " + (run.get("error") or (
            "pass" if run["passed"] else "FAIL " + "; ".join(run["failures"]))
            + f" (worst {run.get('worst', {}).get('variable')}, {run.get('wall_s', 0):.0f} s)"))
    return out


def convergence_table(convergence: dict):
    """One row per fit of :func:`convergence_over_seeds`'s result: seeds passed out of run, the
    divergences in all, the worst variable over the seeds with its smallest ESS and largest R-hat,
    the smallest E-BFMI and the wall-time range (s)."""
    import pandas as pd

    rows = []
    for fit, entry in convergence["fits"].items():
        runs = [r for r in entry["runs"] if "error" not in r]
        worst = min((r["worst"] for r in runs if r.get("worst")), key=lambda w: w["margin"], default=None)
        walls = [r["wall_s"] for r in runs]
        rows.append({"fit": fit, "passed": f"{entry['passed']}/{entry['of']}",
                     "divergences": sum(r["divergences"] for r in runs),
                     "worst variable": worst and worst["variable"],
                     "min ESS (bulk/tail)": worst and f"{worst['ess_bulk_min']:.0f}/{worst['ess_tail_min']:.0f}",
                     # over every reported variable (runs recorded before that key: the worst variable's)
                     "max R-hat": max((r.get("r_hat_max") or r["worst"]["r_hat_max"] for r in runs if r.get("worst")),
                                      default=None),
                     "min E-BFMI": min((r["bfmi_min"] for r in runs if r.get("bfmi_min") is not None), default=None),
                     "wall s": f"{min(walls):.0f}-{max(walls):.0f}" if walls else None,
                     "errors": len(entry["runs"]) - len(runs)})
    return pd.DataFrame(rows).set_index("fit")


def _targets_met(out: dict, quick: bool) -> dict[str, bool]:
    """Which of TARGETS the measurements in ``out`` meet (the 4000-question fit target only when not quick)."""
    met = {}
    nut = out["post_call_trio"].get("nutpie", {})
    if "wall_s" in nut and not quick:
        met["post_trio_4000_fit_s"] = bool(nut["wall_s"] <= TARGETS["post_trio_4000_fit_s"] and nut["converged"])
    if "p_correct" in out:
        met["p_correct_ms"] = bool(out["p_correct"]["median_ms"] <= TARGETS["p_correct_ms"])
    for stage, res in out.get("full_pool", {}).items():
        if "wall_s" in res:
            met[f"full_pool_{stage}_fit_s"] = bool(res["wall_s"] <= TARGETS["full_pool_fit_s"] and res["converged"])
    for name, res in out.get("irt", {}).items():
        key = "irt_trio_4000_fit_s" if name == "trio" else "irt_full_pool_fit_s"
        if "wall_s" in res and (name != "trio" or not quick):
            met[key] = bool(res["wall_s"] <= TARGETS[key] and res["converged"])
    if "online_update" in out:
        met["online_update_ms"] = bool(out["online_update"]["mean_ms"] <= TARGETS["online_update_ms"])
    return met
