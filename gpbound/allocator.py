"""Process-wide tuning of the C memory allocator for the attacks' CPU loops.

Each forward + backward pass of a network allocates and frees tensors of a few MiB.  glibc's ``malloc``
serves such blocks with ``mmap`` (or trims them off the heap) and returns them to the operating system on
``free``, so the next step page-faults the same memory in again.  :func:`keep_freed_memory` sets glibc's
``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (``mallopt``; the same as the environment variables
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``), so blocks up to ``max_block`` bytes come from
the heap and stay there for reuse.  PyTorch's CPU tuning guide gives the same advice (a caching allocator
such as jemalloc or tcmalloc).

Measured on a 2-core AMD EPYC (float32 theory ResNet C = 16, 8 networks x 5 points at 32 x 32, one
thread, 2026-12-03): forward + backward 28.7-41.1 -> 17.5-25.3 ms (five interleaved pairs of processes,
medians of 21 calls); ``minimal_distance`` in linf with the box [0, 1] 0.123-0.162 -> 0.100-0.110 s per
point (three pairs).  The NNGP kernels did not change measurably (their blocks exceed 32 MiB).

:func:`raise_mmap_threshold` gets most of that without fixing any parameter: it allocates and frees one
31 MiB block, after which glibc's *dynamic* thresholds (its default mode, which ``mallopt`` would switch
off) stand at that size and twice it, as in any process that once freed such a block.  The few-MiB blocks
of a step then come from the heap, and the heap keeps up to 62 MiB of freed memory at its top instead of
trimming it.  :func:`gpbound.attacks.minimal_distance` calls it on the CPU.  Measured (same machine and
cell, three interleaved pairs of processes): page faults per forward + backward 2100-2900 -> 35-70, a step
of FMN 27-34 -> 20-24 ms, the linf ``minimal_distance`` at 32 x 32 0.139-0.173 -> 0.115-0.130 s per point.
"""
from __future__ import annotations

import ctypes

import torch

from .validation import integer

__all__ = ["keep_freed_memory", "raise_mmap_threshold", "MAX_BLOCK", "WARM_BLOCK"]

#: the largest ``M_MMAP_THRESHOLD`` glibc accepts on 64-bit systems (``HEAP_MAX_SIZE / 2``)
MAX_BLOCK = 32 * 2 ** 20
#: the block :func:`raise_mmap_threshold` allocates and frees: glibc raises its dynamic mmap threshold to
#: a freed mmapped chunk of at most :data:`MAX_BLOCK` bytes, header and page rounding included
WARM_BLOCK = 31 * 2 ** 20
#: glibc's ``mallopt`` parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def _libc():
    """The C library of this process (its symbols, as ``dlopen(NULL)`` sees them)."""
    return ctypes.CDLL(None)


def keep_freed_memory(max_block: int = MAX_BLOCK) -> None:
    """Keep freed blocks of up to ``max_block`` bytes in the heap for reuse (glibc ``mallopt``).

    A process-wide setting, for the rest of the process: the heap keeps up to the peak memory of the loop
    instead of returning it to the system (the trim threshold is set to ``2**30`` bytes).  It speeds up
    the attacks' forward + backward passes on the CPU (module docstring); the results do not change.

    Parameters
    ----------
    max_block : int, default :data:`MAX_BLOCK` (32 MiB)
        Blocks up to this size come from the heap (``M_MMAP_THRESHOLD``), in ``[1, MAX_BLOCK]``.

    Raises
    ------
    RuntimeError
        Where the C library has no ``mallopt`` (it is glibc's; e.g. macOS, musl), or refuses a setting.
    """
    max_block = integer(max_block, "max_block", lo=1, hi=MAX_BLOCK)
    libc = _libc()
    if not hasattr(libc, "mallopt"):
        raise RuntimeError("keep_freed_memory needs glibc's mallopt; this process's C library has none "
                           "(use a caching allocator such as jemalloc or tcmalloc through LD_PRELOAD instead)")
    for param, value in ((_M_MMAP_THRESHOLD, max_block), (_M_TRIM_THRESHOLD, 2 ** 30)):
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1:
            raise RuntimeError(f"mallopt({param}, {value}) was refused by the C library")


def raise_mmap_threshold(block: int = WARM_BLOCK) -> None:
    """Raise glibc's dynamic mmap and trim thresholds to ``block`` and ``2 block`` bytes by allocating and
    freeing one block of that size (its pages are never touched).

    glibc adapts both thresholds upwards whenever a block it had mapped is freed (up to :data:`MAX_BLOCK`);
    this is that event, once, so that the blocks of a few MiB that each forward + backward pass allocates and
    frees are served from the heap and stay there for the next pass, instead of being returned to the system
    and page-faulted in again (module docstring).  Nothing is fixed: glibc keeps adapting, a later call
    changes nothing, and the results of any computation are the same.  Under another C library or
    allocator it only allocates and frees a block.  Called by :func:`gpbound.attacks.minimal_distance` on the
    CPU; :func:`keep_freed_memory` is the stronger, opt-in setting.

    Parameters
    ----------
    block : int, default :data:`WARM_BLOCK` (31 MiB)
        Bytes, in ``[1, WARM_BLOCK]``.
    """
    block = integer(block, "block", lo=1, hi=WARM_BLOCK)
    warm = torch.empty(block, dtype=torch.uint8)
    del warm
