"""NNGPKernel: kernel-matrix properties (hypothesis), gpytorch integration, training and gradients."""
import gpytorch
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gpbound.kernels import AvgPool, Architecture, Conv, Dense, Flatten, NNGPKernel, ReLU, Residual, serial

DT = torch.float64


@st.composite
def small_arch(draw):
    C = draw(st.integers(1, 3))
    H = draw(st.sampled_from([2, 4]))
    W = draw(st.sampled_from([2, 4]))
    ch = draw(st.integers(1, 4))
    patch = draw(st.sampled_from([1, 2, (2, 1), 3 if min(H, W) >= 3 else 1]))
    layers = [Conv(ch, patch)]
    if draw(st.booleans()):
        layers.append(Residual(serial(ReLU(), Conv(ch, patch))))
    if draw(st.booleans()):
        layers.append(AvgPool(2))
    layers.append(ReLU())
    if draw(st.booleans()):
        layers += [Flatten(3), ReLU(), Dense(1)]
    else:
        layers.append(Flatten(1))
    sw2 = draw(st.floats(0.1, 4.0))
    sb2 = draw(st.sampled_from([0.0, 0.05, 1.0]))
    seed = draw(st.integers(0, 2 ** 16))
    return Architecture(serial(*layers), (C, H, W)), sw2, sb2, seed


@settings(max_examples=15, deadline=None)
@given(small_arch(), st.integers(2, 7))
def test_kernel_matrix_properties(case, N):
    arch, sw2, sb2, seed = case
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(N, arch.n, generator=g, dtype=DT)
    X[-1] = X[0]  # coincident inputs
    K = arch.kernel(X, sigma_w2=sw2, sigma_b2=sb2)
    torch.testing.assert_close(K, K.T, rtol=1e-12, atol=1e-14)
    ev = torch.linalg.eigvalsh(K)
    assert ev.min() >= -1e-8 * ev.max().abs()
    torch.testing.assert_close(arch.kernel(X, sigma_w2=sw2, sigma_b2=sb2, diag=True), K.diagonal(),
                               rtol=1e-12, atol=1e-14)
    Y = torch.randn(3, arch.n, generator=g, dtype=DT)
    Kxy = arch.kernel(X, Y, sigma_w2=sw2, sigma_b2=sb2)
    for i in range(N):  # per-item results equal the batched ones
        torch.testing.assert_close(arch.kernel(X[i:i + 1], Y, sigma_w2=sw2, sigma_b2=sb2), Kxy[i:i + 1],
                                   rtol=1e-12, atol=1e-14)
    # chunked evaluation (x1 is x2 -> mirrored blocks) equals the one-shot result
    torch.testing.assert_close(arch.kernel(X, sigma_w2=sw2, sigma_b2=sb2, max_elements=1), K, rtol=1e-12,
                               atol=1e-14)
    torch.testing.assert_close(arch.kernel(X, Y, sigma_w2=sw2, sigma_b2=sb2, max_elements=40), Kxy,
                               rtol=1e-12, atol=1e-14)


def _arch():
    return Architecture(serial(Conv(4, 3), Residual(serial(ReLU(), Conv(4, 3))), AvgPool(2), ReLU(),
                               Flatten(1)), (2, 4, 4))


def test_gpytorch_batch_diag_and_active_dims():
    arch = _arch()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2, 5, arch.n, generator=g, dtype=DT)  # batch of 2
    k = NNGPKernel(arch, sigma_w2=1.3, sigma_b2=0.1)
    K = k(X).to_dense()
    assert K.shape == (2, 5, 5)
    for b in range(2):
        torch.testing.assert_close(K[b], arch.kernel(X[b], sigma_w2=1.3, sigma_b2=0.1), rtol=1e-10, atol=1e-12)
    d = k(X, diag=True)
    assert d.shape == (2, 5)
    torch.testing.assert_close(d, K.diagonal(dim1=-2, dim2=-1), rtol=1e-12, atol=1e-14)
    # active_dims: the kernel sees only the selected columns
    extra = torch.randn(5, 3, generator=g, dtype=DT)
    Z = torch.cat([extra[:, :1], X[0], extra[:, 1:]], dim=1)
    ka = NNGPKernel(arch, sigma_w2=1.3, sigma_b2=0.1, active_dims=torch.arange(1, 1 + arch.n))
    torch.testing.assert_close(ka(Z).to_dense(), K[0], rtol=1e-12, atol=1e-14)
    # parameters: exact zero bias variance is representable; setters validate
    k0 = NNGPKernel(arch)
    assert float(k0.sigma_b2.detach()) == 0.0 and abs(float(k0.sigma_w2.detach()) - 2.0) < 1e-12
    torch.testing.assert_close(k0(X[0]).to_dense(), arch.kernel(X[0]), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="sigma_w2"):
        k0.sigma_w2 = 0.0
    with pytest.raises(ValueError, match="sigma_b2"):
        k0.sigma_b2 = -0.1
    with pytest.raises(ValueError, match="sigma_w2"):
        NNGPKernel(arch, sigma_w2=-1.0)
    with pytest.raises(ValueError, match="x1"):
        k0(torch.full((2, arch.n), float("nan"), dtype=DT)).to_dense()
    with pytest.raises(ValueError, match="input_shape"):
        k0(torch.zeros(2, arch.n + 1, dtype=DT)).to_dense()
    with pytest.raises(TypeError, match="architecture"):
        NNGPKernel("resnet")


def test_gradients_finite_at_coincident_inputs():
    arch = _arch()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, arch.n, generator=g, dtype=DT, requires_grad=True)
    k = NNGPKernel(arch, sigma_w2=1.5, sigma_b2=0.2)
    K = k(x, x).to_dense()
    gx, gw, gb = torch.autograd.grad(K.sum(), [x, k.raw_sigma_w2, k.raw_sigma_b2])
    assert torch.isfinite(gx).all() and torch.isfinite(gw).all() and torch.isfinite(gb).all()
    # sigma_w2 gradient at x1 = x2 against a central finite difference
    sw = torch.tensor(1.5, dtype=DT, requires_grad=True)
    Kxx = arch.kernel(x.detach(), sigma_w2=sw, sigma_b2=0.0)
    (dsw,) = torch.autograd.grad(Kxx.sum(), sw)
    e = 1e-6
    fd_sw = (float(arch.kernel(x.detach(), sigma_w2=1.5 + e)) - float(arch.kernel(x.detach(), sigma_w2=1.5 - e))) / (2 * e)
    assert abs(float(dsw) - fd_sw) < 1e-6 * (1 + abs(fd_sw))
    # central finite difference as the oracle of the input gradient, in a direction away from x
    v = torch.randn(arch.n, generator=g, dtype=DT)
    h = 1e-5
    y = torch.randn(1, arch.n, generator=g, dtype=DT)
    f = lambda z: float(arch.kernel(z, y, sigma_w2=1.5, sigma_b2=0.2))
    xx = y.clone().requires_grad_(True)  # x1 = y exactly coincides with x2 = y
    (gy,) = torch.autograd.grad(arch.kernel(xx, y, sigma_w2=1.5, sigma_b2=0.2).sum(), xx)
    fd = (f(y + h * v) - f(y - h * v)) / (2 * h)
    assert abs(float(gy @ v) - fd) < 1e-5 * (1 + abs(fd))


def test_kernel_gradients_with_equal_but_distinct_inputs():
    """k(x, x.clone()) through NNGPKernel: the gradients w.r.t. x1 and x2 are those of K(x1, x2), each
    one half of d/dx K(x, x) (symmetry); oracle: central finite differences of Architecture.kernel
    in a random direction (h = 1e-5, tolerance 1e-6 relative + absolute)."""
    arch = _arch()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, arch.n, generator=g, dtype=DT)
    k = NNGPKernel(arch, sigma_w2=1.5, sigma_b2=0.2)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    g1, g2 = torch.autograd.grad(k(x1, x2).to_dense().sum(), [x1, x2])
    v = torch.randn(arch.n, generator=g, dtype=DT)
    h = 1e-5
    f1 = lambda z: float(arch.kernel(z, x, sigma_w2=1.5, sigma_b2=0.2))  # noqa: E731
    f2 = lambda z: float(arch.kernel(x, z, sigma_w2=1.5, sigma_b2=0.2))  # noqa: E731
    for grad, f in ((g1, f1), (g2, f2)):
        fd = (f(x + h * v) - f(x - h * v)) / (2 * h)
        assert abs(float(grad.reshape(-1) @ v) - fd) < 1e-6 * (1 + abs(fd))


def test_input_gradient_not_doubled_when_x2_is_a_detached_copy():
    """k(x, x_train) for a candidate sitting on the training points: x1 requires grad, x2 =
    x1.detach().clone() (equal values, no gradient).  The gradient of sum K(x1, x2) w.r.t. x1 must be
    that of K with x2 held fixed, not d/dx K(x, x) (which counts both arguments: twice as large).
    Oracle: central finite differences of Architecture.kernel in every coordinate of x1 (float64,
    h = 1e-5: truncation ~h^2 and rounding ~1e-16/h, both < 1e-9), tolerance 1e-7 (1 + |g|)."""
    arch = _arch()
    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, arch.n, generator=g, dtype=DT)
    k = NNGPKernel(arch, sigma_w2=1.5, sigma_b2=0.2)
    x1 = x.clone().requires_grad_(True)
    x2 = x1.detach().clone()
    K = k(x1, x2).to_dense()
    torch.testing.assert_close(K.detach(), arch.kernel(x, sigma_w2=1.5, sigma_b2=0.2), rtol=1e-12, atol=1e-14)
    (gx,) = torch.autograd.grad(K.sum(), x1)
    h = 1e-5
    fd = torch.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            e = torch.zeros_like(x)
            e[i, j] = h
            fd[i, j] = (arch.kernel(x + e, x, sigma_w2=1.5, sigma_b2=0.2).sum()
                        - arch.kernel(x - e, x, sigma_w2=1.5, sigma_b2=0.2).sum()) / (2 * h)
    assert fd.abs().max() > 1e-3  # a non-trivial gradient
    assert ((gx - fd).abs() <= 1e-7 * (1 + fd.abs())).all(), float((gx - fd).abs().max())
    # the same through a gpytorch ScaleKernel (the usual GP model): still the one-sided gradient
    ks = gpytorch.kernels.ScaleKernel(k).double()
    (gs,) = torch.autograd.grad(ks(x1, x2).to_dense().sum() / ks.outputscale, x1)
    torch.testing.assert_close(gs, gx, rtol=1e-12, atol=1e-14)


def test_float32_inputs_give_a_float32_kernel_computed_in_float64():
    """The covariance follows the inputs' dtype (as GPyTorch kernels do); inside, it is computed in float64,
    so it equals the float64 kernel of the same (float32-representable) inputs rounded once to float32."""
    arch = _arch()
    x = torch.rand(3, arch.n, dtype=torch.float32)
    K = NNGPKernel(arch, sigma_w2=1.5)(x).to_dense()
    assert K.dtype == torch.float32
    assert torch.equal(K, arch.kernel(x.double(), sigma_w2=1.5).float())
    with pytest.raises(ValueError, match="x2"):
        NNGPKernel(arch)(x, torch.rand(3, arch.n + 2)).to_dense()


def test_exact_gp_trains_and_mll_improves():
    torch.manual_seed(0)
    arch = Architecture(serial(Conv(4, 3), ReLU(), Flatten(1)), (1, 4, 4))
    g = torch.Generator().manual_seed(2)
    X = torch.randn(24, arch.n, generator=g, dtype=DT)
    y = torch.tanh(X[:, :4].sum(1)) + 0.05 * torch.randn(24, generator=g, dtype=DT)

    class GP(gpytorch.models.ExactGP):
        def __init__(self, X, y, lik):
            super().__init__(X, y, lik)
            self.mean = gpytorch.means.ZeroMean()
            self.cov = gpytorch.kernels.ScaleKernel(NNGPKernel(arch, sigma_w2=1.0, sigma_b2=0.5))

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean(x), self.cov(x))

    lik = gpytorch.likelihoods.GaussianLikelihood().double()
    model = GP(X, y, lik).double()
    model.train(), lik.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for it in range(25):
        opt.zero_grad()
        loss = -mll(model(X), y)
        loss.backward()
        if it == 0:
            first = float(loss)
            base = model.cov.base_kernel
            for p in (base.raw_sigma_w2, base.raw_sigma_b2):
                assert p.grad is not None and torch.isfinite(p.grad).all() and float(p.grad.abs()) > 0
        opt.step()
    assert float(loss) < first - 0.05
    model.eval(), lik.eval()
    with torch.no_grad():
        pred = lik(model(X[:3]))
    assert torch.isfinite(pred.mean).all()


def test_last_dim_is_batch_rejected():
    k = NNGPKernel(_arch())
    with pytest.raises(ValueError, match="last_dim_is_batch"):
        k.forward(torch.zeros(2, 32, dtype=DT), torch.zeros(2, 32, dtype=DT), last_dim_is_batch=True)


@pytest.mark.parametrize("lam", [1e77, 1e-150])
def test_scale_invariance_at_extreme_scales(lam):
    """A bias-free network of Conv/ReLU/Residual/AvgPool/Flatten is positively homogeneous:
    K(lam x, mu y) = lam mu K(x, y).  At lam = 1e77 the input entries are ~1e77 and the kernel ~1e154
    (fits in float64) but the products k_xx k_yy of the ReLU map overflow; at lam = 1e-150 they
    underflow to 0.  Both through NNGPKernel (whose parameters require grad: the autograd path) and
    Architecture.kernel, all pairs, diag, and one scaled training point; gradients finite and scaled.
    Tolerance 1e-13 relative (measured ~3e-16).  Before the fix: all NaN (1e77) / zeros (1e-150)."""
    arch = _arch()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, arch.n, generator=g, dtype=DT)
    k = NNGPKernel(arch, sigma_w2=1.5, sigma_b2=0.0)
    ref = k(x).to_dense()
    got = k(x * lam).to_dense()
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.detach(), ref.detach() * lam ** 2, rtol=1e-13, atol=0)
    torch.testing.assert_close(k(x * lam, diag=True).detach(), ref.detach().diagonal() * lam ** 2, rtol=1e-13, atol=0)
    torch.testing.assert_close(arch.kernel(x * lam, sigma_w2=1.5), ref.detach() * lam ** 2, rtol=1e-13, atol=0)
    # d K / d raw_sigma_w2 scales like K
    (g_ref,) = torch.autograd.grad(ref.sum(), k.raw_sigma_w2)
    (g_got,) = torch.autograd.grad(got.sum(), k.raw_sigma_w2)
    torch.testing.assert_close(g_got, g_ref * lam ** 2, rtol=1e-12, atol=0)
    # one training point at the extreme scale among ordinary ones (Gram matrix: per-point homogeneity)
    y = x.clone()
    y[1] *= lam
    want = ref.detach().clone()
    want[1] *= lam
    want[:, 1] *= lam
    got1 = k(y).to_dense().detach()
    torch.testing.assert_close(got1, want, rtol=1e-13, atol=0)
    # input gradient: K(., x) is homogeneous of degree 1, so its gradient (degree 0) at z = lam x equals that at x
    z = (x * lam).requires_grad_(True)
    (gz,) = torch.autograd.grad(k(z, x).to_dense().sum(), z)
    x0 = x.clone().requires_grad_(True)
    (g0,) = torch.autograd.grad(k(x0, x).to_dense().sum(), x0)
    torch.testing.assert_close(gz, g0, rtol=1e-12, atol=1e-300)  # degree 0 in the scaled argument


def test_float32_exact_gp_trains_and_predicts():
    """A float32 ExactGP (the GPyTorch tutorials' default) with NNGPKernel: the covariance follows the inputs'
    dtype (computed in float64 inside), the marginal likelihood improves, and predictions are float32."""
    import gpytorch

    from gpbound.kernels import Architecture, Flatten, NNGPKernel, ReLU, Dense, serial

    arch = Architecture(serial(Flatten(16), ReLU(), Dense(1)), input_shape=(3,))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, generator=g)
    y = torch.sin(3 * x[:, 0]) + 0.05 * torch.randn(40, generator=g)

    class GP(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(x, y, gpytorch.likelihoods.GaussianLikelihood())
            self.mean = gpytorch.means.ConstantMean()
            self.kernel = gpytorch.kernels.ScaleKernel(NNGPKernel(arch, sigma_w2=2.0, sigma_b2=0.1))

        def forward(self, z):
            return gpytorch.distributions.MultivariateNormal(self.mean(z), self.kernel(z))

    model = GP().float()
    assert model.kernel.base_kernel(x, x).to_dense().dtype == torch.float32
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = -mll(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05
    model.eval()
    with torch.no_grad():
        pred = model.likelihood(model(torch.rand(5, 3, generator=g)))
    assert pred.mean.dtype == torch.float32 and torch.isfinite(pred.mean).all()
