"""Hierarchical Bayesian reliability models: the probability that an LLM answers correctly.

Two stages, one class (:class:`ReliabilityModel`):

* **pre-call** (``stage="pre"``): what is known before calling. For call ``i`` of
  model ``m`` on a question of subject ``s``::

      logit p_i = alpha[m] + beta[s] + gamma[m, s] + slope[m, "log_question_chars"] * z_len_i

  ``p_i`` is P(correct) including the chance that no answer can be extracted
  (an unparsed call counts as wrong), so it is what a router needs before paying.

* **post-call** (``stage="post"``): after the answer is back. A *hurdle*:

      P(correct | parsed = False) = 0                       exactly (schema: pred null => wrong)
      logit P(correct | parsed = True) = pre-call terms + sum_c slope[m, c] * z_c,i

  for the post-call covariates ``c`` the training log holds: standardized
  log1p(completion tokens), confidence (where the log has it) and log latency
  (where the log has it). Why a hurdle rather than a slope on ``parsed``: the
  outcome is *deterministically* wrong when ``parsed`` is False, so a slope
  would face complete separation (its likelihood increases without bound
  towards -inf and only the prior would stop it). The hurdle encodes the
  structural zero exactly and fits the logistic part on parsed calls only;
  ``parsed`` is listed in :attr:`ReliabilityModel.covariates_used` as the hurdle.

Partial pooling everywhere. The per-model intercepts and the subject effects are
centered by default (hundreds to thousands of calls pin each one, and a
non-centered form then mixes slowly). The model x subject deviations and the
slopes are chosen per fit from the data (``"auto"``, :func:`choose_parameterization`):
centered when the likelihood pins each level more tightly than a conservative
estimate of how much the levels spread (the whole 24-model pool), else
non-centered (the 3-model pools), the slopes then with innovations that sum to
zero over the models. The slopes are decided per covariate (in the 24-model pool
the token slopes spread far more than their noise and are centered, the length
slopes are on the edge and get zero-sum innovations). Each is a ``model_config`` option
(``{"model_effects" | "subject_effects" | "interaction_effects" | "slope_effects":
{"parameterization": "auto" (interactions, slopes) | "centered" | "non-centered" |
"zero-sum" (slopes only)}}``); the choice made is kept in ``metadata["parameterization"]``
("mixed" for slopes decided per covariate; ``metadata["slope_parameterization"]`` has each):

    alpha[m]        ~ Normal(mu_alpha, sigma_alpha)                    model intercepts share a population
    beta            ~ ZeroSumNormal(sigma_subject)                     subject effects, sum_s beta = 0
    gamma[m, s]     ~ ZeroSumNormal(sigma_interaction)                 model x subject deviations,
                      (or sigma_interaction * z_gamma[m, s])           zero sum over m and over s
    slope[m, c]     ~ Normal(mu_slope[c], sigma_slope[c])              slopes pooled across models
                      (or mu_slope[c] + sigma_slope[c] * z_slope[m, c], sum_m z_slope[m, c] = 0)

The zero-sum constraints (``pm.ZeroSumNormal``) remove the additive ridges between
the intercepts, subject effects and interactions (otherwise only the priors pin
down, say, mu_alpha against the mean of beta, and NUTS mixes slowly along that
ridge); the cell logits alpha + beta + gamma are unchanged in meaning. For the
slopes the same constraint makes mu_slope the mean of the models' slopes, so it
cannot trade off against the mean innovation (with 3 models that ridge cost
mu_slope most of its effective sample size and left divergences).

A model or subject not seen in training gets population-level draws for its
effects in :meth:`ReliabilityModel.predict_proba` (so a new model starts from a
sensible prior, widened by the between-model spread).

Covariates a log does not hold (the public MMLU-Pro logs have no confidence and
no latency) are left out automatically, with a warning that names them; they are
never imputed. Standardization uses the training rows only; its constants are
stored with the posterior and reused for prediction.

Priors live in :data:`DEFAULT_MODEL_CONFIG`, sampler settings in
:data:`DEFAULT_SAMPLER_CONFIG`. ``fit`` returns ``arviz.InferenceData``
(dims ``model``, ``subject``, ``covariate``); ``save``/``load`` write it to
NetCDF with the configuration in its attributes.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.io import atomic_path
from bayes_router.data.schema import covariates_present
from bayes_router.errors import InputError

#: Priors (logit scale; covariates are standardized, so slopes are per training SD).
DEFAULT_MODEL_CONFIG: dict = {
    "mu_alpha": {"dist": "Normal", "mu": 0.0, "sigma": 1.5},  # population mean intercept
    "sigma_alpha": {"dist": "HalfNormal", "sigma": 1.0},  # between-model spread of intercepts
    "sigma_subject": {"dist": "HalfNormal", "sigma": 1.0},  # spread of subject effects
    "sigma_interaction": {"dist": "HalfNormal", "sigma": 0.5},  # spread of model x subject deviations
    "mu_slope": {"dist": "Normal", "mu": 0.0, "sigma": 1.0},  # population mean slope, per covariate
    "sigma_slope": {"dist": "HalfNormal", "sigma": 0.5},  # between-model spread of slopes
    # per-model intercepts alpha. Measured on the trio x 4000 questions, post stage, nutpie:
    # non-centered alpha: min bulk ESS 90 (mu_alpha); centered alpha: mu_alpha ESS 1269.
    "model_effects": {"parameterization": "centered"},
    # Measured on the trio x 4000 questions, post stage, nutpie, 2 x 1000 draws (seed 0):
    # non-centered subject effects: sigma_subject bulk ESS 372; centered: 3005 (600 calls per subject
    # pin each effect). Slopes with iid non-centered innovations: mu_slope ESS 451 (tail 216),
    # sigma_slope 322, 3 divergences; centered: 57 divergences; zero-sum innovations over the
    # models: mu_slope 1858, sigma_slope 462, no divergence.
    "subject_effects": {"parameterization": "centered"},
    # "auto": centered when the data pin every level more tightly than the levels spread (see
    # choose_parameterization), else non-centered (zero-sum innovations for the slopes). Measured on the
    # whole pool (24 models x 12,032 questions, pre stage, 2 x 300 draws): non-centered interactions and
    # slopes left sigma_interaction and sigma_slope at bulk ESS 242 and 206; centered: 1076 and 549.
    "interaction_effects": {"parameterization": "auto"},
    "slope_effects": {"parameterization": "auto"},
}
#: The parameterizations each effect accepts (zero-sum innovations exist for the slopes only).
_PARAMETERIZATIONS = {"model_effects": ("centered", "non-centered"),
                      "subject_effects": ("centered", "non-centered"),
                      "interaction_effects": ("auto", "centered", "non-centered"),
                      "slope_effects": ("auto", "centered", "non-centered", "zero-sum")}

#: Sampler settings. ``chains=None``: 4 where the machine has >= 4 cores, else 2.
DEFAULT_SAMPLER_CONFIG: dict = {
    # None: 0.95 when an effect is non-centered (0.9 left a divergence in the 3-model sigma_alpha funnel,
    # trio, 1000 q; 0.98 for pools of <= _FEW_LEVELS models), 0.85 when every effect is centered (no funnel to resolve; whole pool, post stage:
    # 15 leapfrog steps per draw instead of 31, 305 s instead of 578 s, same ESS)
    "target_accept": None,
    "chains": None,
    "cores": None,
    "max_log_likelihood_cells": 60_000_000,  # draws x rows above which log_likelihood is not stored
    "advi_iterations": 30_000,
    "nutpie_low_rank": False,  # nutpie's low-rank modified mass matrix (adapts to correlated directions)
    "length_bin": None,  # pre stage: None = exact sufficient statistics; a width (standardized units) = binned
}

SAMPLERS = ("nutpie", "pymc", "numpyro", "advi")
STAGES = ("pre", "post")

#: covariate name -> (log column, transform before standardizing). Names are the
#: log's columns (with the transform in the name where it is part of the meaning).
COVARIATES: dict[str, tuple[str, str]] = {
    "log_question_chars": ("question_chars", "log"),
    "completion_tokens": ("completion_tokens", "log1p"),
    "confidence": ("confidence", "identity"),
    "latency_s": ("latency_s", "log"),
}
PRE_COVARIATES = ("log_question_chars",)
POST_COVARIATES = ("log_question_chars", "completion_tokens", "confidence", "latency_s")
_OPTIONAL = {"confidence", "latency_s"}
_FORMAT_VERSION = 1


def _logit_binomial_logp(value, eta, n):
    """log Binomial(value | n, sigmoid(eta)) without the constant log C(n, value).

    ``value * eta - n * softplus(eta)``: the same posterior as ``pm.Binomial(logit_p=eta)``
    (the dropped term does not depend on the parameters) at less than half the cost per
    gradient (measured on the whole pool, post stage, 258,932 calls: 6.5 ms against 14 ms).
    """
    import pytensor.tensor as pt

    return value * eta - n * pt.softplus(eta)


def _logit_binomial_random(eta, n, rng=None, size=None):
    """Draws of Binomial(n, sigmoid(eta)) (prior predictive checks)."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(eta, dtype=float)))
    return rng.binomial(n, p, size=size)


def default_chains() -> int:
    """4 chains where the machine has at least 4 cores, else 2."""
    return 4 if (os.cpu_count() or 1) >= 4 else 2


#: Posterior draws in total across chains when none are asked for: PyMC's own default
#: total (4 chains x 1000). With 2 chains, 2 x 1000 left the 3-model pools' slope spread
#: (``sigma_slope``, 3 levels) at bulk ESS 251-500 over seeds 0-3 (trio, post stage); 2 x 2000: 514-797.
DEFAULT_TOTAL_DRAWS = 4000


def default_draws(chains: int) -> int:
    """Draws per chain when none are given: :data:`DEFAULT_TOTAL_DRAWS` shared by ``chains``."""
    return -(-DEFAULT_TOTAL_DRAWS // max(int(chains), 1))


def _transform(values: np.ndarray, how: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if how == "log":
        return np.log(np.maximum(values, 1e-3))
    if how == "log1p":
        return np.log1p(np.maximum(values, 0.0))
    return values


class ReliabilityModel:
    """Hierarchical logistic model of P(correct) for (model, subject, covariates) calls.

    Parameters
    ----------
    stage : "pre" or "post"
        Pre-call (model, subject, question length) or post-call (adds completion
        tokens, the parsed hurdle, confidence and latency where the log holds them).
    model_config : dict, optional
        Overrides of :data:`DEFAULT_MODEL_CONFIG` (priors), merged key by key.
    sampler_config : dict, optional
        Overrides of :data:`DEFAULT_SAMPLER_CONFIG`.

    After :meth:`fit`: ``idata`` (InferenceData), ``models``, ``subjects``,
    ``covariates_used`` (what entered the model, e.g. ``["log_question_chars",
    "completion_tokens", "parsed"]``), ``covariates_dropped`` (name -> reason) and
    ``standardization`` (name -> {"mean", "sd"} of the transformed training values).
    """

    def __init__(self, stage: str = "pre", model_config: dict | None = None, sampler_config: dict | None = None):
        if stage not in STAGES:
            raise InputError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        self.model_config = copy.deepcopy(DEFAULT_MODEL_CONFIG)
        for k, v in (model_config or {}).items():
            if k not in self.model_config:
                raise InputError(f"model_config: unknown prior {k!r} (known: {sorted(self.model_config)})")
            self.model_config[k] = {**self.model_config[k], **v}
        for k, allowed in _PARAMETERIZATIONS.items():
            if self.model_config[k]["parameterization"] not in allowed:
                raise InputError(f"model_config: {k} parameterization must be one of {allowed}")
        self.sampler_config = {**DEFAULT_SAMPLER_CONFIG, **(sampler_config or {})}
        self.idata = None
        self.models: list[str] = []
        self.subjects: list[str] = []
        self.covariates_used: list[str] = []
        self.covariates_dropped: dict[str, str] = {}
        self.standardization: dict[str, dict[str, float]] = {}
        self.metadata: dict = {}
        self._draws_cache: dict | None = None

    # ------------------------------------------------------------------ data
    @property
    def slope_covariates(self) -> list[str]:
        """Covariates with a slope (``covariates_used`` minus the ``parsed`` hurdle)."""
        return [c for c in self.covariates_used if c != "parsed"]

    def _choose_covariates(self, log: pd.DataFrame) -> None:
        present = covariates_present(log)
        used, dropped = [], {}
        for name in PRE_COVARIATES if self.stage == "pre" else POST_COVARIATES:
            col = COVARIATES[name][0]
            if name in _OPTIONAL:
                if not present[col]:
                    dropped[name] = "not in the log (all null)"
                    continue
                n_null = int(log[col].isna().sum())
                if n_null:
                    dropped[name] = f"null in {n_null} of {len(log)} training rows (not imputed)"
                    continue
            used.append(name)
        if self.stage == "post":  # the hurdle, listed after the token count as in the issue
            used.insert(used.index("completion_tokens") + 1, "parsed")
        self.covariates_used, self.covariates_dropped = used, dropped
        if dropped:
            warnings.warn(
                f"{self.stage}-call model: covariates left out: "
                + "; ".join(f"{k}: {v}" for k, v in dropped.items())
                + f". Used: {used}",
                stacklevel=3,
            )

    def _design(self, calls: pd.DataFrame, fit: bool = False) -> np.ndarray:
        """Standardized covariate matrix, shape (rows, len(slope_covariates))."""
        cols = []
        for name in self.slope_covariates:
            col, how = COVARIATES[name]
            if col not in calls.columns:
                raise InputError(f"calls: column '{col}' is needed by the {self.stage}-call model but missing")
            raw = pd.to_numeric(calls[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            if np.isnan(raw).any():
                raise InputError(
                    f"calls: column '{col}' has {int(np.isnan(raw).sum())} null values; the "
                    f"{self.stage}-call model uses it and does not impute"
                )
            x = _transform(raw, how)
            if fit:
                sd = float(x.std())
                self.standardization[name] = {"mean": float(x.mean()), "sd": sd if sd > 1e-12 else 1.0}
            st = self.standardization[name]
            cols.append((x - st["mean"]) / st["sd"])
        return np.column_stack(cols) if cols else np.zeros((len(calls), 0))

    @staticmethod
    def _check_log(log: pd.DataFrame, need_correct: bool) -> None:
        need = ["model", "subject", "question_chars"] + (["correct", "parsed"] if need_correct else [])
        missing = [c for c in need if c not in log.columns]
        if missing:
            raise InputError(f"call log: missing columns {missing}")
        if len(log) == 0:
            raise InputError("call log: no rows to fit")

    # ----------------------------------------------------------------- model
    def build_model(self, train_log: pd.DataFrame):
        """The PyMC model for ``train_log`` (sets models, subjects, covariates, standardization)."""
        import pymc as pm

        self._check_log(train_log, need_correct=True)
        self.models = sorted(train_log["model"].astype(str).unique().tolist())
        self.subjects = sorted(train_log["subject"].astype(str).unique().tolist())
        self._choose_covariates(train_log)
        self.standardization = {}
        X = self._design(train_log, fit=True)
        rows = train_log
        if self.stage == "post":  # hurdle: the logistic part sees parsed calls only
            keep = train_log["parsed"].to_numpy(dtype=bool)
            rows, X = train_log[keep], X[keep]
            if len(rows) == 0:
                raise InputError("call log: no parsed call to fit the post-call model on")
        m_idx = pd.Categorical(rows["model"].astype(str), categories=self.models).codes.astype(np.int64)
        s_idx = pd.Categorical(rows["subject"].astype(str), categories=self.subjects).codes.astype(np.int64)
        y = rows["correct"].to_numpy(dtype=np.int64)
        trials = np.ones_like(y)
        if self.stage == "pre":
            m_idx, s_idx, X, trials, y = self._sufficient_statistics(m_idx, s_idx, X, y)
        self._resolve_parameterizations(m_idx, s_idx, X, trials, y)
        c = {**self.model_config, **{k: {"parameterization": v} for k, v in self.metadata["parameterization"].items()}}
        coords = {"model": self.models, "subject": self.subjects, "covariate": self.slope_covariates,
                  "cell": np.arange(len(y))}
        with pm.Model(coords=coords) as model:
            # the data enter as constants, not pm.Data: with shared inputs of unknown shape the compiled
            # gradient took 12.4 ms instead of 6.6 ms (whole pool, post stage); predictions are numpy anyway
            model_idx = m_idx
            # one gather of the (model, subject) cell logit instead of three (alpha, beta, gamma)
            model_subject_idx = m_idx * len(self.subjects) + s_idx
            x = X
            mu_alpha = pm.Normal("mu_alpha", c["mu_alpha"]["mu"], c["mu_alpha"]["sigma"])
            sigma_alpha = pm.HalfNormal("sigma_alpha", c["sigma_alpha"]["sigma"])
            sigma_subject = pm.HalfNormal("sigma_subject", c["sigma_subject"]["sigma"])
            # zero-sum effects: without them mu_alpha, the mean of beta and the row/column means
            # of gamma trade off along flat ridges that NUTS mixes slowly (measured: bulk ESS < 100)
            if c["subject_effects"]["parameterization"] == "centered":
                beta = pm.ZeroSumNormal("beta", sigma=sigma_subject, dims="subject")
            else:
                z_beta = pm.ZeroSumNormal("z_beta", sigma=1.0, dims="subject")
                beta = pm.Deterministic("beta", sigma_subject * z_beta, dims="subject")
            sigma_interaction = pm.HalfNormal("sigma_interaction", c["sigma_interaction"]["sigma"])
            if c["interaction_effects"]["parameterization"] == "centered":
                gamma = pm.ZeroSumNormal("gamma", sigma=sigma_interaction, dims=("model", "subject"),
                                         n_zerosum_axes=2)
            else:
                z_gamma = pm.ZeroSumNormal("z_gamma", sigma=1.0, dims=("model", "subject"), n_zerosum_axes=2)
                gamma = pm.Deterministic("gamma", sigma_interaction * z_gamma, dims=("model", "subject"))
            mu_slope = pm.Normal("mu_slope", c["mu_slope"]["mu"], c["mu_slope"]["sigma"], dims="covariate")
            sigma_slope = pm.HalfNormal("sigma_slope", c["sigma_slope"]["sigma"], dims="covariate")
            kinds = self.slope_parameterizations()
            if len(set(kinds)) > 1:  # "auto", per covariate: some slopes centered, the others zero-sum
                slope = self._mixed_slopes(model, kinds, mu_slope, sigma_slope)
            elif not kinds or kinds[0] == "centered":
                slope = pm.Normal("slope", mu_slope, sigma_slope, dims=("model", "covariate"))
            elif kinds[0] == "zero-sum":
                # innovations sum to zero over models: mu_slope is then the mean of the models' slopes
                # and cannot trade off against the mean innovation (the ridge that slows mu_slope)
                z_slope = pm.ZeroSumNormal("z_slope", sigma=1.0, dims=("covariate", "model"), n_zerosum_axes=1)
                slope = pm.Deterministic("slope", (mu_slope[:, None] + sigma_slope[:, None] * z_slope).T,
                                         dims=("model", "covariate"))
            else:
                z_slope = pm.Normal("z_slope", 0.0, 1.0, dims=("model", "covariate"))
                slope = pm.Deterministic("slope", mu_slope + sigma_slope * z_slope, dims=("model", "covariate"))
            # Each model's mean covariate values on its training cells. A model's covariates need not
            # center at the pool's mean (verbose models write more tokens), and then alpha[m] and
            # slope[m] trade off along a narrow ridge (whole pool, post stage, centered alpha: alpha and
            # slope bulk ESS 90 in 2 x 1000 draws). Sampled instead: alpha_at_mean[m], the logit at the
            # model's own mean covariates, with the prior implied by alpha ~ Normal(mu_alpha, sigma_alpha)
            # (a shift by slope[m] . xbar[m], unit Jacobian), so the model is unchanged.
            centered = c["model_effects"]["parameterization"] == "centered"
            # the shift uses the centered slopes only (the whole pool, where the ridge was measured); with
            # non-centered slopes (3-model pools) it ties alpha's prior to sigma_slope (trio post: 1-2 divergences)
            shifted_cov = [k == "centered" for k in kinds]
            shifted = centered and any(shifted_cov)
            if shifted:
                w = np.maximum(np.bincount(m_idx, weights=trials, minlength=len(self.models)), 1)
                xbar = np.column_stack([np.bincount(m_idx, weights=trials * X[:, j], minlength=len(self.models)) / w
                                        if shifted_cov[j] else np.zeros(len(self.models))
                                        for j in range(X.shape[1])])
                shift = (slope * xbar).sum(axis=1)
                alpha_at_mean = pm.Normal("alpha_at_mean", mu_alpha + shift, sigma_alpha, dims="model")
                pm.Deterministic("alpha", alpha_at_mean - shift, dims="model")
                x = X - xbar[m_idx]
            elif centered:  # no shift: alpha itself (centered: thousands of calls pin each alpha, no funnel)
                alpha_at_mean = pm.Normal("alpha", mu_alpha, sigma_alpha, dims="model")
            else:
                z_alpha = pm.Normal("z_alpha", 0.0, 1.0, dims="model")
                alpha_at_mean = pm.Deterministic("alpha", mu_alpha + sigma_alpha * z_alpha, dims="model")
            cell_logit = (alpha_at_mean[:, None] + beta[None, :] + gamma).ravel()
            eta = cell_logit[model_subject_idx]
            for j in range(len(self.slope_covariates)):  # per covariate: a gather and a multiply per row
                eta = eta + slope[:, j][model_idx] * x[:, j]
            # binomial counts per cell (pre; exact sufficient statistics) or single calls (post, n = 1)
            n = trials if self.stage == "pre" else 1
            pm.CustomDist("correct", eta, n, logp=_logit_binomial_logp, random=_logit_binomial_random,
                          observed=y, dims="cell")
        self.metadata["n_likelihood_cells"] = int(len(y))
        self._cell_model_idx = m_idx  # the model of each likelihood cell (prior predictive check)
        return model

    def _mixed_slopes(self, model, kinds, mu_slope, sigma_slope):
        """slope[model, covariate] with centered slopes for some covariates, zero-sum innovations for the rest."""
        import pymc as pm
        import pytensor.tensor as pt

        cen = [j for j, k in enumerate(kinds) if k == "centered"]
        zs = [j for j, k in enumerate(kinds) if k == "zero-sum"]  # "auto" chooses only these two per covariate
        covs = self.slope_covariates
        model.add_coord("covariate_centered", [covs[j] for j in cen])
        model.add_coord("covariate_zero_sum", [covs[j] for j in zs])
        cols = [None] * len(kinds)
        slope_c = pm.Normal("slope_centered", mu_slope[cen], sigma_slope[cen], dims=("model", "covariate_centered"))
        for i, j in enumerate(cen):
            cols[j] = slope_c[:, i]
        z_slope = pm.ZeroSumNormal("z_slope", sigma=1.0, dims=("covariate_zero_sum", "model"), n_zerosum_axes=1)
        for i, j in enumerate(zs):
            cols[j] = mu_slope[j] + sigma_slope[j] * z_slope[i]
        return pm.Deterministic("slope", pt.stack(cols, axis=1), dims=("model", "covariate"))

    def slope_parameterizations(self) -> list[str]:
        """The parameterization of each covariate's slopes, in ``slope_covariates`` order ("auto" resolved)."""
        per = self.metadata.get("slope_parameterization")
        if per is not None:
            return [per[c] for c in self.slope_covariates]
        return [self.parameterization("slope_effects")] * len(self.slope_covariates)

    def _resolve_parameterizations(self, m_idx, s_idx, X, trials, y) -> None:
        """Fix each effect's parameterization ("auto" decided from the data); kept in the metadata."""
        chosen, evidence = {}, {}
        for effect in _PARAMETERIZATIONS:
            how = self.model_config[effect]["parameterization"]
            if how == "auto":
                ev = choose_parameterization(effect, m_idx, s_idx, X, trials, y, len(self.models),
                                             len(self.subjects))
                how, evidence[effect] = ev["choice"], ev
            chosen[effect] = how
        self.metadata["parameterization"] = chosen
        self.metadata["parameterization_evidence"] = evidence
        per = evidence.get("slope_effects", {}).get("per_covariate")
        per = per or [chosen["slope_effects"]] * len(self.slope_covariates)
        self.metadata["slope_parameterization"] = dict(zip(self.slope_covariates, per, strict=True))

    def target_accept(self) -> float:
        """NUTS target acceptance: as configured, else 0.85 when every effect is centered, else 0.98 in
        pools of at most :data:`_FEW_LEVELS` models and 0.95 in larger ones."""
        if self.sampler_config.get("target_accept") is not None:
            return float(self.sampler_config["target_accept"])
        if all(self.parameterization(e) == "centered" for e in _PARAMETERIZATIONS):
            return 0.85
        return 0.98 if len(self.models) <= _FEW_LEVELS else 0.95

    def parameterization(self, effect: str) -> str:
        """The parameterization the fit used for ``effect`` ("auto" resolved)."""
        return self.metadata.get("parameterization", {}).get(effect, self.model_config[effect]["parameterization"])

    def _sufficient_statistics(self, m_idx, s_idx, X, y):
        """Collapse calls with identical (model, subject, covariates) into binomial counts.

        Exact: the Bernoulli likelihood of the calls in a cell equals the binomial
        likelihood of their count (up to a constant). With ``sampler_config["length_bin"]``
        set (a width on the standardized scale, e.g. 0.025), covariates are first
        rounded to that grid -- an approximation, recorded in the metadata.
        """
        width = self.sampler_config.get("length_bin")
        Xk = np.round(X / width) * width if width else X
        key = pd.DataFrame({"m": m_idx, "s": s_idx, **{f"x{j}": Xk[:, j] for j in range(Xk.shape[1])}})
        g = key.assign(y=y, n=1).groupby(list(key.columns), sort=True, as_index=False).sum()
        self.metadata["length_bin"] = width
        Xc = g[[f"x{j}" for j in range(Xk.shape[1])]].to_numpy(dtype=float).reshape(len(g), Xk.shape[1])
        return (g["m"].to_numpy(np.int64), g["s"].to_numpy(np.int64), Xc,
                g["n"].to_numpy(np.int64), g["y"].to_numpy(np.int64))

    # ------------------------------------------------------------------- fit
    def fit(self, train_log: pd.DataFrame, *, sampler: str = "nutpie", draws: int | None = None, tune: int = 1000,
            chains: int | None = None, seed: int = 0, progress: bool = True):
        """Sample the posterior given ``train_log`` (training questions only); returns InferenceData.

        ``sampler``: "nutpie" (default), "pymc", "numpyro" (NUTS) or "advi" (mean-field
        variational approximation; ``draws`` samples from it, one chain; no NUTS diagnostics).
        ``draws`` per chain; None: :func:`default_draws` (4000 in total: 2 x 2000 on 2 cores).
        The result is kept as ``self.idata``; it holds the groups posterior,
        sample_stats (NUTS), observed_data and, when draws x rows is at most
        ``sampler_config["max_log_likelihood_cells"]``, log_likelihood over *all*
        training calls (0 for unparsed calls in the post stage: the hurdle makes them
        certain), so pre- and post-call fits can be compared by PSIS-LOO on the same rows.
        """
        import arviz as az
        import pymc as pm

        if sampler not in SAMPLERS:
            raise InputError(f"--sampler must be one of {SAMPLERS}, got {sampler!r}")
        model = self.build_model(train_log)
        chains = chains or self.sampler_config.get("chains") or default_chains()
        draws = int(draws) if draws is not None else default_draws(chains)
        cores = self.sampler_config.get("cores") or min(chains, os.cpu_count() or 1)
        with model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            if sampler == "advi":
                approx = pm.fit(n=int(self.sampler_config["advi_iterations"]), method="advi",
                                random_seed=seed, progressbar=progress)
                idata = approx.sample(draws, random_seed=seed)
            else:
                kwargs = ({"nuts_sampler_kwargs": {"low_rank_modified_mass_matrix": True}}
                          if sampler == "nutpie" and self.sampler_config.get("nutpie_low_rank") else {})
                if sampler != "nutpie":
                    kwargs["idata_kwargs"] = {"log_likelihood": False}
                idata = pm.sample(
                    draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                    nuts_sampler=sampler, target_accept=self.target_accept(),
                    progressbar=progress, compute_convergence_checks=False, **kwargs,
                )
        # keep only the posterior, stats and the data; drop PyMC's copies of the pm.Data inputs
        keep = {g: getattr(idata, g) for g in ("posterior", "sample_stats", "observed_data") if g in idata.groups()}
        idata = az.InferenceData(**keep)
        self.idata = idata
        self._draws_cache = None
        self.metadata.update({
            "target_accept": self.target_accept() if sampler != "advi" else None,
            "sampler": sampler, "draws": int(draws), "tune": int(tune), "chains": int(chains), "seed": int(seed),
            "train_question_ids": sorted(int(q) for q in pd.unique(train_log["question_id"]))
            if "question_id" in train_log.columns else [],
            "n_train_calls": int(len(train_log)),
        })
        n_cells = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] * len(train_log)
        if n_cells <= self.sampler_config["max_log_likelihood_cells"]:
            self._add_log_likelihood(train_log)
        self._write_attrs()
        return idata

    def _add_log_likelihood(self, log: pd.DataFrame) -> None:
        """Pointwise log p(correct_i | theta) for every call in ``log``, dims (chain, draw, call)."""
        import xarray as xr

        P = self.predict_proba(log).astype(np.float64)
        y = log["correct"].to_numpy(dtype=bool)
        with np.errstate(divide="ignore"):
            ll = np.where(y[None, :], np.log(np.clip(P, 1e-300, 1.0)), np.log1p(-np.clip(P, 0.0, 1 - 1e-16)))
        if self.stage == "post":  # hurdle: an unparsed call is wrong with probability 1
            ll[:, ~log["parsed"].to_numpy(dtype=bool)] = 0.0
        n_chain, n_draw = self.idata.posterior.sizes["chain"], self.idata.posterior.sizes["draw"]
        da = xr.DataArray(ll.reshape(n_chain, n_draw, -1), dims=("chain", "draw", "call"),
                          coords={"chain": self.idata.posterior.chain, "draw": self.idata.posterior.draw,
                                  "call": np.arange(len(log))})
        self.idata.add_groups({"log_likelihood": xr.Dataset({"correct": da})})

    def prior_predictive_accuracy(self, train_log: pd.DataFrame, samples: int = 500, seed: int = 0) -> pd.DataFrame:
        """Prior predictive check: accuracy per model implied by the priors alone.

        Draws ``samples`` parameter sets from the priors, simulates ``correct`` for
        every call of ``train_log`` (the post stage keeps the observed parse
        hurdle), and returns a (samples x model) DataFrame of simulated accuracies.
        """
        import pymc as pm

        # a fresh instance builds the model, so a fitted one keeps its coordinates and standardization
        shadow = ReliabilityModel(self.stage, self.model_config, self.sampler_config)
        model = shadow.build_model(train_log)
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prior = pm.sample_prior_predictive(draws=samples, random_seed=seed, var_names=["correct"])
        y = prior.prior_predictive["correct"].to_numpy().reshape(samples, -1)
        m_idx = shadow._cell_model_idx
        out = {}
        for i, m in enumerate(shadow.models):
            sel = m_idx == i
            n_calls = int((train_log["model"].astype(str) == m).sum())  # unparsed calls count as wrong
            out[m] = y[:, sel].sum(1) / max(n_calls, 1)
        return pd.DataFrame(out)

    # --------------------------------------------------------------- predict
    def _posterior_draws(self) -> dict:
        if self._draws_cache is None:
            if self.idata is None:
                raise InputError("the reliability model is not fitted (call fit() or load())")
            post = self.idata.posterior

            def flat(name):
                a = post[name].to_numpy()
                return a.reshape((-1,) + a.shape[2:]).astype(np.float32)

            self._draws_cache = {name: flat(name) for name in (
                "mu_alpha", "sigma_alpha", "alpha", "sigma_subject", "beta", "sigma_interaction",
                "gamma", "mu_slope", "sigma_slope", "slope")}
        return self._draws_cache

    def predict_proba(self, calls: pd.DataFrame, n_draws: int | None = None) -> np.ndarray:
        """Posterior draws of P(correct) for each call; array (draws, rows), float32.

        ``calls`` have the call-log columns (model, subject, question_chars; the post
        stage also the post-call columns it used: completion_tokens, parsed and, if
        used, confidence/latency_s). ``correct`` is never read. ``n_draws`` thins the
        posterior to that many evenly spaced draws (all if None).

        A model or subject unseen in training gets population-level effects: for
        each posterior draw, a fresh draw of its intercept/subject effect,
        interaction and slopes from the hierarchical priors (deterministic seed,
        one draw per unseen (model, subject) cell shared by all its rows).
        Computation is vectorized numpy: one BLAS matmul per model of a (rows x
        (cells + covariates)) design by (cells + covariates) x draws coefficients,
        written into a (rows x draws) buffer; the result is its transposed view
        (shape (draws, rows), Fortran-ordered).
        """
        self._check_log(calls, need_correct=False)
        d = self._posterior_draws()
        S = d["alpha"].shape[0]
        sel = np.arange(S) if n_draws is None or n_draws >= S else np.linspace(0, S - 1, n_draws).round().astype(int)
        if self.stage == "post" and "parsed" not in calls.columns:
            raise InputError("calls: column 'parsed' is needed by the post-call model but missing")
        X = self._design(calls).astype(np.float32)
        n_rows, n_sel, k = len(calls), len(sel), X.shape[1]
        model_codes, model_names = pd.factorize(calls["model"].astype(str), sort=True)
        subj_codes, subj_names = pd.factorize(calls["subject"].astype(str), sort=True)
        # rows grouped by model, so each model's block of the (rows x draws) output is contiguous
        order = np.argsort(model_codes, kind="stable")
        grouped = bool(np.all(order == np.arange(n_rows)))
        bounds = np.searchsorted(model_codes[order], np.arange(len(model_names) + 1))
        rng = np.random.default_rng(20_250_101)
        subj_pos = {s: i for i, s in enumerate(self.subjects)}
        model_pos = {m: i for i, m in enumerate(self.models)}
        # subject effects (draws, subjects in the calls); an unseen subject draws from the population
        # Zero-sum effects are deviations from the mean of the K seen levels; a new level's
        # deviation from that mean has sd sigma * sqrt(1 + 1/K) (its own draw plus the unknown
        # population mean), so its population draw is widened by that factor.
        subject_spread = np.float32(np.sqrt(1.0 + 1.0 / max(len(self.subjects), 1)))
        slope_spread = np.array([np.sqrt(1.0 + 1.0 / max(len(self.models), 1)) if kind == "zero-sum" else 1.0
                                 for kind in self.slope_parameterizations()], dtype=np.float32)
        beta = np.empty((n_sel, len(subj_names)), dtype=np.float32)
        for j, s in enumerate(subj_names):
            beta[:, j] = (d["beta"][sel, subj_pos[s]] if s in subj_pos
                          else d["sigma_subject"][sel] * subject_spread * rng.standard_normal(n_sel).astype(np.float32))
        outT = np.empty((n_rows, n_sel), dtype=np.float32)
        for mc, m in enumerate(model_names):
            rows = order[bounds[mc]:bounds[mc + 1]]
            if m in model_pos:
                mi = model_pos[m]
                a, sl = d["alpha"][sel, mi], d["slope"][sel, mi, :]
            else:
                a = d["mu_alpha"][sel] + d["sigma_alpha"][sel] * rng.standard_normal(n_sel).astype(np.float32)
                sl = d["mu_slope"][sel] + (d["sigma_slope"][sel] * slope_spread
                                           * rng.standard_normal((n_sel, k)).astype(np.float32))
            cells, cell_idx = np.unique(subj_codes[rows], return_inverse=True)
            # coefficients (cells + k, draws) and design (rows, cells + k): one BLAS matmul per model
            coef = np.empty((len(cells) + k, n_sel), dtype=np.float32)
            for j, sc in enumerate(cells):
                s = subj_names[sc]
                g = (d["gamma"][sel, model_pos[m], subj_pos[s]] if m in model_pos and s in subj_pos
                     else d["sigma_interaction"][sel] * rng.standard_normal(n_sel).astype(np.float32))
                coef[j] = a + beta[:, sc] + g
            coef[len(cells):] = sl.T
            design = np.zeros((len(rows), len(cells) + k), dtype=np.float32)
            design[np.arange(len(rows)), cell_idx] = 1.0
            design[:, len(cells):] = X[rows]
            np.matmul(design, coef, out=outT[bounds[mc]:bounds[mc + 1]])
        with np.errstate(over="ignore"):  # exp overflow -> inf -> p = 0, the right limit
            np.negative(outT, out=outT)
            np.exp(outT, out=outT)
            outT += 1.0
            np.reciprocal(outT, out=outT)
        if not grouped:
            inverse = np.empty(n_rows, dtype=np.int64)
            inverse[order] = np.arange(n_rows)
            outT = outT[inverse]
        if self.stage == "post":  # the hurdle: an unparsed call is wrong for sure
            outT[~calls["parsed"].to_numpy(dtype=bool)] = 0.0
        return outT.T

    # ------------------------------------------------------------- save/load
    def _write_attrs(self) -> None:
        self.idata.attrs.update({
            "bayes_router_reliability": json.dumps({
                "format_version": _FORMAT_VERSION,
                "stage": self.stage,
                "model_config": self.model_config,
                "sampler_config": self.sampler_config,
                "models": self.models,
                "subjects": self.subjects,
                "covariates_used": self.covariates_used,
                "covariates_dropped": self.covariates_dropped,
                "standardization": self.standardization,
                "metadata": self.metadata,
            }),
            # top level too, so an evaluation can read the split without parsing the configuration
            "stage": self.stage,
            "train_question_ids": json.dumps(self.metadata.get("train_question_ids", [])),
            "test_question_ids": json.dumps(self.metadata.get("test_question_ids", [])),
        })

    def save(self, path: str | os.PathLike) -> Path:
        """Write the posterior and configuration to NetCDF (atomically); returns the path."""
        if self.idata is None:
            raise InputError("nothing to save: the reliability model is not fitted")
        self._write_attrs()
        path = Path(path)
        with atomic_path(path) as tmp:
            self.idata.to_netcdf(str(tmp))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReliabilityModel:
        """Read a model written by :meth:`save`."""
        import arviz as az

        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such posterior file")
        try:
            idata = az.from_netcdf(str(path))
            meta = json.loads(idata.attrs["bayes_router_reliability"])
        except KeyError:
            raise InputError(f"{path}: not a bayes-router reliability posterior (no configuration attribute)") from None
        except Exception as exc:
            raise InputError(f"{path}: not a readable NetCDF posterior ({exc.__class__.__name__}: {exc})") from None
        rm = cls(stage=meta["stage"], model_config=meta["model_config"], sampler_config=meta["sampler_config"])
        rm.idata = idata.load() if hasattr(idata, "load") else idata
        rm.models, rm.subjects = list(meta["models"]), list(meta["subjects"])
        rm.covariates_used = list(meta["covariates_used"])
        rm.covariates_dropped = dict(meta["covariates_dropped"])
        rm.standardization = {k: dict(v) for k, v in meta["standardization"].items()}
        rm.metadata = dict(meta.get("metadata", {}))
        return rm

    def __repr__(self) -> str:
        state = f"{len(self.models)} models, {len(self.subjects)} subjects" if self.idata is not None else "unfitted"
        return f"ReliabilityModel(stage={self.stage!r}, {state}, covariates={self.covariates_used})"


#: Confidence of the lower bound on a between-level spread that makes an effect centered. 99%, not 95%:
#: on the edge (bound within 3% of the standard error) the centered form left divergences where the
#: posterior reached small spreads (tiers x 4000 q, pre: 12; all x 2800 q, post, length slope: 1),
#: while the non-centered form there only costs effective draws.
_CENTERING_LEVEL = 0.99
#: Pools of at most this many models sample at target_accept 0.98 unless every effect is centered:
#: their hyper-SDs rest on 3-4 levels, wide posteriors that reach into both ends of the funnel
#: (trio, post, 2 x 2000 draws: 2 divergences at 0.95 with seed 1; none at 0.98 with seeds 0-2, 64 s vs 55 s).
_FEW_LEVELS = 4


def _spread_bounds(estimates: np.ndarray, se2: np.ndarray, df: int, typical: bool = False) -> tuple[float, float]:
    """Method-of-moments between-level SD and its one-sided lower bound (chi-square on ``df``, level
    :data:`_CENTERING_LEVEL`),
    net of the mean squared standard error (``typical``: the median one)."""
    from scipy import stats

    v = float(np.sum(estimates ** 2) / df)
    noise = float(np.median(se2) if typical else np.mean(se2))
    low = df * v / float(stats.chi2.ppf(_CENTERING_LEVEL, df)) - noise
    return float(np.sqrt(max(v - noise, 0.0))), float(np.sqrt(max(low, 0.0)))


def choose_parameterization(effect: str, m_idx, s_idx, X, trials, y, n_models: int, n_subjects: int) -> dict:
    """Centered or non-centered for the model x subject deviations or the slopes, from the data.

    The classical criterion (Papaspiliopoulos, Roberts and Skold 2007; Betancourt and
    Girolami 2015): the centered form mixes well when the likelihood pins each level
    more tightly than the population spread, the non-centered form when it does not
    (then the centered posterior is a funnel). Both sides are estimated before sampling:

    * per-level estimates and standard errors: empirical logits of each (model,
      subject) cell, double-centered (interactions), or one-step logistic slopes per
      model and covariate around the model's accuracy (slopes);
    * the between-level spread tau: method of moments, and a one-sided 99% lower bound
      from the chi-square distribution of the levels' sum of squares (with few levels,
      e.g. 3 models, the bound is low, so the non-centered form is kept).

    Centered iff the lower bound of tau (net of the mean squared standard error for the
    interactions, of the median one for the slopes) exceeds the median standard error;
    the slopes are decided per covariate. Returns ``{"choice", "spread", "spread_lower",
    "se"}`` (for the slopes lists per covariate, ``"per_covariate"`` the choice of each and
    ``"choice"`` "mixed" when they differ). The bound is one-sided at :data:`_CENTERING_LEVEL`.
    """
    m_idx, s_idx = np.asarray(m_idx), np.asarray(s_idx)
    if effect == "interaction_effects":
        k = np.bincount(m_idx * n_subjects + s_idx, weights=y, minlength=n_models * n_subjects)
        n = np.bincount(m_idx * n_subjects + s_idx, weights=trials, minlength=n_models * n_subjects)
        seen = (n > 0).reshape(n_models, n_subjects)
        if n_models < 2 or n_subjects < 2 or not seen.all():
            return {"choice": "non-centered", "reason": "empty (model, subject) cells or a single level"}
        p = ((k + 0.5) / (n + 1.0)).reshape(n_models, n_subjects)
        logit = np.log(p / (1 - p))
        resid = logit - logit.mean(1, keepdims=True) - logit.mean(0, keepdims=True) + logit.mean()
        se2 = 1.0 / ((n.reshape(n_models, n_subjects) + 1.0) * p * (1 - p))
        df = (n_models - 1) * (n_subjects - 1)
        spread, low = _spread_bounds(resid, se2 * df / (n_models * n_subjects), df)
        se = float(np.sqrt(np.median(se2)))
        return {"choice": "centered" if low > se else "non-centered", "spread": spread, "spread_lower": low,
                "se": se}
    # slopes: one-step logistic slope of each model on each covariate (score / information at the model's accuracy)
    if X.shape[1] == 0:
        return {"choice": "centered"}
    rows_of = [np.flatnonzero(m_idx == m) for m in range(n_models)]
    rows_of = [r for r in rows_of if trials[r].sum() > 0]
    spreads, lows, ses = [], [], []
    for j in range(X.shape[1]):
        est, var = [], []
        for rows in rows_of:
            w, x, yy = trials[rows], X[rows, j], y[rows]
            pbar = float(np.clip(yy.sum() / w.sum(), 1e-3, 1 - 1e-3))
            xc = x - np.average(x, weights=w)
            info = pbar * (1 - pbar) * float(np.sum(w * xc ** 2))
            if info <= 0:
                continue
            est.append(float(np.sum((yy - w * pbar) * xc)) / info)
            var.append(1.0 / info)
        if len(est) < 2:
            return {"choice": "zero-sum", "reason": "fewer than 2 models with data"}
        est, var = np.asarray(est), np.asarray(var)
        # the typical model's noise: with the mean, one model whose token counts barely vary (a huge
        # standard error) decided for all (whole pool, post: token-slope bound 0, the non-centered
        # choice then left sigma_slope at bulk ESS 398 after 2 x 2000 draws; centered: 1931 after 2 x 1000)
        spread, low = _spread_bounds(est - est.mean(), var * (len(est) - 1) / len(est), len(est) - 1, typical=True)
        spreads.append(spread), lows.append(low), ses.append(float(np.sqrt(np.median(var))))
    per = ["centered" if lo > se else "zero-sum" for lo, se in zip(lows, ses, strict=True)]
    choice = per[0] if len(set(per)) == 1 else "mixed"
    return {"choice": choice, "per_covariate": per, "spread": spreads, "spread_lower": lows, "se": ses}


def check_fitted_on(model, models: Sequence[str], train_question_ids, stage: str | None = None) -> None:
    """Refuse (InputError) a posterior fitted on another stage, pool or set of train questions.

    The one check behind every reuse of a saved posterior (``evaluate.prepare``, the
    notebooks). Stand-ins without ``models`` or ``metadata`` pass the parts they lack.
    """
    label = stage or getattr(model, "stage", "reliability")
    if stage is not None and getattr(model, "stage", stage) != stage:
        raise InputError(f"the posterior is a {model.stage}-call model, not a {stage}-call one")
    fitted_models = getattr(model, "models", None)
    if fitted_models and sorted(fitted_models) != sorted(models):
        raise InputError(f"the {label}-call posterior was fitted on the models {sorted(fitted_models)}, "
                         f"not on this pool {sorted(models)}; refit it or leave it out")
    fitted_on = getattr(model, "metadata", {}).get("train_question_ids")
    wanted = sorted(int(q) for q in train_question_ids)
    if fitted_on is not None and sorted(int(q) for q in fitted_on) != wanted:
        raise InputError(
            f"the {label}-call posterior was fitted on other train questions than this split "
            f"({len(fitted_on)} vs {len(wanted)}); refit it with the same --models, --questions, "
            "--test-frac and --seed, or leave it out"
        )


def fit_reliability(train_log: pd.DataFrame, stage: str = "pre", **fit_kwargs) -> ReliabilityModel:
    """Convenience: construct and fit a :class:`ReliabilityModel`."""
    rm = ReliabilityModel(stage=stage)
    rm.fit(train_log, **fit_kwargs)
    return rm


__all__: Sequence[str] = ("ReliabilityModel", "DEFAULT_MODEL_CONFIG", "DEFAULT_SAMPLER_CONFIG", "SAMPLERS",
                          "STAGES", "COVARIATES", "DEFAULT_TOTAL_DRAWS", "check_fitted_on", "default_chains",
                          "default_draws", "fit_reliability")
