"""The notebooks are thin and alike, and they run.

Without data: every notebook in notebooks/ keeps each code cell within
MAX_CELL_LINES code lines (the parameters cell, one line per declared knob, excepted)
and declares the common parameters with their types (bayes_router.study.notebook).

With a real log: every notebook runs top to bottom with papermill on QUICK parameters
against a small REAL log (6 models x 1,200 MMLU-Pro questions imported from
MMLU_PRO_RESULTS), writes its figures (PNG and SVG) and its headline JSON, and the run
aggregates into a summary.json with the fields `make reproduce` promises. Skipped when
MMLU_PRO_RESULTS is unset."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from bayes_router.data.pools import pool_models

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
#: A cell that holds more than this many code lines holds logic that belongs in the package.
MAX_CELL_LINES = 15
#: Notebooks that sample no posterior (they declare every common parameter but DRAWS).
NO_SAMPLING = {"01_data_overview"}


def code_lines(source: str) -> int:
    """Lines of a cell that are neither blank nor comments."""
    return sum(1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#"))


def _cells(nb_path: Path) -> list[dict]:
    cells = json.loads(nb_path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def declared_parameters(nb_path: Path) -> dict[str, object]:
    """Name -> value of the assignments in the cell tagged `parameters` (papermill's)."""
    tagged = [c for c in _cells(nb_path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb_path.name}: {len(tagged)} cells tagged 'parameters', want 1"
    out = {}
    for node in ast.parse(_source(tagged[0])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), (
            f"{nb_path.name}: the parameters cell holds only NAME = literal lines, not {ast.unparse(node)!r}")
        out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def test_code_lines_are_counted_without_blanks_and_comments():
    assert code_lines("# a comment\n\nx = 1\n    # indented comment\ny = 2  # trailing\n") == 2


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_cells_are_thin(nb_path):
    too_long = []
    for i, cell in enumerate(_cells(nb_path)):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        n = code_lines(_source(cell))
        if n > MAX_CELL_LINES:
            too_long.append(f"code cell {i}: {n} lines")
    assert not too_long, f"{nb_path.name}: cells over {MAX_CELL_LINES} code lines ({', '.join(too_long)})"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_declares_the_common_parameters(nb_path):
    from bayes_router.study.notebook import check_parameters

    params = declared_parameters(nb_path)
    check_parameters(params, sampling=nb_path.stem not in NO_SAMPLING)
    assert "N_QUESTIONS" not in params, f"{nb_path.name}: the parameter is QUESTIONS"
    if params["MODELS"] is not None:  # a pool name or models that resolve
        from bayes_router.data.pools import resolve_models

        assert resolve_models(params["MODELS"])


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_names_exist_in_the_package(nb_path):
    """Every ``alias.name`` a notebook reads from a package module exists there: a renamed or
    moved function fails here in a second, not only when the notebook is executed on real data."""
    import importlib
    import re

    src = "\n".join(_source(c) for c in _cells(nb_path))
    missing = []
    for package, module, alias in re.findall(r"from (bayes_router[\w.]*) import (\w+) as (\w+)", src):
        mod = importlib.import_module(f"{package}.{module}")
        missing += [f"{alias}.{name}" for name in sorted(set(re.findall(rf"\b{alias}\.(\w+)", src)))
                    if not hasattr(mod, name)]
    for package, names in re.findall(r"from (bayes_router[\w.]*) import ([\w, ]+)\n", src):
        mod = importlib.import_module(package)
        missing += [f"{package}.{n.strip()}" for n in names.split(",")
                    if n.strip() and " as " not in n and not hasattr(mod, n.strip())]
    assert not missing, f"{nb_path.name}: names not in the package: {missing}"


def test_parameter_check_refuses_missing_and_mistyped():
    from bayes_router.errors import InputError
    from bayes_router.study.notebook import check_parameters

    good = {"LOG": "a.parquet", "FIGURES_DIR": "f", "RESULTS_DIR": "r", "QUICK": True, "SEED": 0,
            "MODELS": "trio", "QUESTIONS": None, "DRAWS": 100}
    check_parameters(good)
    check_parameters({k: v for k, v in good.items() if k != "DRAWS"}, sampling=False)
    with pytest.raises(InputError, match="parameter DRAWS is missing"):
        check_parameters({k: v for k, v in good.items() if k != "DRAWS"})
    with pytest.raises(InputError, match="parameter MODELS must be str or None"):
        check_parameters({**good, "MODELS": ["a", "b"]})
    with pytest.raises(InputError, match="parameter SEED must be int"):
        check_parameters({**good, "SEED": True})
    with pytest.raises(InputError, match="parameter QUICK must be bool"):
        check_parameters({**good, "QUICK": 1})
POOLED = "03_routing_policies"  # run once per pool by the Makefile; here on the trio
TRIO = pool_models("trio")
TIERS = pool_models("tiers")
N_QUESTIONS = 1200
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def small_real_log(mmlu_pro_dir, tmp_path_factory) -> Path:
    """The trio and the Llama-2 tiers imported from the real files, cut to 1,200 common questions."""
    from bayes_router import import_mmlu_pro, write_call_log
    from bayes_router.data.split import sample_questions

    src = tmp_path_factory.mktemp("nb_src")
    for m in TRIO + TIERS:
        shutil.copy(mmlu_pro_dir / f"model_outputs_{m}_5shots.zip", src)
    log, questions = import_mmlu_pro(src)
    ids = sample_questions(log, TRIO + TIERS, N_QUESTIONS, seed=0)
    log = log[log["question_id"].isin(ids)].reset_index(drop=True)
    questions = questions[questions["question_id"].isin(ids)].reset_index(drop=True)
    out = tmp_path_factory.mktemp("nb_log") / "small.parquet"
    write_call_log(log, out, questions=questions)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """Laid out like `make reproduce`: notebooks/, results/ (pools/<pool>/ for 03), figures/<notebook>/."""
    return tmp_path_factory.mktemp("reproduce")


def _execute(nb_path: Path, log: Path, run: Path) -> tuple[Path, Path, Path]:
    import papermill as pm

    name = nb_path.stem
    declared = pm.inspect_notebook(str(nb_path))
    results = run / "results" / ("pools/trio" if name == POOLED else "")
    figures = run / "figures" / name
    params = {"LOG": str(log), "FIGURES_DIR": str(figures), "RESULTS_DIR": str(results), "QUICK": True, "SEED": 0}
    missing = [k for k in params if k not in declared]
    assert not missing, f"{nb_path.name}: parameters cell lacks {missing} (notebook convention)"
    if name == POOLED:
        params["MODELS"] = "trio"
    executed = run / "notebooks" / f"{name}{'_trio' if name == POOLED else ''}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(nb_path), str(executed), parameters=params, cwd=str(NOTEBOOK_DIR), kernel_name="python3",
        progress_bar=False, execution_timeout=CELL_TIMEOUT_S,
    )
    return executed, results, figures


@pytest.mark.notebooks
@pytest.mark.realdata
@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_writes_figures_and_results(nb_path, small_real_log, run_dir):
    from papermill.exceptions import PapermillExecutionError

    try:
        executed, results, figures = _execute(nb_path, small_real_log, run_dir)
    except PapermillExecutionError as exc:
        pytest.fail(f"{nb_path.name}: code cell {exc.cell_index} failed: {exc.ename}: {exc.evalue}")
    from bayes_router.study.report import notebook_status

    assert notebook_status(executed)["status"] == "ok"
    pngs = sorted(figures.rglob("*.png"))
    assert pngs, f"{nb_path.name} saved no figure in FIGURES_DIR"
    for png in pngs:
        assert png.with_suffix(".svg").exists(), f"{png.name} has no SVG twin (use figures.save_figure)"
    if nb_path.stem == POOLED:
        assert list(results.glob("*.json")), f"{nb_path.name} wrote no result JSON in RESULTS_DIR"
    else:
        out = results / f"{nb_path.stem}.json"
        assert out.exists(), f"{nb_path.name} did not write {out.name} in RESULTS_DIR"
        body = json.loads(out.read_text())
        assert isinstance(body, dict) and body


@pytest.mark.notebooks
@pytest.mark.realdata
def test_summary_of_the_quick_run(small_real_log, run_dir):
    """Runs after the notebooks (file order): the summary of what they wrote has every promised field."""
    from bayes_router.study import report

    if not (run_dir / "notebooks").is_dir():
        pytest.skip("no notebook was executed")
    s = report.build_summary(run_dir / "results", "quick", run_dir / "notebooks", seed=0)
    for key in ("schema_version", "mode", "generated_utc", "notebooks", "pools", "diagnostics",
                "diagnostics_pass", "data_overview", "mode_mismatch", "results"):
        assert key in s, key
    assert s["mode"] == "quick"
    executed = {p.stem for p in (run_dir / "notebooks").glob("*.ipynb")}
    assert set(s["notebooks"]) == executed
    assert all(v["status"] == "ok" for v in s["notebooks"].values())
    assert not s["mode_mismatch"], f"results claiming a full run in a QUICK run: {s['mode_mismatch']}"
    names = {p.stem for p in NOTEBOOKS}
    if "01_data_overview" in names:
        ov = s["data_overview"]
        assert ov["n_models"] == 6 and ov["n_questions"] == N_QUESTIONS
        assert 0.0 < ov["oracle_accuracy"] <= 1.0
        assert set(ov["models"]) == set(TRIO + TIERS)
    if POOLED in names:
        trio = s["pools"]["trio"]
        assert trio["models"] == TRIO and trio["big_model"] == TRIO[-1]
        assert f"always:{TRIO[-1]}" in trio["policies"]
        for name, p in trio["policies"].items():
            assert 0.0 <= p["accuracy"] <= 1.0, name
            assert p["cost_per_question"] >= 0.0, name
            lo, hi = p["accuracy_ci95"]
            assert lo <= p["accuracy"] <= hi, name
        assert any(p["aiq"] is not None for p in trio["policies"].values())
    if "02_reliability_model" in names:
        verdict = s["diagnostics"].get("02_reliability_model")
        assert verdict is not None, "02_reliability_model wrote no diagnostics_pass (study.notebook.write_results)"
        assert isinstance(verdict["pass"], bool) and isinstance(s["diagnostics_pass"], bool)
    index = report.build_index(run_dir, run_dir / "figures", run_dir / "index.html", summary_path=None)
    page = index.read_text()
    for stem in executed:
        assert f"html/{stem}.html" in page
