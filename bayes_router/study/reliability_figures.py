"""Figures and tables of the reliability model's checks (notebook 02): the prior predictive
accuracy, trace and rank plots, the model x subject effects, the posterior predictive check,
PSIS-LOO, and the calibration and scores of held-out predictions.

Probabilities are P(correct) of a call; effects are on the logit scale. ``label`` arguments
name the data in titles (e.g. "MMLU-Pro, real data"), so a simulated log is never shown as real.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from bayes_router.study.notebook import posterior_mean_p_correct

#: The population-level parameters shown in trace plots (rank plots: the first four).
HYPER_PARAMETERS = ["mu_alpha", "sigma_alpha", "sigma_subject", "sigma_interaction", "mu_slope", "sigma_slope"]


def data_label(log: pd.DataFrame) -> str:
    """"SIMULATED data" when any row of ``log`` is simulated, else "MMLU-Pro, real data"."""
    return "SIMULATED data" if is_simulated(log) else "MMLU-Pro, real data"


def is_simulated(log: pd.DataFrame) -> bool:
    return bool((log["log_source"] == "simulated").any())


def plot_prior_predictive_accuracy(prior_acc: pd.DataFrame, train: pd.DataFrame, label: str, ax=None):
    """Per model, the distribution over prior draws of its simulated training accuracy
    (``prior_acc``: draws x models) against the observed accuracy (dashed). Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for m in prior_acc.columns:
        _, _, patches = ax.hist(prior_acc[m], bins=30, range=(0, 1), histtype="step", lw=1.5,
                                label=f"{m} (prior predictive)")
        ax.axvline(train.loc[train["model"] == m, "correct"].mean(), ls="--", color=patches[0].get_edgecolor(),
                   label=f"{m} (observed)")
    ax.set_xlabel("accuracy on the training calls (fraction correct)")
    ax.set_ylabel("prior draws (count)")
    ax.set_title(f"Prior predictive accuracy per model, pre-call model ({label})")
    ax.legend(fontsize=7)
    return ax


def plot_prior_spreads(draws: Mapping[str, pd.DataFrame], observed: Mapping[str, float], label: str):
    """One panel per spread (columns of each :func:`~bayes_router.models.prior_checks.prior_spreads`
    frame in ``draws``, by prior name): the prior draws of each prior, and the data's own estimate
    (dashed, where there is one). Returns the figure."""
    import matplotlib.pyplot as plt

    cols = list(next(iter(draws.values())).columns)
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 3.4), squeeze=False)
    for ax, col in zip(axes[0], cols, strict=True):
        top = max(float(np.quantile(df[col], 0.99)) for df in draws.values())
        for name, df in draws.items():
            ax.hist(df[col], bins=40, range=(0, top), histtype="step", lw=1.5, density=True, label=name)
        if observed.get(col) is not None:
            ax.axvline(observed[col], ls="--", color="k", label="data's estimate")
        unit = "fraction correct" if col == "accuracy_sd" else "logit"
        ax.set_xlabel(f"{col} ({unit})")
        ax.set_ylabel("prior density")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Prior predictive spreads of the reliability model ({label})")
    fig.tight_layout()
    return fig


def plot_trace_and_rank(idata, label: str, stage: str = "post"):
    """Trace plots of :data:`HYPER_PARAMETERS` and rank plots of the first four. Returns (trace figure, rank figure)."""
    import arviz as az

    axes = az.plot_trace(idata, var_names=HYPER_PARAMETERS, compact=True, figsize=(10, 12))
    trace = axes.ravel()[0].figure
    trace.suptitle(f"Trace plots, {stage}-call model ({label})", y=1.01)
    for ax in axes[:, 0]:
        ax.set_ylabel("posterior density")
    for ax in axes[:, 1]:
        ax.set_xlabel("draw (iteration)")
        ax.set_ylabel("value (logit scale)")
    trace.tight_layout()
    axes = np.ravel(az.plot_rank(idata, var_names=HYPER_PARAMETERS[:4], figsize=(10, 3)))
    rank = axes[0].figure
    rank.suptitle(f"Rank plots (uniform = chains agree), {stage}-call model ({label})", y=1.05)
    for ax in axes:
        ax.set_xlabel("rank of draw among all chains")
    return trace, rank


def plot_model_subject_effects(rm, label: str):
    """Forest plot (94% HDI) of ``gamma[model, subject]`` of a fitted model. Returns the axes."""
    import arviz as az

    axes = az.plot_forest(rm.idata, var_names=["gamma"], combined=True, hdi_prob=0.94,
                          figsize=(7, max(4, 0.22 * len(rm.models) * len(rm.subjects))))
    ax = axes[0]
    ax.axvline(0, color="grey", ls="--", lw=1)
    ax.set_xlabel("model x subject deviation gamma (logit scale)")
    ax.set_title(f"Model x subject effects, {rm.stage}-call model, 94% HDI ({label})")
    return ax


def plot_ppc(ppc: Mapping[str, pd.DataFrame], label: str):
    """One panel per stage of :func:`bayes_router.models.diagnostics.ppc_accuracy` tables. Returns the figure."""
    import matplotlib.pyplot as plt

    from bayes_router.models.diagnostics import plot_ppc_accuracy

    fig, axs = plt.subplots(1, len(ppc), figsize=(6 * len(ppc), 6), squeeze=False)
    for ax, (stage, t) in zip(axs[0], ppc.items(), strict=True):
        plot_ppc_accuracy(t, ax=ax)
        ax.set_title(f"{stage}-call PPC: {t['inside'].mean():.0%} of cells inside 90%")
    fig.suptitle(f"Posterior predictive check of accuracy per model x subject ({label})")
    return fig


def loo_summary(fits: Mapping) -> tuple[pd.DataFrame | None, dict | None]:
    """PSIS-LOO comparison of the fits (``az.compare`` table) and its numbers as a dict
    (per fit: elpd_loo, se, elpd_diff, dse); (None, None) when a fit stores no log-likelihood."""
    from bayes_router.models.diagnostics import loo_compare

    if not all("log_likelihood" in rm.idata.groups() for rm in fits.values()):
        return None, None
    table = loo_compare(dict(fits))
    numbers = {k: {c: float(table.loc[k, c]) for c in ("elpd_loo", "se", "elpd_diff", "dse")} for k in table.index}
    return table, numbers


def held_out_calibration(fits: Mapping, train: pd.DataFrame, test: pd.DataFrame, label: str, seed: int = 0):
    """Reliability diagrams of each fit's posterior-mean P(correct) on held-out calls, their ECE
    and the held-out log and Brier scores against the baselines
    (:func:`bayes_router.models.diagnostics.held_out_scores`).

    Returns (figure, {stage: held_out_scores dict}, {stage: {"equal_width_15", "equal_mass_10"} ECE}).
    """
    import matplotlib.pyplot as plt

    from bayes_router.models import calibration as cal
    from bayes_router.models.diagnostics import held_out_scores

    fig, axs = plt.subplots(1, len(fits), figsize=(6.5 * len(fits), 5.5), squeeze=False)
    held_out, ece = {}, {}
    y_test = test["correct"].to_numpy()
    for ax, (stage, rm) in zip(axs[0], fits.items(), strict=True):
        p = posterior_mean_p_correct(rm, test)
        ece[stage] = {"equal_width_15": cal.expected_calibration_error(y_test, p, 15, "uniform"),
                      "equal_mass_10": cal.expected_calibration_error(y_test, p, 10, "quantile")}
        cal.plot_reliability_diagram(y_test, p, n_bins=10, strategy="quantile", ax=ax, label=f"{stage}-call, held-out")
        ax.set_xlabel("predicted P(correct) (posterior mean), equal-mass bins")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"{stage}-call model: ECE {ece[stage]['equal_mass_10']:.3f} (10 equal-mass bins)")
        held_out[stage] = held_out_scores(rm, train, test, seed=seed)
    fig.suptitle(f"Calibration of held-out predictions ({label})")
    fig.tight_layout()
    return fig, held_out, ece


def held_out_score_table(held_out: Mapping[str, dict]) -> pd.DataFrame:
    """The held-out scores of each stage as one table, a row per (stage, score)."""
    return pd.DataFrame({(stage, k): v for stage, r in held_out.items() for k, v in r["scores"].items()}).T
