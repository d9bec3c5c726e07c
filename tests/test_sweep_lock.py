"""One writer per results file: a second run is refused; duplicates are dropped on resume."""
import json
import re
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from gpbound.experiments.sweep import (ResultsLocked, grid, read_results, repair_results, run_sweep,
                                       task_key)


def square(params):
    return {"y": params["a"] ** 2}


def _keys_in_file(path):
    with open(path) as fh:
        return [json.loads(line)["key"] for line in fh if line.strip()]


def test_second_writer_refused_while_first_runs(tmp_path):
    # two runs on one folder: the second is refused at once and does no task
    path = tmp_path / "out" / "results.jsonl"
    tasks = grid(a=range(6))
    started, release = threading.Event(), threading.Event()
    first_calls, errors = [], []

    def slow(p):
        first_calls.append(p["a"])
        started.set()
        assert release.wait(60)
        return square(p)

    def first():
        try:
            run_sweep(slow, tasks, path, progress=False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    try:
        assert started.wait(60)
        second_calls = []
        with pytest.raises(ResultsLocked, match="another run holds") as info:
            run_sweep(lambda p: second_calls.append(p) or square(p), tasks, path, progress=False)
        assert str(tmp_path / "out") in str(info.value)
        assert isinstance(info.value, RuntimeError) and "\n" not in str(info.value)
        assert second_calls == []
        with pytest.raises(ResultsLocked):
            repair_results(path)                          # repairing would race the writer too
    finally:
        release.set()
        t.join(60)
    assert not errors
    assert sorted(first_calls) == list(range(6))
    keys = _keys_in_file(path)
    assert sorted(keys) == sorted(task_key(p) for p in tasks) and len(keys) == 6
    # the lock is released: a later run resumes (nothing left to do)
    recs = run_sweep(lambda p: pytest.fail("no task is left"), tasks, path, progress=False)
    assert [r["result"]["y"] for r in recs] == [a * a for a in range(6)]


def test_lock_held_by_another_process(tmp_path):
    path = tmp_path / "results.jsonl"
    script = textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        lock = FileLock({str(path) + ".lock"!r})
        lock.acquire()
        print("locked", flush=True)
        sys.stdin.readline()
        lock.release()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        t0 = time.perf_counter()
        with pytest.raises(ResultsLocked, match=re.escape(f"{tmp_path}: another run holds the lock")):
            run_sweep(square, grid(a=range(3)), path, progress=False)
        assert time.perf_counter() - t0 < 5                 # refused at once, not after waiting
        assert not path.exists()
    finally:
        proc.communicate("\n", timeout=60)
    assert len(run_sweep(square, grid(a=range(3)), path, progress=False)) == 3


def _record(a, y):
    p = {"a": a}
    return json.dumps({"key": task_key(p), "params": p, "result": {"y": y}, "elapsed_s": 0.0}, sort_keys=True)


def test_duplicate_keys_first_record_kept(tmp_path):
    # what two writers without a lock left behind: the same tasks twice, with different results
    path = tmp_path / "results.jsonl"
    lines = [_record(0, 0), _record(1, 1), _record(0, 100), _record(2, 4), _record(1, 101)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="2 record"):
        recs = read_results(path)
    assert {r["params"]["a"]: r["result"]["y"] for r in recs.values()} == {0: 0, 1: 1, 2: 4}
    assert len(_keys_in_file(path)) == 5                  # reading does not modify the file
    calls = []
    with pytest.warns(UserWarning, match="keeping the first record of each key; rewriting"):
        recs = run_sweep(lambda p: calls.append(p["a"]) or square(p), grid(a=range(4)), path, progress=False)
    assert calls == [3]                                   # only the missing task runs
    assert [r["result"]["y"] for r in recs] == [0, 1, 4, 9]
    keys = _keys_in_file(path)                            # the resumed file has each key once
    assert keys == [task_key({"a": a}) for a in (0, 1, 2, 3)]
    assert [json.loads(x)["result"]["y"] for x in path.read_text().splitlines()] == [0, 1, 4, 9]


def test_resume_after_partial_results_does_only_missing(tmp_path):
    path = tmp_path / "results.jsonl"
    run_sweep(square, grid(a=[0, 2, 4]), path, progress=False)
    calls = []
    recs = run_sweep(lambda p: calls.append(p["a"]) or square(p), grid(a=range(6)), path, progress=False)
    assert calls == [1, 3, 5]
    assert [r["result"]["y"] for r in recs] == [a * a for a in range(6)]
    assert sorted(_keys_in_file(path)) == sorted(task_key({"a": a}) for a in range(6))
