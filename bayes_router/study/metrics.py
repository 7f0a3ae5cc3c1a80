"""Metrics for comparing routing policies: bootstrap intervals, cost-accuracy
frontiers, the non-decreasing convex hull and AIQ.

Conventions
-----------
* Intervals are percentile bootstrap intervals over TEST QUESTIONS: the questions
  are resampled with replacement; every policy is scored on the same resamples,
  so differences between policies are paired.
* Cost is USD per question (every call a policy makes is charged).
* The non-decreasing convex hull (NDCH) of a set of (cost, accuracy) points is
  the upper concave envelope of the points that are not dominated by a cheaper
  point. Any point on it is reachable by randomly mixing two configurations,
  which is why frontiers are compared on their hulls.
* AIQ (average improvement in quality, after RouteLLM / "ROUTERBENCH"):
  over a common cost range ``[lo, hi]`` (by default the smallest and largest
  frontier cost over all policies compared), the area under a policy's NDCH
  divided by ``hi - lo``. Beyond its most expensive point the hull is extended
  flat (spending more can always be declined); below its cheapest point the
  policy cannot operate, so its accuracy counts as ZERO there. A policy whose
  frontier is one point (e.g. ``always:<model>``) is a step function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def bootstrap_indices(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_boot, n) int array of question indices resampled with replacement (fixed seed)."""
    if n < 1:
        raise ValueError("bootstrap over zero questions")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> list[float]:
    """[lo, hi] percentile interval of bootstrap replicates."""
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(samples, dtype=float), [a, 1.0 - a])
    return [float(lo), float(hi)]


def bootstrap_mean_ci(values: np.ndarray, idx: np.ndarray, level: float = 0.95) -> list[float]:
    """Percentile interval of the mean of per-question ``values`` (shape (n,)) over resamples ``idx``."""
    values = np.asarray(values, dtype=float)
    return percentile_ci(values[idx].mean(axis=1), level)


def bootstrap_stat_ci(
    stat: Callable[..., float], arrays: Sequence[np.ndarray], idx: np.ndarray, level: float = 0.95
) -> list[float]:
    """Percentile interval of ``stat(*[a[rows] for a in arrays])`` over resamples ``idx`` (paired)."""
    arrays = [np.asarray(a, dtype=float) for a in arrays]
    reps = np.array([stat(*[a[rows] for a in arrays]) for rows in idx])
    return percentile_ci(reps, level)


def summarize_policy(
    correct: np.ndarray, cost_usd: np.ndarray, n_calls: np.ndarray, idx: np.ndarray,
    level: float = 0.95, second_call_rate: bool = False,
) -> dict:
    """The RESULTS.json entry of one policy from per-question arrays (all shape (n_test,)).

    correct: 1 if the final answer is right; cost_usd: USD charged for all calls on the
    question; n_calls: number of calls made on it.
    """
    correct = np.asarray(correct, dtype=float)
    cost_usd = np.asarray(cost_usd, dtype=float)
    n_calls = np.asarray(n_calls, dtype=float)
    out = {
        "accuracy": float(correct.mean()),
        "accuracy_ci95": bootstrap_mean_ci(correct, idx, level),
        "cost_per_question": float(cost_usd.mean()),
        "cost_ci95": bootstrap_mean_ci(cost_usd, idx, level),
        "calls_per_question": float(n_calls.mean()),
    }
    if second_call_rate:
        out["second_call_rate"] = float((n_calls >= 2).mean())
    return out


def compare_to_reference(
    correct: np.ndarray, cost_usd: np.ndarray, ref_correct: np.ndarray, ref_cost_usd: np.ndarray,
    idx: np.ndarray, level: float = 0.95,
) -> dict:
    """Paired bootstrap comparison of a policy with a reference (always-big) on the same questions.

    accuracy_diff = acc(policy) - acc(ref); accuracy_share = acc(policy) / acc(ref)
    (share of the big model's accuracy reached); cost_ratio = cost(policy) / cost(ref).
    """
    c, k = np.asarray(correct, float), np.asarray(cost_usd, float)
    rc, rk = np.asarray(ref_correct, float), np.asarray(ref_cost_usd, float)
    acc_p, acc_r = c[idx].mean(axis=1), rc[idx].mean(axis=1)
    cost_p, cost_r = k[idx].mean(axis=1), rk[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(acc_r > 0, acc_p / acc_r, np.nan)
        ratio = np.where(cost_r > 0, cost_p / cost_r, np.nan)
    out = {
        "accuracy_diff": float(c.mean() - rc.mean()),
        "accuracy_diff_ci95": percentile_ci(acc_p - acc_r, level),
    }
    if rc.mean() > 0 and np.isfinite(share).all():
        out["accuracy_share"] = float(c.mean() / rc.mean())
        out["accuracy_share_ci95"] = percentile_ci(share, level)
    if rk.mean() > 0 and np.isfinite(ratio).all():
        out["cost_ratio"] = float(k.mean() / rk.mean())
        out["cost_ratio_ci95"] = percentile_ci(ratio, level)
    return out


def nondecreasing_convex_hull(costs, accuracies) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices of the non-decreasing convex hull of (cost, accuracy) points.

    Returns (hull_costs, hull_accuracies, indices into the input), sorted by cost:
    the upper concave envelope of the Pareto points (cheaper or equal cost, strictly
    higher accuracy). Between two vertices, accuracy is reachable by a mixture.
    """
    c = np.asarray(costs, dtype=float)
    a = np.asarray(accuracies, dtype=float)
    if c.shape != a.shape or c.ndim != 1 or len(c) == 0:
        raise ValueError("need equal-length 1-d cost and accuracy arrays with at least one point")
    order = np.lexsort((-a, c))  # by cost, then higher accuracy first
    pareto: list[int] = []
    best = -np.inf
    for i in order:
        if a[i] > best:
            pareto.append(int(i))
            best = a[i]
    hull: list[int] = []
    for i in pareto:  # monotone-chain upper hull
        while len(hull) >= 2:
            i0, i1 = hull[-2], hull[-1]
            cross = (c[i1] - c[i0]) * (a[i] - a[i0]) - (a[i1] - a[i0]) * (c[i] - c[i0])
            if cross >= 0:  # i1 lies on or below the chord i0 -> i: not a vertex
                hull.pop()
            else:
                break
        hull.append(i)
    idx = np.asarray(hull, dtype=int)
    return c[idx], a[idx], idx


def hull_accuracy(hull_costs: np.ndarray, hull_accs: np.ndarray, cost) -> np.ndarray:
    """Accuracy on the hull at ``cost``: linear between vertices, flat beyond the last,
    zero below the first (see the module's conventions)."""
    x = np.asarray(cost, dtype=float)
    y = np.interp(x, hull_costs, hull_accs)
    return np.where(x < hull_costs[0], 0.0, y)


def area_under_hull(hull_costs: np.ndarray, hull_accs: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral of :func:`hull_accuracy` over [lo, hi] (piecewise linear)."""
    if hi <= lo:
        return 0.0
    knots = np.unique(np.concatenate([[lo, hi], hull_costs[(hull_costs > lo) & (hull_costs < hi)]]))
    total = 0.0
    for x0, x1 in zip(knots[:-1], knots[1:], strict=True):
        if 0.5 * (x0 + x1) < hull_costs[0]:
            continue  # the policy cannot operate this cheaply
        y0, y1 = np.interp([x0, x1], hull_costs, hull_accs)
        total += 0.5 * (y0 + y1) * (x1 - x0)
    return float(total)


def aiq(frontiers: Mapping[str, Sequence[Sequence[float]]], cost_range: tuple[float, float] | None = None) -> dict:
    """AIQ per policy: area under its NDCH over the common cost range, divided by the range.

    ``frontiers``: name -> [[cost_per_question (USD), accuracy], ...]. The range defaults
    to [min, max] of all frontier costs. If the range is empty (every point at one
    cost), AIQ is the hull accuracy at that cost.
    """
    pts = {k: np.asarray(v, dtype=float).reshape(-1, 2) for k, v in frontiers.items() if len(v)}
    if not pts:
        return {}
    if cost_range is None:
        all_c = np.concatenate([p[:, 0] for p in pts.values()])
        lo, hi = float(all_c.min()), float(all_c.max())
    else:
        lo, hi = map(float, cost_range)
    out = {}
    for name, p in pts.items():
        hc, ha, _ = nondecreasing_convex_hull(p[:, 0], p[:, 1])
        if hi > lo:
            out[name] = area_under_hull(hc, ha, lo, hi) / (hi - lo)
        else:
            out[name] = float(hull_accuracy(hc, ha, lo))
    return out
