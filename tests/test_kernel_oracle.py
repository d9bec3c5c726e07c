"""An independent numpy oracle of the NNGP layer recursion, written from the layer equations.

The oracle never calls gpbound.kernels for numbers: it carries, for a set of N inputs, the joint
covariance of one channel of the field at every (input, pixel), a ``(N, P, N, P)`` array (``P`` =
pixels of the current grid, flattened in row-major order), and applies the equations:

* input:       ``K_{a a'}(x, y) = (1/C0) sum_j x_{j,a} y_{j,a'}``  (x reshaped to ``(C0, *grid)``, i.e. the
  flat input is read in C, H, W order), so the input conv below is
  ``K' = sb2 + sw2/(C0 |P|) sum_{b in P} sum_j x_{j,a+b} y_{j,a'+b}``;
* Conv(patch): ``K'_{a a'} = sb2 + sw2/|P| sum_{b in P} K_{a+b, a'+b}``, periodic grid, offsets
  ``b_d in {-(p_d-1)//2, ..., p_d-1-(p_d-1)//2}`` (kernels/layers.py docstrings);
* ReLU:        ``K'_{uv} = F(K_uu, K_vv, K_uv)`` for u, v = (input, pixel),
  ``F = sqrt(kxx kyy)/(2 pi) (sin t + (pi - t) cos t)``, ``t = arccos(kxy / sqrt(kxx kyy))``, 0 if kxx or kyy is 0;
* Residual(block): ``K' = K + block(K)``;
* AvgPool(block): ``K'_{AB} = mean_{a in A, b in B} K_{ab}`` over the partition into blocks;
* Flatten(width): ``K' = sb2 + sw2/|I| sum_a K_{aa}``;  Dense(width): ``K' = sb2 + sw2 K`` (flat).

ReLU is a layer of its own (kernels/layers.py: "the paper's 'ReLU conv' layer is ReLU(), Conv(...)"), so F
is applied exactly where the description has a ReLU.  The conventions that a symmetric setting could hide
are exercised: non-square (and 1-D / 3-D) grids with per-axis patches such as (3, 1) and pooling blocks
such as (2, 1) (axis order of the C, H, W flattening); even patches (2, 4) followed by AvgPool (the
offset direction and centring: a one-pixel shift of the conv output changes the pooled kernel).

Compared with Architecture.kernel (all pairs, cross pairs, diag, blocked evaluation) and NNGPKernel on
64 random architectures, tolerance 1e-12 relative to the largest entry.
"""
import doctest
import importlib
import itertools
import math
import shutil

import numpy as np
import pytest
import torch

from gpbound.kernels import (AvgPool, Architecture, Conv, Dense, Flatten, GlobalAvgPool, NNGPKernel, ReLU, Residual,
                             serial)

DT = torch.float64
N_ARCH = 64
RTOL = 1e-12


# ---------------------------------------------------------------------------- the oracle (numpy)
def relu_F(kxx, kyy, kxy):
    """E[relu(u) relu(v)] for (u, v) ~ N(0, [[kxx, kxy], [kxy, kyy]]) (Cho & Saul's J_1 / (2 pi))."""
    kxx, kyy, kxy = np.broadcast_arrays(kxx, kyy, kxy)
    nz = (kxx > 0) & (kyy > 0)
    s = np.sqrt(np.where(nz, kxx, 1.0) * np.where(nz, kyy, 1.0))
    c = np.clip(kxy / s, -1.0, 1.0)
    t = np.arccos(c)
    return np.where(nz, s / (2 * np.pi) * (np.sin(t) + (np.pi - t) * c), 0.0)


def _offsets(patch):
    return [range(-((p - 1) // 2), p - 1 - (p - 1) // 2 + 1) for p in patch]


def _shift_index(grid, beta):
    """idx[a] = flat index of the pixel a + beta (periodic), for a over the row-major flattened grid."""
    coords = np.indices(grid).reshape(len(grid), -1)  # (d, P) coordinates of the flat pixels
    shifted = [(coords[d] + beta[d]) % grid[d] for d in range(len(grid))]
    return np.ravel_multi_index(shifted, grid)


def _pool_matrix(grid, block):
    new = tuple(g // b for g, b in zip(grid, block))
    P, Q = math.prod(grid), math.prod(new)
    A = np.zeros((Q, P))
    coords = np.indices(grid).reshape(len(grid), -1)
    target = np.ravel_multi_index([coords[d] // block[d] for d in range(len(grid))], new)
    A[target, np.arange(P)] = 1.0 / math.prod(block)
    return A, new


def _own(value, default):
    return default if value is None else value


def _conv_selections(grid, patch, stride, padding):
    """0/1 matrices ``S_k`` (Q, P), one per patch offset ``k``: output pixel ``i`` reads input pixel
    ``stride i - lo + k`` (TensorFlow 'same': out = ceil(g / s), lo = max((out-1) s + p - g, 0) // 2),
    modulo the grid ("circular") or not at all when outside it ("same": zero padding)."""
    out = tuple(-(-g // s) for g, s in zip(grid, stride))
    lo = [max((o - 1) * s + p - g, 0) // 2 for g, p, s, o in zip(grid, patch, stride, out)]
    mats = []
    for k in itertools.product(*[range(p) for p in patch]):
        S = np.zeros((math.prod(out), math.prod(grid)))
        for q, i in enumerate(itertools.product(*[range(o) for o in out])):
            src = [s * i_ + k_ - l for s, i_, k_, l in zip(stride, i, k, lo)]
            if padding == "circular":
                src = [v % g for v, g in zip(src, grid)]
            elif any(v < 0 or v >= g for v, g in zip(src, grid)):
                continue
            S[q, np.ravel_multi_index(src, grid)] = 1.0
        mats.append(S)
    return mats, out


def oracle_apply(desc, G, grid, sw2, sb2):
    """Apply the layer description ``desc`` to the joint covariance ``G`` (N, P, N, P) on ``grid``."""
    for layer in desc:
        kind = layer[0]
        if kind == "conv":
            patch = layer[2]
            out = np.zeros_like(G)
            for beta in itertools.product(*_offsets(patch)):
                idx = _shift_index(grid, beta)
                out += G[:, idx][:, :, :, idx]  # K_{a+b, a'+b}
            G = sb2 + sw2 / math.prod(patch) * out
        elif kind == "relu":
            N, P = G.shape[:2]
            M = G.reshape(N * P, N * P)
            d = np.diagonal(M).copy()
            G = relu_F(d[:, None], d[None, :], M).reshape(N, P, N, P)
        elif kind == "res":
            G = G + oracle_apply(layer[1], G, grid, sw2, sb2)[0]
        elif kind == "pool":
            A, grid = _pool_matrix(grid, layer[1])
            G = np.einsum("ap,ipjq,bq->iajb", A, G, A)
        elif kind == "xconv":  # ("xconv", ch, patch, stride, padding, own sw2 or None, own sb2 or None)
            mats, new = _conv_selections(grid, layer[2], layer[3], layer[4])
            w, b = _own(layer[5], sw2), _own(layer[6], sb2)
            G = b + w / math.prod(layer[2]) * sum(np.einsum("ap,ipjq,bq->iajb", S, G, S) for S in mats)
            grid = new
        elif kind == "gap":  # global average pool: mean over all pixel pairs, a flat field
            G = np.einsum("iajb->ij", G)[:, None, :, None] / G.shape[1] ** 2
            grid = ()
        elif kind == "res2":  # ("res2", block, shortcut or None, post_activation)
            skip = G if layer[2] is None else oracle_apply(layer[2], G, grid, sw2, sb2)[0]
            inner, grid_b = oracle_apply(layer[1], G, grid, sw2, sb2)
            G = skip + inner
            grid = grid_b
            if layer[3]:
                G = oracle_apply([("relu",)], G, grid, sw2, sb2)[0]
        elif kind == "flatten":  # ("flatten", width[, own sw2, own sb2])
            P = G.shape[1]
            w, b = (_own(layer[2], sw2), _own(layer[3], sb2)) if len(layer) > 2 else (sw2, sb2)
            G = (b + w / P * np.einsum("iaja->ij", G))[:, None, :, None]
            grid = ()
        elif kind == "dense":  # ("dense", width[, own sw2, own sb2])
            assert G.shape[1] == 1
            w, b = (_own(layer[2], sw2), _own(layer[3], sb2)) if len(layer) > 2 else (sw2, sb2)
            G = b + w * G
            grid = ()
        else:  # pragma: no cover
            raise AssertionError(kind)
    return G, grid


def oracle_kernel(desc, input_shape, Z, sw2, sb2):
    """NNGP kernel matrix (N, N) of the inputs Z (N, n) by the layer equations."""
    C0, grid = input_shape[0], tuple(input_shape[1:])
    P = math.prod(grid) if grid else 1
    X = Z.reshape(Z.shape[0], C0, P)
    G = np.einsum("icp,jcq->ipjq", X, X) / C0
    G, grid = oracle_apply(desc, G, grid, sw2, sb2)
    assert G.shape[1] == 1 and G.shape[3] == 1
    return G[:, 0, :, 0]


# ---------------------------------------------------------------------------- random architectures
def to_layers(desc):
    out = []
    for layer in desc:
        kind = layer[0]
        if kind == "conv":
            out.append(Conv(layer[1], layer[2]))
        elif kind == "xconv":
            out.append(Conv(layer[1], layer[2], stride=layer[3], padding=layer[4], sigma_w2=layer[5],
                            sigma_b2=layer[6]))
        elif kind == "gap":
            out.append(GlobalAvgPool())
        elif kind == "res2":
            out.append(Residual(serial(*to_layers(layer[1])),
                                shortcut=None if layer[2] is None else serial(*to_layers(layer[2])),
                                post_activation=layer[3]))
        elif kind in ("flatten", "dense") and len(layer) > 2:
            out.append((Flatten if kind == "flatten" else Dense)(layer[1], sigma_w2=layer[2], sigma_b2=layer[3]))
        elif kind == "relu":
            out.append(ReLU())
        elif kind == "res":
            out.append(Residual(serial(*to_layers(layer[1]))))
        elif kind == "pool":
            out.append(AvgPool(layer[1]))
        elif kind == "flatten":
            out.append(Flatten(layer[1]))
        elif kind == "dense":
            out.append(Dense(layer[1]))
    return out


def _pick(rng, sizes, limit):
    ok = [s for s in sizes if s <= limit]
    big = [s for s in ok if s > 1]
    return int(rng.choice(big if big and rng.random() < 0.75 else ok))  # mostly a nontrivial patch


def _patch(rng, grid, sizes=(1, 3, 5)):
    if rng.random() < 0.25:  # one size for all axes (an int patch in the layer language) where it fits
        return (_pick(rng, sizes, min(grid)),) * len(grid)
    return tuple(_pick(rng, sizes, g) for g in grid)


def random_case(seed):
    """(desc, input_shape, sw2, sb2) from a seeded generator; grids of 1..3 dims, up to 64 pixels."""
    rng = np.random.default_rng(seed)
    sw2 = float(rng.uniform(0.3, 3.0))
    sb2 = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.0, 1.0))
    if rng.random() < 0.12:  # flat input: dense ReLU network, possibly with residual blocks
        n = int(rng.integers(2, 9))
        w = int(rng.integers(1, 5))
        desc = [("dense", w)]
        for _ in range(int(rng.integers(0, 3))):
            desc += [("res", [("relu",), ("dense", w)])] if rng.random() < 0.4 else [("relu",), ("dense", w)]
        return desc, (n,), sw2, sb2
    ndim = int(rng.choice([1, 2, 2, 2, 3]))
    sizes = {1: (2, 10), 2: (2, 8), 3: (2, 5)}[ndim]
    grid = tuple(int(rng.integers(*sizes)) for _ in range(ndim))
    C0 = int(rng.integers(1, 4))
    even = rng.random() < 0.35  # even patches: the offset convention matters before a pooling
    psizes = (1, 2, 3, 4) if even else (1, 3, 5)
    ch = int(rng.integers(1, 4))
    desc = [("conv", ch, _patch(rng, grid, psizes))]
    g = grid
    for _ in range(int(rng.integers(0, 4))):
        r = rng.random()
        if r < 0.3:
            desc += [("relu",), ("conv", ch, _patch(rng, g, psizes))]
        elif r < 0.55:
            inner = [("relu",), ("conv", ch, _patch(rng, g, psizes))]
            if rng.random() < 0.4:
                inner += [("relu",), ("conv", ch, _patch(rng, g, psizes))]
            if rng.random() < 0.15:
                inner = [("conv", ch, _patch(rng, g, psizes))]  # a linear skip block
            desc.append(("res", inner))
        else:
            divs = [[b for b in range(1, s + 1) if s % b == 0] for s in g]
            block = tuple(int(rng.choice(d[1:] if len(d) > 1 and rng.random() < 0.8 else d)) for d in divs)
            if rng.random() < 0.5:
                desc += [("relu",), ("pool", block), ("conv", ch, _patch(rng, tuple(s // b for s, b in zip(g, block)),
                                                                          psizes))]
            else:
                desc.append(("pool", block))
            g = tuple(s // b for s, b in zip(g, block))
    if rng.random() < 0.8:
        desc.append(("relu",))
    w = int(rng.integers(1, 4))
    desc.append(("flatten", w))
    for _ in range(int(rng.integers(0, 3))):
        desc += [("relu",), ("dense", w)] if rng.random() < 0.8 else [("dense", w)]
    return desc, (C0, *grid), sw2, sb2


def _inputs(rng, N, n):
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.standard_normal((N, n))
    if kind == 1:
        return rng.random((N, n))  # nonnegative: high correlations, c close to 1
    return rng.standard_normal((N, n)) * rng.uniform(0.1, 10.0, size=(N, 1))


def _close(got, want, what):
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else got
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    assert err <= RTOL * scale, f"{what}: max error {err:.3e} vs scale {scale:.3e} (relative {err / scale:.2e})"


# ---------------------------------------------------------------------------- tests
def test_oracle_F_basics():
    """The oracle's own F: diagonal k/2, 0 at a zero variance, and a value by 2-D quadrature (scipy)."""
    from scipy import integrate

    v = np.array([0.3, 1.0, 7.5])
    np.testing.assert_allclose(relu_F(v, v, v), v / 2, rtol=1e-15)
    assert relu_F(0.0, 1.0, 0.0) == 0.0
    a, b, k = 1.3, 0.7, -0.4
    cov = np.array([[a, k], [k, b]])
    inv, det = np.linalg.inv(cov), np.linalg.det(cov)
    dens = lambda v_, u: u * v_ * np.exp(-0.5 * np.array([u, v_]) @ inv @ np.array([u, v_])) / (
        2 * np.pi * np.sqrt(det))
    val, _ = integrate.dblquad(dens, 0, 30, 0, 30, epsabs=1e-13, epsrel=1e-11)
    assert abs(relu_F(a, b, k) - val) < 1e-9


def test_oracle_matches_by_hand_small_cases():
    """Two tiny cases by hand: Conv(1, 1) + Flatten on one pixel, and a Dense ReLU net on a flat input."""
    x = np.array([[1.0, 2.0], [0.5, -1.0]])  # two inputs, C0 = 2, one pixel
    K = oracle_kernel([("conv", 1, (1,)), ("flatten", 1)], (2, 1), x, 2.0, 0.1)
    want = 0.1 + 2.0 * (0.1 + 2.0 * x @ x.T / 2)
    np.testing.assert_allclose(K, want, rtol=1e-15)
    K = oracle_kernel([("dense", 1), ("relu",), ("dense", 1)], (2,), x, 1.5, 0.0)
    k0 = 1.5 * x @ x.T / 2
    d = np.diag(k0)
    np.testing.assert_allclose(K, 1.5 * relu_F(d[:, None], d[None, :], k0), rtol=1e-15)


@pytest.mark.parametrize("seed", range(N_ARCH))
def test_kernel_equals_numpy_oracle(seed):
    desc, shape, sw2, sb2 = random_case(seed)
    arch = Architecture(serial(*to_layers(desc)), shape)
    assert arch.has_kernel, (desc, arch.kernel_issues)
    rng = np.random.default_rng(1000 + seed)
    n = arch.n
    X = _inputs(rng, 4, n)
    X = np.concatenate([X, X[:1]])  # a coincident pair
    Y = _inputs(rng, 3, n)
    if seed % 7 == 3:
        Y[1] = 0.0  # a zero input (zero variances when sb2 = 0)
    Z = np.concatenate([X, Y])
    want = oracle_kernel(desc, shape, Z, sw2, sb2)
    nx = X.shape[0]
    Kxx, Kxy = want[:nx, :nx], want[:nx, nx:]
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    _close(arch.kernel(tX, sigma_w2=sw2, sigma_b2=sb2), Kxx, f"{desc}: kernel(X)")
    _close(arch.kernel(tX, tY, sigma_w2=sw2, sigma_b2=sb2), Kxy, f"{desc}: kernel(X, Y)")
    _close(arch.kernel(tX, tX[[1, 2, 0, 4, 3]], sigma_w2=sw2, sigma_b2=sb2, diag=True),
           want[np.arange(nx), [1, 2, 0, 4, 3]], f"{desc}: diag")
    _close(arch.kernel(tX, tY, sigma_w2=sw2, sigma_b2=sb2, max_elements=50), Kxy, f"{desc}: blocked")
    k = NNGPKernel(arch, sigma_w2=sw2, sigma_b2=sb2)  # parameters require grad: the autograd path
    _close(k(tX, tY).to_dense(), Kxy, f"{desc}: NNGPKernel(X, Y)")
    _close(k(tX).to_dense(), Kxx, f"{desc}: NNGPKernel(X)")


# ---------------------------------------------------------------------------- strides, zero padding, new layers
def _xc(ch, patch, stride=1, padding="same", w=None, b=None):
    d = len(patch)
    return ("xconv", ch, patch, stride if isinstance(stride, tuple) else (stride,) * d, padding, w, b)


#: name -> (desc, input_shape); every case has an analytic kernel
EXTRA_CASES = {
    "same_stride2_odd": ([_xc(3, (3, 3), 2), ("relu",), ("flatten", 2)], (2, 5, 5)),
    "same_mixed_stride": ([_xc(2, (3, 2), (2, 1)), ("relu",), _xc(3, (3, 3)), ("relu",), ("flatten", 2)], (1, 6, 5)),
    "circular_stride2": ([_xc(2, (3, 3), 2, "circular"), ("relu",), ("conv", 2, (3, 3)), ("relu",), ("flatten", 1)],
                         (2, 6, 6)),
    "circular_stride3_ragged": ([_xc(2, (2, 3), (3, 2), "circular"), ("relu",), ("flatten", 1)], (1, 7, 5)),
    "same_patch_exceeds_grid": ([_xc(2, (3, 3)), ("relu",), _xc(2, (5, 3)), ("relu",), ("flatten", 1)], (1, 2, 2)),
    "same_1d_stride3": ([_xc(2, (4,), 3), ("relu",), _xc(2, (2,)), ("relu",), ("flatten", 2)], (2, 10)),
    "same_3d_gap": ([_xc(2, (3, 1, 2), (2, 1, 2)), ("relu",), ("conv", 2, (1, 3, 1)), ("gap",), ("relu",), ("dense", 2)],
                    (1, 4, 3, 5)),
    "strided_then_pool": ([_xc(2, (3, 3), 2), ("relu",), _xc(2, (3, 3)), ("pool", (2, 2)), ("relu",), ("flatten", 1)],
                          (2, 8, 8)),
    "gap": ([("conv", 3, (3, 3)), ("relu",), ("conv", 3, (3, 1)), ("gap",), ("relu",), ("dense", 2)], (2, 4, 3)),
    "projection_post_activation": (
        [("conv", 2, (3, 3)), ("relu",),
         ("res2", [_xc(3, (3, 3), 2), ("relu",), _xc(3, (3, 3))], [_xc(3, (1, 1), 2)], True),
         ("res2", [_xc(3, (3, 3), 2, "same", 0.6, 0.0), ("relu",), _xc(3, (1, 1))], [_xc(3, (1, 1), 2, "same", 1.4, 0.3)],
          False),
         ("relu",), ("flatten", 1)], (2, 6, 6)),
    "gaussian_identity_post_activation": (
        [("conv", 2, (3, 3)), ("res2", [("relu",), ("conv", 2, (3, 3))], None, True), ("conv", 2, (1, 1)),
         ("relu",), ("flatten", 1)], (1, 4, 4)),
    "per_layer_variances": (
        [_xc(3, (3, 3), 1, "circular", 0.7, 0.3), ("relu",), _xc(3, (3, 3), 1, "circular", 2.5, None), ("relu",),
         ("flatten", 4, None, 0.0), ("relu",), ("dense", 1, 1.1, 0.05)], (2, 4, 4)),
}


def test_oracle_conv_selections_by_hand():
    """The oracle's own stencil: TF 'same' on 4 pixels, stride 2, patch 3: out 2, lo 0 -> output 0 reads 0, 1, 2 and
    output 1 reads 2, 3 and a zero; circular reads pixel 0 instead of the zero."""
    mats, out = _conv_selections((4,), (3,), (2,), "same")
    assert out == (2,)
    reads = [[list(np.nonzero(S[q])[0]) for S in mats] for q in range(2)]
    assert reads == [[[0], [1], [2]], [[2], [3], []]]
    mats, _ = _conv_selections((4,), (3,), (2,), "circular")
    assert [list(np.nonzero(S[1])[0]) for S in mats] == [[2], [3], [0]]
    # a 3x3 'same' patch on one pixel sees only itself: K' = sb2 + sw2/9 K
    K = oracle_kernel([_xc(1, (3, 3)), ("flatten", 1, 1.0, 0.0)], (2, 1, 1), np.array([[1.0, 2.0]]), 1.8, 0.1)
    np.testing.assert_allclose(K, [[0.1 + 1.8 / 9 * 2.5]], rtol=1e-15)


@pytest.mark.parametrize("name", sorted(EXTRA_CASES))
def test_strided_padded_and_new_layers_equal_numpy_oracle(name):
    desc, shape = EXTRA_CASES[name]
    sw2, sb2 = 1.6, 0.2
    arch = Architecture(serial(*to_layers(desc)), shape)
    assert arch.has_kernel, arch.kernel_issues
    rng = np.random.default_rng(7)
    X, Y = _inputs(rng, 4, arch.n), _inputs(rng, 3, arch.n)
    want = oracle_kernel(desc, shape, np.concatenate([X, Y]), sw2, sb2)
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    _close(arch.kernel(tX, sigma_w2=sw2, sigma_b2=sb2), want[:4, :4], f"{name}: kernel(X)")
    _close(arch.kernel(tX, tY, sigma_w2=sw2, sigma_b2=sb2), want[:4, 4:], f"{name}: kernel(X, Y)")
    _close(arch.kernel(tX, tX[[1, 2, 0, 3]], sigma_w2=sw2, sigma_b2=sb2, diag=True), want[np.arange(4), [1, 2, 0, 3]],
           f"{name}: diag")
    _close(arch.kernel(tX, tY, sigma_w2=sw2, sigma_b2=sb2, max_elements=40), want[:4, 4:], f"{name}: blocked")
    k = NNGPKernel(arch, sigma_w2=sw2, sigma_b2=sb2)  # tensor variances with autograd
    _close(k(tX, tY).to_dense(), want[:4, 4:], f"{name}: NNGPKernel(X, Y)")
    # the full pixel covariance carried through every layer gives the same kernel
    _close(arch.kernel_state(tX, sigma_w2=sw2, sigma_b2=sb2, full=True).cross, want[:4, :4], f"{name}: full")


def test_random_architectures_cover_the_layer_kinds():
    """The seeded generator exercises every layer kind and convention at least a few times."""
    seen = {"conv": 0, "relu": 0, "res": 0, "pool": 0, "flatten": 0, "dense": 0, "even_patch": 0,
            "nonsquare_grid": 0, "grid1d": 0, "grid3d": 0, "flat_input": 0, "nonsquare_patch": 0,
            "nonsquare_pool": 0, "sb2_zero": 0}

    def walk(desc):
        for layer in desc:
            seen[layer[0]] += 1
            if layer[0] == "res":
                walk(layer[1])
            if layer[0] == "conv":
                seen["even_patch"] += any(p % 2 == 0 for p in layer[2])
                seen["nonsquare_patch"] += len(set(layer[2])) > 1
            if layer[0] == "pool":
                seen["nonsquare_pool"] += len(set(layer[1])) > 1

    for seed in range(N_ARCH):
        desc, shape, sw2, sb2 = random_case(seed)
        walk(desc)
        grid = shape[1:]
        seen["flat_input"] += len(grid) == 0
        seen["grid1d"] += len(grid) == 1
        seen["grid3d"] += len(grid) == 3
        seen["nonsquare_grid"] += len(set(grid)) > 1
        seen["sb2_zero"] += sb2 == 0.0
    assert min(seen.values()) >= 2, seen


def test_doctests_of_the_kernels_package():
    """The docstring examples of gpbound.kernels run as doctests."""
    attempted = 0
    for name in ("gpbound.kernels", "gpbound.kernels.layers", "gpbound.kernels.nngp", "gpbound.kernels.arccos",
                 "gpbound.kernels.state", "gpbound.kernels.presets", "gpbound.kernels.architecture",
                 "gpbound.kernels.pixels"):
        res = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, name
        attempted += res.attempted
    assert attempted >= 2


# ---------------------------------------------------------------------------- blocked and compiled paths
def _blocked_cases():
    return [("seed", s) for s in range(N_ARCH)] + [("extra", name) for name in sorted(EXTRA_CASES)]


def _case(kind, key):
    if kind == "seed":
        desc, shape, sw2, sb2 = random_case(key)
        return desc, shape, sw2, sb2, 1000 + key
    desc, shape = EXTRA_CASES[key]
    return desc, shape, 1.6, 0.2, 7


@pytest.mark.parametrize("kind,key", _blocked_cases())
def test_blocked_kernel_equals_numpy_oracle(monkeypatch, kind, key):
    """Blocks of 2 x 2 pairs (x with itself: a ragged last block that overlaps its neighbour, only blocks on
    and above the diagonal) and 1 x 2 (x against y), the variances recorded once and replayed per block,
    on the cache-blocked CPU path (spatial inputs) and the max_elements path."""
    from gpbound.kernels import architecture as arch_mod

    desc, shape, sw2, sb2, seed = _case(kind, key)
    arch = Architecture(serial(*to_layers(desc)), shape)
    rng = np.random.default_rng(seed)
    X = _inputs(rng, 4, arch.n)
    X = np.concatenate([X, X[:1]])  # a coincident pair
    Y = _inputs(rng, 3, arch.n)
    want = oracle_kernel(desc, shape, np.concatenate([X, Y]), sw2, sb2)
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    per_pair = arch.input_pixels ** 2 if arch.full_pixels else arch.input_pixels
    _close(arch.kernel(tX, sigma_w2=sw2, sigma_b2=sb2, max_elements=4 * per_pair), want[:5, :5], f"{desc}: blocks")
    _close(arch.kernel(tX, tY, sigma_w2=sw2, sigma_b2=sb2, max_elements=2 * per_pair), want[:5, 5:],
           f"{desc}: cross blocks")
    monkeypatch.setattr(arch_mod, "_TILE", 4 * per_pair)
    _close(arch.kernel(tX, sigma_w2=sw2, sigma_b2=sb2), want[:5, :5], f"{desc}: cache blocks")
    _close(arch.kernel(tX, tY, sigma_w2=sw2, sigma_b2=sb2), want[:5, 5:], f"{desc}: cross cache blocks")


#: Conv + ReLU pairs for the fused compiled map (each pair shape compiles once, so few cases): diagonal
#: pixels with the conv's own variances (sigma_b2 = 0 and a zero input: zero variances) after a residual
#: block; full pixels before a pooling
COMPILED_CASES = {
    "diag": ([("conv", 2, (3, 2)), ("res", [("relu",), ("conv", 2, (1, 3))]), _xc(2, (2, 1), 1, "circular", 0.7, 0.0),
              ("relu",), ("flatten", 1)], (1, 4, 3)),
    "full_pool": ([("conv", 2, (3, 3)), ("relu",), ("pool", (2, 2)), ("conv", 2, (2, 1)), ("flatten", 1)], (1, 4, 4)),
}


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch's own import
@pytest.mark.parametrize("name", sorted(COMPILED_CASES))
def test_compiled_kernel_equals_numpy_oracle(monkeypatch, name):
    """enable_compile(True): the compiled ReLU map and the fused Conv + ReLU kernel, in cache blocks."""
    from gpbound.kernels import architecture as arch_mod
    from gpbound.kernels import enable_compile
    from gpbound.kernels import pixels as pixels_mod

    desc, shape = COMPILED_CASES[name]
    sw2, sb2 = 1.6, 0.2
    arch = Architecture(serial(*to_layers(desc)), shape)
    rng = np.random.default_rng(5)
    X = np.concatenate([_inputs(rng, 4, arch.n), np.zeros((1, arch.n))])  # a zero input
    want = oracle_kernel(desc, shape, X, sw2, sb2)
    per_pair = arch.input_pixels ** 2 if arch.full_pixels else arch.input_pixels
    monkeypatch.setattr(arch_mod, "_TILE", 4 * per_pair)
    fused = []
    real = pixels_mod.conv_relu_map
    monkeypatch.setattr(pixels_mod, "conv_relu_map", lambda *a: (fused.append(1), real(*a))[1])
    enable_compile(True)
    try:
        got = arch.kernel(torch.from_numpy(X), sigma_w2=sw2, sigma_b2=sb2)
    finally:
        enable_compile(False)
    assert fused  # the fused path ran
    _close(got, want, f"{name}: compiled")
    eager = arch.kernel(torch.from_numpy(X), sigma_w2=sw2, sigma_b2=sb2)
    _close(got, eager.numpy(), f"{name}: compiled vs eager")
