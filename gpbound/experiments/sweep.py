"""Resumable sweeps: a grid of independent tasks whose results go to a JSON-lines file.

Each task is a dict of JSON-serialisable parameters; its *key* is a hash of the
canonical JSON of those parameters, so it is stable across runs and machines. Every
finished task is appended to the results file as one line
``{"key": ..., "params": ..., "result": ..., "elapsed_s": ...}`` and flushed with
``fsync``; re-running the same sweep skips the keys already in the file. A killed run
may leave a half-written last line: it is ignored with a warning and cut off before
anything new is appended, never fatal. A task key that appears more than once (e.g.
written by two runs before the lock existed) is read back as its first record, and a
resuming run rewrites the file without the later copies.

One writer per results file: :func:`run_sweep` holds an exclusive lock
(``filelock``, on ``<results file>.lock``) for the whole run, and a second run on the
same file is refused at once with :class:`ResultsLocked` (no task is done twice).

Tasks run in-process (with a tqdm progress bar) or on dask.distributed
(``scheduler=`` an address or a :class:`distributed.Client`), collected with
``as_completed`` so results are written in completion order (``pip install .[dask]``).

Example
-------
>>> tasks = grid(size=[4, 8], seed=range(3))
>>> records = run_sweep(my_task, tasks, "results.jsonl")          # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from gpbound.jsonable import to_jsonable

__all__ = ["task_key", "grid", "read_results", "repair_results", "run_sweep", "load_config",
           "to_jsonable", "ResultsLocked"]


class ResultsLocked(RuntimeError):
    """Another run holds the lock of this results file (one writer per results file)."""


def _lock_path(path) -> str:
    return os.fspath(path) + ".lock"


def _acquire(path):
    """The exclusive, non-blocking lock of the results file ``path``; :class:`ResultsLocked` if taken."""
    from filelock import FileLock, Timeout

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lock = FileLock(_lock_path(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        folder = os.path.dirname(os.path.abspath(path))
        raise ResultsLocked(f"{folder}: another run holds the lock on {os.path.basename(os.fspath(path))} "
                            f"({_lock_path(path)}); wait for it to finish or use another output folder") from None
    return lock


def task_key(params: Mapping[str, Any]) -> str:
    """Stable key of a task: the first 20 hex digits of SHA-256 of its canonical JSON."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    canon = json.dumps(to_jsonable(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:20]


def grid(**axes: Iterable) -> List[Dict[str, Any]]:
    """Cartesian product of the given axes, as a list of parameter dicts (last axis fastest)."""
    names = list(axes)
    values = []
    for name in names:
        v = axes[name]
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            v = [v]
        values.append(list(v))
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


def load_config(path) -> Dict[str, Any]:
    """Read a YAML (or JSON) sweep configuration with ``yaml.safe_load``."""
    import yaml

    with open(path, "r", encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: a sweep configuration must be a mapping, got {type(cfg).__name__}")
    return cfg


def _scan(path):
    """Parse the results file; return (records, good_byte_length, problem or None, first_lines,
    duplicates): ``first_lines`` are the raw lines of the first record of each key, in file
    order, ``duplicates`` the number of later records of a key already seen (dropped)."""
    records: Dict[str, dict] = {}
    first_lines: List[bytes] = []
    duplicates = 0
    if not os.path.exists(path):
        return records, 0, None, first_lines, duplicates
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    offset = 0
    for i, line in enumerate(lines):
        is_last = i == len(lines) - 1
        end = offset + len(line) + (0 if is_last else 1)
        if not line.strip():
            offset = end
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
            if not isinstance(rec, dict) or "key" not in rec:
                raise ValueError("not a result record")
        except (ValueError, UnicodeDecodeError) as exc:
            rest = b"".join(lines[i + 1:]).strip()
            if rest:
                raise ValueError(f"{path}: corrupt results line {i + 1} ({exc}); only a half-written "
                                 "last line is repaired automatically") from exc
            return (records, offset, f"ignored a half-written last line ({len(line)} bytes) in {path}",
                    first_lines, duplicates)
        if rec["key"] in records:
            duplicates += 1
        else:
            records[rec["key"]] = rec
            first_lines.append(line)
        offset = end
    return records, offset, None, first_lines, duplicates


def _warn_duplicates(path, duplicates, action):
    if duplicates:
        warnings.warn(f"{path}: {duplicates} record(s) repeat a task key already in the file; keeping the "
                      f"first record of each key{action}")


def read_results(path) -> Dict[str, dict]:
    """Finished records of a results file, by key (the first record of a repeated key). A
    half-written last line and repeated keys are ignored with a :class:`UserWarning` (the file
    is not modified)."""
    records, _, problem, _, duplicates = _scan(path)
    if problem:
        warnings.warn(problem)
    _warn_duplicates(path, duplicates, "")
    return records


def repair_results(path) -> Dict[str, dict]:
    """Like :func:`read_results`, and repair the file so that new lines can be appended
    safely: cut a half-written last line off, drop the later records of a repeated key
    (keeping the first), add a missing final newline. Takes the lock of the file
    (:class:`ResultsLocked` if a run holds it)."""
    lock = _acquire(path)
    try:
        return _repair(path)
    finally:
        lock.release()


def _repair(path) -> Dict[str, dict]:
    """:func:`repair_results` for a caller that holds the lock."""
    records, good, problem, first_lines, duplicates = _scan(path)
    if problem:
        warnings.warn(problem + "; truncating it")
    _warn_duplicates(path, duplicates, "; rewriting the file without the others")
    if duplicates:
        tmp = os.fspath(path) + ".dedup.tmp"
        with open(tmp, "wb") as fh:
            fh.write(b"".join(line + b"\n" for line in first_lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return records
    if problem:
        with open(path, "r+b") as fh:
            fh.truncate(good)
            fh.flush()
            os.fsync(fh.fileno())
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
    return records


def _append(fh, record):
    fh.write(json.dumps(record, sort_keys=True) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def _timed_call(fn, params):
    t0 = time.perf_counter()
    result = fn(params)
    return result, time.perf_counter() - t0


def run_sweep(fn: Callable[[Dict[str, Any]], Any], tasks: Sequence[Mapping[str, Any]], results_path=None,
              scheduler=None, progress: bool = True, desc: Optional[str] = None) -> List[dict]:
    """Run ``fn(params)`` for every task not yet in ``results_path``; return all records.

    Parameters
    ----------
    fn : callable
        ``fn(params) -> result``; the result must be JSON-serialisable (numpy/torch values
        are converted). For dask with process workers, ``fn`` must be picklable
        (a module-level function or a :func:`functools.partial` of one).
    tasks : sequence of dict
        Parameters of each task; duplicates (same key) run once.
    results_path : path or None
        JSON-lines results file (created if missing; resumed otherwise: only the tasks whose
        key is not in it run, repeated keys are dropped keeping the first record). ``None``
        keeps results in memory only. The run holds the lock ``<results_path>.lock``.
    scheduler : None, str or distributed.Client
        ``None`` runs in-process; an address (``"tcp://host:8786"``) or a Client runs the
        tasks on dask.distributed.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of dict
        One record per distinct task, in task order: ``key``, ``params``, ``result``,
        ``elapsed_s`` (read back from the file for tasks finished earlier).

    Raises
    ------
    ResultsLocked
        Another run (process or thread) holds the lock of ``results_path``; nothing is run.
    ImportError
        ``scheduler`` given without dask.distributed installed (``pip install .[dask]``).

    Notes
    -----
    If a task raises (including :class:`KeyboardInterrupt`), the records already
    finished stay in the file and the exception propagates; re-running resumes.
    """
    from tqdm.auto import tqdm

    if not callable(fn):
        raise TypeError("fn must be callable")
    ordered: Dict[str, dict] = {}
    for params in tasks:
        if not isinstance(params, Mapping):
            raise TypeError(f"each task must be a dict of parameters, got {type(params).__name__}")
        p = to_jsonable(dict(params))
        ordered.setdefault(task_key(p), p)
    lock = _acquire(results_path) if results_path is not None else None
    try:
        return _run_locked(fn, ordered, results_path, scheduler, progress, desc, tqdm)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(fn, ordered, results_path, scheduler, progress, desc, tqdm):
    done: Dict[str, dict] = _repair(results_path) if results_path is not None else {}
    todo = [(k, p) for k, p in ordered.items() if k not in done]
    fh = None
    if results_path is not None:
        fh = open(results_path, "a", encoding="utf-8")
    bar = tqdm(total=len(ordered), initial=len(ordered) - len(todo), desc=desc or "sweep",
               disable=not progress, leave=False)

    def finish(key, params, result, elapsed):
        rec = {"key": key, "params": params, "result": to_jsonable(result), "elapsed_s": float(elapsed)}
        if fh is not None:
            _append(fh, rec)
        done[key] = rec
        bar.update(1)

    try:
        if scheduler is None:
            for key, params in todo:
                result, elapsed = _timed_call(fn, params)
                finish(key, params, result, elapsed)
        elif todo:
            _run_dask(fn, todo, scheduler, finish)
    finally:
        bar.close()
        if fh is not None:
            fh.close()
    return [done[k] for k in ordered]


def _run_dask(fn, todo, scheduler, finish):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError("scheduler= needs the optional dependency dask.distributed (package "
                          f"'distributed'), which cannot be imported ({exc}): pip install .[dask]") from exc

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futures = {}
    try:
        for key, params in todo:
            fut = client.submit(_timed_call, fn, params, key=f"gpbound-sweep-{key}-{time.time_ns()}", pure=False)
            futures[fut] = (key, params)
        for fut in as_completed(list(futures)):
            key, params = futures[fut]
            result, elapsed = fut.result()
            finish(key, params, result, elapsed)
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        if own:
            client.close()
