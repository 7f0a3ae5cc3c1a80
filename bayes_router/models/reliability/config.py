"""The reliability model's configuration: priors and parameterizations (``model_config``),
sampler settings (``sampler_config``), their validation and the PyMC prior they build.

Every key changes what is built or how it samples; an unknown key is refused by name
with the valid ones, so a typo (``target_acept``) cannot silently fall back to a default.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path

from bayes_router.errors import InputError

#: Priors (logit scale; covariates are standardized, so slopes are per training SD). ``dist`` is
#: one of :data:`PRIOR_FAMILIES` for the prior's kind (a location or a scale).
DEFAULT_MODEL_CONFIG: dict = {
    # The spreads that rest on the models (3 levels in the 3-model pools) are zero-avoiding: Gamma(2, rate),
    # density rising linearly from 0 (Chung et al. 2013), with the same mean as the half-normals they
    # replace (0.8 and 0.4), so only the region next to 0 changes. A half-normal put its mode at 0, where
    # a spread from 3 levels cannot be told from 0 by the data, and the sampler met a funnel there (trio,
    # pre stage, 2800 train questions, seed 2: 1 divergent transition; with these priors none, and the
    # bulk ESS of sigma_slope 1158 -> 1850). Their prior predictive: `bayes_router.models.prior_checks`.
    "mu_alpha": {"dist": "Normal", "mu": 0.0, "sigma": 1.5},  # population mean intercept
    "sigma_alpha": {"dist": "Gamma", "alpha": 2.0, "beta": 2.5},  # between-model spread of intercepts
    "sigma_subject": {"dist": "HalfNormal", "sigma": 1.0},  # spread of subject effects (14 levels, far from 0)
    "sigma_interaction": {"dist": "Gamma", "alpha": 2.0, "beta": 5.0},  # spread of model x subject deviations
    "mu_slope": {"dist": "Normal", "mu": 0.0, "sigma": 1.0},  # population mean slope, per covariate
    "sigma_slope": {"dist": "Gamma", "alpha": 2.0, "beta": 5.0},  # between-model spread of slopes
    # per-model intercepts alpha. Measured on the trio x 4000 questions, post stage, nutpie:
    # non-centered alpha: min bulk ESS 90 (mu_alpha); centered alpha: mu_alpha ESS 1269.
    "model_effects": {"parameterization": "centered"},
    # Measured on the trio x 4000 questions, post stage, nutpie, 2 x 1000 draws (seed 0):
    # non-centered subject effects: sigma_subject bulk ESS 372; centered: 3005 (600 calls per subject
    # pin each effect). Slopes with iid non-centered innovations: mu_slope ESS 451 (tail 216),
    # sigma_slope 322, 3 divergences; centered: 57 divergences; zero-sum innovations over the
    # models: mu_slope 1858, sigma_slope 462, no divergence.
    "subject_effects": {"parameterization": "centered"},
    # "auto": centered when the data pin every level more tightly than the levels spread (see
    # choose_parameterization), else non-centered (zero-sum innovations for the slopes). Measured on the
    # whole pool (24 models x 12,032 questions, pre stage, 2 x 300 draws): non-centered interactions and
    # slopes left sigma_interaction and sigma_slope at bulk ESS 242 and 206; centered: 1076 and 549.
    "interaction_effects": {"parameterization": "auto"},
    "slope_effects": {"parameterization": "auto"},
    # a confidence signal (stated confidence, mean token probability, decisiveness) missing on some training
    # calls: "indicator" models it as missing (training mean plus a pooled per-model indicator slope; see
    # design.SIGNALS); "drop" leaves the signal out of the model
    "signal_missing": {"handling": "indicator"},
    # "v1": this package's model; "irt": bayes_router.models.irt (question difficulty shared by all models,
    # its prior from the question's text); a configuration file can choose it for evaluate, and give the
    # IRT family's settings under "irt" (e.g. {"name": "irt", "irt": {"unanswerable": true}})
    "family": {"name": "v1"},
}

#: The prior of each hyperparameter is a location (any real) or a scale (positive).
PRIOR_KINDS = {"mu_alpha": "location", "sigma_alpha": "scale", "sigma_subject": "scale",
               "sigma_interaction": "scale", "mu_slope": "location", "sigma_slope": "scale"}
#: kind -> PyMC distribution -> its parameters (all required).
PRIOR_FAMILIES = {
    "location": {"Normal": ("mu", "sigma"), "StudentT": ("nu", "mu", "sigma")},
    "scale": {"HalfNormal": ("sigma",), "HalfStudentT": ("nu", "sigma"), "Exponential": ("lam",),
              "Gamma": ("alpha", "beta")},
}
_POSITIVE = {"sigma", "nu", "lam", "alpha", "beta"}

#: The parameterizations each effect accepts (zero-sum innovations exist for the slopes only).
PARAMETERIZATIONS = {"model_effects": ("centered", "non-centered"),
                     "subject_effects": ("centered", "non-centered"),
                     "interaction_effects": ("auto", "centered", "non-centered"),
                     "slope_effects": ("auto", "centered", "non-centered", "zero-sum")}
#: Options that are not priors: key -> (its one setting, the values it takes).
OPTIONS = {**{key: ("parameterization", kinds) for key, kinds in PARAMETERIZATIONS.items()},
           "signal_missing": ("handling", ("indicator", "drop")),
           "family": ("name", ("v1", "irt"))}

SAMPLERS = ("nutpie", "pymc", "numpyro", "advi")
STAGES = ("pre", "post")

#: Sampler settings; arguments of :meth:`ReliabilityModel.fit` override them per call.
DEFAULT_SAMPLER_CONFIG: dict = {
    "sampler": "nutpie",  # NUTS via nutpie, PyMC or NumPyro; or "advi" (mean-field, approximate)
    "draws": None,  # per chain; None: DEFAULT_TOTAL_DRAWS shared by the chains (default_draws)
    "tune": 1000,  # tuning steps per chain
    "chains": None,  # None: 4 where the machine has >= 4 cores, else 2 (default_chains)
    "cores": None,  # processes sampling chains in parallel; None: min(chains, CPU count)
    # None: 0.95 when an effect is non-centered (0.9 left a divergence in the 3-model sigma_alpha funnel,
    # trio, 1000 q; 0.98 for pools of <= FEW_LEVELS models), 0.85 when every effect is centered (no funnel
    # to resolve; whole pool, post stage: 15 leapfrog steps per draw instead of 31, 305 s instead of 578 s,
    # same ESS)
    "target_accept": None,
    # draws x training calls above which the pointwise log-likelihood (PSIS-LOO) is not stored: at 60
    # million float64 cells it takes 480 MB in memory and on disk
    "max_log_likelihood_cells": 60_000_000,
    "advi_iterations": 30_000,  # optimization steps of ADVI (sampler "advi" only)
    # pre stage: None = exact sufficient statistics (calls with identical covariates share a binomial
    # cell); a width on the standardized scale (e.g. 0.025) rounds the covariates to that grid first,
    # fewer cells for a faster gradient at the price of an approximation (recorded in the metadata)
    "length_bin": None,
}
#: Options of earlier versions that no longer exist; a saved posterior that names them still loads.
RETIRED_SAMPLER_KEYS = ("nutpie_low_rank",)

#: Posterior draws in total across chains when none are asked for: PyMC's own default
#: total (4 chains x 1000). With 2 chains, 2 x 1000 left the 3-model pools' slope spread
#: (``sigma_slope``, 3 levels) at bulk ESS 251-500 over seeds 0-3 (trio, post stage); 2 x 2000: 514-797.
DEFAULT_TOTAL_DRAWS = 4000


def default_chains() -> int:
    """4 chains where the machine has at least 4 cores, else 2."""
    return 4 if (os.cpu_count() or 1) >= 4 else 2


def default_draws(chains: int) -> int:
    """Draws per chain when none are given: :data:`DEFAULT_TOTAL_DRAWS` shared by ``chains``."""
    return -(-DEFAULT_TOTAL_DRAWS // max(int(chains), 1))


def _unknown(what: str, key, valid) -> InputError:
    near = difflib.get_close_matches(str(key), list(valid), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return InputError(f"{what}: unknown key {key!r}{hint}; valid keys: {sorted(valid)}")


def _prior_spec(name: str, given: dict) -> dict:
    """One prior's specification: a new ``dist`` takes exactly its own parameters, otherwise the
    given parameters are merged into the default's."""
    default = DEFAULT_MODEL_CONFIG[name]
    spec = dict(given) if given.get("dist", default["dist"]) != default["dist"] else {**default, **given}
    families = PRIOR_FAMILIES[PRIOR_KINDS[name]]
    if spec["dist"] not in families:
        raise InputError(f"model_config[{name!r}]: dist must be one of {sorted(families)} for a "
                         f"{PRIOR_KINDS[name]} prior, got {spec['dist']!r}")
    params = families[spec["dist"]]
    missing = [p for p in params if p not in spec]
    extra = sorted(set(spec) - set(params) - {"dist"})
    if missing or extra:
        raise InputError(f"model_config[{name!r}]: {spec['dist']} takes {list(params)}; "
                         + (f"missing {missing}" if missing else f"unknown {extra}"))
    for p in params:
        value = spec[p]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (p in _POSITIVE and not value > 0):
            raise InputError(f"model_config[{name!r}]: {p} must be a {'positive ' if p in _POSITIVE else ''}"
                             f"number, got {value!r}")
    return spec


def resolve_model_config(overrides: dict | None) -> dict:
    """:data:`DEFAULT_MODEL_CONFIG` with ``overrides`` applied and checked (InputError names the key)."""
    config = copy.deepcopy(DEFAULT_MODEL_CONFIG)
    for key, given in (overrides or {}).items():
        if key not in config:
            raise _unknown("model_config", key, config)
        if not isinstance(given, dict):
            raise InputError(f"model_config[{key!r}] must be a mapping, got {given!r}")
        if key in PRIOR_KINDS:
            config[key] = _prior_spec(key, given)
            continue
        setting, valid = OPTIONS[key]
        if key == "family" and "irt" in given:  # the IRT family's own settings (models.irt.config)
            from bayes_router.models.irt.config import resolve_irt_config

            resolve_irt_config(given["irt"])  # checked here, so a bad setting fails before any fit
            given = dict(given)
            config[key]["irt"] = dict(given.pop("irt"))
        extra = sorted(set(given) - {setting})
        if extra:
            raise InputError(f"model_config[{key!r}]: unknown {extra}; it takes [{setting!r}]")
        config[key] = {**config[key], **given}
        if config[key][setting] not in valid:
            raise InputError(f"model_config: {key} {setting} must be one of {valid}, got {config[key][setting]!r}")
    return config


def _check_number(key: str, value, low: float, integer: bool, open_low: bool = False, high: float | None = None):
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    ok = ok and (value > low if open_low else value >= low) and (high is None or value < high)
    if not ok:
        bound = f"> {low}" if open_low else f">= {low}"
        raise InputError(f"sampler_config[{key!r}] must be {'an integer' if integer else 'a number'} {bound}"
                         + (f" and < {high}" if high is not None else "") + f", got {value!r}")


def resolve_sampler_config(overrides: dict | None) -> dict:
    """:data:`DEFAULT_SAMPLER_CONFIG` with ``overrides`` applied and checked (InputError names the key).
    A ``None`` value keeps the default's meaning (e.g. ``chains=None``: :func:`default_chains`)."""
    config = dict(DEFAULT_SAMPLER_CONFIG)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise _unknown("sampler_config", key, config)
        config[key] = value
    if config["sampler"] not in SAMPLERS:
        raise InputError(f"sampler_config['sampler'] must be one of {SAMPLERS}, got {config['sampler']!r}")
    for key, low, integer, open_low, high in (("draws", 1, True, False, None), ("chains", 1, True, False, None),
                                              ("cores", 1, True, False, None), ("tune", 0, True, False, None),
                                              ("target_accept", 0, False, True, 1.0),
                                              ("max_log_likelihood_cells", 0, True, False, None),
                                              ("advi_iterations", 1, True, False, None),
                                              ("length_bin", 0, False, True, None)):
        value = config[key]
        if value is None and key in ("draws", "chains", "cores", "target_accept", "length_bin"):
            continue
        _check_number(key, value, low, integer, open_low, high)
    return config


def prior(name: str, spec: dict, dims=None):
    """The PyMC random variable ``name`` with the prior ``spec`` (``{"dist": ..., params}``)."""
    import pymc as pm

    params = PRIOR_FAMILIES[PRIOR_KINDS[name]][spec["dist"]]
    return getattr(pm, spec["dist"])(name, **{p: spec[p] for p in params}, dims=dims)


def read_config_file(path: str | os.PathLike) -> tuple[dict, dict]:
    """``(model_config, sampler_config)`` from a YAML or JSON file with those two (optional) sections.

    The sections are validated here, so a typo in the file is refused before any data is read.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such configuration file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML or JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with model_config and/or sampler_config")
    extra = sorted(set(data) - {"model_config", "sampler_config"})
    if extra:
        raise InputError(f"{path}: unknown section(s) {extra}; valid: ['model_config', 'sampler_config']")
    model_config, sampler_config = data.get("model_config") or {}, data.get("sampler_config") or {}
    for what, section, check in (("model_config", model_config, resolve_model_config),
                                 ("sampler_config", sampler_config, resolve_sampler_config)):
        if not isinstance(section, dict):
            raise InputError(f"{path}: {what} must be a mapping")
        try:
            check(section)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    return model_config, sampler_config
