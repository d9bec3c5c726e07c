"""Shared pieces of the command line: argument types, user errors, architectures, inputs."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, Optional

EXIT_USAGE = 2


class UserError(ValueError):
    """A mistake of the user: reported as one line, exit code 2.

    A subclass of ValueError, so that library callers of :func:`radius_report` and
    :func:`load_architecture` may catch ValueError; but :func:`main` treats *only* UserError
    (and argument parsing, file errors, a locked results folder) as a one-line user error:
    any other exception is a bug and propagates with its traceback.
    """


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line ``gpbound: error: ...`` (exit code 2)."""

    def error(self, message):  # noqa: D401 - argparse API
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_USAGE, f"gpbound: error: {message}{hint}\n")


# --------------------------------------------------------------------------- argument types
def _float_in(name, lo=None, hi=None, lo_open=True, hi_open=True):
    def conv(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}")
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be finite, got {text!r}")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(_range_msg(name, v, lo, hi, lo_open, hi_open))
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise argparse.ArgumentTypeError(_range_msg(name, v, lo, hi, lo_open, hi_open))
        return v

    return conv


def _range_msg(name, v, lo, hi, lo_open, hi_open):
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {v:g}"


def _int_at_least(name, minimum):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {v}")
        return v

    return conv


def _norm_p(text):
    """``--p``: command-line text is read as a number when it is one, else as a norm name
    (:func:`gpbound.validation.norm_p`)."""
    from gpbound.validation import norm_p

    t = str(text).strip()
    try:
        value = float(t)
    except ValueError:
        value = t
    try:
        return norm_p(value, "p")
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _p_key(p: float) -> str:
    return "inf" if math.isinf(p) else (str(int(p)) if float(p).is_integer() else f"{p:g}")


# --------------------------------------------------------------------------- architectures
def _presets():
    from gpbound.kernels import presets

    return presets, sorted(presets.PRESETS)


def load_architecture(spec: str, image_size: Optional[int] = None):
    """Architecture from a preset name or a JSON/YAML file of ``Architecture.to_dict()`` form.

    Parameters
    ----------
    spec : str
        Preset name (``gpbound.kernels.presets.PRESETS``) or path of a ``.json``,
        ``.yaml`` or ``.yml`` file.  A preset of ``FINITE_PRESETS`` (the authors' "faithful"
        network, no analytic kernel) is refused with the reason.
    image_size : int, optional
        Image side for presets; a file fixes its own ``input_shape``.

    Returns
    -------
    (Architecture, str)
        The architecture and a label for it.

    Raises
    ------
    UserError
        Unknown preset, missing or malformed file, a preset without an analytic NNGP kernel.
    """
    path = Path(spec)
    looks_like_file = path.suffix.lower() in (".json", ".yaml", ".yml") or path.exists() or "/" in spec
    if looks_like_file:
        if not path.is_file():
            raise UserError(f"architecture file not found: {spec!r}")
        if image_size is not None:
            raise UserError("--image-size applies to presets only; an architecture file fixes its input_shape")
        import yaml

        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:  # UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot parse architecture file {spec!r}: {first}")
        if not isinstance(data, dict):
            raise UserError(f"architecture file {spec!r} must hold a mapping (Architecture.to_dict() form)")
        from gpbound.kernels import Architecture

        try:
            arch = Architecture.from_dict(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"invalid architecture file {spec!r}: {_exc_text(exc)}")
        return arch, str(path)
    presets, names = _presets()
    finite_only = sorted(presets.FINITE_PRESETS)
    if spec not in names and spec not in finite_only:
        raise UserError(f"unknown preset {spec!r} (presets: {', '.join(names)}; or give a .json/.yaml file)")
    kwargs = {}
    if image_size is not None:
        from gpbound.validation import positive_int

        try:
            kwargs["image_size"] = positive_int(image_size, "--image-size")
        except (ValueError, TypeError) as exc:
            raise UserError(str(exc)) from exc
    try:
        arch = presets.get_preset(spec, **kwargs)
    except ValueError as exc:  # the preset rejects the user's image size (e.g. not divisible by 4)
        raise UserError(f"preset {spec!r} with --image-size {image_size}: {exc}") from exc
    _require_analytic(arch, f"preset {spec!r}")
    label = spec if image_size is None else f"{spec} (image size {image_size})"
    return arch, label


def _require_analytic(arch, what: str) -> None:
    """UserError (one line) when ``arch`` has no analytic NNGP kernel: the radii (Theorem 2's M,
    Corollary 1) and the NNGP certificates need one.  Names the first reason the architecture gives
    (e.g. the faithful preset's post-activation identity blocks)."""
    if arch.has_kernel:
        return
    issues = arch.kernel_issues
    more = f" (and {len(issues) - 1} more such layers)" if len(issues) > 1 else ""
    raise UserError(f"{what} has no analytic NNGP kernel, so no certified radius applies (Theorem 2 and "
                    f"Corollary 1 need the kernel recursion of docs/theory.md §1): {issues[0]}{more}; its finite "
                    f"networks serve attacks and Monte Carlo only")


def _exc_text(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _arch_facts(arch) -> Dict[str, Any]:
    M = _theorem_M(arch)
    return {
        "n": int(arch.n),
        "input_pixels": int(arch.input_pixels),
        "flatten_pixels": int(arch.flatten_pixels),
        "M": float(M),
        "input_shape": list(getattr(arch, "input_shape", ()) or ()),
    }


def _theorem_M(arch) -> float:
    from gpbound.constants import theorem2_M

    issues = tuple(getattr(arch, "theorem2_issues", ()))
    if issues:  # the user's architecture file: one line, not a traceback
        raise UserError(f"Theorem 2's M is not derived for this architecture ({issues[0]}), so no certified "
                        "radius applies; its kernel and finite networks still work")
    return float(theorem2_M(arch))


# --------------------------------------------------------------------------- x0
def _x0_from_args(args, n: int):
    """(x0 as a float64 numpy vector or None, its l2 norm, a description)."""
    import numpy as np

    if args.x0_norm is not None:
        return None, float(args.x0_norm), f"norm {args.x0_norm:g} given"
    if args.x0 is not None:
        path = Path(args.x0)
        if not path.is_file():
            raise UserError(f"--x0 file not found: {args.x0!r}")
        try:
            x0 = np.load(path, allow_pickle=False)
            x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError, EOFError, OSError) as exc:  # not .npy, truncated, not numeric
            raise UserError(f"cannot read --x0 {args.x0!r} as a .npy array of numbers: {exc}")
        if x0.size != n:
            raise UserError(f"--x0 must have n = {n} entries (C*H*W of the architecture), got {x0.size}")
        if not np.all(np.isfinite(x0)):
            raise UserError("--x0 must hold finite numbers (found NaN or inf)")
        norm = float(np.linalg.norm(x0))
        if norm == 0:
            raise UserError("--x0 must be non-zero (the radii scale with its l2 norm)")
        return x0, norm, f"file {args.x0}"
    seed = args.random_input
    x0 = random_input(n, seed)
    return x0, float(np.linalg.norm(x0)), f"uniform [0,1]^n pixels, seed {seed}"


def random_input(n: int, seed: int):
    """x0 with i.i.d. Uniform[0, 1] entries (the paper's random inputs), float64 numpy, seeded."""
    import numpy as np

    return np.random.default_rng(seed).uniform(0.0, 1.0, size=n)



# --------------------------------------------------------------------------- meaning of a radius
GUARANTEE = ("with probability >= 1 - delta over the random network, no input within r of x0 changes the label "
             "(r depends only on n, M and ||x0||_2, unless marked instance)")



def add_arch_args(sp):
    """--arch, --image-size, --entropy."""
    sp.add_argument("--arch", required=True, metavar="PRESET_OR_FILE",
                    help="preset name (gpbound.kernels.presets) or a .json/.yaml architecture file")
    sp.add_argument("--image-size", type=_int_at_least("--image-size", 1), default=None, metavar="S",
                    help="image side of a preset (default: the preset's own)")
    sp.add_argument("--entropy", choices=("numeric", "closed", "paper"), default="numeric",
                    help="entropy integral: numeric (default, certified), closed (a~_n), paper (a_n, eq. 37)")


# --------------------------------------------------------------------------- help text (issue 13)
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default ``(default: ...)`` and keeps the description's and the
    examples' line breaks. Flags (``store_true``) and options whose default is None (nothing to show:
    their help says what happens without them) get no ``(default: None)``; a help text that already
    says ``(default...`` is left as written."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "(default" in text:
            return text
        return super()._get_help_string(action)


def presets_text() -> str:
    """One line per preset of :data:`gpbound.kernels.presets.PRESETS`: its name and what it is."""
    presets, names = _presets()
    lines = []
    for name in names:
        doc = (presets.PRESETS[name].__doc__ or "").strip().splitlines()
        first = doc[0].replace("``", "").rstrip(";:,") if doc else ""
        lines.append(f"  {name:8s} {first}")
    return "presets (--arch NAME; gpbound.kernels.presets.PRESETS):\n" + "\n".join(lines)


def examples_text(*lines: str) -> str:
    """An argparse epilog: ``examples:`` then one command per line."""
    return "examples:\n" + "\n".join(f"  {ln}" for ln in lines)


def add_arch_args_listing_presets(sp):
    """:func:`add_arch_args`, with the preset names in the help of ``--arch`` and the defaults spelt out."""
    add_arch_args(sp)
    _, names = _presets()
    for action in sp._actions:
        if "--arch" in action.option_strings:
            action.help = f"preset name ({', '.join(names)}) or a .json/.yaml architecture file"
        elif "--image-size" in action.option_strings:
            action.help = "image side of a preset (default: the preset's own, 16)"
        elif "--entropy" in action.option_strings:
            action.help = ("entropy integral of the Dudley route: numeric (certified), closed (a~_n), "
                           "paper (a_n, eq. 37)")
    return sp


def wrap(*paragraphs: str, width: int = 100) -> str:
    """Prose paragraphs filled to ``width`` columns, separated by blank lines (for help descriptions shown
    by :class:`HelpFormatter`, which keeps line breaks and so does not fill by itself)."""
    import textwrap

    return "\n\n".join(textwrap.fill(p, width=width, break_on_hyphens=False, break_long_words=False)
                       for p in paragraphs)
