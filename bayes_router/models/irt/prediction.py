"""Posterior prediction of the IRT reliability model in NumPy.

For a training question, each posterior draw has its difficulty. For a new question the
difficulty is unknown: its prior given the text is Normal(text . w, sigma_difficulty), and

    P(correct) = E_d[ sigmoid(ability - discrimination * d) ],  d ~ Normal(mu, sigma),

a one-dimensional integral done per draw by Gauss-Hermite quadrature (``nodes`` points; 24 is
exact to ~1e-7 for the logit-normal integrals met here, sigma * discrimination < 5).
"""

from __future__ import annotations

import numpy as np

#: The posterior variables prediction reads.
POSTERIOR_VARIABLES = ("alpha", "beta", "gamma", "sigma_subject", "sigma_interaction", "discrimination",
                       "text_weight", "sigma_difficulty", "difficulty")
#: Seed of the population draws for unseen subjects (same calls -> same predictions).
UNSEEN_LEVEL_SEED = 20_250_101


def flatten_posterior(posterior) -> dict[str, np.ndarray]:
    """{variable: float32 array (chain * draw, ...)} of :data:`POSTERIOR_VARIABLES`."""
    out = {}
    for name in POSTERIOR_VARIABLES:
        a = posterior[name].to_numpy()
        out[name] = a.reshape((-1,) + a.shape[2:]).astype(np.float32)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp overflow -> inf -> 0, the right limit
        return 1.0 / (1.0 + np.exp(-x))


def hermite_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(standard-normal points, weights summing to 1): E[f(Z)] ~= sum_i weight_i f(point_i)."""
    t, wt = np.polynomial.hermite.hermgauss(int(nodes))
    return (np.sqrt(2.0) * t).astype(np.float32), (wt / np.sqrt(np.pi)).astype(np.float32)


def ability_draws(d: dict, sel: np.ndarray, model_idx: np.ndarray, subject_idx: np.ndarray,
                  n_subjects: int) -> np.ndarray:
    """alpha + beta + gamma of each call under each selected draw, float32 (draws, calls).

    ``subject_idx`` -1 marks a subject unseen in training: its beta and gamma are fresh draws from
    the hierarchical priors (one per unseen subject and draw; zero-sum effects are deviations from
    the seen levels' mean, so a new level's sd is sigma * sqrt(1 + 1/K))."""
    alpha = d["alpha"][sel][:, model_idx]
    seen = subject_idx >= 0
    ab = np.empty_like(alpha)
    s = np.where(seen, subject_idx, 0)
    ab[:] = alpha + d["beta"][sel][:, s] + d["gamma"][sel][:, model_idx, s]
    if not seen.all():
        rng = np.random.default_rng(UNSEEN_LEVEL_SEED)
        n_models = d["alpha"].shape[1]
        spread = np.sqrt(1.0 + 1.0 / max(n_subjects, 1))
        codes = np.unique(subject_idx[~seen])
        for c in codes:  # unseen subjects carry negative codes -1, -2, ... (one per subject)
            beta = d["sigma_subject"][sel] * spread * rng.standard_normal(len(sel))
            gamma = d["sigma_interaction"][sel, None] * rng.standard_normal((len(sel), n_models))
            rows = np.flatnonzero(subject_idx == c)
            ab[:, rows] = alpha[:, rows] + beta[:, None] + gamma[:, model_idx[rows]]
    return ab


def p_correct_draws(d: dict, sel: np.ndarray, model_idx: np.ndarray, subject_idx: np.ndarray, n_subjects: int,
                    question_idx: np.ndarray, X_new: np.ndarray, nodes: int) -> np.ndarray:
    """P(correct) of each call under each selected draw, float32 (draws, calls).

    ``question_idx``: the training question of each call, or -1 for a new question, whose text
    features are the matching row of ``X_new`` (calls, features; rows of training calls unused)."""
    ab = ability_draws(d, sel, model_idx, subject_idx, n_subjects)
    disc = d["discrimination"][sel][:, model_idx]
    out = np.empty_like(ab)
    old = question_idx >= 0
    if old.any():
        diff = d["difficulty"][sel][:, question_idx[old]]
        out[:, old] = sigmoid(ab[:, old] - disc[:, old] * diff)
    new = ~old
    if new.any():
        mu = d["text_weight"][sel] @ X_new[new].T.astype(np.float32)  # (draws, new calls)
        sd = d["sigma_difficulty"][sel][:, None]
        points, weights = hermite_rule(nodes)
        acc = np.zeros_like(mu)
        base = ab[:, new] - disc[:, new] * mu
        scaled = disc[:, new] * sd
        for t, wt in zip(points, weights, strict=True):
            acc += wt * sigmoid(base - scaled * t)
        out[:, new] = acc
    return out
