"""Reading and writing call logs and other outputs, atomically.

Outputs are written to a temporary file in the target folder and renamed into
place, so a refused or interrupted run never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.schema import validate_call_log
from bayes_router.errors import InputError, SchemaError

#: Question texts live beside the log (not in it, so the log keeps the schema's
#: columns exactly): ``LOG.parquet`` -> ``LOG.questions.parquet`` with columns
#: question_id (int64), subject (string), text (question plus lettered options).
QUESTIONS_SUFFIX = ".questions.parquet"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def read_csv_input(path: str | os.PathLike, what: str, **read_csv_kwargs) -> pd.DataFrame:
    """Read a user's CSV input (``what`` names it in errors): a missing or unreadable file is one
    :class:`InputError` naming the path, never a pandas traceback."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such {what}")
    try:
        return pd.read_csv(path, **read_csv_kwargs)
    except Exception as exc:  # pandas raises several types for unreadable text
        raise InputError(f"{path}: not a readable CSV ({exc.__class__.__name__}: {exc})") from None


def jsonable(obj):
    """``obj`` with NumPy scalars and arrays as Python values, NaN and infinities as None, tuples as
    lists and keys as strings, so it can be written as strict JSON; anything else is written as its
    text, with a warning."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    warnings.warn(f"not JSON-serializable, written as text: {obj!r}", stacklevel=2)
    return str(obj)


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    return atomic_write(path, lambda p: p.write_text(text + "\n"))


def questions_path(log_path: str | os.PathLike) -> Path:
    p = Path(log_path)
    name = p.name[: -len(".parquet")] if p.name.endswith(".parquet") else p.name
    return p.with_name(name + QUESTIONS_SUFFIX)


def write_call_log(
    df: pd.DataFrame, path: str | os.PathLike, questions: pd.DataFrame | None = None
) -> Path:
    """Validate and write a call log (and its question texts, if given) atomically."""
    path = Path(path)
    log = validate_call_log(df, where=str(path))
    if questions is not None:
        questions = _validate_questions(questions, where=str(questions_path(path)))
        with atomic_path(questions_path(path)) as qtmp, atomic_path(path) as tmp:
            questions.to_parquet(qtmp, index=False)
            log.to_parquet(tmp, index=False)
    else:
        atomic_write(path, lambda p: log.to_parquet(p, index=False))
    return path


def load_call_log(path: str | os.PathLike) -> pd.DataFrame:
    """Read a call log from Parquet and validate it against the schema."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such call log")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many kinds
        raise InputError(f"{path}: not a readable Parquet file ({exc.__class__.__name__}: {exc})") from None
    return validate_call_log(df, where=str(path))


def _validate_questions(q: pd.DataFrame, where: str) -> pd.DataFrame:
    for col in ("question_id", "subject", "text"):
        if col not in q.columns:
            raise SchemaError(f"{where}: column '{col}': missing")
    q = q[["question_id", "subject", "text"]].copy()
    q["question_id"] = q["question_id"].astype("int64")
    q["subject"] = q["subject"].astype("string")
    q["text"] = q["text"].astype("string")
    dup = q.duplicated("question_id", keep=False)
    if dup.any():
        ex = q.loc[dup, "question_id"].head(5).tolist()
        raise SchemaError(f"{where}: column 'question_id': duplicate questions, e.g. {ex}")
    return q.reset_index(drop=True)


def load_questions(log_path: str | os.PathLike) -> pd.DataFrame:
    """Read the question texts stored beside a call log (needed by text-based routers)."""
    qp = questions_path(log_path)
    if not qp.exists():
        raise InputError(
            f"{qp}: question texts not found beside {log_path} "
            "(text-based routers need them; import-mmlu-pro and simulate write them)"
        )
    try:
        frame = pd.read_parquet(qp)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{qp}: not a readable Parquet file ({exc.__class__.__name__}: {exc})") from None
    return _validate_questions(frame, where=str(qp))
