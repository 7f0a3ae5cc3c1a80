"""The reliability model's configuration is honest: every key of model_config and sampler_config
changes what is built or how it samples, unknown keys are refused by name, and the options reach
the fit through RoutingContext, evaluate's prepare and the CLI's --config (SIMULATED logs)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from bayes_router.data.simulate import simulate_call_log
from bayes_router.errors import InputError
from bayes_router.models.reliability import (
    DEFAULT_MODEL_CONFIG,
    DEFAULT_SAMPLER_CONFIG,
    ReliabilityModel,
    read_config_file,
)


@functools.cache
def small_log():
    """SIMULATED: 3 models x 40 questions."""
    log, _, _ = simulate_call_log(n_questions=40, difficulty_sd=0.0, tok_shift=0.6, seed=3)
    return log


def _prior_logp(model, name: str, value: float) -> float:
    import pymc as pm

    rv = model[name]
    return float(pm.logp(rv, np.full(rv.shape.eval(), value)).sum().eval())


#: One override per model_config key and what it must change in the built graph.
PRIOR_OVERRIDES = {
    "mu_alpha": {"sigma": 3.0},
    "sigma_alpha": {"beta": 1.0},
    "sigma_subject": {"dist": "HalfStudentT", "nu": 3.0, "sigma": 1.0},
    "sigma_interaction": {"dist": "Exponential", "lam": 2.0},
    "mu_slope": {"dist": "StudentT", "nu": 4.0, "mu": 0.0, "sigma": 1.0},
    "sigma_slope": {"dist": "HalfNormal", "sigma": 0.5},
}
#: effect -> (override, a variable only the override's graph has)
PARAMETERIZATION_OVERRIDES = {
    "model_effects": ("non-centered", "z_alpha"),
    "subject_effects": ("non-centered", "z_beta"),
    "interaction_effects": ("centered", None),  # gamma itself is sampled: no z_gamma
    "slope_effects": ("centered", "slope"),  # the default's slopes are zero-sum innovations (3 models)
}


def test_every_model_config_key_is_tested():
    # "family" (the IRT model) is tested in test_irt.py
    assert set(PRIOR_OVERRIDES) | set(PARAMETERIZATION_OVERRIDES) | {"signal_missing", "family"} \
        == set(DEFAULT_MODEL_CONFIG)


def test_signal_missing_drop_changes_the_graph():
    log = small_log().copy()  # SIMULATED, with a stated confidence missing on some parsed calls
    log["confidence"] = np.linspace(0.3, 1.0, len(log))
    log.loc[log.index[log["parsed"]][:5], "confidence"] = np.nan
    default = ReliabilityModel("post").build_model(log)
    dropped = ReliabilityModel("post", model_config={"signal_missing": {"handling": "drop"}}).build_model(log)
    assert {"confidence", "confidence_missing"} <= set(default.coords["covariate"])
    assert "confidence" not in dropped.coords["covariate"]
    with pytest.raises(InputError, match="signal_missing handling must be one of"):
        ReliabilityModel("post", model_config={"signal_missing": {"handling": "zero"}})


@pytest.mark.parametrize("name", sorted(PRIOR_OVERRIDES))
def test_each_prior_and_its_dist_change_the_graph(name):
    log = small_log()
    default = ReliabilityModel("post").build_model(log)
    changed = ReliabilityModel("post", model_config={name: PRIOR_OVERRIDES[name]}).build_model(log)
    dist = {**DEFAULT_MODEL_CONFIG[name], **PRIOR_OVERRIDES[name]}["dist"]
    assert dist.lower() in type(changed[name].owner.op).__name__.lower()
    value = 0.7  # inside every support
    assert _prior_logp(changed, name, value) != pytest.approx(_prior_logp(default, name, value), abs=1e-6)


@pytest.mark.parametrize("effect", sorted(PARAMETERIZATION_OVERRIDES))
def test_each_parameterization_changes_the_graph(effect):
    log = small_log()
    how, marker = PARAMETERIZATION_OVERRIDES[effect]
    default = ReliabilityModel("post").build_model(log)
    changed = ReliabilityModel("post", model_config={effect: {"parameterization": how}}).build_model(log)
    names, default_names = {v.name for v in changed.free_RVs}, {v.name for v in default.free_RVs}
    assert names != default_names
    if marker:
        assert marker in names and marker not in default_names
    else:
        assert "gamma" in names and "z_gamma" not in names and "z_gamma" in default_names


def test_bad_model_config_is_refused_by_name():
    with pytest.raises(InputError, match=r"unknown key 'mu_alfa' \(did you mean 'mu_alpha'\?\).*valid keys"):
        ReliabilityModel("pre", model_config={"mu_alfa": {"sigma": 1}})
    with pytest.raises(InputError, match=r"StudentT takes \['nu', 'mu', 'sigma'\]; missing \['nu'\]"):
        ReliabilityModel("pre", model_config={"mu_alpha": {"dist": "StudentT", "mu": 0, "sigma": 1}})
    with pytest.raises(InputError, match="dist must be one of .*HalfNormal.* for a scale prior"):
        ReliabilityModel("pre", model_config={"sigma_alpha": {"dist": "Normal", "mu": 0, "sigma": 1}})
    with pytest.raises(InputError, match=r"HalfNormal takes \['sigma'\]; unknown \['mu'\]"):
        ReliabilityModel("pre", model_config={"sigma_subject": {"mu": 1.0}})
    with pytest.raises(InputError, match=r"Gamma takes \['alpha', 'beta'\]; unknown \['sigma'\]"):
        ReliabilityModel("pre", model_config={"sigma_slope": {"sigma": 0.5}})
    with pytest.raises(InputError, match="sigma must be a positive number"):
        ReliabilityModel("pre", model_config={"sigma_slope": {"dist": "HalfNormal", "sigma": -1}})
    with pytest.raises(InputError, match="beta must be a positive number"):
        ReliabilityModel("pre", model_config={"sigma_slope": {"beta": 0}})
    with pytest.raises(InputError, match=r"unknown \['dist'\]; it takes \['parameterization'\]"):
        ReliabilityModel("pre", model_config={"model_effects": {"dist": "Normal"}})


def test_unknown_sampler_key_is_refused_with_the_valid_ones():
    with pytest.raises(InputError, match=r"unknown key 'target_acept' \(did you mean 'target_accept'\?\); "
                                         r"valid keys: \[.*'target_accept'"):
        ReliabilityModel("pre", sampler_config={"target_acept": 0.9})
    for key, bad in (("sampler", "hmc"), ("draws", 0), ("target_accept", 1.0), ("length_bin", -0.1),
                     ("advi_iterations", 0), ("max_log_likelihood_cells", -1), ("chains", 1.5)):
        with pytest.raises(InputError, match=key):
            ReliabilityModel("pre", sampler_config={key: bad})


class _Stop(Exception):
    """Raised by the stand-in sampler once it has seen its arguments."""


def _capture_sample(monkeypatch, seen: dict):
    import pymc as pm

    def fake_sample(**kwargs):
        seen.update(kwargs)
        seen["model"] = pm.modelcontext(None)
        raise _Stop

    monkeypatch.setattr(pm, "sample", fake_sample)


def test_nuts_settings_reach_the_sampler(monkeypatch):
    """sampler, draws, tune, chains, cores and target_accept: from sampler_config, fit arguments win."""
    seen: dict = {}
    _capture_sample(monkeypatch, seen)
    cfg = {"sampler": "pymc", "draws": 11, "tune": 7, "chains": 3, "cores": 1, "target_accept": 0.91}
    rm = ReliabilityModel("pre", sampler_config=cfg)
    with pytest.raises(_Stop):
        rm.fit(small_log(), progress=False)
    assert {k: seen[k] for k in ("draws", "tune", "chains", "cores", "target_accept")} == {
        "draws": 11, "tune": 7, "chains": 3, "cores": 1, "target_accept": 0.91}
    assert seen["nuts_sampler"] == "pymc"
    with pytest.raises(_Stop):
        rm.fit(small_log(), sampler="nutpie", draws=5, progress=False)
    assert seen["nuts_sampler"] == "nutpie" and seen["draws"] == 5 and seen["tune"] == 7
    with pytest.raises(_Stop):  # defaults: the chosen target_accept (3 models: 0.98) and 4000 draws in total
        ReliabilityModel("pre", sampler_config={"chains": 2}).fit(small_log(), progress=False)
    assert seen["target_accept"] == 0.98 and seen["draws"] == 2000 and seen["tune"] == 1000


def test_length_bin_coarsens_the_pre_call_likelihood_cells():
    log = small_log()
    exact = ReliabilityModel("pre").plan(log).cells
    binned = ReliabilityModel("pre", sampler_config={"length_bin": 0.5}).plan(log).cells
    assert len(binned) < len(exact) and binned.length_bin == 0.5 and exact.length_bin is None
    assert binned.trials.sum() == exact.trials.sum() == len(log)  # every call still counted once


def test_advi_iterations_reach_the_optimizer(monkeypatch):
    import pymc as pm

    seen: dict = {}

    def fake_fit(n, method, **kwargs):
        seen.update(n=n, method=method)
        raise _Stop

    monkeypatch.setattr(pm, "fit", fake_fit)
    with pytest.raises(_Stop):
        ReliabilityModel("pre", sampler_config={"sampler": "advi", "advi_iterations": 123}).fit(small_log())
    assert seen == {"n": 123, "method": "advi"}


def test_log_likelihood_cap_decides_whether_pointwise_log_likelihood_is_stored(monkeypatch):
    """Draws x training calls above max_log_likelihood_cells: no log_likelihood group (a stand-in
    sampler returns prior draws, so the rest of fit runs for real in a second)."""
    import arviz as az
    import pymc as pm

    from bayes_router.models.reliability.prediction import POSTERIOR_VARIABLES

    def prior_as_posterior(self, model, cfg, draws, chains, accept, seed, progress):
        values = pm.draw([model[v] for v in POSTERIOR_VARIABLES], draws=draws, random_seed=seed)
        return az.from_dict(posterior={v: x[None] for v, x in zip(POSTERIOR_VARIABLES, values, strict=True)},
                            dims={"alpha": ["model"], "beta": ["subject"], "gamma": ["model", "subject"],
                                  "mu_slope": ["covariate"], "sigma_slope": ["covariate"],
                                  "slope": ["model", "covariate"]}, coords=model.coords)

    monkeypatch.setattr(ReliabilityModel, "_sample", prior_as_posterior)
    log = small_log()
    kept = ReliabilityModel("pre", sampler_config={"draws": 5, "chains": 1})
    kept.fit(log)
    capped = ReliabilityModel("pre", sampler_config={"draws": 5, "chains": 1, "max_log_likelihood_cells": 5 * len(log) - 1})
    capped.fit(log)
    assert kept.idata.log_likelihood["correct"].shape == (1, 5, len(log))
    assert "log_likelihood" not in capped.idata.groups()


def test_configuration_reaches_the_fit_through_the_routing_context(monkeypatch):
    from bayes_router.policies.base import RoutingContext

    seen: dict = {}
    _capture_sample(monkeypatch, seen)
    log = small_log()
    ctx = RoutingContext(train_log=log, models=sorted(log["model"].unique()), seed=3,
                         sampler_config={"sampler": "pymc", "draws": 9, "tune": 4, "target_accept": 0.9},
                         model_config={"mu_alpha": {"sigma": 3.0}})
    with pytest.raises(_Stop):
        ctx.reliability("pre")
    assert (seen["draws"], seen["tune"], seen["chains"], seen["target_accept"], seen["random_seed"]) == (
        9, 4, 2, 0.9, 3)  # chains: the context's 2 unless told
    plain = ReliabilityModel("pre").build_model(log)
    assert _prior_logp(seen["model"], "mu_alpha", 2.0) != pytest.approx(_prior_logp(plain, "mu_alpha", 2.0))
    bad = RoutingContext(train_log=log, models=["small"], sampler_config={"target_acept": 0.9})
    with pytest.raises(InputError, match="target_acept"):
        bad.reliability("post")


def test_prepare_refuses_a_bad_configuration_before_fitting():
    from bayes_router.study.evaluate import prepare

    log = small_log()
    models = sorted(log["model"].unique())
    setup = prepare(log, models, n_questions=20, model_config={"sigma_slope": {"beta": 8.0}})
    assert setup.ctx.model_config == {"sigma_slope": {"beta": 8.0}}
    with pytest.raises(InputError, match="mu_alfa"):
        prepare(log, models, n_questions=20, model_config={"mu_alfa": {}})
    with pytest.raises(InputError, match="target_acept"):
        prepare(log, models, n_questions=20, sampler_config={"target_acept": 0.9})


def test_config_file_sections_and_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model_config:\n  mu_alpha: {sigma: 2.0}\nsampler_config:\n  target_accept: 0.9\n")
    assert read_config_file(good) == ({"mu_alpha": {"sigma": 2.0}}, {"target_accept": 0.9})
    as_json = tmp_path / "good.json"
    as_json.write_text(json.dumps({"sampler_config": {"tune": 500}}))
    assert read_config_file(as_json) == ({}, {"tune": 500})
    (tmp_path / "typo.yaml").write_text("sampler_config:\n  target_acept: 0.9\n")
    with pytest.raises(InputError, match=r"typo.yaml: sampler_config: unknown key 'target_acept'"):
        read_config_file(tmp_path / "typo.yaml")
    (tmp_path / "section.yaml").write_text("priors: {}\n")
    with pytest.raises(InputError, match=r"unknown section\(s\) \['priors'\]"):
        read_config_file(tmp_path / "section.yaml")
    assert set(DEFAULT_SAMPLER_CONFIG) >= {"target_accept", "length_bin", "advi_iterations"}


def test_cli_config_reaches_the_fit_and_typos_are_one_line(tmp_path, sim_log_path, capsys, monkeypatch):
    from bayes_router.cli import main

    typo = tmp_path / "typo.yaml"
    typo.write_text("sampler_config:\n  target_acept: 0.9\n")
    for command in (["fit", str(sim_log_path), "--stage", "pre", "-o", str(tmp_path / "x.nc")],
                    ["evaluate", str(sim_log_path), "--models", "small,big", "-o", str(tmp_path / "r.json")]):
        assert main(command + ["--config", str(typo)]) == 2
        err = capsys.readouterr().err
        assert "target_acept" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    seen: dict = {}
    _capture_sample(monkeypatch, seen)
    good = tmp_path / "good.yaml"
    good.write_text("model_config:\n  slope_effects: {parameterization: non-centered}\n"
                    "sampler_config:\n  sampler: pymc\n  target_accept: 0.93\n  tune: 12\n")
    with pytest.raises(_Stop):
        main(["fit", str(sim_log_path), "--stage", "pre", "--questions", "30", "--config", str(good),
              "--draws", "6", "--no-progress", "-o", str(tmp_path / "x.nc")])
    assert (seen["nuts_sampler"], seen["target_accept"], seen["tune"], seen["draws"]) == ("pymc", 0.93, 12, 6)
    assert "z_slope" in seen["model"].named_vars
