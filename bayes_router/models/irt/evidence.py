"""Call signals whose distribution given correctness moves with the question's difficulty.

On MMLU-Pro a model's right answers run longer on harder questions: on training questions, with
difficulty = -logit of the share of the other 23 models right, log completion tokens correlate with
it at +0.43 among gemini-1.5-flash-002's right answers and +0.03 among its wrong ones. A signal
model that takes the tokens as independent of difficulty given correctness reads a long right
answer to a hard question as a wrong one, and overvalues a second call.

Here such a signal's bin b (the :class:`~.post.SignalModel`'s quantile bins of the standardized
signal, over parsed calls where the signal is present), given correctness y and the question's
difficulty d, is ordinal (cumulative logit, proportional odds):

    P(b <= k | y, d) = sigmoid(c_{y,k} - slope_y * d),   k = 0 .. K - 2,

fitted per model and y by maximum a posteriori (cutpoints ~ Normal(0, 5), slope ~ Normal(0, 2))
on training calls at their question's posterior mean difficulty. That plug-in ignores the
difficulty's posterior spread, which attenuates the slope toward 0 (the independent model), never
away from it. One pseudo-call per bin keeps every bin possible, as the Dirichlet(1, ..., 1) of the
independent bins: P(b | y, d) = (n_y ordinal(b | y, d) + 1) / (n_y + K), n_y the calls fitted. A
missing signal keeps its own probability given y, independent of d.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize

from bayes_router.models.irt.prediction import sigmoid

#: Prior sds (logit scale) of the ordinal cutpoints and the slope on difficulty.
CUT_PRIOR_SD, SLOPE_PRIOR_SD = 5.0, 2.0
#: Fewest calls of one correctness for which the ordinal model is fitted.
MIN_CALLS = 20


def _cuts(theta: np.ndarray) -> np.ndarray:
    """Ordered cutpoints from (first cut, log increments)."""
    return theta[0] + np.concatenate([[0.0], np.cumsum(np.exp(theta[1:]))])


def _neg_log_posterior(params: np.ndarray, bins: np.ndarray, d: np.ndarray, n_bins: int):
    """-log posterior of the cumulative-logit model and its gradient; params = (first cut, K - 2
    log increments, slope)."""
    theta, slope = params[:-1], params[-1]
    cuts = _cuts(theta)
    bounded = np.concatenate([[-np.inf], cuts, [np.inf]])
    hi, lo = bounded[bins + 1] - slope * d, bounded[bins] - slope * d
    s_hi, s_lo = sigmoid(hi), sigmoid(lo)
    p = np.maximum(s_hi - s_lo, 1e-300)
    dens_hi, dens_lo = s_hi * (1 - s_hi), s_lo * (1 - s_lo)  # sigmoid'(+-inf) = 0
    value = -np.log(p).sum() + 0.5 * (cuts ** 2).sum() / CUT_PRIOR_SD ** 2 + 0.5 * slope ** 2 / SLOPE_PRIOR_SD ** 2
    # d(-log p)/d cut_k: the cut is the upper bound of bin k and the lower bound of bin k + 1
    g_cut = -(np.bincount(bins, dens_hi / p, minlength=n_bins)[:n_bins - 1]
              - np.bincount(bins, dens_lo / p, minlength=n_bins)[1:n_bins]) + cuts / CUT_PRIOR_SD ** 2
    g_slope = -((-d * dens_hi + d * dens_lo) / p).sum() + slope / SLOPE_PRIOR_SD ** 2
    tail = np.cumsum(g_cut[::-1])[::-1]  # cut_k depends on increment j <= k
    grad = np.concatenate([[g_cut.sum()], np.exp(theta[1:]) * tail[1:], [g_slope]])
    return value, grad


def fit_ordinal(bins: np.ndarray, d: np.ndarray, n_bins: int) -> dict:
    """MAP cumulative-logit fit of ``bins`` (calls,) in 0 .. n_bins - 1 on difficulty ``d`` (calls,):
    {"cuts": K - 1 ordered cutpoints, "slope", "n": calls}."""
    bins, d = np.asarray(bins, dtype=np.int64), np.asarray(d, dtype=float)
    share = np.clip(np.cumsum(np.bincount(bins, minlength=n_bins))[:-1] / len(bins), 0.01, 0.99)
    start_cuts = np.maximum.accumulate(np.log(share) - np.log1p(-share))
    start = np.concatenate([[start_cuts[0]], np.log(np.maximum(np.diff(start_cuts), 0.05)), [0.0]])
    res = minimize(_neg_log_posterior, start, args=(bins, d, n_bins), jac=True, method="L-BFGS-B")
    return {"cuts": _cuts(res.x[:-1]).tolist(), "slope": float(res.x[-1]), "n": int(len(bins))}


@dataclasses.dataclass
class OrdinalRows:
    """The ordinal model of one signal for each row's model, as arrays (rows first):
    ``cuts`` (rows, 2, K_max + 1) bin bounds per y (-inf first, +inf from bin K on), ``slope``
    (rows, 2), ``n`` (rows, 2) calls fitted, ``n_bins`` (rows,) K, ``missing`` (rows, 2)
    P(signal missing | y). A row whose model has no ordinal fit has K = 1 and n = 0: one bin of
    probability 1 given either y (no evidence here; its signal is read as independent of d)."""

    cuts: np.ndarray
    slope: np.ndarray
    n: np.ndarray
    n_bins: np.ndarray
    missing: np.ndarray

    @classmethod
    def from_fits(cls, fits: list[dict | None]) -> OrdinalRows:
        """From one entry per row: None, or {"right"/"wrong": fit_ordinal(...), "missing": [P | wrong,
        P | right]}."""
        k_max = max([len(f["right"]["cuts"]) + 1 for f in fits if f] + [1])
        rows = len(fits)
        cuts = np.full((rows, 2, k_max + 1), np.inf)
        cuts[:, :, 0] = -np.inf
        slope, n, missing = np.zeros((rows, 2)), np.zeros((rows, 2)), np.zeros((rows, 2))
        n_bins = np.ones(rows)
        for i, f in enumerate(fits):
            if not f:
                continue
            for y, label in enumerate(("wrong", "right")):
                c = f[label]["cuts"]
                cuts[i, y, 1:len(c) + 1] = c
                slope[i, y], n[i, y] = f[label]["slope"], f[label]["n"]
            n_bins[i], missing[i] = len(f["right"]["cuts"]) + 1, f["missing"]
        return cls(cuts, slope, n, n_bins, missing)

    def take(self, idx) -> OrdinalRows:
        return OrdinalRows(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))

    def probs(self, y: int, d: np.ndarray) -> np.ndarray:
        """P(outcome | y, d) of every outcome, (draws, rows, K_max + 1): the K_max bins (0 beyond a
        row's K) then "missing"; ``d`` (draws, rows)."""
        cdf = sigmoid(self.cuts[None, :, y, :] - self.slope[None, :, y, None] * d[:, :, None])
        valid = np.arange(self.cuts.shape[2] - 1)[None, :] < self.n_bins[:, None]
        n, present = self.n[:, y, None], 1.0 - self.missing[:, y, None]
        binned = (n * np.diff(cdf, axis=2) + valid) / (n + self.n_bins[:, None]) * present
        return np.concatenate([binned, np.broadcast_to(self.missing[None, :, y, None], binned.shape[:2] + (1,))],
                              axis=2)

    def prob_at(self, y: int, d: np.ndarray, b: np.ndarray) -> np.ndarray:
        """P(observed outcome ``b`` (rows,) | y, d), (draws, rows); b = K_max means missing."""
        rows = np.arange(len(b))
        k = np.minimum(b, self.cuts.shape[2] - 2)
        lo, hi = self.cuts[rows, y, k], self.cuts[rows, y, k + 1]
        s = self.slope[:, y]
        n = self.n[:, y]
        p = (n * (sigmoid(hi - s * d) - sigmoid(lo - s * d)) + 1.0) / (n + self.n_bins) * (1.0 - self.missing[:, y])
        return np.where(b >= self.cuts.shape[2] - 1, self.missing[:, y], p)


@dataclasses.dataclass
class Evidence:
    """What each call's signals say about its correctness: ``log_ratio`` (calls,) the part
    independent of difficulty (log p(s | right) - log p(s | wrong); -inf where unparsed) and
    ``terms``: (OrdinalRows, observed outcome (calls,)) per signal that moves with difficulty."""

    log_ratio: np.ndarray
    terms: list = dataclasses.field(default_factory=list)

    def take(self, idx) -> Evidence:
        return Evidence(self.log_ratio[idx], [(rows.take(idx), b[idx]) for rows, b in self.terms])

    def likelihoods(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p(s | wrong, d), p(s | right, d)) of every call at difficulty ``d`` (draws, calls), up to
        one factor per call that does not depend on d or y (so only their ratio and their change in
        d carry information); p(s | right) = 0 where unparsed."""
        log_wrong = np.zeros(d.shape)
        log_right = np.broadcast_to(self.log_ratio[None, :], d.shape).astype(np.float64)
        for rows, b in self.terms:
            log_wrong = log_wrong + np.log(rows.prob_at(0, d, b))
            log_right = log_right + np.log(rows.prob_at(1, d, b))
        return np.exp(log_wrong), np.exp(np.minimum(log_right, 50.0))


def signal_likelihoods(evidence, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p(s | wrong, d), p(s | right, d)), each (draws, calls) in ``d``'s dtype, of an
    :class:`Evidence` or of a plain log ratio (calls,) of signals independent of difficulty (then
    p(s | wrong) = 1 and p(s | right) = its exp; exp(-inf) = 0: an unparsed call is wrong).

    Both are needed: when a signal moves with difficulty, p(s | wrong, d) is not constant in d, and
    the posterior of d given s weighs p_1(d) p(s | right, d) + (1 - p_1(d)) p(s | wrong, d)."""
    if isinstance(evidence, Evidence):
        wrong, right = evidence.likelihoods(d)
        return wrong.astype(d.dtype), right.astype(d.dtype)
    right = np.broadcast_to(np.exp(np.minimum(evidence, 50.0)).astype(d.dtype)[None, :], d.shape)
    return np.ones_like(d), right
