"""Resumable sweeps: kill half-way and resume, truncated last line, dask LocalCluster."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from gpbound.experiments.sweep import grid, load_config, read_results, run_sweep, task_key


def square(params):
    return {"y": params["a"] ** 2 + params["b"]}


def _keys_in_file(path):
    with open(path) as fh:
        return [json.loads(line)["key"] for line in fh if line.strip()]


def test_grid_and_key():
    tasks = grid(a=range(3), b=[10, 20])
    assert len(tasks) == 6 and tasks[1] == {"a": 0, "b": 20}
    assert task_key({"a": 1, "b": 2}) == task_key({"b": 2, "a": 1})
    assert task_key({"a": 1}) != task_key({"a": 2})


def test_keyboard_interrupt_then_resume(tmp_path):
    path = tmp_path / "r.jsonl"
    tasks = grid(a=range(8), b=[1])
    calls = []

    def flaky(p):
        calls.append(p["a"])
        if p["a"] == 4 and not os.path.exists(tmp_path / "flag"):
            open(tmp_path / "flag", "w").close()
            raise KeyboardInterrupt
        return square(p)

    with pytest.raises(KeyboardInterrupt):
        run_sweep(flaky, tasks, path, progress=False)
    assert len(_keys_in_file(path)) == 4
    calls.clear()
    recs = run_sweep(flaky, tasks, path, progress=False)
    assert calls == [4, 5, 6, 7]                         # finished tasks are skipped
    keys = _keys_in_file(path)
    assert sorted(keys) == sorted(task_key(t) for t in tasks) and len(set(keys)) == 8
    assert [r["result"]["y"] for r in recs] == [a * a + 1 for a in range(8)]


def test_sigkill_then_resume(tmp_path):
    path = tmp_path / "r.jsonl"
    script = textwrap.dedent(f"""
        import time
        from gpbound.experiments.sweep import grid, run_sweep
        def slow(p):
            time.sleep(0.15)
            return {{"y": p["a"] * 2, "pad": "x" * 2000}}
        run_sweep(slow, grid(a=range(20)), {str(path)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    t0 = time.time()
    while time.time() - t0 < 60:
        if path.exists() and len(_keys_in_file(path)) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    k = len(_keys_in_file(path))
    assert 5 <= k < 20
    # simulate a write cut mid-line as well
    with open(path, "a") as fh:
        fh.write('{"key": "abc", "params": {"a": 1')
    with pytest.warns(UserWarning, match="half-written"):
        recs = run_sweep(lambda p: {"y": p["a"] * 2, "pad": "x" * 2000}, grid(a=range(20)), path,
                         progress=False)
    keys = _keys_in_file(path)                           # every line parses: file was repaired
    assert sorted(keys) == sorted(task_key({"a": a}) for a in range(20))
    assert [r["result"]["y"] for r in recs] == [2 * a for a in range(20)]


def test_truncated_last_line_read(tmp_path):
    path = tmp_path / "r.jsonl"
    run_sweep(square, grid(a=range(3), b=[0]), path, progress=False)
    data = path.read_bytes()
    path.write_bytes(data[:-7])                          # cut into the last record
    with pytest.warns(UserWarning, match="half-written"):
        assert len(read_results(path)) == 2
    path.write_bytes(b'{"key": 1}\nnot json\n{"key": 2}\n')
    with pytest.raises(ValueError, match="corrupt results line 2"):
        read_results(path)


def test_yaml_config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("sizes: [4, 8]\nn_networks: 3\nevil: !!python/object/apply:os.system ['true']\n")
    import yaml
    with pytest.raises(yaml.YAMLError):                  # safe_load refuses python tags
        load_config(p)
    p.write_text("sizes: [4, 8]\nn_networks: 3\n")
    assert load_config(p) == {"sizes": [4, 8], "n_networks": 3}


@pytest.mark.parametrize("processes", [False, True])
def test_dask_same_results(tmp_path, processes):
    distributed = pytest.importorskip("distributed")
    tasks = grid(a=range(6), b=[3])
    # process workers cannot import this test module (importlib mode): use an importable fn
    fn = task_key if processes else square
    local = run_sweep(fn, tasks, None, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        path = tmp_path / "d.jsonl"
        run_sweep(fn, tasks[:3], path, scheduler=client, progress=False)
        recs = run_sweep(fn, tasks, path, scheduler=client, progress=False)   # resumes
    assert [r["result"] for r in recs] == [r["result"] for r in local]
    assert sorted(_keys_in_file(path)) == sorted(r["key"] for r in local)


def test_missing_dask_is_a_clear_error(tmp_path, monkeypatch):
    # an optional dependency that cannot be imported is named, with the install command
    monkeypatch.setitem(sys.modules, "distributed", None)       # makes `import distributed` fail
    calls = []
    with pytest.raises(ImportError, match=r"dask\.distributed.*pip install \.\[dask\]"):
        run_sweep(lambda p: calls.append(p) or square(p), grid(a=range(2), b=[0]), tmp_path / "r.jsonl",
                  scheduler="tcp://127.0.0.1:1", progress=False)
    assert calls == []


def test_to_jsonable_tensors():
    import numpy as np
    import torch

    from gpbound.experiments.sweep import to_jsonable
    assert to_jsonable({"t": torch.tensor([1.5, float("inf")]), "s": torch.tensor(2), "n": np.float32(0.5)}) == \
        {"t": [1.5, "inf"], "s": 2, "n": 0.5}
    with pytest.raises(TypeError, match="cannot store object"):
        to_jsonable(object())
