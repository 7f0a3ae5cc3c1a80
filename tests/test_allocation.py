"""Batch allocation: threshold, NDCH, NDCH(P), MIP — exact on hand-made inputs, MIP vs brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tiny_logs import CORRECT_12, MODELS, StubReliability, tiny_log

from bayes_router.policies import make_policy
from bayes_router.policies.allocation import (
    allocate_mip,
    allocate_ndch,
    allocate_ndch_p,
    allocate_threshold,
    ndch_mixture,
)
from bayes_router.policies.base import expected_cost
from bayes_router.study.evaluate import prepare, run_policy


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


# Picks worked out by hand for the 6 test questions of the tiny log (ids 1, 4, 5, 7, 10, 11; split seed 3),
# with p(correct) = 0.8 where the model is right and 0.2 where it is wrong or unparsed:
#  threshold 0.7: the cheapest model with p >= 0.7 -> m, s, m, s, m, b (every pick right).
#  ndch / ndch-p at half of always-big's cost: mean p is s 0.4, m 0.6, b 0.6 at mean costs 25, 133, 572
#    (x 1e-6 USD), so b is off the hull; 286 per question buys m everywhere (4 of 6 right).
#  mip at 0.5: the threshold picks cost 1097 <= 1716: the budget does not bind, same picks.
#  mip at 0.25 (858): keeping b on question 11 would cost three 0.8s elsewhere; so 11 goes to a
#    0.2 model (s or m tie in p) and the other five keep their 0.8 picks: 5 of 6 right.
HAND_PICKS = {
    ("threshold", None): ["m", "s", "m", "s", "m", "b"],
    ("ndch", None): ["m"] * 6,
    ("ndch-p", None): ["m"] * 6,
    ("mip", None): ["m", "s", "m", "s", "m", "b"],
    ("mip", 0.25): ["m", "s", "m", "s", "m", ("s", "m")],
}


@pytest.mark.parametrize("name,budget_frac", list(HAND_PICKS))
def test_allocation_policies_exact_picks_accuracy_and_cost_on_tiny_log(name, budget_frac):
    log, setup = _stubbed_setup(lambda q, m: 0.8 if CORRECT_12[q, MODELS.index(m)] == 1 else 0.2)
    assert setup.test_question_ids.tolist() == [1, 4, 5, 7, 10, 11]
    policy = make_policy(name).fit(setup.ctx)
    if budget_frac is not None:
        policy = policy.with_knob(budget_frac)
    out = run_policy(policy, setup)
    chosen = out.calls_made.set_index("question_id")["model"].reindex(setup.test_question_ids).tolist()
    want = HAND_PICKS[name, budget_frac]
    assert all(c in w if isinstance(w, tuple) else c == w for c, w in zip(chosen, want, strict=True)), chosen
    assert (out.n_calls == 1).all()
    # accuracy and USD from the log's rows of the hand picks (every call charged at its logged cost)
    lookup = log.set_index(["question_id", "model"])
    want_acc = {"threshold": 1.0, "ndch": 4 / 6, "ndch-p": 4 / 6, "mip": 1.0 if budget_frac is None else 5 / 6}[name]
    assert out.accuracy == pytest.approx(want_acc)
    want_cost = np.mean([lookup.loc[(q, m), "cost_usd"] for q, m in zip(setup.test_question_ids, chosen, strict=True)])
    assert out.cost_per_question == pytest.approx(want_cost)
    if name == "mip":
        P, C = policy.matrices(setup.test_calls())
        pick = np.array([MODELS.index(m) for m in chosen])
        assert C[np.arange(len(pick)), pick].sum() <= policy.params["budget_frac"] * C[:, -1].sum()


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
