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

Around it: the trust trajectory after each outcome (:func:`trust_trajectory`),
the cost of "always big", "routing by trust" and "escalate small → medium → big"
per 100 tickets (:func:`cost_impact`), and outcomes and router beliefs built from
a real call log (:func:`outcomes_from_log`, :func:`routers_from_train`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


# ----------------------------------------------------------------------------- the reference example
REFERENCE_OUTCOMES: tuple[int, ...] = (0,) * 11 + (1,) + (0,) * 8 + (1, 1)


def reference_routers() -> list[RouterBelief]:
    """The three routers of the reference example (simple, medium, complex)."""
    return [
        RouterBelief("simple", (0.6, 0.4), (3.0, 1.0), (3.0, 5.0)),
        RouterBelief("medium", (0.7, 0.3), (3.0, 0.2), (9.0, 0.05)),
        RouterBelief("complex", (0.2, 0.8), (3.0, 0.2), (9.0, 0.05)),
    ]


def reference_example() -> tuple[list[RouterBelief], np.ndarray]:
    """(routers, outcomes) of the reference example: eleven 0s, one 1, eight 0s, two 1s."""
    return reference_routers(), np.array(REFERENCE_OUTCOMES, dtype=np.int64)


# ----------------------------------------------------------------------------- files
def load_routers_yaml(path: str | os.PathLike) -> tuple[list[RouterBelief], dict[str, float] | None]:
    """Read ROUTERS.yaml: ``routers: {NAME: [{weight, alpha, beta}, ...]}`` and optional ``prior: {NAME: P}``."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such routers file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("routers"), Mapping) or not doc["routers"]:
        raise InputError(f"{path}: expected a top-level 'routers: {{NAME: [{{weight, alpha, beta}}, ...]}}' mapping")
    try:
        routers = [RouterBelief.from_components(str(name), comps) for name, comps in doc["routers"].items()]
        prior = doc.get("prior")
        if prior is not None:
            if not isinstance(prior, Mapping):
                raise InputError("'prior' must map router names to probabilities")
            prior = {str(k): float(v) for k, v in prior.items()}
        _check_prior(routers, prior)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: {exc}") from None
    return routers, prior


def load_outcomes_csv(path: str | os.PathLike, column: str = "y") -> np.ndarray:
    """Read OUTCOMES.csv: a column ``y`` of 0/1 (1 = the big model was needed), in ticket order."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such outcomes file")
    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"{path}: not a readable CSV ({exc.__class__.__name__}: {exc})") from None
    if column not in df.columns:
        raise InputError(f"{path}: column '{column}' missing (columns: {list(df.columns)})")
    col = df[column]
    if col.isna().any():
        raise InputError(f"{path}: column '{column}': empty values at rows {np.flatnonzero(col.isna())[:5].tolist()}")
    if len(col) == 0:
        raise InputError(f"{path}: column '{column}' has no rows")
    return _check_outcomes(col.to_numpy(), where=f"{path}: column '{column}'")


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


# ----------------------------------------------------------------------------- cost impact
@dataclass(frozen=True)
class TierCosts:
    """Per-call costs in USD of the small, medium and big model, and the escalation assumption.

    ``medium_fails_given_small_fails``: P(the medium model also fails | the small
    one failed), used by the cascade only (the trust model knows nothing of the
    medium model). The big model is taken to solve every ticket, and a failure to be
    detectable (e.g. by a verifier), so every policy answers every ticket.
    """

    small: float = 0.0002
    medium: float = 0.0010
    big: float = 0.0040
    medium_fails_given_small_fails: float = 0.5

    def __post_init__(self):
        for k in ("small", "medium", "big"):
            if getattr(self, k) < 0:
                raise InputError(f"cost of the {k} model must be non-negative, got {getattr(self, k)}")
        if not 0 <= self.medium_fails_given_small_fails <= 1:
            raise InputError("medium_fails_given_small_fails must be in [0, 1]")


def _policy_costs(theta: np.ndarray, need_big: np.ndarray, medium_fail: np.ndarray, small_first: np.ndarray,
                  costs: TierCosts, n_tickets: int) -> dict[str, np.ndarray]:
    """Realized total cost (USD) per policy; arrays broadcast over posterior draws."""
    big_total = np.full(theta.shape, n_tickets * costs.big)
    trust_total = np.where(small_first, n_tickets * costs.small + need_big * costs.big, big_total)
    cascade_total = n_tickets * costs.small + need_big * costs.medium + medium_fail * costs.big
    return {"always big": big_total, "routing by trust": trust_total, "escalate small → medium → big": cascade_total}


def cost_impact(posterior: TrustPosterior, costs: TierCosts | None = None, n_tickets: int = 100,
                n_draws: int = 20000, seed: int = 0) -> pd.DataFrame:
    """Cost in USD per ``n_tickets`` new tickets for three policies, with 95% intervals.

    - "always big": every ticket goes to the big model.
    - "routing by trust": with the model-averaged predictive p = P(needs big | y),
      send tickets small-first (escalating to big on failure) when the expected cost
      small + p·big is below big, else straight to big (one decision for the batch).
    - "escalate small → medium → big": small first, then medium, then big.

    The interval is a 95% posterior predictive interval of the total over
    ``n_tickets`` new tickets: θ drawn from the trust-weighted posterior, the number
    needing big ~ Binomial(n_tickets, θ), the cascade's medium failures ~
    Binomial(that, ``medium_fails_given_small_fails``).
    """
    costs = costs or TierCosts()
    rng = np.random.default_rng(seed)
    p = posterior.predictive_need_big()
    small_first = costs.small + p * costs.big < costs.big
    theta = posterior.sample_theta(n_draws, rng)
    need_big = rng.binomial(n_tickets, theta)
    medium_fail = rng.binomial(need_big, costs.medium_fails_given_small_fails)
    totals = _policy_costs(theta, need_big, medium_fail, np.full(theta.shape, small_first), costs, n_tickets)
    expected = {
        "always big": n_tickets * costs.big,
        "routing by trust": n_tickets * (costs.small + p * costs.big) if small_first else n_tickets * costs.big,
        "escalate small → medium → big": n_tickets * (
            costs.small + p * (costs.medium + costs.medium_fails_given_small_fails * costs.big)),
    }
    rows = []
    for name, draws in totals.items():
        lo, hi = np.quantile(draws, [0.025, 0.975])
        rows.append({
            "policy": name, "expected_cost_usd": float(expected[name]), "cost_ci95_lo": float(lo),
            "cost_ci95_hi": float(hi), "calls_per_ticket": float(_calls_per_ticket(name, p, small_first, costs)),
        })
    out = pd.DataFrame(rows).set_index("policy")
    out.attrs.update(n_tickets=n_tickets, predictive_need_big=p, small_first=bool(small_first))
    return out


def _calls_per_ticket(name: str, p: float, small_first: bool, costs: TierCosts) -> float:
    if name == "always big":
        return 1.0
    if name == "routing by trust":
        return 1.0 + p if small_first else 1.0
    return 1.0 + p * (1.0 + costs.medium_fails_given_small_fails)


def sequential_cost(routers: Sequence[RouterBelief], outcomes, prior=None,
                    costs: TierCosts | None = None) -> pd.DataFrame:
    """Realized cost (USD) of each policy on the observed sequence, deciding online.

    Ticket i is routed with the trust posterior of tickets < i (no peeking). The
    cascade's medium-tier outcome is not observed, so its cost is the expectation
    under ``medium_fails_given_small_fails``. Columns: one cumulative cost per policy.
    """
    costs = costs or TierCosts()
    y = _check_outcomes(outcomes)
    traj = trust_trajectory(routers, y, prior)
    p_before = traj["predictive_need_big"].to_numpy()[:-1]  # predictive before ticket i
    small_first = costs.small + p_before * costs.big < costs.big
    per_ticket = {
        "always big": np.full(len(y), costs.big),
        "routing by trust": np.where(small_first, costs.small + y * costs.big, costs.big),
        "escalate small → medium → big": costs.small + y * (costs.medium + costs.medium_fails_given_small_fails
                                                              * costs.big),
    }
    out = pd.DataFrame({k: np.cumsum(v) for k, v in per_ticket.items()})
    out.insert(0, "ticket", np.arange(1, len(y) + 1))
    out["small_first"] = small_first
    return out


# ----------------------------------------------------------------------------- real logs
def outcomes_from_log(log: pd.DataFrame, small: str, big: str, question_ids=None) -> pd.DataFrame:
    """Per question: y = 1 if the small model failed where the big one succeeded, else 0.

    Returns columns question_id, subject, small_correct, big_correct, y (int64),
    sorted by question_id (the ticket order). Questions both models answered only.
    """
    for m in (small, big):
        if m not in set(log["model"].unique()):
            raise InputError(f"model '{m}' is not in the log")
    sub = log[log["model"].isin([small, big])]
    if question_ids is not None:
        sub = sub[sub["question_id"].isin(np.asarray(question_ids, dtype=np.int64))]
    wide = sub.pivot_table(index=["question_id", "subject"], columns="model", values="correct", aggfunc="first",
                           observed=True)
    wide = wide.dropna().reset_index()
    out = pd.DataFrame({
        "question_id": wide["question_id"].astype("int64"),
        "subject": wide["subject"].astype("string"),
        "small_correct": wide[small].astype(bool),
        "big_correct": wide[big].astype(bool),
    })
    out["y"] = (~out["small_correct"] & out["big_correct"]).astype("int64")
    return out.sort_values("question_id").reset_index(drop=True)


def tier_costs_from_log(train_log: pd.DataFrame, small: str, medium: str, big: str) -> TierCosts:
    """Per-call costs (mean ``cost_usd`` of each model's calls, USD) and the cascade's
    P(medium fails | small failed), all from the TRAIN log (questions all three answered)."""
    for m in (small, medium, big):
        if m not in set(train_log["model"].unique()):
            raise InputError(f"model '{m}' is not in the log")
    wide = train_log[train_log["model"].isin([small, medium, big])].pivot_table(
        index="question_id", columns="model", values="correct", aggfunc="first").dropna()
    small_failed = ~wide[small].astype(bool)
    if not small_failed.any():
        raise InputError(f"the small model '{small}' never fails on the train questions")
    mean_cost = train_log.groupby("model", observed=True)["cost_usd"].mean()
    return TierCosts(float(mean_cost[small]), float(mean_cost[medium]), float(mean_cost[big]),
                     float((~wide.loc[small_failed, medium].astype(bool)).mean()))


def _beta_from_mean(mean: float, strength: float) -> tuple[float, float]:
    m = float(np.clip(mean, 1e-3, 1 - 1e-3))
    return m * strength, (1 - m) * strength


def routers_from_train(train_log: pd.DataFrame, small: str, big: str, strength: float | None = None,
                       hedge_weight: float = 0.1) -> dict[str, list[RouterBelief]]:
    """Three routers' beliefs about θ per subject, from the TRAIN log only.

    - ``pooled``: the train rate of "small failed, big succeeded" over all subjects
      (a router that ignores the subject);
    - ``by-subject``: that rate within the subject (a per-subject router);
    - ``independent``: (1 − acc_small) · acc_big within the subject, the rate a router
      predicts when it treats the two models' errors as independent (they are not:
      errors correlate, so it overstates how often the big model rescues the small).

    Each main judge is Beta(1 + mean · n, 1 + (1 − mean) · n) with n the train
    questions the router's estimate rests on (all train questions for ``pooled``, the
    subject's for the others), i.e. the router's own posterior from what it saw;
    ``strength`` replaces n by a fixed pseudo-count. It gets weight 1 − ``hedge_weight``;
    a flat Beta(1, 1) judge gets ``hedge_weight`` (the router hedges against being
    wrong, so one surprising subject cannot make its trust collapse to exactly 0).
    Returns {subject: [pooled, by-subject, independent]}.
    """
    if not 0 <= hedge_weight < 1:
        raise InputError(f"hedge_weight must be in [0, 1), got {hedge_weight}")
    if strength is not None and strength <= 0:
        raise InputError(f"strength must be positive, got {strength}")
    out = outcomes_from_log(train_log, small, big)
    if out.empty:
        raise InputError("no train question answered by both models")
    pooled, n_all = out["y"].mean(), len(out)
    beliefs = {}
    for subject, g in out.groupby("subject", observed=True):
        n_subj = len(g)
        means = {
            "pooled": (pooled, n_all),
            "by-subject": (g["y"].mean(), n_subj),
            "independent": ((1 - g["small_correct"].mean()) * g["big_correct"].mean(), n_subj),
        }
        routers = []
        for name, (m, n) in means.items():
            a, b = _beta_from_mean(m, strength if strength is not None else n)
            if strength is None:
                a, b = a + 1.0, b + 1.0
            if hedge_weight > 0:
                routers.append(RouterBelief(name, (1 - hedge_weight, hedge_weight), (a, 1.0), (b, 1.0)))
            else:
                routers.append(RouterBelief(name, (1.0,), (a,), (b,)))
        beliefs[str(subject)] = routers
    return beliefs


def trust_by_subject(beliefs: Mapping[str, Sequence[RouterBelief]], test_outcomes: pd.DataFrame,
                     n_tickets: int | None = None) -> pd.DataFrame:
    """Trust learned per subject from the TEST outcomes (first ``n_tickets`` per subject if given).

    One row per subject: n, n_ones, the trust in each router, and the observed rate.
    """
    rows = []
    for subject, g in test_outcomes.groupby("subject", observed=True):
        subject = str(subject)
        if subject not in beliefs:
            continue
        y = g["y"].to_numpy()
        if n_tickets is not None:
            y = y[:n_tickets]
        post = trust_posterior(beliefs[subject], y)
        row = {"subject": subject, "n": len(y), "n_ones": int(y.sum()), "observed_rate": float(y.mean())}
        for r, t in zip(post.names, post.trust, strict=True):
            row[f"trust_{r}"] = float(t)
        for r in post.routers:
            row[f"prior_mean_{r.name}"] = r.mean
        rows.append(row)
    return pd.DataFrame(rows).set_index("subject")
