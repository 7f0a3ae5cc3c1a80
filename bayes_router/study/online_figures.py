"""Figures of online routing (notebook 09): learning curves, regret, the simulated drift, online trust.

Each function takes an ONLINE.json dict (:func:`bayes_router.study.online.online_study`) or
the :func:`~bayes_router.study.online.online_trust` result, draws on the given axes and
returns them. Bands are the 5%-95% range over arrival orders stored in ONLINE.json.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Colors kept per policy across figures.
COLORS = {"thompson": "tab:red", "ucb": "tab:orange", "greedy": "tab:green", "linucb-budget": "tab:purple",
          "offline:bayes-adaptive": "tab:blue", "thompson (no forgetting)": "tab:gray"}


def _color(name: str):
    return COLORS.get(name)


def _band(ax, x, p: dict, key: str, name: str, scale: float = 1.0):
    y = np.asarray(p["curve"][key]) * scale
    ax.plot(x, y, color=_color(name), lw=1.5, label=name)
    band = p.get("bands", {}).get(key)
    if band:
        ax.fill_between(x, np.asarray(band["lo"]) * scale, np.asarray(band["hi"]) * scale, color=_color(name),
                        alpha=0.15, lw=0)


def plot_learning_curves(result: dict, axes, start: int = 20):
    """Cumulative accuracy and cost (USD per 1,000 questions) against questions seen, per policy.

    ``axes``: two axes. The first ``start`` questions are left out (a cumulative mean of a
    handful of questions is noise)."""
    n = result["n_questions"]
    x = np.arange(1, n + 1)
    sl = slice(start, n)
    for name, p in result["policies"].items():
        ys = {k: np.asarray(p["curve"][k])[sl] for k in ("accuracy", "cost_per_question")}
        bands = {k: {b: np.asarray(v[b])[sl] for b in ("lo", "hi")} for k, v in p.get("bands", {}).items()
                 if k in ys}
        q = {"curve": ys, "bands": bands}
        _band(axes[0], x[sl], q, "accuracy", name)
        _band(axes[1], x[sl], q, "cost_per_question", name, scale=1000.0)
    axes[0].set(xlabel="questions seen", ylabel="cumulative accuracy", title="Accuracy while learning")
    axes[1].set(xlabel="questions seen", ylabel="cumulative cost (USD per 1,000 questions)",
                title="Cost while learning")
    axes[0].legend(fontsize=8)
    return axes


def plot_regret(result: dict, axes):
    """Left: pseudo-regret against the best model per subject in hindsight (utility units), with
    sqrt(t) and linear references through its end point. Right: regret against the oracle."""
    n = result["n_questions"]
    x = np.arange(1, n + 1)
    end = 0.0
    for name, p in result["policies"].items():
        if "regret_vs_best_fixed" in p["curve"]:
            _band(axes[0], x, p, "regret_vs_best_fixed", name)
            end = max(end, p["curve"]["regret_vs_best_fixed"][-1])
        _band(axes[1], x, p, "regret", name)
    if end > 0:
        axes[0].plot(x, end * np.sqrt(x / n), color="black", ls=":", lw=1, label="∝ √t (reference)")
        axes[0].plot(x, end * x / n, color="black", ls="--", lw=0.8, label="∝ t (reference)")
    cs = result["meta"]["cost_scale"]
    axes[0].set(xlabel="questions seen", ylabel="cumulative pseudo-regret (utility)",
                title=f"Regret vs best model per subject (λ = {cs:g}/USD)")
    axes[1].set(xlabel="questions seen", ylabel="cumulative regret (utility)",
                title="Regret vs the per-question oracle (linear for every router)")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    return axes


def windowed_accuracy(p: dict, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(window end positions, accuracy within each window) from a policy's mean cumulative curve."""
    acc = np.asarray(p["curve"]["accuracy"])
    total = acc * np.arange(1, len(acc) + 1)
    ends = np.arange(window, len(acc) + 1, window)
    starts = np.concatenate([[0.0], total[ends[:-1] - 1]])
    return ends, (total[ends - 1] - starts) / window


def plot_drift(result: dict, ax, window: int = 100):
    """Accuracy per ``window`` questions in the SIMULATED drift scenario (mean over orders, 95%
    binomial intervals), with the drift point."""
    n_orders = result["meta"]["n_orders"]
    for name, p in result["policies"].items():
        ends, acc = windowed_accuracy(p, window)
        se = np.sqrt(acc * (1 - acc) / (window * n_orders))  # binomial, over the window's questions in all orders
        ax.errorbar(ends, acc, yerr=1.96 * se, marker="o", ms=3, capsize=2, color=_color(name), label=name)
    sc = result["meta"]["scenario"]
    ax.axvline(sc["drift_at_question"], color="black", ls="--", lw=1, label="big model degrades")
    ax.set(xlabel="questions seen", ylabel=f"accuracy per {window} questions", ylim=(0, 1),
           title=f"SIMULATED drift: the big model loses {sc['degradation_rate']:.0%} of its correct answers")
    ax.legend(fontsize=8)
    return ax


def plot_trust(trust: dict, axes):
    """Left: trust in each router after each real ticket. Right: cost per window of tickets (USD)."""
    traj: pd.DataFrame = trust["trajectory"]
    routers = [c for c in traj.columns if c not in ("ticket", "subject", "y", "predictive_need_big")]
    for r in routers:
        axes[0].plot(traj["ticket"], traj[r], label=r)
    axes[0].axhline(1 / len(routers), color="black", ls="--", lw=0.8, label="prior")
    m = trust["meta"]
    axes[0].set(xlabel="tickets seen (real MMLU-Pro questions)", ylabel="P(router is right | tickets so far)",
                ylim=(0, 1), title=f"Trust learned ticket by ticket ({m['small']} → {m['big']})")
    axes[0].legend(fontsize=8)
    win = trust["cost_per_window"]
    for col in ("always big", "routing by trust", "expected by trust", "escalate small → medium → big"):
        axes[1].plot(win["last_ticket"], win[col], marker="o", ms=3, label=col,
                     ls=":" if col == "expected by trust" else "-")
    axes[1].fill_between(win["last_ticket"], win["expected_lo"], win["expected_hi"], color="tab:green", alpha=0.15,
                         lw=0, label="95% predictive interval of routing by trust")
    axes[1].set(xlabel="tickets seen", ylabel=f"USD per {m['window']} tickets",
                title=f"Cost per {m['window']} tickets as trust concentrates")
    axes[1].set_ylim(bottom=0)
    axes[1].legend(fontsize=8)
    return axes
