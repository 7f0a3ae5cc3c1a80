"""The fast NumPy prediction agrees with the PyMC graph: the posterior pushed through the model's own
graph on new calls (``pm.compute_deterministics``) gives the same P(correct) as ``p_correct``.
Shares the SIMULATED fits of test_reliability."""

from __future__ import annotations

import numpy as np
import pytest
from test_reliability import fitted, split


@pytest.mark.parametrize("stage", ["pre", "post"])
def test_p_correct_equals_the_pymc_graph_on_held_out_calls(stage):
    import pymc as pm

    _, test = split()
    rm = fitted(stage)
    calls = test.drop(columns=["correct"]).iloc[::3]  # held-out questions, rows in log order
    graph = rm.p_correct_model(calls)
    reference = pm.compute_deterministics(rm.idata.posterior, model=graph, var_names=["p_correct"],
                                          progressbar=False)["p_correct"]
    reference = reference.stack(sample=("chain", "draw")).transpose("sample", "call").to_numpy()
    ours = rm.p_correct(calls)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours.values, reference, rtol=0, atol=2e-5)  # float32 against float64
    if stage == "post":  # the hurdle is in both
        unparsed = ~calls["parsed"].to_numpy(bool)
        assert unparsed.any() and np.all(reference[:, unparsed] == 0)
    assert np.ptp(reference, axis=1).max() > 0.1  # the calls differ, so the check has teeth


def test_the_graph_covers_seen_levels_only():
    from bayes_router.errors import InputError

    _, test = split()
    rm = fitted("pre")
    with pytest.raises(InputError, match="seen in training"):
        rm.p_correct_model(test.head(3).assign(model="never-seen"))


def test_p_correct_equals_the_linear_predictor_in_numpy():
    """The same definition the graph uses, evaluated in NumPy on single draws, gives p_correct's draws."""
    from bayes_router.models.reliability import linear_predictor

    _, test = split()
    rm = fitted("post")
    calls = test.iloc[::5]
    ours = rm.p_correct(calls).values
    post = {v: rm.idata.posterior[v].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
            for v in ("alpha", "beta", "gamma", "slope")}
    m, s = rm.design.codes(calls)
    X = rm.design_matrix(calls)
    parsed = calls["parsed"].to_numpy(bool)
    for d in (0, 17, len(ours) - 1):
        eta = linear_predictor(post["alpha"][d], post["beta"][d], post["gamma"][d], post["slope"][d], m, s, X,
                               n_subjects=len(rm.subjects))
        np.testing.assert_allclose(ours[d], np.where(parsed, 1 / (1 + np.exp(-eta)), 0.0), rtol=0, atol=2e-5)
