"""Simulation-based calibration (SBC; Talts, Betancourt, Simpson, Vehtari and Gelman 2018) of the
reliability model, pre- and post-call.

For each replication ``r``: parameters ``theta_r`` are drawn from the prior and data ``y_r`` from the
likelihood given them (the graph's own prior predictive: ``pm.sample_prior_predictive`` on the model
:func:`~bayes_router.models.reliability.graph.build_graph` builds, never a second copy of the model),
the posterior given ``y_r`` is sampled with nutpie, and the rank of each true scalar among ``L``
thinned posterior draws is recorded. When the model's code (likelihood, transforms, zero-sum
constraints) and the sampler are right, each rank is uniform on ``{0, ..., L}``; the tests of that
are in :mod:`bayes_router.models.rank_uniformity`.

The design (models, subjects, covariates, the likelihood cells) is fixed by one small SIMULATED log
(:func:`sbc_log`); only the outcomes ``correct`` change between replications. They enter the graph as
a shared variable (``pm.observe``), so the model is compiled once and every replication swaps the data
(``CompiledModel.with_data``): measured on 3 models x 3 subjects x 100 questions (2 shared cores), a
compile takes 11-38 s and a fit of 2 x (300 tune + 400 draws) at target_accept 0.98 1.6-1.8 s (median),
so recompiling per replication would cost 10-20 times the sampling.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_router.errors import InputError

#: Name of the shared variable holding the outcomes of the likelihood cells in the fitted graph.
OBSERVED = "correct_observed"

#: Parameterization of the SBC fits. Centered and non-centered forms are the same model (the same
#: posterior); only the sampler's geometry differs. The package's defaults center the per-model
#: intercepts and subject effects because the real logs pin each with thousands of calls; the small
#: SBC logs do not, and there the centered forms are funnels: 3 models x 3 subjects x 100 questions,
#: pre stage, 10 prior draws, target_accept 0.98: divergences in 8 of 10 fits (up to 9 each);
#: non-centered: none of 10. The slopes and interactions stay "auto".
SBC_MODEL_CONFIG: dict = {"model_effects": {"parameterization": "non-centered"},
                          "subject_effects": {"parameterization": "non-centered"}}


def sbc_log(n_questions: int = 100, n_models: int = 3, n_subjects: int = 3, seed: int = 0) -> pd.DataFrame:
    """A small SIMULATED call log (``log_source == "simulated"``) whose design the SBC fits reuse.

    ``n_questions`` per model; every model answers every question. Its outcomes are replaced by
    prior predictive draws in each replication; its covariates (question length; the post stage also
    completion tokens and the parse hurdle) stay. One log serves both stages.
    """
    from bayes_router.data.simulate import simulate_call_log

    if n_models < 2 or n_subjects < 2:
        raise InputError("sbc_log: n_models and n_subjects must be at least 2 (the effects are zero-sum)")
    models = [f"model_{i}" for i in range(n_models)]
    subjects = [f"subject_{i}" for i in range(n_subjects)]
    log, _, _ = simulate_call_log(n_questions=n_questions, models=models, subjects=subjects, seed=seed)
    return log


def _label(var: str, index: tuple, dims: dict[str, list]) -> str:
    if not index:
        return var
    return f"{var}[{', '.join(str(dims[d][i]) for d, i in index)}]"


def sbc_parameters(design) -> list[tuple[str, str, tuple]]:
    """The scalars SBC ranks: ``(label, variable, ((dim, index), ...))``.

    Every hyperparameter (``mu_alpha``, ``sigma_alpha``, ``sigma_subject``, ``sigma_interaction``, and
    ``mu_slope``/``sigma_slope`` per covariate) and, as examples of the levels, the first model's
    intercept ``alpha`` and slopes, the first subject's effect ``beta`` and their interaction ``gamma``.
    """
    dims = {"model": design.models, "subject": design.subjects, "covariate": design.slope_covariates}
    out = [(v, v, ()) for v in ("mu_alpha", "sigma_alpha", "sigma_subject", "sigma_interaction")]
    for var in ("mu_slope", "sigma_slope"):
        out += [(None, var, (("covariate", j),)) for j in range(len(design.slope_covariates))]
    out += [(None, "alpha", (("model", 0),)), (None, "beta", (("subject", 0),)),
            (None, "gamma", (("model", 0), ("subject", 0)))]
    out += [(None, "slope", (("model", 0), ("covariate", j))) for j in range(len(design.slope_covariates))]
    return [(label or _label(var, idx, dims), var, idx) for label, var, idx in out]


@dataclass
class SBCResult:
    """Ranks of the true parameters among the posterior draws, one row per replication.

    ``ranks`` (replications, parameters), integers in ``0 .. n_draws``: how many of the ``n_draws``
    thinned posterior draws fall below the true value; ``divergences`` (replications,) divergent
    transitions of each fit (after tuning, all chains); ``fit_seconds`` (replications,) wall time of
    each fit; ``compile_seconds`` the one compilation; ``design`` what the simulated log fixes.
    """

    stage: str
    parameters: list[str]
    ranks: np.ndarray
    n_draws: int
    divergences: np.ndarray
    fit_seconds: np.ndarray
    compile_seconds: float
    design: dict = field(default_factory=dict)

    @property
    def replications(self) -> int:
        return int(self.ranks.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """Long form: replication, parameter, rank, divergences (of that replication's fit)."""
        r, p = np.meshgrid(np.arange(self.replications), np.arange(len(self.parameters)), indexing="ij")
        return pd.DataFrame({"replication": r.ravel(), "parameter": np.asarray(self.parameters)[p.ravel()],
                             "rank": self.ranks.ravel(), "divergences": self.divergences[r.ravel()]})


def negate_covariates(cells):
    """The likelihood cells with every covariate negated: simulating on them and fitting on the
    originals is the model with each slope's sign flipped (used to show that SBC detects it)."""
    import dataclasses

    return dataclasses.replace(cells, x=-cells.x)


class SimulationBasedCalibration:
    """SBC of the reliability model of ``stage`` on the design of ``log`` (compiled once).

    ``model_config``: overrides of the reliability model's configuration, merged over
    :data:`SBC_MODEL_CONFIG` (priors come from the package's defaults unless overridden here).
    ``draws``/``tune`` per chain, ``chains``; ``n_draws`` (L): posterior draws each rank is taken among,
    evenly thinned from ``chains * draws`` so that autocorrelation does not make the ranks lumpy.
    ``target_accept``: nutpie's step-size adaptation target; None: the reliability model's own rule
    (:func:`~bayes_router.models.reliability.parameterization.target_accept`, 0.98 for 3-4 models), so
    that SBC checks the sampler as the package runs it.
    """

    def __init__(self, log: pd.DataFrame, stage: str = "pre", *, model_config: dict | None = None,
                 draws: int = 500, tune: int = 500, chains: int = 2, n_draws: int = 99,
                 target_accept: float | None = None):
        import nutpie
        import pymc as pm
        import pytensor

        from bayes_router.models.reliability.graph import build_graph
        from bayes_router.models.reliability.model import ReliabilityModel
        from bayes_router.models.reliability.parameterization import target_accept as default_accept

        self._set_sampling(stage, draws, tune, chains, n_draws)
        self.reliability = ReliabilityModel(stage, model_config={**SBC_MODEL_CONFIG, **(model_config or {})})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # covariates absent from a simulated log
            self.plan = self.reliability.plan(log)
        self.target_accept = default_accept(target_accept, self.plan.parameterization.chosen,
                                            len(self.plan.design.models))
        self._build = lambda cells: build_graph(self.plan.design, self.reliability.model_config,
                                                self.plan.parameterization, cells, self.plan.alpha_shift_means)
        self.model = self._build(self.plan.cells)
        data = pytensor.shared(np.asarray(self.plan.cells.y, dtype="float64"), name=OBSERVED)
        start = time.perf_counter()
        self.compiled = nutpie.compile_pymc_model(pm.observe(self.model, {"correct": data}))
        self.compile_seconds = time.perf_counter() - start
        self.parameters = sbc_parameters(self.plan.design)

    def _set_sampling(self, stage: str, draws: int, tune: int, chains: int, n_draws: int) -> None:
        """Check and keep the sampler settings every SBC family shares."""
        if n_draws < 1 or n_draws > chains * draws:
            raise InputError(f"n_draws must be between 1 and chains * draws = {chains * draws}, got {n_draws}")
        self.stage, self.draws, self.tune, self.chains, self.n_draws = stage, draws, tune, chains, n_draws

    def describe(self) -> dict:
        """What the design fixes: sizes, covariates, the parameterization, sampler settings and the priors
        checked (they are the package's defaults unless overridden, so a result says which ones it tested)."""
        d, c = self.plan.design, self.plan.cells
        return {"stage": self.stage, "models": len(d.models), "subjects": len(d.subjects),
                "covariates": d.slope_covariates, "likelihood_cells": int(len(c)), "calls": int(c.trials.sum()),
                "parameterization": dict(self.plan.parameterization.chosen),
                "slope_parameterization": dict(self.plan.parameterization.slopes),
                "draws": self.draws, "tune": self.tune, "chains": self.chains, "n_draws": self.n_draws,
                "target_accept": self.target_accept,
                "priors": {k: v for k, v in self.reliability.model_config.items() if "dist" in v}}

    def prior_draws(self, replications: int, seed: int, simulate_cells: Callable | None = None):
        """(true values (replications, parameters), outcomes (replications, cells)) from the prior.

        ``simulate_cells``: a transform of the likelihood cells the data are *simulated* on (the fits
        always see the design's own cells); a test hook for a deliberately wrong model, e.g.
        :func:`negate_covariates`.
        """
        import pymc as pm

        model = self.model if simulate_cells is None else self._build(simulate_cells(self.plan.cells))
        with model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prior = pm.sample_prior_predictive(draws=replications, random_seed=seed)
        truth = np.column_stack([_pick(prior.prior[var].values[0], idx) for _, var, idx in self.parameters])
        y = prior.prior_predictive["correct"].values[0].astype(np.float64)
        return truth, y.reshape(replications, -1)

    def fit_ranks(self, y: np.ndarray, truth: np.ndarray, seed: int) -> tuple[np.ndarray, int, float]:
        """(ranks (parameters,), divergences, seconds) of one fit to outcomes ``y`` (cells,)."""
        import nutpie

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trace = nutpie.sample(self.compiled.with_data(**{OBSERVED: y}), draws=self.draws, tune=self.tune,
                                  chains=self.chains, seed=seed, progress_bar=False, target_accept=self.target_accept,
                                  cores=min(self.chains, os.cpu_count() or 1))
        seconds = time.perf_counter() - start
        post = trace.posterior
        total = self.chains * self.draws
        keep = np.arange(self.n_draws) * (total // self.n_draws)  # evenly spaced over the chains' draws
        ranks = np.empty(len(self.parameters), dtype=np.int64)
        for k, (_, var, idx) in enumerate(self.parameters):
            flat = post[var].values.reshape(total, *post[var].shape[2:])
            ranks[k] = int((_pick(flat[keep], idx) < truth[k]).sum())
        return ranks, int(trace.sample_stats["diverging"].values.sum()), seconds

    def run(self, replications: int, seed: int = 0, simulate_cells: Callable | None = None,
            progress: bool = True) -> SBCResult:
        """``replications`` SBC replications; see :meth:`prior_draws` for ``simulate_cells``."""
        from tqdm.auto import tqdm

        if replications < 1:
            raise InputError(f"replications must be at least 1, got {replications}")
        truth, y = self.prior_draws(replications, seed, simulate_cells)
        ranks = np.empty((replications, len(self.parameters)), dtype=np.int64)
        div = np.zeros(replications, dtype=np.int64)
        secs = np.zeros(replications)
        for r in tqdm(range(replications), desc=f"SBC {self.stage}-call", disable=not progress):
            ranks[r], div[r], secs[r] = self.fit_ranks(y[r], truth[r], seed=seed * 100_003 + r + 1)
        return SBCResult(self.stage, [p[0] for p in self.parameters], ranks, self.n_draws, div, secs,
                         self.compile_seconds, self.describe())


def _pick(values: np.ndarray, index: tuple) -> np.ndarray:
    """``values[..., i, j]`` for the (dim, position) pairs of ``index`` (leading axes kept)."""
    return values[(..., *(i for _, i in index))] if index else values
