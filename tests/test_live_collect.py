"""Live collection against the replay server (started here on 127.0.0.1, never the internet),
on a SIMULATED cached log: the collected log equals the replayed one, faults are survived,
failures and budgets behave, and the export keeps the contract."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _live_fixtures import MODELS, write_simulated_log

from bayes_router.data.io import load_call_log, load_questions
from bayes_router.live.collect import collect
from bayes_router.live.export import export_call_log, read_live_metadata
from bayes_router.live.replay import Faults, ReplayServer
from bayes_router.live.store import CallStore

FAST = {"backoff_base_s": 0.02, "backoff_max_s": 0.5, "timeout_s": 10.0}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return write_simulated_log(tmp_path_factory.mktemp("live_sim"))


def _collect(url, log, store, prices, n=50, **kw):
    opts = {**FAST, **kw.pop("client_options", {})}
    return collect(url, MODELS, log, store, n_questions=n, seed=0, concurrency=kw.pop("concurrency", 8),
                   prices=prices, progress=False, client_options=opts, announce=lambda s: None, **kw)


def test_collection_matches_the_replayed_log_and_exports_the_contract(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "store", prices)
        stats = srv.stats()
    assert (res.answered, res.failed, res.remaining) == (150, 0, 0)
    out, info = export_call_log(tmp_path / "store", tmp_path / "live.parquet")
    got = load_call_log(tmp_path / "live.parquet")
    assert len(load_questions(tmp_path / "live.parquet")) == 50
    cached = load_call_log(log_path)
    m = got.merge(cached, on=["question_id", "model"], suffixes=("", "_log"), validate="one_to_one")
    assert len(m) == 150 and set(got["model"]) == set(MODELS)
    assert (m["pred"].fillna("-") == m["pred_log"].fillna("-")).all()
    assert (m["correct"] == m["correct_log"]).all() and (m["answer"] == m["answer_log"]).all()
    assert (m["prompt_tokens"] == m["prompt_tokens_log"]).all()
    assert (m["completion_tokens"] == m["completion_tokens_log"]).all()
    np.testing.assert_allclose(m["cost_usd"], m["cost_usd_log"], rtol=1e-12)  # via the price table
    ok = m["parsed"]  # a call with no readable letter keeps no confidence either
    assert (~ok).sum() == (~m["parsed_log"]).sum() > 0 and m.loc[~ok, "confidence"].isna().all()
    np.testing.assert_allclose(m.loc[ok, "confidence"], m.loc[ok, "confidence_log"], atol=0.005)  # whole percent
    assert (got["log_source"] == "live").all() and got["latency_s"].gt(0).all()
    assert "ttft_s" not in got and "mean_token_prob" not in got  # no streaming, no logprobs: no column
    meta = read_live_metadata(tmp_path / "live.parquet")
    assert meta["endpoint"] == srv.base_url and meta["replay_of"] == "simulated" and meta["calls"] == 150
    assert meta["tokens_estimated_calls"] == 0 and meta["first_call_utc"] <= meta["last_call_utc"]
    assert all(p["requests"] == 1 for p in stats["pairs"]) and len(stats["pairs"]) == 150
    # the same questions evaluate would sample (same function and seed)
    from bayes_router.data.split import sample_questions
    assert sorted(got["question_id"].unique()) == sorted(sample_questions(cached, MODELS, 50, 0))


def test_rerun_skips_answered_pairs(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path) as srv:
        _collect(srv.base_url, log_path, tmp_path / "s", prices, n=10)
        same = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=10)
        more = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=12)
        stats = srv.stats()
    from bayes_router.data.split import sample_questions
    cached = load_call_log(log_path)
    first, second = (set(sample_questions(cached, MODELS, n, 0)) for n in (10, 12))
    assert (same.already_answered, same.answered) == (30, 0)
    assert (more.already_answered, more.answered) == (3 * len(first & second), 3 * len(second - first))
    assert max(p["requests"] for p in stats["pairs"]) == 1 and len(stats["pairs"]) == 3 * len(first | second)


def test_streaming_records_ttft_and_usage_cost_wins_over_the_price_table(sim, tmp_path):
    log_path, prices = sim
    doubled = tmp_path / "prices.csv"
    table = pd.read_csv(prices)
    table[["usd_per_m_input", "usd_per_m_output"]] *= 2
    table.to_csv(doubled, index=False)
    with ReplayServer(log_path, Faults(report_cost=True)) as srv:
        _collect(srv.base_url, log_path, tmp_path / "s", doubled, n=8, client_options={"stream": True})
    with CallStore(tmp_path / "s") as store:
        calls = store.calls()
    assert (calls["cost_source"] == "usage").all() and calls["ttft_s"].between(0, 10).all()
    assert (calls["ttft_s"] <= calls["latency_s"]).all()
    got, _ = export_call_log(tmp_path / "s", tmp_path / "live.parquet")
    m = got.merge(load_call_log(log_path), on=["question_id", "model"], suffixes=("", "_log"))
    np.testing.assert_allclose(m["cost_usd"], m["cost_usd_log"], rtol=1e-12)  # usage.cost, not 2x prices
    assert "ttft_s" in load_call_log(tmp_path / "live.parquet")


def test_429s_and_500s_are_retried_with_visible_backoff(sim, tmp_path):
    log_path, prices = sim
    faults = Faults(share_429=0.2, retry_after_s=0.05, share_500=0.05, seed=2)
    with ReplayServer(log_path, faults) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, client_options={"max_retries": 8})
        stats = srv.stats()
    assert (res.answered, res.failed) == (150, 0)
    with CallStore(tmp_path / "s") as store:
        calls = store.calls()
    retries = (calls["attempts"] - 1).sum()
    assert retries == stats["faults"]["429"] + stats["faults"]["500"] >= 20  # every fault cost one retry
    retried = calls[calls["attempts"] > 1]
    # equal jitter: attempt k+1 waits at least 0.01 * 2**(k-1) s, a 429 at least its Retry-After (0.05 s)
    floor = 0.01 * (2 ** (retried["attempts"] - 1) - 1)
    assert (retried["backoff_s"] >= floor - 1e-9).all() and (calls.loc[calls["attempts"] == 1, "backoff_s"] == 0).all()
    assert retried["backoff_s"].median() >= 0.05


def test_malformed_responses_are_stored_unparsed_with_the_raw_text(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path, Faults(share_malformed=0.3, seed=4)) as srv:
        _collect(srv.base_url, log_path, tmp_path / "s", prices, n=20)
        again = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=20)
        n_malformed = srv.stats()["faults"]["malformed"]
    assert again.answered == 0  # a malformed answer is a finished (billed) call: not asked again
    with CallStore(tmp_path / "s") as store:
        bad = store.calls()
    bad = bad[bad["tokens_estimated"] == 1]  # no usage: the body could not be read
    assert len(bad) == n_malformed >= 5
    assert bad["pred"].isna().all() and (bad["parse"] == "none").all()
    assert bad["raw_response"].str.startswith('{"id": "replay-').all()
    assert not bad["raw_response"].str.endswith("}").any()  # the cut body itself, not a re-serialisation
    got, _ = export_call_log(tmp_path / "s", tmp_path / "live.parquet")
    assert (~got["parsed"]).sum() >= n_malformed


def test_failed_calls_are_recorded_not_counted_and_retried_next_run(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path, Faults(share_500=1.0)) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=4, client_options={"max_retries": 1})
    assert (res.answered, res.failed, res.remaining) == (0, 12, 12)
    with CallStore(tmp_path / "s") as store:
        failed = store.calls("failed")
        assert store.answered_pairs() == set() and len(store.failures()) == 12
    assert failed["error"].str.contains("HTTP 500").all() and (failed["attempts"] == 2).all()
    with pytest.raises(ValueError, match="no answered call"):
        export_call_log(tmp_path / "s", tmp_path / "x.parquet")
    with ReplayServer(log_path) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=4)
    assert (res.answered, res.failed, res.remaining) == (12, 0, 0)
    with CallStore(tmp_path / "s") as store:
        assert (store.calls()["status"] == "answered").all()


def test_budget_stops_cleanly_and_a_rerun_continues(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, max_usd=0.004, concurrency=2)
        assert res.stopped_by_budget and 0 < res.answered < 150 and res.spent_usd <= 0.004
        more = _collect(srv.base_url, log_path, tmp_path / "s", prices, max_usd=1.0)
    assert more.already_answered == res.answered and more.remaining == 0


def test_a_store_is_bound_to_one_endpoint(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path) as srv:
        _collect(srv.base_url, log_path, tmp_path / "s", prices, n=2)
    with pytest.raises(ValueError, match="holds calls to"):
        _collect("http://example.invalid/v1", log_path, tmp_path / "s", prices, n=2)


def test_replay_study_summaries_agree_with_the_store_and_the_server(sim, tmp_path):
    from bayes_router.live import replay_study as rs

    log_path, prices = sim
    with ReplayServer(log_path, Faults(share_429=0.25, retry_after_s=0.01, seed=5)) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=10)
        n_429 = srv.stats()["faults"]["429"]
    stats, timeline = rs.collection_stats(tmp_path / "s"), rs.spend_timeline(tmp_path / "s")
    assert stats["answered"] == 30 and stats["retries"] == n_429 > 0 and stats["backoff_s"] >= 0.01 * n_429
    assert timeline["cumulative_usd"].is_monotonic_increasing and len(timeline) == 30
    assert timeline["cumulative_usd"].iloc[-1] == pytest.approx(stats["spent_usd"])
    assert stats["spent_usd"] == pytest.approx(res.spent_usd)
    live, _ = export_call_log(tmp_path / "s", tmp_path / "live.parquet")
    match = rs.compare_with_replayed(live, load_call_log(log_path))
    assert match["same_letter"] == match["same_completion_tokens"] == 1.0 and match["max_abs_cost_diff_usd"] < 1e-12
    tampered = live.assign(pred=live["pred"].where(live.index != 0, "Z"))
    assert rs.compare_with_replayed(tampered, load_call_log(log_path))["same_letter"] == pytest.approx(29 / 30)

    class ConstantModel:  # P(correct) = 0.25 for every call and draw
        models = ["big", "small", "mid"]

        def p_correct(self, calls, n_draws):
            return xr.DataArray(np.full((n_draws, len(calls)), 0.25), dims=("draw", "call"))

    acc = rs.held_out_accuracy(ConstantModel(), live, n_draws=20, models=MODELS)
    assert acc["model"].tolist() == MODELS and np.allclose(acc["predicted_mean"], 0.25)
    observed = live.groupby("model")["correct"].mean()
    assert np.allclose(acc["observed"], observed.reindex(MODELS)) and (acc["n"] == 10).all()


def test_a_call_slower_than_the_timeout_fails_with_its_reason(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path, Faults(share_slow=1.0, slow_s=3.0)) as srv:
        t0 = time.perf_counter()
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=2,
                       client_options={"timeout_s": 0.2, "max_retries": 1})
        took = time.perf_counter() - t0
    assert (res.answered, res.failed) == (0, 6) and took < 3.0  # the client gave up, it did not wait
    with CallStore(tmp_path / "s") as store:
        assert store.calls("failed")["error"].str.contains("timeout after 0.2 s").all()


def test_endpoint_without_json_mode_falls_back_to_the_text_parse(sim, tmp_path):
    """An endpoint that refuses response_format: the call is repeated without it and read from prose."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from bayes_router.live.replay import BackgroundServer

    log_path, prices = sim
    seen = []

    async def chat(request):
        body = await request.json()
        seen.append("response_format" in body)
        if "response_format" in body:
            return JSONResponse({"error": {"message": "response_format is not supported"}}, status_code=400)
        text = "Step by step... so the answer is (B).\nConfidence: 70%"
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": text}}]})  # no usage

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with BackgroundServer(app) as srv:
        res = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=2, concurrency=1)
    assert res.answered == 6 and seen[:2] == [True, False] and sum(seen) == 3  # one refusal per model
    with CallStore(tmp_path / "s") as store:
        calls = store.calls()
    assert (calls["pred"] == "B").all() and np.allclose(calls["confidence"], 0.7) and (calls["parse"] == "text").all()
    assert (calls["tokens_estimated"] == 1).all() and (calls["cost_source"] == "price_table").all()
    assert (calls["prompt_tokens"] > 20).all() and (calls["completion_tokens"] > 5).all()


def test_logprobs_become_mean_token_prob(sim, tmp_path):
    log_path, prices = sim
    log = load_call_log(log_path)
    log["mean_token_prob"] = np.linspace(0.2, 0.9, len(log))
    from bayes_router.data.io import write_call_log

    path = write_call_log(log, tmp_path / "with_mtp.parquet", questions=load_questions(log_path))
    with ReplayServer(path) as srv:
        _collect(srv.base_url, path, tmp_path / "s", prices, n=5, client_options={"logprobs": True})
    got, _ = export_call_log(tmp_path / "s", tmp_path / "live.parquet")
    m = got.merge(log, on=["question_id", "model"], suffixes=("", "_log"))
    np.testing.assert_allclose(m["mean_token_prob"], m["mean_token_prob_log"], rtol=1e-9)
    assert "mean_token_prob" in load_call_log(tmp_path / "live.parquet")


def test_a_refused_key_stops_the_run_without_recording_failures(sim, tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from bayes_router.live.client import EndpointRefused
    from bayes_router.live.replay import BackgroundServer

    log_path, prices = sim
    hits = []

    async def chat(request):
        hits.append(1)
        return JSONResponse({"error": {"message": "Incorrect API key provided"}}, status_code=401)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with BackgroundServer(app) as srv, pytest.raises(EndpointRefused, match="HTTP 401.*refused the API key"):
        _collect(srv.base_url, log_path, tmp_path / "s", prices, n=20, concurrency=2)
    assert len(hits) <= 2  # the workers stopped at the first refusal, they did not try all 60 pairs
    with CallStore(tmp_path / "s") as store:
        assert len(store.calls()) == 0


def test_dry_run_estimates_without_calling_or_writing(sim, tmp_path):
    log_path, prices = sim
    with ReplayServer(log_path) as srv:
        dry = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=10, dry_run=True)
        assert not (tmp_path / "s").exists() and srv.stats()["total_requests"] == 0
        real = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=10)
        again = _collect(srv.base_url, log_path, tmp_path / "s", prices, n=12, dry_run=True)
    assert dry.estimated_usd == pytest.approx(real.estimated_usd) and dry.estimated_usd > 0
    assert dry.worst_case_usd > dry.estimated_usd and dry.remaining == 30
    assert again.remaining == 36 - again.already_answered and again.estimated_usd < dry.estimated_usd
