"""The second-opinion ceiling on SIMULATED logs: the perfect pick by hand, a learned pick that finds a
signal when there is one and gains nothing when there is none, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_router.errors import InputError
from bayes_router.study.second_opinion import most_accurate_on_train, second_opinion_ceiling

LETTERS = np.array(list("ABCDEFGHIJ"))


def simulated_log(n: int, tokens_reveal: bool, seed: int = 0) -> pd.DataFrame:
    """SIMULATED: a first model right on 60% and a second on 55% of ``n`` questions, independently.
    A wrong answer is another letter than the key; with ``tokens_reveal`` the second model's wrong
    answers run about 4x longer than its right ones, else tokens are noise for both."""
    rng = np.random.default_rng(seed)
    key = LETTERS[rng.integers(0, 10, n)]
    rows = []
    for model, p_right, price in (("first", 0.60, 1e-6), ("second", 0.55, 2e-6)):
        right = rng.random(n) < p_right
        wrong_letter = LETTERS[(np.searchsorted(LETTERS, key) + rng.integers(1, 10, n)) % 10]
        tokens = rng.lognormal(5.0, 0.3, n)
        if tokens_reveal and model == "second":
            tokens = np.where(right, tokens, 4.0 * tokens)
        rows.append(pd.DataFrame({
            "question_id": np.arange(n), "model": model, "subject": np.where(np.arange(n) % 2, "math", "law"),
            "question_chars": rng.integers(200, 900, n), "pred": np.where(right, key, wrong_letter),
            "parsed": True, "correct": right, "completion_tokens": tokens.round(),
            "cost_usd": price * (1000 + tokens.round())}))
    return pd.concat(rows, ignore_index=True)


def test_perfect_pick_is_first_wrong_and_second_right_and_a_revealing_signal_is_learned():
    log = simulated_log(1600, tokens_reveal=True)
    train, test = np.arange(0, 1000), np.arange(1000, 1600)
    row = second_opinion_ceiling(log, "first", ["first", "second"], train, test, n_boot=200).iloc[0]
    y = log.pivot(index="question_id", columns="model", values="correct").loc[test].astype(bool)
    assert row["second"] == "second"
    assert row["perfect_pick_gain"] == pytest.approx((~y["first"] & y["second"]).mean())
    assert row["p_exactly_one_right"] == pytest.approx((y["first"] ^ y["second"]).mean())
    lo, hi = row["perfect_pick_gain_ci95"]
    assert lo < row["perfect_pick_gain"] < hi
    cost = log.pivot(index="question_id", columns="model", values="cost_usd").loc[test]
    assert row["cost_ratio"] == pytest.approx((cost["first"] + cost["second"]).mean() / cost["first"].mean())
    # the second's tokens say exactly when it is wrong: the pick is (nearly) perfect
    assert row["learned_pick_right"] > 0.95
    assert row["learned_pick_gain"] > 0.9 * row["perfect_pick_gain"]


def test_without_a_signal_the_learned_pick_gains_nothing_and_the_pick_is_near_chance():
    log = simulated_log(1600, tokens_reveal=False, seed=1)
    row = second_opinion_ceiling(log, "first", ["second"], np.arange(0, 1000), np.arange(1000, 1600), n_boot=200).iloc[0]
    lo, hi = row["learned_pick_gain_ci95"]
    # any switch to the weaker second model is a coin flip at best: no gain beyond noise
    assert lo <= 0.0 and row["learned_pick_gain"] < 0.03
    assert row["learned_pick_right"] < 0.65
    assert row["perfect_pick_gain"] > 0.15  # while the ceiling itself is large (0.40 * 0.55)


def test_too_few_labelled_train_questions_leave_the_learned_pick_undefined():
    log = simulated_log(300, tokens_reveal=True, seed=2)
    row = second_opinion_ceiling(log, "first", ["second"], np.arange(0, 40), np.arange(40, 300), n_boot=50).iloc[0]
    assert row["n_pick_train"] < 30
    assert row["learned_pick_gain"] is None or np.isnan(row["learned_pick_gain"])
    assert row["perfect_pick_gain"] > 0.0


def test_bad_input_is_refused_with_a_clear_error():
    log = simulated_log(200, tokens_reveal=False)
    with pytest.raises(InputError, match="both train and test"):
        second_opinion_ceiling(log, "first", ["second"], np.arange(0, 120), np.arange(100, 200))
    with pytest.raises(InputError, match="lacks column"):
        second_opinion_ceiling(log.drop(columns="cost_usd"), "first", ["second"], np.arange(0, 100), np.arange(100, 200))
    with pytest.raises(InputError, match="no candidate"):
        second_opinion_ceiling(log, "first", ["first"], np.arange(0, 100), np.arange(100, 200))
    with pytest.raises(InputError, match="no call on 5"):
        second_opinion_ceiling(log[~((log.model == "second") & (log.question_id >= 195))], "first", ["second"],
                               np.arange(0, 100), np.arange(100, 200))


def test_the_reference_first_model_is_chosen_on_train_questions_only():
    log = simulated_log(400, tokens_reveal=False, seed=3)
    train = np.arange(0, 200)
    q = log.question_id.to_numpy()
    log["correct"] = np.where(log.model == "first", q % 10 < 7, q % 10 < 5)  # train: first 0.70, second 0.50
    # and "second" right on every test question, which the choice must not see
    log.loc[(log.model == "second") & (q >= 200), "correct"] = True
    assert most_accurate_on_train(log, ["first", "second"], train) == "first"
