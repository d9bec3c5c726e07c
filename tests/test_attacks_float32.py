"""Float32 attacks: every reported success flips the label in a fresh one-point forward pass.

Before the flip margins scaled with the dtype (fixed 1e-10 |f(x0)| in float32, whose eps is
1.2e-7) and before each returned point was re-verified alone, 9-26 of 40 "verified" points of
these networks kept their label when evaluated alone.
"""
import math

import pytest
import torch

from gpbound.attacks import NetworkEnsemble, minimal_distance, verify
from gpbound.kernels.presets import get_preset

NORMS = [1, 2, math.inf]
ARCH = get_preset("resnet", image_size=4)   # n = 48, a residual ReLU convnet (theory preset)
SEEDS = (0, 1, 2, 3)
POINTS = 10                                  # 4 networks x 10 points = 40 points


def _net(seed, dtype=torch.float32):
    net = ARCH.network(width=8, dtype=dtype, seed=seed)
    net.requires_grad_(False)
    return net


def _points(seed, dtype=torch.float32):
    return torch.randn(POINTS, ARCH.n, generator=torch.Generator().manual_seed(100 + seed), dtype=dtype)


def _alone(net, x):
    """Fresh forward pass of every row as a batch of one."""
    with torch.no_grad():
        return torch.stack([net(x[i:i + 1]).reshape(-1)[0] for i in range(x.shape[0])])


@pytest.mark.parametrize("norm", NORMS)
def test_float32_success_flips_alone(norm):
    succ = not_flipped = 0
    for seed in SEEDS:
        net, x0 = _net(seed), _points(seed)
        res = minimal_distance(net, x0, norm, steps=20, dtype=torch.float32)
        assert res.x_adv.dtype == torch.float32
        ok = res.success
        y0, ya = _alone(net, x0), _alone(net, res.x_adv)
        succ += int(ok.sum())
        not_flipped += int((ok & ~(y0 * ya < 0)).sum())
        assert bool(torch.isinf(res.distance[~ok]).all())
    assert succ >= 25, succ                  # the check below is not vacuous
    assert not_flipped == 0, f"{not_flipped} of {succ} successes keep their label when evaluated alone"


@pytest.mark.parametrize("norm", NORMS)
def test_float32_ensemble_success_flips_alone(norm):
    # the vmapped ensemble computes differently from each network alone: successes must flip there too
    nets = [_net(s) for s in SEEDS]
    ens = NetworkEnsemble(nets, points_per_network=POINTS)
    x0 = torch.cat([_points(s) for s in SEEDS])
    res = minimal_distance(ens, x0, norm, steps=20)          # dtype follows the ensemble: float32
    assert res.x_adv.dtype == torch.float32
    ok = res.success
    y0 = torch.cat([_alone(nets[k], x0[k * POINTS:(k + 1) * POINTS]) for k in range(len(nets))])
    ya = torch.cat([_alone(nets[k], res.x_adv[k * POINTS:(k + 1) * POINTS]) for k in range(len(nets))])
    assert int(ok.sum()) >= 25
    assert int((ok & ~(y0 * ya < 0)).sum()) == 0


def test_dtype_follows_model_or_clear_error():
    net = _net(0)
    x0 = _points(0, torch.float64)                           # float64 points, float32 network
    res = minimal_distance(net, x0, 2, steps=5)              # dtype=None: the model's float32
    assert res.x_adv.dtype == torch.float32 and bool(res.success.any())
    with pytest.raises(TypeError, match=r"dtype=torch.float64 does not match .*pass dtype=torch.float32"):
        minimal_distance(net, x0, 2, steps=5, dtype=torch.float64)
    with pytest.raises(TypeError, match="dtype"):
        minimal_distance(net, x0, 2, steps=5, dtype="float32")


def test_margin_scales_with_dtype():
    from gpbound.attacks.verify import flip_margin

    y = torch.tensor([2.0, -0.5])
    for dt in (torch.float32, torch.float64):
        m = flip_margin(y.to(dt))
        rel = (m / y.abs().to(dt))
        assert torch.allclose(rel, torch.full_like(rel, 256 * torch.finfo(dt).eps))
        assert bool((flip_margin(y.to(dt), candidate=True) > m).all())
    # the coarser of the input and output dtypes sets the precision
    assert torch.allclose(flip_margin(y.double(), torch.float32), flip_margin(y.float()).double())


def test_point_that_does_not_flip_alone_is_no_success():
    # f differs between a batch of one and a larger batch (as rounding does, exaggerated): the
    # bisected points flip in the batch but not alone, so verify must not report them
    def f(x):
        return x[:, 0] + (0.5 if x.shape[0] == 1 else 0.0)

    x0 = torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    x_adv = torch.tensor([[-1.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)
    xb, dist, ok = verify(f, x0, x_adv, 2)
    assert not bool(ok.any())
    assert bool(torch.isinf(dist).all()) and torch.equal(xb, x0)
    # the same candidates are successes for a function that does not depend on the batch
    xb, dist, ok = verify(lambda x: x[:, 0], x0, x_adv, 2)
    assert bool(ok.all()) and torch.allclose(dist, x0[:, 0], rtol=1e-12)


def test_function_without_batch_of_one_is_a_clear_error():
    # parameters per row: f takes exactly B rows, so its points cannot be re-verified alone
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    f = lambda x: (x * w).sum(-1)  # noqa: E731
    x0 = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch of one row.*evaluate_alone.*reverify_alone=False"):
        minimal_distance(f, x0, 2, steps=5)
    res = minimal_distance(f, x0, 2, steps=5, reverify_alone=False)
    assert bool(res.success.all()) and torch.allclose(res.distance, torch.ones(2, dtype=torch.float64))
