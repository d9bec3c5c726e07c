"""Architecture.lipschitz_factor: a proved Lambda with d(x, y)^2 <= (Lambda / n) ||x - y||^2 for every layer option.

Oracles: (1) on the layers gpbound.lipschitz already covers (circular stride-1 Conv, Dense, Flatten, ReLU, AvgPool,
pre-activation Residual) it equals lipschitz_factor below, an independent implementation of
docs/theory.md §8 for those layers only; (2) for strides, zero padding, projection / post-activation residuals, GlobalAvgPool and
per-layer variances the bound holds on random and nearby pairs, with d from the analytic kernel (itself checked
against the numpy oracle in tests/test_kernel_oracle.py); (3) it is attained (equality to rounding) by a linear
strided network and an increment supported on the subsampled pixels, so the strided factor is not loose.
"""
import pytest
import torch

from gpbound.kernels import Architecture, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, ReLU, Residual, serial
from gpbound.kernels.presets import get_preset


def lipschitz_factor(layer, sigma_w2: float) -> float:  # the oracle (1), written from docs/theory.md §8
    r"""The factor :math:`\Lambda` by which ``layer`` can multiply the pixel-mean squared increment (module docstring)."""
    from gpbound.kernels.layers import Serial

    if isinstance(layer, Serial):
        out = 1.0
        for sub in layer.layers:
            out *= lipschitz_factor(sub, sigma_w2)
        return out
    if isinstance(layer, (Conv, Dense, Flatten)):
        return float(sigma_w2)
    if isinstance(layer, ReLU):
        return 0.5
    if isinstance(layer, AvgPool):
        return 1.0
    if isinstance(layer, Residual):
        return 1.0 + lipschitz_factor(layer.block, sigma_w2)
    raise TypeError(f"no proved Lipschitz factor for layer {layer!r} (supported: Conv, Dense, Flatten, ReLU, "
                    "AvgPool, Residual, serial)")


DT = torch.float64


@pytest.mark.parametrize("name", ["resnet", "lenet", "cnn", "dense"])
def test_equals_gpbound_lipschitz_on_its_layers(name):
    arch = get_preset(name, 16)
    for sw2 in (0.7, 2.0):
        assert arch.lipschitz_factor(sw2) == pytest.approx(lipschitz_factor(arch.layer, sw2), rel=1e-14)


NEW = {
    "strided_same": (serial(Conv(3, 3, stride=2, padding="same"), ReLU(), Conv(3, 3, padding="same"), ReLU(),
                            Flatten(1)), (2, 6, 5)),
    "strided_circular_ragged": (serial(Conv(3, (2, 3), stride=(3, 2)), ReLU(), Flatten(1)), (1, 7, 5)),
    "projection_post": (serial(Conv(3, 3), ReLU(),
                               Residual(serial(Conv(3, 3, stride=2, padding="same"), ReLU(), Conv(3, 3, padding="same")),
                                        shortcut=Conv(3, 1, stride=2, padding="same"), post_activation=True),
                               Flatten(1)), (2, 6, 6)),
    "gap_per_layer": (serial(Conv(3, 3, sigma_w2=3.0), ReLU(), Conv(3, 3, sigma_w2=0.4), GlobalAvgPool(), ReLU(),
                             Dense(1, sigma_w2=2.5)), (1, 4, 4)),
    "pool_1x1_stride": (serial(Conv(2, 1, stride=2), AvgPool(2), ReLU(), Flatten(1, sigma_w2=5.0)), (1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(NEW))
def test_bound_holds_on_random_and_nearby_pairs(name):
    layer, shape = NEW[name]
    arch = Architecture(layer, shape)
    sw2 = 1.3
    lam = arch.lipschitz_factor(sw2)
    g = torch.Generator().manual_seed(3)
    X = torch.rand(6, arch.n, generator=g, dtype=DT)
    near = X + 1e-3 * torch.randn(6, arch.n, generator=g, dtype=DT)
    sparse = X.clone()
    sparse[:, ::7] += torch.randn(6, len(range(0, arch.n, 7)), generator=g, dtype=DT)
    worst = 0.0
    for Y in (torch.rand(6, arch.n, generator=g, dtype=DT), near, sparse):
        kxx = arch.kernel(X, sigma_w2=sw2, diag=True)
        kyy = arch.kernel(Y, sigma_w2=sw2, diag=True)
        kxy = arch.kernel(X, Y, sigma_w2=sw2, diag=True)
        d2 = kxx - 2 * kxy + kyy
        ratio = d2 / ((X - Y).pow(2).sum(1) * lam / arch.n)
        worst = max(worst, float(ratio.max()))
    assert worst <= 1 + 1e-9, worst


@pytest.mark.parametrize("case", ["strided", "own_variance", "projection"])
def test_strided_factor_is_attained(case):
    """Linear nets on 1 x 4 x 4 whose increment D sits on the 4 pixels a 1x1 stride-2 conv reads: d^2 equals
    (Lambda / n) ||D||^2.  strided: Conv(4, 1, stride 2) -> Flatten(1), Lambda = (sw2 * 16/4) * sw2;
    own_variance: the conv has its own sigma_w2 = 3, Lambda = (3 * 16/4) * sw2; projection: a residual
    whose block and shortcut are both such convs (uncorrelated branches add), Lambda = 2 (sw2 * 16/4) * sw2."""
    sw2 = 1.7
    layer, lam_want = {
        "strided": (serial(Conv(4, 1, stride=2), Flatten(1)), 4 * sw2 * sw2),
        "own_variance": (serial(Conv(4, 1, stride=2, sigma_w2=3.0), Flatten(1)), 4 * 3.0 * sw2),
        "projection": (serial(Residual(Conv(4, 1, stride=2, padding="same"), shortcut=Conv(4, 1, stride=2, padding="same")),
                              Flatten(1)), 2 * 4 * sw2 * sw2),
    }[case]
    arch = Architecture(layer, (1, 4, 4))
    lam = arch.lipschitz_factor(sw2)
    assert lam == pytest.approx(lam_want, rel=1e-15)
    x = torch.rand(1, 16, dtype=DT, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, [0, 2, 8, 10]] += torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=DT)
    d2 = (arch.kernel(x, sigma_w2=sw2) - 2 * arch.kernel(x, y, sigma_w2=sw2) + arch.kernel(y, sigma_w2=sw2)).item()
    assert d2 == pytest.approx(lam / arch.n * float((x - y).pow(2).sum()), rel=1e-12)


def test_no_kernel_no_factor():
    arch = get_preset("faithful", image_size=8, widths=(2, 2, 2), blocks_per_stack=1)
    with pytest.raises(ValueError, match="not Gaussian"):
        arch.lipschitz_factor()
    with pytest.raises(ValueError, match="sigma_w2"):
        get_preset("cnn", 8).lipschitz_factor(0.0)
