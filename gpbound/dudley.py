r"""Dudley's entropy bound (eq. 33) for a set given by its log covering numbers, and for l1 balls (eq. 35).

.. math::

    E \sup_{x\in\Omega} \varphi(x) \le 8\sqrt2 \int_0^\infty \sqrt{\ln N(\varepsilon)}\, d\varepsilon
    \qquad\text{(eq. 33)}

with :math:`N(\varepsilon)` the covering number of :math:`\Omega` in the RKHS distance
:math:`\hat d` of the (conditioned) process.

References
----------
De Palma, Kiani, Lloyd, ICML 2021, eq. (33)-(35); P. Bartlett, lecture notes (2013).
"""

import math

import numpy as np
from scipy import integrate

from gpbound.covering import entropy_integral
from gpbound.covering.entropy import ENTROPY_METHODS
from gpbound.covering.theorem3 import as_dimension, as_float_array, scalar_or_array

__all__ = ["dudley_bound", "dudley_l1_ball", "DUDLEY_CONSTANT"]

#: The constant of Dudley's theorem as used in the paper (eq. 33).
DUDLEY_CONSTANT = 8.0 * math.sqrt(2.0)


def dudley_bound(log_covering, upper, scale=1.0, breakpoints=(), with_error=False):
    r"""Dudley's bound :math:`8\sqrt2\,s\int_0^{U} \sqrt{\ln N(\varepsilon)}\,d\varepsilon` by quadrature.

    Parameters
    ----------
    log_covering : callable
        ``log_covering(eps) -> ln N(eps)`` (>= 0) for a scalar ``eps > 0``.
    upper : float
        ``U`` > 0 with :math:`\ln N(\varepsilon) = 0` for :math:`\varepsilon \ge U` (e.g. the
        diameter of the set); the integral stops there.
    scale : float
        ``s`` > 0: the bound for the set scaled by ``s`` (covering numbers
        :math:`N(\varepsilon / s)`), i.e. :math:`s` times the integral of the unscaled one.
    breakpoints : sequence of float
        Kinks of ``log_covering`` in (0, U) (quad is run piecewise between them).
    with_error : bool
        Also return the quadrature error estimate (already included in the value).

    Returns
    -------
    float
        Upper bound on :math:`E\sup\varphi` (the quadrature error estimate is *added*).

    Raises
    ------
    TypeError, ValueError
        Non-callable ``log_covering``, ``upper``/``scale`` not finite and > 0, breakpoints
        outside (0, U), or ``log_covering`` returning a negative or non-finite value.

    Notes
    -----
    The first piece :math:`[0, b_1]` is integrated after :math:`\varepsilon = b_1 e^{-u}`, which
    removes the typical :math:`\sqrt{\ln(1/\varepsilon)}` singularity at 0.
    """
    if not callable(log_covering):
        raise TypeError(f"log_covering must be callable eps -> ln N(eps), got {type(log_covering).__name__}")
    ua, sa = as_float_array(upper, "upper"), as_float_array(scale, "scale")
    for name, arr in (("upper", ua), ("scale", sa)):
        if np.ndim(arr) != 0:
            raise TypeError(f"{name} must be a scalar, got an array of shape {np.shape(arr)}")
    u, s = float(ua), float(sa)
    if u <= 0:
        raise ValueError(f"upper must be > 0, got {upper!r}")
    if s <= 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    bps = sorted(float(b) for b in as_float_array(list(breakpoints), "breakpoints").ravel())
    if any(b <= 0 or b >= u for b in bps):
        raise ValueError(f"breakpoints must lie in (0, upper={u}), got {breakpoints!r}")
    edges = bps + [u]

    def f(eps):
        v = float(log_covering(eps))
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"log_covering({eps}) must be finite and >= 0, got {v!r}")
        return math.sqrt(v)

    b1 = edges[0]

    def g(t):
        eps = b1 * math.exp(-t)
        return 0.0 if eps == 0.0 else f(eps) * eps  # eps underflowed: the weight e^{-t} is 0 anyway

    val, err = integrate.quad(g, 0.0, np.inf, limit=200)
    for lo, hi in zip(edges[:-1], edges[1:]):
        v, e = integrate.quad(f, lo, hi, limit=200)
        val, err = val + v, err + e
    out = DUDLEY_CONSTANT * s * (val + err)
    return (out, DUDLEY_CONSTANT * s * err) if with_error else out


def dudley_l1_ball(n, r=1.0, MC=1.0, entropy="numeric"):
    r"""Dudley's bound on :math:`E\sup` over an l1 ball of radius r (eq. 35).

    .. math::

        \varphi_r \le 8\sqrt2\, M C r \int_0^\infty \sqrt{\ln N_1(\varepsilon)}\, d\varepsilon

    Parameters
    ----------
    n : int or array_like of int
        Dimension(s), ``n >= 1``.
    r : float or array_like
        l1 radius, ``r > 0``.
    MC : float or array_like
        The product ``M * C`` of hypothesis (8), ``> 0`` (1 for the linear kernel).
    entropy : {"numeric", "closed", "paper", "maurey"}
        Which entropy-integral value (:func:`gpbound.covering.entropy_integral`); ``"paper"``
        is not an upper bound for practical n.

    Returns
    -------
    float or ndarray
        Broadcast over ``n``, ``r``, ``MC``.

    Notes
    -----
    Lemma 1 (:math:`\hat d \le d`) and (8) give :math:`\hat d(x, y) \le M C\|x - y\|_2`, so a
    Euclidean :math:`\varepsilon/(MCr)`-cover of the unit l1 ball, scaled by r and shifted to
    :math:`x_0`, is an :math:`\varepsilon`-cover of :math:`B^1_r(x_0)` in :math:`\hat d`:
    :math:`N_r(\varepsilon) \le N_1(\varepsilon/(MCr))`; substitute in eq. (33).
    For the linear kernel :math:`K(x,y) = x\cdot y` and r = 1 this bounds
    :math:`E\max_i |g_i|`, :math:`g \sim N(0, I_n)`.
    """
    if not isinstance(entropy, str) or entropy not in ENTROPY_METHODS:
        raise ValueError(f"entropy must be one of {ENTROPY_METHODS}, got {entropy!r}")
    nn = as_dimension(n, "n")
    rr = as_float_array(r, "r")
    mc = as_float_array(MC, "MC")
    if np.any(rr <= 0):
        raise ValueError(f"r must be > 0, got {r!r}")
    if np.any(mc <= 0):
        raise ValueError(f"MC must be > 0, got {MC!r}")
    a = np.asarray(entropy_integral(nn, method=entropy))
    return scalar_or_array(DUDLEY_CONSTANT * mc * rr * a)
