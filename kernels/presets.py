"""Theory presets (docs/theory.md §6) as layer descriptions.

The presets of :data:`PRESETS` are *analytic*: pre-activation skips and average-pooling
down-sampling, so the NNGP recursion, Theorem 2 and Corollary 1 apply.  The authors' own
network (post-activation blocks, stride-2 'same' convolutions, docs/theory.md §6) is the
``"faithful"`` preset of :data:`FINITE_PRESETS`: its finite networks are those of
``gpbound.experiments.make_network("faithful", ...)``, but it has no analytic kernel
(``arch.kernel_issues`` says why).  :func:`get_preset` builds both kinds.

>>> from gpbound.kernels.presets import get_preset
>>> arch = get_preset("resnet", image_size=16)
>>> arch.n, arch.M
(768, 4.0)
"""
from __future__ import annotations

from typing import Callable, Dict

from .architecture import Architecture
from .layers import AvgPool, Conv, Dense, Flatten, ReLU, Residual, _pos_int, serial

__all__ = ["PRESETS", "FINITE_PRESETS", "get_preset", "resnet", "dense", "lenet", "cnn", "faithful",
           "FAITHFUL_WIDTHS"]

#: default stack widths of the faithful preset
FAITHFUL_WIDTHS = (32, 64, 128)


def _divisible(image_size, k, name):
    if image_size % k:
        raise ValueError(f"image_size must be divisible by {k} for preset {name!r}; got {image_size}")


def resnet(image_size, in_channels=3, stack_widths=(32, 64, 128), blocks_per_stack=1, stem_channels=None):
    """Theory ResNet: Conv3x3 stem; stacks of ``Residual(ReLU, Conv3x3, ReLU, Conv3x3)`` blocks;
    between stacks ``AvgPool(2)`` then a linear ``Conv(c_next, 1)``; then ``ReLU, Flatten(1)``.
    On grids smaller than 3x3 (the last stacks of images below 12x12) the patch is the whole grid.

    With three stacks ``|I0| / |I_Lf| = 16`` and ``M = 4`` (paper section 4)."""
    stack_widths = tuple(_pos_int(w, "stack_widths", "resnet") for w in stack_widths)
    if not stack_widths:
        raise ValueError("stack_widths must be non-empty")
    bps = _pos_int(blocks_per_stack, "blocks_per_stack", "resnet")
    _divisible(image_size, 2 ** (len(stack_widths) - 1), "resnet")
    stem = stack_widths[0] if stem_channels is None else _pos_int(stem_channels, "stem_channels", "resnet")
    layers = [Conv(stem, min(3, image_size))]
    if stem != stack_widths[0]:
        layers.append(Conv(stack_widths[0], 1))
    for s, c in enumerate(stack_widths):
        if s > 0:
            layers += [AvgPool(2), Conv(c, 1)]
        # 3x3 patches, shrunk to the grid on grids smaller than 3 pixels (so n = 48, s = 4, works:
        # a circular 3x3 patch on a 2x2 grid would visit pixels twice)
        p = min(3, image_size // 2 ** s)
        for _ in range(bps):
            layers.append(Residual(serial(ReLU(), Conv(c, p), ReLU(), Conv(c, p))))
    layers += [ReLU(), Flatten(1)]
    return Architecture(serial(*layers), (in_channels, image_size, image_size))


def dense(image_size, in_channels=3, width=100, depth=2):
    """Fully connected net: flatten -> width -> width -> 1 (ReLU, no ReLU on the input); M = 1."""
    width = _pos_int(width, "width", "dense")
    depth = _pos_int(depth, "depth", "dense")
    layers = [Flatten(width)]
    for _ in range(depth - 1):
        layers += [ReLU(), Dense(width)]
    layers += [ReLU(), Dense(1)]
    return Architecture(serial(*layers), (in_channels, image_size, image_size))


def lenet(image_size, in_channels=3, channels=128, hidden=512):
    """LeNet-like: 2x (Conv3x3, ReLU), AvgPool 2, 2x (Conv3x3, ReLU), AvgPool 2, Flatten(512), ReLU,
    Dense(512), ReLU, Dense(1); M = 4."""
    _divisible(image_size, 4, "lenet")
    c = _pos_int(channels, "channels", "lenet")
    h = _pos_int(hidden, "hidden", "lenet")
    layers = [Conv(c, 3), ReLU(), Conv(c, 3), ReLU(), AvgPool(2), Conv(c, 3), ReLU(), Conv(c, 3), ReLU(),
              AvgPool(2), Flatten(h), ReLU(), Dense(h), ReLU(), Dense(1)]
    return Architecture(serial(*layers), (in_channels, image_size, image_size))


def cnn(image_size, in_channels=3, channels=128, depth=4):
    """Plain CNN: ``depth`` x (Conv3x3, ReLU), Flatten(1); M = 1."""
    c = _pos_int(channels, "channels", "cnn")
    layers = []
    for _ in range(_pos_int(depth, "depth", "cnn")):
        layers += [Conv(c, 3), ReLU()]
    layers.append(Flatten(1))
    return Architecture(serial(*layers), (in_channels, image_size, image_size))


def faithful(image_size, in_channels=3, widths=FAITHFUL_WIDTHS, blocks_per_stack=3, logits=1):
    """The authors' network: Keras CIFAR ResNet v1 (depth ``6 blocks_per_stack + 2``) without batch norm
    and without global pooling (docs/theory.md §6).

    ``Conv3x3(w1), ReLU``; three stacks of ``blocks_per_stack`` post-activation blocks
    ``x = ReLU(s(x) + Conv3x3(ReLU(Conv3x3_stride(x))))`` of widths ``w1, w2, w3``, where the first
    block of stacks 2 and 3 strides by 2 and ``s`` is a linear 1x1 stride-2 convolution (``s`` is
    the identity elsewhere); TensorFlow "same" zero padding; ``Flatten(logits)``.  Every weight
    layer has ``sigma_b2 = 0`` of its own (Keras' zero biases, no random draw); the weights are
    ``N(0, sigma_w2 / fan_in)`` with the network's ``sigma_w2`` (2: He-normal).

    No analytic kernel: the identity blocks apply a ReLU to ``x + block(x)`` with ``x`` post-ReLU.

    Parameters
    ----------
    image_size : int
    in_channels : int
    widths : sequence of 3 ints
        Channels of the three stacks (the stem has ``widths[0]``).
    blocks_per_stack : int
    logits : {1, 2}
        Width of the head (2: the authors' 2-way softmax; the scalar is ``z_1 - z_0``).

    Examples
    --------
    >>> arch = get_preset("faithful", image_size=32)
    >>> arch.n, arch.flatten_pixels, arch.has_kernel
    (3072, 64, False)
    """
    if not isinstance(widths, (list, tuple)):
        raise TypeError(f"faithful: widths must be a sequence of 3 positive integers; got {widths!r}")
    if len(widths) != 3:
        raise ValueError(f"faithful: widths must have 3 entries (one per stack); got {widths!r}")
    widths = tuple(_pos_int(w, f"widths[{i}]", "faithful") for i, w in enumerate(widths))
    bps = _pos_int(blocks_per_stack, "blocks_per_stack", "faithful")
    logits = _pos_int(logits, "logits", "faithful")
    if logits > 2:
        raise ValueError(f"faithful: logits must be 1 or 2; got {logits}")

    def conv(c, patch, stride=1):
        return Conv(c, patch, stride=stride, padding="same", sigma_b2=0.0)

    layers = [conv(widths[0], 3), ReLU()]
    c = widths[0]
    for stack, w in enumerate(widths):
        for b in range(bps):
            stride = 2 if (stack > 0 and b == 0) else 1
            shortcut = conv(w, 1, stride) if (stride != 1 or c != w) else None
            layers.append(Residual(serial(conv(w, 3, stride), ReLU(), conv(w, 3)), shortcut=shortcut,
                                   post_activation=True))
            c = w
    layers.append(Flatten(logits, sigma_b2=0.0))
    return Architecture(serial(*layers), (in_channels, image_size, image_size))


PRESETS: Dict[str, Callable[..., Architecture]] = {"resnet": resnet, "dense": dense, "lenet": lenet, "cnn": cnn}
#: presets whose finite networks have no analytic kernel (attacks and Monte Carlo only)
FINITE_PRESETS: Dict[str, Callable[..., Architecture]] = {"faithful": faithful}


def get_preset(name, image_size=16, in_channels=3, **kw) -> Architecture:
    """Theory preset ``name`` on ``in_channels x image_size x image_size`` images.

    Parameters
    ----------
    name : {"resnet", "dense", "lenet", "cnn", "faithful"}
        A name of :data:`PRESETS` (analytic) or :data:`FINITE_PRESETS` (no analytic kernel).
    image_size : int, default 16
    in_channels : int
    **kw
        Preset options (e.g. ``blocks_per_stack``, ``stack_widths`` for "resnet", ``widths`` for
        "faithful").
    """
    builders = {**PRESETS, **FINITE_PRESETS}
    if name not in builders:
        raise ValueError(f"unknown preset {name!r}; allowed: {sorted(builders)}")
    image_size = _pos_int(image_size, "image_size", "get_preset")
    in_channels = _pos_int(in_channels, "in_channels", "get_preset")
    return builders[name](image_size, in_channels=in_channels, **kw)
