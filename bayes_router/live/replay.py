"""A chat-completions server that replays a call log: for tests and demos, never a model.

It speaks the OpenAI chat-completions protocol (``POST /v1/chat/completions``, plain or
streamed, ``GET /v1/models``) on 127.0.0.1 and answers each request from the cached log:
the logged model's letter, confidence and token counts (``usage``), in the requested
format (a JSON object under ``response_format = json_object``, else a sentence). Every
response says it is a replay: the ``x-bayes-router-replay`` header (holding the replayed
log's ``log_source``, e.g. "simulated"), ``"replay": true`` in the body and
``system_fingerprint = "replay"``.

How a request is matched to a question: by its text, the way a real endpoint would get
it. The question block of the last user message (everything before the prompt's
instruction, :func:`bayes_router.live.prompt.question_from_messages`) is looked up in
the question texts stored beside the log. Nothing is added to the request for the
replay's sake, so the client under test sends exactly what it sends to a paid endpoint.

Faults (:class:`Faults`), drawn per request from a seeded generator: a share of 429s
with ``Retry-After``, a share of 500s, slow responses (a delay before the answer or its
first streamed token) and malformed bodies (the JSON cut in half). ``GET /replay/stats``
counts requests per (question, model), answered or not, so a test can prove that a
resumed collection never asked again for a finished pair.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayes_router.errors import InputError
from bayes_router.live.client import REPLAY_HEADER
from bayes_router.live.prompt import question_block, question_from_messages

REPLAY_NOTE = "Replayed from a cached call log; no model was called."


@dataclass
class Faults:
    """Shares in [0, 1] of requests answered with a fault; seconds for the delays."""

    share_429: float = 0.0
    retry_after_s: float = 1.0
    share_500: float = 0.0
    share_slow: float = 0.0
    slow_s: float = 2.0
    share_malformed: float = 0.0
    report_cost: bool = False  # put the logged cost_usd in usage.cost, as some providers do
    seed: int = 0

    def __post_init__(self):
        for name in ("share_429", "share_500", "share_slow", "share_malformed"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {v}")
        if self.share_429 + self.share_500 > 1.0:
            raise InputError("share_429 + share_500 must be at most 1")
        if self.retry_after_s < 0 or self.slow_s < 0:
            raise InputError("retry_after_s and slow_s must be >= 0")


class ReplayLog:
    """The cached answers, keyed by (question_id, model), and the question texts that find them."""

    def __init__(self, log_path: str | Path, models: list[str] | None = None):
        from bayes_router.data.io import load_call_log, load_questions

        log = load_call_log(log_path)
        if models is not None:  # serve only these (a large log loads faster)
            unknown = sorted(set(models) - set(log["model"].unique()))
            if unknown:
                raise InputError(f"{log_path}: models not in the log: {unknown}")
            log = log[log["model"].isin(models)].reset_index(drop=True)
        questions = load_questions(log_path)
        questions = questions[questions["question_id"].isin(log["question_id"])]
        self.log_source = ",".join(sorted(log["log_source"].unique()))
        if "mean_token_prob" not in log.columns:
            log["mean_token_prob"] = math.nan
        self.rows = _Rows(log.set_index(["question_id", "model"]).sort_index())
        self.models = sorted(log["model"].unique())
        self.by_text = {_key(t): int(q) for q, t in zip(questions["question_id"], questions["text"], strict=True)}

    def find(self, messages: list[dict]) -> int | None:
        block = question_from_messages(messages)
        return None if block is None else self.by_text.get(_key(block))


class _Rows:
    """(question_id, model) -> the logged row, without materialising one Series per row up front."""

    def __init__(self, indexed: pd.DataFrame):
        self.frame, self.keys = indexed, set(indexed.index)

    def __contains__(self, key) -> bool:
        return key in self.keys

    def __getitem__(self, key) -> pd.Series:
        return self.frame.loc[key]


def _key(text: str) -> str:
    return " ".join(question_block(text).split())


def answer_text(row: pd.Series, json_mode: bool) -> str:
    """The replayed message content: the logged letter and confidence (percent), labelled a replay."""
    pred = row["pred"] if isinstance(row["pred"], str) else None
    conf = row["confidence"]
    pct = None if conf is None or pd.isna(conf) else int(round(float(conf) * 100))
    if json_mode:
        obj = {"reasoning": REPLAY_NOTE, "answer": pred if pred else "none"}
        if pct is not None:
            obj["confidence"] = pct
        return json.dumps(obj)
    if not pred:
        return REPLAY_NOTE + " The logged call gave no answer that could be read."
    return f"{REPLAY_NOTE}\nThe answer is ({pred})." + (f"\nConfidence: {pct}%" if pct is not None else "")


def _completion(model: str, content: str, row: pd.Series, report_cost: bool, logprobs: bool) -> dict:
    usage = {"prompt_tokens": int(row["prompt_tokens"]), "completion_tokens": int(row["completion_tokens"])}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    if report_cost:
        usage["cost"] = float(row["cost_usd"])
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
    mtp = row.get("mean_token_prob")
    if logprobs and mtp is not None and not pd.isna(mtp) and mtp > 0:  # only where the log has real values
        choice["logprobs"] = {"content": [{"token": "", "logprob": math.log(float(mtp))}]}
    return {"id": f"replay-{int(time.time() * 1e6)}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "system_fingerprint": "replay", "replay": True, "choices": [choice], "usage": usage}


def _stream_lines(completion: dict) -> list[str]:
    """The completion as server-sent chunks: role, content in pieces, finish, usage, [DONE]."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint", "replay")}
    base["object"] = "chat.completion.chunk"
    content = completion["choices"][0]["message"]["content"]
    pieces = [content[i:i + 16] for i in range(0, len(content), 16)] or [""]
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    if "logprobs" in completion["choices"][0]:
        chunks[-1]["choices"][0]["logprobs"] = completion["choices"][0]["logprobs"]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]


def build_app(log_path: str | Path, faults: Faults | None = None, models: list[str] | None = None):
    """The Starlette application replaying ``log_path`` (only ``models``, if given) with ``faults``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    replay, faults = ReplayLog(log_path, models), faults or Faults()
    rng = random.Random(faults.seed)
    requests: Counter = Counter()
    served: Counter = Counter()
    fault_counts: Counter = Counter()
    headers = {REPLAY_HEADER: replay.log_source}

    def error(status: int, message: str, kind: str, extra: dict | None = None) -> JSONResponse:
        body = {"error": {"message": f"replay: {message}", "type": kind}, "replay": True}
        return JSONResponse(body, status_code=status, headers={**headers, **(extra or {})})

    async def chat(request: Request):
        try:
            body = await request.json()
            model, messages = body["model"], body["messages"]
        except (ValueError, KeyError, TypeError):
            return error(400, "the body must be JSON with 'model' and 'messages'", "invalid_request_error")
        qid = replay.find(messages) if isinstance(messages, list) else None
        if qid is None:
            fault_counts["unknown_question"] += 1
            return error(404, "no question of the replayed log matches this prompt", "not_found")
        requests[(qid, str(model))] += 1
        if (qid, model) not in replay.rows:
            return error(404, f"model '{model}' has no logged call for this question", "model_not_found")
        u = rng.random()
        if u < faults.share_429:
            fault_counts["429"] += 1
            return error(429, "injected rate limit", "rate_limit_exceeded", {"retry-after": f"{faults.retry_after_s:g}"})
        if u < faults.share_429 + faults.share_500:
            fault_counts["500"] += 1
            return error(500, "injected server error", "server_error")
        slow, malformed = rng.random() < faults.share_slow, rng.random() < faults.share_malformed
        fmt = body.get("response_format")
        json_mode = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
        row = replay.rows[(qid, model)]
        completion = _completion(model, answer_text(row, json_mode), row, faults.report_cost, bool(body.get("logprobs")))
        served[(qid, model)] += 1
        fault_counts["slow"] += slow
        fault_counts["malformed"] += malformed
        if slow:
            await asyncio.sleep(faults.slow_s)
        if body.get("stream"):
            lines = _stream_lines(completion)
            if malformed:
                lines[1] = lines[1][: len(lines[1]) // 2] + "\n\n"

            async def gen():
                for line in lines:
                    yield line

            return StreamingResponse(gen(), media_type="text/event-stream", headers=headers)
        text = json.dumps(completion)
        if malformed:
            text = text[: len(text) // 2]
        return Response(text, media_type="application/json", headers=headers)

    async def models(request: Request):
        data = [{"id": m, "object": "model", "owned_by": "replay"} for m in replay.models]
        return JSONResponse({"object": "list", "data": data, "replay": True}, headers=headers)

    async def stats(request: Request):
        rows = [{"question_id": q, "model": m, "requests": n, "served": served[(q, m)]}
                for (q, m), n in sorted(requests.items())]
        return JSONResponse({"replay": True, "pairs": rows, "faults": dict(fault_counts),
                             "total_requests": sum(requests.values())}, headers=headers)

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/replay/stats", stats, methods=["GET"]),
    ])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """An ASGI app on uvicorn in a background thread on 127.0.0.1: ``with BackgroundServer(app) as srv``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int | None = None):
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        # stop() waits at most a second for requests still sleeping in a slow-response fault
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="replay-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout_s: float = 20.0):
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"replay server did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"http://{self.host}:{self.port}/replay/stats", timeout=10).json()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ReplayServer(BackgroundServer):
    """The replay of ``log_path`` in a background thread: ``with ReplayServer(log) as srv: srv.base_url``."""

    def __init__(self, log_path: str | Path, faults: Faults | None = None, host: str = "127.0.0.1",
                 port: int | None = None, models: list[str] | None = None):
        super().__init__(build_app(log_path, faults, models), host, port)
