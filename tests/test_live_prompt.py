"""The collection prompt and its parser: JSON, fenced JSON, prose, and what is no answer."""

from __future__ import annotations

import pytest

from bayes_router.data.tokens import format_question
from bayes_router.live.prompt import (
    INSTRUCTION,
    build_messages,
    parse_answer,
    question_block,
    question_from_messages,
    scale_confidence,
)


@pytest.mark.parametrize("text, letter, conf, how", [
    ('{"reasoning": "x", "answer": "C", "confidence": 85}', "C", 0.85, "json"),
    ('Sure.\n```json\n{"answer": "(b)", "confidence": 0.7}\n```', "B", 0.7, "json"),
    ('reasoning... {"answer": "D", "confidence": "90%"} done', "D", 0.9, "json"),
    ("So the answer is (D).\nConfidence: 80%", "D", 0.8, "text"),
    ("The answer is B. Wait, no: the final answer is (E). Confidence: 60", "E", 0.6, "text"),
    ('{"answer": "B", "confid', "B", None, "text"),  # truncated JSON still names a letter
    ("the answer is a trap", None, None, "none"),  # a lower-case article is no letter
    ('{"answer": "K", "confidence": 99}', None, None, "none"),  # K is beyond 4 options
    ("", None, None, "none"),
])
def test_parse_answer(text, letter, conf, how):
    got = parse_answer(text, n_options=4 if "K" in text else 10)
    assert (got.letter, got.how) == (letter, how)
    assert got.confidence == (pytest.approx(conf) if conf is not None else None)


@pytest.mark.parametrize("value, expected", [
    (85, 0.85), (0.85, 0.85), ("0.85", 0.85), ("85%", 0.85), (100, 1.0), (0, 0.0), (1, 0.01),
    (101, None), (-3, None), ("high", None), (True, None),
])
def test_confidence_is_scaled_to_unit_interval(value, expected):
    got = scale_confidence(value)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_question_block_round_trips_through_the_messages():
    text = format_question("What is 2 + 2?", ["3", "4", "5", "22"])
    messages = build_messages(text)
    user = messages[-1]["content"]
    assert "Let's think step by step." not in user.split("\n\n")[0]  # the few-shot cue is replaced
    assert user.endswith(INSTRUCTION) and "D. 22" in user
    assert question_from_messages(messages) == question_block(text)
    assert question_from_messages([{"role": "system", "content": "x"}]) is None
