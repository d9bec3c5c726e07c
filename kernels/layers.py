"""The layer language: one description gives the finite network, its NNGP kernel map and metadata.

Each layer class (stax style) has three rules:

* a *shape rule* ``_out_spec`` (channels, pixel grid, whether the field is a zero-mean
  Gaussian field made by fresh weights) that validates the composition and records where
  the analytic kernel or Theorem 2's ``M`` does not apply;
* a *finite builder* ``_build`` producing a :class:`torch.nn.Module` with weights
  ``W ~ N(0, sigma_w2 / fan_in)`` and biases ``b ~ N(0, sigma_b2)``;
* a *kernel map* ``_kernel`` acting on a :class:`~gpbound.kernels.state.KernelState`
  (docs/theory.md §1, the paper's layer eqs. (1)-(5), section 2); the pixel stencils are in
  :mod:`gpbound.kernels.pixels`.

Each layer also says whether its kernel map reads the full pixel covariance
(:meth:`Layer.needs_full_pixels`); :class:`~gpbound.kernels.architecture.Architecture`
decides from it, once, how far the full covariance is carried.

Layers
------
``Conv(channels, patch, stride=1, padding="circular")``  convolution; ``padding="same"`` is
    zero padding (TensorFlow "same"); ``K'_{ij} = sb2 + sw2/|P| sum_{k in P} K~_{si+k, sj+k}``
    (:mod:`gpbound.kernels.pixels`).
``Dense(width)``  fully connected on a flat field (or a 1-pixel grid); ``K' = sb2 + sw2 K``.
``ReLU()``  ``K' = F(K)`` (needs a zero-mean Gaussian input: after Conv/Dense/Flatten).
``Residual(block, shortcut=None, post_activation=False)``  ``phi' = s(phi) + block(phi)``
    (``s`` the identity or a weight layer), then a ReLU if ``post_activation``;
    ``K' = s(K) + block(K)`` (uncorrelated branches), then ``F``.
``AvgPool(block)``  average over a partition of the grid into equal blocks;
    ``K'_{AB} = mean_{a in A, b in B} K_{ab}``.
``GlobalAvgPool()``  average over all pixels (a flat field); ``K' = mean_{a, b} K_{ab}``.
``Flatten(width)``  flatten + dense: ``K' = sb2 + sw2/|I| sum_a K_{aa}``.
``serial(*layers)``  composition.

``Conv``, ``Dense`` and ``Flatten`` take their own ``sigma_w2`` / ``sigma_b2`` (``None``: the
network's / kernel's).  The ReLU is a separate layer, so the paper's "ReLU conv" layer is
``ReLU(), Conv(...)``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as Fn
from torch import nn

from . import pixels
from .padding import circular_pad
from .arccos import _COMPILED
from .state import KernelState

__all__ = ["Layer", "Conv", "Dense", "ReLU", "Residual", "AvgPool", "GlobalAvgPool", "Flatten", "Serial",
           "serial", "PADDINGS"]

_MAX_GRID_DIMS = 3
#: padding modes of :class:`Conv`
PADDINGS = ("circular", "same")


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


def _layer_variance(value, name: str, owner: str, positive: bool) -> Optional[float]:
    """A layer's own variance: None, or a finite float > 0 (``positive``) / >= 0."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be None or a real number (a layer's variance is fixed); "
                        f"got a tensor")
    v = _check_variance(value, f"{owner}: {name}")
    if positive and v <= 0:
        raise ValueError(f"{owner}: {name} must be None or > 0; got {v}")
    if v < 0:
        raise ValueError(f"{owner}: {name} must be None or >= 0; got {v}")
    return v


def _tuple_or_int_dict(v):
    return list(v) if isinstance(v, tuple) else v


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

    def bias(self, shape, own_sb2: Optional[float]) -> nn.Parameter:
        """Biases ``N(0, sb2)``.  A layer's *own* ``sigma_b2 = 0`` gives constant zero biases and draws
        no random numbers (Keras' ``zeros`` initializer); the network-wide ``sigma_b2`` always draws
        (so that a seed keeps giving the networks it gave before per-layer variances existed)."""
        if own_sb2 == 0.0:
            return nn.Parameter(torch.zeros(*shape, device=self.device, dtype=self.dtype))
        return self.normal(shape, self.sb2 if own_sb2 is None else own_sb2)


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
    def needs_full_pixels(self) -> bool:
        """Whether the kernel map reads off-diagonal pixel covariances ``K_{ab}``, ``a != b``
        (pooling); a layer that only reads ``K_{aa}`` maps the diagonal to the diagonal."""
        return False

    def _width_leaves(self, inside_residual=False) -> List[bool]:
        """``inside_residual`` flags of width-bearing layers, in execution order."""
        return []

    def _lipschitz(self, spec: Spec, sw2: float):
        """``(Lambda, out_spec)``: a proved factor by which the layer can multiply the pixel-mean squared
        increment ``m`` of docs/theory.md §8 (see :meth:`Architecture.lipschitz_factor`)."""
        raise TypeError(f"no proved Lipschitz factor for layer {self!r}")

    def _label(self) -> str:
        """A short name for messages."""
        return self.type_name

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "type")
        return f"{self.type_name}({args})"

    def __eq__(self, other):
        return isinstance(other, Layer) and self.to_dict() == other.to_dict()

    def __hash__(self):
        return hash(repr(self))


class _Weighted(Layer):
    """A layer with fresh weights: ``sigma_w2`` / ``sigma_b2`` of its own or the network's."""

    def _init_variances(self, sigma_w2, sigma_b2):
        self.sigma_w2 = _layer_variance(sigma_w2, "sigma_w2", self.type_name, positive=True)
        self.sigma_b2 = _layer_variance(sigma_b2, "sigma_b2", self.type_name, positive=False)

    def _variance_dict(self) -> dict:
        d = {}
        if self.sigma_w2 is not None:
            d["sigma_w2"] = self.sigma_w2
        if self.sigma_b2 is not None:
            d["sigma_b2"] = self.sigma_b2
        return d

    def _vars(self, sw2, sb2):
        """The variances this layer uses: its own where set, else the network's/kernel's."""
        return (sw2 if self.sigma_w2 is None else self.sigma_w2), (sb2 if self.sigma_b2 is None else self.sigma_b2)

    def _width_leaves(self, inside_residual=False):
        return [inside_residual]

    def _lipschitz(self, spec, sw2):
        # Dense / Flatten: d'^2 = sw2/|I| sum_a D_a = sw2 m (docs/theory.md §8)
        return (sw2 if self.sigma_w2 is None else self.sigma_w2), self._out_spec(spec, {})


# ---------------------------------------------------------------------------- finite modules
class _ConvModule(nn.Module):
    def __init__(self, c_in, c_out, patch, stride, padding, grid, ctx: _BuildCtx, sw2, sb2):
        super().__init__()
        fan_in = c_in * math.prod(patch)
        self.weight = ctx.normal((c_out, c_in, *patch), (ctx.sw2 if sw2 is None else sw2) / fan_in)
        self.bias = ctx.bias((c_out,), sb2)
        pads = []
        for p, s, g in zip(reversed(patch), reversed(stride), reversed(grid)):
            pads += list(pixels.same_pads(g, p, s))
        self.pads = tuple(pads)
        self.pad_mode = "circular" if padding == "circular" else "constant"
        self.patch = tuple(patch)
        self.stride = tuple(stride)
        self.conv = {1: Fn.conv1d, 2: Fn.conv2d, 3: Fn.conv3d}[len(patch)]

    def forward(self, x):
        if any(self.pads):
            # circular: torch's values with a one-pass backward (gpbound.kernels.padding)
            x = circular_pad(x, self.pads) if self.pad_mode == "circular" else Fn.pad(x, self.pads)
        if any(s != 1 for s in self.stride):
            return self.conv(x, self.weight, self.bias, stride=self.stride)
        return self.conv(x, self.weight, self.bias)

    def _stacked(self, x, params, prefix):
        # (P, K, C, *grid) -> (P, K C, *grid) (a view): the K networks' channels side by side, one grouped conv
        P, K = x.shape[:2]
        x = x.reshape(P, K * x.shape[2], *x.shape[3:])
        if any(self.pads):
            # the one-pass fold at every size: without vmap its autograd function costs less than the
            # recorded copies of torch's pad (forward + backward of the theory ResNet, 8 networks x 5 rows,
            # 12 x 12, float32, one thread, interleaved medians: 11.4-12.0 -> 9.6-10.5 ms)
            x = circular_pad(x, self.pads, fold=True) if self.pad_mode == "circular" else Fn.pad(x, self.pads)
        w, b = params[prefix + "weight"], params[prefix + "bias"]
        y = self.conv(x, w.reshape(K * w.shape[1], *w.shape[2:]), b.reshape(-1), stride=self.stride, groups=K)
        return y.reshape(P, K, w.shape[1], *y.shape[2:])


class _LinearModule(nn.Module):
    def __init__(self, d_in, d_out, ctx: _BuildCtx, sw2, sb2):
        super().__init__()
        self.weight = ctx.normal((d_out, d_in), (ctx.sw2 if sw2 is None else sw2) / d_in)
        self.bias = ctx.bias((d_out,), sb2)

    def forward(self, x):
        return Fn.linear(x.flatten(1), self.weight, self.bias)

    def _stacked(self, x, params, prefix):
        # (P, K, ...) -> (P, K, d_out): network k's flattened input times its own weight (one batched GEMM)
        P, K = x.shape[:2]
        w, b = params[prefix + "weight"], params[prefix + "bias"]
        y = torch.baddbmm(b.unsqueeze(1), x.reshape(P, K, -1).transpose(0, 1), w.transpose(1, 2))
        return y.transpose(0, 1)


class _PoolModule(nn.Module):
    def __init__(self, block):
        super().__init__()
        self.block = tuple(block)
        self.pool = {1: Fn.avg_pool1d, 2: Fn.avg_pool2d, 3: Fn.avg_pool3d}[len(block)]

    def forward(self, x):
        return self.pool(x, self.block, self.block)

    def _stacked(self, x, params, prefix):
        P, K = x.shape[:2]
        y = self.pool(x.reshape(P, K * x.shape[2], *x.shape[3:]), self.block, self.block)
        return y.reshape(P, K, x.shape[2], *y.shape[2:])


class _GlobalPoolModule(nn.Module):
    def forward(self, x):
        return x.flatten(2).mean(-1)

    def _stacked(self, x, params, prefix):
        return x.flatten(3).mean(-1)


class _ReLUModule(nn.Module):
    def forward(self, x):
        return torch.relu(x)

    def _stacked(self, x, params, prefix):
        return torch.relu(x)


class _ResidualModule(nn.Module):
    def __init__(self, block: nn.Module, shortcut: Optional[nn.Module] = None, post_activation: bool = False):
        super().__init__()
        self.block = block
        self.shortcut = shortcut
        self.post_activation = post_activation

    def forward(self, x):
        if self.shortcut is None and not self.post_activation:
            return x + self.block(x)
        y = self.block(x)
        s = x if self.shortcut is None else self.shortcut(x)
        out = s + y
        return torch.relu(out) if self.post_activation else out

    def _stacked(self, x, params, prefix):
        y = stacked_forward(self.block, params, x, prefix + "block.")
        s = x if self.shortcut is None else stacked_forward(self.shortcut, params, x, prefix + "shortcut.")
        out = s + y
        return torch.relu(out) if self.post_activation else out


#: the finite modules that run K stacked copies of themselves (:func:`stacked_forward`), by exact type
_STACKED = (nn.Sequential, _ConvModule, _LinearModule, _PoolModule, _GlobalPoolModule, _ReLUModule, _ResidualModule)


def supports_stacked(module: nn.Module) -> bool:
    """Whether every submodule of ``module`` is one of gpbound's finite modules (exact types, so a
    subclass that changes ``forward`` is never stacked): then :func:`stacked_forward` computes it."""
    return all(type(m) in _STACKED for m in module.modules())


def stacked_forward(module: nn.Module, params: dict, x: torch.Tensor, prefix: str = "") -> torch.Tensor:
    """``K`` networks of the structure of ``module`` in one call, without ``vmap``.

    ``params`` maps each parameter name of ``module`` (after ``prefix``) to its ``K`` stacked values
    ``(K, ...)`` (as ``torch.func.stack_module_state`` gives them); ``x`` has the layout ``(P, K, ...)``:
    point ``p`` of network ``k`` at ``x[p, k]``.  Convolutions and poolings see ``(P, K C, *grid)``, the
    K networks' channels side by side, a view of that layout: a convolution is one grouped convolution
    (``groups = K``) and a pooling one call, with no relayout copies; a dense layer is one batched GEMM.
    Returns ``(P, K, ...)``: the output of network ``k`` on ``x[:, k]`` (equal to
    ``module(x[:, k])`` up to rounding).  Requires :func:`supports_stacked`.
    """
    if type(module) is nn.Sequential:
        for name, child in module.named_children():
            x = stacked_forward(child, params, x, f"{prefix}{name}.")
        return x
    if type(module) not in _STACKED:
        raise TypeError(f"stacked_forward: {type(module).__name__} is not one of gpbound's finite modules")
    return module._stacked(x, params, prefix)


# ---------------------------------------------------------------------------- layers
class Conv(_Weighted):
    """Convolution ``phi'_{i,a} = b_i + sum_j sum_{k in P} W_{ij,k} x~_{j, s a - lo + k}``.

    Kernel map (docs/theory.md §1, paper eqs. (1)-(2); :mod:`gpbound.kernels.pixels`):

    .. math:: K'_{ij} = \\sigma_b^2 + \\frac{\\sigma_w^2}{|P|}\\sum_{k\\in P} \\tilde K_{s i - lo + k,\\, s j - lo + k}

    with ``~`` periodic (``padding="circular"``) or zero outside the grid (``"same"``).  For
    stride 1 the offsets are ``-(p-1)//2 ... p-1-(p-1)//2`` and the circular map is
    ``K'_{aa'} = sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}``.

    Parameters
    ----------
    channels : int
        Output channels (``>= 1``).
    patch : int or tuple of int
        Patch size per grid dimension (an int applies to every dimension).  With circular
        padding it must not exceed the grid.
    stride : int or tuple of int, default 1
        The output grid has ``ceil(g / stride)`` pixels per axis.
    padding : {"circular", "same"}
        Periodic grid, or TensorFlow/Keras "same" zero padding (extra pad at the end:
        :func:`gpbound.kernels.pixels.same_pads`).  Weights are ``N(0, sigma_w2 / (C_in |P|))``
        either way.
    sigma_w2, sigma_b2 : float, optional
        This layer's weight (``> 0``) and bias (``>= 0``) variances; ``None``: the network's /
        kernel's.  An own ``sigma_b2 = 0`` gives constant zero biases (no random draw).

    Notes
    -----
    Stride > 1 or zero padding: the analytic kernel holds (neural-tangents' convention), but
    Theorem 2's ``M`` (docs/theory.md §5, derived for circular stride-1 convolutions and average
    pooling) is not claimed: :attr:`Architecture.theorem2_issues` says so.
    """

    type_name = "Conv"

    def __init__(self, channels, patch=3, stride=1, padding="circular", sigma_w2=None, sigma_b2=None):
        self.channels = _pos_int(channels, "channels", "Conv")
        self.patch = _int_or_tuple(patch, "patch", "Conv")
        self.stride = _int_or_tuple(stride, "stride", "Conv")
        if not isinstance(padding, str) or padding not in PADDINGS:
            raise ValueError(f"Conv: padding must be one of {PADDINGS}; got {padding!r}")
        self.padding = padding
        self._init_variances(sigma_w2, sigma_b2)

    def to_dict(self):
        d = {"type": "Conv", "channels": self.channels, "patch": _tuple_or_int_dict(self.patch)}
        if self.stride != 1:
            d["stride"] = _tuple_or_int_dict(self.stride)
        if self.padding != "circular":
            d["padding"] = self.padding
        d.update(self._variance_dict())
        return d

    def _label(self):
        extra = "" if self.stride == 1 else f", stride={self.stride}"
        extra += "" if self.padding == "circular" else f", padding={self.padding!r}"
        return f"Conv({self.channels}, {self.patch}{extra})"

    def _geometry(self, grid):
        owner = repr(self)
        patch = _resolve(self.patch, len(grid), "patch", owner)
        stride = _resolve(self.stride, len(grid), "stride", owner)
        return patch, stride

    def _out_spec(self, spec, meta):
        owner = repr(self)
        if not spec.grid:
            raise ValueError(f"{owner} needs a spatial input (C, *grid); got a flat field of width "
                             f"{spec.channels}")
        patch, stride = self._geometry(spec.grid)
        if self.padding == "circular":
            for p, g in zip(patch, spec.grid):
                if p > g:
                    raise ValueError(f"{owner}: patch {patch} exceeds the pixel grid {spec.grid} (circular "
                                     f"padding; padding='same' allows it)")
        if self.padding != "circular" or any(s != 1 for s in stride):
            meta.setdefault("theorem2_issues", []).append(
                f"Theorem 2's M = sqrt(|I0|/|I_Lf|) is derived for circular stride-1 "
                f"convolutions and average pooling (docs/theory.md §5); strided or zero-padded convolutions "
                f"are not covered")
        return Spec(self.channels, tuple(-(-g // s) for g, s in zip(spec.grid, stride)), True)

    def _build(self, spec, ctx):
        c = ctx.channels(self.channels)
        patch, stride = self._geometry(spec.grid)
        out = tuple(-(-g // s) for g, s in zip(spec.grid, stride))
        mod = _ConvModule(spec.channels, c, patch, stride, self.padding, spec.grid, ctx, self.sigma_w2,
                          self.sigma_b2)
        return mod, Spec(c, out, True)

    def _lipschitz(self, spec, sw2):
        """``D'_i = sw2/|P| sum_k D~_{s i - lo + k}``, so ``m' <= sw2 c |I| / (|P| |I'|) m`` with ``c`` the
        largest number of (output pixel, offset) pairs reading one input pixel (a product over the axes);
        ``= sw2`` for circular stride 1 (every pixel read ``|P|`` times)."""
        out = self._out_spec(spec, {})
        patch, stride = self._geometry(spec.grid)
        c = 1
        for g, p, s_, o in zip(spec.grid, patch, stride, out.grid):
            lo = pixels.same_pads(g, p, s_)[0]
            counts = [0] * g
            for i in range(o):
                for k in range(p):
                    src = s_ * i - lo + k
                    if self.padding == "circular":
                        src %= g
                    elif not 0 <= src < g:
                        continue
                    counts[src] += 1
            c *= max(counts)
        w = sw2 if self.sigma_w2 is None else self.sigma_w2
        return w * c * spec.pixels / (math.prod(patch) * out.pixels), out

    def _kernel(self, state, sw2, sb2, keep_full):
        patch, stride = self._geometry(state.grid)
        sw2, sb2 = self._vars(sw2, sb2)
        return pixels.conv_map(state, patch, stride, self.padding, sw2, sb2)


class Dense(_Weighted):
    """Fully connected layer on a flat field: ``phi'_i = b_i + sum_j W_ij x_j``; ``K' = sb2 + sw2 K``.

    Applied to a spatial field it is an error unless the grid has a single pixel (use
    :class:`Flatten` to flatten a grid).

    Parameters
    ----------
    width : int
        Output width (``>= 1``).
    sigma_w2, sigma_b2 : float, optional
        This layer's own variances (see :class:`Conv`).
    """

    type_name = "Dense"

    def __init__(self, width, sigma_w2=None, sigma_b2=None):
        self.width = _pos_int(width, "width", "Dense")
        self._init_variances(sigma_w2, sigma_b2)

    def to_dict(self):
        return {"type": "Dense", "width": self.width, **self._variance_dict()}

    def _out_spec(self, spec, meta):
        if not spec.flat_like:
            raise ValueError(f"{self!r} applied to a spatial field with grid {spec.grid}; Dense needs a flat "
                             f"input: insert Flatten(width) before it")
        if spec.grid:
            meta.setdefault("flatten_pixels", 1)
        return Spec(self.width, (), True)

    def _build(self, spec, ctx):
        w = ctx.channels(self.width)
        return _LinearModule(spec.channels * spec.pixels, w, ctx, self.sigma_w2, self.sigma_b2), Spec(w, (), True)

    def _kernel(self, state, sw2, sb2, keep_full):
        return pixels.flatten_map(state, *self._vars(sw2, sb2))


class Flatten(_Weighted):
    """Flatten + dense (paper eq. (5), without its ReLU): ``phi'_i = b_i + sum_{j,a} W_{ij,a} phi_{j,a}``.

    .. math:: K' = \\sigma_b^2 + \\frac{\\sigma_w^2}{|I|}\\sum_{a\\in I} K_{aa}

    (docs/theory.md §1 "flatten + dense" with the ReLU as a separate layer;
    ``fan_in = C |I|``.)

    Parameters
    ----------
    width : int
        Output width (``>= 1``).
    sigma_w2, sigma_b2 : float, optional
        This layer's own variances (see :class:`Conv`).
    """

    type_name = "Flatten"

    def __init__(self, width, sigma_w2=None, sigma_b2=None):
        self.width = _pos_int(width, "width", "Flatten")
        self._init_variances(sigma_w2, sigma_b2)

    def to_dict(self):
        return {"type": "Flatten", "width": self.width, **self._variance_dict()}

    def _out_spec(self, spec, meta):
        meta.setdefault("flatten_pixels", spec.pixels)
        return Spec(self.width, (), True)

    def _build(self, spec, ctx):
        w = ctx.channels(self.width)
        return _LinearModule(spec.channels * spec.pixels, w, ctx, self.sigma_w2, self.sigma_b2), Spec(w, (), True)

    def _kernel(self, state, sw2, sb2, keep_full):
        return pixels.flatten_map(state, *self._vars(sw2, sb2))


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

    def _lipschitz(self, spec, sw2):
        return 0.5, self._out_spec(spec, {})  # E(relu u - relu v)^2 <= E(u - v)^2 / 2 (Gaussian (u, v))

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
        return {"type": "AvgPool", "block": _tuple_or_int_dict(self.block)}

    def needs_full_pixels(self):
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

    def _lipschitz(self, spec, sw2):
        return 1.0, self._out_spec(spec, {})  # Cauchy-Schwarz over each block

    def _kernel(self, state, sw2, sb2, keep_full):
        return pixels.avg_pool_map(state, _resolve(self.block, len(state.grid), "block", repr(self)))


class GlobalAvgPool(Layer):
    """Average over all pixels: ``phi'_c = (1/|I|) sum_a phi_{c,a}``, a flat field of the same channels.

    .. math:: K' = \\frac{1}{|I|^2}\\sum_{a, b\\in I} K_{ab}

    (:class:`AvgPool` with one block covering the grid, then flattened; needs the full pixel
    covariance.  For Theorem 2 the pixels before flattening are then ``|I_Lf| = 1``.)
    """

    type_name = "GlobalAvgPool"

    def to_dict(self):
        return {"type": "GlobalAvgPool"}

    def needs_full_pixels(self):
        return True

    def _out_spec(self, spec, meta):
        if not spec.grid:
            raise ValueError(f"{self!r} needs a spatial input; got a flat field")
        return Spec(spec.channels, (), spec.gaussian)

    def _build(self, spec, ctx):
        return _GlobalPoolModule(), self._out_spec(spec, {})

    def _lipschitz(self, spec, sw2):
        return 1.0, self._out_spec(spec, {})  # Cauchy-Schwarz over the grid

    def _kernel(self, state, sw2, sb2, keep_full):
        return pixels.global_avg_pool_map(state)


class Residual(Layer):
    """Skip connection ``phi' = s(phi) + block(phi)``, optionally followed by a ReLU.

    * ``Residual(block)``: pre-activation skip (paper eq. (3)), ``s`` the identity,
      ``K' = K + block(K)``;
    * ``Residual(block, shortcut=Conv(c, 1, stride=2, padding="same"))``: a linear projection
      shortcut ``s``, ``K' = s(K) + block(K)``;
    * ``post_activation=True``: ``phi' = ReLU(s(phi) + block(phi))`` (the Keras ResNet v1 block),
      ``K' = F(s(K) + block(K))``.

    The block must end with fresh zero-mean weights (Conv/Dense/Flatten, possibly followed by
    pooling), so the branches are uncorrelated and their covariances add; its output must have
    the shape of ``s(phi)``.  The post-activation ReLU has an analytic kernel only when the sum
    is Gaussian: a projection shortcut, or an identity skip of a Gaussian (pre-activation)
    field.  With an identity skip of a post-ReLU field the sum is not Gaussian: the network
    builds, and :attr:`Architecture.kernel_issues` says why there is no kernel.

    Parameters
    ----------
    block : Layer
        The residual branch (e.g. ``serial(ReLU(), Conv(c, 3), ReLU(), Conv(c, 3))``).
    shortcut : Layer, optional
        The skip branch (``None``: the identity).
    post_activation : bool, default False
    """

    type_name = "Residual"

    def __init__(self, block, shortcut=None, post_activation=False):
        if isinstance(block, (list, tuple)):
            block = serial(*block)
        if not isinstance(block, Layer):
            raise TypeError(f"Residual: block must be a Layer; got {type(block).__name__}")
        if isinstance(shortcut, (list, tuple)):
            shortcut = serial(*shortcut)
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise TypeError(f"Residual: shortcut must be None or a Layer; got {type(shortcut).__name__}")
        if not isinstance(post_activation, bool):
            raise TypeError(f"Residual: post_activation must be a bool; got {post_activation!r}")
        self.block = block
        self.shortcut = shortcut
        self.post_activation = post_activation

    @staticmethod
    def _list(layer):
        return [l.to_dict() for l in layer.layers] if isinstance(layer, Serial) else [layer.to_dict()]

    def to_dict(self):
        d = {"type": "Residual", "block": self._list(self.block)}
        if self.shortcut is not None:
            d["shortcut"] = self._list(self.shortcut)
        if self.post_activation:
            d["post_activation"] = True
        return d

    def __repr__(self):
        extra = "" if self.shortcut is None else f", shortcut={self.shortcut!r}"
        extra += ", post_activation=True" if self.post_activation else ""
        return f"Residual({self.block!r}{extra})"

    def _label(self):
        kind = "post-activation" if self.post_activation else "pre-activation"
        return f"Residual({kind}, {'identity' if self.shortcut is None else 'projection'} shortcut)"

    def needs_full_pixels(self):
        return self.block.needs_full_pixels() or (self.shortcut is not None and self.shortcut.needs_full_pixels())

    def _width_leaves(self, inside_residual=False):
        out = self.block._width_leaves(True)
        if self.shortcut is not None:
            out += self.shortcut._width_leaves(True)
        return out

    def _out_spec(self, spec, meta):
        inner = self.block._out_spec(spec, meta)
        skip = spec if self.shortcut is None else self.shortcut._out_spec(spec, meta)
        if (inner.channels, inner.grid) != (skip.channels, skip.grid):
            what = "keep the shape" if self.shortcut is None else "map to the shape of the shortcut"
            raise ValueError(f"{self!r}: the block maps (channels={spec.channels}, grid={spec.grid}) to "
                             f"(channels={inner.channels}, grid={inner.grid}); a residual block must {what} "
                             f"(channels={skip.channels}, grid={skip.grid})")
        issues = meta.setdefault("kernel_issues", [])
        if not inner.gaussian:
            issues.append(
                f"the block must end with a weight layer (Conv/Dense/Flatten, optionally pooled) "
                f"so that the branches are uncorrelated; K' = K + block(K) fails otherwise")
        gaussian = skip.gaussian and inner.gaussian
        if self.post_activation:
            if not gaussian:
                issues.append(
                    f"ReLU(x + block(x)) with x a post-ReLU (non-Gaussian) field: the sum is not "
                    f"Gaussian, so the ReLU kernel map F does not apply and there is no analytic NNGP kernel "
                    f"(a projection shortcut or a pre-activation skip has one)")
            gaussian = False
        return Spec(skip.channels, skip.grid, gaussian)

    def _build(self, spec, ctx):
        mod, inner = self.block._build(spec, ctx)  # block first, then the shortcut (the draw order)
        sc, skip = (None, spec) if self.shortcut is None else self.shortcut._build(spec, ctx)
        if (inner.channels, inner.grid) != (skip.channels, skip.grid):
            raise ValueError(f"{self!r}: with width override the block maps {spec.channels} to {inner.channels} "
                             f"channels but the skip branch to {skip.channels}")
        gaussian = skip.gaussian and inner.gaussian and not self.post_activation
        return _ResidualModule(mod, sc, self.post_activation), Spec(skip.channels, skip.grid, gaussian)

    def _lipschitz(self, spec, sw2):
        # uncorrelated branches: m' = m_skip + m_block <= (Lambda_skip + Lambda_block) m; then 1/2 for the ReLU
        lb, _ = self.block._lipschitz(spec, sw2)
        ls = 1.0 if self.shortcut is None else self.shortcut._lipschitz(spec, sw2)[0]
        return (ls + lb) * (0.5 if self.post_activation else 1.0), self._out_spec(spec, {})

    def _kernel(self, state, sw2, sb2, keep_full):
        if self.shortcut is None:
            skip = state
        else:
            st = state if (keep_full or self.shortcut.needs_full_pixels()) else state.to_diag()
            skip = self.shortcut._kernel(st, sw2, sb2, keep_full)
        out = skip + self.block._kernel(state, sw2, sb2, keep_full)
        return out.relu() if self.post_activation else out


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

    def needs_full_pixels(self):
        return any(l.needs_full_pixels() for l in self.layers)

    def _width_leaves(self, inside_residual=False):
        out = []
        for l in self.layers:
            out += l._width_leaves(inside_residual)
        return out

    def _out_spec(self, spec, meta):
        for i, l in enumerate(self.layers):
            counts = {k: len(meta.get(k, [])) for k in ("kernel_issues", "theorem2_issues")}
            try:
                spec = l._out_spec(spec, meta)
                for key, n_before in counts.items():
                    issues = meta.get(key, [])
                    for k in range(n_before, len(issues)):
                        issues[k] = f"layer {i} ({l._label()}): {issues[k]}"
            except ValueError as e:
                raise ValueError(f"layer {i} ({l!r}): {e}") from None
        return spec

    def _lipschitz(self, spec, sw2):
        out = 1.0
        for l in self.layers:
            f, spec = l._lipschitz(spec, sw2)
            out *= f
        return out, spec

    def _build(self, spec, ctx):
        mods = []
        for l in self.layers:
            m, spec = l._build(spec, ctx)
            mods.append(m)
        return nn.Sequential(*mods), spec

    def _kernel(self, state, sw2, sb2, keep_full):
        # the full pixel covariance is kept while a later layer (or the caller) needs it
        n = len(self.layers)
        later_full = [False] * (n + 1)
        for i in range(n - 1, -1, -1):
            later_full[i] = later_full[i + 1] or self.layers[i].needs_full_pixels()
        i = 0
        while i < n:
            l = self.layers[i]
            child_keep = keep_full or later_full[i + 1]
            if state.full and not child_keep and not l.needs_full_pixels():
                state = state.to_diag()
            fused = self._fused_conv_relu(i, state, sw2, sb2)
            if fused is not None:  # Conv + ReLU in one pass (the ReLU keeps the conv's pixel layout)
                state = fused
                i += 2
                continue
            state = l._kernel(state, sw2, sb2, child_keep)
            i += 1
        return state

    def _fused_conv_relu(self, i, state, sw2, sb2):
        """The state after layers ``i`` (a circular stride-1 Conv) and ``i + 1`` (a ReLU) by the fused
        compiled map (:func:`gpbound.kernels.pixels.conv_relu_map`), or None where it does not apply:
        compiled paths off (:func:`gpbound.kernels.enable_compile`), other layers, or autograd."""
        if not _COMPILED["on"] or i + 1 >= len(self.layers) or not isinstance(self.layers[i + 1], ReLU):
            return None
        conv = self.layers[i]
        if not isinstance(conv, Conv) or conv.padding != "circular":
            return None
        patch, stride = conv._geometry(state.grid)
        w, b = conv._vars(sw2, sb2)
        if any(s != 1 for s in stride) or isinstance(w, torch.Tensor) or isinstance(b, torch.Tensor):
            return None
        if any(t is not None and t.requires_grad for t in (state.cross, state.var1, state.var2)):
            return None
        return pixels.conv_relu_map(state, patch, w, b)


def serial(*layers) -> Serial:
    """Compose layers left to right (``serial(Conv(32, 3), ReLU(), Flatten(1))``)."""
    if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
        layers = tuple(layers[0])
    return Serial(layers)


def __getattr__(name):
    # the architecture moved to gpbound.kernels.architecture; kept importable from here
    if name == "Architecture":
        from .architecture import Architecture

        return Architecture
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
