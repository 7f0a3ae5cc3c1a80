"""Diagnostics (issue 3): convergence table on synthetic chains with known behaviour, and
PPC / PSIS-LOO / held-out scores / calibration on the SIMULATED fits shared with
test_reliability (fitted once per session through its cached ``fitted``)."""

from __future__ import annotations

import numpy as np
import pytest
from test_reliability import fitted, split

from bayes_router.models import diagnostics as dg


def _idata(chains: np.ndarray, diverging: int = 0):
    """InferenceData with one scalar 'mu_alpha' and a vector 'alpha' built from ``chains`` (chain, draw)."""
    import arviz as az

    rng = np.random.default_rng(0)
    c, d = chains.shape
    energy = rng.normal(size=(c, d))  # iid energies: E-BFMI near 2, far above 0.3
    div = np.zeros((c, d), dtype=bool)
    div.flat[:diverging] = True
    return az.from_dict(
        posterior={"mu_alpha": chains, "alpha": np.stack([chains, chains[:, ::-1]], axis=-1)},
        sample_stats={"diverging": div, "energy": energy},
        dims={"alpha": ["model"]}, coords={"model": ["a", "b"]},
    )


def test_convergence_report_passes_iid_chains_and_fails_stuck_ones():
    rng = np.random.default_rng(1)
    good = dg.convergence_report(_idata(rng.normal(size=(4, 1000))))
    assert good.passed, good.failures
    assert set(good.table.index) == {"mu_alpha", "alpha"}
    assert good.table["pass"].all() and good.divergences == 0 and len(good.bfmi) == 4

    stuck = rng.normal(size=(4, 1000))
    stuck[0] += 3.0  # one chain elsewhere: R-hat far above 1.01
    bad = dg.convergence_report(_idata(stuck))
    assert not bad.passed and bad.table.loc["mu_alpha", "r_hat_max"] > 1.01
    assert any("mu_alpha" in f for f in bad.failures)
    assert "FAIL" in str(bad) and bad.to_dict()["passed"] is False

    short = dg.convergence_report(_idata(rng.normal(size=(2, 100))))  # 200 draws: ESS < 400
    assert not short.passed and short.to_dict()["ess_bulk_min"] < 400

    div = dg.convergence_report(_idata(rng.normal(size=(4, 1000)), diverging=3))
    assert div.divergences == 3 and any("divergent" in f for f in div.failures)


def test_warn_if_failed_warns_once_per_failure():
    rng = np.random.default_rng(2)
    stuck = rng.normal(size=(4, 500))
    stuck[1] -= 5
    rep = dg.convergence_report(_idata(stuck))
    with pytest.warns(UserWarning, match="diagnostic failed"):
        assert dg.warn_if_failed(rep) is False


def test_ppc_accuracy_per_model_and_subject():
    train, _ = split()
    rm = fitted("pre")
    t = dg.ppc_accuracy(rm, train, n_draws=200, seed=0)
    assert len(t) == len(rm.models) * len(rm.subjects)
    assert t["n"].sum() == len(train)
    assert ((t["rep_lo"] <= t["rep_mean"]) & (t["rep_mean"] <= t["rep_hi"])).all()
    assert t["ppp"].between(0, 1).all()
    # the model is the simulator's: a well-specified fit should cover most cells at 90%
    assert t["inside"].mean() >= 0.75
    obs = train.groupby(["model", "subject"])["correct"].mean()
    np.testing.assert_allclose(t.set_index(["model", "subject"])["observed"].sort_index(), obs.sort_index(), rtol=1e-6)


def test_loo_prefers_post_call_model_on_the_same_calls():
    pre, post = fitted("pre"), fitted("post")
    table = dg.loo_compare({"pre": pre, "post": post})
    assert list(table.index) == ["post", "pre"]  # tokens and the parse hurdle carry real signal
    assert table.loc["pre", "elpd_diff"] > 2 * table.loc["pre", "dse"]
    s = dg.loo_summary(post)
    assert np.isfinite(s["elpd_loo"]) and s["n_pareto_k_gt_0_7"] == 0  # hurdle calls do not count as bad k


def test_held_out_scores_against_logistic_regression():
    train, test = split()
    rm = fitted("post")
    res = dg.held_out_scores(rm, train, test, n_boot=300, seed=0)
    assert res["n_test_calls"] == len(test)
    for name in ("bayes", "logistic_regression", "base_rate"):
        assert res["scores"][name]["log_score"] < 0 and 0 <= res["scores"][name]["brier"] <= 1
    for d in res["differences"].values():
        for m in ("log_score", "brier"):
            lo, hi = d[m]["ci95"]
            assert lo <= d[m]["bayes_minus_other"] <= hi
    # post-call information must beat the per-model base rate clearly
    assert res["differences"]["bayes_vs_base_rate"]["log_score"]["ci95"][0] > 0


def test_worst_variable_is_the_one_closest_to_failing():
    import pandas as pd

    table = pd.DataFrame({"r_hat_max": [1.001, 1.008, 1.002], "ess_bulk_min": [3000.0, 2000.0, 520.0],
                          "ess_tail_min": [2500.0, 1800.0, 900.0]}, index=["mu_alpha", "sigma_slope", "beta"])
    table["pass"] = True
    worst = dg.ConvergenceReport(table, divergences=0, bfmi=[0.8], sampler="nutpie").worst()
    # beta: ESS 520 is 1.3 x its threshold; sigma_slope's R-hat 1.008 leaves 0.002 of a 0.01 margin (1.25 x)...
    assert worst["variable"] == "sigma_slope" and worst["margin"] == pytest.approx(0.01 / 0.008)
    table.loc["beta", "ess_bulk_min"] = 420.0  # ... until beta's ESS comes closer to its threshold
    assert dg.ConvergenceReport(table, 0, [0.8], "nutpie").worst()["variable"] == "beta"


def test_bench_refuses_bad_convergence_seeds(capsys):
    from bayes_router.cli import main

    assert main(["bench", "--convergence-seeds", "0,x", "-o", "unused.json"]) == 2
    assert main(["bench", "--skip-speed", "-o", "unused.json"]) == 2
    assert "--skip-speed needs --convergence-seeds" in capsys.readouterr().err


def test_convergence_table_summarizes_the_seeds():
    from bayes_router.study.bench import convergence_table

    def run(seed, passed, var, bulk, tail, rhat, margin, div, wall):
        return {"seed": seed, "passed": passed, "divergences": div, "bfmi_min": 0.6 + seed / 10, "wall_s": wall,
                "worst": {"variable": var, "r_hat_max": rhat, "ess_bulk_min": bulk, "ess_tail_min": tail,
                          "margin": margin}}

    conv = {"fits": {"trio/pre": {"passed": 1, "of": 3, "runs": [
        run(0, True, "sigma_slope", 900.0, 1000.0, 1.002, 2.25, 0, 50.0),
        run(1, False, "gamma", 500.0, 450.0, 1.004, 1.125, 1, 70.0),
        {"seed": 2, "error": "RuntimeError: boom"}]}}}
    row = convergence_table(conv).loc["trio/pre"]
    assert row["passed"] == "1/3" and row["divergences"] == 1 and row["errors"] == 1
    assert row["worst variable"] == "gamma" and row["min ESS (bulk/tail)"] == "500/450"
    assert row["max R-hat"] == 1.004 and row["min E-BFMI"] == 0.6 and row["wall s"] == "50-70"


def test_bench_targets_of_the_irt_fits():
    """The IRT trio fit meets its target only when converged within 3 min; a quick run does not
    judge it (fewer questions and draws); the whole pool is judged against 15 min; an error is no verdict."""
    from bayes_router.study.bench import _targets_met

    out = {"post_call_trio": {}, "irt": {"trio": {"wall_s": 170.0, "converged": True},
                                         "full_pool": {"wall_s": 1000.0, "converged": True}}}
    assert _targets_met(out, quick=False) == {"irt_trio_4000_fit_s": True, "irt_full_pool_fit_s": False}
    assert _targets_met(out, quick=True) == {"irt_full_pool_fit_s": False}
    out["irt"] = {"trio": {"wall_s": 100.0, "converged": False}, "full_pool": {"error": "RuntimeError: boom"}}
    assert _targets_met(out, quick=False) == {"irt_trio_4000_fit_s": False}
