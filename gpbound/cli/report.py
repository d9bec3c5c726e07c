"""``gpbound report``: the report of verified bounds."""
from __future__ import annotations

import sys
from pathlib import Path

from ._common import GUARANTEE, HelpFormatter, UserError, _int_at_least, examples_text, presets_text, wrap


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
    print(f"meaning of the certified radii: {GUARANTEE}.")
    print(rep.verdict_line())
    if args.strict and not rep.all_passed:
        print(f"gpbound report --strict: {rep.verdict_line()}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    rr = sub.add_parser(
        "report", help="build the report of verified bounds (HTML + Markdown + JSON)",
        formatter_class=HelpFormatter,
        description=wrap("Run the checks of the report (each bound next to the measurement that tests it, with a "
                         "computed PASS/FAIL) and write OUT/index.html (self-contained), OUT/report.md, "
                         "OUT/results.json and the PNG figures. The presets measured: the theory presets 'resnet' "
                         "and 'dense' (gpbound.kernels.presets) and the authors' 'faithful' ResNet.",
                         "meaning of a certified radius: " + GUARANTEE + ".") + "\n\n" + presets_text(),
        epilog=examples_text(
            "gpbound report                                  # docs/report, what `make run` does (minutes)",
            "gpbound report --quick --out /tmp/report        # tiny sizes, about 2 minutes",
            "gpbound reproduce fig1 --out results/fig1 && gpbound report --results results --strict"))
    rr.add_argument("--out", default="docs/report", help="report directory")
    rr.add_argument("--results", default=None, metavar="DIR",
                    help="saved sweep results of 'gpbound reproduce' (DIR/fig1 ...) for full-scale figures "
                         "(default: small runs inside the report)")
    rr.add_argument("--quick", action="store_true", help="tiny sizes (tests, a first look)")
    rr.add_argument("--seed", type=_int_at_least("--seed", 0), default=0, help="base seed of every random draw")
    rr.add_argument("--strict", action="store_true", help="exit 1 unless every check passes (FAIL, ERROR and SKIP all fail)")
    rr.add_argument("--threads", type=_int_at_least("--threads", 1), default=1,
                    help="torch threads while the checks run (1: small networks, shared cores)")
    rr.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    rr.set_defaults(func=run)
    return rr
