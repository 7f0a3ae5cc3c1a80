"""The quality targets of a routing policy against always-big, read from a RESULTS.json and the
policy's frontier table (notebook 03's "Quality targets"; :func:`bayes_router.study.evaluate.frontier_table`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import InputError


def quality_targets(results: dict, frontier: pd.DataFrame, policy: str = "bayes-adaptive") -> dict:
    """The routing quality targets for ``policy`` against always-big, from one evaluation.

    ``results``: the RESULTS.json dict of :func:`evaluate`; ``frontier``: the policy's
    :func:`frontier_table` on the same setup. Reports whether some knob value reaches the
    big model's accuracy at lower cost (the cheapest such point, with its 95% interval
    and cost as a fraction of the big model's), the best accuracy at no more than the
    big model's cost, the point nearest the big model's cost, the AIQ ranking of the
    non-oracle policies and the gap between ``policy``'s AIQ and the best other one, with its
    paired bootstrap interval where :func:`evaluate` recorded it (``aiq_<policy>_minus_this_ci95``).
    """
    big = f"always:{results['models'][-1]}"
    if policy not in results["policies"] or big not in results["policies"]:
        raise InputError(f"quality targets need '{policy}' and '{big}' in the results")
    big_acc = results["policies"][big]["accuracy"]
    big_cost = results["policies"][big]["cost_per_question"]
    ft = frontier.sort_values("cost_per_question")
    cheaper = ft[(ft["accuracy"] >= big_acc) & (ft["cost_per_question"] < big_cost)]
    near = ft.iloc[int(np.argmin(np.abs(ft["cost_per_question"].to_numpy() - big_cost)))]
    within = ft[ft["cost_per_question"] <= big_cost]
    non_oracle = {k: v for k, v in results["aiq"].items() if k != "oracle"}
    ranking = sorted(non_oracle, key=non_oracle.get, reverse=True)
    others = [v for k, v in non_oracle.items() if k != policy]
    first = None if cheaper.empty else cheaper.iloc[0]
    return {
        "big_model": results["models"][-1], "big_accuracy": big_acc, "big_cost_per_question": big_cost,
        "headline": results["policies"][policy].get("vs_big"),
        "reaches_big_accuracy_at_lower_cost": first is not None,
        "cheapest_knob_reaching_big_accuracy": None if first is None else {
            "knob": first["knob"], "value": float(first["value"]), "accuracy": float(first["accuracy"]),
            "accuracy_ci95": [float(first["accuracy_lo"]), float(first["accuracy_hi"])],
            "cost_per_question": float(first["cost_per_question"]),
            "cost_fraction_of_big": float(first["cost_per_question"] / big_cost)},
        "best_accuracy_at_most_big_cost": None if within.empty else float(within["accuracy"].max()),
        "accuracy_at_cost_nearest_big": {"value": float(near["value"]), "accuracy": float(near["accuracy"]),
                                         "cost_fraction_of_big": float(near["cost_per_question"] / big_cost)},
        "aiq_ranking_non_oracle": ranking,
        "highest_aiq_non_oracle": bool(ranking) and ranking[0] == policy,
        "aiq_gap_to_best_other": float(non_oracle[policy] - max(others)) if policy in non_oracle and others else None,
        "aiq_gap_to_best_other_ci95": _gap_interval(results, policy, ranking),
    }


def _gap_interval(results: dict, policy: str, ranking: list[str]) -> list[float] | None:
    """The paired interval of AIQ(policy) - AIQ(the best other policy of ``ranking``), where evaluate recorded it."""
    best_other = next((k for k in ranking if k != policy), None)
    return results["policies"].get(best_other, {}).get(f"aiq_{policy}_minus_this_ci95")
