"""NNGPKernel and ArcCosineKernel as GPyTorch-native kernels: ExactGP training in float32, batch_shape,
priors, constraints, 1-D inputs, argument errors.

Oracle: for the architecture ``Flatten(w) -> ReLU -> Dense(1)`` on vectors of length ``n`` the NNGP
kernel has the closed form (docs/theory.md §1)

    K1(x, y) = sb2 + sw2 x.y / n,        K(x, y) = sb2 + sw2 k_1(K1xx, K1yy, K1xy) / 2,

with the order-1 arc-cosine kernel ``k_1 = (sqrt(ab - k^2) + (pi - arccos(k / sqrt(ab))) k) / pi``,
reimplemented below in numpy.
"""
import math

import gpytorch
import numpy as np
import pytest
import scipy.stats
import torch
from gpytorch.constraints import GreaterThan, Interval
from gpytorch.priors import GammaPrior, NormalPrior

from gpbound.kernels import Architecture, ArcCosineKernel, Dense, Flatten, NNGPKernel, ReLU, serial

DT = torch.float64


def _arch(n=3, width=8):
    return Architecture(serial(Flatten(width), ReLU(), Dense(1)), input_shape=(n,))


def _oracle(x, y, sw2, sb2, diag=False):
    """numpy closed form of the NNGP kernel of _arch (float64)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[-1]
    a = sb2 + sw2 * (x * x).sum(-1) / n
    b = sb2 + sw2 * (y * y).sum(-1) / n
    if diag:
        k = sb2 + sw2 * (x * y).sum(-1) / n
    else:
        a, b = a[..., :, None], b[..., None, :]
        k = sb2 + sw2 * x @ np.swapaxes(y, -1, -2) / n
    s = np.sqrt(a * b)
    c = np.clip(k / s, -1.0, 1.0)
    k1 = s * (np.sqrt(1 - c * c) + (np.pi - np.arccos(c)) * c) / np.pi
    return sb2 + sw2 * k1 / 2


def _close(got, want, rtol):
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else got
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


# ------------------------------------------------------------------------------------- ExactGP, float32
class _GP(gpytorch.models.ExactGP):
    def __init__(self, x, y, kernel):
        super().__init__(x, y, gpytorch.likelihoods.GaussianLikelihood())
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(kernel)

    def forward(self, z):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(z), self.covar_module(z))


def _train(model, x, y, steps=20, lr=0.05):
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = -mll(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("kind", ["nngp", "arccos"])
def test_float32_exact_gp_trains_and_predicts(kind):
    """Float32 data and model (GPyTorch's default): the covariance is float32, the negative marginal log
    likelihood falls over 20 Adam steps (by > 0.05 nats per point), predictions are finite float32."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, generator=g) * 2 - 1
    y = torch.sin(3 * x[:, 0]) + 0.05 * torch.randn(40, generator=g)
    kernel = NNGPKernel(_arch(), sigma_w2=2.0, sigma_b2=0.1) if kind == "nngp" else ArcCosineKernel(1)
    model = _GP(x, y, kernel).float()
    assert model.covar_module(x).to_dense().dtype == torch.float32
    losses = _train(model, x, y)
    assert losses[-1] < losses[0] - 0.05, losses
    model.eval()
    with torch.no_grad():
        pred = model.likelihood(model(torch.rand(7, 3, generator=g)))
    assert pred.mean.dtype == torch.float32 and torch.isfinite(pred.mean).all() and torch.isfinite(pred.variance).all()
    if kind == "nngp":  # the hyperparameters moved and stayed in their domains
        k = model.covar_module.base_kernel
        assert float(k.sigma_w2) > 0 and float(k.sigma_b2) >= 0 and abs(float(k.sigma_w2) - 2.0) > 1e-3


# ------------------------------------------------------------------------------------- batch_shape
def test_batch_shape_equals_per_batch_kernels():
    """batch_shape=(3,): batch b is the kernel with (sigma_w2[b], sigma_b2[b]) -- against the numpy closed
    form (1e-13 relative) and the kernel built from that batch's scalars, for unbatched inputs, inputs with
    the batch dimension, extra leading batch dimensions, x2 != x1 and diag."""
    arch = _arch()
    g = torch.Generator().manual_seed(1)
    sw = [0.7, 2.0, 3.1]
    sb = [0.0, 0.25, 1.5]
    k = NNGPKernel(arch, sigma_w2=torch.tensor(sw, dtype=DT), sigma_b2=torch.tensor(sb, dtype=DT),
                   batch_shape=torch.Size([3]))
    assert k.raw_sigma_w2.shape == (3, 1, 1) and k.sigma_b2.shape == (3, 1, 1)
    x = torch.randn(5, 3, generator=g, dtype=DT)
    y = torch.randn(4, 3, generator=g, dtype=DT)
    xb = torch.randn(3, 5, 3, generator=g, dtype=DT)
    xl = torch.randn(2, 1, 5, 3, generator=g, dtype=DT)  # a leading batch dim, broadcast over the 3
    K, Kxy, Kd = k(x).to_dense(), k(x, y).to_dense(), k(x, diag=True)
    Kb, Kl, Kbd = k(xb).to_dense(), k(xl, y).to_dense(), k(xb, diag=True)
    assert K.shape == (3, 5, 5) and Kxy.shape == (3, 5, 4) and Kd.shape == (3, 5)
    assert Kb.shape == (3, 5, 5) and Kl.shape == (2, 3, 5, 4) and Kbd.shape == (3, 5)
    for b in range(3):
        _close(K[b], _oracle(x, x, sw[b], sb[b]), 1e-13)
        _close(Kxy[b], _oracle(x, y, sw[b], sb[b]), 1e-13)
        _close(Kd[b], _oracle(x, x, sw[b], sb[b], diag=True), 1e-13)
        _close(Kb[b], _oracle(xb[b], xb[b], sw[b], sb[b]), 1e-13)
        _close(Kbd[b], _oracle(xb[b], xb[b], sw[b], sb[b], diag=True), 1e-13)
        for i in range(2):
            _close(Kl[i, b], _oracle(xl[i, 0], y, sw[b], sb[b]), 1e-13)
        kb = NNGPKernel(arch, sigma_w2=sw[b], sigma_b2=sb[b])
        torch.testing.assert_close(K[b], kb(x).to_dense(), rtol=1e-13, atol=0)
        torch.testing.assert_close(Kxy[b], kb(x, y).to_dense(), rtol=1e-13, atol=0)
    # a two-dimensional batch shape, one value per entry given with shape batch_shape
    sw2 = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.5, 2.5]], dtype=DT)
    k2 = NNGPKernel(arch, sigma_w2=sw2, sigma_b2=0.3, batch_shape=torch.Size([2, 3]))
    K2 = k2(x, y).to_dense()
    assert K2.shape == (2, 3, 5, 4)
    for i in range(2):
        for j in range(3):
            _close(K2[i, j], _oracle(x, y, float(sw2[i, j]), 0.3), 1e-13)
    # the gradient of batch b's kernel reaches only batch b's parameters
    (gw,) = torch.autograd.grad(K[1].sum(), k.raw_sigma_w2)
    assert gw[1].abs().item() > 0 and gw[0].item() == 0 and gw[2].item() == 0
    # kernel indexing (gpytorch slices the raw parameters): k[2] is batch 2's kernel
    torch.testing.assert_close(k[2](x).to_dense(), K[2], rtol=1e-13, atol=0)


def test_batch_input_gradient_not_doubled_for_a_detached_copy():
    """Batched kernel, x2 = x.detach().clone() with x requiring grad (k(x, X_train) at a training point):
    d/dx sum K_b(x, x2) equals the central difference of the numpy closed form in x alone (not both
    arguments: the symmetric path must not be taken).  FD step 1e-6: truncation ~1e-8 (K is C^1 at x = x2,
    with Lipschitz derivative away from it)."""
    arch = _arch()
    g = torch.Generator().manual_seed(2)
    sw, sb = [1.5, 2.5], [0.2, 0.0]
    k = NNGPKernel(arch, sigma_w2=torch.tensor(sw, dtype=DT), sigma_b2=torch.tensor(sb, dtype=DT),
                   batch_shape=torch.Size([2]))
    x0 = torch.randn(3, 3, generator=g, dtype=DT)
    x = x0.clone().requires_grad_(True)
    K = k(x, x0.clone()).to_dense()
    (gx,) = torch.autograd.grad(K.sum(), x)
    X0 = x0.numpy()
    h = 1e-6
    fd = np.zeros_like(X0)
    for i in range(3):
        for j in range(3):
            e = np.zeros_like(X0)
            e[i, j] = h
            fd[i, j] = sum(_oracle(X0 + e, X0, sw[b], sb[b]).sum() - _oracle(X0 - e, X0, sw[b], sb[b]).sum()
                           for b in range(2)) / (2 * h)
    np.testing.assert_allclose(gx.numpy(), fd, rtol=1e-6, atol=1e-7)


def test_batch_exact_gp():
    """Two independent GPs in one batch ExactGP (GPyTorch's batch-GP pattern): the marginal likelihood of each
    batch improves and each batch's sigma_w2 is fitted separately."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 30, 3, generator=g, dtype=DT) * 2 - 1
    y = torch.stack([torch.sin(3 * x[0, :, 0]), x[1, :, 1] ** 2]) + 0.05 * torch.randn(2, 30, generator=g, dtype=DT)
    bs = torch.Size([2])

    class BatchGP(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(x, y, gpytorch.likelihoods.GaussianLikelihood(batch_shape=bs))
            self.mean_module = gpytorch.means.ConstantMean(batch_shape=bs)
            self.covar_module = NNGPKernel(_arch(), sigma_w2=2.0, sigma_b2=0.1, batch_shape=bs)

        def forward(self, z):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(z), self.covar_module(z))

    model = BatchGP().double()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = -mll(model(x), y)
        assert loss.shape == (2,)
        loss.sum().backward()
        opt.step()
        first = loss.detach() if first is None else first
    assert (loss.detach() < first - 0.05).all()
    sw = model.covar_module.sigma_w2.detach().reshape(2)
    assert abs(float(sw[0] - sw[1])) > 1e-3


# ------------------------------------------------------------------------------------- priors
def test_priors_are_registered_and_enter_the_mll():
    """Priors appear in named_priors() (also through ScaleKernel) and the marginal log likelihood with them
    exceeds the one without by (log p(sigma_w2) + log p(sigma_b2)) / N, with scipy's Gamma / normal log
    densities as the oracle (1e-12)."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(20, 3, generator=g, dtype=DT)
    y = torch.cos(2 * x[:, 1]) + 0.1 * torch.randn(20, generator=g, dtype=DT)
    pw, pb = GammaPrior(3.0, 2.0), NormalPrior(0.5, 0.25)  # float32 prior parameters: exact binary values
    with_p = _GP(x, y, NNGPKernel(_arch(), sigma_w2=1.7, sigma_b2=0.4, sigma_w2_prior=pw,
                                  sigma_b2_prior=pb)).double()
    without = _GP(x, y, NNGPKernel(_arch(), sigma_w2=1.7, sigma_b2=0.4)).double()
    names = {name for name, *_ in with_p.named_priors()}
    assert {"covar_module.base_kernel.sigma_w2_prior", "covar_module.base_kernel.sigma_b2_prior"} <= names
    assert not any("sigma" in name for name, *_ in without.named_priors())
    for m in (with_p, without):
        m.train()
    l1 = gpytorch.mlls.ExactMarginalLogLikelihood(with_p.likelihood, with_p)(with_p(x), y)
    l0 = gpytorch.mlls.ExactMarginalLogLikelihood(without.likelihood, without)(without(x), y)
    logp = scipy.stats.gamma.logpdf(1.7, a=3.0, scale=1 / 2.0) + scipy.stats.norm.logpdf(0.4, 0.5, 0.25)
    assert abs((float(l1) - float(l0)) * 20 - logp) < 1e-12 * (1 + abs(logp))
    # the prior's gradient reaches the raw parameter
    (gr,) = torch.autograd.grad(l1, with_p.covar_module.base_kernel.raw_sigma_w2)
    (g0,) = torch.autograd.grad(l0, without.covar_module.base_kernel.raw_sigma_w2)
    assert abs(float(gr - g0)) > 1e-6
    # sampling from the prior sets sigma_w2 through the setter (shape kept, value in the constraint)
    k = with_p.covar_module.base_kernel
    torch.manual_seed(0)
    k.sample_from_prior("sigma_w2_prior")
    assert k.sigma_w2.shape == (1, 1) and float(k.sigma_w2) > 0 and abs(float(k.sigma_w2) - 1.7) > 1e-9
    # batch priors: one log density per batch entry, summed per batch of the MLL
    kb = NNGPKernel(_arch(), sigma_w2=torch.tensor([1.0, 2.0]), batch_shape=torch.Size([2]), sigma_w2_prior=pw)
    (_, _, prior, closure, _), = list(kb.named_priors())
    lp = prior.log_prob(closure(kb)).detach().reshape(2).numpy()
    np.testing.assert_allclose(lp, scipy.stats.gamma.logpdf([1.0, 2.0], a=3.0, scale=0.5), rtol=1e-12)
    with pytest.raises(TypeError, match="sigma_w2_prior"):
        NNGPKernel(_arch(), sigma_w2_prior=scipy.stats.gamma(3.0))
    with pytest.raises(TypeError, match="sigma_b2_prior"):
        NNGPKernel(_arch(), sigma_b2_prior="gamma")


# ------------------------------------------------------------------------------------- constraints
def test_constraints_are_honoured():
    """An Interval(0.5, 3) on sigma_w2 and GreaterThan(0.1) on sigma_b2: any raw value maps inside, an
    optimiser pushing sigma_w2 up stops below 3, the kernel uses the constrained values (closed form),
    values outside the constraints and constraints allowing negative variances are rejected by name."""
    arch = _arch()
    k = NNGPKernel(arch, sigma_w2=1.0, sigma_b2=0.5, sigma_w2_constraint=Interval(0.5, 3.0),
                   sigma_b2_constraint=GreaterThan(0.1))
    assert isinstance(k.raw_sigma_w2_constraint, Interval) and isinstance(k.raw_sigma_b2_constraint, GreaterThan)
    assert abs(float(k.sigma_w2) - 1.0) < 1e-12 and abs(float(k.sigma_b2) - 0.5) < 1e-12
    with torch.no_grad():
        for raw in (-50.0, 0.0, 50.0):
            k.raw_sigma_w2.fill_(raw)
            k.raw_sigma_b2.fill_(raw)
            assert 0.5 <= float(k.sigma_w2) <= 3.0 and float(k.sigma_b2) >= 0.1
    k.sigma_w2, k.sigma_b2 = 1.0, 0.5
    x = torch.rand(6, 3, generator=torch.Generator().manual_seed(5), dtype=DT)
    opt = torch.optim.Adam(k.parameters(), lr=0.5)
    for _ in range(40):  # K grows with sigma_w2: maximising it drives sigma_w2 to the upper bound
        opt.zero_grad()
        (-k(x).to_dense().sum()).backward()
        opt.step()
    sw, sb = float(k.sigma_w2), float(k.sigma_b2)
    assert 2.5 < sw <= 3.0 and sb >= 0.1
    _close(k(x).to_dense(), _oracle(x, x, sw, sb), 1e-12)
    for bad in (3.5, 0.5, 0.2):  # outside, or on the open interval's bound (sigmoid never reaches it)
        with pytest.raises(ValueError, match="sigma_w2"):
            k.sigma_w2 = bad
    with pytest.raises(ValueError, match="sigma_b2"):
        k.sigma_b2 = 0.05
    with pytest.raises(ValueError, match="sigma_b2"):  # the default sigma_b2 = 0 violates GreaterThan(0.1)
        NNGPKernel(arch, sigma_b2_constraint=GreaterThan(0.1))
    with pytest.raises(ValueError, match="sigma_w2_constraint"):
        NNGPKernel(arch, sigma_w2_constraint=Interval(-1.0, 1.0))
    with pytest.raises(TypeError, match="sigma_b2_constraint"):
        NNGPKernel(arch, sigma_b2_constraint=0.0)
    # defaults: Positive for sigma_w2, sigma_b2 = 0 exactly representable (raw 0, square transform)
    k0 = NNGPKernel(arch)
    assert type(k0.raw_sigma_w2_constraint).__name__ == "Positive"
    assert float(k0.raw_sigma_b2) == 0.0 and float(k0.sigma_b2) == 0.0
    with pytest.raises(ValueError, match="sigma_w2"):
        k0.sigma_w2 = 0.0


# ------------------------------------------------------------------------------------- 1-D inputs
def test_one_dimensional_inputs():
    """x of shape (N,) is x[:, None] for an architecture with n = 1 (closed form) and for ArcCosineKernel
    (closed form c_m |x|^m |y|^m (1 + sign(xy)) / 2); n != 1 rejects it naming x1."""
    arch = _arch(n=1)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(7, generator=g, dtype=DT)
    y = torch.randn(4, generator=g, dtype=DT)
    k = NNGPKernel(arch, sigma_w2=1.3, sigma_b2=0.2)
    assert torch.equal(k(x).to_dense(), k(x[:, None]).to_dense())
    assert torch.equal(k(x, y).to_dense(), k(x[:, None], y[:, None]).to_dense())
    assert torch.equal(k(x, diag=True), k(x[:, None], diag=True))
    _close(k(x, y).to_dense(), _oracle(x[:, None], y[:, None], 1.3, 0.2), 1e-13)
    kb = NNGPKernel(arch, sigma_w2=torch.tensor([1.0, 2.0]), batch_shape=torch.Size([2]))
    assert torch.equal(kb(x, y).to_dense(), kb(x[:, None], y[:, None]).to_dense())
    with pytest.raises(ValueError, match="x1"):
        NNGPKernel(_arch(n=3))(x).to_dense()
    xs = torch.cat([x, torch.zeros(1, dtype=DT)])  # a zero input: k_0 = 1/2, k_1 = k_2 = 0
    for m, c in ((0, 1.0), (1, 1.0), (2, 3.0)):
        K = ArcCosineKernel(m)(xs, y).to_dense()
        assert torch.equal(K, ArcCosineKernel(m)(xs[:, None], y[:, None]).to_dense())
        X, Y = xs.numpy()[:, None], y.numpy()[None, :]
        want = c * (np.abs(X) * np.abs(Y)) ** m * (1 + np.sign(X * Y)) / 2
        # order 0 at theta = 0 or pi: one ulp of c moves arccos by sqrt(2 ulp) ~ 2e-8 (as in test_arccos)
        np.testing.assert_allclose(K.numpy(), want, rtol=1e-12, atol=1e-7 if m == 0 else 1e-15)


# ------------------------------------------------------------------------------------- ArcCosineKernel
def test_arc_cosine_kernel_batch_shape_and_dtype():
    """batch_shape broadcasts the (parameter-free) kernel; float32 in, float32 out (computed in float64)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 4, generator=g, dtype=DT)
    k = ArcCosineKernel(1, batch_shape=torch.Size([3]))
    K, Kd = k(x).to_dense(), k(x, diag=True)
    assert K.shape == (3, 5, 5) and Kd.shape == (3, 5)
    X = x.numpy()
    nx = np.linalg.norm(X, axis=1)
    c = np.clip(X @ X.T / np.outer(nx, nx), -1, 1)
    want = np.outer(nx, nx) * (np.sqrt(1 - c * c) + (np.pi - np.arccos(c)) * c) / np.pi
    for b in range(3):
        np.testing.assert_allclose(K[b].numpy(), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(Kd[b].numpy(), np.diag(want), rtol=1e-12, atol=1e-12)
    K32 = ArcCosineKernel(1)(x.float()).to_dense()
    assert K32.dtype == torch.float32
    assert torch.equal(K32, ArcCosineKernel(1)(x.float().double()).to_dense().float())


# ------------------------------------------------------------------------------------- argument errors
def test_bad_arguments_name_the_argument():
    arch = _arch()
    k = NNGPKernel(arch)
    a = ArcCosineKernel(1)
    x = torch.rand(4, 3, dtype=DT)
    for kern in (k, a):
        for bad in (None, "abc", [[1.0, 2.0, 3.0]], np.ones((2, 3))):
            with pytest.raises(TypeError, match="x1"):
                kern(bad)
        with pytest.raises(TypeError, match="x2"):
            kern(x, "abc")
        with pytest.raises(ValueError, match="x2"):
            kern(x, torch.rand(4, 5, dtype=DT))
        with pytest.raises(ValueError, match="x1"):
            kern(torch.tensor(1.0, dtype=DT))
        with pytest.raises(ValueError, match="x1"):
            kern(torch.full((2, 3), math.nan, dtype=DT)).to_dense()
        with pytest.raises(ValueError, match="last_dim_is_batch"):
            kern.forward(x, x, last_dim_is_batch=True)
    with pytest.raises(ValueError, match="input_shape"):
        k(torch.rand(4, 5, dtype=DT))
    with pytest.raises(ValueError, match="batch_shape"):
        NNGPKernel(arch, batch_shape=torch.Size([0]))
    with pytest.raises(ValueError, match="batch_shape"):
        NNGPKernel(arch, batch_shape=(2, -1))
    with pytest.raises(TypeError, match="batch_shape"):
        NNGPKernel(arch, batch_shape=2)
    with pytest.raises(ValueError, match="sigma_w2"):
        NNGPKernel(arch, sigma_w2=torch.tensor([1.0, 2.0, 3.0]), batch_shape=torch.Size([2]))
    with pytest.raises(ValueError, match="sigma_w2"):
        NNGPKernel(arch, sigma_w2=torch.tensor([1.0, -2.0]), batch_shape=torch.Size([2]))
    with pytest.raises(ValueError, match="sigma_b2"):
        NNGPKernel(arch, sigma_b2=math.inf)
    with pytest.raises(TypeError, match="max_elements"):
        NNGPKernel(arch, max_elements=1.5)
    with pytest.raises(TypeError, match="architecture"):
        NNGPKernel("dense")


def test_state_dict_of_the_unbatched_layout_still_loads():
    """A state_dict saved before batch_shape support (raw variances of shape (1,)) loads into an
    unbatched kernel with the same values; a batched kernel refuses it with torch's size error."""
    import math

    from gpbound.kernels import NNGPKernel
    from gpbound.kernels.presets import get_preset

    arch = get_preset("dense", image_size=2, in_channels=1, width=4, depth=1)
    k = NNGPKernel(arch)
    old = {"raw_sigma_w2": torch.tensor([math.log(math.expm1(1.5))], dtype=torch.float64),
           "raw_sigma_b2": torch.tensor([0.3], dtype=torch.float64)}
    k.load_state_dict(old)
    assert float(k.sigma_w2) == pytest.approx(1.5, rel=1e-14) and float(k.sigma_b2) == pytest.approx(0.09, rel=1e-14)
    with pytest.raises(RuntimeError, match="size mismatch"):
        NNGPKernel(arch, batch_shape=torch.Size([2])).load_state_dict(old)
