"""The collection store as a call log in the contract's schema (``log_source = "live"``).

One row per answered (question, model) call; failed calls are not in the log (they are
retried by the next collection). The question texts go beside the log
(``LOG.questions.parquet``) as for every other log. The optional columns
``mean_token_prob`` and ``ttft_s`` are added only where some call has a real value.

The parquet file's key-value metadata ``bayes_router`` holds JSON: the endpoint (no
credentials), the first and last call's date (UTC), how many calls had their tokens
estimated (the server gave no usage) or their cost from the price table, the failed pairs
left out, and, when the endpoint said it was a replay, which log it replayed
(``replay_of``, e.g. "simulated"): a replayed log is not new evidence about any model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from bayes_router.data.io import atomic_path, questions_path
from bayes_router.data.schema import validate_call_log
from bayes_router.errors import InputError, SchemaError
from bayes_router.live.store import CallStore

LOG_SOURCE = "live"
METADATA_KEY = b"bayes_router"
OPTIONAL_LIVE_COLUMNS = ("mean_token_prob", "ttft_s")


def store_call_log(store_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(call log, question texts, metadata) of the answered calls in the store ``store_dir``."""
    with CallStore(store_dir, create=False) as store:
        calls, questions, meta = store.calls("answered"), store.questions(), store.meta()
        n_failed = len(store.calls("failed"))
    if calls.empty:
        raise InputError(f"{store_dir}: the store holds no answered call yet")
    df = calls.merge(questions, on="question_id", how="left", validate="many_to_one")
    lost = df["answer"].isna()
    if lost.any():
        raise SchemaError(f"{store_dir}: calls for questions the store does not describe: "
                          f"{df.loc[lost, 'question_id'].head(5).tolist()}")
    df["parsed"] = df["pred"].notna()
    df["correct"] = (df["pred"] == df["answer"]).fillna(False).astype(bool)
    df["log_source"] = LOG_SOURCE
    for col in ("confidence", "latency_s", "cost_usd"):
        df[col] = df[col].astype("float64")
    keep = [c for c in OPTIONAL_LIVE_COLUMNS if df[c].notna().any()]  # only real values, never a null column
    df = df.drop(columns=[c for c in OPTIONAL_LIVE_COLUMNS if c not in keep])
    for col in keep:
        df[col] = df[col].astype("float64")
    log = validate_call_log(df, where=str(store_dir))
    replay = sorted({r for r in calls["replay_of"].dropna()})
    info = {
        "log_source": LOG_SOURCE,
        "endpoint": meta.get("endpoint"),
        "first_call_utc": str(calls["finished_at"].min()),
        "last_call_utc": str(calls["finished_at"].max()),
        "calls": int(len(log)),
        "tokens_estimated_calls": int(calls["tokens_estimated"].sum()),
        "cost_from_price_table_calls": int((calls["cost_source"] == "price_table").sum()),
        "failed_pairs_left_out": n_failed,
        "replay_of": ",".join(replay) if replay else None,
    }
    texts = questions[questions["question_id"].isin(log["question_id"])][["question_id", "subject", "text"]]
    return log, texts.reset_index(drop=True), info


def export_call_log(store_dir: str | os.PathLike, out: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """Write the store's call log to ``out`` (and its question texts beside it), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    log, texts, info = store_call_log(store_dir)
    out = Path(out)
    table = pa.Table.from_pandas(log, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(info).encode()})
    with atomic_path(questions_path(out)) as qtmp, atomic_path(out) as tmp:
        texts.to_parquet(qtmp, index=False)
        pq.write_table(table, tmp)
    return log, info


def read_live_metadata(path: str | os.PathLike) -> dict:
    """The ``bayes_router`` metadata of an exported log (empty if none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}
