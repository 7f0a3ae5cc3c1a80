"""What ``bayes-router collect`` runs: sample questions, call every model on each, store each call.

Questions are sampled with :func:`bayes_router.data.split.sample_questions` and the same
seed as ``evaluate``: from the rows of the log the questions come with when every listed
model is in it (so a replay collects exactly the questions ``evaluate`` would score),
otherwise from every question of that log (new models have no rows yet).

Per call the store keeps: the letter and the stated confidence (scaled to [0, 1]), how
they were read (``parse``: json, text or none) and the response text; prompt and
completion tokens from ``usage`` (estimated with cl100k_base and flagged
``tokens_estimated`` only when the server gives none); cost from ``usage.cost`` when the
server reports it, else tokens times the price table (:func:`call_cost_usd`); wall-clock
latency of the successful attempt and, when streaming, time to the first token; the mean
token probability when log-probabilities come back; attempts and seconds spent backing off.

Budget: before each call the worst case (its prompt tokens plus ``max_tokens`` at the
price table's rates) is reserved; a call that could take the spend past ``max_usd`` is
not started, so the run stops cleanly within budget (as far as the price table is right).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.prices import call_cost_usd, load_prices, price_of
from bayes_router.data.split import sample_questions
from bayes_router.data.tokens import count_tokens
from bayes_router.errors import InputError
from bayes_router.live.client import (
    CallFailed,
    ChatClient,
    ChatResponse,
    ClientConfig,
    EndpointRefused,
    redact,
)
from bayes_router.live.prompt import build_messages, parse_answer
from bayes_router.live.store import DB_NAME, CallRecord, CallStore, now_utc, pairs_to_do

#: Completion tokens assumed per call for the spend estimate printed before a run (a short CoT).
EXPECTED_COMPLETION_TOKENS = 300
QUESTION_COLUMNS = ["question_id", "subject", "source", "question_chars", "n_options", "answer", "text"]


def load_question_source(qsrc: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(call log, question texts) from a folder/file of MMLU-Pro outputs, a log or a questions parquet."""
    from bayes_router.data.io import QUESTIONS_SUFFIX, load_call_log, load_questions

    qsrc = Path(qsrc)
    if qsrc.name.endswith(QUESTIONS_SUFFIX):
        log_path = qsrc.with_name(qsrc.name[: -len(QUESTIONS_SUFFIX)] + ".parquet")
        if not log_path.exists():
            raise InputError(f"{qsrc}: the call log it belongs to ({log_path.name}) is not beside it "
                             "(it holds the answer key and the sources)")
        return load_call_log(log_path), load_questions(log_path)
    if qsrc.suffix == ".parquet":
        return load_call_log(qsrc), load_questions(qsrc)
    from bayes_router.data.mmlu_pro import import_mmlu_pro

    return import_mmlu_pro(qsrc, progress=True)


def sample_collection_questions(log: pd.DataFrame, questions: pd.DataFrame, models: list[str],
                                n_questions: int | None, seed: int) -> pd.DataFrame:
    """The sampled questions with what the call log needs about each (columns QUESTION_COLUMNS)."""
    if set(models) <= set(log["model"].unique()):
        ids = sample_questions(log, models, n_questions, seed)
        rows = log[log["model"].isin(models)]
    else:  # new models: every question of the log is a candidate, drawn the same way
        all_ids = np.sort(log["question_id"].unique())
        frame = pd.DataFrame({"question_id": np.repeat(all_ids, len(models)), "model": models * len(all_ids)})
        ids = sample_questions(frame, models, n_questions, seed)
        rows = log
    meta = (rows[rows["question_id"].isin(ids)].sort_values(["question_id", "model"])
            .drop_duplicates("question_id")[QUESTION_COLUMNS[:-1]])
    out = meta.merge(questions[["question_id", "text"]], on="question_id", how="left")
    missing = out.loc[out["text"].isna(), "question_id"].head(5).tolist()
    if missing:
        raise InputError(f"question texts: no text for questions {missing} (the questions file lacks them)")
    return out.sort_values("question_id").reset_index(drop=True)


def prompt_token_estimates(questions: pd.DataFrame) -> pd.Series:
    """cl100k_base tokens of each question's messages (system + user text), indexed by question_id."""
    texts = ["\n".join(m["content"] for m in build_messages(t)) for t in questions["text"]]
    return pd.Series(count_tokens(texts), index=questions["question_id"].to_numpy(), dtype=np.int64)


def estimate_spend_usd(pairs: list[tuple[int, str]], questions: pd.DataFrame, prices: pd.DataFrame,
                       completion_tokens: int) -> float:
    """Estimated USD of the (question_id, model) calls ``pairs`` with ``completion_tokens`` per answer."""
    prompt = prompt_token_estimates(questions)
    return sum(float(call_cost_usd(prompt[q], completion_tokens, *price_of(prices, m))) for q, m in pairs)


@dataclass
class CollectionResult:
    """What a run did. USD and seconds."""

    pairs_total: int
    already_answered: int
    answered: int = 0
    failed: int = 0
    spent_usd: float = 0.0
    stopped_by_budget: bool = False
    failures: list[str] = field(default_factory=list)
    estimated_usd: float | None = None  # before the run, at EXPECTED_COMPLETION_TOKENS per call
    worst_case_usd: float | None = None  # before the run, at max_tokens per call

    @property
    def remaining(self) -> int:
        return self.pairs_total - self.already_answered - self.answered


def record_from_response(qid: int, model: str, n_options: int, resp: ChatResponse, attempts: int,
                         backoff_s: float, prompt_estimate: int, prices: pd.DataFrame) -> CallRecord:
    """The stored record of one answered call (tokens, cost, letter, confidence, timings)."""
    parsed = parse_answer(resp.content, n_options)
    usage = resp.usage or {}
    p_tok, c_tok = usage.get("prompt_tokens"), usage.get("completion_tokens")
    estimated = not (isinstance(p_tok, int) and isinstance(c_tok, int) and p_tok >= 0 and c_tok >= 0)
    if estimated:
        p_tok = prompt_estimate
        c_tok = count_tokens([resp.content if resp.content is not None else resp.raw])[0]
    cost = usage.get("cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost) and cost >= 0:
        cost_source = "usage"
    else:
        cost, cost_source = float(call_cost_usd(p_tok, c_tok, *price_of(prices, model))), "price_table"
    mtp = float(np.mean(np.exp(resp.token_logprobs))) if resp.token_logprobs else None
    return CallRecord(
        question_id=qid, model=model, status="answered", attempts=attempts, backoff_s=backoff_s,
        pred=parsed.letter, confidence=parsed.confidence, parse=parsed.how,
        raw_response=resp.content if resp.content is not None else resp.raw,
        prompt_tokens=int(p_tok), completion_tokens=int(c_tok), tokens_estimated=int(estimated),
        cost_usd=float(cost), cost_source=cost_source, latency_s=resp.latency_s, ttft_s=resp.ttft_s,
        mean_token_prob=mtp, system_fingerprint=resp.system_fingerprint, replay_of=resp.replay_of,
    )


class _Budget:
    """Spend so far plus the worst case of the calls in flight, against ``max_usd`` (None: no cap)."""

    def __init__(self, spent: float, max_usd: float | None):
        self.spent, self.max_usd, self.reserved = spent, max_usd, 0.0

    def try_reserve(self, worst_case: float) -> bool:
        if self.max_usd is not None and self.spent + self.reserved + worst_case > self.max_usd:
            return False
        self.reserved += worst_case
        return True

    def settle(self, worst_case: float, actual: float) -> None:
        self.reserved -= worst_case
        self.spent += actual


async def run_collection(store: CallStore, questions: pd.DataFrame, models: list[str], config: ClientConfig,
                         prices: pd.DataFrame, concurrency: int = 8, max_usd: float | None = None,
                         progress: bool = True, seed: int = 0) -> CollectionResult:
    """Call every model on every question not yet answered in ``store``; each call committed as it ends."""
    from tqdm.auto import tqdm

    if concurrency < 1:
        raise InputError(f"concurrency must be at least 1, got {concurrency}")
    done = store.answered_pairs()
    wanted = [(int(q), m) for q in questions["question_id"] for m in models]
    todo = pairs_to_do(questions["question_id"], models, done)
    result = CollectionResult(len(wanted), len(wanted) - len(todo))
    by_id = questions.set_index("question_id")
    prompt_tok = prompt_token_estimates(questions)
    worst = {m: pd.Series(call_cost_usd(prompt_tok.to_numpy(), config.max_tokens, *price_of(prices, m)),
                        index=prompt_tok.index) for m in models}
    budget = _Budget(store.spent_usd(), max_usd)
    queue: asyncio.Queue = asyncio.Queue()
    for pair in todo:
        queue.put_nowait(pair)
    bar = tqdm(total=len(todo), desc="calls", unit="call", disable=not progress, dynamic_ncols=True)

    async def worker(client: ChatClient) -> None:
        while not result.stopped_by_budget:
            try:
                qid, model = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            reserve = float(worst[model][qid])
            if not budget.try_reserve(reserve):
                result.stopped_by_budget = True
                return
            rec = await _one_call(client, qid, model, by_id.loc[qid], int(prompt_tok[qid]), prices, config.api_key)
            store.record(rec)  # durable before it counts
            budget.settle(reserve, rec.cost_usd or 0.0)
            if rec.status == "answered":
                result.answered += 1
            else:
                result.failed += 1
                result.failures.append(f"question {qid}, {model}: {rec.error}")
            bar.update(1)
            bar.set_postfix(failed=result.failed, spent=f"${budget.spent:.4f}", refresh=False)

    try:  # a task group: a refused key stops every worker at once, before the client closes
        async with ChatClient(config, seed=seed) as client, asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, max(1, len(todo)))):
                group.create_task(worker(client))
    except* EndpointRefused as refused:
        raise refused.exceptions[0] from None
    finally:
        bar.close()
    result.spent_usd = budget.spent
    return result


async def _one_call(client: ChatClient, qid: int, model: str, question: pd.Series, prompt_estimate: int,
                    prices: pd.DataFrame, api_key: str | None) -> CallRecord:
    try:
        resp, attempts, backoff_s = await client.complete(model, build_messages(str(question["text"])))
    except CallFailed as exc:
        return CallRecord(question_id=qid, model=model, status="failed", attempts=exc.attempts,
                          backoff_s=exc.backoff_s, error=redact(exc.reason, api_key), finished_at=now_utc())
    return record_from_response(qid, model, int(question["n_options"]), resp, attempts, backoff_s,
                                prompt_estimate, prices)


def collect(base_url: str, models: list[str], qsrc: str | Path, store_dir: str | Path, *,
            n_questions: int | None = None, seed: int = 0, concurrency: int = 8, prices: str | Path | None = None,
            max_usd: float | None = None, api_key: str | None = None, progress: bool = True,
            client_options: dict | None = None, announce=print, dry_run: bool = False) -> CollectionResult:
    """Sample questions from ``qsrc``, then collect every (question, model) call into ``store_dir``.

    ``client_options``: further :class:`ClientConfig` fields (timeout_s, max_retries,
    backoff_base_s, rate_per_s, json_mode, stream, logprobs, max_tokens, temperature).
    ``announce`` receives the lines printed before the run (the estimated spend).
    ``dry_run``: sample and estimate only; no call is made and no store is created.
    """
    if not models:
        raise InputError("models: at least one model is needed")
    if max_usd is not None and max_usd < 0:
        raise InputError(f"max_usd must be >= 0, got {max_usd}")
    config = ClientConfig(base_url=base_url, api_key=api_key, **(client_options or {}))
    table = load_prices(prices)
    for m in models:  # refuse before any call: the budget needs every model's price
        price_of(table, m, where=str(prices or "data/prices.csv"))
    log, texts = load_question_source(qsrc)
    questions = sample_collection_questions(log, texts, models, n_questions, seed)
    if dry_run:
        done = set()
        if (Path(store_dir) / DB_NAME).exists():
            with CallStore(store_dir, create=False) as store:
                done = store.answered_pairs()
        todo = pairs_to_do(questions["question_id"], models, done)
        result = CollectionResult(len(questions) * len(models), len(questions) * len(models) - len(todo))
        result.estimated_usd = estimate_spend_usd(todo, questions, table, EXPECTED_COMPLETION_TOKENS)
        result.worst_case_usd = estimate_spend_usd(todo, questions, table, config.max_tokens)
        announce(f"dry run: {len(todo)} calls to make; estimated spend ${result.estimated_usd:.4f}, at most "
                 f"${result.worst_case_usd:.4f} at max_tokens={config.max_tokens}; nothing called or written")
        return result
    with CallStore(store_dir) as store:
        store.bind_endpoint(base_url, {"seed": seed, "models": ",".join(models), "max_tokens": config.max_tokens,
                                       "json_mode": config.json_mode, "last_run_at": now_utc()})
        store.add_questions(questions)
        todo = pairs_to_do(questions["question_id"], models, store.answered_pairs())
        expected = estimate_spend_usd(todo, questions, table, EXPECTED_COMPLETION_TOKENS)
        worst = estimate_spend_usd(todo, questions, table, config.max_tokens)
        announce(f"{len(questions)} questions x {len(models)} models: {len(todo)} calls to make "
                 f"({len(questions) * len(models) - len(todo)} already answered in {store.dir}); estimated spend "
                 f"${expected:.4f} at {EXPECTED_COMPLETION_TOKENS} completion tokens per call, at most "
                 f"${worst:.4f} at max_tokens={config.max_tokens} (price table; usage.cost where reported)"
                 + (f"; budget ${max_usd:.4f} (${store.spent_usd():.4f} already spent)" if max_usd is not None else ""))
        result = run_coroutine(run_collection(store, questions, models, config, table, concurrency=concurrency,
                                              max_usd=max_usd, progress=progress, seed=seed))
    result.estimated_usd, result.worst_case_usd = expected, worst
    return result


def run_coroutine(coro):
    """``asyncio.run(coro)``, in a worker thread where an event loop already runs (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
