"""Tests of gpbound.crossing: Clopper-Pearson values, crossing frequencies vs exact oracles
and vs the certified radii of Corollary 1."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

from gpbound.crossing import clopper_pearson, crossing_frequency


def test_clopper_pearson_known_values():
    a = 0.05
    for n in (1, 7, 50):
        lo, hi = clopper_pearson(0, n)
        assert lo == 0.0 and abs(hi - (1 - (a / 2) ** (1 / n))) < 1e-12
        lo, hi = clopper_pearson(n, n)
        assert hi == 1.0 and abs(lo - (a / 2) ** (1 / n)) < 1e-12
    # textbook value for 5/10 at 95 %: (0.187086, 0.812914)
    lo, hi = clopper_pearson(5, 10)
    assert abs(lo - 0.187086) < 1e-6 and abs(hi - 0.812914) < 1e-6
    # symmetry lo(k, n) = 1 - hi(n - k, n); tail definition: P(Bin(n, hi) <= k) = alpha/2
    lo, hi = clopper_pearson(np.array([3, 4]), np.array([20, 20]), level=0.9)
    lo2, hi2 = clopper_pearson(np.array([17, 16]), np.array([20, 20]), level=0.9)
    assert np.allclose(lo, 1 - hi2) and np.allclose(hi, 1 - lo2)
    assert np.allclose(stats.binom.cdf([3, 4], 20, hi), 0.05)
    assert np.allclose(stats.binom.sf([2, 3], 20, lo), 0.05)


def _linear_kernel(X1, X2):
    return X1 @ X2.T


def test_segment_crossing_linear_kernel_exact():
    # phi(x) = <g, x>, g ~ N(0, I): the segment [x0, x0 + r v] crosses iff the end points have
    # different signs, probability = angle(x0, x0 + r v)/pi = (pi/4)/pi = 1/4 here.
    x0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    v = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rank-2 kernel matrix needs jitter escalation
        res = crossing_frequency(_linear_kernel, x0, 1.0, mode="segment", num_trials=2000,
                                 num_points=16, v=v, seed=0, level=0.999)
    assert res.ci[0] < 0.25 < res.ci[1]
    assert res.trials == 2000 and res.frequency == res.count / 2000


def _p_ball_linear(x0, r, m=400_000, seed=5):
    """P(|<g, x0>| <= r max_i |g_i|), g ~ N(0, I): the l1 ball crosses the hyperplane <g, x> = 0."""
    g = np.random.default_rng(seed).standard_normal((m, x0.size))
    return float(np.mean(np.abs(g @ x0) <= r * np.abs(g).max(1)))


def test_ball_crossing_linear_kernel_and_linear_network():
    from gpbound import kernels
    x0n = np.array([1.0, -0.5, 0.25, 2.0])
    x0 = torch.tensor(x0n, dtype=torch.float64)
    r = 0.8
    p = _p_ball_linear(x0n, r)  # numpy Monte Carlo oracle, s.e. < 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = crossing_frequency(_linear_kernel, x0, r, num_trials=1500, num_points=64, seed=1,
                                 level=0.999)
    # the point set contains the 2n vertices, where a linear path attains its extremes: exact
    assert res.ci[0] < p < res.ci[1]
    # a network with a single Dense(1) layer is linear without bias: crossing iff its verified
    # minimal l1 attack distance |w.x0|/||w||_inf <= r
    arch = kernels.Architecture(kernels.serial(kernels.Dense(1)), input_shape=(4,))
    res = crossing_frequency(arch, x0, r, num_trials=300, seed=2, steps=10, level=0.999)
    assert res.ci[0] < p < res.ci[1]
    assert res.method == "network-attack-l1" and res.distances.shape == (300,)


def _archs():
    from gpbound import kernels
    dense = kernels.Architecture(kernels.serial(kernels.Dense(32), kernels.ReLU(), kernels.Dense(32),
                                                kernels.ReLU(), kernels.Dense(1)), input_shape=(12,))
    conv = kernels.Architecture(kernels.serial(kernels.Conv(4, 3), kernels.ReLU(), kernels.AvgPool(2),
                                               kernels.Conv(4, 3), kernels.ReLU(), kernels.Flatten(1)),
                                input_shape=(3, 6, 6))
    return {"dense": dense, "conv": conv}


@pytest.mark.parametrize("name", ["dense", "conv"])
@pytest.mark.parametrize("delta", [0.1, 0.5])
@pytest.mark.parametrize("bound", ["comparison", "dudley"])
def test_certified_radius_holds(name, delta, bound):
    # Corollary 1: at r(delta) the crossing probability is <= delta.  The measured frequency (a
    # lower estimate) must not contradict it: CP lower end < delta.  Seeded, 12 networks.  The
    # reported delta is the chosen certificate's inverse map at r (comparison: gpbound's default).
    from gpbound import radii

    arch = _archs()[name]
    x0 = torch.rand(arch.n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x0n = float(x0.norm())
    if bound == "comparison":
        r = float(radii.comparison_radius(x0n, delta, arch.n, arch.M, p=1))
        rs = float(radii.comparison_segment_radius(x0n, delta, arch.M))
        res = crossing_frequency(arch, x0, r, num_trials=12, seed=4, steps=10)  # the default bound
    else:
        r = float(radii.l1_ball_radius(x0n, delta, arch.n, arch.M))
        rs = float(radii.segment_radius(x0n, delta, arch.M))
        res = crossing_frequency(arch, x0, r, num_trials=12, seed=4, steps=10, bound="dudley")
    assert abs(res.delta - delta) < 1e-6 * delta  # the inverse map inverts the radius
    assert res.ci[0] < delta and res.frequency <= delta
    # the attack distances' delta-quantile is an upper estimate of the true one, which the
    # theorem puts above r(delta): looseness >= 1 expected
    assert res.looseness >= 1.0
    seg = crossing_frequency(arch, x0, rs, mode="segment", num_trials=200, num_points=64, seed=5, bound=bound)
    assert seg.ci[0] < delta and abs(seg.delta - delta) < 1e-6 * delta


def test_bad_input():
    x0 = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="mode"):
        crossing_frequency(_linear_kernel, x0, 1.0, mode="cube")
    with pytest.raises(ValueError, match="bound"):
        crossing_frequency(_linear_kernel, x0, 1.0, bound="paper")
    with pytest.raises(ValueError, match="r must"):
        crossing_frequency(_linear_kernel, x0, 0.0)
    with pytest.raises(ValueError, match="num_trials"):
        crossing_frequency(_linear_kernel, x0, 1.0, num_trials=0)
    with pytest.raises(ValueError, match="x0 must be finite"):
        crossing_frequency(_linear_kernel, torch.tensor([math.nan, 1.0]), 1.0)
    with pytest.raises(ValueError, match="non-zero"):
        crossing_frequency(_linear_kernel, torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="level"):
        clopper_pearson(1, 10, level=1.5)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        clopper_pearson(11, 10)
    with pytest.raises(TypeError, match="integers"):
        clopper_pearson(0.5, 10)
