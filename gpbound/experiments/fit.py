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

__all__ = ["loglog_slope", "bootstrap_slope", "percentile_curve", "quantiles_with_inf", "l1_log_allowance",
           "EXPECTED_SLOPES", "EXPECTED_RELATIVE_SLOPE"]

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


def quantiles_with_inf(values, q) -> np.ndarray:
    r"""Quantiles along the last axis with ``+inf`` counted as a value (failures) and NaN as missing.

    The linear rule of :func:`numpy.quantile` on the sorted non-NaN values ``v_(0) <= ... <= v_(c-1)``
    of each row: ``h = (c - 1) q``, ``Q = v_(floor h) + (h - floor h) (v_(ceil h) - v_(floor h))``, except
    that ``Q = +inf`` as soon as the interpolation touches an infinite value with a positive weight (the
    conservative rule: a median that a failure could move is infinite).  Rows without values give NaN.

    Parameters
    ----------
    values : array ``(..., m)``; ``+inf`` allowed, NaN = missing, ``-inf`` allowed (sorts first).
    q : float or sequence of floats in ``[0, 1]``

    Returns
    -------
    ndarray ``(..., len(q))`` (or ``(...)`` for a scalar ``q``).
    """
    a = np.sort(np.asarray(values, dtype=np.float64), axis=-1)        # NaN sorts last, +inf just before
    qa = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if qa.ndim != 1 or np.any(~np.isfinite(qa)) or np.any(qa < 0) or np.any(qa > 1):
        raise ValueError(f"q must be a float or a 1-d sequence of floats in [0, 1], got {q!r}")
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError("values must have at least one entry along the last axis")
    c = np.sum(~np.isnan(a), axis=-1, keepdims=True)                    # (..., 1)
    h = (np.maximum(c, 1) - 1) * qa                                     # (..., k)
    lo = np.floor(h).astype(np.int64)
    hi = np.ceil(h).astype(np.int64)
    vlo = np.take_along_axis(a, lo, axis=-1)
    vhi = np.take_along_axis(a, hi, axis=-1)
    frac = h - lo
    with np.errstate(invalid="ignore"):
        mid = vlo + frac * (vhi - vlo)
    out = np.where(frac == 0, vlo, np.where(np.isposinf(vhi), np.inf, mid))
    out = np.where(c == 0, np.nan, out)
    return out[..., 0] if np.ndim(q) == 0 else out


def l1_log_allowance(ns) -> float:
    r"""Finite-size allowance of the l1 slope: the log-log slope of ``sqrt(2 ln(2n))`` over the sizes ``ns``.

    The l1 radius of the comparison certificate is ``||x0||_2 delta / (M (sqrt(2/pi) e_U + ...))`` with
    ``e_U = E ||g||_inf`` of the unit l1 ball, which grows like ``sqrt(2 ln(2n))`` (docs/theory.md §7): over
    a finite range of ``n`` the l1 distance's slope is ``1/2`` minus the slope of that factor (about 0.07
    for ``n`` of a few hundred to ten thousand).  l2 (``e_U = E||g||_2 ~ sqrt(n)``) and linf
    (``e_U = E||g||_1 = n sqrt(2/pi)``) have no such factor: allowance 0.
    """
    ns = np.asarray(ns, dtype=np.float64)
    if ns.ndim != 1 or ns.size < 2 or np.any(~np.isfinite(ns)) or np.any(ns < 1) or np.unique(ns).size < 2:
        raise ValueError(f"ns must hold at least 2 distinct finite sizes >= 1, got {ns.tolist()}")
    return float(np.polyfit(np.log(ns), 0.5 * np.log(2.0 * np.log(2.0 * ns)), 1)[0])


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
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0, failures: str = "inf"
                    ) -> Dict[str, object]:
    r"""Log-log slope of a per-``n`` statistic with a bootstrap interval over networks.

    For every ``n >= n_min``, ``groups[n]`` is a list with one array per network of the
    per-point values (e.g. attack distances; ``inf`` or NaN = attack failure). The
    statistic (median of the pooled points by default) is fitted by :func:`loglog_slope`.
    The interval resamples *networks* with replacement within each ``n`` (points of one
    network are correlated), refits, and reports the ``(1 -/+ level)/2`` percentiles.

    Parameters
    ----------
    failures : {"inf", "drop"}
        ``"inf"`` (default, the conservative rule): a failure is ``+inf`` in the statistic
        (:func:`quantiles_with_inf`); a size whose median is infinite makes the slope undefined
        (``ValueError``), and a bootstrap resample with an infinite median counts as ``-inf`` for the
        lower and ``+inf`` for the upper end of the interval (``boot_undefined`` of them).
        ``"drop"``: failures are left out.

    Returns
    -------
    dict
        ``slope``, ``intercept``, ``r2``, ``ci_low``, ``ci_high``, ``level``, ``n_boot``,
        ``n`` (the sizes used), ``stat`` (the statistic per size), ``boot_se`` (over the defined
        resamples), ``boot_undefined``, ``failures`` (count per size of ``n``).
    """
    if statistic not in ("median", "mean"):
        raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
    if failures not in ("inf", "drop"):
        raise ValueError(f"failures must be 'inf' or 'drop', got {failures!r}")
    if not (0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    sizes = sorted(float(k) for k in groups if float(k) >= n_min)
    if len(sizes) < 2:
        raise ValueError(f"need at least 2 sizes n >= n_min={n_min}, got {sizes}")
    by_n = {float(k): v for k, v in groups.items()}

    def stat_fn(a, axis=None):
        """Statistic of the non-NaN values (NaN = padding; failures are +inf or already NaN)."""
        flat = a.reshape(-1) if axis is None else a
        if statistic == "median":
            return quantiles_with_inf(flat, 0.5)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)    # all-NaN rows
            return np.nanmean(flat, axis=-1)

    arrays, n_fail = [], []
    for k in sizes:
        a = _as_groups(by_n[k])            # NaN = padding of networks with fewer points
        lengths = np.array([np.size(v) for v in by_n[k]])
        filled = np.arange(a.shape[1])[None, :] < lengths[:, None]
        bad = filled & ~np.isfinite(a)     # a failure: inf, or NaN inside a network's points
        n_fail.append(int(bad.sum()))
        a[bad] = np.inf if failures == "inf" else np.nan
        if np.all(np.isnan(a)):
            raise ValueError(f"no finite values at n = {k}")
        arrays.append(a)
    stat = np.array([stat_fn(a) for a in arrays], dtype=np.float64)
    if not np.all(np.isfinite(stat)):
        bad_n = [k for k, v in zip(sizes, stat) if not np.isfinite(v)]
        raise ValueError(f"the {statistic} is infinite at n = {bad_n} (failures counted as +inf): no slope")
    fit = loglog_slope(sizes, stat)
    rng = np.random.default_rng(seed)
    slopes = np.empty(0)
    undefined = 0
    if n_boot:
        ln = np.log(sizes)
        boot_stats = np.empty((n_boot, len(sizes)))
        for j, a in enumerate(arrays):
            idx = rng.integers(0, a.shape[0], size=(n_boot, a.shape[0]))
            res = a[idx].reshape(n_boot, -1)                   # (n_boot, networks * points)
            boot_stats[:, j] = stat_fn(res, axis=1)
        with np.errstate(all="ignore"):
            ly = np.log(boot_stats)
            lc = ln - ln.mean()
            slopes = ((ly - ly.mean(axis=1, keepdims=True)) @ lc) / (lc @ lc)
        ok = np.isfinite(slopes)
        undefined = int((~ok).sum())
        lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
        hi = float(quantiles_with_inf(np.where(ok, slopes, np.inf), hi_q))
        lo = -float(quantiles_with_inf(-np.where(ok, slopes, -np.inf), 1 - lo_q))
        slopes = slopes[ok]
    else:
        lo = hi = float("nan")
    return {**fit, "ci_low": float(lo), "ci_high": float(hi), "level": level, "n_boot": int(n_boot),
            "boot_se": float(np.std(slopes, ddof=1)) if slopes.size > 1 else float("nan"),
            "boot_undefined": undefined, "n": sizes, "stat": stat.tolist(), "statistic": statistic,
            "failures": n_fail, "failure_rule": failures}


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
