r"""Gaussian widths of the unit sets the certificates use, as rigorous upper bounds.

The Sudakov--Fernique step of the sharp certificates (``docs/theory.md`` §7, :mod:`gpbound.radii`)
needs, for the unit set :math:`U` of the perturbation (so that the ball is :math:`x_0 + rU`),

.. math::

    e_U = E\sup_{h\in U}\langle g, h\rangle, \qquad s_U = \sup_{h\in U}\|h\|_2,
    \qquad g \sim N(0, I_n).

For the unit :math:`\ell_p` ball, :math:`\sup_{\|h\|_p\le1}\langle g,h\rangle = \|g\|_q` with
:math:`1/p + 1/q = 1` (Hölder, attained), so :math:`e = E\|g\|_q`, and
:math:`s = \max(1, n^{1/2-1/p})`. For the segment :math:`\{tv: 0\le t\le 1\}`, :math:`\|v\|_2 = 1`:
:math:`e = E\max(0, \langle g, v\rangle) = 1/\sqrt{2\pi}` and :math:`s = 1`.

Only *upper* bounds of :math:`e` are ever returned (a larger width gives a smaller, still valid
radius). How each is obtained, and its error:

* :math:`q = \infty` (``p = 1``): :math:`E\|g\|_\infty = \int_0^\infty 1 - (2\Phi(t) - 1)^n\,dt`
  (the tail formula :math:`EX = \int_0^\infty P(X > t)dt`). The integrand decreases in t, so the
  left Riemann sum on a grid of step h over [0, T] is an upper bound of the integral over [0, T],
  exceeding it by at most :math:`h` (telescoping: left minus right sum is
  :math:`h(f(0) - f(T)) \le h`); the tail is bounded by the union bound
  :math:`1 - (1 - 2\bar\Phi(t))^n \le 2n\bar\Phi(t)`, whose integral is
  :math:`2n(\varphi(T) - T\bar\Phi(T))` in closed form. A relative margin of ``1e4 * eps`` covers
  round-off. Error (overestimate) at most ``h = 1e-4`` plus the tail term (< 1e-12).
* :math:`q = 2` (``p = 2``): :math:`E\|g\|_2 = \sqrt2\,\Gamma(\tfrac{n+1}2)/\Gamma(\tfrac n2)`
  (chi distribution), evaluated with :func:`scipy.special.poch`, times :math:`1 + 10^6\epsilon`
  (``poch`` loses up to ~1e4 ulp near n = 1e4);
  never above :math:`\sqrt n` (Jensen).
* :math:`q = 1` (``p = inf``): :math:`E\|g\|_1 = n\sqrt{2/\pi}` exactly (times :math:`1+10^4\epsilon`).
* other q: the smallest of three proved bounds: Jensen,
  :math:`E\|g\|_q \le (E\|g\|_q^q)^{1/q} = n^{1/q}(2^{q/2}\Gamma(\tfrac{q+1}2)/\sqrt\pi)^{1/q}`;
  :math:`\|g\|_q \le n^{1/q}\|g\|_\infty`; and :math:`\|g\|_q \le n^{\max(0, 1/q - 1/2)}\|g\|_2`.

No Monte Carlo enters any value.
"""
from __future__ import annotations

from functools import lru_cache
import math

import numpy as np
from scipy import special

__all__ = ["gaussian_width", "unit_l2_radius", "dual_exponent", "expected_max_abs_gaussian_upper", "SEGMENT"]

#: the unit set name of the segment {t v : 0 <= t <= 1}
SEGMENT = "segment"
_EPS = float(np.finfo(np.float64).eps)
_MARGIN = 1e4 * _EPS  # relative round-off margin on every returned width
_STEP = 1e-4          # grid step of the l1 (q = inf) Riemann sum; the overestimate is at most this


def dual_exponent(p: float) -> float:
    """The dual exponent q of p (1/p + 1/q = 1): ``inf`` for p = 1, 1 for p = inf."""
    if p == 1:
        return math.inf
    if math.isinf(p):
        return 1.0
    return p / (p - 1.0)


@lru_cache(maxsize=4096)
def expected_max_abs_gaussian_upper(n: int) -> float:
    r"""Rigorous upper bound of :math:`E\max_{i\le n}|g_i|`, overestimating by at most ``1e-4``.

    Left Riemann sum of the decreasing integrand :math:`1 - (2\Phi(t)-1)^n` over [0, T] plus the
    closed-form union-bound tail beyond T (see the module docstring).
    """
    n = int(n)
    # T: beyond it the union-bound tail 2n(phi(T) - T Phibar(T)) <= 2n phi(T)/T^2 is < 1e-13
    T = math.sqrt(2.0 * math.log(2.0 * n)) + 8.0
    t = np.arange(0.0, T, _STEP)
    # 1 - erf(t/sqrt2)^n, accurate for small and large values: -expm1(n log erf(t/sqrt2))
    with np.errstate(divide="ignore"):
        f = -np.expm1(n * np.log(special.erf(t / math.sqrt(2.0))))
    f[0] = 1.0
    left = float(np.sum(f)) * _STEP
    Tend = t[-1] + _STEP
    tail = 2.0 * n * (math.exp(-0.5 * Tend * Tend) / math.sqrt(2.0 * math.pi) - Tend * special.ndtr(-Tend))
    return (left + max(tail, 0.0)) * (1.0 + _MARGIN)


@lru_cache(maxsize=4096)
def _chi_mean_upper(n: int) -> float:
    """Upper bound of E||g||_2 = sqrt(2) Gamma((n+1)/2) / Gamma(n/2), n >= 1."""
    # poch loses up to ~1e4 ulp for n ~ 1e4 (measured against mpmath at 40 digits): a 1e6-ulp margin
    v = math.sqrt(2.0) * float(special.poch(n / 2.0, 0.5)) * (1.0 + 1e2 * _MARGIN)
    return min(v, math.sqrt(n))


def _abs_moment(q: float) -> float:
    """E|g|^q = 2^{q/2} Gamma((q+1)/2) / sqrt(pi), as exp of log-gammas."""
    return math.exp(0.5 * q * math.log(2.0) + special.gammaln((q + 1.0) / 2.0) - 0.5 * math.log(math.pi))


@lru_cache(maxsize=4096)
def _lq_mean_upper(q: float, n: int) -> float:
    if math.isinf(q):
        return expected_max_abs_gaussian_upper(n)
    if q == 1.0:
        return n * math.sqrt(2.0 / math.pi) * (1.0 + _MARGIN)
    if q == 2.0:
        return _chi_mean_upper(n)
    jensen = math.exp((math.log(n) + math.log(_abs_moment(q))) / q) * (1.0 + 1e2 * _MARGIN)
    via_inf = n ** (1.0 / q) * expected_max_abs_gaussian_upper(n) * (1.0 + _MARGIN)
    via_2 = n ** max(0.0, 1.0 / q - 0.5) * _chi_mean_upper(n) * (1.0 + _MARGIN)
    return min(jensen, via_inf, via_2)


def gaussian_width(p, n: int) -> float:
    r"""Upper bound of the Gaussian width :math:`e_U = E\sup_{h\in U}\langle g, h\rangle`.

    Parameters
    ----------
    p : float or "segment"
        ``p >= 1`` (``math.inf`` allowed) for the unit :math:`\ell_p` ball (width
        :math:`E\|g\|_q`), or ``"segment"`` (width :math:`1/\sqrt{2\pi}`). Not validated here:
        the public radius functions of :mod:`gpbound.radii` validate ``p`` once.
    n : int
        Dimension, ``n >= 1``.

    Returns
    -------
    float
        A proved upper bound (module docstring: how and with what error).

    Examples
    --------
    >>> import math
    >>> from gpbound.gaussian_width import gaussian_width
    >>> round(gaussian_width(math.inf, 4), 6)   # E||g||_1 = 4 sqrt(2/pi)
    3.191538
    """
    if p == SEGMENT:
        return (1.0 / math.sqrt(2.0 * math.pi)) * (1.0 + _MARGIN)
    return _lq_mean_upper(dual_exponent(float(p)), int(n))


def unit_l2_radius(p, n: int) -> float:
    r""":math:`s_U = \sup_{h\in U}\|h\|_2`: 1 for ``p <= 2`` and the segment, :math:`n^{1/2-1/p}` for ``p > 2``."""
    if p == SEGMENT or float(p) <= 2.0:
        return 1.0
    expo = 0.5 if math.isinf(p) else 0.5 - 1.0 / float(p)
    return float(n) ** expo
