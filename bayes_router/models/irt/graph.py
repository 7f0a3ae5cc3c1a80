"""The PyMC graph of the IRT reliability model (a two-parameter logistic model with text).

    logit P(model m answers question q correctly)
        = ability[m, s(q)] - discrimination[m] * difficulty[q]
    ability[m, s]   = alpha[m] + beta[s] + gamma[m, s]        (v1's partially pooled effects)
    log discrimination ~ ZeroSumNormal(sigma_log_discrimination)   (geometric mean 1: fixes the scale)
    difficulty[q]   ~ Normal(text[q] . w, sigma_difficulty)   (text features centered within subject)
    w ~ Normal(0, text_weight_sigma),  sigma_difficulty ~ HalfNormal(sigma_difficulty_sigma)

With ``irt_config["unanswerable"]``, a question is ordinary (the model above) or, with probability
p_unanswerable, unanswerable: every model is right there only by chance (``guess``), as on a
wrongly keyed question; the class is summed out of each question's likelihood.

The location of difficulty is fixed by the centered text features (mean 0 within each subject),
its scale by the discriminations' geometric mean, so alpha, beta and gamma keep v1's meaning: a
model's logit on a question of typical difficulty for its subject.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_router.models.reliability.config import prior


@dataclass(frozen=True)
class IRTData:
    """One row per training call: ``model_idx``, ``subject_idx``, ``question_idx`` (int arrays,
    (calls,)), ``y`` (0/1, (calls,)); ``X`` the text features of the training questions, (questions,
    features); ``question_subject`` each training question's subject index, (questions,)."""

    model_idx: np.ndarray
    subject_idx: np.ndarray
    question_idx: np.ndarray
    y: np.ndarray
    X: np.ndarray
    question_subject: np.ndarray


def ability_cells(alpha, beta, gamma):
    """alpha[m] + beta[s] + gamma[m, s], (models, subjects); PyTensor or NumPy alike."""
    return alpha[:, None] + beta[None, :] + gamma


def subject_mean_projector(question_subject: np.ndarray, n_subjects: int) -> np.ndarray:
    """(subjects, questions) matrix whose product with a vector of per-question values gives each
    subject's mean of them (zero rows for subjects without questions)."""
    onehot = np.zeros((n_subjects, len(question_subject)))
    onehot[question_subject, np.arange(len(question_subject))] = 1.0
    return onehot / np.maximum(onehot.sum(axis=1, keepdims=True), 1.0)


def _difficulty(data, w, sigma_difficulty, kind: str, n_subjects: int):
    """difficulty = text . w + residual, the residuals centered within each subject.

    Why centered: a shift of one subject's mean difficulty by c changes every model's logit there by
    -discrimination[m] * c, which beta and gamma absorb exactly; only the prior held that ridge
    (trio, 420 questions: gamma bulk ESS 18, R-hat 1.09). Projecting the subject means out of the
    residuals removes it; the projected-out directions keep their N(0, 1) prior (non-centered) or
    Normal(text . w, sigma) prior (centered), which no data reach, so the density stays proper.
    The text features are centered within subject too, so each subject's mean difficulty is 0 and
    subject-level difficulty lives in beta and gamma.
    """
    import pymc as pm

    mean = pm.math.dot(data.X, w)
    proj = subject_mean_projector(data.question_subject, n_subjects)
    if kind == "centered":
        raw = pm.Normal("difficulty_raw", mean, sigma_difficulty, dims="question")
        resid = raw - mean
    else:
        z = pm.Normal("z_difficulty", 0.0, 1.0, dims="question")
        resid = sigma_difficulty * z
    resid = resid - pm.math.dot(proj, resid)[data.question_subject]
    return pm.Deterministic("difficulty", mean + resid, dims="question")


def build_irt_graph(models, subjects, features, data: IRTData, model_config: dict, irt_config: dict,
                    difficulty_kind: str):
    """The PyMC model; the likelihood is Bernoulli on the logit scale, written as
    ``y * eta - softplus(eta)`` (the same density as ``pm.Bernoulli(logit_p=eta)``)."""
    import pymc as pm
    import pytensor.tensor as pt

    coords = {"model": list(models), "subject": list(subjects), "text_feature": list(features),
              "question": np.arange(data.X.shape[0])}
    n_subjects = len(subjects)
    with pm.Model(coords=coords) as model:
        mu_alpha = prior("mu_alpha", model_config["mu_alpha"])
        sigma_alpha = prior("sigma_alpha", model_config["sigma_alpha"])
        if irt_config["model_effects"] == "centered":
            alpha = pm.Normal("alpha", mu_alpha, sigma_alpha, dims="model")
        else:
            z_alpha = pm.Normal("z_alpha", 0.0, 1.0, dims="model")
            alpha = pm.Deterministic("alpha", mu_alpha + sigma_alpha * z_alpha, dims="model")
        sigma_subject = prior("sigma_subject", model_config["sigma_subject"])
        if irt_config["subject_effects"] == "centered":
            beta = pm.ZeroSumNormal("beta", sigma=sigma_subject, dims="subject")
        else:
            z_beta = pm.ZeroSumNormal("z_beta", sigma=1.0, dims="subject")
            beta = pm.Deterministic("beta", sigma_subject * z_beta, dims="subject")
        sigma_interaction = prior("sigma_interaction", model_config["sigma_interaction"])
        if irt_config["interaction_effects"] == "centered":
            gamma = pm.ZeroSumNormal("gamma", sigma=sigma_interaction, dims=("model", "subject"), n_zerosum_axes=2)
        else:
            z_gamma = pm.ZeroSumNormal("z_gamma", sigma=1.0, dims=("model", "subject"), n_zerosum_axes=2)
            gamma = pm.Deterministic("gamma", sigma_interaction * z_gamma, dims=("model", "subject"))
        log_disc = pm.ZeroSumNormal("log_discrimination", sigma=irt_config["sigma_log_discrimination"], dims="model")
        disc = pm.Deterministic("discrimination", pt.exp(log_disc), dims="model")
        w = pm.Normal("text_weight", 0.0, irt_config["text_weight_sigma"], dims="text_feature")
        sigma_difficulty = pm.HalfNormal("sigma_difficulty", irt_config["sigma_difficulty_sigma"])
        difficulty = _difficulty(data, w, sigma_difficulty, difficulty_kind, n_subjects)
        cell = ability_cells(alpha, beta, gamma).ravel()[data.model_idx * n_subjects + data.subject_idx]
        eta = cell - disc[data.model_idx] * difficulty[data.question_idx]
        loglik = data.y * eta - pt.softplus(eta)
        if irt_config.get("unanswerable"):
            loglik = _with_unanswerable_class(data, loglik)
        pm.Potential("correct_loglik", pt.sum(loglik))
    return model


def _with_unanswerable_class(data: IRTData, loglik):
    """Per question, log[(1 - pi) prod_calls p(y | IRT) + pi prod_calls guess^y (1 - guess)^(1 - y)]:
    the question is ordinary or unanswerable (each model right only by chance), the class summed out.
    ``loglik``: the IRT's log-likelihood per call; returns one term per question."""
    import pymc as pm
    import pytensor.tensor as pt

    pi = pm.Beta("p_unanswerable", 1.0, 9.0)
    guess = pm.Beta("guess", 2.0, 18.0)
    n_questions = data.X.shape[0]
    ordinary = pt.inc_subtensor(pt.zeros(n_questions)[data.question_idx], loglik)
    right = pt.inc_subtensor(pt.zeros(n_questions)[data.question_idx], data.y)  # y may be a shared variable (SBC)
    calls = np.bincount(data.question_idx, minlength=n_questions).astype(float)
    unanswerable = right * pt.log(guess) + (calls - right) * pt.log1p(-guess)
    return pm.math.logaddexp(pt.log1p(-pi) + ordinary, pt.log(pi) + unanswerable)
