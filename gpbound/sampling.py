"""Sampling: Gaussian-process paths (exact and through wide networks) and test points.

* :func:`sample_gp_paths` -- exact zero-mean GP paths on a finite point set via the
  Cholesky factor of the kernel matrix (float64, stated jitter);
* :func:`sample_network_paths` -- outputs of many random finite networks of one
  architecture (at infinite width a GP with the NNGP kernel, docs/theory.md section 1); for
  point sets too large for a Cholesky factor;
* :func:`sample_l1_ball`, :func:`sample_segment` -- points in the sets of Theorem 1
  (the l1 ball ``B^1_r(x0)`` and the segment ``{x0 + t v : 0 <= t <= r}``).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
import gpytorch

from . import validation as _validation
from linear_operator.operators import CholLinearOperator, TriangularLinearOperator

__all__ = ["sample_gp_paths", "sample_network_paths", "sample_l1_ball", "sample_segment"]


MAX_POINTS = 2 ** 62  # more entries than any tensor can hold: a ValueError, not an allocator error


def _generator(seed, device="cpu"):
    seed = _validation.seed(seed, "seed", allow_none=True)
    g = torch.Generator(device="cpu")
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def _pos_int(v, name):
    return _validation.positive_int(v, name)


def _check_dtype(dtype):
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float64); got {dtype!r}")
    return dtype


def _real_tensor(x, name):
    """``x`` as a torch tensor of real numbers; TypeError for strings, None, bool or complex entries
    (no silent loss of an imaginary part), ValueError for numbers too large for a float."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a tensor or array of real numbers; got {type(x).__name__}")
    if isinstance(x, torch.Tensor):
        if x.is_complex() or x.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers; got a tensor of dtype {x.dtype}")
        return x
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested lists ...
        raise TypeError(f"{name} must be a tensor or array of real numbers; got {type(x).__name__} ({exc})") from None
    if arr.dtype.kind == "O":
        if any(isinstance(e, (str, bytes, bool, np.bool_, complex, np.complexfloating)) or e is None
               for e in arr.reshape(-1).tolist()):
            raise TypeError(f"{name} must hold real numbers (no strings, None, bool or complex entries)")
        try:
            arr = arr.astype(np.float64)
        except OverflowError:
            raise ValueError(f"{name} has an entry too large for a float (entries must be finite)") from None
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a tensor or array of real numbers ({exc})") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers; got an array of dtype {arr.dtype}")
    return torch.as_tensor(arr)


def _points(X, name="X", dtype=torch.float64, device=None):
    _check_dtype(dtype)
    X = _real_tensor(X, name)
    X = X.to(dtype=dtype, device=device if device is not None else X.device)
    if X.dim() != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, n) with N, n >= 1; got {tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf entries)")
    return X


def _kernel_matrix(kernel, X):
    if isinstance(kernel, torch.Tensor):
        K = kernel
    elif callable(kernel):
        K = kernel(X, X)
    else:
        raise TypeError(f"kernel must be a gpytorch Kernel, a callable (X1, X2) -> matrix or a "
                        f"tensor; got {type(kernel).__name__}")
    for attr in ("to_dense", "evaluate"):
        if not isinstance(K, torch.Tensor) and hasattr(K, attr):
            K = getattr(K, attr)()
    K = torch.as_tensor(K).detach().to(dtype=X.dtype, device=X.device)
    N = X.shape[0]
    if K.shape != (N, N):
        raise ValueError(f"kernel matrix must have shape ({N}, {N}); got {tuple(K.shape)}")
    if not bool(torch.isfinite(K).all()):
        raise ValueError("kernel matrix has NaN or inf entries")
    return 0.5 * (K + K.T)


def sample_gp_paths(kernel, X, num_paths: int, jitter: float = 1e-10, seed: Optional[int] = None,
                    device=None, dtype=torch.float64, max_jitter: float = 1e-4,
                    return_jitter: bool = False):
    """Exact paths of the zero-mean GP with covariance ``kernel`` on the points ``X``.

    .. math:: \\phi = L z, \\qquad L L^T = K(X, X) + \\epsilon I, \\quad z \\sim N(0, I_N),

    computed in float64 with ``torch.linalg.cholesky_ex`` and drawn through
    :class:`gpytorch.distributions.MultivariateNormal` with that factor as its root.  The jitter ``epsilon``
    (relative to the mean diagonal of ``K``) starts at ``jitter`` and is multiplied
    by 10, with a ``RuntimeWarning`` stating the value used, while the factorisation
    fails, up to ``max_jitter``.

    Parameters
    ----------
    kernel : gpytorch.kernels.Kernel, callable ``(X1, X2) -> (N1, N2)`` or tensor ``(N, N)``
        E.g. ``NNGPKernel(arch)``.
    X : tensor ``(N, n)``
    num_paths : int >= 1
    jitter : float >= 0, relative diagonal jitter (default 1e-10)
    seed : int or None
    device, dtype : where and how to compute (float64 default)
    max_jitter : largest relative jitter tried before raising
    return_jitter : also return the jitter actually used

    Returns
    -------
    tensor ``(num_paths, N)`` (and the jitter if ``return_jitter``)

    Raises
    ------
    ValueError
        Bad shapes, non-finite inputs, ``num_paths < 1``, ``jitter < 0``, or a
        kernel matrix that stays non-positive-definite up to ``max_jitter``.
    """
    num_paths = _pos_int(num_paths, "num_paths")
    jitter = _validation.real_number(jitter, "jitter", lo=0.0)
    max_jitter = _validation.real_number(max_jitter, "max_jitter", lo=0.0)
    seed = _validation.seed(seed, "seed", allow_none=True)
    X = _points(X, dtype=dtype, device=device)
    K = _kernel_matrix(kernel, X)
    N = X.shape[0]
    scale = float(K.diagonal().mean().abs()) or 1.0
    eye = torch.eye(N, dtype=K.dtype, device=K.device)
    eps = float(jitter)
    while True:
        L, info = torch.linalg.cholesky_ex(K + eps * scale * eye)
        if int(info) == 0:
            break
        new = max(eps * 10.0, 1e-12)
        if new > max_jitter:
            raise ValueError(f"kernel matrix is not positive definite even with relative jitter "
                             f"{eps:g} (max_jitter={max_jitter:g})")
        warnings.warn(f"Cholesky failed with relative jitter {eps:g}; retrying with {new:g}",
                      RuntimeWarning)
        eps = new
    gen = _generator(seed)
    z = torch.randn((num_paths, N), generator=gen, dtype=K.dtype).to(K.device)
    # the draw is gpytorch's MultivariateNormal with our float64 Cholesky factor as its root:
    # rsample(base_samples=z) = mean + L z (no second factorisation, no hidden jitter)
    mvn = gpytorch.distributions.MultivariateNormal(torch.zeros(N, dtype=K.dtype, device=K.device),
                                                    CholLinearOperator(TriangularLinearOperator(L)))
    paths = mvn.rsample(torch.Size([num_paths]), base_samples=z).contiguous()
    return (paths, eps) if return_jitter else paths


def sample_network_paths(arch, X, num_networks: int, width=None, sigma_w2: float = 2.0,
                         sigma_b2: float = 0.0, seed: Optional[int] = None, device=None,
                         dtype=torch.float64, chunk: int = 16, output: int = 0):
    """Outputs of ``num_networks`` independent random networks of ``arch`` on ``X``.

    ``phi_k(x) = arch.network(width, sigma_w2, sigma_b2, seed=s_k)(x)[output]``; as the
    width grows these are samples of the GP with kernel ``NNGPKernel(arch, sigma_w2,
    sigma_b2)`` (docs/theory.md section 1).  Networks are evaluated ``chunk`` at a time in one
    batched call (:class:`gpbound.ensemble.NetworkEnsemble`: K stacked copies of each layer); seeds
    ``s_k = spawn_seeds(seed, num_networks)``.

    Parameters
    ----------
    arch : gpbound.kernels.Architecture
    X : tensor ``(N, n)`` with ``n = arch.n``
    num_networks : int >= 1
    width : int or None, hidden width override
    sigma_w2, sigma_b2 : weight and bias variances
    seed : int or None
    device, dtype : float64 default
    chunk : networks per batched call
    output : output index taken

    Returns
    -------
    tensor ``(num_networks, N)``
    """
    from .ensemble import NetworkEnsemble, spawn_seeds

    num_networks = _pos_int(num_networks, "num_networks")
    chunk = _pos_int(chunk, "chunk")
    if not hasattr(arch, "network"):
        raise TypeError(f"arch must be a gpbound.kernels.Architecture; got {type(arch).__name__}")
    X = _points(X, dtype=dtype, device=device)
    if hasattr(arch, "n") and X.shape[1] != arch.n:
        raise ValueError(f"X must have n = arch.n = {arch.n} columns; got {X.shape[1]}")
    seeds = spawn_seeds(seed, num_networks)
    out = []
    with torch.no_grad():
        for i in range(0, num_networks, chunk):
            nets = [arch.network(width=width, sigma_w2=sigma_w2, sigma_b2=sigma_b2, seed=s,
                                 device=X.device, dtype=dtype) for s in seeds[i:i + chunk]]
            out.append(NetworkEnsemble(nets, output=output).shared(X))
    return torch.cat(out, 0)


def _center(x0, dtype, device):
    _check_dtype(dtype)
    x0 = _real_tensor(x0, "x0")
    x0 = x0.to(dtype=dtype, device=device if device is not None else x0.device)
    if x0.dim() != 1 or x0.shape[0] < 1:
        raise ValueError(f"x0 must have shape (n,) with n >= 1; got {tuple(x0.shape)}")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 must be finite (no NaN or inf entries)")
    return x0


def _radius(r):
    return _validation.real_number(r, "r", lo=0.0, lo_open=True)


def _kind(kind, allowed):
    if not isinstance(kind, str):
        raise TypeError(f"kind must be one of {allowed}; got {kind!r}")
    if kind not in allowed:
        raise ValueError(f"kind must be one of {allowed}; got {kind!r}")
    return kind


def _num(num, n):
    num = _pos_int(num, "num")
    if num * n > MAX_POINTS:
        raise ValueError(f"num must be an int >= 1 with num * n <= 2^62 entries; got num = {num}, n = {n}")
    return num


def sample_l1_ball(x0, r: float, num: Optional[int] = None, kind: str = "uniform",
                   seed: Optional[int] = None, device=None, dtype=torch.float64):
    """Points of the l1 ball ``B^1_r(x0) = {x : ||x - x0||_1 <= r}`` (Theorem 1).

    * ``"uniform"``: uniform in the ball: ``x = x0 + r U^{1/n} s * e / sum(e)``
      with ``e_i ~ Exp(1)`` (so ``e/sum e`` is uniform on the simplex,
      Dirichlet(1, ..., 1)), ``s_i = +-1`` fair signs and ``U ~ U(0, 1)`` (the
      volume of the ball of radius ``t`` grows like ``t^n``).  Marginals:
      ``E|x_i - x0_i| = r/(n+1)``.
    * ``"surface"``: uniform on the sphere ``||x - x0||_1 = r`` (no ``U`` factor);
      ``E|x_i - x0_i| = r/n``.
    * ``"vertices"``: the ``2n`` vertices ``x0 +- r e_i`` (all of them, in the order
      ``+e_1, -e_1, +e_2, ...``, when ``num`` is None; else ``num`` drawn uniformly).

    Parameters
    ----------
    x0 : tensor ``(n,)``; r : float > 0; num : int >= 1 (None only for ``"vertices"``)
    kind : {"uniform", "surface", "vertices"}
    seed : int or None; device, dtype

    Returns
    -------
    tensor ``(num, n)``
    """
    x0 = _center(x0, dtype, device)
    r = _radius(r)
    kind = _kind(kind, ("uniform", "surface", "vertices"))
    n = x0.shape[0]
    if num is not None or kind != "vertices":
        num = _num(num, n)
    gen = _generator(seed)
    if kind == "vertices":
        eye = torch.eye(n, dtype=dtype)
        verts = torch.stack([eye, -eye], 1).reshape(2 * n, n)
        if num is not None:
            verts = verts[torch.randint(0, 2 * n, (num,), generator=gen)]
        return _finite_points(x0 + r * verts.to(x0.device), r, dtype)
    e = -torch.log1p(-torch.rand((num, n), generator=gen, dtype=dtype))  # Exp(1)
    s = torch.where(torch.rand((num, n), generator=gen, dtype=dtype) < 0.5, -1.0, 1.0).to(dtype)
    y = s * e / e.sum(-1, keepdim=True)
    if kind == "uniform":
        y = y * torch.rand((num, 1), generator=gen, dtype=dtype) ** (1.0 / n)
    return _finite_points(x0 + r * y.to(x0.device), r, dtype)


def _finite_points(P, r, dtype):
    if not bool(torch.isfinite(P).all()):
        raise ValueError(f"r = {r:g} (with x0) overflows {dtype}: the points x0 + r u are not finite; "
                         "r must be smaller")
    return P


def sample_segment(x0, v, r: float, num: int, kind: str = "grid", seed: Optional[int] = None,
                   device=None, dtype=torch.float64):
    """Points ``x0 + t v / ||v||_2`` of the segment of Theorem 1 II, ``0 <= t <= r``.

    ``kind="grid"``: ``t = r k/(num-1)``, ``k = 0..num-1`` (both ends included);
    ``"uniform"``: ``t ~ U(0, r)``.  ``v`` is normalised to a unit l2 vector
    (the theorem's unit vector).

    Returns
    -------
    tensor ``(num, n)``
    """
    x0 = _center(x0, dtype, device)
    r = _radius(r)
    num = _num(num, x0.shape[0])
    kind = _kind(kind, ("grid", "uniform"))
    seed = _validation.seed(seed, "seed", allow_none=True)
    v = _real_tensor(v, "v").to(dtype=dtype, device=x0.device)
    if v.shape != x0.shape:
        raise ValueError(f"v must have the shape of x0 {tuple(x0.shape)}; got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()) or not bool((v != 0).any()):
        raise ValueError("v must be finite and non-zero")
    v = v / v.abs().max()  # scaled first: the norm of a huge or tiny v neither overflows nor underflows
    vn = torch.linalg.vector_norm(v)
    if kind == "grid":
        t = torch.linspace(0.0, r, num, dtype=dtype) if num > 1 else torch.zeros(1, dtype=dtype)
    else:
        t = r * torch.rand(num, generator=_generator(seed), dtype=dtype)
    return _finite_points(x0 + t.to(x0.device).unsqueeze(-1) * (v / vn), r, dtype)
