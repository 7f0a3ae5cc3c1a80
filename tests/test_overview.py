"""The data-overview computations against hand-counted answers on a tiny log, and on a SIMULATED log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from bayes_router import load_call_log, validate_call_log
from bayes_router.errors import InputError
from bayes_router.study import overview as ov


def _tiny_log() -> pd.DataFrame:
    """3 models x 4 questions; q3 is failed by every model; model 'c' lacks q4."""
    # (question, model, subject, correct, parsed, prompt, completion, cost)
    rows = [
        (1, "a", "math", True, True, 100, 10, 0.001),
        (1, "b", "math", True, True, 100, 20, 0.002),
        (1, "c", "math", False, True, 100, 30, 0.010),
        (2, "a", "math", False, False, 100, 40, 0.001),
        (2, "b", "math", True, True, 100, 20, 0.002),
        (2, "c", "math", True, True, 100, 30, 0.010),
        (3, "a", "law", False, True, 200, 10, 0.003),
        (3, "b", "law", False, True, 200, 20, 0.004),
        (3, "c", "law", False, False, 200, 50, 0.020),
        (4, "a", "law", True, True, 200, 10, 0.003),
        (4, "b", "law", False, True, 200, 20, 0.004),
    ]
    df = pd.DataFrame(rows, columns=["question_id", "model", "subject", "correct", "parsed",
                                     "prompt_tokens", "completion_tokens", "cost_usd"])
    df["source"] = "hand"
    df["question_chars"] = 50
    df["n_options"] = 4
    df["answer"] = "A"
    df["pred"] = np.where(df["parsed"], np.where(df["correct"], "A", "B"), None)
    df["confidence"] = np.nan
    df["latency_s"] = np.nan
    df["log_source"] = "hand-made"
    return validate_call_log(df, where="tiny")


def test_accuracy_by_model_and_subject_counts():
    t = ov.accuracy_by_model_and_subject(_tiny_log()).set_index(["model", "subject"])
    assert t.loc[("a", "math"), "n_calls"] == 2
    assert t.loc[("a", "math"), "accuracy"] == pytest.approx(0.5)
    assert t.loc[("a", "law"), "accuracy"] == pytest.approx(0.5)
    assert t.loc[("b", "law"), "accuracy"] == pytest.approx(0.0)
    assert t.loc[("c", "law"), "n_calls"] == 1
    # the Jeffreys interval: central 95% of Beta(k + 1/2, n - k + 1/2), pinned to 0 when k = 0
    assert t.loc[("a", "math"), "acc_lo"] == pytest.approx(beta.ppf(0.025, 1.5, 1.5))
    assert t.loc[("a", "math"), "acc_hi"] == pytest.approx(beta.ppf(0.975, 1.5, 1.5))
    assert t.loc[("b", "law"), "acc_lo"] == 0.0
    assert 0.0 < t.loc[("b", "law"), "acc_hi"] < 1.0
    assert (t["acc_lo"] <= t["accuracy"]).all() and (t["accuracy"] <= t["acc_hi"]).all()


def test_model_summary_costs_tokens_and_order():
    s = ov.model_summary(_tiny_log())
    assert list(s.index) == ["a", "b", "c"]  # cheapest mean cost per call first
    assert s.loc["a", "accuracy"] == pytest.approx(2 / 4)
    assert s.loc["a", "parse_rate"] == pytest.approx(3 / 4)
    assert s.loc["c", "cost_per_call_usd"] == pytest.approx(0.040 / 3)
    assert s.loc["c", "total_cost_usd"] == pytest.approx(0.040)
    assert s.loc["c", "cost_per_correct_usd"] == pytest.approx(0.040 / 1)
    assert s.loc["b", "completion_tokens_mean"] == pytest.approx(20.0)
    assert s.loc["a", "prompt_tokens_mean"] == pytest.approx(150.0)


def test_model_summary_refuses_models_without_price():
    prices = pd.DataFrame({"usd_per_m_input": [1.0], "usd_per_m_output": [2.0]}, index=pd.Index(["a"], name="model"))
    with pytest.raises(InputError, match="price table has no row"):
        ov.model_summary(_tiny_log(), prices=prices)


def test_questions_every_model_fails_uses_common_questions_only():
    log = _tiny_log()
    per_q = ov.models_correct_per_question(log)
    assert sorted(per_q["question_id"]) == [1, 2, 3]  # q4 lacks model c
    assert dict(zip(per_q["question_id"], per_q["n_correct"], strict=True)) == {1: 2, 2: 2, 3: 0}
    fails = ov.questions_every_model_fails(log)
    assert fails["question_id"].tolist() == [3]
    # restricted to models a and b, q4 is common and b fails it but a does not
    assert ov.questions_every_model_fails(log, ["a", "b"])["question_id"].tolist() == [3]
    by_subj = ov.all_fail_by_subject(log)
    assert by_subj.loc["law", "n_questions"] == 1 and by_subj.loc["law", "n_all_fail"] == 1
    assert by_subj.loc["math", "share_all_fail"] == 0.0


def test_headline_oracle_ceiling_and_json_types():
    import json

    h = ov.overview_headline(_tiny_log())
    assert h["n_common_questions"] == 3 and h["n_all_fail"] == 1
    assert h["oracle_accuracy"] == pytest.approx(2 / 3)
    assert h["models"]["a"]["accuracy"] == pytest.approx(0.5)
    json.dumps(h, allow_nan=False)  # plain JSON, no numpy types or NaN


def test_token_quantiles_shape():
    q = ov.token_quantiles(_tiny_log(), quantiles=(0.5,))
    assert q.loc["b", ("completion_tokens", 0.5)] == 20
    assert q.loc["a", ("prompt_tokens", 0.5)] == 150


def test_restrict_and_plots_on_simulated_log(sim_log_path, tmp_path):
    """SIMULATED log: restrict draws the same questions for every model; plots draw and save."""
    import matplotlib

    matplotlib.use("Agg")
    from bayes_router.study.figures import save_figure

    log = load_call_log(sim_log_path)
    sub = ov.restrict(log, None, 50, seed=3)
    assert sub["question_id"].nunique() == 50
    assert (sub.groupby("model")["question_id"].nunique() == 50).all()
    assert ov.restrict(log, None, 50, seed=3).equals(sub)  # same seed, same questions
    ax = ov.plot_accuracy_heatmap(ov.accuracy_matrix(sub))
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    paths = save_figure(ax.figure, tmp_path, "accuracy_by_model_and_subject")
    assert all(p.stat().st_size > 0 for p in paths)
    ax = ov.plot_cost_vs_accuracy(ov.model_summary(sub))
    assert "USD" in ax.get_xlabel() and ax.get_legend() is not None
    axes = ov.plot_token_distributions(sub)
    assert "tokens" in axes[1].get_xlabel()
    ax = ov.plot_models_correct_histogram(ov.models_correct_per_question(sub))
    assert ax.get_legend() is not None
    ax = ov.plot_all_fail_by_subject(ov.all_fail_by_subject(sub))
    assert ax.get_legend() is not None
