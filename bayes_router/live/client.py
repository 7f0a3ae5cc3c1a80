"""An asynchronous chat-completions client for batch jobs that cost money.

* bounded concurrency is the caller's (a fixed number of workers share one client);
* a client-side rate limit (:class:`RateLimiter`: request starts spaced at least
  ``1 / rate_per_s`` apart, and every request paused while a server's ``Retry-After``
  runs, since a 429 speaks for the whole key, not for one call);
* retries on 429, 408, 5xx, timeouts and connection errors, with exponential backoff and
  "equal jitter" (half the step fixed, half random: a retry waits at least
  ``backoff_base_s * 2**(k-1) / 2`` seconds before attempt ``k + 1``, so the backoff shows
  in the timings) and never less than the server's ``Retry-After``;
* a wall-clock limit per attempt (``timeout_s``), streaming or not;
* 401 and 403 stop the whole run (:class:`EndpointRefused`): every further call would fail
  the same way. Other 4xx are not retried (the request itself is wrong).

The API key goes into the ``Authorization`` header and nowhere else; every message this
module builds passes through :func:`redact` first.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from bayes_router.errors import InputError
from bayes_router.live.store import public_endpoint

REPLAY_HEADER = "x-bayes-router-replay"
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


@dataclass
class ClientConfig:
    """Endpoint and retry settings. Seconds throughout; ``rate_per_s`` in requests per second."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    rate_per_s: float | None = None
    json_mode: bool = True
    stream: bool = False
    logprobs: bool = False
    max_tokens: int = 1024
    temperature: float = 0.0

    def __post_init__(self):
        parts = httpx.URL(self.base_url) if "://" in self.base_url else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.host:
            raise InputError(f"base_url must be an http(s) URL such as https://api.openai.com/v1, "
                             f"got {public_endpoint(self.base_url)!r}")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.backoff_base_s < 0 or self.max_tokens < 1:
            raise InputError("timeout_s and max_tokens must be positive, max_retries and backoff_base_s >= 0")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise InputError(f"rate_per_s must be positive, got {self.rate_per_s}")


@dataclass
class ChatResponse:
    """One successful exchange. ``content`` is None when the body could not be read as JSON."""

    raw: str
    content: str | None
    usage: dict | None
    token_logprobs: list[float] | None
    latency_s: float
    ttft_s: float | None
    system_fingerprint: str | None
    replay_of: str | None


class CallFailed(Exception):
    """No response after every allowed attempt (or a request the endpoint refused)."""

    def __init__(self, reason: str, attempts: int, backoff_s: float):
        super().__init__(reason)
        self.reason, self.attempts, self.backoff_s = reason, attempts, backoff_s


class EndpointRefused(InputError):
    """The endpoint refused the credentials (401/403): the run stops."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


class _Permanent(Exception):
    pass


class _JsonModeRefused(Exception):
    pass


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds, possibly fractional, or an HTTP date) in seconds."""
    if not value:
        return None
    try:
        secs = float(value)
    except ValueError:
        try:
            secs = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, secs) if math.isfinite(secs) else None


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after_s: float | None, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): equal jitter, at least Retry-After."""
    step = min(max_s, base_s * 2 ** (attempt - 1))
    delay = step / 2 + rng.uniform(0, step / 2)
    return max(delay, retry_after_s or 0.0)


class RateLimiter:
    """Spaces request starts ``1 / rate_per_s`` apart; :meth:`pause` holds every start until a time."""

    def __init__(self, rate_per_s: float | None):
        self.interval = 1.0 / rate_per_s if rate_per_s else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = max(self._next, start + self.interval)
        if start > now:
            await asyncio.sleep(start - now)


class ChatClient:
    """Chat-completions calls with retries; use as ``async with ChatClient(config) as c``."""

    def __init__(self, config: ClientConfig, seed: int | None = None):
        self.config = config
        self.limiter = RateLimiter(config.rate_per_s)
        self.rng = random.Random(seed)
        self.text_mode_models: set[str] = set()  # models whose endpoint refused JSON mode
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ChatClient:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.config.timeout_s),
                                       limits=httpx.Limits(max_keepalive_connections=64))
        return self

    async def __aexit__(self, *exc) -> None:
        await self._http.aclose()

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + "/chat/completions"

    def payload(self, model: str, messages: list[dict]) -> dict:
        cfg = self.config
        body = {"model": model, "messages": messages, "max_tokens": cfg.max_tokens, "temperature": cfg.temperature}
        if cfg.json_mode and model not in self.text_mode_models:
            body["response_format"] = {"type": "json_object"}
        if cfg.logprobs:
            body["logprobs"] = True
        if cfg.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, model: str, messages: list[dict]) -> tuple[ChatResponse, int, float]:
        """(response, attempts, seconds spent backing off); raises CallFailed or EndpointRefused."""
        cfg, attempt, backoff_s, reason = self.config, 0, 0.0, "no attempt"
        while attempt <= cfg.max_retries:
            attempt += 1
            await self.limiter.wait()
            try:
                async with asyncio.timeout(cfg.timeout_s):
                    return await self._once(model, messages), attempt, backoff_s
            except _JsonModeRefused:
                self.text_mode_models.add(model)
                attempt -= 1  # the endpoint's limitation, not a failed call
                continue
            except _Permanent as exc:
                raise CallFailed(redact(str(exc), cfg.api_key), attempt, backoff_s) from None
            except _Retryable as exc:
                reason, retry_after = exc.reason, exc.retry_after_s
            except TimeoutError:
                reason, retry_after = f"timeout after {cfg.timeout_s:g} s", None
            except httpx.TransportError as exc:
                reason, retry_after = f"connection error ({type(exc).__name__})", None
            if attempt > cfg.max_retries:
                break
            if retry_after:
                self.limiter.pause(retry_after)
            delay = backoff_delay(attempt, cfg.backoff_base_s, cfg.backoff_max_s, retry_after, self.rng)
            await asyncio.sleep(delay)
            backoff_s += delay
        raise CallFailed(redact(f"{reason} (gave up after {attempt} attempts)", cfg.api_key), attempt, backoff_s)

    def _check_status(self, status: int, body: str, headers, model: str) -> None:
        if status < 300:
            return
        snippet = redact(" ".join(body.split())[:200], self.config.api_key)
        if status in (401, 403):
            raise EndpointRefused(f"{public_endpoint(self.url)}: HTTP {status}: the endpoint refused the API key "
                                  f"(OPENAI_API_KEY) or access to model '{model}': {snippet}")
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status}", retry_after_seconds(headers.get("retry-after")))
        if status == 400 and "response_format" in body and model not in self.text_mode_models:
            raise _JsonModeRefused()
        raise _Permanent(f"HTTP {status}: {snippet}")

    async def _once(self, model: str, messages: list[dict]) -> ChatResponse:
        payload = self.payload(model, messages)
        t0 = time.perf_counter()
        if not self.config.stream:
            r = await self._http.post(self.url, json=payload)
            latency = time.perf_counter() - t0
            self._check_status(r.status_code, r.text, r.headers, model)
            return _from_body(r.text, latency, None, r.headers)
        async with self._http.stream("POST", self.url, json=payload) as r:
            if r.status_code >= 300:
                body = (await r.aread()).decode("utf-8", "replace")
                self._check_status(r.status_code, body, r.headers, model)
            lines, ttft = [], None
            async for line in r.aiter_lines():
                if ttft is None and _has_content(line):
                    ttft = time.perf_counter() - t0
                lines.append(line)
            return _from_stream(lines, time.perf_counter() - t0, ttft, r.headers)


def _has_content(line: str) -> bool:
    """Whether a server-sent line carries the first text of the answer (not only the role)."""
    if not line.startswith("data:") or '"content"' not in line:
        return False
    try:
        chunk = json.loads(line[5:])
        return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])
    except (ValueError, TypeError, AttributeError):
        return False


def _token_logprobs(choice: dict) -> list[float] | None:
    content = (choice.get("logprobs") or {}).get("content") if isinstance(choice, dict) else None
    if not content:
        return None
    vals = [t.get("logprob") for t in content if isinstance(t, dict)]
    vals = [float(v) for v in vals if isinstance(v, int | float) and math.isfinite(v)]
    return vals or None


def _from_body(body: str, latency: float, ttft: float | None, headers) -> ChatResponse:
    replay = headers.get(REPLAY_HEADER)
    try:
        obj = json.loads(body)
        choice = obj["choices"][0]
        content = choice["message"].get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError("content is not text")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ChatResponse(body, None, None, None, latency, ttft, None, replay)
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
    return ChatResponse(body, content or "", usage, _token_logprobs(choice), latency, ttft,
                        obj.get("system_fingerprint"), replay)


def _from_stream(lines: list[str], latency: float, ttft: float | None, headers) -> ChatResponse:
    """Assemble server-sent chunks; any unreadable chunk makes the whole response unreadable."""
    raw = "\n".join(lines)
    parts, usage, logprobs, fingerprint = [], None, [], None
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            break
        try:
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
                logprobs.extend(_token_logprobs(choice) or [])
        except (ValueError, TypeError, AttributeError):
            return ChatResponse(raw, None, None, None, latency, ttft, None, headers.get(REPLAY_HEADER))
        usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else usage
        fingerprint = chunk.get("system_fingerprint") or fingerprint
    return ChatResponse(raw, "".join(parts), usage, logprobs or None, latency, ttft, fingerprint,
                        headers.get(REPLAY_HEADER))
