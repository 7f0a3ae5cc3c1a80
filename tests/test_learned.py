"""Learned RouteLLM-style routers: scikit-learn API, determinism, they learn a planted text signal,
and the policies fit on train questions only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_logs import CORRECT_12, MODELS, tiny_log, tiny_questions

from bayes_router.policies import make_policy
from bayes_router.policies.learned import ClassifierRouter, KNNRouter, MFRouter
from bayes_router.study.evaluate import prepare, run_policy

ROUTERS = [
    lambda: KNNRouter(n_neighbors=10, random_state=0),
    lambda: MFRouter(dim=4, n_components=8, random_state=0),
    lambda: ClassifierRouter(C=10.0, random_state=0),
]


def _planted(n: int, seed: int):
    """Questions whose topic word decides which of two models is right (SIMULATED, for tests)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 2, n)
    filler = ["energy", "matrix", "court", "market", "protein", "theorem", "circuit", "ethics"]
    texts = [
        ("geometry triangle angle " if t == 0 else "poetry sonnet verse ")
        + " ".join(rng.choice(filler, 6)) for t in topic
    ]
    q = pd.DataFrame({"question_id": np.arange(n), "subject": np.where(topic == 0, "math", "english"),
                      "text": texts})
    p0 = np.where(topic == 0, 0.9, 0.2)
    p1 = np.where(topic == 0, 0.2, 0.9)
    Y = np.stack([rng.random(n) < p0, rng.random(n) < p1], axis=1).astype(float)
    return q, Y, topic


@pytest.mark.parametrize("make", ROUTERS, ids=["knn", "mf", "classifier"])
def test_router_learns_planted_signal_and_is_deterministic(make):
    q_train, Y, _ = _planted(300, 0)
    q_test, _, topic = _planted(100, 1)
    a = make().fit(q_train, pd.DataFrame(Y, columns=["geo", "poet"]))
    P = a.p_correct(q_test)  # questions x models, labelled
    assert P.shape == (100, 2) and list(P.columns) == ["geo", "poet"] and np.all((P >= 0) & (P <= 1))
    assert P.index.name == "question_id" and list(P.index) == list(q_test["question_id"])
    # the model that is right on the topic gets the higher predicted success, on new questions
    assert np.mean(np.argmax(P.to_numpy(), axis=1) == topic) > 0.9
    assert np.allclose(make().fit(q_train, Y).p_correct(q_test), P)


@pytest.mark.parametrize("make", ROUTERS, ids=["knn", "mf", "classifier"])
def test_router_is_a_scikit_learn_estimator(make):
    """repr, get_params and sklearn.base.clone work: a clone has the same parameters and no fitted state."""
    from sklearn.base import BaseEstimator, clone

    router = make()
    assert isinstance(router, BaseEstimator)
    params = router.get_params()
    assert params["random_state"] == 0 and type(router).__name__ + "(" in repr(router)
    q, Y, _ = _planted(60, 0)
    router.fit(q, Y)
    twin = clone(router)
    assert twin is not router and twin.get_params() == params and not hasattr(twin, "features_")
    other = clone(router).set_params(random_state=7)
    assert other.get_params()["random_state"] == 7 and router.get_params()["random_state"] == 0
    np.testing.assert_allclose(twin.fit(q, Y).p_correct(q), router.p_correct(q))


def test_router_rejects_misaligned_targets():
    q, Y, _ = _planted(20, 0)
    with pytest.raises(ValueError, match="n_questions, n_models"):
        KNNRouter().fit(q, Y[:10])


@pytest.mark.parametrize("name", ["knn", "mf", "classifier"])
def test_learned_policy_fits_on_train_only_and_charges_calls(name):
    log = tiny_log(CORRECT_12)
    qs = tiny_questions(12)
    setup = prepare(log, MODELS, questions=qs, test_frac=0.5, seed=3, cost_scale=0.0)
    policy = make_policy(name).fit(setup.ctx)
    assert set(policy.train_question_ids_) == set(setup.train_question_ids)
    assert not set(policy.train_question_ids_) & set(setup.test_question_ids)
    out = run_policy(policy, setup)
    lookup = log.set_index(["question_id", "model"])
    chosen = out.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids)
    assert out.accuracy == pytest.approx(np.mean([lookup.loc[k, "correct"] for k in chosen.items()]))
    assert out.cost_per_question == pytest.approx(np.mean([lookup.loc[k, "cost_usd"] for k in chosen.items()]))
    # a huge cost_scale makes every learned router call the cheapest model
    cheap = run_policy(policy.with_knob(1e9), setup)
    assert set(cheap.calls_made["model"]) == {"s"}
    vals = policy.knob_values()
    assert vals[0] == 0.0 and all(np.diff(vals) > 0)


def test_learned_policy_without_texts_is_a_clear_error():
    from bayes_router.errors import InputError

    setup = prepare(tiny_log(CORRECT_12), MODELS, test_frac=0.5, seed=3)
    with pytest.raises(InputError, match="question texts"):
        make_policy("knn").fit(setup.ctx)
