"""Fast posterior prediction of P(correct) in NumPy: draws x calls in one BLAS matmul per model.

The same linear predictor as :func:`~.graph.linear_predictor` (checked against the PyMC graph
by the test suite), computed for many draws at once: for each model, a (rows x (cells +
covariates)) design of one-hot (model, subject) cells and standardized covariates times a
((cells + covariates) x draws) matrix of cell logits ``alpha + beta + gamma`` and slopes.

A model or subject unseen in training gets population-level effects: for each posterior draw,
a fresh draw of its intercept/subject effect, interaction and slopes from the hierarchical
priors (deterministic seed, one draw per unseen (model, subject) cell shared by all its rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The posterior variables prediction reads.
POSTERIOR_VARIABLES = ("mu_alpha", "sigma_alpha", "alpha", "sigma_subject", "beta", "sigma_interaction",
                       "gamma", "mu_slope", "sigma_slope", "slope")
#: Seed of the population draws for unseen models and subjects (same calls -> same predictions).
UNSEEN_LEVEL_SEED = 20_250_101


def flatten_posterior(posterior, variables=POSTERIOR_VARIABLES) -> dict[str, np.ndarray]:
    """{variable: float32 array (chain * draw, ...)} of ``variables`` (default :data:`POSTERIOR_VARIABLES`)."""
    def flat(name):
        a = posterior[name].to_numpy()
        return a.reshape((-1,) + a.shape[2:]).astype(np.float32)

    return {name: flat(name) for name in variables}


def thinned(n_samples: int, n_draws: int | None) -> np.ndarray:
    """Indices of ``n_draws`` evenly spaced posterior samples (all when None or at least ``n_samples``)."""
    if n_draws is None or n_draws >= n_samples:
        return np.arange(n_samples)
    return np.linspace(0, n_samples - 1, n_draws).round().astype(int)


def _unseen_spread(n_levels: int) -> float:
    """Zero-sum effects are deviations from the mean of the K seen levels; a new level's deviation from
    that mean has sd sigma * sqrt(1 + 1/K) (its own draw plus the unknown population mean)."""
    return float(np.sqrt(1.0 + 1.0 / max(n_levels, 1)))


def _subject_effects(design, d, sel, subj_names, rng) -> np.ndarray:
    """beta of the subjects in the calls, (draws, subjects); an unseen subject draws from the population."""
    pos = {s: i for i, s in enumerate(design.subjects)}
    spread = np.float32(_unseen_spread(len(design.subjects)))
    beta = np.empty((len(sel), len(subj_names)), dtype=np.float32)
    for j, s in enumerate(subj_names):
        beta[:, j] = (d["beta"][sel, pos[s]] if s in pos
                      else d["sigma_subject"][sel] * spread * rng.standard_normal(len(sel)).astype(np.float32))
    return beta


def _model_coefficients(design, d, sel, model, cell_subjects, beta_cells, slope_kinds, rng) -> np.ndarray:
    """(cells + covariates, draws): the cell logits alpha + beta + gamma of ``model`` on each subject of
    ``cell_subjects``, then its slopes; population draws where the model or the cell is unseen."""
    n_sel, k = len(sel), len(design.slope_covariates)
    model_pos = {m: i for i, m in enumerate(design.models)}
    subj_pos = {s: i for i, s in enumerate(design.subjects)}
    if model in model_pos:
        mi = model_pos[model]
        a, sl = d["alpha"][sel, mi], d["slope"][sel, mi, :]
    else:
        slope_spread = np.array([_unseen_spread(len(design.models)) if kind == "zero-sum" else 1.0
                                 for kind in slope_kinds], dtype=np.float32)
        a = d["mu_alpha"][sel] + d["sigma_alpha"][sel] * rng.standard_normal(n_sel).astype(np.float32)
        sl = d["mu_slope"][sel] + (d["sigma_slope"][sel] * slope_spread
                                   * rng.standard_normal((n_sel, k)).astype(np.float32))
    coef = np.empty((len(cell_subjects) + k, n_sel), dtype=np.float32)
    for j, s in enumerate(cell_subjects):
        g = (d["gamma"][sel, model_pos[model], subj_pos[s]] if model in model_pos and s in subj_pos
             else d["sigma_interaction"][sel] * rng.standard_normal(n_sel).astype(np.float32))
        coef[j] = a + beta_cells[:, j] + g
    coef[len(cell_subjects):] = sl.T
    return coef


def _sigmoid_inplace(out: np.ndarray) -> None:
    with np.errstate(over="ignore"):  # exp overflow -> inf -> p = 0, the right limit
        np.negative(out, out=out)
        np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)


def p_correct_draws(design, draws: dict, sel: np.ndarray, calls: pd.DataFrame, slope_kinds) -> np.ndarray:
    """P(correct) of each call under each selected posterior draw, float32 (draws, rows).

    ``draws``: :func:`flatten_posterior`; ``sel``: the samples used (:func:`thinned`). Written into a
    (rows x draws) buffer, grouped by model so each model's block is contiguous; the result is its
    transposed view (Fortran-ordered). The post stage's hurdle sets unparsed calls to 0.
    """
    X = design.matrix(calls).astype(np.float32)
    n_rows, k = len(calls), X.shape[1]
    model_codes, model_names = pd.factorize(calls["model"].astype(str), sort=True)
    subj_codes, subj_names = pd.factorize(calls["subject"].astype(str), sort=True)
    order = np.argsort(model_codes, kind="stable")
    bounds = np.searchsorted(model_codes[order], np.arange(len(model_names) + 1))
    rng = np.random.default_rng(UNSEEN_LEVEL_SEED)
    beta = _subject_effects(design, draws, sel, subj_names, rng)
    outT = np.empty((n_rows, len(sel)), dtype=np.float32)
    for mc, m in enumerate(model_names):
        rows = order[bounds[mc]:bounds[mc + 1]]
        cells, cell_idx = np.unique(subj_codes[rows], return_inverse=True)
        coef = _model_coefficients(design, draws, sel, m, subj_names[cells], beta[:, cells], slope_kinds, rng)
        one_hot = np.zeros((len(rows), len(cells) + k), dtype=np.float32)
        one_hot[np.arange(len(rows)), cell_idx] = 1.0
        one_hot[:, len(cells):] = X[rows]
        np.matmul(one_hot, coef, out=outT[bounds[mc]:bounds[mc + 1]])
    _sigmoid_inplace(outT)
    if not np.all(order == np.arange(n_rows)):
        inverse = np.empty(n_rows, dtype=np.int64)
        inverse[order] = np.arange(n_rows)
        outT = outT[inverse]
    if design.stage == "post":  # the hurdle: an unparsed call is wrong for sure
        outT[~calls["parsed"].to_numpy(dtype=bool)] = 0.0
    return outT.T
