"""Online routing: the sequential posterior, the pay-per-call gate, the harness and online trust.

Simulated logs (labelled simulated) except the one real-data smoke test at the end.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.special import expit

from bayes_router.cli import main
from bayes_router.data.io import write_call_log
from bayes_router.data.simulate import simulate_call_log
from bayes_router.errors import InputError
from bayes_router.models.online import OnlineReliability, _laplace_1d, batch_laplace
from bayes_router.models.online_trust import routing_cost_per_window, trust_trajectory_by_subject
from bayes_router.models.trust import RouterBelief, trust_trajectory
from bayes_router.models.trust_costs import TierCosts
from bayes_router.policies.online import OnlinePolicy, OnlineStream, make_online_policy
from bayes_router.study.online import (
    drift_scenario,
    online_study,
    run_online_policy,
    split_questions,
)

MODELS = ["small", "mid", "big"]


@pytest.fixture(scope="module")
def sim():
    """A SIMULATED three-model log and a price table matching its costs."""
    log, _, truth = simulate_call_log(700, models=MODELS, alpha=(-0.5, 0.3, 1.2), seed=3)
    prices = pd.DataFrame({"usd_per_m_input": truth.usd_per_m, "usd_per_m_output": truth.usd_per_m},
                          index=pd.Index(MODELS, name="model"))
    return log, prices


def _stream(log, n=200, seed=0):
    ids, _, _ = split_questions(log, MODELS, n, 0, 0, seed)
    order = np.random.default_rng(seed).permutation(ids)
    rows = log[log["question_id"].isin(ids)]
    return OnlineStream(rows, MODELS, order, sorted(log["subject"].unique()))


# ----------------------------------------------------------------------------- the update
def test_laplace_step_matches_a_hand_computed_mode():
    # Prior N(0, 1) on a logit, one success: the mode solves z = 1 - sigmoid(z), curvature 1 + s(1 - s).
    z_star = brentq(lambda z: z - (1 - expit(z)), -5, 5)
    z, w = _laplace_1d(0.0, 1.0, 1.0)
    assert z == pytest.approx(z_star, abs=1e-9)
    assert z == pytest.approx(0.4011, abs=1e-4)  # by hand: sigmoid(0.4011) = 0.5989, 1 - 0.5989 = 0.4011
    assert w == pytest.approx(expit(z_star) * (1 - expit(z_star)), abs=1e-9)
    # A failure mirrors it.
    assert _laplace_1d(0.0, 1.0, 0.0)[0] == pytest.approx(-z_star, abs=1e-9)


def test_one_observation_is_the_exact_laplace_posterior():
    post = OnlineReliability(2, 2)
    post.update(1, 0, 0.7, True)
    x = post.design_matrix([1], [0], [0.7])
    mode, cov = batch_laplace(post.prior_precision(), x, np.array([1.0]))
    np.testing.assert_allclose(post.mean, mode, atol=1e-8)
    np.testing.assert_allclose(post.cov, cov, atol=1e-8)


def test_online_posterior_tracks_the_batch_posterior():
    # SIMULATED outcomes of 3 models x 4 subjects with a length slope.
    rng = np.random.default_rng(0)
    n, k, s = 1500, 3, 4
    m, subj, z = rng.integers(0, k, n), rng.integers(0, s, n), rng.normal(0, 1, n)
    true = OnlineReliability(k, s)
    theta = rng.normal(0, 1, true.dim) * 0.6
    x = true.design_matrix(m, subj, z)
    y = (rng.random(n) < expit(x @ theta)).astype(float)
    post = OnlineReliability(k, s)
    for i in range(n):
        post.update(int(m[i]), int(subj[i]), float(z[i]), bool(y[i]))
    mode, cov = batch_laplace(post.prior_precision(), x, y)
    cells = true.design_matrix(np.repeat(np.arange(k), s), np.tile(np.arange(s), k), np.zeros(k * s))
    online_mean, batch_mean = cells @ post.mean, cells @ mode
    batch_sd = np.sqrt(np.einsum("ij,jk,ik->i", cells, cov, cells))
    online_sd = np.sqrt(np.einsum("ij,jk,ik->i", cells, post.cov, cells))
    assert np.max(np.abs(online_mean - batch_mean) / batch_sd) < 0.25  # within a quarter posterior sd
    np.testing.assert_allclose(online_sd, batch_sd, rtol=0.1)
    # An empirical-Bayes refit replaces the belief by the batch posterior at the chosen spread.
    refit = OnlineReliability(k, s, refit_every=n)
    for i in range(n):
        refit.update(int(m[i]), int(subj[i]), float(z[i]), bool(y[i]))
    assert refit.refits and refit.refits[0]["n_observations"] == n
    mode2, _ = batch_laplace(refit.prior_precision(), x, y)
    np.testing.assert_allclose(refit.mean, mode2, atol=1e-6)


def test_process_noise_forgets_and_zero_noise_does_not():
    static, drifting = OnlineReliability(2, 1), OnlineReliability(2, 1, process_noise=0.01)
    for p in (static, drifting):
        for _ in range(50):
            p.update(0, 0, 0.0, True)
    v0 = static.logit_belief(0, 0.0)[1][0, 0]
    for _ in range(100):
        static.step()
        drifting.step()
    assert static.logit_belief(0, 0.0)[1][0, 0] == v0
    assert drifting.logit_belief(0, 0.0)[1][0, 0] > v0 + 1.0  # alpha, gamma gain 0.01 each per step
    with pytest.raises(InputError, match="process_noise"):
        OnlineReliability(2, 1, process_noise=-1)


# ----------------------------------------------------------------------------- bandit feedback
class _Spy(OnlinePolicy):
    """Calls the cheapest model, and the big one on every third question; records what it saw."""

    name = "spy"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def route(self, q, calls):
        models = [0, 2] if q.position % 3 == 0 else [0]
        for m in models:
            obs = calls.call(m)
            self.seen.append((q.position, obs))
        return models[-1]


def test_a_policy_sees_only_what_it_paid_for(sim):
    log, prices = sim
    stream = _stream(log)
    correct, cost = stream.outcome()
    spy = _Spy(MODELS, 4, prices.to_numpy())
    out = run_online_policy(spy, stream)
    paid = {(i, o.model) for i, o in spy.seen}
    assert paid == {(i, 0) for i in range(len(stream))} | {(i, 2) for i in range(0, len(stream), 3)}
    for i, obs in spy.seen:  # each observation is that call's own logged outcome and cost
        assert obs.correct == correct[i, obs.model] and obs.cost_usd == cost[i, obs.model]
    expected = cost[:, 0] + np.where(np.arange(len(stream)) % 3 == 0, cost[:, 2], 0.0)
    np.testing.assert_allclose(out["cost_usd"], expected)  # every call charged, not only the answering one
    gate = stream.calls(1)
    public = [a for a in dir(gate) if not a.startswith("_")]
    assert sorted(public) == ["call", "called", "cost_usd"]  # no door to unpaid outcomes
    gate.call(1)
    with pytest.raises(ValueError, match="already called"):
        gate.call(1)


def test_answering_with_an_uncalled_model_is_refused(sim):
    log, prices = sim

    class Cheat(_Spy):
        def route(self, q, calls):
            calls.call(0)
            return 2

    with pytest.raises(ValueError, match="did not call"):
        run_online_policy(Cheat(MODELS, 4, prices.to_numpy()), _stream(log, 20))


# ----------------------------------------------------------------------------- the harness
def test_online_study_follows_the_contract_and_is_deterministic(sim):
    log, prices = sim
    kw = {"n_questions": 150, "n_orders": 2, "prices": prices, "offline_train_questions": 100, "progress": False,
          "policies": ["thompson", "ucb", "greedy", "linucb-budget", "offline:always:big"]}
    a = online_study(log, MODELS, seed=1, **kw)
    assert a["models"] == MODELS and a["n_questions"] == 150 and a["warm_start_questions"] == 0
    for p in a["policies"].values():
        assert set(p) >= {"accuracy", "cost_per_question", "curve", "seconds_per_update"}
        assert all(len(p["curve"][k]) == 150 for k in ("accuracy", "cost_per_question", "regret"))
        assert p["accuracy"] == pytest.approx(p["curve"]["accuracy"][-1], abs=1e-6)
    big = a["policies"]["offline:always:big"]
    stream_ids, _, _ = split_questions(log, MODELS, 150, 0, 100, 1)
    rows = log[log["question_id"].isin(stream_ids) & (log["model"] == "big")]
    assert big["accuracy"] == pytest.approx(rows["correct"].mean())
    assert big["cost_per_question"] == pytest.approx(rows["cost_usd"].mean())
    assert json.loads(json.dumps(a, allow_nan=False)) == a
    b = online_study(log, MODELS, seed=1, **kw)
    for d in (a, b):
        for p in d["policies"].values():
            p.pop("seconds_per_update")
        d["meta"].pop("offline_seconds_fit")
    assert a == b
    c = online_study(log, MODELS, seed=2, **{**kw, "policies": ["thompson"]})
    assert c["policies"]["thompson"]["curve"]["accuracy"] != a["policies"]["thompson"]["curve"]["accuracy"]


def test_thompson_learns_on_simulated_data(sim):
    log, prices = sim
    res = online_study(log, MODELS, n_questions=600, n_orders=1, prices=prices, cost_scale=0.0,
                       policies=["thompson"], progress=False, warm_start_questions=50)
    p = res["policies"]["thompson"]
    assert res["warm_start_questions"] == 50
    acc = np.array(p["curve"]["accuracy"]) * np.arange(1, 601)
    best = log.groupby("model")["correct"].mean().max()
    assert (acc[-1] - acc[299]) / 300 > best - 0.06  # second half close to the best model
    assert p["regret_growth_exponent"] < 0.9  # pseudo-regret grows sublinearly


def test_bad_policy_names_and_sizes_are_refused(sim):
    log, prices = sim
    with pytest.raises(InputError, match="unknown online policy 'thompsn'"):
        online_study(log, MODELS, 50, policies=["thompsn"], prices=prices, progress=False)
    with pytest.raises(InputError, match="offline:nope"):
        online_study(log, MODELS, 50, policies=["offline:nope"], prices=prices, progress=False)
    with pytest.raises(InputError, match="only 700 questions"):
        online_study(log, MODELS, 5000, policies=["greedy"], prices=prices, progress=False)
    with pytest.raises(InputError, match="not in the price table"):
        online_study(log, MODELS, 50, policies=["greedy"], progress=False)
    with pytest.raises(InputError, match="unknown parameter"):
        make_online_policy("ucb", MODELS, 4, prices.to_numpy(), 0.0, 0, width=2)


def test_drift_scenario_is_labelled_simulated_and_forgetting_notices():
    res = drift_scenario(1200, n_orders=1, rate=0.9, process_noise=5e-4, policies=["thompson", "offline:always:big"],
                         offline_train_questions=100, progress=False)
    assert res["meta"]["simulated"] is True
    assert "SIMULATED" in res["meta"]["scenario"]["label"]

    def after_drift(name):  # accuracy on questions 601-900, the 300 after the big model degrades
        acc = np.array(res["policies"][name]["curve"]["accuracy"]) * np.arange(1, 1201)
        return (acc[899] - acc[599]) / 300

    assert after_drift("thompson") > after_drift("thompson (no forgetting)") + 0.1
    frozen = np.array(res["policies"]["offline:always:big"]["curve"]["accuracy"]) * np.arange(1, 1201)
    assert after_drift("offline:always:big") < frozen[599] / 600 - 0.5  # the frozen policy routes into the drift


# ----------------------------------------------------------------------------- online trust
def test_trust_by_subject_hand_computed():
    beliefs = {
        "x": [RouterBelief("flat", (1.0,), (1.0,), (1.0,)), RouterBelief("sharp", (1.0,), (3.0,), (1.0,))],
        "y": [RouterBelief("flat", (1.0,), (1.0,), (1.0,)), RouterBelief("sharp", (1.0,), (1.0,), (3.0,))],
    }
    tickets = pd.DataFrame({"subject": ["x", "y"], "y": [1, 0]})
    traj = trust_trajectory_by_subject(beliefs, tickets)
    # flat: 1/2 then 1/2; sharp: P(1 | Beta(3, 1)) = 3/4, then P(0 | Beta(1, 3)) = 3/4.
    assert traj["sharp"].tolist() == pytest.approx([0.75 / 1.25, (9 / 16) / (9 / 16 + 1 / 4)])
    assert traj["predictive_need_big"].iloc[0] == pytest.approx(0.5 * 0.5 + 0.5 * 0.75)
    # One subject: the same as the single-belief trajectory of models.trust.
    y = [0, 1, 1, 0, 0, 0, 1]
    one = trust_trajectory_by_subject({"x": beliefs["x"]}, pd.DataFrame({"subject": ["x"] * 7, "y": y}))
    ref = trust_trajectory(beliefs["x"], y)
    np.testing.assert_allclose(one["sharp"], ref["sharp"].iloc[1:], atol=1e-12)
    costs = routing_cost_per_window(one, TierCosts(0.1, 0.5, 1.0, 0.5), window=7)
    assert costs["always big"].iloc[0] == pytest.approx(7.0)
    assert costs["routing by trust"].iloc[0] == pytest.approx(7 * 0.1 + 3 * 1.0)  # small first throughout


# ----------------------------------------------------------------------------- command line
def test_online_command_writes_online_json(sim, tmp_path, capsys):
    log, prices = sim
    log_path, price_path, out = tmp_path / "sim.parquet", tmp_path / "prices.csv", tmp_path / "ONLINE.json"
    write_call_log(log, log_path)
    prices.reset_index().to_csv(price_path, index=False)
    rc = main(["online", str(log_path), "--models", "small,mid,big", "--questions", "80", "--orders", "2",
               "--policies", "thompson,greedy", "--prices", str(price_path), "-o", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert sorted(doc["policies"]) == ["greedy", "thompson"] and doc["n_questions"] == 80
    assert "thompson" in capsys.readouterr().out
    rc = main(["online", str(log_path), "--models", "small,mid,big", "--policies", "nope",
               "--prices", str(price_path), "-o", str(tmp_path / "bad.json")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "bad.json").exists()


def test_online_on_real_trio_smoke(real_trio_log_path):
    from bayes_router.data.io import load_call_log
    from bayes_router.data.pools import pool_models
    from bayes_router.study.online import online_trust

    log = load_call_log(real_trio_log_path)
    res = online_study(log, pool_models("trio"), 300, n_orders=1, policies=["thompson", "greedy"], progress=False)
    assert 0.3 < res["policies"]["thompson"]["accuracy"] < 0.8
    trust = online_trust(log, pool_models("trio"), n_tickets=300, train_questions=300)
    assert np.allclose(trust["trajectory"][["pooled", "by-subject", "independent"]].sum(axis=1), 1.0)
