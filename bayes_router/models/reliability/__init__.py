"""Hierarchical Bayesian reliability models: the probability that an LLM answers correctly.

Two stages, one class (:class:`ReliabilityModel`):

* **pre-call** (``stage="pre"``): what is known before calling. For call ``i`` of
  model ``m`` on a question of subject ``s``::

      logit p_i = alpha[m] + beta[s] + gamma[m, s] + slope[m, "log_question_chars"] * z_len_i

  ``p_i`` is P(correct) including the chance that no answer can be extracted
  (an unparsed call counts as wrong), so it is what a router needs before paying.

* **post-call** (``stage="post"``): after the answer is back. A *hurdle*:

      P(correct | parsed = False) = 0                       exactly (schema: pred null => wrong)
      logit P(correct | parsed = True) = pre-call terms + sum_c slope[m, c] * z_c,i

  for the post-call covariates ``c`` the training log holds: standardized
  log1p(completion tokens), confidence (where the log has it) and log latency
  (where the log has it). Why a hurdle rather than a slope on ``parsed``: the
  outcome is *deterministically* wrong when ``parsed`` is False, so a slope
  would face complete separation (its likelihood increases without bound
  towards -inf and only the prior would stop it). The hurdle encodes the
  structural zero exactly and fits the logistic part on parsed calls only;
  ``parsed`` is listed in :attr:`ReliabilityModel.covariates_used` as the hurdle.

Partial pooling everywhere. The per-model intercepts and the subject effects are
centered by default (hundreds to thousands of calls pin each one, and a
non-centered form then mixes slowly). The model x subject deviations and the
slopes are chosen per fit from the data (``"auto"``, :func:`choose_parameterization`):
centered when the likelihood pins each level more tightly than a conservative
estimate of how much the levels spread (the whole 24-model pool), else
non-centered (the 3-model pools), the slopes then with innovations that sum to
zero over the models. The slopes are decided per covariate (in the 24-model pool
the token slopes spread far more than their noise and are centered, the length
slopes are on the edge and get zero-sum innovations). Each is a ``model_config`` option
(``{"model_effects" | "subject_effects" | "interaction_effects" | "slope_effects":
{"parameterization": "auto" (interactions, slopes) | "centered" | "non-centered" |
"zero-sum" (slopes only)}}``); the choice made is kept in ``metadata["parameterization"]``
("mixed" for slopes decided per covariate; ``metadata["slope_parameterization"]`` has each):

    alpha[m]        ~ Normal(mu_alpha, sigma_alpha)                    model intercepts share a population
    beta            ~ ZeroSumNormal(sigma_subject)                     subject effects, sum_s beta = 0
    gamma[m, s]     ~ ZeroSumNormal(sigma_interaction)                 model x subject deviations,
                      (or sigma_interaction * z_gamma[m, s])           zero sum over m and over s
    slope[m, c]     ~ Normal(mu_slope[c], sigma_slope[c])              slopes pooled across models
                      (or mu_slope[c] + sigma_slope[c] * z_slope[m, c], sum_m z_slope[m, c] = 0)

The zero-sum constraints (``pm.ZeroSumNormal``) remove the additive ridges between
the intercepts, subject effects and interactions (otherwise only the priors pin
down, say, mu_alpha against the mean of beta, and NUTS mixes slowly along that
ridge); the cell logits alpha + beta + gamma are unchanged in meaning. For the
slopes the same constraint makes mu_slope the mean of the models' slopes, so it
cannot trade off against the mean innovation (with 3 models that ridge cost
mu_slope most of its effective sample size and left divergences).

A model or subject not seen in training gets population-level draws for its
effects in :meth:`ReliabilityModel.p_correct` (so a new model starts from a
sensible prior, widened by the between-model spread).

Covariates a log does not hold (the public MMLU-Pro logs have no confidence and
no latency) are left out automatically, with a warning that names them. The model's
own confidence signals (stated confidence, mean token probability, decisiveness;
:data:`~.design.SIGNALS`) enter as the logit of the value clipped to [0.01, 0.99], and
where a training call lacks one (null, or a stated 0) it is modelled as missing: the
training mean plus an indicator ``<signal>_missing`` with its own pooled per-model
slope (``model_config["signal_missing"]``: "indicator", or "drop" to leave the signal
out). Other covariates are never imputed. Standardization uses the training rows only;
its constants are stored with the posterior and reused for prediction.

Priors live in :data:`DEFAULT_MODEL_CONFIG`, sampler settings in
:data:`DEFAULT_SAMPLER_CONFIG`. ``fit`` returns ``arviz.InferenceData``
(dims ``model``, ``subject``, ``covariate``); ``p_correct(calls)`` the posterior
draws of P(correct) as an ``xarray.DataArray`` (draw, call); ``save``/``load``
write the posterior to NetCDF with the configuration in its attributes.

The parts, each readable alone: :mod:`.config` (priors, sampler settings and their
validation), :mod:`.design` (covariates, standardization, coordinates, likelihood
cells), :mod:`.parameterization` (the choice above), :mod:`.graph` (the PyMC graph
and the one linear predictor), :mod:`.prediction` (fast NumPy prediction) and
:mod:`.model` (the class that assembles them).
"""

from bayes_router.models.reliability.config import (
    DEFAULT_MODEL_CONFIG,
    DEFAULT_SAMPLER_CONFIG,
    DEFAULT_TOTAL_DRAWS,
    SAMPLERS,
    STAGES,
    default_chains,
    default_draws,
    read_config_file,
    resolve_model_config,
    resolve_sampler_config,
)
from bayes_router.models.reliability.design import COVARIATES
from bayes_router.models.reliability.graph import linear_predictor
from bayes_router.models.reliability.model import (
    FitPlan,
    ReliabilityModel,
    check_fitted_on,
    fit_reliability,
)
from bayes_router.models.reliability.parameterization import choose_parameterization

__all__ = ("ReliabilityModel", "FitPlan", "DEFAULT_MODEL_CONFIG", "DEFAULT_SAMPLER_CONFIG", "SAMPLERS", "STAGES",
           "COVARIATES", "DEFAULT_TOTAL_DRAWS", "check_fitted_on", "choose_parameterization", "default_chains",
           "default_draws", "fit_reliability", "linear_predictor", "read_config_file", "resolve_model_config",
           "resolve_sampler_config")
