"""Hierarchical reliability models on SIMULATED logs with known truth, plus one
real-data smoke test. Fits are small (3 models x 300 questions, few draws) and shared
through :func:`fitted` so the whole file stays within its CI budget."""

from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from bayes_router.data.simulate import simulate_call_log
from bayes_router.data.split import rows_for, train_test_split
from bayes_router.errors import InputError
from bayes_router.models.reliability import ReliabilityModel

N_QUESTIONS = 300
DRAWS = 300


def _quiet_fit(rm, log, **kw):
    kw = {"sampler": "pymc", "draws": DRAWS, "tune": DRAWS, "chains": 2, "seed": 1, "progress": False, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rm.fit(log, **kw)
    return rm


@functools.cache
def simulated():
    """SIMULATED log (no confidence, no latency, like the public MMLU-Pro logs) and its truth."""
    log, _, truth = simulate_call_log(n_questions=N_QUESTIONS, difficulty_sd=0.0, tok_shift=0.6, seed=3)
    return log, truth


@functools.cache
def split():
    log, truth = simulated()
    tr, te = train_test_split(log["question_id"].unique(), test_frac=0.3, seed=0)
    return rows_for(log, truth.models, tr), rows_for(log, truth.models, te)


@functools.cache
def fitted(stage: str) -> ReliabilityModel:
    """Pre- and post-call fits on the same TRAIN questions of the simulated log (shared with test_diagnostics)."""
    train, _ = split()
    return _quiet_fit(ReliabilityModel(stage), train)


def test_pre_call_parameter_recovery():
    """90% intervals of the identified parameters cover the truth for >= 80% of them.

    Identified on the simulated scale: cell logits alpha[m] + beta[s] + gamma[m, s] at
    the training mean length, and the length slopes. The simulator standardizes log
    length over all questions, the model over train rows; the truth is converted.
    """
    log, truth = simulated()
    train, _ = split()
    rm = fitted("pre")
    loglen_all = np.log(log.drop_duplicates("question_id")["question_chars"].to_numpy(float))
    mu_all, sd_all = loglen_all.mean(), loglen_all.std()
    st = rm.standardization["log_question_chars"]
    shift = (st["mean"] - mu_all) / sd_all  # true z_len at the model's x = 0
    post = rm.idata.posterior
    covered, total = 0, 0
    for i, m in enumerate(truth.models):
        for j, s in enumerate(truth.subjects):
            true_cell = truth.alpha[i] + truth.beta_subject[j] + truth.gamma[i, j] + truth.slope_len[i] * shift
            draws = (post["alpha"].sel(model=m) + post["beta"].sel(subject=s)
                     + post["gamma"].sel(model=m, subject=s)).to_numpy().ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            covered += lo <= true_cell <= hi
            total += 1
        true_slope = truth.slope_len[i] * st["sd"] / sd_all
        d = post["slope"].sel(model=m, covariate="log_question_chars").to_numpy().ravel()
        lo, hi = np.quantile(d, [0.05, 0.95])
        covered += lo <= true_slope <= hi
        total += 1
    assert total == 15
    assert covered / total >= 0.8, f"only {covered}/{total} 90% intervals cover the truth"


def test_post_call_learns_long_answers_are_wrong_and_drops_missing_covariates():
    """The log has no confidence and no latency: the post fit leaves them out and says so;
    the simulator makes wrong answers longer, so the pooled token slope must be negative."""
    train, _ = split()
    rm = ReliabilityModel("post")
    with pytest.warns(UserWarning, match="confidence.*latency_s"):
        rm.plan(train)
    fit = fitted("post")
    assert fit.covariates_used == ["log_question_chars", "completion_tokens", "parsed"]
    assert set(fit.covariates_dropped) == {"confidence", "latency_s"}
    assert list(fit.idata.posterior["slope"].coords["covariate"].values) == ["log_question_chars", "completion_tokens"]
    mu_tok = fit.idata.posterior["mu_slope"].sel(covariate="completion_tokens").to_numpy().ravel()
    assert np.quantile(mu_tok, 0.975) < 0


def test_post_call_uses_confidence_and_latency_when_the_log_holds_them(sim_log_path):
    from bayes_router.data.io import load_call_log

    rm = ReliabilityModel("post")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out, so nothing is warned
        design = rm.plan(load_call_log(sim_log_path)).design
    assert design.covariates_used == ["log_question_chars", "completion_tokens", "parsed", "confidence", "latency_s"]
    assert design.covariates_dropped == {}


def test_partly_missing_covariate_is_left_out_not_imputed():
    """Latency (a measurement) partly missing is left out; a confidence signal partly missing is
    modelled as missing (an indicator) by default, and left out only with signal_missing="drop"."""
    log, _ = simulated()
    log = log.copy()
    log["latency_s"] = 2.0
    log.loc[:10, "latency_s"] = np.nan
    log["confidence"] = 0.7
    log.loc[log.index[log["parsed"]][:11], "confidence"] = np.nan
    with pytest.warns(UserWarning, match="latency_s: null in 11 of"):
        design = ReliabilityModel("post").plan(log).design
    assert "latency_s" not in design.covariates_used
    assert {"confidence", "confidence_missing"} <= set(design.covariates_used)
    with pytest.warns(UserWarning, match="confidence: null or 0 in 11 of"):
        design = ReliabilityModel("post", model_config={"signal_missing": {"handling": "drop"}}).plan(log).design
    assert "confidence" not in design.covariates_used


def test_p_correct_shapes_labels_hurdle_and_unseen_levels():
    _, test = split()
    rm = fitted("post")
    calls = test.drop(columns=["correct"])  # predict never needs the outcome
    da = rm.p_correct(calls)
    n_draws = rm.idata.posterior.sizes["chain"] * rm.idata.posterior.sizes["draw"]
    assert da.dims == ("draw", "call") and da.shape == (n_draws, len(test))
    assert list(da["call"].values) == list(calls.index) and list(da["draw"].values) == list(range(n_draws))
    P = da.values
    assert np.all((P >= 0) & (P <= 1))
    unparsed = ~test["parsed"].to_numpy()
    assert unparsed.any() and np.all(P[:, unparsed] == 0.0)  # the hurdle: unparsed is wrong for sure
    assert np.all(P[:, ~unparsed] > 0)
    thin = rm.p_correct(calls, n_draws=50)
    assert thin.shape == (50, len(test)) and thin["draw"].values[-1] == n_draws - 1  # evenly spaced, to the last
    np.testing.assert_array_equal(thin.values, P[thin["draw"].values])

    new = calls.head(40).copy()
    new["model"] = "never-seen-model"
    new.loc[new.index[:20], "subject"] = "never-seen-subject"
    Pn = rm.p_correct(new).values
    assert Pn.shape == (n_draws, 40) and np.isfinite(Pn).all()
    # a new model borrows the population: its P spreads wider than a known model's on the same calls
    known = rm.p_correct(calls.head(40)).values
    parsed = new["parsed"].to_numpy()
    assert Pn[:, parsed].std(0).mean() > known[:, parsed].std(0).mean()


def test_p_correct_matches_the_posterior_effects():
    """The numpy predictor equals the posterior's own effects combined by hand on a training call."""
    train, _ = split()
    rm = fitted("pre")
    P = rm.p_correct(train.head(30), n_draws=None).values
    post = rm.idata.posterior.stack(sample=("chain", "draw"))
    row = train.iloc[5]
    x = (np.log(row.question_chars) - rm.standardization["log_question_chars"]["mean"]) / rm.standardization["log_question_chars"]["sd"]
    eta = (post["alpha"].sel(model=row.model) + post["beta"].sel(subject=row.subject)
           + post["gamma"].sel(model=row.model, subject=row.subject)
           + post["slope"].sel(model=row.model, covariate="log_question_chars") * x).to_numpy()
    np.testing.assert_allclose(P[:, 5], 1 / (1 + np.exp(-eta)), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("slopes", ["auto", "centered"])  # centered slopes: alpha sampled at each model's mean
@pytest.mark.parametrize("stage", ["pre", "post"])
def test_likelihood_is_the_bernoulli_likelihood_of_the_calls(stage, slopes):
    """The PyMC likelihood (cell counts, fast logit-binomial form) equals the sum of per-call
    Bernoulli log-likelihoods up to a constant: differences between parameter points agree."""
    train, _ = split()
    rm = ReliabilityModel(stage, model_config={"slope_effects": {"parameterization": slopes}})
    _check_likelihood(rm, train, stage)


def _check_likelihood(rm, train, stage):
    plan = rm.plan(train)
    model = rm.build_model(train)
    obs_logp = model.compile_fn(model.logp(vars=model.observed_RVs), inputs=model.value_vars, point_fn=True,
                                on_unused_input="ignore")
    effects = model.compile_fn(model.replace_rvs_by_values([model[v] for v in ("alpha", "beta", "gamma", "slope")]),
                               inputs=model.value_vars, point_fn=True, on_unused_input="ignore")
    X = plan.design.matrix(train)
    m, s = plan.design.codes(train)
    y = train["correct"].to_numpy(bool)
    rng = np.random.default_rng(0)
    ours, reference = [], []
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.4, np.shape(v)) for k, v in model.initial_point().items()}
        alpha, beta, gamma, slope = effects(point)
        eta = alpha[m] + beta[s] + gamma[m, s] + (slope[m] * X).sum(1)
        ll = np.where(y, -np.logaddexp(0, -eta), -np.logaddexp(0, eta))
        if stage == "post":  # the hurdle: unparsed calls are certain (wrong) and add nothing
            ll = ll[train["parsed"].to_numpy(bool)]
        ours.append(float(obs_logp(point)))
        reference.append(float(ll.sum()))
    np.testing.assert_allclose(np.diff(ours), np.diff(reference), rtol=1e-9, atol=1e-7)
    assert len(set(np.round(reference, 6))) == 3  # the points differ, so the check has teeth
    return model, plan


def test_p_correct_is_row_order_equivariant():
    """Rows interleaved across models give the same per-row draws as rows grouped by model."""
    _, test = split()
    rm = fitted("post")
    perm = np.random.default_rng(0).permutation(len(test))
    P = rm.p_correct(test).values
    # equal up to float32 rounding (BLAS blocks rows differently)
    np.testing.assert_allclose(rm.p_correct(test.iloc[perm]).values, P[:, perm], rtol=0, atol=1e-6)


def test_predict_refuses_missing_covariate_values():
    _, test = split()
    rm = fitted("post")
    bad = test.head(5).copy()
    bad["completion_tokens"] = pd.array([1, None, 3, 4, 5], dtype="Int64")
    with pytest.raises(InputError, match="completion_tokens"):
        rm.p_correct(bad)


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    _, test = split()
    rm = fitted("post")
    path = rm.save(tmp_path / "post.nc")
    rm2 = ReliabilityModel.load(path)
    assert rm2.stage == "post" and rm2.models == rm.models and rm2.subjects == rm.subjects
    assert rm2.covariates_used == rm.covariates_used and rm2.standardization == rm.standardization
    new = test.copy()
    new.loc[new.index[:9], "model"] = "unseen"
    np.testing.assert_array_equal(rm2.p_correct(new).values, rm.p_correct(new).values)
    assert rm2.metadata["train_question_ids"] == rm.metadata["train_question_ids"]


def test_prior_predictive_check_leaves_a_fitted_model_unchanged():
    train, test = split()
    rm = fitted("pre")
    before = rm.p_correct(test).values
    other = test.sample(150, random_state=0)  # other rows, so another standardization
    prior = rm.prior_predictive_accuracy(other, samples=50, seed=2)
    assert prior.shape == (50, 3) and list(prior.columns) == sorted(other["model"].unique())
    assert ((prior >= 0) & (prior <= 1)).all().all() and prior.std().min() > 0.05  # priors are not degenerate
    np.testing.assert_array_equal(rm.p_correct(test).values, before)


def test_build_model_leaves_a_fitted_model_unchanged():
    """Building a graph for another log (one model, other rows) changes nothing on a fitted model:
    not its models, subjects, standardization, parameterization, nor its predictions."""
    train, test = split()
    rm = fitted("pre")
    before = rm.p_correct(test).values
    state = (list(rm.models), list(rm.subjects), json.dumps(rm.standardization), json.dumps(rm.metadata, default=str))
    one_model = train[train["model"] == rm.models[0]].head(60)
    graph = rm.build_model(one_model)
    assert list(graph.coords["model"]) == [rm.models[0]]  # the graph is the other log's
    assert (list(rm.models), list(rm.subjects), json.dumps(rm.standardization),
            json.dumps(rm.metadata, default=str)) == state
    np.testing.assert_array_equal(rm.p_correct(test).values, before)


@pytest.mark.parametrize("sampler", ["pymc", "nutpie"])
def test_same_seed_same_draws(sampler):
    log, _ = simulated()
    small = log[log["question_id"] < 80]
    a = _quiet_fit(ReliabilityModel("pre"), small, draws=60, tune=60, seed=5, sampler=sampler)
    b = _quiet_fit(ReliabilityModel("pre"), small, draws=60, tune=60, seed=5, sampler=sampler)
    np.testing.assert_array_equal(a.idata.posterior["alpha"].to_numpy(), b.idata.posterior["alpha"].to_numpy())
    assert not np.array_equal(a.idata.posterior["alpha"].to_numpy()[0], a.idata.posterior["alpha"].to_numpy()[1])


def _cells(rng, n_models, n_subjects, calls_per_cell, interaction_sd, slope_sd):
    """SIMULATED single calls with known interaction and slope spreads (for the parameterization rule);
    ``slope_sd`` a number (one covariate) or one spread per covariate."""
    slope_sd = np.atleast_1d(slope_sd)
    m = np.repeat(np.arange(n_models), n_subjects * calls_per_cell)
    s = np.tile(np.repeat(np.arange(n_subjects), calls_per_cell), n_models)
    x = rng.standard_normal((len(m), len(slope_sd)))
    gamma = rng.normal(0, interaction_sd, (n_models, n_subjects))
    slope = 0.3 + rng.normal(0, 1, (n_models, len(slope_sd))) * slope_sd
    eta = gamma[m, s] + (slope[m] * x).sum(1)
    y = (rng.random(len(m)) < 1 / (1 + np.exp(-eta))).astype(float)
    return m, s, x, np.ones_like(y), y


def test_auto_parameterization_follows_how_strongly_the_data_pin_each_level():
    """Centered when every level is pinned more tightly than the levels spread; else non-centered."""
    from bayes_router.models.reliability import choose_parameterization

    rng = np.random.default_rng(0)
    strong = _cells(rng, 12, 8, 400, interaction_sd=0.5, slope_sd=0.4)  # 400 calls per cell, wide spreads
    weak = _cells(rng, 3, 8, 20, interaction_sd=0.05, slope_sd=0.02)  # 3 models, 20 calls per cell
    for effect, centered, noncentered in [("interaction_effects", "centered", "non-centered"),
                                          ("slope_effects", "centered", "zero-sum")]:
        a = choose_parameterization(effect, *strong, 12, 8)
        b = choose_parameterization(effect, *weak, 3, 8)
        assert a["choice"] == centered and b["choice"] == noncentered, (effect, a, b)
        assert np.all(np.asarray(a["spread_lower"]) > np.asarray(a["se"]))
    # the chosen form is recorded with the fit, and an explicit choice is kept as given
    train, _ = split()
    par = ReliabilityModel("pre").plan(train).parameterization
    assert set(par.chosen) == {"model_effects", "subject_effects", "interaction_effects", "slope_effects"}
    assert par.evidence["slope_effects"]["choice"] == par.chosen["slope_effects"]
    fixed = ReliabilityModel("pre", model_config={"interaction_effects": {"parameterization": "centered"}})
    model = fixed.build_model(train)
    assert fixed.plan(train).parameterization.chosen["interaction_effects"] == "centered"
    assert "z_gamma" not in model.named_vars and "gamma" in model.named_vars


def test_slopes_of_few_models_are_never_centered():
    """3 models whose slopes spread far beyond their noise: the bound alone would center them, but
    a spread from 3 levels is no ground to (the centered funnel); 12 such models are centered."""
    from bayes_router.models.reliability import choose_parameterization

    rng = np.random.default_rng(2)
    wide = _cells(rng, 12, 8, 400, interaction_sd=0.5, slope_sd=0.8)
    many = choose_parameterization("slope_effects", *wide, 12, 8)
    m, s, x, n, y = wide
    keep = m < 3
    few = choose_parameterization("slope_effects", m[keep], s[keep], x[keep], n[keep], y[keep], 3, 8)
    assert many["choice"] == "centered" and few["choice"] == "zero-sum" and "at most 4 models" in few["reason"]
    assert np.all(np.asarray(few["spread_lower"]) > np.asarray(few["se"]))  # over the bound all the same


def test_slopes_on_the_edge_are_not_centered():
    """24 models whose slopes' spread bound is 1.46 standard errors: over the bound, but inside the margin
    (the whole pool's length slopes sat there, and diverged when centered); at 2.2 they are centered."""
    from bayes_router.models.reliability import choose_parameterization
    from bayes_router.models.reliability.parameterization import SLOPE_CENTERING_MARGIN

    edge = choose_parameterization("slope_effects", *_cells(np.random.default_rng(3), 24, 8, 100, 0.2, 0.10), 24, 8)
    wide = choose_parameterization("slope_effects", *_cells(np.random.default_rng(3), 24, 8, 100, 0.2, 0.15), 24, 8)
    ratio = np.asarray(edge["spread_lower"]) / np.asarray(edge["se"])
    assert 1 < ratio[0] < SLOPE_CENTERING_MARGIN and edge["choice"] == "zero-sum"
    assert wide["choice"] == "centered"


def test_slopes_some_models_cannot_inform_are_not_centered():
    """12 models whose slopes spread widely are centered; when the covariate is constant (0, a signal
    imputed at its mean) for 3 of them, those 3 slopes are prior-only and the covariate gets zero-sum
    innovations, while a second covariate that varies everywhere stays centered."""
    from bayes_router.models.reliability import choose_parameterization

    m, s, x, n, y = _cells(np.random.default_rng(4), 12, 8, 400, interaction_sd=0.3, slope_sd=[0.5, 0.5])
    both = choose_parameterization("slope_effects", m, s, x, n, y, 12, 8)
    assert both["per_covariate"] == ["centered", "centered"] and both["unpinned"] == [False, False], both
    x = x.copy()
    x[m < 3, 0] = 0.0
    blind = choose_parameterization("slope_effects", m, s, x, n, y, 12, 8)
    assert blind["per_covariate"] == ["zero-sum", "centered"] and blind["choice"] == "mixed", blind
    assert blind["unpinned"] == [True, False]
    x[m > 0, 0] = 0.0  # one model left with information: no spread to estimate, and no error either
    one = choose_parameterization("slope_effects", m, s, x, n, y, 12, 8)
    assert one["per_covariate"] == ["zero-sum", "centered"] and one["spread"][0] is None, one


def test_slope_evidence_is_joint_over_correlated_covariates():
    """SIMULATED: x2 is x1 plus noise (correlation 0.9) and has no effect, x1's slopes spread widely.
    One covariate at a time x2's slopes would carry x1's spread; jointly they do not, so x2's slopes
    get zero-sum innovations, with a standard error that counts the correlation."""
    from bayes_router.models.reliability import choose_parameterization

    rng = np.random.default_rng(5)
    m, s, x, n, _ = _cells(rng, 12, 8, 400, interaction_sd=0.3, slope_sd=[0.5, 0.0])
    x[:, 1] = 0.9 * x[:, 0] + np.sqrt(1 - 0.81) * x[:, 1]
    slope1 = 0.3 + rng.normal(0, 0.5, 12)
    y = (rng.random(len(m)) < 1 / (1 + np.exp(-slope1[m] * x[:, 0]))).astype(float)
    ev = choose_parameterization("slope_effects", m, s, x, n, y, 12, 8)
    assert ev["per_covariate"] == ["centered", "zero-sum"], ev
    one_at_a_time = 1 / np.sqrt(0.25 * 400 * 8)  # the standard error ignoring the correlation
    assert ev["se"][1] > 2 * one_at_a_time, ev
    assert ev["spread"][1] < 0.15 < ev["spread"][0], ev


def test_slopes_are_parameterized_per_covariate(monkeypatch):
    """Slopes that spread widely are centered, slopes on the edge get zero-sum innovations, in one
    model ("mixed"); its likelihood is still the calls' Bernoulli likelihood and it predicts."""
    import bayes_router.models.reliability.parameterization as rel

    rng = np.random.default_rng(1)
    data = _cells(rng, 12, 8, 400, interaction_sd=0.3, slope_sd=[0.5, 0.0])
    ev = rel.choose_parameterization("slope_effects", *data, 12, 8)
    assert ev["per_covariate"] == ["centered", "zero-sum"] and ev["choice"] == "mixed", ev
    # the simulated post-call log has two slope covariates; force the mixed outcome on it
    train, test = split()
    real = rel.choose_parameterization

    def mixed(effect, *args):
        out = real(effect, *args)
        return {**out, "choice": "mixed", "per_covariate": ["zero-sum", "centered"]} if effect == "slope_effects" else out

    monkeypatch.setattr(rel, "choose_parameterization", mixed)
    rm = ReliabilityModel("post")
    model, plan = _check_likelihood(rm, train, "post")
    assert plan.parameterization.slope_kinds(plan.design.slope_covariates) == ["zero-sum", "centered"]
    assert {"z_slope", "slope_centered", "alpha_at_mean"} <= set(model.named_vars)  # shift by the centered slope
    _quiet_fit(rm, train, draws=40, tune=40)
    assert rm.slope_parameterizations() == ["zero-sum", "centered"] == list(rm.metadata["slope_parameterization"].values())
    P = rm.p_correct(test.assign(model=test["model"].where(test["model"] != rm.models[0], "unseen"))).values
    assert P.shape[1] == len(test) and np.isfinite(P).all()


def test_bad_configuration_and_unfitted_use_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="stage"):
        ReliabilityModel("during")
    with pytest.raises(InputError, match="unknown key 'sigma_everything'"):
        ReliabilityModel("pre", model_config={"sigma_everything": {"sigma": 1}})
    with pytest.raises(InputError, match="subject_effects parameterization"):  # zero-sum is for slopes only
        ReliabilityModel("pre", model_config={"subject_effects": {"parameterization": "zero-sum"}})
    with pytest.raises(InputError, match="slope_effects parameterization"):
        ReliabilityModel("pre", model_config={"slope_effects": {"parameterization": "sideways"}})
    with pytest.raises(InputError, match="not fitted"):
        ReliabilityModel("pre").p_correct(simulated()[0].head(3))
    with pytest.raises(InputError, match="no such posterior"):
        ReliabilityModel.load(tmp_path / "missing.nc")
    (tmp_path / "junk.nc").write_text("not netcdf")
    with pytest.raises(InputError, match="junk.nc"):
        ReliabilityModel.load(tmp_path / "junk.nc")


def test_cli_fit_writes_posterior_with_split_and_strict_fails_on_tiny_run(sim_log_path, tmp_path, capsys):
    import arviz as az

    from bayes_router.cli import main

    out = tmp_path / "post.nc"
    args = ["fit", str(sim_log_path), "--stage", "post", "--questions", "60", "--sampler", "pymc", "--draws", "40",
            "--tune", "40", "--chains", "2", "--no-progress", "-o", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(args + ["--strict"])
    captured = capsys.readouterr()
    text = captured.out
    assert code == 1  # 80 draws cannot reach bulk ESS 400: --strict must fail
    assert "--strict: convergence diagnostics failed" in captured.err
    assert "covariates used" in text and "r_hat_max" in text and "held-out" in text
    idata = az.from_netcdf(out)
    train_ids, test_ids = json.loads(idata.attrs["train_question_ids"]), json.loads(idata.attrs["test_question_ids"])
    assert len(train_ids) + len(test_ids) == 60 and not set(train_ids) & set(test_ids)
    rm = ReliabilityModel.load(out)
    assert "confidence" in rm.covariates_used and "latency_s" in rm.covariates_used


def test_cli_fit_user_errors_are_one_line(tmp_path, capsys, sim_log_path):
    from bayes_router.cli import main

    assert main(["fit", str(tmp_path / "nope.parquet"), "--stage", "pre", "-o", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err
    assert "nope.parquet" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["fit", str(sim_log_path), "--stage", "pre", "--models", "small,ghost", "-o",
                 str(tmp_path / "x.nc")]) == 2
    assert "ghost" in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


@pytest.mark.realdata
def test_real_trio_smoke(real_trio_log):
    """A small slice of the real trio with the default sampler (nutpie) and few draws."""
    from bayes_router.data.split import sample_questions

    models = sorted(real_trio_log["model"].unique())
    ids = sample_questions(real_trio_log, models, 150, seed=0)
    tr, te = train_test_split(ids, 0.3, seed=0)
    rm = ReliabilityModel("post")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rm.fit(rows_for(real_trio_log, models, tr), draws=100, tune=100, chains=2, seed=0, progress=False)
    assert rm.covariates_dropped.keys() == {"confidence", "latency_s"}  # the public logs hold neither
    P = rm.p_correct(rows_for(real_trio_log, models, te)).values
    assert P.shape == (200, len(te) * 3)
    acc = rows_for(real_trio_log, models, tr)["correct"].mean()
    assert abs(float(P.mean()) - acc) < 0.1


def test_default_draws_share_4000_among_the_chains():
    from bayes_router.models.reliability import DEFAULT_TOTAL_DRAWS, default_draws

    assert DEFAULT_TOTAL_DRAWS == 4000
    assert [default_draws(c) for c in (1, 2, 3, 4)] == [4000, 2000, 1334, 1000]
