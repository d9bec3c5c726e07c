"""The layer language: one description gives the finite network, its NNGP kernel map and metadata.

Each layer class (stax style) has three rules:

* a *shape rule* ``_out_spec`` (channels, pixel grid, whether the field is a zero-mean
  Gaussian field made by fresh weights) that validates the composition;
* a *finite builder* ``_build`` producing a :class:`torch.nn.Module` with weights
  ``W ~ N(0, sigma_w2 / fan_in)`` and biases ``b ~ N(0, sigma_b2)``;
* a *kernel map* ``_kernel`` acting on a :class:`~gpbound.kernels.state.KernelState`
  (docs/theory.md §1, the paper's layer eqs. (1)-(5), section 2).

Layers
------
``Conv(channels, patch)``  circular (periodic) convolution, stride 1, patch offsets
    ``b_d in {-(p_d-1)//2, ..., p_d-1-(p_d-1)//2}``;
    ``K'_{aa'} = sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}``.
``Dense(width)``  fully connected on a flat field (or a 1-pixel grid);
    ``K' = sb2 + sw2 K``.
``ReLU()``  ``K' = F(K)`` (needs a zero-mean Gaussian input: after Conv/Dense/Flatten).
``Residual(block)``  ``phi' = phi + block(phi)``; ``K' = K + block(K)`` (the block must end
    with fresh zero-mean weights, so the two branches are uncorrelated).
``AvgPool(block)``  average over a partition of the grid into equal blocks;
    ``K'_{AB} = mean_{a in A, b in B} K_{ab}``.
``Flatten(width)``  flatten + dense: ``K' = sb2 + sw2/|I| sum_a K_{aa}``.
``serial(*layers)``  composition.

The ReLU is a separate layer, so the paper's "ReLU conv" layer is ``ReLU(), Conv(...)``.
"""
from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as Fn
from torch import nn

from .state import KernelState, input_state

__all__ = ["Layer", "Conv", "Dense", "ReLU", "Residual", "AvgPool", "Flatten", "Serial", "serial",
           "Architecture"]

_MAX_GRID_DIMS = 3


# ---------------------------------------------------------------------------- validation helpers
def _pos_int(value, name: str, owner: str) -> int:
    if isinstance(value, (bool, float)) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{owner}: {name} must be a positive integer; got {value!r} ({type(value).__name__})")
    value = int(value.__index__())
    if value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer (>= 1); got {value}")
    return value


def _int_or_tuple(value, name: str, owner: str):
    if isinstance(value, (tuple, list)):
        if len(value) == 0 or len(value) > _MAX_GRID_DIMS:
            raise ValueError(f"{owner}: {name} must be an int or a tuple of 1..{_MAX_GRID_DIMS} positive ints; "
                             f"got {value!r}")
        return tuple(_pos_int(v, name, owner) for v in value)
    return _pos_int(value, name, owner)


def _resolve(value, ndim: int, name: str, owner: str) -> Tuple[int, ...]:
    if isinstance(value, tuple):
        if len(value) != ndim:
            raise ValueError(f"{owner}: {name}={value} has {len(value)} entries but the pixel grid has {ndim} "
                             f"dimensions")
        return value
    return (value,) * ndim


def _check_variance(value, name: str):
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar; got shape {tuple(value.shape)}")
        v = float(value.detach())
    else:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
        try:
            v = float(value)
        except OverflowError:
            raise ValueError(f"{name} must be finite; got an integer too large for a float") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    return v


@dataclass(frozen=True)
class Spec:
    """Static shape of a layer's field: channels, pixel grid, zero-mean Gaussian flag."""

    channels: int
    grid: Tuple[int, ...]
    gaussian: bool

    @property
    def pixels(self) -> int:
        return int(math.prod(self.grid)) if self.grid else 1

    @property
    def flat_like(self) -> bool:
        return all(g == 1 for g in self.grid)


class _BuildCtx:
    """State of one finite-network build: width override and the random generator."""

    def __init__(self, width, keep_index, sigma_w2, sigma_b2, generator, device, dtype):
        self.width, self.keep_index = width, keep_index
        self.sw2, self.sb2 = sigma_w2, sigma_b2
        self.gen, self.device, self.dtype = generator, device, dtype
        self.counter = 0

    def channels(self, declared: int) -> int:
        idx = self.counter
        self.counter += 1
        if self.width is None or idx == self.keep_index:
            return declared
        return self.width

    def normal(self, shape, var: float) -> nn.Parameter:
        t = torch.randn(*shape, generator=self.gen, dtype=torch.float64) * math.sqrt(var)
        return nn.Parameter(t.to(device=self.device, dtype=self.dtype))


# ---------------------------------------------------------------------------- base class
class Layer:
    """Base class of the layer language (see the module docstring)."""

    #: name of the layer type in :meth:`to_dict`
    type_name = "Layer"

    def _out_spec(self, spec: Spec, meta: dict) -> Spec:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build(self, spec: Spec, ctx: _BuildCtx):  # pragma: no cover - abstract
        raise NotImplementedError

    def _kernel(self, state: KernelState, sw2, sb2, keep_full: bool) -> KernelState:  # pragma: no cover
        raise NotImplementedError

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    # structural queries
    def contains_pool(self) -> bool:
        return False

    def _width_leaves(self, inside_residual=False) -> List[bool]:
        """``inside_residual`` flags of width-bearing layers, in execution order."""
        return []

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{self.type_name}({args})"

    def __eq__(self, other):
        return isinstance(other, Layer) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(self))


class _Weighted(Layer):
    def _width_leaves(self, inside_residual=False):
        return [inside_residual]


# ---------------------------------------------------------------------------- finite modules
class _ConvModule(nn.Module):
    def __init__(self, c_in, c_out, patch, ctx: _BuildCtx):
        super().__init__()
        fan_in = c_in * math.prod(patch)
        self.weight = ctx.normal((c_out, c_in, *patch), ctx.sw2 / fan_in)
        self.bias = ctx.normal((c_out,), ctx.sb2)
        pads = []
        for p in reversed(patch):
            lo = (p - 1) // 2
            pads += [lo, p - 1 - lo]
        self.pads = tuple(pads)
        self.patch = tuple(patch)
        self.conv = {1: Fn.conv1d, 2: Fn.conv2d, 3: Fn.conv3d}[len(patch)]

    #: compute as one GEMM over stacked shifted slices (im2col) instead of ``conv{1,2,3}d``; set by
    #: :class:`gpbound.ensemble.NetworkEnsemble`, where ``vmap`` turns a convolution into a grouped
    #: one (slow on CPU, above all in float64) but the GEMM into one batched matrix product
    matmul = False

    def forward(self, x):
        if any(self.pads):
            x = Fn.pad(x, self.pads, mode="circular")
        if not self.matmul:
            return self.conv(x, self.weight, self.bias)
        grid = [g - p + 1 for g, p in zip(x.shape[2:], self.patch)]
        cols = torch.stack([x[(slice(None), slice(None)) + tuple(slice(o, o + g) for o, g in zip(off, grid))]
                            for off in itertools.product(*(range(p) for p in self.patch))], 2)
        w = self.weight.reshape(self.weight.shape[0], self.weight.shape[1], -1)
        return torch.einsum("ocp,bcp...->bo...", w, cols) + self.bias.reshape(-1, *([1] * len(grid)))


class _LinearModule(nn.Module):
    def __init__(self, d_in, d_out, ctx: _BuildCtx):
        super().__init__()
        self.weight = ctx.normal((d_out, d_in), ctx.sw2 / d_in)
        self.bias = ctx.normal((d_out,), ctx.sb2)

    def forward(self, x):
        return Fn.linear(x.flatten(1), self.weight, self.bias)


class _PoolModule(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = tuple(block)
        self.pool = {1: Fn.avg_pool1d, 2: Fn.avg_pool2d, 3: Fn.avg_pool3d}[len(block)]

    def forward(self, x):
        return self.pool(x, self.block, self.block)


class _ReLUModule(nn.Module):
    def forward(self, x):
        return torch.relu(x)


class _ResidualModule(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x):
        return x + self.block(x)


# ---------------------------------------------------------------------------- layers
class Conv(_Weighted):
    """Circular convolution, stride 1: ``phi'_{i,a} = b_i + sum_j sum_{b in P} W_{ij,b} x_{j,a+b}``.

    Kernel map (docs/theory.md §1, paper eqs. (1)-(2)):

    .. math:: K'_{aa'} = \\sigma_b^2 + \\frac{\\sigma_w^2}{|P|}\\sum_{b\\in P} K_{a+b,\\,a'+b}

    Parameters
    ----------
    channels : int
        Output channels (``>= 1``).
    patch : int or tuple of int
        Patch size per grid dimension (an int applies to every dimension); it must not
        exceed the grid.  Offsets ``b_d`` run over ``-(p-1)//2 ... p-1-(p-1)//2``.
    """

    type_name = "Conv"

    def __init__(self, channels, patch=3):
        self.channels = _pos_int(channels, "channels", "Conv")
        self.patch = _int_or_tuple(patch, "patch", "Conv")

    def to_dict(self):
        return {"type": "Conv", "channels": self.channels,
                "patch": list(self.patch) if isinstance(self.patch, tuple) else self.patch}

    def _out_spec(self, spec, meta):
        owner = repr(self)
        if not spec.grid:
            raise ValueError(f"{owner} needs a spatial input (C, *grid); got a flat field of width "
                             f"{spec.channels}")
        patch = _resolve(self.patch, len(spec.grid), "patch", owner)
        for p, g in zip(patch, spec.grid):
            if p > g:
                raise ValueError(f"{owner}: patch {patch} exceeds the pixel grid {spec.grid}")
        return Spec(self.channels, spec.grid, True)

    def _build(self, spec, ctx):
        c = ctx.channels(self.channels)
        patch = _resolve(self.patch, len(spec.grid), "patch", repr(self))
        return _ConvModule(spec.channels, c, patch, ctx), Spec(c, spec.grid, True)

    def _kernel(self, state, sw2, sb2, keep_full):
        d = len(state.grid)
        patch = _resolve(self.patch, d, "patch", repr(self))
        npix = math.prod(patch)

        pads = []
        for p in reversed(patch):
            pads += [(p - 1) // 2, p - 1 - (p - 1) // 2]

        def box(t):
            # (1/|P|) sum_b K_{a+b, a'+b}
            if not state.full:
                # diagonal pixels: one circular pad of all pair entries at once, then a separable
                # box filter (per axis, the sum of p shifted slices of the padded tensor); a float
                # scale rides on the first pass, a tensor one (autograd) is applied at the end
                if not any(pads):
                    return (t * sw2).add_(sb2)
                lead = t.shape[: t.dim() - d]
                x = Fn.pad(t.reshape(-1, 1, *state.grid), tuple(pads), mode="circular")[:, 0]
                c = None if isinstance(sw2, torch.Tensor) else sw2 / npix
                for axis, (p, g) in enumerate(zip(patch, state.grid)):
                    if p == 1:
                        continue
                    ax = 1 + axis
                    y = torch.mul(x.narrow(ax, 0, g), c) if c is not None else x.narrow(ax, 0, g).clone()
                    for k in range(1, p):
                        y = y.add_(x.narrow(ax, k, g), alpha=c) if c is not None else y.add_(x.narrow(ax, k, g))
                    x, c = y, None
                if isinstance(sw2, torch.Tensor):  # scale not applied yet
                    x = x * (sw2 / npix)
                return x.reshape(*lead, *state.grid).add_(sb2)
            # full pixels: separable circular box filters along the diagonal of each axis pair;
            # the 1/|P| scale rides on the first pass (a fresh tensor), sb2 on the last
            scale = sw2 / npix
            first = True
            for axis, p in enumerate(patch):
                if p > 1:
                    lo, hi = (p - 1) // 2, p - 1 - (p - 1) // 2
                    t = _diag_shift_sum(t, t.dim() - 2 * d + axis, t.dim() - d + axis, lo, hi,
                                        scale if first else None)
                    first = False
            return (t * scale if first else t).add_(sb2)

        return state.map(box)


def _diag_shift_sum(t, d1, d2, lo, hi, scale=None):
    """``sum_{b=-lo..hi} t[.., (a+b)%n, .., (a'+b)%n, ..]``: both axes ``d1``, ``d2`` shifted together.

    A circular box filter along the diagonal direction of the ``(d1, d2)`` plane.  The
    shift by ``b`` maps the plane onto itself in four rectangular blocks (whether ``a + b``
    and ``a' + b`` wrap around), so each offset is four slice-adds into the output (views of
    ``t``, no shifted copies).  ``scale`` (a float or 0-dim tensor) multiplies the result;
    ``t`` itself is never modified.
    """
    n = t.shape[d1]
    if t.shape[d2] != n:
        raise RuntimeError(f"_diag_shift_sum needs equal axes; got {t.shape[d1]} and {t.shape[d2]}")  # internal
    out = t.clone() if scale is None else t * scale
    for b in range(-lo, hi + 1):
        if b == 0:
            continue
        k = b % n  # 0 < |b| < n (the patch never exceeds the grid), so 0 < k < n
        # target a in [0, n-k) reads source a+k; a in [n-k, n) reads a+k-n
        segs = ((slice(0, n - k), slice(k, n)), (slice(n - k, n), slice(0, k)))
        for ta, sa in segs:
            for tb, sb in segs:
                it = [slice(None)] * t.dim()
                js = [slice(None)] * t.dim()
                it[d1], it[d2], js[d1], js[d2] = ta, tb, sa, sb
                src = t[tuple(js)]
                dst = out[tuple(it)]
                if scale is None:
                    dst.add_(src)
                elif isinstance(scale, torch.Tensor):
                    dst.add_(src * scale)
                else:
                    dst.add_(src, alpha=scale)
    return out


class Dense(_Weighted):
    """Fully connected layer on a flat field: ``phi'_i = b_i + sum_j W_ij x_j``; ``K' = sb2 + sw2 K``.

    Applied to a spatial field it is an error unless the grid has a single pixel (use
    :class:`Flatten` to flatten a grid).

    Parameters
    ----------
    width : int
        Output width (``>= 1``).
    """

    type_name = "Dense"

    def __init__(self, width):
        self.width = _pos_int(width, "width", "Dense")

    def to_dict(self):
        return {"type": "Dense", "width": self.width}

    def _out_spec(self, spec, meta):
        if not spec.flat_like:
            raise ValueError(f"{self!r} applied to a spatial field with grid {spec.grid}; Dense needs a flat "
                             f"input: insert Flatten(width) before it")
        if spec.grid:
            meta.setdefault("flatten_pixels", 1)
        return Spec(self.width, (), True)

    def _build(self, spec, ctx):
        w = ctx.channels(self.width)
        return _LinearModule(spec.channels * spec.pixels, w, ctx), Spec(w, (), True)

    def _kernel(self, state, sw2, sb2, keep_full):
        return _flatten_kernel(state, sw2, sb2)


class Flatten(_Weighted):
    """Flatten + dense (paper eq. (5), without its ReLU): ``phi'_i = b_i + sum_{j,a} W_{ij,a} phi_{j,a}``.

    .. math:: K' = \\sigma_b^2 + \\frac{\\sigma_w^2}{|I|}\\sum_{a\\in I} K_{aa}

    (docs/theory.md §1 "flatten + dense" with the ReLU as a separate layer;
    ``fan_in = C |I|``.)

    Parameters
    ----------
    width : int
        Output width (``>= 1``).
    """

    type_name = "Flatten"

    def __init__(self, width):
        self.width = _pos_int(width, "width", "Flatten")

    def to_dict(self):
        return {"type": "Flatten", "width": self.width}

    def _out_spec(self, spec, meta):
        meta.setdefault("flatten_pixels", spec.pixels)
        return Spec(self.width, (), True)

    def _build(self, spec, ctx):
        w = ctx.channels(self.width)
        return _LinearModule(spec.channels * spec.pixels, w, ctx), Spec(w, (), True)

    def _kernel(self, state, sw2, sb2, keep_full):
        return _flatten_kernel(state, sw2, sb2)


def _flatten_kernel(state: KernelState, sw2, sb2) -> KernelState:
    state = state.to_diag()
    d = len(state.grid)
    if d == 0:
        return state.map(lambda t: (t * sw2).add_(sb2))  # add_ on a fresh product: autograd-safe
    dims = tuple(range(-d, 0))
    return state.map(lambda t: (t.mean(dim=dims) * sw2).add_(sb2), grid=())


class ReLU(Layer):
    """Rectifier ``tau(x) = max(0, x)``; kernel map ``K' = F(K)`` (docs/theory.md §1, arc-cosine order 1).

    Its input must be a zero-mean Gaussian field (the output of Conv, Dense, Flatten,
    possibly pooled or summed in a Residual), not the raw input nor a post-ReLU tensor.
    """

    type_name = "ReLU"

    def to_dict(self):
        return {"type": "ReLU"}

    def _out_spec(self, spec, meta):
        if not spec.gaussian:
            meta.setdefault("kernel_issues", []).append(
                "ReLU() needs a zero-mean Gaussian input field (the output of Conv, Dense or Flatten, possibly "
                "pooled or summed with a pre-activation skip); here it gets the raw input or a field containing a "
                "post-ReLU tensor (e.g. a post-activation skip), for which the kernel map F does not hold")
        return Spec(spec.channels, spec.grid, False)

    def _build(self, spec, ctx):
        return _ReLUModule(), Spec(spec.channels, spec.grid, False)

    def _kernel(self, state, sw2, sb2, keep_full):
        return state.relu()


class AvgPool(Layer):
    """Average pooling over a partition of the pixel grid into equal blocks (paper eq. (4)).

    .. math:: K'_{AB} = \\frac{1}{|A||B|}\\sum_{a\\in A,\\,b\\in B} K_{ab}

    Needs the full pixel covariance (the network carries it up to its last pooling).

    Parameters
    ----------
    block : int or tuple of int
        Block size per grid dimension; each must divide the grid.
    """

    type_name = "AvgPool"

    def __init__(self, block=2):
        self.block = _int_or_tuple(block, "block", "AvgPool")

    def to_dict(self):
        return {"type": "AvgPool", "block": list(self.block) if isinstance(self.block, tuple) else self.block}

    def contains_pool(self):
        return True

    def _out_spec(self, spec, meta):
        owner = repr(self)
        if not spec.grid:
            raise ValueError(f"{owner} needs a spatial input; got a flat field")
        block = _resolve(self.block, len(spec.grid), "block", owner)
        if any(g % b for g, b in zip(spec.grid, block)):
            raise ValueError(f"{owner}: block {block} does not divide the pixel grid {spec.grid}")
        return Spec(spec.channels, tuple(g // b for g, b in zip(spec.grid, block)), spec.gaussian)

    def _build(self, spec, ctx):
        out = self._out_spec(spec, {})
        return _PoolModule(_resolve(self.block, len(spec.grid), "block", repr(self))), out

    def _kernel(self, state, sw2, sb2, keep_full):
        if not state.full:
            raise RuntimeError("AvgPool kernel map needs the full pixel covariance")  # internal invariant
        d = len(state.grid)
        block = _resolve(self.block, d, "block", repr(self))
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


class Residual(Layer):
    """Pre-activation skip ``phi' = phi + block(phi)`` (paper eq. (3)); ``K' = K + block(K)``.

    The block must end with fresh zero-mean weights (Conv/Dense/Flatten, possibly
    followed by AvgPool), so ``phi`` and ``block(phi)`` are uncorrelated, and it must keep
    the shape (channels and grid).

    Parameters
    ----------
    block : Layer
        The residual branch (e.g. ``serial(ReLU(), Conv(c, 3), ReLU(), Conv(c, 3))``).
    """

    type_name = "Residual"

    def __init__(self, block):
        if isinstance(block, (list, tuple)):
            block = serial(*block)
        if not isinstance(block, Layer):
            raise TypeError(f"Residual: block must be a Layer; got {type(block).__name__}")
        self.block = block

    def to_dict(self):
        b = self.block
        return {"type": "Residual", "block": [l.to_dict() for l in b.layers] if isinstance(b, Serial)
                else [b.to_dict()]}

    def __repr__(self):
        return f"Residual({self.block!r})"

    def contains_pool(self):
        return self.block.contains_pool()

    def _width_leaves(self, inside_residual=False):
        return self.block._width_leaves(True)

    def _out_spec(self, spec, meta):
        inner = self.block._out_spec(spec, meta)
        if (inner.channels, inner.grid) != (spec.channels, spec.grid):
            raise ValueError(f"{self!r}: the block maps (channels={spec.channels}, grid={spec.grid}) to "
                             f"(channels={inner.channels}, grid={inner.grid}); a residual block must keep the shape")
        if not inner.gaussian:
            meta.setdefault("kernel_issues", []).append(
                f"{self!r}: the block must end with a weight layer (Conv/Dense/Flatten, optionally pooled) so that "
                f"the branches are uncorrelated; K' = K + block(K) fails otherwise")
        return Spec(spec.channels, spec.grid, spec.gaussian)

    def _build(self, spec, ctx):
        mod, inner = self.block._build(spec, ctx)
        if (inner.channels, inner.grid) != (spec.channels, spec.grid):
            raise ValueError(f"{self!r}: with width override the block maps {spec.channels} to {inner.channels} "
                             f"channels")
        return _ResidualModule(mod), Spec(spec.channels, spec.grid, spec.gaussian)

    def _kernel(self, state, sw2, sb2, keep_full):
        return state + self.block._kernel(state, sw2, sb2, keep_full)


class Serial(Layer):
    """Composition of layers (use :func:`serial`)."""

    type_name = "Serial"

    def __init__(self, layers: Sequence[Layer]):
        layers = list(layers)
        if not layers:
            raise ValueError("serial: needs at least one layer")
        for i, l in enumerate(layers):
            if not isinstance(l, Layer):
                raise TypeError(f"serial: layer {i} must be a Layer; got {type(l).__name__}")
        flat: List[Layer] = []
        for l in layers:
            flat.extend(l.layers if isinstance(l, Serial) else [l])
        self.layers = flat

    def to_dict(self):
        return {"type": "Serial", "layers": [l.to_dict() for l in self.layers]}

    def __repr__(self):
        return "serial(" + ", ".join(repr(l) for l in self.layers) + ")"

    def contains_pool(self):
        return any(l.contains_pool() for l in self.layers)

    def _width_leaves(self, inside_residual=False):
        out = []
        for l in self.layers:
            out += l._width_leaves(inside_residual)
        return out

    def _out_spec(self, spec, meta):
        for i, l in enumerate(self.layers):
            n_issues = len(meta.get("kernel_issues", []))
            try:
                spec = l._out_spec(spec, meta)
                issues = meta.get("kernel_issues", [])
                for k in range(n_issues, len(issues)):
                    issues[k] = f"layer {i} ({l!r}): {issues[k]}"
            except ValueError as e:
                raise ValueError(f"layer {i} ({l!r}): {e}") from None
        return spec

    def _build(self, spec, ctx):
        mods = []
        for l in self.layers:
            m, spec = l._build(spec, ctx)
            mods.append(m)
        return nn.Sequential(*mods), spec

    def _kernel(self, state, sw2, sb2, keep_full):
        n = len(self.layers)
        later_pool = [False] * (n + 1)
        for i in range(n - 1, -1, -1):
            later_pool[i] = later_pool[i + 1] or self.layers[i].contains_pool()
        for i, l in enumerate(self.layers):
            child_keep = keep_full or later_pool[i + 1]
            if state.full and not child_keep and not l.contains_pool():
                state = state.to_diag()
            state = l._kernel(state, sw2, sb2, child_keep)
        return state


def serial(*layers) -> Serial:
    """Compose layers left to right (``serial(Conv(32, 3), ReLU(), Flatten(1))``)."""
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    return Serial(layers)


_TYPES = {"Conv": Conv, "Dense": Dense, "ReLU": ReLU, "Residual": Residual, "AvgPool": AvgPool,
          "Flatten": Flatten, "Serial": Serial}
_KEYS = {"Conv": {"channels", "patch"}, "Dense": {"width"}, "ReLU": set(), "Residual": {"block"},
         "AvgPool": {"block"}, "Flatten": {"width"}, "Serial": {"layers"}}


def _layer_from_dict(d, where="layers") -> Layer:
    if not isinstance(d, dict):
        raise TypeError(f"{where}: each layer must be a dict with a 'type' key; got {type(d).__name__}")
    t = d.get("type")
    if t not in _TYPES:
        raise ValueError(f"{where}: unknown layer type {t!r}; allowed: {sorted(_TYPES)}")
    keys = set(d) - {"type"}
    if keys != _KEYS[t]:
        raise ValueError(f"{where}: layer {t} takes keys {sorted(_KEYS[t])}; got {sorted(keys)}")
    if t == "Conv":
        p = d["patch"]
        return Conv(d["channels"], tuple(p) if isinstance(p, list) else p)
    if t == "AvgPool":
        b = d["block"]
        return AvgPool(tuple(b) if isinstance(b, list) else b)
    if t in ("Dense", "Flatten"):
        return _TYPES[t](d["width"])
    if t == "ReLU":
        return ReLU()
    if t == "Residual":
        return Residual(_layers_from_list(d["block"], where + ".Residual.block"))
    return _layers_from_list(d["layers"], where + ".Serial.layers")


def _layers_from_list(lst, where) -> Layer:
    if isinstance(lst, dict):
        return _layer_from_dict(lst, where)
    if not isinstance(lst, (list, tuple)) or not lst:
        raise ValueError(f"{where}: must be a non-empty list of layer dicts")
    layers = [_layer_from_dict(d, f"{where}[{i}]") for i, d in enumerate(lst)]
    return layers[0] if len(layers) == 1 else serial(*layers)


# ---------------------------------------------------------------------------- the architecture
class _Network(nn.Module):
    def __init__(self, body: nn.Module, input_shape, output_dim):
        super().__init__()
        self.body = body
        self.input_shape = tuple(input_shape)
        self.n = int(math.prod(input_shape))
        self.output_dim = output_dim

    def forward(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() == 2 and x.shape[1] == self.n:
            x = x.reshape(x.shape[0], *self.input_shape)
        elif tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"x must have shape (B, {self.n}) or (B, {', '.join(map(str, self.input_shape))}) "
                             f"(input_shape={self.input_shape}); got {tuple(x.shape)}")
        return self.body(x).reshape(x.shape[0], -1)


class Architecture:
    """A network description on a fixed input shape: finite networks, NNGP kernel, metadata.

    Parameters
    ----------
    layer : Layer or sequence of Layer
        The network (a sequence is composed with :func:`serial`).
    input_shape : tuple of int
        ``(C0, H, W)`` for images (also ``(C0, L)`` or ``(C0, D, H, W)``) or ``(n,)`` for
        flat inputs.  Inputs are flattened in ``(C, H, W)`` order.

    Attributes
    ----------
    n : int
        Input dimension ``C0 |I0|``.
    input_pixels : int
        ``|I0|`` (1 for flat inputs).
    flatten_pixels : int
        ``|I_Lf|``: pixels of the field entering the first Flatten (or Dense); the final
        grid if the network never flattens.
    M : float
        Theorem 2's constant ``sqrt(|I0| / |I_Lf|)``.
    output_dim : int
        Number of outputs of the finite network (channels x pixels of the last field).

    Examples
    --------
    >>> arch = Architecture(serial(Conv(8, 3), ReLU(), Conv(8, 3), AvgPool(2), ReLU(), Flatten(1)), (3, 8, 8))
    >>> arch.n, arch.input_pixels, arch.flatten_pixels, arch.M
    (192, 64, 16, 2.0)
    """

    def __init__(self, layer, input_shape):
        if isinstance(layer, (list, tuple)):
            layer = serial(*layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a Layer (or a list of layers); got {type(layer).__name__}")
        if isinstance(input_shape, int) or not isinstance(input_shape, (tuple, list, torch.Size)):
            raise TypeError(f"input_shape must be a tuple (C0, *grid) or (n,); got {input_shape!r}")
        if not 1 <= len(input_shape) <= 1 + _MAX_GRID_DIMS:
            raise ValueError(f"input_shape must have 1 to {1 + _MAX_GRID_DIMS} entries (C0, *grid); "
                             f"got {tuple(input_shape)}")
        self.input_shape = tuple(_pos_int(s, "input_shape", "Architecture") for s in input_shape)
        self.layer = layer
        meta: dict = {}
        spec0 = Spec(self.input_shape[0], self.input_shape[1:], False)
        out = layer._out_spec(spec0, meta)
        self.out_spec = out
        self.n = int(math.prod(self.input_shape))
        self.input_pixels = spec0.pixels
        self.flatten_pixels = int(meta.get("flatten_pixels", out.pixels))
        self.M = math.sqrt(self.input_pixels / self.flatten_pixels)
        self.output_dim = out.channels * out.pixels
        self.has_pool = layer.contains_pool()
        self.kernel_issues = tuple(meta.get("kernel_issues", ()))

    @property
    def has_kernel(self) -> bool:
        """Whether the analytic NNGP recursion applies (see :attr:`kernel_issues` otherwise)."""
        return not self.kernel_issues

    def _require_kernel(self):
        if self.kernel_issues:
            raise ValueError("the NNGP kernel recursion does not hold for this architecture (its finite networks "
                             "are fine; use Monte Carlo): " + "; ".join(self.kernel_issues))

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        """Plain JSON-able description ``{"input_shape": [...], "layers": [...]}``."""
        layers = self.layer.layers if isinstance(self.layer, Serial) else [self.layer]
        return {"input_shape": list(self.input_shape), "layers": [l.to_dict() for l in layers]}

    @classmethod
    def from_dict(cls, d) -> "Architecture":
        """Inverse of :meth:`to_dict`; validates keys and values (ValueError/TypeError)."""
        if not isinstance(d, dict):
            raise TypeError(f"architecture description must be a dict; got {type(d).__name__}")
        if set(d) != {"input_shape", "layers"}:
            raise ValueError(f"architecture description needs exactly the keys 'input_shape' and 'layers'; "
                             f"got {sorted(d)}")
        shape = d["input_shape"]
        if not isinstance(shape, (list, tuple)):
            raise TypeError(f"input_shape must be a list of positive ints; got {shape!r}")
        return cls(_layers_from_list(d["layers"], "layers"), tuple(shape))

    def __repr__(self):
        return f"Architecture({self.layer!r}, input_shape={self.input_shape})"

    def __eq__(self, other):
        return isinstance(other, Architecture) and self.to_dict() == other.to_dict()

    # ----------------------------------------------------------------- finite networks
    def network(self, width=None, sigma_w2=2.0, sigma_b2=0.0, seed=None, device=None,
                dtype=torch.float64) -> nn.Module:
        """A finite random network of this description.

        Weights ``N(0, sigma_w2 / fan_in)`` (``fan_in = C_in |P|`` for Conv, ``C |I|`` for
        Flatten), biases ``N(0, sigma_b2)``.

        Parameters
        ----------
        width : int, optional
            Overrides every hidden width / channel count; the final weight layer keeps its
            declared width (unless it sits inside a Residual, whose shape must match).
        sigma_w2 : float, > 0
        sigma_b2 : float, >= 0
        seed : int, optional
            Seed of a CPU ``torch.Generator`` (weights are drawn on CPU in float64, then
            moved), so a seed gives the same network on every device.
        device, dtype
            Of the returned module's parameters.

        Returns
        -------
        torch.nn.Module
            Maps ``(B, n)`` or ``(B, *input_shape)`` to ``(B, output_dim)``.
        """
        sw2 = _check_variance(sigma_w2, "sigma_w2")
        sb2 = _check_variance(sigma_b2, "sigma_b2")
        if sw2 <= 0:
            raise ValueError(f"sigma_w2 must be > 0; got {sw2}")
        if sb2 < 0:
            raise ValueError(f"sigma_b2 must be >= 0; got {sb2}")
        if width is not None:
            width = _pos_int(width, "width", "Architecture.network")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None; got {seed!r}")
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        leaves = self.layer._width_leaves()
        keep = len(leaves) - 1 if leaves and not leaves[-1] else -1
        ctx = _BuildCtx(width, keep, sw2, sb2, gen, device, dtype)
        spec0 = Spec(self.input_shape[0], self.input_shape[1:], False)
        body, out = self.layer._build(spec0, ctx)
        return _Network(body, self.input_shape, out.channels * out.pixels).to(device=device, dtype=dtype)

    # ----------------------------------------------------------------- kernels
    def _check_x(self, x, name):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() < 2 or x.shape[-1] != self.n:
            raise ValueError(f"{name} must have shape (..., N, n) with n = {self.n} = prod(input_shape="
                             f"{self.input_shape}); got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf; inputs must be finite")

    def kernel_state(self, x1, x2=None, sigma_w2=2.0, sigma_b2=0.0, diag=False, full=None) -> KernelState:
        """The final :class:`KernelState` (pixel-level covariances) for inputs ``x1``, ``x2``.

        ``full=True`` carries the full pixel covariance through every layer (for
        pixel-level checks); ``None`` decides it from the architecture.
        """
        self._require_kernel()
        self._check_x(x1, "x1")
        if x2 is None:
            x2 = x1
        else:
            self._check_x(x2, "x2")
        if diag and x1.shape[-2] != x2.shape[-2]:
            raise ValueError(f"diag=True needs x1 and x2 with the same number of rows; got {x1.shape[-2]} and "
                             f"{x2.shape[-2]}")
        sw2, sb2 = self._variances(sigma_w2, sigma_b2)
        use_full = self.has_pool if full is None else bool(full)
        st = input_state(x1, x2, self.input_shape, use_full, diag)
        return self.layer._kernel(st, sw2, sb2, bool(full))

    @staticmethod
    def _variances(sigma_w2, sigma_b2):
        sw = _check_variance(sigma_w2, "sigma_w2")
        sb = _check_variance(sigma_b2, "sigma_b2")
        if sw <= 0:
            raise ValueError(f"sigma_w2 must be > 0; got {sw}")
        if sb < 0:
            raise ValueError(f"sigma_b2 must be >= 0; got {sb}")
        if isinstance(sigma_w2, torch.Tensor):
            sw = sigma_w2.reshape(())
        if isinstance(sigma_b2, torch.Tensor):
            sb = sigma_b2.reshape(())
        return sw, sb

    def kernel(self, x1, x2=None, sigma_w2=2.0, sigma_b2=0.0, diag=False, max_elements=2 ** 24):
        """NNGP kernel of one output unit (docs/theory.md §1; paper eqs. (1)-(5)).

        Parameters
        ----------
        x1 : torch.Tensor, shape ``(..., N1, n)``
        x2 : torch.Tensor, shape ``(..., N2, n)``, optional (defaults to ``x1``)
        sigma_w2 : float or 0-dim tensor, > 0
        sigma_b2 : float or 0-dim tensor, >= 0
        diag : bool
            Return ``K(x1_i, x2_i)``, shape ``(..., N)``.
        max_elements : int
            Largest number of entries of one state tensor; the pair set is cut into
            blocks so that the (pixel) state of a block stays below it.  When ``x2`` is
            ``x1`` only the blocks on and above the diagonal are computed.

        Returns
        -------
        torch.Tensor
            ``(..., N1, N2)`` or ``(..., N)``.
        """
        if self.out_spec.grid and not self.out_spec.flat_like:
            raise ValueError(f"the kernel of one output unit needs a flat output; this architecture ends on the "
                             f"grid {self.out_spec.grid}: end it with Flatten(width) or Dense(width)")
        self._require_kernel()
        max_elements = _pos_int(max_elements, "max_elements", "Architecture.kernel")
        self._check_x(x1, "x1")
        same = x2 is None or x2 is x1
        if x2 is None:
            x2 = x1
        else:
            self._check_x(x2, "x2")
        sw2, sb2 = self._variances(sigma_w2, sigma_b2)
        per_pair = self.input_pixels ** 2 if (self.has_pool and len(self.input_shape) > 1) else self.input_pixels
        batch = int(math.prod(torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])))
        N1, N2 = x1.shape[-2], x2.shape[-2]
        if diag:
            if N1 != N2:
                raise ValueError(f"diag=True needs x1 and x2 with the same number of rows; got {N1} and {N2}")
            step = max(1, max_elements // (per_pair * batch))
            outs = []
            for i in range(0, N1, step):
                a, b = x1[..., i:i + step, :], x2[..., i:i + step, :]
                outs.append(self._run(a, a if same else b, sw2, sb2, True))
            return torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        b = max(1, int(math.isqrt(max(1, max_elements // (per_pair * batch)))))
        if N1 * N2 * per_pair * batch <= max_elements:
            return self._run(x1, x1 if same else x2, sw2, sb2, False)
        # blocks: rows of size b1, columns of size b2 with b1 * b2 <= budget
        budget = max(1, max_elements // (per_pair * batch))
        b1 = min(N1, b)
        b2 = min(N2, max(1, budget // b1))
        if same:
            b1 = b2 = min(b1, b2)
        rows = []
        blocks = {}
        for i in range(0, N1, b1):
            row = []
            for j in range(0, N2, b2):
                if same and j < i:
                    row.append(blocks[(j, i)].transpose(-1, -2))
                    continue
                xa = x1[..., i:i + b1, :]
                xb = x2[..., j:j + b2, :]
                blk = self._run(xa, xa if (same and i == j) else xb, sw2, sb2, False)
                blocks[(i, j)] = blk
                row.append(blk)
            rows.append(torch.cat(row, dim=-1))
        return torch.cat(rows, dim=-2)

    def _run(self, x1, x2, sw2, sb2, diag):
        st = input_state(x1, x2, self.input_shape, self.has_pool, diag)
        st = self.layer._kernel(st, sw2, sb2, False)
        out = st.to_diag().cross
        d = len(st.grid)
        return out.reshape(out.shape[: out.dim() - d]) if d else out
