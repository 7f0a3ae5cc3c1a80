"""summary.json aggregation and the HTML index, on hand-written result files and notebooks."""

from __future__ import annotations

import json

import nbformat
import pytest

from bayes_router.errors import InputError
from bayes_router.study import report


def _results_like(models, acc_big=0.6):
    return {
        "schema_version": 1, "models": models, "seed": 0, "cost_scale": 0.0,
        "train_question_ids": list(range(50)), "test_question_ids": list(range(50, 70)),
        "policies": {
            f"always:{models[-1]}": {"accuracy": acc_big, "accuracy_ci95": [0.5, 0.7],
                                     "cost_per_question": 0.002, "cost_ci95": [0.0019, 0.0021],
                                     "calls_per_question": 1.0},
            "bayes-adaptive": {"accuracy": 0.61, "accuracy_ci95": [0.52, 0.7], "cost_per_question": 0.001,
                               "cost_ci95": [0.0009, 0.0011], "calls_per_question": 1.3, "second_call_rate": 0.3},
        },
        "frontiers": {"bayes-adaptive": [[0.0005, 0.5], [0.001, 0.61]]},
        "aiq": {"bayes-adaptive": 0.58, f"always:{models[-1]}": 0.55},
    }


def _executed_notebook(path, fail: bool):
    nb = nbformat.v4.new_notebook()
    ok = nbformat.v4.new_code_cell("x = 1")
    ok.metadata["papermill"] = {"status": "completed", "exception": False}
    bad = nbformat.v4.new_code_cell("raise ValueError('boom')")
    bad.metadata["papermill"] = {"status": "failed" if fail else "completed", "exception": fail}
    if fail:
        bad.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    nb.cells = [ok, bad]
    nb.metadata["papermill"] = {"exception": fail, "duration": 1.5, "parameters": {"QUICK": True}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


@pytest.fixture
def run_dirs(tmp_path):
    res = tmp_path / "reports" / "results"
    (res / "pools" / "trio").mkdir(parents=True)
    (res / "pools" / "trio" / "03_routing_policies.json").write_text(json.dumps(_results_like(["s", "m", "b"])))
    (res / "06_budget_allocation.json").write_text(json.dumps(
        {"pool": "trio", "quick": True, **_results_like(["s", "m", "b"], acc_big=0.99)}))
    (res / "02_reliability_model.json").write_text(json.dumps(
        {"quick": True, "diagnostics_pass": False,
         "diagnostics": {"pre": {"passed": True, "failures": []},
                         "post": {"passed": False, "failures": ["sigma_slope: R-hat 1.050"]}}}))
    # the verdict is the one key diagnostics_pass: other spellings are not read
    (res / "05_calibration.json").write_text(json.dumps(
        {"quick": True, "diagnostics": {"bayes-pre": {"pass": True}, "ok": True}, "all_pass": False}))
    (res / "07_budget_sweep.json").write_text(json.dumps(
        {"models": ["s", "m", "b"], "quick": True, "aiq": {"mip": 0.5, "ndch": 0.45}, "budget_sweep": []}))
    # ONLINE.json-like: cumulative learning curves over a stream, not a held-out comparison
    (res / "09_online_learning.json").write_text(json.dumps(
        {"models": ["s", "m", "b"], "quick": True, "aiq": {}, "policies": {
            "thompson": {"accuracy": 0.7, "cost_per_question": 0.001, "curve": {"accuracy": [1.0, 0.7]}}}}))
    (res / "01_data_overview.json").write_text(json.dumps({
        "quick": False, "n_models": 3, "n_common_questions": 10, "oracle_accuracy": 0.8,
        "models": {"s": {"accuracy": 0.4, "accuracy_ci95": [0.3, 0.5], "cost_per_call_usd": 0.0002,
                         "completion_tokens_mean": 120.0}}}))
    nbs = tmp_path / "reports" / "notebooks"
    _executed_notebook(nbs / "01_data_overview.ipynb", fail=False)
    _executed_notebook(nbs / "failed" / "02_reliability_model.ipynb", fail=True)
    return tmp_path


def test_summary_pools_diagnostics_notebooks_and_mode(run_dirs):
    s = report.build_summary(run_dirs / "reports" / "results", "quick", run_dirs / "reports" / "notebooks", seed=0,
                             pools={"trio": ["s", "m", "b"], "other": ["x", "y"]})
    assert s["schema_version"] == 1 and s["mode"] == "quick"
    trio = s["pools"]["trio"]
    assert trio["models"] == ["s", "m", "b"] and trio["big_model"] == "b"
    ad = trio["policies"]["bayes-adaptive"]
    assert set(report.POLICY_FIELDS) <= set(ad)
    assert ad["aiq"] == 0.58 and ad["cost_ci95"] == [0.0009, 0.0011] and ad["second_call_rate"] == 0.3
    # both files report always:b on the trio: the earlier notebook (03) speaks for it
    assert trio["policies"]["always:b"]["accuracy"] == 0.6
    assert trio["policies"]["always:b"]["source"] == "pools/trio/03_routing_policies"
    assert trio["sources"] == ["pools/trio/03_routing_policies", "06_budget_allocation", "07_budget_sweep"]
    # a file with AIQ but no policy table is named by its model list; its AIQ stays with its file
    # (AIQ is normalized by the cost range of the policies compared in one file)
    assert trio["aiq_by_source"]["07_budget_sweep"] == {"mip": 0.5, "ndch": 0.45}
    assert "mip" not in trio["policies"]
    assert set(s["pools"]) == {"trio"}
    assert "thompson" not in trio["policies"]  # online curves are not pooled with held-out results
    # diagnostics: one verdict per file (diagnostics_pass) with the failed checks of its reports;
    # one failing file makes the whole verdict fail
    assert s["diagnostics"] == {"02_reliability_model": {"pass": False, "failures": ["post: sigma_slope: R-hat 1.050"]}}
    assert s["diagnostics_pass"] is False
    # notebooks: ok and failed (with the failing cell)
    assert s["notebooks"]["01_data_overview"]["status"] == "ok"
    failed = s["notebooks"]["02_reliability_model"]
    assert failed["status"] == "failed" and failed["error"]["cell"] == 1 and failed["error"]["ename"] == "ValueError"
    # a result written by a full run is flagged in a quick summary
    assert s["mode_mismatch"] == ["01_data_overview"]
    assert s["data_overview"]["oracle_accuracy"] == 0.8
    # long id lists are dropped, the rest kept; all JSON-serializable
    assert "train_question_ids" not in s["results"]["pools/trio/03_routing_policies"]
    json.dumps(s, allow_nan=False)


def test_summary_refuses_unknown_mode_and_bad_json(tmp_path):
    with pytest.raises(InputError, match="--mode"):
        report.build_summary(tmp_path, "fast")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InputError, match="x.json"):
        report.build_summary(tmp_path, "full")


def test_summary_without_diagnostics_is_undecided(tmp_path):
    s = report.build_summary(tmp_path / "missing", "full")
    assert s["diagnostics_pass"] is None and s["pools"] == {} and s["results"] == {}


def test_summary_verdict_is_one_boolean_key(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"diagnostics_pass": True, "diagnostics": {"pre": {"passed": True}}}))
    s = report.build_summary(tmp_path, "full")
    assert s["diagnostics"] == {"a": {"pass": True, "failures": []}} and s["diagnostics_pass"] is True
    (tmp_path / "b.json").write_text(json.dumps({"diagnostics_pass": "yes"}))
    with pytest.raises(InputError, match="b.json: diagnostics_pass must be true or false"):
        report.build_summary(tmp_path, "full")


def test_cli_writes_summary_and_index(run_dirs, capsys):
    reports = run_dirs / "reports"
    figs = run_dirs / "figures"
    (figs / "trio").mkdir(parents=True)
    (figs / "trio" / "frontier.png").write_bytes(b"\x89PNG fake")
    (figs / "trio" / "frontier.svg").write_text("<svg/>")
    assert report.main(["summary", "--results-dir", str(reports / "results"), "--notebooks-dir",
                        str(reports / "notebooks"), "--mode", "quick", "--pool", "trio=s,m,b",
                        "-o", str(reports / "summary.json")]) == 0
    assert report.main(["summary", "--results-dir", str(reports / "results"), "--mode", "quick",
                        "--pool", "trio=", "-o", str(reports / "bad.json")]) == 2
    assert "NAME=A,B,C" in capsys.readouterr().err
    # a bare name is a pool of pools.yaml; an unknown one is refused by name
    assert report.main(["summary", "--results-dir", str(reports / "results"), "--mode", "quick",
                        "--pool", "no-such-pool", "-o", str(reports / "bad.json")]) == 2
    assert "unknown pool 'no-such-pool'" in capsys.readouterr().err
    assert not (reports / "bad.json").exists()
    assert json.loads((reports / "summary.json").read_text())["mode"] == "quick"
    assert report.main(["index", "--reports-dir", str(reports), "--figures-dir", str(figs),
                        "-o", str(reports / "index.html")]) == 0
    page = (reports / "index.html").read_text()
    assert "QUICK run" in page
    assert "html/01_data_overview.html" in page and "html/02_reliability_model.failed.html" in page
    assert "ValueError: boom" in page
    assert "../figures/trio/frontier.png" in page and "../figures/trio/frontier.svg" in page
    assert "bayes-adaptive" in page and "summary.json" in page
    assert "Data overview" in page and "<td>0.200</td>" in page  # USD per 1,000 calls
    # the Markdown table for the README: cost shown per 1,000 questions, cheapest first
    capsys.readouterr()
    assert report.main(["table", str(reports / "summary.json"), "--pool", "trio"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| policy | accuracy")
    assert table[2] == "| bayes-adaptive | 0.610 | [0.520, 0.700] | 1.000 | [0.900, 1.100] | 0.580 |"
    assert report.main(["table", str(reports / "summary.json"), "--pool", "nope"]) == 2
    assert "pool 'nope' not in the summary" in capsys.readouterr().err
    assert (reports / "html" / "01_data_overview.html").stat().st_size > 1000
    # a bad mode is one error line and exit 2 (argparse), a bad file the same through InputError
    (reports / "results" / "broken.json").write_text("[")
    assert report.main(["summary", "--results-dir", str(reports / "results"), "--mode", "full",
                        "-o", str(reports / "s2.json")]) == 2
    assert "broken.json" in capsys.readouterr().err
    assert not (reports / "s2.json").exists()


def _saved_posterior(path, shift: float):
    """A hand-made posterior (2 chains x 1000 iid normal draws, the second shifted by ``shift``)."""
    import arviz as az
    import numpy as np

    from bayes_router.models.reliability import ReliabilityModel

    rng = np.random.default_rng(0)
    draws = rng.normal(size=(2, 1000))
    draws[1] += shift
    rm = ReliabilityModel(stage="pre")
    rm.idata = az.from_dict(posterior={"mu_alpha": draws},
                            sample_stats={"diverging": np.zeros((2, 1000), dtype=bool)})
    if hasattr(rm, "design"):  # the design (coordinates) of a fit lives apart from the model
        from bayes_router.models.reliability.design import Design

        rm.design = Design("pre", ["a", "b"], ["math"])
    else:
        rm.models, rm.subjects = ["a", "b"], ["math"]
    return rm.save(path)


def test_diagnose_a_saved_posterior(tmp_path):
    """Well-mixed chains pass; chains stuck in different places fail on R-hat, with reasons."""
    _saved_posterior(tmp_path / "good.nc", shift=0.0)
    _saved_posterior(tmp_path / "bad.nc", shift=3.0)
    for name in ("good", "bad"):
        assert report.main(["diagnose", str(tmp_path / f"{name}.nc"), "--mode", "quick",
                            "-o", str(tmp_path / "res" / f"{name}.json")]) == 0
    good = json.loads((tmp_path / "res" / "good.json").read_text())
    bad = json.loads((tmp_path / "res" / "bad.json").read_text())
    assert good["stage"] == "pre" and good["quick"] is True and good["models"] == ["a", "b"]
    assert good["diagnostics_pass"] is True and good["diagnostics"]["pre"]["r_hat_max"] <= 1.01
    assert bad["diagnostics_pass"] is False and bad["diagnostics"]["pre"]["r_hat_max"] > 1.5
    assert any("R-hat" in f for f in bad["diagnostics"]["pre"]["failures"])
    s = report.build_summary(tmp_path / "res", "quick")
    assert s["diagnostics"]["good"] == {"pass": True, "failures": []}
    assert s["diagnostics"]["bad"]["pass"] is False
    assert s["diagnostics"]["bad"]["failures"][0].startswith("pre: mu_alpha: R-hat")
    assert s["diagnostics_pass"] is False
    assert report.main(["diagnose", str(tmp_path / "missing.nc"), "-o", str(tmp_path / "e.json")]) == 2
    assert not (tmp_path / "e.json").exists()
