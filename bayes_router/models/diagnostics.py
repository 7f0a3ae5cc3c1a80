"""Is the posterior trustworthy, and is it any good? Diagnostics for :class:`~bayes_router.models.reliability.ReliabilityModel`.

* :func:`convergence_report` -- R-hat, bulk and tail ESS per variable, divergences
  and E-BFMI per chain, each with pass/fail against stated thresholds
  (R-hat <= 1.01, ESS >= 400, no divergences, E-BFMI >= 0.3).
* :func:`ppc_accuracy` -- posterior predictive check of accuracy per model x subject.
* :func:`loo_compare` -- PSIS-LOO comparison (``az.compare``) of fits on the same calls,
  e.g. pre- vs post-call.
* :func:`held_out_scores` -- log score and Brier score on held-out questions against a
  plain logistic regression (scikit-learn) on the same features, with paired
  bootstrap intervals over questions for the differences.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Thresholds a converged posterior must meet.
THRESHOLDS = {"r_hat_max": 1.01, "ess_bulk_min": 400.0, "ess_tail_min": 400.0, "divergences_max": 0,
              "bfmi_min": 0.3}

#: Variables reported (the interpretable ones; z_* are their non-centered innovations).
REPORTED_VARS = ("mu_alpha", "sigma_alpha", "alpha", "sigma_subject", "beta", "sigma_interaction", "gamma",
                 "mu_slope", "sigma_slope", "slope")
#: The IRT family's: its abilities as v1's, the discriminations, text weights and every difficulty.
REPORTED_VARS_IRT = ("mu_alpha", "sigma_alpha", "alpha", "sigma_subject", "beta", "sigma_interaction", "gamma",
                     "discrimination", "text_weight", "sigma_difficulty", "difficulty")


def reported_variables(idata) -> tuple[str, ...]:
    """The variables convergence is judged on: the IRT family's when ``idata`` was written by it, else v1's."""
    import json

    try:
        family = json.loads(idata.attrs["bayes_router_reliability"]).get("family", "v1")
    except (KeyError, TypeError, ValueError):  # not written by a ReliabilityModel
        family = "v1"
    return REPORTED_VARS_IRT if family == "irt" else REPORTED_VARS


@dataclass
class ConvergenceReport:
    """Per-variable table (worst R-hat, smallest bulk/tail ESS, pass) and sampler checks."""

    table: pd.DataFrame
    divergences: int
    bfmi: list[float]
    sampler: str
    thresholds: dict = field(default_factory=lambda: dict(THRESHOLDS))

    @property
    def failures(self) -> list[str]:
        t = self.thresholds
        out = []
        if self.sampler == "advi":
            out.append("ADVI is an approximation: no R-hat/ESS/divergence guarantees (use NUTS to check)")
            return out
        bad = self.table[~self.table["pass"]]
        for var, row in bad.iterrows():
            out.append(f"{var}: R-hat {row.r_hat_max:.3f} (<= {t['r_hat_max']}), bulk ESS {row.ess_bulk_min:.0f}, "
                       f"tail ESS {row.ess_tail_min:.0f} (>= {t['ess_bulk_min']:.0f})")
        if self.divergences > t["divergences_max"]:
            out.append(f"{self.divergences} divergent transitions (want 0)")
        low = [round(b, 3) for b in self.bfmi if b < t["bfmi_min"]]
        if low:
            out.append(f"E-BFMI {low} below {t['bfmi_min']}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def worst(self) -> dict | None:
        """The variable closest to failing: the smallest of bulk and tail ESS relative to its threshold,
        or R-hat's excess over its threshold relative to R-hat's own margin, whichever is worse."""
        if self.table.empty:
            return None
        t = self.thresholds
        ess = self.table[["ess_bulk_min", "ess_tail_min"]].min(axis=1) / t["ess_bulk_min"]
        rhat = (t["r_hat_max"] - 1.0) / (self.table["r_hat_max"] - 1.0).clip(lower=1e-9)
        margin = pd.concat([ess, rhat], axis=1).min(axis=1).fillna(0.0)
        var = str(margin.idxmin())
        row = self.table.loc[var]
        return {"variable": var, "r_hat_max": _finite(row.r_hat_max), "ess_bulk_min": _finite(row.ess_bulk_min),
                "ess_tail_min": _finite(row.ess_tail_min), "margin": _finite(margin[var])}

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "thresholds": self.thresholds,
            "r_hat_max": _finite(self.table["r_hat_max"].max()),
            "ess_bulk_min": _finite(self.table["ess_bulk_min"].min()),
            "ess_tail_min": _finite(self.table["ess_tail_min"].min()),
            "divergences": int(self.divergences),
            "bfmi": [_finite(b) for b in self.bfmi],
            "failures": self.failures,
        }

    def __str__(self) -> str:
        t = self.thresholds
        lines = [
            f"Convergence (thresholds: R-hat <= {t['r_hat_max']}, bulk/tail ESS >= {t['ess_bulk_min']:.0f}, "
            f"divergences = 0, E-BFMI >= {t['bfmi_min']})",
            self.table.to_string(float_format=lambda v: f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"),
            f"divergences: {self.divergences}    E-BFMI per chain: "
            + (", ".join(f"{b:.2f}" for b in self.bfmi) if self.bfmi else "n/a"),
            "PASS" if self.passed else "FAIL: " + "; ".join(self.failures),
        ]
        return "\n".join(lines)


def _finite(v):
    v = float(v)
    return v if np.isfinite(v) else None


def convergence_report(idata, var_names=None, thresholds: dict | None = None) -> ConvergenceReport:
    """Summarize convergence of ``idata`` per variable (worst element of each vector variable);
    ``var_names`` None: :func:`reported_variables`."""
    import arviz as az

    th = {**THRESHOLDS, **(thresholds or {})}
    var_names = reported_variables(idata) if var_names is None else var_names
    post = idata.posterior
    names = [v for v in var_names if v in post and post[v].size > 0]
    sampler = str(idata.attrs.get("bayes_router_sampler", ""))
    if not sampler:
        try:
            import json

            sampler = json.loads(idata.attrs["bayes_router_reliability"])["metadata"].get("sampler", "")
        except Exception:  # not written by ReliabilityModel
            sampler = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summ = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
    rows = []
    for v in names:
        sel = summ.loc[[i for i in summ.index if i == v or i.startswith(v + "[")]]
        rows.append({"variable": v, "size": len(sel), "r_hat_max": sel["r_hat"].max(),
                     "ess_bulk_min": sel["ess_bulk"].min(), "ess_tail_min": sel["ess_tail"].min()})
    table = pd.DataFrame(rows).set_index("variable")
    table["pass"] = ((table["r_hat_max"] <= th["r_hat_max"]) & (table["ess_bulk_min"] >= th["ess_bulk_min"])
                     & (table["ess_tail_min"] >= th["ess_tail_min"])).fillna(False).astype(bool)
    divergences, bfmi = 0, []
    if "sample_stats" in idata.groups():
        ss = idata.sample_stats
        if "diverging" in ss:
            divergences = int(ss["diverging"].sum())
        if "energy" in ss:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                bfmi = [float(b) for b in np.atleast_1d(az.bfmi(idata))]
    return ConvergenceReport(table=table, divergences=divergences, bfmi=bfmi, sampler=sampler, thresholds=th)


def warn_if_failed(report: ConvergenceReport, what: str = "posterior") -> bool:
    """Emit one clear warning per failed check; return True when everything passed."""
    for f in report.failures:
        warnings.warn(f"{what}: diagnostic failed: {f}", stacklevel=2)
    return report.passed


# ---------------------------------------------------------------- predictive checks
def ppc_accuracy(rm, log: pd.DataFrame, n_draws: int = 400, prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Posterior predictive check of accuracy per model x subject.

    Replicates ``correct`` for every call in ``log`` from ``n_draws`` posterior draws
    of P(correct) and compares each cell's observed accuracy with the replicated
    accuracies: columns n, observed, rep_mean, rep_lo, rep_hi (central ``prob``
    interval), ppp (posterior predictive P(rep >= observed)) and inside.
    """
    rng = np.random.default_rng(seed)
    P = rm.p_correct(log, n_draws=n_draws).values
    rep = rng.random(P.shape, dtype=np.float32) < P
    y = log["correct"].to_numpy(dtype=bool)
    keys = log["model"].astype(str) + "\x00" + log["subject"].astype(str)
    codes, uniq = pd.factorize(keys, sort=True)
    onehot = np.zeros((len(log), len(uniq)), dtype=np.float32)
    onehot[np.arange(len(log)), codes] = 1.0
    n = onehot.sum(0)
    rep_acc = (rep.astype(np.float32) @ onehot) / n
    obs = (y.astype(np.float32) @ onehot) / n
    lo, hi = np.quantile(rep_acc, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    ppp = (rep_acc >= obs[None, :] - 1e-9).mean(0)
    m, s = zip(*(u.split("\x00") for u in uniq), strict=True)
    out = pd.DataFrame({"model": m, "subject": s, "n": n.astype(int), "observed": obs,
                        "rep_mean": rep_acc.mean(0), "rep_lo": lo, "rep_hi": hi, "ppp": ppp})
    out["inside"] = (out["observed"] >= out["rep_lo"]) & (out["observed"] <= out["rep_hi"])
    return out


def loo_compare(fits: dict, scale: str = "log") -> pd.DataFrame:
    """PSIS-LOO comparison (``az.compare``) of named fits (ReliabilityModel or InferenceData).

    The fits must carry log_likelihood over the same calls (fit on the same training
    log). The post-call hurdle gives unparsed calls log-likelihood 0 in the post
    model; both models predict the same outcome ``correct`` for the same calls, the
    post model conditioning on more (post-call) information.
    """
    import arviz as az

    idatas = {k: getattr(v, "idata", v) for k, v in fits.items()}
    sizes = {k: d.log_likelihood["correct"].sizes["call"] for k, d in idatas.items() if "log_likelihood" in d.groups()}
    if len(sizes) != len(idatas):
        missing = sorted(set(idatas) - set(sizes))
        raise ValueError(f"no log_likelihood group in {missing} (too many draws x rows were fitted to store it)")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"fits are on different calls: {sizes}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return az.compare({k: psis_loo(d, scale=scale) for k, d in idatas.items()}, ic="loo", scale=scale)


def psis_loo(idata, scale: str = "log"):
    """``az.loo`` with one correction: calls whose log-likelihood is the same in every draw
    (unparsed calls under the post-call hurdle, log-lik exactly 0) have exact LOO
    (leaving them out does not move the posterior), so their Pareto k is set to 0
    instead of the meaningless value PSIS fits to constant weights."""
    import arviz as az

    idata = getattr(idata, "idata", idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(idata, pointwise=True, scale=scale)
    ll = idata.log_likelihood["correct"].to_numpy().reshape(-1, idata.log_likelihood["correct"].shape[-1])
    const = np.ptp(ll, axis=0) == 0
    if const.any():
        k = loo["pareto_k"].to_numpy().copy()
        k[const] = 0.0
        loo["pareto_k"] = loo["pareto_k"].copy(data=k)
        loo["warning"] = bool((k > loo["good_k"]).any())
    return loo


def loo_summary(rm) -> dict:
    """ELPD-LOO of one fit with its SE and the count of Pareto k > 0.7 (unreliable PSIS)."""
    loo = psis_loo(rm)
    k = np.asarray(loo.pareto_k)
    return {"elpd_loo": float(loo.elpd_loo), "se": float(loo.se), "p_loo": float(loo.p_loo),
            "n_pareto_k_gt_0_7": int(np.nansum(k > 0.7))}


# ------------------------------------------------------------------ held-out scores
def _features(rm, log: pd.DataFrame, columns=None):
    """One-hot model, subject, model x subject, the standardized covariates and covariate x model."""
    X = rm.design_matrix(log)
    m = log["model"].astype(str).to_numpy()
    s = log["subject"].astype(str).to_numpy()
    parts = {f"model={v}": (m == v) for v in rm.models}
    parts.update({f"subject={v}": (s == v) for v in rm.subjects})
    parts.update({f"cell={a}|{b}": (m == a) & (s == b) for a in rm.models for b in rm.subjects})
    for j, c in enumerate(rm.slope_covariates):
        parts[c] = X[:, j]
        parts.update({f"{c}*model={v}": X[:, j] * (m == v) for v in rm.models})
    F = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in parts.items()})
    return F if columns is None else F.reindex(columns=columns, fill_value=0.0)


def logistic_baseline(rm, train_log: pd.DataFrame, C: float = 1.0, seed: int = 0):
    """A plain (scikit-learn, L2 with ``C``) logistic regression on the Bayesian model's features.

    Same structure as ``rm``: in the post stage it is fitted on parsed calls and
    predicts 0 for unparsed ones (the hurdle). Returns ``predict(log) -> p`` (rows,).
    """
    from sklearn.linear_model import LogisticRegression

    rows = train_log[train_log["parsed"].to_numpy(dtype=bool)] if rm.stage == "post" else train_log
    F = _features(rm, rows)
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    clf.fit(F.to_numpy(), rows["correct"].to_numpy(dtype=int))
    cols = list(F.columns)

    def predict(log: pd.DataFrame) -> np.ndarray:
        p = clf.predict_proba(_features(rm, log, cols).to_numpy())[:, 1]
        if rm.stage == "post":
            p = np.where(log["parsed"].to_numpy(dtype=bool), p, 0.0)
        return p

    return predict


def _log_score(y: np.ndarray, p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(p, eps, 1 - eps)
    return np.where(y, np.log(p), np.log1p(-p))


def held_out_scores(rm, train_log: pd.DataFrame, test_log: pd.DataFrame, n_boot: int = 1000,
                    seed: int = 0, C: float = 1.0) -> dict:
    """Log score and Brier score on held-out calls: Bayesian model vs logistic regression vs base rate.

    The Bayesian log score is the log posterior predictive density per call,
    log E_posterior[p(y | theta)]; the Brier score uses the posterior mean of p.
    Baselines: :func:`logistic_baseline` (same features) and each model's training
    accuracy. Differences (bayes - other) carry 95% intervals from a paired
    bootstrap over held-out *questions* (calls of one question resampled together).
    Higher log score is better; lower Brier is better. Probabilities are clipped to
    [1e-6, 1 - 1e-6] for the log score.
    """
    y = test_log["correct"].to_numpy(dtype=bool)
    P = rm.p_correct(test_log).values.astype(np.float64)
    pm_bayes = P.mean(0)
    # log E_post[p(y | theta)] is log(mean p) for y = 1 and log(1 - mean p) for y = 0 (Bernoulli), exactly
    lpd = _log_score(y, pm_bayes)
    p_lr = logistic_baseline(rm, train_log, C=C, seed=seed)(test_log)
    base = train_log.groupby(train_log["model"].astype(str))["correct"].mean()
    glob = float(train_log["correct"].mean())
    p_base = test_log["model"].astype(str).map(base).fillna(glob).to_numpy(dtype=float)
    per_call = {
        "bayes": (lpd, (pm_bayes - y) ** 2),
        "logistic_regression": (_log_score(y, p_lr), (p_lr - y) ** 2),
        "base_rate": (_log_score(y, p_base), (p_base - y) ** 2),
    }
    q_codes, _ = pd.factorize(test_log["question_id"])
    n_q = q_codes.max() + 1
    counts = np.bincount(q_codes, minlength=n_q)
    rng = np.random.default_rng(seed)
    boots = rng.multinomial(n_q, np.full(n_q, 1 / n_q), size=n_boot)  # (n_boot, questions) weights
    w_calls = boots[:, q_codes].astype(float)  # each call weighted by its question's multiplicity
    denom = (boots * counts).sum(1)
    out = {"n_test_calls": int(len(y)), "n_test_questions": int(n_q), "scores": {}, "differences": {}}
    for name, (ls, br) in per_call.items():
        out["scores"][name] = {"log_score": float(ls.mean()), "brier": float(br.mean())}
    for other in ("logistic_regression", "base_rate"):
        d = {}
        for j, metric in enumerate(("log_score", "brier")):
            diff = per_call["bayes"][j] - per_call[other][j]
            bs = (w_calls @ diff) / denom
            d[metric] = {"bayes_minus_other": float(diff.mean()), "ci95": [float(v) for v in np.quantile(bs, [0.025, 0.975])]}
        out["differences"][f"bayes_vs_{other}"] = d
    return out


# ----------------------------------------------------------------------------- plots
def plot_ppc_accuracy(table: pd.DataFrame, ax=None):
    """Observed vs replicated accuracy per model x subject (from :func:`ppc_accuracy`); returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 6))[1]
    for model, g in table.groupby("model", sort=False):
        ax.errorbar(g["rep_mean"], g["observed"], xerr=[g["rep_mean"] - g["rep_lo"], g["rep_hi"] - g["rep_mean"]],
                    fmt="o", ms=4, capsize=2, alpha=0.8, label=model)
    ax.plot([0, 1], [0, 1], ls="--", color="grey")
    ax.set_xlabel("replicated accuracy (posterior predictive mean, 90% interval)")
    ax.set_ylabel("observed accuracy")
    ax.legend(fontsize=7, loc="upper left")
    return ax
