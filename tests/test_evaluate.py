"""The harness: RESULTS.json shape, every call charged for every policy, no leakage,
determinism, the CLI, and one real-data smoke test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tiny_logs import CORRECT_12, MODELS, StubReliability, tiny_log, tiny_questions

from bayes_router.cli import main
from bayes_router.policies import REGISTRY, default_policy_names
from bayes_router.policies.base import Policy, answer_with
from bayes_router.study.evaluate import evaluate

DESIGN_POLICY_KEYS = {"accuracy", "accuracy_ci95", "cost_per_question", "cost_ci95", "calls_per_question"}


def _stubs():
    # p(correct) = the truth softened (0.75 / 0.25), for pre and post stages alike
    p = {(q, m): (0.75 if CORRECT_12[q, j] == 1 else 0.25) for q in range(12) for j, m in enumerate(MODELS)}
    return {"pre": StubReliability(p), "post": StubReliability(p)}


@pytest.fixture(scope="module")
def tiny_run():
    log = tiny_log(CORRECT_12)
    results, details = evaluate(
        log, MODELS, questions=tiny_questions(12), test_frac=0.5, cost_scale=100.0, seed=3, progress=False,
        n_boot=200, reliability=_stubs(), return_details=True,
    )
    return log, results, details


def test_results_have_the_design_shape(tiny_run):
    _, r, (setup, _, _) = tiny_run
    assert {"schema_version", "models", "seed", "cost_scale", "train_question_ids", "test_question_ids",
            "policies", "frontiers", "aiq"} <= set(r)
    assert r["schema_version"] == 1 and r["models"] == MODELS and r["seed"] == 3 and r["cost_scale"] == 100.0
    assert set(r["policies"]) == {f"always:{m}" for m in MODELS} | {
        "random", "oracle", "bayes-adaptive", "cascade", "threshold", "ndch", "ndch-p", "mip", "knn", "mf",
        "classifier"}  # DESIGN.md's names, written out
    comb = r["policies"]["bayes-adaptive"]["combining"]  # how often combining changed the answer, and if it helped
    n_changed = comb["changed_and_helped"] + comb["changed_and_hurt"] + comb["changed_neither"]
    assert n_changed == round(comb["changed_rate"] * comb["n_questions"])
    assert comb["n_questions"] == len(r["test_question_ids"])
    for name, entry in r["policies"].items():
        assert DESIGN_POLICY_KEYS <= set(entry), name
        assert ("second_call_rate" in entry) == REGISTRY[name.split(":")[0]].may_call_twice
        lo, hi = entry["accuracy_ci95"]
        assert lo <= entry["accuracy"] <= hi
        assert len(r["frontiers"][name]) >= 1 and name in r["aiq"]
        lo, hi = entry["aiq_ci95"]  # paired bootstrap of AIQ, and of bayes-adaptive's AIQ minus this one
        assert 0.0 <= lo <= hi <= 1.0
        gap = entry["aiq_bayes-adaptive_minus_this_ci95"]
        assert gap is None if name == "bayes-adaptive" else gap[0] <= gap[1]
    json.dumps(r, allow_nan=False)  # valid JSON as written


def test_every_policy_every_call_charged_and_scored(tiny_run):
    log, r, (setup, _, outcomes) = tiny_run
    lookup = log.set_index(["question_id", "model"])
    test = setup.test_question_ids
    for name, out in outcomes.items():
        made = out.calls_made
        cost = made.apply(lambda row: lookup.loc[(row["question_id"], row["model"]), "cost_usd"], axis=1)
        per_q = cost.groupby(made["question_id"]).sum().reindex(test, fill_value=0.0)
        assert r["policies"][name]["cost_per_question"] == pytest.approx(per_q.mean()), name
        assert r["policies"][name]["calls_per_question"] == pytest.approx(len(made) / len(test)), name
        assert r["policies"][name]["accuracy"] == pytest.approx((out.answers == "A").fillna(False).mean()), name


def test_oracle_and_always_numbers_exact(tiny_run):
    log, r, (setup, _, _) = tiny_run
    test = setup.test_question_ids
    corr = CORRECT_12[test] == 1
    cost = log.pivot(index="question_id", columns="model", values="cost_usd").loc[test, MODELS].to_numpy()
    for j, m in enumerate(MODELS):
        assert r["policies"][f"always:{m}"]["accuracy"] == pytest.approx(corr[:, j].mean())
        assert r["policies"][f"always:{m}"]["cost_per_question"] == pytest.approx(cost[:, j].mean())
    assert r["policies"]["oracle"]["accuracy"] == pytest.approx(corr.any(axis=1).mean())
    want = [cost[i][[j for j in range(3) if corr[i, j]] or [0, 1, 2]].min() for i in range(len(test))]
    assert r["policies"]["oracle"]["cost_per_question"] == pytest.approx(np.mean(want))


def test_split_is_by_question_and_fits_see_no_test_question():
    seen = {}

    class Spy(Policy):
        name = "spy-test"

        def fit(self, ctx):
            seen["train_ids"] = set(ctx.train_log["question_id"].tolist())
            return super().fit(ctx)

        def route(self, calls):
            seen["routed_ids"] = set(calls.question_ids.tolist())
            return answer_with(calls, pd.Series("s", index=calls.question_ids))

    REGISTRY["spy-test"] = Spy
    try:
        log = tiny_log(CORRECT_12)
        r = evaluate(log, MODELS, questions=tiny_questions(12), test_frac=0.4, seed=5, progress=False, n_boot=50,
                     policies=["spy-test", "knn"], reliability=_stubs())
    finally:
        del REGISTRY["spy-test"]
    train, test = set(r["train_question_ids"]), set(r["test_question_ids"])
    assert not train & test and train | test == set(range(12))
    assert seen["train_ids"] == train and seen["routed_ids"] == test


def test_same_seed_same_numbers_other_seed_other_split():
    log = tiny_log(CORRECT_12)
    kw = dict(questions=tiny_questions(12), test_frac=0.5, progress=False, n_boot=100, reliability=_stubs(),
              policies=["random", "mip", "mf", "always:b"])
    a = evaluate(log, MODELS, seed=1, **kw)
    b = evaluate(log, MODELS, seed=1, **kw)
    for d in (a, b):
        d.pop("meta")
    assert a == b
    c = evaluate(log, MODELS, seed=2, **kw)
    assert c["test_question_ids"] != a["test_question_ids"]


def test_cli_writes_results_and_refuses_bad_input(tmp_path, sim_log_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["evaluate", str(sim_log_path), "--models", "small,mid,big", "--questions", "60", "--seed", "1",
               "--policies", "always:small,always:big,random,oracle,knn", "--n-boot", "100", "--no-progress",
               "-o", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert set(r["policies"]) == {"always:small", "always:big", "random", "oracle", "knn"}
    assert len(r["test_question_ids"]) == 18 and len(r["train_question_ids"]) == 42
    capsys.readouterr()
    bad = tmp_path / "bad.json"
    for args, msg in [
        (["--models", "small,nope"], "models not in the log"),
        (["--models", "small,big", "--policies", "always:small,bogus"], "unknown policy"),
        (["--models", "small,big", "--test-frac", "1.5"], "--test-frac"),
        (["--models", "small,big", "--cost-scale", "-1"], "--cost-scale"),
        (["--models", "small,big", "--policies", "always:mid,oracle"], "not in the pool"),
    ]:
        rc = main(["evaluate", str(sim_log_path), *args, "--no-progress", "-o", str(bad)])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, err
        assert not bad.exists()
    rc = main(["evaluate", str(tmp_path / "missing.parquet"), "--models", "a", "-o", str(bad)])
    assert rc == 2 and "no such call log" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_trio_smoke(real_trio_log_path):
    """P1's policies on 300 real trio questions (only the pre-call model is fitted; bayes-adaptive
    and cascade have their own real-data tests)."""
    from conftest import TRIO

    from bayes_router.data.io import load_call_log, load_questions

    log = load_call_log(real_trio_log_path)
    # the MMLU-Pro log has no stated confidence, so cascade-confidence is refused there (tested apart)
    names = [n for n in default_policy_names(TRIO) if n not in ("bayes-adaptive", "cascade", "cascade-confidence")]
    r = evaluate(log, TRIO, questions=load_questions(real_trio_log_path), n_questions=300, test_frac=0.3,
                 cost_scale=300.0, seed=0, progress=False, n_boot=200, frontiers=False, policies=names,
                 sampler_config={"draws": 60, "tune": 60, "chains": 1})
    assert set(r["policies"]) == set(names)
    assert len(r["test_question_ids"]) == 90
    acc = {k: v["accuracy"] for k, v in r["policies"].items()}
    cost = {k: v["cost_per_question"] for k, v in r["policies"].items()}
    big, small = f"always:{TRIO[-1]}", f"always:{TRIO[0]}"
    assert acc["oracle"] >= max(acc[f"always:{m}"] for m in TRIO)
    assert cost[big] > cost[small]
    for name in ("mip", "ndch", "ndch-p"):  # default budget: half of always-big's expected cost
        assert cost[name] < 0.75 * cost[big], name


def test_frontier_table_sweeps_budget_with_intervals():
    from bayes_router.policies import make_policy
    from bayes_router.study.evaluate import frontier_table, prepare

    setup = prepare(tiny_log(CORRECT_12), MODELS, test_frac=0.5, seed=3, reliability=_stubs())
    mip = make_policy("mip").fit(setup.ctx)
    t = frontier_table(mip, setup, values=[0.3, 0.6, 1.0], n_boot=100)
    assert t["value"].tolist() == [0.3, 0.6, 1.0]
    assert (t["accuracy_lo"] <= t["accuracy"]).all() and (t["accuracy"] <= t["accuracy_hi"]).all()
    assert (t["cost_lo"] <= t["cost_per_question"]).all() and (t["cost_per_question"] <= t["cost_hi"]).all()
    assert t["accuracy"].is_monotonic_increasing  # stub p = softened truth: more budget, more right answers
    oracle = frontier_table(make_policy("oracle").fit(setup.ctx), setup, n_boot=50)
    assert len(oracle) == 1 and oracle["knob"].isna().all()


def test_posterior_fitted_on_another_split_is_refused():
    from bayes_router.errors import InputError
    from bayes_router.study.evaluate import prepare

    stub = _stubs()["pre"]
    stub.metadata = {"train_question_ids": [0, 1, 2]}
    with pytest.raises(InputError, match="other train questions"):
        prepare(tiny_log(CORRECT_12), MODELS, test_frac=0.5, seed=3, reliability={"pre": stub})
    ok = prepare(tiny_log(CORRECT_12), MODELS, test_frac=0.5, seed=3)
    stub.metadata = {"train_question_ids": ok.train_question_ids.tolist()}
    s = prepare(tiny_log(CORRECT_12), MODELS, test_frac=0.5, seed=3, reliability={"pre": stub})
    assert s.ctx.reliability("pre") is stub
    # the same questions but another pool: refused too (the split alone cannot tell pools apart)
    stub.models = ["s", "m", "other"]
    with pytest.raises(InputError, match="not on this pool"):
        prepare(tiny_log(CORRECT_12), MODELS, test_frac=0.5, seed=3, reliability={"pre": stub})


def test_reliability_fits_carry_their_convergence_verdict(sim_log_path):
    """A real (small, PyMC) fit inside evaluate: its diagnostics land in RESULTS.json's meta."""
    from bayes_router import load_call_log

    log = load_call_log(sim_log_path)
    r = evaluate(log, ["small", "mid", "big"], n_questions=60, seed=1, policies=["threshold"], progress=False,
                 n_boot=20, frontiers=False, sampler_config={"sampler": "pymc", "draws": 30, "tune": 30, "chains": 2})
    verdict = r["meta"]["reliability_diagnostics"]["pre"]
    assert verdict["passed"] is False and verdict["failures"]  # 60 draws cannot reach ESS 400
    assert set(r["meta"]["reliability_diagnostics"]) == {"pre"}  # threshold needs no post-call model


def test_quality_targets_on_a_hand_made_frontier():
    from bayes_router.study.quality_targets import quality_targets

    results = {
        "models": ["s", "b"],
        "policies": {"always:b": {"accuracy": 0.60, "cost_per_question": 2.0},
                     "bayes-adaptive": {"accuracy": 0.61, "cost_per_question": 1.5, "vs_big": {"cost_ratio": 0.75}},
                     "mip": {"aiq_bayes-adaptive_minus_this_ci95": [0.01, 0.09]}},
        "aiq": {"oracle": 0.9, "bayes-adaptive": 0.55, "mip": 0.50, "always:b": 0.30},
    }
    frontier = pd.DataFrame({
        "knob": "cost_scale", "value": [0.0, 50.0, 100.0, 400.0],
        "accuracy": [0.62, 0.61, 0.58, 0.40], "accuracy_lo": [0.6, 0.59, 0.56, 0.38],
        "accuracy_hi": [0.64, 0.63, 0.6, 0.42], "cost_per_question": [2.4, 1.5, 1.0, 0.5],
    })
    t = quality_targets(results, frontier)
    assert t["reaches_big_accuracy_at_lower_cost"] is True
    assert t["cheapest_knob_reaching_big_accuracy"]["value"] == 50.0  # 0.61 >= 0.60 at 1.5 < 2.0
    assert t["cheapest_knob_reaching_big_accuracy"]["cost_fraction_of_big"] == pytest.approx(0.75)
    assert t["best_accuracy_at_most_big_cost"] == 0.61  # the 0.62 point costs more than the big model
    assert t["accuracy_at_cost_nearest_big"]["value"] == 0.0  # |2.4 - 2.0| = 0.4 < |1.5 - 2.0| = 0.5
    assert t["aiq_ranking_non_oracle"] == ["bayes-adaptive", "mip", "always:b"]
    assert t["highest_aiq_non_oracle"] is True and t["aiq_gap_to_best_other"] == pytest.approx(0.05)
    assert t["aiq_gap_to_best_other_ci95"] == [0.01, 0.09]  # the paired interval evaluate recorded for mip
    worse = dict(results, aiq={"bayes-adaptive": 0.45, "mip": 0.50})
    frontier_low = frontier.assign(accuracy=frontier["accuracy"] - 0.05)
    t = quality_targets(worse, frontier_low)
    assert t["reaches_big_accuracy_at_lower_cost"] is False and t["cheapest_knob_reaching_big_accuracy"] is None
    assert t["highest_aiq_non_oracle"] is False and t["aiq_gap_to_best_other"] == pytest.approx(-0.05)


def test_answer_key_conflicts_are_left_out_and_always_matches_the_log(tmp_path):
    """Two hand-made MMLU-Pro files that disagree on one key (question 6: A in one, B in the other)."""
    from bayes_router.data.mmlu_pro import import_mmlu_pro
    from bayes_router.data.split import answer_key_conflicts, sample_questions

    rng = np.random.default_rng(0)
    for model, skill in (("small-m", 0.4), ("big-m", 0.8)):
        recs = []
        for q in range(40):
            key = "AB"[q % 2]
            if q == 6 and model == "big-m":
                key = "B"  # the revised key of one source; both files' pred is B on it
            pred = "B" if q == 6 else (key if rng.random() < skill else "C")
            recs.append({"question_id": q, "question": f"q{q}", "options": ["a", "b", "c", "d"], "answer": key,
                         "category": "math", "src": "hand-made", "pred": pred, "model_outputs": "x" * (q + 1)})
        (tmp_path / f"model_outputs_{model}_5shots.json").write_text(json.dumps(recs))
    prices = pd.DataFrame({"usd_per_m_input": [0.1, 1.0], "usd_per_m_output": [0.1, 1.0]},
                          index=pd.Index(["small-m", "big-m"], name="model"))
    log, _ = import_mmlu_pro(tmp_path, prices=prices)
    models = ["small-m", "big-m"]
    assert answer_key_conflicts(log, models).tolist() == [6]
    assert 6 in sample_questions(log, models, exclude_answer_key_conflicts=False)
    results = evaluate(log, models, test_frac=0.5, seed=1, policies=[f"always:{m}" for m in models],
                       n_boot=20, frontiers=False, progress=False)
    assert results["meta"]["answer_key_conflicts_excluded"] == 1
    assert 6 not in results["train_question_ids"] + results["test_question_ids"]
    test = log[log["question_id"].isin(results["test_question_ids"])]
    for m in models:  # exactly the log's own grading, for every model
        assert results["policies"][f"always:{m}"]["accuracy"] == test.loc[test["model"] == m, "correct"].mean()


def test_fit_seed_spread_refits_on_the_same_split():
    from bayes_router.study.seed_variability import fit_seed_runs, fit_seed_spread

    log = tiny_log(CORRECT_12)
    kw = dict(questions=tiny_questions(12), test_frac=0.5, n_boot=100, reliability=_stubs(),
              policies=["random", "always:b"])
    base = evaluate(log, MODELS, seed=1, progress=False, **kw)
    runs = fit_seed_runs(log, MODELS, [0, 1, 2, 3], seed=1, done={1: base}, **kw)
    assert runs[1] is base and sorted(runs) == [0, 1, 2, 3]
    assert all(r["test_question_ids"] == base["test_question_ids"] for r in runs.values())  # the split is fixed
    assert [r["meta"]["fit_seed"] for r in runs.values()] == [0, 1, 2, 3]
    spread = fit_seed_spread(runs, reference_seed=1)
    assert spread.loc["always:b", "accuracy_range"] == 0 and spread.loc["always:b", "cost_sd"] == 0
    acc = [runs[s]["policies"]["random"]["accuracy"] for s in range(4)]
    assert spread.loc["random", "accuracy_range"] == pytest.approx(max(acc) - min(acc)) and len(set(acc)) > 1
    assert spread.loc["random", "accuracy_ci_width"] == pytest.approx(np.subtract(*base["policies"]["random"]["accuracy_ci95"][::-1]))
