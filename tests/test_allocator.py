"""gpbound.allocator.keep_freed_memory: the mallopt calls it makes, its errors, and a real call."""
import subprocess
import sys

import pytest

from gpbound import allocator


class _FakeLibc:
    def __init__(self, answer=1):
        self.calls, self.answer = [], answer

    def mallopt(self, param, value):
        self.calls.append((param.value, value.value))
        return self.answer


def test_sets_mmap_and_trim_thresholds(monkeypatch):
    fake = _FakeLibc()
    monkeypatch.setattr(allocator, "_libc", lambda: fake)
    allocator.keep_freed_memory()
    # glibc's malloc.h: M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1
    assert fake.calls == [(-3, 32 * 2 ** 20), (-1, 2 ** 30)]
    fake.calls.clear()
    allocator.keep_freed_memory(4096)
    assert fake.calls == [(-3, 4096), (-1, 2 ** 30)]


def test_errors(monkeypatch):
    with pytest.raises(ValueError, match="max_block"):
        allocator.keep_freed_memory(2 ** 30)
    with pytest.raises(ValueError, match="max_block"):
        allocator.keep_freed_memory(0)
    with pytest.raises(TypeError, match="max_block"):
        allocator.keep_freed_memory(1.5)
    monkeypatch.setattr(allocator, "_libc", lambda: object())
    with pytest.raises(RuntimeError, match="mallopt"):
        allocator.keep_freed_memory()
    monkeypatch.setattr(allocator, "_libc", lambda: _FakeLibc(answer=0))
    with pytest.raises(RuntimeError, match="refused"):
        allocator.keep_freed_memory()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_real_call_in_a_fresh_process():
    # a process of its own: the setting is process-wide and lasts
    code = "from gpbound.allocator import keep_freed_memory; keep_freed_memory(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
