"""Trust learning over routers: which router's belief about θ should we trust?

Several routers each hold a belief about θ, the probability that a ticket
(question) of some kind needs the big model. Router r's belief is a mixture of
Beta distributions, one component per "judge" it consults::

    z            ~ Categorical(prior)                      which router is right
    c | z = r    ~ Categorical(w[r])                       which of its judges
    θ | z, c     ~ Beta(α[r, c], β[r, c])
    y_i | θ      ~ Bernoulli(θ),  i = 1..n                 1 = the big model was needed

The model is conjugate, so the posterior is exact (:func:`trust_posterior`):
with k ones among n outcomes the marginal likelihood of the *sequence* under
Beta(α, β) is B(α + k, β + n − k) / B(α, β), the router's marginal likelihood is
the w-weighted mixture of these, and

    trust[r] = P(z = r | y) ∝ prior[r] · Σ_c w[r, c] B(α + k, β + n − k) / B(α, β)

Router r's posterior belief about θ is again a Beta mixture: every component is
updated to Beta(α + k, β + n − k) and the weights become the components' shares
of the router's marginal likelihood. (Using the Binomial count likelihood
instead of the sequence likelihood multiplies every marginal by the same
C(n, k), which cancels in both ratios.)

:class:`TrustModel` is the same model in PyMC with both discrete choices
marginalized (θ's prior is the prior-weighted mixture of every router's
components), so NUTS samples the single continuous θ; trust and the posterior
component weights are recovered per draw from P(z = r, c | θ) (Rao-Blackwellized)
and agree with the exact values within Monte Carlo error.

The trust after each outcome is :func:`trust_trajectory`. Around it: the reference example, ROUTERS.yaml / OUTCOMES.csv and the routers and
outcomes built from a real call log are in :mod:`bayes_router.models.trust_data`; the cost
of "always big", "routing by trust" and "escalate small → medium → big" in
:mod:`bayes_router.models.trust_costs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import betaln, logsumexp

from bayes_router.errors import InputError

_WEIGHT_TOL = 1e-6


# ----------------------------------------------------------------------------- beliefs
@dataclass(frozen=True)
class RouterBelief:
    """A router's belief about θ: a mixture of Beta(alpha[c], beta[c]) with weights[c].

    ``weights``, ``alpha`` and ``beta`` have shape (components,); weights sum to 1.
    """

    name: str
    weights: tuple[float, ...]
    alpha: tuple[float, ...]
    beta: tuple[float, ...]

    def __post_init__(self):
        w, a, b = (np.asarray(v, dtype=float) for v in (self.weights, self.alpha, self.beta))
        where = f"router '{self.name}'"
        if not (w.ndim == a.ndim == b.ndim == 1) or not (len(w) == len(a) == len(b)) or len(w) == 0:
            raise InputError(f"{where}: needs one or more components, each with weight, alpha and beta")
        if not np.all(np.isfinite(np.concatenate([w, a, b]))):
            raise InputError(f"{where}: weights and Beta parameters must be finite numbers")
        if np.any(w < 0):
            raise InputError(f"{where}: negative mixture weight(s) {w.tolist()}")
        if abs(w.sum() - 1.0) > _WEIGHT_TOL:
            raise InputError(f"{where}: mixture weights sum to {w.sum():.6g}, not 1 ({w.tolist()})")
        if np.any(a <= 0) or np.any(b <= 0):
            raise InputError(f"{where}: Beta parameters must be positive (alpha={a.tolist()}, beta={b.tolist()})")
        object.__setattr__(self, "weights", tuple(float(x) for x in w))
        object.__setattr__(self, "alpha", tuple(float(x) for x in a))
        object.__setattr__(self, "beta", tuple(float(x) for x in b))

    @classmethod
    def from_components(cls, name: str, components: Sequence[Mapping[str, float]]) -> RouterBelief:
        """From ``[{weight: W, alpha: A, beta: B}, ...]`` (the ROUTERS.yaml form)."""
        if not isinstance(components, Sequence) or isinstance(components, str) or not components:
            raise InputError(f"router '{name}': expected a list of {{weight, alpha, beta}} components")
        rows = []
        for i, comp in enumerate(components):
            if not isinstance(comp, Mapping) or {"weight", "alpha", "beta"} - set(comp):
                raise InputError(f"router '{name}': component {i} needs keys weight, alpha, beta (got {comp!r})")
            try:
                rows.append((float(comp["weight"]), float(comp["alpha"]), float(comp["beta"])))
            except (TypeError, ValueError):
                raise InputError(f"router '{name}': component {i} has a non-numeric value ({comp!r})") from None
        w, a, b = zip(*rows, strict=True)
        return cls(name, w, a, b)

    @property
    def mean(self) -> float:
        """Prior mean of θ under this belief."""
        w, a, b = self.arrays()
        return float(np.sum(w * a / (a + b)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.asarray(self.weights), np.asarray(self.alpha), np.asarray(self.beta)

    def component_log_marginals(self, n_ones: int, n_zeros: int) -> np.ndarray:
        """log w[c] + log B(α + k, β + n − k) − log B(α, β), shape (components,): sequence likelihood."""
        w, a, b = self.arrays()
        with np.errstate(divide="ignore"):
            return np.log(w) + betaln(a + n_ones, b + n_zeros) - betaln(a, b)

    def log_marginal_likelihood(self, n_ones: int, n_zeros: int) -> float:
        """log P(y | this router) for a sequence with ``n_ones`` ones and ``n_zeros`` zeros."""
        return float(logsumexp(self.component_log_marginals(n_ones, n_zeros)))

    def posterior(self, n_ones: int, n_zeros: int) -> RouterBelief:
        """The posterior belief about θ given the outcomes: again a Beta mixture."""
        lm = self.component_log_marginals(n_ones, n_zeros)
        w = np.exp(lm - logsumexp(lm))
        w = w / w.sum()
        _, a, b = self.arrays()
        return RouterBelief(self.name, tuple(w), tuple(a + n_ones), tuple(b + n_zeros))

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws of θ from this belief, shape (size,)."""
        w, a, b = self.arrays()
        c = rng.choice(len(w), size=size, p=w)
        return rng.beta(a[c], b[c])

    def to_dict(self) -> dict:
        return {"weights": list(self.weights), "beta": [[a, b] for a, b in zip(self.alpha, self.beta, strict=True)]}


def _check_outcomes(outcomes, where: str = "outcomes") -> np.ndarray:
    y = np.asarray(outcomes)
    if y.ndim != 1:
        raise InputError(f"{where}: expected a 1-d sequence of 0/1 outcomes, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    try:
        yf = y.astype(float)
    except (TypeError, ValueError):
        raise InputError(f"{where}: outcomes must be 0 or 1 (got non-numeric values)") from None
    bad = ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        idx = np.flatnonzero(bad)[:5].tolist()
        raise InputError(f"{where}: outcomes must be 0 or 1; bad values at rows {idx}: {y[idx].tolist()}")
    return yf.astype(np.int64)


def _check_prior(routers: Sequence[RouterBelief], prior) -> np.ndarray:
    names = [r.name for r in routers]
    if len(set(names)) != len(names):
        raise InputError(f"router names must be unique, got {names}")
    if not routers:
        raise InputError("need at least one router")
    if prior is None:
        return np.full(len(routers), 1.0 / len(routers))
    if isinstance(prior, Mapping):
        unknown = sorted(set(prior) - set(names))
        missing = [n for n in names if n not in prior]
        if unknown or missing:
            raise InputError(f"prior: names must match the routers {names} (unknown {unknown}, missing {missing})")
        p = np.array([prior[n] for n in names], dtype=float)
    else:
        p = np.asarray(prior, dtype=float)
    if p.shape != (len(routers),) or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InputError(f"prior: expected {len(routers)} non-negative numbers, got {np.asarray(prior).tolist()}")
    if abs(p.sum() - 1.0) > _WEIGHT_TOL:
        raise InputError(f"prior: probabilities sum to {p.sum():.6g}, not 1")
    return p / p.sum()


# ----------------------------------------------------------------------------- exact posterior
@dataclass
class TrustPosterior:
    """The exact posterior of the trust model.

    ``trust`` (routers,) is P(z = r | y); ``posteriors`` holds each router's updated
    Beta mixture; ``log_marginal`` (routers,) is log P(y | router) (sequence likelihood).
    """

    routers: list[RouterBelief]
    prior: np.ndarray
    n_ones: int
    n_zeros: int
    trust: np.ndarray
    log_marginal: np.ndarray
    posteriors: list[RouterBelief] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.routers]

    def theta_mean(self) -> dict[str, float]:
        """Posterior mean of θ given each router is right."""
        return {p.name: p.mean for p in self.posteriors}

    def predictive_need_big(self) -> float:
        """P(next ticket needs the big model | y): the trust-weighted (model-averaged) predictive."""
        return float(sum(t * p.mean for t, p in zip(self.trust, self.posteriors, strict=True)))

    def sample_theta(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Draws of θ from the model-averaged posterior (trust-weighted mixture), shape (size,)."""
        z = rng.choice(len(self.routers), size=size, p=self.trust)
        out = np.empty(size)
        for r, post in enumerate(self.posteriors):
            m = z == r
            if m.any():
                out[m] = post.sample(int(m.sum()), rng)
        return out

    def to_dict(self) -> dict:
        """JSON-ready: trust, updated components, prior, counts, log marginals."""
        return {
            "trust": {n: float(t) for n, t in zip(self.names, self.trust, strict=True)},
            "components": {p.name: p.to_dict() for p in self.posteriors},
            "prior": {n: float(p) for n, p in zip(self.names, self.prior, strict=True)},
            "prior_components": {r.name: r.to_dict() for r in self.routers},
            "n_outcomes": int(self.n_ones + self.n_zeros),
            "n_ones": int(self.n_ones),
            "n_zeros": int(self.n_zeros),
            "log_marginal_likelihood": {n: float(v) for n, v in zip(self.names, self.log_marginal, strict=True)},
            "theta_posterior_mean": self.theta_mean(),
            "predictive_need_big": self.predictive_need_big(),
        }


def trust_posterior(routers: Sequence[RouterBelief], outcomes, prior=None) -> TrustPosterior:
    """Exact conjugate posterior over routers (trust) and each router's θ.

    ``outcomes``: 0/1 sequence (1 = the big model was needed). ``prior``: None
    (uniform), a sequence aligned with ``routers`` or a mapping name -> probability.
    """
    routers = list(routers)
    p = _check_prior(routers, prior)
    y = _check_outcomes(outcomes)
    k, n0 = int(y.sum()), int(len(y) - y.sum())
    lm = np.array([r.log_marginal_likelihood(k, n0) for r in routers])
    with np.errstate(divide="ignore"):
        lp = np.log(p) + lm
    trust = np.exp(lp - logsumexp(lp))
    return TrustPosterior(
        routers=routers, prior=p, n_ones=k, n_zeros=n0, trust=trust / trust.sum(), log_marginal=lm,
        posteriors=[r.posterior(k, n0) for r in routers],
    )


def trust_trajectory(routers: Sequence[RouterBelief], outcomes, prior=None) -> pd.DataFrame:
    """Trust after each outcome: a DataFrame with one row per step 0..n.

    Columns: ``step`` (outcomes seen), ``y`` (the outcome just seen; NA at step 0),
    ``n_ones``, then one column per router with P(z = r | y_1..y_step), and
    ``predictive_need_big`` (the model-averaged P(next ticket needs big)).
    """
    routers = list(routers)
    p = _check_prior(routers, prior)
    y = _check_outcomes(outcomes)
    ones = np.concatenate([[0], np.cumsum(y)])
    steps = np.arange(len(y) + 1)
    zeros = steps - ones
    lm = np.array([[r.log_marginal_likelihood(int(k), int(z)) for r in routers] for k, z in zip(ones, zeros, strict=True)])
    with np.errstate(divide="ignore"):
        lp = np.log(p)[None, :] + lm
    trust = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
    out = pd.DataFrame({"step": steps, "y": pd.array([pd.NA, *y.tolist()], dtype="Int64"), "n_ones": ones})
    for j, r in enumerate(routers):
        out[r.name] = trust[:, j]
    means = np.array([[r.posterior(int(k), int(z)).mean for r in routers] for k, z in zip(ones, zeros, strict=True)])
    out["predictive_need_big"] = (trust * means).sum(axis=1)
    return out


# ----------------------------------------------------------------------------- the PyMC model
class TrustModel:
    """The trust model in PyMC, discrete choices marginalized so NUTS samples θ alone.

    Marginalizing the router z and the judge c gives θ ~ Σ_r Σ_c prior[r] w[r, c]
    Beta(α[r, c], β[r, c]) and y_i ~ Bernoulli(θ). Trust is recovered per draw as
    P(z = r | θ) (y is independent of z given θ), and averaged over draws: a
    Rao-Blackwellized estimate with lower Monte Carlo error than sampling z.

    ``sampler_config`` holds the NUTS settings; ``fit`` returns ArviZ InferenceData
    whose posterior has ``theta`` and the deterministics ``router_prob`` (router,)
    and ``component_prob`` (router, component): P(z = r, c | θ) per draw.
    """

    default_sampler_config = {"draws": 1000, "tune": 1000, "chains": 2, "target_accept": 0.9, "cores": 1}

    def __init__(self, routers: Sequence[RouterBelief], prior=None, sampler_config: dict | None = None):
        self.routers = list(routers)
        self.prior = _check_prior(self.routers, prior)
        self.sampler_config = {**self.default_sampler_config, **(sampler_config or {})}
        self.model = None
        self.idata = None

    def _padded(self):
        """(log weights, alpha, beta), shape (router, component), padded with weight 0."""
        k = max(len(r.weights) for r in self.routers)
        logw = np.full((len(self.routers), k), -np.inf)
        a = np.ones((len(self.routers), k))
        b = np.ones((len(self.routers), k))
        for i, r in enumerate(self.routers):
            w, ar, br = r.arrays()
            with np.errstate(divide="ignore"):
                logw[i, : len(w)] = np.log(w)
            a[i, : len(w)], b[i, : len(w)] = ar, br
        return logw, a, b

    def build_model(self, outcomes):
        import pymc as pm
        import pytensor.tensor as pt

        y = _check_outcomes(outcomes)
        logw, a, b = self._padded()
        names = [r.name for r in self.routers]
        coords = {"router": names, "component": np.arange(a.shape[1]), "ticket": np.arange(len(y))}
        with np.errstate(divide="ignore"):
            log_joint_weight = np.log(self.prior)[:, None] + logw  # (router, component)
        flat = np.isfinite(log_joint_weight.ravel())
        with pm.Model(coords=coords) as model:
            theta = pm.Mixture(
                "theta",
                w=np.exp(log_joint_weight.ravel()[flat]),
                comp_dists=pm.Beta.dist(alpha=a.ravel()[flat], beta=b.ravel()[flat]),
            )
            pm.Bernoulli("y", p=theta, observed=y, dims="ticket")
            # P(z = r, c | θ) ∝ prior[r] w[r, c] Beta(θ | α, β): the marginalized choices, per draw.
            lbeta = (
                (a - 1) * pt.log(theta) + (b - 1) * pt.log1p(-theta) - betaln(a, b)
            )
            lj = pt.as_tensor(np.where(np.isfinite(log_joint_weight), log_joint_weight, -1e30)) + lbeta
            comp = pt.exp(lj - pt.logsumexp(lj))
            pm.Deterministic("component_prob", comp, dims=("router", "component"))
            pm.Deterministic("router_prob", comp.sum(axis=1), dims="router")
        self.model = model
        return model

    def fit(self, outcomes, random_seed: int = 0, progressbar: bool = False, **sampler_kwargs):
        """Sample the posterior with NUTS; returns InferenceData (also kept as ``self.idata``)."""
        import pymc as pm

        model = self.build_model(outcomes)
        cfg = {**self.sampler_config, **sampler_kwargs}
        with model:
            self.idata = pm.sample(random_seed=random_seed, progressbar=progressbar, compute_convergence_checks=False,
                                   **cfg)
        return self.idata

    def trust_summary(self) -> pd.DataFrame:
        """Per router: Monte Carlo trust estimate, its MC standard error (from ESS), and
        the posterior component weights with θ's posterior mean given the router.

        The MCSE of each trust estimate is ArviZ's ``mcse(method="mean")``, i.e.
        sd / sqrt(ESS) with the ESS of the mean over all chains.
        """
        import arviz as az

        if self.idata is None:
            raise InputError("fit the model first")
        post = self.idata.posterior
        rp = post["router_prob"]
        ess = az.ess(self.idata, var_names=["router_prob"], method="mean")["router_prob"]
        mcse = az.mcse(self.idata, var_names=["router_prob"], method="mean")["router_prob"]
        theta = post["theta"]
        rows = []
        for name in rp.coords["router"].values:
            f = rp.sel(router=name)
            cp = post["component_prob"].sel(router=name)
            trust = float(f.mean())
            rows.append({
                "router": str(name),
                "trust": trust,
                "trust_mcse": float(mcse.sel(router=name)),
                "trust_ess": float(ess.sel(router=name)),
                "weights": (cp.mean(("chain", "draw")) / max(trust, 1e-300)).values.tolist(),
                "theta_mean": float((f * theta).mean()) / max(trust, 1e-300),
            })
        return pd.DataFrame(rows).set_index("router")

    def diagnostics(self) -> dict:
        """R-hat, bulk ESS of θ and the divergence count."""
        import arviz as az

        s = az.summary(self.idata, var_names=["theta"], kind="diagnostics")
        div = int(self.idata.sample_stats["diverging"].sum())
        return {"r_hat": float(s["r_hat"].iloc[0]), "ess_bulk": float(s["ess_bulk"].iloc[0]), "divergences": div}
