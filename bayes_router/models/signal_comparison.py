"""Does a model's own confidence help the post-call reliability model? A measured comparison.

A call log from the LLM calibration study holds three confidence signals per call (each in
[0, 1], null where the study could not read one):

* ``confidence``: the confidence the model stated ("Confidence (0-100)");
* ``mean_token_prob``: the mean probability of the answer's tokens (open-weights models only);
* ``decisiveness``: the study's reading of how decisive the answer's wording is.

:func:`compare_signals` fits the post-call model (:class:`~bayes_router.models.reliability.ReliabilityModel`)
once per variant of :data:`VARIANTS` (no signal, each signal alone, all of them) on the training
questions of THE split and compares the variants

* by PSIS-LOO on the training calls (``az.compare``: elpd difference and its standard error),
* by the held-out log score (mean log predictive density per test call, nats) and ECE (15 equal-width
  bins, parsed test calls; the hurdle makes unparsed calls certain in every variant), each with a
  95% bootstrap interval over test questions and the paired difference against "no signal",
* against a logistic regression (scikit-learn, L2, ``C`` = 1 on standardized features) on the
  same features: one-hot model, subject and (model, subject) cell, the standardized covariates of
  the Bayesian design (missing-value indicators included) and their products with the one-hot
  model (per-model slopes). It is fitted on the parsed training calls, as the Bayesian logistic
  part is, and given the same hurdle.

:func:`signal_profile` is the data check behind the model's choices: per model, how often each
signal is missing or exactly 0, and how often the stated confidence sits on a heap value.

Run it once per pool in the background (CPU-heavy: one NUTS fit per variant), e.g.::

    python -m bayes_router.models.signal_comparison --pool study-trio --questions 3000 -o out.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_router.errors import InputError

#: The confidence signals a call log may hold (columns of the call-log schema).
SIGNALS = ("confidence", "mean_token_prob", "decisiveness")
#: The post-call variants compared: name -> the signals the model may use.
VARIANTS: dict[str, tuple[str, ...]] = {
    "no signal": (),
    "+ stated confidence": ("confidence",),
    "+ mean token prob": ("mean_token_prob",),
    "+ decisiveness": ("decisiveness",),
    "all signals": SIGNALS,
}
#: Values of stated confidence that models state far more often than their neighbours.
HEAPS = (0.8, 0.85, 0.9, 0.95, 0.99, 1.0)
ECE_BINS = 15


def signal_profile(log: pd.DataFrame, models=None) -> pd.DataFrame:
    """Per model (rows): calls, accuracy, parsed share, and for each signal the share of calls where it
    is null and where it is exactly 0, the accuracy of parsed calls with a null or zero stated confidence,
    and the share of stated confidences on each value of :data:`HEAPS` (shares in [0, 1])."""
    sub = log if models is None else log[log["model"].isin(list(models))]
    if len(sub) == 0:
        raise InputError("signal_profile: no rows for these models")
    rows = {}
    for m, g in sub.groupby("model", sort=False, observed=True):
        r = {"calls": len(g), "accuracy": float(g["correct"].mean()), "parsed": float(g["parsed"].mean())}
        for s in SIGNALS:
            v = (pd.to_numeric(g[s], errors="coerce").to_numpy(dtype=float, na_value=np.nan) if s in g.columns
                 else np.full(len(g), np.nan))
            r[f"{s} null"] = float(np.isnan(v).mean())
            r[f"{s} = 0"] = float((v == 0).mean())
        conf = pd.to_numeric(g["confidence"], errors="coerce") if "confidence" in g.columns else None
        if conf is not None:
            parsed = g["parsed"].to_numpy(bool)
            values = conf.to_numpy(dtype=float, na_value=np.nan)
            for what, mask in (("null", np.isnan(values)), ("= 0", values == 0)):
                hit = mask & parsed
                r[f"accuracy, confidence {what}"] = float(g["correct"].to_numpy()[hit].mean()) if hit.any() else np.nan
            for h in HEAPS:
                r[f"confidence at {h:g}"] = float(np.isclose(values, h).mean())
        rows[str(m)] = r
    return pd.DataFrame.from_dict(rows, orient="index")


def with_signals(log: pd.DataFrame, signals) -> pd.DataFrame:
    """``log`` without the columns of the signals not in ``signals`` (a variant's training view)."""
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown:
        raise InputError(f"signals: unknown {unknown}; valid: {list(SIGNALS)}")
    return log.drop(columns=[s for s in SIGNALS if s not in signals and s in log.columns])


# ------------------------------------------------------------------------------------ held-out metrics
def log_score(y, p) -> np.ndarray:
    """Log predictive density of each outcome, nats, shape (n,): log p where y, else log(1 - p)."""
    y, p = np.asarray(y, dtype=bool), np.asarray(p, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(y, np.log(np.clip(p, 1e-300, 1.0)), np.log(np.clip(1.0 - p, 1e-300, 1.0)))


def _weighted_ece(y: np.ndarray, p: np.ndarray, w: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE of (y, p) under each row of weights ``w`` (resamples x calls): sum_b |sum w y - sum w p| / sum w."""
    b = np.clip((p * n_bins).astype(int), 0, n_bins - 1)
    onehot = np.zeros((len(p), n_bins))
    onehot[np.arange(len(p)), b] = 1.0
    gap = np.abs((w * y) @ onehot - (w * p) @ onehot).sum(axis=1)
    return gap / np.maximum(w.sum(axis=1), 1e-12)


def heldout_metrics(y, p, question, parsed, idx: np.ndarray, reference_p=None) -> dict:
    """Held-out log score (mean nats per call, all calls) and ECE (parsed calls) with 95% intervals.

    ``y``, ``p``, ``question`` (question index per call, 0..n_questions-1), ``parsed``: shape (calls,);
    ``idx``: (resamples, n_questions) bootstrap draws of questions (:func:`~bayes_router.study.metrics.bootstrap_indices`);
    ``reference_p``: another predictor's ``p`` on the same calls, for paired differences (this minus it).
    """
    from bayes_router.study.metrics import percentile_ci

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    question, parsed = np.asarray(question), np.asarray(parsed, dtype=bool)
    n_q = int(idx.shape[1])
    w_q = np.stack([np.bincount(r, minlength=n_q) for r in idx]).astype(float)  # resamples x questions
    w = w_q[:, question]
    calls_per_q = np.bincount(question, minlength=n_q).astype(float)

    def score(pp):
        ls_q = np.bincount(question, weights=log_score(y, pp), minlength=n_q)
        return float(ls_q.sum() / calls_per_q.sum()), (w_q @ ls_q) / (w_q @ calls_per_q)

    def ece(pp):
        point = _weighted_ece(y[parsed], pp[parsed], np.ones((1, int(parsed.sum()))), ECE_BINS)[0]
        return float(point), _weighted_ece(y[parsed], pp[parsed], w[:, parsed], ECE_BINS)

    ls, ls_boot = score(p)
    e, e_boot = ece(p)
    out = {"log_score": ls, "log_score_ci": percentile_ci(ls_boot), "ece": e, "ece_ci": percentile_ci(e_boot),
           "test_calls": int(len(y)), "test_questions": n_q}
    if reference_p is not None:
        ref_ls, ref_boot = score(np.asarray(reference_p, dtype=float))
        ref_e, ref_e_boot = ece(np.asarray(reference_p, dtype=float))
        out.update({"log_score_diff": ls - ref_ls, "log_score_diff_ci": percentile_ci(ls_boot - ref_boot),
                    "ece_diff": e - ref_e, "ece_diff_ci": percentile_ci(e_boot - ref_e_boot)})
    return out


# ---------------------------------------------------------------------------------- logistic baseline
def logistic_features(design, calls: pd.DataFrame) -> np.ndarray:
    """The logistic regression's features of ``calls``, (calls, features): one-hot model, subject and
    (model, subject) cell, the design's standardized covariates, and their products with the one-hot
    model. Unseen models or subjects get all-zero one-hots (the population level)."""
    m, s = design.codes(calls)
    n_m, n_s = len(design.models), len(design.subjects)
    X = design.matrix(calls)
    rows = np.arange(len(calls))
    M, S, C = np.zeros((len(calls), n_m)), np.zeros((len(calls), n_s)), np.zeros((len(calls), n_m * n_s))
    M[rows[m >= 0], m[m >= 0]] = 1.0
    S[rows[s >= 0], s[s >= 0]] = 1.0
    seen = (m >= 0) & (s >= 0)
    C[rows[seen], m[seen] * n_s + s[seen]] = 1.0
    per_model = (M[:, :, None] * X[:, None, :]).reshape(len(calls), -1)
    return np.hstack([M, S, C, X, per_model])


def logistic_baseline(design, train: pd.DataFrame, test: pd.DataFrame, C: float = 1.0, seed: int = 0) -> np.ndarray:
    """P(correct) of each test call, shape (test calls,), from an L2 logistic regression on
    :func:`logistic_features`, fitted on the parsed training calls; unparsed test calls get 0 (the hurdle)."""
    from sklearn.linear_model import LogisticRegression

    keep = train["parsed"].to_numpy(bool)
    clf = LogisticRegression(C=C, max_iter=5000, random_state=seed)
    clf.fit(logistic_features(design, train[keep]), train["correct"].to_numpy(int)[keep])
    p = clf.predict_proba(logistic_features(design, test))[:, 1]
    return np.where(test["parsed"].to_numpy(bool), p, 0.0)


# --------------------------------------------------------------------------------------- the comparison
@dataclass
class SignalComparison:
    """The result of :func:`compare_signals`.

    ``loo``: ``az.compare`` of the Bayesian variants (PSIS-LOO on the training calls; elpd in nats);
    ``heldout``: one row per (variant, method) with the held-out metrics of :func:`heldout_metrics`;
    ``fits``: per variant the covariates used, the pooled slopes (posterior mean and 94% interval of
    ``mu_slope``), convergence (max R-hat, min bulk ESS, divergences) and seconds sampled; ``meta``: the split.
    """

    loo: pd.DataFrame
    heldout: pd.DataFrame
    fits: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per variant: elpd_loo difference +- se, and the held-out log score and ECE with
        95% intervals for the Bayesian model and the logistic regression."""
        rows = []
        for name in self.heldout["variant"].unique():
            row = {"variant": name}
            if name in self.loo.index:
                r = self.loo.loc[name]
                row.update({"elpd_loo": float(r["elpd_loo"]), "elpd_diff": float(r["elpd_diff"]),
                            "dse": float(r["dse"]), "loo_rank": int(r["rank"])})
            for method in ("bayes", "logistic"):
                h = self.heldout[(self.heldout["variant"] == name) & (self.heldout["method"] == method)]
                if len(h):
                    h = h.iloc[0]
                    row[f"{method} log score"] = _fmt(h["log_score"], h["log_score_ci"])
                    row[f"{method} ECE"] = _fmt(h["ece"], h["ece_ci"])
                    if isinstance(h.get("log_score_diff_ci"), list):
                        row[f"{method} Δ log score vs no signal"] = _fmt(h["log_score_diff"], h["log_score_diff_ci"])
            rows.append(row)
        return pd.DataFrame(rows).set_index("variant")

    def to_dict(self) -> dict:
        return {"loo": json.loads(self.loo.to_json(orient="index")),
                "heldout": json.loads(self.heldout.to_json(orient="records")),
                "fits": self.fits, "meta": self.meta}


def _fmt(value: float, ci) -> str:
    return f"{value:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"


def _fit_summary(rm, seconds: float) -> dict:
    import arviz as az

    post = rm.idata.posterior
    slopes = post["mu_slope"]
    hdi = az.hdi(slopes, hdi_prob=0.94)["mu_slope"].to_numpy()
    names = [str(c) for c in slopes["covariate"].to_numpy()]
    stats = rm.idata.get("sample_stats")
    return {"covariates_used": list(rm.covariates_used), "covariates_dropped": dict(rm.covariates_dropped),
            "mu_slope": {c: [float(slopes.mean(("chain", "draw"))[i]), float(hdi[i, 0]), float(hdi[i, 1])]
                         for i, c in enumerate(names)},
            "max_rhat": float(az.rhat(post).to_array().max()),
            "min_ess_bulk": float(az.ess(post, method="bulk").to_array().min()),
            "divergences": int(stats["diverging"].sum()) if stats is not None and "diverging" in stats else None,
            "seconds": round(seconds, 1)}


def compare_signals(log: pd.DataFrame, models, n_questions: int | None = 3000, test_frac: float = 0.3,
                    seed: int = 0, variants: dict | None = None, sampler: str = "nutpie", draws: int = 1000,
                    tune: int = 1000, chains: int = 2, n_boot: int = 1000, progress: bool = False,
                    model_config: dict | None = None, sampler_config: dict | None = None) -> SignalComparison:
    """Fit the post-call model once per variant (``variants``: name -> signals, default :data:`VARIANTS`;
    the first is the reference of the paired differences) on the training questions of THE split
    (:func:`~bayes_router.data.split.sample_questions` of ``n_questions``, then
    :func:`~bayes_router.data.split.train_test_split` at ``test_frac``, both with ``seed``) and compare
    them by PSIS-LOO and on the test questions, beside a logistic regression on the same features.
    ``model_config``/``sampler_config``: the reliability model's (e.g. ``{"target_accept": 0.99}``)."""
    import arviz as az
    from tqdm.auto import tqdm

    from bayes_router.data.split import rows_for, sample_questions, train_test_split
    from bayes_router.models.reliability import ReliabilityModel
    from bayes_router.study.metrics import bootstrap_indices

    variants = dict(variants or VARIANTS)
    models = list(models)
    wanted = sorted({s for sig in variants.values() for s in sig})
    absent = [s for s in wanted if s not in log.columns or not log.loc[log["model"].isin(models), s].notna().any()]
    if absent:
        raise InputError(f"call log: no value of {absent} for the models {models}; compare the signals on a "
                         "log that holds them (e.g. the calibration study's)")
    ids = sample_questions(log, models, n_questions, seed=seed)
    train_ids, test_ids = train_test_split(ids, test_frac, seed=seed)
    train, test = rows_for(log, models, train_ids), rows_for(log, models, test_ids)
    question = pd.Categorical(test["question_id"], categories=np.sort(test_ids)).codes
    idx = bootstrap_indices(len(test_ids), n_boot, seed)
    y, parsed = test["correct"].to_numpy(bool), test["parsed"].to_numpy(bool)
    idatas, heldout, fits, reference = {}, [], {}, {}
    bar = tqdm(variants.items(), desc="post-call fits", unit="variant", disable=not progress)
    for name, signals in bar:
        bar.set_postfix_str(name)
        rm = ReliabilityModel(stage="post", model_config=model_config, sampler_config=sampler_config)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the covariates left out are recorded in fits
            rm.fit(with_signals(train, signals), sampler=sampler, draws=draws, tune=tune, chains=chains,
                   seed=seed, progress=False)
        fits[name] = _fit_summary(rm, time.perf_counter() - t0)
        idatas[name] = rm.idata
        view = with_signals(test, signals)
        preds = {"bayes": rm.p_correct_mean(view),
                 "logistic": logistic_baseline(rm.design, with_signals(train, signals), view, seed=seed)}
        for method, p in preds.items():
            reference.setdefault(method, p)
            heldout.append({"variant": name, "method": method, "signals": list(signals),
                            **heldout_metrics(y, p, question, parsed, idx,
                                              None if p is reference[method] else reference[method])})
    loo = az.compare(idatas, ic="loo") if all("log_likelihood" in i.groups() for i in idatas.values()) \
        else pd.DataFrame()
    meta = {"models": models, "n_questions": int(len(ids)), "train_questions": int(len(train_ids)),
            "test_questions": int(len(test_ids)), "train_calls": int(len(train)), "test_calls": int(len(test)),
            "test_frac": test_frac, "seed": seed, "sampler": sampler, "draws": draws, "tune": tune,
            "chains": chains, "n_boot": n_boot, "ece_bins": ECE_BINS,
            "reference_variant": next(iter(variants))}
    return SignalComparison(loo, pd.DataFrame(heldout), fits, meta)


def main(argv=None) -> int:
    """Command line: compare the signals on one pool and write the result as JSON (atomically)."""
    from bayes_router.data.io import load_call_log, write_json
    from bayes_router.data.pools import resolve_models

    ap = argparse.ArgumentParser(prog="python -m bayes_router.models.signal_comparison",
                                 description="Post-call models with and without each confidence signal, "
                                             "by PSIS-LOO and held-out log score and ECE, beside a logistic "
                                             "regression on the same features.")
    ap.add_argument("--log", default="data/logs/calibration_study.parquet", help="call log (parquet)")
    ap.add_argument("--pool", default="study-trio", help="pool name or comma-separated models")
    ap.add_argument("--questions", type=int, default=3000, help="questions sampled (all answered by every model)")
    ap.add_argument("--test-frac", type=float, default=0.3, help="share of questions held out")
    ap.add_argument("--seed", type=int, default=0, help="seed of the split, the sampler and the bootstrap")
    ap.add_argument("--draws", type=int, default=1000, help="posterior draws per chain")
    ap.add_argument("--tune", type=int, default=1000, help="tuning steps per chain")
    ap.add_argument("--chains", type=int, default=2, help="chains")
    ap.add_argument("-o", "--output", required=True, help="JSON file written")
    args = ap.parse_args(argv)
    log = load_call_log(args.log)
    result = compare_signals(log, resolve_models(args.pool), args.questions, args.test_frac, args.seed,
                             draws=args.draws, tune=args.tune, chains=args.chains, progress=True)
    write_json(args.output, {"pool": args.pool, **result.to_dict(),
                             "profile": json.loads(signal_profile(log, resolve_models(args.pool)).to_json(orient="index"))})
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(result.table().to_string())
        print(json.dumps(result.fits, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
