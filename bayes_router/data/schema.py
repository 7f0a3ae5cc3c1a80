"""The call-log schema as code: one row per (question, model) call.

Every reader and writer of call logs goes through :func:`validate_call_log`, so a
log that breaks the call-log schema (:data:`CALL_LOG_COLUMNS`) is refused with an error naming the
file, the column and a few offending rows, before anything is written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_router.errors import SchemaError

#: column -> (pandas dtype written to disk, nullable)
CALL_LOG_SCHEMA: dict[str, tuple[str, bool]] = {
    "question_id": ("int64", False),
    "model": ("string", False),
    "subject": ("string", False),
    "source": ("string", False),
    "question_chars": ("int64", False),
    "n_options": ("int64", False),
    "answer": ("string", False),
    "pred": ("string", True),
    "parsed": ("bool", False),
    "correct": ("bool", False),
    "prompt_tokens": ("int64", False),
    "completion_tokens": ("int64", False),
    "cost_usd": ("float64", False),
    "confidence": ("float64", True),
    "latency_s": ("float64", True),
    "log_source": ("string", False),
}
CALL_LOG_COLUMNS: list[str] = list(CALL_LOG_SCHEMA)
#: Columns that may be entirely null in a log (a log "does not hold" them).
OPTIONAL_COVARIATES: tuple[str, ...] = ("confidence", "latency_s")
#: Optional columns: a log may hold them or not; when present they are kept and checked
#: (float64, nullable; the [0, 1] ones are probabilities or scores, ttft_s is seconds).
OPTIONAL_COLUMNS: dict[str, tuple[str, bool]] = {
    "mean_token_prob": ("float64", True),
    "decisiveness": ("float64", True),
    "ttft_s": ("float64", True),
}
_UNIT_INTERVAL = ("confidence", "mean_token_prob", "decisiveness")

_MAX_EXAMPLES = 5


def _fail(where: str, column: str, problem: str, rows: pd.DataFrame | None = None) -> None:
    msg = f"{where}: column '{column}': {problem}"
    if rows is not None and len(rows):
        cols = [c for c in dict.fromkeys(("question_id", "model", column)) if c in rows.columns]
        shown = rows[cols].head(_MAX_EXAMPLES).to_dict("records")
        msg += f" ({len(rows)} rows; e.g. {shown})"
    raise SchemaError(msg)


def _kind_ok(series: pd.Series, dtype: str) -> bool:
    s = series
    if dtype == "int64":
        return pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if dtype == "float64":
        return pd.api.types.is_float_dtype(s) or (
            pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s)
        )
    if dtype == "bool":
        return pd.api.types.is_bool_dtype(s)
    if dtype == "string":
        if pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype):
            non_null = s.dropna()
            return bool(non_null.map(lambda v: isinstance(v, str)).all())
        return False
    raise AssertionError(dtype)


def validate_call_log(df: pd.DataFrame, where: str = "<call log>") -> pd.DataFrame:
    """Check ``df`` against the call-log schema and return it with canonical dtypes.

    Optional columns (:data:`OPTIONAL_COLUMNS`) are kept when present, else left out.
    ``where`` names the file (or origin) in error messages. Raises
    :class:`SchemaError` on a missing column, a wrong type, nulls in a
    non-nullable column, a duplicate (question_id, model), confidence outside
    [0, 1], negative tokens, cost or latency, or ``parsed``/``correct`` that
    disagree with ``pred`` and ``answer``.
    """
    if not isinstance(df, pd.DataFrame):
        raise SchemaError(f"{where}: expected a table, got {type(df).__name__}")
    missing = [c for c in CALL_LOG_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: column '{missing[0]}': missing (all missing: {missing})")
    for col, (dtype, nullable) in CALL_LOG_SCHEMA.items():
        s = df[col]
        if not nullable and s.isna().any():
            _fail(where, col, "null values in a non-nullable column", df[s.isna()])
        if s.notna().any() and not _kind_ok(s.dropna() if dtype != "bool" else s, dtype):
            _fail(where, col, f"expected {dtype}, got {s.dtype}")
    optional = [c for c in OPTIONAL_COLUMNS if c in df.columns]
    for col in optional:
        if df[col].notna().any() and not _kind_ok(df[col].dropna(), "float64"):
            _fail(where, col, f"expected float64, got {df[col].dtype}")
    out = df[CALL_LOG_COLUMNS + optional].copy()
    for col in optional:
        out[col] = out[col].astype("float64")
    for col, (dtype, _) in CALL_LOG_SCHEMA.items():
        if dtype == "string":
            out[col] = out[col].astype("string")
        elif dtype == "float64":
            out[col] = out[col].astype("float64")
        elif dtype == "int64":
            out[col] = out[col].astype("int64")
        else:
            out[col] = out[col].astype(bool)

    dup = out.duplicated(["question_id", "model"], keep=False)
    if dup.any():
        _fail(where, "question_id", "duplicate (question_id, model) pairs", out[dup])
    for col in (c for c in _UNIT_INTERVAL if c in out.columns):
        v = out[col]
        bad = v.notna() & ((v < 0) | (v > 1))
        if bad.any():
            _fail(where, col, "values outside [0, 1]", out[bad])
    for col in ("prompt_tokens", "completion_tokens", "question_chars", "cost_usd", "latency_s",
                *(c for c in ("ttft_s",) if c in out.columns)):
        v = out[col]
        bad = v.notna() & (v < 0)
        if bad.any():
            _fail(where, col, "negative values", out[bad])
    for col in ("cost_usd", "confidence", "latency_s", *optional):
        v = out[col].to_numpy(dtype=float, na_value=np.nan)
        bad = np.isinf(v)
        if bad.any():
            _fail(where, col, "infinite values", out[bad])
    bad = out["n_options"] < 1
    if bad.any():
        _fail(where, "n_options", "must be at least 1", out[bad])
    bad = out["parsed"].to_numpy() != out["pred"].notna().to_numpy()
    if bad.any():
        _fail(where, "parsed", "must equal (pred is not null)", out[bad])
    expect = (out["pred"] == out["answer"]).fillna(False).to_numpy(dtype=bool)
    bad = out["correct"].to_numpy() != expect
    if bad.any():
        _fail(where, "correct", "must equal (pred == answer)", out[bad])
    return out.reset_index(drop=True)


def covariates_present(df: pd.DataFrame) -> dict[str, bool]:
    """Which optional covariates (confidence, latency) the log actually holds."""
    return {c: bool(df[c].notna().any()) for c in OPTIONAL_COVARIATES}
