"""Certified radii (gpbound.radii): Theorem 1 (eq. 39-40, 10, 12), Corollary 1, Remark 5.

Oracles: eq. (39)/(40) solved by hand; exact crossing probabilities of two Gaussian processes
whose zero sets are known -- the linear kernel (a random hyperplane through 0) and the planar
"rotation" kernel K(x, y) = |x||y| cos(m (alpha_x - alpha_y)) (2m zero rays at a uniform
random phase) -- and the geometry of lp balls.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import stats

from gpbound.constants import estimate_constants
from gpbound.covering import entropy_integral
from gpbound.radii import (
    corollary1,
    failure_probability,
    l1_ball_radius,
    l1_ball_radius_eq10,
    lp_radius,
    relative_lp_radius,
    segment_failure_probability,
    segment_radius,
)

DT = torch.float64


# ----------------------------------------------------------------------------- eq. (39)-(40)
@settings(max_examples=60, deadline=None)
@given(
    x0=st.floats(1e-3, 1e4),
    delta=st.floats(1e-6, 0.999),
    logn=st.floats(0, 9),
    M=st.floats(1.0, 50.0),
    entropy=st.sampled_from(["numeric", "closed", "paper", "maurey"]),
)
def test_tight_radius_solves_eq40(x0, delta, logn, M, entropy):
    n = max(1, int(10 ** (logn if entropy != "maurey" else logn * 5 / 9)))  # maurey: n <= 1e5 keeps it fast
    r = l1_ball_radius(x0, delta, n, M, entropy=entropy)
    assert failure_probability(r, x0, n, M, entropy=entropy) == pytest.approx(delta, rel=1e-12)
    # hand-written eq. (40): M r / |x0| = delta / (16 a / sqrt(pi) + 1 + delta)
    a = entropy_integral(n, method=entropy)
    assert M * r / x0 == pytest.approx(delta / (16 * a / math.sqrt(math.pi) + 1 + delta), rel=1e-13)


def test_radii_monotone_and_homogeneous():
    d = np.linspace(0.01, 0.99, 50)
    for fn in (lambda dd: l1_ball_radius(5.0, dd, 300, 2.0), lambda dd: segment_radius(5.0, dd, 2.0),
               lambda dd: l1_ball_radius_eq10(5.0, dd, 300, 2.0), lambda dd: segment_radius(5.0, dd, 2.0, form="eq12")):
        assert np.all(np.diff(fn(d)) > 0)
    assert l1_ball_radius(10.0, 0.1, 300, 2.0) == pytest.approx(2 * l1_ball_radius(5.0, 0.1, 300, 2.0), rel=1e-14)
    assert l1_ball_radius(5.0, 0.1, 300, 4.0) == pytest.approx(l1_ball_radius(5.0, 0.1, 300, 2.0) / 2, rel=1e-14)
    n = np.array([10, 100, 1000, 10**4])
    assert np.all(np.diff(l1_ball_radius(5.0, 0.1, n, 2.0)) < 0)


def test_failure_probability_vacuous_region():
    assert failure_probability(1.0, 4.0, 10, 4.0) == 1.0  # M r = |x0|
    assert failure_probability(2.0, 4.0, 10, 4.0) == 1.0  # M r > |x0|
    p = failure_probability(np.array([1e-6, 1e-3, 0.5]), 4.0, 10, 4.0)
    assert p[0] < p[1] < 1.0 and p[2] == 1.0
    # the bound is never < 0 and is increasing in r
    r = np.logspace(-8, 1, 40)
    p = failure_probability(r, 4.0, 10, 4.0)
    assert np.all(p > 0) and np.all(np.diff(p) >= 0)


def test_eq10_relations():
    """eq. (10) = eq. (40) with the paper's a_n and 1 + delta -> 2, hence smaller than the tight form with a_n;
    documented finding: for small n it is LARGER than the certified (numeric-entropy) radius."""
    d = np.array([0.01, 0.1, 0.5, 0.9])
    for n in (2, 48, 3072, 10**6):
        assert np.all(l1_ball_radius_eq10(1.0, d, n, 3.0) < l1_ball_radius(1.0, d, n, 3.0, entropy="paper"))
    assert np.all(l1_ball_radius_eq10(1.0, d, 2, 3.0) > l1_ball_radius(1.0, d, 2, 3.0, entropy="numeric"))
    # and the printed radius has a failure bound above delta at n = 2 (not certified by the proof)
    assert np.all(failure_probability(l1_ball_radius_eq10(1.0, d, 2, 3.0), 1.0, 2, 3.0) > d)


def test_segment_forms():
    d = np.linspace(0.01, 0.99, 20)
    for M in (1.0, 1.5, 4.0, 30.0):
        der = segment_radius(3.0, d, M)
        assert np.all(der <= segment_radius(3.0, d, M, form="eq12"))  # M (1 + delta) >= 1
        assert np.allclose(segment_failure_probability(der, 3.0, M), d, rtol=1e-12)
        assert np.allclose(der, 3.0 * d / (M * (1 + 2 / math.pi + d)), rtol=1e-14)
    # the segment is certified much longer than the ball (no Dudley term)
    assert segment_radius(3.0, 0.1, 2.0) > 10 * l1_ball_radius(3.0, 0.1, 48, 2.0)


# ----------------------------------------------------------------------------- exact oracles
def _rotation_kernel(m):
    def k(a, b):
        na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
        aa = torch.atan2(a[..., 1:2], a[..., 0:1])
        ab = torch.atan2(b[..., 1:2], b[..., 0:1])
        return na * nb.transpose(-1, -2) * torch.cos(m * (aa - ab.transpose(-1, -2)))

    return k


@pytest.mark.parametrize("m", [1, 3, 8])
def test_rotation_kernel_oracle_ball_and_segment(m):
    """phi(x) = |x| (g1 cos m alpha + g2 sin m alpha): zeros are 2m rays at a uniform random phase, so a set
    seen from 0 under the angle Delta holds a zero with probability exactly min(1, m Delta / pi).
    Hypothesis (8) holds with C = 1, M = m (|sin(m u)| <= m |sin u|)."""
    X = torch.randn(40, 2, generator=torch.Generator().manual_seed(m), dtype=DT)
    est = estimate_constants(_rotation_kernel(m), X, pairs=400, steps=40)
    assert est.C == pytest.approx(1.0, rel=1e-9)
    assert est.M <= m * (1 + 1e-6)
    R = 2.0
    t = np.linspace(0, 2 * np.pi, 20001)
    for delta in (0.05, 0.3, 0.9):
        # l1 ball: the angle subtended by its boundary polygon around x0 = (R, 0)
        r = l1_ball_radius(R, delta, 2, float(m))
        u, v = r * np.cos(t), r * np.sin(t)
        s = np.abs(u) + np.abs(v)
        ang = np.arctan2(v / s * r, R + u / s * r)
        p_exact = min(1.0, m * (ang.max() - ang.min()) / np.pi)
        assert p_exact <= delta
        assert p_exact >= delta / 200  # the bound is loose (Dudley), but not absurdly so in 2-D
        # segments of both forms, worst direction: subtended angle arcsin(L / R)
        for form in ("derived", "eq12"):
            L = segment_radius(R, delta, float(m), form=form)
            p_seg = min(1.0, m * math.asin(min(1.0, L / R)) / math.pi)
            assert p_seg <= delta, (form, m, delta)


@pytest.mark.parametrize("n", [4, 64])
def test_linear_kernel_oracle_ball(n):
    """phi(x) = g.x: B^1_r(x0) holds a zero iff |g.x0| < r max|g_i|. Monte Carlo, 20000 draws; the
    Clopper-Pearson 99.99 % lower limit of the frequency must not exceed the bound (M = C = 1)."""
    gen = np.random.default_rng(n)
    x0 = gen.uniform(0, 1, n)
    g = gen.standard_normal((20000, n))
    hit_margin = np.abs(g @ x0) / np.abs(g).max(axis=1)  # zero in the ball iff r > this
    x0n = np.linalg.norm(x0)
    for r in (l1_ball_radius(x0n, 0.5, n, 1.0), 0.02 * x0n, 0.2 * x0n):
        hits = int((hit_margin < r).sum())
        lo = stats.binomtest(hits, len(g)).proportion_ci(0.9999).low
        assert lo <= failure_probability(r, x0n, n, 1.0)


# ----------------------------------------------------------------------------- Corollary 1, Remark 5
def test_corollary1_uses_theorem2_metadata():
    arch = SimpleNamespace(n=3072, input_pixels=1024, flatten_pixels=64)
    res = corollary1(arch, 32.0, np.array([0.01, 0.1]), method="dudley")
    assert res.M == 4.0 and res.n == 3072 and res.method == "dudley" and res.entropy == "numeric"
    assert res.entropy_value == pytest.approx(entropy_integral(3072))
    assert np.allclose(res.l1, l1_ball_radius(32.0, np.array([0.01, 0.1]), 3072, 4.0), rtol=1e-15)
    assert np.allclose(res.segment, segment_radius(32.0, np.array([0.01, 0.1]), 4.0), rtol=1e-15)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=DT)
    resb = corollary1(arch, x, 0.1, entropy="closed", method="dudley")
    assert isinstance(resb.l1, torch.Tensor) and resb.l1.shape == (3,) and resb.l1.dtype == DT
    assert torch.allclose(resb.x0_norm, x.reshape(3, -1).norm(dim=1))


def test_corollary1_with_real_architecture_ignores_variances():
    from gpbound.kernels import AvgPool, Architecture, Conv, Flatten, ReLU, serial

    arch = Architecture(serial(Conv(4, 3), ReLU(), AvgPool(2), Conv(4, 3), ReLU(), Flatten(1)), input_shape=(3, 8, 8))
    res = corollary1(arch, torch.rand(2, arch.n, dtype=DT), 0.1)
    assert res.M == pytest.approx(arch.M) and res.M == pytest.approx(2.0)
    # Remark 3: the radii use only n, M and |x0|, because hypothesis (8) holds with Theorem 2's M for
    # every (sigma_w2, sigma_b2). Measured: the largest d(x, y) / (C |x - y|) over sampled and optimised
    # pairs stays <= M (round-off 1e-9) while C itself moves with the variances.
    from gpbound.constants import estimate_constants
    from gpbound.kernels import NNGPKernel

    X = torch.rand(6, arch.n, generator=torch.Generator().manual_seed(3), dtype=DT)
    Cs = []
    for sw2, sb2 in ((0.5, 0.0), (2.0, 0.0), (2.0, 0.5), (5.0, 2.0)):
        est = estimate_constants(NNGPKernel(arch, sigma_w2=sw2, sigma_b2=sb2), X, pairs=40, steps=10, starts=2)
        assert 0 < est.M <= arch.M * (1 + 1e-9), (sw2, sb2, est.M)
        Cs.append(est.C)
    assert max(Cs) > 2 * min(Cs)


@pytest.mark.parametrize("p", [1, 1.5, 2, 3, math.inf, "linf", "l2"])
def test_lp_radius_is_contained_in_l1_ball(p):
    n = 50
    x0 = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=DT)
    r1 = l1_ball_radius(float(x0.norm()), 0.1, n, 2.0)
    rp = lp_radius(p, x0, 0.1, 2.0, method="dudley")
    pf = {"linf": math.inf, "l2": 2.0}.get(p, p)
    # the extreme point: all coordinates equal -> lp norm rp, l1 norm n^{1-1/p} rp == r1
    z = torch.ones(n, dtype=DT) * rp / (1.0 if math.isinf(pf) else n ** (1 / pf))
    assert float(z.norm(p=pf)) == pytest.approx(float(rp), rel=1e-12)
    assert float(z.norm(p=1)) == pytest.approx(r1, rel=1e-12)
    # random points of the lp ball lie in the l1 ball
    w = torch.randn(2000, n, generator=torch.Generator().manual_seed(2), dtype=DT)
    w = w / w.norm(p=pf, dim=1, keepdim=True) * rp * torch.rand(2000, 1, dtype=DT)
    assert float(w.norm(p=1, dim=1).max()) <= r1 * (1 + 1e-12)
    rel = relative_lp_radius(p, x0, 0.1, 2.0, method="dudley")
    assert float(rel) == pytest.approx(float(rp) / float(x0.norm(p=pf)), rel=1e-12)
    # norm mode (n given, x0 as its l2 norm)
    assert lp_radius(p, float(x0.norm()), 0.1, 2.0, n=n, method="dudley") == pytest.approx(float(rp), rel=1e-14)


def test_vectorised_over_delta_and_batch():
    x = torch.rand(4, 48, dtype=DT)
    d = torch.tensor([0.01, 0.1, 0.5], dtype=DT)
    r = l1_ball_radius(x.norm(dim=1)[:, None], d[None, :], 48, 2.0)
    assert isinstance(r, torch.Tensor) and r.shape == (4, 3) and r.dtype == DT
    rp = lp_radius(2, x, 0.1, 2.0)
    assert rp.shape == (4,)
    assert relative_lp_radius(math.inf, x, 0.1, 2.0).shape == (4,)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x0_norm=0.0), "x0_norm"),
        (dict(x0_norm=-1.0), "x0_norm"),
        (dict(x0_norm=float("nan")), "x0_norm"),
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(delta=float("inf")), "delta"),
        (dict(n=0), "n"),
        (dict(n=3.5), "n"),
        (dict(M=0.5), "M"),
        (dict(M=float("nan")), "M"),
    ],
)
def test_radius_bad_input(kwargs, match):
    base = dict(x0_norm=1.0, delta=0.1, n=10, M=2.0)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        l1_ball_radius(**base)
    with pytest.raises(ValueError, match=match):
        l1_ball_radius_eq10(**base)
    if "n" not in kwargs:
        with pytest.raises(ValueError, match=match):
            segment_radius(base["x0_norm"], base["delta"], base["M"])


def test_other_bad_input():
    with pytest.raises(ValueError, match="entropy"):
        l1_ball_radius(1.0, 0.1, 10, 2.0, entropy="exact")
    with pytest.raises(ValueError, match="form"):
        segment_radius(1.0, 0.1, 2.0, form="eq13")
    for bad_r in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="r"):
            failure_probability(bad_r, 1.0, 10, 2.0)
        with pytest.raises(ValueError, match="r"):
            segment_failure_probability(bad_r, 1.0, 2.0)
    for bad_p in (0.5, -1, float("nan"), "l0.5"):
        with pytest.raises(ValueError, match="p"):
            lp_radius(bad_p, torch.ones(4, dtype=DT), 0.1, 2.0)
    for bad_p in ("lx", "2"):  # strings are norm names, never parsed as numbers
        with pytest.raises(TypeError, match="p"):
            lp_radius(bad_p, torch.ones(4, dtype=DT), 0.1, 2.0)
    with pytest.raises(TypeError, match="p"):
        lp_radius(None, torch.ones(4, dtype=DT), 0.1, 2.0)
    with pytest.raises(ValueError, match="x0"):
        lp_radius(2, torch.tensor([1.0, float("nan")]), 0.1, 2.0)
    with pytest.raises(ValueError, match="x0_norm_p"):
        relative_lp_radius(2, 3.0, 0.1, 2.0, n=9)
    with pytest.raises(ValueError, match="x0"):
        relative_lp_radius(2, torch.zeros(4, dtype=DT) + 0.0, 0.1, 2.0)
    arch = SimpleNamespace(n=12, input_pixels=4, flatten_pixels=1)
    with pytest.raises(TypeError, match="arch"):
        corollary1(SimpleNamespace(n=12), 1.0, 0.1)
    with pytest.raises(ValueError, match="last dimension"):
        corollary1(arch, torch.ones(5, dtype=DT), 0.1)
    with pytest.raises(ValueError, match="delta"):
        corollary1(arch, 1.0, 1.5)
    with pytest.raises(ValueError, match="finite"):
        corollary1(arch, torch.full((12,), float("nan"), dtype=DT), 0.1)
