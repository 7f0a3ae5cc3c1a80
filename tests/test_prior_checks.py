"""The spreads' prior predictive check: the zero-avoiding priors keep less mass next to 0 than the
half-normals they replaced, at the same scale, on a SIMULATED log."""

from __future__ import annotations

import numpy as np
from test_reliability import split

from bayes_router.models import prior_checks as pc


def test_zero_avoiding_priors_move_mass_away_from_zero_only():
    train, _ = split()
    before = pc.prior_spreads(train, "pre", pc.HALF_NORMAL_SPREADS, samples=2000, seed=1)
    now = pc.prior_spreads(train, "pre", None, samples=2000, seed=1)
    assert list(now.columns) == ["sigma_alpha", "sigma_interaction", "sigma_slope[log_question_chars]", "accuracy_sd"]
    for col in ("sigma_alpha", "sigma_interaction", "sigma_slope[log_question_chars]"):
        assert (now[col] < 0.02).mean() < (before[col] < 0.02).mean() / 3  # the funnel's region
        assert abs(now[col].mean() / before[col].mean() - 1) < 0.15  # the same scale
    assert now["accuracy_sd"].between(0, np.sqrt(1 / 3) + 1e-9).all()  # the largest SD of 3 accuracies in [0, 1]
    table = pc.compare_priors({"before": before, "now": now}, pc.observed_spreads(train, "pre"))
    obs = table.loc[("accuracy_sd", "now")]
    assert obs["observed"] == np.std(train.groupby("model")["correct"].mean(), ddof=1).item()
    assert 0 < obs["prior_quantile_of_observed"] < 1
