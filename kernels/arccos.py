"""Arc-cosine kernels (Cho & Saul 2009) and the ReLU Gaussian expectation ``F``.

All functions work on covariances ``(a, b, k) = (k_xx, k_yy, k_xy)`` and share one
autograd primitive with *analytic* derivatives, so gradients stay finite where the
inputs coincide (``k_xy^2 = k_xx k_yy``), where ``d arccos(c)/dc`` blows up but the
derivative of the kernel does not.

Notation: ``R = sqrt(max(a b - k^2, 0))``, ``c = clamp(k / sqrt(a b), -1, 1)``,
``theta = arccos c``.

* order 0: ``k_0 = (pi - theta) / pi``
* order 1: ``k_1 = (R + (pi - theta) k) / pi``            (``= |x||y| J_1(theta) / pi``)
* order 2: ``k_2 = (3 k R + (pi - theta)(a b + 2 k^2)) / pi``

and ``F(a, b, k) = E[relu(u) relu(v)] = k_1 / 2`` for ``(u, v) ~ N(0, [[a, k], [k, b]])``.

Derivatives (Price's theorem / direct differentiation; finite at ``R = 0``):

* order 1: ``dk_1/dk = (pi - theta)/pi``, ``dk_1/da = R / (2 pi a)``
* order 2: ``dk_2/dk = 4 k_1``, ``dk_2/da = (k R / a + (pi - theta) b) / pi``
* order 0: ``dk_0/dk = 1/(pi R)``, ``dk_0/da = -k/(2 pi a R)``; these are infinite at
  ``R = 0`` (the order-0 kernel has a cone-shaped peak at ``x || y``); there the
  gradient is *set to 0* (documented choice, a subgradient of the symmetric cone).

Where ``a = 0`` or ``b = 0`` (a zero input / zero variance) the kernels take their limits
(``k_1 = k_2 = F = 0``, ``k_0 = 1/2``) and the gradient terms that would divide by 0 are 0.
This decision is made per point (a point is zero iff its own variance is 0), never from the
product ``a b``; and every path computes in the normalised form ``c = k / s``,
``k_m = s^m J_m(theta) / pi`` with ``s = sqrt(a) sqrt(b)`` (the autograd path uses
``sqrt(a b)``, exact at coincident inputs, while all products ``a b`` of the call are normal
numbers), so nothing overflows or underflows before the kernel itself does (variances from
~1e-308 up to ~1e308; ``a b`` alone leaves the float64 range beyond ~1e154 or below ~1e-154).

References
----------
Y. Cho and L. K. Saul, "Kernel methods for deep learning", NeurIPS 2009.
De Palma, Kiani, Lloyd, ICML 2021, section 2 (ReLU kernel recursion); docs/theory.md §1.
"""
from __future__ import annotations

import itertools
import math
import numbers

import torch
import gpytorch

__all__ = [
    "relu_expectation",
    "arc_cosine",
    "arc_cosine_from_cov",
    "ArcCosineKernel",
    "enable_compile",
]

_PI = math.pi
_COMPILED = {"on": False, "fn": None}


def _check_order(order):
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2 (arc-cosine kernel order); got {order!r}")
    return int(order)


def _root_product(a, b):
    """``sqrt(a b)`` for variances ``a, b >= 0`` (broadcast), without overflow or underflow.

    ``sqrt(a * b)`` when all nonzero products of the call are normal numbers: then ``a = b`` gives
    ``s = a`` exactly (``sqrt(fl(a^2)) = a`` in binary floating point), so coincident inputs get
    ``c = k / s = 1`` exactly and the gradients at the cone's tip keep their documented values;
    otherwise the normalised ``sqrt(a) sqrt(b)`` (may differ from ``sqrt(ab)`` by an ulp).  The
    range check costs a reduction over ``a`` and ``b``, usually small broadcast factors of ``k``.
    """
    fi = torch.finfo(a.dtype)
    big = torch.tensor(math.inf, dtype=a.dtype, device=a.device)
    amin = torch.where(a > 0, a, big).amin() if a.numel() else big
    bmin = torch.where(b > 0, b, big).amin() if b.numel() else big
    amax = a.amax() if a.numel() else big.new_zeros(())
    bmax = b.amax() if b.numel() else big.new_zeros(())
    pmin, pmax = torch.stack([amin * bmin, amax * bmax]).tolist()  # inf: no nonzero product (or an overflow)
    if pmin >= 16 * fi.tiny and pmax <= fi.max / 16:  # every nonzero product a normal number, with a margin
        return torch.sqrt(a * b)
    return torch.sqrt(a) * torch.sqrt(b)


def _forward_values(a, b, k, order: int):
    """Kernel value and the intermediates, on broadcast tensors (no autograd).

    Normalised form: ``s = sqrt(ab)`` by :func:`_root_product` (never from an overflowing or
    underflowing ``a * b``: that happens for variances beyond ~1e154 or below ~1e-154 although the
    kernel fits), ``c = k / s`` and the value ``s^m J_m(c) / pi``.  A point is "zero" iff its own variance
    is 0 (``a == 0`` or ``b == 0``, decided per point, never from the product), so a Gram matrix
    is consistent: a tiny but positive variance is an ordinary point.

    Returns ``val, c, sin, pmt``: the value, the clamped cosine, ``sin(theta)`` and ``pi - theta``.
    """
    s = _root_product(a, b)  # sqrt(k_xx k_yy); never over- or underflows where the kernel fits
    c = k / s  # s > 0 wherever a, b > 0 (sqrt(a) sqrt(b) >= sqrt(2^-1074)^2 = the smallest subnormal)
    if not (bool((a > 0).all()) and bool((b > 0).all())):
        c = torch.where((a > 0) & (b > 0), c, 0.0)  # zero points (k / 0 = nan or inf): c = 0
    c.clamp_(-1.0, 1.0)
    pmt = _PI - torch.arccos(c)  # pi - theta
    # sin(theta) = sqrt((1 - c)(1 + c)): 1 - c is exact near c = 1, where 1 - c^2 (or ab - k^2) would cancel
    # catastrophically (relative error ~ sqrt(ulp)); J_1 is well conditioned in c, its terms are not
    sin = torch.sqrt((1.0 - c) * (1.0 + c))
    if order == 0:
        val = pmt / _PI
    elif order == 1:
        val = s * (sin + pmt * c) / _PI  # zero where a point is zero (s = 0)
    else:
        # s * (s * J_2): never forms s^2 alone (J_2 -> 0 at c = -1, where s^2 may overflow but the value does not)
        val = s * (s * (3.0 * c * sin + pmt * (1.0 + 2.0 * c * c))) / _PI
    return val, c, sin, pmt


#: entries per chunk of the fused eager order-1 map: the five chunk buffers (~2.5 MB in
#: float64) stay in the L2 cache, so each of the ~10 elementwise passes is a cache sweep
_CHUNK = 1 << 16
#: below this many entries the un-chunked path is used (its temporaries fit in cache anyway)
_CHUNK_MIN = 1 << 19


def _k1_eager(a, b, k, scale=1.0):
    """Fast path of ``scale * k_1`` (no autograd): temporaries reused in place.

    ``a`` and ``b`` are usually small broadcast factors of ``k`` (outer products), so
    their square roots cost nothing; each full-size pass is a memory sweep.  Large maps
    (``>= _CHUNK_MIN`` entries, e.g. the full-pixel state) are evaluated chunk by chunk
    with preallocated cache-sized buffers (:func:`_k1_chunked`).
    """
    sa, sb = torch.sqrt(a), torch.sqrt(b)
    shape = torch.broadcast_shapes(a.shape, b.shape, k.shape)
    if math.prod(shape) >= _CHUNK_MIN and k.device.type == "cpu":
        return _k1_chunked(sa, sb, k, shape, scale)
    s = sa * sb  # sqrt(k_xx k_yy), broadcast to k's shape
    c = k / s
    if not (bool((a > 0).all()) and bool((b > 0).all())):
        torch.nan_to_num_(c, nan=0.0, posinf=0.0, neginf=0.0)
    c.clamp_(-1.0, 1.0)
    theta = torch.arccos(c)
    one = torch.ones((), dtype=c.dtype, device=c.device)
    # sin theta = sqrt((1 - c)(1 + c)): 1 - c is exact near c = 1, where 1 - c*c would lose the
    # digits that must cancel against (pi - theta) c (J_1 is well conditioned in c, its terms are not)
    out = torch.sub(one, c).mul_(c + 1.0).sqrt_()
    out.add_(c, alpha=_PI).addcmul_(theta, c, value=-1.0)  # + (pi - theta) cos theta
    return out.mul_(s).mul_(scale / _PI)


def _k1_chunked(sa, sb, k, shape, scale):
    """``scale * k_1`` over ``shape`` in cache-sized chunks (same arithmetic as :func:`_k1_eager`).

    ``sa = sqrt(a)``, ``sb = sqrt(b)``.  The chunks are sub-tensors ``out[i0, .., j:j+step]``
    of at most ``_CHUNK`` entries (views of the broadcast inputs, nothing is materialised),
    so the Python loop runs over blocks of entries, never over single pixels.
    """
    out = torch.empty(shape, dtype=k.dtype, device=k.device)
    A, B, K = torch.broadcast_tensors(sa, sb, k)
    # chunk = a range of `step` indices along dim `split` times all later dims (<= _CHUNK entries)
    split, inner = len(shape) - 1, 1
    while split > 0 and inner * shape[split] <= _CHUNK:
        inner *= shape[split]
        split -= 1
    step = max(1, min(shape[split], _CHUNK // inner))
    buf = (step, *shape[split + 1:])
    s_buf = torch.empty(buf, dtype=k.dtype, device=k.device)
    c_buf, th_buf = torch.empty_like(s_buf), torch.empty_like(s_buf)
    one = torch.ones((), dtype=k.dtype, device=k.device)
    check = not (bool((sa > 0).all()) and bool((sb > 0).all()))
    f = scale / _PI
    for lead in itertools.product(*map(range, shape[:split])):
        for j in range(0, shape[split], step):
            idx = (*lead, slice(j, j + step))
            n = min(step, shape[split] - j)
            s, c, th = (s_buf, c_buf, th_buf) if n == step else (s_buf[:n], c_buf[:n], th_buf[:n])
            torch.mul(A[idx], B[idx], out=s)
            torch.div(K[idx], s, out=c)
            if check:
                torch.nan_to_num_(c, nan=0.0, posinf=0.0, neginf=0.0)
            c.clamp_(-1.0, 1.0)
            o = out[idx]
            torch.sub(one, c, out=o).mul_(torch.add(c, 1.0, out=th)).sqrt_()  # sin theta (as in _k1_eager)
            torch.arccos(c, out=th)
            o.add_(c, alpha=_PI).addcmul_(th, c, value=-1.0)  # + (pi - theta) cos theta
            o.mul_(s).mul_(f)
    return out


def _k1_fused(sa, sb, k, out, f: float):
    """``out <- f * s (sin theta + (pi - theta) c)`` with ``s = sa sb``, ``c = k / s``: one fused pass.

    The function :func:`enable_compile` compiles (the same arithmetic as :func:`_k1_eager`, so
    the compiled values equal the eager ones to rounding).  ``out`` has the broadcast shape of
    ``sa, sb, k``; ``f = scale / pi``.  Compiled, it reads ``k`` once and writes ``out`` once
    (no temporaries); eager it is only a reference.
    """
    s = sa * sb  # as in _k1_eager: no a * b (overflow/underflow)
    c = torch.nan_to_num(k / s, nan=0.0, posinf=0.0, neginf=0.0).clamp(-1.0, 1.0)
    out.copy_(s * (torch.sqrt((1.0 - c) * (1.0 + c)) + (_PI - torch.arccos(c)) * c) * f)


def _k1_plain(a, b, k):
    """``k_1`` through :func:`_k1_fused` run eagerly: the values the compiled map reproduces."""
    out = torch.empty(torch.broadcast_shapes(a.shape, b.shape, k.shape), dtype=k.dtype, device=k.device)
    _k1_fused(torch.sqrt(a), torch.sqrt(b), k, out, 1.0 / _PI)
    return out


def _k1_compiled(a, b, k, scale):
    """``scale * k_1`` through the compiled fused kernel (:func:`enable_compile`), into a fresh tensor.

    One call over the whole map: the fused kernel keeps no temporaries, so unlike the eager
    map it gains nothing from cache-sized chunks (measured on 2 cores: one call 48 ns/entry,
    per-65536-entry chunks 74 ns/entry from the per-call guard overhead, eager chunked 97 ns/entry,
    all under contention).
    """
    sa, sb = torch.sqrt(a), torch.sqrt(b)
    shape = torch.broadcast_shapes(a.shape, b.shape, k.shape)
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), k.dtype)
    out = torch.empty(shape, dtype=dtype, device=k.device)
    _COMPILED["fn"](sa, sb, k, out, float(scale) / _PI)
    return out


def enable_compile(flag: bool = True):
    """Switch ``torch.compile`` of the elementwise order-1 map on or off (default off).

    Off, the map runs eagerly (chunked in cache-sized blocks above ``_CHUNK_MIN`` entries).  On,
    the no-grad order-1 map (``relu_expectation``, ``arc_cosine(order=1)`` and the ReLU layers of
    the NNGP recursion) runs as one fused kernel (:func:`_k1_fused`, the eager formula, so the
    values agree with the eager path to rounding, ~1e-15 relative, and are deterministic: the
    kernel is elementwise, no reduction order).  Compilation needs a C++ compiler (on CPU) and
    costs seconds on the first call per shape family (number of dims, broadcast pattern, device);
    it pays off for maps over millions of entries.  Gradients always use the analytic eager formulas.

    The same switch turns on the compiled full-pixel conv stencil and, in the NNGP recursion, a
    circular stride-1 Conv directly followed by a ReLU as one fused kernel
    (:func:`gpbound.kernels.stencil.conv_relu_cross`), both without autograd.

    Parameters
    ----------
    flag : bool
        True to use the compiled map, False for the eager one.
    """
    if not isinstance(flag, (bool, int)) or isinstance(flag, float):
        raise TypeError(f"flag must be a bool; got {type(flag).__name__}")
    _COMPILED["on"] = bool(flag)
    if flag and _COMPILED["fn"] is None:
        # dynamic=None: static shapes first (measured 1.25x faster than dynamic=True), a dim that changes
        # between calls (block sizes) turns dynamic on its recompile
        _COMPILED["fn"] = torch.compile(_k1_fused, dynamic=None, fullgraph=True)


class _ArcCos(torch.autograd.Function):
    """``scale * k_order(a, b, k)`` with analytic derivatives (broadcasting inputs)."""

    @staticmethod
    def forward(ctx, a, b, k, order, scale):
        if order == 1 and not (a.requires_grad or b.requires_grad or k.requires_grad):
            if _COMPILED["on"]:
                return _k1_compiled(a, b, k, scale)
            return _k1_eager(a, b, k, scale)
        val, c, sin, pmt = _forward_values(a, b, k, order)
        ctx.order = order
        ctx.scale = scale
        ctx.shapes = (a.shape, b.shape, k.shape)
        ctx.save_for_backward(a, b, c, sin, pmt)
        return val.mul_(scale)

    @staticmethod
    def backward(ctx, g):
        # the derivatives of the module docstring in the normalised form (kc = c s, R = s sin theta,
        # s = sqrt(a) sqrt(b)), so no product a * b is formed here either
        a, b, c, sin, pmt = ctx.saved_tensors
        order = ctx.order
        zero = torch.zeros((), dtype=c.dtype, device=c.device)
        apos, bpos = a > 0, b > 0  # per point, as in the forward (a, b: usually small broadcast factors)
        sa, sb = torch.sqrt(a), torch.sqrt(b)
        g = g * ctx.scale
        shape_a, shape_b, shape_k = ctx.shapes
        need_a, need_b, need_k = ctx.needs_input_grad[:3]
        out_a = out_b = out_k = None
        # a zero point gets the gradient 0: where b = 0 (sb = 0) the order-1/2 terms below vanish by
        # themselves; where a = 0 the (small) reduced gradient is masked after the reduction
        if order == 1:
            if need_k:
                out_k = (g * pmt).div_(_PI).sum_to_size(shape_k)
            if need_a or need_b:
                gs = g * sin  # dk_1/da = R / (2 pi a) = sin * sqrt(b) / (2 pi sqrt(a))
                if need_a:
                    ra = (gs * sb).sum_to_size(shape_a)
                    out_a = torch.where(apos, ra / (2.0 * _PI * torch.where(apos, sa, 1.0)), zero)
                if need_b:
                    rb = (gs * sa).sum_to_size(shape_b)
                    out_b = torch.where(bpos, rb / (2.0 * _PI * torch.where(bpos, sb, 1.0)), zero)
        elif order == 2:
            if need_k:
                out_k = (g * (sa * sb) * (sin + pmt * c)).mul_(4.0 / _PI).sum_to_size(shape_k)  # 4 k_1
            if need_a or need_b:
                # dk_2/da = (kc R / a + (pi - theta) b) / pi = b (c sin + pmt) / pi
                gt = g * (c * sin + pmt) / _PI
                if need_a:
                    out_a = torch.where(apos, (gt * b).sum_to_size(shape_a), zero)
                if need_b:
                    out_b = torch.where(bpos, (gt * a).sum_to_size(shape_b), zero)
        else:
            R = (sa * sb) * sin
            ok = apos & bpos & (R > 0)  # the cone's tip (R = 0) and zero points: gradient 0 (docstring)
            if need_k:
                out_k = (g * torch.where(ok, 1.0 / (_PI * torch.where(ok, R, 1.0)), zero)).sum_to_size(shape_k)
            if need_a or need_b:
                # -kc / (2 pi a R) = -c / (2 pi a sin)
                h = g * torch.where(ok, c / (-2.0 * _PI * torch.where(ok, sin, 1.0)), zero)
                if need_a:
                    out_a = (h / torch.where(apos, a, 1.0)).sum_to_size(shape_a)
                if need_b:
                    out_b = (h / torch.where(bpos, b, 1.0)).sum_to_size(shape_b)
        return out_a, out_b, out_k, None, None


def arc_cosine_from_cov(kxx, kyy, kxy, order: int = 1):
    """Arc-cosine kernel of order ``order`` from the second moments of ``x`` and ``y``.

    .. math:: k_m = \\frac{1}{\\pi} (k_{xx} k_{yy})^{m/2} J_m(\\theta),\\quad
              \\theta = \\arccos\\frac{k_{xy}}{\\sqrt{k_{xx}k_{yy}}}

    Parameters
    ----------
    kxx, kyy, kxy : torch.Tensor
        ``|x|^2``, ``|y|^2`` and ``x . y`` (broadcastable; ``kxx, kyy >= 0``).
    order : {0, 1, 2}

    Returns
    -------
    torch.Tensor
        Broadcast shape of the three inputs; analytic, finite gradients at ``x = y``
        (orders 1 and 2).
    """
    order = _check_order(order)
    a, b, k = _checked_moments(kxx, kyy, kxy)
    return _ArcCos.apply(a, b, k, order, 1.0)


def _as_tensors(*xs):
    ref = next((x for x in xs if isinstance(x, torch.Tensor)), None)
    dtype = ref.dtype if ref is not None else torch.float64
    device = ref.device if ref is not None else None
    return [x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype, device=device) for x in xs]


def _checked_moments(kxx, kyy, kxy, names=("kxx", "kyy", "kxy")):
    """Tensors of the three second moments; ValueError naming the argument for NaN/inf or a negative variance."""
    a, b, k = _as_tensors(kxx, kyy, kxy)
    for name, t in zip(names, (a, b, k)):
        if not torch.is_floating_point(t):
            raise TypeError(f"{name} must be a floating-point tensor; got dtype {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
    for name, t in zip(names[:2], (a, b)):
        if bool((t < 0).any()):
            raise ValueError(f"{name} is a variance and must be >= 0; got a minimum of {float(t.min())}")
    return a, b, k


def _relu_map(kxx, kyy, kxy):
    """``F`` of :func:`relu_expectation` without argument checks (the kernel recursion's inner loop)."""
    return _ArcCos.apply(kxx, kyy, kxy, 1, 0.5)


def relu_expectation(kxx, kyy, kxy):
    """ReLU Gaussian expectation ``F`` (docs/theory.md §1; ReLU layers of the paper's eqs. (2) and (5)).

    .. math:: F = E[\\tau(u)\\tau(v)] = \\frac{\\sqrt{k_{xx}k_{yy}}}{2\\pi}
              \\left(\\sin\\theta + (\\pi-\\theta)\\cos\\theta\\right),\\quad
              (u, v) \\sim N\\left(0, \\begin{pmatrix}k_{xx}&k_{xy}\\\\k_{xy}&k_{yy}\\end{pmatrix}\\right)

    with the cosine clamped to ``[-1, 1]``; ``F(k, k, k) = k/2``.  Gradients are the
    analytic ones: ``dF/dk_xy = (pi - theta)/(2 pi)``, ``dF/dk_xx = R/(4 pi k_xx)``,
    finite at coincident inputs.

    Parameters
    ----------
    kxx, kyy : torch.Tensor
        Variances (``>= 0``), broadcastable with ``kxy``.
    kxy : torch.Tensor
        Covariance.

    Returns
    -------
    torch.Tensor
        ``F`` with the broadcast shape.

    Raises
    ------
    ValueError
        NaN/inf in any argument, or a negative variance ``kxx``/``kyy``.

    References
    ----------
    Cho & Saul (2009); De Palma, Kiani, Lloyd (2021), section 2.
    """
    a, b, k = _checked_moments(kxx, kyy, kxy)
    return _ArcCos.apply(a, b, k, 1, 0.5)


def arc_cosine(x1, x2, order: int = 1, diag: bool = False):
    """Arc-cosine kernel matrix of Cho & Saul (2009) between the rows of ``x1`` and ``x2``.

    .. math:: k_m(x, y) = \\frac{1}{\\pi}\\|x\\|^m\\|y\\|^m J_m(\\theta),\\
              J_0 = \\pi-\\theta,\\ J_1 = \\sin\\theta + (\\pi-\\theta)\\cos\\theta,\\
              J_2 = 3\\sin\\theta\\cos\\theta + (\\pi-\\theta)(1 + 2\\cos^2\\theta)

    Parameters
    ----------
    x1 : torch.Tensor, shape ``(..., N, d)``
    x2 : torch.Tensor, shape ``(..., M, d)``
    order : {0, 1, 2}
    diag : bool
        If True (``N == M``) return only ``k(x1_i, x2_i)``, shape ``(..., N)``.

    Returns
    -------
    torch.Tensor, shape ``(..., N, M)`` (or ``(..., N)``)
    """
    order = _check_order(order)
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (..., N, d); got {type(x).__name__}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite (no NaN or inf)")
    if x1.shape[-1] != x2.shape[-1]:
        raise ValueError(f"x1 and x2 must have the same last dimension; got {x1.shape[-1]} and {x2.shape[-1]}")
    a = (x1 * x1).sum(-1)
    b = (x2 * x2).sum(-1)
    if diag:
        k = (x1 * x2).sum(-1)
        return arc_cosine_from_cov(a, b, k, order)
    k = x1 @ x2.transpose(-1, -2)
    return arc_cosine_from_cov(a.unsqueeze(-1), b.unsqueeze(-2), k, order)


class ArcCosineKernel(gpytorch.kernels.Kernel):
    """Arc-cosine kernel of order 0, 1 or 2 (Cho & Saul 2009) as a GPyTorch kernel.

    .. math:: k_m(x, y) = \\frac{1}{\\pi}\\|x\\|^m\\|y\\|^m J_m(\\theta)

    It is the NNGP kernel of one infinitely wide hidden layer with step (m=0), ReLU
    (m=1) or squared-ReLU (m=2) activation and unit-variance weights, times 2.  It has no
    hyperparameters: wrap it in a :class:`gpytorch.kernels.ScaleKernel` for an output scale.

    Parameters
    ----------
    order : {0, 1, 2}
    dtype : torch.dtype
        Floor of the computation's precision (default float64: float32 inputs are computed in
        float64; float64 inputs are never demoted).  The covariance is returned in the inputs'
        dtype, as GPyTorch kernels do, so float32 models work.
    **kwargs
        Passed to :class:`gpytorch.kernels.Kernel` (``active_dims``, ``batch_shape``...).  With a
        ``batch_shape`` the covariance is broadcast to it (the kernel is the same in every batch).

    Notes
    -----
    Inputs are ``(..., N, d)``; 1-D inputs ``(N,)`` are read as ``(N, 1)``, where
    :math:`k_m(x, y) = c_m |x|^m |y|^m (1 + \\mathrm{sign}(xy))/2` with :math:`c_0 = c_1 = 1`,
    :math:`c_2 = 3` (:math:`\\theta \\in \\{0, \\pi\\}`).

    Raises
    ------
    TypeError
        ``dtype`` not a floating dtype; ``x1``/``x2`` not tensors.
    ValueError
        ``order`` not 0, 1 or 2; ``x1``/``x2`` with different last dimensions or not finite.
    """

    has_lengthscale = False

    def __init__(self, order: int = 1, dtype=torch.float64, **kwargs):
        self.order = _check_order(order)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype; got {dtype!r}")
        super().__init__(**kwargs)
        self.compute_dtype = dtype

    def __call__(self, x1, x2=None, diag=False, **params):
        # argument checks only: gpytorch's Kernel.__call__ raises AttributeError on a non-tensor and
        # RuntimeError on different widths, both before forward could name the argument
        from .nngp import _check_call_args

        _check_call_args(x1, x2, self.active_dims, "d")
        return super().__call__(x1, x2, diag=diag, **params)

    def forward(self, x1, x2, diag=False, **params):
        # gpytorch 1.x passes the deprecated last_dim_is_batch in params (always False unless a caller sets it)
        if params.get("last_dim_is_batch", False):
            raise ValueError("last_dim_is_batch=True is not supported by ArcCosineKernel")
        for name, x in (("x1", x1), ("x2", x2)):
            if not isinstance(x, torch.Tensor) or x.dim() < 2:
                raise ValueError(f"{name} must be a torch.Tensor of shape (..., N, d); "
                                 f"got {tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            if not torch.isfinite(x).all():
                raise ValueError(f"{name} contains NaN or inf; inputs must be finite")
        if x1.shape[-1] != x2.shape[-1]:
            raise ValueError(f"x2 must have the same last dimension d as x1; got {x2.shape[-1]} and {x1.shape[-1]}")
        out_dt = torch.promote_types(x1.dtype, x2.dtype)
        dt = torch.promote_types(out_dt, self.compute_dtype)
        K = arc_cosine(x1.to(dt), x2.to(dt), self.order, diag=diag).to(out_dt)
        if len(self.batch_shape):
            lead = K.shape[:-1] if diag else K.shape[:-2]
            tail = K.shape[len(lead):]
            K = K.expand(*torch.broadcast_shapes(lead, self.batch_shape), *tail)
        return K
