"""The claims logic (verdict rules on hand-made results), the stated-confidence calibration
functions (worked by hand), and one cheap evaluation on a SIMULATED log with stated confidence
that carries the RouteLLM, savings and share keys every claim reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_router.data.simulate import simulate_call_log
from bayes_router.study.claims import (
    batched_claim,
    bayes_router_claim,
    calibration_claims,
    cascade_savings_claim,
    check_claims_rows,
    claims_table,
    pilot_claim,
    routellm_claim,
)
from bayes_router.study.evaluate import _without_unusable, evaluate
from bayes_router.study.stated_confidence import (
    auroc,
    overconfident_wrong_rate,
    stated_calibration_table,
    stated_predictions,
)

MODELS = ["small", "mid", "big"]


def _results(**policies) -> dict:
    """A minimal RESULTS dict: always-big at 0.70 accuracy and 1.0 USD per question."""
    base = {"always:big": {"accuracy": 0.70, "accuracy_ci95": [0.66, 0.74], "cost_per_question": 1.0}}
    return {"models": MODELS, "cost_scale": 100.0, "policies": {**base, **policies},
            "frontiers": {}, "meta": {}}


def _share(share, lo, hi):
    return {"share": share, "share_ci95": [lo, hi]}


def _savings(s, lo, hi):
    return {"savings": s, "savings_ci95": [lo, hi], "reached": 1.0 if s is not None else 0.0}


def test_bayes_router_claim_verdicts():
    holds = {"second_call_rate": 0.31, "vs_big": {"accuracy_diff": 0.02, "accuracy_diff_ci95": [0.005, 0.035],
                                                  "cost_ratio": 1.1, "cost_ratio_ci95": [1.05, 1.15]}}
    row = bayes_router_claim(_results(**{"bayes-adaptive": holds}), "p", "log")
    assert row["verdict"] == "holds" and row["ci95"] == [0.005, 0.035] and "interval above 0" in row["why"]
    worse = {**holds, "vs_big": {**holds["vs_big"], "accuracy_diff": -0.01, "accuracy_diff_ci95": [-0.03, 0.01]}}
    assert bayes_router_claim(_results(**{"bayes-adaptive": worse}), "p", "log")["verdict"] == "does not hold"
    dear = {**holds, "vs_big": {**holds["vs_big"], "cost_ratio": 2.0}}
    assert bayes_router_claim(_results(**{"bayes-adaptive": dear}), "p", "log")["verdict"] == "does not hold"
    assert bayes_router_claim(_results(), "p", "log")["verdict"] == "cannot be tested on this data"


def test_cascade_batched_routellm_and_pilot_verdicts():
    sv = {"savings_vs_big": {"equal_accuracy": _savings(0.45, 0.30, 0.62), "95": _savings(0.7, 0.6, 0.8)}}
    assert cascade_savings_claim(_results(**{"cascade-confidence": sv}), "p", "l")["verdict"] == "holds"
    short = {"savings_vs_big": {"equal_accuracy": _savings(0.2, 0.1, 0.3), "95": _savings(0.5, 0.4, 0.6)}}
    row = cascade_savings_claim(_results(**{"cascade-confidence": short}), "p", "l")
    assert row["verdict"] == "does not hold" and "30.0%" in row["why"]
    never = {"savings_vs_big": {"equal_accuracy": _savings(None, None, None), "95": _savings(0.5, 0.4, 0.6)}}
    assert "never reaches" in cascade_savings_claim(_results(**{"cascade-confidence": never}), "p", "l")["why"]

    mip = {"accuracy_share_at_big_cost": {"50": _share(0.93, 0.91, 0.96), "25": _share(0.8, 0.7, 0.9)}}
    assert batched_claim(_results(mip=mip), "p", "l")["verdict"] == "holds"
    low = {"accuracy_share_at_big_cost": {"50": _share(0.85, 0.82, 0.88), "25": _share(0.8, 0.7, 0.9)}}
    assert batched_claim(_results(mip=low), "p", "l")["verdict"] == "does not hold"

    mf = {"savings_vs_big": {"95": _savings(0.55, 0.45, 0.65)},
          "routellm": {"apgr": 0.6, "apgr_ci95": [0.5, 0.7], "cpt": {"50": 0.3}}}
    row = routellm_claim(_results(mf=mf), "p", "l")
    assert row["verdict"] == "holds" and "includes 2x" in row["why"] and "APGR 0.600" in row["measured"]
    mf_low = {**mf, "savings_vs_big": {"95": _savings(0.3, 0.2, 0.4)}}
    assert routellm_claim(_results(mf=mf_low), "p", "l")["verdict"] == "does not hold"

    ad = {"accuracy_share_at_big_cost": {"25": _share(0.95, 0.93, 0.97)}}
    row = pilot_claim(_results(**{"bayes-adaptive": ad}), "p", "l")
    assert row["verdict"] == "cannot be tested on this data" and row["ci95"] == [0.93, 0.97]
    assert "reaches 0.93" in row["why"]


def test_claims_rows_must_carry_an_interval_and_a_verdict():
    ok = pilot_claim(_results(**{"bayes-adaptive": {"accuracy_share_at_big_cost": {"25": _share(0.9, 0.8, 0.95)}}}),
                     "p", "l")
    missing = bayes_router_claim(_results(), "p", "l")  # not evaluated: no interval
    assert check_claims_rows([ok]) == []
    assert check_claims_rows([ok, missing]) == ["bayes-router/p: no interval"]
    table = claims_table([ok, missing])
    assert table["ci95_lo"].iloc[0] == 0.8 and pd.isna(table["ci95_lo"].iloc[1]) and set(table["verdict"]) == {"cannot be tested on this data"}


def test_overconfident_wrong_rate_and_auroc_by_hand():
    correct = np.array([1, 1, 0, 0, 0, 0], bool)
    stated = np.array([0.9, 0.8, 0.95, 0.9, 0.5, np.nan])
    # wrong answers with a stated confidence: 0.95, 0.9, 0.5 -> two of three at >= 0.9
    assert overconfident_wrong_rate(correct, stated) == pytest.approx(2 / 3)
    assert np.isnan(overconfident_wrong_rate(np.ones(3, bool), [0.9, 0.9, 0.9]))
    # right {0.9, 0.8} vs wrong {0.95, 0.9, 0.5}: pairs won 0.9>0.5, 0.8>0.5, tie 0.9=0.9 -> 2.5 / 6
    assert auroc(correct[:5], stated[:5]) == pytest.approx(2.5 / 6)


def _sim(with_confidence=True, n=400):
    log, questions, _ = simulate_call_log(n_questions=n, models=MODELS, with_confidence=with_confidence, seed=3)
    return log, questions


def test_stated_calibration_on_a_simulated_log_and_its_claims():
    log, _ = _sim()
    ids = np.arange(400)
    pred = stated_predictions(log, MODELS, ids[:250], ids[250:])
    assert set(pred["model"]) == set(MODELS) and pred["bayes_post"].isna().all()
    assert pred["stated_ts"].between(0, 1).all() and (pred["temperature"] > 0).all()
    table = stated_calibration_table(pred, n_boot=30)
    assert set(table["predictor"]) == {"stated", "stated_ts"}  # no Bayesian predictor given
    raw = table[table["predictor"] == "stated"]
    assert raw["overconfident_wrong_rate"].between(0, 1).all() and (raw["auroc"] > 0.55).all()
    rows = calibration_claims(table, "sim", "simulated")
    assert [r["claim_id"] for r in rows] == ["stated-calibrated", "overconfident-wrong"]
    assert check_claims_rows(rows) == []
    # inflate every stated confidence: the overconfidence claim must then hold
    over = pred.assign(stated=np.clip(pred["stated"] + 0.3, 0, 1))
    assert calibration_claims(stated_calibration_table(over, n_boot=30), "sim", "simulated")[1]["verdict"] == "holds"


def test_evaluate_carries_routellm_savings_and_shares_and_skips_confidence_policies():
    log, questions = _sim(n=300)
    res = evaluate(log, MODELS, questions, test_frac=0.4, policies=["always:small", "always:mid", "always:big",
                   "random", "oracle", "cascade-confidence"], n_boot=50, progress=False)
    casc = res["policies"]["cascade-confidence"]
    assert {"apgr", "apgr_ci95", "cpt", "cpt_ci95", "cpt_reached"} <= set(casc["routellm"])
    assert set(casc["savings_vs_big"]) == {"equal_accuracy", "95"}
    assert set(casc["accuracy_share_at_big_cost"]) == {"25", "50"}
    assert res["meta"]["routellm"]["strong_model"] == max(
        MODELS, key=lambda m: res["policies"][f"always:{m}"]["accuracy"])
    row = cascade_savings_claim(res, "sim", "simulated")
    assert row["verdict"] in ("holds", "does not hold") and row["measured"].startswith("cascade-confidence")
    names, skipped = _without_unusable(["always:big", "cascade-confidence", "cascade"],
                                       _sim(with_confidence=False, n=50)[0])
    assert names == ["always:big", "cascade"] and list(skipped) == ["cascade-confidence"]
    assert _without_unusable(["cascade-confidence"], log)[0] == ["cascade-confidence"]


def test_claims_table_column_order():
    row = pilot_claim(_results(**{"bayes-adaptive": {"accuracy_share_at_big_cost": {"25": _share(0.9, 0.8, 0.95)}}}),
                      "p", "l")
    assert list(claims_table([row]).columns[:7]) == ["claim_id", "pool", "log", "value", "ci95_lo", "ci95_hi",
                                                      "claimed"]
    assert isinstance(claims_table([row]), pd.DataFrame)


def test_summary_carries_the_claims_table_and_routellm_metrics(tmp_path):
    import json

    from bayes_router.study.report import build_summary

    row = pilot_claim(_results(**{"bayes-adaptive": {"accuracy_share_at_big_cost": {"25": _share(0.9, 0.8, 0.95)}}}),
                      "study-api", "calibration_study")
    (tmp_path / "07_claims.json").write_text(json.dumps({"notebook": "07_claims", "quick": True, "claims": [row]}))
    pool_dir = tmp_path / "pools" / "p"
    pool_dir.mkdir(parents=True)
    rl = {"apgr": 0.61, "apgr_ci95": [0.5, 0.7], "cpt": {"50": 0.3}, "cpt_ci95": {"50": [0.2, 0.4]}}
    res = _results(mf={"accuracy": 0.6, "accuracy_ci95": [0.5, 0.7], "cost_per_question": 0.4, "routellm": rl})
    (pool_dir / "03_routing_policies.json").write_text(json.dumps({**res, "quick": True, "aiq": {}}))
    summary = build_summary(tmp_path, "quick")
    assert summary["claims"] == [row]
    mf = summary["pools"]["p"]["policies"]["mf"]
    assert mf["apgr"] == 0.61 and mf["cpt"] == {"50": 0.3} and mf["apgr_ci95"] == [0.5, 0.7]
