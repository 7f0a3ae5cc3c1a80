""":class:`ReliabilityModel`: fit, predict, save and load the hierarchical reliability model.

The parts it assembles can be read alone: :mod:`.config` (priors and sampler settings),
:mod:`.design` (covariates, standardization, coordinates, likelihood cells),
:mod:`.parameterization` (centered or not, per effect), :mod:`.graph` (the PyMC graph and the
linear predictor) and :mod:`.prediction` (fast NumPy posterior prediction).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.io import atomic_path
from bayes_router.errors import InputError
from bayes_router.models.reliability.config import (
    OPTIONS,
    PARAMETERIZATIONS,
    RETIRED_SAMPLER_KEYS,
    STAGES,
    default_chains,
    default_draws,
    resolve_model_config,
    resolve_sampler_config,
)
from bayes_router.models.reliability.design import Design, LikelihoodCells, check_log
from bayes_router.models.reliability.graph import alpha_shift_means, build_graph
from bayes_router.models.reliability.parameterization import (
    Parameterization,
    resolve_parameterizations,
    target_accept,
)
from bayes_router.models.reliability.prediction import (
    POSTERIOR_VARIABLES,
    flatten_posterior,
    p_correct_draws,
    thinned,
)

_FORMAT_VERSION = 1
#: Model families: "v1" (this module), "irt" (:mod:`bayes_router.models.irt`: question difficulty
#: shared by all models, its prior predicted from the question's text).
FAMILIES = OPTIONS["family"][1]


@dataclass(frozen=True)
class FitPlan:
    """Everything a training log fixes before sampling: the design, the likelihood cells, the
    parameterization and the intercept shift (:func:`~.graph.alpha_shift_means`, or None)."""

    design: Design
    cells: LikelihoodCells
    parameterization: Parameterization
    alpha_shift_means: np.ndarray | None


class ReliabilityModel:
    """Hierarchical logistic model of P(correct) for (model, subject, covariates) calls.

    Parameters
    ----------
    stage : "pre" or "post"
        Pre-call (model, subject, question length) or post-call (adds completion
        tokens, the parsed hurdle, confidence and latency where the log holds them).
    model_config : dict, optional
        Overrides of :data:`~.config.DEFAULT_MODEL_CONFIG` (priors, parameterizations), merged
        key by key; a prior given a new ``dist`` takes exactly that distribution's parameters.
    sampler_config : dict, optional
        Overrides of :data:`~.config.DEFAULT_SAMPLER_CONFIG`. Unknown keys are refused by name.

    After :meth:`fit` (or :meth:`load`): ``idata`` (InferenceData), ``models``, ``subjects``,
    ``covariates_used`` (what entered the model, e.g. ``["log_question_chars",
    "completion_tokens", "parsed"]``), ``covariates_dropped`` (name -> reason),
    ``standardization`` (name -> {"mean", "sd"} of the transformed training values) and
    ``metadata`` (the parameterization chosen, sampler settings, train question ids).
    family : "v1" or "irt", optional
        "irt" constructs a :class:`bayes_router.models.irt.model.IRTReliabilityModel` (same API;
        its ``fit`` also takes the question texts). None: ``model_config["family"]["name"]``
        (default "v1"), so a configuration file can choose the family.
    """

    family = "v1"
    #: The posterior variables prediction reads (flattened once, cached by ``_posterior_draws``).
    posterior_variables = POSTERIOR_VARIABLES

    def __new__(cls, stage: str = "pre", model_config: dict | None = None, *args, family: str | None = None,
                **kwargs):
        if family is None:
            family = ((model_config or {}).get("family") or {}).get("name", "v1")
        if family not in FAMILIES:
            raise InputError(f"family must be one of {FAMILIES}, got {family!r}")
        if family == "irt" and cls is ReliabilityModel:
            from bayes_router.models.irt.model import IRTReliabilityModel

            return super().__new__(IRTReliabilityModel)
        return super().__new__(cls)

    def __init__(self, stage: str = "pre", model_config: dict | None = None, sampler_config: dict | None = None,
                 family: str | None = None):
        if stage not in STAGES:
            raise InputError(f"stage must be one of {STAGES}, got {stage!r}")
        self.stage = stage
        self.model_config = resolve_model_config(model_config)
        # what was built, whatever chose it; the IRT family keeps its settings (it reads them)
        irt = self.model_config["family"].get("irt") if self.family == "irt" else None
        self.model_config["family"] = {"name": self.family, **({"irt": irt} if irt is not None else {})}
        self.sampler_config = resolve_sampler_config(sampler_config)
        self.idata = None
        self.design = Design(stage)
        self.metadata: dict = {}
        self._draws_cache: dict | None = None

    # ------------------------------------------------------------ the design
    @property
    def models(self) -> list[str]:
        return self.design.models

    @property
    def subjects(self) -> list[str]:
        return self.design.subjects

    @property
    def covariates_used(self) -> list[str]:
        return self.design.covariates_used

    @property
    def covariates_dropped(self) -> dict[str, str]:
        return self.design.covariates_dropped

    @property
    def standardization(self) -> dict[str, dict[str, float]]:
        return self.design.standardization

    @property
    def slope_covariates(self) -> list[str]:
        """Covariates with a slope (``covariates_used`` minus the ``parsed`` hurdle)."""
        return self.design.slope_covariates

    def design_matrix(self, calls: pd.DataFrame) -> np.ndarray:
        """Standardized covariates of ``calls`` with the training constants, (rows, slope_covariates)."""
        return self.design.matrix(calls)

    def slope_parameterizations(self) -> list[str]:
        """The parameterization of each covariate's slopes, in ``slope_covariates`` order ("auto" resolved)."""
        per = self.metadata.get("slope_parameterization")
        if per is not None:
            return [per[c] for c in self.slope_covariates]
        return [self.parameterization("slope_effects")] * len(self.slope_covariates)

    def parameterization(self, effect: str) -> str:
        """The parameterization the fit used for ``effect`` ("auto" resolved)."""
        return self.metadata.get("parameterization", {}).get(effect, self.model_config[effect]["parameterization"])

    def target_accept(self) -> float:
        """NUTS target acceptance of this fit (:func:`~.parameterization.target_accept`)."""
        chosen = {e: self.parameterization(e) for e in PARAMETERIZATIONS}
        return target_accept(self.sampler_config["target_accept"], chosen, len(self.models))

    # ----------------------------------------------------------------- model
    def plan(self, train_log: pd.DataFrame) -> FitPlan:
        """What ``train_log`` fixes before sampling; changes nothing on this model."""
        design = Design.from_training_log(self.stage, train_log, self.model_config["signal_missing"]["handling"])
        cells = LikelihoodCells.from_training_log(design, train_log, self.sampler_config["length_bin"])
        par = resolve_parameterizations(self.model_config, cells, len(design.models), len(design.subjects),
                                        design.slope_covariates)
        xbar = alpha_shift_means(cells, len(design.models), par.slope_kinds(design.slope_covariates))
        return FitPlan(design, cells, par, xbar)

    def build_model(self, train_log: pd.DataFrame):
        """The PyMC model for ``train_log``. No side effects: a fitted model keeps its posterior,
        coordinates and standardization (use :meth:`plan` to see what the log fixes)."""
        return self._graph(self.plan(train_log))

    def _graph(self, plan: FitPlan):
        return build_graph(plan.design, self.model_config, plan.parameterization, plan.cells, plan.alpha_shift_means)

    def p_correct_model(self, calls: pd.DataFrame):
        """The PyMC graph of this fit evaluated on ``calls`` (seen models and subjects only), with a
        deterministic ``p_correct`` (dims "call"): the reference :meth:`p_correct` is checked against,
        e.g. ``pm.compute_deterministics(rm.idata.posterior, model=rm.p_correct_model(calls))``."""
        self._posterior_draws()
        m_idx, s_idx = self.design.codes(calls)
        if (m_idx < 0).any() or (s_idx < 0).any():
            raise InputError("calls: the PyMC graph covers the models and subjects seen in training only")
        par = Parameterization(dict(self.metadata["parameterization"]), dict(self.metadata["slope_parameterization"]))
        shift = self.metadata.get("alpha_shift_means", "absent")
        if isinstance(shift, str):
            raise InputError("this posterior was saved without the intercept shift; refit it to build its graph")
        rows = LikelihoodCells(m_idx, s_idx, self.design.matrix(calls), np.ones(len(calls)), np.zeros(len(calls)))
        parsed = calls["parsed"].to_numpy(dtype=bool) if self.stage == "post" else None
        return build_graph(self.design, self.model_config, par, rows,
                           None if shift is None else np.asarray(shift, dtype=float), likelihood=False, parsed=parsed)

    # ------------------------------------------------------------------- fit
    def fit(self, train_log: pd.DataFrame, *, sampler: str | None = None, draws: int | None = None,
            tune: int | None = None, chains: int | None = None, seed: int = 0, progress: bool = True):
        """Sample the posterior given ``train_log`` (training questions only); returns InferenceData.

        ``sampler``, ``draws`` (per chain), ``tune`` and ``chains`` override ``sampler_config`` for
        this call; None keeps it. ``sampler``: "nutpie" (default), "pymc", "numpyro" (NUTS) or
        "advi" (mean-field variational approximation; ``draws`` samples from it, one chain; no
        NUTS diagnostics). Draws default to :func:`~.config.default_draws` (4000 in total).
        The result is kept as ``self.idata``; it holds the groups posterior, sample_stats (NUTS),
        observed_data and, when draws x rows is at most ``sampler_config["max_log_likelihood_cells"]``,
        log_likelihood over *all* training calls (0 for unparsed calls in the post stage: the hurdle
        makes them certain), so pre- and post-call fits can be compared by PSIS-LOO on the same rows.
        """
        given = {"sampler": sampler, "draws": draws, "tune": tune, "chains": chains}
        cfg = resolve_sampler_config({**self.sampler_config, **{k: v for k, v in given.items() if v is not None}})
        plan = self.plan(train_log)
        chains = cfg["chains"] or default_chains()
        draws = cfg["draws"] or default_draws(chains)
        accept = target_accept(cfg["target_accept"], plan.parameterization.chosen, len(plan.design.models))
        idata = self._sample(self._graph(plan), cfg, draws, chains, accept, seed, progress)
        self.idata, self.design, self._draws_cache = idata, plan.design, None
        self.metadata = self._plan_metadata(plan)
        self.metadata.update({
            "target_accept": accept if cfg["sampler"] != "advi" else None,
            "sampler": cfg["sampler"], "draws": int(draws), "tune": int(cfg["tune"]), "chains": int(chains),
            "seed": int(seed),
            "train_question_ids": sorted(int(q) for q in pd.unique(train_log["question_id"]))
            if "question_id" in train_log.columns else [],
            "n_train_calls": int(len(train_log)),
        })
        n_cells = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] * len(train_log)
        if n_cells <= cfg["max_log_likelihood_cells"]:
            self._add_log_likelihood(train_log)
        self._write_attrs()
        return self.idata

    def _sample(self, model, cfg: dict, draws: int, chains: int, accept: float, seed: int, progress: bool):
        """Run the sampler; keep only the posterior, sample stats and observed data."""
        import arviz as az
        import pymc as pm

        with model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            if cfg["sampler"] == "advi":
                approx = pm.fit(n=int(cfg["advi_iterations"]), method="advi", random_seed=seed, progressbar=progress)
                idata = approx.sample(draws, random_seed=seed)
            else:
                kwargs = {} if cfg["sampler"] == "nutpie" else {"idata_kwargs": {"log_likelihood": False}}
                idata = pm.sample(
                    draws=draws, tune=int(cfg["tune"]), chains=chains,
                    cores=cfg["cores"] or min(chains, os.cpu_count() or 1), random_seed=seed,
                    nuts_sampler=cfg["sampler"], target_accept=accept, progressbar=progress,
                    compute_convergence_checks=False, **kwargs,
                )
        # PyMC also stores copies of the inputs; a posterior file needs none of them
        return az.InferenceData(**{g: getattr(idata, g) for g in ("posterior", "sample_stats", "observed_data")
                                   if g in idata.groups()})

    @staticmethod
    def _plan_metadata(plan: FitPlan) -> dict:
        par = plan.parameterization
        meta = {"parameterization": dict(par.chosen), "parameterization_evidence": par.evidence,
                "slope_parameterization": dict(par.slopes), "n_likelihood_cells": int(len(plan.cells)),
                "alpha_shift_means": None if plan.alpha_shift_means is None else plan.alpha_shift_means.tolist()}
        if plan.design.stage == "pre":
            meta["length_bin"] = plan.cells.length_bin
        return meta

    def _add_log_likelihood(self, log: pd.DataFrame) -> None:
        """Pointwise log p(correct_i | theta) for every call in ``log``, dims (chain, draw, call)."""
        import xarray as xr

        P = self.p_correct(log).values.astype(np.float64)
        y = log["correct"].to_numpy(dtype=bool)
        with np.errstate(divide="ignore"):
            ll = np.where(y[None, :], np.log(np.clip(P, 1e-300, 1.0)), np.log1p(-np.clip(P, 0.0, 1 - 1e-16)))
        if self.stage == "post":  # hurdle: an unparsed call is wrong with probability 1
            ll[:, ~log["parsed"].to_numpy(dtype=bool)] = 0.0
        n_chain, n_draw = self.idata.posterior.sizes["chain"], self.idata.posterior.sizes["draw"]
        da = xr.DataArray(ll.reshape(n_chain, n_draw, -1), dims=("chain", "draw", "call"),
                          coords={"chain": self.idata.posterior.chain, "draw": self.idata.posterior.draw,
                                  "call": np.arange(len(log))})
        self.idata.add_groups({"log_likelihood": xr.Dataset({"correct": da})})

    def prior_predictive_accuracy(self, train_log: pd.DataFrame, samples: int = 500, seed: int = 0) -> pd.DataFrame:
        """Prior predictive check: accuracy per model implied by the priors alone.

        Draws ``samples`` parameter sets from the priors, simulates ``correct`` for
        every call of ``train_log`` (the post stage keeps the observed parse
        hurdle), and returns a (samples x model) DataFrame of simulated accuracies.
        A fitted model is left as it is.
        """
        return self.prior_predictive(train_log, samples, seed)[0]

    def prior_predictive(self, train_log: pd.DataFrame, samples: int = 500, seed: int = 0,
                         var_names: Sequence[str] = ()) -> tuple[pd.DataFrame, dict]:
        """:meth:`prior_predictive_accuracy` and, from the same prior draws, the draws of the
        parameters ``var_names``: ``(accuracy (samples x model), {name: xarray.DataArray (sample,
        *its dims)})``, e.g. the spreads with the spread of the accuracies they imply."""
        import pymc as pm

        plan = self.plan(train_log)
        with self._graph(plan), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prior = pm.sample_prior_predictive(draws=samples, random_seed=seed, var_names=[*var_names, "correct"])
        y = prior.prior_predictive["correct"].to_numpy().reshape(samples, -1)
        out = {}
        for i, m in enumerate(plan.design.models):
            n_calls = int((train_log["model"].astype(str) == m).sum())  # unparsed calls count as wrong
            out[m] = y[:, plan.cells.model_idx == i].sum(1) / max(n_calls, 1)
        params = {v: prior.prior[v].stack(sample=("chain", "draw")).transpose("sample", ...) for v in var_names}
        return pd.DataFrame(out), params

    # --------------------------------------------------------------- predict
    def _posterior_draws(self) -> dict:
        if self._draws_cache is None:
            if self.idata is None:
                raise InputError("the reliability model is not fitted (call fit() or load())")
            self._draws_cache = flatten_posterior(self.idata.posterior, self.posterior_variables)
        return self._draws_cache

    def p_correct(self, calls: pd.DataFrame, n_draws: int | None = None):
        """Posterior draws of P(correct) for each call: ``xarray.DataArray`` (draw, call), float32.

        ``calls`` have the call-log columns (model, subject, question_chars; the post
        stage also the post-call columns it used: completion_tokens, parsed and, if
        used, confidence/latency_s). ``correct`` is never read. ``n_draws`` thins the
        posterior to that many evenly spaced draws (all if None). Coordinates: ``draw``,
        the index of each draw in the flattened (chain, draw) posterior; ``call``, the
        index of ``calls``. Unseen models and subjects get population draws
        (:mod:`~.prediction`). ``.values`` is the NumPy array.
        """
        import xarray as xr

        check_log(calls, need_correct=False)
        d = self._posterior_draws()
        sel = thinned(d["alpha"].shape[0], n_draws)
        if self.stage == "post" and "parsed" not in calls.columns:
            raise InputError("calls: column 'parsed' is needed by the post-call model but missing")
        P = p_correct_draws(self.design, d, sel, calls, self.slope_parameterizations())
        return xr.DataArray(P, dims=("draw", "call"), coords={"draw": sel, "call": calls.index.to_numpy()},
                            name="p_correct")

    def p_correct_mean(self, calls: pd.DataFrame, **kwargs) -> np.ndarray:
        """Posterior-mean P(correct) of each call, float64 (rows,); ``kwargs`` as :meth:`p_correct`.
        For one binary outcome the posterior predictive probability *is* this mean, and expected
        utility is linear in it: every decision rule that needs one number per call uses this."""
        if len(calls) == 0:
            return np.zeros(0)
        return self.p_correct(calls, **kwargs).values.astype(np.float64).mean(axis=0)

    # ------------------------------------------------------------- save/load
    def _write_attrs(self) -> None:
        self.idata.attrs.update({
            "bayes_router_reliability": json.dumps({
                "format_version": _FORMAT_VERSION,
                "stage": self.stage,
                "model_config": self.model_config,
                "sampler_config": self.sampler_config,
                "models": self.models,
                "subjects": self.subjects,
                "covariates_used": self.covariates_used,
                "covariates_dropped": self.covariates_dropped,
                "standardization": self.standardization,
                "metadata": self.metadata,
            }),
            # top level too, so an evaluation can read the split without parsing the configuration
            "stage": self.stage,
            "train_question_ids": json.dumps(self.metadata.get("train_question_ids", [])),
            "test_question_ids": json.dumps(self.metadata.get("test_question_ids", [])),
        })

    def save(self, path: str | os.PathLike) -> Path:
        """Write the posterior and configuration to NetCDF (atomically); returns the path."""
        if self.idata is None:
            raise InputError("nothing to save: the reliability model is not fitted")
        self._write_attrs()
        path = Path(path)
        with atomic_path(path) as tmp:
            self.idata.to_netcdf(str(tmp))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReliabilityModel:
        """Read a model written by :meth:`save`."""
        import arviz as az

        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: no such posterior file")
        try:
            idata = az.from_netcdf(str(path))
            meta = json.loads(idata.attrs["bayes_router_reliability"])
        except KeyError:
            raise InputError(f"{path}: not a bayes-router reliability posterior (no configuration attribute)") from None
        except Exception as exc:
            raise InputError(f"{path}: not a readable NetCDF posterior ({exc.__class__.__name__}: {exc})") from None
        if meta.get("family", "v1") == "irt":
            from bayes_router.models.irt.model import IRTReliabilityModel

            return IRTReliabilityModel.from_idata(idata, meta)
        sampler_config = {k: v for k, v in meta["sampler_config"].items() if k not in RETIRED_SAMPLER_KEYS}
        rm = cls(stage=meta["stage"], model_config=meta["model_config"], sampler_config=sampler_config)
        rm.idata = idata.load() if hasattr(idata, "load") else idata
        rm.design = Design(meta["stage"], list(meta["models"]), list(meta["subjects"]),
                           list(meta["covariates_used"]), dict(meta["covariates_dropped"]),
                           {k: dict(v) for k, v in meta["standardization"].items()})
        rm.metadata = dict(meta.get("metadata", {}))
        return rm

    def __repr__(self) -> str:
        state = f"{len(self.models)} models, {len(self.subjects)} subjects" if self.idata is not None else "unfitted"
        return f"ReliabilityModel(stage={self.stage!r}, {state}, covariates={self.covariates_used})"


def check_fitted_on(model, models: Sequence[str], train_question_ids, stage: str | None = None) -> None:
    """Refuse (InputError) a posterior fitted on another stage, pool or set of train questions.

    The one check behind every reuse of a saved posterior (``evaluate.prepare``, the
    notebooks). Stand-ins without ``models`` or ``metadata`` pass the parts they lack.
    """
    label = stage or getattr(model, "stage", "reliability")
    if stage is not None and getattr(model, "stage", stage) != stage:
        raise InputError(f"the posterior is a {model.stage}-call model, not a {stage}-call one")
    fitted_models = getattr(model, "models", None)
    if fitted_models and sorted(fitted_models) != sorted(models):
        raise InputError(f"the {label}-call posterior was fitted on the models {sorted(fitted_models)}, "
                         f"not on this pool {sorted(models)}; refit it or leave it out")
    fitted_on = getattr(model, "metadata", {}).get("train_question_ids")
    wanted = sorted(int(q) for q in train_question_ids)
    if fitted_on is not None and sorted(int(q) for q in fitted_on) != wanted:
        raise InputError(
            f"the {label}-call posterior was fitted on other train questions than this split "
            f"({len(fitted_on)} vs {len(wanted)}); refit it with the same models, number of questions, "
            "test fraction and seed, or leave it out"
        )


def fit_reliability(train_log: pd.DataFrame, stage: str = "pre", model_config: dict | None = None,
                    sampler_config: dict | None = None, **fit_kwargs) -> ReliabilityModel:
    """Construct a :class:`ReliabilityModel` with these configurations and fit it on ``train_log``."""
    rm = ReliabilityModel(stage=stage, model_config=model_config, sampler_config=sampler_config)
    rm.fit(train_log, **fit_kwargs)
    return rm
