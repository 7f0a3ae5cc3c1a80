"""Bootstrap intervals, the non-decreasing convex hull and AIQ, against hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_router.study.metrics import (
    aiq,
    area_under_hull,
    bootstrap_indices,
    bootstrap_mean_ci,
    compare_to_reference,
    hull_accuracy,
    nondecreasing_convex_hull,
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
