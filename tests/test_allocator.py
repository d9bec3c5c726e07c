"""gpbound.allocator.keep_freed_memory: the mallopt calls it makes, its errors, and a real call."""
import platform
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


def test_raise_mmap_threshold_errors():
    with pytest.raises(ValueError, match="block"):
        allocator.raise_mmap_threshold(0)
    with pytest.raises(ValueError, match="block"):
        allocator.raise_mmap_threshold(allocator.WARM_BLOCK + 1)
    with pytest.raises(TypeError, match="block"):
        allocator.raise_mmap_threshold(2.0 ** 20)


_STEPS = """
import resource, sys, torch
import gpbound.attacks
from gpbound.allocator import raise_mmap_threshold
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
if sys.argv[1] == "raise":
    raise_mmap_threshold()
out = []
for _ in range(8):  # a step: eight 3 MiB blocks allocated, written and freed (24 MiB at the heap's top)
    f0 = faults()
    blocks = [torch.empty(3 * 2 ** 20, dtype=torch.uint8).fill_(1) for _ in range(8)]
    out.append(faults() - f0)
    del blocks
print(" ".join(map(str, out)))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's dynamic mmap threshold")
def test_raise_mmap_threshold_keeps_a_steps_blocks_in_the_heap():
    """In a fresh process, steps that free 24 MiB of 3 MiB blocks: with glibc's thresholds as they stand
    (no call: the power check) the second step page-faults its 24 MiB in again (6144 pages of 4 KiB;
    >= 4000 asked; later steps vary with where glibc placed the blocks); after raise_mmap_threshold() only
    the first step does (<= 256 faults in steps 2-8)."""
    def run(mode):
        out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True)
        return [int(v) for v in out.stdout.split()]

    plain, raised = run("plain"), run("raise")
    assert plain[1] >= 4000, plain
    assert sum(raised[1:]) <= 256, raised
