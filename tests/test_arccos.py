"""Arc-cosine kernels and F against an independent 2-D Gaussian integral (scipy.integrate.dblquad)."""
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from gpbound.kernels import ArcCosineKernel, arc_cosine, arc_cosine_from_cov, relu_expectation


def _gauss_oracle(a, b, k, m):
    """k_m = 2 E[Theta(u) u^m Theta(v) v^m], (u, v) ~ N(0, [[a, k], [k, b]]) (Cho & Saul's definition),
    by dblquad in the whitened basis u = L11 z1, v = L21 z1 + L22 z2 over the region u, v > 0."""
    L11 = math.sqrt(a)
    L21 = k / L11
    L22 = math.sqrt(max(b - L21 ** 2, 0.0))
    phi = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    lim = 14.0
    if L22 < 1e-12:  # degenerate: v = L21 z1
        if L21 <= 0:
            return 0.0
        val, _ = integrate.quad(lambda z: phi(z) * (L11 * z) ** m * (L21 * z) ** m, 0, lim, epsabs=0, epsrel=1e-13)
        return 2 * val

    def inner_lo(z1):
        return -L21 * z1 / L22

    f = lambda z2, z1: phi(z1) * phi(z2) * (L11 * z1) ** m * (L21 * z1 + L22 * z2) ** m
    val, _ = integrate.dblquad(f, 0.0, lim, inner_lo, lambda z1: lim, epsabs=1e-14, epsrel=1e-12)
    return 2 * val


CASES = [(1.0, 1.0, 0.3), (2.0, 0.5, -0.7), (1.3, 0.8, 1.01), (1.0, 1.0, 0.0), (0.7, 2.2, 1.24),
         (1.0, 1.0, -0.999), (3.0, 1.5, 2.0), (1.0, 4.0, -1.9)]


@pytest.mark.parametrize("order", [0, 1, 2])
def test_arc_cosine_matches_gaussian_integral(order):
    a, b, k = (torch.tensor([c[i] for c in CASES], dtype=torch.float64) for i in range(3))
    got = arc_cosine_from_cov(a, b, k, order).numpy()
    want = np.array([_gauss_oracle(*c, order) for c in CASES])
    # quadrature error ~1e-12; kernel formula exact -> 1e-8 relative
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


def test_relu_expectation_is_half_order_one_and_diagonal():
    a, b, k = (torch.tensor([c[i] for c in CASES], dtype=torch.float64) for i in range(3))
    want = np.array([_gauss_oracle(*c, 1) / 2 for c in CASES])
    np.testing.assert_allclose(relu_expectation(a, b, k).numpy(), want, rtol=1e-8, atol=1e-12)
    v = torch.tensor([0.3, 1.0, 7.5], dtype=torch.float64)
    torch.testing.assert_close(relu_expectation(v, v, v), v / 2, rtol=1e-14, atol=0)
    # clamping: k slightly above sqrt(ab) behaves like coincidence
    torch.testing.assert_close(relu_expectation(v, v, v * (1 + 1e-12)), v / 2, rtol=1e-10, atol=0)
    # zero variance -> F = 0
    z = torch.zeros(2, dtype=torch.float64)
    assert torch.equal(relu_expectation(z, torch.ones(2, dtype=torch.float64), z), z)


def test_arc_cosine_matrix_and_kernel_against_oracle():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, generator=g, dtype=torch.float64)
    y = torch.randn(2, 4, generator=g, dtype=torch.float64)
    for order in (0, 1, 2):
        K = ArcCosineKernel(order)(x, y).to_dense()
        for i in range(3):
            for j in range(2):
                want = _gauss_oracle(float(x[i] @ x[i]), float(y[j] @ y[j]), float(x[i] @ y[j]), order)
                assert abs(float(K[i, j]) - want) <= 1e-8 * abs(want) + 1e-12
        torch.testing.assert_close(arc_cosine(x, x, order, diag=True), arc_cosine(x, x, order).diagonal())


@pytest.mark.parametrize("order", [0, 1, 2])
def test_gradients_match_finite_differences(order):
    g = torch.Generator().manual_seed(1)
    a = (torch.rand(5, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    b = (torch.rand(5, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    k = ((torch.rand(5, generator=g, dtype=torch.float64) - 0.5) * 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, k: arc_cosine_from_cov(a, b, k, order), (a, b, k))
    x = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: arc_cosine(x, x[:2] * 1.3 + 0.1, order), (x,))


@pytest.mark.parametrize("order", [1, 2])
def test_gradient_finite_at_coincident_inputs(order):
    x = torch.tensor([[0.3, -1.2, 0.7]], dtype=torch.float64, requires_grad=True)
    K = arc_cosine(x, x, order)
    (gx,) = torch.autograd.grad(K.sum(), x)
    assert torch.isfinite(gx).all()
    # k_m(x, x) = |x|^{2m} J_m(0)/pi with J_1(0)/pi = 1, J_2(0)/pi = 3: gradient c_m 2m |x|^{2m-2} x
    n2 = (x.detach() ** 2).sum()
    c = {1: 1.0, 2: 3.0}[order]
    torch.testing.assert_close(gx, c * 2 * order * n2 ** (order - 1) * x.detach(), rtol=1e-10, atol=1e-12)
    # F along (a, a, a): F = a/2 -> directional derivative 1/2
    a = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    (da,) = torch.autograd.grad(relu_expectation(a, a, a), a)
    assert abs(float(da) - 0.5) < 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="order"):
        ArcCosineKernel(3)
    with pytest.raises(ValueError, match="order"):
        arc_cosine(torch.ones(2, 2), torch.ones(2, 2), order=-1)
    with pytest.raises(ValueError, match="order"):
        ArcCosineKernel(1.0)
    with pytest.raises(ValueError, match="x1"):
        ArcCosineKernel(1)(torch.tensor([[float("nan"), 1.0]]), torch.ones(1, 2)).to_dense()
    with pytest.raises(ValueError, match="last dimension"):
        arc_cosine(torch.ones(2, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="x2"):
        ArcCosineKernel(1)(torch.ones(2, 2), torch.ones(2, 3)).to_dense()
    with pytest.raises(ValueError, match="kxx"):
        relu_expectation(torch.tensor([-1.0]), torch.tensor([1.0]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="kyy"):
        relu_expectation(torch.tensor([1.0]), torch.tensor([float("nan")]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="kxy"):
        arc_cosine_from_cov(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([float("inf")]), order=2)
    with pytest.raises(TypeError, match="dtype"):
        ArcCosineKernel(1, dtype=torch.int64)


@pytest.mark.parametrize("order", [0, 1, 2])
def test_arc_cosine_kernel_gpytorch_batch_active_dims_and_float64(order):
    """ArcCosineKernel as a gpytorch kernel: batch shapes, diag, active_dims, computed in float64 and
    returned in the inputs' dtype, against the closed form k_m = |x|^m |y|^m J_m(theta) / pi evaluated
    in numpy (float64, 1e-12)."""
    import numpy as np

    g = torch.Generator().manual_seed(order)
    X = torch.randn(2, 5, 4, generator=g, dtype=torch.float32)
    K32 = ArcCosineKernel(order)(X).to_dense()
    K = ArcCosineKernel(order)(X.double()).to_dense()
    assert K32.dtype == torch.float32 and K.dtype == torch.float64 and K.shape == (2, 5, 5)
    assert torch.equal(K32, K.float())  # float32 inputs: computed in float64, rounded once
    Xn = X.double().numpy()
    nx = np.linalg.norm(Xn, axis=-1)
    c = np.clip(Xn @ Xn.transpose(0, 2, 1) / (nx[..., :, None] * nx[..., None, :]), -1, 1)
    t = np.arccos(c)
    J = {0: np.pi - t, 1: np.sin(t) + (np.pi - t) * c,
         2: 3 * np.sin(t) * c + (np.pi - t) * (1 + 2 * c ** 2)}[order]
    ref = (nx[..., :, None] * nx[..., None, :]) ** order * J / np.pi
    # order 0 on the diagonal: arccos has an infinite slope at c = 1, so one ulp of c (rounding of the
    # Gram entries, done differently here and in numpy) moves theta by sqrt(2 ulp) ~ 2e-8
    atol = 1e-7 if order == 0 else 1e-12
    torch.testing.assert_close(K, torch.from_numpy(ref), rtol=1e-12, atol=atol)
    kd = ArcCosineKernel(order)(X.double(), diag=True)
    torch.testing.assert_close(kd, torch.diagonal(K, dim1=-2, dim2=-1), rtol=1e-12, atol=1e-12)
    Z = torch.cat([torch.randn(2, 5, 1, generator=g), X], dim=-1).double()  # column 0 is ignored
    Ka = ArcCosineKernel(order, active_dims=torch.arange(1, 5))(Z).to_dense()
    torch.testing.assert_close(Ka, K, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- extreme but valid scales
def _moments(X, Y):
    return (X * X).sum(-1)[:, None], (Y * Y).sum(-1)[None, :], X @ Y.T


@pytest.mark.parametrize("lam", [1e77, 1e-150])
def test_scale_invariance_at_extreme_scales_all_paths(monkeypatch, lam):
    """k_m(lam^2 a, lam^2 b, lam^2 k) = lam^(2m) k_m(a, b, k) where the products a b (1e310 or 1e-600)
    over- or underflow but the moments and the kernel fit in float64 (order 2 at 1e77 would overflow
    itself: skipped).  Every evaluation path: autograd (forward + gradients), fused eager, chunked,
    and the function torch.compile would compile.  Tolerance 1e-13 relative (measured ~3e-16).
    Before the normalised form: NaN at 1e77 (a b = inf) and 0 at 1e-150 (a b = 0) on the autograd path."""
    import gpbound.kernels.arccos as arccos_mod

    g = torch.Generator().manual_seed(3)
    X = torch.randn(4, 3, generator=g, dtype=torch.float64) * 8.0  # moments ~ 1e2: a b * lam^4 leaves the range
    Y = torch.randn(5, 3, generator=g, dtype=torch.float64) * 8.0
    a, b, k = _moments(X, Y)
    L = lam * lam
    for order in (0, 1, 2):
        if order == 2 and lam > 1:
            continue
        want = arc_cosine_from_cov(a, b, k, order) * L ** order
        got = arc_cosine_from_cov(a * L, b * L, k * L, order)
        torch.testing.assert_close(got, want, rtol=1e-13, atol=0)
        # gradients: d/dk and d/da of k_m scale as L^(m-1)
        A, B, Kx = (t.clone().requires_grad_(True) for t in (a, b, k))
        As, Bs, Ks = (t.clone().mul(L).requires_grad_(True) for t in (a, b, k))
        ref = torch.autograd.grad(arc_cosine_from_cov(A, B, Kx, order).sum(), [A, B, Kx])
        out = torch.autograd.grad(arc_cosine_from_cov(As, Bs, Ks, order).sum(), [As, Bs, Ks])
        for r, o in zip(ref, out):
            assert torch.isfinite(o).all()
            torch.testing.assert_close(o, r * L ** (order - 1), rtol=1e-12, atol=0)
    want = relu_expectation(a, b, k) * L
    torch.testing.assert_close(relu_expectation(a * L, b * L, k * L), want, rtol=1e-13, atol=0)  # fused eager
    torch.testing.assert_close(arccos_mod._k1_plain(a * L, b * L, k * L) / 2, want, rtol=1e-13, atol=0)
    monkeypatch.setattr(arccos_mod, "_CHUNK", 7)
    monkeypatch.setattr(arccos_mod, "_CHUNK_MIN", 1)
    torch.testing.assert_close(relu_expectation(a * L, b * L, k * L), want, rtol=1e-13, atol=0)  # chunked


def test_order2_at_antiparallel_inputs_with_overflowing_product():
    """c = -1: k_2 = 0 although a b = 1e400 overflows (the value is s * (s * J_2) with J_2(pi) = 0)."""
    a = torch.tensor([1e200], dtype=torch.float64)
    assert float(arc_cosine_from_cov(a, a, -a, 2)) == 0.0
    assert float(arc_cosine_from_cov(a, a, -a, 1)) == 0.0
    assert float(arc_cosine_from_cov(a, a, -a, 0)) == 0.0


def test_subnormal_squared_norm_gives_psd_gram():
    """A point whose squared norm underflows to a subnormal (|x|^2 = 1e-320) is an ordinary nonzero point:
    the "zero input" decision is made once per point (its own variance is 0), not per pair from the
    product a b (which underflows to 0 on the diagonal only and gave the order-0 Gram [[1, 1], [1, 0.5]],
    eigenvalue -0.28).  Points: x, tiny multiples of x (+ and -), the zero vector, an orthogonal direction.
    Check: symmetric, order-0 diagonal 1 (1/2 for the zero point), min eigenvalue >= -4 eps max|K|."""
    X = torch.tensor([[1.0, 0.0], [1e-160, 0.0], [0.0, 0.0], [-3e-161, 0.0], [0.0, 0.7]], dtype=torch.float64)
    # (the other point is orthogonal: a subnormal |x|^2 carries an absolute rounding of ~5e-324, i.e. a relative
    # error up to ~1e-5 at 1e-320, which the moments pass on to c for a generic direction; that is the input's
    # precision, not the kernel's)
    eps = torch.finfo(torch.float64).eps
    for order in (0, 1, 2):
        for K in (arc_cosine(X, X, order), arc_cosine_from_cov(*_moments(X, X), order=order),
                  ArcCosineKernel(order)(X).to_dense()):
            assert torch.equal(K, K.T)
            ev = torch.linalg.eigvalsh(K)
            assert float(ev.min()) >= -4 * eps * float(K.abs().max()), (order, ev)
        if order == 0:
            assert K.diagonal().tolist() == [1.0, 1.0, 0.5, 1.0, 1.0]
            assert float(K[0, 1]) == 1.0 and float(K[0, 3]) == 0.0  # parallel / antiparallel
    # the brief's two-point example, exactly
    K = arc_cosine(X[:2], X[:2], 0)
    assert K.tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_coincident_moments_are_exact_on_the_autograd_path():
    """a = b = k (x with itself): c = 1 exactly, so k_0 = 1 to the last bit (k_1 = a, k_2 = 3 a^2 up to the rounding
    of the final products) and the order-0 gradient at the cone's tip is the documented 0 (sqrt(a * a) = a exactly;
    sqrt(a) * sqrt(a) may miss by an ulp, which gives c = 1 - 1e-16, k_0 = 1 - 5e-9 and a gradient ~1e8)."""
    g = torch.Generator().manual_seed(4)
    e = torch.randint(-30, 30, (200,), generator=g).double()
    a = (torch.rand(200, generator=g, dtype=torch.float64) + 0.01) * 10.0 ** e
    for order, want in ((0, torch.ones_like(a)), (1, a), (2, 3 * a * a)):
        A = a.clone().requires_grad_(True)
        K = a.clone().requires_grad_(True)
        val = arc_cosine_from_cov(A, a, K, order)
        if order == 0:
            assert torch.equal(val.detach(), want)
        else:
            torch.testing.assert_close(val.detach(), want, rtol=4e-16, atol=0)
        if order == 0:
            ga, gk = torch.autograd.grad(val.sum(), [A, K])
            assert not ga.any() and not gk.any()
