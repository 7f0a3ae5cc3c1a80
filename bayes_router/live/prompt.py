"""The zero-shot chain-of-thought prompt and the parser that reads its answer back.

The user message is the question block (the question and its lettered options, as the
questions table stores them) followed by a blank line and the instruction below. The model
is asked to reason briefly, then to give its final letter and a confidence in percent
(0-100), as a JSON object ``{"reasoning": ..., "answer": "C", "confidence": 85}``. With
``json_mode`` the request also sets ``response_format = {"type": "json_object"}``; where
an endpoint refuses that, the same instruction is sent without it and the answer is read
from the text.

:func:`parse_answer` reads a JSON object first (bare, fenced or embedded in prose), then
falls back to the phrasings models use ("the answer is (C)", "Answer: C",
"Confidence: 80%"). A letter outside the question's options is no answer. Confidence is
scaled to [0, 1]: a number above 1 is read as percent, a fraction at or below 1 with a
decimal point as a probability, a whole number 0 or 1 as percent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

#: The first line of the instruction; the replay server splits the question block off here.
INSTRUCTION_HEAD = "Think step by step, then give your final answer."
INSTRUCTION = (
    INSTRUCTION_HEAD + "\n"
    "Reply with one JSON object and nothing else, of the form\n"
    '{"reasoning": "<a few sentences>", "answer": "<the letter of one option>", '
    '"confidence": <an integer from 0 to 100: how likely, in percent, your answer is right>}'
)
SYSTEM = "You are an expert who answers multiple-choice questions accurately and states how sure you are."
#: MMLU-Pro's few-shot prompt ends each question with this cue; the zero-shot instruction replaces it.
_COT_CUE = "Answer: Let's think step by step."
LETTERS = "ABCDEFGHIJKLMNOP"


def question_block(text: str) -> str:
    """The question and its options, without MMLU-Pro's trailing CoT cue, whitespace-trimmed."""
    text = text.strip()
    if text.endswith(_COT_CUE):
        text = text[: -len(_COT_CUE)].rstrip()
    return text


def build_messages(text: str) -> list[dict]:
    """The chat messages for one question (system, then user: question block + instruction)."""
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question_block(text) + "\n\n" + INSTRUCTION},
    ]


def question_from_messages(messages: list[dict]) -> str | None:
    """The question block of a request built by :func:`build_messages` (None if absent)."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        return None
    content = users[-1]["content"]
    head = content.rfind("\n\n" + INSTRUCTION_HEAD)
    return question_block(content[:head] if head >= 0 else content)


@dataclass(frozen=True)
class ParsedAnswer:
    """What could be read from a response: the letter (None if none) and confidence in [0, 1]."""

    letter: str | None
    confidence: float | None
    how: str  # "json", "text" or "none"


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)
_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
# keywords in any case, the letter in capitals only (so "the answer is a trap" is no answer "A")
_LETTER_PATTERNS = [
    re.compile(r"""["']?(?i:answer)["']?\s*[:=]\s*["']?\(?([A-P])\)?["']?(?![A-Za-z])"""),
    re.compile(r"(?i:answer\s+is)\s*:?\s*\(?\**\s*([A-P])\s*\**\)?(?![A-Za-z])"),
    re.compile(r"(?i:final\s+answer)\s*(?i:is)?\s*:?\s*\(?\**\s*([A-P])\)?(?![A-Za-z])"),
]
_CONF_PATTERN = re.compile(r"""["']?confidence["']?\s*(?:level|score)?\s*(?:is|[:=])?\s*["']?(\d+(?:\.\d+)?)\s*(%?)""", re.I)


def scale_confidence(value, percent_sign: bool = False) -> float | None:
    """A stated confidence as a probability in [0, 1]; None if it is not a number in [0, 100]."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", value)
        if not m:
            return None
        percent_sign = percent_sign or bool(m.group(2))
        raw, value = m.group(1), float(m.group(1))
        fraction = "." in raw
    elif isinstance(value, int | float):
        fraction = isinstance(value, float) and not float(value).is_integer()
        value = float(value)
    else:
        return None
    if not 0.0 <= value <= 100.0:
        return None
    if value <= 1.0 and fraction and not percent_sign:
        return value
    return value / 100.0


def _letter(value, n_options: int) -> str | None:
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"\s*\(?([A-Pa-p])\)?[.)]?\s*", value)
    if not m:
        return None
    letter = m.group(1).upper()
    return letter if LETTERS.index(letter) < n_options else None


def _from_json(text: str, n_options: int) -> ParsedAnswer | None:
    candidates = [text.strip()] + _FENCE.findall(text) + _OBJECT.findall(text)[::-1]
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except (ValueError, TypeError):
            continue
        if isinstance(obj, dict):
            keys = {str(k).lower(): v for k, v in obj.items()}
            letter = _letter(keys.get("answer"), n_options)
            if letter is not None:
                return ParsedAnswer(letter, scale_confidence(keys.get("confidence")), "json")
    return None


def parse_answer(text: str | None, n_options: int) -> ParsedAnswer:
    """Read the letter and the stated confidence from a response's text (see the module docs)."""
    if not text:
        return ParsedAnswer(None, None, "none")
    found = _from_json(text, n_options)
    if found is not None:
        return found
    letter = None
    for pattern in _LETTER_PATTERNS:
        hits = [h for h in pattern.findall(text) if LETTERS.index(h) < n_options]
        if hits:
            letter = hits[-1]  # the last statement is the final one after reasoning
            break
    if letter is None:
        return ParsedAnswer(None, None, "none")
    confs = _CONF_PATTERN.findall(text)
    conf = scale_confidence(confs[-1][0], percent_sign=bool(confs[-1][1])) if confs else None
    return ParsedAnswer(letter, conf, "text")
