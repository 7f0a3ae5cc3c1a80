"""The IRT family against v1 and the TF-IDF classifier router on one pool and split.

:func:`compare_families` fits the IRT family on the training questions (v1's fits are given, e.g.
notebook 02's), records its wall time and both families' convergence (max R-hat, min bulk and tail
ESS, divergences), scores the held-out questions (:mod:`.scoring`: per call and jointly per
question, with 95% intervals and paired differences; the classifier as a point predictor) and,
where both fits kept their pointwise log-likelihood, PSIS-LOO over the training calls
(``az.compare``). :func:`compare_pre_call` fits v1 too. Run, e.g.::

    python -c "from bayes_router.models.irt.compare import main; main()" trio 4000 out.json
"""

from __future__ import annotations

import sys
import time
import warnings

import numpy as np
import pandas as pd

from bayes_router.models.diagnostics import convergence_report
from bayes_router.models.irt import scoring


def compare_pre_call(log: pd.DataFrame, questions: pd.DataFrame, models, n_questions: int = 4000,
                     test_frac: float = 0.3, seed: int = 0, draws: int = 1000, tune: int = 1000,
                     chains: int = 2, progress: bool = False) -> dict:
    """Fit v1 (pre- and post-call) on the training split, then :func:`compare_families`."""
    from bayes_router.data.split import sample_questions, train_test_split
    from bayes_router.models.reliability import ReliabilityModel

    ids = sample_questions(log, models, n_questions, seed=seed)
    train_ids, test_ids = train_test_split(ids, test_frac, seed)
    pool = log[log["model"].isin(list(models))]
    train = pool[pool["question_id"].isin(train_ids)].reset_index(drop=True)
    test = pool[pool["question_id"].isin(test_ids)].reset_index(drop=True)
    v1 = {}
    for stage in ("pre", "post"):
        v1[stage] = ReliabilityModel(stage=stage)
        v1[stage].fit(train, draws=draws, tune=tune, chains=chains, seed=seed, progress=progress)
    return compare_families(train, test, questions, models, v1["pre"], v1["post"], seed=seed, draws=draws,
                            tune=tune, chains=chains, progress=progress)[0]


def compare_families(train: pd.DataFrame, test: pd.DataFrame, questions: pd.DataFrame, models, v1_pre, v1_post,
                     seed: int = 0, draws: int | None = 1000, tune: int = 1000, chains: int | None = 2,
                     progress: bool = False) -> tuple[dict, object]:
    """Fit the IRT family on ``train`` and compare it, pre-call, with the fitted v1 model ``v1_pre`` and
    the TF-IDF classifier router (held-out log score per call and jointly per question, paired 95%
    intervals; PSIS-LOO of the two Bayesian fits over the training calls), and post-call with
    ``v1_post`` (:func:`post_call_scores`). The three pre-call predictors see the same training calls.
    Returns (the results, the fitted IRT model)."""
    import arviz as az

    from bayes_router.models.reliability import ReliabilityModel

    out = {"models": list(models), "n_train": int(train["question_id"].nunique()),
           "n_test": int(test["question_id"].nunique()), "seed": seed, "draws": draws, "tune": tune, "chains": chains}
    irt = ReliabilityModel(stage="pre", family="irt")
    start = time.perf_counter()
    irt.fit(train, questions=questions, draws=draws, tune=tune, chains=chains, seed=seed, progress=progress)
    fits = {"v1": v1_pre, "irt": irt}
    for family, rm in fits.items():  # each family judged on its own variables (diagnostics.reported_variables)
        out[family] = {"convergence": convergence_report(rm.idata).to_dict(),
                       "parameterization": rm.metadata.get("parameterization")}
    out["irt"]["fit_s"] = round(time.perf_counter() - start, 1)
    out["irt"]["difficulty_share_predicted_by_text"] = irt.text_share()
    out["irt"]["sigma_difficulty_mean"] = float(irt.idata.posterior["sigma_difficulty"].mean())
    out["irt"]["discrimination_mean"] = irt.idata.posterior["discrimination"].mean(("chain", "draw")) \
        .to_series().round(3).to_dict()
    n_per_q = len(models)
    clf = classifier_scores(train, test, questions, list(models), seed)
    per_call = {"v1": scoring.per_call_scores(v1_pre, test), "irt": scoring.per_call_scores(irt, test, questions=questions),
                "classifier": clf}
    joint = {"v1": scoring.joint_scores_independent(v1_pre, test),
             "irt": scoring.joint_scores_irt(irt, test, questions=questions), "classifier": clf}
    out["classifier"] = {}
    for family in per_call:
        out[family]["held_out_per_call_lpd"] = scoring.summarize(per_call[family], n_per_q)
        out[family]["held_out_joint_lpd_per_question"] = scoring.summarize(joint[family])
    for a, b in (("irt", "v1"), ("irt", "classifier"), ("v1", "classifier")):
        out[f"{a}_minus_{b}"] = {"per_call_lpd": scoring.paired_difference(per_call[a], per_call[b], n_per_q),
                                 "joint_lpd_per_question": scoring.paired_difference(joint[a], joint[b])}
    out["post_call"] = post_call_scores(fits, v1_post, test, questions, models)
    if all("log_likelihood" in fits[f].idata.groups() for f in fits):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az.compare({f: fits[f].idata for f in fits})
            ks = {f: float(np.mean(az.loo(fits[f].idata, pointwise=True).pareto_k.values > 0.7)) for f in fits}
        out["loo"] = {f: {"elpd_loo": float(table.loc[f, "elpd_loo"]), "se": float(table.loc[f, "se"]),
                          "elpd_diff": float(table.loc[f, "elpd_diff"]), "dse": float(table.loc[f, "dse"]),
                          "share_pareto_k_over_0.7": ks[f]} for f in fits}
    return out, irt


def classifier_scores(train: pd.DataFrame, test: pd.DataFrame, questions: pd.DataFrame, models: list,
                      seed: int) -> pd.Series:
    """Held-out log score per test question (sum over its calls) of the TF-IDF classifier router (the
    ``classifier`` policy's predictor), trained on ``train``'s questions: a point prediction, so its
    joint and per-call scores are the same."""
    from bayes_router.policies.routers import ClassifierRouter

    Y = train.pivot(index="question_id", columns="model", values="correct")[models].astype(float)
    texts = questions.drop_duplicates("question_id").set_index("question_id")
    router = ClassifierRouter(random_state=seed).fit(texts.loc[Y.index].reset_index(), Y)
    test_ids = np.sort(test["question_id"].unique())
    P = router.p_correct(texts.loc[test_ids].reset_index()).set_axis(test_ids, axis=0)
    p = P.to_numpy()[np.searchsorted(test_ids, test["question_id"].to_numpy()),
                     pd.Index(models).get_indexer(test["model"].astype(str))]
    return scoring.per_call_scores_from(p[None, :], test)


def comparison_table(result: dict) -> pd.DataFrame:
    """One row per pre-call predictor (v1, IRT, classifier): held-out log score per call and jointly per
    question with 95% intervals, the difference from v1 (paired), and PSIS-LOO where computed."""
    def fmt(d):
        return f"{d['mean']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]"

    rows = {}
    for family in ("v1", "irt", "classifier"):
        r, diff = result[family], result.get(f"{family}_minus_v1") or result.get(f"v1_minus_{family}")
        sign = -1 if f"v1_minus_{family}" in result else 1
        row = {"per call": fmt(r["held_out_per_call_lpd"]), "joint per question": fmt(r["held_out_joint_lpd_per_question"])}
        for key, col in (("per_call_lpd", "per call - v1"), ("joint_lpd_per_question", "joint - v1")):
            row[col] = "0" if diff is None else fmt({"mean": sign * diff[key]["mean"],
                                                     "ci95": sorted(sign * x for x in diff[key]["ci95"])})
        loo = result.get("loo", {}).get(family)
        row["PSIS-LOO elpd (se)"] = f"{loo['elpd_loo']:.0f} ({loo['se']:.0f})" if loo else "-"
        rows[family] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def post_call_scores(fits: dict, v1_post, test, questions, models) -> dict:
    """Held-out scores after a first call to the cheapest model (``models[0]``), per test question:

    * the first call itself given its signals: IRT post stage against v1's post-call model ``v1_post``;
    * the other models given the first call's signals: IRT ``p_correct_after`` against the IRT
      and v1 pre-call probabilities (which ignore the first call).
    """
    first = test[test["model"] == models[0]].reset_index(drop=True)
    others = test[test["model"] != models[0]].reset_index(drop=True)
    irt_post = fits["irt"].as_stage("post")
    out = {"first_model": models[0]}
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
