"""Circular padding of the finite networks' pixel grids, with a one-pass backward.

``torch.nn.functional.pad(x, pads, mode="circular")`` is cheap forward, but autograd
differentiates it slice by slice: every slice's backward zero-fills a full-size tensor and
copies into it.  On the vmapped theory ResNet (C = 16, 32 x 32, 8 networks x 5 points, float32,
1 thread) those fills and copies were ~20 % of a forward and backward pass (profile: ``fill_`` 8 %,
``copy_`` 18 % of which ~8 points remain after the change, the rest vmap's relayouts).

:func:`circular_pad` computes the same forward and folds the gradient back onto the grid in one
pass: the interior block of the output gradient, plus each wrapped border strip (and corner)
added onto the pixels it copies,

.. math::
    \\frac{\\partial L}{\\partial x_i} = \\sum_{j : \\; (j - lo) \\bmod N = i}
    \\frac{\\partial L}{\\partial y_j}, \\qquad y_j = x_{(j - lo) \\bmod N},

per padded dimension (``lo`` pixels before, ``hi`` after, ``lo, hi <= N``).  It carries its own
``vmap`` rule, so :class:`gpbound.ensemble.NetworkEnsemble`'s vmapped networks use it too.
"""
from __future__ import annotations

import itertools
from typing import Optional, Tuple

import torch
import torch.nn.functional as Fn

__all__ = ["circular_pad", "FOLD_MIN_ENTRIES"]

#: entries of the input (per network under vmap) from which :func:`circular_pad` folds its gradient in
#: one pass by default (the stacked forward, without vmap, always folds: ``fold=True``).  Measured, theory ResNet C = 16, 8 networks x 5 rows vmapped, float32, 1 thread, forward +
#: backward of the whole network, medians of 32-64 calls interleaved with torch's pad: 32 x 32 grid
#: (81920 entries per network at the first pad) 3-17 % less in three runs (e.g. 159 -> 132 ms);
#: 24 x 24 (46080) 80 -> 75 ms; 12 x 12 (11520) 43 -> 53 ms, slower (there the autograd function's fixed
#: cost, ~0.5 ms a call, dominates)
FOLD_MIN_ENTRIES = 2 ** 15


def _parts(lo: int, n: int, hi: int):
    """``(source start, length, target start)`` of the blocks of one padded dimension: the interior,
    the ``hi`` strip (a copy of the first pixels) and the ``lo`` strip (a copy of the last)."""
    return [(lo, n, 0), (lo + n, hi, 0), (0, lo, n - lo)]


def _fold(g: torch.Tensor, pads: Tuple[int, ...]) -> torch.Tensor:
    """Gradient of the circular pad: ``g`` of the padded grid summed back onto the grid."""
    dims = []
    for i in range(len(pads) // 2):
        d = g.dim() - 1 - i
        lo, hi = pads[2 * i], pads[2 * i + 1]
        dims.append((d, lo, g.shape[d] - lo - hi, hi))
    out = g
    for d, lo, n, _ in dims:
        out = out.narrow(d, lo, n)
    out = out.clone(memory_format=_layout_of(g))
    for blocks in itertools.product(*(_parts(lo, n, hi) for _, lo, n, hi in dims)):
        if all(b[0] == lo for b, (_, lo, _, _) in zip(blocks, dims)) or any(b[1] == 0 for b in blocks):
            continue  # the interior (already there) or an empty strip
        src, dst = g, out
        for (d, _, _, _), (s0, length, t0) in zip(dims, blocks):
            src, dst = src.narrow(d, s0, length), dst.narrow(d, t0, length)
        dst.add_(src)
    return out


def _layout_of(t: torch.Tensor) -> torch.memory_format:
    """The memory format of ``t`` that its copies keep: ``channels_last`` where a 4-D ``t`` is laid out so
    (the stacked networks' 2-D grids, :meth:`gpbound.kernels.architecture._Network.stacked`), else
    contiguous.  Read from the strides (``is_contiguous(memory_format=...)`` is not available under vmap);
    a dimension of size 1 has no stride to check."""
    if t.dim() != 4:
        return torch.contiguous_format
    _, C, H, W = t.shape
    last = (H * W * C, 1, W * C, C)
    first = (C * H * W, H * W, W, 1)

    def matches(strides):
        return all(s == e for n, s, e in zip(t.shape, t.stride(), strides) if n > 1)
    return torch.channels_last if matches(last) and not matches(first) else torch.contiguous_format


def _pad_in_layout(x: torch.Tensor, pads: Tuple[int, ...]) -> torch.Tensor:
    """The values of :func:`_pad` in the memory layout of a channels-last ``x`` (torch's circular pad
    returns a contiguous tensor, and a convolution or ReLU that mixes layouts costs up to 4x): the padded
    grid allocated in that layout, ``x`` copied into its interior, then one dimension after the other its
    two wrapped strips copied from the padded grid itself (over the full padded extent of the dimensions
    done before, so the corners come with them): ``1 + 2 d`` copies for ``d`` padded dimensions."""
    dims = []
    for i in range(len(pads) // 2):
        d = x.dim() - 1 - i
        dims.append((d, pads[2 * i], x.shape[d], pads[2 * i + 1]))
    shape = list(x.shape)
    for d, lo, n, hi in dims:
        shape[d] = lo + n + hi
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_layout_of(x))
    inner = out
    for d, lo, n, _ in dims:
        inner = inner.narrow(d, lo, n)
    inner.copy_(x)
    for j, (d, lo, n, hi) in enumerate(dims):
        region = out  # the dimensions after this one (not padded yet) restricted to their interior
        for d2, lo2, n2, _ in dims[j + 1:]:
            region = region.narrow(d2, lo2, n2)
        if lo:  # pixels lo - 1 .. 0 before the grid: copies of its last lo pixels (padded lo + n - lo ..)
            region.narrow(d, 0, lo).copy_(region.narrow(d, n, lo))
        if hi:  # after the grid: copies of its first hi pixels (padded lo .. lo + hi - 1)
            region.narrow(d, lo + n, hi).copy_(region.narrow(d, lo, hi))
    return out


def _pad(x: torch.Tensor, pads: Tuple[int, ...]) -> torch.Tensor:
    """The values: torch's circular pad, on ``x`` viewed as ``(M, *grid)`` (the one input rank torch's
    circular mode takes for every grid rank 1-3)."""
    if not torch.jit.is_tracing() and _layout_of(x) is not torch.contiguous_format:
        return _pad_in_layout(x, pads)  # (a traced network records torch's pad: its inputs are contiguous)
    nd = len(pads) // 2
    y = Fn.pad(x.reshape(-1, *x.shape[x.dim() - nd:]), pads, mode="circular")
    return y.reshape(*x.shape[:x.dim() - nd], *y.shape[1:])


class _CircularPad(torch.autograd.Function):
    @staticmethod
    def forward(x, pads):
        return _pad(x, pads)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.pads = inputs[1]

    @staticmethod
    def backward(ctx, g):
        return _fold(g, ctx.pads), None

    @staticmethod
    def jvp(ctx, t, _):
        return _pad(t, ctx.pads)  # a linear map: forward mode pads the tangent

    @staticmethod
    def vmap(info, in_dims, x, pads):
        if in_dims[0] is None:
            return _CircularPad.apply(x, pads), None
        return _CircularPad.apply(x.movedim(in_dims[0], 0), pads), 0


def circular_pad(x: torch.Tensor, pads: Tuple[int, ...], fold: Optional[bool] = None) -> torch.Tensor:
    """Periodic padding of the last ``len(pads) // 2`` dimensions of ``x``.

    Same values as ``torch.nn.functional.pad(x, pads, mode="circular")`` (``pads`` in its order:
    last dimension first, ``(lo, hi)`` each), with a one-pass backward (module docstring).

    Parameters
    ----------
    x : tensor ``(..., *grid)``
    pads : tuple of 2, 4 or 6 non-negative ints, each at most the size of its dimension.
    fold : bool or None, default None
        ``True``: the one-pass backward; ``False``: torch's pad and its autograd; ``None``: the one-pass
        backward for inputs of at least :data:`FOLD_MIN_ENTRIES` entries (below, the Python autograd
        function's fixed cost exceeds what it saves).

    Under ``torch.jit.trace`` it is torch's pad itself (a traced graph cannot hold a Python autograd
    function), so traced networks save and load as before.
    """
    pads = tuple(int(p) for p in pads)
    if fold is None:
        fold = x.numel() >= FOLD_MIN_ENTRIES
    if torch.jit.is_tracing() or not fold:
        return _pad(x, pads)
    return _CircularPad.apply(x, pads)
