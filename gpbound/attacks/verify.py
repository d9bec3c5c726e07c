"""Verification of adversarial examples: label flips and bisection onto the boundary.

The label of ``x`` under a scalar function ``f`` is ``sign f(x)``.  An example
``x_adv`` is *verified* for ``x0`` when ``f(x0) f(x_adv) < 0`` (strictly: a zero
output is no label).  Bisection on the segment ``[x0, x_adv]`` then moves the
example to the boundary while keeping the far-side end, so the reported distance
``||x_adv - x0||_p`` is an upper bound on the distance of a real crossing.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from .norms import lp_norm

Function = Callable[[torch.Tensor], torch.Tensor]


def evaluate(f: Function, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``f`` on ``x`` of shape ``(B, n)`` without gradients; check the output is ``(B,)``."""
    with torch.no_grad():
        y = f(x)
    return _check_output(y, x)


def _check_output(y, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"f must return a torch.Tensor, got {type(y).__name__}")
    if y.dim() == 2 and y.shape[-1] == 1:
        y = y[:, 0]
    if y.shape != (x.shape[0],):
        raise ValueError(f"f must map (B, n) -> (B,); got output shape {tuple(y.shape)} "
                         f"for input shape {tuple(x.shape)}")
    return y


def value_and_grad(f: Function, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(f(x), grad f(x))`` row-wise, using ``grad sum_b f(x_b)`` (rows are independent)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        y = _check_output(f(x), x)
        if not y.requires_grad:
            raise TypeError("f must be differentiable with torch autograd (its output has no grad_fn)")
        (g,) = torch.autograd.grad(y.sum(), x)
    g = torch.nan_to_num(g.detach(), nan=0.0, posinf=0.0, neginf=0.0)
    return y.detach(), g


def is_adversarial(y0: torch.Tensor, y: torch.Tensor, margin=0.0) -> torch.Tensor:
    """Label flip with a margin: ``-sign f(x0) f(x) > margin >= 0`` and ``f(x0) != 0``.

    NaN outputs are never adversarial.  A small positive ``margin`` (relative to
    ``|f(x0)|``, see :func:`verify`) keeps the flip robust to rounding differences
    between two evaluations of the same function (e.g. batched vs one by one).
    """
    return (y0 != 0) & (-torch.sign(y0) * y > margin)


def bisect_to_boundary(f: Function, x0: torch.Tensor, x_adv: torch.Tensor, y0: torch.Tensor,
                       steps: int = 50, valid: Optional[torch.Tensor] = None,
                       margin=0.0) -> torch.Tensor:
    """Bisect every segment ``[x0_b, x_adv_b]`` onto the decision boundary, keeping the far side.

    Invariant: ``f(x0 + lo (x_adv - x0))`` has the label of ``x0`` and
    ``f(x0 + hi (x_adv - x0))`` the opposite one; ``lo = 0``, ``hi = 1`` at the
    start, and the midpoint replaces the end whose label it shares.  After ``steps``
    halvings the segment is ``2**-steps`` of its length; the far end ``hi`` is
    returned, which is still a verified adversarial example.  All rows are bisected
    in one batched call of ``f`` per step; rows with ``valid = False`` are returned
    unchanged.

    Parameters
    ----------
    f : callable ``(B, n) -> (B,)``
    x0, x_adv : tensors ``(B, n)``; ``x_adv`` must be verified where ``valid``.
    y0 : tensor ``(B,)``, ``f(x0)``.
    steps : int, number of halvings (50 reaches float64 resolution of the segment).
    valid : optional bool tensor ``(B,)``.
    margin : float or ``(B,)`` tensor, the flip margin of :func:`is_adversarial`
        (the far end keeps ``-sign f(x0) f(x_hi) > margin``).

    Returns
    -------
    tensor ``(B, n)``: the far-side end point of each segment.
    """
    if valid is None:
        valid = torch.ones(x0.shape[0], dtype=torch.bool, device=x0.device)
    direction = x_adv - x0
    lo = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    hi = torch.where(valid, torch.ones_like(lo), torch.zeros_like(lo))
    for _ in range(int(steps)):
        mid = 0.5 * (lo + hi)
        y = evaluate(f, x0 + mid.unsqueeze(-1) * direction)
        flip = is_adversarial(y0, y, margin) & valid
        hi = torch.where(flip, mid, hi)
        lo = torch.where(flip | ~valid, lo, mid)
    out = x0 + hi.unsqueeze(-1) * direction
    return torch.where(valid.unsqueeze(-1), out, x_adv)


def verify(f: Function, x0: torch.Tensor, x_adv: torch.Tensor, p: float,
           y0: Optional[torch.Tensor] = None, bisection_steps: int = 50,
           bounds: Optional[Tuple[float, float]] = None, rel_margin: float = 1e-10):
    """Verify candidates and bisect them onto the boundary.

    Returns ``(x_boundary, distance, success)``: ``success`` where ``x_adv`` is
    finite, inside ``bounds`` and flips the label; for those rows ``x_boundary`` is
    the bisected far-side point, ``distance = ||x_boundary - x0||_p`` (re-verified
    after bisection); elsewhere ``distance = inf`` and ``x_boundary = x0``.

    The flip is required with margin ``rel_margin * |f(x0)|``
    (``-sign f(x0) f(x_boundary) > rel_margin |f(x0)|``), so the returned examples
    stay adversarial under rounding changes of ``f`` (a batched ensemble and the
    single network differ by ~1e-16); this costs ~``rel_margin`` relative distance.
    """
    if y0 is None:
        y0 = evaluate(f, x0)
    finite = torch.isfinite(x_adv).all(-1)
    x_adv = torch.where(finite.unsqueeze(-1), x_adv, x0)
    if bounds is not None:
        inside = ((x_adv >= bounds[0]) & (x_adv <= bounds[1])).all(-1)
        finite = finite & inside
    margin = rel_margin * y0.abs()
    ok = is_adversarial(y0, evaluate(f, x_adv), margin) & finite
    xb = bisect_to_boundary(f, x0, x_adv, y0, steps=bisection_steps, valid=ok, margin=margin)
    # final re-verification of the returned points (guards against non-deterministic f)
    ok = ok & is_adversarial(y0, evaluate(f, xb), margin)
    xb = torch.where(ok.unsqueeze(-1), xb, x0)
    dist = torch.where(ok, lp_norm(xb - x0, p), torch.full_like(y0, float("inf")))
    return xb, dist, ok
