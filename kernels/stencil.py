"""The conv layer's kernel map as one stencil: ``K'_{aa'} = sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}``.

docs/theory.md §1 (paper eqs. (1)-(2)): a circular (periodic) convolution of stride 1 with patch
offsets ``b_d in {-lo_d, ..., hi_d}``, ``lo_d = (p_d - 1) // 2``, ``hi_d = p_d - 1 - lo_d``, maps
the pixel covariance ``K`` of one channel to

* full pixels (``K`` of shape ``(..., *g, *g)``): ``K'_{a a'} = sb2 + sw2/|P| sum_b K_{a+b, a'+b}``
  (a box filter along the diagonal direction of every ``(a_d, a'_d)`` plane);
* diagonal pixels (``(..., *g)``): ``K'_a = sb2 + sw2/|P| sum_b K_{a+b}`` (a plain box filter),

indices taken mod the grid.  :func:`circular_conv_map` evaluates either form

* eagerly (default): the pair set is cut into cache-sized chunks; for each chunk the wrap is done
  once per axis (a circularly padded copy along the axis, or the axis pair, in cache) and the
  ``p_d`` shifted slices are summed in cache, so the state is read once and written once from
  memory (the separable per-axis form over the whole state makes ~16 memory passes for a 3x3
  patch on a full-pixel state: a copy plus four slice-adds per offset);
* compiled (:func:`gpbound.kernels.enable_compile` on; full pixels only): one fused kernel, the
  sum of the ``|P|`` rolled copies of ``K`` (``torch.roll`` is an index remap the compiler fuses;
  measured 1.9x faster than the eager chunks on a 16x16 grid, while on diagonal pixels it is slower);
* with autograd (``K`` or a variance needs a gradient): the sum of rolled copies, eagerly.

:func:`conv_relu_cross` fuses the stencil of the cross covariance with the ReLU map that follows it
(one compiled kernel; the NNGP recursion uses it for a Conv directly followed by a ReLU when
:func:`gpbound.kernels.enable_compile` is on and nothing needs a gradient).
"""
from __future__ import annotations

import itertools
import math

import torch

from .arccos import _COMPILED, _PI

__all__ = ["circular_conv_map", "conv_relu_cross"]

#: entries of one chunk of the eager stencil (its padded copies and partial sums stay in cache)
_CHUNK = 1 << 17  # measured on 2 cores: 2^15 0.33 s, 2^17 0.27 s, 2^20 0.32 s (16x16 full block)

_COMPILED_STENCIL = {"fn": None}


def _offsets(patch):
    return [range(-((p - 1) // 2), p - (p - 1) // 2) for p in patch]


def _rolled_sum(t, grid, patch, full):
    """``sum_b K_{a+b(, a'+b)}`` as a sum of rolled copies (differentiable; compiled: one pass)."""
    d = len(grid)
    dims = list(range(t.dim() - (2 if full else 1) * d, t.dim()))
    acc = None
    for off in itertools.product(*_offsets(patch)):
        if not any(off):
            r = t
        else:
            # K_{a+b} = roll(K, -b)[a]; the same shift on a and a'
            r = torch.roll(t, shifts=[-o for o in off] * (2 if full else 1), dims=dims)
        acc = r if acc is None else acc + r
    return acc


def _rolled_map(t, grid, patch, full: bool, scale, shift):
    return _rolled_sum(t, grid, patch, full) * scale + shift


def _shift_add(y, x, axes, k, n, alpha):
    """``y[.., a, .., a', ..] += alpha * x[.., (a+k)%n, .., (a'+k)%n, ..]`` along ``axes`` (one or two dims).

    The shift maps each axis onto itself in two ranges (``a + k`` wraps or not), so the add is
    ``2^len(axes)`` rectangular slice-adds (views, no shifted copy); ``0 < k < n``.
    """
    segs = ((slice(0, n - k), slice(k, n)), (slice(n - k, n), slice(0, k)))
    for parts in itertools.product(segs, repeat=len(axes)):
        it = [slice(None)] * x.dim()
        js = [slice(None)] * x.dim()
        for ax, (ta, sa) in zip(axes, parts):
            it[ax], js[ax] = ta, sa
        y[tuple(it)].add_(x[tuple(js)], alpha=alpha)


def _box_chunk(x, grid, patch, full, out, scale, shift, scratch):
    """``out = shift + scale * sum_b x_{a+b(, a'+b)}`` for one chunk ``x`` (in cache).

    Separable: per grid axis with ``p_d > 1`` a copy plus ``p_d - 1`` shifted adds (the circular
    wrap as slice ranges, :func:`_shift_add`); the scale rides on the first axis, the shift on the
    last pass.  ``scratch``: a buffer of ``x``'s shape for the intermediate axes (ping-pong with
    ``out``, so the last axis lands in ``out``).
    """
    d = len(grid)
    base = x.dim() - (2 if full else 1) * d
    axes = [i for i, p in enumerate(patch) if p > 1]
    if not axes:
        torch.mul(x, scale, out=out).add_(shift)
        return
    for n, i in enumerate(axes):
        p, g = patch[i], grid[i]
        lo = (p - 1) // 2
        dims = (base + i, base + d + i) if full else (base + i,)
        y = out if (len(axes) - n) % 2 == 1 else scratch
        alpha = scale if n == 0 else 1.0
        torch.mul(x, alpha, out=y)
        for b in range(-lo, p - lo):
            if b:
                _shift_add(y, x, dims, b % g, g, alpha)
        x = y
    out.add_(shift)


def _chunked_map(t, grid, patch, full: bool, scale: float, shift: float):
    """The eager stencil over cache-sized chunks of the leading (pair) dims of ``t``."""
    d = len(grid)
    pix = t.shape[t.dim() - (2 if full else 1) * d:]
    lead = t.shape[: t.dim() - len(pix)]
    per = max(1, math.prod(pix))
    L = max(1, math.prod(lead))
    x = t.reshape(L, *pix)
    out = torch.empty((L, *pix), dtype=t.dtype, device=t.device)
    step = max(1, _CHUNK // per) if t.device.type == "cpu" else L  # cache chunks: CPU only
    scratch = torch.empty((min(step, L), *pix), dtype=t.dtype, device=t.device)
    for i in range(0, L, step):
        n = min(step, L - i)
        _box_chunk(x[i:i + n], grid, patch, full, out[i:i + n], scale, shift, scratch[:n])
    return out.reshape(*lead, *pix)


def circular_conv_map(t: torch.Tensor, grid, patch, sigma_w2, sigma_b2, full: bool) -> torch.Tensor:
    """``sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}`` (full) or ``sb2 + sw2/|P| sum_b K_{a+b}`` (diagonal).

    Parameters
    ----------
    t : torch.Tensor
        ``(..., *grid, *grid)`` (``full``) or ``(..., *grid)``; any device.
    grid : tuple of int
        The pixel grid (1 to 3 dims).
    patch : tuple of int
        Patch size per grid dimension, ``1 <= p_d <= g_d``.
    sigma_w2, sigma_b2 : float or 0-dim tensor
        Weight and bias variances (tensors: differentiable).
    full : bool
        Full pixel covariance (True) or its diagonal (False).

    Returns
    -------
    torch.Tensor
        A fresh tensor of ``t``'s shape (never a view of ``t``; ``t`` is not modified).
    """
    grid, patch = tuple(int(g) for g in grid), tuple(int(p) for p in patch)
    if len(grid) != len(patch) or not grid or any(not 1 <= p <= g for p, g in zip(patch, grid)):
        raise ValueError(f"patch {patch} must have one entry 1 <= p <= g per grid dimension of {grid}")
    nd = (2 if full else 1) * len(grid)
    if t.dim() < nd or tuple(t.shape[t.dim() - nd:]) != grid * (2 if full else 1):
        raise ValueError(f"t must end with the pixel dims {grid * (2 if full else 1)}; got {tuple(t.shape)}")
    npix = math.prod(patch)
    if t.requires_grad:
        return _rolled_map(t, grid, patch, full, sigma_w2 / npix, sigma_b2)
    if isinstance(sigma_w2, torch.Tensor) or isinstance(sigma_b2, torch.Tensor):
        # variances with gradients (hyperparameter fits): the fast box sum, then the differentiable affine map
        return _fast_map(t, grid, patch, full, 1.0, 0.0, nd) * (sigma_w2 / npix) + sigma_b2
    return _fast_map(t, grid, patch, full, float(sigma_w2) / npix, float(sigma_b2), nd)


def _fast_map(t, grid, patch, full, scale, shift, nd):
    """No-autograd ``shift + scale * sum_b K_{a+b(, a'+b)}``: compiled (full pixels) or eager chunks."""
    if _COMPILED["on"] and full:  # diagonal pixels: the compiled roll sum measured slower than the eager chunks
        if _COMPILED_STENCIL["fn"] is None:
            # dynamic=None: the pixel dims stay static (the modular indices of the wrap then compile to
            # fast code; dynamic pixel dims measured 2x slower), a changing number of pairs turns dynamic
            _COMPILED_STENCIL["fn"] = torch.compile(_rolled_map, dynamic=None, fullgraph=True)
        pix = t.shape[t.dim() - nd:]
        lead = t.shape[: t.dim() - nd]
        out = _COMPILED_STENCIL["fn"](t.reshape(-1, *pix), grid, patch, full, scale, shift)
        return out.reshape(*lead, *pix)
    return _chunked_map(t, grid, patch, full, scale, shift)


_COMPILED_CONV_RELU = {"fn": None}


def _conv_relu_fused(t, sa, sb, grid, patch, full: bool, scale, shift, f: float):
    """``f * s (sin theta + (pi - theta) c)`` of the conv output ``k = shift + scale * sum_b K_{a+b(, a'+b)}``.

    ``s = sa sb`` (square roots of the conv output's pixel variances, broadcast against ``t``),
    ``c = k / s`` clamped (0 where ``s = 0``): the arithmetic of
    :func:`gpbound.kernels.arccos._k1_fused` applied to :func:`_rolled_map`.  Compiled
    (:func:`conv_relu_cross`), the stencil and the ReLU map are one kernel (each entry reads its
    ``|P|`` neighbours of ``t``); no eager pass touches the conv output.
    """
    k = _rolled_sum(t, grid, patch, full) * scale + shift
    s = sa * sb
    c = torch.nan_to_num(k / s, nan=0.0, posinf=0.0, neginf=0.0).clamp(-1.0, 1.0)
    return s * (torch.sqrt((1.0 - c) * (1.0 + c)) + (_PI - torch.arccos(c)) * c) * f


def conv_relu_cross(t: torch.Tensor, va: torch.Tensor, vb: torch.Tensor, grid, patch, sigma_w2: float,
                    sigma_b2: float, full: bool) -> torch.Tensor:
    """The ReLU map ``F(va, vb, k)`` of the circular stride-1 conv output ``k`` of ``t``: one compiled kernel.

    ``k = sb2 + sw2/|P| sum_b t_{a+b(, a'+b)}`` (:func:`circular_conv_map`) and
    ``F = sqrt(va vb)/(2 pi) (sin theta + (pi - theta) cos theta)`` (:func:`gpbound.kernels.relu_expectation`)
    in one fused pass (``torch.compile``; used by the NNGP recursion when
    :func:`gpbound.kernels.enable_compile` is on, for a Conv followed by a ReLU without autograd).
    The values equal ``relu_expectation(va, vb, circular_conv_map(t, ...))`` to rounding.

    Parameters
    ----------
    t : torch.Tensor
        The conv layer's input cross covariance ``(..., *grid)`` or ``(..., *grid, *grid)`` (``full``).
    va, vb : torch.Tensor
        The conv output's variances ``K_{aa}``, ``K_{a'a'}`` broadcastable against ``t`` (``>= 0``).
    grid, patch : tuple of int
        As in :func:`circular_conv_map`.
    sigma_w2, sigma_b2 : float
        Weight and bias variances of the conv layer.
    full : bool
        Full pixel covariance (True) or its diagonal.

    Returns
    -------
    torch.Tensor
        A fresh tensor of the broadcast shape of ``t``, ``va``, ``vb``.
    """
    grid, patch = tuple(int(g) for g in grid), tuple(int(p) for p in patch)
    if len(grid) != len(patch) or not grid or any(not 1 <= p <= g for p, g in zip(patch, grid)):
        raise ValueError(f"patch {patch} must have one entry 1 <= p <= g per grid dimension of {grid}")
    if isinstance(sigma_w2, torch.Tensor) or isinstance(sigma_b2, torch.Tensor):
        raise TypeError("sigma_w2 and sigma_b2 must be floats (the fused map has no autograd)")
    if t.requires_grad or va.requires_grad or vb.requires_grad:
        raise ValueError("t, va and vb must not require gradients (the fused map has no autograd)")
    fn = _conv_relu_fused  # compile off: the same arithmetic eagerly (a reference; the recursion does not fuse then)
    if _COMPILED["on"]:
        if _COMPILED_CONV_RELU["fn"] is None:
            # dynamic=False: one static kernel per shape (the blocked kernel gives one block shape per layer);
            # a kernel with dynamic pair dims measured 3.5x slower on a full-pixel state
            _COMPILED_CONV_RELU["fn"] = torch.compile(_conv_relu_fused, dynamic=False, fullgraph=True)
        fn = _COMPILED_CONV_RELU["fn"]
    return fn(t, torch.sqrt(va), torch.sqrt(vb), grid, patch, bool(full), float(sigma_w2) / math.prod(patch),
              float(sigma_b2), 0.5 / _PI)
