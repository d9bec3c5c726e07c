"""Fits of the experiments: log-log slopes with network-bootstrap intervals (Figs 1-2), and
the linear fit of the lowest percentiles of sorted distances (Fig 3).

Expected slopes of the median distance against ``n`` (Remark 5 / Corollary 1 with
``||x0||_2 = Theta(sqrt(n))``): ``+1/2`` (l1), ``0`` (l2), ``-1/2`` (linf); of the relative
distance ``distance / ||x0||_p``: ``-1/2`` in every norm (up to logarithms).
"""
from __future__ import annotations

import warnings
from typing import Dict, Mapping, Sequence

import numpy as np

__all__ = ["loglog_slope", "bootstrap_slope", "percentile_curve", "EXPECTED_SLOPES",
           "EXPECTED_RELATIVE_SLOPE"]

EXPECTED_SLOPES = {"l1": 0.5, "l2": 0.0, "linf": -0.5}
EXPECTED_RELATIVE_SLOPE = -0.5


def loglog_slope(n, y) -> Dict[str, float]:
    r"""Least-squares fit of :math:`\log y = a + b \log n`; returns ``slope`` ``b``,
    ``intercept`` ``a`` and ``r2``. Needs at least 2 distinct ``n`` and ``y > 0`` finite."""
    n = np.asarray(n, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1:
        raise ValueError(f"n and y must be 1-d arrays of equal length, got {n.shape} and {y.shape}")
    if not (np.all(np.isfinite(n)) and np.all(n > 0)):
        raise ValueError("n must be finite and > 0")
    if not (np.all(np.isfinite(y)) and np.all(y > 0)):
        raise ValueError("y must be finite and > 0 for a log-log fit")
    if np.unique(n).size < 2:
        raise ValueError("a slope needs at least 2 distinct values of n")
    ln, ly = np.log(n), np.log(y)
    b, a = np.polyfit(ln, ly, 1)
    resid = ly - (a + b * ln)
    tot = np.sum((ly - ly.mean()) ** 2)
    r2 = 1.0 - np.sum(resid ** 2) / tot if tot > 0 else 1.0
    return {"slope": float(b), "intercept": float(a), "r2": float(r2)}


def _as_groups(values: Sequence) -> np.ndarray:
    """(networks, points) float array, NaN for missing points."""
    rows = [np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in values]
    if not rows:
        raise ValueError("each n needs at least one network")
    width = max(r.size for r in rows)
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, :r.size] = r
    return out


def bootstrap_slope(groups: Mapping[float, Sequence], n_min: float = 100.0, statistic: str = "median",
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Dict[str, object]:
    r"""Log-log slope of a per-``n`` statistic with a bootstrap interval over networks.

    For every ``n >= n_min``, ``groups[n]`` is a list with one array per network of the
    per-point values (e.g. attack distances; NaN or inf = attack failure, left out). The
    statistic (median of the pooled points by default) is fitted by :func:`loglog_slope`.
    The interval resamples *networks* with replacement within each ``n`` (points of one
    network are correlated), refits, and reports the ``(1 -/+ level)/2`` percentiles.

    Returns
    -------
    dict
        ``slope``, ``intercept``, ``r2``, ``ci_low``, ``ci_high``, ``level``, ``n_boot``,
        ``n`` (the sizes used), ``stat`` (the statistic per size), ``boot_se``.
    """
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    sizes = sorted(float(k) for k in groups if float(k) >= n_min)
    if len(sizes) < 2:
        raise ValueError(f"need at least 2 sizes n >= n_min={n_min}, got {sizes}")
    by_n = {float(k): v for k, v in groups.items()}
    stat_fn = np.nanmedian if statistic == "median" else np.nanmean
    arrays = []
    for k in sizes:
        a = _as_groups(by_n[k])
        a[~np.isfinite(a)] = np.nan
        if np.all(np.isnan(a)):
            raise ValueError(f"no finite values at n = {k}")
        arrays.append(a)
    stat = np.array([stat_fn(a) for a in arrays])
    fit = loglog_slope(sizes, stat)
    rng = np.random.default_rng(seed)
    slopes = np.empty(n_boot)
    if n_boot:
        ln = np.log(sizes)
        boot_stats = np.empty((n_boot, len(sizes)))
        for j, a in enumerate(arrays):
            idx = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
            res = a[idx].reshape(n_boot, -1)                   # (n_boot, networks * points)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)    # all-NaN resamples
                boot_stats[:, j] = stat_fn(res, axis=1)
        ly = np.log(boot_stats)
        lc = ln - ln.mean()
        slopes = ((ly - ly.mean(axis=1, keepdims=True)) @ lc) / (lc @ lc)
        slopes = slopes[np.isfinite(slopes)]
    lo, hi = ((np.quantile(slopes, [(1 - level) / 2, (1 + level) / 2]).tolist()) if slopes.size
              else (float("nan"), float("nan")))
    return {**fit, "ci_low": float(lo), "ci_high": float(hi), "level": level, "n_boot": int(n_boot),
            "boot_se": float(np.std(slopes, ddof=1)) if slopes.size > 1 else float("nan"),
            "n": sizes, "stat": stat.tolist(), "statistic": statistic}


def percentile_curve(distances, fit_fraction: float = 0.25) -> Dict[str, object]:
    r"""Sorted distances against percentile, with a linear fit over the lowest fraction (Fig 3).

    Corollary 1 bounds ``P(distance <= r)`` by a quantity linear in ``r`` for small ``r``, so
    the empirical CDF ``p(r)`` (percentile ``100 (i + 1/2) / N`` of the ``i``-th smallest
    distance) is fitted as ``p = intercept + slope * r`` on the lowest ``fit_fraction`` of the
    points. Non-finite distances (failed attacks) count as larger than every finite one.

    Returns
    -------
    dict
        ``distances`` (sorted, finite), ``percentiles``, ``slope``, ``intercept``, ``r2``,
        ``n_fit``, ``fit_fraction``, ``n_failed``.
    """
    if not (0 < fit_fraction <= 1):
        raise ValueError(f"fit_fraction must be in (0, 1], got {fit_fraction!r}")
    d = np.asarray(distances, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("distances must not be empty")
    if np.any(d[np.isfinite(d)] < 0) or np.any(np.isnan(d)):
        raise ValueError("distances must be >= 0 (inf allowed for failed attacks, not NaN)")
    N = d.size
    fin = np.sort(d[np.isfinite(d)])
    pct = 100.0 * (np.arange(fin.size) + 0.5) / N
    k = max(2, int(np.ceil(fit_fraction * N)))
    k = min(k, fin.size)
    out = {"distances": fin.tolist(), "percentiles": pct.tolist(), "fit_fraction": fit_fraction,
           "n_fit": int(k), "n_failed": int(N - fin.size)}
    if k >= 2 and np.ptp(fin[:k]) > 0:
        slope, intercept = np.polyfit(fin[:k], pct[:k], 1)
        resid = pct[:k] - (intercept + slope * fin[:k])
        tot = np.sum((pct[:k] - pct[:k].mean()) ** 2)
        out.update(slope=float(slope), intercept=float(intercept),
                   r2=float(1 - np.sum(resid ** 2) / tot) if tot > 0 else 1.0)
    else:
        out.update(slope=float("nan"), intercept=float("nan"), r2=float("nan"))
    return out
