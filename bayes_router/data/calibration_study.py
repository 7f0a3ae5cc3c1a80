"""Import the public LLM calibration study's MMLU-Pro results into a call log.

The study (GitHub Linwei94/LLM-Calibration-Study, ``results/``, MIT licence) asked
each model every MMLU-Pro test question once, zero-shot chain of thought, ending
with "Answer and Confidence (0-100)". One CSV per model,
``mmlu_pro_<MODEL>_eval_all_None.csv``, one row per question, with no question
id, no question text, no prompt tokens and no price. What this importer assumes
and checks:

- **Row i is the i-th MMLU-Pro test question by ``question_id``** (the study
  groups the test set by category in the dataset's order, which is id order).
  A file whose row count or category sequence differs from the questions of
  ``questions`` (QSRC) is refused; so is a file whose rows are not in position
  order (its first, unnamed column), and one whose key letter names an option the
  question does not have (the sign of a misaligned row).
- **Question text, options and ``src``** come from QSRC: a folder of MMLU-Pro
  outputs (as for ``import-mmlu-pro``), or a call log's ``.questions.parquet``
  (with the log beside it for ``source``, ``question_chars`` and ``n_options``).
  The MMLU-Pro files do not all hold the same version of every question (16
  questions differ in options or text between files, some files holding a
  truncated one with 1 or 2 options); each question takes the version with the
  most options, then the one most files hold. (From a questions parquet the text
  is the one that log's importer kept.)
- **Answer key.** ``answer`` is the study's ``correct_answer`` (a revised key: it
  differs from the MMLU-Pro files' key on about 200 questions), ``pred`` its
  ``extracted_answer`` (empty: no parsable answer, ``parsed = False``), and
  ``correct = pred == answer``, as the study graded.
- **Signals.** ``confidence`` <- ``verbal_numerical_confidence`` (the stated
  0-100 confidence, stored by the study divided by 100: every file is on the
  0-1 scale), ``mean_token_prob`` <- ``logit_perplexity_confidence`` (mean token
  probability of the response; empty where the API gives no log-probabilities),
  ``decisiveness`` <- ``verbal_linguistic_confidence`` (a judge model's 0-1
  score). Empty stays null, never 0. A value outside [0, 1] is not a
  probability on the file's scale: where such values are rare (at most
  :data:`MAX_OUT_OF_RANGE_SHARE` of a column's values in a file) they are parse
  errors of the study (a confidence of 683 or 362880; a decisiveness of 47.975,
  the mean of a judge's 95 and 0.95) and become null, counted in a warning; more
  than that means the column is on another scale, and the file is refused.
- **Tokens.** ``completion_tokens`` <- ``token_length``: the response length in
  tokens of the Llama-4-Maverick tokenizer, as the study measured it (not each
  model's own billing). ``prompt_tokens`` is an **estimate**: the formatted
  question and options counted with tiktoken's ``cl100k_base`` exactly as for
  MMLU-Pro (:mod:`bayes_router.data.tokens`), plus
  :data:`STUDY_INSTRUCTION_TOKENS` for the study's fixed instruction text. So
  prompt and completion tokens are counted by two different tokenizers.
- **Cost**: tokens times the price table (default
  ``data/prices_calibration_study.csv``); a model missing from it is refused.

Every refusal is one error line naming the file, the column and a few rows, and
nothing is written.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_router.data.io import read_csv_input
from bayes_router.data.prices import (
    CALIBRATION_STUDY_PRICES,
    call_cost_usd,
    default_prices_path,
    load_prices,
    price_of,
)
from bayes_router.data.schema import validate_call_log
from bayes_router.data.tokens import count_tokens, format_question
from bayes_router.errors import InputError

LOG_SOURCE = "llm-calibration-study"
#: Columns every study file must hold (besides its first, unnamed row-position column).
REQUIRED_COLUMNS = (
    "category", "correct_answer", "extracted_answer", "verbal_numerical_confidence",
    "logit_perplexity_confidence", "verbal_linguistic_confidence", "token_length",
)
#: call-log column <- study column, each a value in [0, 1] or empty
SIGNALS = {
    "confidence": "verbal_numerical_confidence",
    "mean_token_prob": "logit_perplexity_confidence",
    "decisiveness": "verbal_linguistic_confidence",
}
#: cl100k_base tokens of the study's fixed instruction (its shared-sampling multiple-choice
#: template without the question, letters "A,B,...,J"; 6 fewer with 4 options). Added to every
#: prompt's question tokens: the prompt tokens are an estimate.
STUDY_INSTRUCTION_TOKENS = 149
#: Largest share of a signal column's non-empty values outside [0, 1] read as isolated parse
#: errors (made null). Measured on the 76 published files: at most 0.26% (decisiveness of
#: Phi-3.5-mini-instruct); more than 1% means another scale, and the file is refused.
MAX_OUT_OF_RANGE_SHARE = 0.01
_NAME_RE = re.compile(r"^mmlu_pro_(?P<model>.+)_eval_all_None\.csv$")
_LETTERS = "ABCDEFGHIJKLMNOP"


class StudyImportWarning(UserWarning):
    """Values of the study made null on import (parse errors of the study)."""


@dataclass
class StudyFile:
    path: Path
    model: str


def discover_study_files(src: str | os.PathLike) -> list[StudyFile]:
    """The study's ``mmlu_pro_<MODEL>_eval_all_None.csv`` files in ``src``, sorted by model.

    ``src``: a folder of them, the study's folder holding them in ``results/``, or one file.
    """
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file or folder")
    if src.is_file():
        paths = [src]
    else:
        paths = sorted(p for p in src.iterdir() if _NAME_RE.match(p.name))
        if not paths and (src / "results").is_dir():  # the study's own folder: its files are in results/
            paths = sorted(p for p in (src / "results").iterdir() if _NAME_RE.match(p.name))
        if not paths:
            raise InputError(f"{src}: folder holds no mmlu_pro_<MODEL>_eval_all_None.csv files")
    out = []
    for p in paths:
        m = _NAME_RE.match(p.name)
        if not m:
            raise InputError(f"{p}: not named mmlu_pro_<MODEL>_eval_all_None.csv (the model comes from the name)")
        out.append(StudyFile(p, m.group("model")))
    return out


# ----------------------------------------------------------------------------- questions


def load_study_questions(qsrc: str | os.PathLike) -> pd.DataFrame:
    """The MMLU-Pro test questions, sorted by ``question_id``: one row per question.

    ``qsrc``: a folder of MMLU-Pro outputs (or one such file), or a call log's
    ``LOG.questions.parquet`` (or ``LOG.parquet``) with both files side by side.
    Columns: question_id (int64), subject, source, question_chars, n_options, text
    (question and lettered options as :func:`~bayes_router.data.tokens.format_question` shows them).
    """
    qsrc = Path(qsrc)
    if not qsrc.exists():
        raise InputError(f"{qsrc}: no such file or folder (questions)")
    if qsrc.is_file() and qsrc.suffix.lower() == ".parquet":
        return _questions_from_parquet(qsrc)
    return _questions_from_mmlu_pro(qsrc)


def _questions_from_mmlu_pro(qsrc: Path) -> pd.DataFrame:
    from bayes_router.data.mmlu_pro import _options, discover_files, read_records

    versions: dict[int, Counter] = {}
    for f in discover_files(qsrc):
        records, _ = read_records(f.path)
        for rec in records:
            try:
                qid = int(rec["question_id"])
            except (TypeError, ValueError):
                raise InputError(f"{f.path}: question_id {rec['question_id']!r} is not an integer") from None
            key = (str(rec["category"]), str(rec["src"]), str(rec["question"]), tuple(_options(rec["options"], f.path, qid)))
            versions.setdefault(qid, Counter())[key] += 1
    rows = []
    for qid in sorted(versions):
        # the fullest version (some files hold truncated ones), then the one most files hold
        (subject, src, question, options), _ = max(versions[qid].items(), key=lambda kv: (len(kv[0][3]), kv[1]))
        rows.append((qid, subject, src, len(question) + sum(map(len, options)), len(options),
                     format_question(question, options)))
    return pd.DataFrame(rows, columns=["question_id", "subject", "source", "question_chars", "n_options", "text"])


def _questions_from_parquet(path: Path) -> pd.DataFrame:
    from bayes_router.data.io import QUESTIONS_SUFFIX, load_questions, questions_path

    if path.name.endswith(QUESTIONS_SUFFIX):
        log_path = path.with_name(path.name[: -len(QUESTIONS_SUFFIX)] + ".parquet")
    else:
        log_path = path
    if not questions_path(log_path).exists():
        raise InputError(f"{path}: a questions parquet needs both LOG.questions.parquet and LOG.parquet side by side")
    if not log_path.exists():
        raise InputError(f"{log_path}: the call log beside {path} is missing (it holds source, question_chars "
                         "and n_options)")
    texts = load_questions(log_path)
    try:
        attrs = pd.read_parquet(log_path, columns=["question_id", "source", "question_chars", "n_options"])
    except Exception as exc:  # pyarrow raises several types for a damaged file or a missing column
        raise InputError(f"{log_path}: cannot read source, question_chars, n_options ({exc})") from None
    # the fullest version (some files hold truncated ones), then the one most rows hold
    counts = attrs.value_counts().rename("rows").reset_index()
    counts = counts.sort_values(["question_id", "n_options", "rows"], ascending=[True, False, False])
    attrs = counts.drop_duplicates("question_id")[["question_id", "source", "question_chars", "n_options"]]
    q = texts.merge(attrs, on="question_id", how="left")
    if q["source"].isna().any():
        ex = q.loc[q["source"].isna(), "question_id"].head(5).tolist()
        raise InputError(f"{log_path}: no rows for questions of {path}, e.g. {ex}")
    cols = ["question_id", "subject", "source", "question_chars", "n_options", "text"]
    return q[cols].astype({"question_chars": "int64", "n_options": "int64"}).sort_values("question_id").reset_index(drop=True)


# ----------------------------------------------------------------------------- one file


def read_study_file(f: StudyFile, questions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """One study file as call-log rows (without tokens' cost), aligned with ``questions`` by position.

    Returns the rows and, per study signal column, how many values outside [0, 1] were made null.
    """
    path = f.path
    raw = read_csv_input(path, "study file", dtype=str, keep_default_na=False, na_values=[""])
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: column '{missing[0]}': missing (all missing: {missing})")
    n = len(questions)
    if len(raw) != n:
        raise InputError(f"{path}: {len(raw):,} rows, but the questions number {n:,} (row i must be the i-th question)")
    position = pd.to_numeric(raw.iloc[:, 0], errors="coerce").to_numpy()
    if raw.columns[0] in REQUIRED_COLUMNS or not np.array_equal(position, np.arange(n)):
        raise InputError(f"{path}: the first column must be the row position 0..{n - 1} in order")
    subject = questions["subject"].to_numpy(dtype=object)
    bad = np.flatnonzero(raw["category"].to_numpy(dtype=object) != subject)
    if len(bad):
        ex = [(int(i), raw["category"].iat[i], subject[i]) for i in bad[:3]]
        raise InputError(f"{path}: column 'category': {len(bad)} rows differ from the questions' subjects "
                         f"(row, file, questions): {ex}")
    answer = raw["correct_answer"]
    n_opt = questions["n_options"].to_numpy()
    letter_ix = answer.map(lambda a: _LETTERS.find(a) if isinstance(a, str) and len(a) == 1 else -1).to_numpy()
    bad = np.flatnonzero((letter_ix < 0) | (letter_ix >= n_opt))
    if len(bad):
        ex = [(int(i), answer.iat[i], int(n_opt[i])) for i in bad[:3]]
        raise InputError(f"{path}: column 'correct_answer': {len(bad)} rows name no option of their question "
                         f"(row, key, options): {ex}")
    tokens = _numeric(raw, "token_length", path)
    bad = np.flatnonzero(np.isnan(tokens) | (tokens < 0) | (tokens != np.round(tokens)))
    if len(bad):
        ex = [(int(i), raw["token_length"].iat[i]) for i in bad[:3]]
        raise InputError(f"{path}: column 'token_length': {len(bad)} rows are not a count of tokens: {ex}")
    out = pd.DataFrame({
        "question_id": questions["question_id"].to_numpy(np.int64),
        "answer": answer.to_numpy(dtype=object),
        "pred": raw["extracted_answer"].to_numpy(dtype=object),
        "completion_tokens": tokens.astype(np.int64),
    })
    nulled = {}
    for col, study_col in SIGNALS.items():
        values = _numeric(raw, study_col, path)
        outside = ~np.isnan(values) & ((values < 0) | (values > 1))
        n_out, n_val = int(outside.sum()), int((~np.isnan(values)).sum())
        if n_out and n_out > MAX_OUT_OF_RANGE_SHARE * n_val:
            ex = [(int(i), float(values[i])) for i in np.flatnonzero(outside)[:3]]
            raise InputError(
                f"{path}: column '{study_col}': {n_out} of {n_val} values outside [0, 1] (more than "
                f"{MAX_OUT_OF_RANGE_SHARE:.0%}: another scale, not isolated parse errors), e.g. (row, value) {ex}")
        values[outside] = np.nan
        nulled[study_col] = n_out
        out[col] = values
    return out, nulled


def _numeric(raw: pd.DataFrame, col: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(raw[col], errors="coerce")
    bad = values.isna() & raw[col].notna()
    if bad.any():
        ex = [(int(i), raw[col].iat[i]) for i in np.flatnonzero(bad.to_numpy())[:3]]
        raise InputError(f"{path}: column '{col}': {int(bad.sum())} values are not numbers, e.g. (row, value) {ex}")
    return values.to_numpy(dtype=float, copy=True)


# ----------------------------------------------------------------------------- the import


def import_calibration_study(
    src: str | os.PathLike,
    questions: str | os.PathLike | pd.DataFrame,
    prices: str | os.PathLike | pd.DataFrame | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the study's files into (call log, question texts).

    ``src``: a folder of ``mmlu_pro_<MODEL>_eval_all_None.csv`` files, or one file.
    ``questions``: QSRC (see :func:`load_study_questions`) or its table.
    ``prices``: a price table path or frame (default ``data/prices_calibration_study.csv``).
    Returns the validated call log (one row per question x model, with ``mean_token_prob``
    and ``decisiveness``) and the question texts (question_id, subject, text).
    """
    table = prices if isinstance(prices, pd.DataFrame) else load_prices(prices or default_prices_path(CALIBRATION_STUDY_PRICES))
    files = discover_study_files(src)
    for f in files:  # refuse unknown models before reading anything
        price_of(table, f.model, where=str(f.path))
    q = questions if isinstance(questions, pd.DataFrame) else load_study_questions(questions)
    q = q.sort_values("question_id").reset_index(drop=True)
    iterator = files
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(files, desc="importing", unit="file")
    frames, nulled = [], {}
    for f in iterator:
        df, counts = read_study_file(f, q)
        df.insert(1, "model", f.model)
        df["_usd_in"], df["_usd_out"] = price_of(table, f.model)
        frames.append(df)
        for col, k in counts.items():
            if k:
                nulled.setdefault(col, []).append((f.model, k))
    _warn_nulled(nulled)
    log = pd.concat(frames, ignore_index=True)
    per_question = q.set_index("question_id")
    prompt = pd.Series(count_tokens(q["text"].tolist()), index=q["question_id"].to_numpy()) + STUDY_INSTRUCTION_TOKENS
    ids = log["question_id"].to_numpy()
    for col in ("subject", "source", "question_chars", "n_options"):
        log[col] = per_question[col].reindex(ids).to_numpy()
    log["prompt_tokens"] = prompt.reindex(ids).to_numpy(np.int64)
    log["parsed"] = log["pred"].notna()
    log["correct"] = (log["pred"] == log["answer"]).to_numpy(dtype=bool)
    log["cost_usd"] = call_cost_usd(log["prompt_tokens"], log["completion_tokens"], log["_usd_in"], log["_usd_out"])
    log["latency_s"] = np.nan
    log["log_source"] = LOG_SOURCE
    log = log.sort_values(["model", "question_id"], kind="stable")
    log = validate_call_log(log, where=str(src))
    return log, q[["question_id", "subject", "text"]].copy()


def _warn_nulled(nulled: dict[str, list[tuple[str, int]]]) -> None:
    for col, per_model in nulled.items():
        total = sum(k for _, k in per_model)
        worst = sorted(per_model, key=lambda mk: -mk[1])[:3]
        warnings.warn(
            f"column '{col}': {total} values outside [0, 1] in {len(per_model)} files made null "
            f"(parse errors of the study; most: {', '.join(f'{m} {k}' for m, k in worst)})",
            StudyImportWarning, stacklevel=3,
        )
