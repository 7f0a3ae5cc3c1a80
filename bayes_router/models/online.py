"""A sequential posterior of each model's reliability that keeps up with one question at a time.

The model is the reliability model's pre-call structure on the logit scale, for model m
on a question of subject s with standardized log length z::

    logit P(correct) = alpha[m] + beta[s] + gamma[m, s] + slope[m] * z
    alpha[m] ~ N(0, sd_alpha^2)     population mean per model
    beta[s]  ~ N(0, sd_subject^2)   subject effects pooled over the models
    gamma    ~ N(0, sd_interaction^2), slope ~ N(0, sd_slope^2)

All coefficients form one vector theta of length D = K + S + K*S + K with a joint Gaussian
belief N(mu, Sigma). A call answered by model m gives one Bernoulli observation of
eta = x' theta (x has four non-zero entries). The update is assumed density filtering
with a Laplace step: the belief about eta, N(eta0, v) with eta0 = x' mu and v = x' Sigma x,
is multiplied by the logistic likelihood, and its mode z* and curvature
1/v + w (w = sigma(z*)(1 - sigma(z*))) replace it; conditioning theta on eta then gives
the exact rank-one update

    mu    <- mu + Sigma x (z* - eta0) / v
    Sigma <- Sigma - (Sigma x)(Sigma x)' w / (1 + w v)

so each observation costs O(D^2) (D = 62 for three models and 14 subjects) instead of a
refit. For one observation this is the Laplace posterior exactly; over many it tracks the
batch Laplace posterior of the same model (:func:`batch_laplace`), which the tests check.

Periodic refits (``refit_every`` > 0, static model only): after 2^j * ``refit_every``
observations (a doubling schedule, so O(log n) refits) the posterior is replaced by the
batch Laplace posterior of everything seen, and the spread of the model x subject
interactions, sd_interaction, is re-estimated by empirical Bayes: the value on
:data:`INTERACTION_SD_GRID` with the largest Laplace approximation of the marginal
likelihood. The hierarchical model learns this spread from data (sigma_interaction); fixed
at its prior scale, the per-subject differences between models would be learned from each
subject's few observations alone.

Drift. ``process_noise`` q makes theta a random walk (a dynamic logistic model): before
each question every alpha, gamma and slope gains variance q, so old evidence is
gradually forgotten (an effective memory of about 1 / (q * precision) observations per cell) and a model whose
skill changes is noticed. q = 0 is the static model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from bayes_router.errors import InputError

#: Prior standard deviations (logit scale), from the reliability model's hierarchical prior:
#: alpha's marginal sd combines mu_alpha ~ N(0, 1.5) and sigma_alpha ~ Gamma(2, 2.5)
#: (sqrt(1.5^2 + E[sigma_alpha^2]) = sqrt(2.25 + 0.96) = 1.8); the others are the root mean
#: squares of the spreads' priors (HalfNormal(1) for subjects; Gamma(2, 5) for the rest: 0.49).
DEFAULT_PRIOR_SD: dict[str, float] = {"alpha": 1.8, "subject": 1.0, "interaction": 0.5, "slope": 0.5}
_NEWTON_STEPS = 12
#: Candidate sd_interaction values (logit) of the empirical-Bayes refits.
INTERACTION_SD_GRID: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5)


def _laplace_1d(eta0: float, v: float, y: float) -> tuple[float, float]:
    """Mode z* and curvature weight w of  N(z | eta0, v) * sigmoid(z)^y (1 - sigmoid(z))^(1 - y)."""
    z = eta0
    for _ in range(_NEWTON_STEPS):
        p = expit(z)
        g = (y - p) - (z - eta0) / v
        h = p * (1.0 - p) + 1.0 / v
        step = g / h
        z += step
        if abs(step) < 1e-10:
            break
    p = expit(z)
    return float(z), float(p * (1.0 - p))


@dataclass
class OnlineReliability:
    """Gaussian (Laplace / assumed-density-filtering) posterior of per-cell correctness logits.

    Parameters
    ----------
    n_models, n_subjects : int
        K models (the pool, in its order) and S subjects (integer codes 0..S-1).
    prior_sd : dict, optional
        Overrides of :data:`DEFAULT_PRIOR_SD` (keys alpha, subject, interaction, slope).
    process_noise : float
        Variance (logit^2) added to every alpha, gamma and slope before each question: the
        forgetting that lets the belief follow a model whose skill drifts. 0: static.
    refit_every : int
        First empirical-Bayes batch refit after this many observations, then at every
        doubling (0: never; ignored when ``process_noise`` > 0).
    """

    n_models: int
    n_subjects: int
    prior_sd: dict | None = None
    process_noise: float = 0.0
    refit_every: int = 0

    def __post_init__(self):
        if self.n_models < 1 or self.n_subjects < 1:
            raise InputError("OnlineReliability needs at least one model and one subject")
        if self.process_noise < 0 or not np.isfinite(self.process_noise):
            raise InputError(f"process_noise must be a non-negative number, got {self.process_noise}")
        sd = {**DEFAULT_PRIOR_SD, **(self.prior_sd or {})}
        unknown = sorted(set(sd) - set(DEFAULT_PRIOR_SD))
        if unknown:
            raise InputError(f"prior_sd: unknown key(s) {unknown}; known {sorted(DEFAULT_PRIOR_SD)}")
        if any(v <= 0 for v in sd.values()):
            raise InputError(f"prior_sd: standard deviations must be positive, got {sd}")
        self.prior_sd = sd
        k, s = self.n_models, self.n_subjects
        self.dim = k + s + k * s + k
        var = np.concatenate([
            np.full(k, sd["alpha"] ** 2), np.full(s, sd["subject"] ** 2),
            np.full(k * s, sd["interaction"] ** 2), np.full(k, sd["slope"] ** 2),
        ])
        self.mean = np.zeros(self.dim)
        self.cov = np.diag(var)
        # Random-walk noise on everything but the pooled subject effects (a model drifts, a subject does not).
        self._drifting = np.ones(self.dim, dtype=bool)
        self._drifting[k:k + s] = False
        self.n_observations = 0
        self._seen: list[tuple[int, int, float, float]] = []
        self._next_refit = int(self.refit_every) if self.refit_every > 0 and self.process_noise == 0 else 0
        self.refits: list[dict] = []

    # ------------------------------------------------------------------ design
    def indices(self, model: int, subject: int) -> np.ndarray:
        """Positions in theta of alpha[model], beta[subject], gamma[model, subject], slope[model]."""
        k, s = self.n_models, self.n_subjects
        return np.array([model, k + subject, k + s + model * s + subject, k + s + k * s + model])

    def design_matrix(self, models, subjects, z_len) -> np.ndarray:
        """Dense rows x (n, D) for arrays of model codes, subject codes and standardized lengths."""
        models = np.asarray(models, dtype=np.int64)
        subjects = np.asarray(subjects, dtype=np.int64)
        z_len = np.asarray(z_len, dtype=float)
        x = np.zeros((len(models), self.dim))
        rows = np.arange(len(models))
        k, s = self.n_models, self.n_subjects
        x[rows, models] = 1.0
        x[rows, k + subjects] = 1.0
        x[rows, k + s + models * s + subjects] = 1.0
        x[rows, k + s + k * s + models] = z_len
        return x

    # ------------------------------------------------------------------ belief
    def logit_belief(self, subject: int, z_len: float) -> tuple[np.ndarray, np.ndarray]:
        """Joint Gaussian belief about every model's logit on one question: mean (K,), covariance (K, K)."""
        k = self.n_models
        idx = np.stack([self.indices(m, subject) for m in range(k)])  # (K, 4)
        vals = np.array([1.0, 1.0, 1.0, z_len])
        mean = self.mean[idx] @ vals
        # x_m' Sigma x_n for all pairs, from the 4 x 4 blocks of Sigma the rows touch.
        block = self.cov[idx[:, :, None, None], idx[None, None, :, :]]  # (K, 4, K, 4)
        cov = np.einsum("a,manb,b->mn", vals, block, vals)
        return mean, cov

    def success_mean(self, subject: int, z_len: float) -> np.ndarray:
        """Posterior mean of P(correct) per model, shape (K,), by the probit approximation
        E[sigmoid(eta)] ~ sigmoid(mu / sqrt(1 + pi v / 8))."""
        mean, cov = self.logit_belief(subject, z_len)
        return expit(mean / np.sqrt(1.0 + np.pi * np.diag(cov) / 8.0))

    def step(self) -> None:
        """Advance time by one question: add the process noise (nothing when it is 0)."""
        if self.process_noise > 0:
            d = np.flatnonzero(self._drifting)
            self.cov[d, d] += self.process_noise

    def update(self, model: int, subject: int, z_len: float, correct: bool) -> None:
        """Condition on one observed outcome of ``model`` on a question (rank-one Laplace update)."""
        idx = self.indices(model, subject)
        vals = np.array([1.0, 1.0, 1.0, float(z_len)])
        s = self.cov[:, idx] @ vals  # Sigma x, (D,)
        v = float(vals @ s[idx])
        eta0 = float(self.mean[idx] @ vals)
        z, w = _laplace_1d(eta0, v, float(bool(correct)))
        self.mean += s * ((z - eta0) / v)
        self.cov -= np.outer(s, s) * (w / (1.0 + w * v))
        self.n_observations += 1
        if self._next_refit:
            self._seen.append((model, subject, float(z_len), float(bool(correct))))
            if self.n_observations >= self._next_refit:
                self.refit()
                self._next_refit *= 2

    def refit(self) -> None:
        """Batch Laplace posterior of every observation so far, sd_interaction by empirical Bayes."""
        m, s, z, y = (np.array(c) for c in zip(*self._seen, strict=True))
        x = self.design_matrix(m.astype(np.int64), s.astype(np.int64), z)
        best = None
        for sd in INTERACTION_SD_GRID:
            prec = self.prior_precision({**self.prior_sd, "interaction": sd})
            mode, cov = batch_laplace(prec, x, y)
            evidence = laplace_log_evidence(prec, x, y, mode, cov)
            if best is None or evidence > best[0]:
                best = (evidence, sd, mode, cov)
        evidence, sd, self.mean, self.cov = best
        self.prior_sd = {**self.prior_sd, "interaction": sd}
        self.refits.append({"n_observations": self.n_observations, "sd_interaction": sd,
                            "log_evidence": float(evidence)})

    def prior_precision(self, prior_sd: dict | None = None) -> np.ndarray:
        """The prior precision matrix (D, D) (diagonal), of ``prior_sd`` (default: the current one)."""
        sd = self.prior_sd if prior_sd is None else prior_sd
        k, s = self.n_models, self.n_subjects
        var = np.concatenate([
            np.full(k, sd["alpha"] ** 2), np.full(s, sd["subject"] ** 2),
            np.full(k * s, sd["interaction"] ** 2), np.full(k, sd["slope"] ** 2),
        ])
        return np.diag(1.0 / var)


def batch_laplace(prior_precision: np.ndarray, x: np.ndarray, y: np.ndarray, n_iter: int = 50,
                  tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """The batch Laplace posterior of a Bayesian logistic regression with prior N(0, prior_precision^-1).

    ``x`` (n, D) design, ``y`` (n,) 0/1. Newton's method to the posterior mode, then the
    inverse Hessian there. Returns (mode (D,), covariance (D, D)): the reference the
    online posterior is checked against.
    """
    theta = np.zeros(x.shape[1])
    y = np.asarray(y, dtype=float)
    for _ in range(n_iter):
        p = expit(x @ theta)
        grad = x.T @ (y - p) - prior_precision @ theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + prior_precision
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.max(np.abs(step)) < tol:
            break
    p = expit(x @ theta)
    hess = (x * (p * (1 - p))[:, None]).T @ x + prior_precision
    return theta, np.linalg.inv(hess)


def laplace_log_evidence(prior_precision: np.ndarray, x: np.ndarray, y: np.ndarray, mode: np.ndarray,
                         cov: np.ndarray) -> float:
    """Laplace approximation of log p(y) for the logistic model with prior N(0, prior_precision^-1):
    log p(y | mode) + log N(mode | 0, prior) + (D / 2) log 2 pi + (1 / 2) log |cov|."""
    eta = x @ mode
    loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    _, logdet_prec = np.linalg.slogdet(prior_precision)
    _, logdet_cov = np.linalg.slogdet(cov)
    logprior = 0.5 * logdet_prec - 0.5 * float(mode @ prior_precision @ mode)
    return loglik + logprior + 0.5 * logdet_cov


class CompletionTokens:
    """Running estimate of each model's completion tokens from the calls paid for.

    Before a model is called its estimate is ``prior_tokens``, held with the weight of
    ``prior_weight`` calls; the pre-call cost of a call is then
    ``prompt_tokens * price_in + E[completion tokens] * price_out`` (USD, prices per million).
    """

    def __init__(self, n_models: int, prior_tokens: float = 300.0, prior_weight: float = 1.0):
        self.total = np.full(n_models, prior_tokens * prior_weight)
        self.count = np.full(n_models, prior_weight)

    def update(self, model: int, tokens: float) -> None:
        self.total[model] += float(tokens)
        self.count[model] += 1.0

    @property
    def mean(self) -> np.ndarray:
        """(K,) expected completion tokens per model."""
        return self.total / self.count
