"""Trust learning over routers: the exact conjugate posterior against the issue's reference
numbers and an independent numerical integration, the PyMC model within Monte Carlo error,
the trajectory, the cost table, the CLI (and its refusals), and a real-log smoke test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from bayes_router.cli import main
from bayes_router.errors import InputError
from bayes_router.models.trust import RouterBelief, TrustModel, trust_posterior, trust_trajectory
from bayes_router.models.trust_costs import (
    TierCosts,
    cost_impact,
    sequential_cost,
    tier_costs_from_log,
)
from bayes_router.models.trust_data import (
    load_outcomes_csv,
    load_routers_yaml,
    outcomes_from_log,
    reference_example,
    routers_from_train,
    trust_by_subject,
)

DATA = Path(__file__).resolve().parent.parent / "data"

# The issue's printed reference numbers (rounded there to 4 and 3 decimals).
ISSUE_TRUST = {"simple": 0.3420, "medium": 0.4793, "complex": 0.1787}
ISSUE_WEIGHTS = {"simple": [0.262, 0.738], "medium": [0.963, 0.037], "complex": [0.738, 0.262]}


def _trust_by_quadrature(routers, y, prior=None):
    """Independent check: P(z = r | y) by numerically integrating θ^k (1-θ)^(n-k) against
    each router's Beta-mixture density (no Beta-function identities used)."""
    k, n = int(np.sum(y)), len(y)
    prior = np.full(len(routers), 1 / len(routers)) if prior is None else np.asarray(prior)
    marg = []
    for r in routers:
        def integrand(t, r=r):
            dens = sum(w * stats.beta.pdf(t, a, b) for w, a, b in zip(r.weights, r.alpha, r.beta, strict=True))
            return t**k * (1 - t) ** (n - k) * dens
        # split at the data's mode so quad sees the peak; the Beta(0.2, .) spikes are integrable
        val = sum(integrate.quad(integrand, lo, hi, limit=200, epsabs=0, epsrel=1e-12)[0]
                  for lo, hi in ((0, 0.05), (0.05, 0.3), (0.3, 0.9), (0.9, 1)))
        marg.append(val)
    t = prior * np.array(marg)
    return t / t.sum()


def test_reference_example_exact_matches_issue_and_quadrature():
    routers, y = reference_example()
    assert y.tolist() == [0] * 11 + [1] + [0] * 8 + [1, 1]
    post = trust_posterior(routers, y)
    got = dict(zip(post.names, post.trust, strict=True))
    for name, printed in ISSUE_TRUST.items():
        assert abs(got[name] - printed) <= 0.5e-4, (name, got[name], printed)  # printed to 4 decimals
    np.testing.assert_allclose(post.trust, _trust_by_quadrature(routers, y), atol=1e-6, rtol=0)
    assert abs(post.trust.sum() - 1) < 1e-12
    for prior_r, post_r in zip(routers, post.posteriors, strict=True):
        assert abs(sum(post_r.weights) - 1) < 1e-12
        np.testing.assert_allclose(post_r.weights, ISSUE_WEIGHTS[post_r.name], atol=0.5e-3)
        np.testing.assert_allclose(post_r.alpha, np.array(prior_r.alpha) + 3, atol=1e-12)
        np.testing.assert_allclose(post_r.beta, np.array(prior_r.beta) + 19, atol=1e-12)


def test_trust_depends_on_counts_only_and_respects_prior():
    routers, y = reference_example()
    base = trust_posterior(routers, y)
    shuffled = trust_posterior(routers, np.random.default_rng(3).permutation(y))
    np.testing.assert_allclose(base.trust, shuffled.trust, atol=1e-12)
    prior = {"simple": 0.5, "medium": 0.3, "complex": 0.2}
    post = trust_posterior(routers, y, prior=prior)
    expect = np.array(list(prior.values())) * np.exp(base.log_marginal)
    np.testing.assert_allclose(post.trust, expect / expect.sum(), atol=1e-12)
    np.testing.assert_allclose(post.trust, _trust_by_quadrature(routers, y, list(prior.values())), atol=1e-6)
    # no data: posterior is the prior
    np.testing.assert_allclose(trust_posterior(routers, [], prior=prior).trust, list(prior.values()), atol=1e-12)


def test_trajectory_starts_at_prior_and_ends_at_posterior():
    routers, y = reference_example()
    traj = trust_trajectory(routers, y)
    assert len(traj) == len(y) + 1 and traj["step"].tolist() == list(range(len(y) + 1))
    names = ["simple", "medium", "complex"]
    np.testing.assert_allclose(traj.loc[0, names].to_numpy(float), 1 / 3, atol=1e-12)
    np.testing.assert_allclose(traj[names].sum(axis=1), 1, atol=1e-12)
    final = trust_posterior(routers, y).trust
    np.testing.assert_allclose(traj.iloc[-1][names].to_numpy(float), final, atol=1e-12)
    mid = trust_posterior(routers, y[:12]).trust
    np.testing.assert_allclose(traj.loc[12, names].to_numpy(float), mid, atol=1e-12)
    # after eleven 0s the router with most mass near 0 (simple's Beta(1, 5) judge) leads
    assert traj.loc[11, names].astype(float).idxmax() == "simple"


def test_pymc_model_agrees_with_exact_within_mc_error():
    routers, y = reference_example()
    exact = trust_posterior(routers, y)
    model = TrustModel(routers, sampler_config={"draws": 1000, "tune": 1000, "chains": 2})
    model.fit(y, random_seed=1)
    diag = model.diagnostics()
    assert diag["divergences"] == 0 and diag["r_hat"] < 1.01, diag
    summ = model.trust_summary()
    for name, t in zip(exact.names, exact.trust, strict=True):
        row = summ.loc[name]
        assert row.trust_ess > 200, row  # enough draws for the MCSE to be meaningful
        # 4 MC standard errors (ESS-based): a false alarm has probability ~6e-5 per router
        assert abs(row.trust - t) < 4 * row.trust_mcse, (name, row.trust, t, row.trust_mcse)
    assert abs(summ["trust"].sum() - 1) < 1e-9


def test_router_validation_errors():
    with pytest.raises(InputError, match="sum to"):
        RouterBelief("r", (0.5, 0.4), (1, 1), (1, 1))
    with pytest.raises(InputError, match="positive"):
        RouterBelief("r", (1.0,), (-1.0,), (2.0,))
    with pytest.raises(InputError, match="negative mixture weight"):
        RouterBelief("r", (1.5, -0.5), (1, 1), (1, 1))
    routers, _ = reference_example()
    with pytest.raises(InputError, match="0 or 1"):
        trust_posterior(routers, [0, 1, 2])
    with pytest.raises(InputError, match="unique"):
        trust_posterior([routers[0], routers[0]], [0])
    with pytest.raises(InputError, match="prior"):
        trust_posterior(routers, [0], prior={"simple": 1.0})


def test_cost_impact_and_sequential_cost():
    routers, y = reference_example()
    post = trust_posterior(routers, y)
    costs = TierCosts(small=0.001, medium=0.004, big=0.02, medium_fails_given_small_fails=0.5)
    table = cost_impact(post, costs, n_tickets=100, seed=0)
    p = post.predictive_need_big()
    assert table.loc["always big", "expected_cost_usd"] == pytest.approx(100 * 0.02)
    assert table.loc["routing by trust", "expected_cost_usd"] == pytest.approx(100 * (0.001 + p * 0.02))
    assert table.loc["escalate small → medium → big", "expected_cost_usd"] == pytest.approx(
        100 * (0.001 + p * (0.004 + 0.5 * 0.02)))
    for _, row in table.iterrows():
        assert row.cost_ci95_lo <= row.expected_cost_usd <= row.cost_ci95_hi
    pd.testing.assert_frame_equal(table, cost_impact(post, costs, n_tickets=100, seed=0))  # seeded
    # when the small model is nearly as dear as the big one, trust routing goes straight to big
    dear = cost_impact(post, TierCosts(small=0.019, medium=0.0195, big=0.02), seed=0)
    assert dear.loc["routing by trust", "expected_cost_usd"] == pytest.approx(2.0)
    seq = sequential_cost(routers, y, costs=costs)
    assert len(seq) == len(y)
    assert seq["always big"].iloc[-1] == pytest.approx(len(y) * 0.02)
    n_small_first = int(seq["small_first"].sum())
    expect = (n_small_first * 0.001 + y[seq["small_first"].to_numpy()].sum() * 0.02
              + (len(y) - n_small_first) * 0.02)
    assert seq["routing by trust"].iloc[-1] == pytest.approx(expect)


def test_cli_example_and_files_agree(tmp_path, capsys):
    out = tmp_path / "trust.json"
    assert main(["trust", "--example", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["trust"]) == set(ISSUE_TRUST)
    for name, printed in ISSUE_TRUST.items():
        assert abs(doc["trust"][name] - printed) <= 0.5e-4
    assert doc["components"]["medium"]["beta"] == [[6.0, 28.0], [3.2, 19.05]]
    assert "simple" in capsys.readouterr().out
    out2 = tmp_path / "trust2.json"
    assert main(["trust", "--routers", str(DATA / "trust_example_routers.yaml"),
                 "--outcomes", str(DATA / "trust_example_outcomes.csv"), "-o", str(out2)]) == 0
    doc2 = json.loads(out2.read_text())
    for name in ISSUE_TRUST:
        assert doc2["trust"][name] == pytest.approx(doc["trust"][name], abs=1e-12)
    assert len(doc2["trajectory"]["simple"]) == 23


@pytest.mark.parametrize("yaml_text, csv_text, message", [
    ("routers:\n  a: [{weight: 0.5, alpha: 1, beta: 1}, {weight: 0.4, alpha: 2, beta: 2}]\n", "y\n0\n1\n", "sum to"),
    ("routers:\n  a: [{weight: 1.0, alpha: -1, beta: 1}]\n", "y\n0\n1\n", "positive"),
    ("routers:\n  a: [{weight: 1.0, alpha: 1, beta: 1}]\n", "y\n0\n2\n", "0 or 1"),
    ("routers:\n  a: [{weight: 1.0, alpha: 1, beta: 1}]\n", "outcome\n0\n1\n", "column 'y' missing"),
    ("routers:\n  a: [{weight: 1.0, alpha: 1}]\n", "y\n0\n", "weight, alpha, beta"),
    ("routers:\n  a: [{weight: 1.0, alpha: 1, beta: 1}]\nprior: {b: 1.0}\n", "y\n0\n", "prior"),
    ("routers: [1, 2\n", "y\n0\n", "YAML"),
])
def test_cli_refuses_bad_inputs_with_one_line_and_no_output(tmp_path, capsys, yaml_text, csv_text, message):
    r, o, out = tmp_path / "r.yaml", tmp_path / "o.csv", tmp_path / "t.json"
    r.write_text(yaml_text)
    o.write_text(csv_text)
    assert main(["trust", "--routers", str(r), "--outcomes", str(o), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_loaders_read_the_committed_example():
    routers, prior = load_routers_yaml(DATA / "trust_example_routers.yaml")
    assert [r.name for r in routers] == ["simple", "medium", "complex"]
    assert prior is not None and abs(sum(prior.values()) - 1) < 1e-9
    y = load_outcomes_csv(DATA / "trust_example_outcomes.csv")
    np.testing.assert_array_equal(y, reference_example()[1])


def test_outcomes_from_simulated_log(sim_log_path):
    from bayes_router import load_call_log

    log = load_call_log(sim_log_path)  # SIMULATED data
    out = outcomes_from_log(log, "small", "big")
    wide = log.pivot(index="question_id", columns="model", values="correct")
    expect = (~wide["small"].astype(bool) & wide["big"].astype(bool)).astype(int)
    np.testing.assert_array_equal(out.set_index("question_id")["y"].to_numpy(), expect.loc[out["question_id"]])
    costs = tier_costs_from_log(log, "small", "mid", "big")
    small_failed = ~wide["small"].astype(bool)
    assert costs.medium_fails_given_small_fails == pytest.approx((~wide.loc[small_failed, "mid"].astype(bool)).mean())
    assert costs.big == pytest.approx(log.loc[log["model"] == "big", "cost_usd"].mean())
    beliefs = routers_from_train(log, "small", "big")
    assert set(beliefs) == set(log["subject"].unique())
    for routers in beliefs.values():
        assert [r.name for r in routers] == ["pooled", "by-subject", "independent"]


@pytest.mark.realdata
def test_trust_by_subject_on_real_log(real_trio_log):
    from bayes_router.data.split import rows_for, sample_questions, train_test_split

    small, big = "Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B-Instruct"
    ids = sample_questions(real_trio_log, [small, big], None, seed=0)
    train, test = train_test_split(ids, test_frac=0.3, seed=0)
    beliefs = routers_from_train(rows_for(real_trio_log, [small, big], train), small, big)
    outcomes = outcomes_from_log(real_trio_log, small, big, test)
    assert set(outcomes["question_id"]).isdisjoint(set(train.tolist()))
    table = trust_by_subject(beliefs, outcomes)
    assert len(table) == 14
    cols = ["trust_pooled", "trust_by-subject", "trust_independent"]
    np.testing.assert_allclose(table[cols].sum(axis=1), 1, atol=1e-9)
    # errors of the two models correlate, so the router that assumes independence overstates how
    # often the big model rescues the small one, and held-out outcomes should distrust it
    assert (table["prior_mean_independent"] > table["observed_rate"]).mean() > 0.8
    assert table["trust_independent"].median() < 1 / 3
