"""One-factor Gaussian copula of correctness across a pool of models.

Errors are correlated: a hard question is hard for every model. The correctness of
the pool's models on one question is modelled by a **one-factor Gaussian copula**
(a latent difficulty F ~ N(0, 1) shared by all models)::

    Z_m = lambda_m * F + sqrt(1 - lambda_m^2) * eps_m,   eps_m ~ N(0, 1) iid
    C_m = 1[Z_m < Phi^-1(q_m)]

so each margin is exactly the pre-call q_m (the posterior predictive P(m correct) of the
pre-call ReliabilityModel), and the latent (tetrachoric) correlation of models j, k is
lambda_j * lambda_k. Conditional on F the models are independent, which makes every joint
probability a 1-D integral, computed by Gauss-Hermite quadrature::

    P(C = c) = int phi(f) prod_m s_m(f)^c_m (1 - s_m(f))^(1 - c_m) df,
    s_m(f)   = Phi((Phi^-1(q_m) - lambda_m f) / sqrt(1 - lambda_m^2)).

The loadings lambda_m are fitted by maximum likelihood on the TRAIN questions: the
joint outcome vector of each train question given its pre-call margins q (the
posterior-mean predictions of the pre-call model), i.e. the correlation of the
correctness *residuals* given the pre-call predictions (:class:`ErrorCorrelation`).
For K = 2 this is a tetrachoric correlation with question-specific thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

_EPS = 1e-6


def _std_normal_quadrature(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for E[g(F)], F ~ N(0, 1); weights sum to 1."""
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    return x, w / w.sum()


def conditional_success(q, loadings, nodes):
    """s_m(f) = P(C_m = 1 | F = f) under the one-factor copula with margins q.

    q: (..., K) pre-call probabilities; loadings: (K,); nodes: (G,). Returns (..., K, G).
    """
    q = np.clip(np.asarray(q, dtype=float), _EPS, 1 - _EPS)
    lam = np.asarray(loadings, dtype=float)
    t = special.ndtri(q)[..., None]
    scale = np.sqrt(1.0 - lam**2)[:, None]
    return special.ndtr((t - lam[:, None] * nodes) / scale)


def joint_correct_probability(q, loadings, n_nodes: int = 40) -> float:
    """P(all the models of ``q`` are right) under the one-factor copula (for checks).

    q: (K,) margins; loadings: (K,). Latent correlations are loadings_j * loadings_k.
    """
    nodes, weights = _std_normal_quadrature(n_nodes)
    s = conditional_success(np.asarray(q, float), loadings, nodes)
    return float(weights @ np.prod(s, axis=0))


@dataclass
class ErrorCorrelation:
    """One-factor Gaussian copula of correctness across the pool (see module docstring).

    ``loadings``: (K,) in (-1, 1), in pool order; the latent correlation of models j and k
    is ``loadings[j] * loadings[k]`` (:attr:`latent_correlation`).
    """

    models: list[str]
    loadings: np.ndarray
    n_nodes: int = 32

    @property
    def latent_correlation(self) -> pd.DataFrame:
        """(K, K) latent (tetrachoric) correlation of correctness given the pre-call margins."""
        r = np.outer(self.loadings, self.loadings)
        np.fill_diagonal(r, 1.0)
        return pd.DataFrame(r, index=self.models, columns=self.models)

    @classmethod
    def independent(cls, models) -> ErrorCorrelation:
        """Zero loadings: errors independent given the pre-call margins."""
        return cls(list(models), np.zeros(len(models)))

    @classmethod
    def fit(cls, correct, q, models, n_nodes: int = 32, max_loading: float = 0.95) -> ErrorCorrelation:
        """Maximum-likelihood loadings from TRAIN outcomes.

        correct: (n_questions, K) 0/1 outcomes; q: (n_questions, K) pre-call margins
        (posterior-mean predictions); columns in ``models`` order.
        """
        from scipy import optimize

        c = np.asarray(correct, dtype=float)
        q = np.clip(np.asarray(q, dtype=float), _EPS, 1 - _EPS)
        if c.shape != q.shape or c.ndim != 2:
            raise ValueError(f"correct {c.shape} and q {q.shape} must be equal (n_questions, K) arrays")
        nodes, weights = _std_normal_quadrature(n_nodes)
        log_w = np.log(weights)
        t = special.ndtri(q)[:, :, None]  # (n, K, 1)

        def negloglik(theta):
            lam = max_loading * np.tanh(theta)
            z = (t - lam[None, :, None] * nodes) / np.sqrt(1 - lam**2)[None, :, None]
            ll = np.where(c[:, :, None] > 0.5, special.log_ndtr(z), special.log_ndtr(-z))  # (n, K, G)
            return -special.logsumexp(ll.sum(axis=1) + log_w, axis=1).sum()

        res = optimize.minimize(negloglik, np.full(c.shape[1], 0.5), method="L-BFGS-B")
        return cls(list(models), max_loading * np.tanh(res.x), n_nodes=n_nodes)
