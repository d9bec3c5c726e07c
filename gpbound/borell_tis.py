r"""The Borell-TIS inequality (eq. 30) and its stable log form.

.. math::

    P\Big(\sup_{x\in\Omega} \varphi(x) \ge E \sup_{x\in\Omega} \varphi(x) + t\Big)
    \le e^{-t^2 / (2\sigma^2)}, \qquad \sigma^2 = \sup_{x\in\Omega} \hat K(x, x),\ t > 0.

References
----------
De Palma, Kiani, Lloyd, ICML 2021, eq. (30); R. J. Adler, J. E. Taylor, *Random Fields and
Geometry* (2009), Theorem 2.1.1.
"""

import numpy as np

from gpbound.covering.theorem3 import as_float_array, scalar_or_array

__all__ = ["borell_tis_tail", "borell_tis_logtail", "borell_tis_deviation"]


def _checked(t, sigma):
    t = as_float_array(t, "t")
    s = as_float_array(sigma, "sigma")
    if np.any(t < 0):
        raise ValueError(f"t must be >= 0 (the deviation above E sup), got {t!r}")
    if np.any(s <= 0):
        raise ValueError(f"sigma must be > 0 (sup of the standard deviation), got {s!r}")
    return np.broadcast_arrays(t, s)


def borell_tis_logtail(t, sigma):
    r"""Log of the Borell-TIS bound, :math:`-t^2/(2\sigma^2)` -- never underflows.

    Parameters
    ----------
    t : float or array_like
        Deviation above :math:`E\sup\varphi`, ``t >= 0``.
    sigma : float or array_like
        :math:`\sigma = \sqrt{\sup \hat K(x,x)} > 0`; broadcast against ``t``.

    Returns
    -------
    float or ndarray
        :math:`\ln P(\sup\varphi \ge E\sup\varphi + t)` upper bound (eq. 30).
    """
    t, s = _checked(t, sigma)
    return scalar_or_array(-0.5 * (t / s) ** 2)


def borell_tis_tail(t, sigma):
    r"""Borell-TIS tail bound :math:`e^{-t^2/(2\sigma^2)}` (eq. 30).

    Parameters
    ----------
    t : float or array_like
        ``t >= 0``.
    sigma : float or array_like
        ``sigma > 0``.

    Returns
    -------
    float or ndarray
        The bound (underflows to 0 for ``t/sigma`` above ~38.6; use :func:`borell_tis_logtail`).

    Examples
    --------
    >>> from gpbound.borell_tis import borell_tis_tail
    >>> round(borell_tis_tail(2.0, 1.0), 6)
    0.135335
    """
    return scalar_or_array(np.exp(np.asarray(borell_tis_logtail(t, sigma))))


def borell_tis_deviation(prob, sigma):
    r"""Quantile inverse: the ``t`` with :math:`e^{-t^2/(2\sigma^2)} = p`, i.e. :math:`t = \sigma\sqrt{-2\ln p}`.

    Parameters
    ----------
    prob : float or array_like
        Tail probability, ``0 < prob <= 1``.
    sigma : float or array_like
        ``sigma > 0``.

    Returns
    -------
    float or ndarray
        With probability at least ``1 - prob``, :math:`\sup\varphi < E\sup\varphi + t`.
    """
    p = as_float_array(prob, "prob")
    s = as_float_array(sigma, "sigma")
    if np.any((p <= 0) | (p > 1)):
        raise ValueError(f"prob must be in (0, 1], got {prob!r}")
    if np.any(s <= 0):
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    p, s = np.broadcast_arrays(p, s)
    return scalar_or_array(s * np.sqrt(-2.0 * np.log(p)))
