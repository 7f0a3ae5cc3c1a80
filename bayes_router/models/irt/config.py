"""Settings of the IRT reliability model that the v1 model has not: the discrimination, text
and difficulty priors, the text featurizer and the quadrature. The ability priors (mu_alpha,
sigma_alpha, sigma_subject, sigma_interaction) are v1's ``model_config`` entries, read from there.

Scales: logits. The text features are standardized (unit training variance), so a text weight
is the change in difficulty per training SD of its feature.
"""

from __future__ import annotations

import copy

from bayes_router.errors import InputError
from bayes_router.models.irt.post import CONTINUOUS_SIGNALS

DEFAULT_IRT_CONFIG: dict = {
    # log discrimination_m ~ ZeroSumNormal(sigma): discriminations are positive with geometric mean 1 over
    # the pool, which fixes the scale of difficulty exactly (otherwise discrimination * c and difficulty / c
    # give the same likelihood and only the priors separate them)
    "sigma_log_discrimination": 0.5,
    "text_weight_sigma": 1.0,  # text weights w ~ Normal(0, this), per standardized feature
    "sigma_difficulty_sigma": 1.0,  # sigma_q ~ HalfNormal(this): spread of difficulty around text . w
    # "auto": centered difficulty when a question's answers pin it more tightly than its prior spreads
    # (about 5 or more models per question), else non-centered
    "difficulty_effects": "auto",
    # per-model intercepts: centered, as thousands of calls pin each model on a real log; a small
    # simulated log does not, and with 3 models and a small sigma_alpha the centered form is a funnel
    # (SBC, 3 models x 3 subjects x 100 questions: divergences in 114 of 200 fits, most where the true
    # sigma_alpha was small), then "non-centered"
    "model_effects": "centered",
    # subject effects: centered as v1 (hundreds of calls pin each of MMLU-Pro's 14 subjects); with a few
    # subjects their spread is barely identified and the centered form is a funnel (3 subjects, simulated:
    # 2 divergences in 600 draws at small sigma_subject), then "non-centered"
    "subject_effects": "centered",
    # model x subject deviations: "auto" as v1 (reliability.parameterization.choose_parameterization).
    # Trio x 600 questions: centered gamma bulk ESS 18 (R-hat 1.09) in 2 x 300 draws, non-centered 125+
    "interaction_effects": "auto",
    "n_components": 16,  # SVD components of the TF-IDF text features
    "max_features": 5000,  # TF-IDF vocabulary
    "quadrature_nodes": 24,  # Gauss-Hermite nodes of the integral over a new question's difficulty
    # post-call signals whose distribution given correctness is ordinal in the question's difficulty
    # (irt.evidence). Among right answers, harder questions get longer answers (corr of log tokens with
    # difficulty +0.24 to +0.44 on MMLU-Pro and the calibration study) and lower stated confidence
    # (logit confidence -0.20 to -0.40 in the study); among wrong answers both are weaker (|corr| <= 0.22).
    # Yet routing does not gain from modelling it (bayes-adaptive's AIQ, seed 0: all 0.653 against 0.659,
    # study-trio 0.684 against 0.684, study-cascade 0.671 against 0.664), and on all the second call's
    # predicted gain grows further from the realized one, so the default reads every signal as
    # independent of difficulty given correctness (naive Bayes), e.g. ["completion_tokens", "confidence"]
    "difficulty_signals": [],
    # a latent class of unanswerable questions (a wrong key, or beyond every model): there each model is
    # right only by chance, guess ~ Beta(2, 18), and the class's share ~ Beta(1, 9); marginalized per
    # question. On MMLU-Pro the three strongest models fail together on one shared letter on 6.9% of a
    # split's train questions, where the weakest 8 are right 10.6% of the time (chance: 1 in 10)
    "unanswerable": False,
}
_CHOICES = {"difficulty_effects": ("auto", "centered", "non-centered"),
            "model_effects": ("centered", "non-centered"),
            "subject_effects": ("centered", "non-centered"),
            "interaction_effects": ("auto", "centered", "non-centered")}
_INTEGERS = ("n_components", "max_features", "quadrature_nodes")
#: Fewest models per question for which "auto" centers the difficulty: a question answered by n
#: models has Fisher information about n * p(1 - p) <= n / 4 on the logit scale, against the
#: prior's 1 / sigma_q**2 (about 1).
CENTERED_MIN_MODELS = 5


def resolve_irt_config(overrides: dict | None) -> dict:
    """:data:`DEFAULT_IRT_CONFIG` with ``overrides`` applied and checked (InputError names the key)."""
    config = copy.deepcopy(DEFAULT_IRT_CONFIG)
    for key, value in (overrides or {}).items():
        if key not in config:
            raise InputError(f"irt_config: unknown key {key!r}; valid keys: {sorted(config)}")
        if key == "unanswerable":
            if not isinstance(value, bool):
                raise InputError(f"irt_config['unanswerable'] must be true or false, got {value!r}")
        elif key == "difficulty_signals":
            known = tuple(CONTINUOUS_SIGNALS)
            if isinstance(value, str) or not all(v in known for v in value):
                raise InputError(f"irt_config['difficulty_signals'] must be a list of signals among {known}, "
                                 f"got {value!r}")
            value = list(value)
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                raise InputError(f"irt_config[{key!r}] must be one of {_CHOICES[key]}, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int if key in _INTEGERS else (int, float)) \
                or not value > 0:
            raise InputError(f"irt_config[{key!r}] must be a positive {'integer' if key in _INTEGERS else 'number'},"
                             f" got {value!r}")
        config[key] = value
    return config


def difficulty_parameterization(config: dict, n_models: int) -> str:
    """The difficulty parameterization: the configured one, or for "auto" centered when each
    question is answered by at least :data:`CENTERED_MIN_MODELS` models."""
    if config["difficulty_effects"] != "auto":
        return config["difficulty_effects"]
    return "centered" if n_models >= CENTERED_MIN_MODELS else "non-centered"
