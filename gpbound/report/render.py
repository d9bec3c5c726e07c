"""HTML and Markdown writers of the report (one page each, same content).

The HTML page is self-contained: the CSS is inline and every figure is embedded as a
``data:image/png;base64`` URI (its PNG file also lies next to ``index.html``, named in
the image's ``data-file`` attribute, for the Markdown twin and for reuse).
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Dict, List, Sequence

from .checks import CheckResult

__all__ = ["render_html", "render_markdown", "format_number"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
 padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right} th{background:#f3f3f3}
td.l,th.l{text-align:left}
.PASS{color:#fff;background:#1a7f37;padding:.1em .5em;border-radius:3px;font-weight:bold}
.FAIL{color:#fff;background:#cf222e;padding:.1em .5em;border-radius:3px;font-weight:bold}
.SKIP{color:#fff;background:#8c959f;padding:.1em .5em;border-radius:3px;font-weight:bold}
.ERROR{color:#fff;background:#9a6700;padding:.1em .5em;border-radius:3px;font-weight:bold}
dl.claim dt{font-weight:bold;margin-top:.4em} dl.claim dd{margin-left:1.2em}
.finding{background:#fff8c5;border-left:4px solid #d4a72c;padding:.4em .8em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:.8em}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.meta{color:#555;font-size:.9em}
"""


def format_number(v: Any) -> str:
    """Short, exact-enough text for a table cell."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    return str(v)


def _esc(s: Any) -> str:
    return html.escape(str(s))


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["<table><tr>"]
    out += [f'<th class="l">{_esc(c)}</th>' if i == 0 else f"<th>{_esc(c)}</th>" for i, c in enumerate(columns)]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>")
        for i, v in enumerate(row):
            cls = ' class="l"' if i == 0 or isinstance(v, str) else ""
            text = format_number(v)
            if text in ("PASS", "FAIL", "SKIP", "ERROR"):
                text_html = f'<span class="{text}">{text}</span>'
            else:
                text_html = _esc(text)
            out.append(f"<td{cls}>{text_html}</td>")
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v):
        return format_number(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(results: Sequence[CheckResult], meta: Dict[str, Any]) -> str:
    """The overall verdict: every check PASS, or the counts (a SKIP is not a pass)."""
    if meta.get("verdict"):
        return str(meta["verdict"])
    statuses = [r.status for r in results]
    if statuses and all(s == "PASS" for s in statuses):
        return "every check passed"
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("FAIL", "ERROR", "SKIP"))
    return f"not every check passed: {counts} (a skipped check verified nothing and is not a pass)"


def _summary_rows(results: Sequence[CheckResult]) -> List[List[Any]]:
    rows = []
    for r in results:
        n_ok = sum(c.holds for c in r.comparisons)
        rows.append([r.title, r.preset or "-", r.status, f"{n_ok}/{len(r.comparisons)}",
                     f"{r.wall_s:.1f}", f"{r.cpu_s:.1f}"])
    return rows


_SUMMARY_COLS = ["check", "measured on", "verdict", "comparisons holding", "wall (s)", "CPU (s)"]
_COMP_COLS = ["comparison", "measured", "relation", "bound", "tolerance", "holds"]


def _comparison_rows(r: CheckResult, limit: int = 60) -> List[List[Any]]:
    comps = r.comparisons
    # show failing comparisons first, then the rest, at most `limit`
    ordered = [c for c in comps if not c.holds] + [c for c in comps if c.holds]
    return [[c.label, c.lhs, c.relation, c.rhs, c.slack, "PASS" if c.holds else "FAIL"]
            for c in ordered[:limit]]


def _img_src(fig: str, figure_dir) -> str:
    """``data:`` URI of ``figure_dir/fig`` (a PNG), or the relative name if there is no such file."""
    if figure_dir is not None:
        path = Path(figure_dir) / fig
        if path.is_file():
            return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return fig


def render_html(results: Sequence[CheckResult], meta: Dict[str, Any], figure_dir=None) -> str:
    """The report as one self-contained HTML page (inline CSS; figures from ``figure_dir`` embedded
    as base64 PNG data URIs, each naming its file in ``data-file``; relative links without ``figure_dir``)."""
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{_esc(meta.get('title', 'gpbound report'))}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{_esc(meta.get('title', 'gpbound report'))}</h1>",
             f"<p class='meta'>{_esc(meta.get('subtitle', ''))}</p>",
             "<p class='meta'>" + " &middot; ".join(
                 f"{_esc(k)}: {_esc(format_number(v))}" for k, v in meta.get("facts", {}).items()) + "</p>",
             "<h2>Summary</h2>",
             f"<p><b>{_esc(_verdict(results, meta))}</b></p>",
             _html_table(_SUMMARY_COLS, _summary_rows(results))]
    keys = [r for r in results if r.finding]
    if keys:  # the key findings (e.g. the tightness ratios, eq. 37) in the summary, each linked to its section
        parts.append("<h3>Key findings</h3><ul>" + "".join(
            f"<li><a href='#{_esc(r.name)}'>{_esc(r.title)}</a>: {_esc(r.finding)}</li>" for r in keys) + "</ul>")
    intro = meta.get("intro")
    if intro:
        parts.append(f"<p>{_esc(intro)}</p>")
    for r in results:
        parts.append(f"<h2 id='{_esc(r.name)}'>{_esc(r.title)} <span class='{r.status}'>{r.status}</span></h2>")
        if r.skipped:
            parts.append(f"<p>Skipped (not a pass: nothing was verified): {_esc(r.skipped)}</p>")
            continue
        if r.error:
            parts.append(f"<p>The check raised an error:</p><pre>{_esc(r.error)}</pre>")
            continue
        parts.append("<dl class='claim'>")
        for label, text in (("Bound (claim)", r.bound), ("Measurement", r.measurement),
                            ("Tolerance", r.tolerance), ("Measured on", r.preset or "-")):
            parts.append(f"<dt>{label}</dt><dd>{_esc(text)}</dd>")
        parts.append("</dl>")
        if r.finding:
            parts.append(f"<p class='finding'><b>Finding.</b> {_esc(r.finding)}</p>")
        for fig in r.figures:
            parts.append(f"<p><img src='{_esc(_img_src(fig, figure_dir))}' data-file='{_esc(fig)}' "
                         f"alt='{_esc(r.title)}'></p>")
        if r.table:
            parts.append(_html_table(r.table["columns"], r.table["rows"]))
        n_fail = len(r.failed_comparisons)
        parts.append(f"<p>Comparisons: {len(r.comparisons) - n_fail} of {len(r.comparisons)} hold"
                     + (f"; shown below (failing first, at most 60)." if r.comparisons else ".") + "</p>")
        parts.append(_html_table(_COMP_COLS, _comparison_rows(r)))
        if r.details:
            parts.append(f"<p>{_esc(r.details)}</p>")
    parts.append(f"<p class='meta'>{_esc(meta.get('footer', ''))}</p></body></html>")
    return "\n".join(parts)


def render_markdown(results: Sequence[CheckResult], meta: Dict[str, Any]) -> str:
    """The Markdown twin of :func:`render_html`."""
    out = [f"# {meta.get('title', 'gpbound report')}", "", meta.get("subtitle", ""), ""]
    facts = meta.get("facts", {})
    if facts:
        out += [" · ".join(f"{k}: {format_number(v)}" for k, v in facts.items()), ""]
    out += ["## Summary", "", f"**{_verdict(results, meta)}**", "", _md_table(_SUMMARY_COLS, _summary_rows(results)), ""]
    keys = [r for r in results if r.finding]
    if keys:
        out += ["### Key findings", ""] + [f"- **{r.title}:** {r.finding}" for r in keys] + [""]
    if meta.get("intro"):
        out += [meta["intro"], ""]
    for r in results:
        out += [f"## {r.title} — **{r.status}**", ""]
        if r.skipped:
            out += [f"Skipped (not a pass: nothing was verified): {r.skipped}", ""]
            continue
        if r.error:
            out += ["The check raised an error:", "", "```", r.error.rstrip(), "```", ""]
            continue
        out += [f"- **Bound (claim):** {r.bound}", f"- **Measurement:** {r.measurement}",
                f"- **Tolerance:** {r.tolerance}", f"- **Measured on:** {r.preset or '-'}", ""]
        if r.finding:
            out += [f"> **Finding.** {r.finding}", ""]
        for fig in r.figures:
            out += [f"![{r.title}]({fig})", ""]
        if r.table:
            out += [_md_table(r.table["columns"], r.table["rows"]), ""]
        n_fail = len(r.failed_comparisons)
        out += [f"Comparisons: {len(r.comparisons) - n_fail} of {len(r.comparisons)} hold (failing first, at most 60):",
                "", _md_table(_COMP_COLS, _comparison_rows(r)), ""]
        if r.details:
            out += [r.details, ""]
    if meta.get("footer"):
        out += [meta["footer"], ""]
    return "\n".join(out)
