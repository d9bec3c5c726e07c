"""Speed paths of the NNGP kernel recursion against independent numpy evaluations of the defining sums.

* the input covariance ``(1/C) sum_c x_{c,a} y_{c,b}`` (one batched GEMM in the state's layout; the
  cache-blocked diagonal-pixel form) against ``numpy.einsum``;
* the conv stencil of :mod:`gpbound.kernels.stencil` (eager, cache-chunked; differentiable) against
  ``sb2 + sw2/|P| sum_b K_{a+b, a'+b}`` written with ``numpy.roll``;
* the compiled order-1 arc-cosine map and the compiled stencil (``enable_compile``) against the
  closed form / the defining sum (they need a C++ compiler: skipped without one).
"""
import itertools
import math
import shutil

import numpy as np
import pytest
import torch

from gpbound.kernels import arccos as arccos_mod
from gpbound.kernels import stencil as stencil_mod
from gpbound.kernels import state as state_mod
from gpbound.kernels.arccos import enable_compile, relu_expectation
from gpbound.kernels.state import input_state
from gpbound.kernels.stencil import circular_conv_map

DT = torch.float64
RTOL = 1e-13


def _rel(a, b, scale):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / scale))


# ------------------------------------------------------------------------------ input covariance
@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 3), (5, 6), (4, 2, 2, 3)])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("diag_pairs", [False, True])
def test_input_state_equals_channel_sum(monkeypatch, shape, full, diag_pairs):
    monkeypatch.setattr(state_mod, "_COV_CHUNK", 7)  # many blocks, ragged edges
    g = torch.Generator().manual_seed(1)
    N = 4
    n = math.prod(shape)
    x1 = torch.randn(N, n, generator=g, dtype=DT)
    x2 = torch.randn(N, n, generator=g, dtype=DT)
    st = input_state(x1, x2, shape, full, diag_pairs)
    C, grid = shape[0], shape[1:]
    P = math.prod(grid)
    a = x1.numpy().reshape(N, C, P)
    b = x2.numpy().reshape(N, C, P)
    full = full and len(grid) > 0
    if diag_pairs:
        ref = np.einsum("icp,icq->ipq", a, b) if full else np.einsum("icp,icp->ip", a, b)
        mag = np.einsum("icp,icq->ipq", abs(a), abs(b)) if full else np.einsum("icp,icp->ip", abs(a), abs(b))
    else:
        ref = np.einsum("icp,jcq->ijpq", a, b) if full else np.einsum("icp,jcp->ijp", a, b)
        mag = np.einsum("icp,jcq->ijpq", abs(a), abs(b)) if full else np.einsum("icp,jcp->ijp", abs(a), abs(b))
    got = st.cross.numpy().reshape(ref.shape)
    assert _rel(got, ref / C, mag / C) < RTOL
    v1 = np.einsum("icp,icq->ipq", a, a) if full else np.einsum("icp,icp->ip", a, a)
    m1 = np.einsum("icp,icq->ipq", abs(a), abs(a)) if full else v1
    assert _rel(st.var1.numpy().reshape(v1.shape), v1 / C, m1 / C) < RTOL
    assert st.cross.is_contiguous()


def test_input_state_batched_leading_dims():
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, 3, 12, generator=g, dtype=DT)
    x2 = torch.randn(2, 5, 12, generator=g, dtype=DT)
    for full in (False, True):
        st = input_state(x1, x2, (3, 2, 2), full, False)
        for k in range(2):
            one = input_state(x1[k], x2[k], (3, 2, 2), full, False)
            torch.testing.assert_close(st.cross[k], one.cross, rtol=RTOL, atol=0)


def test_input_state_autograd():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 12, generator=g, dtype=DT, requires_grad=True)
    y = torch.randn(2, 12, generator=g, dtype=DT)
    for full in (False, True):
        st = input_state(x, y, (3, 2, 2), full, False)
        (gx,) = torch.autograd.grad(st.cross.sum(), x)
        # d/dx_{i,c,p} sum_{j,p(,q)} x_{i,c,p} y_{j,c,q} / C
        yc = y.reshape(2, 3, 4)
        ref = (yc.sum((0, 2), keepdim=True) if full else yc.sum(0, keepdim=True)).expand(3, 3, 4) / 3
        torch.testing.assert_close(gx.reshape(3, 3, 4), ref, rtol=RTOL, atol=1e-15)


# ------------------------------------------------------------------------------ conv stencil
def _stencil_oracle(t, grid, patch, sw2, sb2, full):
    """``sb2 + sw2/|P| sum_b K_{(a+b) mod g(, (a'+b) mod g)}`` with numpy.roll (K_{a+b} = roll(K, -b)[a])."""
    T = t.numpy()
    d = len(grid)
    dims = list(range(T.ndim - (2 if full else 1) * d, T.ndim))
    acc = np.zeros_like(T)
    mag = np.zeros_like(T)
    for off in itertools.product(*[range(-((p - 1) // 2), p - (p - 1) // 2) for p in patch]):
        shifts = [-o for o in off] * (2 if full else 1)
        r = np.roll(T, shifts, axis=dims)
        acc += r
        mag += np.abs(r)
    n = math.prod(patch)
    return sb2 + sw2 / n * acc, abs(sb2) + sw2 / n * mag


CASES = [((5,), (3,)), ((4,), (4,)), ((6,), (1,)), ((4, 5), (3, 3)), ((5, 4), (2, 3)), ((3, 3), (1, 3)),
         ((4, 4), (4, 1)), ((3, 4, 3), (3, 2, 3)), ((2, 3, 3), (1, 1, 1))]


@pytest.mark.parametrize("grid,patch", CASES)
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("chunk", [1, 50, 1 << 15])
def test_stencil_equals_defining_sum(monkeypatch, grid, patch, full, chunk):
    monkeypatch.setattr(stencil_mod, "_CHUNK", chunk)
    g = torch.Generator().manual_seed(sum(grid) + 7 * len(patch))
    t = torch.randn(2, 3, *grid, *(grid if full else ()), generator=g, dtype=DT)
    t0 = t.clone()
    got = circular_conv_map(t, grid, patch, 2.0, 0.1, full)
    ref, mag = _stencil_oracle(t, grid, patch, 2.0, 0.1, full)
    assert _rel(got, ref, mag) < RTOL
    assert torch.equal(t, t0)  # the input is not modified


@pytest.mark.parametrize("full", [False, True])
def test_stencil_differentiable(full):
    g = torch.Generator().manual_seed(5)
    grid, patch = (4, 3), (3, 2)
    t = torch.randn(2, *grid, *(grid if full else ()), generator=g, dtype=DT, requires_grad=True)
    sw2 = torch.tensor(1.7, dtype=DT, requires_grad=True)
    out = circular_conv_map(t, grid, patch, sw2, 0.2, full)
    ref, mag = _stencil_oracle(t.detach(), grid, patch, 1.7, 0.2, full)
    assert _rel(out.detach(), ref, mag) < RTOL
    gt, gs = torch.autograd.grad(out.sum(), (t, sw2))
    # each input entry is read by |P| outputs with weight sw2/|P|; d out / d sw2 = (out - sb2) / sw2
    torch.testing.assert_close(gt, torch.full_like(t, 1.7), rtol=RTOL, atol=0)
    torch.testing.assert_close(gs, ((out - 0.2) / 1.7).sum().detach(), rtol=1e-12, atol=0)


def test_stencil_rejects_bad_shapes():
    t = torch.zeros(2, 4, 4, dtype=DT)
    with pytest.raises(ValueError, match="patch"):
        circular_conv_map(t, (4, 4), (5, 1), 1.0, 0.0, False)
    with pytest.raises(ValueError, match="pixel dims"):
        circular_conv_map(t, (4, 4), (3, 3), 1.0, 0.0, True)


# ------------------------------------------------------------------------------ compiled paths
def _closed_form_k1_half(a, b, k):
    """F = sqrt(ab) (sin theta + (pi - theta) cos theta) / (2 pi) in numpy."""
    s = np.sqrt(a) * np.sqrt(b)
    c = np.clip(k / s, -1.0, 1.0)
    return s * (np.sqrt((1 - c) * (1 + c)) + (np.pi - np.arccos(c)) * c) / (2 * np.pi)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own import
def test_compiled_paths_equal_defining_formulas():
    g = torch.Generator().manual_seed(11)
    X = torch.randn(5, 6, 9, generator=g, dtype=DT)
    K = torch.einsum("ipc,jqc->ijpq", X, X) / 9
    v = torch.einsum("ipc,ipc->ip", X, X) / 9
    a, b = v[:, None, :, None], v[None, :, None, :]
    grid, patch = (3, 4), (3, 3)
    t = torch.randn(2, 3, *grid, *grid, generator=g, dtype=DT)
    enable_compile(True)
    try:
        F = relu_expectation(a, b, K)
        F2 = relu_expectation(a, b, K)  # deterministic: the same kernel, the same values
        S = circular_conv_map(t, grid, patch, 2.0, 0.1, True)
    finally:
        enable_compile(False)
    ref = _closed_form_k1_half(a.numpy(), b.numpy(), K.numpy())
    scale = np.sqrt(a.numpy() * b.numpy()) / 2  # |F| <= sqrt(ab)/2: the error scale near F = 0
    assert _rel(F, ref, scale) < RTOL
    assert torch.equal(F, F2)
    eager = relu_expectation(a, b, K)
    assert _rel(F, eager, scale) < RTOL
    sref, mag = _stencil_oracle(t, grid, patch, 2.0, 0.1, True)
    assert _rel(S, sref, mag) < RTOL
    assert not arccos_mod._COMPILED["on"]


@pytest.mark.parametrize("full", [False, True])
def test_stencil_variance_gradients_on_fast_path(full):
    g = torch.Generator().manual_seed(6)
    grid, patch = (5, 4), (3, 3)
    t = torch.randn(3, *grid, *(grid if full else ()), generator=g, dtype=DT)  # no grad: the fast box sum
    sw2 = torch.tensor(2.0, dtype=DT, requires_grad=True)
    sb2 = torch.tensor(0.3, dtype=DT, requires_grad=True)
    out = circular_conv_map(t, grid, patch, sw2, sb2, full)
    ref, mag = _stencil_oracle(t, grid, patch, 2.0, 0.3, full)
    assert _rel(out.detach(), ref, mag) < RTOL
    gs, gb = torch.autograd.grad(out.sum(), (sw2, sb2))
    box = (ref - 0.3) / 2.0  # sum_b K / |P|
    assert abs(float(gs) - box.sum()) <= RTOL * np.abs(box).sum() * 10
    assert float(gb) == out.numel()
