"""The two network presets of the experiments (docs/theory.md section 6).

* ``"faithful"`` -- the authors' network as a plain :class:`torch.nn.Module`: the Keras
  CIFAR ResNet v1 (depth 20) *without batch norm* and without global average pooling.
  Its blocks are post-activation, so its infinite-width kernel is only reachable by
  Monte Carlo: use it for attacks and sampling, never for the analytic bound.
* ``"theory"`` -- the layer description ``gpbound.kernels.presets.get_preset("resnet",
  image_size)`` (pre-activation skips, eq. (3); average pooling instead of striding), for
  which the analytic kernel, Theorem 2 and Corollary 1 apply.

Every experiment records which preset it measured (:func:`preset_info`).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from gpbound.validation import positive_int, real_number
from gpbound.validation import seed as _seed

__all__ = ["PRESET_NAMES", "FaithfulResNet", "make_network", "preset_info", "ScalarOutput"]

PRESET_NAMES = ("faithful", "theory")
DEFAULT_WIDTHS = (32, 64, 128)


def _check_dtype(dtype):
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")


def _check_positive_int(name, value, minimum=1):
    """``value`` as an int >= minimum (NumPy integers accepted); TypeError / ValueError naming ``name``."""
    return positive_int(value, name, minimum=minimum)


def _check_preset(preset):
    if not isinstance(preset, str):
        raise TypeError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")


def _same_pad(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """Keras/TensorFlow 'same' padding (extra pixel on the right/bottom)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _SameConv2d(nn.Module):
    """Conv2d with TensorFlow 'same' zero padding, He-normal weights and zero bias.

    Weights ``W ~ N(0, 2 / fan_in)`` with ``fan_in = C_in k^2`` (He et al. 2015), biases 0,
    as Keras' ``he_normal`` / ``zeros`` (Keras 2.2.4 truncates at 2 sigma; the untruncated
    normal is used here so that the network is the Gaussian-weight network of docs/theory.md §1).
    """

    def __init__(self, c_in, c_out, kernel, stride, generator, device, dtype):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        fan_in = c_in * kernel * kernel
        w = torch.randn(c_out, c_in, kernel, kernel, generator=generator, dtype=dtype)
        self.weight = nn.Parameter((w * math.sqrt(2.0 / fan_in)).to(device))
        self.bias = nn.Parameter(torch.zeros(c_out, device=device, dtype=dtype))

    def forward(self, x):
        ph = _same_pad(x.shape[-2], self.kernel, self.stride)
        pw = _same_pad(x.shape[-1], self.kernel, self.stride)
        if any(ph) or any(pw):
            x = F.pad(x, (pw[0], pw[1], ph[0], ph[1]))
        return F.conv2d(x, self.weight, self.bias, stride=self.stride)


class _Block(nn.Module):
    """Post-activation residual block ``x' = ReLU(s(x) + Conv(ReLU(Conv_stride(x))))``.

    ``s`` is the identity, or a linear 1x1 stride-2 convolution when the block
    down-samples (Keras ResNet v1, ``resnet_layer(kernel_size=1, activation=None)``).
    """

    def __init__(self, c_in, c_out, stride, generator, device, dtype):
        super().__init__()
        self.conv1 = _SameConv2d(c_in, c_out, 3, stride, generator, device, dtype)
        self.conv2 = _SameConv2d(c_out, c_out, 3, 1, generator, device, dtype)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = _SameConv2d(c_in, c_out, 1, stride, generator, device, dtype)

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x)))
        s = x if self.shortcut is None else self.shortcut(x)
        return torch.relu(s + y)


class FaithfulResNet(nn.Module):
    r"""The authors' network: Keras ResNet v1 (depth 20) without batch norm, no pooling.

    ``conv3x3(w1) -> ReLU``; three stacks of ``blocks_per_stack`` post-activation blocks
    ``x = ReLU(x + Conv3x3(ReLU(Conv3x3(x))))`` with widths ``w1, w2, w3`` (default 32, 64,
    128), the first block of stacks 2 and 3 striding by 2 with a linear 1x1 stride-2
    shortcut; TensorFlow 'same' zero padding; ``Flatten -> Dense``. All weights are
    He-normal, :math:`W \sim \mathcal N(0, 2/\mathrm{fan\_in})`, biases zero (docs/theory.md §6).

    The output is a scalar logit ``phi(x)`` of shape ``(B,)``; the label is
    ``sign phi(x)``. With ``logits=2`` the head is ``Dense(2)`` and the scalar is the
    logit difference ``z_1 - z_0`` (the 2-way softmax of the authors' code predicts
    class 1 exactly when it is positive).

    Parameters
    ----------
    image_size : int
        Side ``s`` of the square input images, ``s >= 1``.
    in_channels : int
        Input channels ``C0`` (3 for colour, 1 for digits/MNIST).
    widths : sequence of 3 ints
        Channels of the three stacks (the stem uses ``widths[0]``).
    blocks_per_stack : int
        Residual blocks per stack (3 for depth 20).
    logits : {1, 2}
        Width of the dense head (see above).
    seed : int
        Seed of the weights (a private :class:`torch.Generator`; global RNG untouched).

    Notes
    -----
    Inputs are ``(B, n)`` with ``n = C0 s^2`` flattened in ``(C, H, W)`` order, or
    ``(B, C0, s, s)``. Stride-2 'same' padding puts the extra zero on the right/bottom
    as TensorFlow does, so the pixel grid matches the authors' Keras model.
    """

    def __init__(self, image_size: int, in_channels: int = 3, widths: Sequence[int] = DEFAULT_WIDTHS,
                 blocks_per_stack: int = 3, logits: int = 1, seed: int = 0, device=None,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        image_size = _check_positive_int("image_size", image_size)
        in_channels = _check_positive_int("in_channels", in_channels)
        blocks_per_stack = _check_positive_int("blocks_per_stack", blocks_per_stack)
        seed = _seed(seed, "seed")
        _check_dtype(dtype)
        if not isinstance(widths, (list, tuple)):
            raise TypeError(f"widths must be a sequence of 3 integers >= 1, got {widths!r}")
        if len(widths) != 3:
            raise ValueError(f"widths must have 3 entries (one per stack), got {widths!r}")
        widths = tuple(_check_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))
        logits = positive_int(logits, "logits", minimum=1, maximum=2)
        self.image_size, self.in_channels, self.widths = image_size, in_channels, widths
        self.blocks_per_stack, self.logits = blocks_per_stack, logits
        self.n = in_channels * image_size * image_size
        g = torch.Generator().manual_seed(int(seed))
        self.stem = _SameConv2d(in_channels, widths[0], 3, 1, g, device, dtype)
        blocks, c, size = [], widths[0], image_size
        for stack, w in enumerate(widths):
            for b in range(blocks_per_stack):
                stride = 2 if (stack > 0 and b == 0) else 1
                blocks.append(_Block(c, w, stride, g, device, dtype))
                if stride == 2:
                    size = -(-size // 2)
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.final_pixels = size * size
        fan_in = c * size * size
        w = torch.randn(logits, fan_in, generator=g, dtype=dtype) * math.sqrt(2.0 / fan_in)
        self.head_weight = nn.Parameter(w.to(device))
        self.head_bias = nn.Parameter(torch.zeros(logits, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, c = self.image_size, self.in_channels
        if x.dim() == 2:
            if x.shape[1] != self.n:
                raise ValueError(f"x must have shape (B, {self.n}) or (B, {c}, {s}, {s}), got {tuple(x.shape)}")
            x = x.reshape(-1, c, s, s)
        elif x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"x must have shape (B, {self.n}) or (B, {c}, {s}, {s}), got {tuple(x.shape)}")
        h = self.blocks(torch.relu(self.stem(x)))
        z = F.linear(h.flatten(1), self.head_weight, self.head_bias)
        return z[:, 0] if self.logits == 1 else z[:, 1] - z[:, 0]


class ScalarOutput(nn.Module):
    """Wrap a ``(B, n) -> (B, 1)`` network so that it returns ``(B,)``."""

    def __init__(self, net: nn.Module, n: int):
        super().__init__()
        self.net, self.n = net, n

    def forward(self, x):
        if x.dim() != 2:
            x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.n:
            raise ValueError(f"x must have shape (B, {self.n}), got {tuple(x.shape)}")
        out = self.net(x)
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.dim() != 1:
            raise ValueError(f"the theory network must have a scalar output, got shape {tuple(out.shape)}")
        return out


def _theory_architecture(image_size, in_channels, blocks_per_stack):
    from gpbound.kernels.presets import get_preset

    kwargs = {}
    if in_channels != 3:
        kwargs["in_channels"] = in_channels
    if blocks_per_stack != 3:
        kwargs["blocks_per_stack"] = blocks_per_stack
    return get_preset("resnet", image_size=image_size, **kwargs)


def make_network(preset: str, image_size: int, seed: int = 0, in_channels: int = 3,
                 widths: Union[None, int, Sequence[int]] = None, width_scale: float = 1.0,
                 blocks_per_stack: int = 3, logits: int = 1, device=None,
                 dtype: torch.dtype = torch.float64) -> nn.Module:
    """A random network of a preset, as a scalar-output module on ``(B, n)`` inputs.

    Parameters
    ----------
    preset : {"faithful", "theory"}
        See the module docstring (docs/theory.md §6).
    image_size : int
        Side ``s`` of the ``s x s`` input images (``n = C0 s^2``). The theory preset
        down-samples by average pooling, so it needs ``s`` divisible by 4.
    seed : int
        Seed of the weights.
    in_channels : int
        Input channels ``C0``.
    widths : None, int or 3 ints
        Faithful: the stack widths (default 32, 64, 128); an int ``w`` means ``(w, 2w, 4w)``.
        Theory: ``None`` (the preset's widths) or an int that overrides every hidden width.
    width_scale : float > 0
        Multiplies the faithful default widths (rounded, at least 1); must be 1 for theory.
    blocks_per_stack : int
        Residual blocks per stack.
    logits : {1, 2}
        Faithful head width (2 -> logit difference).
    device, dtype
        Where and in which precision the weights live (float64 by default).

    Returns
    -------
    torch.nn.Module
        ``f(x)`` with ``x`` of shape ``(B, n)``, returning ``(B,)``; label ``sign f(x)``.
    """
    _check_preset(preset)
    image_size = _check_positive_int("image_size", image_size)
    in_channels = _check_positive_int("in_channels", in_channels)
    blocks_per_stack = _check_positive_int("blocks_per_stack", blocks_per_stack)
    seed = _seed(seed, "seed")
    _check_dtype(dtype)
    width_scale = real_number(width_scale, "width_scale", lo=0.0, lo_open=True)
    if widths is not None and not isinstance(widths, (list, tuple)):
        widths = _check_positive_int("widths", widths)
    elif widths is not None:
        widths = tuple(_check_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))
    if preset == "faithful":
        if widths is None:
            widths = tuple(max(1, int(round(w * width_scale))) for w in DEFAULT_WIDTHS)
        elif isinstance(widths, int):
            widths = (widths, 2 * widths, 4 * widths)
        elif width_scale != 1.0:
            raise ValueError("give either widths or width_scale, not both")
        return FaithfulResNet(image_size, in_channels, widths, blocks_per_stack, logits, seed,
                              device=device, dtype=dtype)
    # theory
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 for the theory preset, got {image_size}")
    if width_scale != 1.0:
        raise ValueError("width_scale is only supported by the faithful preset; pass widths=int for theory")
    if widths is not None and not isinstance(widths, int):
        raise TypeError(f"widths must be None or an integer >= 1 for the theory preset, got {widths!r}")
    if positive_int(logits, "logits", minimum=1, maximum=2) != 1:
        raise ValueError("logits must be 1 for the theory preset (its output layer is scalar)")
    arch = _theory_architecture(image_size, in_channels, blocks_per_stack)
    net = arch.network(width=widths, sigma_w2=2.0, sigma_b2=0.0, seed=int(seed), device=device, dtype=dtype)
    return ScalarOutput(net, int(arch.n))


def preset_info(preset: str, image_size: int, in_channels: int = 3, blocks_per_stack: int = 3) -> dict:
    """Which preset an experiment measured, with ``n`` (and ``M`` of Theorem 2 for theory).

    Returns
    -------
    dict
        ``preset``, ``image_size``, ``n = C0 s^2``, ``description``; for ``"theory"`` also
        ``M = sqrt(|I0| / |I_Lf|)`` (Theorem 2) and ``analytic_kernel = True``; for
        ``"faithful"``, ``analytic_kernel = False`` (post-activation skips, stride-2
        convolutions: Monte Carlo and attacks only) and ``final_pixels``.
    """
    _check_preset(preset)
    image_size = _check_positive_int("image_size", image_size)
    in_channels = _check_positive_int("in_channels", in_channels)
    blocks_per_stack = _check_positive_int("blocks_per_stack", blocks_per_stack)
    n = in_channels * image_size * image_size
    if preset == "faithful":
        final = -(-(-(-image_size // 2)) // 2)
        return {"preset": "faithful", "image_size": image_size, "n": n, "analytic_kernel": False,
                "final_pixels": final * final, "blocks_per_stack": blocks_per_stack,
                "description": "authors' Keras ResNet v1 without batch norm (post-activation skips, "
                               "stride-2 convs, He-normal weights): attacks and Monte Carlo only"}
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 for the theory preset, got {image_size}")
    arch = _theory_architecture(image_size, in_channels, blocks_per_stack)
    return {"preset": "theory", "image_size": image_size, "n": int(arch.n), "M": float(arch.M),
            "analytic_kernel": True, "flatten_pixels": int(arch.flatten_pixels),
            "description": "gpbound.kernels.presets 'resnet' (pre-activation skips, eq. 3; average "
                           "pooling): analytic NNGP kernel, Theorem 2 and Corollary 1 apply"}
