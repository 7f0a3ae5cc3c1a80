"""always:<model>, random, oracle and the TestCalls contract, on a tiny hand-made log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_logs import CORRECT_12, MODELS, tiny_log

from bayes_router.errors import InputError
from bayes_router.policies import REGISTRY, default_policy_names, make_policy
from bayes_router.policies.base import Policy, TestCalls, answer_with
from bayes_router.study.evaluate import prepare, run_policy


@pytest.fixture()
def log():
    return tiny_log(CORRECT_12)


@pytest.fixture()
def setup(log):
    return prepare(log, MODELS, test_frac=0.5, seed=3)


def _direct(log, qids):
    """(correct, cost) matrices (question x model) straight from the log."""
    sub = log[log["question_id"].isin(qids)]
    corr = sub.pivot(index="question_id", columns="model", values="correct")[MODELS].astype(bool)
    cost = sub.pivot(index="question_id", columns="model", values="cost_usd")[MODELS]
    return corr.loc[qids], cost.loc[qids]


@pytest.mark.parametrize("model", MODELS)
def test_always_matches_direct_computation(log, setup, model):
    out = run_policy(make_policy(f"always:{model}").fit(setup.ctx), setup)
    corr, cost = _direct(log, setup.test_question_ids)
    assert out.accuracy == pytest.approx(corr[model].mean())
    assert out.cost_per_question == pytest.approx(cost[model].mean())
    assert (out.n_calls == 1).all()
    assert list(out.calls_made["model"].unique()) == [model]


def test_oracle_cheapest_correct_else_cheapest(log, setup):
    out = run_policy(make_policy("oracle").fit(setup.ctx), setup)
    corr, cost = _direct(log, setup.test_question_ids)
    want_model = []
    for q in setup.test_question_ids:
        right = [m for m in MODELS if corr.loc[q, m]]
        pool = right if right else MODELS
        want_model.append(min(pool, key=lambda m: cost.loc[q, m]))
    got = out.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids).tolist()
    assert got == want_model
    assert out.accuracy == pytest.approx(corr.any(axis=1).mean())
    want_cost = np.mean([cost.loc[q, m] for q, m in zip(setup.test_question_ids, want_model, strict=True)])
    assert out.cost_per_question == pytest.approx(want_cost)


def test_oracle_exact_numbers_on_all_questions(log):
    # Hand count over CORRECT_12: 9 questions have some model right (rows 3 and 8 do not).
    s = prepare(log, MODELS, test_frac=0.99, seed=0)  # 11 of 12 questions in test
    out = run_policy(make_policy("oracle").fit(s.ctx), s)
    right = (CORRECT_12 == 1).any(axis=1)
    assert out.accuracy == pytest.approx(right[s.test_question_ids].mean())


def test_random_charges_each_chosen_call_and_is_seeded(log, setup):
    corr, cost = _direct(log, setup.test_question_ids)
    a = run_policy(make_policy("random").fit(setup.ctx), setup)
    b = run_policy(make_policy("random").fit(setup.ctx), setup)
    picks = a.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids)
    assert picks.tolist() == b.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids).tolist()
    want_acc = np.mean([corr.loc[q, m] for q, m in picks.items()])
    want_cost = np.mean([cost.loc[q, m] for q, m in picks.items()])
    assert a.accuracy == pytest.approx(want_acc)
    assert a.cost_per_question == pytest.approx(want_cost)


def test_testcalls_hides_outcomes_and_refuses_second_identical_call(log, setup):
    calls = setup.test_calls()
    pre = calls.precall()
    assert not {"answer", "pred", "correct", "completion_tokens", "cost_usd"} & set(pre.columns)
    assert len(pre) == len(calls) * len(MODELS)
    q = calls.question_ids[:2]
    obs = calls.call(q, ["s", "b"])
    assert "correct" not in obs.columns and "answer" not in obs.columns
    with pytest.raises(ValueError, match="already called"):
        calls.call(q[:1], ["s"])
    calls.call(q[:1], ["b"])
    made = calls.calls_made
    assert made["step"].tolist() == [1, 1, 2]
    assert made["cost_usd"].sum() == pytest.approx(
        log.set_index(["question_id", "model"]).loc[[(q[0], "s"), (q[1], "b"), (q[0], "b")], "cost_usd"].sum()
    )


def test_two_calls_on_one_question_are_both_charged(log, setup):
    class TwoCalls(Policy):
        name = "two-calls-test"

        def route(self, calls: TestCalls) -> pd.Series:
            qids = calls.question_ids
            calls.call(qids, ["s"] * len(qids))
            return answer_with(calls, pd.Series("b", index=qids))

    out = run_policy(TwoCalls().fit(setup.ctx), setup)
    corr, cost = _direct(log, setup.test_question_ids)
    assert (out.n_calls == 2).all()
    assert out.cost_per_question == pytest.approx((cost["s"] + cost["b"]).mean())
    assert out.accuracy == pytest.approx(corr["b"].mean())


def test_answer_without_a_call_is_refused(setup):
    class Cheat(Policy):
        name = "cheat-test"

        def route(self, calls):
            return pd.Series("A", index=calls.question_ids)  # the right letter, never called

    with pytest.raises(ValueError, match="none of its calls returned"):
        run_policy(Cheat().fit(setup.ctx), setup)


def test_registry_names_and_errors():
    # the policy names of the contract, plus the stated-confidence cascade, written out in their
    # default order: a policy that fails to register fails here
    design = ["random", "oracle", "bayes-adaptive", "cascade", "cascade-confidence", "threshold", "ndch", "ndch-p",
              "mip", "knn", "mf", "classifier"]
    assert sorted(n for n in REGISTRY if n != "always") == sorted(design)
    names = default_policy_names(MODELS)
    assert names == ["always:s", "always:m", "always:b", *design]
    with pytest.raises(InputError, match="unknown policy"):
        make_policy("no-such-policy")
    with pytest.raises(InputError, match="unknown parameter"):
        make_policy("mip", budget=3)
    with pytest.raises(InputError, match="needs a model"):
        make_policy("always:")


def test_always_unknown_model_is_refused(setup):
    with pytest.raises(InputError, match="not in the pool"):
        make_policy("always:zzz").fit(setup.ctx)
