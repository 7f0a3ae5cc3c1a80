"""The HTML side of a reproduction report: each executed notebook exported with nbconvert and
``reports/index.html`` linking them, the figures and the summary (:func:`build_index`).

The summary itself is built by :mod:`bayes_router.study.report`; its command line
(``python -m bayes_router.study.report index``) calls :func:`build_index`.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

from bayes_router.data.io import atomic_write

_STYLE = (
    "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.failed{color:#b00;font-weight:bold}.ok{color:#070}"
    ".banner{padding:0.6em;background:#fff3cd;border:1px solid #e0c060}"
    "figure{display:inline-block;width:360px;margin:6px;vertical-align:top}figure img{width:100%}"
    "figcaption{font-size:0.85em}</style></head><body>"
)


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


def _exported_notebooks(reports_dir: Path) -> list[tuple[Path, Path, dict]]:
    """(executed notebook, its HTML export, its status) for every notebook that ran or failed;
    exports are redone only when older than their notebook."""
    from tqdm.auto import tqdm

    from bayes_router.study.report import notebook_status

    nb_paths = sorted((reports_dir / "notebooks").glob("*.ipynb"))
    ok_stems = {p.stem for p in nb_paths}
    failed_paths = [p for p in sorted((reports_dir / "notebooks" / "failed").glob("*.ipynb")) if p.stem not in ok_stems]
    items = []
    for nb_path in tqdm(nb_paths + failed_paths, desc="HTML exports", unit="notebook", disable=None):
        target = reports_dir / "html" / (nb_path.stem + (".failed" if nb_path in failed_paths else "") + ".html")
        if not target.exists() or target.stat().st_mtime < nb_path.stat().st_mtime:
            export_notebook_html(nb_path, target)
        status = notebook_status(nb_path)
        if nb_path in failed_paths:
            status["status"] = "failed"
        items.append((nb_path, target, status))
    return items


def _run_header(summary: dict, summary_link: str, summary_name: str) -> list[str]:
    parts = []
    mode = summary.get("mode")
    if mode == "quick":
        parts.append("<p class='banner'><b>QUICK run</b>: small parameters (few questions, few draws). "
                     "Numbers are a smoke test of the pipeline, not results.</p>")
    parts.append(
        f"<p>Mode: <b>{html.escape(str(mode))}</b>; generated {html.escape(str(summary.get('generated_utc')))}; "
        f"seed {html.escape(str(summary.get('seed')))}; command: <code>{html.escape(str(summary.get('command')))}</code>. "
        f"Summary: <a href='{summary_link}'>{html.escape(summary_name)}</a>.</p>"
    )
    if summary.get("mode_mismatch"):
        parts.append("<p class='failed'>Result files from another mode: "
                     + html.escape(", ".join(summary["mode_mismatch"])) + "</p>")
    return parts


def _notebook_table(items, rel) -> list[str]:
    parts = ["<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>time (s)</th><th>failing cell</th></tr>"]
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
    return parts


def _data_overview(ov: dict) -> list[str]:
    if not (isinstance(ov.get("models"), dict) and ov["models"]):
        return []
    parts = [
        f"<h2>Data overview</h2><p>{_fmt(ov.get('n_models'))} models × {_fmt(ov.get('n_common_questions'))} "
        f"common questions; share some model answers correctly (the ceiling of any router): "
        f"{_fmt(ov.get('oracle_accuracy'))}.</p><table><tr><th>model</th><th>accuracy</th><th>95% CI</th>"
        "<th>USD per 1,000 calls</th><th>completion tokens per call</th></tr>"
    ]
    for m, r in ov["models"].items():
        cost = r.get("cost_per_call_usd")
        parts.append(
            f"<tr><td>{html.escape(m)}</td><td>{_fmt(r.get('accuracy'))}</td><td>{_fmt(r.get('accuracy_ci95'))}</td>"
            f"<td>{'–' if cost is None else f'{cost * 1000:.3f}'}</td>"
            f"<td>{_fmt(r.get('completion_tokens_mean'), 0)}</td></tr>"
        )
    parts.append("</table>")
    return parts


def _diagnostics(summary: dict) -> list[str]:
    diag = summary.get("diagnostics") or {}
    if not diag:
        return []
    verdict = summary.get("diagnostics_pass")
    parts = [f"<h2>Diagnostics: <span class='{'ok' if verdict else 'failed'}'>"
             f"{'all pass' if verdict else 'some fail'}</span></h2><ul>"]
    for src, v in diag.items():
        why = f" ({html.escape('; '.join(v['failures']))})" if v.get("failures") else ""
        parts.append(f"<li>{html.escape(src)}: "
                     f"<span class='{'ok' if v['pass'] else 'failed'}'>{'pass' if v['pass'] else 'FAIL'}</span>"
                     f"{why}</li>")
    parts.append("</ul>")
    return parts


def _figures(figures_dir: Path, rel) -> list[str]:
    figures = sorted(figures_dir.rglob("*.png")) if figures_dir.is_dir() else []
    parts = [f"<h2>Figures ({len(figures)})</h2>"]
    for png in figures:
        svg = png.with_suffix(".svg")
        name = png.relative_to(figures_dir).with_suffix("").as_posix()
        svg_link = f" · <a href='{rel(svg)}'>SVG</a>" if svg.exists() else ""
        parts.append(f"<figure><a href='{rel(png)}'><img src='{rel(png)}' alt='{html.escape(name)}'></a>"
                     f"<figcaption>{html.escape(name)}{svg_link}</figcaption></figure>")
    return parts


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
    reports_dir, out, figures_dir = Path(reports_dir), Path(out), Path(figures_dir)
    summary_path = Path(summary_path) if summary_path is not None else reports_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None

    def rel(p: Path) -> str:
        return os.path.relpath(p.resolve(), out.resolve().parent).replace(os.sep, "/")

    items = _exported_notebooks(reports_dir)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>bayes-router: reproduction report</title>",
             _STYLE, "<h1>bayes-router: reproduction report</h1>"]
    if summary is not None:
        parts += _run_header(summary, rel(summary_path), summary_path.name)
    parts += _notebook_table(items, rel)
    if summary is not None:
        parts += _data_overview(summary.get("data_overview") or {})
        if summary.get("pools"):
            parts.append("<h2>Policies per pool (held-out questions)</h2>")
            parts += [_pool_table(pool, entry) for pool, entry in summary["pools"].items()]
        parts += _diagnostics(summary)
    parts += _figures(figures_dir, rel)
    parts.append("</body></html>")
    text = "\n".join(parts)
    return atomic_write(out, lambda p: p.write_text(text, encoding="utf-8"))
