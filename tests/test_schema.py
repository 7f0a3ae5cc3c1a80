"""The call-log schema validator: property-based tests on random valid and broken frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_router.data.io import load_call_log, write_call_log
from bayes_router.data.schema import CALL_LOG_COLUMNS, validate_call_log
from bayes_router.data.simulate import simulate_call_log
from bayes_router.errors import SchemaError

LETTERS = "ABCDEFGHIJ"


@st.composite
def valid_logs(draw):
    n_q = draw(st.integers(1, 12))
    models = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True))
    has_conf = draw(st.booleans())
    rows = []
    for q in range(n_q):
        n_opt = draw(st.integers(2, 10))
        answer = LETTERS[draw(st.integers(0, n_opt - 1))]
        for m in models:
            pred = draw(st.one_of(st.none(), st.sampled_from(LETTERS[:n_opt])))
            pt, ct = draw(st.integers(0, 5000)), draw(st.integers(0, 5000))
            rows.append({
                "question_id": q, "model": m, "subject": draw(st.sampled_from(["law", "math"])),
                "source": "s", "question_chars": draw(st.integers(0, 9000)), "n_options": n_opt,
                "answer": answer, "pred": pred, "parsed": pred is not None, "correct": pred == answer,
                "prompt_tokens": pt, "completion_tokens": ct, "cost_usd": (pt + ct) * 1e-7,
                "confidence": draw(st.floats(0, 1)) if has_conf else None,
                "latency_s": draw(st.one_of(st.none(), st.floats(0, 100))),
                "log_source": "hypothesis",
            })
    df = pd.DataFrame(rows)
    df["pred"] = df["pred"].astype("string")
    df["confidence"] = df["confidence"].astype(float)
    df["latency_s"] = df["latency_s"].astype(float)
    return df


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_logs())
def test_valid_logs_pass_and_round_trip(tmp_path_factory, df):
    out = validate_call_log(df, where="x.parquet")
    assert list(out.columns) == CALL_LOG_COLUMNS
    assert len(out) == len(df)
    path = tmp_path_factory.mktemp("rt") / "log.parquet"
    write_call_log(df, path)
    back = load_call_log(path)
    pd.testing.assert_frame_equal(back, out)


def _break(df: pd.DataFrame, how: str, i: int) -> tuple[pd.DataFrame, str]:
    df = df.copy()
    i = i % len(df)
    if how == "missing":
        col = CALL_LOG_COLUMNS[i % len(CALL_LOG_COLUMNS)]
        return df.drop(columns=[col]), col
    if how == "duplicate":
        return pd.concat([df, df.iloc[[i]]], ignore_index=True), "question_id"
    if how == "confidence":
        df["confidence"] = df["confidence"].astype(float)
        df.loc[i, "confidence"] = 1.5
        return df, "confidence"
    if how == "negative_tokens":
        df.loc[i, "completion_tokens"] = -1
        return df, "completion_tokens"
    if how == "negative_cost":
        df.loc[i, "cost_usd"] = -0.01
        return df, "cost_usd"
    if how == "wrong_type":
        df["prompt_tokens"] = df["prompt_tokens"].astype(str)
        return df, "prompt_tokens"
    if how == "null_model":
        df["model"] = df["model"].astype(object)
        df.loc[i, "model"] = None
        return df, "model"
    if how == "inconsistent_correct":
        df.loc[i, "correct"] = not df.loc[i, "correct"]
        return df, "correct"
    raise AssertionError(how)


BREAKS = ["missing", "duplicate", "confidence", "negative_tokens", "negative_cost", "wrong_type",
          "null_model", "inconsistent_correct"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_logs(), st.sampled_from(BREAKS), st.integers(0, 10_000))
def test_broken_logs_are_refused_naming_file_and_column(tmp_path_factory, df, how, i):
    bad, col = _break(df, how, i)
    with pytest.raises(SchemaError) as exc:
        validate_call_log(bad, where="bad_log.parquet")
    msg = str(exc.value)
    assert msg.startswith("bad_log.parquet: column '")
    assert f"'{col}'" in msg
    # nothing written when refused
    path = tmp_path_factory.mktemp("bad") / "log.parquet"
    with pytest.raises(SchemaError):
        write_call_log(bad, path)
    assert not path.exists() and list(path.parent.iterdir()) == []


def test_error_shows_offending_rows():
    log, _, _ = simulate_call_log(n_questions=5, seed=1)
    log.loc[3, "confidence"] = 2.0
    with pytest.raises(SchemaError, match=r"'confidence': values outside \[0, 1\] \(1 rows; e.g. \[\{'question_id'"):
        validate_call_log(log, where="f.parquet")


def test_simulated_log_is_labelled_and_valid():
    log, questions, truth = simulate_call_log(n_questions=50, with_confidence=True, with_latency=True, seed=3)
    assert (log["log_source"] == "simulated").all() and (log["source"] == "simulated").all()
    assert len(log) == 50 * len(truth.models)
    assert log["confidence"].between(0, 1).all() and (log["latency_s"] > 0).all()
    assert not log.loc[~log["parsed"], "correct"].any()
    # the same seed gives the same log
    again, _, _ = simulate_call_log(n_questions=50, with_confidence=True, with_latency=True, seed=3)
    pd.testing.assert_frame_equal(log, again)
    assert np.isin(questions["question_id"], log["question_id"]).all()
