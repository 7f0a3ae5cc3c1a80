"""A collection end to end against the replay server: what notebook 08 shows, as tested functions.

* :func:`spend_timeline`: the calls in the order they were committed, with cumulative USD;
* :func:`collection_stats`: answered, failed, retries, seconds backing off, estimated tokens;
* :func:`compare_with_replayed`: does the collected log equal the log the server replayed?
* :func:`held_out_accuracy`: a fitted reliability model's predicted accuracy per model on
  held-out calls against the observed accuracy;
* :func:`plot_live_collection`: both as one figure (USD; probability).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.live.store import DB_NAME


def spend_timeline(store_dir: str | os.PathLike) -> pd.DataFrame:
    """Answered calls in commit order: call (1-based), model, cost_usd, cumulative_usd, attempts, backoff_s."""
    with sqlite3.connect(Path(store_dir) / DB_NAME) as conn:
        calls = pd.read_sql_query(
            "SELECT model, cost_usd, attempts, backoff_s, latency_s FROM calls WHERE status = 'answered' "
            "ORDER BY rowid", conn)
    calls.insert(0, "call", np.arange(1, len(calls) + 1))
    calls["cumulative_usd"] = calls["cost_usd"].cumsum()
    return calls


def collection_stats(store_dir: str | os.PathLike) -> dict:
    """Counts and seconds of a store: answered and failed pairs, retries, backoff, estimated tokens, USD."""
    with sqlite3.connect(Path(store_dir) / DB_NAME) as conn:
        calls = pd.read_sql_query("SELECT * FROM calls", conn)
        n_fail_events = conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
    ok = calls[calls["status"] == "answered"]
    return {
        "answered": int(len(ok)), "failed_pairs": int((calls["status"] == "failed").sum()),
        "failure_events": int(n_fail_events), "retries": int((ok["attempts"] - 1).sum()),
        "backoff_s": float(ok["backoff_s"].sum()), "unparsed": int(ok["pred"].isna().sum()),
        "tokens_estimated": int(ok["tokens_estimated"].sum()), "spent_usd": float(ok["cost_usd"].sum()),
        "median_latency_s": float(ok["latency_s"].median()) if len(ok) else None,
    }


def compare_with_replayed(live: pd.DataFrame, cached: pd.DataFrame) -> dict:
    """Shares of the live calls whose letter, prompt and completion tokens equal the replayed log's,
    and the largest absolute cost difference (USD)."""
    m = live.merge(cached, on=["question_id", "model"], suffixes=("", "_log"), how="left", validate="one_to_one")
    return {
        "calls": int(len(m)),
        "in_replayed_log": float(m["answer_log"].notna().mean()),
        "same_letter": float((m["pred"].fillna("-") == m["pred_log"].fillna("-")).mean()),
        "same_prompt_tokens": float((m["prompt_tokens"] == m["prompt_tokens_log"]).mean()),
        "same_completion_tokens": float((m["completion_tokens"] == m["completion_tokens_log"]).mean()),
        "max_abs_cost_diff_usd": float((m["cost_usd"] - m["cost_usd_log"]).abs().max()),
    }


def held_out_accuracy(rm, test_log: pd.DataFrame, n_draws: int = 400, prob: float = 0.9,
                      models: list[str] | None = None) -> pd.DataFrame:
    """Per model (in the order of ``models``, default ``rm.models``): n, observed accuracy, and the posterior
    of the expected accuracy (mean, central ``prob`` interval) of the fitted reliability model ``rm`` on
    the held-out calls ``test_log``."""
    P = _p_correct_draws(rm, test_log, n_draws)  # (draws, calls)
    rows = []
    for model, idx in test_log.groupby("model", sort=False).indices.items():
        acc = P[:, idx].mean(axis=1)
        lo, hi = np.quantile(acc, [(1 - prob) / 2, (1 + prob) / 2])
        rows.append({"model": str(model), "n": len(idx), "observed": float(test_log["correct"].iloc[idx].mean()),
                     "predicted_mean": float(acc.mean()), "predicted_lo": float(lo), "predicted_hi": float(hi)})
    order = {m: i for i, m in enumerate(models if models is not None else getattr(rm, "models", []))}
    out = pd.DataFrame(rows)
    return out.sort_values("model", key=lambda s: s.map(order).fillna(len(order)), kind="stable", ignore_index=True)


def _p_correct_draws(rm, calls: pd.DataFrame, n_draws: int) -> np.ndarray:
    """Posterior draws of P(correct), shape (draws, calls), from the model's labelled ``p_correct``."""
    return np.asarray(rm.p_correct(calls.reset_index(drop=True), n_draws=n_draws).values, dtype=float)


def plot_live_collection(timeline: pd.DataFrame, accuracy: pd.DataFrame, estimated_usd: float | None = None,
                         axes=None):
    """(a) cumulative spend (USD) against calls answered; (b) held-out accuracy, observed and predicted."""
    import matplotlib.pyplot as plt

    if axes is None:
        axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)[1]
    ax = axes[0]
    ax.plot(timeline["call"], timeline["cumulative_usd"], lw=1.5, label="spent (usage, else price table)")
    if estimated_usd is not None:
        ax.axhline(estimated_usd, ls="--", color="grey", label="estimated before the run (price table)")
    ax.set_xlabel("calls answered (commit order)")
    ax.set_ylabel("cumulative spend (USD)")
    ax.legend(fontsize=8)
    ax = axes[1]
    x = np.arange(len(accuracy))
    err = [accuracy["predicted_mean"] - accuracy["predicted_lo"], accuracy["predicted_hi"] - accuracy["predicted_mean"]]
    ax.errorbar(x - 0.08, accuracy["predicted_mean"], yerr=err, fmt="o", capsize=3,
                label="post-call model: expected accuracy (90% interval)")
    ax.plot(x + 0.08, accuracy["observed"], "s", color="black", label="observed")
    ax.set_xticks(x, accuracy["model"], rotation=15, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy on held-out questions (probability)")
    ax.legend(fontsize=8)
    return axes
