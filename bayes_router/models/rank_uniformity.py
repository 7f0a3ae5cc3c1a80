"""Is a sample of SBC ranks uniform? Tests and the simultaneous ECDF band.

Ranks are integers in ``0 .. L`` (``L`` posterior draws per replication); under a correct model and
sampler they are discrete-uniform, so the count of ranks ``<= j`` among ``N`` replications is exactly
Binomial(N, (j + 1) / (L + 1)) at every ``j``. Two tests per parameter:

* Pearson's chi-square on ``bins`` equal bins of the ranks (Talts et al. 2018's histogram);
* the ECDF test of Säilynoja, Bürkner and Vehtari (2022, "Graphical test for discrete uniformity and
  its applications in goodness-of-fit evaluation and multiple sample comparison"): the statistic is the
  smallest two-sided pointwise binomial tail probability of the ECDF over ``j = 0 .. L - 1``; its null
  distribution is simulated, which also gives the band that the whole ECDF stays inside with
  probability ``prob`` (a simultaneous band, not a pointwise one). Sensitive to shifts (ranks piled at
  one end: biased posterior) and to U or hump shapes (too narrow or too wide posterior).

The band agrees with ArviZ's optimized simultaneous band (``arviz.stats.ecdf_utils.ecdf_confidence_band``,
0.23.4) within one count: 30 ranks among 19 draws, the lower bound differs at 1 of 19 points; 200 among 99,
at 1 and 2 of 99 points (lower, upper). Here it is computed for the discrete ranks exactly (multinomial
null draws), and the test's p-value comes from the same null draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from bayes_router.errors import InputError

#: Null simulations of the ECDF statistic: p-values resolve down to about 1 / N_SIM.
N_SIM = 10_000


def _grid(n_draws: int) -> np.ndarray:
    """The uniform CDF at the ranks ``0 .. L - 1``: ``(j + 1) / (L + 1)``, shape (L,)."""
    return np.arange(1, n_draws + 1) / (n_draws + 1)


def _min_tail(counts: np.ndarray, n: int, z: np.ndarray) -> np.ndarray:
    """Smallest two-sided pointwise binomial tail probability over the grid, per row of ``counts``."""
    from scipy import stats

    lower = stats.binom.cdf(counts, n, z)
    upper = stats.binom.sf(counts - 1, n, z)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper)).min(axis=-1)


def ecdf_counts(ranks: np.ndarray, n_draws: int) -> np.ndarray:
    """How many ranks are ``<= j`` for ``j = 0 .. L - 1``: (..., L) for ranks (..., replications)."""
    ranks = np.asarray(ranks)
    if ranks.size and (ranks.min() < 0 or ranks.max() > n_draws):
        raise InputError(f"ranks must lie in 0 .. {n_draws}, got {ranks.min()} .. {ranks.max()}")
    return (ranks[..., None, :] <= np.arange(n_draws)[:, None]).sum(axis=-1)


@lru_cache(maxsize=32)
def _null_statistic(n: int, n_draws: int, n_sim: int, seed: int) -> np.ndarray:
    """Sorted null draws of the ECDF statistic for ``n`` replications of ranks among ``n_draws``."""
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(n, np.full(n_draws + 1, 1.0 / (n_draws + 1)), size=n_sim)
    counts = np.cumsum(cells, axis=1)[:, :-1]
    return np.sort(_min_tail(counts, n, _grid(n_draws)))


def ecdf_test(ranks, n_draws: int, n_sim: int = N_SIM, seed: int = 0) -> float:
    """p-value of the ECDF uniformity test of ``ranks`` (replications,) among ``n_draws`` draws.

    ``(1 + #null statistics <= observed) / (1 + n_sim)``: the smallest it can be is ``1 / (n_sim + 1)``.
    """
    ranks = np.asarray(ranks)
    null = _null_statistic(len(ranks), int(n_draws), int(n_sim), int(seed))
    obs = _min_tail(ecdf_counts(ranks, n_draws), len(ranks), _grid(n_draws))
    return float((1 + np.searchsorted(null, obs, side="right")) / (1 + n_sim))


def chi_square_test(ranks, n_draws: int, bins: int) -> tuple[float, float]:
    """(statistic, p-value) of Pearson's chi-square on ``bins`` bins of the ranks.

    Bin ``b`` holds the ranks ``r`` with ``floor(r * bins / (L + 1)) == b``; with unequal bins
    (``L + 1`` not a multiple of ``bins``) the expected counts are those of each bin's width.
    """
    from scipy import stats

    ranks = np.asarray(ranks)
    if bins < 2 or bins > n_draws + 1:
        raise InputError(f"bins must be between 2 and L + 1 = {n_draws + 1}, got {bins}")
    which = np.arange(n_draws + 1) * bins // (n_draws + 1)
    expected = np.bincount(which, minlength=bins) / (n_draws + 1) * len(ranks)
    observed = np.bincount(which[ranks], minlength=bins)
    stat, p = stats.chisquare(observed, expected)
    return float(stat), float(p)


@dataclass(frozen=True)
class EcdfBand:
    """The simultaneous band of the ECDF of ``n`` uniform ranks among ``n_draws`` draws.

    ``z`` (L,) the uniform CDF at ranks 0 .. L - 1; ``lower``/``upper`` (L,) the band on the ECDF
    (fractions of the replications); ``prob`` its simultaneous coverage; ``gamma`` the pointwise
    level that gives it.
    """

    z: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    prob: float
    gamma: float


def ecdf_band(n: int, n_draws: int, prob: float = 0.95, n_sim: int = N_SIM, seed: int = 0) -> EcdfBand:
    """The band the ECDF of ``n`` uniform ranks stays inside, at every point at once, with
    probability ``prob`` (the pointwise level ``gamma`` is the ``1 - prob`` quantile of the null statistic)."""
    from scipy import stats

    if not 0 < prob < 1:
        raise InputError(f"prob must be in (0, 1), got {prob}")
    null = _null_statistic(int(n), int(n_draws), int(n_sim), int(seed))
    gamma = float(np.quantile(null, 1 - prob))
    z = _grid(n_draws)
    return EcdfBand(z, stats.binom.ppf(gamma / 2, n, z) / n, stats.binom.ppf(1 - gamma / 2, n, z) / n, prob, gamma)


def uniformity_table(ranks: np.ndarray, parameters, n_draws: int, bins: int | None = None,
                     n_sim: int = N_SIM, seed: int = 0) -> pd.DataFrame:
    """One row per parameter: chi-square statistic and p-value, ECDF-test p-value, mean rank / L.

    ``ranks`` (replications, parameters). ``bins`` default: about 5 expected ranks per bin, at most 20
    (Talts et al.'s advice against sparse bins).
    """
    ranks = np.asarray(ranks)
    n = ranks.shape[0]
    bins = bins or int(np.clip(n // 5, 2, min(20, n_draws + 1)))
    rows = []
    for k, name in enumerate(parameters):
        stat, p = chi_square_test(ranks[:, k], n_draws, bins)
        rows.append({"parameter": name, "chi2": stat, "chi2_bins": bins, "chi2_p": p,
                     "ecdf_p": ecdf_test(ranks[:, k], n_draws, n_sim, seed),
                     "mean_rank_fraction": float(ranks[:, k].mean() / n_draws)})
    return pd.DataFrame(rows)
