"""SIMULATED call logs from known parameters, for tests and examples.

Every row this module writes has ``log_source == "simulated"``: simulated data
must never be mistaken for the real MMLU-Pro logs (figures and notes say so too).

Generative model (logit scale), for question q of subject s asked to model m::

    z_len[q]    = standardized log(question_chars)
    d[q]        ~ Normal(0, difficulty_sd)          shared by every model: errors correlate
    pre[q, m]   = alpha[m] + beta_subject[s] + gamma[m, s] + slope_len[m] * z_len[q] - d[q]
    parsed      ~ Bernoulli(parse_rate[m])
    tokens      ~ LogNormal(log(mean_tokens[m]) + tok_shift * (1 - correct_latent), 0.35)
    correct     = parsed & Bernoulli(sigmoid(pre[q, m]))

so long answers mark wrong ones (tok_shift > 0), the signal a post-call model learns.
Confidence and latency are written when ``with_confidence``/``with_latency``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_router.data.prices import call_cost_usd
from bayes_router.data.schema import validate_call_log

SIMULATED = "simulated"
_WORDS = (
    "energy force matrix protein market law contract neuron enzyme integral theorem voltage "
    "economy history philosophy ethics molecule circuit vector probability gene cell tax court "
    "policy algorithm memory logic acid reaction momentum wave"
).split()


@dataclass
class SimulationTruth:
    """The parameters a simulated log was drawn from (for parameter-recovery checks)."""

    models: list[str]
    subjects: list[str]
    alpha: np.ndarray  # (model,)
    beta_subject: np.ndarray  # (subject,)
    gamma: np.ndarray  # (model, subject)
    slope_len: np.ndarray  # (model,)
    difficulty_sd: float
    parse_rate: np.ndarray  # (model,)
    mean_tokens: np.ndarray  # (model,)
    tok_shift: float
    usd_per_m: np.ndarray  # (model,) same price for input and output
    extra: dict = field(default_factory=dict)


@dataclass
class _QuestionDraw:
    """The simulated questions: subject index, text, length, difficulty and answer key, each (question,)."""

    subj_idx: np.ndarray
    texts: list[str]
    qchars: np.ndarray
    z_len: np.ndarray
    difficulty: np.ndarray
    n_options: np.ndarray
    answers: np.ndarray


def _draw_questions(rng: np.random.Generator, n_questions: int, subjects: list[str],
                    difficulty_sd: float) -> _QuestionDraw:
    """Subjects, texts (their length in characters), shared difficulty and answer keys."""
    n_s = len(subjects)
    subj_idx = rng.integers(0, n_s, n_questions)
    n_words = rng.integers(8, 120, n_questions)
    texts = [
        f"[{subjects[s]}] " + " ".join(rng.choice(_WORDS, size=k)) + "?"
        for s, k in zip(subj_idx, n_words, strict=True)
    ]
    qchars = np.array([len(t) for t in texts], dtype=np.int64) + 40
    loglen = np.log(qchars)
    z_len = (loglen - loglen.mean()) / loglen.std()
    difficulty = rng.normal(0, difficulty_sd, n_questions) if difficulty_sd > 0 else np.zeros(n_questions)
    n_options = rng.choice([4, 10], n_questions, p=[0.2, 0.8])
    answers = np.array([chr(ord("A") + rng.integers(0, k)) for k in n_options])
    return _QuestionDraw(subj_idx, texts, qchars, z_len, difficulty, n_options, answers)


def _wrong_letters(rng: np.random.Generator, answers: np.ndarray, n_options: np.ndarray) -> np.ndarray:
    """A uniformly drawn wrong option per question (the key itself when there is one option)."""
    return np.array([
        chr(ord("A") + (ord(a) - ord("A") + 1 + rng.integers(0, k - 1)) % k) if k > 1 else a
        for a, k in zip(answers, n_options, strict=True)
    ])


def _model_calls(rng: np.random.Generator, m: int, truth: SimulationTruth, qd: _QuestionDraw,
                 with_confidence: bool, with_latency: bool, few_shot_overhead: int) -> pd.DataFrame:
    """The call-log rows of model ``m`` on every question: correctness, tokens, cost (USD), signals."""
    n_questions = len(qd.subj_idx)
    logit = (truth.alpha[m] + truth.beta_subject[qd.subj_idx] + truth.gamma[m, qd.subj_idx]
             + truth.slope_len[m] * qd.z_len - qd.difficulty)
    latent_right = rng.random(n_questions) < 1 / (1 + np.exp(-logit))
    parsed = rng.random(n_questions) < truth.parse_rate[m]
    correct = latent_right & parsed
    tokens = np.maximum(
        1, rng.lognormal(np.log(truth.mean_tokens[m]) + truth.tok_shift * (~latent_right), 0.35).round()
    ).astype(np.int64)
    wrong_letter = _wrong_letters(rng, qd.answers, qd.n_options)
    pred = np.where(correct, qd.answers, wrong_letter).astype(object)
    pred[~parsed] = None
    prompt = (qd.qchars // 4 + few_shot_overhead).astype(np.int64)
    conf = (
        np.clip(1 / (1 + np.exp(-(logit + rng.normal(0, 0.8, n_questions)))), 0, 1)
        if with_confidence else np.full(n_questions, np.nan)
    )
    lat = ((0.5 + tokens / 60.0 * (1 + m) * rng.lognormal(0, 0.2, n_questions)) if with_latency
           else np.full(n_questions, np.nan))
    price = truth.usd_per_m[m]
    return pd.DataFrame({
        "question_id": np.arange(n_questions, dtype=np.int64),
        "model": truth.models[m],
        "subject": np.array(truth.subjects)[qd.subj_idx],
        "source": SIMULATED,
        "question_chars": qd.qchars,
        "n_options": qd.n_options.astype(np.int64),
        "answer": qd.answers,
        "pred": pd.array(pred, dtype="string"),
        "parsed": parsed,
        "correct": correct,
        "prompt_tokens": prompt,
        "completion_tokens": tokens,
        "cost_usd": call_cost_usd(prompt, tokens, price, price),
        "confidence": conf,
        "latency_s": lat,
        "log_source": SIMULATED,
    })


def simulate_call_log(
    n_questions: int = 300,
    models: Sequence[str] = ("small", "mid", "big"),
    subjects: Sequence[str] = ("math", "law", "biology", "history"),
    alpha: Sequence[float] | None = None,
    subject_sd: float = 0.5,
    interaction_sd: float = 0.3,
    slope_len_mean: float = -0.3,
    difficulty_sd: float = 0.0,
    parse_rate: Sequence[float] | None = None,
    tok_shift: float = 0.4,
    usd_per_m: Sequence[float] | None = None,
    with_confidence: bool = False,
    with_latency: bool = False,
    seed: int = 0,
    few_shot_overhead: int = 100,
) -> tuple[pd.DataFrame, pd.DataFrame, SimulationTruth]:
    """A SIMULATED call log, its question texts and the true parameters.

    Defaults give three models of rising skill and price. Returns
    (log, questions, truth); the log passes :func:`validate_call_log`.
    """
    rng = np.random.default_rng(seed)
    models, subjects = list(models), list(subjects)
    n_m, n_s = len(models), len(subjects)
    alpha = np.asarray(alpha if alpha is not None else np.linspace(-0.8, 1.2, n_m), float)
    parse_rate = np.asarray(parse_rate if parse_rate is not None else np.linspace(0.9, 0.99, n_m), float)
    usd_per_m = np.asarray(usd_per_m if usd_per_m is not None else np.geomspace(0.1, 1.0, n_m), float)
    beta_subject = rng.normal(0, subject_sd, n_s)
    gamma = rng.normal(0, interaction_sd, (n_m, n_s))
    slope_len = rng.normal(slope_len_mean, 0.1, n_m)
    mean_tokens = rng.uniform(150, 400, n_m)
    truth = SimulationTruth(models, subjects, alpha, beta_subject, gamma, slope_len, difficulty_sd,
                            parse_rate, mean_tokens, tok_shift, usd_per_m)

    qd = _draw_questions(rng, n_questions, subjects, difficulty_sd)
    rows = [_model_calls(rng, m, truth, qd, with_confidence, with_latency, few_shot_overhead) for m in range(n_m)]
    log = validate_call_log(pd.concat(rows, ignore_index=True), where="simulated log")
    questions = pd.DataFrame({
        "question_id": np.arange(n_questions, dtype=np.int64),
        "subject": np.array(subjects)[qd.subj_idx],
        "text": qd.texts,
    })
    return log, questions, truth


def simulate_question_texts(rng: np.random.Generator, n: int, n_topics: int = 4, vocabulary: int = 150) -> list[str]:
    """``n`` SIMULATED question texts (each starts with the word "simulated"): 25-59 made-up words
    from a mixture of ``n_topics`` topics over ``vocabulary`` words, so that TF-IDF + SVD finds a few
    real directions in them (what the IRT model's text prior is fitted on)."""
    vocab = np.array([f"w{i:03d}" for i in range(vocabulary)])
    topics = rng.dirichlet(np.full(vocabulary, 0.1), size=n_topics)
    texts = []
    for _ in range(n):
        mix = rng.dirichlet(np.full(n_topics, 0.3)) @ topics
        texts.append("simulated " + " ".join(rng.choice(vocab, size=rng.integers(25, 60), p=mix)))
    return texts
