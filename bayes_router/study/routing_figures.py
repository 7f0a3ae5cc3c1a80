"""Tables and figures of an evaluation: the policy table, cost-accuracy frontiers, the
second-call decisions of ``bayes-adaptive``, its per-subject routing mix, and the budget
sweep of the allocation policies (notebooks 03 and 06).

Inputs are what :func:`bayes_router.study.evaluate.evaluate` returns (the RESULTS.json
dict, the :class:`~bayes_router.study.evaluate.EvaluationSetup`, fitted policies and
their outcomes) and :func:`~bayes_router.study.evaluate.frontier_table` rows. Costs are
USD per question; plots put them in USD x 1e-3 (per 1,000 questions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from bayes_router.study.evaluate import frontier_table, run_policy
from bayes_router.study.metrics import aiq, bootstrap_indices, compare_to_reference

#: The policies whose knob sweep is drawn with intervals, and their reserved colors.
SWEPT_POLICIES = {"bayes-adaptive": "C3", "cascade": "C0"}
#: The allocation policies of a budget sweep, and their colors.
BUDGET_POLICIES = {"ndch": "tab:blue", "ndch-p": "tab:orange", "mip": "tab:green"}
THRESHOLD_COLOR = "tab:purple"


def policy_table(results: dict) -> pd.DataFrame:
    """One row per policy of a RESULTS.json dict, cheapest first: accuracy and cost per question
    (USD) with 95% intervals, calls per question, second-call rate, AIQ, and the difference
    in accuracy and the cost ratio to always-big."""
    rows = []
    for name, r in results["policies"].items():
        rows.append({
            "policy": name,
            "accuracy": r["accuracy"], "acc_lo": r["accuracy_ci95"][0], "acc_hi": r["accuracy_ci95"][1],
            "cost_per_question_usd": r["cost_per_question"], "cost_lo": r["cost_ci95"][0], "cost_hi": r["cost_ci95"][1],
            "calls_per_question": r["calls_per_question"], "second_call_rate": r.get("second_call_rate", np.nan),
            "aiq": results["aiq"].get(name, np.nan),
            "acc_minus_big": r["vs_big"]["accuracy_diff"], "cost_ratio_to_big": r["vs_big"].get("cost_ratio", np.nan),
        })
    return pd.DataFrame(rows).set_index("policy").sort_values("cost_per_question_usd")


def swept_frontiers(fitted: Mapping, setup, n_boot: int, seed: int) -> dict[str, pd.DataFrame]:
    """:func:`frontier_table` (with bootstrap intervals) of each fitted policy of :data:`SWEPT_POLICIES`."""
    return {name: frontier_table(fitted[name], setup, n_boot=n_boot, seed=seed)
            for name in SWEPT_POLICIES if name in fitted}


def _other_palette() -> list:
    import matplotlib.pyplot as plt

    # red and blue are reserved for bayes-adaptive and cascade; the rest cycle through other colors
    tab20 = plt.get_cmap("tab20").colors  # pairs (dark, light); pairs 0 (blue) and 3 (red) left out
    return [tab20[k] for k in (2, 4, 8, 10, 12, 14, 16, 18, 3, 5, 9, 11, 13, 15, 17, 19)]


def plot_frontiers(results: dict, frontiers: Mapping[str, pd.DataFrame], title: str, ax=None):
    """Cost-accuracy frontiers: the swept policies with 95% intervals (``frontiers``), the other
    policies' frontier points from ``results``, always-* and the oracle as markers. Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 6))
    for name, ft in frontiers.items():
        ft = ft.sort_values("cost_per_question")
        ax.errorbar(ft["cost_per_question"] * 1e3, ft["accuracy"],
                    xerr=[(ft["cost_per_question"] - ft["cost_lo"]) * 1e3, (ft["cost_hi"] - ft["cost_per_question"]) * 1e3],
                    yerr=[ft["accuracy"] - ft["accuracy_lo"], ft["accuracy_hi"] - ft["accuracy"]],
                    fmt="-o", ms=4, capsize=2, color=SWEPT_POLICIES[name],
                    label=f"{name} (knob: {ft['knob'].iloc[0]})", zorder=3)
    palette = _other_palette()
    others = [n for n in results["frontiers"] if n not in frontiers]
    for i, name in enumerate(others):
        pts = np.asarray(results["frontiers"][name], float)
        if name.startswith("always:") or name == "oracle":
            r = results["policies"][name]
            ax.errorbar(r["cost_per_question"] * 1e3, r["accuracy"],
                        yerr=[[r["accuracy"] - r["accuracy_ci95"][0]], [r["accuracy_ci95"][1] - r["accuracy"]]],
                        fmt="*" if name == "oracle" else "s", ms=9,
                        color="k" if name == "oracle" else palette[i % len(palette)],
                        label=name if len(name) < 40 else name[:37] + "...", zorder=4)
        else:
            ax.plot(pts[:, 0] * 1e3, pts[:, 1], "--.", lw=1, alpha=0.7, label=name, color=palette[i % len(palette)])
    ax.set_xlabel("cost per question (USD x 1e-3, every call charged)")
    ax.set_ylabel("accuracy on test questions")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    ax.grid(alpha=0.3)
    return ax


def second_call_decisions(policy, setup, results: dict) -> tuple[pd.DataFrame, dict]:
    """The fitted ``bayes-adaptive`` policy's decisions on the test questions, with whether the
    first and the final answer were right, and the summary of what combining did
    (``results``' ``combining`` entry plus the mean posterior support of the final answer and
    the accuracy of the final answers)."""
    truth = setup.test_calls().answers()
    dec = policy.decisions_.copy()
    dec["answer"] = truth.reindex(dec["question_id"]).to_numpy()
    dec["first_right"] = (dec["first_answer"] == dec["answer"]).fillna(False).astype(bool)
    dec["final_right"] = (dec["final_answer"] == dec["answer"]).fillna(False).astype(bool)
    summary = {**results["policies"][policy.name]["combining"],
               "mean_p_final": float(dec["p_final"].mean()), "accuracy": float(dec["final_right"].mean())}
    return dec, summary


def plot_second_call_decisions(dec: pd.DataFrame, threshold: float, title: str):
    """Left: VOI of the best second call against the first answer's post-call p(correct),
    by whether it was right; right: calibration of the final answer's posterior support
    (deciles of p, 95% normal intervals). Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for right, color, label in ((True, "C2", "first answer right"), (False, "C3", "first answer wrong")):
        d = dec[dec["first_right"] == right]
        ax.scatter(d["p_first"], d["voi_second"], s=6, alpha=0.4, color=color, label=label)
    ax.axhline(float(threshold), color="k", lw=1, ls="--", label="threshold (call if above)")
    ax.set_xlabel("post-call p(correct) of the first answer")
    ax.set_ylabel("VOI of the best second call (utility units)")
    ax.set_title("Second-call decisions")
    ax.legend(fontsize=8)
    ax = axes[1]
    p_bin = pd.cut(dec["p_final"], np.linspace(0, 1, 11), include_lowest=True)
    cal = dec.assign(p_bin=p_bin).groupby("p_bin", observed=True).agg(
        p=("p_final", "mean"), acc=("final_right", "mean"), n=("final_right", "size"))
    se = np.sqrt(cal["acc"] * (1 - cal["acc"]) / cal["n"].clip(lower=1))
    ax.errorbar(cal["p"], cal["acc"], yerr=1.96 * se, fmt="o", capsize=2, label="test questions (95% normal CI)")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlabel("posterior support of the final answer")
    ax.set_ylabel("share of final answers right")
    ax.set_title("Is the combined posterior calibrated?")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def routing_mix(outcome, setup) -> tuple[pd.DataFrame, pd.Series]:
    """Which model a policy called first per subject (shares of test questions, one column
    per model of the pool) and the share of questions per subject with a second call."""
    made = outcome.calls_made
    subj = setup.test_rows.drop_duplicates("question_id").set_index("question_id")["subject"]
    first = made[made["step"] == 1].assign(subject=lambda d: subj.reindex(d["question_id"]).to_numpy())
    mix = pd.crosstab(first["subject"], first["model"], normalize="index").reindex(columns=setup.models, fill_value=0.0)
    n_calls = made.groupby("question_id").size()
    second = (n_calls >= 2).groupby(subj.reindex(n_calls.index).to_numpy()).mean()
    return mix, second


def plot_routing_mix(mix: pd.DataFrame, second: pd.Series, title: str):
    """Stacked bars of the first call's model per subject, with the share of second calls."""
    import matplotlib.pyplot as plt

    models = list(mix.columns)
    fig, ax = plt.subplots(figsize=(10, 5))
    left = np.zeros(len(mix))
    for i, m in enumerate(models):
        if mix[m].sum() == 0:
            continue
        ax.barh(mix.index, mix[m], left=left, label=f"first call: {m}", color=f"C{i}")
        left += mix[m].to_numpy()
    ax.plot(second.reindex(mix.index).to_numpy(), mix.index, "kD", ms=5, label="share with a second call")
    ax.set_xlabel("share of test questions")
    ax.set_ylabel("MMLU-Pro subject")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right" if len(models) <= 4 else "center left",
              bbox_to_anchor=None if len(models) <= 4 else (1.01, 0.5))
    fig.tight_layout()
    return fig


def routing_results(results: dict, pool: str, frontiers: Mapping[str, pd.DataFrame], combining: dict,
                    targets: dict, adaptive=None) -> dict:
    """The results file of one pool: RESULTS.json without the train question ids, plus the pool's
    name, the swept frontiers with intervals, what combining did, the quality targets and the
    learned latent error correlation of ``adaptive`` (the fitted bayes-adaptive policy, if any)."""
    out = {k: v for k, v in results.items() if k != "train_question_ids"}  # the ids are in the setup
    out["pool"] = pool
    out["frontier_tables"] = {k: v.to_dict("records") for k, v in frontiers.items()}
    out["bayes_adaptive_combining"] = combining
    out["quality_targets"] = targets
    if adaptive is not None:
        out["error_correlation"] = adaptive.correlation_.latent_correlation.round(4).to_dict()
    return out


# --------------------------------------------------------------------------- budget allocation


def precall_calibration(p_correct: np.ndarray, correct: np.ndarray) -> tuple[pd.DataFrame, float]:
    """Predicted against observed success by decile of predicted p(correct), and the Brier score.

    ``p_correct``, ``correct``: (questions, models) matrices of predicted probability and
    0/1 outcome. Returns (table with predicted, observed, n per decile; Brier score).
    """
    calib = pd.DataFrame({"predicted": np.ravel(p_correct), "observed": np.ravel(correct).astype(float)})
    calib["decile"] = pd.qcut(calib["predicted"], 10, labels=False, duplicates="drop")
    table = calib.groupby("decile").agg(predicted=("predicted", "mean"), observed=("observed", "mean"),
                                        n=("observed", "size"))
    return table, float(np.mean((calib["predicted"] - calib["observed"]) ** 2))


def budget_sweep(policies: Mapping, setup, budget_fracs: Sequence[float], thresholds: Sequence[float],
                 n_boot: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Frontier tables of the allocation policies over ``budget_fracs`` (fractions of always-big's
    expected cost) and of ``threshold`` over its targets; and one row per always-<model>."""
    from bayes_router.policies import make_policy

    tables = [frontier_table(policies[n], setup, budget_fracs, n_boot=n_boot) for n in BUDGET_POLICIES]
    tables.append(frontier_table(policies["threshold"], setup, thresholds, n_boot=n_boot))
    always = pd.concat([frontier_table(make_policy(f"always:{m}").fit(setup.ctx), setup, n_boot=n_boot)
                        .assign(policy=f"always:{m}") for m in setup.models], ignore_index=True)
    return pd.concat(tables, ignore_index=True), always


def plot_budget_sweep(sweep: pd.DataFrame, always: pd.DataFrame, big_model: str):
    """Left: accuracy against the budget (fraction of always-big's expected cost) with 95% bands;
    right: accuracy against realized cost (USD per 1,000 questions) with the single models."""
    import matplotlib.pyplot as plt

    colors = {**BUDGET_POLICIES, "threshold": THRESHOLD_COLOR}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    ax = axes[0]
    for name in BUDGET_POLICIES:
        t = sweep[sweep["policy"] == name]
        ax.plot(t["value"], t["accuracy"], "o-", color=colors[name], label=name)
        ax.fill_between(t["value"], t["accuracy_lo"], t["accuracy_hi"], color=colors[name], alpha=0.15)
    big_acc = always.iloc[-1]
    ax.axhline(big_acc["accuracy"], color="k", ls="--", lw=1, label=f"always {big_model}")
    ax.axhspan(big_acc["accuracy_lo"], big_acc["accuracy_hi"], color="k", alpha=0.07)
    ax.set_xlabel("budget (fraction of always-big expected cost)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy vs budget (95% bootstrap bands)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for name in colors:
        t = sweep[sweep["policy"] == name]
        ax.errorbar(t["cost_per_question"] * 1000, t["accuracy"],
                    yerr=[t["accuracy"] - t["accuracy_lo"], t["accuracy_hi"] - t["accuracy"]],
                    fmt="o-", ms=3, capsize=2, color=colors[name], label=name)
    for _, r in always.iterrows():
        ax.errorbar(r["cost_per_question"] * 1000, r["accuracy"],
                    yerr=[[r["accuracy"] - r["accuracy_lo"]], [r["accuracy_hi"] - r["accuracy"]]],
                    fmt="s", color="k", capsize=2)
        ax.annotate(r["policy"].split(":")[1][:18], (r["cost_per_question"] * 1000, r["accuracy"]),
                    fontsize=7, xytext=(4, -10), textcoords="offset points")
    ax.set_xlabel("realized cost (USD per 1000 questions)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Cost-accuracy frontiers on held-out MMLU-Pro questions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def half_budget_vs_big(policies: Mapping, setup, n_boot: int, seed: int) -> dict:
    """Each allocation policy at half of always-big's expected cost against always-big on the
    same questions: accuracy, cost per question (USD) and the paired bootstrap comparison."""
    from bayes_router.policies import make_policy

    idx = bootstrap_indices(len(setup.test_question_ids), n_boot, seed)
    big_run = run_policy(make_policy(f"always:{setup.models[-1]}").fit(setup.ctx), setup)
    half = {}
    for name in BUDGET_POLICIES:
        o = run_policy(policies[name].with_knob(0.5), setup)
        half[name] = {"accuracy": o.accuracy, "cost_per_question": o.cost_per_question,
                      **compare_to_reference(o.correct, o.cost_usd, big_run.correct, big_run.cost_usd, idx)}
    return half


def sweep_aiq(sweep: pd.DataFrame, always: pd.DataFrame) -> dict[str, float]:
    """AIQ of every swept policy and single model over their common cost range."""
    frontiers = {n: sweep.loc[sweep["policy"] == n, ["cost_per_question", "accuracy"]].values.tolist()
                 for n in [*BUDGET_POLICIES, "threshold"]}
    frontiers.update({r["policy"]: [[r["cost_per_question"], r["accuracy"]]] for _, r in always.iterrows()})
    return aiq(frontiers)
