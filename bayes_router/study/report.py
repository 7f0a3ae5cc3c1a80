"""The report of a reproduction run: ``reports/summary.json`` and ``reports/index.html``.

``make reproduce`` executes every notebook with papermill; each notebook writes
its headline numbers to ``reports/results/**.json``. This module

* aggregates those JSON files into one summary (:func:`build_summary`): per
  pool, each policy's accuracy, cost per question (USD) and AIQ with their
  intervals; every diagnostics verdict found (pass/fail); the data overview;
  which notebooks ran and which failed (with the failing cell); and whether
  this was a QUICK or a full run, so the two are never confused;
* exports each executed notebook to HTML with nbconvert and writes an index
  page linking the notebooks, the figures and the summary
  (:func:`~bayes_router.study.report_html.build_index`).

Command line (used by the Makefile)::

    python -m bayes_router.study.report summary --results-dir reports/results \\
        --notebooks-dir reports/notebooks --mode quick -o reports/summary.json
    python -m bayes_router.study.report diagnose data/posteriors/trio_pre.nc --mode quick \\
        -o reports/results/fit/trio_pre.json
    python -m bayes_router.study.report index --reports-dir reports --figures-dir figures \\
        -o reports/index.html

Result files are read as the notebooks write them. A file that looks like
DESIGN.md's RESULTS.json (a ``policies`` mapping, optional ``aiq``) is a pool
result; its pool name is its ``pool`` key, else the folder it sits in under
``results/pools/``, else the file name. A file's convergence verdict is its one
top-level key ``diagnostics_pass`` (a boolean), written with the convergence
reports under ``diagnostics`` by :func:`bayes_router.study.notebook.write_results`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from bayes_router.data.io import write_json
from bayes_router.data.pools import pool_models, resolve_models
from bayes_router.errors import BayesRouterError, InputError
from bayes_router.study.report_html import build_index

SUMMARY_SCHEMA_VERSION = 1
#: Fields every pool policy entry of summary.json carries (None where a notebook did not report it).
POLICY_FIELDS = ("accuracy", "accuracy_ci95", "cost_per_question", "cost_ci95", "aiq")
_BULKY_SUFFIXES = ("_question_ids",)


# --------------------------------------------------------------------------- reading


def read_results(results_dir: str | os.PathLike) -> dict[str, dict]:
    """Every ``*.json`` under ``results_dir`` (recursively): relative path without ``.json`` -> parsed JSON."""
    results_dir = Path(results_dir)
    out: dict[str, dict] = {}
    if not results_dir.is_dir():
        return out
    for path in sorted(results_dir.rglob("*.json")):
        if path.name.startswith("."):
            continue
        key = path.relative_to(results_dir).with_suffix("").as_posix()
        try:
            value = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(value, dict):
            out[key] = value
    return out


def notebook_status(path: str | os.PathLike) -> dict:
    """What papermill recorded in an executed notebook: ok or failed, duration (s), failing cell.

    Returns ``{"status": "ok"|"failed", "duration_s": float|None, "parameters": {...},
    "error": None | {"cell": index among code cells, "ename": str, "evalue": str, "source": str}}``.
    """
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    meta = nb.metadata.get("papermill", {})
    error = None
    code_index = -1
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        pm = cell.metadata.get("papermill", {})
        errs = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if pm.get("status") == "failed" or pm.get("exception") or errs:
            e = errs[0] if errs else {}
            error = {
                "cell": code_index,
                "ename": e.get("ename", ""),
                "evalue": str(e.get("evalue", ""))[:500],
                "source": cell.source[:500],
            }
            break
    failed = bool(meta.get("exception")) or error is not None
    return {
        "status": "failed" if failed else "ok",
        "duration_s": meta.get("duration"),
        "parameters": meta.get("parameters", {}),
        "error": error,
    }


# --------------------------------------------------------------------------- aggregation


def _pool_name(key: str, value: dict, pools: dict[str, list[str]]) -> str:
    """A result's pool: its ``pool`` key, else its folder under ``pools/``, else the pool
    whose model list it matches, else its file name."""
    parts = key.split("/")
    if value.get("pool"):
        return str(value["pool"])
    if len(parts) >= 3 and parts[0] == "pools":
        return parts[1]
    models = value.get("models")
    for name, members in pools.items():
        if models and list(models) == list(members):
            return name
    return parts[-1]


def _is_online(value: dict) -> bool:
    policies = value.get("policies")
    return isinstance(policies, dict) and any(isinstance(p, dict) and "curve" in p for p in policies.values())


def _pool_results(key: str, value: dict, pools: dict[str, list[str]]) -> list[tuple[str, dict]]:
    """(pool name, RESULTS-like dict) pairs found in one result file.

    A file with a ``policies`` mapping is RESULTS-like; one with only ``aiq`` and
    ``models`` (e.g. a budget sweep) contributes its AIQ values alone. ONLINE.json
    (policies with learning ``curve``s) is left out: its numbers are cumulative over a
    stream of questions, not held-out comparisons on one test set.
    """
    found = []
    if _is_online(value):
        return found
    if isinstance(value.get("policies"), dict) or (isinstance(value.get("aiq"), dict) and value.get("models")):
        found.append((_pool_name(key, value, pools), value))
    sub_pools = value.get("pools")
    if isinstance(sub_pools, dict):
        for name, sub in sub_pools.items():
            if isinstance(sub, dict) and isinstance(sub.get("policies"), dict):
                found.append((str(name), sub))
    return found


def _policy_entry(name: str, stats: dict, aiq: dict, source: str) -> dict:
    entry = {f: stats.get(f) for f in POLICY_FIELDS if f != "aiq"}
    entry["aiq"] = aiq.get(name, stats.get("aiq"))
    for extra in ("calls_per_question", "second_call_rate"):
        if extra in stats:
            entry[extra] = stats[extra]
    routellm = stats.get("routellm")
    if isinstance(routellm, dict):  # RouteLLM's metrics against the pool's weakest and strongest model
        entry.update({k: routellm.get(k) for k in ("apgr", "apgr_ci95", "cpt", "cpt_ci95")})
    entry["source"] = source
    return entry


def file_verdict(key: str, value: dict) -> dict | None:
    """A result file's convergence verdict: ``{"pass": bool, "failures": [str]}``, or None
    when it has no ``diagnostics_pass`` key.

    ``failures`` are the failed checks of the reports under ``diagnostics``
    (``"<name>: <check>"``). A ``diagnostics_pass`` that is not a boolean is refused.
    """
    from bayes_router.study.notebook import VERDICT_KEY

    if VERDICT_KEY not in value:
        return None
    verdict = value[VERDICT_KEY]
    if not isinstance(verdict, bool):
        raise InputError(f"{key}.json: {VERDICT_KEY} must be true or false, got {verdict!r}")
    reports = value.get("diagnostics")
    failures = [f"{name}: {f}" for name, r in (reports or {}).items() if isinstance(r, dict)
                for f in r.get("failures") or []] if isinstance(reports, dict) else []
    return {"pass": verdict, "failures": failures}


def _strip_bulky(value):
    if isinstance(value, dict):
        return {k: _strip_bulky(v) for k, v in value.items() if not str(k).endswith(_BULKY_SUFFIXES)}
    if isinstance(value, list):
        return [_strip_bulky(v) for v in value]
    return value


def _quick_flag(value: dict):
    for k in ("quick", "QUICK"):
        if isinstance(value.get(k), bool):
            return value[k]
    return None


def _notebook_statuses(nb_dir: Path) -> dict[str, dict]:
    """Executed notebook name -> its path and :func:`notebook_status`; those only in ``failed/`` failed."""
    out = {}
    for path in sorted(nb_dir.glob("*.ipynb")):
        out[path.stem] = {"path": path.as_posix(), **notebook_status(path)}
    for path in sorted((nb_dir / "failed").glob("*.ipynb")):
        if path.stem not in out:
            out[path.stem] = {"path": path.as_posix(), **notebook_status(path), "status": "failed"}
    return out


def build_summary(
    results_dir: str | os.PathLike,
    mode: str,
    notebooks_dir: str | os.PathLike | None = None,
    seed: int | None = None,
    command: str | None = None,
    pools: dict[str, list[str]] | None = None,
) -> dict:
    """Aggregate the notebooks' result files into the summary of a run.

    ``mode`` is ``"quick"`` or ``"full"``. Keys of the returned dict:
    ``schema_version``, ``mode``, ``generated_utc``, ``seed``, ``command``;
    ``notebooks`` (executed notebook name -> status, duration in seconds,
    failing cell); ``pools`` (pool -> ``models``, ``big_model``,
    ``policies``: name -> accuracy, accuracy_ci95, cost_per_question (USD),
    cost_ci95, aiq, source file; ``aiq_by_source``: file -> policy -> AIQ, since
    AIQ is normalized by the cost range of the policies compared in one file and
    so is comparable only within a file); ``diagnostics`` (source file -> its
    verdict, :func:`file_verdict`) and ``diagnostics_pass`` (every file's verdict
    passes; None if no file has one); ``data_overview`` (notebook 01's headline); ``claims``
    (the claims table of notebook 07: one row per claim and pool); ``mode_mismatch``
    (result files whose own ``quick`` flag disagrees with ``mode``); and
    ``results`` (every result file, without the long question-id lists).
    """
    if mode not in ("quick", "full"):
        raise InputError(f"--mode must be 'quick' or 'full', got {mode!r}")
    pools = dict(pools or {})
    results = read_results(results_dir)
    summary: dict = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "mode": mode,
        "generated_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "command": command,
        "notebooks": {},
        "pools": {},
        "diagnostics": {},
        "diagnostics_pass": None,
        "data_overview": None,
        "claims": None,
        "mode_mismatch": [],
        "results": {},
    }
    if notebooks_dir is not None:
        summary["notebooks"] = _notebook_statuses(Path(notebooks_dir))

    # notebook order (by file name, e.g. 03_ before 06_) decides which file speaks for a
    # policy that several report on the same pool
    for key, value in sorted(results.items(), key=lambda kv: (kv[0].split("/")[-1], kv[0])):
        flag = _quick_flag(value)
        if flag is not None and flag != (mode == "quick"):
            summary["mode_mismatch"].append(key)
        for pool, res in _pool_results(key, value, pools):
            entry = summary["pools"].setdefault(
                pool, {"models": None, "big_model": None, "policies": {}, "aiq_by_source": {}, "sources": []})
            models = res.get("models")
            if models and entry["models"] is None:
                entry["models"] = list(models)
                entry["big_model"] = models[-1]
            entry["sources"].append(key)
            aiq = res.get("aiq") or {}
            if aiq:
                entry["aiq_by_source"][key] = dict(aiq)
            for name, stats in (res.get("policies") or {}).items():
                if name not in entry["policies"] and isinstance(stats, dict):  # first notebook wins
                    entry["policies"][name] = _policy_entry(name, stats, aiq, key)
        verdict = file_verdict(key, value)
        if verdict is not None:
            summary["diagnostics"][key] = verdict
        if key.split("/")[-1].startswith("01_data_overview") and summary["data_overview"] is None:
            summary["data_overview"] = _strip_bulky(value)
        if isinstance(value.get("claims"), list) and summary["claims"] is None:
            summary["claims"] = value["claims"]
        summary["results"][key] = _strip_bulky(value)
    all_verdicts = [v["pass"] for v in summary["diagnostics"].values()]
    summary["diagnostics_pass"] = all(all_verdicts) if all_verdicts else None
    return summary


def posterior_diagnostics(posterior: str | os.PathLike, mode: str | None = None) -> dict:
    """Convergence diagnostics of a saved reliability posterior, as a result file for the summary.

    Returns ``{"posterior": path, "stage", "models", "covariates_used", "quick",
    "diagnostics_pass": bool, "diagnostics": {stage: {...}}}`` where the report is
    :meth:`bayes_router.models.diagnostics.ConvergenceReport.to_dict` (R-hat, bulk and
    tail ESS, divergences, E-BFMI against stated thresholds, and the failed checks).
    """
    from bayes_router.models.diagnostics import convergence_report
    from bayes_router.models.reliability import ReliabilityModel
    from bayes_router.study.notebook import diagnostics_fields

    rm = ReliabilityModel.load(posterior)
    return {
        "posterior": Path(posterior).as_posix(),
        "stage": rm.stage,
        "models": list(rm.models),
        "covariates_used": list(rm.covariates_used),
        "quick": None if mode is None else mode == "quick",
        **diagnostics_fields({rm.stage: convergence_report(rm.idata)}),
    }


def policy_table_markdown(summary: dict, pool: str) -> str:
    """A Markdown table of one pool's policies from a summary: accuracy and cost per question
    (USD, shown per 1,000 questions) with 95% intervals, AIQ; sorted by cost."""
    if pool not in summary.get("pools", {}):
        raise InputError(f"pool {pool!r} not in the summary (it has {sorted(summary.get('pools', {}))})")
    entry = summary["pools"][pool]

    def ci(v, scale=1.0, fmt="{:.3f}"):
        return "–" if not v else f"[{fmt.format(v[0] * scale)}, {fmt.format(v[1] * scale)}]"

    lines = [
        "| policy | accuracy | 95% CI | USD per 1,000 questions | 95% CI | AIQ |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = sorted(entry["policies"].items(), key=lambda kv: kv[1].get("cost_per_question") or 0.0)
    for name, p in rows:
        acc, cost, aiq = p.get("accuracy"), p.get("cost_per_question"), p.get("aiq")
        lines.append(
            f"| {name} | {'–' if acc is None else f'{acc:.3f}'} | {ci(p.get('accuracy_ci95'))} | "
            f"{'–' if cost is None else f'{cost * 1000:.3f}'} | {ci(p.get('cost_ci95'), 1000.0)} | "
            f"{'–' if aiq is None else f'{aiq:.3f}'} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bayes_router.study.report",
        description="Aggregate notebook results into reports/summary.json and build reports/index.html.",
    )
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("summary", help="aggregate reports/results/**.json into summary.json")
    s.add_argument("--results-dir", required=True, help="folder of the notebooks' result JSON files")
    s.add_argument("--notebooks-dir", default=None, help="folder of executed notebooks (their status is recorded)")
    s.add_argument("--mode", required=True, choices=("quick", "full"), help="QUICK or full run")
    s.add_argument("--seed", type=int, default=None, help="the run's seed, recorded")
    s.add_argument("--command", default=None, help="the command that produced the run, recorded")
    s.add_argument("--pool", action="append", default=[], metavar="NAME[=A,B,C]",
                   help="a pool of pools.yaml, or NAME=A,B,C for another model list (repeatable)")
    s.add_argument("-o", "--output", required=True, help="summary.json to write")
    d = sub.add_parser("diagnose", help="convergence diagnostics of a saved posterior, as JSON")
    d.add_argument("posterior", help="POSTERIOR.nc written by `bayes-router fit`")
    d.add_argument("--mode", choices=("quick", "full"), default=None, help="QUICK or full run, recorded")
    d.add_argument("-o", "--output", required=True, help="JSON to write")
    t = sub.add_parser("table", help="print one pool's policy table (Markdown) from a summary.json")
    t.add_argument("summary", help="summary.json")
    t.add_argument("--pool", required=True, help="pool name, e.g. trio")
    i = sub.add_parser("index", help="HTML exports of executed notebooks and the index page")
    i.add_argument("--reports-dir", required=True, help="folder holding notebooks/, results/, summary.json")
    i.add_argument("--figures-dir", required=True, help="folder of the figures (PNG and SVG)")
    i.add_argument("-o", "--output", required=True, help="index.html to write")
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = _parser().parse_args(None if argv is None else list(argv))
    try:
        if args.what == "summary":
            pools = {}
            for spec in args.pool:
                name, sep, models = spec.partition("=")
                if not name or (sep and not models):
                    raise InputError(f"--pool {spec!r}: expected NAME or NAME=A,B,C")
                pools[name] = resolve_models(models) if sep else pool_models(name)
            summary = build_summary(args.results_dir, args.mode, args.notebooks_dir, args.seed, args.command, pools)
            write_json(args.output, summary)
            n_fail = sum(1 for v in summary["notebooks"].values() if v["status"] != "ok")
            print(f"{args.output}: {len(summary['results'])} result files, {len(summary['pools'])} pools, "
                  f"{len(summary['notebooks'])} notebooks ({n_fail} failed), diagnostics_pass={summary['diagnostics_pass']}")
        elif args.what == "table":
            path = Path(args.summary)
            if not path.exists():
                raise InputError(f"{path}: no such summary")
            print(policy_table_markdown(json.loads(path.read_text()), args.pool))
        elif args.what == "diagnose":
            result = posterior_diagnostics(args.posterior, args.mode)
            write_json(args.output, result)
            failures = result["diagnostics"][result["stage"]]["failures"]
            verdict = "pass" if result["diagnostics_pass"] else "FAIL: " + "; ".join(failures)
            print(f"{args.output}: {args.posterior} ({result['stage']}-call): {verdict}")
        else:
            path = build_index(args.reports_dir, args.figures_dir, args.output)
            print(f"{path}: written")
    except BayesRouterError as exc:
        print(f"bayes_router.study.report {args.what}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
