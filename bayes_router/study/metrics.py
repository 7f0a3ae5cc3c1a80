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
* RouteLLM's metrics (Ong et al., 2024) against a weak and a strong model: PGR, APGR and
  CPT(x%) (:func:`routellm_metrics`, :func:`routellm_with_ci`), and the savings at a share of
  a reference model's accuracy (:func:`savings_at_accuracy`), all on the same NDCH.
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


#: Relative slack below a hull's first cost still read as that cost. Why: a mean cost of the same
#: calls summed in another order (a 2-D bootstrap mean against a 1-D one) differs in the last bits,
#: and a policy whose cheapest point IS the reference (always-<model>) then read as "cannot operate
#: at 1x its cost" on about half of the resamples: share intervals of [0, 1] at exactly 1x.
COST_RELATIVE_SLACK = 1e-9


def hull_accuracy(hull_costs: np.ndarray, hull_accs: np.ndarray, cost) -> np.ndarray:
    """Accuracy on the hull at ``cost``: linear between vertices, flat beyond the last,
    zero below the first (see the module's conventions; within :data:`COST_RELATIVE_SLACK`
    of the first cost counts as at it)."""
    x = np.asarray(cost, dtype=float)
    y = np.interp(x, hull_costs, hull_accs)
    return np.where(x < hull_costs[0] * (1.0 - COST_RELATIVE_SLACK), 0.0, y)


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


# ------------------------------------------------------------------ RouteLLM's metrics
def aiq_bootstrap(sweeps: Mapping[str, tuple[np.ndarray, np.ndarray]], idx: np.ndarray, reference: str | None = None,
                  level: float = 0.95) -> dict:
    """Paired bootstrap intervals of AIQ: on every resample of test questions each policy's knob
    sweep is re-scored (:func:`bootstrap_frontier_points`), the common cost range recomputed and
    :func:`aiq` taken. ``sweeps``: name -> ((k, n) correct, (k, n) cost in USD).

    Returns ``aiq_ci95`` (name -> [lo, hi]) and, with ``reference``, ``difference_ci95`` (name ->
    [lo, hi] of AIQ(reference) - AIQ(name), paired on the same resamples; None for the reference).
    Why: "its AIQ is the highest" compares policies, and differences of 0.01 are within the noise
    of 1,200 test questions."""
    names = list(sweeps)
    points = {n: bootstrap_frontier_points(*sweeps[n], idx) for n in names}
    reps = np.empty((len(idx), len(names)))
    for b in range(len(idx)):
        one = aiq({n: points[n][b] for n in names})
        reps[b] = [one[n] for n in names]
    out = {"aiq_ci95": {n: percentile_ci(reps[:, i], level) for i, n in enumerate(names)}}
    if reference is not None and reference in sweeps:
        r = names.index(reference)
        out["difference_ci95"] = {n: None if n == reference else percentile_ci(reps[:, r] - reps[:, i], level)
                                  for i, n in enumerate(names)}
    return out


#: The quality levels (shares of the weak -> strong gap) at which CPT is reported.
CPT_LEVELS = (0.5, 0.8, 0.95)


def performance_gap_recovered(accuracy, weak_accuracy: float, strong_accuracy: float):
    """PGR = (accuracy - weak) / (strong - weak): the share of the weak -> strong accuracy gap
    a router recovers (RouteLLM). Broadcasts; 0 at the weak model, 1 at the strong one."""
    gap = float(strong_accuracy) - float(weak_accuracy)
    if not gap > 0:
        raise ValueError(f"PGR needs a strong model more accurate than the weak one "
                         f"(strong {strong_accuracy}, weak {weak_accuracy})")
    return (np.asarray(accuracy, dtype=float) - float(weak_accuracy)) / gap


def _routellm_hull(points, weak: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """NDCH of a policy's (cost, accuracy) points together with the weak model's point: a router
    can always send every question to the weak model, and mix that with any of its settings."""
    p = np.vstack([np.asarray(points, dtype=float).reshape(-1, 2), np.asarray(weak, dtype=float).reshape(1, 2)])
    hc, ha, _ = nondecreasing_convex_hull(p[:, 0], p[:, 1])
    return hc, ha


def cost_to_reach(points, target_accuracy: float, extra_points=None) -> float:
    """The least cost (USD per question) at which the NDCH of ``points`` ((k, 2) cost, accuracy)
    reaches ``target_accuracy``; ``inf`` if it never does. Between two hull vertices the cost is
    the mixture's (linear), so the answer need not be one of the points."""
    p = np.asarray(points, dtype=float).reshape(-1, 2)
    if extra_points is not None:
        p = np.vstack([p, np.asarray(extra_points, dtype=float).reshape(-1, 2)])
    hc, ha, _ = nondecreasing_convex_hull(p[:, 0], p[:, 1])
    return _hull_cost_at(hc, ha, target_accuracy)


def _hull_cost_at(hc: np.ndarray, ha: np.ndarray, target: float) -> float:
    if ha[-1] < target - 1e-12:
        return float("inf")
    if ha[0] >= target - 1e-12:
        return float(hc[0])
    j = int(np.searchsorted(ha, target - 1e-12))  # ha is strictly increasing: first vertex >= target
    return float(hc[j - 1] + (target - ha[j - 1]) * (hc[j] - hc[j - 1]) / (ha[j] - ha[j - 1]))


def routellm_metrics(points, weak: tuple[float, float], strong: tuple[float, float],
                     levels: Sequence[float] = CPT_LEVELS) -> dict:
    """APGR and CPT(x) of one policy's frontier against a weak and a strong model (RouteLLM).

    ``points``: (k, 2) the policy's (cost per question in USD, accuracy), e.g. its knob sweep;
    ``weak``, ``strong``: (cost per question, accuracy) of always-weak and always-strong on the
    same questions. RouteLLM routes between two models, so its x-axis is the share of calls
    sent to the strong model; for any pool it is generalized here to the *strong-call share
    at equal cost*, ``s = (cost - cost_weak) / (cost_strong - cost_weak)``, which is exactly the
    share of strong calls for a two-model router that calls one model per question.

    * PGR(s): :func:`performance_gap_recovered` of the accuracy on the NDCH of the policy's
      points and the weak model's point (flat beyond its last point);
    * APGR: the mean of PGR(s) over s in [0, 1] (exact integral of the piecewise-linear hull);
      0.5 for a random mixture of the two models, 1 for a router that reaches the strong
      model's accuracy at the weak model's cost;
    * CPT(x): the least s at which PGR reaches x (None if it never does; > 1: it costs more than
      always-strong; < 0: cheaper than always-weak).

    Returns {"apgr", "cpt": {"50": s, ...}, "cpt_cost_fraction_of_strong": {"50": cost/cost_strong}}.
    """
    (cw, aw), (cs, as_) = (tuple(map(float, weak)), tuple(map(float, strong)))
    if not cs > cw:
        raise ValueError(f"RouteLLM metrics need a strong model that costs more than the weak one "
                         f"(strong {cs}, weak {cw} USD per question)")
    performance_gap_recovered(as_, aw, as_)  # refuses a non-positive gap
    hc, ha = _routellm_hull(points, (cw, aw))
    mean_acc = area_under_hull(hc, ha, cw, cs) / (cs - cw)
    out = {"apgr": float((mean_acc - aw) / (as_ - aw)), "cpt": {}, "cpt_cost_fraction_of_strong": {}}
    for x in levels:
        cost = _hull_cost_at(hc, ha, aw + float(x) * (as_ - aw))
        key = _level_key(x)
        out["cpt"][key] = None if not np.isfinite(cost) else float((cost - cw) / (cs - cw))
        out["cpt_cost_fraction_of_strong"][key] = None if not np.isfinite(cost) else float(cost / cs)
    return out


def _percentile_ci_unbounded(samples, level: float = 0.95) -> list:
    """[lo, hi] percentile interval of replicates that may be infinite (a target not reached);
    no interpolation across an infinite replicate, and an infinite bound is written None."""
    a = (1.0 - level) / 2.0
    q = np.quantile(np.asarray(samples, dtype=float), [a, 1.0 - a], method="inverted_cdf")
    return [float(v) if np.isfinite(v) else None for v in q]


def _level_key(x: float) -> str:
    return f"{100 * float(x):g}"


def bootstrap_frontier_points(sweep_correct, sweep_cost, idx: np.ndarray) -> np.ndarray:
    """Frontier points on every bootstrap resample: (n_boot, k, 2) of (cost, accuracy).

    ``sweep_correct``, ``sweep_cost``: (k, n) per knob value, per test question (1/0, USD);
    ``idx``: (n_boot, n) resampled question indices (:func:`bootstrap_indices`).
    """
    c = np.asarray(sweep_correct, dtype=float)
    k = np.asarray(sweep_cost, dtype=float)
    if c.ndim == 1:
        c, k = c[None, :], k[None, :]
    acc = c[:, idx].mean(axis=2).T  # (n_boot, k)
    cost = k[:, idx].mean(axis=2).T
    return np.stack([cost, acc], axis=2)


def routellm_with_ci(sweep_correct, sweep_cost, weak_correct, weak_cost, strong_correct, strong_cost,
                     idx: np.ndarray, levels: Sequence[float] = CPT_LEVELS, level: float = 0.95) -> dict:
    """:func:`routellm_metrics` on the test questions, with percentile bootstrap intervals.

    Per-question arrays (shape (n,)) of the weak and strong models, and (k, n) of the policy's
    knob sweep (1/0 correct, USD). Every resample recomputes the weak and strong points and the
    policy's frontier on the same questions (paired). A CPT that is not reached on a resample
    counts as +inf there, so an interval may end at None (= not reached); ``cpt_reached`` gives
    the share of resamples where each level is reached.
    """
    def point(rows=slice(None)):
        w = (np.mean(np.asarray(weak_cost, float)[rows]), np.mean(np.asarray(weak_correct, float)[rows]))
        s = (np.mean(np.asarray(strong_cost, float)[rows]), np.mean(np.asarray(strong_correct, float)[rows]))
        return w, s

    w, s = point()
    c = np.atleast_2d(np.asarray(sweep_correct, dtype=float))
    k = np.atleast_2d(np.asarray(sweep_cost, dtype=float))
    out = routellm_metrics(np.column_stack([k.mean(axis=1), c.mean(axis=1)]), w, s, levels)
    pts = bootstrap_frontier_points(c, k, idx)
    apgr, cpt = [], {_level_key(x): [] for x in levels}
    for b, rows in enumerate(idx):
        wb, sb = point(rows)
        if not (sb[0] > wb[0] and sb[1] > wb[1]):
            continue  # the gap vanished on this resample: PGR undefined there
        m = routellm_metrics(pts[b], wb, sb, levels)
        apgr.append(m["apgr"])
        for key, v in m["cpt"].items():
            cpt[key].append(np.inf if v is None else v)
    out["apgr_ci95"] = percentile_ci(apgr, level) if apgr else None
    out["cpt_ci95"] = {key: _percentile_ci_unbounded(vals, level) if vals else None for key, vals in cpt.items()}
    out["cpt_reached"] = {key: float(np.isfinite(vals).mean()) if vals else None for key, vals in cpt.items()}
    out["n_boot_used"] = len(apgr)
    return out


def savings_at_accuracy(sweep_correct, sweep_cost, ref_correct, ref_cost, idx: np.ndarray,
                        share: float = 1.0, level: float = 0.95) -> dict:
    """Cost savings of a policy against a reference (always-big) at ``share`` x its accuracy.

    savings = 1 - cost_to_reach(policy's NDCH, share * acc_ref) / cost_ref, computed on the test
    questions and on every bootstrap resample (paired; the policy's frontier and the reference
    re-scored on the same questions). A frontier that never reaches the target gives -inf
    savings on that resample (so an interval may start at None); ``reached`` is the share of
    resamples where the target is reached. ``cost_ratio`` = 1 - savings; ``fold`` = 1 / cost_ratio.
    Arrays: policy (k, n) per knob value and question; reference (n,).
    """
    c = np.atleast_2d(np.asarray(sweep_correct, dtype=float))
    k = np.atleast_2d(np.asarray(sweep_cost, dtype=float))
    rc, rk = np.asarray(ref_correct, float), np.asarray(ref_cost, float)

    def one(points, ref_acc, ref_cost_mean):
        cost = cost_to_reach(points, share * ref_acc)
        return 1.0 - cost / ref_cost_mean

    point = one(np.column_stack([k.mean(axis=1), c.mean(axis=1)]), rc.mean(), rk.mean())
    pts = bootstrap_frontier_points(c, k, idx)
    reps = np.array([one(pts[b], rc[rows].mean(), rk[rows].mean()) for b, rows in enumerate(idx)])
    ci = _percentile_ci_unbounded(reps, level)
    fin = np.isfinite(point)
    return {
        "share_of_reference_accuracy": float(share),
        "target_accuracy": float(share * rc.mean()),
        "savings": float(point) if fin else None,
        "savings_ci95": ci,
        "cost_ratio": float(1 - point) if fin else None,
        "fold": float(1 / (1 - point)) if fin and point < 1 else None,
        "reached": float(np.isfinite(reps).mean()),
    }


def accuracy_share_at_cost(sweep_correct, sweep_cost, ref_correct, ref_cost, idx: np.ndarray,
                           cost_fraction: float = 0.5, level: float = 0.95) -> dict:
    """Share of a reference's accuracy that a policy's NDCH reaches at ``cost_fraction`` x the
    reference's cost (e.g. "95% of the best model's performance at 50% of its cost").

    share = hull_accuracy(cost_fraction * cost_ref) / acc_ref, with the AIQ conventions (flat
    beyond the policy's last point; zero below its first: it cannot operate that cheaply), on
    the test questions and every bootstrap resample (paired). Arrays: policy (k, n) per knob
    value and question (1/0, USD); reference (n,).
    """
    c = np.atleast_2d(np.asarray(sweep_correct, dtype=float))
    k = np.atleast_2d(np.asarray(sweep_cost, dtype=float))
    rc, rk = np.asarray(ref_correct, float), np.asarray(ref_cost, float)

    def one(points, ref_acc, ref_cost_mean):
        hc, ha, _ = nondecreasing_convex_hull(points[:, 0], points[:, 1])
        acc = float(hull_accuracy(hc, ha, cost_fraction * ref_cost_mean))
        return acc / ref_acc if ref_acc > 0 else np.nan

    point = one(np.column_stack([k.mean(axis=1), c.mean(axis=1)]), rc.mean(), rk.mean())
    pts = bootstrap_frontier_points(c, k, idx)
    reps = np.array([one(pts[b], rc[rows].mean(), rk[rows].mean()) for b, rows in enumerate(idx)])
    reps = reps[np.isfinite(reps)]
    return {"cost_fraction": float(cost_fraction), "share": None if not np.isfinite(point) else float(point),
            "share_ci95": percentile_ci(reps, level) if len(reps) else None}
