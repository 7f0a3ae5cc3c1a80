"""Import the public MMLU-Pro evaluation outputs into a call log.

The published files (``model_outputs_<MODEL>_5shots.zip`` or ``.json``) hold one
JSON list per model with one record per question. Real quirks handled here:

- entries that are not records (the DeepSeek-Coder-V2 file holds 43 bare
  strings) are skipped and counted in a warning;
- some files cover fewer questions (DeepSeek-Coder-V2 10,351;
  gemini-1.5-flash-002 12,012); nothing is imputed for the missing ones;
- ``question_id`` and ``answer_index`` may be strings, ``options`` may be a
  list or the string form of a Python list;
- ``pred`` is null where the evaluator could not extract a letter: such a call
  is ``parsed = False`` and ``correct = False``;
- the response text is under ``generated_text`` or ``model_outputs``.

Tokens and cost: see :mod:`bayes_router.data.tokens` for the counting rule and
:func:`bayes_router.data.prices.call_cost_usd` for the price arithmetic.
"""

from __future__ import annotations

import ast
import json
import os
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.prices import call_cost_usd, load_prices, price_of
from bayes_router.data.schema import validate_call_log
from bayes_router.data.tokens import DEFAULT_FEW_SHOT_OVERHEAD, count_tokens, format_question
from bayes_router.errors import InputError

LOG_SOURCE = "mmlu-pro-eval-results"
REQUIRED_FIELDS = ("question_id", "question", "options", "answer", "category", "src", "pred")
RESPONSE_FIELDS = ("generated_text", "model_outputs")
_NAME_RE = re.compile(r"^model_outputs_(?P<model>.+?)(?:_\d+shots?)?\.(?:zip|json)$")


class ImportWarning_(UserWarning):
    """Warnings about skipped entries in an imported file."""


@dataclass
class ModelFile:
    path: Path
    model: str


def model_name_from_path(path: Path) -> str:
    """``model_outputs_Yi-6B_5shots.zip`` -> ``Yi-6B``; other names keep their stem."""
    m = _NAME_RE.match(path.name)
    return m.group("model") if m else path.stem


def discover_files(src: str | os.PathLike) -> list[ModelFile]:
    """The model-output files in ``src`` (a folder or one file), sorted by model."""
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_file():
        if src.suffix.lower() not in (".zip", ".json"):
            raise InputError(f"{src}: not a .zip or .json file")
        files = [src]
    else:
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".zip", ".json"))
        if not files:
            raise InputError(f"{src}: folder holds no .zip or .json model-output files")
    out = [ModelFile(p, model_name_from_path(p)) for p in files]
    seen: dict[str, Path] = {}
    for f in out:
        if f.model in seen:
            raise InputError(f"{f.path}: model '{f.model}' is also in {seen[f.model]}")
        seen[f.model] = f.path
    return out


def _read_json_bytes(path: Path) -> bytes:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return path.read_bytes()
    if suffix != ".zip":
        raise InputError(f"{path}: not a .zip or .json file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".json") and not n.startswith("__MACOSX")]
            if len(names) != 1:
                raise InputError(f"{path}: expected one .json file in the zip, found {len(names)}")
            return zf.read(names[0])
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        # BadZipFile: bad header or CRC; zlib.error / EOFError: a damaged or cut compressed body
        raise InputError(f"{path}: not a valid zip file (corrupt or truncated: {exc})") from None


def read_records(path: Path) -> tuple[list[dict], int]:
    """The records of one file, and how many non-record entries were skipped."""
    raw = _read_json_bytes(path)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of records, got a {type(data).__name__}")
    records = [r for r in data if isinstance(r, dict)]
    skipped = len(data) - len(records)
    if not records:
        raise InputError(f"{path}: no records (JSON objects) in the list")
    for i, rec in enumerate(records):
        missing = [f for f in REQUIRED_FIELDS if f not in rec]
        if missing:
            raise InputError(
                f"{path}: record {i} (question_id={rec.get('question_id')!r}) lacks field(s) {missing}"
            )
    return records, skipped


def _options(value, path: Path, qid) -> list[str]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise InputError(f"{path}: question {qid}: 'options' is not a list") from None
    if not isinstance(value, list | tuple):
        raise InputError(f"{path}: question {qid}: 'options' is not a list")
    return [str(v) for v in value]


def _frame_from_records(records: list[dict], path: Path, model: str) -> tuple[pd.DataFrame, list[str]]:
    rows = []
    responses = []
    for rec in records:
        qid_raw = rec["question_id"]
        try:
            qid = int(qid_raw)
        except (TypeError, ValueError):
            raise InputError(f"{path}: question_id {qid_raw!r} is not an integer") from None
        opts = _options(rec["options"], path, qid)
        answer = rec["answer"]
        if not isinstance(answer, str) or not answer:
            raise InputError(f"{path}: question {qid}: 'answer' is not a letter ({answer!r})")
        pred = rec["pred"]
        pred = None if pred in (None, "") else str(pred)
        response = next((rec[f] for f in RESPONSE_FIELDS if rec.get(f) is not None), "")
        text = format_question(str(rec["question"]), opts)
        rows.append(
            (qid, model, str(rec["category"]), str(rec["src"]), len(str(rec["question"])) + sum(map(len, opts)),
             len(opts), answer, pred, text)
        )
        responses.append(response if isinstance(response, str) else str(response))
    df = pd.DataFrame(
        rows,
        columns=["question_id", "model", "subject", "source", "question_chars", "n_options", "answer", "pred", "_text"],
    )
    return df, responses


def import_mmlu_pro(
    src: str | os.PathLike,
    prices: str | os.PathLike | pd.DataFrame | None = None,
    few_shot_overhead: int = DEFAULT_FEW_SHOT_OVERHEAD,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read MMLU-Pro output files into (call log, question texts).

    ``src``: a folder of ``model_outputs_*.zip``/``.json`` files, or one file.
    ``prices``: a price table path or frame (default ``data/prices.csv``); a model
    missing from it is refused. ``few_shot_overhead``: tokens added to every
    prompt for the 5-shot prefix the files do not hold (see :mod:`tokens`).
    Returns the validated call log and a table (question_id, subject, text).
    """
    if few_shot_overhead < 0:
        raise InputError(f"few_shot_overhead must be >= 0, got {few_shot_overhead}")
    table = prices if isinstance(prices, pd.DataFrame) else load_prices(prices)
    files = discover_files(src)
    for f in files:  # refuse unknown models before reading anything
        price_of(table, f.model, where=str(f.path))
    iterator = files
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(files, desc="importing", unit="file")
    frames = []
    for f in iterator:
        records, skipped = read_records(f.path)
        if skipped:
            warnings.warn(f"{f.path}: skipped {skipped} entries that are not records", ImportWarning_, stacklevel=2)
        df, responses = _frame_from_records(records, f.path, f.model)
        dup = df.duplicated("question_id", keep=False)
        if dup.any():
            ex = df.loc[dup, "question_id"].head(5).tolist()
            raise InputError(f"{f.path}: column 'question_id': duplicate (question_id, model) records, e.g. {ex}")
        df["completion_tokens"] = count_tokens(responses)
        usd_in, usd_out = price_of(table, f.model)
        df["_usd_in"], df["_usd_out"] = usd_in, usd_out
        frames.append(df)
    log = pd.concat(frames, ignore_index=True)

    # The question text is the same for every model: count its tokens once.
    questions = log.drop_duplicates("question_id")[["question_id", "subject", "_text"]].rename(columns={"_text": "text"})
    q_tokens = pd.Series(count_tokens(questions["text"].tolist()), index=questions["question_id"].to_numpy())
    log["prompt_tokens"] = q_tokens.reindex(log["question_id"]).to_numpy().astype(np.int64) + int(few_shot_overhead)
    log["parsed"] = log["pred"].notna()
    log["correct"] = (log["pred"] == log["answer"]).fillna(False).astype(bool)
    log["cost_usd"] = call_cost_usd(log["prompt_tokens"], log["completion_tokens"], log["_usd_in"], log["_usd_out"])
    log["confidence"] = np.nan
    log["latency_s"] = np.nan
    log["log_source"] = LOG_SOURCE
    log = log.sort_values(["model", "question_id"], kind="stable")
    log = validate_call_log(log, where=str(src))
    return log, questions.sort_values("question_id").reset_index(drop=True)
