"""Pixel operations of the NNGP layer maps: conv and pooling stencils on a :class:`KernelState`.

Every function here is *linear* in the state's tensors (the ReLU map ``F`` lives in
:mod:`gpbound.kernels.state`).  Trailing dims of each tensor are the pixel grid
(diagonal state, ``K_{aa}``) or the grid twice (full state, ``K_{ab}``); see
:mod:`gpbound.kernels.state`.

Conventions (neural-tangents' ``stax.Conv`` / ``stax.AvgPool`` / ``stax.GlobalAvgPool``):

* a convolution with patch ``p``, stride ``s`` on an axis of ``g`` pixels has ``ceil(g / s)``
  output pixels; output pixel ``i`` reads the input pixels ``s i - lo + k``, ``k = 0 .. p-1``,
  with ``(lo, hi)`` = :func:`same_pads` ``(g, p, s)`` (TensorFlow "same": the extra pad at the
  end).  For stride 1 the offsets are ``-(p-1)//2 .. p-1-(p-1)//2``;
* ``padding="circular"`` reads those pixels modulo ``g``; ``padding="same"`` reads zeros outside
  the grid (a zero-padded input pixel contributes nothing);
* the weight variance is ``sigma_w2 / fan_in`` with ``fan_in = C_in |P|`` whatever the padding,
  so the map is

  .. math:: K'_{ij} = \\sigma_b^2 + \\frac{\\sigma_w^2}{|P|}\\sum_{k\\in P} \\tilde K_{s i - lo + k,\\; s j - lo + k}

  (``~K``: ``K`` read periodically, or zero outside the grid); docs/theory.md §1, paper eqs. (1)-(2).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Tuple

import torch

from .stencil import circular_conv_map, conv_relu_cross
from .state import KernelState

__all__ = ["same_pads", "conv_map", "conv_relu_map", "avg_pool_map", "global_avg_pool_map", "flatten_map"]


def same_pads(size: int, patch: int, stride: int) -> Tuple[int, int]:
    """TensorFlow/Keras "same" padding of one axis: ``(lo, hi)`` with the extra pixel at the end.

    ``out = ceil(size / stride)`` and ``lo + hi = max((out - 1) stride + patch - size, 0)``,
    ``lo = (lo + hi) // 2``.

    Examples
    --------
    >>> same_pads(8, 3, 1), same_pads(8, 3, 2), same_pads(7, 3, 2), same_pads(8, 1, 2)
    ((1, 1), (0, 1), (1, 1), (0, 0))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + patch - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------- convolutions
def conv_map(state: KernelState, patch, stride, padding: str, sw2, sb2) -> KernelState:
    """Kernel map of a convolution (module docstring) on a diagonal or full state.

    Parameters
    ----------
    state : KernelState
    patch, stride : tuple of int
        One entry per grid dimension.
    padding : {"circular", "same"}
    sw2, sb2 : float or 0-dim tensor
        Weight and bias variances.
    """
    if padding == "circular" and all(s == 1 for s in stride):
        return _circular_unit_stride(state, patch, sw2, sb2)
    return _general_conv(state, patch, stride, padding, sw2, sb2)


def _circular_unit_stride(state: KernelState, patch, sw2, sb2) -> KernelState:
    """Stride-1 circular conv: ``K'_{aa'} = sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}``.

    One fused stencil pass per conv layer (:func:`gpbound.kernels.stencil.circular_conv_map`: the
    circular wrap handled once as slice ranges, cache-sized chunks; tested against the defining sum).
    """
    return state.map(lambda t: circular_conv_map(t, state.grid, patch, sw2, sb2, state.full))


def conv_relu_map(state: KernelState, patch, sw2: float, sb2: float) -> KernelState:
    """A stride-1 circular Conv followed by a ReLU, its cross covariance in one fused pass.

    The variances take the two layer maps (:func:`conv_map`, :meth:`KernelState.relu`; replayed
    from a :class:`~gpbound.kernels.state.VarTape` in a blocked kernel); the cross covariance, the
    largest tensor, goes through :func:`gpbound.kernels.stencil.conv_relu_cross` (compiled when
    :func:`gpbound.kernels.enable_compile` is on): no eager pass over the conv output.  Equal to
    ``conv_map(state, ...).relu()`` to rounding.  No autograd (``sw2``, ``sb2``: floats).
    """
    mid = _circular_unit_stride(replace(state, cross=None), patch, sw2, sb2)  # the conv output's variances
    out = mid.relu()
    if state.cross is None:
        return out
    v1, v2 = mid.pixel_variances()
    va = mid._pair_x(mid._full_pix(v1, True))
    vb = mid._pair_y(mid._full_pix(v2, False))
    return replace(out, cross=conv_relu_cross(state.cross, va, vb, state.grid, patch, sw2, sb2, state.full))


def _pad_axis(t: torch.Tensor, ax: int, lo: int, hi: int, circular: bool) -> torch.Tensor:
    """Pad axis ``ax`` of ``t`` by ``lo`` / ``hi`` pixels: periodic copies or zeros."""
    if lo == 0 and hi == 0:
        return t
    g = t.shape[ax]
    if circular:  # lo, hi <= patch - 1 < g (the patch never exceeds a circular grid)
        parts = ([t.narrow(ax, g - lo, lo)] if lo else []) + [t] + ([t.narrow(ax, 0, hi)] if hi else [])
        return torch.cat(parts, ax)
    shape = list(t.shape)
    shape[ax] = g + lo + hi
    out = t.new_zeros(shape)
    out.narrow(ax, lo, g).copy_(t)
    return out


def _general_conv(state: KernelState, patch, stride, padding, sw2, sb2) -> KernelState:
    """Any stride, circular or zero ("same") padding: the defining sum, one grid axis at a time.

    Per axis: pad (periodically or with zeros) by :func:`same_pads`, then sum the ``p``
    views ``K[k + s i, k + s j]`` (both pixel axes of the pair shifted together on a full
    state; the single pixel axis on a diagonal state).  Out of place (autograd-safe).
    """
    d = len(state.grid)
    circular = padding == "circular"
    new = tuple(-(-g // s) for g, s in zip(state.grid, stride))

    def conv(t):
        nd = t.dim()
        for axis, (g, p, s, o) in enumerate(zip(state.grid, patch, stride, new)):
            lo, hi = same_pads(g, p, s)
            axes = (nd - 2 * d + axis, nd - d + axis) if state.full else (nd - d + axis,)
            for ax in axes:
                t = _pad_axis(t, ax, lo, hi, circular)
            acc = None
            for k in range(p):
                idx = [slice(None)] * nd
                for ax in axes:
                    idx[ax] = slice(k, k + (o - 1) * s + 1, s)
                v = t[tuple(idx)]
                acc = v if acc is None else acc + v
            t = acc
        return t * (sw2 / math.prod(patch)) + sb2

    return state.map(conv, grid=new)


# ---------------------------------------------------------------------------- pooling and flattening
def avg_pool_map(state: KernelState, block) -> KernelState:
    """``K'_{AB} = mean_{a in A, b in B} K_{ab}`` over the partition of the grid into ``block`` s
    (paper eq. (4)); needs the full pixel covariance."""
    if not state.full:
        raise RuntimeError("AvgPool kernel map needs the full pixel covariance")  # internal invariant
    d = len(state.grid)
    new = tuple(g // b for g, b in zip(state.grid, block))
    scale = 1.0 / (math.prod(block) ** 2)

    def pool(t):
        # block means as sums of strided views (one shrinking pass per pooled axis,
        # innermost first), then one scale: no reduction over scattered axes
        nd = t.dim()
        for j in range(2 * d - 1, -1, -1):
            b = block[j % d]
            if b == 1:
                continue
            ax = nd - 2 * d + j
            idx = [slice(None)] * nd
            parts = []
            for k in range(b):
                idx[ax] = slice(k, None, b)
                parts.append(t[tuple(idx)])
            acc = parts[0] + parts[1]
            for q in parts[2:]:
                acc = acc.add_(q)
            t = acc
        return t * scale if all(b == 1 for b in block) else t.mul_(scale)

    return state.map(pool, grid=new)


def global_avg_pool_map(state: KernelState) -> KernelState:
    """Average over all pixels: ``K' = (1/|I|^2) sum_{a, b in I} K_{ab}`` (a flat field; grid ``()``).
    Needs the full pixel covariance."""
    if not state.full:
        raise RuntimeError("GlobalAvgPool kernel map needs the full pixel covariance")  # internal invariant
    d = len(state.grid)
    if d == 0:
        return state
    dims = tuple(range(-2 * d, 0))
    return state.map(lambda t: t.mean(dim=dims), grid=())


def flatten_map(state: KernelState, sw2, sb2) -> KernelState:
    """Flatten + dense: ``K' = sb2 + sw2/|I| sum_a K_{aa}`` (on a flat field ``K' = sb2 + sw2 K``)."""
    state = state.to_diag()
    d = len(state.grid)
    if d == 0:
        return state.map(lambda t: (t * sw2).add_(sb2))  # add_ on a fresh product: autograd-safe
    dims = tuple(range(-d, 0))
    return state.map(lambda t: (t.mean(dim=dims) * sw2).add_(sb2), grid=())
