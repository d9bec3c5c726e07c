r"""The constants C and M of Theorem 1's hypothesis (8): closed form (Theorem 2) and measured.

.. math::

    \sqrt{K(x, x)} \ge C \|x\|_2, \qquad d(x, y) \le M C \|x - y\|_2 \qquad\text{(eq. 8)}

Theorem 2 (eq. 14): the NNGP kernel of a random deep network satisfies (8) with
:math:`M = \sqrt{|I^{(0)}| / |I^{(L_f)}|}` (input pixels over pixels before flattening).

Note that (8) for *all* x, y forces :math:`M \ge 1`: with y = 0,
:math:`C\|x\| - \sqrt{K(0,0)} \le \|\Phi(x)\| - \|\Phi(0)\| \le d(x, 0) \le M C \|x\|`, and
letting :math:`\|x\| \to \infty` gives M >= 1 (M = 1 for the linear kernel). A value below 1
from :func:`estimate_constants` only means the sampled points did not probe far enough.

References
----------
De Palma, Kiani, Lloyd, ICML 2021, eq. (8), Theorem 2, eq. (14).
"""

from dataclasses import dataclass
import math

import numpy as np
import torch

from .validation import positive_int
from .rkhs import as_points, check_kernel, kernel_paired, rkhs_distance

__all__ = ["theorem2_M", "estimate_constants", "ConstantsEstimate"]


MAX_PIXELS = 2 ** 63 - 1  # a pixel count beyond int64 is not an image (and would overflow the ratio)


def _pixels(v, name):
    """A pixel count: an int in [1, 2^63 - 1] (NumPy integers accepted); TypeError/ValueError naming it."""
    return positive_int(v, name, minimum=1, maximum=MAX_PIXELS)


def theorem2_M(arch_or_pixels, flatten_pixels=None):
    r"""Theorem 2's constant :math:`M = \sqrt{|I^{(0)}| / |I^{(L_f)}|}` (eq. 14).

    Parameters
    ----------
    arch_or_pixels : Architecture or int
        An object with integer attributes ``input_pixels`` (:math:`|I^{(0)}|`) and
        ``flatten_pixels`` (:math:`|I^{(L_f)}|`) -- e.g. :class:`gpbound.kernels.Architecture`
        -- or the input pixel count itself.
    flatten_pixels : int, optional
        Pixels of the layer before flattening; required iff ``arch_or_pixels`` is an int.

    Returns
    -------
    float
        ``M >= 1`` whenever pooling only reduces the pixel count.

    Raises
    ------
    TypeError, ValueError
        Missing attributes, non-integer or non-positive pixel counts, or both an architecture
        and ``flatten_pixels`` given; an architecture whose ``theorem2_issues`` are not empty
        (strided or zero-padded convolutions: Theorem 2 is not derived for them).

    Examples
    --------
    >>> from gpbound.constants import theorem2_M
    >>> theorem2_M(32 * 32, 8 * 8)   # the paper's residual network: |I0|/|I_Lf| = 16
    4.0
    """
    if hasattr(arch_or_pixels, "input_pixels") and hasattr(arch_or_pixels, "flatten_pixels"):
        if flatten_pixels is not None:
            raise ValueError("flatten_pixels must be None when an architecture is given")
        issues = tuple(getattr(arch_or_pixels, "theorem2_issues", ()))
        if issues:  # a certified radius needs a proved M: never the pixel ratio where it is not derived
            raise ValueError(f"arch_or_pixels: Theorem 2's M is not derived for this architecture ({issues[0]}"
                             + (f"; and {len(issues) - 1} more" if len(issues) > 1 else "")
                             + "), so no certified radius rests on it")
        i0 = _pixels(arch_or_pixels.input_pixels, "arch_or_pixels.input_pixels (a pixel count)")
        ilf = _pixels(arch_or_pixels.flatten_pixels, "arch_or_pixels.flatten_pixels (a pixel count)")
    else:
        if flatten_pixels is None:
            raise TypeError(
                "theorem2_M needs an object with input_pixels and flatten_pixels attributes, "
                "or two ints (input_pixels, flatten_pixels)"
            )
        i0 = _pixels(arch_or_pixels, "arch_or_pixels (input_pixels, a pixel count)")
        ilf = _pixels(flatten_pixels, "flatten_pixels (a pixel count)")
    return math.sqrt(i0 / ilf)


@dataclass(frozen=True)
class ConstantsEstimate:
    r"""Result of :func:`estimate_constants`.

    Attributes
    ----------
    C : float
        Smallest observed :math:`\sqrt{K(x,x)}/\|x\|_2` over the nonzero rows of X and every
        point visited by the optimiser.
    M : float
        ``lipschitz / C``: the largest observed :math:`d(x,y)/(C\|x-y\|_2)`.
    lipschitz : float
        Largest observed :math:`d(x, y)/\|x - y\|_2` (sampled and optimised pairs).
    M_sampled : float
        The largest :math:`d(x,y)/\|x-y\|_2` over the sampled pairs only (before gradient ascent),
        divided by C measured on the rows of X only (so it is a deterministic function of X and seed).
    worst_pair : tuple of torch.Tensor
        The pair ``(x, y)`` attaining ``lipschitz``.
    n_pairs : int
        Number of sampled pairs.
    steps : int
        Gradient-ascent steps run (0 if ``optimise=False``).
    """

    C: float
    M: float
    lipschitz: float
    M_sampled: float
    worst_pair: tuple
    n_pairs: int
    steps: int


def _ratio2(kernel, x, y):
    """d(x, y)^2 / |x - y|^2 per row (differentiable, no square root)."""
    d2 = rkhs_distance(kernel, x, y, squared=True)
    return d2 / (x - y).pow(2).sum(-1)


def estimate_constants(
    kernel,
    X,
    pairs=2000,
    optimise=True,
    steps=100,
    seed=0,
    lr=0.05,
    starts=8,
    min_rel_step=1e-4,
    device=None,
):
    r"""Measure C and M of hypothesis (8) for a kernel, to check Theorem 1 applies.

    Parameters
    ----------
    kernel : gpytorch.kernels.Kernel or callable
        ``kernel(x1, x2)`` -> ``(B1, B2)`` matrix.
    X : tensor or array_like, shape (N, n)
        Sample inputs (N >= 2); zero rows are ignored for C (the hypothesis holds trivially there).
    pairs : int
        Number of pairs to sample: half random pairs of rows of X, half "close" pairs
        :math:`(x, x + s\|x\| u)` with ``u`` a random unit vector and ``s`` log-uniform in
        [1e-3, 0.3] (the supremum of the ratio is often at coincidence).
    optimise : bool
        Run gradient ascent (``torch.optim.Adam``) on :math:`d^2(x, x+h)/\|h\|^2` over both
        ``x`` and ``h``, started from the ``starts`` worst sampled pairs.
    steps : int
        Adam steps.
    seed : int
        Seed of the ``torch.Generator`` for the sampling.
    lr : float
        Adam learning rate, relative to the scale of X (step sizes are ``lr * median |x|``).
    starts : int
        Number of pairs optimised jointly.
    min_rel_step : float
        :math:`\|h\|` is kept >= ``min_rel_step * |x|`` so the cancellation in
        :math:`d^2 = K_{xx} - 2K_{xy} + K_{yy}` stays accurate (relative error ~1e-16/min_rel_step^2).
    device : torch.device, optional

    Returns
    -------
    ConstantsEstimate

    Raises
    ------
    ValueError
        ``C = 0`` (:math:`K(x,x) = 0` at some :math:`x \ne 0`: hypothesis (8) fails), fewer than 2
        rows, all rows zero, bad sizes.

    Notes
    -----
    The estimates are *empirical*: C is an upper estimate of the best constant (a minimum over
    finitely many points) and M a lower estimate of the true supremum. A measured M well above
    Theorem 2's :math:`\sqrt{|I_0|/|I_{L_f}|}` would falsify hypothesis (8) for that kernel.
    """
    check_kernel(kernel)
    x, _ = as_points(X, "X", device=device, allow_vector=False)
    for name, v, lo in (("pairs", pairs, 1), ("steps", steps, 0), ("starts", starts, 1), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    for name, v in (("lr", lr), ("min_rel_step", min_rel_step)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite float > 0, got {v!r}")
    if x.shape[0] < 2:
        raise ValueError(f"X must have at least 2 rows, got {x.shape[0]}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    dev, dt = x.device, x.dtype

    norms = x.norm(dim=1)
    nz = norms > 0
    if not bool(nz.any()):
        raise ValueError("X must contain a nonzero row (C is defined by sqrt K(x,x) >= C |x|)")
    with torch.no_grad():
        kdiag = kernel_paired(kernel, x[nz], x[nz])
    if bool((kdiag < 0).any()):
        raise ValueError("kernel has K(x, x) < 0 on X: not a covariance")
    C = float((kdiag.sqrt() / norms[nz]).min())
    if not C > 0:
        raise ValueError(
            "C = 0: K(x, x) = 0 at some x != 0 in X, so sqrt K(x,x) >= C |x| fails for every C > 0 "
            "(hypothesis (8) of Theorem 1 is violated)"
        )

    C_X = C  # C over the rows of X only (M_sampled uses it)

    # --- sampled pairs ---------------------------------------------------------------------
    n_far = pairs // 2
    n_close = pairs - n_far
    i = torch.randint(0, x.shape[0], (n_far,), generator=gen).to(dev)
    j = torch.randint(0, x.shape[0] - 1, (n_far,), generator=gen).to(dev)
    j = j + (j >= i).to(j.dtype)  # j != i
    a_far, b_far = x[i], x[j]
    keep = (a_far - b_far).norm(dim=1) > 0
    a_far, b_far = a_far[keep], b_far[keep]
    k = torch.randint(0, x.shape[0], (n_close,), generator=gen).to(dev)
    base = x[k]
    scale = base.norm(dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, norms.max().expand_as(scale))
    u = torch.randn(n_close, x.shape[1], generator=gen, dtype=dt).to(dev)
    u = u / u.norm(dim=1, keepdim=True)
    s = torch.exp(torch.empty(n_close, 1, dtype=dt).uniform_(math.log(1e-3), math.log(0.3), generator=gen)).to(dev)
    a = torch.cat([a_far, base])
    b = torch.cat([b_far, base + s * scale * u])
    with torch.no_grad():
        r2 = _ratio2(kernel, a, b)
    best = int(torch.argmax(r2))
    L2 = float(r2[best])
    worst = (a[best].clone(), b[best].clone())
    L2_sampled = L2

    # --- gradient ascent on d^2(x, x + h) / |h|^2 ----------------------------------------------
    run = 0
    if optimise and steps > 0:
        top = torch.topk(r2, min(starts, r2.numel())).indices
        xa = a[top].clone().requires_grad_(True)
        h = (b[top] - a[top]).clone().requires_grad_(True)
        opt = torch.optim.Adam([xa, h], lr=lr * float(norms.median().clamp_min(1e-12)))
        with torch.enable_grad():
            for run in range(1, steps + 1):
                opt.zero_grad()
                hn = h.norm(dim=1, keepdim=True)
                floor = min_rel_step * xa.norm(dim=1, keepdim=True).clamp_min(1e-12)
                h_eff = h * torch.clamp(floor / hn.clamp_min(1e-300), min=1.0)
                ratio = _ratio2(kernel, xa, xa + h_eff)
                with torch.no_grad():
                    finite = torch.isfinite(ratio)
                    if not bool(finite.any()):
                        break
                    m = int(torch.argmax(torch.where(finite, ratio, torch.full_like(ratio, -1.0))))
                    if float(ratio[m]) > L2:
                        L2 = float(ratio[m])
                        worst = (xa[m].detach().clone(), (xa[m] + h_eff[m]).detach().clone())
                (-ratio[finite].sum()).backward()
                with torch.no_grad():  # a kernel with an unsafe arccos/sqrt derivative: skip that component
                    for p in (xa, h):
                        p.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
                opt.step()
                with torch.no_grad():
                    if not (bool(torch.isfinite(xa).all()) and bool(torch.isfinite(h).all())):
                        break
        with torch.no_grad():  # C must also hold at the points the optimiser visited
            pts = torch.cat([xa.detach(), xa.detach() + h.detach(), worst[0][None], worst[1][None]])
            pn = pts.norm(dim=1)
            pts, pn = pts[pn > 0], pn[pn > 0]
            if pts.shape[0]:
                kd = kernel_paired(kernel, pts, pts)
                C = min(C, float((kd.clamp_min(0).sqrt() / pn).min()))
            if not C > 0:
                raise ValueError("C = 0 at a point visited by the optimiser: hypothesis (8) is violated")
    L = math.sqrt(max(L2, 0.0))
    return ConstantsEstimate(
        C=C,
        M=L / C,
        lipschitz=L,
        M_sampled=math.sqrt(max(L2_sampled, 0.0)) / C_X,
        worst_pair=worst,
        n_pairs=int(a.shape[0]),
        steps=run,
    )
