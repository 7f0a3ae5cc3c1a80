"""Tables and figures of a calibration study (notebook 05): metrics with intervals, the
reliability diagrams per predictor and recalibration, ECE by predictor, and the results file.
The study itself is :func:`bayes_router.models.calibration.calibration_study`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayes_router.models.calibration import METRICS, plot_reliability_diagram

RECALIBRATIONS = ["none", "temperature", "histogram"]


def metrics_with_intervals(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics of model "all" as text "value [lo, hi]", a row per (predictor, recalibration)."""
    pooled = metrics[metrics["model"] == "all"]

    def fmt(metric):
        return pooled.apply(lambda r: f"{r[metric]:.4f} [{r[metric + '_ci95_lo']:.4f}, {r[metric + '_ci95_hi']:.4f}]",
                            axis=1)

    table = pd.DataFrame({k: fmt(k) for k in METRICS})
    table.index = pd.MultiIndex.from_frame(pooled[["predictor", "recalibration"]])
    return table


def per_model_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Point estimates per (model, predictor, recalibration), without model "all"."""
    return metrics[metrics["model"] != "all"].set_index(["model", "predictor", "recalibration"])[
        ["ece_equal_width", "ece_equal_mass", "mce", "brier", "log_loss", "mean_predicted", "observed_rate", "n"]]


def plot_reliability_grid(study, models: Sequence[str], n_test: int):
    """Reliability diagrams, a row per predictor and a column per recalibration, a line per model
    (bin counts of the first model). Returns the figure."""
    import matplotlib.pyplot as plt

    preds = study.predictions
    pooled = study.metrics[study.metrics["model"] == "all"].set_index(["predictor", "recalibration"])
    predictors = list(dict.fromkeys(preds["predictor"]))
    colors = dict(zip(models, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(len(predictors), 3, figsize=(15, 4.6 * len(predictors)), squeeze=False)
    for i, pred in enumerate(predictors):
        for j, rc in enumerate(RECALIBRATIONS):
            ax = axes[i, j]
            for k, model_name in enumerate(models):
                g = preds[(preds["predictor"] == pred) & (preds["recalibration"] == rc) & (preds["model"] == model_name)]
                plot_reliability_diagram(g["correct"], g["p"], n_bins=10, ax=ax, label=model_name,
                                         color=colors[model_name], show_counts=(k == 0))
            ax.set_title(f"{pred}, recalibration: {rc}\n(ECE all models {pooled.loc[(pred, rc), 'ece_equal_width']:.3f})",
                         fontsize=10)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Reliability on {n_test} held-out MMLU-Pro questions per model", y=1.0)
    fig.tight_layout()
    return fig


def plot_ece_by_predictor(metrics: pd.DataFrame, ax=None):
    """ECE with equal-width and equal-mass bins per (predictor, recalibration), all models pooled,
    with 95% bootstrap intervals. Returns the axes."""
    import matplotlib.pyplot as plt

    pooled = metrics[metrics["model"] == "all"].set_index(["predictor", "recalibration"])
    predictors = list(dict.fromkeys(pooled.index.get_level_values("predictor")))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4.5))
    order = [(p, r) for p in predictors for r in RECALIBRATIONS]
    x = np.arange(len(order))
    v = pooled.loc[order]
    for off, metric, label in ((-0.2, "ece_equal_width", "ECE, equal-width bins"),
                               (0.2, "ece_equal_mass", "ECE, equal-mass bins")):
        # bootstrap intervals of ECE need not contain the point estimate (ECE is biased), so draw them as bars
        pts = ax.plot(x + off, v[metric], "o", label=label)[0]
        ax.vlines(x + off, v[metric + "_ci95_lo"], v[metric + "_ci95_hi"], color=pts.get_color())
    ax.set_xticks(x, [f"{p}\n{r}" for p, r in order], fontsize=8)
    ax.set(ylabel="expected calibration error (probability)",
           title="ECE on held-out calls, all models pooled (95% bootstrap intervals)")
    ax.legend(fontsize=8)
    return ax


def split_sizes(study) -> dict[str, int]:
    """Questions in the fit, calibration and test parts of the study's split."""
    return {k: len(study.split[f"{k}_question_ids"]) for k in ("fit", "calibration", "test")}


def calibration_results(study, models: Sequence[str], sampler: str, draws: int) -> dict:
    """The study's numbers for the results file: every metric with its 95% interval, pooled and
    per model, the fitted temperatures, and the predictor/recalibration of lowest equal-mass ECE."""
    m = study.metrics

    def metric_dict(row):
        return {k: {"value": float(row[k]), "ci95": [float(row[k + "_ci95_lo"]), float(row[k + "_ci95_hi"])]}
                for k in METRICS}

    pooled = m[m["model"] == "all"]
    best = pooled.loc[pooled["ece_equal_mass"].idxmin()]
    return {
        "models": list(models), "sampler": sampler, "draws": draws, "n_questions": split_sizes(study),
        "pooled": {f"{r['predictor']}/{r['recalibration']}": metric_dict(r) for _, r in pooled.iterrows()},
        "per_model": {f"{r['predictor']}/{r['recalibration']}/{r['model']}": metric_dict(r)
                      for _, r in m[m["model"] != "all"].iterrows()},
        "temperatures": {f"{r.predictor}/{r.model}": float(r.temperature) for r in study.temperatures.itertuples()},
        "lowest_ece_equal_mass": f"{best['predictor']}/{best['recalibration']}",
    }
