"""Tests of gpbound.sampling: GP path covariance (Wishart s.e.), network paths, l1-ball samplers."""
import math
import warnings

import pytest
import torch
from hypothesis import given, settings, strategies as st

from gpbound.sampling import (sample_gp_paths, sample_l1_ball, sample_network_paths,
                              sample_segment)


def _rbf(X1, X2):
    return torch.exp(-0.5 * torch.cdist(X1, X2) ** 2)


def test_gp_path_covariance_matches_kernel():
    # zero-mean sample covariance S = Z^T Z / m; its s.e. is sqrt((K_ii K_jj + K_ij^2)/m)
    # (Wishart); tolerance 5 s.e. per entry (21 entries -> false alarm ~1e-5), seeded
    X = torch.linspace(-1, 1, 6, dtype=torch.float64).unsqueeze(-1)
    K = _rbf(X, X)
    m = 4000
    Z = sample_gp_paths(_rbf, X, m, seed=0)
    assert Z.shape == (m, 6) and Z.dtype == torch.float64
    S = Z.T @ Z / m
    se = torch.sqrt((K.diagonal()[:, None] * K.diagonal()[None, :] + K ** 2) / m)
    assert float(((S - K).abs() / se).max()) < 5.0
    # seeded: same seed, same paths
    assert torch.equal(sample_gp_paths(_rbf, X, 5, seed=3), sample_gp_paths(_rbf, X, 5, seed=3))


def test_gp_paths_nngp_kernel():
    from gpbound import kernels
    arch = kernels.Architecture(kernels.serial(kernels.Dense(8), kernels.ReLU(), kernels.Dense(1)),
                                input_shape=(3,))
    kern = kernels.NNGPKernel(arch)
    X = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    K = kern(X, X).to_dense().detach()
    m = 4000
    Z = sample_gp_paths(kern, X, m, seed=1)
    S = Z.T @ Z / m
    se = torch.sqrt((K.diagonal()[:, None] * K.diagonal()[None, :] + K ** 2) / m)
    assert float(((S - K).abs() / se).max()) < 5.0  # 5 s.e., see above


def test_network_paths_one_hidden_layer_covariance():
    # one hidden ReLU layer: E[f(x) f(y)] = sigma_w2 * E[relu(u) relu(v)] exactly at any width,
    # i.e. the NNGP kernel; s.e. from the sample std of f(x_i) f(x_j); tolerance 5 s.e.
    from gpbound import kernels
    arch = kernels.Architecture(kernels.serial(kernels.Dense(32), kernels.ReLU(), kernels.Dense(1)),
                                input_shape=(4,))
    X = torch.randn(4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    m = 1500
    F = sample_network_paths(arch, X, m, seed=0, chunk=500)
    assert F.shape == (m, 4)
    K = kernels.NNGPKernel(arch)(X, X).to_dense().detach()
    prods = F[:, :, None] * F[:, None, :]
    se = prods.std(0) / math.sqrt(m)
    assert float(((prods.mean(0) - K).abs() / se).max()) < 5.0


def test_jitter_escalation_warns_and_raises():
    K = torch.diag(torch.tensor([1.0, 1.0, -1e-6], dtype=torch.float64))
    X = torch.zeros(3, 1, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="jitter"):
        Z, eps = sample_gp_paths(K, X, 10, seed=0, return_jitter=True)
    # the jitter is relative to the mean diagonal; it must lift the eigenvalue -1e-6 above 0
    assert eps * float(K.diagonal().mean()) > 1e-6 and Z.shape == (10, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="positive definite"):
            sample_gp_paths(K, X, 10, max_jitter=1e-8)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 40), r=st.floats(0.01, 10.0), seed=st.integers(0, 1000))
def test_l1_ball_in_ball_and_surface(n, r, seed):
    x0 = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    U = sample_l1_ball(x0, r, 200, seed=seed)
    assert U.shape == (200, n)
    assert float((U - x0).abs().sum(-1).max()) <= r * (1 + 1e-12)
    S = sample_l1_ball(x0, r, 50, kind="surface", seed=seed)
    assert torch.allclose((S - x0).abs().sum(-1), torch.full((50,), r, dtype=torch.float64), rtol=1e-12)
    V = sample_l1_ball(x0, r, kind="vertices")
    assert V.shape == (2 * n, n)
    D = V - x0
    assert torch.allclose(D.abs().sum(-1), torch.full((2 * n,), r, dtype=torch.float64))
    assert int((D != 0).sum()) == 2 * n


def test_l1_ball_uniform_moments():
    # uniform in B^1_r: E|x_i - x0_i| = r/(n+1); P(||x - x0||_1 <= r/2) = 2^-n; signs symmetric.
    # tolerances: 5 s.e. of the sample means (seeded)
    n, r, m = 5, 2.0, 40000
    x0 = torch.arange(n, dtype=torch.float64)
    U = sample_l1_ball(x0, r, m, seed=11) - x0
    a = U.abs()
    assert float((a.mean(0) - r / (n + 1)).abs().max()) < 5 * float(a.std(0).max()) / math.sqrt(m)
    inner = float(((a.sum(-1) <= r / 2).double().mean()))
    p = 2.0 ** -n
    assert abs(inner - p) < 5 * math.sqrt(p * (1 - p) / m)
    assert float(U.mean(0).abs().max()) < 5 * float(U.std(0).max()) / math.sqrt(m)
    # surface: E|x_i - x0_i| = r/n
    S = sample_l1_ball(x0, r, m, kind="surface", seed=12) - x0
    assert float((S.abs().mean(0) - r / n).abs().max()) < 5 * float(S.abs().std(0).max()) / math.sqrt(m)


def test_segment():
    x0 = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    v = torch.tensor([0.0, 3.0, 4.0], dtype=torch.float64)
    P = sample_segment(x0, v, 2.0, 11)
    assert torch.allclose(P[0], x0) and torch.allclose(P[-1], x0 + 2.0 * v / 5.0)
    assert torch.allclose(torch.linalg.vector_norm(P - x0, dim=-1),
                          torch.linspace(0, 2, 11, dtype=torch.float64))
    Q = sample_segment(x0, v, 2.0, 100, kind="uniform", seed=0)
    t = torch.linalg.vector_norm(Q - x0, dim=-1)
    assert float(t.max()) <= 2.0 and float(t.min()) >= 0.0


def test_bad_input():
    x0 = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="r must"):
        sample_l1_ball(x0, 0.0, 5)
    with pytest.raises(ValueError, match="r must"):
        sample_l1_ball(x0, -1.0, 5)
    with pytest.raises(ValueError, match="num must"):
        sample_l1_ball(x0, 1.0, 0)
    with pytest.raises(ValueError, match="x0 must be finite"):
        sample_l1_ball(torch.tensor([float("nan"), 0.0]), 1.0, 5)
    with pytest.raises(ValueError, match="kind"):
        sample_l1_ball(x0, 1.0, 5, kind="gaussian")
    with pytest.raises(ValueError, match="x0 must have shape"):
        sample_l1_ball(torch.zeros(2, 3), 1.0, 5)
    with pytest.raises(ValueError, match="v must have"):
        sample_segment(x0, torch.ones(2), 1.0, 5)
    with pytest.raises(ValueError, match="non-zero"):
        sample_segment(x0, torch.zeros(3), 1.0, 5)
    with pytest.raises(ValueError, match="num_paths"):
        sample_gp_paths(_rbf, torch.zeros(3, 1), 0)
    with pytest.raises(ValueError, match="X must have shape"):
        sample_gp_paths(_rbf, torch.zeros(3), 2)
    with pytest.raises(ValueError, match="jitter"):
        sample_gp_paths(_rbf, torch.zeros(3, 1), 2, jitter=-1.0)
    with pytest.raises(ValueError, match="kernel matrix must have shape"):
        sample_gp_paths(torch.eye(2), torch.zeros(3, 1), 2)
    with pytest.raises(TypeError, match="arch"):
        sample_network_paths(object(), torch.zeros(3, 1), 2)
