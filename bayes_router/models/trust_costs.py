"""What trust is worth: the cost of three routing policies for the small / medium / big models.

"always big", "routing by trust" (the trust-weighted predictive of
:class:`~bayes_router.models.trust.TrustPosterior` decides small-first or big) and
"escalate small → medium → big", per ``n_tickets`` new tickets with 95% posterior
predictive intervals (:func:`cost_impact`), realized online on an observed sequence
(:func:`sequential_cost`), with per-call costs taken from a real call log
(:func:`tier_costs_from_log`). Costs are in USD.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_router.errors import InputError
from bayes_router.models.trust import (
    RouterBelief,
    TrustPosterior,
    _check_outcomes,
    trust_trajectory,
)


@dataclass(frozen=True)
class TierCosts:
    """Per-call costs in USD of the small, medium and big model, and the escalation assumption.

    ``medium_fails_given_small_fails``: P(the medium model also fails | the small
    one failed), used by the cascade only (the trust model knows nothing of the
    medium model). The big model is taken to solve every ticket, and a failure to be
    detectable (e.g. by a verifier), so every policy answers every ticket.
    """

    small: float = 0.0002
    medium: float = 0.0010
    big: float = 0.0040
    medium_fails_given_small_fails: float = 0.5

    def __post_init__(self):
        for k in ("small", "medium", "big"):
            if getattr(self, k) < 0:
                raise InputError(f"cost of the {k} model must be non-negative, got {getattr(self, k)}")
        if not 0 <= self.medium_fails_given_small_fails <= 1:
            raise InputError("medium_fails_given_small_fails must be in [0, 1]")


def _policy_costs(theta: np.ndarray, need_big: np.ndarray, medium_fail: np.ndarray, small_first: np.ndarray,
                  costs: TierCosts, n_tickets: int) -> dict[str, np.ndarray]:
    """Realized total cost (USD) per policy; arrays broadcast over posterior draws."""
    big_total = np.full(theta.shape, n_tickets * costs.big)
    trust_total = np.where(small_first, n_tickets * costs.small + need_big * costs.big, big_total)
    cascade_total = n_tickets * costs.small + need_big * costs.medium + medium_fail * costs.big
    return {"always big": big_total, "routing by trust": trust_total, "escalate small → medium → big": cascade_total}


def cost_impact(posterior: TrustPosterior, costs: TierCosts | None = None, n_tickets: int = 100,
                n_draws: int = 20000, seed: int = 0) -> pd.DataFrame:
    """Cost in USD per ``n_tickets`` new tickets for three policies, with 95% intervals.

    - "always big": every ticket goes to the big model.
    - "routing by trust": with the model-averaged predictive p = P(needs big | y),
      send tickets small-first (escalating to big on failure) when the expected cost
      small + p·big is below big, else straight to big (one decision for the batch).
    - "escalate small → medium → big": small first, then medium, then big.

    The interval is a 95% posterior predictive interval of the total over
    ``n_tickets`` new tickets: θ drawn from the trust-weighted posterior, the number
    needing big ~ Binomial(n_tickets, θ), the cascade's medium failures ~
    Binomial(that, ``medium_fails_given_small_fails``).
    """
    costs = costs or TierCosts()
    rng = np.random.default_rng(seed)
    p = posterior.predictive_need_big()
    small_first = costs.small + p * costs.big < costs.big
    theta = posterior.sample_theta(n_draws, rng)
    need_big = rng.binomial(n_tickets, theta)
    medium_fail = rng.binomial(need_big, costs.medium_fails_given_small_fails)
    totals = _policy_costs(theta, need_big, medium_fail, np.full(theta.shape, small_first), costs, n_tickets)
    expected = {
        "always big": n_tickets * costs.big,
        "routing by trust": n_tickets * (costs.small + p * costs.big) if small_first else n_tickets * costs.big,
        "escalate small → medium → big": n_tickets * (
            costs.small + p * (costs.medium + costs.medium_fails_given_small_fails * costs.big)),
    }
    rows = []
    for name, draws in totals.items():
        lo, hi = np.quantile(draws, [0.025, 0.975])
        rows.append({
            "policy": name, "expected_cost_usd": float(expected[name]), "cost_ci95_lo": float(lo),
            "cost_ci95_hi": float(hi), "calls_per_ticket": float(_calls_per_ticket(name, p, small_first, costs)),
        })
    out = pd.DataFrame(rows).set_index("policy")
    out.attrs.update(n_tickets=n_tickets, predictive_need_big=p, small_first=bool(small_first))
    return out


def _calls_per_ticket(name: str, p: float, small_first: bool, costs: TierCosts) -> float:
    if name == "always big":
        return 1.0
    if name == "routing by trust":
        return 1.0 + p if small_first else 1.0
    return 1.0 + p * (1.0 + costs.medium_fails_given_small_fails)


def sequential_cost(routers: Sequence[RouterBelief], outcomes, prior=None,
                    costs: TierCosts | None = None) -> pd.DataFrame:
    """Realized cost (USD) of each policy on the observed sequence, deciding online.

    Ticket i is routed with the trust posterior of tickets < i (no peeking). The
    cascade's medium-tier outcome is not observed, so its cost is the expectation
    under ``medium_fails_given_small_fails``. Columns: one cumulative cost per policy.
    """
    costs = costs or TierCosts()
    y = _check_outcomes(outcomes)
    traj = trust_trajectory(routers, y, prior)
    p_before = traj["predictive_need_big"].to_numpy()[:-1]  # predictive before ticket i
    small_first = costs.small + p_before * costs.big < costs.big
    per_ticket = {
        "always big": np.full(len(y), costs.big),
        "routing by trust": np.where(small_first, costs.small + y * costs.big, costs.big),
        "escalate small → medium → big": costs.small + y * (costs.medium + costs.medium_fails_given_small_fails
                                                              * costs.big),
    }
    out = pd.DataFrame({k: np.cumsum(v) for k, v in per_ticket.items()})
    out.insert(0, "ticket", np.arange(1, len(y) + 1))
    out["small_first"] = small_first
    return out


def tier_costs_from_log(train_log: pd.DataFrame, small: str, medium: str, big: str) -> TierCosts:
    """Per-call costs (mean ``cost_usd`` of each model's calls, USD) and the cascade's
    P(medium fails | small failed), all from the TRAIN log (questions all three answered)."""
    for m in (small, medium, big):
        if m not in set(train_log["model"].unique()):
            raise InputError(f"model '{m}' is not in the log")
    wide = train_log[train_log["model"].isin([small, medium, big])].pivot_table(
        index="question_id", columns="model", values="correct", aggfunc="first").dropna()
    small_failed = ~wide[small].astype(bool)
    if not small_failed.any():
        raise InputError(f"the small model '{small}' never fails on the train questions")
    mean_cost = train_log.groupby("model", observed=True)["cost_usd"].mean()
    return TierCosts(float(mean_cost[small]), float(mean_cost[medium]), float(mean_cost[big]),
                     float((~wide.loc[small_failed, medium].astype(bool)).mean()))
