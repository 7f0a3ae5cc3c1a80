"""The collection store: an answered pair is final, a failed one is replaced by its answer, the
endpoint is kept without credentials, and a committed call survives the connection."""

from __future__ import annotations

import pytest

from bayes_router.live.store import CallRecord, CallStore, pairs_to_do, public_endpoint


def _answered(qid=1, model="m", pred="B", cost=0.01):
    return CallRecord(question_id=qid, model=model, status="answered", attempts=1, pred=pred, cost_usd=cost,
                      prompt_tokens=10, completion_tokens=5)


def test_an_answered_pair_is_never_overwritten(tmp_path):
    with CallStore(tmp_path / "s") as store:
        assert store.record(CallRecord(question_id=1, model="m", status="failed", attempts=3, error="HTTP 500"))
        assert store.answered_pairs() == set()
        assert store.record(_answered(pred="B"))  # a failure is replaced by the answer
        assert not store.record(_answered(pred="C", cost=5.0))  # a second answer is refused
        assert not store.record(CallRecord(question_id=1, model="m", status="failed", attempts=1, error="x"))
    with CallStore(tmp_path / "s", create=False) as store:  # committed: visible to a new connection
        calls = store.calls()
        assert len(calls) == 1 and calls.loc[0, "pred"] == "B" and calls.loc[0, "status"] == "answered"
        assert store.spent_usd() == pytest.approx(0.01) and len(store.failures()) == 2
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_pairs_to_do_skips_answered_pairs_question_major():
    assert pairs_to_do([1, 2], ["a", "b"], {(1, "b")}) == [(1, "a"), (2, "a"), (2, "b")]


def test_endpoint_is_stored_without_credentials(tmp_path):
    url = "https://user:sk-secret@api.example.com:8443/v1/?api_key=sk-secret#x"
    assert public_endpoint(url) == "https://api.example.com:8443/v1"
    with CallStore(tmp_path / "s") as store:
        store.bind_endpoint(url, {"seed": 0})
        store.bind_endpoint("https://api.example.com:8443/v1", {"seed": 1})  # the same server
        with pytest.raises(ValueError, match="holds calls to"):
            store.bind_endpoint("https://other.example.com/v1", {})
        assert "sk-secret" not in str(store.meta()) and store.meta()["seed"] == "0"


def test_a_file_is_not_a_store(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="must be a folder"):
        CallStore(tmp_path / "f")
    with pytest.raises(ValueError, match="not a collection store"):
        CallStore(tmp_path / "missing", create=False)
