"""Validation of scalar arguments, shared by the library and the command line.

Every function returns the value in a plain Python type (``int`` or ``float``) or raises

* :class:`TypeError` for a value of the wrong kind: ``bool``, ``complex`` (never silently
  dropping the imaginary part), ``None``, strings (never parsed as numbers, except the norm
  names of :func:`norm_p`), arrays of more than one element, arbitrary objects;
* :class:`ValueError` for a value of the right kind outside its allowed range (NaN, inf
  where not allowed, too small, too large, an integer too large for a float).

Each message names the argument and its allowed range. NumPy integer and floating scalars
(``np.int64(8)``, ``np.float32(0.5)``), 0-d arrays and 0-d torch tensors of a real dtype are
accepted wherever a Python ``int`` / ``float`` is.

Examples
--------
>>> import numpy as np
>>> positive_int(np.int64(8), "image_size")
8
>>> real_number(0.5, "delta", lo=0, hi=1, lo_open=True, hi_open=True)
0.5
>>> norm_p("linf", "p")
inf
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Optional

import numpy as np

__all__ = ["positive_int", "nonnegative_int", "integer", "real_number", "real_array", "norm_p", "seed", "SEED_MAX"]

SEED_MAX = 2 ** 64 - 1  # torch.Generator.manual_seed and numpy accept seeds up to 2^64 - 1


def _describe(value) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _short_int(v: int) -> str:
    text = str(v)
    return text if len(text) <= 30 else f"{text[:12]}...{text[-6:]} ({len(text)} digits)"


def _unwrap(value, name, kind):
    """0-d numpy arrays / torch tensors -> their scalar; reject the kinds that are never numbers."""
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numel"):  # torch tensor
        if value.numel() != 1 or value.dim() != 0:
            raise TypeError(f"{name} must be {kind}, got a tensor of shape {tuple(value.shape)}")
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise TypeError(f"{name} must be {kind}, got an array of shape {value.shape}")
        value = value[()]
    if value is None:
        raise TypeError(f"{name} must be {kind}, got None")
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {kind}, got the bool {value!r}")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be {kind}, got the complex number {value!r} (the imaginary part "
                        "is never dropped silently)")
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {kind}, got the string {value!r} (strings are not parsed as numbers)")
    return value


def integer(value, name: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``value`` as a Python int in ``[lo, hi]`` (either end optional).

    Python ints and NumPy integer scalars only: a float (even ``8.0``) is a TypeError.
    """
    rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
    kind = f"an integer in {rng}"
    value = _unwrap(value, name, kind)
    if not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be {kind}, got {_describe(value)}")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be {kind}, got {_short_int(v)}")
    return v


def positive_int(value, name: str, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """``value`` as a Python int ``>= minimum`` (default 1) and ``<= maximum`` (if given)."""
    kind = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    value = _unwrap(value, name, kind)
    if not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be {kind}, got {_describe(value)}")
    v = int(value)
    if v < minimum or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {kind}, got {_short_int(v)}")
    return v


def nonnegative_int(value, name: str, maximum: Optional[int] = None) -> int:
    """``value`` as a Python int ``>= 0``."""
    return positive_int(value, name, minimum=0, maximum=maximum)


def seed(value, name: str = "seed", allow_none: bool = False) -> Optional[int]:
    """A random seed: an int in ``[0, 2^64 - 1]`` (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    return positive_int(value, name, minimum=0, maximum=SEED_MAX)


def _interval(lo, hi, lo_open, hi_open) -> str:
    left = "(" if (lo_open or lo is None) else "["
    right = ")" if (hi_open or hi is None) else "]"
    return f"{left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}{right}"


def real_number(value, name: str, lo: Optional[float] = None, hi: Optional[float] = None, *,
                lo_open: bool = False, hi_open: bool = False, allow_inf: bool = False,
                allow_nan: bool = False) -> float:
    """``value`` as a Python float in the interval from ``lo`` to ``hi``.

    Parameters
    ----------
    value : int, float or a NumPy real scalar
    name : str
        The argument's name, used in the messages.
    lo, hi : float, optional
        Bounds; ``lo_open`` / ``hi_open`` exclude them.
    allow_inf : bool
        Accept ``+-inf`` (still subject to the bounds).
    allow_nan : bool
        Accept NaN (returned as NaN).
    """
    where = _interval(lo, hi, lo_open, hi_open)
    kind = f"a real number in {where}" + ("" if allow_inf else " (finite)")
    value = _unwrap(value, name, kind)
    if not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise TypeError(f"{name} must be {kind}, got {_describe(value)}")
    try:
        v = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be {kind}, got an integer too large for a float") from None
    if math.isnan(v):
        if allow_nan:
            return v
        raise ValueError(f"{name} must be {kind}, got nan")
    if math.isinf(v) and not allow_inf:
        raise ValueError(f"{name} must be {kind}, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {kind}, got {v:g}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be {kind}, got {v:g}")
    return v


_NORM_NAME = re.compile(r"^l(inf|infinity|\d+(\.\d+)?)$")


def norm_p(value, name: str = "p") -> float:
    """The exponent of an l_p norm: a number ``p >= 1`` or ``inf``.

    Accepts numbers (``1``, ``2``, ``1.5``, ``math.inf``, NumPy scalars) and the norm names
    ``'l1'``, ``'l2'``, ``'linf'``, ``'inf'`` (also ``'l<p>'`` such as ``'l1.5'``; case-insensitive).
    Other strings (``'2'``) are not parsed: TypeError.
    """
    kind = "p >= 1 or inf (a number, or one of 'l1', 'l2', 'linf')"
    if isinstance(value, str):
        t = value.strip().lower()
        if t in ("inf", "infinity"):
            return math.inf
        m = _NORM_NAME.match(t)
        if not m:
            raise TypeError(f"{name} must be {kind}, got the string {value!r}")
        body = m.group(1)
        p = math.inf if body in ("inf", "infinity") else float(body)
        if not p >= 1:
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        return p
    return real_number(value, name, lo=1.0, allow_inf=True)


def real_array(value, name: str, *, allow_nonfinite: bool = False) -> np.ndarray:
    """``value`` (a number, sequence, NumPy array or torch tensor) as a float64 ndarray of real numbers.

    TypeError for strings (never parsed), None, bool, complex entries (the imaginary part is never
    dropped) and ragged or non-numeric sequences; ValueError for an integer too large for a float
    and, unless ``allow_nonfinite``, for NaN or inf entries.
    """
    kind = "a real number or an array of real numbers"
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor, no hard import
        value = value.detach().cpu()
        if value.is_complex():
            raise TypeError(f"{name} must be {kind}, got a complex tensor (the imaginary part is never dropped)")
        value = value.numpy()
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {kind}, got {_describe(value)}"
                        + (" (strings are not parsed as numbers)" if value is not None else ""))
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:  # Python sequences as objects first, so that a bool or a string entry is seen, not cast
            arr = np.asarray(value, dtype=object) if isinstance(value, (list, tuple)) else np.asarray(value)
        except (ValueError, TypeError) as exc:  # ragged nested sequences
            raise TypeError(f"{name} must be {kind}, got {type(value).__name__} ({exc})") from None
    if arr.dtype.kind == "O":
        flat = arr.reshape(-1).tolist()
        for e in flat:
            if e is None or isinstance(e, (str, bytes, bool, np.bool_, complex, np.complexfloating)) or \
                    not isinstance(e, (numbers.Real, np.integer, np.floating)):
                raise TypeError(f"{name} must be {kind}, got an entry {_describe(e)}")
        try:
            arr = np.array([float(e) for e in flat], dtype=np.float64).reshape(arr.shape)
        except OverflowError:
            raise ValueError(f"{name} has an integer too large for a float (entries must be finite)") from None
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must be {kind}, got a bool")
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be {kind}, got complex numbers (the imaginary part is never dropped)")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be {kind}, got an array of dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not allow_nonfinite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr
