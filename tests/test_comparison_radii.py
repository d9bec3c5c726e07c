"""Sudakov-Fernique (comparison) radii, Gaussian widths and feature-map Lipschitz constants (issue 9).

Oracles: mpmath quadrature and gamma functions at 30 digits (not scipy, which the library uses),
closed forms written here from the formulas, Monte Carlo of the linear kernel's exact crossing
events (tolerance from the sample size: Clopper-Pearson at 1 - 1e-4), and finite differences of
the NNGP kernel for the Lipschitz constants.
"""
import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import stats

from gpbound import radii
from gpbound.gaussian_width import gaussian_width, unit_l2_radius
from gpbound.lipschitz import feature_lipschitz

DT = torch.float64
mpmath.mp.dps = 30


def _e_inf_mp(n):
    """E max_i |g_i| by mpmath quadrature of the tail integral."""
    f = lambda t: 1 - mpmath.erf(t / mpmath.sqrt(2)) ** n  # noqa: E731
    return float(mpmath.quad(f, [0, 1, 2, 3, 4, 6, 10, 40]))


def _e_2_mp(n):
    return float(mpmath.sqrt(2) * mpmath.gamma(mpmath.mpf(n + 1) / 2) / mpmath.gamma(mpmath.mpf(n) / 2))


# ----------------------------------------------------------------------------- Gaussian widths
@pytest.mark.parametrize("n", [1, 2, 5, 48, 432, 3072, 10800])
def test_width_l1_ball_is_a_tight_upper_bound_of_the_expected_max(n):
    exact = _e_inf_mp(n)
    e = gaussian_width(1, n)
    # an upper bound, overestimating by at most the stated 1e-4 (grid step) plus round-off
    assert exact <= e <= exact + 1e-4 + 1e-12


@pytest.mark.parametrize("n", [1, 2, 3, 48, 432, 3072, 10800, 12345, 10 ** 6])
def test_width_l2_and_linf_balls_closed_forms(n):
    e2 = gaussian_width(2, n)
    assert _e_2_mp(n) <= e2 <= _e_2_mp(n) * (1 + 1e-9)
    e1 = gaussian_width(math.inf, n)
    exact = n * float(mpmath.sqrt(2 / mpmath.pi))
    assert exact <= e1 <= exact * (1 + 1e-11)
    assert gaussian_width("segment", n) == pytest.approx(1 / math.sqrt(2 * math.pi), rel=1e-11)
    assert gaussian_width("segment", n) >= float(1 / mpmath.sqrt(2 * mpmath.pi))


@pytest.mark.parametrize("p", [1.25, 1.5, 3.0, 4.0, 10.0])
def test_width_general_p_upper_bounds_the_monte_carlo_mean(p):
    n = 64
    q = p / (p - 1)
    g = np.random.default_rng(7).standard_normal((200000, n))
    vals = np.linalg.norm(g, ord=q, axis=1)
    hi = vals.mean() - 4.5 * vals.std() / math.sqrt(len(vals))  # one-sided, P(false alarm) ~ 3e-6
    assert gaussian_width(p, n) >= hi
    # and it is the smallest of the proved bounds: Jensen, n^(1/q) E||g||_inf, and the l2 comparison
    jensen = (n * 2 ** (q / 2) * float(mpmath.gamma((q + 1) / 2)) / math.sqrt(math.pi)) ** (1 / q)
    other = [jensen, n ** (1 / q) * _e_inf_mp(n), n ** max(0.0, 1 / q - 0.5) * _e_2_mp(n)]
    assert gaussian_width(p, n) == pytest.approx(min(other), rel=1e-4)


@pytest.mark.parametrize("p,n,s", [(1, 50, 1.0), (2, 50, 1.0), (1.5, 50, 1.0), (4, 16, 2.0), (math.inf, 36, 6.0)])
def test_unit_l2_radius(p, n, s):
    assert unit_l2_radius(p, n) == pytest.approx(s, rel=1e-14)


# ----------------------------------------------------------------------------- radii: closed forms
def _closed_radius(x0n, delta, M, e, s):
    return x0n / M * delta / (math.sqrt(2 / math.pi) * e + s * (1 + delta))


@pytest.mark.parametrize("n", [48, 432, 3072])
@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_comparison_radius_matches_closed_forms(n, delta):
    x0n, M = math.sqrt(n / 3), 4.0
    assert radii.comparison_radius(x0n, delta, n, M, p=1) == pytest.approx(
        _closed_radius(x0n, delta, M, _e_inf_mp(n), 1.0), rel=5e-5)
    assert radii.comparison_radius(x0n, delta, n, M, p=2) == pytest.approx(
        _closed_radius(x0n, delta, M, _e_2_mp(n), 1.0), rel=1e-9)
    assert radii.comparison_radius(x0n, delta, n, M, p=math.inf) == pytest.approx(
        _closed_radius(x0n, delta, M, n * math.sqrt(2 / math.pi), math.sqrt(n)), rel=1e-9)
    assert radii.comparison_segment_radius(x0n, delta, M) == pytest.approx(
        x0n / M * delta / (1 / math.pi + 1 + delta), rel=1e-9)
    # a certified radius is never larger than the exact-width one (widths are upper bounds)
    assert radii.comparison_radius(x0n, delta, n, M, p=1) <= _closed_radius(x0n, delta, M, _e_inf_mp(n), 1.0)


def test_radius_table_values_at_paper_sizes():
    """The radius table quoted in the docs (M = 4, ||x0|| = sqrt(n/3)), recomputed from the closed forms."""
    for n in (48, 432, 3072, 10800):
        x0n = math.sqrt(n / 3)
        r2 = radii.comparison_radius(x0n, 0.5, n, 4.0, p=2)
        # the l2 radius does not shrink with n: ||x0|| ~ sqrt(n/3), E||g||_2 ~ sqrt(n)
        assert 0.07 < r2 < 0.09


@settings(max_examples=300)
@given(n=st.integers(1, 200000), delta=st.floats(1e-6, 1 - 1e-6),
       p=st.sampled_from([1, 1.1, 1.5, 2, 2.5, 3, 5, 10, math.inf]), M=st.floats(1.0, 50.0))
def test_comparison_is_never_below_dudley(n, delta, p, M):
    x0n = 3.0
    c = radii.comparison_radius(x0n, delta, n, M, p=p)
    d = radii.lp_radius(p, x0n, delta, M, n=n, method="dudley")
    assert c >= d * (1 - 1e-12)
    cs = radii.comparison_segment_radius(x0n, delta, M)
    assert cs >= radii.segment_radius(x0n, delta, M) * (1 - 1e-12)


@settings(max_examples=200)
@given(n=st.integers(1, 50000), delta=st.floats(1e-4, 0.999), p=st.sampled_from([1, 1.5, 2, 4, math.inf]),
       x0n=st.floats(1e-3, 1e3), M=st.floats(1.0, 10.0))
def test_radius_and_inverse_round_trip(n, delta, p, x0n, M):
    r = radii.comparison_radius(x0n, delta, n, M, p=p)
    assert radii.comparison_failure_probability(r, x0n, n, M, p=p) == pytest.approx(delta, rel=1e-9)
    rs = radii.comparison_segment_radius(x0n, delta, M)
    assert radii.comparison_segment_failure_probability(rs, x0n, M) == pytest.approx(delta, rel=1e-9)
    ri = radii.instance_radius(x0n, M, delta, n, p=p)
    assert ri == pytest.approx(r, rel=1e-12)  # sqrt(K00) = ||x0||, L = M: the same ratio ||x0||/M
    assert radii.instance_failure_probability(ri, x0n, M, n, p=p) == pytest.approx(delta, rel=1e-9)


def test_failure_probability_is_vacuous_beyond_the_kr_limit():
    n = 100
    # ||x0||/(M r) <= s: K_r may be <= 0, bound 1
    assert radii.comparison_failure_probability(10.0, 10.0, n, 1.0, p=1) == 1.0
    assert radii.comparison_failure_probability(1.0, 10.0, n, 1.0, p=math.inf) == 1.0  # s = 10
    assert radii.comparison_failure_probability(1e-3, 10.0, n, 1.0, p=1) < 1e-3


def test_broadcasting_and_tensors():
    x = torch.rand(4, 48, dtype=DT).norm(dim=1)
    d = torch.tensor([0.01, 0.1, 0.5], dtype=DT)
    r = radii.comparison_radius(x[:, None], d[None, :], 48, 2.0, p=2)
    assert isinstance(r, torch.Tensor) and r.shape == (4, 3) and r.dtype == DT
    rn = radii.comparison_radius(3.0, 0.1, np.array([48, 432]), 2.0, p=1)
    assert rn.shape == (2,) and rn[0] > rn[1]


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, float("nan")])
def test_bad_delta_is_a_value_error_naming_it(bad):
    with pytest.raises(ValueError, match="delta"):
        radii.comparison_radius(1.0, bad, 10, 1.0)


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="p must"):
        radii.comparison_radius(1.0, 0.1, 10, 1.0, p=0.5)
    with pytest.raises(ValueError, match="M must"):
        radii.comparison_radius(1.0, 0.1, 10, 0.5)
    with pytest.raises(ValueError, match="method must"):
        radii.lp_radius(2, 1.0, 0.1, 1.0, n=4, method="sudakov")
    with pytest.raises(ValueError, match="x0_norm"):
        radii.comparison_segment_radius(-1.0, 0.1, 1.0)
    with pytest.raises(ValueError, match="L must"):
        radii.instance_radius(1.0, 0.0, 0.1, 4)


# ----------------------------------------------------------------------------- the linear kernel: exact events
@pytest.mark.parametrize("p", [1, 2, math.inf, "segment"])
def test_linear_kernel_exact_crossing_frequency_is_below_the_bound(p):
    """K(x, y) = x.y (C = M = 1): phi(x) = <g, x>; the ball x0 + rU holds a zero iff
    |<g, x0>| <= r sup_U <g, h> = r ||g||_q (balls) or the segment's endpoints differ in sign."""
    n, N = 30, 200000
    gen = np.random.default_rng(11)
    x0 = gen.uniform(0, 1, n)
    x0n = float(np.linalg.norm(x0))
    g = gen.standard_normal((N, n))
    a = g @ x0
    if p == "segment":
        v = gen.standard_normal(n)
        v -= v @ x0 / (x0 @ x0) * x0
        v /= np.linalg.norm(v)
        b = g @ v
        r = radii.comparison_segment_radius(x0n, 0.5, 1.0)
        rs = [r, 3 * r]
        hits = [int(np.sum(np.sign(a) != np.sign(a + t * b))) for t in rs]
        bounds = [radii.comparison_segment_failure_probability(t, x0n, 1.0) for t in rs]
    else:
        q = {1: math.inf, 2: 2, math.inf: 1}[p]
        w = np.linalg.norm(g, ord=q, axis=1)
        r = radii.comparison_radius(x0n, 0.5, n, 1.0, p=p)
        rs = [r, 0.3 * r]
        hits = [int(np.sum(np.abs(a) <= t * w)) for t in rs]
        bounds = [radii.comparison_failure_probability(t, x0n, n, 1.0, p=p) for t in rs]
    for k, b in zip(hits, bounds):
        lo = stats.binomtest(k, N).proportion_ci(1 - 1e-4).low
        assert lo <= b
        # and the bound is not vacuous here: within a factor 10 of the exact frequency
        assert k / N >= b / 10


def test_linear_kernel_sudakov_fernique_is_tight_for_the_l1_ball():
    """E sup over the l1 ball of Y = <g, x - x0> is E||g||_inf exactly: the comparison step loses nothing."""
    n, N = 64, 400000
    g = np.random.default_rng(3).standard_normal((N, n))
    m = np.abs(g).max(axis=1)
    se = m.std() / math.sqrt(N)
    assert abs(gaussian_width(1, n) - m.mean()) <= 4.5 * se + 1e-4


# ----------------------------------------------------------------------------- Lipschitz constants
def test_relu_halves_squared_increments_by_quadrature():
    """E(relu(u) - relu(v))^2 <= E(u - v)^2 / 2 for centred Gaussians (the ReLU factor 1/2), by mpmath."""
    def lhs(kx, ky, c):
        kxy = c * math.sqrt(kx * ky)
        th = math.acos(c)
        F = math.sqrt(kx * ky) / (2 * math.pi) * (math.sin(th) + (math.pi - th) * c)
        return kx / 2 + ky / 2 - 2 * F, kx + ky - 2 * kxy

    worst = 0.0
    for kx, ky in ((1.0, 1.0), (1.0, 4.0), (0.3, 2.0)):
        for c in np.linspace(-0.999, 0.9999, 60):
            a, b = lhs(kx, ky, float(c))
            worst = max(worst, a / b)
            assert a <= 0.5 * b * (1 + 1e-12)
    assert worst > 0.49  # sharp: approached as the correlation tends to 1


def _arch_zoo():
    from gpbound.kernels import Architecture, AvgPool, Conv, Dense, Flatten, ReLU, Residual, serial
    from gpbound.kernels.presets import get_preset

    return [
        get_preset("dense", image_size=3, width=8),
        get_preset("cnn", image_size=4, channels=4, depth=2),
        get_preset("resnet", image_size=4),
        Architecture(serial(Conv(4, 3), ReLU(), AvgPool(2), Conv(4, 1), ReLU(), Flatten(4), ReLU(), Dense(1)),
                     input_shape=(2, 4, 4)),
        Architecture(serial(Dense(8), Residual(serial(ReLU(), Dense(8))), ReLU(), Dense(1)), input_shape=(6,)),
    ]


@pytest.mark.parametrize("k", range(5))
@pytest.mark.parametrize("sw2,sb2", [(2.0, 0.0), (1.3, 0.4)])
def test_feature_lipschitz_bounds_the_measured_ratio(k, sw2, sb2):
    arch = _arch_zoo()[k]
    L = feature_lipschitz(arch, sw2)
    gen = torch.Generator().manual_seed(k)
    X = torch.rand(128, arch.n, generator=gen, dtype=DT) * 2 - 0.5
    V = torch.randn(128, arch.n, generator=gen, dtype=DT)
    V = V / V.norm(dim=1, keepdim=True)
    worst = 0.0
    for eps in (1e-4, 1e-2, 1.0, 30.0):
        Y = X + eps * V
        kxx = arch.kernel(X, diag=True, sigma_w2=sw2, sigma_b2=sb2)
        kyy = arch.kernel(Y, diag=True, sigma_w2=sw2, sigma_b2=sb2)
        kxy = arch.kernel(X, Y, diag=True, sigma_w2=sw2, sigma_b2=sb2)
        d = (kxx - 2 * kxy + kyy).clamp_min(0).sqrt()
        worst = max(worst, float((d / eps).max()))
    assert worst <= L * (1 + 1e-6)
    assert worst >= 0.3 * L  # and not absurdly loose


def test_feature_lipschitz_is_exact_for_a_dense_net_at_close_pairs():
    arch = _arch_zoo()[0]
    L = feature_lipschitz(arch, 2.0)
    x = torch.rand(1, arch.n, dtype=DT, generator=torch.Generator().manual_seed(2))
    # along x itself (a ray through 0 is where ReLU increments are halved exactly)
    y = x * (1 + 1e-5)
    d2 = arch.kernel(x, diag=True) - 2 * arch.kernel(x, y, diag=True) + arch.kernel(y, diag=True)
    assert float(d2.sqrt()) / float((x - y).norm()) == pytest.approx(L, rel=1e-3)


def test_feature_lipschitz_closed_form_and_errors():
    from gpbound.kernels import Architecture, Dense, Flatten, ReLU, Residual, serial

    arch = Architecture(serial(Flatten(8), Residual(serial(ReLU(), Dense(8))), ReLU(), Dense(1)), input_shape=(5,))
    # sw2 (1 + sw2/2) / 2 * sw2 / n
    assert feature_lipschitz(arch, 3.0) == pytest.approx(math.sqrt(3.0 * (1 + 1.5) * 0.5 * 3.0 / 5), rel=1e-14)
    with pytest.raises(TypeError, match="arch"):
        feature_lipschitz("resnet")
    with pytest.raises(ValueError, match="sigma_w2"):
        feature_lipschitz(arch, -1.0)


# ----------------------------------------------------------------------------- Corollary 1 with the new default
def test_corollary1_default_is_comparison_and_carries_every_radius():
    from gpbound.kernels.presets import get_preset

    arch = get_preset("resnet", image_size=8)
    x0 = torch.rand(3, arch.n, dtype=DT, generator=torch.Generator().manual_seed(0))
    res = radii.corollary1(arch, x0, 0.1)
    dud = radii.corollary1(arch, x0, 0.1, method="dudley")
    assert res.method == "comparison" and dud.method == "dudley"
    for key in ("l1", "l2", "linf", "segment"):
        assert key in res.methods and key in dud.methods
        assert bool((getattr(res, key) >= getattr(dud, key)).all())
    x0n = x0.norm(dim=1)
    assert torch.allclose(res.l2, torch.as_tensor(_closed_radius_t(x0n, 0.1, arch.M, _e_2_mp(arch.n), 1.0)),
                          rtol=1e-9)
    inst = radii.corollary1(arch, x0, 0.1, instance=True)
    L = feature_lipschitz(arch, 2.0)
    k00 = arch.kernel(x0, diag=True).sqrt()
    ri = k00 / L * 0.1 / (math.sqrt(2 / math.pi) * _e_2_mp(arch.n) + 1.1)
    assert torch.allclose(inst.l2, torch.maximum(ri, res.l2), rtol=1e-9)
    assert bool((inst.l2 > 2 * res.l2).all())  # uniform images: sqrt(K00) far above C ||x0||
    with pytest.raises(ValueError, match="instance"):
        radii.corollary1(arch, 3.0, 0.1, instance=True)
    with pytest.raises(ValueError, match="method"):
        radii.corollary1(arch, x0, 0.1, method="dudley", instance=True)


def _closed_radius_t(x0n, delta, M, e, s):
    return x0n / M * delta / (math.sqrt(2 / math.pi) * e + s * (1 + delta))


# ----------------------------------------------------------------------------- eq. (32) integrated exactly
def _eq32_quadrature(rho, e, s):
    """2 int_0^inf phi(z) min(1, exp(-(z - a)_+^2 / (2 b^2))) dz by mpmath (the integral the closed form evaluates)."""
    den = 1 - rho * s
    a, b = mpmath.mpf(rho * e / den), mpmath.mpf(rho * s / den)
    phi = lambda z: mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
    return float(2 * (mpmath.quad(phi, [0, a]) + mpmath.quad(lambda z: phi(z) * mpmath.exp(-(z - a) ** 2 / (2 * b * b)),
                                                            [a, a + 10 * b, mpmath.inf])))


@pytest.mark.parametrize("n,p", [(48, 2), (432, 1), (3072, math.inf)])
@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_exact_eq32_radius_solves_the_integral_and_is_larger(n, p, delta):
    x0n, M = 4.0, 4.0
    rb = radii.comparison_radius(x0n, delta, n, M, p=p)
    rx = radii.comparison_radius(x0n, delta, n, M, p=p, eq32="exact")
    assert rx >= rb
    if delta == 0.5:
        assert rx / rb > 1.05  # the ~7 % gain at delta = 0.5
    e, s = gaussian_width(p, n), unit_l2_radius(p, n)
    assert _eq32_quadrature(M * rx / x0n, e, s) == pytest.approx(delta, rel=1e-9)
    assert _eq32_quadrature(M * rx / x0n, e, s) <= delta
    assert radii.comparison_failure_probability(rx, x0n, n, M, p=p, eq32="exact") == pytest.approx(delta, rel=1e-9)
    # the piecewise bound is never below the exact integral
    assert radii.comparison_failure_probability(rb, x0n, n, M, p=p, eq32="exact") <= delta * (1 + 1e-12)


def test_exact_eq32_in_corollary1_and_errors():
    from types import SimpleNamespace

    arch = SimpleNamespace(n=3072, input_pixels=1024, flatten_pixels=64)
    a = radii.corollary1(arch, 32.0, 0.5)
    b = radii.corollary1(arch, 32.0, 0.5, eq32="exact")
    for k in ("l1", "l2", "linf", "segment"):
        assert getattr(b, k) > getattr(a, k)
    with pytest.raises(ValueError, match="eq32"):
        radii.comparison_radius(1.0, 0.1, 4, 1.0, eq32="closed")
    with pytest.raises(ValueError, match="eq32"):
        radii.corollary1(arch, 32.0, 0.5, method="dudley", eq32="exact")
