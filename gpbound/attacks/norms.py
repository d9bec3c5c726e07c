"""lp norms, dual norms, steepest-ascent directions and lp-ball projections.

Small batched primitives shared by the attacks.  Every function works row-wise on
``(B, n)`` tensors; nothing loops over rows or coordinates.
"""
from __future__ import annotations

import math
from typing import Union

import torch

NormLike = Union[int, float, str]

_NORM_NAMES = {
    "1": 1.0, "l1": 1.0, "2": 2.0, "l2": 2.0,
    "inf": math.inf, "linf": math.inf, "l_inf": math.inf, "infinity": math.inf,
}


def parse_norm(norm: NormLike) -> float:
    """Return the exponent ``p`` in {1, 2, inf} of an lp norm given as number or name.

    Parameters
    ----------
    norm : {1, 2, inf, "l1", "l2", "linf"}
        The norm.

    Raises
    ------
    ValueError
        If ``norm`` is not one of the allowed values.
    """
    from gpbound.validation import norm_p

    if isinstance(norm, str) and norm.strip() in ("1", "2"):  # the attacks' own short names
        norm = "l" + norm.strip()
    p = norm_p(norm, "norm")
    if p in (1.0, 2.0, math.inf):
        return p
    raise ValueError(f"norm must be one of 1, 2, inf, 'l1', 'l2', 'linf'; got {norm!r}")


def dual_exponent(p: float) -> float:
    """Dual exponent ``q`` with ``1/p + 1/q = 1`` (1 <-> inf, 2 <-> 2)."""
    p = parse_norm(p)
    return {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}[p]


def lp_norm(x: torch.Tensor, p: float) -> torch.Tensor:
    """Row-wise lp norm of ``x`` of shape ``(B, n)`` -> ``(B,)``."""
    return torch.linalg.vector_norm(x, ord=p, dim=-1)


def dual_direction(g: torch.Tensor, p: float) -> torch.Tensor:
    """Unit-lp vector ``d`` maximising ``<g, d>`` (so ``<g, d> = ||g||_q``).

    * p = 2:   ``d = g / ||g||_2``
    * p = inf: ``d = sign(g)``
    * p = 1:   ``d = sign(g_j) e_j`` with ``j = argmax_i |g_i|``

    Rows with ``g = 0`` give ``d = 0``.
    """
    if p == 2.0:
        nrm = lp_norm(g, 2.0).unsqueeze(-1)
        return torch.where(nrm > 0, g / nrm.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(g))
    if p == math.inf:
        return torch.sign(g)
    j = g.abs().argmax(dim=-1, keepdim=True)
    d = torch.zeros_like(g)
    d.scatter_(-1, j, torch.sign(torch.gather(g, -1, j)))
    return d


def linear_step(g: torch.Tensor, c: torch.Tensor, p: float) -> torch.Tensor:
    """Minimal-lp perturbation ``delta`` with ``<g, delta> = -c`` (row-wise).

    ``delta = -c / ||g||_q * d_p(g)``: the exact lp projection onto a hyperplane,
    ``||delta||_p = |c| / ||g||_q``.
    """
    q = dual_exponent(p)
    gq = lp_norm(g, q).clamp_min(torch.finfo(g.dtype).tiny)
    return (-c / gq).unsqueeze(-1) * dual_direction(g, p)


def project_lp_ball(delta: torch.Tensor, eps: torch.Tensor, p: float) -> torch.Tensor:
    """Euclidean projection of each row of ``delta`` onto the lp ball of radius ``eps``.

    l2: rescaling; linf: clipping; l1: the sort-based simplex projection of
    Duchi et al. (2008), batched.  Rows with ``eps = inf`` are returned unchanged.
    """
    eps = eps.to(delta.dtype)
    if p == 2.0:
        nrm = lp_norm(delta, 2.0)
        scale = torch.where(nrm > eps, eps / nrm.clamp_min(torch.finfo(delta.dtype).tiny),
                            torch.ones_like(nrm))
        return delta * scale.unsqueeze(-1)
    if p == math.inf:
        e = eps.unsqueeze(-1)
        return torch.maximum(torch.minimum(delta, e), -e)
    a = delta.abs()
    inside = a.sum(-1) <= eps
    mu, _ = torch.sort(a, dim=-1, descending=True)
    cs = torch.cumsum(mu, dim=-1)
    k = torch.arange(1, a.shape[-1] + 1, dtype=a.dtype, device=a.device)
    finite_eps = torch.where(torch.isfinite(eps), eps, torch.zeros_like(eps))
    cond = mu - (cs - finite_eps.unsqueeze(-1)) / k > 0
    rho = (cond.sum(-1) - 1).clamp_min(0)
    theta = (torch.gather(cs, -1, rho.unsqueeze(-1)).squeeze(-1) - finite_eps) / (rho + 1).to(a.dtype)
    theta = theta.clamp_min(0)
    proj = torch.sign(delta) * (a - theta.unsqueeze(-1)).clamp_min(0)
    return torch.where(inside.unsqueeze(-1), delta, proj)


def project_hyperplane_box(z: torch.Tensor, g: torch.Tensor, c: torch.Tensor, p: float,
                           bounds=None):
    """Minimal-lp step onto the hyperplane ``{x : c + <g, x - z> = 0}`` inside a box, row-wise.

    Solves, for every row,

    .. math:: \\min_\\delta \\|\\delta\\|_p \\quad \\text{s.t.} \\quad \\langle g, \\delta\\rangle = -c,
              \\quad lo \\le z + \\delta \\le hi,

    exactly and without loops over rows or coordinates.  Every coordinate moves in the
    direction ``sign(-c g_i)`` by ``u_i`` up to its box capacity ``cap_i`` (``hi - z_i`` or
    ``z_i - lo``) and buys ``|g_i| u_i`` of the target ``|c|``:

    * p = 1: a fractional knapsack -- coordinates in decreasing ``|g_i|`` order, each moved
      to its box limit until the target is met (sort + cumulative sum);
    * p = 2: ``u_i = min(lambda |g_i|, cap_i)``; p = inf: ``u_i = min(eps, cap_i)``; the
      scalar ``lambda`` (``eps``) solves the monotone piecewise-linear equation
      ``sum_i |g_i| u_i = |c|``, found among the sorted breakpoints ``cap_i / |g_i|``
      (``cap_i``) by cumulative sums.

    Without a box (``bounds=None``) this is :func:`linear_step`.  Where the box cannot
    reach the hyperplane (``sum_i |g_i| cap_i < |c|``) every coordinate goes to its
    limit (the largest decrease of ``|c + <g, delta>|`` in the box) and ``feasible`` is
    false.

    Parameters
    ----------
    z : tensor ``(B, n)``, points inside the box.
    g : tensor ``(B, n)``, normals (gradients).
    c : tensor ``(B,)``, value of the linearisation at ``z``.
    p : float in {1, 2, inf}.
    bounds : (lo, hi) or None.

    Returns
    -------
    delta : tensor ``(B, n)``
    feasible : bool tensor ``(B,)``

    References
    ----------
    Croce and Hein, "Minimally distorted adversarial examples with a fast adaptive
    boundary attack" (FAB), ICML 2020, section 3.1 (box-constrained projections).
    """
    if bounds is None:
        return linear_step(g, c, p), torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    lo, hi = float(bounds[0]), float(bounds[1])
    target = c.abs().unsqueeze(-1)                          # (B, 1) to be bought
    sgn = -torch.sign(c).unsqueeze(-1) * torch.sign(g)      # move direction of each coordinate
    a = g.abs()
    cap = torch.where(sgn > 0, hi - z, z - lo).clamp_min(0.0)
    cap = torch.where(a > 0, cap, torch.zeros_like(cap))
    w = a * cap                                             # most each coordinate can buy
    feasible = (w.sum(-1) >= c.abs()) | (c == 0)
    if p == 1.0:
        order = torch.argsort(a, dim=-1, descending=True)
        ws = torch.gather(w, -1, order)
        prev = torch.cumsum(ws, dim=-1) - ws                # bought by the steeper coordinates
        buy = torch.minimum((target - prev).clamp_min(0.0), ws)
        a_s = torch.gather(a, -1, order)
        u_s = torch.where(a_s > 0, buy / a_s.clamp_min(torch.finfo(a.dtype).tiny), torch.zeros_like(buy))
        u_s = torch.minimum(u_s, torch.gather(cap, -1, order))
        u = torch.zeros_like(u_s).scatter_(-1, order, u_s)
        return sgn * u, feasible
    if p == 2.0:
        rate = a
    elif p == math.inf:
        rate = (a > 0).to(a.dtype)
    else:
        raise ValueError(f"p must be 1, 2 or inf; got {p!r}")
    ar = a * rate                                           # slope of coordinate i while unsaturated
    brk = torch.where(rate > 0, cap / rate.clamp_min(torch.finfo(a.dtype).tiny),
                      torch.full_like(cap, math.inf))       # saturation point of each coordinate
    order = torch.argsort(brk, dim=-1)
    b_s, w_s, ar_s = (torch.gather(t, -1, order) for t in (brk, w, ar))
    sat = torch.cumsum(w_s, dim=-1)                         # bought by the coordinates saturated at b_j
    slope_after = ar_s.sum(-1, keepdim=True) - torch.cumsum(ar_s, dim=-1)
    h = sat + torch.where(slope_after > 0, b_s * slope_after, torch.zeros_like(sat))  # h(b_j)
    k = (h < target).sum(-1, keepdim=True)                  # coordinates saturated before the target
    sat_prev = torch.where(k > 0, torch.gather(sat, -1, (k - 1).clamp_min(0)), torch.zeros_like(target))
    slope = ar_s.sum(-1, keepdim=True) - torch.where(
        k > 0, torch.gather(torch.cumsum(ar_s, dim=-1), -1, (k - 1).clamp_min(0)), torch.zeros_like(target))
    s = torch.where(slope > 0, (target - sat_prev) / slope.clamp_min(torch.finfo(a.dtype).tiny),
                    torch.full_like(target, math.inf))
    u = torch.minimum(rate * s, cap)
    u = torch.where(rate > 0, u, torch.zeros_like(u))
    return sgn * u, feasible
