"""Calibration metrics, reliability diagrams and recalibrators on synthetic predictors with known
calibration, the calibration study on a SIMULATED log, and one real-data smoke test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.special import expit
from sklearn import metrics as skm

from bayes_router.errors import InputError
from bayes_router.models import calibration as cal
from bayes_router.models.calibration import (
    HistogramBucketing,
    TemperatureScaling,
    brier_score,
    calibration_metrics,
    calibration_study,
    expected_calibration_error,
    log_loss,
    maximum_calibration_error,
    plot_reliability_diagram,
    reliability_table,
)

N = 20_000


def _calibrated(seed: int = 0, n: int = N):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    return rng.uniform(size=n) < p, p


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_ece_near_zero_when_calibrated_and_clearly_above_when_shifted(strategy):
    y, p = _calibrated()
    # pure binning noise: sum_b (n_b/n) E|gap_b| <= sqrt(0.25 / (n/15)) ~ 0.014 for 15 bins
    ece = expected_calibration_error(y, p, n_bins=15, strategy=strategy)
    assert ece < 0.02, ece
    shifted = np.clip(p + 0.15, 0, 1)
    ece_shift = expected_calibration_error(y, shifted, n_bins=15, strategy=strategy)
    assert ece_shift > 0.12, ece_shift
    assert maximum_calibration_error(y, shifted, 15, strategy) >= ece_shift


def test_brier_and_log_loss_match_scikit_learn():
    y, p = _calibrated(seed=1, n=2000)
    assert brier_score(y, p) == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
    assert log_loss(y, p) == pytest.approx(skm.log_loss(y, p), abs=1e-10)


def test_reliability_table_counts_and_intervals():
    y, p = _calibrated(seed=2, n=5000)
    for strategy in ("uniform", "quantile"):
        t = reliability_table(y, p, n_bins=10, strategy=strategy)
        assert t["count"].sum() == len(p)
        ne = t[t["count"] > 0]
        assert ((ne["ci95_lo"] <= ne["observed_rate"]) & (ne["observed_rate"] <= ne["ci95_hi"])).all()
        assert ((ne["lower"] <= ne["mean_predicted"]) & (ne["mean_predicted"] <= ne["upper"])).all()
    # a bin with no successes gets an interval from 0 (Jeffreys with the boundary fix)
    t0 = reliability_table(np.zeros(50, bool), np.full(50, 0.35), n_bins=10)
    assert t0.loc[3, "ci95_lo"] == 0 and 0 < t0.loc[3, "ci95_hi"] < 0.1
    eq = reliability_table(y, p, n_bins=10, strategy="quantile")["count"]
    assert eq.max() - eq.min() <= 2  # equal mass


def test_calibration_metrics_intervals_cover_point_and_are_seeded():
    y, p = _calibrated(seed=3, n=3000)
    m = calibration_metrics(y, p, n_boot=50, seed=0)
    for k in ("brier", "log_loss"):
        assert m[f"{k}_ci95_lo"] <= m[k] <= m[f"{k}_ci95_hi"]
    assert m == calibration_metrics(y, p, n_boot=50, seed=0)
    with pytest.raises(InputError):
        calibration_metrics(y, p + 1)


def test_temperature_scaling_recovers_known_temperature():
    rng = np.random.default_rng(4)
    true_t = 2.5
    z = rng.normal(0, 3, N)  # over-confident logits: truth is sigmoid(z / 2.5)
    y = rng.uniform(size=N) < expit(z / true_t)
    ts = TemperatureScaling(inputs="logit").fit(z, y)
    # honest tolerance: 4 asymptotic standard errors of the MLE of T, from the Fisher information
    s = expit(z / true_t)
    info_per_obs = np.mean(s * (1 - s) * (z / true_t**2) ** 2)
    se = 1 / np.sqrt(N * info_per_obs)
    assert abs(ts.temperature_ - true_t) < 4 * se, (ts.temperature_, se)
    # the same through probabilities; recalibration lowers ECE and log loss of the raw predictor
    p = expit(z)
    ts_p = TemperatureScaling().fit(p, y)
    assert ts_p.temperature_ == pytest.approx(ts.temperature_, rel=1e-4)
    assert expected_calibration_error(y, ts_p.transform(p)) < expected_calibration_error(y, p) / 3
    assert log_loss(y, ts_p.transform(p)) < log_loss(y, p)
    # a calibrated predictor needs no temperature; exact 0/1 predictions stay fixed
    y2, p2 = _calibrated(seed=5)
    assert abs(TemperatureScaling().fit(p2, y2).temperature_ - 1) < 0.1
    np.testing.assert_array_equal(ts_p.transform(np.array([0.0, 1.0])), [0.0, 1.0])


def test_histogram_bucketing_monotone_on_monotone_data():
    y, p = _calibrated(seed=6)
    for strategy in ("uniform", "quantile"):
        hb = HistogramBucketing(n_bins=10, strategy=strategy).fit(p, y)
        assert np.all(np.diff(hb.rates_) > 0), hb.rates_
        out = hb.transform(np.sort(p))
        assert np.all(np.diff(out) >= 0)
    # deterministic monotone data: success iff p > 0.5 -> buckets below 0.5 map to 0, above to 1
    p3 = np.linspace(0.001, 0.999, 1000)
    hb = HistogramBucketing(n_bins=10).fit(p3, p3 > 0.5)
    np.testing.assert_array_equal(hb.rates_, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    # each bucket maps to its calibration success rate; an empty bucket to its midpoint
    p4 = np.array([0.05, 0.06, 0.07, 0.95])
    y4 = np.array([1, 0, 0, 1])
    hb = HistogramBucketing(n_bins=10).fit(p4, y4)
    assert hb.rates_[0] == pytest.approx(1 / 3) and hb.rates_[5] == pytest.approx(0.55) and hb.rates_[9] == 1
    shrunk = HistogramBucketing(n_bins=10, prior_strength=3).fit(p4, y4)
    assert shrunk.rates_[0] == pytest.approx((1 + 3 * 0.06) / 6)


def test_plot_reliability_diagram_takes_and_returns_axes():
    import matplotlib.pyplot as plt

    y, p = _calibrated(seed=7, n=2000)
    fig, ax = plt.subplots()
    out = plot_reliability_diagram(y, p, ax=ax, label="calibrated")
    plot_reliability_diagram(y, np.clip(p + 0.1, 0, 1), ax=ax, label="shifted")
    assert out is ax
    assert {"calibrated", "shifted", "perfect calibration"} <= {h.get_label() for h in ax.get_legend_handles_labels()[0]}
    assert ax.get_xlabel() and ax.get_ylabel()
    plt.close(fig)


def test_calibration_study_on_simulated_log(sim_log_path):
    from bayes_router import load_call_log, load_questions

    log, questions = load_call_log(sim_log_path), load_questions(sim_log_path)  # SIMULATED data
    res = calibration_study(log, questions, ["small", "mid", "big"], bayes_stages=(), n_boot=20, seed=0)
    test_ids = set(res.split["test_question_ids"])
    assert test_ids.isdisjoint(res.split["fit_question_ids"])
    assert test_ids.isdisjoint(res.split["calibration_question_ids"])
    assert set(res.split["fit_question_ids"]).isdisjoint(res.split["calibration_question_ids"])
    assert set(res.predictions["question_id"]) == test_ids
    assert set(res.metrics["recalibration"]) == {"none", "temperature", "histogram"}
    assert set(res.metrics["model"]) == {"small", "mid", "big", "all"}
    assert ((res.predictions["p"] >= 0) & (res.predictions["p"] <= 1)).all()
    assert (res.temperatures["temperature"] > 0).all()
    again = calibration_study(log, questions, ["small", "mid", "big"], bayes_stages=(), n_boot=20, seed=0)
    np.testing.assert_allclose(res.predictions["p"], again.predictions["p"])


@pytest.mark.realdata
def test_calibration_study_real_smoke(real_trio_log_path):
    from bayes_router import load_call_log, load_questions

    log, questions = load_call_log(real_trio_log_path), load_questions(real_trio_log_path)
    trio = ["Meta-Llama-3_1-8B-Instruct", "Mixtral-8x7B-Instruct-v0.1", "Meta-Llama-3_1-70B-Instruct"]
    res = calibration_study(log, questions, trio, n_questions=300, bayes_stages=("pre",), sampler="pymc",
                            draws=50, tune=50, chains=1, n_boot=20, seed=0)
    assert set(res.metrics["predictor"]) == {"classifier", "bayes-pre"}
    assert np.isfinite(res.metrics[["ece_equal_width", "ece_equal_mass", "brier", "log_loss"]].to_numpy()).all()
    assert len(res.split["test_question_ids"]) == 90
    # plumbing check with a real signal: both predictors rank the 70B model above the 8B model
    raw = res.metrics[res.metrics["recalibration"] == "none"].set_index(["predictor", "model"])["mean_predicted"]
    for pred in ("classifier", "bayes-pre"):
        assert raw[(pred, trio[2])] > raw[(pred, trio[0])] + 0.05, raw


def test_reliability_table_equal_mass_bins_hold_their_rates():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=20_000)
    y = rng.uniform(size=p.size) < p
    t = cal.reliability_table(y, p, n_bins=10, strategy="quantile")
    assert len(t) == 10 and t["count"].sum() == p.size
    assert (t["count"].between(1_900, 2_100)).all()  # equal mass
    assert ((t["ci95_lo"] <= t["observed_rate"]) & (t["observed_rate"] <= t["ci95_hi"])).all()
    # a bin with no successes: its Jeffreys interval reaches 0
    t0 = cal.reliability_table(np.zeros(50, bool), np.full(50, 0.05), n_bins=5)
    assert t0.loc[t0["count"] > 0, "ci95_lo"].eq(0.0).all()

