"""Checks of the report of verified bounds: results, comparisons, registry.

A *check* is a function ``check(ctx) -> CheckResult``.  It measures something
(Monte Carlo, quadrature, attacks on random networks ...) and states the claim
of the paper it tests (the *bound*, with its equation number).  Its verdict is
never written by hand: a :class:`CheckResult` holds a list of
:class:`Comparison` objects, each comparing two numbers with a stated
tolerance, and ``passed`` is ``all(c.holds for c in comparisons)``.

The checks of the default report live in :mod:`gpbound.report.library_checks`;
this module only holds the framework, so that a test can feed
:func:`gpbound.report.build.build_report` any list of checks, including a
deliberately broken one.
"""
from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

__all__ = [
    "Comparison",
    "CheckResult",
    "CheckContext",
    "CheckSkipped",
    "Check",
    "run_check",
    "to_jsonable",
]

_RELATIONS = ("<=", ">=", "==")


def _as_float(value, name):
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:  # pragma: no cover - message path
        raise TypeError(f"{name} must be a real number, got {value!r}") from exc
    return out


@dataclass(frozen=True)
class Comparison:
    """One numeric comparison ``lhs <relation> rhs`` up to a tolerance.

    ``holds`` is computed from the numbers:

    * ``"<="``: ``lhs <= rhs + atol + rtol * |rhs|``
    * ``">="``: ``lhs >= rhs - atol - rtol * |rhs|``
    * ``"=="``: ``|lhs - rhs| <= atol + rtol * |rhs|``

    NaN on either side never holds.

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
    """

    label: str
    lhs: float
    relation: str
    rhs: float
    atol: float = 0.0
    rtol: float = 0.0

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
        }

    def __str__(self) -> str:
        tol = f" (tol {self.slack:.3g})" if self.slack else ""
        return f"{self.label}: {self.lhs:.6g} {self.relation} {self.rhs:.6g}{tol} -> {'ok' if self.holds else 'VIOLATED'}"


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
        """``"PASS"``, ``"FAIL"``, ``"SKIP"`` (a module is missing) or ``"ERROR"``."""
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

    def as_dict(self) -> Dict[str, Any]:
        d = {
            "name": self.name,
            "title": self.title,
            "status": self.status,
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
    """Raised by a check whose prerequisites (a module, saved results) are missing."""


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
    import importlib

    missing = []
    for mod in requires:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            missing.append(f"{mod} ({exc})")
    return missing


def run_check(check, ctx: CheckContext) -> CheckResult:
    """Run one check, turning a missing module into SKIP and an exception into ERROR.

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
    missing = _missing_modules(requires)
    if missing:
        res = CheckResult(name=name, title=title or name, bound="", measurement="", tolerance="",
                          skipped="missing module(s): " + ", ".join(missing))
    else:
        try:
            res = func(ctx)
            if not isinstance(res, CheckResult):
                raise TypeError(f"check {name} returned {type(res).__name__}, expected CheckResult")
        except CheckSkipped as exc:
            res = CheckResult(name=name, title=title or name, bound="", measurement="", tolerance="",
                              skipped=str(exc))
        except ImportError as exc:  # a library module or name not (yet) available
            res = CheckResult(name=name, title=title or name, bound="", measurement="", tolerance="",
                              skipped=f"missing: {exc}")
        except Exception:  # a failing check is reported, not fatal to the report
            res = CheckResult(name=name, title=title or name, bound="", measurement="", tolerance="",
                              error=traceback.format_exc())
    res.wall_s = time.perf_counter() - t0
    res.cpu_s = time.process_time() - c0
    # every figure must exist: a missing one is an error of the check
    missing_figs = [f for f in res.figures if not (Path(ctx.out_dir) / f).is_file()]
    if missing_figs and not res.error:
        res.error = f"figure(s) not written: {missing_figs}"
    return res


def to_jsonable(obj):
    """Convert numpy/torch scalars and arrays, tuples and non-finite floats for JSON.

    Non-finite floats become the strings ``"inf"``, ``"-inf"``, ``"nan"``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(obj, Path):
        return str(obj)
    return obj
