"""``gpbound report``: the report of verified bounds."""
from __future__ import annotations

import sys
from pathlib import Path

from ._common import UserError, _int_at_least


def run(args) -> int:
    from gpbound.report import build_report

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    if args.results is not None and not Path(args.results).is_dir():
        raise UserError(f"--results must be an existing directory (from 'gpbound reproduce'), got {args.results!r}")
    rep = build_report(args.out, quick=args.quick, results_dir=args.results, seed=args.seed,
                       progress=None if args.silent else progress, threads=args.threads)
    for line in rep.summary_lines():
        print(line)
    print(f"report: {rep.html} ({rep.wall_s:.1f} s); Markdown: {rep.markdown}; numbers: {rep.json}")
    print(rep.verdict_line())
    if args.strict and not rep.all_passed:
        print(f"gpbound report --strict: {rep.verdict_line()}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    rr = sub.add_parser("report", help="build the report of verified bounds (HTML + Markdown + JSON)")
    rr.add_argument("--out", default="docs/report", help="report directory (default docs/report)")
    rr.add_argument("--results", default=None, metavar="DIR", help="saved sweep results for full-scale figures")
    rr.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    rr.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    rr.add_argument("--strict", action="store_true", help="exit 1 unless every check passes (FAIL, ERROR and SKIP all fail)")
    rr.add_argument("--threads", type=_int_at_least("--threads", 1), default=1,
                    help="torch threads while the checks run (default 1: small networks, shared cores)")
    rr.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    rr.set_defaults(func=run)
    return rr
