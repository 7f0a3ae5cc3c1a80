"""Shared fixtures. Real-data fixtures read the public MMLU-Pro files through
MMLU_PRO_RESULTS and skip when it is unset; simulated fixtures are labelled simulated."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bayes_router.data.pools import pool_models

TRIO = pool_models("trio")


@pytest.fixture(scope="session")
def mmlu_pro_dir() -> Path:
    """The folder of public model_outputs_*.zip files, or skip."""
    value = os.environ.get("MMLU_PRO_RESULTS", "").strip()
    if not value:
        pytest.skip("MMLU_PRO_RESULTS is not set: real-data test skipped")
    path = Path(value).resolve()
    if not path.is_dir():
        pytest.fail(f"MMLU_PRO_RESULTS={value} is not a folder")
    return path


@pytest.fixture(scope="session")
def real_trio_log_path(mmlu_pro_dir, tmp_path_factory) -> Path:
    """The seed-like trio imported once per session; returns the Parquet path (questions beside it)."""
    from bayes_router import import_mmlu_pro, write_call_log

    src = tmp_path_factory.mktemp("trio_src")
    for m in TRIO:
        shutil.copy(mmlu_pro_dir / f"model_outputs_{m}_5shots.zip", src)
    log, questions = import_mmlu_pro(src)
    out = tmp_path_factory.mktemp("trio") / "trio.parquet"
    write_call_log(log, out, questions=questions)
    return out


@pytest.fixture(scope="session")
def real_trio_log(real_trio_log_path):
    from bayes_router import load_call_log

    return load_call_log(real_trio_log_path)


@pytest.fixture(scope="session")
def sim_log_path(tmp_path_factory) -> Path:
    """A small SIMULATED log (3 models x 240 questions, correlated errors, with confidence
    and latency) written with its question texts."""
    from bayes_router import write_call_log
    from bayes_router.data.simulate import simulate_call_log

    log, questions, _ = simulate_call_log(
        n_questions=240, difficulty_sd=1.0, with_confidence=True, with_latency=True, seed=11
    )
    out = tmp_path_factory.mktemp("sim") / "simulated.parquet"
    write_call_log(log, out, questions=questions)
    return out
