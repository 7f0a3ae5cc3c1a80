"""The LLM calibration study importer, its downloader and the study pools.

Hand-made files in the study's format (tests/_study_fixtures.py, not real data) are written
into a temporary folder; one real-data smoke test reads the shared copy through CALIBRATION_STUDY_RESULTS.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _study_fixtures import HandMadeStudy, write_hand_made_study

from bayes_router.cli import main
from bayes_router.data.calibration_study import (
    LOG_SOURCE,
    STUDY_INSTRUCTION_TOKENS,
    StudyImportWarning,
    import_calibration_study,
    load_study_questions,
)
from bayes_router.data.download import calibration_study_manifest, download_calibration_study
from bayes_router.data.io import load_call_log, load_questions, write_call_log
from bayes_router.data.pools import pool_log, pool_models
from bayes_router.data.prices import load_prices
from bayes_router.data.tokens import count_tokens

STUDY_POOLS = ("study-trio", "study-cascade", "study-api", "study-all")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> HandMadeStudy:
    """The hand-made study files, written once for this module's tests (which only read them)."""
    return write_hand_made_study(tmp_path_factory.mktemp("hand_made_study"))


@pytest.fixture()
def study_copy(study, tmp_path) -> Path:
    """A writable copy of the hand-made study's result files."""
    dest = tmp_path / "results"
    shutil.copytree(study.results, dest)
    return dest


def _import(study: HandMadeStudy, qsrc=None):
    return import_calibration_study(study.results, qsrc or study.qsrc, prices=study.prices)


def test_import_maps_rows_to_questions_and_columns(study):
    log, questions = _import(study)
    assert len(log) == 8 and sorted(log["model"].unique()) == ["model-a", "model-b"]
    assert set(log["log_source"]) == {LOG_SOURCE}
    a = log[log["model"] == "model-a"].set_index("question_id")
    # row i <-> the i-th question by id (the JSON lists them out of order)
    assert a.index.tolist() == [10, 11, 20, 21]
    assert a["subject"].tolist() == ["law", "law", "math", "math"]
    assert a["source"].tolist() == ["ori_mmlu-professional_law"] * 2 + ["stemez-Math", "ori_mmlu-high_school_mathematics"]
    assert a["n_options"].tolist() == [4, 10, 3, 5]
    assert a.loc[10, "question_chars"] == len("Who may sign a contract?") + len("a minoran adulta dognobody")
    # the study's key, not the MMLU-Pro file's (question 11: I there, J here)
    assert a["answer"].tolist() == ["B", "J", "C", "A"]
    assert a["pred"].isna().tolist() == [False, False, True, False]
    assert a["parsed"].tolist() == [True, True, False, True]
    assert a["correct"].tolist() == [True, False, False, True]
    # empty stays null, never 0
    np.testing.assert_allclose(a["confidence"], [0.9, 0.6, np.nan, 1.0])
    np.testing.assert_allclose(a["mean_token_prob"], [0.8, np.nan, np.nan, 0.99])
    np.testing.assert_allclose(a["decisiveness"], [0.95, 0.7, np.nan, 1.0])
    assert a["completion_tokens"].tolist() == [120, 300, 2048, 45]
    q = questions.set_index("question_id")
    expected_prompt = [n + STUDY_INSTRUCTION_TOKENS for n in count_tokens(q.loc[[10, 11, 20, 21], "text"].tolist())]
    assert a["prompt_tokens"].tolist() == expected_prompt
    np.testing.assert_allclose(a["cost_usd"], (a["prompt_tokens"] * 0.1 + a["completion_tokens"] * 0.4) / 1e6)
    b = log[log["model"] == "model-b"].set_index("question_id")
    assert b["correct"].tolist() == [False, True, True, False]
    np.testing.assert_allclose(b["cost_usd"], (b["prompt_tokens"] * 1.0 + b["completion_tokens"] * 2.0) / 1e6)
    assert q.loc[11, "text"].startswith("Question: Which court hears appeals?\nOptions:\nA. a")


def test_cli_writes_log_and_questions_and_parquet_qsrc_gives_the_same_log(study, tmp_path, capsys):
    out = tmp_path / "logs" / "study.parquet"
    code = main(["import-calibration-study", str(study.results), "--questions", str(study.qsrc), "-o", str(out),
                 "--prices", str(study.prices), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert "8 calls, 2 models, 4 questions" in capsys.readouterr().out
    log = load_call_log(out)
    assert {"mean_token_prob", "decisiveness"} <= set(log.columns)  # optional columns survive the round trip
    assert load_questions(out)["question_id"].tolist() == [10, 11, 20, 21]
    # QSRC may be a questions parquet beside an MMLU-Pro log, as `make data` passes it
    from bayes_router.data.mmlu_pro import import_mmlu_pro

    mlog, mq = import_mmlu_pro(study.qsrc, prices=pd.DataFrame(
        {"usd_per_m_input": [0.1], "usd_per_m_output": [0.1]}, index=pd.Index(["tiny"], name="model")))
    mpath = tmp_path / "mmlu" / "mmlu_pro.parquet"
    write_call_log(mlog, mpath, questions=mq)
    again, _ = _import(study, qsrc=mpath.with_name("mmlu_pro.questions.parquet"))
    pd.testing.assert_frame_equal(again, log)


def _cli_refuses(study, tmp_path, capsys, src, match):
    out = tmp_path / "refused" / "log.parquet"
    code = main(["import-calibration-study", str(src), "--questions", str(study.qsrc), "-o", str(out),
                 "--prices", str(study.prices), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and match in err, err
    assert not out.parent.exists() or not any(out.parent.iterdir())  # nothing written, not even a temporary


def _edit(path: Path, edit) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(df)
    df.to_csv(path, index=False)


def test_refuses_row_count_and_subject_mismatch(study, study_copy, tmp_path, capsys):
    f = study_copy / "mmlu_pro_model-a_eval_all_None.csv"
    original = f.read_text()
    f.write_text("\n".join(original.splitlines()[:-1]) + "\n")
    _cli_refuses(study, tmp_path, capsys, study_copy, "3 rows, but the questions number 4")
    f.write_text(original.replace("2,math,C", "2,law,C"))
    _cli_refuses(study, tmp_path, capsys, study_copy, "column 'category': 1 rows differ")
    f.write_text(original.replace("1,law,J", "7,law,J"))
    _cli_refuses(study, tmp_path, capsys, study_copy, "first column must be the row position")
    f.write_text(original.replace("3,math,A,A", "3,math,F,A"))  # question 21 has 5 options
    _cli_refuses(study, tmp_path, capsys, study_copy, "column 'correct_answer': 1 rows name no option")


def test_refuses_missing_column_bad_numbers_and_unknown_model(study, study_copy, tmp_path, capsys):
    f = study_copy / "mmlu_pro_model-b_eval_all_None.csv"
    original = f.read_text()
    _edit(f, lambda df: df.pop("logit_perplexity_confidence"))
    _cli_refuses(study, tmp_path, capsys, study_copy, "column 'logit_perplexity_confidence': missing")
    f.write_text(original.replace(",90\n", ",ninety\n"))
    _cli_refuses(study, tmp_path, capsys, study_copy, "column 'token_length'")
    f.write_text(original.replace("0.95,0.9,0.9", "high,0.9,0.9"))
    _cli_refuses(study, tmp_path, capsys, study_copy, "column 'verbal_numerical_confidence': 1 values are not numbers")
    f.write_text(original)
    shutil.copy(f, study_copy / "mmlu_pro_model-c_eval_all_None.csv")
    _cli_refuses(study, tmp_path, capsys, study_copy, "model 'model-c' is not in the price table")


def test_refuses_confidence_on_another_scale(study, study_copy, tmp_path, capsys):
    f = study_copy / "mmlu_pro_model-a_eval_all_None.csv"
    # a file that stores the stated 0-100 confidence as is: not the study's 0-1 scale, refused
    _edit(f, lambda df: df.__setitem__("verbal_numerical_confidence", ["90", "60", "", "100"]))
    _cli_refuses(study, tmp_path, capsys, study_copy, "column 'verbal_numerical_confidence': 3 of 3 values outside [0, 1]")
    _edit(f, lambda df: df.__setitem__("verbal_numerical_confidence", ["0.9", "-0.1", "", "1"]))
    _cli_refuses(study, tmp_path, capsys, study_copy, "1 of 3 values outside [0, 1]")


def _many_questions(tmp_path, n) -> tuple[Path, Path]:
    """n hand-made questions (MMLU-Pro JSON) and one study file answering them."""
    qdir = tmp_path / "q"
    qdir.mkdir()
    recs = [{"question_id": i, "question": f"q{i}", "options": ["x", "y", "z", "w"], "answer": "A",
             "category": "math", "src": "s", "pred": "A", "model_outputs": ""} for i in range(n)]
    (qdir / "model_outputs_m_5shots.json").write_text(json.dumps(recs))
    sdir = tmp_path / "s"
    sdir.mkdir()
    df = pd.DataFrame({"": range(n), "category": "math", "correct_answer": "A", "extracted_answer": "A",
                       "verbal_numerical_confidence": 0.9, "logit_perplexity_confidence": 0.8,
                       "verbal_linguistic_confidence": 0.9, "token_length": 10})
    df.loc[5, "verbal_numerical_confidence"] = 683.0  # a parse error of the study (real: Nemotron-Nano-4B)
    df.loc[7, "verbal_linguistic_confidence"] = 47.975  # the mean of a judge's 95 and 0.95 (real: many files)
    df.to_csv(sdir / "mmlu_pro_model-a_eval_all_None.csv", index=False)
    return sdir, qdir


def test_rare_out_of_range_values_become_null_with_a_warning(study, tmp_path):
    sdir, qdir = _many_questions(tmp_path, 200)
    with pytest.warns(StudyImportWarning, match="1 values outside .* made null"):
        log, _ = import_calibration_study(sdir, qdir, prices=study.prices)
    assert np.isnan(log.loc[5, "confidence"]) and log["confidence"].notna().sum() == 199
    assert np.isnan(log.loc[7, "decisiveness"]) and log["decisiveness"].notna().sum() == 199
    assert log["confidence"].max() == 0.9


def test_questions_take_the_fullest_version(study, tmp_path):
    """MMLU-Pro files may hold a truncated version of a question; the one with most options wins."""
    qdir = tmp_path / "q"
    shutil.copytree(study.qsrc, qdir)
    recs = json.loads((study.qsrc / "model_outputs_tiny_5shots.json").read_text())
    for r in recs:
        if r["question_id"] == 21:
            r["options"] = r["options"][:1]
    for m in ("other", "third"):  # the truncated version is in two of three files
        (qdir / f"model_outputs_{m}_5shots.json").write_text(json.dumps(recs))
    q = load_study_questions(qdir).set_index("question_id")
    assert q.loc[21, "n_options"] == 5


# ----------------------------------------------------------------------------- download


@pytest.fixture()
def study_server(study, tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(study.results))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    manifest = tmp_path / "files.csv"
    rows = [(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(study.results.iterdir())]
    manifest.write_text("name,bytes,sha256\n" + "".join(f"{n},{b},{h}\n" for n, b, h in rows))
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", manifest
    httpd.shutdown()


def test_download_checks_content_and_keeps_nothing_partial(study, study_server, tmp_path, capsys):
    url, manifest = study_server
    dest = tmp_path / "dest"
    paths = download_calibration_study(dest, base_url=url, manifest=manifest, progress=False)
    assert [p.read_bytes() for p in paths] == [(study.results / p.name).read_bytes() for p in paths]
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in study.results.iterdir())
    # a file whose content is not the pinned one is refused and not kept
    text = manifest.read_text()
    manifest.write_text(text.replace(text.splitlines()[1].split(",")[2], "0" * 64))
    dest2 = tmp_path / "dest2"
    code = main(["download-calibration-study", str(dest2), "--base-url", url, "--manifest", str(manifest),
                 "--no-progress"])
    assert code == 2 and "content differs from the pinned file" in capsys.readouterr().err
    assert not any(dest2.iterdir())


def test_pinned_manifest_and_prices_cover_the_study_pools():
    entries = calibration_study_manifest()
    assert len(entries) == 76 and all(len(e["sha256"]) == 64 for e in entries)
    models = {e["name"][len("mmlu_pro_"):-len("_eval_all_None.csv")] for e in entries}
    prices = load_prices(Path(__file__).parents[1] / "data" / "prices_calibration_study.csv")
    assert models == set(prices.index)
    for pool in STUDY_POOLS:
        assert pool_log(pool) == "calibration_study"
        assert set(pool_models(pool)) <= models, pool


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_files_import(mmlu_pro_dir, tmp_path):
    """Three real study files against the real questions (one MMLU-Pro file holding all 12,032)."""
    value = os.environ.get("CALIBRATION_STUDY_RESULTS", "").strip()
    if not value:
        pytest.skip("CALIBRATION_STUDY_RESULTS is not set: real-data test skipped")
    results = Path(value) / "results"
    src = tmp_path / "src"
    src.mkdir()
    models = ["Qwen3-30B-A3B", "claude-3-haiku-20240307", "gemma-2b-it"]
    for m in models:
        shutil.copy(results / f"mmlu_pro_{m}_eval_all_None.csv", src)
    qdir = tmp_path / "q"
    qdir.mkdir()
    shutil.copy(mmlu_pro_dir / "model_outputs_Meta-Llama-3_1-70B-Instruct_5shots.zip", qdir)
    with pytest.warns(StudyImportWarning, match="gemma-2b-it 16"):  # its 16 confidences above 1
        log, questions = import_calibration_study(src, qdir)
    assert len(questions) == 12032 and len(log) == 3 * 12032
    raw = pd.read_csv(results / "mmlu_pro_claude-3-haiku-20240307_eval_all_None.csv")
    claude = log[log["model"] == "claude-3-haiku-20240307"]
    assert claude["correct"].mean() == pytest.approx((raw["extracted_answer"] == raw["correct_answer"]).mean())
    assert claude["mean_token_prob"].isna().all()  # no log-probabilities from that API
    # stated confidence separates right from wrong (the study: AUROC 0.70-0.81 above 60% accuracy)
    from sklearn.metrics import roc_auc_score

    qwen = log[(log["model"] == models[0]) & log["confidence"].notna()]
    assert roc_auc_score(qwen["correct"], qwen["confidence"]) > 0.7  # measured 0.732
