"""Gradient-linearisation attack (DeepFool for lp, with a boundary refinement).

Phase 1 (DeepFool, Moosavi-Dezfooli et al. 2016, lp version; for l1 the l2 version,
as in SparseFool, since single-coordinate steps explore poorly): from the iterate
``x_k`` step to the zero of the linearisation,

.. math:: x_{k+1} = x_k - (1 + \\eta) \\frac{f(x_k)}{\\|\\nabla f(x_k)\\|_q} d_p(\\nabla f(x_k)),

with ``d_p(g)`` the unit-lp vector maximising ``<g, d>`` (``g/||g||_2``, ``sign g``,
or ``sign(g_j) e_j`` at the largest ``|g_j|``), until the label flips.

Phase 2 (refinement, as in SparseFool / FAB; :func:`refine_boundary`): bisect the
adversarial example onto the boundary point ``x_b``, linearise ``f`` there and take the
lp projection *of x0* onto that hyperplane (inside the box where there is one: the exact
boxed projection :func:`gpbound.attacks.norms.project_hyperplane_box`, for l1 a
fractional knapsack that saturates coordinates at the box faces),

.. math:: x' = x_0 - \\frac{f(x_b) + \\langle \\nabla f(x_b), x_0 - x_b\\rangle}{\\|\\nabla f(x_b)\\|_q} d_p(\\nabla f(x_b)),

accepted (after bisection) when it is adversarial and closer; otherwise the step
towards ``x'`` is halved.  For affine ``f`` the first refinement step is the exact
(boxed) minimiser.  Phase-1 steps in a box are the boxed projections too.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .norms import lp_norm, project_hyperplane_box
from .verify import evaluate, find_boundary, flip_margin, is_adversarial, value_and_grad



def _clamp(x, bounds):
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def linearization_attack(f, x0: torch.Tensor, y0: torch.Tensor, p: float, steps: int = 50,
                         refine_steps: int = 20, overshoot: float = 0.02,
                         bounds: Optional[Tuple[float, float]] = None,
                         start: Optional[torch.Tensor] = None, inner_bisection: int = 12
                         ) -> torch.Tensor:
    """Run the linearisation attack on all rows at once.

    Parameters
    ----------
    f : callable ``(B, n) -> (B,)``
    x0 : tensor ``(B, n)``; y0 : tensor ``(B,)`` = ``f(x0)``
    p : float in {1, 2, inf}
    steps : int, DeepFool iterations (phase 1)
    refine_steps : int, boundary-linearisation iterations (phase 2)
    overshoot : float, relative overshoot ``eta`` of each linear step
    bounds : optional box ``(lo, hi)``; iterates are clipped into it
    start : optional ``(B, n)`` starting points of phase 1 (random restarts)
    inner_bisection : int, bisection steps used inside phase 2

    Returns
    -------
    tensor ``(B, n)``: unverified candidates (``x0`` where nothing was found).
    """
    x = x0.clone() if start is None else _clamp(start.clone(), bounds)
    margin = flip_margin(y0, x0.dtype, candidate=True)  # candidates: above verify's margin
    p1 = 2.0 if p == 1.0 else p  # SparseFool: l2 DeepFool finds the boundary, l1 refines
    found = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
    x_adv = x0.clone()
    for _ in range(int(steps)):
        fx, g = value_and_grad(f, x)
        adv = is_adversarial(y0, fx, margin)
        x_adv = torch.where((adv & ~found).unsqueeze(-1), x, x_adv)
        found = found | adv
        if bool(found.all()):
            break
        step = project_hyperplane_box(x, g, fx, p1, bounds)[0] * (1.0 + overshoot)
        x = torch.where(found.unsqueeze(-1), x, _clamp(x + step, bounds))
    if refine_steps <= 0 or not bool(found.any()):
        return x_adv
    return refine_boundary(f, x0, y0, x_adv, found, p, steps=refine_steps, bounds=bounds,
                           inner_bisection=inner_bisection)


def refine_boundary(f, x0: torch.Tensor, y0: torch.Tensor, x_adv: torch.Tensor, found: torch.Tensor,
                    p: float, steps: int = 10, bounds: Optional[Tuple[float, float]] = None,
                    inner_bisection: int = 12) -> torch.Tensor:
    """Phase 2 alone: walk adversarial points along the boundary towards ``x0``.

    Moves ``x_adv`` onto the boundary (:func:`gpbound.attacks.verify.find_boundary`, resolution
    ``2**-inner_bisection`` of the segment), then ``steps`` times
    linearises ``f`` at the boundary point ``x_b`` and tries the exact minimal-lp point of that
    hyperplane nearest ``x0`` inside the box (:func:`gpbound.attacks.norms.project_hyperplane_box`),
    bisected; accepted when adversarial and closer, else the step towards it is halved.

    Parameters
    ----------
    f, x0, y0, p, bounds : as :func:`linearization_attack`.
    x_adv : tensor ``(B, n)``, adversarial where ``found``.
    found : bool tensor ``(B,)``; other rows are returned unchanged.
    steps : int, linearisations (one forward-backward, one forward and a boundary search of a few
        (at most ``4 inner_bisection``) forward passes each).
    inner_bisection : int, resolution exponent of the boundary searches

    Returns
    -------
    tensor ``(B, n)``: unverified candidates, no farther from ``x0`` than ``x_adv`` where ``found``.
    """
    margin = flip_margin(y0, x0.dtype, candidate=True)
    xb = find_boundary(f, x0, x_adv, y0, steps=inner_bisection, valid=found, margin=margin)
    db = torch.where(found, lp_norm(xb - x0, p), torch.full_like(y0, float("inf")))
    lam = torch.ones_like(y0)
    for _ in range(int(steps)):
        fb, g = value_and_grad(f, xb)
        c = fb + (g * (x0 - xb)).sum(-1)
        # exact minimal-lp step of x0 onto the linearisation inside the box (l1: a knapsack), past
        # the plane by twice the candidate margin in value (a relative overshoot in distance would
        # leave the box's faces when the result is bisected along the ray from x0)
        target = x0 + project_hyperplane_box(x0, g, c + torch.sign(c) * 2.0 * margin, p, bounds)[0]
        cand = _clamp(xb + lam.unsqueeze(-1) * (target - xb), bounds)
        y_cand = evaluate(f, cand)
        acc = found & is_adversarial(y0, y_cand, margin)
        cand_b = find_boundary(f, x0, cand, y0, steps=inner_bisection, valid=acc, margin=margin,
                               y_adv=y_cand)
        dc = lp_norm(cand_b - x0, p)
        better = acc & (dc < db)
        xb = torch.where(better.unsqueeze(-1), cand_b, xb)
        db = torch.where(better, dc, db)
        lam = torch.where(better, torch.clamp(2.0 * lam, max=1.0), 0.5 * lam)
    return torch.where(found.unsqueeze(-1), xb, x_adv)
