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


# ------------------------------------------------------------------------------ fused conv + ReLU
def _conv_relu_oracle(t, va, vb, grid, patch, sw2, sb2, full):
    """F(va, vb, k) of the numpy stencil ``k`` (the closed form, 0 where a variance is 0) and its error scale."""
    k, _ = _stencil_oracle(t, grid, patch, sw2, sb2, full)
    a, b = np.broadcast_arrays(va.numpy(), vb.numpy(), k)[:2]
    nz = (a > 0) & (b > 0)
    ref = np.where(nz, _closed_form_k1_half(np.where(nz, a, 1.0), np.where(nz, b, 1.0), k), 0.0)
    return ref, np.sqrt(a * b) / 2 + 1e-300  # |F| <= sqrt(ab)/2


def _conv_relu_inputs(full, zero=False):
    """A cross covariance of random inputs (so |k| <= sqrt(va vb) as for a real state) on a 4x5 grid."""
    g = torch.Generator().manual_seed(21 + full)
    grid, patch = (4, 5), (3, 2)
    X = torch.randn(3, 2, 20, generator=g, dtype=DT)  # (N, C, P)
    Y = torch.randn(2, 2, 20, generator=g, dtype=DT)
    if zero:
        Y[1] = 0.0
    if full:
        t = torch.einsum("icp,jcq->ijpq", X, Y).reshape(3, 2, *grid, *grid) / 2
        vx = torch.einsum("icp,icq->ipq", X, X).reshape(3, *grid, *grid) / 2
        vy = torch.einsum("icp,icq->ipq", Y, Y).reshape(2, *grid, *grid) / 2
    else:
        t = torch.einsum("icp,jcp->ijp", X, Y).reshape(3, 2, *grid) / 2
        vx = torch.einsum("icp,icp->ip", X, X).reshape(3, *grid) / 2
        vy = torch.einsum("icp,icp->ip", Y, Y).reshape(2, *grid) / 2
    sw2, sb2 = 1.7, 0.0 if zero else 0.2
    cx = circular_conv_map(vx, grid, patch, sw2, sb2, full)
    cy = circular_conv_map(vy, grid, patch, sw2, sb2, full)
    if full:  # the conv output's pixel variances K_aa, K_a'a' in the cross layout (N1, N2, *g, *g)
        dx = torch.diagonal(cx.reshape(3, 20, 20), dim1=-2, dim2=-1).reshape(3, 1, *grid, 1, 1)
        dy = torch.diagonal(cy.reshape(2, 20, 20), dim1=-2, dim2=-1).reshape(1, 2, 1, 1, *grid)
    else:
        dx, dy = cx.unsqueeze(1), cy.unsqueeze(0)
    return t, dx, dy, grid, patch, sw2, sb2


@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("zero", [False, True])
def test_conv_relu_cross_eager_equals_defining_formulas(full, zero):
    """The fused map's arithmetic run eagerly (compile off) against the numpy stencil and closed-form F."""
    t, va, vb, grid, patch, sw2, sb2 = _conv_relu_inputs(full, zero)
    got = stencil_mod.conv_relu_cross(t, va, vb, grid, patch, sw2, sb2, full)
    ref, scale = _conv_relu_oracle(t, va, vb, grid, patch, sw2, sb2, full)
    assert got.shape == ref.shape
    assert _rel(got, ref, scale) < RTOL
    if zero:  # a zero input with sb2 = 0: its variances and F vanish
        assert float(got[:, 1].abs().max()) == 0.0


def test_conv_relu_cross_rejects_autograd_and_bad_patch():
    t, va, vb, grid, patch, sw2, sb2 = _conv_relu_inputs(False)
    with pytest.raises(TypeError, match="sigma_w2"):
        stencil_mod.conv_relu_cross(t, va, vb, grid, patch, torch.tensor(sw2), sb2, False)
    with pytest.raises(ValueError, match="gradients"):
        stencil_mod.conv_relu_cross(t.requires_grad_(), va, vb, grid, patch, sw2, sb2, False)
    with pytest.raises(ValueError, match="patch"):
        stencil_mod.conv_relu_cross(t.detach(), va, vb, grid, (5, 1), sw2, sb2, False)


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own import
def test_conv_relu_cross_compiled_equals_defining_formulas():
    for full in (False, True):
        t, va, vb, grid, patch, sw2, sb2 = _conv_relu_inputs(full)
        enable_compile(True)
        try:
            got = stencil_mod.conv_relu_cross(t, va, vb, grid, patch, sw2, sb2, full)
        finally:
            enable_compile(False)
        ref, scale = _conv_relu_oracle(t, va, vb, grid, patch, sw2, sb2, full)
        assert _rel(got, ref, scale) < RTOL
        eager = relu_expectation(va, vb, circular_conv_map(t, grid, patch, sw2, sb2, full))  # the unfused layers
        assert _rel(got, eager, scale) < RTOL


# ------------------------------------------------------------------------------ variances once per call, blocks
def test_block_starts_cover_with_equal_blocks():
    from gpbound.kernels.architecture import _block_starts

    for N in range(1, 30):
        for b in range(1, N + 1):
            starts = _block_starts(N, b)
            covered = np.zeros(N, bool)
            for s in starts:
                assert 0 <= s and s + b <= N  # every block has the length b
                covered[s:s + b] = True
            assert covered.all() and starts == sorted(set(starts))


def test_variance_tape_replay_is_checked():
    x = torch.randn(4, 6, dtype=DT)
    tape = state_mod.VarTape()
    rec = input_state(x, x, (6,), False, False, tape=tape.recorder())
    rec.relu()  # a second recorded step
    head = tape.replay((1, 2), (0, 3))
    st = input_state(x[1:3], x[:3], (6,), False, False, tape=head)
    torch.testing.assert_close(st.var1, (x[1:3] ** 2).mean(-1), rtol=RTOL, atol=0)
    torch.testing.assert_close(st.var2, (x[:3] ** 2).mean(-1), rtol=RTOL, atol=0)
    with pytest.raises(RuntimeError, match="used 1 of 2"):
        head.finish()
    st = st.relu()
    torch.testing.assert_close(st.var1, (x[1:3] ** 2).mean(-1) / 2, rtol=RTOL, atol=0)
    head.finish()
    with pytest.raises(RuntimeError, match="past its end"):
        st.relu()


@pytest.mark.parametrize("same", [True, False])
def test_blocked_kernel_computes_variances_once(monkeypatch, same):
    """Many blocks, one variance pass: the input variances of each input set are formed once per call,
    and the blocked kernel equals the one-block kernel (every layer kind that makes new variances)."""
    from gpbound.kernels import AvgPool, Architecture, Conv, Flatten, ReLU, Residual, serial
    from gpbound.kernels import architecture as arch_mod

    arch = Architecture(serial(Conv(2, 3), Residual(serial(ReLU(), Conv(2, 3))), ReLU(), AvgPool(2), Conv(2, 1),
                               ReLU(), Flatten(1)), (2, 4, 4))
    g = torch.Generator().manual_seed(8)
    x1 = torch.randn(7, arch.n, generator=g, dtype=DT)
    x2 = x1 if same else torch.randn(5, arch.n, generator=g, dtype=DT)
    whole = arch.kernel(x1, None if same else x2, sigma_w2=1.6, sigma_b2=0.3)
    calls = []
    real = state_mod._input_cov
    monkeypatch.setattr(state_mod, "_input_cov", lambda a, b, grid, full, pairs: (
        calls.append(pairs), real(a, b, grid, full, pairs))[1])
    monkeypatch.setattr(arch_mod, "_TILE", 3 * 256)  # 3 pairs of 16x16 full-pixel entries: blocks of 1 x 3
    blocked = arch.kernel(x1, None if same else x2, sigma_w2=1.6, sigma_b2=0.3)
    assert calls.count("self") == (1 if same else 2)
    assert calls.count("outer") > 5  # many blocks
    scale = float(whole.abs().max())
    assert float((blocked - whole).abs().max()) <= RTOL * scale
    if same:
        assert torch.equal(blocked, blocked.transpose(0, 1))


def test_blocked_kernel_gradients_equal_one_block(monkeypatch):
    """Autograd through the replayed variances (shared by the blocks) and the overlapping ragged blocks:
    the gradients in the variances and the inputs equal those of the one-block kernel."""
    from gpbound.kernels import Architecture, Conv, Flatten, ReLU, serial
    from gpbound.kernels import architecture as arch_mod

    arch = Architecture(serial(Conv(2, 3), ReLU(), Conv(2, (3, 1)), ReLU(), Flatten(1)), (2, 3, 4))
    g = torch.Generator().manual_seed(9)
    x0 = torch.randn(5, arch.n, generator=g, dtype=DT)

    def grads(tile):
        monkeypatch.setattr(arch_mod, "_TILE", tile)
        x = x0.clone().requires_grad_()
        sw2 = torch.tensor(1.3, dtype=DT, requires_grad=True)
        sb2 = torch.tensor(0.4, dtype=DT, requires_grad=True)
        K = arch.kernel(x, sigma_w2=sw2, sigma_b2=sb2)
        w = torch.arange(25, dtype=DT).reshape(5, 5) / 25  # an asymmetric weighting of the entries
        return (K.detach(),) + torch.autograd.grad((K * w).sum(), (x, sw2, sb2))

    whole = grads(1 << 30)
    blocked = grads(4 * arch.input_pixels)  # blocks of 2 x 2 pairs, a ragged last one
    for a, b in zip(whole, blocked):
        assert float((a - b).abs().max()) <= RTOL * float(a.abs().max())
