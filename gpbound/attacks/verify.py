"""Verification of adversarial examples: label flips and bisection onto the boundary.

The label of ``x`` under a scalar function ``f`` is ``sign f(x)``.  An example
``x_adv`` is *verified* for ``x0`` when ``f(x0) f(x_adv) < 0`` (strictly: a zero
output is no label).  Bisection on the segment ``[x0, x_adv]`` then moves the
example to the boundary while keeping the far-side end, so the reported distance
``||x_adv - x0||_p`` is an upper bound on the distance of a real crossing.

Flip margins.  Two evaluations of the same network can differ by rounding (a batch
of many rows and a batch of one take different kernels: measured up to ~16 ``eps``
times the typical ``|f|`` for small random ReLU nets, in float32 and float64 alike).
Every flip is therefore required with a margin that scales with the precision of
the dtype, :func:`flip_margin` (the one place where the rule lives, used by all
attacks): ``MARGIN_EPS * eps * |f(x0)|`` in :func:`verify`, ``CANDIDATE_FACTOR``
times that for the candidates of the attacks (so that they survive bisection and
re-verification).  ``eps = torch.finfo(dtype).eps`` of the coarser of the input
and output dtypes.  Finally :func:`verify` evaluates every returned point again,
*alone* (a batch of one row, :func:`evaluate_alone`), and only a point that still
flips there counts as a success.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch

from .norms import lp_norm

Function = Callable[[torch.Tensor], torch.Tensor]

#: flip margin required by :func:`verify`, in units of ``eps(dtype) |f(x0)|``
#: (float64: 5.7e-14 |f(x0)|; float32: 3.1e-5 |f(x0)|); it costs about as much relative distance
MARGIN_EPS = 256.0
#: candidates of the attacks must flip by this multiple of the :func:`verify` margin
CANDIDATE_FACTOR = 4.0
#: the re-verification of a point alone requires this fraction of the :func:`verify` margin (the
#: bisected point sits just above the margin in the batched evaluation; the rest is slack for rounding)
ALONE_FRACTION = 0.5


def _eps(*dtypes) -> float:
    """``finfo(dtype).eps`` of the coarsest floating dtype among ``dtypes`` (others ignored)."""
    eps = [torch.finfo(dt).eps for dt in dtypes if dt is not None and dt.is_floating_point]
    if not eps:
        raise TypeError(f"flip_margin needs a floating-point dtype; got {dtypes}")
    return max(eps)


def flip_margin(y0: torch.Tensor, dtype: Optional[torch.dtype] = None, candidate: bool = False
                ) -> torch.Tensor:
    """Flip margin of each row: ``MARGIN_EPS * eps * |f(x0)|`` (times ``CANDIDATE_FACTOR`` if ``candidate``).

    ``eps`` is ``torch.finfo(.).eps`` of the coarser of ``y0.dtype`` and ``dtype`` (the dtype
    ``f`` computes in, e.g. ``x0.dtype``), so the margin follows the precision of the model:
    a flip by less than a few hundred rounding units of ``|f(x0)|`` is not trusted.  This is
    the single rule used by :func:`verify` and by every attack of :mod:`gpbound.attacks`.
    """
    rel = MARGIN_EPS * _eps(y0.dtype, dtype) * (CANDIDATE_FACTOR if candidate else 1.0)
    return rel * y0.abs()


def evaluate(f: Function, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``f`` on ``x`` of shape ``(B, n)`` without gradients; check the output is ``(B,)``."""
    with torch.no_grad():
        y = f(x)
    return _check_output(y, x)


def evaluate_many(f: Function, X: torch.Tensor) -> torch.Tensor:
    """Evaluate ``f`` on ``m`` candidates per row: ``X`` ``(m, B, n)`` -> ``(m, B)``, without gradients.

    ``X[j, b]`` is a candidate for row ``b`` (so for a :class:`gpbound.ensemble.NetworkEnsemble` it goes to
    row ``b``'s network).  If ``f`` has a method ``many(X)`` (the ensemble: one stacked call for all ``m``
    candidates) it is used; otherwise ``f`` is called once per candidate set ``X[j]`` (a general ``f`` may
    treat its rows differently, so its rows cannot be re-laid out).
    """
    own = getattr(f, "many", None)
    if callable(own):
        with torch.no_grad():
            y = own(X)
        if not isinstance(y, torch.Tensor) or y.shape != X.shape[:2]:
            raise ValueError(f"f.many(X) must return a tensor of shape {tuple(X.shape[:2])}; "
                             f"got {getattr(y, 'shape', type(y).__name__)}")
        return y
    return torch.stack([evaluate(f, X[j]) for j in range(X.shape[0])], 0)


def evaluate_alone(f: Function, x: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Evaluate ``f`` on each row of ``x`` *alone* (a fresh forward pass of a batch of one row).

    Rows not selected by the bool mask ``rows`` are ``NaN``.  If ``f`` has a method
    ``evaluate_alone(x, rows)`` (e.g. :class:`gpbound.ensemble.NetworkEnsemble`,
    whose row ``b`` belongs to one network of the stack) it is used; otherwise ``f`` is
    called on ``x[b:b+1]``, which must therefore accept a batch of one row.
    """
    if rows is None:
        rows = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    own = getattr(f, "evaluate_alone", None)
    if callable(own):
        with torch.no_grad():
            y = own(x, rows)
        if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
            raise ValueError(f"f.evaluate_alone(x, rows) must return a tensor of shape ({x.shape[0]},); "
                             f"got {getattr(y, 'shape', type(y).__name__)}")
        return y
    out = None
    for i in torch.nonzero(rows).flatten().tolist():
        try:
            yi = evaluate(f, x[i:i + 1])
        except (ValueError, RuntimeError) as exc:
            raise ValueError("f must accept a batch of one row (shape (1, n)) to re-verify each returned "
                             f"example alone; calling f on row {i} alone failed with {type(exc).__name__}: "
                             f"{exc}. Give f a method evaluate_alone(x, rows) (as NetworkEnsemble has) "
                             "or pass reverify_alone=False") from exc
        if out is None:
            out = torch.full((x.shape[0],), float("nan"), dtype=yi.dtype, device=yi.device)
        out[i] = yi[0]
    if out is None:
        out = torch.full((x.shape[0],), float("nan"), dtype=x.dtype, device=x.device)
    return out


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

    NaN outputs are never adversarial.  A small positive ``margin`` (see
    :func:`flip_margin`) keeps the flip robust to rounding differences between two
    evaluations of the same function (e.g. batched vs one by one).
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
    steps : int, number of halvings, computed in ``x0.dtype`` (50 reaches float64 resolution
        of the segment, ~24 float32 resolution; further halvings change nothing).
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
           bounds: Optional[Tuple[float, float]] = None, rel_margin: Optional[float] = None,
           y0_alone: Optional[torch.Tensor] = None, reverify_alone: bool = True):
    """Verify candidates, bisect them onto the boundary and re-verify each result alone.

    Returns ``(x_boundary, distance, success)``: ``success`` where ``x_adv`` is
    finite, inside ``bounds`` and flips the label, and the bisected point still flips
    the label both in a batched evaluation and in a fresh evaluation of its row alone
    (:func:`evaluate_alone`); for those rows ``x_boundary`` is the bisected far-side
    point and ``distance = ||x_boundary - x0||_p``; elsewhere ``distance = inf`` and
    ``x_boundary = x0``.

    The flip is required with the margin ``m`` of :func:`flip_margin`
    (``-sign f(x0) f(x_boundary) > m``, ``m = MARGIN_EPS * eps(dtype) * |f(x0)|``), or
    ``m = rel_margin * |f(x0)|`` if ``rel_margin`` is given, and with ``ALONE_FRACTION * m``
    in the evaluation alone, so the returned examples stay adversarial under the rounding
    changes of ``f`` (batch size, a vmapped ensemble vs the single network); this costs
    ~``m / |f(x0)|`` relative distance.  The bisection runs in ``x0.dtype``.

    ``y0_alone`` (optional) is ``f(x0)`` evaluated row by row alone (computed here where
    needed if omitted); a row whose label there differs from ``sign y0`` is no success.
    ``reverify_alone=False`` skips the evaluation alone (only for an ``f`` that cannot take a
    batch of one row and has no ``evaluate_alone`` method, e.g. a function with parameters per
    row); the batched re-verification remains.
    """
    if y0 is None:
        y0 = evaluate(f, x0)
    finite = torch.isfinite(x_adv).all(-1)
    x_adv = torch.where(finite.unsqueeze(-1), x_adv, x0)
    if bounds is not None:
        inside = ((x_adv >= bounds[0]) & (x_adv <= bounds[1])).all(-1)
        finite = finite & inside
    if rel_margin is None:
        margin = flip_margin(y0, x0.dtype)
    else:
        rel_margin = float(rel_margin)
        if not (rel_margin >= 0.0 and math.isfinite(rel_margin)):
            raise ValueError(f"rel_margin must be None or a finite float >= 0; got {rel_margin!r}")
        margin = rel_margin * y0.abs()
    ok = is_adversarial(y0, evaluate(f, x_adv), margin) & finite
    xb = bisect_to_boundary(f, x0, x_adv, y0, steps=bisection_steps, valid=ok, margin=margin)
    # re-verification of the returned points: batched (guards against non-deterministic f) ...
    ok = ok & is_adversarial(y0, evaluate(f, xb), margin)
    # ... and each row alone, in a fresh forward pass of a batch of one
    if reverify_alone and bool(ok.any()):
        if y0_alone is None:
            y0_alone = evaluate_alone(f, x0, ok)
        same_label = (torch.sign(y0_alone) == torch.sign(y0)) & (y0 != 0)
        ok = ok & same_label & is_adversarial(y0, evaluate_alone(f, xb, ok), ALONE_FRACTION * margin)
    xb = torch.where(ok.unsqueeze(-1), xb, x0)
    dist = torch.where(ok, lp_norm(xb - x0, p), torch.full_like(y0, float("inf")))
    return xb, dist, ok
