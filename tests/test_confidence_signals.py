"""Confidence signals in the post-call model: the transform, the missing-value indicator, a pooled
slope recovered from a SIMULATED log, missing values not read as 0, and the comparison machinery.

All logs here are SIMULATED (bayes_router.data.simulate) or hand-made; fits use few draws.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from bayes_router.data.simulate import simulate_call_log
from bayes_router.data.split import rows_for, train_test_split
from bayes_router.errors import InputError
from bayes_router.models.calibration import expected_calibration_error
from bayes_router.models.reliability import ReliabilityModel
from bayes_router.models.reliability.design import SIGNAL_CLIP, Design
from bayes_router.models.signal_comparison import (
    heldout_metrics,
    logistic_baseline,
    logistic_features,
    signal_profile,
    with_signals,
)


def _rows(confidence, correct=None, parsed=None) -> pd.DataFrame:
    """Hand-made post-call rows: one model, two subjects, the given stated confidences."""
    n = len(confidence)
    return pd.DataFrame({
        "question_id": np.arange(n), "model": "m", "subject": ["a", "b"] * (n // 2) + ["a"] * (n % 2),
        "question_chars": np.full(n, 200), "completion_tokens": np.arange(100, 100 + n),
        "parsed": np.ones(n, bool) if parsed is None else np.asarray(parsed, bool),
        "correct": (np.arange(n) % 2 == 0) if correct is None else np.asarray(correct, bool),
        "confidence": pd.array(confidence, dtype="Float64"), "latency_s": np.nan,
    })


def _design(rows, **kw) -> Design:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Design.from_training_log("post", rows, **kw)


def test_stated_confidence_enters_as_the_logit_of_a_clipped_value_with_a_missing_indicator():
    rows = _rows([0.9, 1.0, 0.005, None, 0.0, 0.5])
    d = _design(rows)
    assert d.slope_covariates == ["log_question_chars", "completion_tokens", "confidence", "confidence_missing"]
    lo, hi = SIGNAL_CLIP
    observed = logit(np.clip([0.9, 1.0, 0.005, 0.5], lo, hi))  # 1.0 -> logit(hi), 0.005 -> logit(lo)
    st = d.standardization["confidence"]
    assert st["mean"] == pytest.approx(observed.mean()) and st["sd"] == pytest.approx(observed.std())
    X = d.matrix(rows)
    j, k = d.slope_covariates.index("confidence"), d.slope_covariates.index("confidence_missing")
    np.testing.assert_allclose(X[[0, 1, 2, 5], j], (observed - st["mean"]) / st["sd"], rtol=1e-10)
    # null and an exact 0 (the study's stand-in for "none stated") are missing: the training mean
    # (standardized 0) plus the indicator, never the logit of 0.01
    np.testing.assert_array_equal(X[:, k], [0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(X[[3, 4], j], [0.0, 0.0])
    assert d.standardization["confidence_missing"] == {"mean": 0.0, "sd": 1.0}


def test_drop_is_an_explicit_choice_and_a_log_without_signals_keeps_its_covariates():
    rows = _rows([0.9, None, 0.7, 0.6])
    with pytest.warns(UserWarning, match="confidence: null or 0 in 1 of 4"):
        d = Design.from_training_log("post", rows, signal_missing="drop")
    assert "confidence" not in d.covariates_used and "confidence_missing" not in d.covariates_used
    # like the MMLU-Pro logs: confidence all null, no mean_token_prob/decisiveness column
    blank = _rows([None] * 4)
    d = _design(blank)
    assert d.covariates_used == ["log_question_chars", "completion_tokens", "parsed"]
    assert set(d.covariates_dropped) == {"confidence", "latency_s"}
    with pytest.raises(InputError, match="signal_missing"):
        Design.from_training_log("post", rows, signal_missing="zero")


def test_a_null_where_training_had_none_is_refused_but_unparsed_calls_pass():
    d = _design(_rows([0.9, 0.8, 0.7, 0.6]))
    assert "confidence_missing" not in d.slope_covariates
    with pytest.raises(InputError, match="confidence"):
        d.matrix(_rows([0.9, None]))
    X = d.matrix(_rows([0.9, None], parsed=[True, False]))  # the hurdle decides an unparsed call
    assert np.isfinite(X).all()


@functools.cache
def _simulated_split():
    """SIMULATED log with stated confidence (a noisy reading of the true logit, which includes each
    question's difficulty, so it tells more than model, subject and length), where 25% of the correct
    parsed answers and 5% of the wrong ones state none: missingness that carries signal."""
    log, _, truth = simulate_call_log(n_questions=300, with_confidence=True, difficulty_sd=1.5, seed=11)
    rng = np.random.default_rng(0)
    share = np.where(log["correct"], 0.25, 0.05)
    drop = log["parsed"].to_numpy() & (rng.random(len(log)) < share)
    log.loc[drop, "confidence"] = np.nan
    train_ids, test_ids = train_test_split(log["question_id"].unique(), test_frac=0.3, seed=0)
    return rows_for(log, truth.models, train_ids), rows_for(log, truth.models, test_ids)


@functools.cache
def _fitted():
    train, _ = _simulated_split()
    rm = ReliabilityModel("post")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rm.fit(train, sampler="nutpie", draws=200, tune=250, chains=2, seed=0, progress=False)
    return rm


def test_simulated_confidence_gets_a_positive_pooled_slope():
    rm = _fitted()
    assert {"confidence", "confidence_missing"} <= set(rm.slope_covariates)
    mu = rm.idata.posterior["mu_slope"].sel(covariate="confidence").to_numpy().ravel()
    assert np.quantile(mu, 0.03) > 0 and mu.mean() > 0.5  # the true logit plus noise: a clearly positive slope
    ind = rm.idata.posterior["mu_slope"].sel(covariate="confidence_missing").to_numpy().ravel()
    assert np.quantile(ind, 0.03) > 0  # the simulated missing answers are mostly right


def test_missing_confidence_is_not_read_as_zero():
    """Held-out calls without a stated confidence are mostly right in this SIMULATED log; read as 0
    (logit 0.01, far below every stated value) they would get P(correct) near 0."""
    rm = _fitted()
    _, test = _simulated_split()
    missing = test["parsed"].to_numpy() & test["confidence"].isna().to_numpy()
    p = rm.p_correct(test).values.mean(axis=0)
    observed = test["correct"].to_numpy()[missing].mean()
    assert missing.sum() > 25 and observed > 0.6
    assert abs(p[missing].mean() - observed) < 0.12
    as_zero = test.assign(confidence=test["confidence"].fillna(SIGNAL_CLIP[0]))
    assert rm.p_correct(as_zero).values.mean(axis=0)[missing].mean() < observed - 0.2


def test_heldout_metrics_by_hand_and_the_profile():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.2, 0.6, 0.0])
    idx = np.array([[0, 1], [1, 1]])  # questions 0 and 1; calls 0-1 belong to question 0, 2-3 to question 1
    out = heldout_metrics(y, p, np.array([0, 0, 1, 1]), np.array([True, True, True, False]), idx,
                          reference_p=np.full(4, 0.5))
    assert out["log_score"] == pytest.approx(np.mean(np.log([0.8, 0.8, 0.6, 1.0])))
    # parsed calls: bins of 0.8 (y 1), 0.2 (y 0), 0.6 (y 1): ECE = (0.2 + 0.2 + 0.4) / 3
    assert out["ece"] == pytest.approx(0.8 / 3)
    assert out["ece"] == pytest.approx(expected_calibration_error(y[:3], p[:3], n_bins=15))  # the project's ECE
    lo, hi = out["log_score_ci"]  # resample 2 is question 1 twice: log(0.6) + log(1) over 2 calls
    assert lo == pytest.approx(np.log(0.6) / 2, rel=0.05) and hi <= out["log_score"] + 1e-12
    assert out["log_score_diff"] == pytest.approx(out["log_score"] - np.log(0.5))
    rows = _rows([0.9, None, 0.0, 0.95])
    prof = signal_profile(rows)
    assert prof.loc["m", "confidence null"] == 0.25 and prof.loc["m", "confidence = 0"] == 0.25
    assert prof.loc["m", "confidence at 0.95"] == 0.25
    assert "confidence" not in with_signals(rows, ()).columns


def test_logistic_baseline_sees_the_same_features_and_the_hurdle():
    rows = _rows([0.9, None, 0.7, 0.6, 0.95, 0.3, 0.8, 0.5], parsed=[True] * 7 + [False])
    d = _design(rows)
    F = logistic_features(d, rows)
    k = len(d.slope_covariates)  # 1 model, 2 subjects: model, subjects, cells, covariates, model x covariates
    assert F.shape == (8, 1 + 2 + 2 + k + k)
    np.testing.assert_array_equal(F[:, 5:5 + k], d.matrix(rows))
    p = logistic_baseline(d, rows, rows)
    assert p[-1] == 0.0 and np.all((p[:-1] > 0) & (p[:-1] < 1))


def test_an_indicator_constant_within_every_model_is_left_out():
    """A signal missing for whole models only (a provider without token probabilities): its indicator
    would equal each model's intercept, so it is left out, named; the signal itself stays. One model
    that lacks it on some calls keeps the indicator."""
    whole = pd.concat([_rows([0.9, 0.8, 0.7, 0.6]), _rows([None] * 4).assign(model="n")], ignore_index=True)
    d = _design(whole)
    assert "confidence" in d.slope_covariates and "confidence_missing" not in d.slope_covariates
    assert "constant within every model" in d.covariates_dropped["confidence_missing"]
    X = d.matrix(whole)
    np.testing.assert_array_equal(X[4:, d.slope_covariates.index("confidence")], 0.0)  # imputed: the mean
    partly = pd.concat([whole, _rows([0.9, None]).assign(model="p")], ignore_index=True)
    assert "confidence_missing" in _design(partly).slope_covariates
