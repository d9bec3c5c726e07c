r"""A constructive cover of the unit l1 ball by Maurey's empirical method, and a coverage check.

Every ``x`` with :math:`\|x\|_1 \le 1` is a convex combination :math:`x = \sum_v \lambda_v v` of
the signed vertices :math:`v \in \{\pm e_i\}` (put any missing mass half on :math:`e_1`, half on
:math:`-e_1`). Draw ``k`` vertices i.i.d. with probabilities :math:`\lambda_v`; their average
``Z`` has :math:`E Z = x` and
:math:`E\|Z - x\|_2^2 = (E\|v\|^2 - \|x\|_2^2)/k = (1 - \|x\|_2^2)/k \le 1/k`, so *some*
average of ``k`` signed vertices lies within :math:`1/\sqrt k` of ``x``. With
:math:`k = \lceil 1/\varepsilon^2 \rceil` the set of all such averages (multisets of size ``k``
of the ``2n`` vertices: at most :math:`\binom{2n+k-1}{k} \le (2n)^k` distinct points) covers the
ball at Euclidean radius ``eps``. This is the middle regime of Theorem 3 (eq. 36).

References
----------
De Palma, Kiani, Lloyd, ICML 2021, Theorem 3; G. Pisier, *Remarques sur un resultat non
publie de B. Maurey* (1981).
"""

from dataclasses import dataclass
import itertools
import math

import numpy as np
from scipy import spatial, special

from .theorem3 import as_float_array
from .theorem3 import log_covering_number

__all__ = ["MaureyCover", "maurey_cover", "sample_l1_ball_points", "covering_radius"]


@dataclass(frozen=True)
class MaureyCover:
    """Result of :func:`maurey_cover`.

    Attributes
    ----------
    centers : ndarray, shape (size, n)
        Distinct centers (averages of ``k`` signed vertices), float64.
    n, eps, k : int, float, int
        Dimension, requested radius, number of averaged vertices ``ceil(1/eps^2)``
        (``k = 0`` and the single center 0 when ``eps >= 1``).
    size : int
        Number of distinct centers.
    log_size : float
        ``ln(size)``.
    log_theorem3_bound : float
        ``ln N(eps)`` of Theorem 3 (:func:`log_covering_number`).
    log_maurey_bound : float
        ``k ln(2n)`` -- what the proof with an integer ``k`` guarantees.
    within_theorem3_bound : bool
        ``size <= exp(log_theorem3_bound)``.
    """

    centers: np.ndarray
    n: int
    eps: float
    k: int
    size: int
    log_size: float
    log_theorem3_bound: float
    log_maurey_bound: float
    within_theorem3_bound: bool


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int >= 1, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return int(n)


def _check_eps(eps):
    e = as_float_array(eps, "eps")
    if e.ndim != 0:
        raise ValueError(f"eps must be a scalar, got shape {e.shape}")
    if e <= 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    return float(e)


def maurey_cover(n, eps, max_centers=200_000):
    r"""Construct Maurey's cover of the unit l1 ball of R^n at Euclidean radius ``eps``.

    Parameters
    ----------
    n : int
        Dimension, ``n >= 1`` (meant for small n: the cover has
        :math:`\binom{2n+k-1}{k}` candidate centers).
    eps : float
        Covering radius, ``eps > 0``.
    max_centers : int
        Refuse (ValueError) if more than this many candidate multisets would be enumerated.

    Returns
    -------
    MaureyCover
        The centers and the comparison with Theorem 3's bound.

    Notes
    -----
    ``k = ceil(1/eps^2)``; centers are :math:`\frac1k\sum_{j=1}^k s_j e_{i_j}` over all multisets
    of size ``k`` from the ``2n`` signed vertices, deduplicated (``e_i`` and ``-e_i`` cancel).
    For ``eps >= 1`` the single center 0 suffices (:math:`\|x\|_2 \le \|x\|_1 \le 1`).

    Finding: Theorem 3 states :math:`(2n)^{1/\varepsilon^2}`, but the argument gives
    :math:`(2n)^{\lceil 1/\varepsilon^2\rceil}`; when :math:`1/\varepsilon^2` is not an integer the
    constructed cover can be larger than the stated bound (e.g. n = 4, eps = 0.99: 33 centers
    vs :math:`8^{1.02} \approx 8.3`). ``within_theorem3_bound`` reports it.
    """
    n = _check_n(n)
    eps = _check_eps(eps)
    if isinstance(max_centers, bool) or not isinstance(max_centers, (int, np.integer)) or max_centers < 1:
        raise ValueError(f"max_centers must be a positive int, got {max_centers!r}")
    log_thm3 = float(log_covering_number(eps, n))
    if eps >= 1.0:
        centers = np.zeros((1, n))
        k = 0
    else:
        k = int(math.ceil(1.0 / eps**2 - 1e-12))  # 1/eps^2 within round-off of an integer counts as that integer
        count = math.comb(2 * n + k - 1, k)
        if count > max_centers:
            raise ValueError(
                f"maurey_cover(n={n}, eps={eps}) would enumerate {count} multisets > max_centers={max_centers}; "
                "use a larger eps or smaller n"
            )
        idx = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations_with_replacement(range(2 * n), k)),
            dtype=np.int64,
            count=count * k,
        ).reshape(count, k)
        # signed vertex j: +e_j for j < n, -e_{j-n} otherwise
        signed = np.concatenate([np.eye(n), -np.eye(n)], axis=0)
        centers = signed[idx].sum(axis=1) / k
        centers = np.unique(np.round(centers * k).astype(np.int64), axis=0).astype(np.float64) / k
    size = centers.shape[0]
    log_size = math.log(size)
    log_maurey = k * math.log(2 * n) if k > 0 else 0.0
    return MaureyCover(
        centers=centers,
        n=n,
        eps=eps,
        k=k,
        size=size,
        log_size=log_size,
        log_theorem3_bound=log_thm3,
        log_maurey_bound=log_maurey,
        within_theorem3_bound=bool(log_size <= log_thm3 + 1e-12),
    )


def sample_l1_ball_points(n, num, seed=0, include_extremes=True):
    r"""Points of the closed unit l1 ball: uniform interior, boundary, vertices and face centroids.

    Parameters
    ----------
    n : int
        Dimension, ``n >= 1``.
    num : int
        Number of uniform interior points (the same number again on the boundary).
    seed : int
        Seed of :class:`numpy.random.Generator`.
    include_extremes : bool
        Add the ``2n`` vertices, facet centroids :math:`s/n` for up to 256 sign vectors
        ``s``, and edge midpoints :math:`(\pm e_i \pm e_j)/2` -- the points farthest from
        a Maurey cover.

    Returns
    -------
    ndarray, shape (m, n)

    Notes
    -----
    Uniform in the ball: with :math:`Y_i` i.i.d. Laplace(1) and :math:`W \sim` Exp(1)
    independent, :math:`Y/(\|Y\|_1 + W)` is uniform in :math:`B^n_1` (Barthe, Guedon,
    Mendelson, Naor 2005). :math:`Y/\|Y\|_1` is cone-measure (uniform) on the boundary.
    """
    n = _check_n(n)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive int, got {num!r}")
    rng = np.random.default_rng(seed)
    y = rng.laplace(size=(num, n))
    w = rng.exponential(size=(num, 1))
    l1 = np.abs(y).sum(axis=1, keepdims=True)
    parts = [y / (l1 + w), rng.laplace(size=(num, n))]
    parts[1] = parts[1] / np.abs(parts[1]).sum(axis=1, keepdims=True)
    if include_extremes:
        parts.append(np.concatenate([np.eye(n), -np.eye(n)]))
        n_signs = min(256, 2**n) if n < 63 else 256
        signs = rng.choice([-1.0, 1.0], size=(n_signs, n))
        parts.append(signs / n)
        if n >= 2:
            i, j = np.triu_indices(n, 1)
            sel = rng.permutation(len(i))[:256]
            for si in (-1.0, 1.0):
                for sj in (-1.0, 1.0):
                    p = np.zeros((len(sel), n))
                    p[np.arange(len(sel)), i[sel]] = si / 2
                    p[np.arange(len(sel)), j[sel]] = sj / 2
                    parts.append(p)
    return np.concatenate(parts, axis=0)


def covering_radius(centers, points):
    """Largest Euclidean distance from a point to its nearest center (a lower estimate of the cover radius).

    Parameters
    ----------
    centers : array_like, shape (N, n)
    points : array_like, shape (m, n)

    Returns
    -------
    float
        :math:`\\max_{p} \\min_{c} \\|p - c\\|_2`, by a k-d tree (:class:`scipy.spatial.cKDTree`).
    """
    c = as_float_array(centers, "centers")
    p = as_float_array(points, "points")
    if c.ndim != 2 or p.ndim != 2 or c.shape[1] != p.shape[1] or c.shape[0] == 0 or p.shape[0] == 0:
        raise ValueError(
            f"centers and points must be non-empty 2-D arrays with the same number of columns, "
            f"got shapes {c.shape} and {p.shape}"
        )
    dist, _ = spatial.cKDTree(c).query(p, k=1)
    return float(np.max(dist))


def log_multiset_count(n, k):
    """``ln binom(2n + k - 1, k)``: the number of averages of k signed vertices (before deduplication)."""
    return float(special.gammaln(2 * n + k) - special.gammaln(k + 1) - special.gammaln(2 * n))
