"""Posterior predictive Q3 (local dependence of the IRT model) on SIMULATED outcomes: quiet when the
outcomes follow the model, and it flags the one pair that shares a second factor."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_router.errors import InputError
from bayes_router.models.irt.local_dependence import q3_ppmc
from bayes_router.models.irt.prediction import sigmoid

MODELS = ["m0", "m1", "m2", "m3", "m4", "m5"]


def simulated(n_questions: int = 1500, shared_factor: float = 0.0, seed: int = 0):
    """SIMULATED: outcomes of 6 models from a 1-D IRT; with ``shared_factor`` > 0 models m4 and m5
    also share a second question factor of that loading, which the 1-D P does not know. Returns
    (y, p) with p the true 1-D P as a posterior of 100 identical draws plus small jitter."""
    rng = np.random.default_rng(seed)
    d = rng.normal(0.0, 1.5, n_questions)
    ability = np.linspace(-1.0, 1.5, len(MODELS))
    disc = np.exp(rng.normal(0.0, 0.3, len(MODELS)))
    eta = ability[None, :] - disc[None, :] * d[:, None]
    p_true = sigmoid(eta)
    u = rng.normal(0.0, 1.0, n_questions)
    eta_y = eta.copy()
    eta_y[:, 4:] += shared_factor * u[:, None]
    y = (rng.random(eta.shape) < sigmoid(eta_y)).astype(float)
    p = np.clip(p_true[None] + rng.normal(0.0, 0.01, (100, *p_true.shape)), 1e-4, 1 - 1e-4)
    return y, p


def test_q3_is_quiet_when_outcomes_follow_the_model():
    y, p = simulated()
    table = q3_ppmc(y, p, MODELS)
    assert len(table) == 15
    assert (table["ppp"].between(0.005, 0.995)).all()
    assert table["excess"].abs().max() < 0.08


def test_q3_flags_the_pair_that_shares_a_second_factor():
    y, p = simulated(shared_factor=1.5)
    table = q3_ppmc(y, p, MODELS).set_index(["model_a", "model_b"])
    pair = table.loc[("m4", "m5")]
    assert pair["ppp"] < 0.01 and pair["excess"] > 0.1
    others = table.drop(index=("m4", "m5"))
    assert (others["ppp"] > 0.005).all()  # every other pair is left alone


def test_q3_refuses_mismatched_shapes():
    y, p = simulated(n_questions=100)
    with pytest.raises(InputError, match="draws"):
        q3_ppmc(y, p[:, :50], MODELS)
