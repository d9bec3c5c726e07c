r"""The entropy integral of Theorem 3: :math:`\int_0^\infty \sqrt{\ln N(\varepsilon)}\,d\varepsilon`.

Three values are offered (docs/theory.md section 4):

* ``"numeric"`` -- the integral of the Theorem 3 bound, first piece by quadrature with
  the quadrature error estimate *added* (an upper bound; default for certified radii);
* ``"closed"`` -- :math:`\tilde a_n`, a rigorous closed-form upper bound;
* ``"paper"`` -- :math:`a_n` of eq. (37), *for comparison only*: its last step does not
  hold for n below about 1e8, so it is smaller than the integral it claims to bound;
* ``"maurey"`` -- the same first piece, but the middle piece computed from the covering that
  Maurey's argument actually proves for each eps (``binom(2n+k-1, k)`` averages,
  ``k = ceil(1/eps^2)``), instead of eq. (36)'s ``(2n)^{1/eps^2}``, which that argument does not
  give for non-integer ``1/eps^2``. Smaller than eq. (36)'s for n >= 6; larger for n = 2..5, where
  "numeric" uses it too, so that "numeric" is a proved bound for every n.

References
----------
De Palma, Kiani, Lloyd, ICML 2021, eq. (36)-(37).
"""

import numpy as np
from scipy import integrate, special

from .theorem3 import as_dimension, scalar_or_array

__all__ = [
    "entropy_integral", "first_piece", "middle_piece", "middle_piece_maurey", "a_n_paper", "a_n_tilde",
    "ENTROPY_METHODS",
]

ENTROPY_METHODS = ("numeric", "closed", "paper", "maurey")

#: Largest n for method="maurey" (it sums n - 1 terms).
MAUREY_MAX_N = 10**7

#: below this n, method="numeric" takes the larger of eq. (36)'s middle piece and Maurey's proved count
_GUARD_MAX_N = 64

# quad tolerances for the first piece; the returned abserr is added to the value.
_EPSABS = 1e-12
_EPSREL = 1e-12


def _first_piece_scalar(n):
    """I1(n) and quad's error estimate, by x = exp(-u) (removes the log singularity at x = 0)."""
    log_c = np.log(2.0) + 0.5 * np.log(n)  # ln(2 sqrt n)

    def integrand(u):
        # sqrt(ln(1 + 2 sqrt(n) e^u)) e^{-u}; logaddexp keeps it finite for huge n and u.
        return np.sqrt(np.logaddexp(0.0, log_c + u)) * np.exp(-u)

    value, abserr = integrate.quad(integrand, 0.0, np.inf, epsabs=_EPSABS, epsrel=_EPSREL, limit=200)
    return value, abserr


def first_piece(n, with_error=False):
    r"""First piece of the entropy integral, :math:`I_1(n)`, by quadrature.

    .. math::

        \int_0^{1/\sqrt n} \sqrt{n \ln(1 + 2/\varepsilon)}\, d\varepsilon
        = I_1(n) = \int_0^1 \sqrt{\ln(1 + 2\sqrt n / x)}\, dx
        = \int_0^\infty \sqrt{\ln(1 + 2\sqrt n\, e^u)}\, e^{-u}\, du .

    Parameters
    ----------
    n : int or array_like of int
        Dimension(s), ``n >= 1``.
    with_error : bool
        Also return quad's absolute error estimate.

    Returns
    -------
    value : float or ndarray
        The quadrature value (not yet an upper bound).
    abserr : float or ndarray
        Only if ``with_error``: the error estimate of :func:`scipy.integrate.quad`.

    Notes
    -----
    Substitution ``x = eps sqrt(n)`` (docs/theory.md section 4), then ``x = e^{-u}``, which turns
    the integrable ``sqrt(ln(1/x))`` singularity at ``x = 0`` into the smooth,
    exponentially decaying integrand above, integrated on ``[0, inf)``.
    """
    nn = as_dimension(n, "n")
    flat = nn.ravel()
    vals = np.empty_like(flat)
    errs = np.empty_like(flat)
    uniq, inverse = np.unique(flat, return_inverse=True)
    for j, m in enumerate(uniq):  # one quad per distinct n (a scalar integral each)
        v, e = _first_piece_scalar(m)
        vals[inverse == j] = v
        errs[inverse == j] = e
    vals = vals.reshape(nn.shape)
    errs = errs.reshape(nn.shape)
    if with_error:
        return scalar_or_array(vals), scalar_or_array(errs)
    return scalar_or_array(vals)


def middle_piece(n):
    r"""Middle piece of the entropy integral, exact: :math:`(\ln n / 2)\sqrt{\ln 2n}`.

    .. math::

        \int_{1/\sqrt n}^{1} \sqrt{\ln(2n)/\varepsilon^2}\, d\varepsilon
        = \sqrt{\ln 2n}\, [\ln \varepsilon]_{1/\sqrt n}^{1}
        = \frac{\ln n}{2}\sqrt{\ln 2n}.

    Parameters
    ----------
    n : int or array_like of int
        Dimension(s), ``n >= 1`` (0 at ``n = 1``, where the regime is empty).
    """
    nn = as_dimension(n, "n")
    return scalar_or_array(0.5 * np.log(nn) * np.sqrt(np.log(2.0 * nn)))


def middle_piece_maurey(n):
    r"""Middle piece from the covering Maurey's argument proves, eps in (1/sqrt n, 1).

    .. math::

        \sum_{k=2}^{n} \sqrt{\ln \tbinom{2n+k-1}{k}}\,\Big(\frac1{\sqrt{k-1}} - \frac1{\sqrt k}\Big)

    Parameters
    ----------
    n : int or array_like of int
        ``1 <= n <= 1e7`` (0 at n = 1).

    Notes
    -----
    For :math:`\varepsilon \in [1/\sqrt k, 1/\sqrt{k-1})`, :math:`k = \lceil 1/\varepsilon^2\rceil`
    and the averages of k signed vertices (multisets: :math:`\binom{2n+k-1}{k} \le (2n)^k`
    distinct points) cover the unit l1 ball at radius :math:`1/\sqrt k \le \varepsilon`
    (see :func:`gpbound.covering.maurey_cover`), so :math:`\sqrt{\ln N(\varepsilon)}` is bounded
    by a constant on each such interval; the k = 2..n intervals tile (1/sqrt n, 1).
    """
    nn = as_dimension(n, "n")
    if np.any(nn > MAUREY_MAX_N):
        raise ValueError(f"n must be <= {MAUREY_MAX_N} for the Maurey middle piece (it sums n terms), got {n!r}")
    flat = nn.ravel()
    out = np.zeros_like(flat)
    for i, m in enumerate(flat):
        if m < 2:
            continue
        k = np.arange(2.0, m + 1.0)
        lnc = special.gammaln(2 * m + k) - special.gammaln(k + 1) - special.gammaln(2 * m)
        lnc = np.minimum(lnc, k * np.log(2 * m))  # binom <= (2n)^k; guards gammaln round-off
        w = 1.0 / np.sqrt(k - 1.0) - 1.0 / np.sqrt(k)
        out[i] = float(np.sum(np.sqrt(np.maximum(lnc, 0.0)) * w))
    return scalar_or_array(out.reshape(nn.shape))


def a_n_paper(n):
    r"""The paper's closed form :math:`a_n` (eq. 37) -- for comparison only.

    .. math:: a_n = \tfrac34 \sqrt{\ln 4n} + \tfrac{\ln n}{2} \sqrt{\ln 2n}

    Parameters
    ----------
    n : int or array_like of int
        Dimension(s), ``n >= 1``.

    Notes
    -----
    The last inequality of eq. (37), :math:`I_1(n) \le \frac34\sqrt{\ln 4n}`, fails for
    every n below about 1e8 (e.g. n = 3072: 2.3821 > 2.3015), so :math:`a_n` is *not*
    an upper bound on the entropy integral for practical n. Use
    ``entropy_integral(n, "numeric")`` or :func:`a_n_tilde` for certified radii.
    """
    nn = as_dimension(n, "n")
    return scalar_or_array(0.75 * np.sqrt(np.log(4.0 * nn)) + 0.5 * np.log(nn) * np.sqrt(np.log(2.0 * nn)))


def a_n_tilde(n):
    r"""Rigorous closed-form upper bound :math:`\tilde a_n` on the entropy integral.

    .. math::

        \tilde a_n = \sqrt A + \frac{1 + 1/(4\sqrt n)}{2\sqrt A} + \frac{\ln n}{2}\sqrt{\ln 2n},
        \qquad A = \tfrac12 \ln(4n).

    Parameters
    ----------
    n : int or array_like of int
        Dimension(s), ``n >= 1``.

    Notes
    -----
    Derivation (checked): :math:`\ln(1 + 2\sqrt n/x) = A + u(x)` with
    :math:`A = \ln(2\sqrt n) = \ln(4n)/2 > 0` and :math:`u(x) = \ln(1/x + t)`,
    :math:`t = 1/(2\sqrt n)`; :math:`u \ge \ln(1+t) > 0` on (0, 1]. Concavity of the square
    root gives :math:`\sqrt{A+u} \le \sqrt A + u/(2\sqrt A)`, and
    :math:`\int_0^1 \ln(1/x + t)\,dx = 1 + \int_0^1 \ln(1 + t x)\,dx \le 1 + t/2`.
    Hence :math:`I_1(n) \le \sqrt A + (1 + 1/(4\sqrt n))/(2\sqrt A)`; add the exact middle
    piece :func:`middle_piece`.
    """
    nn = as_dimension(n, "n")
    a = 0.5 * np.log(4.0 * nn)
    first = np.sqrt(a) + (1.0 + 0.25 / np.sqrt(nn)) / (2.0 * np.sqrt(a))
    return scalar_or_array(first + 0.5 * np.log(nn) * np.sqrt(np.log(2.0 * nn)))


def entropy_integral(n, method="numeric"):
    r"""Upper bound on :math:`\int_0^\infty \sqrt{\ln N(\varepsilon)}\,d\varepsilon` for the unit l1 ball.

    Parameters
    ----------
    n : int or array_like of int
        Dimension(s), ``n >= 1``; arrays are evaluated elementwise.
    method : {"numeric", "closed", "paper", "maurey"}
        ``"numeric"``: :math:`I_1(n)` by quadrature plus its error estimate (so the value is
        an upper bound on the integral of the Theorem 3 bound) plus the exact middle piece
        :math:`(\ln n/2)\sqrt{\ln 2n}` -- for n = 2..5, where that middle piece (eq. 36 as
        printed, proved only for integer :math:`1/\varepsilon^2`) is smaller than the one of the
        covering Maurey's argument proves for every eps, the latter is used, so the value is a
        proved upper bound for every n. ``"closed"``: :math:`\tilde a_n` (:func:`a_n_tilde`).
        ``"paper"``: :math:`a_n` of eq. (37) (:func:`a_n_paper`), comparison only -- not an
        upper bound for n below about 1e8. ``"maurey"``: numeric first piece plus
        :func:`middle_piece_maurey` (n <= 1e7) -- the covering Maurey's argument proves pointwise.

    Returns
    -------
    float or ndarray
        The entropy-integral value (float64), shape of ``n``.

    Raises
    ------
    ValueError
        ``n < 1``, non-integer, NaN/inf, or an unknown ``method``.

    Notes
    -----
    Split eq. (36) at :math:`1/\sqrt n` and 1 (the integrand is 0 beyond 1):
    :math:`\int_0^\infty = I_1(n) + (\ln n/2)\sqrt{\ln 2n}`; see :func:`first_piece`,
    :func:`middle_piece`. Ordering for all n >= 1: numeric <= closed; numeric > paper for
    n <= 1e6 (docs/theory.md section 4).

    Examples
    --------
    >>> from gpbound.covering import entropy_integral
    >>> round(float(entropy_integral(3072)), 4)
    14.2406
    """
    if not isinstance(method, str) or method not in ENTROPY_METHODS:
        raise ValueError(f"method must be one of {ENTROPY_METHODS}, got {method!r}")
    if method == "closed":
        return a_n_tilde(n)
    if method == "paper":
        return a_n_paper(n)
    value, abserr = first_piece(n, with_error=True)
    if method == "maurey":
        mid = middle_piece_maurey(n)
    else:
        mid = np.asarray(middle_piece(n), dtype=np.float64)
        # eq. (36)'s middle regime (2n)^{1/eps^2} is proved only for integer 1/eps^2; the count
        # Maurey's argument proves for every eps gives a larger middle piece for n = 2..5 (and a
        # smaller one for every n >= 6). Take the larger below _GUARD_MAX_N so "numeric" stays a
        # proved upper bound for all n (a test checks eq. 36 >= Maurey for 6 <= n <= 1e6).
        nn = np.asarray(as_dimension(n, "n"))
        small = nn < _GUARD_MAX_N
        if np.any(small):
            mid = np.array(mid, dtype=np.float64, copy=True).reshape(nn.shape)
            mid[small] = np.maximum(mid[small], np.asarray(middle_piece_maurey(nn[small])))
    total = np.asarray(value) + np.asarray(abserr) + np.asarray(mid)
    # one extra relative ulp-scale margin so summation round-off cannot flip the bound
    total = total * (1.0 + 4.0 * np.finfo(np.float64).eps)
    return scalar_or_array(total)
