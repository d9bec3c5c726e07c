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

Exact flips.  The margin bounds the rounding relative to ``|f(x0)|``, not to the scale of the
network's values, so for a float32 model it neither proves that the model's exact arithmetic flips
nor keeps the distance tight (~3e-5 relative).  With a ``reference`` (:func:`float64_reference`: the
float64 copy of a float32 network, whose rounding is ~1e-16 of the values) :func:`verify` also
requires an exact flip and moves each point onto the exact crossing, where the float32 model still
flips strictly, batched and alone (:data:`EXACT_MARGIN_EPS`).
"""
from __future__ import annotations

import copy
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


def _evaluate_rows(f: Function, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``f(x)`` where at least the ``rows`` are needed: ``f.evaluate_rows(x, rows)`` where ``f`` has that
    method (:class:`gpbound.ensemble.NetworkEnsemble`: only the networks owning a selected row), else
    :func:`evaluate` of all rows."""
    y = _own_row_method(f, "evaluate_rows", x, rows)
    return evaluate(f, x) if y is None else y


def _own_row_method(f: Function, name: str, x: torch.Tensor, rows: torch.Tensor) -> Optional[torch.Tensor]:
    """``f.<name>(x, rows)`` without gradients, checked to be one value per row; ``None`` where ``f`` has no
    such method."""
    own = getattr(f, name, None)
    if not callable(own):
        return None
    with torch.no_grad():
        y = own(x, rows)
    if not isinstance(y, torch.Tensor) or y.shape != (x.shape[0],):
        raise ValueError(f"f.{name}(x, rows) must return a tensor of shape ({x.shape[0]},); "
                         f"got {getattr(y, 'shape', type(y).__name__)}")
    return y


def evaluate_alone(f: Function, x: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Evaluate ``f`` on each row of ``x`` *alone* (a fresh forward pass of a batch of one row).

    Rows not selected by the bool mask ``rows`` are ``NaN``.  If ``f`` has a method
    ``evaluate_alone(x, rows)`` (e.g. :class:`gpbound.ensemble.NetworkEnsemble`,
    whose row ``b`` belongs to one network of the stack) it is used; otherwise ``f`` is
    called on ``x[b:b+1]``, which must therefore accept a batch of one row.
    """
    if rows is None:
        rows = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    y = _own_row_method(f, "evaluate_alone", x, rows)
    if y is not None:
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


#: the root finder stops once the far end flips by at most this fraction of the margin above it
#: (``-sign f(x0) f(x_hi) - m <= ROOT_TOL * m``): the distance is then within ~``ROOT_TOL m / |f(x0)|``
#: relative of the margin-level crossing (float32: 1.9e-6); it aims at half of that
ROOT_TOL = 1.0 / 16.0
#: exact flip required by :func:`verify` with a ``reference`` (``f`` evaluated in float64), in units of
#: ``eps(dtype) |f(x0)|`` of the working dtype.  Proving the exact flip needs only more than float64's
#: rounding; 16 float32 units put the point at about the spread of the float32 evaluation around the
#: float64 one (measured up to 18 eps32 of the typical |f|, theory ResNet, n = 3072), so the float32 model
#: mostly flips there without retries.  It costs ~2e-6 relative distance, against ~3e-5 of MARGIN_EPS
EXACT_MARGIN_EPS = 16.0
#: fractions of the way from a rejected boundary point back to its verified candidate tried by :func:`verify`
RETRY_STEPS = (1.0 / 64.0, 1.0 / 16.0, 0.25, 1.0)
#: every estimate of :func:`find_boundary` is kept this fraction of the bracket inside it (strict progress)
CLAMP = 2.0 ** -20
#: boundary searches of :func:`verify` (``"illinois"``: :func:`find_boundary`, ``"bisection"``:
#: :func:`bisect_to_boundary`)
BOUNDARY_SEARCHES = ("illinois", "bisection")


def find_boundary(f: Function, x0: torch.Tensor, x_adv: torch.Tensor, y0: torch.Tensor,
                  steps: int = 50, valid: Optional[torch.Tensor] = None, margin=0.0,
                  y_adv: Optional[torch.Tensor] = None, return_count: bool = False,
                  root_tol: float = ROOT_TOL):
    """Bracketing root finder on every segment ``[x0_b, x_adv_b]``, keeping the verified far side.

    Same contract as :func:`bisect_to_boundary` (the far end ``hi`` of the bracket always flips
    by more than ``margin`` in an evaluation of ``f``; ``lo`` never does), but each new point is
    the Illinois regula falsi estimate of the crossing of ``-sign f(x0) f = margin + ROOT_TOL margin / 2``
    along the segment (Dowell and Jarratt 1971), kept ``CLAMP`` of the bracket inside it, and
    safeguarded: every third step, a row whose bracket did not halve over the last three steps takes
    a plain halving next, so the bracket halves at least every four evaluations.  For ``f`` affine
    along the segment the first estimate lands on the crossing; for a piecewise-affine ``f`` (ReLU
    networks) a few more steps follow.  A row stops when its far end flips by at most
    ``(1 + ROOT_TOL) margin`` or its bracket is narrower than ``max(2**-steps, 2 eps)`` of the segment
    (``eps`` of ``x0.dtype``: nothing representable lies inside); the search ends when every row has
    stopped, after at most ``4 steps`` batched evaluations of ``f`` (by then the bracket is no wider
    than ``steps`` halvings leave it).  Where ``f`` has a method ``evaluate_rows(x, rows)`` (as
    :class:`gpbound.ensemble.NetworkEnsemble` has) it is called with the rows still searching, so a
    looped ensemble evaluates only the networks that own one.

    Parameters
    ----------
    f, x0, x_adv, y0, steps, valid, margin : as :func:`bisect_to_boundary` (``steps``: the bracket
        resolution ``2**-steps`` of the segment).
    y_adv : tensor ``(B,)``, optional
        ``f(x_adv)`` if already known (else evaluated here); rows where it does not flip by more
        than ``margin`` are treated as not ``valid``.
    return_count : bool, default False
        Also return the number of batched evaluations of ``f`` made here.
    root_tol : float, default ``ROOT_TOL``
        A row stops once its far end flips by at most ``(1 + root_tol) margin``.

    Returns
    -------
    tensor ``(B, n)``: the far-side end point of each segment (``x_adv`` where not valid);
    with ``return_count``, ``(points, evaluations)``.
    """
    B = x0.shape[0]
    if valid is None:
        valid = torch.ones(B, dtype=torch.bool, device=x0.device)
    count = 0
    if y_adv is None:
        y_adv = evaluate(f, x_adv)
        count += 1
    m = torch.as_tensor(margin, dtype=y0.dtype, device=y0.device).expand(B)
    s0 = torch.sign(y0)
    valid = valid & is_adversarial(y0, y_adv, m)
    direction = x_adv - x0
    aim = 0.5 * root_tol * m            # psi = -s0 f - m - aim: the root-finding target
    lo = torch.zeros(B, dtype=x0.dtype, device=x0.device)
    hi = torch.where(valid, torch.ones_like(lo), lo)
    plo = (-y0.abs() - m - aim).to(lo.dtype)            # psi(0) < 0 (x0 itself)
    phi = (-s0 * y_adv - m - aim).to(lo.dtype)          # psi(1) > -aim where valid
    done = ~valid | (phi <= aim)                        # far end already within the tolerance
    halve = torch.zeros(B, dtype=torch.bool, device=x0.device)
    side = torch.zeros(B, dtype=torch.int8, device=x0.device)  # last end moved: 1 hi, -1 lo
    res = max(2.0 ** -int(steps), 2.0 * torch.finfo(x0.dtype).eps)
    w_ref = hi - lo
    for it in range(4 * int(steps)):
        w = hi - lo
        done = done | (w <= res * hi.clamp_min(res))
        if bool(done.all()):
            break
        t_sec = lo + w * (-plo / (phi - plo).clamp_min(torch.finfo(lo.dtype).tiny))
        # a NaN output (treated as no flip) leaves a NaN estimate: halve instead
        t = torch.where(halve | ~torch.isfinite(t_sec), lo + 0.5 * w, t_sec)
        t = torch.minimum(torch.maximum(t, lo + w * CLAMP), hi - w * CLAMP)
        y = _evaluate_rows(f, x0 + t.unsqueeze(-1) * direction, ~done)
        count += 1
        far = is_adversarial(y0, y, m) & ~done
        near = ~far & ~done
        pt = (-s0 * y - m - aim).to(lo.dtype)
        hi_n, lo_n = torch.where(far, t, hi), torch.where(near, t, lo)
        phi_n, plo_n = torch.where(far, pt, phi), torch.where(near, pt, plo)
        # Illinois: an end kept twice in a row has its value halved (superlinear, no one-sided stall)
        plo_n = torch.where(far & (side == 1), 0.5 * plo_n, plo_n)
        phi_n = torch.where(near & (side == -1) & (phi_n > 0), 0.5 * phi_n, phi_n)
        side = torch.where(far, torch.ones_like(side), torch.where(near, -torch.ones_like(side), side))
        # safeguard: a plain halving where the last three steps did not halve the bracket
        if it % 3 == 2:
            halve = (hi_n - lo_n) > 0.5 * w_ref
            w_ref = hi_n - lo_n
        else:
            halve = torch.zeros_like(halve)
        done = done | (far & (pt <= aim))
        hi, lo, phi, plo = hi_n, lo_n, phi_n, plo_n
    out = torch.where(valid.unsqueeze(-1), x0 + hi.unsqueeze(-1) * direction, x_adv)
    return (out, count) if return_count else out


def _exact_check(reference, y0_ref, m_ref):
    """``exact(x, rows) -> (rows that flip reference by more than m_ref, reference(x))``."""
    def exact(x, rows):
        y = _evaluate_rows(reference, x, rows)
        return rows & is_adversarial(y0_ref, y, m_ref), y
    return exact


def _exact_crossing(f, reference, x0, xb, y_ref, y0, y0_ref, m_ref, ok, steps, exact, reverify_alone):
    """Move the verified points ``xb`` (rows ``ok``, exact flips, ``y_ref = f_ref(xb)``) back onto the exact
    crossing on ``[x0, xb]`` (far end within ``2 m_ref`` of flip) where ``f`` itself still flips there
    strictly, batched and alone (see :func:`verify`)."""
    xt = find_boundary(reference, x0, xb, y0_ref, steps=steps, valid=ok, margin=m_ref, y_adv=y_ref,
                       root_tol=1.0)
    todo = ok & (xt != xb).any(-1)
    for lam in (0.0,) + tuple(r for r in RETRY_STEPS if r < 1.0):
        if not bool(todo.any()):
            break
        cand = torch.where(todo.unsqueeze(-1), xt + lam * (xb - xt), xb) if lam else xt
        # the strict flip in the batched call itself (f on every row, as the caller evaluates it): a looped
        # evaluation of some rows (evaluate_rows) may round differently, and here there is no margin
        good = todo & is_adversarial(y0, evaluate(f, cand), 0.0)
        if lam and bool(good.any()):  # xt itself is an exact flip (find_boundary's far end)
            good = exact(cand, good)[0]
        if reverify_alone and bool(good.any()):
            good = good & is_adversarial(y0, evaluate_alone(f, cand, good), 0.0)
        xb = torch.where(good.unsqueeze(-1), cand, xb)
        todo = todo & ~good
    return xb


def model_dtypes(f) -> set:
    """Floating dtypes of the parameters and buffers of ``f`` when it is a ``torch.nn.Module`` or a
    :class:`~gpbound.ensemble.NetworkEnsemble` (empty for other callables)."""
    from ..ensemble import NetworkEnsemble

    if isinstance(f, NetworkEnsemble):
        tensors = list(f.params.values()) + list(f.buffers.values())
    elif isinstance(f, torch.nn.Module):
        tensors = list(f.parameters()) + list(f.buffers())
    else:
        return set()
    return {t.dtype for t in tensors if torch.is_floating_point(t)}


def float64_reference(f) -> Optional[Function]:
    """A float64 copy of ``f`` that takes the working-dtype points: the exact evaluation of a float32 model.

    For a :class:`gpbound.ensemble.NetworkEnsemble` (or a ``torch.nn.Module``) whose parameters are of a
    floating dtype coarser than float64, the same networks with their parameters converted to float64
    (exactly: every float32 number is a float64 number), called on ``x.double()``; its rounding error is
    ~1e-16 of the values, so its sign is the label of the model's exact arithmetic.  ``None`` for a
    float64 model and for any other callable (no copy can be made).
    """
    from ..ensemble import NetworkEnsemble

    floats = model_dtypes(f)
    if not floats or floats == {torch.float64}:
        return None
    if isinstance(f, NetworkEnsemble):
        nets = [copy.deepcopy(net).to(torch.float64) for net in f.networks]
        return _Float64Inputs(NetworkEnsemble(nets, points_per_network=f.P, output=f.output,
                                              vectorize=f.vectorize))
    return _Float64Inputs(copy.deepcopy(f).to(torch.float64))


class _Float64Inputs:
    """``g`` called on float64 copies of its inputs (``__call__`` and ``evaluate_rows`` where ``g`` has it)."""

    def __init__(self, g):
        self.g = g

    def __call__(self, x):
        return self.g(x.to(torch.float64))

    def evaluate_rows(self, x, rows):
        # the exact reference's rounding (~1e-16) is far below its margins: only the selected rows need
        # evaluating (NetworkEnsemble.evaluate_subset), not each network's whole block
        own = getattr(self.g, "evaluate_subset", None)
        if not callable(own):
            own = getattr(self.g, "evaluate_rows", None)
        return own(x.to(torch.float64), rows) if callable(own) else evaluate(self, x)


def verify(f: Function, x0: torch.Tensor, x_adv: torch.Tensor, p: float,
           y0: Optional[torch.Tensor] = None, bisection_steps: int = 50,
           bounds: Optional[Tuple[float, float]] = None, rel_margin: Optional[float] = None,
           y0_alone: Optional[torch.Tensor] = None, reverify_alone: bool = True,
           search: str = "illinois", reference: Optional[Function] = None,
           y0_reference: Optional[torch.Tensor] = None):
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
    ~``m / |f(x0)|`` relative distance.  The search onto the boundary runs in ``x0.dtype``:
    ``search="illinois"`` (default) the safeguarded regula falsi of :func:`find_boundary` (far end
    within ``(1 + ROOT_TOL) m`` of flip, or bracket ``2**-bisection_steps``; typically a few
    evaluations of ``f``), ``"bisection"`` ``bisection_steps`` halvings (:func:`bisect_to_boundary`).

    A boundary point rejected by either re-verification (its flip is within the rounding of ``f`` of the
    margin, which happens where ``|f(x0)|`` is small against the scale of the network's values) is
    replaced by the first point ``RETRY_STEPS[k]`` of the way back to its verified candidate that passes
    both checks (a row none passes is no success).

    With a ``reference`` (``f`` evaluated exactly, in float64, on the same working-dtype points: see
    :func:`float64_reference`), every success is also an exact flip, ``-sign f(x0) f_ref(x) >
    EXACT_MARGIN_EPS * eps(dtype) * |f_ref(x0)|`` (float64 rounding is ~1e-16 of the values), and the
    margin ``m`` only selects the candidate: each verified point is moved back along ``[x0, x_boundary]``
    onto the exact crossing (:func:`find_boundary` on ``reference``) and kept there where it flips
    strictly (``-sign f(x0) f(x) > 0``) in ``f`` itself, batched and alone (else the first point
    ``RETRY_STEPS[k]`` of the way back to ``x_boundary`` that does; else ``x_boundary``).  The distance
    then exceeds the exact crossing's by ~``EXACT_MARGIN_EPS eps`` relative instead of ``m / |f(x0)|``.

    ``y0_reference`` (optional) is ``reference(x0)`` (evaluated here if omitted).
    ``y0_alone`` (optional) is ``f(x0)`` evaluated row by row alone (computed here where
    needed if omitted); a row whose label there differs from ``sign y0`` is no success.
    ``reverify_alone=False`` skips the evaluation alone (only for an ``f`` that cannot take a
    batch of one row and has no ``evaluate_alone`` method, e.g. a function with parameters per
    row); the batched re-verification remains.
    """
    if search not in BOUNDARY_SEARCHES:
        raise ValueError(f"search must be one of {BOUNDARY_SEARCHES}; got {search!r}")
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
    y_adv = evaluate(f, x_adv)
    ok = is_adversarial(y0, y_adv, margin) & finite
    if search == "illinois":
        xb = find_boundary(f, x0, x_adv, y0, steps=bisection_steps, valid=ok, margin=margin, y_adv=y_adv)
    else:
        xb = bisect_to_boundary(f, x0, x_adv, y0, steps=bisection_steps, valid=ok, margin=margin)
    # re-verification of the returned points: batched (guards against non-deterministic f) ...
    exact = None
    if reference is not None:
        y0_ref = evaluate(reference, x0) if y0_reference is None else y0_reference
        m_ref = EXACT_MARGIN_EPS * _eps(y0.dtype, x0.dtype) * y0_ref.abs()
        ok = ok & (torch.sign(y0_ref) == torch.sign(y0))

        y_ref = torch.full_like(y0_ref, float("nan"))  # f_ref at xb where evaluated
        exact = _exact_check(reference, y0_ref, m_ref)
    passed = ok & is_adversarial(y0, evaluate(f, xb), margin)
    if exact is not None and bool(passed.any()):
        passed, y_ref = exact(xb, passed)
    # ... and each row alone, in a fresh forward pass of a batch of one
    same_label = torch.ones_like(ok)
    if reverify_alone and bool(ok.any()):
        if y0_alone is None:
            y0_alone = evaluate_alone(f, x0, ok)
        same_label = (torch.sign(y0_alone) == torch.sign(y0)) & (y0 != 0)
        passed = passed & same_label
        if bool(passed.any()):
            passed = passed & is_adversarial(y0, evaluate_alone(f, xb, passed), ALONE_FRACTION * margin)
    # a point that the re-verification rejects sits within the rounding of f from the margin (rounding that
    # exceeds MARGIN_EPS eps |f(x0)| where |f(x0)| is small against the scale of the network's values): retry
    # on the segment towards the verified candidate, RETRY_STEPS[k] of the way, the same two checks
    retry = ok & ~passed & same_label
    for lam in RETRY_STEPS:
        if not bool(retry.any()):
            break
        cand = torch.where(retry.unsqueeze(-1), xb + lam * (x_adv - xb), xb)
        good = retry & is_adversarial(y0, _evaluate_rows(f, cand, retry), margin)
        if exact is not None and bool(good.any()):
            good, y_cand = exact(cand, good)
            y_ref = torch.where(good, y_cand, y_ref)
        if reverify_alone and bool(good.any()):
            good = good & is_adversarial(y0, evaluate_alone(f, cand, good), ALONE_FRACTION * margin)
        xb = torch.where(good.unsqueeze(-1), cand, xb)
        passed, retry = passed | good, retry & ~good
    ok = passed
    if exact is not None and bool(ok.any()):
        xb = _exact_crossing(f, reference, x0, xb, y_ref, y0, y0_ref, m_ref, ok, bisection_steps, exact,
                             reverify_alone)
    xb = torch.where(ok.unsqueeze(-1), xb, x0)
    dist = torch.where(ok, lp_norm(xb - x0, p), torch.full_like(y0, float("inf")))
    return xb, dist, ok
