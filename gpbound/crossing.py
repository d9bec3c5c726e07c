"""Empirical crossing frequencies with Clopper-Pearson intervals (checks of Theorem 1 / Corollary 1).

Theorem 1 bounds the probability that the l1 ball ``B^1_r(x0)`` (or the segment
``{x0 + t v : 0 <= t <= r}``) holds a zero of the GP / random network by ``delta``
(eq. 39, 40; Corollary 1 eq. 16, 18).  :func:`crossing_frequency` measures that
probability:

* for a GP kernel: exact GP paths on a finite point set of the ball or segment; a
  path *crosses* when its sign on the set is not constant and equal to its sign at
  ``x0`` -- a lower estimate of the crossing probability (a finite set can miss a
  zero);
* for an :class:`~gpbound.kernels.Architecture`: many random finite networks; in the
  ball mode a network crosses exactly when the verified minimal l1 attack distance is
  ``<= r`` (again a lower estimate: an attack distance upper-bounds the true one); in
  the segment mode, sign changes on a fine grid of the segment.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from scipy import stats

from . import radii
from .sampling import (_center, _pos_int, _radius, sample_gp_paths, sample_l1_ball,
                       sample_segment)

__all__ = ["clopper_pearson", "crossing_frequency", "CrossingResult", "network_distances", "TIGHTNESS_ATTACKS"]

#: attacks of :func:`network_distances` per norm: the gradient-linearisation attack and FMN (with DDN for
#: l2); the l1 coordinate probe of the full ensemble is left out for speed (weaker attacks only make the
#: measured frequencies smaller, so a check of an upper bound stays valid)
TIGHTNESS_ATTACKS = {1.0: ("linear", "fmn"), 2.0: ("linear", "fmn", "ddn"), math.inf: ("linear", "fmn")}


def clopper_pearson(k, n, level: float = 0.95):
    """Exact (Clopper-Pearson) two-sided confidence interval for a binomial proportion.

    .. math::
        p_{lo} = B^{-1}(\\alpha/2;\\, k, n-k+1), \\qquad p_{hi} = B^{-1}(1-\\alpha/2;\\, k+1, n-k),

    with ``alpha = 1 - level``, ``p_lo = 0`` for ``k = 0`` and ``p_hi = 1`` for
    ``k = n`` (``B^{-1}`` the Beta quantile, ``scipy.stats.beta.ppf``).

    Parameters
    ----------
    k : int or array of int, ``0 <= k <= n``
    n : int or array of int, ``n >= 1``
    level : float in (0, 1)

    Returns
    -------
    (lo, hi) : floats or arrays

    References
    ----------
    Clopper & Pearson, Biometrika 26 (1934).
    """
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    k_a = np.asarray(k)
    n_a = np.asarray(n)
    if not (np.issubdtype(k_a.dtype, np.integer) and np.issubdtype(n_a.dtype, np.integer)):
        raise TypeError("k and n must be integers")
    if np.any(n_a < 1) or np.any(k_a < 0) or np.any(k_a > n_a):
        raise ValueError(f"need n >= 1 and 0 <= k <= n; got k={k!r}, n={n!r}")
    a = 1.0 - level
    kf, nf = k_a.astype(float), n_a.astype(float)
    with np.errstate(invalid="ignore"):
        lo = np.where(k_a == 0, 0.0, stats.beta.ppf(a / 2, kf, nf - kf + 1))
        hi = np.where(k_a == n_a, 1.0, stats.beta.ppf(1 - a / 2, kf + 1, nf - kf))
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


@dataclass
class CrossingResult:
    """Result of :func:`crossing_frequency`.

    ``count`` crossings in ``trials``; ``frequency = count/trials``; ``ci`` the
    Clopper-Pearson interval at ``level``; ``delta`` the bound's failure probability
    at ``r`` (eq. 39 for the ball, Theorem 1 II for the segment; NaN if M is
    unknown); ``distances`` the per-trial measured crossing distance (attack l1
    distance, or first sign change along the segment; ``inf`` if none; empty for
    GP paths); ``looseness = quantile(distances, delta) / r``: the measured distance
    at the bound's probability level over the certified radius (>= 1 expected up to
    sampling noise; ball mode with networks only -- a segment grid ends at ``r``, so
    there it is NaN).
    """

    count: int
    trials: int
    frequency: float
    ci: tuple
    level: float
    r: float
    mode: str
    method: str
    delta: float = float("nan")
    M: float = float("nan")
    distances: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    looseness: float = float("nan")
    crossed: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))


def _bound_delta(mode, r, x0, M, entropy, bound="comparison"):
    """The bound's delta at radius ``r`` (NaN only when no M is known: a GP kernel without one).

    ``bound``: ``"comparison"`` (gpbound's default certificate, the Sudakov--Fernique inverse maps
    :func:`gpbound.radii.comparison_failure_probability` / ``comparison_segment_failure_probability``)
    or ``"dudley"`` (the paper's eq. 39 and the segment form of Theorem 1 II).

    No fallback: an error of :mod:`gpbound.radii` (a renamed function, a bad argument) propagates.
    """
    if M is None or not math.isfinite(M):
        return float("nan")
    x0n = float(torch.linalg.vector_norm(x0))
    if bound == "comparison":
        if mode == "ball":
            return float(radii.comparison_failure_probability(r, x0n, x0.shape[0], M, p=1))
        return float(radii.comparison_segment_failure_probability(r, x0n, M))
    if mode == "ball":
        return float(radii.failure_probability(r, x0n, x0.shape[0], M, entropy=entropy))
    return float(radii.segment_failure_probability(r, x0n, M))


def crossing_frequency(model, x0, r: float, mode: str = "ball", num_trials: int = 50,
                       num_points: int = 256, v=None, width=None, sigma_w2: float = 2.0,
                       sigma_b2: float = 0.0, steps: int = 50, restarts: int = 0,
                       level: float = 0.95, M: Optional[float] = None, entropy: str = "numeric",
                       seed: Optional[int] = None, device=None, dtype=torch.float64,
                       bound: str = "comparison") -> CrossingResult:
    """Measured frequency of a zero of the GP / random network in ``B^1_r(x0)`` or on a segment.

    Parameters
    ----------
    model : gpytorch Kernel (or callable ``(X1, X2) -> K``) or gpbound.kernels.Architecture
        GP kernel: exact paths (:func:`gpbound.sampling.sample_gp_paths`) on ``x0`` and
        ``num_points`` points of the set (ball: the 2n vertices when ``2n <= num_points/2``,
        the rest uniform in the ball; segment: a grid).  Architecture: ``num_trials``
        random networks ``arch.network(width, sigma_w2, sigma_b2, seed=s_k)``; ball: a
        crossing iff the verified minimal l1 distance (:func:`gpbound.attacks.minimal_distance`,
        all networks in one batched ensemble) is ``<= r``; segment: sign change on a grid
        of ``num_points`` points.
    x0 : tensor ``(n,)``, finite, non-zero
    r : float > 0, l1 radius (ball) or length (segment)
    mode : {"ball", "segment"}
    num_trials : int >= 1, GP paths or networks
    num_points : int >= 2, points of the set
    v : tensor ``(n,)``, segment direction (normalised to unit l2 norm); default ``x0``-orthogonal random
    width, sigma_w2, sigma_b2 : network parameters (Architecture only)
    steps, restarts : attack parameters (Architecture, ball)
    level : float in (0, 1), Clopper-Pearson level
    M : float, Theorem 2's constant; default ``arch.M`` (or ``kernel.architecture.M``)
    entropy : entropy integral used for ``delta`` with ``bound="dudley"`` (see
        :func:`gpbound.radii.failure_probability`)
    seed : int or None; device, dtype
    bound : {"comparison", "dudley"}
        Which certificate's ``delta`` at ``r`` is reported: the comparison (Sudakov--Fernique) bound,
        gpbound's default, or the paper's Dudley route (eq. 39; segment: Theorem 1 II).

    Returns
    -------
    CrossingResult
    """
    from .attacks import minimal_distance
    from .ensemble import NetworkEnsemble

    if bound not in ("comparison", "dudley"):
        raise ValueError(f"bound must be 'comparison' or 'dudley'; got {bound!r}")
    if mode not in ("ball", "segment"):
        raise ValueError(f"mode must be 'ball' or 'segment'; got {mode!r}")
    x0 = _center(x0, dtype, device)
    if float(torch.linalg.vector_norm(x0)) == 0:
        raise ValueError("x0 must be non-zero (Theorem 1 needs ||x0||_2 > 0)")
    r = _radius(r)
    num_trials = _pos_int(num_trials, "num_trials")
    num_points = _pos_int(num_points, "num_points")
    if num_points < 2:
        raise ValueError(f"num_points must be an int >= 2; got {num_points}")
    n = x0.shape[0]
    is_arch = hasattr(model, "network") and hasattr(model, "n")
    if M is None:
        arch = model if is_arch else getattr(model, "architecture", None)
        M = float(arch.M) if arch is not None and hasattr(arch, "M") else None
    if is_arch and model.n != n:
        raise ValueError(f"x0 must have n = arch.n = {model.n} entries; got {n}")
    if mode == "segment":
        if v is None:
            g = torch.Generator().manual_seed(0 if seed is None else int(seed) + 1)
            v = torch.randn(n, generator=g, dtype=dtype).to(x0.device)
        pts = sample_segment(x0, v, r, num_points, device=x0.device, dtype=dtype)
        ts = torch.linspace(0.0, r, num_points, dtype=dtype, device=x0.device)

    distances = torch.empty(0, dtype=dtype)
    if not is_arch:
        if mode == "ball":
            parts = [x0.unsqueeze(0)]
            m = num_points
            if 2 * n <= num_points // 2:
                parts.append(sample_l1_ball(x0, r, kind="vertices", device=x0.device, dtype=dtype))
                m -= 2 * n
            parts.append(sample_l1_ball(x0, r, m, seed=seed, device=x0.device, dtype=dtype))
            pts = torch.cat(parts, 0)
        paths = sample_gp_paths(model, pts, num_trials, seed=seed, device=x0.device, dtype=dtype)
        s = torch.sign(paths)
        crossed = (s[:, 1:] != s[:, :1]).any(-1) | (s[:, 0] == 0)
        method = "gp-paths"
        if mode == "segment":
            flip = s != s[:, :1]
            first = torch.where(flip.any(-1), flip.to(torch.int64).argmax(-1), torch.full_like(flip[:, 0], -1, dtype=torch.int64))
            distances = torch.where(first >= 0, ts[first.clamp_min(0)], torch.full_like(paths[:, 0], float("inf")))
    else:
        ens = NetworkEnsemble.from_architecture(model, num_trials, width=width, sigma_w2=sigma_w2,
                                                sigma_b2=sigma_b2, seed=seed, device=x0.device,
                                                dtype=dtype, points_per_network=1)
        if mode == "ball":
            gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
            res = minimal_distance(ens, ens.rows(x0.unsqueeze(0)), 1, steps=steps, restarts=restarts,
                                   generator=gen)
            distances = res.distance
            # distance is 0 where f(x0) = 0 (x0 itself is a zero), inf where none was found
            crossed = res.distance <= r
            method = "network-attack-l1"
        else:
            with torch.no_grad():
                vals = ens.shared(pts)  # (K, G)
            s = torch.sign(vals)
            flip = s != s[:, :1]
            crossed = flip.any(-1) | (s[:, 0] == 0)
            first = torch.where(flip.any(-1), flip.to(torch.int64).argmax(-1),
                                torch.full_like(flip[:, 0], -1, dtype=torch.int64))
            distances = torch.where(first >= 0, ts[first.clamp_min(0)],
                                    torch.full_like(vals[:, 0], float("inf")))
            method = "network-grid"
    count = int(crossed.sum())
    ci = clopper_pearson(count, num_trials, level)
    delta = _bound_delta(mode, r, x0, M, entropy, bound)
    loose = float("nan")
    if mode == "ball" and distances.numel() and math.isfinite(delta) and 0 < delta < 1:
        d = np.sort(distances.detach().cpu().numpy())
        q = float(np.quantile(d, delta, method="inverted_cdf")) if np.isfinite(d).any() else float("inf")
        loose = q / r
    return CrossingResult(count=count, trials=num_trials, frequency=count / num_trials, ci=ci,
                          level=level, r=r, mode=mode, method=method, delta=delta,
                          M=float("nan") if M is None else float(M), distances=distances.detach(),
                          looseness=loose, crossed=crossed.detach())


def network_distances(arch, x0, norms=(1.0, 2.0, math.inf), num_networks: int = 200, width=None,
                      sigma_w2: float = 2.0, sigma_b2: float = 0.0, steps: int = 20, attacks=None,
                      bisection_steps: int = 30, seed: Optional[int] = None, device=None,
                      dtype=torch.float64) -> dict:
    """Verified minimal l_p distances from one ``x0`` to the decision boundary of many random networks.

    All ``num_networks`` networks ``arch.network(width, sigma_w2, sigma_b2, seed=s_k)`` are attacked in
    one batched call per norm (:class:`gpbound.ensemble.NetworkEnsemble`); the same networks
    serve every norm (paired). Unboxed, as the theorem.

    Parameters
    ----------
    arch : gpbound.kernels.Architecture
    x0 : tensor ``(n,)``, finite and non-zero
    norms : sequence of {1, 2, inf}
    num_networks : int >= 1
    width : int or None
        Hidden width override of the networks.
    sigma_w2, sigma_b2 : float
    steps : int
        Iterations of the attacks (:func:`gpbound.attacks.minimal_distance`).
    attacks : dict norm -> tuple of attack names, optional
        Default :data:`TIGHTNESS_ATTACKS`.
    bisection_steps : int
        Halvings onto the boundary (30: relative resolution ~1e-9 of the distance).
    seed : int or None
    device, dtype

    Returns
    -------
    dict
        ``{p: ndarray (num_networks,)}``: each network's verified distance (``inf`` where no flip was
        found, ``0`` where ``f(x0) = 0``); an upper bound of the true minimal distance.
    """
    from .attacks import minimal_distance
    from .ensemble import NetworkEnsemble
    from .attacks.norms import parse_norm

    x0 = _center(x0, dtype, device)
    if float(torch.linalg.vector_norm(x0)) == 0:
        raise ValueError("x0 must be non-zero")
    num_networks = _pos_int(num_networks, "num_networks")
    attacks = dict(TIGHTNESS_ATTACKS if attacks is None else attacks)
    ens = NetworkEnsemble.from_architecture(arch, num_networks, width=width, sigma_w2=sigma_w2,
                                            sigma_b2=sigma_b2, seed=seed, device=x0.device, dtype=dtype,
                                            points_per_network=1)
    X = ens.rows(x0.unsqueeze(0))
    out = {}
    for norm in norms:
        p = parse_norm(norm)
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
        with warnings.catch_warnings():
            # networks with f(x0) = 0 (all paths dead at finite width) are expected here: distance 0, documented
            warnings.filterwarnings("ignore", message=r".*have f\(x0\) = 0 \(no label\)", category=RuntimeWarning)
            res = minimal_distance(ens, X, p, steps=steps, generator=gen, attacks=attacks[p],
                                   bisection_steps=bisection_steps)
        out[p] = res.distance.detach().cpu().numpy().astype(float)
    return out
