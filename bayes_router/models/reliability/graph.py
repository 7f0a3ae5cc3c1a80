"""The PyMC graph of the reliability model, and the one definition of its linear predictor.

:func:`linear_predictor` is the model's logit of P(correct). The graph built for sampling
(:func:`build_graph`, with the likelihood) and the graph built on new calls to check
predictions against PyMC (``likelihood=False``: a deterministic ``p_correct`` per call) both
use it; the fast NumPy prediction (:mod:`.prediction`) is tested against the latter.
"""

from __future__ import annotations

import numpy as np

from bayes_router.models.reliability.config import prior


def linear_predictor(intercept, beta, gamma, slope, model_idx, subject_idx, x, n_subjects: int):
    """logit P(correct) of each row: ``intercept[m] + beta[s] + gamma[m, s] + sum_c slope[m, c] x[:, c]``.

    Works on PyTensor tensors and NumPy arrays of one draw alike. ``intercept`` (models,),
    ``beta`` (subjects,), ``gamma`` (models, subjects), ``slope`` (models, covariates);
    ``model_idx``/``subject_idx`` (rows,) NumPy int arrays (constants of the graph); ``x`` (rows,
    covariates) standardized; ``n_subjects`` the length of ``beta`` (a number: PyMC's shapes
    from dims are symbolic, and a symbolic flat index would be recomputed at every gradient).
    The cell logit is gathered once per row by its flat (model, subject) index instead of three
    gathers, and each covariate costs one gather and one multiply per row.
    """
    cell_logit = (intercept[:, None] + beta[None, :] + gamma).ravel()
    eta = cell_logit[np.asarray(model_idx) * int(n_subjects) + np.asarray(subject_idx)]
    for j in range(np.shape(x)[1]):
        eta = eta + slope[:, j][model_idx] * x[:, j]
    return eta


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


def alpha_shift_means(cells, n_models: int, slope_kinds) -> np.ndarray | None:
    """Each model's mean covariates over its training cells, (models, covariates), for the
    covariates with centered slopes (zeros elsewhere); None when no slope is centered.

    A model's covariates need not center at the pool's mean (verbose models write more tokens),
    and then alpha[m] and slope[m] trade off along a narrow ridge (whole pool, post stage,
    centered alpha: alpha and slope bulk ESS 90 in 2 x 1000 draws). The graph then samples
    alpha_at_mean[m], the logit at the model's own mean covariates. Only with centered slopes
    (the whole pool, where the ridge was measured): with non-centered slopes (3-model pools) the
    shift ties alpha's prior to sigma_slope (trio post: 1-2 divergences).
    """
    shifted = [k == "centered" for k in slope_kinds]
    if not any(shifted):
        return None
    w = np.maximum(np.bincount(cells.model_idx, weights=cells.trials, minlength=n_models), 1)
    return np.column_stack([
        np.bincount(cells.model_idx, weights=cells.trials * cells.x[:, j], minlength=n_models) / w
        if shifted[j] else np.zeros(n_models) for j in range(cells.x.shape[1])])


def _group_effects(config, parameterization):
    """beta (subject effects) and gamma (model x subject deviations), zero-sum.

    Without the zero-sum constraints mu_alpha, the mean of beta and the row/column means of gamma
    trade off along flat ridges that NUTS mixes slowly (measured: bulk ESS < 100).
    """
    import pymc as pm

    sigma_subject = prior("sigma_subject", config["sigma_subject"])
    if parameterization.chosen["subject_effects"] == "centered":
        beta = pm.ZeroSumNormal("beta", sigma=sigma_subject, dims="subject")
    else:
        z_beta = pm.ZeroSumNormal("z_beta", sigma=1.0, dims="subject")
        beta = pm.Deterministic("beta", sigma_subject * z_beta, dims="subject")
    sigma_interaction = prior("sigma_interaction", config["sigma_interaction"])
    if parameterization.chosen["interaction_effects"] == "centered":
        gamma = pm.ZeroSumNormal("gamma", sigma=sigma_interaction, dims=("model", "subject"), n_zerosum_axes=2)
    else:
        z_gamma = pm.ZeroSumNormal("z_gamma", sigma=1.0, dims=("model", "subject"), n_zerosum_axes=2)
        gamma = pm.Deterministic("gamma", sigma_interaction * z_gamma, dims=("model", "subject"))
    return beta, gamma


def _slopes(model, config, kinds, covariates):
    """slope[model, covariate]: centered, non-centered, zero-sum innovations, or per covariate ("mixed")."""
    import pymc as pm
    import pytensor.tensor as pt

    mu_slope = prior("mu_slope", config["mu_slope"], dims="covariate")
    sigma_slope = prior("sigma_slope", config["sigma_slope"], dims="covariate")
    if len(set(kinds)) > 1:  # "auto", per covariate: some slopes centered, the others zero-sum
        cen = [j for j, k in enumerate(kinds) if k == "centered"]
        zs = [j for j, k in enumerate(kinds) if k == "zero-sum"]  # "auto" chooses only these two per covariate
        model.add_coord("covariate_centered", [covariates[j] for j in cen])
        model.add_coord("covariate_zero_sum", [covariates[j] for j in zs])
        cols = [None] * len(kinds)
        slope_c = pm.Normal("slope_centered", mu_slope[cen], sigma_slope[cen], dims=("model", "covariate_centered"))
        for i, j in enumerate(cen):
            cols[j] = slope_c[:, i]
        z_slope = pm.ZeroSumNormal("z_slope", sigma=1.0, dims=("covariate_zero_sum", "model"), n_zerosum_axes=1)
        for i, j in enumerate(zs):
            cols[j] = mu_slope[j] + sigma_slope[j] * z_slope[i]
        return pm.Deterministic("slope", pt.stack(cols, axis=1), dims=("model", "covariate"))
    if not kinds or kinds[0] == "centered":
        return pm.Normal("slope", mu_slope, sigma_slope, dims=("model", "covariate"))
    if kinds[0] == "zero-sum":
        # innovations sum to zero over models: mu_slope is then the mean of the models' slopes
        # and cannot trade off against the mean innovation (the ridge that slows mu_slope)
        z_slope = pm.ZeroSumNormal("z_slope", sigma=1.0, dims=("covariate", "model"), n_zerosum_axes=1)
        return pm.Deterministic("slope", (mu_slope[:, None] + sigma_slope[:, None] * z_slope).T,
                                dims=("model", "covariate"))
    z_slope = pm.Normal("z_slope", 0.0, 1.0, dims=("model", "covariate"))
    return pm.Deterministic("slope", mu_slope + sigma_slope * z_slope, dims=("model", "covariate"))


def _intercepts(config, parameterization, mu_alpha, sigma_alpha, slope, xbar):
    """The intercept entering the linear predictor: alpha, or alpha_at_mean with ``xbar`` (see
    :func:`alpha_shift_means`; then alpha = alpha_at_mean - slope . xbar, a shift with unit Jacobian,
    so the model is unchanged)."""
    import pymc as pm

    if parameterization.chosen["model_effects"] == "centered" and xbar is not None:
        shift = (slope * xbar).sum(axis=1)
        alpha_at_mean = pm.Normal("alpha_at_mean", mu_alpha + shift, sigma_alpha, dims="model")
        pm.Deterministic("alpha", alpha_at_mean - shift, dims="model")
        return alpha_at_mean
    if parameterization.chosen["model_effects"] == "centered":  # thousands of calls pin each alpha: no funnel
        return pm.Normal("alpha", mu_alpha, sigma_alpha, dims="model")
    z_alpha = pm.Normal("z_alpha", 0.0, 1.0, dims="model")
    return pm.Deterministic("alpha", mu_alpha + sigma_alpha * z_alpha, dims="model")


def build_graph(design, config: dict, parameterization, rows, xbar=None, likelihood: bool = True, parsed=None):
    """The PyMC model of the reliability model.

    ``rows``: the likelihood cells (:class:`~.design.LikelihoodCells`) when ``likelihood``; else
    any rows of seen models and subjects with ``model_idx``, ``subject_idx`` and ``x``, for which
    a deterministic ``p_correct`` (dims "call") is built instead (``parsed``: the post stage's
    hurdle, unparsed calls get 0). ``xbar``: the training :func:`alpha_shift_means` (the shift must
    be the training one for the posterior to mean the same thing on new rows).
    The data enter as constants, not ``pm.Data``: with shared inputs of unknown shape the compiled
    gradient took 12.4 ms instead of 6.6 ms (whole pool, post stage).
    """
    import pymc as pm

    covariates = design.slope_covariates
    kinds = parameterization.slope_kinds(covariates)
    coords = {"model": design.models, "subject": design.subjects, "covariate": covariates,
              ("cell" if likelihood else "call"): np.arange(len(rows.model_idx))}
    with pm.Model(coords=coords) as model:
        mu_alpha = prior("mu_alpha", config["mu_alpha"])
        sigma_alpha = prior("sigma_alpha", config["sigma_alpha"])
        beta, gamma = _group_effects(config, parameterization)
        slope = _slopes(model, config, kinds, covariates)
        intercept = _intercepts(config, parameterization, mu_alpha, sigma_alpha, slope, xbar)
        x = rows.x if xbar is None or parameterization.chosen["model_effects"] != "centered" \
            else rows.x - xbar[rows.model_idx]
        eta = linear_predictor(intercept, beta, gamma, slope, rows.model_idx, rows.subject_idx, x,
                               n_subjects=len(design.subjects))
        if likelihood:
            # binomial counts per cell (pre; exact sufficient statistics) or single calls (post, n = 1)
            n = rows.trials if design.stage == "pre" else 1
            pm.CustomDist("correct", eta, n, logp=_logit_binomial_logp, random=_logit_binomial_random,
                          observed=rows.y, dims="cell")
        else:
            p = pm.math.sigmoid(eta)
            pm.Deterministic("p_correct", p if parsed is None else p * np.asarray(parsed, dtype=float), dims="call")
    return model
