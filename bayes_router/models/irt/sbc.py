"""Simulation-based calibration of the IRT reliability family (the procedure and its result type are
:mod:`bayes_router.models.sbc`'s; this module supplies the IRT design, prior draws and parameters).

The IRT graph (:func:`~bayes_router.models.irt.graph.build_irt_graph`) writes its likelihood as a
``pm.Potential``, which the prior predictive does not simulate. So the parameters (difficulties
included) are drawn from the graph's own prior, and the outcomes from the one line that the
likelihood is, logit p = ability[m, s] - discrimination[m] * difficulty[q], with
:func:`~bayes_router.models.irt.graph.ability_cells` shared with the graph. The outcomes enter the
compiled model as a shared variable, so each replication swaps data instead of recompiling.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from bayes_router.models.irt.graph import ability_cells
from bayes_router.models.irt.prediction import sigmoid
from bayes_router.models.sbc import OBSERVED, SimulationBasedCalibration, _pick

#: The IRT settings of the SBC fits. Centered and non-centered forms are the same model; on a log
#: this small the centered per-model and subject effects are funnels (as in v1's SBC,
#: :data:`~bayes_router.models.sbc.SBC_MODEL_CONFIG`): with centered intercepts, divergences in 114
#: of 200 fits (3 models x 3 subjects x 100 questions), most where the true sigma_alpha was small.
#: Few text components keep the design small.
IRT_SBC_CONFIG: dict = {"model_effects": "non-centered", "subject_effects": "non-centered", "n_components": 3}


def irt_sbc_design(n_questions: int = 100, n_models: int = 3, n_subjects: int = 3,
                   seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log, questions) of a small SIMULATED design: :func:`~bayes_router.models.sbc.sbc_log`'s calls and
    SIMULATED question texts (:func:`~bayes_router.data.simulate.simulate_question_texts`)."""
    from bayes_router.data.simulate import simulate_question_texts
    from bayes_router.models.sbc import sbc_log

    log = sbc_log(n_questions, n_models, n_subjects, seed)
    questions = log[["question_id", "subject"]].drop_duplicates("question_id").reset_index(drop=True)
    questions["text"] = simulate_question_texts(np.random.default_rng(seed), len(questions))
    return log, questions


def irt_sbc_parameters(models, subjects, features) -> list[tuple[str, str, tuple]]:
    """The scalars ranked: every hyperparameter, the first text weight, and as examples of the levels
    the first model's intercept and discrimination, the first subject's effect, their interaction and
    the first question's difficulty."""
    out = [(v, v, ()) for v in ("mu_alpha", "sigma_alpha", "sigma_subject", "sigma_interaction", "sigma_difficulty")]
    out += [(f"text_weight[{features[j]}]", "text_weight", (("text_feature", j),)) for j in range(min(2, len(features)))]
    out += [(f"alpha[{models[0]}]", "alpha", (("model", 0),)),
            (f"discrimination[{models[0]}]", "discrimination", (("model", 0),)),
            (f"beta[{subjects[0]}]", "beta", (("subject", 0),)),
            (f"gamma[{models[0]}, {subjects[0]}]", "gamma", (("model", 0), ("subject", 0))),
            ("difficulty[question 0]", "difficulty", (("question", 0),))]
    return out


def irt_logit(ability_minus: Callable | None = None):
    """The logit the outcomes are simulated with, from (ability term, discrimination * difficulty term);
    the model's own is ``a - d``. A test hook passes another (e.g. ``a + d``: the sign flipped)."""
    return ability_minus or (lambda a, d: a - d)


class IRTSimulationBasedCalibration(SimulationBasedCalibration):
    """SBC of the IRT family on the design of (``log``, ``questions``), compiled once. Arguments as
    :class:`~bayes_router.models.sbc.SimulationBasedCalibration`; ``irt_config`` overrides merged over
    :data:`IRT_SBC_CONFIG`. ``target_accept`` None: the IRT family's own rule."""

    def __init__(self, log: pd.DataFrame, questions: pd.DataFrame, *, irt_config: dict | None = None,
                 model_config: dict | None = None, draws: int = 500, tune: int = 500, chains: int = 2,
                 n_draws: int = 99, target_accept: float | None = None):
        import nutpie
        import pytensor

        from bayes_router.models.irt.model import DEFAULT_TARGET_ACCEPT, IRTReliabilityModel

        self._set_sampling("irt", draws, tune, chains, n_draws)
        self.reliability = IRTReliabilityModel("pre", model_config, irt_config={**IRT_SBC_CONFIG, **(irt_config or {})})
        self._y = pytensor.shared(log["correct"].to_numpy(dtype="float64"), name=OBSERVED)
        self.model = self.reliability.build_model(log, questions, observed=self._y)
        rm = self.reliability
        self._codes = (*rm.design.codes(log), np.searchsorted(rm.train_question_ids, log["question_id"].to_numpy()))
        self.target_accept = target_accept or DEFAULT_TARGET_ACCEPT[rm._chosen["difficulty_effects"]]
        start = time.perf_counter()
        self.compiled = nutpie.compile_pymc_model(self.model)
        self.compile_seconds = time.perf_counter() - start
        self.parameters = irt_sbc_parameters(rm.models, rm.subjects, rm.text_features.names)

    def describe(self) -> dict:
        rm = self.reliability
        return {"stage": self.stage, "family": "irt", "models": len(rm.models), "subjects": len(rm.subjects),
                "questions": len(rm.train_question_ids), "calls": int(len(self._codes[0])),
                "text_features": len(rm.text_features.names), "parameterization": dict(rm._chosen),
                "draws": self.draws, "tune": self.tune, "chains": self.chains, "n_draws": self.n_draws,
                "target_accept": self.target_accept, "irt_config": dict(rm.irt_config),
                "priors": {k: v for k, v in rm.model_config.items() if "dist" in v}}

    def prior_draws(self, replications: int, seed: int, simulate_cells: Callable | None = None):
        """(true values (replications, parameters), outcomes (replications, calls)); ``simulate_cells``:
        see :func:`irt_logit`."""
        import pymc as pm

        names = sorted({var for _, var, _ in self.parameters} | {"alpha", "beta", "gamma", "discrimination"})
        with self.model, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "the effect of Potentials is ignored": the prior is what is wanted
            prior = pm.sample_prior_predictive(draws=replications, var_names=names, random_seed=seed).prior
        draw = {v: prior[v].values[0] for v in names}
        truth = np.column_stack([_pick(draw[var], idx) for _, var, idx in self.parameters])
        m, s, q = self._codes
        ab = ability_cells(draw["alpha"].T, draw["beta"].T, np.moveaxis(draw["gamma"], 0, -1))  # (M, S, R)
        eta = irt_logit(simulate_cells)(ab[m, s].T, draw["discrimination"][:, m] * draw["difficulty"][:, q])
        y = np.random.default_rng(seed).random(eta.shape) < sigmoid(eta)
        return truth, y.astype(np.float64)
