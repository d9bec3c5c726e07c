"""The two network presets of the experiments (docs/theory.md section 6).

* ``"faithful"`` -- the authors' network, the layer description
  ``gpbound.kernels.presets.get_preset("faithful", image_size, widths=...)``: the Keras CIFAR
  ResNet v1 (depth 20) *without batch norm* and without global average pooling ('same' zero
  padding, stride-2 stacks with 1x1 projection shortcuts, He-normal weights, zero biases).
  Its blocks are post-activation, so its infinite-width kernel is only reachable by
  Monte Carlo: use it for attacks and sampling, never for the analytic bound.
* ``"theory"`` -- the layer description ``gpbound.kernels.presets.get_preset("resnet",
  image_size)`` (pre-activation skips, eq. (3); average pooling instead of striding), for
  which the analytic kernel, Theorem 2 and Corollary 1 apply.

Every experiment records which preset it measured (:func:`preset_info`).
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from gpbound.kernels.presets import FAITHFUL_WIDTHS as DEFAULT_WIDTHS

from gpbound.validation import positive_int, real_number
from gpbound.validation import seed as _seed

__all__ = ["PRESET_NAMES", "make_network", "preset_info", "ScalarOutput"]

PRESET_NAMES = ("faithful", "theory")


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


class ScalarOutput(nn.Module):
    """Wrap a ``(B, n) -> (B, logits)`` network so that it returns the scalar ``(B,)``.

    ``logits=1``: the single output; ``logits=2``: the logit difference ``z_1 - z_0`` (a 2-way
    softmax predicts class 1 exactly when it is positive).  Inputs may also be ``(B, *shape)``
    with ``prod(shape) = n``.
    """

    def __init__(self, net: nn.Module, n: int, logits: int = 1):
        super().__init__()
        self.net, self.n = net, n
        self.logits = positive_int(logits, "logits", minimum=1, maximum=2)

    def forward(self, x):
        if x.dim() != 2:
            x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.n:
            raise ValueError(f"x must have shape (B, {self.n}), got {tuple(x.shape)}")
        out = self.net(x)
        if out.dim() != 2 or out.shape[1] != self.logits:
            raise ValueError(f"the network must have {self.logits} output(s) per row, got shape {tuple(out.shape)}")
        return out[:, 0] if self.logits == 1 else out[:, 1] - out[:, 0]


def _theory_architecture(image_size, in_channels, blocks_per_stack):
    from gpbound.kernels.presets import get_preset

    kwargs = {}
    if in_channels != 3:
        kwargs["in_channels"] = in_channels
    if blocks_per_stack != 3:
        kwargs["blocks_per_stack"] = blocks_per_stack
    return get_preset("resnet", image_size=image_size, **kwargs)


def _faithful_architecture(image_size, in_channels, widths, blocks_per_stack, logits=1):
    from gpbound.kernels.presets import get_preset

    return get_preset("faithful", image_size=image_size, in_channels=in_channels, widths=widths,
                      blocks_per_stack=blocks_per_stack, logits=logits)


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
        logits = positive_int(logits, "logits", minimum=1, maximum=2)
        arch = _faithful_architecture(image_size, in_channels, widths, blocks_per_stack, logits)
        net = arch.network(sigma_w2=2.0, sigma_b2=0.0, seed=int(seed), device=device, dtype=dtype)
        return ScalarOutput(net, int(arch.n), logits)
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
        arch = _faithful_architecture(image_size, in_channels, DEFAULT_WIDTHS, blocks_per_stack)
        return {"preset": "faithful", "image_size": image_size, "n": n, "analytic_kernel": arch.has_kernel,
                "final_pixels": int(arch.flatten_pixels), "blocks_per_stack": blocks_per_stack,
                "description": "authors' Keras ResNet v1 without batch norm (gpbound.kernels.presets "
                               "'faithful': post-activation skips, stride-2 convs, He-normal weights): "
                               "attacks and Monte Carlo only"}
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4 for the theory preset, got {image_size}")
    arch = _theory_architecture(image_size, in_channels, blocks_per_stack)
    return {"preset": "theory", "image_size": image_size, "n": int(arch.n), "M": float(arch.M),
            "analytic_kernel": True, "flatten_pixels": int(arch.flatten_pixels),
            "description": "gpbound.kernels.presets 'resnet' (pre-activation skips, eq. 3; average "
                           "pooling): analytic NNGP kernel, Theorem 2 and Corollary 1 apply"}
