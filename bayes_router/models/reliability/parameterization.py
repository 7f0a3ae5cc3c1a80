"""The parameterization of each hierarchical effect, chosen before sampling from the data.

Centered or non-centered (the slopes: zero-sum innovations over the models) per effect, and
per covariate for the slopes; :func:`choose_parameterization` states the rule and the
measurements behind it. :func:`target_accept` follows from the choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bayes_router.models.reliability.config import PARAMETERIZATIONS

#: Confidence of the lower bound on a between-level spread that makes an effect centered. 99%, not 95%:
#: on the edge (bound within 3% of the standard error) the centered form left divergences where the
#: posterior reached small spreads (tiers x 4000 q, pre: 12; all x 2800 q, post, length slope: 1),
#: while the non-centered form there only costs effective draws.
CENTERING_LEVEL = 0.99
#: Pools of at most this many models sample at target_accept 0.98 unless every effect is centered:
#: their hyper-SDs rest on 3-4 levels, wide posteriors that reach into both ends of the funnel
#: (trio, post, 2 x 2000 draws: 2 divergences at 0.95 with seed 1; none at 0.98 with seeds 0-2, 64 s vs 55 s).
FEW_LEVELS = 4
#: A covariate's slopes are centered only when the lower bound of their spread is this many times their
#: typical standard error. At 1 the whole pool's length slopes (bound 0.048, standard error 0.039, 24
#: models, pre stage) were centered and their posterior still reached 0.006, into the funnel: 2 and 1
#: divergent transitions with seeds 1 and 2 of 0-3 (2800 train questions, 2 x 2000 draws).
SLOPE_CENTERING_MARGIN = 2.0


def _spread_bounds(estimates: np.ndarray, se2: np.ndarray, df: int, typical: bool = False) -> tuple[float, float]:
    """Method-of-moments between-level SD and its one-sided lower bound (chi-square on ``df``, level
    :data:`CENTERING_LEVEL`),
    net of the mean squared standard error (``typical``: the median one)."""
    from scipy import stats

    v = float(np.sum(estimates ** 2) / df)
    noise = float(np.median(se2) if typical else np.mean(se2))
    low = df * v / float(stats.chi2.ppf(CENTERING_LEVEL, df)) - noise
    return float(np.sqrt(max(v - noise, 0.0))), float(np.sqrt(max(low, 0.0)))


def choose_parameterization(effect: str, m_idx, s_idx, X, trials, y, n_models: int, n_subjects: int) -> dict:
    """Centered or non-centered for the model x subject deviations or the slopes, from the data.

    The classical criterion (Papaspiliopoulos, Roberts and Skold 2007; Betancourt and
    Girolami 2015): the centered form mixes well when the likelihood pins each level
    more tightly than the population spread, the non-centered form when it does not
    (then the centered posterior is a funnel). Both sides are estimated before sampling:

    * per-level estimates and standard errors: empirical logits of each (model,
      subject) cell, double-centered (interactions), or one-step logistic slopes per
      model and covariate around the model's accuracy (slopes);
    * the between-level spread tau: method of moments, and a one-sided 99% lower bound
      from the chi-square distribution of the levels' sum of squares (with few levels,
      e.g. 3 models, the bound is low, so the non-centered form is kept).

    Centered iff the lower bound of tau (net of the mean squared standard error for the
    interactions, of the median one for the slopes) exceeds the median standard error
    (for the slopes :data:`SLOPE_CENTERING_MARGIN` times it); the slopes are decided per
    covariate, and never centered in pools of at most :data:`FEW_LEVELS` models, nor when some
    model's covariate does not vary (its slope is then pinned by the prior alone: ``"unpinned"``).
    Returns ``{"choice", "spread", "spread_lower", "se"}`` (for the slopes lists per covariate,
    ``"per_covariate"`` the choice of each and ``"choice"`` "mixed" when they differ). The bound is
    one-sided at :data:`CENTERING_LEVEL`.
    """
    m_idx, s_idx = np.asarray(m_idx), np.asarray(s_idx)
    if effect == "interaction_effects":
        k = np.bincount(m_idx * n_subjects + s_idx, weights=y, minlength=n_models * n_subjects)
        n = np.bincount(m_idx * n_subjects + s_idx, weights=trials, minlength=n_models * n_subjects)
        seen = (n > 0).reshape(n_models, n_subjects)
        if n_models < 2 or n_subjects < 2 or not seen.all():
            return {"choice": "non-centered", "reason": "empty (model, subject) cells or a single level"}
        p = ((k + 0.5) / (n + 1.0)).reshape(n_models, n_subjects)
        logit = np.log(p / (1 - p))
        resid = logit - logit.mean(1, keepdims=True) - logit.mean(0, keepdims=True) + logit.mean()
        se2 = 1.0 / ((n.reshape(n_models, n_subjects) + 1.0) * p * (1 - p))
        df = (n_models - 1) * (n_subjects - 1)
        spread, low = _spread_bounds(resid, se2 * df / (n_models * n_subjects), df)
        se = float(np.sqrt(np.median(se2)))
        return {"choice": "centered" if low > se else "non-centered", "spread": spread, "spread_lower": low,
                "se": se}
    # slopes: one-step logistic slopes of each model on the covariates (score / information at the model's accuracy)
    if X.shape[1] == 0:
        return {"choice": "centered"}
    rows_of = [np.flatnonzero(m_idx == m) for m in range(n_models)]
    rows_of = [r for r in rows_of if trials[r].sum() > 0]
    spreads, lows, ses, unpinned = [], [], [], []
    est_all, var_all = _one_step_slopes(rows_of, X, trials, y)
    for j in range(X.shape[1]):
        pinned = np.isfinite(var_all[:, j])
        est, var = est_all[pinned, j], var_all[pinned, j]
        # A model whose covariate never varies (a signal it does not return, imputed at the mean) has a
        # slope the likelihood does not see: centered, that level is the prior's funnel (study-api, post,
        # seed 0: 5 models without token probabilities, 1 divergent transition at sigma_slope's 0.4% quantile)
        unpinned.append(not pinned.all())
        if len(est) < 2:
            spreads.append(None), lows.append(None), ses.append(None)
            continue
        # the typical model's noise: with the mean, one model whose token counts barely vary (a huge
        # standard error) decided for all (whole pool, post: token-slope bound 0, the non-centered
        # choice then left sigma_slope at bulk ESS 398 after 2 x 2000 draws; centered: 1931 after 2 x 1000)
        spread, low = _spread_bounds(est - est.mean(), var * (len(est) - 1) / len(est), len(est) - 1, typical=True)
        spreads.append(spread), lows.append(low), ses.append(float(np.sqrt(np.median(var))))
    per = ["centered" if lo is not None and not blind and lo > SLOPE_CENTERING_MARGIN * se else "zero-sum"
           for lo, se, blind in zip(lows, ses, unpinned, strict=True)]
    out = {"spread": spreads, "spread_lower": lows, "se": ses, "unpinned": unpinned}
    if n_models <= FEW_LEVELS:
        # A bound from 3-4 levels is no ground to center: on study-trio's post-call model (7 covariates,
        # 4 of them over the bound, seed 0) the centered slopes left 24 divergent transitions spread over
        # the whole range of sigma_slope; zero-sum innovations for all: none, every ESS >= 872.
        per = ["zero-sum"] * len(per)
        out["reason"] = f"at most {FEW_LEVELS} models: the slopes are never centered"
    choice = per[0] if len(set(per)) == 1 else "mixed"
    return {"choice": choice, "per_covariate": per, **out}


#: A model's one-step slope whose variance exceeds this (per standardized covariate) is not pinned by its
#: calls: its covariate is constant there, or a combination of the others (exactly collinear).
UNPINNED_VARIANCE = 1e4


def _one_step_slopes(rows_of, X, trials, y) -> tuple[np.ndarray, np.ndarray]:
    """Each model's one-step logistic slopes on all covariates jointly and their variances (score and
    information at the model's accuracy), (models, covariates); NaN where the model's calls do not pin it.

    Jointly, not one covariate at a time: the confidence signals are correlated, and one at a time each
    signal's slope also carries the others' (overstating the spread) while its standard error ignores them
    (study-api, post: decisiveness spread 0.18, bound 0.12, standard error 0.048 one at a time, so centered;
    the fitted slopes spread 0.09 with posterior SDs 0.05-0.08, and the centered funnel diverged at
    sigma_slope's 1% quantile).
    """
    k = X.shape[1]
    est, var = np.full((len(rows_of), k), np.nan), np.full((len(rows_of), k), np.nan)
    for i, rows in enumerate(rows_of):
        w, yy = trials[rows], y[rows]
        pbar = float(np.clip(yy.sum() / w.sum(), 1e-3, 1 - 1e-3))
        xc = X[rows] - np.average(X[rows], axis=0, weights=w)
        info = pbar * (1 - pbar) * (xc.T @ (w[:, None] * xc))
        # a tiny ridge keeps a singular information finite; the slopes it does not pin get huge variances
        ridge = 1e-9 * max(float(np.trace(info)), 1e-12) * np.eye(k)
        cov = np.linalg.inv(info + ridge)
        v = np.diag(cov)
        pinned = v < UNPINNED_VARIANCE
        est[i, pinned] = (cov @ (xc.T @ (yy - w * pbar)))[pinned]
        var[i, pinned] = v[pinned]
    return est, var


@dataclass(frozen=True)
class Parameterization:
    """The parameterization a fit uses: ``chosen`` effect -> form ("mixed" for slopes decided per
    covariate), ``slopes`` covariate -> form, ``evidence`` effect -> what "auto" measured."""

    chosen: dict[str, str]
    slopes: dict[str, str]
    evidence: dict = field(default_factory=dict)

    def slope_kinds(self, covariates) -> list[str]:
        """The form of each covariate's slopes, in ``covariates`` order."""
        return [self.slopes[c] for c in covariates]


def resolve_parameterizations(model_config: dict, cells, n_models: int, n_subjects: int,
                              slope_covariates) -> Parameterization:
    """Fix each effect's parameterization ("auto" decided from the likelihood ``cells``)."""
    chosen, evidence = {}, {}
    for effect in PARAMETERIZATIONS:
        how = model_config[effect]["parameterization"]
        if how == "auto":
            ev = choose_parameterization(effect, cells.model_idx, cells.subject_idx, cells.x, cells.trials,
                                         cells.y, n_models, n_subjects)
            how, evidence[effect] = ev["choice"], ev
        chosen[effect] = how
    per = evidence.get("slope_effects", {}).get("per_covariate")
    per = per or [chosen["slope_effects"]] * len(slope_covariates)
    return Parameterization(chosen, dict(zip(slope_covariates, per, strict=True)), evidence)


def target_accept(configured: float | None, chosen: dict[str, str], n_models: int) -> float:
    """NUTS target acceptance: ``configured`` if given, else 0.85 when every effect is centered, else
    0.98 in pools of at most :data:`FEW_LEVELS` models and 0.95 in larger ones."""
    if configured is not None:
        return float(configured)
    if all(chosen[e] == "centered" for e in PARAMETERIZATIONS):
        return 0.85
    return 0.98 if n_models <= FEW_LEVELS else 0.95
