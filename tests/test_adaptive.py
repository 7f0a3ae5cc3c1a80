"""bayes-adaptive: Noisy-OR, combination, the copula, value of information (hand-computed),
the policy on a hand-made log (exact accuracy and cost, every call charged), one real smoke test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _policy_stubs import PRICES, PROMPT, StubReliability, make_log, real_trio_context
from scipy import stats

from bayes_router.models.copula import (
    ErrorCorrelation,
    _std_normal_quadrature,
    conditional_success,
    joint_correct_probability,
)
from bayes_router.policies import RoutingContext, TestCalls, make_policy
from bayes_router.policies.adaptive import combining_summary, value_of_information
from bayes_router.policies.combining import (
    CallEvidence,
    combine_answers,
    letter_posterior,
    noisy_or,
)

NODES, WEIGHTS = _std_normal_quadrature(64)


def _s(q, loadings=None):
    q = np.asarray(q, float)
    lam = np.zeros(len(q)) if loadings is None else np.asarray(loadings, float)
    return conditional_success(q, lam, NODES)


# ------------------------------------------------------------------ Noisy-OR and combining
def test_noisy_or_hand_computed():
    assert noisy_or(0.6, 0.5) == pytest.approx(0.8)
    assert noisy_or(0.0, 0.3) == pytest.approx(0.3)
    np.testing.assert_allclose(noisy_or([0.9, 0.2], [0.9, 0.2]), [0.99, 0.36])


def test_combine_answers_agree_disagree_and_missing():
    letters, p, changed = combine_answers(["A", "A", "C", None, "D"], [0.6, 0.3, 0.7, 0.0, 0.5],
                                          ["A", "B", "B", "E", None], [0.5, 0.7, 0.4, 0.2, 0.9])
    assert list(letters) == ["A", "B", "C", "E", "D"]
    np.testing.assert_allclose(p, [0.8, 0.7, 0.7, 0.2, 0.5])
    assert list(changed) == [False, True, False, True, False]


# ------------------------------------------------------------------ the copula
def test_joint_probability_matches_bivariate_normal():
    q, lam = np.array([0.5, 0.6]), np.array([0.8, 0.7])
    rho = lam[0] * lam[1]
    t = stats.norm.ppf(q)
    expect = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf(t)
    assert joint_correct_probability(q, lam, n_nodes=64) == pytest.approx(expect, abs=2e-4)
    assert joint_correct_probability(q, [0, 0]) == pytest.approx(0.3)  # independence


def test_error_correlation_fit_recovers_loadings():
    rng = np.random.default_rng(3)
    n, lam = 3000, np.array([0.7, 0.5, 0.6])
    q = rng.uniform(0.2, 0.8, size=(n, 3))
    z = lam * rng.standard_normal((n, 1)) + np.sqrt(1 - lam**2) * rng.standard_normal((n, 3))
    correct = z < stats.norm.ppf(q)
    fit = ErrorCorrelation.fit(correct, q, ["a", "b", "c"])
    np.testing.assert_allclose(fit.loadings, lam, atol=0.1)
    assert fit.latent_correlation.loc["a", "b"] == pytest.approx(fit.loadings[0] * fit.loadings[1])


# ------------------------------------------------------------------ value of information
def test_voi_independent_uninformative_is_max_minus_current():
    # One call made (model 0, letter A, no evidence beyond the letter): p1 = q1 = 0.4.
    # Model 1 with q2 = 0.7: on disagreement switch to it, so P(final right) = q2 = 0.7.
    ev = CallEvidence.uninformative(2)
    s = _s([0.4, 0.7])
    voi = value_of_information(s, [(0, "A", 1.0, 1.0)], [1], ev, 0.0, WEIGHTS, [0.0, 0.002], 100.0)
    assert voi[0] == pytest.approx(0.7 - 0.4 - 100.0 * 0.002)
    # A worse second model is worth nothing before its cost: P(final right) stays 0.6.
    voi = value_of_information(_s([0.6, 0.3]), [(0, "A", 1.0, 1.0)], [1], ev, 0.0, WEIGHTS, [0.0, 0.0], 0.0)
    assert voi[0] == pytest.approx(0.0, abs=1e-9)


def test_voi_informative_evidence_hand_computed():
    # q1 = q2 = 0.5, independent, bins P(b|right) = (0.8, 0.2), P(b|wrong) = (0.2, 0.8), w = 0.
    # Agree: 0.25. New letter: per bin max(0.25*pr, 0.25*pw) = 0.2 + 0.2. E = 0.65, now 0.5.
    ev = CallEvidence(np.zeros((2, 1)), np.array([[0.8, 0.2]] * 2), np.array([[0.2, 0.8]] * 2), np.zeros(2))
    voi = value_of_information(_s([0.5, 0.5]), [(0, "A", 1.0, 1.0)], [1], ev, 0.0, WEIGHTS, [0, 0], 0.0)
    assert voi[0] == pytest.approx(0.15)


def test_voi_accounts_for_correlated_errors():
    # Model 0's evidence says "probably wrong" (likelihoods 0.2 vs 0.8: p1 = 0.2). With latent
    # correlation rho, P(model 1 right | evidence) = p1 P(C2|C1) + (1 - p1) P(C2|not C1),
    # computed here with scipy's bivariate normal; VOI = that - p1 (w = 0, no cost).
    q1, q2, lam = 0.5, 0.6, np.array([0.8, 0.8])
    rho = lam[0] * lam[1]
    t1, t2 = stats.norm.ppf([q1, q2])
    pi11 = stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([t1, t2])
    p1 = 0.5 * 0.2 / (0.5 * 0.2 + 0.5 * 0.8)
    q2_given = p1 * pi11 / q1 + (1 - p1) * (q2 - pi11) / (1 - q1)
    ev = CallEvidence.uninformative(2)
    called = [(0, "A", 0.2, 0.8)]
    letters, support, _, _ = letter_posterior(_s([q1, q2], lam), called, 0.0, WEIGHTS)
    assert support[0] == pytest.approx(p1, abs=1e-6)
    voi_corr = value_of_information(_s([q1, q2], lam), called, [1], ev, 0.0, WEIGHTS, [0, 0], 0.0)[0]
    voi_ind = value_of_information(_s([q1, q2]), called, [1], ev, 0.0, WEIGHTS, [0, 0], 0.0)[0]
    assert voi_corr == pytest.approx(q2_given - p1, abs=2e-4)
    assert voi_ind == pytest.approx(q2 - p1, abs=1e-6)
    assert voi_corr < voi_ind - 0.1  # a hard question is hard for everyone


def test_letter_posterior_agreement_under_independence_and_correlation():
    called = [(0, "A", 1.0, 1.0), (1, "A", 1.0, 1.0)]
    _, s_ind, _, _ = letter_posterior(_s([0.6, 0.5]), called, 0.0, WEIGHTS)
    assert s_ind[0] == pytest.approx(1.0)  # w = 0: two wrong answers never agree
    # w = 0.1, independent: P(A) = 0.6*0.5 / (0.6*0.5 + 0.4*0.5*0.1)
    _, s_w, _, _ = letter_posterior(_s([0.6, 0.5]), called, 0.1, WEIGHTS)
    assert s_w[0] == pytest.approx(0.3 / (0.3 + 0.02))
    # correlated: P(A) = pi11 / (pi11 + 0.1 * pi00), pi from scipy's bivariate normal
    lam = np.array([0.8, 0.8])
    t = stats.norm.ppf([0.6, 0.5])
    pi11 = stats.multivariate_normal(mean=[0, 0], cov=[[1, 0.64], [0.64, 1]]).cdf(t)
    pi00 = 1 - 0.6 - 0.5 + pi11
    _, s_c, _, _ = letter_posterior(_s([0.6, 0.5], lam), called, 0.1, WEIGHTS)
    assert s_c[0] == pytest.approx(pi11 / (pi11 + 0.1 * pi00), abs=1e-4)
    assert s_c[0] < s_w[0]  # correlated agreement is weaker evidence
    # disagreeing letters: the larger support wins
    letters, sup, _, _ = letter_posterior(_s([0.6, 0.5]), [(0, "A", 1, 1), (1, "B", 1, 1)], 0.0, WEIGHTS)
    assert letters[int(np.argmax(sup))] == "A"
    assert sup == pytest.approx([0.6 * 0.5 / (0.3 + 0.2 + 0.2), 0.4 * 0.5 / 0.7])


# ------------------------------------------------------------------ the policy, hand-made log
def _hand_made_context():
    train = make_log([(q, m, "A", "A" if (q + i) % 3 else "B", 60 + 10 * i)
                      for q in range(1, 31) for i, m in enumerate(["small", "big"])])
    # Test questions 101..105 (see test below): (small pred, small tokens, big pred, big tokens)
    spec = {101: ("A", 50, "A", 50), 102: ("B", 50, "A", 50), 103: (None, 50, "A", 50),
            104: ("B", 300, "A", 50), 105: ("A", 300, "C", 50)}
    test = make_log([row for q, (sp, st, bp, bt) in spec.items()
                     for row in ((q, "small", "A", sp, st), (q, "big", "A", bp, bt))])
    ctx = RoutingContext(train_log=train, models=["small", "big"], cost_scale=30.0, seed=0)
    ctx.set_reliability("pre", StubReliability("pre", {"small": 0.6, "big": 0.8}))
    ctx.set_reliability("post", StubReliability("post", {"small": 0.6, "big": 0.8},
                                                post_short={"small": 0.9, "big": 0.9},
                                                post_long={"small": 0.1, "big": 0.1}))
    return ctx, test


def test_adaptive_on_hand_made_log_exact_accuracy_and_cost():
    ctx, test = _hand_made_context()
    pol = make_policy("bayes-adaptive", threshold=0.0).fit(ctx)
    # Fix the learned pieces to hand-chosen values so every decision can be computed by hand:
    # independence, evidence bins split at d = 0 (short answers d > 0), P(unparsed | wrong) = 0.5.
    pol.correlation_ = ErrorCorrelation.independent(ctx.models)
    pol.evidence_ = CallEvidence(np.zeros((2, 1)), np.array([[0.1, 0.9]] * 2), np.array([[0.9, 0.1]] * 2),
                                 np.array([0.5, 0.5]))
    pol.wrong_agreement_ = 0.0
    calls = TestCalls(test, ctx.models)
    answers = pol.route(calls)
    # Expected costs (prompt + the train mean completion): small 1000 + 60 tokens at $1/M = 0.00106,
    # big 1000 + 70 at $10/M = 0.0107.
    # First call: EU small 0.6 - 30 * 0.00107 = 0.568 > big 0.8 - 0.32 = 0.48: small everywhere.
    # Short parsed small: p1 = 0.6*0.9 / (0.6*0.9 + 0.4*0.5*0.1) = 0.964 -> VOI < 0: stop (101, 102).
    # Unparsed small: p1 = 0 -> VOI = 0.8 - 0.32 > 0: call big (103).
    # Long small: p1 = 0.6*0.1 / (0.06 + 0.4*0.5*0.9) = 0.25 -> VOI = 0.8 - 0.25 - 0.32 > 0 (104, 105).
    # Disagreeing letters: big's short answer has far larger support than small's long one.
    assert answers.to_dict() == {101: "A", 102: "B", 103: "A", 104: "A", 105: "C"}
    truth = calls.answers()
    accuracy = float((answers == truth).mean())
    assert accuracy == pytest.approx(3 / 5)
    made = calls.calls_made
    assert sorted(made.loc[made["model"] == "big", "question_id"]) == [103, 104, 105]
    assert (made["model"] == "small").sum() == 5
    expected_cost = (sum((PROMPT + t) * PRICES["small"] for t in (50, 50, 50, 300, 300))
                     + 3 * (PROMPT + 50) * PRICES["big"]) / 1e6
    assert made["cost_usd"].sum() == pytest.approx(expected_cost)
    dec = pol.decisions_.set_index("question_id")
    assert dec.loc[104, "changed"] and dec.loc[105, "changed"] and not dec.loc[101, "changed"]
    assert dec["n_calls"].tolist() == [1, 1, 2, 2, 2]
    # combining, counted by hand: 103 (no letter -> A) and 104 (B -> A) helped, 105 (A -> C) hurt
    summary = combining_summary(pol.decisions_, truth)
    assert summary["changed_rate"] == pytest.approx(3 / 5)
    assert (summary["changed_and_helped"], summary["changed_and_hurt"], summary["changed_neither"]) == (2, 1, 0)
    assert summary["accuracy_first_answer_on_multi_call"] == pytest.approx(1 / 3)
    assert summary["accuracy_final_answer_on_multi_call"] == pytest.approx(2 / 3)
    # Noisy-OR on the first two: 103 A (the only letter), 104 A (0.9 > 0.1), 105 C (0.9 > 0.1)
    assert dec["noisy_or_answer_first_two"].tolist()[2:] == ["A", "A", "C"]
    assert summary["accuracy_noisy_or_on_two_calls"] == pytest.approx(2 / 3)
    assert summary["second_call_rate"] == pytest.approx(3 / 5) and summary["third_call_rate"] == 0.0
    # the second call's predicted gain is its VOI plus lambda (30) x big's expected cost; realized: +1, +1,
    # -1 over the three two-call questions
    two = dec.loc[[103, 104, 105]]
    np.testing.assert_allclose(two["gain_second"] - two["voi_second"], 30 * 1070 * 10 / 1e6, rtol=1e-6)
    assert summary["predicted_gain_on_two_calls"] == pytest.approx(two["gain_second"].mean())
    assert summary["realized_gain_on_two_calls"] == pytest.approx(1 / 3)
    lo, hi = summary["realized_gain_on_two_calls_ci95"]
    assert -1 <= lo < 1 / 3 < hi <= 1


def test_adaptive_free_calls_call_everything_and_expensive_calls_call_once():
    ctx, test = _hand_made_context()
    pol = make_policy("bayes-adaptive", cost_scale=0.0).fit(ctx)
    calls = TestCalls(test, ctx.models)
    pol.route(calls)
    made = calls.calls_made
    # lambda = 0: the first call is the most accurate model; further calls only where VOI > 0.
    assert (made.loc[made["step"] == 1, "model"] == "big").all()
    pricey = make_policy("bayes-adaptive").with_knob(1e6)
    pricey.__dict__.update({k: v for k, v in pol.__dict__.items() if k != "params"})
    calls = TestCalls(test, ctx.models)
    pricey.route(calls)
    assert len(calls.calls_made) == 5 and (calls.calls_made["model"] == "small").all()


# ------------------------------------------------------------------ real data, one smoke test
@pytest.mark.realdata
def test_adaptive_real_trio_smoke(real_trio_log):
    from conftest import TRIO

    ctx, test = real_trio_context(real_trio_log, TRIO)
    pol = make_policy("bayes-adaptive").fit(ctx)
    assert 0.0 < pol.correlation_.latent_correlation.iloc[0, 2] < 1.0  # errors correlate positively
    calls = TestCalls(test, TRIO)
    answers = pol.route(calls)
    acc = float((answers.reindex(calls.question_ids) == calls.answers()).mean())
    assert 0.3 < acc < 0.9
    made = calls.calls_made
    assert made.groupby("question_id").size().max() <= 3
    charged = test.set_index(["question_id", "model"]).loc[list(zip(made["question_id"], made["model"], strict=True)), "cost_usd"]
    assert made["cost_usd"].sum() == pytest.approx(float(charged.sum()))
    assert isinstance(pol.decisions_, pd.DataFrame) and len(pol.decisions_) == len(calls.question_ids)


def test_call_evidence_crosses_stated_confidence_bins_by_hand():
    # one model, one bin of the logit shift (d = 0 everywhere), two equal-mass bins of stated
    # confidence split at the median 0.9, plus the "none stated" bin: B = 3.
    # right: bins (low, high, none) counts (0, 3, 0) + 1 -> (1, 4, 1) / 6;
    # wrong: (2, 0, 1) + 1 -> (3, 1, 2) / 6; P(unparsed | wrong) = (0 + 0.5) / (3 + 1) = 0.125.
    correct = np.array([[1], [1], [1], [0], [0], [0]], bool)
    conf = np.array([[0.9], [0.9], [0.9], [0.5], [0.5], [np.nan]])
    half = np.full((6, 1), 0.5)
    ev = CallEvidence.fit(correct, np.ones((6, 1), bool), half, half, n_bins=1, confidence=conf, confidence_bins=2)
    assert ev.p_bin_right.shape == (1, 3)
    assert ev.likelihood(0, True, 0.5, 0.5, 0.95) == pytest.approx((4 / 6, 0.875 / 6))
    assert ev.likelihood(0, True, 0.5, 0.5, 0.5) == pytest.approx((1 / 6, 0.875 * 3 / 6))
    assert ev.likelihood(0, True, 0.5, 0.5, None) == pytest.approx((1 / 6, 0.875 * 2 / 6))
    # a log without stated confidence keeps the bins of the logit shift alone
    plain = CallEvidence.fit(correct, np.ones((6, 1), bool), half, half, n_bins=1,
                             confidence=np.full((6, 1), np.nan))
    assert plain.conf_edges is None and plain.p_bin_right.shape == (1, 1)
