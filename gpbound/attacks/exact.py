"""Exact minimal lp distance to the decision boundary of an affine function.

For ``f(x) = <w, x> + b`` the closest point of the hyperplane ``f = 0`` in lp
distance is at ``|f(x0)| / ||w||_q`` with ``1/p + 1/q = 1`` (Hoelder's inequality
is tight for the dual direction), which makes affine models an exact oracle for
the attacks.
"""
from __future__ import annotations

import torch

from .norms import dual_direction, dual_exponent, lp_norm, parse_norm


def affine_minimal_distance(w: torch.Tensor, b, x0: torch.Tensor, norm) -> torch.Tensor:
    """Minimal lp distance from ``x0`` to ``{x : <w, x> + b = 0}``.

    .. math:: d_p(x_0) = \\frac{|\\langle w, x_0\\rangle + b|}{\\|w\\|_q}, \\qquad \\frac1p + \\frac1q = 1.

    Parameters
    ----------
    w : tensor ``(n,)`` or ``(B, n)``
        Weights (one row per point, or shared).
    b : float or tensor ``()`` / ``(B,)``
        Bias.
    x0 : tensor ``(B, n)``
        Starting points.
    norm : {1, 2, inf, "l1", "l2", "linf"}

    Returns
    -------
    tensor ``(B,)``

    Raises
    ------
    ValueError
        Unknown norm, shape mismatch, ``w = 0``.
    """
    p = parse_norm(norm)
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape (B, n); got {tuple(x0.shape)}")
    w = torch.as_tensor(w, dtype=x0.dtype, device=x0.device)
    if w.shape[-1] != x0.shape[-1]:
        raise ValueError(f"w must have last dimension n = {x0.shape[-1]}; got {tuple(w.shape)}")
    wq = lp_norm(w, dual_exponent(p))
    if (wq == 0).any():
        raise ValueError("w must be non-zero (the boundary of f = b is empty or everything)")
    b = torch.as_tensor(b, dtype=x0.dtype, device=x0.device)
    return ((x0 * w).sum(-1) + b).abs() / wq


def affine_closest_point(w: torch.Tensor, b, x0: torch.Tensor, norm) -> torch.Tensor:
    """A closest boundary point ``x0 - f(x0)/||w||_q * d_p(w)`` of the affine ``f`` (row-wise)."""
    p = parse_norm(norm)
    w = torch.as_tensor(w, dtype=x0.dtype, device=x0.device).expand_as(x0)
    b = torch.as_tensor(b, dtype=x0.dtype, device=x0.device)
    fx = (x0 * w).sum(-1) + b
    wq = lp_norm(w, dual_exponent(p))
    return x0 - (fx / wq).unsqueeze(-1) * dual_direction(w, p)


__all__ = ["affine_minimal_distance", "affine_closest_point"]
