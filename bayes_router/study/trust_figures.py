"""Tables and figures of trust learning over routers (notebook 04): the reference example
(exact posterior against PyMC), the trust trajectory, cost per 100 tickets (USD), and trust
learned per subject on a real log. The computations are in :mod:`bayes_router.models.trust`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayes_router.models import trust as tr
from bayes_router.models.trust_costs import cost_impact

#: The reference example's trust in each router, to 4 decimal places (a check of the exact posterior).
REFERENCE_TRUST = {"simple": 0.3420, "medium": 0.4793, "complex": 0.1787}
#: The routers built from a log's train split (:func:`bayes_router.models.trust_data.routers_from_train`).
LOG_ROUTERS = ["pooled", "by-subject", "independent"]
#: The cost policies compared per 100 tickets.
COST_POLICIES = ["always big", "routing by trust", "escalate small → medium → big"]


def example_table(exact) -> pd.DataFrame:
    """Per router of an exact trust posterior: its prior components, its trust against
    :data:`REFERENCE_TRUST`, and its posterior components and mean of θ."""
    rows = []
    for prior_r, post_r, t in zip(exact.routers, exact.posteriors, exact.trust, strict=True):
        rows.append({
            "router": prior_r.name,
            "prior components (w: Beta(a, b))": ", ".join(
                f"{w:g}: Beta({a:g}, {b:g})" for w, a, b in zip(prior_r.weights, prior_r.alpha, prior_r.beta, strict=True)),
            "trust (exact)": t, "trust (reference, 4 d.p.)": REFERENCE_TRUST.get(prior_r.name, np.nan),
            "posterior weights": np.round(post_r.weights, 3).tolist(),
            "posterior components": [f"Beta({a:g}, {b:g})" for a, b in zip(post_r.alpha, post_r.beta, strict=True)],
            "E[θ | router, y]": post_r.mean,
        })
    return pd.DataFrame(rows).set_index("router")


def matches_reference(table: pd.DataFrame) -> bool:
    """Whether the exact trust of :func:`example_table` equals :data:`REFERENCE_TRUST` to 4 decimal places."""
    return bool(all(abs(table.loc[n, "trust (exact)"] - v) <= 0.5e-4 for n, v in REFERENCE_TRUST.items()))


def pymc_against_exact(model, exact) -> pd.DataFrame:
    """The PyMC model's trust with its Monte Carlo standard error, the exact trust, and their
    distance in MCSE."""
    mc = model.trust_summary()
    mc["trust (exact)"] = exact.trust
    mc["|MC − exact| / MCSE"] = (mc["trust"] - mc["trust (exact)"]).abs() / mc["trust_mcse"]
    return mc


def plot_trust_trajectory(traj: pd.DataFrame, names: Sequence[str], ax=None):
    """Trust in each router after each outcome (exact posterior), with the outcomes y = 1 marked."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.2))
    for n in names:
        ax.plot(traj["step"], traj[n], marker="o", ms=3, label=n)
    ones = traj.loc[traj["y"] == 1, "step"]
    ax.vlines(ones, 0, 1, colors="grey", lw=0.8, ls=":", label="outcome y = 1 (big model needed)")
    ax.axhline(1 / 3, color="black", lw=0.8, ls="--", label="prior 1/3")
    ax.set(xlabel="tickets observed", ylabel="P(router is right | outcomes so far)", ylim=(0, 1),
           title="Trust trajectory, reference example (exact posterior)")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_trust_exact_and_pymc(exact, mc: pd.DataFrame, draws_label: str, ax=None):
    """Bars of the exact trust and of the PyMC estimate ± 2 MCSE per router."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    names = exact.names
    x = np.arange(len(names))
    ax.bar(x - 0.18, exact.trust, width=0.36, label="exact (conjugate)")
    ax.bar(x + 0.18, mc["trust"], width=0.36, yerr=2 * mc["trust_mcse"], capsize=3,
           label=f"PyMC NUTS ± 2 MCSE ({draws_label} draws)")
    ax.axhline(1 / 3, color="black", ls="--", lw=1, label="prior 1/3")
    for xi, t in zip(x, exact.trust, strict=True):
        ax.text(xi - 0.18, t + 0.01, f"{t:.4f}", ha="center", fontsize=8)
    ax.set_xticks(x, names)
    ax.set(ylabel="posterior trust P(router | 22 outcomes)", xlabel="router", ylim=(0, 0.6),
           title="Learned trust in each router (reference example)")
    ax.legend(fontsize=8)
    return ax


def plot_cumulative_cost(seq: pd.DataFrame, ax=None):
    """Cumulative realized cost (USD) of each policy of :data:`COST_POLICIES`, ticket by ticket."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for c in COST_POLICIES:
        ax.step(seq["ticket"], seq[c], where="post", label=c)
    ax.set(xlabel="ticket", ylabel="cumulative cost (USD)",
           title="Realized cost on the example's 22 tickets (online: ticket i routed with outcomes < i)")
    ax.legend(fontsize=8)
    return ax


def plot_trust_by_subject(by_subject: pd.DataFrame, title: str):
    """Left: trust per subject in each of :data:`LOG_ROUTERS`; right: each router's belief
    against the held-out rate. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
    ax = axes[0]
    x = np.arange(len(by_subject))
    for j, r in enumerate(LOG_ROUTERS):
        ax.bar(x + (j - 1) * 0.27, by_subject[f"trust_{r}"], width=0.27, label=r)
    ax.axhline(1 / 3, color="black", ls="--", lw=1, label="prior 1/3")
    ax.set_xticks(x, by_subject.index, rotation=45, ha="right")
    ax.set(ylabel="posterior trust", ylim=(0, 1), title=title)
    ax.legend(fontsize=8)
    ax = axes[1]
    for r, mk in zip(LOG_ROUTERS, ["o", "s", "^"], strict=True):
        ax.scatter(by_subject["observed_rate"], by_subject[f"prior_mean_{r}"], marker=mk, label=r)
    lim = [0, max(0.5, by_subject.filter(like="prior_mean").to_numpy().max() + 0.05)]
    ax.plot(lim, lim, color="black", lw=0.8, ls="--", label="belief = held-out rate")
    ax.set(xlabel="held-out rate of 'big needed' per subject", ylabel="router's belief E[θ] (from train)",
           xlim=lim, ylim=lim, title="What each router believed")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cost_by_subject(beliefs: Mapping, outcomes: pd.DataFrame, costs, tickets_per_subject: int | None,
                    seed: int = 0) -> pd.DataFrame:
    """Expected cost per 100 tickets (USD) and its 95% posterior predictive interval, per subject
    and policy, from the trust posterior of each subject's held-out outcomes (the first
    ``tickets_per_subject`` of them; None: all)."""
    rows = []
    for subject, g in outcomes.groupby("subject", observed=True):
        y = g["y"].to_numpy()[:tickets_per_subject] if tickets_per_subject else g["y"].to_numpy()
        post = tr.trust_posterior(beliefs[str(subject)], y)
        for policy, r in cost_impact(post, costs, n_tickets=100, seed=seed).iterrows():
            rows.append({"subject": str(subject), "policy": policy, "cost_usd": r.expected_cost_usd,
                         "ci95": f"[{r.cost_ci95_lo:.4f}, {r.cost_ci95_hi:.4f}]"})
    return pd.DataFrame(rows).pivot(index="subject", columns="policy", values=["cost_usd", "ci95"])


def trust_summary(by_subject: pd.DataFrame) -> dict:
    """Per router of :data:`LOG_ROUTERS`: its median trust over subjects and in how many subjects it is most trusted."""
    most = by_subject[[f"trust_{q}" for q in LOG_ROUTERS]].idxmax(axis=1)
    return {r: {"median_trust": float(by_subject[f"trust_{r}"].median()),
                "subjects_where_most_trusted": int((most == f"trust_{r}").sum())} for r in LOG_ROUTERS}


def example_results(exact, table: pd.DataFrame, mc: pd.DataFrame, diagnostics: dict, cost_table: pd.DataFrame,
                    costs) -> dict:
    """The reference example's numbers for the results file (trust exact and by PyMC, costs in USD)."""
    return {
        "trust_exact": dict(zip(exact.names, map(float, exact.trust), strict=True)),
        "matches_issue_4dp": matches_reference(table),
        "posterior_weights": {p.name: list(p.weights) for p in exact.posteriors},
        "trust_pymc": mc["trust"].to_dict(), "trust_pymc_mcse": mc["trust_mcse"].to_dict(),
        "pymc_within_4_mcse": bool((mc["|MC − exact| / MCSE"] < 4).all()),
        "pymc_diagnostics": diagnostics,
        "cost_per_100_tickets_usd": {p: {"expected": r.expected_cost_usd, "ci95": [r.cost_ci95_lo, r.cost_ci95_hi]}
                                     for p, r in cost_table.iterrows()},
        "costs_usd_per_call": {"small": costs.small, "medium": costs.medium, "big": costs.big,
                               "medium_fails": costs.medium_fails_given_small_fails},
    }


def log_results(small: str, medium: str, big: str, n_train: int, n_test: int, tickets_per_subject, hedge_weight: float,
                by_subject: pd.DataFrame, costs) -> dict:
    """The real log's numbers for the results file: trust per subject, its summary, costs per call (USD)."""
    return {
        "small": small, "medium": medium, "big": big, "n_train": int(n_train), "n_test": int(n_test),
        "tickets_per_subject": tickets_per_subject, "hedge_weight": hedge_weight,
        "trust_by_subject": {s: {r: float(by_subject.loc[s, f"trust_{r}"]) for r in LOG_ROUTERS} for s in by_subject.index},
        "summary": trust_summary(by_subject),
        "costs_usd_per_call": {"small": costs.small, "medium": costs.medium, "big": costs.big,
                               "medium_fails_given_small_fails": costs.medium_fails_given_small_fails},
    }
