"""cascade: exact accuracy and cost on a hand-made log (every tier invoked is charged),
the knob's extremes, and one real-data smoke test."""

from __future__ import annotations

import numpy as np
import pytest
from _policy_stubs import PRICES, PROMPT, StubReliability, make_log, real_trio_context

from bayes_router.errors import InputError
from bayes_router.policies import RoutingContext, TestCalls, make_policy
from bayes_router.policies.cascade import cascade_stops

MODELS = ["small", "mid", "big"]
# question -> per tier (pred, completion tokens); the right answer is always "A".
# Short answers (< 100 tokens) get post-call confidence 0.9, long ones 0.2, unparsed 0.
SPEC = {
    201: [("A", 50), ("A", 50), ("A", 50)],      # small confident and right: 1 call
    202: [("B", 50), ("A", 50), ("A", 50)],      # small confident and wrong: 1 call
    203: [(None, 50), ("A", 50), ("A", 50)],     # small unparsed -> mid confident: 2 calls
    204: [("B", 300), ("C", 300), ("A", 300)],   # nobody confident -> big's answer: 3 calls
    205: [("A", 300), ("B", 300), ("D", 50)],    # small right but unsure -> ... big wrong: 3 calls
}


def _context():
    train = make_log([(q, m, "A", "A", 60) for q in range(1, 11) for m in MODELS])
    test = make_log([(q, m, "A", pred, toks) for q, tiers in SPEC.items()
                     for m, (pred, toks) in zip(MODELS, tiers, strict=True)])
    ctx = RoutingContext(train_log=train, models=MODELS, seed=0)
    post = StubReliability("post", {}, post_short=dict.fromkeys(MODELS, 0.9), post_long=dict.fromkeys(MODELS, 0.2))
    ctx.set_reliability("post", post)
    return ctx, test


def _cost(q, n_tiers):
    return sum((PROMPT + SPEC[q][i][1]) * PRICES[MODELS[i]] for i in range(n_tiers)) / 1e6


def test_cascade_stops_rule():
    assert cascade_stops([0.2, 0.5, 0.9], 0.5).tolist() == [False, True, True]


def test_cascade_on_hand_made_log_exact_accuracy_and_cost():
    ctx, test = _context()
    pol = make_policy("cascade", threshold=0.5).fit(ctx)
    calls = TestCalls(test, MODELS)
    answers = pol.route(calls)
    assert answers.to_dict() == {201: "A", 202: "B", 203: "A", 204: "A", 205: "D"}
    assert float((answers == calls.answers()).mean()) == pytest.approx(3 / 5)
    made = calls.calls_made
    assert made.groupby("question_id").size().to_dict() == {201: 1, 202: 1, 203: 2, 204: 3, 205: 3}
    expected = _cost(201, 1) + _cost(202, 1) + _cost(203, 2) + _cost(204, 3) + _cost(205, 3)
    assert made["cost_usd"].sum() == pytest.approx(expected)
    # tiers are called in order, cheapest first
    assert made.sort_values(["question_id", "step"]).groupby("question_id")["model"].first().eq("small").all()


def test_cascade_knob_extremes():
    ctx, test = _context()
    pol = make_policy("cascade").fit(ctx)
    calls = TestCalls(test, MODELS)
    pol.with_knob(0.0).route(calls)  # every answer clears 0: always the cheapest tier
    assert (calls.calls_made["model"] == "small").all() and len(calls.calls_made) == 5
    calls = TestCalls(test, MODELS)
    answers = pol.with_knob(1.01).route(calls)  # nothing clears: every tier on every question
    assert len(calls.calls_made) == 15
    assert answers.to_dict() == {q: tiers[-1][0] for q, tiers in SPEC.items()}
    assert pol.knob == "threshold" and np.all(np.diff(pol.knob_values()) > 0)


def test_cascade_rejects_unknown_tier():
    ctx, _ = _context()
    with pytest.raises(InputError, match="tiers"):
        make_policy("cascade", tiers=["small", "huge"]).fit(ctx)


@pytest.mark.realdata
def test_cascade_real_trio_smoke(real_trio_log):
    from conftest import TRIO

    ctx, test = real_trio_context(real_trio_log, TRIO)
    pol = make_policy("cascade", threshold=0.6).fit(ctx)
    calls = TestCalls(test, TRIO)
    answers = pol.route(calls)
    acc = float((answers.reindex(calls.question_ids) == calls.answers()).mean())
    assert 0.3 < acc < 0.9
    n = calls.calls_made.groupby("question_id").size()
    assert n.min() >= 1 and n.max() <= 3 and len(n) == len(calls.question_ids)


# ------------------------------------------------------------------ cascade-confidence
# question -> per tier (pred, stated confidence); the right answer is always "A"; every call has
# 50 completion tokens, so a call costs (1000 + 50) x price / 1e6 USD: small 1.05e-3, mid 4.2e-3,
# big 1.05e-2. Threshold 0.8.
STATED = {
    301: [("A", 0.90), ("A", 0.99), ("A", 0.99)],        # small states 0.90: stops, right, 1 call
    302: [("B", 0.95), ("A", 0.99), ("A", 0.99)],        # small overconfident and wrong: 1 call
    303: [("A", 0.50), ("A", 0.85), ("B", 0.99)],        # small unsure -> mid 0.85 stops: 2 calls
    304: [(None, 0.99), ("C", None), ("A", 0.30)],       # unparsed, then no stated confidence -> big: 3
    305: [("A", 0.60), ("B", 0.70), ("D", 0.99)],        # nobody sure enough -> big's wrong D: 3 calls
}
CALL_USD = {"small": 1.05e-3, "mid": 4.2e-3, "big": 1.05e-2}


def _stated_context():
    def with_conf(spec):
        log = make_log([(q, m, "A", pred, 50) for q, tiers in spec.items()
                        for m, (pred, _) in zip(MODELS, tiers, strict=True)])
        conf = {(q, m): c for q, tiers in spec.items() for m, (_, c) in zip(MODELS, tiers, strict=True)}
        log["confidence"] = [conf[(q, m)] for q, m in zip(log["question_id"], log["model"], strict=True)]
        log["confidence"] = log["confidence"].astype(float)
        return log

    train = with_conf({q: [("A", 0.9)] * 3 for q in range(1, 11)})
    return RoutingContext(train_log=train, models=MODELS, seed=0), with_conf(STATED)


def test_confidence_cascade_on_a_tiny_log_every_tier_charged():
    ctx, test = _stated_context()
    pol = make_policy("cascade-confidence", threshold=0.8).fit(ctx)
    calls = TestCalls(test, MODELS)
    answers = pol.route(calls)
    assert answers.to_dict() == {301: "A", 302: "B", 303: "A", 304: "A", 305: "D"}
    assert float((answers == calls.answers()).mean()) == pytest.approx(3 / 5)
    made = calls.calls_made
    assert made.groupby("question_id").size().to_dict() == {301: 1, 302: 1, 303: 2, 304: 3, 305: 3}
    # 5 small + 3 mid + 2 big calls = 5.25e-3 + 12.6e-3 + 21.0e-3 = 38.85e-3 USD
    assert made["cost_usd"].sum() == pytest.approx(38.85e-3)
    assert made.groupby("model").size().to_dict() == {"big": 2, "mid": 3, "small": 5}
    per_q = made.groupby("question_id")["cost_usd"].sum()
    assert per_q[304] == pytest.approx(CALL_USD["small"] + CALL_USD["mid"] + CALL_USD["big"])
    dec = pol.decisions_.set_index(["question_id", "tier"])
    assert bool(dec.loc[(303, 1), "stopped"]) and not bool(dec.loc[(304, 1), "stopped"])


def test_confidence_cascade_knob_extremes_and_refusals():
    ctx, test = _stated_context()
    pol = make_policy("cascade-confidence").fit(ctx)
    calls = TestCalls(test, MODELS)
    pol.with_knob(0.0).route(calls)  # every stated answer clears 0; 304 has none until the big tier
    assert calls.calls_made.groupby("question_id").size().to_dict() == {301: 1, 302: 1, 303: 1, 304: 3, 305: 1}
    calls = TestCalls(test, MODELS)
    answers = pol.with_knob(1.01).route(calls)  # nothing clears: every tier on every question
    assert len(calls.calls_made) == 15
    assert answers.to_dict() == {q: tiers[-1][0] for q, tiers in STATED.items()}
    no_conf, _ = _context()  # the hand-made log of the post-call cascade has no stated confidence
    with pytest.raises(InputError, match="no stated confidence"):
        make_policy("cascade-confidence").fit(no_conf)


def test_a_call_returns_the_logs_optional_post_call_signals():
    # the post-call model may use mean_token_prob / decisiveness: a call must return them where logged
    _, test = _stated_context()
    assert "mean_token_prob" not in TestCalls(test, MODELS).call([301], ["small"]).columns
    test = test.assign(mean_token_prob=0.25, decisiveness=0.75)
    obs = TestCalls(test, MODELS).call([301, 302], ["small", "mid"])
    assert obs["mean_token_prob"].tolist() == [0.25, 0.25] and obs["decisiveness"].tolist() == [0.75, 0.75]
    assert "correct" not in obs and "answer" not in obs
