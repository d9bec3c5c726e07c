"""Box-aware fast adaptive boundary (FAB) attack for a scalar ``f``, l1 / l2 / linf.

FAB (Croce and Hein, ICML 2020), binary version: at the iterate ``x_k`` linearise ``f``,
``f(x) ~ f(x_k) + <g, x - x_k>``, and take the exact minimal-lp steps onto that hyperplane
*inside the box* (:func:`gpbound.attacks.norms.project_hyperplane_box`; for l1 a
fractional knapsack on ``|g|``) from the iterate and from ``x0``:

.. math::
    x_{k+1} = \\Pi_{box}\\big((1 - \\alpha)(x_k + \\eta\\, \\delta_k) + \\alpha (x_0 + \\eta\\, \\delta_0)\\big),
    \\qquad \\alpha = \\min\\Big(\\frac{\\|\\delta_k\\|_p}{\\|\\delta_k\\|_p + \\|\\delta_0\\|_p},
    \\alpha_{max}\\Big),

with overshoot ``eta > 1`` (extrapolation past the linearised boundary).  An
adversarial iterate is recorded (smallest ``||x_k - x0||_p`` kept) and pulled back
towards ``x0``, ``x_k <- x0 + beta (x_k - x0)`` (the value there predicted by the same
linearisation, so every step costs one forward-backward pass).  The combination biased
toward ``x0`` walks along the boundary towards the point nearest ``x0``; the boxed
projection lets the l1 step saturate several coordinates at the box faces, which a
single-coordinate move clipped into the box cannot.  Candidates are unverified: the
caller bisects them onto the boundary (:func:`gpbound.attacks.verify.verify`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .norms import lp_norm, project_hyperplane_box
from .verify import evaluate, flip_margin, is_adversarial, value_and_grad

__all__ = ["fab_attack"]


def _clamp(x, bounds):
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


def fab_attack(f, x0: torch.Tensor, y0: torch.Tensor, p: float, steps: int = 50,
               eta: float = 1.05, beta: float = 0.9, alpha_max: float = 0.1,
               bounds: Optional[Tuple[float, float]] = None,
               start: Optional[torch.Tensor] = None,
               active: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """FAB iterations on all rows at once; returns unverified candidates and their distances.

    Parameters
    ----------
    f : callable ``(B, n) -> (B,)``, rows independent, differentiable.
    x0 : tensor ``(B, n)``; y0 : tensor ``(B,)`` = ``f(x0)``.
    p : float in {1, 2, inf}.
    steps : int, forward-backward passes (one per iteration).
    eta : float > 1, overshoot of each projection.
    beta : float in (0, 1), pull-back factor towards ``x0`` after an adversarial iterate.
    alpha_max : float in [0, 1], largest weight of the projection of ``x0``.
    bounds : optional box ``(lo, hi)``; every iterate stays inside it.
    start : optional ``(B, n)`` starting points (random restarts); default ``x0``.
    active : optional bool ``(B,)``; rows not active stay at ``x0`` (``f`` still sees the whole batch).

    Returns
    -------
    x_adv : tensor ``(B, n)``, the closest adversarial iterate per row (``x0`` where none).
    dist : tensor ``(B,)``, its lp distance to ``x0`` (``inf`` where none).
    """
    B = x0.shape[0]
    margin = flip_margin(y0, x0.dtype, candidate=True)  # candidates: above verify's margin
    act = torch.ones(B, dtype=torch.bool, device=x0.device) if active is None else active
    x = x0.clone() if start is None else torch.where(act.unsqueeze(-1), _clamp(start, bounds), x0)
    best = torch.full_like(y0, float("inf"))
    x_best = x0.clone()
    for _ in range(int(steps)):
        fx, g = value_and_grad(f, x)
        adv = is_adversarial(y0, fx, margin) & act
        dn = lp_norm(x - x0, p)
        better = adv & (dn < best)
        best = torch.where(better, dn, best)
        x_best = torch.where(better.unsqueeze(-1), x, x_best)
        # adversarial: pull back towards x0 (value there from the same linearisation)
        xs = torch.where(adv.unsqueeze(-1), x0 + beta * (x - x0), x)
        cs = fx + (g * (xs - x)).sum(-1)
        c0 = fx + (g * (x0 - x)).sum(-1)
        d1, _ = project_hyperplane_box(xs, g, cs, p, bounds)
        d0, _ = project_hyperplane_box(x0, g, c0, p, bounds)
        n1, n0 = lp_norm(d1, p), lp_norm(d0, p)
        alpha = torch.where(n1 + n0 > 0, n1 / (n1 + n0).clamp_min(torch.finfo(x0.dtype).tiny),
                            torch.zeros_like(n1)).clamp(max=alpha_max).unsqueeze(-1)
        x_new = _clamp((1 - alpha) * (xs + eta * d1) + alpha * (x0 + eta * d0), bounds)
        x = torch.where(act.unsqueeze(-1), x_new, x0)
    fx = evaluate(f, x)
    adv = is_adversarial(y0, fx, margin) & act
    dn = lp_norm(x - x0, p)
    better = adv & (dn < best)
    best = torch.where(better, dn, best)
    x_best = torch.where(better.unsqueeze(-1), x, x_best)
    return x_best, best
