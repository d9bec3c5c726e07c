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
