"""Fast paths of the NNGP kernel maps against plain, independent evaluations of their defining formulas.

* full-pixel conv map (circular box filter along the pixel-pair diagonal, four slice-adds per offset)
  against the defining sum ``sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}`` written as explicit loops;
* average pooling (sums of strided views) against ``mean_{a in A, b in B} K_{ab}`` as explicit loops;
* the chunked order-1 arc-cosine map against the closed form evaluated in numpy, and against
  mpmath (50 digits) near ``|c| = 1`` where ``1 - c^2`` cancels;
* the block-triangular Gram matrix against a plain GEMM.
"""
import itertools
import math

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gpbound.kernels import AvgPool, Architecture, Conv, Dense, ReLU, serial
from gpbound.kernels import arccos as arccos_mod
from gpbound.kernels import state as state_mod
from gpbound.kernels.arccos import relu_expectation
from gpbound.kernels.state import KernelState

DT = torch.float64


def _full_state(grid, n1=2, n2=3, seed=0):
    """A random full-pixel state (the conv and pool maps are linear: no PSD structure needed)."""
    g = torch.Generator().manual_seed(seed)
    return KernelState(cross=torch.randn(n1, n2, *grid, *grid, generator=g, dtype=DT),
                       var1=torch.randn(n1, *grid, *grid, generator=g, dtype=DT),
                       var2=torch.randn(n2, *grid, *grid, generator=g, dtype=DT),
                       grid=tuple(grid), full=True, diag_pairs=False)


def _conv_oracle(t, grid, patch, sw2, sb2):
    """Direct evaluation of K'_{a a'} = sb2 + sw2/|P| sum_{b in P} K_{(a+b) mod g, (a'+b) mod g}."""
    d = len(grid)
    lead = t.shape[: t.dim() - 2 * d]
    T = t.reshape(-1, *grid, *grid).numpy()
    out = np.empty_like(T)
    offsets = [range(-((p - 1) // 2), p - (p - 1) // 2) for p in patch]
    for a in itertools.product(*map(range, grid)):
        for a2 in itertools.product(*map(range, grid)):
            acc = np.zeros(T.shape[0])
            for b in itertools.product(*offsets):
                src = tuple((ai + bi) % gi for ai, bi, gi in zip(a, b, grid))
                src2 = tuple((ai + bi) % gi for ai, bi, gi in zip(a2, b, grid))
                acc += T[(slice(None),) + src + src2]
            out[(slice(None),) + a + a2] = sb2 + sw2 / math.prod(patch) * acc
    return torch.from_numpy(out).reshape(*lead, *grid, *grid)


@settings(max_examples=15)
@given(st.data())
def test_full_pixel_conv_equals_defining_sum(data):
    d = data.draw(st.integers(1, 3), label="grid dims")
    grid = tuple(data.draw(st.integers(1, 5 if d < 3 else 3), label=f"g{i}") for i in range(d))
    patch = tuple(data.draw(st.integers(1, g), label=f"p{i}") for i, g in enumerate(grid))
    sw2 = data.draw(st.floats(0.1, 3.0), label="sw2")
    sb2 = data.draw(st.floats(0.0, 1.0), label="sb2")
    s = _full_state(grid, seed=data.draw(st.integers(0, 100), label="seed"))
    out = Conv(1, patch)._kernel(s, sw2, sb2, True)
    assert out.full and out.grid == grid
    for name in ("cross", "var1", "var2"):
        torch.testing.assert_close(getattr(out, name), _conv_oracle(getattr(s, name), grid, patch, sw2, sb2),
                                   rtol=1e-12, atol=1e-12)


def test_full_pixel_conv_tensor_variances_and_gradient():
    """sigma_w2 / sigma_b2 as (grad-requiring) tensors: same values as floats, and d/d sigma_w2 of the
    (linear) map is (K' - sb2) / sw2, which the autograd graph through the slice-adds must reproduce."""
    grid, patch = (4, 3), (3, 2)
    s = _full_state(grid, seed=3)
    sw = torch.tensor(1.3, dtype=DT, requires_grad=True)
    sb = torch.tensor(0.2, dtype=DT, requires_grad=True)
    out = Conv(1, patch)._kernel(s, sw, sb, True)
    ref = _conv_oracle(s.cross, grid, patch, 1.3, 0.2)
    torch.testing.assert_close(out.cross.detach(), ref, rtol=1e-12, atol=1e-12)
    gw, gb = torch.autograd.grad(out.cross.sum(), (sw, sb))
    assert abs(float(gw) - float((ref - 0.2).sum()) / 1.3) < 1e-9 * float((ref - 0.2).abs().sum())
    assert float(gb) == pytest.approx(ref.numel(), rel=1e-12)
    # the input state is not modified by the in-place slice-adds
    s2 = _full_state(grid, seed=3)
    assert torch.equal(s.cross, s2.cross) and torch.equal(s.var1, s2.var1)


def _pool_oracle(t, grid, block):
    """Direct evaluation of K'_{AB} = mean_{a in A, b in B} K_{ab} over equal blocks."""
    d = len(grid)
    lead = t.shape[: t.dim() - 2 * d]
    new = tuple(g // b for g, b in zip(grid, block))
    T = t.reshape(-1, *grid, *grid).numpy()
    out = np.zeros((T.shape[0], *new, *new))
    for A in itertools.product(*map(range, new)):
        for B in itertools.product(*map(range, new)):
            cells_a = list(itertools.product(*[range(Ai * b, Ai * b + b) for Ai, b in zip(A, block)]))
            cells_b = list(itertools.product(*[range(Bi * b, Bi * b + b) for Bi, b in zip(B, block)]))
            vals = [T[(slice(None),) + a + b] for a in cells_a for b in cells_b]
            out[(slice(None),) + A + B] = np.mean(vals, axis=0)
    return torch.from_numpy(out).reshape(*lead, *new, *new)


@pytest.mark.parametrize("grid,block", [((6,), (3,)), ((4, 6), (2, 3)), ((4, 4), (1, 2)), ((4, 2, 2), (2, 1, 2)),
                                        ((3, 3), (1, 1))])
def test_avgpool_equals_block_mean(grid, block):
    s = _full_state(grid, seed=5)
    out = AvgPool(block)._kernel(s, 1.0, 0.0, True)
    for name in ("cross", "var1", "var2"):
        torch.testing.assert_close(getattr(out, name), _pool_oracle(getattr(s, name), grid, block),
                                   rtol=1e-12, atol=1e-12)


def _k1_numpy(a, b, k):
    """F = sqrt(ab)/(2 pi) (sin t + (pi - t) cos t), cos t = clip(k / sqrt(ab), -1, 1); 0 where ab = 0."""
    s = np.sqrt(a * b)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(s > 0, k / np.where(s > 0, s, 1.0), 0.0)
    c = np.clip(c, -1.0, 1.0)
    t = np.arccos(c)
    return s / (2 * np.pi) * (np.sin(t) + (np.pi - t) * c)


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_chunked_relu_map_equals_closed_form(monkeypatch, chunk):
    """Chunked path (forced on small tensors, ragged last chunks) vs the closed form in numpy,
    including zero variances (F = 0) and |k| > sqrt(ab) (clamped)."""
    monkeypatch.setattr(arccos_mod, "_CHUNK", chunk)
    monkeypatch.setattr(arccos_mod, "_CHUNK_MIN", 1)
    g = torch.Generator().manual_seed(11)
    a = torch.rand(5, 1, 3, 7, generator=g, dtype=DT) + 0.1
    b = torch.rand(1, 4, 3, 7, generator=g, dtype=DT) + 0.1
    a[2, 0, 1, 3] = 0.0
    k = (torch.rand(5, 4, 3, 7, generator=g, dtype=DT) - 0.5) * 1.5  # some |c| > 1
    out = relu_expectation(a, b, k)
    A, B, K = (t.numpy() for t in torch.broadcast_tensors(a, b, k))
    torch.testing.assert_close(out, torch.from_numpy(_k1_numpy(A, B, K)), rtol=1e-12, atol=1e-15)
    assert float(out[2, :, 1, 3].abs().max()) == 0.0


@pytest.mark.parametrize("grad", [False, True])
def test_relu_map_accurate_near_coincidence(grad):
    """Near |c| = 1 the terms sin(theta) and (pi - theta) c must cancel to ~1 ulp; oracle: mpmath at 50 digits
    with the same (rounded) float inputs.  Tolerance 1e-13 relative (the old 1 - c^2 form erred ~1e-9)."""
    mpmath.mp.dps = 50
    a = torch.tensor([0.7, 2.3, 1.1, 5.0, 0.9], dtype=DT)
    b = torch.tensor([0.7, 1.9, 1.1, 5.0, 0.3], dtype=DT)
    delta = torch.tensor([1e-9, 3e-12, 1e-15, 2e-7, 1e-13], dtype=DT)
    k = torch.sqrt(a * b) * (1 - delta)
    k[4] = -k[4]  # c close to -1
    if grad:
        k.requires_grad_(True)
    out = relu_expectation(a, b, k).detach()
    for i in range(5):
        A, B, Kx = (mpmath.mpf(float(v[i])) for v in (a, b, k.detach()))
        s = mpmath.sqrt(A * B)
        c = Kx / s
        th = mpmath.acos(c)
        ref = s / (2 * mpmath.pi) * (mpmath.sin(th) + (mpmath.pi - th) * c)
        assert abs(float(out[i]) - float(ref)) <= 1e-13 * float(s), (i, float(out[i]), float(ref))


@pytest.mark.parametrize("shape", [(515, 9), (2, 600, 5)])
def test_symmetric_gram_equals_gemm(shape):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(*shape, generator=g, dtype=DT)
    G = state_mod._sym_gram(x)
    torch.testing.assert_close(G, x @ x.transpose(-1, -2), rtol=1e-12, atol=1e-12)
    assert torch.equal(G, G.transpose(-1, -2))  # exactly symmetric


def test_dense_kernel_symmetric_path_equals_general_path():
    """kernel(X) (x1 is x2: block-triangular Gram) equals kernel(X, X.clone()) (general GEMM path)."""
    g = torch.Generator().manual_seed(4)
    X = torch.randn(600, 6, generator=g, dtype=DT)
    arch = Architecture(serial(Dense(4), ReLU(), Dense(1)), (6,))
    assert X.shape[0] >= state_mod._SYM_MIN_ROWS
    torch.testing.assert_close(arch.kernel(X, sigma_b2=0.1), arch.kernel(X, X.clone(), sigma_b2=0.1),
                               rtol=1e-12, atol=1e-12)


def _diag_conv_oracle(t, grid, patch, sw2, sb2):
    """Direct evaluation of K'_{aa} = sb2 + sw2/|P| sum_{b in P} K_{(a+b) mod g, (a+b) mod g}."""
    d = len(grid)
    lead = t.shape[: t.dim() - d]
    T = t.reshape(-1, *grid).numpy()
    out = np.empty_like(T)
    offsets = [range(-((p - 1) // 2), p - (p - 1) // 2) for p in patch]
    for a in itertools.product(*map(range, grid)):
        acc = np.zeros(T.shape[0])
        for b in itertools.product(*offsets):
            acc += T[(slice(None),) + tuple((ai + bi) % gi for ai, bi, gi in zip(a, b, grid))]
        out[(slice(None),) + a] = sb2 + sw2 / math.prod(patch) * acc
    return torch.from_numpy(out).reshape(*lead, *grid)


@settings(max_examples=15)
@given(st.data())
def test_diagonal_pixel_conv_equals_defining_sum(data):
    d = data.draw(st.integers(1, 3), label="grid dims")
    grid = tuple(data.draw(st.integers(1, 6 if d < 3 else 4), label=f"g{i}") for i in range(d))
    patch = tuple(data.draw(st.integers(1, g), label=f"p{i}") for i, g in enumerate(grid))
    sw2 = data.draw(st.floats(0.1, 3.0), label="sw2")
    sb2 = data.draw(st.floats(0.0, 1.0), label="sb2")
    as_tensor = data.draw(st.booleans(), label="tensor variances")
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 100), label="seed"))
    s = KernelState(cross=torch.randn(2, 3, *grid, generator=g, dtype=DT),
                    var1=torch.randn(2, *grid, generator=g, dtype=DT), var2=torch.randn(3, *grid, generator=g, dtype=DT),
                    grid=grid, full=False, diag_pairs=False)
    w, b = (torch.tensor(sw2, dtype=DT), torch.tensor(sb2, dtype=DT)) if as_tensor else (sw2, sb2)
    out = Conv(1, patch)._kernel(s, w, b, False)
    assert not out.full and out.grid == grid
    for name in ("cross", "var1", "var2"):
        torch.testing.assert_close(getattr(out, name), _diag_conv_oracle(getattr(s, name), grid, patch, sw2, sb2),
                                   rtol=1e-12, atol=1e-12)
