"""Command line interface of gpbound (placeholder until issue 6 lands)."""
import sys


def main(argv=None):
    print("gpbound: command line not yet implemented", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
