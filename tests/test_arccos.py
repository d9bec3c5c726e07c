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
    """ArcCosineKernel as a gpytorch kernel: batch shapes, diag, active_dims and float64 by default,
    against the closed form k_m = |x|^m |y|^m J_m(theta) / pi evaluated in numpy (float64, 1e-12)."""
    import numpy as np

    g = torch.Generator().manual_seed(order)
    X = torch.randn(2, 5, 4, generator=g, dtype=torch.float32)
    K = ArcCosineKernel(order)(X).to_dense()
    assert K.dtype == torch.float64 and K.shape == (2, 5, 5)
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
    kd = ArcCosineKernel(order)(X, diag=True)
    torch.testing.assert_close(kd, torch.diagonal(K, dim1=-2, dim2=-1), rtol=1e-12, atol=1e-12)
    Z = torch.cat([torch.randn(2, 5, 1, generator=g), X], dim=-1)  # column 0 is ignored
    Ka = ArcCosineKernel(order, active_dims=torch.arange(1, 5))(Z).to_dense()
    torch.testing.assert_close(Ka, K, rtol=1e-12, atol=1e-12)
