"""The MMLU-Pro importer: real files against an independent reading, and every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_router import import_mmlu_pro, load_call_log, load_questions
from bayes_router.cli import main
from bayes_router.data.prices import call_cost_usd, load_prices
from bayes_router.data.tokens import DEFAULT_FEW_SHOT_OVERHEAD, count_tokens, format_question
from bayes_router.errors import InputError

# Files with the real quirks: junk entries (DeepSeek-Coder-V2), fewer questions
# (gemini-1.5-flash-002), many unparsed answers and `generated_text` (Yi-6B).
REAL_MODELS = ["DeepSeek-Coder-V2", "gemini-1.5-flash-002", "Yi-6B"]


def _independent_reading(zip_path: Path) -> tuple[int, float, int]:
    """(records, accuracy as pred == answer, non-record entries), read without the package."""
    with zipfile.ZipFile(zip_path) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".json")]
        data = json.loads(zf.read(name))
    recs = [r for r in data if isinstance(r, dict)]
    acc = sum(1 for r in recs if r["pred"] is not None and r["pred"] == r["answer"]) / len(recs)
    return len(recs), acc, len(data) - len(recs)


@pytest.fixture(scope="module")
def real_import(mmlu_pro_dir, tmp_path_factory):
    src = tmp_path_factory.mktemp("real")
    for m in REAL_MODELS:
        shutil.copy(mmlu_pro_dir / f"model_outputs_{m}_5shots.zip", src)
    with pytest.warns(UserWarning, match="skipped 43 entries"):
        log, questions = import_mmlu_pro(src)
    return src, log, questions


@pytest.mark.realdata
def test_real_counts_and_accuracy_match_independent_reading(real_import):
    src, log, questions = real_import
    assert sorted(log["model"].unique()) == sorted(REAL_MODELS)
    for m in REAL_MODELS:
        n, acc, junk = _independent_reading(src / f"model_outputs_{m}_5shots.zip")
        rows = log[log["model"] == m]
        assert len(rows) == n
        assert rows["correct"].mean() == pytest.approx(acc, abs=1e-12)
    assert len(log[log["model"] == "DeepSeek-Coder-V2"]) == 10351
    assert len(log[log["model"] == "gemini-1.5-flash-002"]) == 12012
    assert log["log_source"].eq("mmlu-pro-eval-results").all()
    assert log["confidence"].isna().all() and log["latency_s"].isna().all()
    # an unparsed answer is never correct
    assert not log.loc[~log["parsed"], "correct"].any()
    assert (~log["parsed"]).sum() > 0
    assert questions["question_id"].is_unique
    assert set(questions["question_id"]) == set(log["question_id"])


@pytest.mark.realdata
def test_real_tokens_and_cost_follow_the_stated_rules(real_import):
    src, log, questions = real_import
    prices = load_prices()
    with zipfile.ZipFile(src / "model_outputs_Yi-6B_5shots.zip") as zf:
        data = json.loads(zf.read(zf.namelist()[0]))
    rec = data[0]
    import ast

    opts = ast.literal_eval(rec["options"]) if isinstance(rec["options"], str) else rec["options"]
    row = log[(log["model"] == "Yi-6B") & (log["question_id"] == int(rec["question_id"]))].iloc[0]
    assert row["completion_tokens"] == count_tokens([rec["generated_text"]])[0]
    assert row["prompt_tokens"] == count_tokens([format_question(rec["question"], opts)])[0] + DEFAULT_FEW_SHOT_OVERHEAD
    assert row["question_chars"] == len(rec["question"]) + sum(len(o) for o in opts)
    assert row["n_options"] == len(opts)
    p_in, p_out = prices.loc["Yi-6B", ["usd_per_m_input", "usd_per_m_output"]]
    assert row["cost_usd"] == pytest.approx(float(call_cost_usd(row["prompt_tokens"], row["completion_tokens"], p_in, p_out)))
    # the question text is the same for every model, so are its prompt tokens
    per_q = log.groupby("question_id")["prompt_tokens"].nunique()
    assert (per_q == 1).all()


@pytest.mark.realdata
def test_cli_import_writes_log_and_questions(mmlu_pro_dir, tmp_path, capsys):
    out = tmp_path / "one.parquet"
    code = main(["import-mmlu-pro", str(mmlu_pro_dir / "model_outputs_Yi-6B_5shots.zip"), "-o", str(out), "--no-progress"])
    assert code == 0
    log = load_call_log(out)
    assert len(log) == 12032 and log["model"].unique().tolist() == ["Yi-6B"]
    assert len(load_questions(out)) == 12032
    assert "wrote" in capsys.readouterr().out


# ----------------------------------------------------------------- bad inputs

def _record(qid=1, **over):
    rec = {"question_id": qid, "question": "What is 2+2?", "options": ["3", "4", "5", "6"], "answer": "B",
           "answer_index": 1, "cot_content": "", "category": "math", "src": "toy", "pred": "B",
           "generated_text": "The answer is (B)"}
    rec.update(over)
    return rec


def _write_zip(path: Path, payload) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(path.stem + ".json", json.dumps(payload))
    return path


def _run_cli(src: Path, out: Path, capsys, *extra) -> tuple[int, str]:
    code = main(["import-mmlu-pro", str(src), "-o", str(out), "--no-progress", *extra])
    return code, capsys.readouterr().err


def _damage_zip_body(path: Path) -> None:
    """A zip whose directory and headers are intact but whose compressed data is cut short."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.stem + ".json", json.dumps([_record(i) for i in range(1, 40)]))
    data = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(data[26:28], "little"), int.from_bytes(data[28:30], "little")
    start = 30 + name_len + extra_len + 8  # past the local header, a few bytes into the deflate stream
    body = data.index(b"PK\x01\x02")  # start of the central directory: the data lies before it
    for i in range(start, body - 10):
        data[i] = 0xFF
    path.write_bytes(bytes(data))


BAD_CASES = {
    "corrupt zip": lambda d: (d / "model_outputs_Yi-6B_5shots.zip").write_bytes(b"PK\x03\x04 not really a zip"),
    "damaged zip body": lambda d: _damage_zip_body(d / "model_outputs_Yi-6B_5shots.zip"),
    "json not a list": lambda d: (d / "model_outputs_Yi-6B_5shots.json").write_text(json.dumps({"a": 1})),
    "invalid json": lambda d: (d / "model_outputs_Yi-6B_5shots.json").write_text("[{not json"),
    "record missing answer": lambda d: _write_zip(
        d / "model_outputs_Yi-6B_5shots.zip", [_record(1), {k: v for k, v in _record(2).items() if k != "answer"}]),
    "unknown model": lambda d: _write_zip(d / "model_outputs_NoSuchModel-9B_5shots.zip", [_record(1)]),
    "duplicate question": lambda d: _write_zip(d / "model_outputs_Yi-6B_5shots.zip", [_record(1), _record(1)]),
    "no records": lambda d: _write_zip(d / "model_outputs_Yi-6B_5shots.zip", ["junk", "more junk"]),
}
EXPECTED = {
    "corrupt zip": "not a valid zip",
    "damaged zip body": "not a valid zip",
    "json not a list": "expected a JSON list",
    "invalid json": "not valid JSON",
    "record missing answer": "lacks field(s) ['answer']",
    "unknown model": "'NoSuchModel-9B' is not in the price table",
    "duplicate question": "duplicate (question_id, model)",
    "no records": "no records",
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_refused_and_nothing_written(case, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _write_zip(src / "model_outputs_gemma-7b_5shots.zip", [_record(1), _record(2, pred=None)])  # a good file too
    BAD_CASES[case](src)
    out = tmp_path / "out" / "log.parquet"
    code, err = _run_cli(src, out, capsys)
    assert code != 0
    assert EXPECTED[case] in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert not any(out.parent.glob("*")) if out.parent.exists() else True


def test_unwritable_output_is_one_line_not_a_traceback(tmp_path, capsys):
    _write_zip(tmp_path / "model_outputs_gemma-7b_5shots.zip", [_record(1)])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "log.parquet").mkdir()  # the output path is a folder
    code, err = _run_cli(tmp_path / "model_outputs_gemma-7b_5shots.zip", tmp_path / "taken" / "log.parquet", capsys)
    assert code == 2
    assert err.startswith("bayes-router import-mmlu-pro: error:") and err.count("\n") == 1
    assert (tmp_path / "taken" / "log.parquet").is_dir()


def test_empty_folder_and_missing_path_are_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = _run_cli(tmp_path / "empty", tmp_path / "log.parquet", capsys)
    assert code == 2 and "holds no .zip or .json" in err
    code, err = _run_cli(tmp_path / "nope", tmp_path / "log.parquet", capsys)
    assert code == 2 and "no such file or folder" in err
    assert not (tmp_path / "log.parquet").exists()


def test_not_a_zip_or_json_is_refused(tmp_path, capsys):
    bad = tmp_path / "model_outputs_Yi-6B_5shots.txt"
    bad.write_text("hello")
    code, err = _run_cli(bad, tmp_path / "log.parquet", capsys)
    assert code == 2 and "not a .zip or .json file" in err


def test_existing_output_is_kept_when_input_is_refused(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _write_zip(src / "model_outputs_gemma-7b_5shots.zip", [_record(1)])
    out = tmp_path / "log.parquet"
    assert _run_cli(src, out, capsys)[0] == 0
    before = out.read_bytes()
    BAD_CASES["corrupt zip"](src)
    assert _run_cli(src, out, capsys)[0] == 2
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_quirks_on_a_small_handmade_file(tmp_path):
    recs = [
        _record(1, question_id="1", options=str(["3", "4", "5", "6"])),  # ids and options as strings
        _record(2, pred=None),  # extraction failed: unparsed and wrong
        _record(3, pred="C", generated_text=None, model_outputs="It is (C)"),  # response under model_outputs
        "junk",
    ]
    _write_zip(tmp_path / "model_outputs_gemma-7b_5shots.zip", recs)
    with pytest.warns(UserWarning, match="skipped 1 entries"):
        log, questions = import_mmlu_pro(tmp_path)
    assert log["question_id"].tolist() == [1, 2, 3]
    assert log["parsed"].tolist() == [True, False, True]
    assert log["correct"].tolist() == [True, False, False]
    assert log["completion_tokens"].iloc[2] == count_tokens(["It is (C)"])[0]
    assert (log["n_options"] == 4).all()


def test_custom_price_table_and_missing_model(tmp_path, capsys):
    _write_zip(tmp_path / "model_outputs_gemma-7b_5shots.zip", [_record(1)])
    prices = tmp_path / "prices.csv"
    prices.write_text("model,usd_per_m_input,usd_per_m_output\ngemma-7b,1.0,2.0\n")
    log, _ = import_mmlu_pro(tmp_path / "model_outputs_gemma-7b_5shots.zip", prices=prices)
    r = log.iloc[0]
    assert r["cost_usd"] == pytest.approx((r["prompt_tokens"] * 1.0 + r["completion_tokens"] * 2.0) / 1e6)
    prices.write_text("model,usd_per_m_input,usd_per_m_output\nother,1.0,2.0\n")
    code, err = _run_cli(tmp_path / "model_outputs_gemma-7b_5shots.zip", tmp_path / "l.parquet", capsys, "--prices", str(prices))
    assert code == 2 and "'gemma-7b' is not in the price table" in err
    prices.write_text("model,usd_per_m_input,usd_per_m_output\ngemma-7b,-1,2.0\n")
    with pytest.raises(InputError, match="negative price"):
        import_mmlu_pro(tmp_path, prices=prices)


def test_console_script_error_has_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("bayes-router")
    proc = subprocess.run([str(exe), "import-mmlu-pro", str(tmp_path / "missing"), "-o", str(tmp_path / "x.parquet")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("bayes-router import-mmlu-pro: error:")
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([str(exe), "import-mmlu-pro", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "few-shot-overhead" in proc.stdout and "cl100k_base" in proc.stdout


def test_committed_price_table_is_the_shared_one():
    here = Path(__file__).resolve().parent.parent
    shared = here.parent / "shared" / "mmlu-pro" / "prices.csv"
    if not shared.exists():
        pytest.skip("../shared is not beside this checkout")
    a, b = pd.read_csv(here / "data" / "prices.csv"), pd.read_csv(shared)
    pd.testing.assert_frame_equal(a, b)
    assert np.isfinite(a["usd_per_m_input"]).all()
