"""Fast Minimum-Norm (FMN) attack for l1, l2, linf and Decoupled Direction and Norm (DDN) for l2.

FMN (Pintor et al., NeurIPS 2021) alternates an lp radius update and a
projected gradient step on the margin ``loss = sign(f(x0)) f(x0 + delta)``:

.. math::
    \\epsilon_k = \\begin{cases}
        \\min(\\epsilon_{k-1}(1-\\gamma_k), \\|\\delta^*\\|_p) & \\text{adversarial} \\\\
        \\epsilon_{k-1}(1+\\gamma_k) & \\text{not adversarial, one found before} \\\\
        \\|\\delta_k\\|_p + |loss| / \\|\\nabla loss\\|_q & \\text{otherwise}
    \\end{cases}
    \\qquad
    \\delta_{k+1} = \\Pi_{\\epsilon_k}\\Big(\\delta_k - \\alpha_k \\frac{\\nabla loss}{\\|\\nabla loss\\|_2}\\Big),

with cosine-annealed ``alpha_k`` and ``gamma_k``.  Step sizes are expressed in
units of the per-point scale ``|f(x0)| / ||grad f(x0)||_2`` (the linearised l2
distance), so the attack needs no knowledge of the input range.

DDN (Rony et al., CVPR 2019) is the l2 special case that keeps ``||delta||_2 = eps``
(projection on the sphere) and updates ``eps`` multiplicatively.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .norms import dual_exponent, lp_norm, project_hyperplane_box, project_lp_ball
from .verify import evaluate, flip_margin, is_adversarial, value_and_grad



def _clamp_delta(x0, delta, bounds):
    if bounds is None:
        return delta
    return (x0 + delta).clamp(bounds[0], bounds[1]) - x0


def _scale(f, x0, y0):
    _, g = value_and_grad(f, x0)
    gn = lp_norm(g, 2.0)
    s = y0.abs() / gn.clamp_min(torch.finfo(x0.dtype).tiny)
    # rows with zero gradient: fall back to the input norm
    fallback = lp_norm(x0, 2.0).clamp_min(1.0) * 1e-2
    return torch.where(torch.isfinite(s) & (s > 0), s, fallback)


def _cosine(k: int, steps: int, warp: float = 1.0) -> float:
    """Cosine annealing weight ``(1 + cos(pi u)) / 2`` at ``u = (k / steps) ** warp``: 1 at ``k = 0``, 0 at
    ``k = steps``; ``warp > 1`` keeps the weight high for longer and anneals later and faster."""
    return (1.0 + math.cos(math.pi * (k / steps) ** warp)) / 2.0


def fmn_attack(f, x0: torch.Tensor, y0: torch.Tensor, p: float, steps: int = 100,
               alpha_init: float = 1.0, alpha_final: Optional[float] = None,
               gamma_init: float = 0.05, gamma_final: float = 0.001,
               bounds: Optional[Tuple[float, float]] = None,
               start: Optional[torch.Tensor] = None, input_units: bool = False,
               alpha_warp: float = 1.0, box_aware: bool = False, crossing_candidate: bool = False):
    """Fast Minimum-Norm attack, batched over all rows; returns unverified candidates.

    Parameters
    ----------
    f : callable ``(B, n) -> (B,)``
    x0 : tensor ``(B, n)``; y0 : tensor ``(B,)`` = ``f(x0)``
    p : float in {1, 2, inf}
    steps : int
    alpha_init, alpha_final : step sizes in units of the per-row scale
        ``|f(x0)|/||grad f(x0)||_2`` (``alpha_final`` defaults to ``alpha_init / 100``)
    gamma_init, gamma_final : radius update factors
    bounds : optional box ``(lo, hi)``; the radius is then also capped by the largest lp
        distance inside the box (as in foolbox's FMN)
    start : optional starting point ``(B, n)``
    input_units : bool, default False
        Step sizes in input units (foolbox's convention; ``alpha_init = 1`` suits images in
        ``[0, 1]``) instead of the per-row scale.
    alpha_warp : float, default 1.0
        Time warp of the step-size schedule: ``alpha_k`` is annealed at ``(k / steps) ** alpha_warp``
        (:func:`_cosine`; 1 is FMN's cosine annealing; ``gamma_k`` keeps it).
    box_aware : bool, default False
        With ``bounds``, FMN made aware of the box where its steepest coordinates are capped: (a) until a
        row's first flip, its radius is ``||delta||_p`` plus the exact minimal lp step onto the linearised
        boundary inside the box (:func:`gpbound.attacks.norms.project_hyperplane_box`; for l1 a
        fractional knapsack) instead of the unboxed ``|f| / ||grad f||_q`` (for l1 one coordinate's
        move, which the box may not allow); (b) the normalised gradient step uses only the coordinates
        free to move (a coordinate on a face of the box and pushed against it is left out), where a
        capped coordinate with a large gradient would otherwise absorb almost all of the step.
    crossing_candidate : bool, default False
        Also return the adversarial iterate whose crossing on the segment ``[x0, x]`` is estimated
        nearest: the smallest ``||delta||_p y0 / (y0 - f(x))`` (the secant root of ``f`` on the segment,
        exact for an affine ``f``).  The verification moves every candidate onto that crossing, so an
        iterate deeper in the adversarial region can end nearer than the smallest one; FMN's radius
        schedule is unchanged (it follows the smallest iterate).

    Returns
    -------
    tensor ``(B, n)``: the smallest adversarial iterate per row (``x0`` where none); with
    ``crossing_candidate``, the pair (that, the iterate of the nearest estimated crossing).
    """
    alpha_final = alpha_init / 100.0 if alpha_final is None else alpha_final
    q = dual_exponent(p)
    scale = torch.ones_like(y0) if input_units else _scale(f, x0, y0)
    margin = flip_margin(y0, x0.dtype, candidate=True)  # candidates: above verify's margin
    s0 = torch.sign(y0)
    worst = (torch.full_like(y0, float("inf")) if bounds is None
             else lp_norm(torch.maximum(x0 - bounds[0], bounds[1] - x0), p))
    delta = torch.zeros_like(x0) if start is None else _clamp_delta(x0, start - x0, bounds)
    eps = torch.full_like(y0, float("inf"))
    best_norm = torch.full_like(y0, float("inf"))
    best = x0.clone()
    found = torch.zeros_like(y0, dtype=torch.bool)
    if not (isinstance(alpha_warp, (int, float)) and not isinstance(alpha_warp, bool) and alpha_warp > 0
            and math.isfinite(alpha_warp)):
        raise ValueError(f"alpha_warp must be a finite float > 0; got {alpha_warp!r}")
    if not isinstance(box_aware, bool):
        raise TypeError(f"box_aware must be True or False; got {box_aware!r}")
    if not isinstance(crossing_candidate, bool):
        raise TypeError(f"crossing_candidate must be True or False; got {crossing_candidate!r}")
    best_crossing = torch.full_like(y0, float("inf"))
    nearest = x0.clone()
    for k in range(int(steps)):
        alpha = (alpha_final + (alpha_init - alpha_final) * _cosine(k, steps, alpha_warp)) * scale
        gamma = gamma_final + (gamma_init - gamma_final) * _cosine(k, steps)
        x = x0 + delta
        fx, g = value_and_grad(f, x)
        adv = is_adversarial(y0, fx, margin)
        dn = lp_norm(delta, p)
        better = adv & (dn < best_norm)
        best_norm = torch.where(better, dn, best_norm)
        best = torch.where(better.unsqueeze(-1), x, best)
        if crossing_candidate:
            best_crossing, nearest = _nearer_crossing(x, fx, y0, adv, dn, best_crossing, nearest)
        found = found | adv
        gl = s0.unsqueeze(-1) * g
        # past the linearised boundary by twice the flip margin (else an affine f stays on it)
        to_boundary = ((s0 * fx).abs() + 2.0 * margin) / lp_norm(gl, q).clamp_min(torch.finfo(x0.dtype).tiny)
        if box_aware and bounds is not None and not bool(found.all()):
            # in a box: the exact minimal lp step onto the linearised boundary inside the box (a fractional
            # knapsack for l1), not the unboxed |f| / ||g||_q: where the steepest coordinates are
            # capped by the box, the unboxed step underestimates the radius and the search never leaves x0
            step, _ = project_hyperplane_box(x, gl, s0 * fx + 2.0 * margin, p, bounds)
            to_boundary = torch.where(found, to_boundary, lp_norm(step, p))
        eps = torch.where(adv, torch.minimum(eps * (1.0 - gamma), best_norm),
                          torch.where(found, eps * (1.0 + gamma), dn + to_boundary))
        eps = torch.minimum(eps, worst)
        if box_aware and bounds is not None:
            # the step -gl restricted to the coordinates free to move (not on a face it pushes against),
            # so that a capped steep coordinate does not absorb the normalised step
            gl = torch.where(((x >= bounds[1]) & (gl < 0)) | ((x <= bounds[0]) & (gl > 0)), torch.zeros_like(gl), gl)
        gn = lp_norm(gl, 2.0).clamp_min(torch.finfo(x0.dtype).tiny).unsqueeze(-1)
        delta = delta - alpha.unsqueeze(-1) * gl / gn
        delta = project_lp_ball(delta, eps, p)
        delta = _clamp_delta(x0, delta, bounds)
    x = x0 + delta
    fx = evaluate(f, x)
    adv = is_adversarial(y0, fx, margin)
    dn = lp_norm(delta, p)
    better = adv & (dn < best_norm)
    best = torch.where(better.unsqueeze(-1), x, best)
    if not crossing_candidate:
        return best
    return best, _nearer_crossing(x, fx, y0, adv, dn, best_crossing, nearest)[1]


def _nearer_crossing(x, fx, y0, adv, dn, best_crossing, nearest):
    """Keep ``x`` where it is adversarial and the secant estimate ``||delta|| y0 / (y0 - f(x))`` of its
    crossing on ``[x0, x]`` is below ``best_crossing`` (``|y0 - f(x)| > |y0|`` where ``x`` is adversarial)."""
    crossing = torch.where(adv, dn * (y0 / (y0 - fx)), best_crossing)
    nearer = adv & (crossing < best_crossing)
    return torch.where(nearer, crossing, best_crossing), torch.where(nearer.unsqueeze(-1), x, nearest)


def ddn_attack(f, x0: torch.Tensor, y0: torch.Tensor, steps: int = 100, alpha_init: float = 1.0,
               gamma: float = 0.05, bounds: Optional[Tuple[float, float]] = None) -> torch.Tensor:
    """Decoupled Direction and Norm l2 attack, batched; returns unverified candidates.

    ``delta <- eps * (delta - alpha g/||g||_2) / ||.||_2`` with ``eps`` multiplied by
    ``1 - gamma`` when adversarial and ``1 + gamma`` otherwise, ``alpha`` cosine-annealed
    from ``alpha_init`` to ``alpha_init/100`` (units of ``|f(x0)|/||grad f(x0)||_2``).
    """
    scale = _scale(f, x0, y0)
    margin = flip_margin(y0, x0.dtype, candidate=True)  # candidates: above verify's margin
    s0 = torch.sign(y0)
    tiny = torch.finfo(x0.dtype).tiny
    delta = torch.zeros_like(x0)
    eps = scale.clone()
    best_norm = torch.full_like(y0, float("inf"))
    best = x0.clone()
    for k in range(int(steps)):
        cosine = (1.0 + math.cos(math.pi * k / steps)) / 2.0
        alpha = (alpha_init / 100.0 + (alpha_init - alpha_init / 100.0) * cosine) * scale
        x = x0 + delta
        fx, g = value_and_grad(f, x)
        adv = is_adversarial(y0, fx, margin)
        dn = lp_norm(delta, 2.0)
        better = adv & (dn < best_norm)
        best_norm = torch.where(better, dn, best_norm)
        best = torch.where(better.unsqueeze(-1), x, best)
        eps = torch.where(adv, eps * (1.0 - gamma), eps * (1.0 + gamma))
        gl = s0.unsqueeze(-1) * g
        gn = lp_norm(gl, 2.0).clamp_min(tiny).unsqueeze(-1)
        delta = delta - alpha.unsqueeze(-1) * gl / gn
        dnorm = lp_norm(delta, 2.0).clamp_min(tiny)
        delta = delta * (eps / dnorm).unsqueeze(-1)
        delta = _clamp_delta(x0, delta, bounds)
    x = x0 + delta
    adv = is_adversarial(y0, evaluate(f, x), margin)
    better = adv & (lp_norm(delta, 2.0) < best_norm)
    return torch.where(better.unsqueeze(-1), x, best)
