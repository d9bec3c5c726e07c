"""The report of verified bounds: checks with computed PASS/FAIL, plots, HTML and Markdown.

>>> from gpbound.report import build_report
>>> rep = build_report("docs/report", quick=True)          # doctest: +SKIP
>>> rep.statuses                                            # doctest: +SKIP

Each check returns a :class:`CheckResult` whose verdict is computed from its
:class:`Comparison` objects; :func:`build_report` accepts any list of checks.
"""
from .checks import Check, CheckContext, CheckResult, CheckSkipped, Comparison, run_check
from .build import ReportResult, build_report, default_check_list

__all__ = ["Check", "CheckContext", "CheckResult", "CheckSkipped", "Comparison", "run_check",
           "ReportResult", "build_report", "default_check_list"]
