"""Bootstrap intervals, the non-decreasing convex hull and AIQ, against hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_router.study.metrics import (
    accuracy_share_at_cost,
    aiq,
    aiq_bootstrap,
    area_under_hull,
    bootstrap_indices,
    bootstrap_mean_ci,
    compare_to_reference,
    cost_to_reach,
    hull_accuracy,
    nondecreasing_convex_hull,
    performance_gap_recovered,
    routellm_metrics,
    routellm_with_ci,
    savings_at_accuracy,
    summarize_policy,
)


def test_hull_drops_dominated_and_concave_violating_points():
    costs = [1.0, 2.0, 3.0, 2.5, 4.0]
    accs = [0.5, 0.55, 0.9, 0.4, 0.85]
    hc, ha, idx = nondecreasing_convex_hull(costs, accs)
    assert hc.tolist() == [1.0, 3.0] and ha.tolist() == [0.5, 0.9]
    assert idx.tolist() == [0, 2]


def test_hull_keeps_vertices_above_chord():
    hc, ha, _ = nondecreasing_convex_hull([0, 1, 2], [0.0, 0.8, 1.0])
    assert hc.tolist() == [0, 1, 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 1)), min_size=1, max_size=12))
def test_hull_dominates_every_point_and_is_nondecreasing_concave(points):
    c = np.array([p[0] for p in points])
    a = np.array([p[1] for p in points])
    hc, ha, _ = nondecreasing_convex_hull(c, a)
    assert np.all(np.diff(hc) > 0) and np.all(np.diff(ha) > 0)
    assert np.all(hull_accuracy(hc, ha, c) >= a - 1e-9)  # every point is on or under its hull
    if len(hc) >= 3:
        slopes = np.diff(ha) / np.diff(hc)
        assert np.all(np.diff(slopes) <= 1e-9)


def test_aiq_by_hand():
    # range [1, 3]; A: single point (1, 0.6) -> flat 0.6 -> AIQ 0.6
    # B: (2, 0.8) only -> zero on [1, 2), 0.8 on [2, 3] -> 0.4
    # C: (1, 0.4), (3, 0.8) -> linear -> mean 0.6
    got = aiq({"A": [[1, 0.6]], "B": [[2, 0.8]], "C": [[1, 0.4], [3, 0.8]]})
    assert got["A"] == pytest.approx(0.6)
    assert got["B"] == pytest.approx(0.4)
    assert got["C"] == pytest.approx(0.6)
    assert area_under_hull(np.array([1.0, 3.0]), np.array([0.4, 0.8]), 2.0, 3.0) == pytest.approx(0.7)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    x = (rng.random(500) < 0.7).astype(float)
    idx = bootstrap_indices(len(x), 1000, seed=5)
    lo, hi = bootstrap_mean_ci(x, idx)
    assert lo < x.mean() < hi
    se = x.std() / np.sqrt(len(x))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.2)  # normal approximation
    assert bootstrap_mean_ci(x, bootstrap_indices(len(x), 1000, seed=5)) == [lo, hi]


def test_summary_and_paired_comparison():
    correct = np.array([1, 0, 1, 1, 0, 1, 0, 1], float)
    cost = np.array([1, 2, 1, 3, 1, 1, 2, 1], float) * 1e-4
    calls = np.array([1, 2, 1, 2, 1, 1, 1, 1])
    idx = bootstrap_indices(8, 400, 0)
    s = summarize_policy(correct, cost, calls, idx, second_call_rate=True)
    assert s["accuracy"] == pytest.approx(5 / 8)
    assert s["cost_per_question"] == pytest.approx(12e-4 / 8)
    assert s["calls_per_question"] == pytest.approx(10 / 8)
    assert s["second_call_rate"] == pytest.approx(2 / 8)
    assert "second_call_rate" not in summarize_policy(correct, cost, calls, idx)
    cmp_same = compare_to_reference(correct, cost, correct, cost, idx)
    assert cmp_same["accuracy_diff"] == 0 and cmp_same["accuracy_diff_ci95"] == [0.0, 0.0]
    assert cmp_same["cost_ratio"] == pytest.approx(1.0)
    ref = np.ones(8)
    cmp = compare_to_reference(correct, cost, ref, cost * 2, idx)
    assert cmp["accuracy_share"] == pytest.approx(5 / 8)
    assert cmp["cost_ratio"] == pytest.approx(0.5)
    lo, hi = cmp["accuracy_diff_ci95"]
    assert lo <= -3 / 8 <= hi


# RouteLLM's metrics on a hand-made frontier. Weak model: 0.40 at 1.0 USD/question, strong: 0.80
# at 3.0, so the gap is 0.40 and the strong-call share is s = (cost - 1) / 2.
WEAK, STRONG = (1.0, 0.40), (3.0, 0.80)


def test_pgr_by_hand():
    assert performance_gap_recovered([0.4, 0.6, 0.8, 0.9], 0.4, 0.8).tolist() == pytest.approx([0, 0.5, 1, 1.25])
    with pytest.raises(ValueError, match="more accurate"):
        performance_gap_recovered(0.5, 0.6, 0.6)


def test_apgr_and_cpt_on_a_hand_made_frontier():
    # hull of the points and the weak point: (1, .40) (1.5, .60) (2, .72) (4, .82); (2.5, .65) is
    # dominated. Mean accuracy on [1, 3]: (0.5*0.5 + 0.66*0.5 + 0.745*1) / 2 = 0.6625 (at 3 the
    # hull is 0.72 + 0.05 = 0.77), so APGR = (0.6625 - 0.40) / 0.40 = 0.65625.
    # CPT(50%): accuracy 0.60 at cost 1.5 -> s = 0.25; CPT(80%): 0.72 at 2.0 -> s = 0.5;
    # CPT(95%): 0.78 on the last segment (slope 0.05 per USD) at 2 + 0.06 / 0.05 = 3.2 -> s = 1.1.
    m = routellm_metrics([[1.5, 0.60], [2.0, 0.72], [2.5, 0.65], [4.0, 0.82]], WEAK, STRONG)
    assert m["apgr"] == pytest.approx(0.65625)
    assert m["cpt"] == pytest.approx({"50": 0.25, "80": 0.5, "95": 1.1})
    assert m["cpt_cost_fraction_of_strong"] == pytest.approx({"50": 0.5, "80": 2 / 3, "95": 3.2 / 3})


def test_apgr_of_the_random_mixture_is_one_half_and_unreached_levels_are_none():
    mix = routellm_metrics([[3.0, 0.80]], WEAK, STRONG)  # always-strong: the hull is the mixing line
    assert mix["apgr"] == pytest.approx(0.5)
    assert mix["cpt"] == pytest.approx({"50": 0.5, "80": 0.8, "95": 0.95})
    # one point (2, 0.70): hull (1, .4) -> (2, .7), flat after. Mean on [1, 3]: (0.55 + 0.70) / 2
    # = 0.625 -> APGR 0.5625; CPT(50%) at 1 + 0.2 / 0.3 -> s = 1/3; 80% (0.72) never reached.
    m = routellm_metrics([[2.0, 0.70]], WEAK, STRONG)
    assert m["apgr"] == pytest.approx(0.5625)
    assert m["cpt"]["50"] == pytest.approx(1 / 3)
    assert m["cpt"]["80"] is None and m["cpt"]["95"] is None
    with pytest.raises(ValueError, match="costs more"):
        routellm_metrics([[2.0, 0.7]], (3.0, 0.4), (1.0, 0.8))


def test_routellm_intervals_from_per_question_arrays():
    rng = np.random.default_rng(1)
    n = 400
    weak = rng.random(n) < 0.4
    strong = weak | (rng.random(n) < 0.6)  # more accurate, errors nested
    pick = rng.random(n) < 0.5  # a router sending half the questions to the strong model
    routed = np.where(pick, strong, weak)
    cost_w, cost_s = np.full(n, 1.0), np.full(n, 3.0)
    idx = bootstrap_indices(n, 300, 0)
    out = routellm_with_ci(routed[None], np.where(pick, 3.0, 1.0)[None], weak, cost_w, strong, cost_s, idx)
    point = routellm_metrics([[np.where(pick, 3.0, 1.0).mean(), routed.mean()]],
                             (1.0, weak.mean()), (3.0, strong.mean()))
    assert out["apgr"] == pytest.approx(point["apgr"])
    lo, hi = out["apgr_ci95"]
    assert lo < out["apgr"] < hi and hi - lo < 0.2
    assert out["cpt_reached"]["95"] < 1.0 or out["cpt_ci95"]["95"][1] is not None
    assert out["n_boot_used"] == 300


def test_savings_at_equal_and_at_95_percent_accuracy_by_hand():
    ref_correct, ref_cost = np.array([1, 1, 0, 1]), np.full(4, 4.0)  # 0.75 at 4 USD
    sweep_correct = np.array([[1, 0, 0, 1], [1, 1, 0, 1]])  # 0.50 at 1 USD, 0.75 at 2 USD
    sweep_cost = np.array([np.full(4, 1.0), np.full(4, 2.0)])
    idx = bootstrap_indices(4, 200, 0)
    eq = savings_at_accuracy(sweep_correct, sweep_cost, ref_correct, ref_cost, idx)
    assert eq["savings"] == pytest.approx(0.5) and eq["fold"] == pytest.approx(2.0)
    assert eq["reached"] == 1.0  # the second setting answers exactly like the reference
    # 80% of 0.75 = 0.60: between (1, .50) and (2, .75), at 1 + 0.10 / 0.25 = 1.4 USD -> 65% saved
    assert savings_at_accuracy(sweep_correct, sweep_cost, ref_correct, ref_cost, idx, share=0.8)["savings"] \
        == pytest.approx(0.65)
    never = savings_at_accuracy(sweep_correct[:1], sweep_cost[:1], ref_correct, ref_cost, idx)
    assert never["savings"] is None and never["savings_ci95"][0] is None
    assert cost_to_reach([[1, 0.5], [2, 0.75]], 0.6) == pytest.approx(1.4)
    assert cost_to_reach([[1, 0.5]], 0.6) == np.inf


def test_accuracy_share_at_a_fraction_of_the_reference_cost_by_hand():
    ref_correct, ref_cost = np.array([1, 1, 0, 1]), np.full(4, 4.0)  # 0.75 at 4 USD
    sweep_correct = np.array([[1, 0, 0, 1], [1, 1, 0, 1]])  # 0.50 at 1 USD, 0.75 at 3 USD
    sweep_cost = np.array([np.full(4, 1.0), np.full(4, 3.0)])
    idx = bootstrap_indices(4, 200, 0)
    # at 50% of 4 USD = 2 USD the hull is halfway from (1, .50) to (3, .75): 0.625 = 5/6 of 0.75
    half = accuracy_share_at_cost(sweep_correct, sweep_cost, ref_correct, ref_cost, idx, 0.5)
    assert half["share"] == pytest.approx(5 / 6)
    lo, hi = half["share_ci95"]
    assert lo <= 5 / 6 <= hi
    # at 20% (0.8 USD) the policy cannot operate: zero, as in AIQ
    assert accuracy_share_at_cost(sweep_correct, sweep_cost, ref_correct, ref_cost, idx, 0.2)["share"] == 0.0


def test_accuracy_share_at_exactly_the_reference_cost_is_not_read_as_below_it():
    """A sweep whose cheapest point is the reference itself reaches share 1 at 1x its cost on every
    resample: the bootstrap's 2-D mean cost differs from the reference's 1-D one in the last bits,
    which once read as "cannot operate this cheaply" (share 0) on about half of them."""
    rng = np.random.default_rng(0)
    ref_correct, ref_cost = rng.random(1200) < 0.64, rng.gamma(2.0, 1e-4, 1200)
    sweep_correct = np.stack([ref_correct, rng.random(1200) < 0.7])
    sweep_cost = np.stack([ref_cost, 3.0 * ref_cost])
    at_cost = accuracy_share_at_cost(sweep_correct, sweep_cost, ref_correct, ref_cost, bootstrap_indices(1200, 300, 0), 1.0)
    assert at_cost["share"] == 1.0
    assert at_cost["share_ci95"] == [1.0, 1.0]
    assert hull_accuracy(np.array([2.0, 3.0]), np.array([0.5, 0.6]), 2.0 * (1 - 1e-6)) == 0.0  # truly cheaper: zero


def test_aiq_bootstrap_is_centred_on_aiq_and_its_differences_are_paired():
    rng = np.random.default_rng(0)
    n = 800
    right = rng.random(n) < 0.6
    sweeps = {  # two knob values each; "b" answers exactly like "a" plus 5% more right at the same cost
        "a": (np.stack([right, right | (rng.random(n) < 0.1)]), np.stack([np.full(n, 1.0), np.full(n, 2.0)])),
        "single": (np.atleast_2d(rng.random(n) < 0.55), np.atleast_2d(np.full(n, 1.5))),
    }
    better = sweeps["a"][0] | (rng.random((2, n)) < 0.05)
    sweeps["b"] = (better, sweeps["a"][1])
    idx = bootstrap_indices(n, 300, 1)
    out = aiq_bootstrap(sweeps, idx, reference="b")
    point = aiq({k: np.column_stack([k_.mean(axis=1), c.mean(axis=1)]) for k, (c, k_) in sweeps.items()})
    for name, (lo, hi) in out["aiq_ci95"].items():
        assert lo <= point[name] <= hi
    assert out["difference_ci95"]["b"] is None
    lo, hi = out["difference_ci95"]["a"]
    # b dominates a on every question, so the paired difference is positive on every resample,
    # and much tighter than the unpaired intervals of either
    assert 0.0 < lo <= hi
    width_a = np.subtract(*out["aiq_ci95"]["a"][::-1])
    assert hi - lo < 0.5 * width_a
    # one question's resamples: identity indices give the point estimate exactly
    same = aiq_bootstrap(sweeps, np.arange(n)[None, :], reference="b")
    assert same["aiq_ci95"]["a"][0] == pytest.approx(point["a"])
