"""Batch allocation: threshold, NDCH, NDCH(P), MIP — exact on hand-made inputs, MIP vs brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tiny_logs import CORRECT_12, MODELS, StubReliability, tiny_log

from bayes_router.evaluate import prepare, run_policy
from bayes_router.policies import make_policy
from bayes_router.policies.allocation import (
    allocate_mip,
    allocate_ndch,
    allocate_ndch_p,
    allocate_threshold,
    ndch_mixture,
)
from bayes_router.policies.base import expected_cost


def test_threshold_picks_cheapest_clearing_model_else_best():
    P = np.array([[0.9, 0.95, 0.99], [0.5, 0.8, 0.9], [0.1, 0.2, 0.6], [0.3, 0.1, 0.2]])
    C = np.array([[1.0, 2.0, 5.0]] * 4)
    assert allocate_threshold(P, C, 0.75).tolist() == [0, 1, 2, 0]  # last row: none clears, best is model 0


def test_ndch_mixture_spends_the_budget_on_the_hull():
    # Mean costs 1, 2, 3; mean accuracies 0.5, 0.55, 0.9 -> model 1 is under the hull chord 0 -> 2.
    n = 10
    P = np.tile([0.5, 0.55, 0.9], (n, 1))
    C = np.tile([1.0, 2.0, 3.0], (n, 1))
    cheap, dear, n_dear = ndch_mixture(P, C, budget_usd=2.0 * n)
    assert (cheap, dear, n_dear) == (0, 2, 5)
    assert ndch_mixture(P, C, 0.5 * n) == (0, 0, 0)
    assert ndch_mixture(P, C, 4.0 * n) == (2, 2, n)
    pick = allocate_ndch(P, C, 2.0 * n, seed=1)
    assert (pick == 2).sum() == 5 and (pick == 0).sum() == 5
    assert C[np.arange(n), pick].sum() <= 2.0 * n + 1e-12


def test_ndch_p_keeps_likeliest_questions_on_the_cheaper_model():
    P = np.array([[0.9, 0.95], [0.2, 0.9], [0.6, 0.9], [0.1, 0.9]])
    C = np.tile([1.0, 3.0], (4, 1))
    # mean acc: 0.45 vs 0.9; budget per question 2.0 -> ratio 0.5 -> 2 questions to the dear model
    pick = allocate_ndch_p(P, C, budget_usd=8.0)
    assert pick.tolist() == [0, 1, 0, 1]


def _brute_force(P, C, budget):
    n, m = P.shape
    best = -np.inf
    for combo in itertools.product(range(m), repeat=n):
        c = C[np.arange(n), combo].sum()
        if c <= budget + 1e-12:
            best = max(best, P[np.arange(n), combo].sum())
    return best


@pytest.mark.parametrize("seed", range(6))
def test_mip_matches_brute_force_and_respects_budget(seed):
    rng = np.random.default_rng(seed)
    n, m = 5, 3
    P = rng.uniform(0.1, 0.95, (n, m))
    C = np.sort(rng.uniform(0.5, 3.0, (n, m)), axis=1)
    lo, hi = C.min(axis=1).sum(), C.max(axis=1).sum()
    for frac in (0.1, 0.35, 0.6, 0.9):
        budget = lo + frac * (hi - lo)
        pick, status = allocate_mip(P, C, budget)
        assert status.startswith("optimal"), status
        assert C[np.arange(n), pick].sum() <= budget
        assert P[np.arange(n), pick].sum() == pytest.approx(_brute_force(P, C, budget), abs=1e-6)


def test_mip_infeasible_budget_falls_back_to_cheapest():
    P = np.array([[0.2, 0.9], [0.3, 0.8]])
    C = np.array([[1.0, 2.0], [1.5, 2.0]])
    pick, status = allocate_mip(P, C, budget_usd=1.0)
    assert pick.tolist() == [0, 0] and status.startswith("infeasible")


def _stubbed_setup(p_of):
    log = tiny_log(CORRECT_12)
    setup = prepare(log, MODELS, test_frac=0.5, seed=3)
    p = {(q, m): p_of(q, m) for q in range(12) for m in MODELS}
    setup.ctx.set_reliability("pre", StubReliability(p))
    return log, setup


@pytest.mark.parametrize("name", ["threshold", "ndch", "ndch-p", "mip"])
def test_allocation_policies_exact_accuracy_and_cost_on_tiny_log(name):
    # p(correct) = the truth softened: 0.8 where right, 0.2 where wrong (unparsed counts wrong).
    log, setup = _stubbed_setup(lambda q, m: 0.8 if CORRECT_12[q, MODELS.index(m)] == 1 else 0.2)
    policy = make_policy(name).fit(setup.ctx)
    out = run_policy(policy, setup)
    lookup = log.set_index(["question_id", "model"])
    chosen = out.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids)
    assert (out.n_calls == 1).all()
    want_acc = np.mean([lookup.loc[(q, m), "correct"] for q, m in chosen.items()])
    want_cost = np.mean([lookup.loc[(q, m), "cost_usd"] for q, m in chosen.items()])
    assert out.accuracy == pytest.approx(want_acc)
    assert out.cost_per_question == pytest.approx(want_cost)
    if name == "threshold":  # threshold 0.7: cheapest model that is right, else the cheapest (all 0.2 tie)
        for q, m in chosen.items():
            right = [mm for mm in MODELS if CORRECT_12[q, MODELS.index(mm)] == 1]
            assert m == (right[0] if right else "s")
    if name == "mip":
        P, C = policy.matrices(setup.test_calls())
        pick = np.array([MODELS.index(m) for m in chosen])
        assert C[np.arange(len(pick)), pick].sum() <= 0.5 * C[:, -1].sum()


def test_budget_knob_sweep_and_expected_cost_units():
    log, setup = _stubbed_setup(lambda q, m: {"s": 0.4, "m": 0.6, "b": 0.8}[m])
    pre = setup.test_calls().precall()
    ec = expected_cost(setup.ctx, pre)
    # prices are recovered exactly from the log: expected cost = prompt x price + mean completion x price
    train = setup.ctx.train_log
    for i in range(len(pre)):
        m, subj = pre.loc[i, "model"], pre.loc[i, "subject"]
        rows = train[(train["model"] == m)]
        by_subj = rows[rows["subject"] == subj]
        mean_ct = by_subj["completion_tokens"].mean() if len(by_subj) >= 5 else rows["completion_tokens"].mean()
        price = {"s": 0.1, "m": 0.5, "b": 2.0}[m]
        assert ec[i] == pytest.approx((pre.loc[i, "prompt_tokens"] + mean_ct) * price / 1e6, rel=1e-6)
    mip = make_policy("mip").fit(setup.ctx)
    prev = -1.0
    for frac in (0.2, 0.5, 0.8, 1.0):
        pol = mip.with_knob(frac)
        out = run_policy(pol, setup)
        P, C = pol.matrices(setup.test_calls())
        chosen = out.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids)
        pick = np.array([MODELS.index(m) for m in chosen])
        spent = C[np.arange(len(pick)), pick].sum()
        assert spent <= frac * C[:, -1].sum() or pol.status_.startswith("infeasible")
        expected_acc = P[np.arange(len(pick)), pick].mean()
        assert expected_acc >= prev - 1e-12  # more budget never lowers the optimum
        prev = expected_acc
