"""Theory presets: metadata of the paper's networks, and even patches on tiny grids."""
import pytest
import torch

from gpbound.kernels import Architecture, Conv, Flatten, ReLU, serial
from gpbound.kernels.presets import get_preset


@pytest.mark.parametrize("s", [4, 8, 12, 16, 32])
def test_resnet_preset_metadata(s):
    arch = get_preset("resnet", image_size=s)
    assert arch.n == 3 * s * s
    assert arch.input_pixels == s * s and arch.flatten_pixels == (s // 4) ** 2
    assert arch.M == 4.0  # Theorem 2: sqrt(|I0| / |I_Lf|) with two 2x2 poolings
    assert arch.has_kernel
    out = arch.network(width=4, seed=0)(torch.rand(2, arch.n, dtype=torch.float64))
    assert out.shape == (2, 1)


def test_even_patch_on_tiny_grid_matches_monte_carlo():
    # the last stacks of small images use the whole grid as the patch (2x2 on a 2x2 grid):
    # analytic kernel vs the empirical second moment of 400 independent width-256 networks, each
    # averaged over its 64 output units (iid given the network); standard errors across networks.
    arch = Architecture(serial(Conv(8, 2), ReLU(), Conv(8, 2), ReLU(), Flatten(64)), input_shape=(2, 2, 2))
    x = torch.randn(2, arch.n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    K = arch.kernel(x, sigma_w2=1.5, sigma_b2=0.1)
    outs = []
    with torch.no_grad():
        for seed in range(400):
            outs.append(arch.network(width=256, sigma_w2=1.5, sigma_b2=0.1, seed=seed)(x))
    o = torch.stack(outs)  # (networks, points, outputs)
    for i, j in [(0, 0), (0, 1), (1, 1)]:
        prod = (o[:, i] * o[:, j]).mean(-1)
        se = prod.std() / len(prod) ** 0.5
        # 5 standard errors of the sample mean, plus the O(1/width) finite-width bias (~1/256)
        assert abs(prod.mean() - K[i, j]) < 5 * se + 2e-2 * K[i, i].sqrt() * K[j, j].sqrt(), (i, j)
    # the test can fail: a kernel 30 % off is outside the tolerance
    prod = (o[:, 0] * o[:, 0]).mean(-1)
    assert abs(prod.mean() - 1.3 * K[0, 0]) > 5 * prod.std() / 20 + 2e-2 * K[0, 0]
