"""What every notebook does the same way: its parameters, its posteriors and its results file.

The notebooks in ``notebooks/`` are thin: each cell calls the library. This module
holds the steps they share, so that each is written (and tested) once:

* :data:`COMMON_PARAMETERS` and :func:`check_parameters`: the names and types of the
  parameters every notebook's ``parameters`` cell declares (papermill overrides them);
  :func:`models_of` and :func:`pool_label` read ``MODELS`` (a pool name of
  ``bayes_router/pools.yaml`` or a comma-separated string of models);
* :func:`load_or_fit_posteriors`: the reliability posteriors a notebook needs, reused
  from ``bayes-router fit`` when that fit was on the same pool and split
  (:func:`~bayes_router.models.reliability.check_fitted_on`), else fitted on the train
  questions the one way the routing context fits them;
* :func:`posterior_mean_p_correct`: posterior-mean P(correct) per call of a fitted model;
* :func:`write_results`: a notebook's results JSON with its one convergence verdict,
  ``diagnostics_pass``, which :mod:`bayes_router.study.report` aggregates.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.io import jsonable, write_json
from bayes_router.data.pools import pool_names, resolve_models
from bayes_router.errors import InputError

#: Parameter name -> (allowed types, meaning). Every notebook declares these (DRAWS
#: where it samples a posterior) with these types, so the Makefile passes them alike.
COMMON_PARAMETERS: dict[str, tuple[tuple[type, ...], str]] = {
    "LOG": ((str,), "the imported call log (question texts beside it)"),
    "FIGURES_DIR": ((str,), "where figures go (PNG and SVG)"),
    "RESULTS_DIR": ((str,), "where the notebook's results JSON goes"),
    "QUICK": ((bool,), "small sizes (few questions, few draws) for a smoke run"),
    "SEED": ((int,), "seed of every question sample, split and fit"),
    "MODELS": ((str, type(None)), "a pool name of pools.yaml or comma-separated models, cheapest first"),
    "QUESTIONS": ((int, type(None)), "questions sampled among those every model answered (None: all)"),
    "DRAWS": ((int, type(None)), "posterior draws per chain (None: the model's default)"),
}
#: Notebooks that sample no posterior declare every common parameter but DRAWS.
SAMPLING_PARAMETER = "DRAWS"

#: The verdict key of a results file: True when every convergence check passed.
VERDICT_KEY = "diagnostics_pass"


# --------------------------------------------------------------------------- parameters


def check_parameters(params: Mapping[str, object], sampling: bool = True) -> None:
    """Refuse (InputError, naming the parameter) a missing common parameter or one of the wrong type.

    ``params``: name -> value, e.g. ``{"QUICK": QUICK, ...}`` or a notebook's globals().
    ``sampling``: whether the notebook samples a posterior (then DRAWS is required too).
    """
    for name, (types, meaning) in COMMON_PARAMETERS.items():
        if name == SAMPLING_PARAMETER and not sampling:
            continue
        if name not in params:
            raise InputError(f"parameter {name} is missing ({meaning})")
        value = params[name]
        # bool is an int to Python; SEED/QUESTIONS/DRAWS must be real integers
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            allowed = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise InputError(f"parameter {name} must be {allowed}, got {value!r} ({meaning})")


def models_of(models: str | Sequence[str] | None, log: pd.DataFrame | None = None) -> list[str]:
    """The models named by ``MODELS``: a pool name, a comma-separated string, or None for
    every model in ``log`` (sorted by name)."""
    if models is None:
        if log is None:
            raise InputError("MODELS is None: give a pool name or models, or a log to take every model from")
        return sorted(log["model"].astype(str).unique())
    return resolve_models(models)


def pool_label(models: str | None, pool: str | None = None) -> str:
    """The name that figures and results of a pool are named after: ``pool`` if given,
    else ``models`` when it is a pool name of pools.yaml."""
    if pool:
        return str(pool)
    if isinstance(models, str) and models.strip() in pool_names():
        return models.strip()
    raise InputError(f"MODELS {models!r} is not a pool name: give POOL, the name to label its figures and results")


def sampler_config(sampler: str | None, draws: int | None, tune: int | None, chains: int | None) -> dict:
    """The sampler settings of a notebook's reliability fits as one ``sampler_config`` dict.

    ``draws`` per chain (None: the model's default total shared by the chains, resolved
    when the setup is prepared); ``chains`` None: the machine's default
    (:func:`~bayes_router.models.reliability.default_chains`); ``sampler``/``tune`` None:
    the evaluation's defaults.
    """
    from bayes_router.models.reliability import default_chains

    config = {"sampler": sampler, "draws": draws, "tune": tune, "chains": chains or default_chains()}
    return {k: v for k, v in config.items() if v is not None}


# --------------------------------------------------------------------------- posteriors


@dataclass
class Posteriors:
    """The reliability posteriors of one notebook, by stage ("pre", "post").

    ``models``: stage -> fitted ReliabilityModel; ``reused``: stage -> path of a reused
    posterior; ``fit_seconds``: stage -> wall time of the fit in seconds (the saved fit's
    own time when reused; None if it did not record one); ``not_reused``: stage -> why a
    given posterior was refused.
    """

    models: dict = field(default_factory=dict)
    reused: dict[str, str] = field(default_factory=dict)
    fit_seconds: dict[str, float | None] = field(default_factory=dict)
    not_reused: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, stage: str):
        return self.models[stage]

    def items(self):
        return self.models.items()

    def convergence(self) -> dict:
        """stage -> :class:`~bayes_router.models.diagnostics.ConvergenceReport` of each fit
        (an ADVI fit's report fails: it gives no convergence guarantee)."""
        from bayes_router.models.diagnostics import convergence_report

        return {s: convergence_report(rm.idata) for s, rm in self.models.items() if rm.idata is not None}

    def describe(self) -> str:
        """One line per stage: reused (from where) or fitted (in how many seconds)."""
        lines = []
        for stage, rm in self.models.items():
            how = f"reused {self.reused[stage]}" if stage in self.reused else "fitted on the train questions"
            if stage in self.not_reused:
                how += f" (the given posterior was not reused: {self.not_reused[stage]})"
            secs = self.fit_seconds.get(stage)
            lines.append(f"{stage}: {how}; fit {'?' if secs is None else f'{secs:.1f}'} s; "
                         f"covariates used {rm.covariates_used}")
        return "\n".join(lines)


def load_or_fit_posteriors(setup, paths: Mapping[str, str | os.PathLike | None] | None = None,
                           stages: Sequence[str] = ("pre", "post")) -> Posteriors:
    """The reliability posteriors of ``stages`` on ``setup``'s train questions.

    ``setup``: an :class:`~bayes_router.study.evaluate.EvaluationSetup` (its pool, split
    and sampler settings). ``paths``: stage -> a posterior saved by ``bayes-router fit``
    (None or a missing file: none given). A given posterior is reused when it was fitted
    on this stage, pool and train questions (``check_fitted_on``); otherwise the stage is
    fitted by the setup's routing context, the same fit the policies would make. Either
    way the model is set on the context, so every policy shares it.
    """
    from bayes_router.models.reliability import ReliabilityModel, check_fitted_on

    paths = dict(paths or {})
    unknown = sorted(set(paths) - set(stages))
    if unknown:
        raise InputError(f"posteriors given for stages {unknown} that are not asked for ({list(stages)})")
    out = Posteriors()
    ctx = setup.ctx
    for stage in stages:
        path = paths.get(stage)
        if path and Path(path).exists():
            rm = ReliabilityModel.load(path)
            try:
                check_fitted_on(rm, setup.models, setup.train_question_ids, stage)
            except InputError as exc:
                out.not_reused[stage] = str(exc)
            else:
                ctx.set_reliability(stage, rm)
                out.reused[stage] = str(path)
                out.fit_seconds[stage] = rm.metadata.get("fit_seconds")
        if stage not in out.reused:
            t0 = time.perf_counter()
            with warnings.catch_warnings():  # sampler chatter; convergence is judged by its report
                warnings.simplefilter("ignore")
                ctx.reliability(stage)
            out.fit_seconds[stage] = time.perf_counter() - t0
        out.models[stage] = ctx.reliability(stage)
    return out


def posterior_mean_p_correct(model, calls: pd.DataFrame) -> np.ndarray:
    """Posterior-mean P(correct) of each call (shape (calls,), aligned with ``calls``) under
    a fitted ReliabilityModel (its ``p_correct`` draws, a (draw, call) DataArray, averaged over
    draws): the one place the notebooks read its predictions."""
    return np.asarray(model.p_correct(calls).mean("draw")).astype(float)


# --------------------------------------------------------------------------- results


def diagnostics_fields(diagnostics: Mapping[str, object]) -> dict:
    """``{"diagnostics_pass": bool, "diagnostics": {name: report as a dict}}`` for convergence
    reports by name (ConvergenceReport objects or their ``to_dict()``).

    The verdict passes when every report passed; a report without a ``passed`` verdict
    (e.g. an ADVI fit, which gives no convergence guarantee) fails it.
    """
    reports = {str(k): (v.to_dict() if hasattr(v, "to_dict") else dict(v)) for k, v in diagnostics.items()}
    if not reports:
        raise InputError("diagnostics: no convergence report given (leave diagnostics out instead)")
    return {VERDICT_KEY: all(r.get("passed") is True for r in reports.values()), "diagnostics": reports}


def write_results(results_dir: str | os.PathLike, name: str, payload: Mapping, *, quick: bool, seed: int,
                  diagnostics: Mapping[str, object] | None = None) -> Path:
    """Write a notebook's results to ``results_dir/name.json`` (atomically) and return the path.

    ``payload``: the notebook's headline numbers (made JSON-safe by :func:`jsonable`).
    ``quick``, ``seed``: the run's mode and seed, recorded as ``quick`` and ``seed``.
    ``diagnostics``: name -> convergence report of each posterior the results rest on;
    when given, the file carries the one verdict ``diagnostics_pass`` and the reports
    under ``diagnostics`` (:func:`diagnostics_fields`).
    """
    reserved = {VERDICT_KEY} | ({"diagnostics"} if diagnostics is not None else set())
    clash = sorted(reserved & set(payload))
    if clash:
        raise InputError(f"results of {name}: the payload may not set {clash} (write_results writes them)")
    run = {"quick": bool(quick), "seed": int(seed)}
    differ = {k: payload[k] for k in run if k in payload and payload[k] != run[k]}
    if differ:
        raise InputError(f"results of {name}: the payload says {differ}, the run {run}")
    body = {"notebook": name, **run, **payload}
    if diagnostics is not None:
        body.update(diagnostics_fields(diagnostics))
    return write_json(Path(results_dir) / f"{name}.json", jsonable(body))
