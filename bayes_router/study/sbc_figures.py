"""Figures and tables of simulation-based calibration (:mod:`bayes_router.models.sbc`): rank
histograms with the binomial band of a uniform histogram, and ECDF-difference plots with the
simultaneous band of Säilynoja, Bürkner and Vehtari (2022). Every figure is of SIMULATED data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.models.rank_uniformity import ecdf_band, ecdf_counts, uniformity_table


def _grid(n_panels: int, ncols: int = 4):
    import matplotlib.pyplot as plt

    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.5 * nrows), squeeze=False, constrained_layout=True)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def rank_histograms(result, bins: int | None = None, prob: float = 0.99):
    """One histogram of the ranks per parameter (``bins`` equal bins of ``0 .. L``), with the
    ``prob`` pointwise binomial interval of each bin's count under uniformity (grey)."""
    from scipy import stats

    n, L = result.replications, result.n_draws
    bins = bins or int(np.clip(n // 10, 2, min(20, L + 1)))
    which = np.arange(L + 1) * bins // (L + 1)
    width = np.bincount(which, minlength=bins) / (L + 1)  # share of ranks in each bin
    edges = np.concatenate([[0], np.cumsum(width)])
    fig, axes = _grid(len(result.parameters))
    for k, (ax, name) in enumerate(zip(axes, result.parameters, strict=False)):
        counts = np.bincount(which[result.ranks[:, k]], minlength=bins)
        lo, hi = stats.binom.ppf((1 - prob) / 2, n, width), stats.binom.ppf((1 + prob) / 2, n, width)
        ax.fill_between(edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post", color="0.85",
                        label=f"{prob:.0%} band (uniform)")
        ax.stairs(counts, edges, color="C0", linewidth=1.5, label="ranks")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"rank / (L + 1), L = {L}")
        ax.set_ylabel("replications")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"SBC rank histograms, {result.stage}-call model, {n} replications (SIMULATED data)")
    return fig


def ecdf_difference(result, prob: float = 0.95):
    """Per parameter: the ECDF of the ranks minus the uniform CDF, with the band the difference stays
    inside at every point at once with probability ``prob`` under uniformity (simultaneous, not pointwise)."""
    n, L = result.replications, result.n_draws
    band = ecdf_band(n, L, prob=prob)
    fig, axes = _grid(len(result.parameters))
    for k, (ax, name) in enumerate(zip(axes, result.parameters, strict=False)):
        diff = ecdf_counts(result.ranks[:, k], L) / n - band.z
        ax.fill_between(band.z, band.lower - band.z, band.upper - band.z, step="post", color="0.85",
                        label=f"{prob:.0%} simultaneous band")
        ax.step(band.z, diff, where="post", color="C0", linewidth=1.3, label="ECDF - uniform")
        ax.axhline(0, color="0.4", linewidth=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("fractional rank (j + 1) / (L + 1)")
        ax.set_ylabel("ECDF - uniform CDF")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"SBC ECDF difference, {result.stage}-call model, {n} replications (SIMULATED data)")
    return fig


def summary_table(results) -> pd.DataFrame:
    """One row per (stage, parameter): the uniformity p-values (chi-square, ECDF) and mean rank / L."""
    tables = [uniformity_table(r.ranks, r.parameters, r.n_draws).assign(stage=r.stage) for r in results]
    return pd.concat(tables, ignore_index=True).set_index(["stage", "parameter"])


def headline(result, table: pd.DataFrame, level: float = 0.05) -> dict:
    """The JSON-ready record of one stage's SBC: design, timing, divergences (in total and per fit),
    per-parameter p-values, the ranks themselves (per parameter, one per replication) and the verdict
    (every ECDF p-value above ``level`` / parameters, Bonferroni)."""
    t = table.loc[result.stage] if "stage" in (table.index.names or []) else table.set_index("parameter")
    bound = level / len(t)
    return {
        "design": result.design, "replications": result.replications, "n_draws": result.n_draws,
        "compile_seconds": result.compile_seconds, "fit_seconds_total": float(result.fit_seconds.sum()),
        "fit_seconds_median": float(np.median(result.fit_seconds)),
        "divergences_total": int(result.divergences.sum()),
        "fits_with_divergences": int((result.divergences > 0).sum()),
        "divergences_per_fit": result.divergences.tolist(),
        "ranks": {name: result.ranks[:, k].tolist() for k, name in enumerate(result.parameters)},
        "p_values": {name: {"chi2_p": float(row.chi2_p), "ecdf_p": float(row.ecdf_p),
                            "mean_rank_fraction": float(row.mean_rank_fraction)} for name, row in t.iterrows()},
        "bonferroni_bound": bound, "uniform": bool((t["ecdf_p"] > bound).all()),
    }
