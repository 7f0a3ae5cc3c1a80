"""Durability and secrets of `bayes-router collect`, run as a real subprocess against the replay
server (127.0.0.1, started here): kill -9 midway then resume answers every pair exactly once and
never re-requests a finished one; the API key is never written anywhere nor printed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _live_fixtures import FAKE_KEY, MODELS, collect_cmd, write_simulated_log

from bayes_router.live.replay import BackgroundServer, Faults, ReplayServer
from bayes_router.live.store import CallStore

CONCURRENCY = 4


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return write_simulated_log(tmp_path_factory.mktemp("live_dur"))


def _env():
    return {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "PYTHONUNBUFFERED": "1"}


def _answered(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM calls WHERE status = 'answered'").fetchone()[0]
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def _assert_key_nowhere(root: Path, *texts: str) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), f"API key written to {path}"
    for text in texts:
        assert FAKE_KEY not in text


def test_sigkill_midway_then_resume_answers_each_pair_once(sim, tmp_path):
    log_path, prices = sim
    store = tmp_path / "store"
    db = store / "calls.sqlite3"
    cmd = collect_cmd("", log_path, store, prices, "--n", "50", "--concurrency", str(CONCURRENCY))
    with ReplayServer(log_path, Faults(share_slow=1.0, slow_s=0.04)) as srv:
        cmd[cmd.index("--base-url") + 1] = srv.base_url
        out1 = (tmp_path / "run1.out").open("w")
        proc = subprocess.Popen(cmd, stdout=out1, stderr=subprocess.STDOUT, env=_env())
        deadline = time.monotonic() + 60
        while _answered(db) < 40 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "collect finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        out1.close()
        assert proc.returncode == -signal.SIGKILL
        with CallStore(store) as s:
            finished = s.answered_pairs()
        before = {(p["question_id"], p["model"]): p["requests"] for p in srv.stats()["pairs"]}
        assert 40 <= len(finished) < 150
        resumed = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        after = {(p["question_id"], p["model"]): p["requests"] for p in srv.stats()["pairs"]}
    with CallStore(store) as s:
        calls = s.calls()
    assert len(calls) == 150 and (calls["status"] == "answered").all()
    assert not calls.duplicated(["question_id", "model"]).any()
    assert set(after) == set(zip(calls["question_id"], calls["model"], strict=True))
    assert all(after[p] == before[p] for p in finished), "a finished pair was requested again"
    asked_twice = {p for p, n in after.items() if n > 1}
    assert asked_twice.isdisjoint(finished) and len(asked_twice) <= CONCURRENCY  # only calls in flight at the kill
    assert f"{150 - len(finished)} calls to make" in resumed.stdout
    _assert_key_nowhere(tmp_path, resumed.stdout, resumed.stderr)


def test_api_key_never_written_nor_printed_even_when_the_endpoint_echoes_it(sim, tmp_path):
    """A hostile endpoint that echoes the Authorization header in its errors, plus 429s and malformed bodies."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    log_path, prices = sim

    async def echo(request):
        auth = request.headers.get("authorization", "")
        assert auth == f"Bearer {FAKE_KEY}"  # the key does reach the endpoint, in the header
        return JSONResponse({"error": {"message": f"bad request, you sent {auth}"}}, status_code=400)

    app = Starlette(routes=[Route("/v1/chat/completions", echo, methods=["POST"])])
    with BackgroundServer(app) as bad:
        run = subprocess.run(collect_cmd(bad.base_url, log_path, tmp_path / "bad", prices, "--n", "3"),
                             capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode == 1 and "HTTP 400" in run.stderr and "***" in run.stderr
    faults = Faults(share_429=0.3, retry_after_s=0.02, share_malformed=0.2)
    with ReplayServer(log_path, faults) as srv:
        ok = subprocess.run(collect_cmd(srv.base_url, log_path, tmp_path / "ok", prices, "--n", "10"),
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    exported = subprocess.run([sys.executable, "-m", "bayes_router.cli", "export", str(tmp_path / "ok"), "-o",
                               str(tmp_path / "live.parquet")], capture_output=True, text=True, env=_env(), timeout=120)
    assert exported.returncode == 0 and "REPLAY of a simulated log" in exported.stdout
    _assert_key_nowhere(tmp_path, run.stdout, run.stderr, ok.stdout, ok.stderr, exported.stdout, exported.stderr)
    with CallStore(tmp_path / "bad") as s:
        assert s.calls("failed")["error"].str.contains(r"Bearer \*\*\*").all()


def test_replay_server_command_serves_and_labels_a_replay(sim, tmp_path):
    import httpx

    from bayes_router.live.replay import free_port

    log_path, _ = sim
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bayes_router.cli", "replay-server", str(log_path), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "replay-server did not start"
                time.sleep(0.1)
        assert sorted(m["id"] for m in r.json()["data"]) == sorted(MODELS)
        assert r.headers["x-bayes-router-replay"] == "simulated" and r.json()["replay"] is True
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=5,
                       json={"model": "small", "messages": [{"role": "user", "content": "not a logged question"}]})
        assert r.status_code == 404 and "replay" in r.json()["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
