"""Build the report of verified bounds: run the checks, write HTML, Markdown, JSON."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from gpbound import validation as _validation

from .checks import CheckContext, CheckResult, atomic_write_text, run_check, to_jsonable
from .render import render_html, render_markdown

__all__ = ["build_report", "ReportResult", "default_check_list", "GUARANTEE"]

#: what delta and r mean, stated in the report's summary (the command line says the same in ASCII,
#: :data:`gpbound.cli._common.GUARANTEE`)
GUARANTEE = ("With probability ≥ 1−δ over the random network, no input within r of x0 changes the label. "
             "The certified radius r depends only on n (the input dimension), M (Theorem 2: √(|I0|/|I_Lf|)) and "
             "‖x0‖₂ — not on the network's weights; the instance radii (marked so) also use the exact √K(x0,x0) "
             "and the layer-wise Lipschitz constant L, i.e. the weight and bias variances. δ is the failure "
             "probability the certificate allows; the checks measure how often random networks do change the "
             "label within r. Check (j) certifies trained GP classifiers; its section states its own meaning.")


@dataclass
class ReportResult:
    """What :func:`build_report` wrote and found.

    Attributes
    ----------
    out_dir : Path
    html, markdown, json : Path
        ``index.html``, ``report.md``, ``results.json`` in ``out_dir``.
    results : list of CheckResult
    wall_s : float
    """

    out_dir: Path
    html: Path
    markdown: Path
    json: Path
    results: List[CheckResult] = field(default_factory=list)
    wall_s: float = float("nan")

    @property
    def statuses(self) -> Dict[str, str]:
        return {r.name: r.status for r in self.results}

    @property
    def all_passed(self) -> bool:
        """True iff there is at least one check and every check is PASS.

        A SKIP is not a pass: a check that did not run verified nothing (``--strict`` fails).
        """
        return bool(self.results) and all(r.status == "PASS" for r in self.results)

    @property
    def not_passed(self) -> Dict[str, str]:
        """``{name: status}`` of the checks that are not PASS (FAIL, ERROR or SKIP)."""
        return {r.name: r.status for r in self.results if r.status != "PASS"}

    def verdict_line(self) -> str:
        """One line: all passed, or how many failed / erred / were skipped (a SKIP is not a pass)."""
        if not self.results:
            return "no checks ran: nothing was verified"
        if self.all_passed:
            return f"all {len(self.results)} checks passed"
        counts = {s: sum(r.status == s for r in self.results) for s in ("FAIL", "ERROR", "SKIP")}
        parts = [f"{v} {k}" for k, v in counts.items() if v]
        skipped = [r.name for r in self.results if r.status == "SKIP"]
        tail = (f"; skipped (not a pass): {', '.join(skipped)}") if skipped else ""
        return (f"NOT all checks passed: {', '.join(parts)} of {len(self.results)}{tail}")

    def summary_lines(self) -> List[str]:
        lines = []
        for r in self.results:
            line = f"{r.status:5s}  {r.title}  ({r.wall_s:.1f} s)"
            if r.status_text != r.status:
                line += f"  -- {r.status_text[len(r.status):].strip(' ()')}"
            elif r.vacuous_comparisons:
                line += f"  -- {len(r.vacuous_comparisons)} of {len(r.comparisons)} comparisons vacuous"
            if r.status == "SKIP":
                line += f"  -- skipped: {r.skipped}"
            lines.append(line)
        return lines


def default_check_list():
    """The checks of the default report, in order (see :mod:`gpbound.report.default_checks`)."""
    from .default_checks import DEFAULT_CHECKS

    return list(DEFAULT_CHECKS)


def build_report(out_dir="docs/report", *, checks: Optional[Sequence] = None, quick: bool = False,
                 results_dir=None, seed: int = 0, device=None, options: Optional[Dict[str, Any]] = None,
                 progress: Optional[Callable[[str], None]] = None, threads: Optional[int] = 1) -> ReportResult:
    """Run the checks and write ``index.html``, ``report.md``, ``results.json`` and PNG figures.

    Parameters
    ----------
    out_dir : str or Path
        Report directory (created).
    checks : sequence of Check or callable, optional
        The checks to run; default :func:`default_check_list`. A test may inject
        its own (e.g. one whose bound is deliberately broken) and expect FAIL.
    quick : bool
        Tiny sizes (for the test suite).
    results_dir : str or Path, optional
        Saved sweep results (``gpbound reproduce``) for the figure checks.
    seed : int
        Base seed.
    device : str or torch.device, optional
    options : dict, optional
        Extra settings passed to the checks through ``CheckContext.options``.
    progress : callable, optional
        Called with one line of text before and after each check.
    threads : int or None
        ``torch.set_num_threads`` while the checks run (restored afterwards); default 1: the
        networks measured are small, and on a shared machine intra-op threads oversubscribe the
        cores (measured: quick report 5.7 s with 1 thread vs 14 s with 2 at load ~4).
        ``None`` leaves torch's setting alone.

    Returns
    -------
    ReportResult
    """
    seed = _validation.seed(seed, "seed")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir must be a directory, got the file {str(out)!r}")
    if results_dir is not None and not Path(results_dir).is_dir():
        raise ValueError(f"results_dir must be an existing directory, got {str(results_dir)!r}")
    out.mkdir(parents=True, exist_ok=True)
    checks = default_check_list() if checks is None else list(checks)
    ctx = CheckContext(out_dir=out, quick=bool(quick), results_dir=Path(results_dir) if results_dir else None,
                       seed=seed, device=device, options=dict(options or {}))
    if threads is not None:
        threads = _validation.positive_int(threads, "threads")
    import torch

    old_threads = torch.get_num_threads()
    t0 = time.perf_counter()
    results: List[CheckResult] = []
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        for check in checks:
            name = getattr(check, "name", None) or getattr(check, "__name__", "check")
            if progress:
                progress(f"running {name} ...")
            res = run_check(check, ctx)
            results.append(res)
            if progress:
                progress(f"{res.status:5s} {res.title} ({res.wall_s:.1f} s)")
    finally:
        torch.set_num_threads(old_threads)
    wall = time.perf_counter() - t0
    meta = _meta(results, quick=quick, results_dir=results_dir, seed=seed, wall=wall)
    rep = ReportResult(out_dir=out, html=out / "index.html", markdown=out / "report.md",
                       json=out / "results.json", results=results, wall_s=wall)
    # each file is replaced atomically: a crash mid-write leaves the previous report intact
    html_text = render_html(results, meta, figure_dir=out)
    md_text = render_markdown(results, meta)
    payload = {"meta": to_jsonable(meta), "checks": [r.as_dict() for r in results]}
    json_text = json.dumps(payload, indent=1, allow_nan=False)
    atomic_write_text(rep.html, html_text)
    atomic_write_text(rep.markdown, md_text)
    atomic_write_text(rep.json, json_text)
    return rep


def _meta(results, *, quick, results_dir, seed, wall):
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP", "ERROR")}
    all_passed = bool(results) and counts["PASS"] == len(results)
    import torch

    torch_version = torch.__version__
    from gpbound import __version__

    mode = "quick" if quick else ("saved results from " + str(results_dir) if results_dir else "default")
    return {
        "title": "gpbound: report of verified bounds",
        "subtitle": ("De Palma, Kiani, Lloyd, Adversarial Robustness Guarantees for Random Deep Neural "
                     "Networks (ICML 2021). Every verdict below is computed by comparing numbers; "
                     "PASS means every listed comparison holds within its stated tolerance."),
        "intro": ("Two network presets appear: 'theory' (pre-activation residual blocks, average-pool "
                  "down-sampling; the paper's kernel recursion, Theorem 2 and Corollary 1 apply) and "
                  "'faithful' (the authors' Keras ResNet: post-activation blocks, stride-2 convolutions; "
                  "attacks and Monte Carlo only). Each section states which one it measured."),
        "facts": {"generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "mode": mode, "seed": seed, "wall (s)": round(wall, 1), "gpbound": __version__,
                  "python": platform.python_version(), "torch": torch_version,
                  **{k.lower(): v for k, v in counts.items()}},
        "guarantee": GUARANTEE,
        "counts": counts,
        "all_passed": all_passed,
        "verdict": ("every check passed" if all_passed else
                    f"not every check passed: {counts['FAIL']} FAIL, {counts['ERROR']} ERROR, {counts['SKIP']} SKIP "
                    "(a skipped check verified nothing and is not a pass)"),
        "footer": "Generated by `gpbound report`" + (" --quick" if quick else "") + f" ({sys.platform}).",
    }
