"""The notebook support layer (bayes_router.study.notebook) and the tables the notebooks show
(study.*_figures, overview.all_fail_examples), on hand-made inputs: no data, no sampling."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayes_router import ReliabilityModel
from bayes_router.errors import InputError
from bayes_router.study import notebook as nb
from bayes_router.study import report

# --------------------------------------------------------------------------- results


def _report(passed: bool, failures=()):
    return {"passed": passed, "r_hat_max": 1.0 if passed else 1.2, "failures": list(failures)}


def test_write_results_one_verdict_and_strict_json(tmp_path):
    payload = {"accuracy": np.float32(0.5), "n": np.int64(3), "gap": float("nan"), "ci": (0.1, np.inf),
               "arr": np.array([1, 2])}
    path = nb.write_results(tmp_path, "02_x", payload, quick=True, seed=3,
                            diagnostics={"pre": _report(True), "post": _report(False, ["sigma: R-hat 1.2"])})
    body = json.loads(path.read_text())
    assert path.name == "02_x.json"
    assert body["diagnostics_pass"] is False and body["quick"] is True and body["seed"] == 3
    assert body["notebook"] == "02_x"
    assert body["accuracy"] == 0.5 and body["n"] == 3 and body["gap"] is None
    assert body["ci"] == [0.1, None] and body["arr"] == [1, 2]
    assert body["diagnostics"]["post"]["failures"] == ["sigma: R-hat 1.2"]
    # the report reads that one key, with the failed checks
    s = report.build_summary(tmp_path, "quick")
    assert s["diagnostics"] == {"02_x": {"pass": False, "failures": ["post: sigma: R-hat 1.2"]}}


def test_write_results_without_diagnostics_has_no_verdict_and_refuses_clashes(tmp_path):
    body = json.loads(nb.write_results(tmp_path, "01_x", {"a": 1}, quick=False, seed=0).read_text())
    assert "diagnostics_pass" not in body and report.build_summary(tmp_path, "full")["diagnostics_pass"] is None
    with pytest.raises(InputError, match="may not set"):
        nb.write_results(tmp_path, "01_x", {"diagnostics_pass": True}, quick=False, seed=0)
    with pytest.raises(InputError, match="the payload says"):
        nb.write_results(tmp_path, "01_x", {"seed": 1}, quick=False, seed=0)
    with pytest.raises(InputError, match="no convergence report"):
        nb.write_results(tmp_path, "01_x", {}, quick=False, seed=0, diagnostics={})


def test_verdict_passes_only_when_every_report_passed():
    assert nb.diagnostics_fields({"a": _report(True)})["diagnostics_pass"] is True
    # an ADVI fit carries no convergence verdict, which fails it
    assert nb.diagnostics_fields({"a": _report(True), "b": {"sampler": "advi"}})["diagnostics_pass"] is False


# --------------------------------------------------------------------------- parameters


def test_models_and_pool_label():
    trio = nb.models_of("trio")
    assert len(trio) == 3 and nb.models_of(",".join(trio)) == trio
    log = pd.DataFrame({"model": ["b", "a", "b"]})
    assert nb.models_of(None, log) == ["a", "b"]
    with pytest.raises(InputError, match="MODELS is None"):
        nb.models_of(None)
    assert nb.pool_label("trio") == "trio" and nb.pool_label("a,b", "mine") == "mine"
    with pytest.raises(InputError, match="give POOL"):
        nb.pool_label("a,b")


def test_sampler_config_drops_unset_and_resolves_chains():
    cfg = nb.sampler_config("pymc", None, 100, None)
    assert cfg["sampler"] == "pymc" and cfg["tune"] == 100 and "draws" not in cfg and cfg["chains"] >= 2
    assert nb.sampler_config(None, 50, None, 1) == {"draws": 50, "chains": 1}


# --------------------------------------------------------------------------- posteriors


class _Ctx:
    """A routing context that records which stages it had to fit."""

    def __init__(self):
        self.set, self.fitted, self._rel = {}, [], {}

    def set_reliability(self, stage, model):
        self._rel[stage] = model
        self.set[stage] = model

    def reliability(self, stage):
        if stage not in self._rel:
            self.fitted.append(stage)
            self._rel[stage] = SimpleNamespace(stage=stage, models=["a", "b"], covariates_used=[], idata=None,
                                               metadata={})
        return self._rel[stage]


def _setup(train_ids=(1, 2, 3)):
    return SimpleNamespace(models=["a", "b"], train_question_ids=np.array(train_ids), ctx=_Ctx())


@pytest.fixture
def saved(tmp_path, monkeypatch):
    """Posterior files whose load returns a stand-in fitted on pool [a, b] and train questions 1-3."""
    def load(cls, path):
        stage = "pre" if "pre" in str(path) else "post"
        return SimpleNamespace(stage=stage, models=["a", "b"], covariates_used=["x"], idata=None,
                               metadata={"train_question_ids": [1, 2, 3], "fit_seconds": 7.0})

    monkeypatch.setattr(ReliabilityModel, "load", classmethod(load))
    for stage in ("pre", "post"):
        (tmp_path / f"{stage}.nc").write_bytes(b"")
    return tmp_path


def test_posteriors_reused_on_the_same_split_else_fitted(saved):
    setup = _setup()
    fits = nb.load_or_fit_posteriors(setup, {"pre": saved / "pre.nc", "post": saved / "missing.nc"})
    assert fits.reused == {"pre": str(saved / "pre.nc")} and fits.fit_seconds["pre"] == 7.0
    assert setup.ctx.fitted == ["post"] and set(setup.ctx.set) == {"pre"}
    assert fits["pre"] is setup.ctx.set["pre"] and set(fits.models) == {"pre", "post"}
    assert "reused" in fits.describe() and "fitted on the train questions" in fits.describe()


def test_posteriors_fitted_on_another_split_are_refitted(saved):
    setup = _setup(train_ids=(1, 2, 4))
    fits = nb.load_or_fit_posteriors(setup, {"pre": saved / "pre.nc"}, stages=("pre",))
    assert fits.reused == {} and setup.ctx.fitted == ["pre"]
    assert "other train questions" in fits.not_reused["pre"]
    with pytest.raises(InputError, match="not asked for"):
        nb.load_or_fit_posteriors(_setup(), {"post": saved / "post.nc"}, stages=("pre",))


def test_posterior_mean_p_correct_averages_the_draws():
    import xarray as xr

    calls = pd.DataFrame({"model": ["a", "b", "a"]})
    draws = np.array([[0.2, 0.4, 0.6], [0.4, 0.6, 0.8]], dtype=np.float32)
    model = SimpleNamespace(p_correct=lambda c: xr.DataArray(draws, dims=("draw", "call")))
    p = nb.posterior_mean_p_correct(model, calls)
    assert p.dtype == np.float64 and p.shape == (3,)
    np.testing.assert_allclose(p, [0.3, 0.5, 0.7], rtol=1e-6)


# --------------------------------------------------------------------------- tables of the notebooks


def _results():
    pol = {"accuracy": 0.6, "accuracy_ci95": [0.5, 0.7], "cost_per_question": 0.002, "cost_ci95": [0.001, 0.003],
           "calls_per_question": 1.0, "vs_big": {"accuracy_diff": 0.0, "cost_ratio": 1.0}}
    cheap = {**pol, "accuracy": 0.4, "cost_per_question": 0.001, "vs_big": {"accuracy_diff": -0.2}}
    return {"models": ["s", "b"], "seed": 0, "train_question_ids": [1, 2], "policies": {"always:b": pol, "always:s": cheap},
            "frontiers": {"always:b": [[0.002, 0.6]], "always:s": [[0.001, 0.4]]}, "aiq": {"always:b": 0.5}}


def test_policy_table_and_pool_results():
    from bayes_router.study import routing_figures as rfig

    t = rfig.policy_table(_results())
    assert list(t.index) == ["always:s", "always:b"]  # cheapest first
    assert np.isnan(t.loc["always:s", "aiq"]) and np.isnan(t.loc["always:s", "cost_ratio_to_big"])
    assert t.loc["always:b", "acc_hi"] == 0.7
    out = rfig.routing_results(_results(), "duo", {}, {}, {})
    assert "train_question_ids" not in out and out["pool"] == "duo" and out["seed"] == 0


def test_precall_calibration_by_decile():
    from bayes_router.study import routing_figures as rfig

    p = np.tile(np.linspace(0.05, 0.95, 10), (20, 1))
    y = (np.random.default_rng(0).random(p.shape) < p).astype(float)
    table, brier = rfig.precall_calibration(p, y)
    assert len(table) == 10 and table["n"].sum() == p.size
    assert brier == pytest.approx(np.mean((p - y) ** 2))
    assert np.all(np.diff(table["predicted"]) > 0)


def test_trust_tables_match_the_reference_example():
    from bayes_router.models import trust as tr
    from bayes_router.models.trust_data import reference_example
    from bayes_router.study import trust_figures as tf

    routers, outcomes = reference_example()
    table = tf.example_table(tr.trust_posterior(routers, outcomes))
    assert tf.matches_reference(table)
    table.loc["simple", "trust (exact)"] += 1e-3
    assert not tf.matches_reference(table)
    by_subject = pd.DataFrame({"trust_pooled": [0.5, 0.1], "trust_by-subject": [0.3, 0.8], "trust_independent": [0.2, 0.1]},
                              index=["math", "law"])
    s = tf.trust_summary(by_subject)
    assert s["pooled"] == {"median_trust": 0.3, "subjects_where_most_trusted": 1}
    assert s["independent"]["subjects_where_most_trusted"] == 0


def _calibration_metrics():
    from bayes_router.models.calibration import METRICS

    rows = []
    for pred, ece in (("classifier", 0.05), ("bayes-pre", 0.02)):
        for model in ("a", "all"):
            row = {"predictor": pred, "recalibration": "none", "model": model}
            for k in METRICS:
                row.update({k: ece, f"{k}_ci95_lo": ece / 2, f"{k}_ci95_hi": ece * 2})
            rows.append(row)
    return pd.DataFrame(rows)


def test_calibration_tables_and_results():
    from bayes_router.study import calibration_figures as cf

    m = _calibration_metrics()
    table = cf.metrics_with_intervals(m)
    assert table.loc[("bayes-pre", "none"), "ece_equal_mass"] == "0.0200 [0.0100, 0.0400]"
    study = SimpleNamespace(metrics=m, temperatures=pd.DataFrame({"predictor": ["classifier"], "model": ["a"],
                                                                 "temperature": [1.5]}),
                            split={"fit_question_ids": [1, 2], "calibration_question_ids": [3], "test_question_ids": [4]})
    r = cf.calibration_results(study, ["a"], "pymc", 100)
    assert r["lowest_ece_equal_mass"] == "bayes-pre/none"
    assert r["n_questions"] == {"fit": 2, "calibration": 1, "test": 1}
    assert set(r["pooled"]) == {"classifier/none", "bayes-pre/none"} and set(r["per_model"]) == {
        "classifier/none/a", "bayes-pre/none/a"}
    assert r["temperatures"] == {"classifier/a": 1.5}


def test_data_label_names_simulated_logs():
    from bayes_router.study import reliability_figures as rf

    assert rf.data_label(pd.DataFrame({"log_source": ["mmlu_pro", "simulated"]})) == "SIMULATED data"
    assert rf.data_label(pd.DataFrame({"log_source": ["mmlu_pro"]})) == "MMLU-Pro, real data"


def test_all_fail_examples_text():
    from bayes_router.study import overview as ov

    log = pd.DataFrame({"question_id": [7, 7, 9], "answer": ["B", "B", "C"]})
    fails = pd.DataFrame({"question_id": [7, 9], "subject": ["law", "math"]})
    texts = pd.DataFrame({"question_id": [7], "text": ["x" * 700]})
    out = ov.all_fail_examples(log, fails, texts, n=2, max_chars=600).splitlines()
    assert out[0] == "--- question 7 (law), correct answer B" and out[1] == "x" * 600
    assert out[3] == "(text not stored)"
    assert "not shown" in ov.all_fail_examples(log, fails, None)
