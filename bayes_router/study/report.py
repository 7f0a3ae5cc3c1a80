"""The report of a reproduction run: ``reports/summary.json`` and ``reports/index.html``.

``make reproduce`` executes every notebook with papermill; each notebook writes
its headline numbers to ``reports/results/**.json``. This module

* aggregates those JSON files into one summary (:func:`build_summary`): per
  pool, each policy's accuracy, cost per question (USD) and AIQ with their
  intervals; every diagnostics verdict found (pass/fail); the data overview;
  which notebooks ran and which failed (with the failing cell); and whether
  this was a QUICK or a full run, so the two are never confused;
* exports each executed notebook to HTML with nbconvert and writes an index
  page linking the notebooks, the figures and the summary (:func:`build_index`).

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
import html
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from bayes_router.data.io import atomic_write, write_json
from bayes_router.data.pools import pool_models, resolve_models
from bayes_router.errors import BayesRouterError, InputError

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


def _pool_results(key: str, value: dict, pools: dict[str, list[str]]) -> list[tuple[str, dict]]:
    """(pool name, RESULTS-like dict) pairs found in one result file.

    A file with a ``policies`` mapping is RESULTS-like; one with only ``aiq`` and
    ``models`` (e.g. a budget sweep) contributes its AIQ values alone.
    """
    found = []
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
        nb_dir = Path(notebooks_dir)
        for path in sorted(nb_dir.glob("*.ipynb")):
            summary["notebooks"][path.stem] = {"path": path.as_posix(), **notebook_status(path)}
        for path in sorted((nb_dir / "failed").glob("*.ipynb")):
            if path.stem not in summary["notebooks"]:
                summary["notebooks"][path.stem] = {"path": path.as_posix(), **notebook_status(path)}
                summary["notebooks"][path.stem]["status"] = "failed"

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


# --------------------------------------------------------------------------- HTML


def export_notebook_html(notebook: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Export an executed notebook to a standalone HTML file with nbconvert (atomically)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    return atomic_write(out, lambda p: p.write_text(body, encoding="utf-8"))


def _fmt(x, digits=3):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-2 and x != 0 else f"{x:.{digits}f}"
    if isinstance(x, list) and len(x) == 2:
        return f"[{_fmt(x[0], digits)}, {_fmt(x[1], digits)}]"
    return html.escape(str(x))


def _pool_table(pool: str, entry: dict) -> str:
    rows = []
    policies = sorted(entry["policies"].items(), key=lambda kv: (kv[1].get("cost_per_question") is None, kv[1].get("cost_per_question") or 0))
    for name, p in policies:
        rows.append(
            "<tr>" + "".join(
                f"<td>{c}</td>" for c in (
                    html.escape(name), _fmt(p.get("accuracy")), _fmt(p.get("accuracy_ci95")),
                    _fmt(p.get("cost_per_question"), 6), _fmt(p.get("cost_ci95"), 6), _fmt(p.get("aiq")),
                )
            ) + "</tr>"
        )
    models = ", ".join(html.escape(m) for m in (entry.get("models") or []))
    aiq_parts = []
    for src, values in (entry.get("aiq_by_source") or {}).items():
        cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>"
                        for k, v in sorted(values.items(), key=lambda kv: -(kv[1] or 0)))
        aiq_parts.append(f"<details><summary>AIQ from <code>{html.escape(src)}</code> "
                         "(comparable within this file only)</summary><table><tr><th>policy</th><th>AIQ</th></tr>"
                         f"{cells}</table></details>")
    return (
        f"<h3>Pool <code>{html.escape(pool)}</code></h3><p>Models (cheapest to big): {models}</p>"
        "<table><tr><th>policy</th><th>accuracy</th><th>95% CI</th><th>cost per question (USD)</th>"
        "<th>95% CI (USD)</th><th>AIQ</th></tr>" + "".join(rows) + "</table>" + "".join(aiq_parts)
    )


def build_index(
    reports_dir: str | os.PathLike,
    figures_dir: str | os.PathLike,
    out: str | os.PathLike,
    summary_path: str | os.PathLike | None = None,
) -> Path:
    """Export every executed notebook under ``reports_dir/notebooks`` (and ``notebooks/failed``)
    to ``reports_dir/html/`` and write the index page ``out`` linking them, the figures
    (PNG shown, SVG linked) and the summary. HTML exports are redone only when older
    than their notebook. Links are relative, so the folder can be moved or served."""
    reports_dir = Path(reports_dir)
    out = Path(out)
    figures_dir = Path(figures_dir)
    summary_path = Path(summary_path) if summary_path is not None else reports_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    html_dir = reports_dir / "html"
    nb_paths = sorted((reports_dir / "notebooks").glob("*.ipynb"))
    failed_paths = sorted((reports_dir / "notebooks" / "failed").glob("*.ipynb"))
    ok_stems = {p.stem for p in nb_paths}
    failed_paths = [p for p in failed_paths if p.stem not in ok_stems]

    from tqdm.auto import tqdm

    def rel(p: Path) -> str:
        return os.path.relpath(p.resolve(), out.resolve().parent).replace(os.sep, "/")

    items = []
    for nb_path in tqdm(nb_paths + failed_paths, desc="HTML exports", unit="notebook", disable=None):
        target = html_dir / (nb_path.stem + (".failed" if nb_path in failed_paths else "") + ".html")
        if not target.exists() or target.stat().st_mtime < nb_path.stat().st_mtime:
            export_notebook_html(nb_path, target)
        status = notebook_status(nb_path)
        if nb_path in failed_paths:
            status["status"] = "failed"
        items.append((nb_path, target, status))

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>bayes-router: reproduction report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.failed{color:#b00;font-weight:bold}.ok{color:#070}"
        ".banner{padding:0.6em;background:#fff3cd;border:1px solid #e0c060}"
        "figure{display:inline-block;width:360px;margin:6px;vertical-align:top}figure img{width:100%}"
        "figcaption{font-size:0.85em}</style></head><body>",
        "<h1>bayes-router: reproduction report</h1>",
    ]
    if summary is not None:
        mode = summary.get("mode")
        if mode == "quick":
            parts.append("<p class='banner'><b>QUICK run</b>: small parameters (few questions, few draws). "
                         "Numbers are a smoke test of the pipeline, not results.</p>")
        parts.append(
            f"<p>Mode: <b>{html.escape(str(mode))}</b>; generated {html.escape(str(summary.get('generated_utc')))}; "
            f"seed {html.escape(str(summary.get('seed')))}; command: <code>{html.escape(str(summary.get('command')))}</code>. "
            f"Summary: <a href='{rel(summary_path)}'>{html.escape(summary_path.name)}</a>.</p>"
        )
        if summary.get("mode_mismatch"):
            parts.append("<p class='failed'>Result files from another mode: "
                         + html.escape(", ".join(summary["mode_mismatch"])) + "</p>")
    parts.append("<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>time (s)</th><th>failing cell</th></tr>")
    for nb_path, target, status in items:
        err = status.get("error")
        err_txt = f"code cell {err['cell']}: {err['ename']}: {err['evalue']}" if err else ""
        dur = status.get("duration_s")
        parts.append(
            f"<tr><td><a href='{rel(target)}'>{html.escape(nb_path.stem)}</a> "
            f"(<a href='{rel(nb_path)}'>ipynb</a>)</td><td class='{status['status']}'>{status['status']}</td>"
            f"<td>{'' if dur is None else f'{dur:.0f}'}</td><td>{html.escape(err_txt)}</td></tr>"
        )
    parts.append("</table>")
    if summary is not None:
        ov = summary.get("data_overview") or {}
        if isinstance(ov.get("models"), dict) and ov["models"]:
            parts.append(
                f"<h2>Data overview</h2><p>{_fmt(ov.get('n_models'))} models × {_fmt(ov.get('n_common_questions'))} "
                f"common questions; share some model answers correctly (the ceiling of any router): "
                f"{_fmt(ov.get('oracle_accuracy'))}.</p><table><tr><th>model</th><th>accuracy</th><th>95% CI</th>"
                "<th>USD per 1,000 calls</th><th>completion tokens per call</th></tr>"
            )
            for m, r in ov["models"].items():
                cost = r.get("cost_per_call_usd")
                parts.append(
                    f"<tr><td>{html.escape(m)}</td><td>{_fmt(r.get('accuracy'))}</td><td>{_fmt(r.get('accuracy_ci95'))}</td>"
                    f"<td>{'–' if cost is None else f'{cost * 1000:.3f}'}</td>"
                    f"<td>{_fmt(r.get('completion_tokens_mean'), 0)}</td></tr>"
                )
            parts.append("</table>")
        if summary.get("pools"):
            parts.append("<h2>Policies per pool (held-out questions)</h2>")
            for pool, entry in summary["pools"].items():
                parts.append(_pool_table(pool, entry))
        diag = summary.get("diagnostics") or {}
        if diag:
            verdict = summary.get("diagnostics_pass")
            parts.append(f"<h2>Diagnostics: <span class='{'ok' if verdict else 'failed'}'>"
                         f"{'all pass' if verdict else 'some fail'}</span></h2><ul>")
            for src, v in diag.items():
                why = f" ({html.escape('; '.join(v['failures']))})" if v.get("failures") else ""
                parts.append(f"<li>{html.escape(src)}: "
                             f"<span class='{'ok' if v['pass'] else 'failed'}'>{'pass' if v['pass'] else 'FAIL'}</span>"
                             f"{why}</li>")
            parts.append("</ul>")
    figures = sorted(figures_dir.rglob("*.png")) if figures_dir.is_dir() else []
    parts.append(f"<h2>Figures ({len(figures)})</h2>")
    for png in figures:
        svg = png.with_suffix(".svg")
        name = png.relative_to(figures_dir).with_suffix("").as_posix()
        svg_link = f" · <a href='{rel(svg)}'>SVG</a>" if svg.exists() else ""
        parts.append(f"<figure><a href='{rel(png)}'><img src='{rel(png)}' alt='{html.escape(name)}'></a>"
                     f"<figcaption>{html.escape(name)}{svg_link}</figcaption></figure>")
    parts.append("</body></html>")
    text = "\n".join(parts)
    return atomic_write(out, lambda p: p.write_text(text, encoding="utf-8"))


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
