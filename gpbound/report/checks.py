"""Checks of the report of verified bounds: results, comparisons, registry.

A *check* is a function ``check(ctx) -> CheckResult``.  It measures something
(Monte Carlo, quadrature, attacks on random networks ...) and states the claim
of the paper it tests (the *bound*, with its equation number).  Its verdict is
never written by hand: a :class:`CheckResult` holds a list of
:class:`Comparison` objects, each comparing two numbers with a stated
tolerance, and ``passed`` is ``all(c.holds for c in comparisons)``.

The checks of the default report live in :mod:`gpbound.report.default_checks`;
this module only holds the framework, so that a test can feed
:func:`gpbound.report.build.build_report` any list of checks, including a
deliberately broken one.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence


from gpbound.jsonable import to_jsonable

__all__ = [
    "Comparison",
    "CheckResult",
    "CheckContext",
    "CheckSkipped",
    "Check",
    "run_check",
    "to_jsonable",
    "atomic_write_text",
]

_RELATIONS = ("<=", ">=", "==")


def _as_float(value, name):
    """A real number (NaN and +-inf allowed: NaN never holds); no strings, bools or complex numbers."""
    from gpbound.validation import real_number

    return real_number(value, name, allow_inf=True, allow_nan=True)


@dataclass(frozen=True)
class Comparison:
    """One numeric comparison ``lhs <relation> rhs`` up to a tolerance.

    ``holds`` is computed from the numbers:

    * ``"<="``: ``lhs <= rhs + atol + rtol * |rhs|``
    * ``">="``: ``lhs >= rhs - atol - rtol * |rhs|``
    * ``"=="``: ``|lhs - rhs| <= atol + rtol * |rhs|``

    NaN on either side never holds.

    **Vacuous comparisons** (:attr:`vacuous`) hold whatever was measured, so the report shows them
    as ``PASS (vacuous: ...)`` rather than as evidence. The rule:

    * ``"<="`` with ``rhs = +inf`` (``">="`` with ``rhs = -inf``): nothing finite can fail it;
    * ``probability=True`` (``lhs`` is a probability, a frequency or a confidence bound of one,
      always in [0, 1]) and ``"<="`` with ``rhs >= 1`` (``">="`` with ``rhs <= 0``): the bound is
      the trivial one.

    ``"=="`` comparisons are never vacuous.

    Parameters
    ----------
    label : str
        What is compared, e.g. ``"E sup (MC), n=100"``.
    lhs, rhs : float
        The measured value and the bound (or reference) value.
    relation : {"<=", ">=", "=="}
    atol, rtol : float, optional
        Absolute and relative tolerances (>= 0), e.g. three Monte Carlo
        standard errors.
    probability : bool, optional
        ``lhs`` is a probability (in [0, 1]); then a bound ``rhs >= 1`` is vacuous. A ``lhs``
        outside [0, 1] is a ValueError.

    Examples
    --------
    >>> Comparison("P(zero within r) <= bound", 0.2, "<=", 1.0, probability=True).vacuous
    True
    >>> Comparison("P(zero within r) <= bound", 0.2, "<=", 0.5, probability=True).verdict
    'PASS'
    >>> Comparison("E sup <= Dudley", 3.0, "<=", float("inf")).verdict
    'PASS (vacuous: bound = inf)'
    """

    label: str
    lhs: float
    relation: str
    rhs: float
    atol: float = 0.0
    rtol: float = 0.0
    probability: bool = False

    def __post_init__(self):
        if self.relation not in _RELATIONS:
            raise ValueError(f"relation must be one of {_RELATIONS}, got {self.relation!r}")
        object.__setattr__(self, "lhs", _as_float(self.lhs, "lhs"))
        object.__setattr__(self, "rhs", _as_float(self.rhs, "rhs"))
        for name in ("atol", "rtol"):
            v = _as_float(getattr(self, name), name)
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
            object.__setattr__(self, name, v)
        if not isinstance(self.probability, bool):
            raise TypeError(f"probability must be a bool, got {type(self.probability).__name__}")
        if self.probability and not (0.0 <= self.lhs <= 1.0 or math.isnan(self.lhs)):
            raise ValueError(f"lhs must be in [0, 1] when probability=True, got {self.lhs!r}")

    @property
    def vacuous(self) -> bool:
        """True iff the comparison holds whatever was measured (rule in the class docstring)."""
        b = self.rhs
        if math.isnan(b) or math.isnan(self.lhs):
            return False
        if self.relation == "<=":
            return b == math.inf or (self.probability and b >= 1.0)
        if self.relation == ">=":
            return b == -math.inf or (self.probability and b <= 0.0)
        return False

    @property
    def verdict(self) -> str:
        """``"PASS"``, ``"FAIL"`` or ``"PASS (vacuous: bound = ...)"`` (see :attr:`vacuous`)."""
        if not self.holds:
            return "FAIL"
        if self.vacuous:
            return f"PASS (vacuous: bound = {self.rhs:g})"
        return "PASS"

    @property
    def slack(self) -> float:
        """Tolerance in absolute terms: ``atol + rtol * |rhs|``."""
        return self.atol + self.rtol * abs(self.rhs) if math.isfinite(self.rhs) else self.atol

    @property
    def holds(self) -> bool:
        a, b = self.lhs, self.rhs
        if math.isnan(a) or math.isnan(b):
            return False
        if self.relation == "<=":
            return bool(a <= b + self.slack)
        if self.relation == ">=":
            return bool(a >= b - self.slack)
        return bool(abs(a - b) <= self.slack) if math.isfinite(a - b) else bool(a == b)

    def as_dict(self) -> Dict[str, Any]:
        return {
            "label": self.label,
            "lhs": self.lhs,
            "relation": self.relation,
            "rhs": self.rhs,
            "atol": self.atol,
            "rtol": self.rtol,
            "holds": self.holds,
            "probability": self.probability,
            "vacuous": self.vacuous,
        }

    def __str__(self) -> str:
        tol = f" (tol {self.slack:.3g})" if self.slack else ""
        return f"{self.label}: {self.lhs:.6g} {self.relation} {self.rhs:.6g}{tol} -> {'ok' if self.holds else 'VIOLATED'}" + (
            " (vacuous)" if self.holds and self.vacuous else "")


@dataclass
class CheckResult:
    """Outcome of one check.

    Parameters
    ----------
    name : str
        Short identifier (used in file names and results.json).
    title : str
        Section title.
    bound : str
        The claim tested, with the paper's equation number.
    measurement : str
        What was measured and how.
    tolerance : str
        The tolerance, and where it comes from.
    comparisons : list of Comparison
        The numbers behind the verdict; ``passed = all(c.holds)``.
    preset : str
        What was measured: ``"theory"`` / ``"faithful"`` preset, a kernel ...
    figures : list of str
        PNG file names relative to the report directory.
    table : dict, optional
        ``{"columns": [...], "rows": [[...], ...]}``.
    numbers : dict
        All numbers of the check (written to results.json).
    details : str
        Free text: findings, caveats.
    finding : str
        A finding to highlight (e.g. the paper's a_n is too small).
    """

    name: str
    title: str
    bound: str
    measurement: str
    tolerance: str
    comparisons: List[Comparison] = field(default_factory=list)
    preset: str = ""
    figures: List[str] = field(default_factory=list)
    table: Optional[Dict[str, Any]] = None
    numbers: Dict[str, Any] = field(default_factory=dict)
    details: str = ""
    finding: str = ""
    skipped: str = ""  # reason, if the check could not run
    error: str = ""  # traceback, if the check raised
    wall_s: float = float("nan")
    cpu_s: float = float("nan")  # process CPU time, all threads (wall time is noisy on a shared machine)

    @property
    def passed(self) -> bool:
        """True iff the check ran and every comparison holds (computed, never set)."""
        if self.skipped or self.error or not self.comparisons:
            return False
        return all(c.holds for c in self.comparisons)

    @property
    def status(self) -> str:
        """``"PASS"``, ``"FAIL"``, ``"SKIP"`` (the check said why it could not run) or ``"ERROR"``."""
        if self.error:
            return "ERROR"
        if self.skipped:
            return "SKIP"
        if not self.comparisons:
            return "ERROR"
        return "PASS" if self.passed else "FAIL"

    @property
    def failed_comparisons(self) -> List[Comparison]:
        return [c for c in self.comparisons if not c.holds]

    @property
    def vacuous_comparisons(self) -> List[Comparison]:
        """The comparisons that hold whatever was measured (:attr:`Comparison.vacuous`)."""
        return [c for c in self.comparisons if c.holds and c.vacuous]

    @property
    def status_text(self) -> str:
        """:attr:`status`, with ``" (vacuous: every bound trivial)"`` when every comparison of a PASS is
        vacuous: such a check verified nothing it could have failed."""
        if self.status == "PASS" and len(self.vacuous_comparisons) == len(self.comparisons):
            return "PASS (vacuous: every bound trivial)"
        return self.status

    def as_dict(self) -> Dict[str, Any]:
        d = {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "status_text": self.status_text,
            "passed": self.passed,
            "bound": self.bound,
            "measurement": self.measurement,
            "tolerance": self.tolerance,
            "preset": self.preset,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "figures": list(self.figures),
            "table": self.table,
            "numbers": self.numbers,
            "details": self.details,
            "finding": self.finding,
            "skipped": self.skipped,
            "error": self.error,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
        }
        return to_jsonable(d)


class CheckSkipped(Exception):
    """Raised by a check, deliberately, to SKIP: its prerequisites (saved results ...) are missing.

    The message is the reason shown in the report and must not be blank. A SKIP is not a pass:
    ``gpbound report --strict`` fails while any check is skipped.
    """


@dataclass
class CheckContext:
    """What a check gets: where to write figures and how big to make the work.

    Parameters
    ----------
    out_dir : Path
        Report directory; figures are written there, referenced by file name.
    quick : bool
        Tiny sizes (the test suite's report, <= 60 s in all).
    results_dir : Path or None
        Saved sweep results (``gpbound reproduce``) to report at full scale.
    seed : int
        Base seed of all random draws.
    device : str or torch.device, optional
    """

    out_dir: Path
    quick: bool = False
    results_dir: Optional[Path] = None
    seed: int = 0
    device: Any = None
    options: Dict[str, Any] = field(default_factory=dict)

    def figure_path(self, name: str) -> Path:
        """Absolute path of figure ``name`` (a ``.png`` file in the report directory)."""
        if not name.endswith(".png"):
            name = name + ".png"
        return Path(self.out_dir) / name

    def size(self, quick, default):
        """``quick`` in quick mode, else ``default``."""
        return quick if self.quick else default


@dataclass(frozen=True)
class Check:
    """A registered check: a name, a function and the modules it needs."""

    name: str
    func: Callable[[CheckContext], CheckResult]
    requires: Sequence[str] = ()
    title: str = ""


def _missing_modules(requires: Sequence[str]) -> List[str]:
    """The declared requirements that are *absent* (not installed).

    Only a :class:`ModuleNotFoundError` for the required module itself (or a parent package of
    it) counts as absent. A module that exists but fails while importing (an ImportError of a
    renamed function inside it, a syntax error ...) is a programming error: it propagates and
    :func:`run_check` reports the check as ERROR, never as SKIP.
    """
    import importlib

    missing = []
    for mod in requires:
        if not isinstance(mod, str) or not mod:
            raise TypeError(f"requires must hold module names (non-empty str), got {mod!r}")
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            absent = exc.name or ""
            if not absent or not (mod == absent or mod.startswith(absent + ".")):
                raise  # the module exists but imports something missing: an error, not a skip
            missing.append(f"{mod} (not installed)")
    return missing


def _skip_reason(exc: BaseException) -> str:
    reason = str(exc).strip()
    if not reason:
        raise ValueError("CheckSkipped must state a reason, e.g. CheckSkipped('no saved results in DIR')")
    return reason


def run_check(check, ctx: CheckContext) -> CheckResult:
    """Run one check; SKIP only when the check deliberately says so, ERROR for any exception.

    A check is SKIP only when (a) it raises :class:`CheckSkipped` with a reason, or (b) a module
    it declares in ``Check.requires`` is not installed at all. Any other exception -- including
    an :class:`ImportError` or :class:`AttributeError` inside the check (a renamed library
    function) -- is an ERROR with its traceback. A SKIP is never a pass (see
    :attr:`gpbound.report.build.ReportResult.all_passed`).

    Parameters
    ----------
    check : Check or callable
        A :class:`Check` or a bare function ``ctx -> CheckResult``.
    ctx : CheckContext
    """
    if isinstance(check, Check):
        func, name, requires, title = check.func, check.name, check.requires, check.title
    elif callable(check):
        func = check
        name = getattr(check, "__name__", None) or getattr(getattr(check, "func", None), "__name__", "check")
        requires, title = (), name
    else:
        raise TypeError(f"check must be a Check or a callable, got {type(check).__name__}")
    t0, c0 = time.perf_counter(), time.process_time()

    def empty(**kw):
        return CheckResult(name=name, title=title or name, bound="", measurement="", tolerance="", **kw)

    try:
        missing = _missing_modules(requires)
    except Exception:  # a required module that is present but broken
        missing, res = None, empty(error=traceback.format_exc())
    if missing:
        res = empty(skipped="required module(s) not installed: " + ", ".join(missing))
    elif missing is not None:
        try:
            res = func(ctx)
            if not isinstance(res, CheckResult):
                raise TypeError(f"check {name} returned {type(res).__name__}, expected CheckResult")
            if res.skipped and not str(res.skipped).strip():
                raise ValueError(f"check {name} returned a blank skip reason")
        except CheckSkipped as exc:
            try:
                res = empty(skipped=_skip_reason(exc))
            except ValueError:
                res = empty(error=traceback.format_exc())
        except Exception:  # ImportError/AttributeError included: a failing check is an ERROR, not fatal
            res = empty(error=traceback.format_exc())
    res.wall_s = time.perf_counter() - t0
    res.cpu_s = time.process_time() - c0
    # every figure must exist: a missing one is an error of the check
    missing_figs = [f for f in res.figures if not (Path(ctx.out_dir) / f).is_file()]
    if missing_figs and not res.error:
        res.error = f"figure(s) not written: {missing_figs}"
    return res


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``.

    A reader sees either the old file or the complete new one, never a partial file; if the
    write fails, the old file is left intact and the temporary file is removed.

    Parameters
    ----------
    path : str or Path
        Destination (its folder must exist).
    text : str
    encoding : str

    Returns
    -------
    Path
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            try:
                os.chmod(tmp, path.stat().st_mode & 0o777)
            except OSError:  # pragma: no cover - e.g. a filesystem without chmod
                pass
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


