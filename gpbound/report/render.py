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
.VACUOUS{color:#1a7f37;background:#fff;border:1px solid #1a7f37;padding:0 .4em;border-radius:3px}
.guarantee{background:#ddf4ff;border-left:4px solid #0969da;padding:.4em .8em}
details{margin:.6em 0} details>summary{cursor:pointer;color:#0969da}
nav.toc a{text-decoration:none} td a{text-decoration:none}
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


_STATUSES = ("PASS", "FAIL", "SKIP", "ERROR")


def _is_status(text: str) -> bool:
    return text in _STATUSES or text.startswith("PASS (vacuous")


def _status_html(text: str) -> str:
    """A coloured badge: PASS / FAIL / SKIP / ERROR, or an outlined one for a vacuous PASS."""
    if text.startswith("PASS (vacuous"):
        return f'<span class="VACUOUS">{_esc(text)}</span>'
    return f'<span class="{text}">{_esc(text)}</span>'


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["<table><tr>"]
    out += [f'<th class="l">{_esc(c)}</th>' if i == 0 else f"<th>{_esc(c)}</th>" for i, c in enumerate(columns)]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>")
        for i, v in enumerate(row):
            cls = ' class="l"' if i == 0 or isinstance(v, str) else ""
            text = format_number(v)
            text_html = _status_html(text) if _is_status(text) else _esc(text)
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


#: a check's own table, or its list of comparisons, longer than this is collapsed in <details>
COLLAPSE_ROWS = 8
#: at most this many comparisons are listed (failing first)
MAX_COMPARISONS = 60


def _holding(r: CheckResult) -> str:
    n_ok = sum(c.holds for c in r.comparisons)
    vac = len(r.vacuous_comparisons)
    return f"{n_ok}/{len(r.comparisons)}" + (f" ({vac} vacuous)" if vac else "")


def _summary_rows(results: Sequence[CheckResult]) -> List[List[Any]]:
    return [[r.title, r.preset or "-", r.status_text, _holding(r), f"{r.wall_s:.1f}", f"{r.cpu_s:.1f}"]
            for r in results]


_SUMMARY_COLS = ["check", "measured on", "verdict", "comparisons holding", "wall (s)", "CPU (s)"]
_COMP_COLS = ["comparison", "measured", "relation", "bound", "tolerance", "verdict"]


def _ordered_comparisons(r: CheckResult, limit: int = MAX_COMPARISONS):
    comps = r.comparisons
    # failing comparisons first, then the informative ones, then the vacuous ones; at most `limit`
    ordered = ([c for c in comps if not c.holds] + [c for c in comps if c.holds and not c.vacuous]
               + [c for c in comps if c.holds and c.vacuous])
    return ordered[:limit]


def _comparison_rows(r: CheckResult, limit: int = MAX_COMPARISONS) -> List[List[Any]]:
    return [[c.label, c.lhs, c.relation, c.rhs, c.slack, c.verdict] for c in _ordered_comparisons(r, limit)]


def _comparisons_caption(r: CheckResult) -> str:
    n = len(r.comparisons)
    n_fail = len(r.failed_comparisons)
    vac = len(r.vacuous_comparisons)
    text = f"Comparisons: {n - n_fail} of {n} hold"
    if vac:
        text += (f"; {vac} of them vacuous (the bound is trivial there — a probability bound ≥ 1 or an infinite "
                 "right-hand side — so they could not fail)")
    if n > MAX_COMPARISONS:
        text += f"; the first {MAX_COMPARISONS} are listed (failing first)"
    return text + "."


def _img_src(fig: str, figure_dir) -> str:
    """``data:`` URI of ``figure_dir/fig`` (a PNG), or the relative name if there is no such file."""
    if figure_dir is not None:
        path = Path(figure_dir) / fig
        if path.is_file():
            return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return fig


def _html_details(summary: str, body: str, collapse: bool) -> str:
    """``body`` inside ``<details>`` (closed) with ``summary``, or plainly when ``collapse`` is false."""
    if not collapse:
        return body
    return f"<details><summary>{_esc(summary)}</summary>{body}</details>"


def _html_summary_table(results: Sequence[CheckResult]) -> str:
    """The summary, which is also the table of contents: each check's title links to its section."""
    out = ["<table><tr>"] + [f'<th class="l">{_esc(c)}</th>' if i < 3 else f"<th>{_esc(c)}</th>"
                             for i, c in enumerate(_SUMMARY_COLS)] + ["</tr>"]
    for r, row in zip(results, _summary_rows(results)):
        out.append(f"<tr><td class='l'><a href='#{_esc(r.name)}'>{_esc(r.title)}</a></td>"
                   f"<td class='l'>{_esc(row[1])}</td><td class='l'>{_status_html(row[2])}</td>"
                   + "".join(f"<td>{_esc(v)}</td>" for v in row[3:]) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render_html(results: Sequence[CheckResult], meta: Dict[str, Any], figure_dir=None) -> str:
    """The report as one self-contained HTML page (inline CSS; figures from ``figure_dir`` embedded
    as base64 PNG data URIs, each naming its file in ``data-file``; relative links without ``figure_dir``).

    Layout: title and facts; *Summary* (the verdict, what delta and r mean, the summary table -- each
    check's title links to its section, so it is the table of contents -- and the key findings, each
    linked); then one section per check (anchor ``#<check name>``). Tables and comparison lists longer
    than :data:`COLLAPSE_ROWS` rows are collapsed in ``<details>``; failing comparisons are always shown.
    """
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>{_esc(meta.get('title', 'gpbound report'))}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{_esc(meta.get('title', 'gpbound report'))}</h1>",
             f"<p class='meta'>{_esc(meta.get('subtitle', ''))}</p>",
             "<p class='meta'>" + " &middot; ".join(
                 f"{_esc(k)}: {_esc(format_number(v))}" for k, v in meta.get("facts", {}).items()) + "</p>",
             "<nav class='toc'><b>Contents:</b> <a href='#summary'>Summary</a>"
             + (" &middot; <a href='#key-findings'>Key findings</a>" if any(r.finding for r in results) else "")
             + "".join(f" &middot; <a href='#{_esc(r.name)}'>{_esc(r.title.split(' ')[0])}</a>" for r in results)
             + "</nav>",
             "<h2 id='summary'>Summary</h2>",
             f"<p><b>{_esc(_verdict(results, meta))}</b></p>"]
    if meta.get("guarantee"):
        parts.append(f"<p class='guarantee'><b>What δ and r mean.</b> {_esc(meta['guarantee'])}</p>")
    parts.append(_html_summary_table(results))
    keys = [r for r in results if r.finding]
    if keys:  # the key findings (e.g. the tightness ratios, eq. 37) in the summary, each linked to its section
        parts.append("<h3 id='key-findings'>Key findings</h3><ul>" + "".join(
            f"<li><a href='#{_esc(r.name)}'>{_esc(r.title)}</a>: {_esc(r.finding)}</li>" for r in keys) + "</ul>")
    intro = meta.get("intro")
    if intro:
        parts.append(f"<p>{_esc(intro)}</p>")
    for r in results:
        parts.append(f"<h2 id='{_esc(r.name)}'>{_esc(r.title)} {_status_html(r.status_text)}</h2>")
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
            rows = r.table["rows"]
            parts.append(_html_details(f"Table: {len(rows)} rows (click to expand)",
                                       _html_table(r.table["columns"], rows), len(rows) > COLLAPSE_ROWS))
        parts.append(f"<p>{_esc(_comparisons_caption(r))}</p>")
        failing = [c for c in r.comparisons if not c.holds]
        if failing and len(r.comparisons) > COLLAPSE_ROWS:  # what failed is never hidden
            parts.append(_html_table(_COMP_COLS, [[c.label, c.lhs, c.relation, c.rhs, c.slack, c.verdict]
                                                  for c in failing[:MAX_COMPARISONS]]))
        rows = _comparison_rows(r)
        parts.append(_html_details(f"All comparisons: {len(rows)} rows (click to expand)",
                                   _html_table(_COMP_COLS, rows), len(rows) > COLLAPSE_ROWS))
        if r.details:
            parts.append(f"<p>{_esc(r.details)}</p>")
        parts.append("<p class='meta'><a href='#summary'>back to the summary</a></p>")
    parts.append(f"<p class='meta'>{_esc(meta.get('footer', ''))}</p></body></html>")
    return "\n".join(parts)


def _md_details(summary: str, body: str, collapse: bool) -> List[str]:
    if not collapse:
        return [body, ""]
    return [f"<details><summary>{summary}</summary>", "", body, "", "</details>", ""]


def render_markdown(results: Sequence[CheckResult], meta: Dict[str, Any]) -> str:
    """The Markdown twin of :func:`render_html` (anchors as ``<a id>``; long tables in ``<details>``)."""
    out = [f"# {meta.get('title', 'gpbound report')}", "", meta.get("subtitle", ""), ""]
    facts = meta.get("facts", {})
    if facts:
        out += [" · ".join(f"{k}: {format_number(v)}" for k, v in facts.items()), ""]
    out += ['<a id="summary"></a>', "", "## Summary", "", f"**{_verdict(results, meta)}**", ""]
    if meta.get("guarantee"):
        out += [f"> **What δ and r mean.** {meta['guarantee']}", ""]
    rows = [[f"[{r.title}](#{r.name})"] + row[1:] for r, row in zip(results, _summary_rows(results))]
    out += [_md_table(_SUMMARY_COLS, rows), ""]
    keys = [r for r in results if r.finding]
    if keys:
        out += ['<a id="key-findings"></a>', "", "### Key findings", ""]
        out += [f"- **[{r.title}](#{r.name}):** {r.finding}" for r in keys] + [""]
    if meta.get("intro"):
        out += [meta["intro"], ""]
    for r in results:
        out += [f'<a id="{r.name}"></a>', "", f"## {r.title} — **{r.status_text}**", ""]
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
            trows = r.table["rows"]
            out += _md_details(f"Table: {len(trows)} rows", _md_table(r.table["columns"], trows),
                               len(trows) > COLLAPSE_ROWS)
        out += [_comparisons_caption(r), ""]
        failing = [c for c in r.comparisons if not c.holds]
        if failing and len(r.comparisons) > COLLAPSE_ROWS:
            out += [_md_table(_COMP_COLS, [[c.label, c.lhs, c.relation, c.rhs, c.slack, c.verdict]
                                           for c in failing[:MAX_COMPARISONS]]), ""]
        crow = _comparison_rows(r)
        out += _md_details(f"All comparisons: {len(crow)} rows", _md_table(_COMP_COLS, crow),
                           len(crow) > COLLAPSE_ROWS)
        if r.details:
            out += [r.details, ""]
        out += ["[back to the summary](#summary)", ""]
    if meta.get("footer"):
        out += [meta["footer"], ""]
    return "\n".join(out)
