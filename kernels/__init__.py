"""gpbound.kernels: the layer language, finite random networks and their NNGP / arc-cosine kernels.

>>> from gpbound.kernels import Conv, ReLU, Flatten, serial, Architecture, NNGPKernel
>>> arch = Architecture(serial(Conv(8, 3), ReLU(), Flatten(1)), input_shape=(3, 6, 6))
>>> arch.n, arch.M
(108, 1.0)
"""
from .arccos import ArcCosineKernel, arc_cosine, arc_cosine_from_cov, enable_compile, relu_expectation
from .layers import AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Layer, ReLU, Residual, Serial, serial
from .architecture import Architecture
from .nngp import NNGPKernel
from .state import KernelState

__all__ = [
    "Conv", "Dense", "ReLU", "Residual", "AvgPool", "GlobalAvgPool", "Flatten", "Serial", "serial", "Layer", "Architecture",
    "KernelState", "NNGPKernel", "ArcCosineKernel", "relu_expectation", "arc_cosine", "arc_cosine_from_cov",
    "enable_compile",
]

