"""Atomic writes, the one split, and the price arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_router.data.io import atomic_write, load_call_log, load_questions, write_json
from bayes_router.data.prices import call_cost_usd, load_prices, price_of
from bayes_router.data.simulate import simulate_call_log
from bayes_router.data.split import (
    questions_answered_by_all,
    rows_for,
    sample_questions,
    train_test_split,
)
from bayes_router.errors import InputError


def test_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.json"

    def boom(p):
        p.write_text("partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    assert target.read_text().strip() == '{\n  "a": 1\n}'


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="no such call log"):
        load_call_log(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        load_call_log(tmp_path / "junk.parquet")
    with pytest.raises(InputError, match="question texts not found"):
        load_questions(tmp_path / "junk.parquet")


def test_split_is_by_question_disjoint_and_seeded():
    log, _, _ = simulate_call_log(n_questions=200, seed=0)
    models = ["small", "mid", "big"]
    # drop one model's answer to question 5: it is no longer answered by all
    log = log[~((log["model"] == "big") & (log["question_id"] == 5))]
    ids = questions_answered_by_all(log, models)
    assert 5 not in ids and len(ids) == 199
    q = sample_questions(log, models, 100, seed=1)
    assert len(q) == 100 and len(set(q)) == 100 and set(q) <= set(ids)
    np.testing.assert_array_equal(q, sample_questions(log, models, 100, seed=1))
    assert not np.array_equal(q, sample_questions(log, models, 100, seed=2))
    train, test = train_test_split(q, test_frac=0.3, seed=1)
    assert len(test) == 30 and len(train) == 70
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(q)
    t2, s2 = train_test_split(q, test_frac=0.3, seed=1)
    np.testing.assert_array_equal(train, t2)
    rows = rows_for(log, models, test)
    assert set(rows["question_id"]) == set(test) and len(rows) == 90
    with pytest.raises(InputError, match="models not in the log"):
        sample_questions(log, ["small", "huge"])
    with pytest.raises(InputError, match="test-frac"):
        train_test_split(q, test_frac=1.0)


def test_cost_function_and_price_lookup():
    prices = load_prices()
    p_in, p_out = price_of(prices, "gemini-1.5-flash-002")
    assert (p_in, p_out) == (0.075, 0.30)
    assert call_cost_usd(1_000_000, 1_000_000, p_in, p_out) == pytest.approx(0.375)
    np.testing.assert_allclose(call_cost_usd([100, 200], [10, 20], 1.0, 2.0), [120e-6, 240e-6])
    with pytest.raises(InputError, match="'gpt-99' is not in the price table"):
        price_of(prices, "gpt-99")
