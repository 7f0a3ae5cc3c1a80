"""Pre-call comparison of the IRT reliability model against v1 on one pool and split.

``compare_pre_call`` fits both on the training questions, records wall times and convergence
(max R-hat, min bulk and tail ESS, divergences), scores the held-out questions
(:mod:`.scoring`: per call and joint, with 95% intervals, and the paired IRT - v1 difference)
and, where both fits kept their pointwise log-likelihood, PSIS-LOO over the training calls
(``az.compare``). Run, e.g.::

    python -c "from bayes_router.models.irt.compare import main; main()" trio 4000 out.json
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

from bayes_router.models.irt import scoring


def convergence(idata, var_names=None) -> dict:
    """Max R-hat, min bulk/tail ESS over the posterior's variables (or ``var_names``), divergences."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = az.summary(idata, var_names=var_names, kind="diagnostics")
    div = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata.groups() else None
    return {"r_hat_max": float(s["r_hat"].max()), "ess_bulk_min": float(s["ess_bulk"].min()),
            "ess_tail_min": float(s["ess_tail"].min()), "divergences": div,
            "worst": s.sort_values("ess_bulk").index[:3].tolist()}


#: The IRT variables convergence is judged on (deterministic z-transforms included through them).
IRT_VARIABLES = ["mu_alpha", "sigma_alpha", "alpha", "sigma_subject", "beta", "sigma_interaction", "gamma",
                 "discrimination", "text_weight", "sigma_difficulty", "difficulty"]
V1_VARIABLES = ["mu_alpha", "sigma_alpha", "alpha", "sigma_subject", "beta", "sigma_interaction", "gamma",
                "mu_slope", "sigma_slope", "slope"]


def compare_pre_call(log: pd.DataFrame, questions: pd.DataFrame, models, n_questions: int = 4000,
                     test_frac: float = 0.3, seed: int = 0, draws: int = 1000, tune: int = 1000,
                     chains: int = 2, progress: bool = False) -> dict:
    """Fit v1 and IRT (pre-call) on the training split and score both on the test split."""
    import arviz as az

    from bayes_router.data.split import sample_questions, train_test_split
    from bayes_router.models.reliability import ReliabilityModel

    ids = sample_questions(log, models, n_questions, seed=seed)
    train_ids, test_ids = train_test_split(ids, test_frac, seed)
    pool = log[log["model"].isin(list(models))]
    train = pool[pool["question_id"].isin(train_ids)].reset_index(drop=True)
    test = pool[pool["question_id"].isin(test_ids)].reset_index(drop=True)
    out = {"models": list(models), "n_questions": int(len(ids)), "n_train": int(len(train_ids)),
           "n_test": int(len(test_ids)), "seed": seed, "draws": draws, "tune": tune, "chains": chains}
    fits = {}
    for family, names in (("v1", V1_VARIABLES), ("irt", IRT_VARIABLES)):
        rm = ReliabilityModel(stage="pre", family=family)
        kwargs = {"questions": questions} if family == "irt" else {}
        start = time.perf_counter()
        rm.fit(train, draws=draws, tune=tune, chains=chains, seed=seed, progress=progress, **kwargs)
        out[family] = {"fit_s": round(time.perf_counter() - start, 1),
                       "convergence": convergence(rm.idata, [v for v in names if v in rm.idata.posterior]),
                       "parameterization": rm.metadata.get("parameterization")}
        fits[family] = rm
    out["irt"]["difficulty_share_predicted_by_text"] = fits["irt"].text_share()
    out["irt"]["sigma_difficulty_mean"] = float(fits["irt"].idata.posterior["sigma_difficulty"].mean())
    out["irt"]["discrimination_mean"] = fits["irt"].idata.posterior["discrimination"].mean(("chain", "draw")) \
        .to_series().round(3).to_dict()
    n_per_q = len(models)
    per_call = {"v1": scoring.per_call_scores(fits["v1"], test),
                "irt": scoring.per_call_scores(fits["irt"], test, questions=questions)}
    joint = {"v1": scoring.joint_scores_independent(fits["v1"], test),
             "irt": scoring.joint_scores_irt(fits["irt"], test, questions=questions)}
    for family in ("v1", "irt"):
        out[family]["held_out_per_call_lpd"] = scoring.summarize(per_call[family], n_per_q)
        out[family]["held_out_joint_lpd_per_question"] = scoring.summarize(joint[family])
    out["irt_minus_v1"] = {"per_call_lpd": scoring.paired_difference(per_call["irt"], per_call["v1"], n_per_q),
                           "joint_lpd_per_question": scoring.paired_difference(joint["irt"], joint["v1"])}
    out["post_call"] = post_call_scores(fits, train, test, questions, models, seed, draws, tune, chains, progress)
    if all("log_likelihood" in fits[f].idata.groups() for f in fits):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az.compare({f: fits[f].idata for f in fits})
            ks = {f: float(np.mean(az.loo(fits[f].idata, pointwise=True).pareto_k.values > 0.7)) for f in fits}
        out["loo"] = {f: {"elpd_loo": float(table.loc[f, "elpd_loo"]), "se": float(table.loc[f, "se"]),
                          "elpd_diff": float(table.loc[f, "elpd_diff"]), "dse": float(table.loc[f, "dse"]),
                          "share_pareto_k_over_0.7": ks[f]} for f in fits}
    return out


def post_call_scores(fits: dict, train, test, questions, models, seed, draws, tune, chains, progress) -> dict:
    """Held-out scores after a first call to the cheapest model (``models[0]``), per test question:

    * the first call itself given its signals: IRT post stage against v1's post-call model;
    * the other models given the first call's signals: IRT ``p_correct_after`` against the IRT
      and v1 pre-call probabilities (which ignore the first call).
    """
    from bayes_router.models.reliability import ReliabilityModel

    first = test[test["model"] == models[0]].reset_index(drop=True)
    others = test[test["model"] != models[0]].reset_index(drop=True)
    irt_post = fits["irt"].as_stage("post")
    v1_post = ReliabilityModel(stage="post")
    start = time.perf_counter()
    v1_post.fit(train, draws=draws, tune=tune, chains=chains, seed=seed, progress=progress)
    out = {"first_model": models[0], "v1_post_fit_s": round(time.perf_counter() - start, 1)}
    own = {"irt_post": scoring.per_call_scores(irt_post, first, questions=questions),
           "v1_post": scoring.per_call_scores(v1_post, first)}
    out["first_call_given_own_signals"] = {k: scoring.summarize(v) for k, v in own.items()}
    out["first_call_irt_minus_v1"] = scoring.paired_difference(own["irt_post"], own["v1_post"])
    n_other = len(models) - 1
    irt_after = fits["irt"].p_correct_after(first, others, questions=questions)
    after = {"irt_after_first": scoring.per_call_scores_from(irt_after.values, others),
             "irt_pre": scoring.per_call_scores(fits["irt"], others, questions=questions),
             "v1_pre": scoring.per_call_scores(fits["v1"], others)}
    out["others_given_first_signals"] = {k: scoring.summarize(v, n_other) for k, v in after.items()}
    out["others_irt_after_minus_v1_pre"] = scoring.paired_difference(after["irt_after_first"], after["v1_pre"],
                                                                      n_other)
    out["others_irt_after_minus_irt_pre"] = scoring.paired_difference(after["irt_after_first"], after["irt_pre"],
                                                                       n_other)
    return out


def main(argv=None) -> None:
    """``POOL N_QUESTIONS OUT.json [DRAWS]``: compare on data/logs/mmlu_pro.parquet, write JSON."""
    from bayes_router.data.io import load_call_log, load_questions, write_json
    from bayes_router.data.pools import resolve_models

    argv = sys.argv[1:] if argv is None else argv
    pool, n_questions, path = argv[0], int(argv[1]), argv[2]
    draws = int(argv[3]) if len(argv) > 3 else 1000
    log_path = "data/logs/mmlu_pro.parquet"
    result = compare_pre_call(load_call_log(log_path), load_questions(log_path), resolve_models(pool),
                              n_questions=n_questions, draws=draws, tune=draws)
    write_json(path, result)
    print(result)
