"""Prior predictive checks of the reliability model's spreads: what the priors alone say about how
far models, model x subject cells and per-model slopes may differ, against what the data show.

The spreads that rest on the models (``sigma_alpha``, ``sigma_interaction``, ``sigma_slope``) have
zero-avoiding Gamma(2, rate) priors (see :data:`~bayes_router.models.reliability.config.DEFAULT_MODEL_CONFIG`);
:data:`HALF_NORMAL_SPREADS` are the half-normal priors they replaced, kept so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

#: The half-normal spread priors used before the zero-avoiding ones (same means), for comparison.
HALF_NORMAL_SPREADS = {"sigma_alpha": {"dist": "HalfNormal", "sigma": 1.0},
                       "sigma_interaction": {"dist": "HalfNormal", "sigma": 0.5},
                       "sigma_slope": {"dist": "HalfNormal", "sigma": 0.5}}
SPREADS = ("sigma_alpha", "sigma_interaction", "sigma_slope")


def prior_spreads(train_log: pd.DataFrame, stage: str = "pre", model_config: dict | None = None,
                  samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Draws from the prior (rows) of each spread (logit scale; ``sigma_slope[<covariate>]`` per
    covariate, per training SD) and of ``accuracy_sd``, the standard deviation over models of their
    simulated accuracy on ``train_log``'s calls (a fraction: how different the models may be)."""
    from bayes_router.models.reliability import ReliabilityModel

    rm = ReliabilityModel(stage, model_config=model_config)
    acc, draws = rm.prior_predictive(train_log, samples, seed, var_names=SPREADS)
    out = {v: draws[v].to_numpy() for v in ("sigma_alpha", "sigma_interaction")}
    for c in draws["sigma_slope"].coords["covariate"].to_numpy():
        out[f"sigma_slope[{c}]"] = draws["sigma_slope"].sel(covariate=c).to_numpy()
    out["accuracy_sd"] = acc.std(axis=1, ddof=1).to_numpy() if acc.shape[1] > 1 else np.zeros(samples)
    return pd.DataFrame(out)


def observed_spreads(train_log: pd.DataFrame, stage: str = "pre") -> dict[str, float]:
    """The data's own rough estimates of the same quantities: ``accuracy_sd`` over models, and the
    method-of-moments spreads the parameterization rule measured (interactions, slopes per covariate)."""
    from bayes_router.models.reliability import ReliabilityModel

    plan = ReliabilityModel(stage).plan(train_log)
    acc = train_log.groupby(train_log["model"].astype(str), observed=True)["correct"].mean()
    out = {"accuracy_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0}
    ev = plan.parameterization.evidence
    if "spread" in ev.get("interaction_effects", {}):
        out["sigma_interaction"] = float(ev["interaction_effects"]["spread"])
    spreads = ev.get("slope_effects", {}).get("spread")
    if isinstance(spreads, list):
        out.update({f"sigma_slope[{c}]": float(s) for c, s in zip(plan.design.slope_covariates, spreads, strict=True)})
    return out


def compare_priors(draws: Mapping[str, pd.DataFrame], observed: Mapping[str, float],
                   small: float = 0.02) -> pd.DataFrame:
    """Per quantity and prior (``draws``: name -> :func:`prior_spreads`): its 5%, 50% and 95% prior
    quantiles, the prior mass below ``small`` (the region next to 0 where a spread rests on 3 levels
    and the funnel lies) and the prior quantile of the data's estimate (``observed``)."""
    rows = []
    for name, df in draws.items():
        for q in df.columns:
            x = df[q].to_numpy()
            obs = observed.get(q)
            rows.append({"quantity": q, "prior": name, "q05": np.quantile(x, 0.05), "median": np.median(x),
                         "q95": np.quantile(x, 0.95), f"P(< {small})": float(np.mean(x < small)),
                         "observed": obs, "prior_quantile_of_observed": None if obs is None else float(np.mean(x < obs))})
    return pd.DataFrame(rows).set_index(["quantity", "prior"])
