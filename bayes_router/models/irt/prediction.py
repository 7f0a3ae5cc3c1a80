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
#: The posterior variables of the unanswerable class, where the fit has it (``irt_config["unanswerable"]``).
UNANSWERABLE_VARIABLES = ("p_unanswerable", "guess")
#: A fit without the unanswerable class: one class, weight 1, the IRT's own success curve.
ORDINARY = ((1.0, None),)
#: Seed of the population draws for unseen subjects (same calls -> same predictions).
UNSEEN_LEVEL_SEED = 20_250_101


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp overflow -> inf -> 0, the right limit
        e = np.exp(-np.asarray(x))
    if e.ndim == 0:
        return 1.0 / (1.0 + e)
    e += 1.0  # in place: the (draws, calls, grid) arrays are large, and allocation dominates
    return np.reciprocal(e, out=e)


def question_classes(d: dict, sel: np.ndarray) -> tuple:
    """((weight, guess), ...) of the question classes under each selected draw: the ordinary class
    (guess None: success follows the IRT curve) and, where the fit has it, the unanswerable one
    (success = guess whatever the model); weights and guesses float32 (draws, 1)."""
    if "p_unanswerable" not in d:
        return ORDINARY
    pi = d["p_unanswerable"][sel][:, None]
    return ((1.0 - pi, None), (pi, d["guess"][sel][:, None]))


def success(ab: np.ndarray, disc: np.ndarray, d: np.ndarray, guess: np.ndarray | None) -> np.ndarray:
    """P(right | ability, discrimination, difficulty d): the IRT curve, or on an unanswerable
    question the chance ``guess`` (draws, 1), broadcast to the shape of the curve."""
    if guess is None:
        return sigmoid(ab - disc * d)
    shape = np.broadcast_shapes(np.shape(ab), np.shape(d))
    return np.broadcast_to(guess.reshape(guess.shape + (1,) * (len(shape) - guess.ndim)), shape).astype(np.float32)


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


def difficulty_prior(d: dict, sel: np.ndarray, question_idx: np.ndarray, X_new: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd) of each call's question difficulty under each selected draw, float32 (draws, calls).

    ``question_idx``: the training question of each call (its posterior draw, sd 0), or -1 for a
    new question: Normal(text . w, sigma_difficulty), its text features the matching row of
    ``X_new`` (calls, features; rows of training calls unused)."""
    mu = np.empty((len(sel), len(question_idx)), dtype=np.float32)
    sd = np.zeros_like(mu)
    old = question_idx >= 0
    if old.any():
        mu[:, old] = d["difficulty"][sel][:, question_idx[old]]
    if (~old).any():
        mu[:, ~old] = d["text_weight"][sel] @ X_new[~old].T.astype(np.float32)
        sd[:, ~old] = d["sigma_difficulty"][sel][:, None]
    return mu, sd


def expected_success(ab: np.ndarray, disc: np.ndarray, mu: np.ndarray, sd: np.ndarray, nodes: int,
                     classes: tuple = ORDINARY) -> np.ndarray:
    """E_class E_d P(right | d, class), d ~ Normal(mu, sd), all (draws, calls); exact where sd is 0.
    ``classes``: :func:`question_classes`."""
    out = np.zeros_like(ab)
    for weight, guess in classes:
        if guess is not None:
            out += weight * success(ab, disc, mu, guess)
            continue
        curve = np.empty_like(ab)
        known = ~(sd > 0).any(axis=0)
        if known.any():
            curve[:, known] = sigmoid(ab[:, known] - disc[:, known] * mu[:, known])
        new = ~known
        if new.any():
            points, weights = hermite_rule(nodes)
            base = ab[:, new] - disc[:, new] * mu[:, new]
            scaled = disc[:, new] * sd[:, new]
            acc = np.zeros_like(base)
            for t, wt in zip(points, weights, strict=True):
                acc += wt * sigmoid(base - scaled * t)
            curve[:, new] = acc
        out += weight * curve
    return out
