"""Single-coordinate line search: the l1 attack that gradient steps miss.

For an affine ``f`` the minimal l1 perturbation moves one coordinate, the one with the
largest ``|df/dx_i|`` (the l1 ball's vertices are ``+-r e_i``).  A ReLU network is
piecewise affine, so near ``x0`` its minimal l1 adversarial perturbation is often
sparse, but the coordinate that reaches the boundary first need not be the steepest
at ``x0``, and dense gradient methods (DeepFool, FMN) tend to land on denser, longer
perturbations.  This attack searches the segments ``x0 + t s e_i``, ``s = +-1``,
``0 < t <= t_max``, for the ``k`` coordinates of largest ``|grad f|`` at ``x0`` (and at
a boundary point found by another attack, when given; where ``2n <= probe_dirs`` and ``2nB <= probe_rows``,
also every coordinate whose move by ``t_max`` flips the label), on a geometric grid of ``t``;
the shortest flipping move of each row is the candidate, which :func:`gpbound.attacks.verify.verify`
then bisects onto the boundary along the segment.

``f`` is always evaluated on whole ``(B, n)`` batches (row ``b`` moved along its own
direction), so a stacked :class:`~gpbound.ensemble.NetworkEnsemble` works, and all
candidate sets of a chunk go to :func:`~gpbound.attacks.verify.evaluate_many` (one stacked call
for an ensemble): the Python loops run over chunks of directions and over the ``grid`` steps,
never over coordinates or points.  The probe is the costly part (``2n`` batch
evaluations), hence its limits ``probe_dirs`` and ``probe_rows``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .verify import evaluate_many, flip_margin, is_adversarial, value_and_grad

__all__ = ["coordinate_attack"]

#: candidate entries (sets x rows x n) per stacked call of the coordinate probe
_PROBE_ENTRIES = 2 ** 22



def coordinate_attack(f, x0: torch.Tensor, y0: torch.Tensor, t_max: torch.Tensor, k: int = 6, grid: int = 12,
                      span: float = 100.0, x_boundary: Optional[torch.Tensor] = None,
                      bounds: Optional[Tuple[float, float]] = None, probe_dirs: int = 1024,
                      probe_rows: int = 2 ** 16, probe: Optional[bool] = None) -> torch.Tensor:
    """Unverified candidates ``x0 + t s e_i`` from a line search along the steepest coordinates.

    Parameters
    ----------
    f : callable ``(B, n) -> (B,)``, rows independent, differentiable.
    x0 : tensor ``(B, n)``; y0 : tensor ``(B,)`` = ``f(x0)``.
    t_max : tensor ``(B,)``
        Longest move searched per row (e.g. the best distance found so far), ``> 0``, finite.
    k : int
        Coordinates per gradient (steepest ``|df/dx_i|``), each searched in both directions.
    grid : int
        Grid points ``t_j = t_max span^{-(1 - j/(grid-1))}``, ``j = 0..grid-1``.
    span : float
        Ratio of the longest to the shortest grid step.
    x_boundary : tensor ``(B, n)``, optional
        A boundary point found by another attack; its steepest coordinates are searched too.
    bounds : optional box ``(lo, hi)``; moves are clipped into it.
    probe_dirs, probe_rows : int
        If ``2 n <= probe_dirs`` and ``2 n B <= probe_rows``, every direction ``+-e_i`` is first probed at ``t_max`` (one
        batch of ``B`` rows each) and the coordinates that flip some row are searched too:
        exhaustive over coordinates where affordable (the flipping coordinate is often far down
        the gradient ranking: measured rank 34 and 306 of 432 on the authors' network).
    probe : bool or None, default None
        ``True``: the exhaustive probe runs whatever ``n`` and ``B`` (cost ``2 n`` evaluations of ``B``
        rows, in chunks); ``False``: never; ``None``: only within ``probe_dirs`` and ``probe_rows``.
        A sweep over sizes should fix it (``True`` or ``False``) so that the l1 attack has the same
        strength at every size (:func:`gpbound.experiments.figures.distance_tasks` does).

    Returns
    -------
    tensor ``(B, n)``: the shortest flipping grid point per row (``x0`` where none flipped).
    """
    B, n = x0.shape
    margin = flip_margin(y0, x0.dtype, candidate=True)  # candidates: above verify's margin
    k = max(1, min(int(k), n))
    _, g = value_and_grad(f, x0)
    coords = [g.abs().topk(k, dim=-1).indices]
    if x_boundary is not None:
        _, gb = value_and_grad(f, x_boundary)
        coords.append(gb.abs().topk(k, dim=-1).indices)
    if probe is not None and not isinstance(probe, bool):
        raise TypeError(f"probe must be None, True or False; got {probe!r}")
    if probe or (probe is None and 2 * n <= probe_dirs and 2 * n * B <= probe_rows):
        # every direction +-e_i probed once at t_max, in chunks of candidate sets (one stacked call per
        # chunk for a NetworkEnsemble: no Python loop over coordinates); the coordinates that flip a row
        # are searched for that row (rows with fewer hits fill up with steep coordinates: harmless)
        hit = torch.zeros(B, n, dtype=torch.bool, device=x0.device)
        chunk = max(1, min(2 * n, _PROBE_ENTRIES // max(1, B * n)))
        for start in range(0, 2 * n, chunk):
            d = torch.arange(start, min(2 * n, start + chunk), device=x0.device)
            i, sgn = d // 2, 1.0 - 2.0 * (d % 2).to(x0.dtype)
            X = x0.unsqueeze(0).repeat(len(d), 1, 1)
            j = torch.arange(len(d), device=x0.device)
            X[j, :, i] += sgn[:, None] * t_max[None, :]
            if bounds is not None:
                X = X.clamp(bounds[0], bounds[1])
            flips = is_adversarial(y0[None, :], evaluate_many(f, X), margin)  # (m, B)
            hit.index_put_((torch.arange(B, device=x0.device)[None, :].expand_as(flips)[flips],
                            i[:, None].expand_as(flips)[flips]), torch.ones((), dtype=torch.bool,
                                                                            device=x0.device))
        m_hits = int(hit.sum(-1).max())
        if m_hits:
            rank = hit.to(x0.dtype) * 2.0 + g.abs() / g.abs().amax(-1, keepdim=True).clamp_min(1e-300)
            coords.append(rank.topk(m_hits, dim=-1).indices)
    idx = torch.cat(coords, dim=-1)  # (B, m) (duplicates are harmless)
    m = idx.shape[1]
    # directions d = 2 j + (0: +e_idx[:, j], 1: -e_idx[:, j]); grid steps ascending (short moves first), each
    # step one stacked evaluation of every direction (in chunks): the first step at which some direction
    # flips a row gives that row's shortest flipping move, the first such direction in (j, sign) order
    frac = span ** (-(1.0 - torch.linspace(0.0, 1.0, int(grid), dtype=x0.dtype, device=x0.device)))
    rows = torch.arange(B, device=x0.device)
    d_all = torch.arange(2 * m, device=x0.device)
    col = idx[:, d_all // 2].T  # (2m, B): the coordinate each direction moves in each row
    sgn = (1.0 - 2.0 * (d_all % 2).to(x0.dtype))[:, None]  # (2m, 1)
    found = torch.zeros(B, dtype=torch.bool, device=x0.device)
    best_x = x0.clone()
    chunk = max(1, min(2 * m, _PROBE_ENTRIES // max(1, B * n)))
    for fr in frac:
        t = t_max * fr  # (B,)
        first = torch.full((B,), 2 * m, dtype=torch.long, device=x0.device)  # first flipping direction
        for start in range(0, 2 * m, chunk):
            d = d_all[start:start + chunk]
            X = x0.unsqueeze(0).repeat(len(d), 1, 1)
            j = torch.arange(len(d), device=x0.device)[:, None]
            X[j, rows[None, :], col[d]] += sgn[d] * t[None, :]
            if bounds is not None:
                X = X.clamp(bounds[0], bounds[1])
            flips = is_adversarial(y0[None, :], evaluate_many(f, X), margin) & ~found[None, :]  # (c, B)
            first = torch.minimum(first, torch.where(flips, d[:, None], 2 * m).amin(0))
        new = first < 2 * m
        if bool(new.any()):
            b = rows[new]
            best_x[b, col[first[new], b]] = x0[b, col[first[new], b]] + sgn[first[new], 0] * t[new]
            found |= new
            if bounds is not None:
                best_x[b] = best_x[b].clamp(bounds[0], bounds[1])
        if bool(found.all()):
            break
    return best_x
