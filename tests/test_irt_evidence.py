"""Signals that move with the question's difficulty (bayes_router.models.irt.evidence): the ordinal
fit, the value of a second call against brute-force enumeration, and calibration on SIMULATED calls
whose right answers run longer on harder questions (as on MMLU-Pro)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import approx_fprime

from bayes_router.models.irt.evidence import Evidence, OrdinalRows, _neg_log_posterior, fit_ordinal
from bayes_router.models.irt.post import (
    CallOutcomes,
    SignalModel,
    second_call_value,
    success_given_first,
    success_given_own_signals,
)
from bayes_router.models.irt.prediction import sigmoid


def _ordinal_draws(rng, d, cuts, slope):
    cdf = sigmoid(np.asarray(cuts)[None, :] - slope * d[:, None])
    return (rng.random(len(d))[:, None] > cdf).sum(axis=1)


def test_ordinal_fit_recovers_a_simulated_slope_and_its_gradient_is_exact():
    rng = np.random.default_rng(0)
    d = rng.normal(0.0, 1.0, 4000)
    cuts, slope = np.array([-2.0, -1.0, 0.0, 0.5, 1.5]), -0.8
    bins = _ordinal_draws(rng, d, cuts, slope)
    fit = fit_ordinal(bins, d, 6)
    assert abs(fit["slope"] - slope) < 0.1 and np.abs(np.array(fit["cuts"]) - cuts).max() < 0.15
    x = np.array([-1.0, 0.1, -0.2, 0.3, 0.0, 0.3])
    analytic = _neg_log_posterior(x, bins, d, 6)[1]
    numeric = approx_fprime(x, lambda v: _neg_log_posterior(v, bins, d, 6)[0], 1e-6)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4)


def _fit_entry(slope_right, slope_wrong, missing=(0.1, 0.05)):
    return {"right": {"cuts": [-1.0, 0.0, 1.0], "slope": slope_right, "n": 50},
            "wrong": {"cuts": [-0.5, 0.5, 1.2], "slope": slope_wrong, "n": 80}, "missing": list(missing)}


def test_second_call_value_matches_brute_force_enumeration():
    """One draw, two rows: the quadrature and the outcome algebra against a dense grid over d and an
    explicit sum over every outcome of the second call (unparsed, 5 token outcomes x 3 others)."""
    ab1, disc1, ab2, disc2 = (np.array([[v, v + 0.3]]) for v in (0.4, 1.2, -0.2, 0.7))
    mu, sd = np.array([[0.2, -0.5]]), np.array([[1.1, 0.8]])
    first_rows = OrdinalRows.from_fits([_fit_entry(-0.9, 0.2), _fit_entry(0.5, -0.3)])
    evidence1 = Evidence(np.array([0.3, -0.2]), [(first_rows, np.array([2, 4]))])  # bin 2; "missing"
    dep = OrdinalRows.from_fits([_fit_entry(-0.6, 0.1), _fit_entry(0.0, 0.4)])
    table = np.array([[[0.2, 0.5], [0.3, 0.3], [0.5, 0.2]]] * 2)  # P(other outcome | wrong, right)
    pu = np.array([0.15, 0.3])
    got = second_call_value(ab1, disc1, evidence1, ab2, disc2, mu, sd, CallOutcomes(pu, table, [dep]))

    grid = np.linspace(-8, 8, 4001)
    for r in range(2):
        d = mu[0, r] + sd[0, r] * grid
        w = np.exp(-0.5 * grid ** 2)
        def one(rows, y, b, r=r, d=d):  # P(outcome b | y, d) on the grid
            return rows.take([r]).prob_at(y, d[:, None], np.array([b]))[:, 0]

        p1, p2 = sigmoid(ab1[0, r] - disc1[0, r] * d), sigmoid(ab2[0, r] - disc2[0, r] * d)
        b1 = evidence1.terms[0][1][r]
        a = {0: (1 - p1) * one(first_rows, 0, b1), 1: p1 * np.exp(evidence1.log_ratio[r]) * one(first_rows, 1, b1)}
        outcomes = [{0: pu[r] * np.ones_like(d), 1: np.zeros_like(d)}]  # unparsed
        for b in range(5):  # 4 bins, then missing
            for o in range(3):
                outcomes.append({0: (1 - pu[r]) * one(dep, 0, b) * table[r, o, 0], 1: one(dep, 1, b) * table[r, o, 1]})
        k = {(y1, y2, i): np.sum(w * a[y1] * (p2 if y2 else 1 - p2) * out[y2])
             for y1 in (0, 1) for y2 in (0, 1) for i, out in enumerate(outcomes)}
        z = sum(k.values())
        p_first = sum(v for (y1, _, _), v in k.items() if y1) / z
        best = sum(max(k[1, 0, i] + k[1, 1, i], k[0, 1, i] + k[1, 1, i]) for i in range(len(outcomes))) / z
        np.testing.assert_allclose(got["p_first"][r], p_first, rtol=1e-4)
        np.testing.assert_allclose(got["gain"][r], best - p_first, atol=1e-5)
        p_second = sum(v for (_, y2, _), v in k.items() if y2) / z
        np.testing.assert_allclose(got["p_second"][r], p_second, rtol=1e-4)
    # with an unanswerable class the grid path agrees with the Gauss-Hermite one (one draw: no averaging)
    classes = ((np.full((1, 1), 0.7), None), (np.full((1, 1), 0.3), np.full((1, 1), 0.1)))
    mixed = second_call_value(ab1, disc1, evidence1, ab2, disc2, mu, sd, CallOutcomes(pu, table, [dep]), classes=classes)
    np.testing.assert_allclose(mixed["p_first"], success_given_own_signals(ab1, disc1, mu, sd, evidence1, 48, classes)[0],
                               rtol=1e-4)
    np.testing.assert_allclose(mixed["p_second"],
                               success_given_first(ab1, disc1, evidence1, ab2, disc2, mu, sd, 48, classes)[0], rtol=1e-4)


def _simulated_calls(rng, d, ability, model, right_slope):
    """SIMULATED calls: right answers' log tokens grow with difficulty, wrong ones do not."""
    correct = rng.random(len(d)) < sigmoid(ability - d)
    log_tokens = np.where(correct, 5.0 + right_slope * d, 5.6) + rng.normal(0.0, 0.4, len(d))
    return pd.DataFrame({"question_id": np.arange(len(d)), "model": model, "subject": "s", "question_chars": 100,
                         "parsed": True, "correct": correct, "completion_tokens": np.exp(log_tokens).round()})


def test_a_difficulty_aware_signal_model_is_calibrated_where_the_naive_one_is_not():
    """SIMULATED: two models share each question's difficulty d ~ Normal(0, 1) (known prior, true
    abilities, discrimination 1, one 'draw'); the first model's right answers run longer on harder
    questions. Read as independent of d, a long answer is taken for a wrong answer to a question of
    ordinary difficulty rather than for a hard question: the first call's own P(right) stays
    calibrated (one signal, binned given y), but the second model's chance is overestimated."""
    rng = np.random.default_rng(3)
    n = 6000
    d_train, d_test = rng.normal(0, 1, n), rng.normal(0, 1, n)
    train = _simulated_calls(rng, d_train, 0.8, "first", 0.6)
    test = _simulated_calls(rng, d_test, 0.8, "first", 0.6)
    second_right = rng.random(n) < sigmoid(0.3 - d_test)
    aware = SignalModel.fit(train, difficulty=d_train, difficulty_signals=("completion_tokens",))
    naive = SignalModel.fit(train)
    # P(bin <= k | y, d) = sigmoid(c_k - slope d): a positive slope moves the tokens up with d
    assert aware.params["first"]["signals"]["completion_tokens"]["ordinal"]["right"]["slope"] > 0.5
    ones, zeros = np.ones((1, n)), np.zeros((1, n))
    y = test["correct"].to_numpy()
    log_tokens = np.log(test["completion_tokens"].to_numpy())
    long = log_tokens > np.quantile(log_tokens, 0.7)
    bias = {}  # predicted minus realized accuracy on the long answers (1,800 calls: sampling sd ~0.012)
    for name, signals in (("aware", aware), ("naive", naive)):
        ev = signals.evidence(test)
        p_own = success_given_own_signals(0.8 * ones, ones, zeros, ones, ev, 32)[0]
        p_second = success_given_first(0.8 * ones, ones, ev, 0.3 * ones, ones, zeros, ones, 32)[0]
        bias[name] = (p_own[long].mean() - y[long].mean(), p_second[long].mean() - second_right[long].mean())
    assert abs(bias["aware"][0]) < 0.035 and abs(bias["naive"][0]) < 0.035
    assert abs(bias["aware"][1]) < 0.035 and bias["naive"][1] > 0.06


def test_the_unanswerable_class_makes_two_calls_fail_together():
    """Weight 1 on the unanswerable class: both calls are right by chance alone, independently of
    ability and difficulty; a weight w mixes that with the IRT's own joint."""
    from bayes_router.models.irt.post import joint_correctness

    ab, disc, mu, sd = np.full((1, 1), 2.0), np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1))
    g = np.full((1, 1), 0.1)
    K = joint_correctness(ab, disc, np.zeros(1), ab, disc, mu, sd, 24, classes=((0.0, None), (1.0, g)))[0]
    np.testing.assert_allclose(K, [[0.81, 0.09], [0.09, 0.01]], rtol=1e-6)
    ordinary = joint_correctness(ab, disc, np.zeros(1), ab, disc, mu, sd, 24)[0]
    mixed = joint_correctness(ab, disc, np.zeros(1), ab, disc, mu, sd, 24, classes=((0.8, None), (0.2, g)))[0]
    np.testing.assert_allclose(mixed, 0.8 * ordinary + 0.2 * K, rtol=1e-6)
    assert mixed[0, 0] > ordinary[0, 0]  # joint failure likelier than the IRT alone says
