"""Certified radii of trained GP classifiers (gpbound.posterior): oracles, sampling, Lipschitz constants."""
import math

import gpytorch
import numpy as np
import pytest
import torch
from scipy import optimize

from gpbound.kernels import Architecture, ArcCosineKernel, Conv, Dense, Flatten, NNGPKernel, ReLU, serial
from gpbound.lipschitz import feature_lipschitz
from gpbound.posterior import CertificateResult, certify, lipschitz_constant, posterior_mean_function
from gpbound.crossing import clopper_pearson


class GP(gpytorch.models.ExactGP):
    def __init__(self, X, y, lik, kernel, mean=None):
        super().__init__(X, y, lik)
        self.mean_module = mean if mean is not None else gpytorch.means.ConstantMean()
        self.covar_module = kernel

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


def _toy_model(dtype=torch.float64, kernel=None, mean=None, N=40, seed=0):
    """Synthetic 2-d labels sign(sin 2x1 + 0.7 x2), RBF hyperparameters fixed (no training needed)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(N, 2, generator=g, dtype=torch.float64) * 4 - 2
    y = torch.sign(torch.sin(2 * X[:, 0]) + 0.7 * X[:, 1])
    lik = gpytorch.likelihoods.GaussianLikelihood()
    if kernel is None:
        kernel = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())
        kernel.outputscale = 1.5
        kernel.base_kernel.lengthscale = 0.7
    model = GP(X.to(dtype), y.to(dtype), lik, kernel, mean)
    lik.noise = 0.05
    if isinstance(model.mean_module, gpytorch.means.ConstantMean):
        model.mean_module.constant.data.fill_(0.1)
    return model.to(dtype).eval()


def _test_points(k, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(k, 2, generator=g, dtype=torch.float64) * 3 - 1.5


def _distance_to_zero_set(f, x0, R=6.0, angles=480, steps=600):
    """Distance from x0 to {f = 0} in the plane: first sign change along each of ``angles`` rays
    (grid of ``steps`` radii up to R), refined by brentq, minimised over the rays, then over the
    angle (bounded scalar minimisation around the best ray)."""
    s0 = np.sign(f(x0[None])[0])
    ts = np.linspace(0, R, steps)[1:]

    def ray_root(th, grid=ts):
        d = np.array([math.cos(th), math.sin(th)])
        grid = grid if grid is not None else ts
        v = f(x0[None, :] + grid[:, None] * d[None, :])
        idx = np.nonzero(np.sign(v) != s0)[0]
        if not len(idx):
            return np.inf
        j = idx[0]
        a = grid[j - 1] if j > 0 else 0.0
        return optimize.brentq(lambda t: f((x0 + t * d)[None])[0], a, grid[j], xtol=1e-13)

    th = np.linspace(0, 2 * np.pi, angles, endpoint=False)
    d = np.stack([np.cos(th), np.sin(th)], 1)
    P = x0[None, None, :] + ts[None, :, None] * d[:, None, :]
    v = f(P.reshape(-1, 2)).reshape(P.shape[:2])
    first = np.full(angles, np.inf)
    for j in range(angles):
        idx = np.nonzero(np.sign(v[j]) != s0)[0]
        if len(idx):
            first[j] = ts[idx[0]]
    j = int(np.argmin(first))
    if not np.isfinite(first[j]):
        return np.inf
    step = 2 * np.pi / angles
    near = np.linspace(0, 1.5 * first[j], 300)[1:]  # rays next to the best one cross before 1.5x its crossing

    def near_root(t):
        return ray_root(t, near)

    res = optimize.minimize_scalar(near_root, bounds=(th[j] - 2 * step, th[j] + 2 * step), method="bounded",
                                   options={"xatol": 1e-8})
    return min(float(res.fun), ray_root(th[j]))


def _np_mean(model):
    f = posterior_mean_function(model)

    def g(P):
        with torch.no_grad():
            return f(torch.from_numpy(np.ascontiguousarray(P))).numpy()

    return g


# ------------------------------------------------------------------------------------------ (a)
def test_mean_radius_against_exact_distance_in_the_plane():
    """The true distance to the zero set of m is >= the certified radius, and within 10x of it
    (measured: 1.9-3.8x on these 8 points)."""
    model = _toy_model()
    x0 = _test_points(8)
    res = certify(model, x0, p=2, delta=0.1)
    f = _np_mean(model)
    ratios = []
    for i in range(x0.shape[0]):
        d_true = _distance_to_zero_set(f, x0[i].numpy())
        r = float(res.mean_radius[i])
        assert r > 0
        assert d_true >= r, (i, d_true, r)
        ratios.append(d_true / r)
        # the disc of radius r (closed, dense polar grid) has no sign change
        th = np.linspace(0, 2 * np.pi, 360, endpoint=False)
        ts = np.linspace(0, r, 50)
        P = x0[i].numpy()[None, None] + ts[None, :, None] * np.stack([np.cos(th), np.sin(th)], 1)[:, None, :]
        v = f(P.reshape(-1, 2))
        assert np.all(np.sign(v) == np.sign(float(res.m0[i])))
    assert max(ratios) <= 10.0, ratios
    # lp balls: r_p = r_2 / s_U (s_U = sqrt(2) for p = inf in the plane; 1 for p = 1)
    r_inf = certify(model, x0, p=math.inf).mean_radius
    r_1 = certify(model, x0, p=1).mean_radius
    torch.testing.assert_close(r_inf, res.mean_radius / math.sqrt(2), rtol=1e-12, atol=0)
    torch.testing.assert_close(r_1, res.mean_radius, rtol=1e-12, atol=0)


def test_mean_and_variance_agree_with_gpytorch_posterior():
    model = _toy_model()
    x0 = _test_points(8)
    res = certify(model, x0)
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), gpytorch.settings.max_cholesky_size(10_000):
        mvn = model(x0)
    torch.testing.assert_close(res.m0, mvn.mean, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(res.s0, mvn.variance.sqrt(), rtol=1e-6, atol=1e-8)
    assert res.rkhs_norm > 0 and res.kernel == "ScaleKernel(RBFKernel)"
    assert res.L == pytest.approx(math.sqrt(1.5) / 0.7, rel=1e-6)


# ------------------------------------------------------------------------------------------ (b)
JITTER = 1e-9  # added to the diagonal of the grid's posterior covariance before its Cholesky factor


def _crossing_frequency(model, x0, r, samples, seed, n_rad=16, n_ang=48):
    """Joint posterior sample paths on a polar grid of the closed disc of radius r around x0
    (centre, n_rad circles of n_ang points); returns the number of paths with a sign change."""
    th = torch.linspace(0, 2 * math.pi, n_ang + 1, dtype=torch.float64)[:-1]
    ts = torch.linspace(0, r, n_rad + 1, dtype=torch.float64)[1:]
    ring = torch.stack([torch.cos(th), torch.sin(th)], 1)
    G = torch.cat([x0[None], (x0[None, None] + ts[:, None, None] * ring[None]).reshape(-1, 2)])
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), gpytorch.settings.max_cholesky_size(10_000):
        mvn = model(G)
        mean, cov = mvn.mean, mvn.covariance_matrix
    Lc = torch.linalg.cholesky(cov + JITTER * torch.eye(cov.shape[0], dtype=cov.dtype))
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(cov.shape[0], samples, generator=g, dtype=torch.float64)
    F = mean[:, None] + Lc @ Z
    crossed = (torch.sign(F) != torch.sign(F[:1])).any(0)
    return int(crossed.sum())


def test_bayes_radius_by_joint_posterior_sampling():
    """Sign changes of 2000 posterior paths on the certified disc: Clopper-Pearson lower end <= delta;
    on a disc 10x larger the frequency is significantly above delta (the machinery detects failures).
    Measured (seeds as below): 0, 0.02, 0 at the certified radius; 0.963, 0.19, 0.956 at 10x."""
    model = _toy_model()
    x0 = _test_points(8)
    delta = 0.1
    res = certify(model, x0, p=2, delta=delta)
    S = 2000
    for i in (0, 3, 7):
        r = float(res.bayes_radius[i])
        assert 0 < r < float(res.mean_radius[i])
        k = _crossing_frequency(model, x0[i], r, S, seed=10 + i)
        lo, _ = clopper_pearson(k, S, level=0.95)
        assert lo <= delta, (i, k / S)
        k10 = _crossing_frequency(model, x0[i], 10 * r, S, seed=20 + i)
        lo10, _ = clopper_pearson(k10, S, level=0.95)
        assert lo10 > delta, (i, k10 / S)


def test_bayes_radius_monotone_in_delta_and_zero_mean():
    model = _toy_model()
    x0 = _test_points(4)
    r = [certify(model, x0, delta=d).bayes_radius for d in (0.01, 0.1, 0.5)]
    assert torch.all(r[0] <= r[1]) and torch.all(r[1] <= r[2])
    # a point where the mean vanishes and s0 > 0: radius 0 is all one can certify
    zero = _toy_model(mean=gpytorch.means.ZeroMean())
    assert isinstance(zero.mean_module, gpytorch.means.ZeroMean)
    res = certify(zero, x0)
    assert torch.all(res.bayes_radius >= 0)


# ------------------------------------------------------------------------------------------ (c)
def _measured_ratio(kernel, X, Y):
    with torch.no_grad():
        kxx = kernel(X, X, diag=True)
        kyy = kernel(Y, Y, diag=True)
        kxy = kernel(X, Y, diag=True)
    kxx, kyy, kxy = (t if isinstance(t, torch.Tensor) else t.to_dense() for t in (kxx, kyy, kxy))
    d = (kxx - 2 * kxy + kyy).clamp_min(0).sqrt()
    return d / torch.linalg.norm(X - Y, dim=-1)


def _pairs(n, count, scale, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(count, n, generator=g, dtype=torch.float64)
    D = torch.randn(count, n, generator=g, dtype=torch.float64)
    s = scale * torch.logspace(-4, 1, count, dtype=torch.float64)[:, None]
    return X, X + s * D / torch.linalg.norm(D, dim=1, keepdim=True)


def test_lipschitz_rbf_closed_form_vs_measured():
    k = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel(ard_num_dims=3)).double()
    k.outputscale = 2.5
    k.base_kernel.lengthscale = torch.tensor([[0.4, 1.0, 2.0]])
    L = lipschitz_constant(k)
    assert L == pytest.approx(math.sqrt(2.5) / 0.4, rel=1e-6)
    X, Y = _pairs(3, 4000, 1.0, 0)
    ratio = _measured_ratio(k, X, Y)
    assert float(ratio.max()) <= L * (1 + 1e-6)
    # attained along the shortest lengthscale for close pairs
    X = torch.zeros(1, 3, dtype=torch.float64)
    Y = torch.tensor([[1e-4, 0.0, 0.0]], dtype=torch.float64)
    assert float(_measured_ratio(k, X, Y)) == pytest.approx(L, rel=1e-6)


def test_lipschitz_nngp_and_arccos():
    arch = Architecture(serial(Conv(4, 3), ReLU(), Flatten(8), ReLU(), Dense(1)), input_shape=(1, 4, 4))
    k = NNGPKernel(arch, sigma_w2=1.7, sigma_b2=0.3)
    assert lipschitz_constant(k) == pytest.approx(feature_lipschitz(arch, 1.7), rel=1e-12)
    sk = gpytorch.kernels.ScaleKernel(NNGPKernel(arch, sigma_w2=1.7)).double()
    sk.outputscale = 3.0
    assert lipschitz_constant(sk) == pytest.approx(math.sqrt(3.0) * feature_lipschitz(arch, 1.7), rel=1e-6)
    X, Y = _pairs(16, 300, 1.0, 1)
    assert float(_measured_ratio(k, X, Y).max()) <= lipschitz_constant(k) * (1 + 1e-6)
    a1 = ArcCosineKernel(order=1)
    assert lipschitz_constant(a1) == 1.0
    X, Y = _pairs(5, 3000, 1.0, 2)
    ratio = _measured_ratio(a1, X, Y)
    assert float(ratio.max()) <= 1 + 1e-6 and float(ratio.max()) >= 0.99  # attained for close pairs
    for order in (0, 2):
        with pytest.raises(ValueError, match="not Lipschitz"):
            lipschitz_constant(ArcCosineKernel(order=order))


# ------------------------------------------------------------------------------------------ (d)
def test_unsupported_kernel_and_model_raise():
    with pytest.raises(TypeError, match="MaternKernel.*RBFKernel"):
        lipschitz_constant(gpytorch.kernels.MaternKernel())
    model = _toy_model(kernel=gpytorch.kernels.ScaleKernel(gpytorch.kernels.MaternKernel()))
    with pytest.raises(TypeError, match="MaternKernel"):
        certify(model, _test_points(2))
    model = _toy_model(kernel=ArcCosineKernel(order=0))
    with pytest.raises(ValueError, match="order 0"):
        certify(model, _test_points(2))
    with pytest.raises(TypeError, match="ExactGP"):
        certify(torch.nn.Linear(2, 1), _test_points(2))
    model = _toy_model()
    with pytest.raises(ValueError, match="delta"):
        certify(model, _test_points(2), delta=1.5)
    with pytest.raises(ValueError, match="shape"):
        certify(model, torch.zeros(3, 5, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ (e)
def test_batch_and_dtype():
    model = _toy_model()
    x0 = _test_points(6)
    res = certify(model, x0, delta=0.2)
    assert isinstance(res, CertificateResult)
    for name in ("mean_radius", "bayes_radius", "m0", "s0"):
        t = getattr(res, name)
        assert t.shape == (6,) and t.dtype == torch.float64
    # batched == one row at a time (bisection is elementwise)
    for i in range(6):
        one = certify(model, x0[i], delta=0.2)
        assert one.mean_radius.shape == ()
        assert float(one.mean_radius) == pytest.approx(float(res.mean_radius[i]), rel=1e-12)
        assert float(one.bayes_radius) == pytest.approx(float(res.bayes_radius[i]), rel=1e-9)
    # float32 model and inputs: computed in float64, results float64, close to the float64 model's
    m32 = _toy_model(dtype=torch.float32)
    r32 = certify(m32, x0.float(), delta=0.2)
    assert r32.mean_radius.dtype == torch.float64
    torch.testing.assert_close(r32.mean_radius, res.mean_radius, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(r32.bayes_radius, res.bayes_radius, rtol=1e-4, atol=1e-7)
    # the float32 model itself is not modified
    assert next(m32.parameters()).dtype == torch.float32


# ------------------------------------------------------------------------------------------ report check
def test_check_posterior_quick_rbf(tmp_path):
    """The report check in quick mode, RBF only: PASS, table, PNG, attack ratios >= 1."""
    from gpbound.report.checks import CheckContext
    from gpbound.report.plots import is_png
    from gpbound.report.posterior_check import check_posterior

    res = check_posterior(CheckContext(out_dir=tmp_path, quick=True), kernels=("rbf",))
    assert res.status == "PASS", [str(c) for c in res.comparisons]
    assert is_png(tmp_path / res.figures[0])
    assert res.table["rows"][0][0] == "rbf"
    assert all(r >= 1 for r in res.numbers["rbf"]["attack_ratios"])
    assert "Median attack distance / certified mean radius" in res.details
