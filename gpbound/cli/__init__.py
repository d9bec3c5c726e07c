"""Command line of gpbound: ``gpbound radius | verify | reproduce | report | certify``.

Examples
--------
::

    gpbound radius --arch resnet --image-size 16 --delta 0.01 0.1 --random-input 0
    gpbound radius --arch docs/examples/small_cnn.yaml --delta 0.05 --x0-norm 10 --json
    gpbound verify --arch resnet --image-size 8 --delta 0.1 --num-networks 200 --seed 0
    gpbound reproduce fig1 --out results/fig1 --quick
    gpbound report --out docs/report
    gpbound certify --demo digits --out certify.png

User mistakes (bad values, missing or malformed files, unknown presets, ``delta`` outside
(0, 1): argument parsing, :class:`UserError`, file errors) end with one line
``gpbound: error: ...`` on stderr and exit code 2, without a traceback. Any other exception
is a bug and propagates with its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ._common import (EXIT_USAGE, GUARANTEE, UserError, _exc_text, _Parser, _float_in, _theorem_M,  # noqa: F401
                      add_arch_args, add_arch_args_listing_presets, examples_text, load_architecture, presets_text,
                      random_input, wrap)
from . import certify, radius, report, reproduce, verify
from .radius import radius_report  # noqa: F401

__all__ = ["main", "build_parser", "load_architecture", "radius_report", "UserError"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``gpbound`` (subcommands radius, verify, reproduce, report, certify)."""
    p = _Parser(prog="gpbound", formatter_class=argparse.RawDescriptionHelpFormatter,
                description=wrap("Adversarial robustness guarantees for random deep neural networks (De Palma, "
                                 "Kiani, Lloyd, ICML 2021): certified radii, crossing checks, sweeps, report.",
                                 "meaning of a certified radius r: " + GUARANTEE + ". delta is the failure "
                                 "probability the certificate allows.") + "\n\n" + presets_text() + "\n\n"
                            "'gpbound COMMAND --help' shows each command's options with their defaults.",
                epilog=examples_text(
                    "gpbound radius --arch resnet --image-size 16 --delta 0.01 0.1 0.5 --random-input 0",
                    "gpbound radius --arch docs/examples/small_cnn.yaml --delta 0.05 --x0-norm 10 --json",
                    "gpbound verify --arch resnet --image-size 8 --delta 0.1 --num-networks 50 --seed 0",
                    "gpbound reproduce fig1 --out results/fig1 --quick",
                    "gpbound report --quick --out /tmp/report",
                    "gpbound certify --demo digits --out certify.png"))
    from gpbound import __version__

    p.add_argument("--version", action="version", version=f"gpbound {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{radius,verify,reproduce,report,certify}", parser_class=_Parser)
    sub.required = True
    delta_t = _float_in("delta", 0.0, 1.0)

    for module in (radius, verify, reproduce, report, certify):
        module.add_parser(sub, add_arch_args_listing_presets, delta_t)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed checks with --strict, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    from gpbound.experiments.sweep import ResultsLocked

    try:
        return int(args.func(args) or 0)
    except (UserError, ResultsLocked) as exc:
        print(f"gpbound: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # only mistakes of the user are one line; any other exception (ValueError, TypeError,
    # KeyError, ImportError ... from the library) is a bug and propagates with its traceback
    except OSError as exc:  # unwritable --out, a directory where a file should be, unreachable scheduler
        what = f"{exc.strerror}: {exc.filename}" if getattr(exc, "filename", None) else _exc_text(exc)
        print(f"gpbound: error: {what}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gpbound: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
