"""The collection store: one SQLite database in WAL mode, one transaction per finished call.

``DIR/calls.sqlite3`` holds

* ``meta``: the endpoint (scheme, host and path only: never credentials or a query
  string), when the store was created and by which settings;
* ``questions``: what the call log needs about each question (subject, source, key, ...);
* ``calls``: one row per (question_id, model), ``status`` "answered" or "failed". An
  answered row is final: a later write for the same pair never replaces it (the upsert
  only overwrites a failed row), so a resumed or duplicated run cannot count a call twice;
* ``failures``: every failed attempt sequence with its reason (history; not the log).

Each finished call is committed with ``synchronous = FULL`` before the caller counts it,
so a process killed at any moment (``kill -9`` included) loses at most the calls in
flight. One thread at a time uses a connection (the event loop's, possibly not the opening
thread: Jupyter runs the loop in a worker thread); the database allows one writer anyway.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from bayes_router.errors import InputError

DB_NAME = "calls.sqlite3"
SCHEMA_VERSION = "1"

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS questions (
    question_id INTEGER PRIMARY KEY, subject TEXT NOT NULL, source TEXT NOT NULL,
    question_chars INTEGER NOT NULL, n_options INTEGER NOT NULL, answer TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    question_id INTEGER NOT NULL, model TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('answered', 'failed')),
    pred TEXT, confidence REAL, parse TEXT, raw_response TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, tokens_estimated INTEGER,
    cost_usd REAL, cost_source TEXT, latency_s REAL, ttft_s REAL, mean_token_prob REAL,
    attempts INTEGER NOT NULL, backoff_s REAL, error TEXT, finished_at TEXT NOT NULL,
    system_fingerprint TEXT, replay_of TEXT,
    PRIMARY KEY (question_id, model));
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT, question_id INTEGER NOT NULL, model TEXT NOT NULL,
    reason TEXT NOT NULL, attempts INTEGER NOT NULL, at TEXT NOT NULL);
"""

@dataclass
class CallRecord:
    """One finished call as stored. Units: tokens, USD, seconds; confidence in [0, 1].

    ``status`` "answered" (a response came back; ``pred`` may still be None when no
    letter could be read, ``parse`` then "none") or "failed" (no response after every
    retry; ``error`` says why). ``tokens_estimated`` is 1 when the server reported no
    usage and the counts were estimated. ``backoff_s``: seconds
    slept between attempts. ``replay_of`` is the replayed log's source when
    the endpoint said it was a replay (None for a real endpoint).
    """

    question_id: int
    model: str
    status: str
    attempts: int
    pred: str | None = None
    confidence: float | None = None
    parse: str | None = None
    raw_response: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: int = 0
    cost_usd: float | None = None
    cost_source: str | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    mean_token_prob: float | None = None
    backoff_s: float = 0.0
    error: str | None = None
    finished_at: str = ""
    system_fingerprint: str | None = None
    replay_of: str | None = None


#: The stored columns, in CallRecord's order; the (question_id, model) key comes first.
CALL_FIELDS = tuple(f.name for f in fields(CallRecord))


def public_endpoint(url: str) -> str:
    """``url`` without user info, query or fragment (where credentials could hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _same_server(endpoint: str) -> str:
    """What must not change between runs on one store: a loopback server may come back on another port."""
    parts = urlsplit(endpoint)
    if parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return urlunsplit((parts.scheme, "loopback", parts.path, "", ""))
    return endpoint


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CallStore:
    """The store in folder ``path`` (created if missing). Use as a context manager."""

    def __init__(self, path: str | os.PathLike, create: bool = True):
        self.dir = Path(path)
        db = self.dir / DB_NAME
        if not create and not db.exists():
            raise InputError(f"{self.dir}: not a collection store (no {DB_NAME}; run collect with --store first)")
        if self.dir.exists() and not self.dir.is_dir():
            raise InputError(f"{self.dir}: the store must be a folder, this is a file")
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(db, isolation_level=None, timeout=30.0, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_DDL)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{db}: not a usable SQLite store ({exc})") from None

    def __enter__(self) -> CallStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # ---------------------------------------------------------------- meta and questions
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta").fetchall())

    def bind_endpoint(self, base_url: str, settings: dict[str, str]) -> None:
        """Record the endpoint; refuse a store filled from another one (a loopback port may change)."""
        endpoint = public_endpoint(base_url)
        meta = self.meta()
        if meta.get("endpoint") is not None and _same_server(meta["endpoint"]) != _same_server(endpoint):
            raise InputError(
                f"{self.dir}: this store holds calls to {meta['endpoint']}, not {endpoint}; "
                "use another store folder for another endpoint"
            )
        rows = {"endpoint": endpoint, "schema_version": SCHEMA_VERSION, **settings}
        rows.setdefault("created_at", meta.get("created_at") or now_utc())
        with self._transaction():
            for key, value in rows.items():
                if key not in meta or key in ("last_run_at", "endpoint"):
                    self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def add_questions(self, questions: pd.DataFrame) -> None:
        """Store the questions' metadata (an existing question keeps its first record)."""
        cols = ["question_id", "subject", "source", "question_chars", "n_options", "answer", "text"]
        rows = [tuple(r) for r in questions[cols].itertuples(index=False, name=None)]
        rows = [(int(q), str(s), str(src), int(c), int(n), str(a), str(t)) for q, s, src, c, n, a, t in rows]
        with self._transaction():
            self.conn.executemany("INSERT OR IGNORE INTO questions VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def questions(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM questions ORDER BY question_id", self.conn)

    # ---------------------------------------------------------------- calls
    def answered_pairs(self) -> set[tuple[int, str]]:
        """The (question_id, model) pairs with an answered call: never requested again."""
        cur = self.conn.execute("SELECT question_id, model FROM calls WHERE status = 'answered'")
        return {(int(q), str(m)) for q, m in cur.fetchall()}

    def record(self, rec: CallRecord) -> bool:
        """Commit one finished call durably. Returns False if the pair was already answered."""
        rec.finished_at = rec.finished_at or now_utc()
        values = asdict(rec)
        row = tuple(values[f] for f in CALL_FIELDS)
        updates = ", ".join(f"{f} = excluded.{f}" for f in CALL_FIELDS[2:])
        with self._transaction():
            if rec.status == "failed":
                self.conn.execute(
                    "INSERT INTO failures (question_id, model, reason, attempts, at) VALUES (?, ?, ?, ?, ?)",
                    (rec.question_id, rec.model, rec.error or "unknown", rec.attempts, rec.finished_at),
                )
            cur = self.conn.execute(
                f"INSERT INTO calls ({', '.join(CALL_FIELDS)}) VALUES ({', '.join('?' * len(CALL_FIELDS))}) "
                f"ON CONFLICT (question_id, model) DO UPDATE SET {updates} WHERE calls.status = 'failed'",
                row,
            )
            return cur.rowcount > 0

    def calls(self, status: str | None = None) -> pd.DataFrame:
        """The calls table (optionally one status), ordered by model then question."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        return pd.read_sql_query(f"SELECT * FROM calls {where} ORDER BY model, question_id", self.conn, params=args)

    def spent_usd(self) -> float:
        """USD spent on answered calls so far (failed calls returned no usage and are not billed)."""
        (total,) = self.conn.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls WHERE status = 'answered'").fetchone()
        return float(total)

    def failures(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM failures ORDER BY id", self.conn)

    def _transaction(self):
        return _Transaction(self.conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): one durable write."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, *_):
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def pairs_to_do(question_ids: Iterable[int], models: Iterable[str], done: set[tuple[int, str]]) -> list[tuple[int, str]]:
    """The (question_id, model) pairs not yet answered, question-major (each question's models together)."""
    models = list(models)
    return [(int(q), m) for q in question_ids for m in models if (int(q), m) not in done]
