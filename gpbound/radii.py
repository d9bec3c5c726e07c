r"""Certified radii: Theorem 1 (l1 ball, segment), Corollary 1 and Remark 5 (lp balls).

Derivation of the tight l1-ball radius (checked against the proof chain of section 3.1)
--------------------------------------------------------------------------------------
Hypothesis (8): :math:`\sqrt{K(x,x)} \ge C\|x\|_2`, :math:`d(x,y) \le MC\|x-y\|_2`. On the open
ball :math:`B = B^1_r(x_0)`, :math:`\|x - x_0\|_2 \le \|x - x_0\|_1 < r`. Write
:math:`K_{00} = K(x_0, x_0)`, :math:`\rho = MCr/\sqrt{K_{00}}`.

1. Lemma 2: :math:`K_r = \inf_B K(x,x_0)/K_{00} \ge 1 - d(x,x_0)/\sqrt{K_{00}} \ge 1 - \rho`
   (Cauchy-Schwarz on :math:`(\Phi(x)-\Phi(x_0))\cdot\Phi(x_0)`). Lemma 3:
   :math:`\sigma_r^2 = \sup_B \hat K(x,x) \le d(x,x_0)^2 \le (MCr)^2`.
2. Dudley + Lemma 1 (eq. 35): :math:`\varphi_r = E\sup_B \phi \le 8\sqrt2\,MCr\,a`,
   :math:`a = \int_0^\infty\sqrt{\ln N_1(\varepsilon)}d\varepsilon` (:func:`gpbound.covering.entropy_integral`).
3. Eq. (31)-(32): for :math:`\varphi_0 > \varphi_r/K_r`, Borell-TIS with
   :math:`t = K_r\varphi_0 - \varphi_r` gives :math:`p_r(\varphi_0) \le e^{-t^2/2\sigma_r^2}`;
   otherwise :math:`p_r(\varphi_0) \le 1`. Integrating against the density of
   :math:`\phi(x_0) \sim N(0, K_{00})` (both signs):
   :math:`2\int_0^{\varphi_r/K_r} \le \sqrt{2/\pi}\,\varphi_r/(K_r\sqrt{K_{00}})` and
   :math:`2\int_{\varphi_r/K_r}^\infty \le \frac{2}{\sqrt{2\pi K_{00}}}\sqrt{\pi/2}\,\sigma_r/K_r
   = \sigma_r/(K_r\sqrt{K_{00}})`. So
   :math:`p_r \le (\sqrt{2/\pi}\,\varphi_r + \sigma_r)/(K_r\sqrt{K_{00}})` -- note the
   coefficient of :math:`\sigma_r` is 1, not :math:`\sqrt{2/\pi}` (a transcription of
   eq. 32 as :math:`\sqrt{2/\pi}(\varphi_r + \sigma_r)` would give the smaller, unproved
   :math:`+\sqrt{2/\pi}` in eq. 39; the paper's eq. 39 has +1, consistent with this derivation).
4. With steps 1-2, and :math:`8\sqrt2\cdot\sqrt{2/\pi} = 16/\sqrt\pi` (exact):
   :math:`p_r \le \frac{MCr(16a/\sqrt\pi + 1)}{\sqrt{K_{00}} - MCr}
   = \frac{16a/\sqrt\pi + 1}{\sqrt{K_{00}}/(MCr) - 1} \le \frac{16a/\sqrt\pi + 1}{\|x_0\|_2/(Mr) - 1}`
   (eq. 39), the last step by :math:`\sqrt{K_{00}} \ge C\|x_0\|_2`, valid when
   :math:`Mr < \|x_0\|_2` (then :math:`K_r > 0`). For :math:`Mr \ge \|x_0\|_2` the bound is vacuous (1).
5. Setting the right side of (39) to :math:`\delta` and solving:
   :math:`Mr/\|x_0\|_2 = \delta/(16a/\sqrt\pi + 1 + \delta)` (eq. 40) -- the tight radius.
6. The printed eq. (10) uses the paper's :math:`a_n`, :math:`16a_n = 12\sqrt{\ln 4n} + 8\ln n\sqrt{\ln 2n}`,
   and the cruder :math:`\sqrt\pi(1 + \delta) \le 2\sqrt\pi`; it is offered for comparison only
   (:math:`a_n` is not an upper bound for n below ~1e8).

The comparison (Sudakov--Fernique) radii -- gpbound's default
----------------------------------------------------------------
Same hypotheses, same chain, with step 2 replaced (full proof: ``docs/theory.md`` §7). Let
:math:`B = x_0 + rU` with :math:`U` the unit :math:`\ell_p` ball or the unit segment
:math:`\{tv: 0\le t\le 1\}`; :math:`e_U = E\sup_U\langle g,h\rangle`, :math:`s_U = \sup_U\|h\|_2`
(:mod:`gpbound.gaussian_width`).

2'. The conditioned process :math:`\varphi` is centred with increments
    :math:`\hat d(x,y) \le d(x,y) \le MC\|x-y\|_2` (Lemma 1, eq. 8); :math:`Y_x = MC\langle g, x-x_0\rangle`
    is centred with increments exactly :math:`MC\|x-y\|_2`. Sudakov--Fernique (increments only, no
    variance condition; on a countable dense subset of B, which carries the supremum of the
    continuous paths) gives :math:`\varphi_r = E\sup_B\varphi \le E\sup_B Y = MCr\,e_U`.
1'. On B, :math:`\|x - x_0\|_2 \le r s_U`: :math:`K_r \ge 1 - MCrs_U/\sqrt{K_{00}}`,
    :math:`\sigma_r \le MCrs_U`.
3'. Eq. (32) as in step 3: :math:`p_r \le \frac{\sqrt{2/\pi}\,e_U + s_U}{\|x_0\|_2/(Mr) - s_U}`, so
    :math:`Mr/\|x_0\|_2 = \delta/(\sqrt{2/\pi}\,e_U + s_U(1+\delta))`.

The *instance* form keeps :math:`\sqrt{K_{00}}` (one kernel evaluation) and a feature-map Lipschitz
constant :math:`L \ge \sup d(x,y)/\|x-y\|_2` (:mod:`gpbound.lipschitz`) in place of :math:`C\|x_0\|_2`
and :math:`MC`: :math:`r = \sqrt{K_{00}}\,\delta / (L(\sqrt{2/\pi}\,e_U + s_U(1+\delta)))`.

References
----------
De Palma, Kiani, Lloyd, ICML 2021: Theorem 1 (eq. 10, 12), eq. (25)-(40), Theorem 2 (eq. 14),
Corollary 1 (eq. 16, 18), Remark 5 (eq. 22-24). Sudakov--Fernique: e.g. Adler & Taylor, *Random
Fields and Geometry* (2007), Theorem 2.2.3.
"""

from dataclasses import dataclass
import math

import numpy as np
import torch

from gpbound.covering import entropy_integral
from gpbound.covering.entropy import ENTROPY_METHODS
from gpbound.covering.theorem3 import as_dimension, as_float_array
from gpbound.gaussian_width import SEGMENT, gaussian_width, unit_l2_radius

__all__ = [
    "l1_ball_radius",
    "l1_ball_radius_eq10",
    "segment_radius",
    "failure_probability",
    "segment_failure_probability",
    "corollary1",
    "Corollary1Result",
    "lp_radius",
    "relative_lp_radius",
    "SEGMENT_FORMS",
    "METHODS",
    "comparison_radius",
    "comparison_failure_probability",
    "comparison_segment_radius",
    "comparison_segment_failure_probability",
    "instance_radius",
    "instance_failure_probability",
    "EQ32",
]

#: certificate routes: ``"comparison"`` (Sudakov--Fernique, default) and ``"dudley"`` (the paper's)
METHODS = ("comparison", "dudley")

SEGMENT_FORMS = ("derived", "eq12")
_SQRT_PI = math.sqrt(math.pi)


# ---------------------------------------------------------------------------------------------
# validation / output helpers
def _is_torch(*xs):
    return next((x for x in xs if isinstance(x, torch.Tensor)), None)


def _out(arr, like):
    """float for 0-d, ndarray otherwise; a float64 tensor on ``like``'s device if ``like`` is a tensor."""
    arr = np.asarray(arr, dtype=np.float64)
    if like is not None:
        return torch.as_tensor(arr, dtype=torch.float64, device=like.device)
    return float(arr) if arr.ndim == 0 else arr


def _delta(delta):
    d = as_float_array(delta, "delta")
    if np.any((d <= 0) | (d >= 1)):
        raise ValueError(f"delta must be in the open interval (0, 1), got {delta!r}")
    return d


def _pos(v, name):
    a = as_float_array(v, name)
    if np.any(a <= 0):
        raise ValueError(f"{name} must be > 0, got {v!r}")
    return a


def _M(M):
    m = as_float_array(M, "M")
    if np.any(m < 1):
        raise ValueError(
            f"M must be >= 1 (hypothesis (8) on all of R^n forces M >= 1: take y = 0 and |x| -> inf), got {M!r}"
        )
    return m


def _entropy(n, entropy):
    if not isinstance(entropy, str) or entropy not in ENTROPY_METHODS:
        raise ValueError(f"entropy must be one of {ENTROPY_METHODS}, got {entropy!r}")
    return np.asarray(entropy_integral(as_dimension(n, "n"), method=entropy))


def _b(n, entropy):
    """16 a / sqrt(pi) + 1 -- the numerator of eq. (39)."""
    return 16.0 * _entropy(n, entropy) / _SQRT_PI + 1.0


# ---------------------------------------------------------------------------------------------
# Theorem 1, part I
def l1_ball_radius(x0_norm, delta, n, M, entropy="numeric"):
    r"""Theorem 1 (tight form, eq. 39-40): the l1 radius r with :math:`P(\exists x\in B^1_r: \varphi(x)=0) \le \delta`.

    .. math:: r = \frac{\|x_0\|_2}{M}\,\frac{\delta}{16a/\sqrt\pi + 1 + \delta}

    Parameters
    ----------
    x0_norm : float, array_like or tensor
        :math:`\|x_0\|_2 > 0` (a batch of norms allowed).
    delta : float, array_like or tensor
        Failure probability in (0, 1).
    n : int or array_like of int
        Input dimension, ``n >= 1``.
    M : float or array_like
        Hypothesis (8) constant, ``M >= 1``.
    entropy : {"numeric", "closed", "paper", "maurey"}
        Entropy-integral value ``a`` (default: the numeric upper bound).

    Returns
    -------
    float, ndarray or tensor
        Broadcast over all arguments (use ``delta[:, None]`` for a grid). A float64 tensor if
        ``x0_norm`` or ``delta`` is a tensor.

    Raises
    ------
    ValueError
        ``x0_norm <= 0``, ``delta`` not in (0, 1), ``n < 1``, ``M < 1``, NaN/inf, unknown entropy.

    Notes
    -----
    See the module docstring for the derivation. Plugging this r into
    :func:`failure_probability` returns ``delta`` (eq. 39 with equality).
    """
    like = _is_torch(x0_norm, delta)
    x = _pos(x0_norm, "x0_norm")
    d = _delta(delta)
    m = _M(M)
    b = _b(n, entropy)
    return _out(x / m * d / (b + d), like)


def l1_ball_radius_eq10(x0_norm, delta, n, M):
    r"""Theorem 1 radius as printed in eq. (10) -- *comparison only*.

    .. math:: r = \frac{\|x_0\|_2\,\delta\sqrt\pi}{M(12\sqrt{\ln 4n} + 8\ln n\sqrt{\ln 2n} + 2\sqrt\pi)}

    Uses the paper's :math:`a_n` (eq. 37, not an upper bound on the entropy integral for n below
    about 1e8) and the cruder :math:`1+\delta \le 2`. Parameters as :func:`l1_ball_radius`.
    """
    like = _is_torch(x0_norm, delta)
    x = _pos(x0_norm, "x0_norm")
    d = _delta(delta)
    m = _M(M)
    nn = as_dimension(n, "n")
    den = 12.0 * np.sqrt(np.log(4 * nn)) + 8.0 * np.log(nn) * np.sqrt(np.log(2 * nn)) + 2.0 * _SQRT_PI
    return _out(x * d * _SQRT_PI / (m * den), like)


def failure_probability(r, x0_norm, n, M, entropy="numeric"):
    r"""Eq. (39): upper bound on :math:`P(\exists x \in B^1_r(x_0): \varphi(x) = 0)`.

    .. math:: p_r \le \min\Big(1, \frac{16a/\sqrt\pi + 1}{\|x_0\|_2/(Mr) - 1}\Big)

    Parameters
    ----------
    r : float, array_like or tensor
        l1 radius, ``r > 0``.
    x0_norm, n, M, entropy
        As :func:`l1_ball_radius`.

    Returns
    -------
    float, ndarray or tensor
        The bound; 1 where it is vacuous (:math:`Mr \ge \|x_0\|_2`, or the ratio exceeds 1).
        The ``min(1, .)`` is the meaning of a probability bound, not clipping of the input.
    """
    like = _is_torch(r, x0_norm)
    rr = _pos(r, "r")
    x = _pos(x0_norm, "x0_norm")
    m = _M(M)
    b = _b(n, entropy)
    q = x / (m * rr)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(q > 1.0, b / np.where(q > 1.0, q - 1.0, 1.0), 1.0)
    return _out(np.minimum(p, 1.0), like)


# ---------------------------------------------------------------------------------------------
# Theorem 1, part II (segments)
def segment_radius(x0_norm, delta, M, form="derived"):
    r"""Theorem 1 part II: length r of a segment :math:`\{x_0 + tv: 0\le t\le r\}` free of zeros w.p. >= 1 - delta.

    Parameters
    ----------
    x0_norm : float, array_like or tensor
        :math:`\|x_0\|_2 > 0`.
    delta : float, array_like or tensor
        In (0, 1).
    M : float or array_like
        ``M >= 1``.
    form : {"derived", "eq12"}
        ``"derived"`` (default, proved below):
        :math:`r = \pi\|x_0\|_2\delta / (M(\pi + 2 + \pi\delta))`.
        ``"eq12"``: the paper's printed :math:`r = \pi\|x_0\|_2\delta/(2M + \pi)` (eq. 12),
        whose proof (supplement) was not available to re-derive; comparison only.

    Returns
    -------
    float, ndarray or tensor

    Notes
    -----
    Derivation of the ``"derived"`` form. Same chain as part I (module docstring) on the
    segment :math:`L_r` (:math:`\|x - x_0\|_2 \le r`), except for :math:`\varphi_r`: the
    conditioned process vanishes at :math:`x_0` (:math:`\hat K(x_0,x_0) = 0`), and for any
    :math:`0 = t_0 < \dots < t_k \le r`,
    :math:`\max_j \phi(t_j) \le \sum_i |\phi(t_{i+1}) - \phi(t_i)|`, whose mean is
    :math:`\sqrt{2/\pi}\sum_i \hat d(t_i, t_{i+1}) \le \sqrt{2/\pi}\,MCr`; by separability
    :math:`\varphi_r \le \sqrt{2/\pi}\,MCr` (no Dudley constant in one dimension). Then
    :math:`p_r \le (\tfrac2\pi MCr + MCr)/(\sqrt{K_{00}} - MCr) \le (1 + 2/\pi)/(\|x_0\|_2/(Mr) - 1)`;
    setting it to :math:`\delta`: :math:`Mr/\|x_0\|_2 = \delta/(1 + 2/\pi + \delta)`.
    For M >= 1 this is never larger than eq. (12) (equivalent to :math:`M(1+\delta) \ge 1`);
    at M = 1 and :math:`\delta \to 0` the two agree to first order.
    """
    if not isinstance(form, str) or form not in SEGMENT_FORMS:
        raise ValueError(f"form must be one of {SEGMENT_FORMS}, got {form!r}")
    like = _is_torch(x0_norm, delta)
    x = _pos(x0_norm, "x0_norm")
    d = _delta(delta)
    m = _M(M)
    if form == "eq12":
        return _out(math.pi * x * d / (2.0 * m + math.pi), like)
    return _out(math.pi * x * d / (m * (math.pi + 2.0 + math.pi * d)), like)


def segment_failure_probability(r, x0_norm, M):
    r"""Bound on :math:`P(\exists x \in L_r: \varphi(x) = 0)` for a segment (derived form, see :func:`segment_radius`).

    .. math:: p \le \min\Big(1, \frac{1 + 2/\pi}{\|x_0\|_2/(Mr) - 1}\Big)
    """
    like = _is_torch(r, x0_norm)
    rr = _pos(r, "r")
    x = _pos(x0_norm, "x0_norm")
    m = _M(M)
    q = x / (m * rr)
    b = 1.0 + 2.0 / math.pi
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(q > 1.0, b / np.where(q > 1.0, q - 1.0, 1.0), 1.0)
    return _out(np.minimum(p, 1.0), like)



# ---------------------------------------------------------------------------------------------
# Sudakov--Fernique (comparison) radii: the default certificates
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _method(method):
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method


def _widths(p, n):
    """(e_U, s_U) broadcast over the dimension(s) ``n`` (validated; p already parsed)."""
    nn = np.asarray(as_dimension(n, "n"))
    flat = nn.reshape(-1)
    uniq = {int(v): (gaussian_width(p, int(v)), unit_l2_radius(p, int(v))) for v in np.unique(flat)}
    e = np.array([uniq[int(v)][0] for v in flat]).reshape(nn.shape)
    sb = np.array([uniq[int(v)][1] for v in flat]).reshape(nn.shape)
    return e, sb


def _ratio(d, e, sb):
    """M r / ||x0||_2 = delta / (sqrt(2/pi) e + s (1 + delta))."""
    return d / (_SQRT_2_OVER_PI * e + sb * (1.0 + d))


def _prob(q, e, sb):
    """min(1, (sqrt(2/pi) e + s) / (q - s)) with q = ||x0||_2/(M r); 1 where q <= s (vacuous)."""
    num = _SQRT_2_OVER_PI * e + sb
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = np.where(q > sb, num / np.where(q > sb, q - sb, 1.0), 1.0)
    return np.minimum(pr, 1.0)


EQ32 = ("bound", "exact")


def _eq32(eq32):
    if not isinstance(eq32, str) or eq32 not in EQ32:
        raise ValueError(f"eq32 must be one of {EQ32}, got {eq32!r}")
    return eq32


def _prob_exact(rho, e, sb):
    r"""Eq. (32) integrated exactly, at :math:`\rho = Mr/\|x_0\|_2` (or :math:`Lr/\sqrt{K_{00}}`).

    With :math:`a = \rho e/(1-\rho s)`, :math:`b = \rho s/(1-\rho s)` (units of :math:`\sqrt{K_{00}}`),
    :math:`p = 2\int_0^\infty\varphi(z)\min(1, e^{-(z-a)_+^2/(2b^2)})dz
    = (2\Phi(a) - 1) + \frac{2b}{\sqrt{1+b^2}} e^{-a^2/(2(1+b^2))}\,\bar\Phi(ab/\sqrt{1+b^2})`
    (completing the square). Increasing in a and b, hence in rho; 1 where :math:`\rho s \ge 1`.
    """
    from scipy import special

    rho, e, sb = np.broadcast_arrays(np.asarray(rho, float), np.asarray(e, float), np.asarray(sb, float))
    ok = rho * sb < 1.0
    den = np.where(ok, 1.0 - rho * sb, 1.0)
    a, b = rho * e / den, rho * sb / den
    q = np.sqrt(1.0 + b * b)
    pr = special.erf(a / math.sqrt(2.0)) + 2.0 * b / q * np.exp(-a * a / (2.0 * q * q)) * special.ndtr(-a * b / q)
    return np.where(ok, np.minimum(pr, 1.0), 1.0)


def _ratio_exact(d, e, sb):
    """The largest rho with _prob_exact(rho) <= delta (brentq per element; at least the closed-form ratio)."""
    from scipy import optimize

    d, e, sb = np.broadcast_arrays(np.asarray(d, float), np.asarray(e, float), np.asarray(sb, float))
    roots = {}
    for key in set(zip(d.ravel().tolist(), e.ravel().tolist(), sb.ravel().tolist())):  # unique (delta, e, s) only
        dk, ek, sk = key
        lo = float(_ratio(dk, ek, sk))  # the closed form is a valid (smaller) rho
        f = lambda x: float(_prob_exact(x, ek, sk)) - dk  # noqa: E731
        roots[key] = lo if f(lo) >= 0 else optimize.brentq(f, lo, (1.0 - 1e-15) / sk, xtol=1e-15, rtol=1e-14)
    out = np.array([roots[k] for k in zip(d.ravel().tolist(), e.ravel().tolist(), sb.ravel().tolist())],
                   dtype=float).reshape(d.shape)
    # never above the root: step back by the solver's tolerance
    return out * (1.0 - 1e-12)


def _ratio_m(d, e, sb, eq32):
    return _ratio(d, e, sb) if _eq32(eq32) == "bound" else _ratio_exact(d, e, sb)


def _prob_m(q, e, sb, eq32):
    """Bound at q = ||x0||/(M r) (or sqrt(K00)/(L r))."""
    if _eq32(eq32) == "bound":
        return _prob(q, e, sb)
    with np.errstate(divide="ignore"):
        return _prob_exact(1.0 / np.asarray(q, float), e, sb)


def comparison_radius(x0_norm, delta, n, M, p=1, eq32="bound"):
    r"""Sudakov--Fernique radius of the :math:`\ell_p` ball (gpbound's default certificate).

    .. math:: r = \frac{\|x_0\|_2}{M}\,\frac{\delta}{\sqrt{2/\pi}\,E\|g\|_q + s_p(1+\delta)},
              \qquad s_p = \max(1, n^{1/2-1/p}),\ 1/p + 1/q = 1

    With probability at least :math:`1-\delta` over the GP (the random network), no input within
    :math:`\ell_p` distance r of :math:`x_0` changes the label. Derivation: module docstring, steps
    1'-3' (eq. 25-32 of the paper with Dudley's eq. 33-35 replaced by Sudakov--Fernique).

    Parameters
    ----------
    x0_norm : float, array_like or tensor
        :math:`\|x_0\|_2 > 0`.
    delta : float, array_like or tensor
        Failure probability in (0, 1).
    n : int or array_like of int
        Input dimension, ``n >= 1``.
    M : float or array_like
        Hypothesis (8) constant, ``M >= 1`` (Theorem 2: :math:`\sqrt{|I_0|/|I_{L_f}|}`).
    p : float, int or str, default 1
        ``p >= 1``, ``math.inf`` (or ``"inf"``, ``"l2"``, ...).
    eq32 : {"bound", "exact"}
        ``"bound"`` (default): eq. (32)'s two pieces bounded separately (the closed form above).
        ``"exact"``: the eq. (32) integral evaluated in closed form
        (:math:`(2\Phi(a)-1) + \frac{2b}{\sqrt{1+b^2}}e^{-a^2/(2(1+b^2))}\bar\Phi(ab/\sqrt{1+b^2})`,
        :math:`a = \rho e/(1-\rho s)`, :math:`b = \rho s/(1-\rho s)`, :math:`\rho = Mr/\|x_0\|_2`) and
        solved for r by root finding; up to ~8 % larger radii at delta = 0.5.

    Returns
    -------
    float, ndarray or tensor
        Broadcast over ``x0_norm``, ``delta``, ``n``, ``M``; a float64 tensor if ``x0_norm`` or
        ``delta`` is one. :func:`comparison_failure_probability` at this r returns ``delta``.

    Examples
    --------
    >>> from gpbound.radii import comparison_radius
    >>> round(comparison_radius(4.0, 0.5, 48, 4.0, p=2), 4)
    0.0714
    """
    like = _is_torch(x0_norm, delta)
    pp = _p(p)
    x = _pos(x0_norm, "x0_norm")
    d = _delta(delta)
    m = _M(M)
    e, sb = _widths(pp, n)
    return _out(x / m * _ratio_m(d, e, sb, eq32), like)


def comparison_failure_probability(r, x0_norm, n, M, p=1, eq32="bound"):
    r"""Inverse of :func:`comparison_radius`: the bound on :math:`P(\exists x\in B^p_r(x_0): \varphi(x)=0)`.

    .. math:: p_r \le \min\Big(1, \frac{\sqrt{2/\pi}\,E\|g\|_q + s_p}{\|x_0\|_2/(Mr) - s_p}\Big)

    1 (vacuous) where :math:`\|x_0\|_2/(Mr) \le s_p`. Parameters as :func:`comparison_radius`, with
    ``r > 0`` the :math:`\ell_p` radius.
    """
    like = _is_torch(r, x0_norm)
    pp = _p(p)
    rr = _pos(r, "r")
    x = _pos(x0_norm, "x0_norm")
    m = _M(M)
    e, sb = _widths(pp, n)
    return _out(_prob_m(x / (m * rr), e, sb, eq32), like)


def comparison_segment_radius(x0_norm, delta, M, eq32="bound"):
    r"""Sudakov--Fernique length of a zero-free segment :math:`\{x_0 + tv: 0 \le t \le r\}`, :math:`\|v\|_2 = 1`.

    .. math:: r = \frac{\|x_0\|_2}{M}\,\frac{\delta}{1/\pi + 1 + \delta}

    (width :math:`E\max(0, g_1) = 1/\sqrt{2\pi}`, :math:`s = 1`; about 1.2 times the Dudley-route
    :func:`segment_radius`). Parameters as :func:`segment_radius`.
    """
    like = _is_torch(x0_norm, delta)
    x = _pos(x0_norm, "x0_norm")
    d = _delta(delta)
    m = _M(M)
    return _out(x / m * _ratio_m(d, gaussian_width(SEGMENT, 1), 1.0, eq32), like)


def comparison_segment_failure_probability(r, x0_norm, M, eq32="bound"):
    r"""Inverse of :func:`comparison_segment_radius`: :math:`\min(1, (1/\pi + 1)/(\|x_0\|_2/(Mr) - 1))`."""
    like = _is_torch(r, x0_norm)
    rr = _pos(r, "r")
    x = _pos(x0_norm, "x0_norm")
    m = _M(M)
    return _out(_prob_m(x / (m * rr), gaussian_width(SEGMENT, 1), 1.0, eq32), like)


def _unit(p):
    return SEGMENT if (isinstance(p, str) and p == SEGMENT) else _p(p)


def instance_radius(sqrt_k00, L, delta, n, p=1, eq32="bound"):
    r"""Instance-specific comparison radius from :math:`\sqrt{K(x_0,x_0)}` and a feature-map Lipschitz constant.

    .. math:: r = \frac{\sqrt{K_{00}}}{L}\,\frac{\delta}{\sqrt{2/\pi}\,e_U + s_U(1+\delta)}

    Valid for a centred GP whose RKHS distance satisfies :math:`d(x,y) \le L\|x-y\|_2`
    (module docstring; :func:`gpbound.lipschitz.feature_lipschitz` gives a proved L for
    :class:`~gpbound.kernels.NNGPKernel` architectures). With :math:`L = MC` and
    :math:`\sqrt{K_{00}} \ge C\|x_0\|_2` it is at least :func:`comparison_radius`.

    Parameters
    ----------
    sqrt_k00 : float, array_like or tensor
        :math:`\sqrt{K(x_0, x_0)} > 0`, computed exactly (the caller subtracts its round-off).
    L : float
        Lipschitz constant, ``> 0``.
    delta : float, array_like or tensor
        In (0, 1).
    n : int
        Input dimension.
    p : float, int, str or "segment"
        Unit set: the :math:`\ell_p` ball or the segment.
    """
    like = _is_torch(sqrt_k00, delta)
    u = _unit(p)
    k = _pos(sqrt_k00, "sqrt_k00")
    lip = _pos(L, "L")
    d = _delta(delta)
    e, sb = _widths(u, n) if u != SEGMENT else (gaussian_width(SEGMENT, 1), 1.0)
    return _out(k / lip * _ratio_m(d, e, sb, eq32), like)


def instance_failure_probability(r, sqrt_k00, L, n, p=1, eq32="bound"):
    r"""Inverse of :func:`instance_radius`: :math:`\min(1, (\sqrt{2/\pi}e_U + s_U)/(\sqrt{K_{00}}/(Lr) - s_U))`."""
    like = _is_torch(r, sqrt_k00)
    u = _unit(p)
    rr = _pos(r, "r")
    k = _pos(sqrt_k00, "sqrt_k00")
    lip = _pos(L, "L")
    e, sb = _widths(u, n) if u != SEGMENT else (gaussian_width(SEGMENT, 1), 1.0)
    return _out(_prob_m(k / (lip * rr), e, sb, eq32), like)

# ---------------------------------------------------------------------------------------------
# Corollary 1
@dataclass(frozen=True)
class Corollary1Result:
    r"""Result of :func:`corollary1` (eq. 16, 18 with Theorem 2's M; the comparison step by default).

    Each radius r means: with probability at least :math:`1-\delta` over the random network,
    no input within r of :math:`x_0` (in that norm, or on that segment) changes the label.

    Attributes
    ----------
    n : int
        Input dimension :math:`C_0 |I_0|`.
    M : float
        :math:`\sqrt{|I_0|/|I_{L_f}|}` (eq. 14).
    x0_norm : float, ndarray or tensor
        :math:`\|x_0\|_2` (per point of a batch).
    delta : float, ndarray or tensor
    l1, l2, linf : float, ndarray or tensor
        Certified :math:`\ell_1`, :math:`\ell_2`, :math:`\ell_\infty` ball radii.
    segment : float, ndarray or tensor
        Certified segment length.
    method : str
        ``"comparison"`` (Sudakov--Fernique) or ``"dudley"`` (the paper's route).
    methods : dict
        Which formula produced each radius (``{"l1": ..., "l2": ..., "linf": ..., "segment": ...}``).
    entropy : str
        Entropy-integral method of the Dudley route (``"numeric"``, ``"closed"``, ``"paper"``, ``"maurey"``).
    entropy_value : float
        The entropy-integral value ``a`` of the Dudley route.
    segment_form : str
        Form of the Dudley-route segment radius.
    l1_eq10 : float, ndarray or tensor
        The printed eq. (16)/(10) radius, comparison only.
    segment_eq12 : float, ndarray or tensor
        The printed eq. (18)/(12) radius, comparison only.
    instance : bool
        Whether the instance-specific radii (exact :math:`\sqrt{K(x_0,x_0)}`, layer-wise L) entered.
    sqrt_k00 : float, ndarray, tensor or None
        :math:`\sqrt{K(x_0,x_0)}` used (less its round-off margin), if ``instance``.
    L : float or None
        Feature-map Lipschitz constant (:func:`gpbound.lipschitz.feature_lipschitz`), if ``instance``.
    """

    n: int
    M: float
    x0_norm: object
    delta: object
    l1: object
    l2: object
    linf: object
    segment: object
    method: str
    methods: dict
    entropy: str
    entropy_value: float
    segment_form: str
    l1_eq10: object
    segment_eq12: object
    instance: bool = False
    sqrt_k00: object = None
    L: object = None


def _max(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        like = a if isinstance(a, torch.Tensor) else b
        return torch.maximum(torch.as_tensor(a, dtype=torch.float64, device=like.device),
                             torch.as_tensor(b, dtype=torch.float64, device=like.device))
    out = np.maximum(a, b)
    return float(out) if np.ndim(out) == 0 else out


def corollary1(arch, x0, delta, entropy="numeric", segment_form="derived", method="comparison",
               instance=False, sigma_w2=2.0, sigma_b2=0.0, eq32="bound"):
    r"""Corollary 1: certified radii for a random deep network (eq. 16, 18; Remark 5).

    With probability at least :math:`1-\delta` over the random network, no input within the
    returned radius of :math:`x_0` changes the label. The radii depend only on n, M and
    :math:`\|x_0\|_2` (Remark 3), unless ``instance=True``.

    Parameters
    ----------
    arch : Architecture
        Any object with integer attributes ``n``, ``input_pixels``, ``flatten_pixels``
        (:class:`gpbound.kernels.Architecture`); ``instance=True`` needs an Architecture with an
        analytic kernel.
    x0 : tensor, array_like or float
        Either input point(s) -- a tensor whose last dimension is ``arch.n`` (shape (n,) or
        (B, n), or (B, C, H, W) flattened) -- or :math:`\|x_0\|_2` value(s) (float/array).
    delta : float, array_like or tensor
        In (0, 1); broadcast against the batch of norms.
    entropy : {"numeric", "closed", "paper", "maurey"}
        Entropy integral of the Dudley route.
    segment_form : {"derived", "eq12"}
        Segment form of the Dudley route.
    method : {"comparison", "dudley"}
        ``"comparison"`` (default): Sudakov--Fernique radii (:func:`comparison_radius`,
        :func:`comparison_segment_radius`). ``"dudley"``: the paper's route (eq. 39-40 for
        :math:`\ell_1`, Remark 5's inclusion for :math:`\ell_2`/:math:`\ell_\infty`).
    instance : bool, default False
        Comparison route only: also compute :func:`instance_radius` from the exact
        :math:`\sqrt{K(x_0,x_0)}` (NNGP kernel with ``sigma_w2``, ``sigma_b2``) and the layer-wise
        L of :func:`gpbound.lipschitz.feature_lipschitz`, and return, per radius, the larger of
        the two proved radii. ``x0`` must then be points.
    sigma_w2, sigma_b2 : float
        Weight and bias variances of the random network (``instance=True`` only).
    eq32 : {"bound", "exact"}
        Comparison route only: eq. (32) bounded piecewise (default) or integrated exactly
        (see :func:`comparison_radius`; up to ~8 % larger radii).

    Returns
    -------
    Corollary1Result

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from gpbound.radii import corollary1
    >>> arch = SimpleNamespace(n=3072, input_pixels=1024, flatten_pixels=64)
    >>> res = corollary1(arch, 32.0, 0.1)
    >>> res.M, round(res.l1, 4), round(res.l2, 4)
    (4.0, 0.1963, 0.0177)
    >>> round(corollary1(arch, 32.0, 0.1, method="dudley").l1, 4)
    0.0062
    """
    from gpbound.constants import theorem2_M

    method = _method(method)
    _eq32(eq32)
    if eq32 != "bound" and method != "comparison":
        raise ValueError("eq32='exact' applies to method='comparison' only")
    if not isinstance(instance, bool):
        raise TypeError(f"instance must be a bool, got {type(instance).__name__}")
    if instance and method != "comparison":
        raise ValueError("instance=True needs method='comparison' (the instance radius is a comparison radius)")
    for attr in ("n", "input_pixels", "flatten_pixels"):
        if not hasattr(arch, attr):
            raise TypeError(f"arch must have attributes n, input_pixels, flatten_pixels (missing {attr!r})")
    n = arch.n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"arch.n must be an int >= 1, got {n!r}")
    M = theorem2_M(arch)
    pts = None
    if isinstance(x0, torch.Tensor) and x0.ndim >= 1:
        if x0.ndim >= 3:  # (B, C, H, W) or (C, H, W)
            x0 = x0.reshape(*x0.shape[:-3], -1) if x0.shape[-3:].numel() == n else x0
        if x0.shape[-1] != n:
            raise ValueError(f"x0 as points must have last dimension arch.n = {n}, got shape {tuple(x0.shape)}")
        if not torch.isfinite(x0).all():
            raise ValueError("x0 must be finite (no NaN or inf)")
        pts = x0
        x0_norm = x0.to(torch.float64).norm(dim=-1)
    elif np.ndim(x0) >= 1 and not isinstance(x0, torch.Tensor) and np.shape(x0)[-1] == n and n > 1:
        raise TypeError("pass input points as a torch tensor; a numpy array/list is read as l2 norms")
    else:
        x0_norm = x0
    if instance and pts is None:
        raise ValueError("instance=True needs x0 as input point(s) (a tensor of last dimension arch.n)")
    a = float(np.asarray(entropy_integral(n, method=entropy)))
    if method == "comparison":
        radii = {"l1": comparison_radius(x0_norm, delta, n, M, p=1, eq32=eq32),
                 "l2": comparison_radius(x0_norm, delta, n, M, p=2, eq32=eq32),
                 "linf": comparison_radius(x0_norm, delta, n, M, p=math.inf, eq32=eq32),
                 "segment": comparison_segment_radius(x0_norm, delta, M, eq32=eq32)}
        methods = {"l1": "comparison (Sudakov-Fernique, E||g||_inf)", "l2": "comparison (Sudakov-Fernique, E||g||_2)",
                   "linf": "comparison (Sudakov-Fernique, E||g||_1)", "segment": "comparison (Sudakov-Fernique, 1/sqrt(2 pi))"}
    else:
        radii = {"l1": l1_ball_radius(x0_norm, delta, n, M, entropy=entropy),
                 "l2": lp_radius(2, x0_norm, delta, M, n=n, entropy=entropy, method="dudley"),
                 "linf": lp_radius(math.inf, x0_norm, delta, M, n=n, entropy=entropy, method="dudley"),
                 "segment": segment_radius(x0_norm, delta, M, form=segment_form)}
        methods = {"l1": f"dudley (eq. 39-40, entropy {entropy})", "l2": "dudley (l1 radius / n^(1/2), Remark 5)",
                   "linf": "dudley (l1 radius / n, Remark 5)", "segment": f"dudley (Theorem 1 II, {segment_form})"}
    sqrt_k00 = L = None
    if instance:
        from gpbound.lipschitz import feature_lipschitz

        if not hasattr(arch, "kernel") or not hasattr(arch, "layer"):
            raise TypeError("instance=True needs a gpbound.kernels.Architecture")
        L = feature_lipschitz(arch, sigma_w2)
        xp = pts.to(torch.float64).reshape(-1, n)
        with torch.no_grad():
            k00 = arch.kernel(xp, diag=True, sigma_w2=sigma_w2, sigma_b2=sigma_b2).reshape(pts.shape[:-1])
        # round-off of the kernel recursion (relative, a few hundred ulp): subtract a margin
        sqrt_k00 = k00.clamp_min(0).sqrt() * (1.0 - 1e4 * float(torch.finfo(torch.float64).eps))
        if bool((sqrt_k00 <= 0).any()):
            raise ValueError("K(x0, x0) = 0: no instance radius (x0 is a zero of every network)")
        for key, unit in (("l1", 1), ("l2", 2), ("linf", math.inf), ("segment", SEGMENT)):
            ri = instance_radius(sqrt_k00, L, delta, n, p=unit, eq32=eq32)
            radii[key] = _max(radii[key], ri)
            methods[key] += "; max with the instance radius (exact sqrt K(x0,x0), layer-wise L)"
    return Corollary1Result(
        n=int(n), M=M, x0_norm=x0_norm, delta=delta, l1=radii["l1"], l2=radii["l2"], linf=radii["linf"],
        segment=radii["segment"], method=method, methods=methods, entropy=entropy, entropy_value=a,
        segment_form=segment_form, l1_eq10=l1_ball_radius_eq10(x0_norm, delta, n, M),
        segment_eq12=segment_radius(x0_norm, delta, M, form="eq12"), instance=instance,
        sqrt_k00=sqrt_k00, L=L,
    )


# ---------------------------------------------------------------------------------------------
# Remark 5: lp balls
def _p(p):
    """Validate an lp exponent (:func:`gpbound.validation.norm_p`): a number >= 1 or inf, or a norm name
    ("l1", "l2", "l1.5", "linf", "inf"); a bare numeric string ("2") is a TypeError."""
    from gpbound.validation import norm_p

    return norm_p(p, "p")


def _lp_setup(p, x0, n):
    """Return (p, l2 norms, n, points-or-None, torch-like)."""
    p = _p(p)
    if n is None:
        if isinstance(x0, torch.Tensor):
            pts = x0.to(torch.float64)
        else:
            pts = torch.as_tensor(as_float_array(x0, "x0"))
        if pts.ndim < 1 or pts.shape[-1] < 1:
            raise ValueError(f"x0 must be point(s) of shape (n,) or (B, n) when n is None, got {tuple(pts.shape)}")
        if not torch.isfinite(pts).all():
            raise ValueError("x0 must be finite (no NaN or inf)")
        return p, pts.norm(dim=-1), pts.shape[-1], pts, x0 if isinstance(x0, torch.Tensor) else None
    as_dimension(n, "n")
    _pos(_np(x0), "x0")  # x0 holds l2 norms here: name the argument the caller passed
    return p, x0, n, None, x0 if isinstance(x0, torch.Tensor) else None


def lp_radius(p, x0, delta, M, n=None, entropy="numeric", method="comparison"):
    r"""Certified :math:`\ell_p`-ball radius (Remark 5; the comparison step by default).

    ``method="comparison"`` (default): :func:`comparison_radius`,

    .. math:: r_p = \frac{\|x_0\|_2}{M}\,\frac{\delta}{\sqrt{2/\pi}\,E\|g\|_q + s_p(1+\delta)}.

    ``method="dudley"``: the paper's Remark 5, the :math:`\ell_1` radius divided by :math:`n^{1-1/p}`,

    .. math:: r_p = r_1 / n^{1 - 1/p}, \qquad \|x - x_0\|_1 \le n^{1-1/p}\|x - x_0\|_p \quad\text{(eq. 23)}

    so :math:`B^p_{r_p}(x_0) \subseteq B^1_{r_1}(x_0)` and the same probability bound holds.
    The comparison radius is never smaller (``tests/test_comparison_radii.py``).

    Parameters
    ----------
    p : float, int or str
        ``p >= 1``; ``math.inf``/``"inf"``/``"linf"`` allowed.
    x0 : tensor or array_like
        If ``n`` is None: input point(s), shape (n,) or (B, n). Otherwise :math:`\|x_0\|_2` value(s).
    delta : float, array_like or tensor
        In (0, 1).
    M : float
        ``M >= 1``.
    n : int, optional
        Dimension, required when ``x0`` holds norms.
    entropy : {"numeric", "closed", "paper", "maurey"}
        Entropy integral of the Dudley route.
    method : {"comparison", "dudley"}

    Returns
    -------
    float, ndarray or tensor
    """
    method = _method(method)
    if not isinstance(entropy, str) or entropy not in ENTROPY_METHODS:
        raise ValueError(f"entropy must be one of {ENTROPY_METHODS}, got {entropy!r}")
    p, x0_norm, n, _, like = _lp_setup(p, x0, n)
    if isinstance(x0_norm, torch.Tensor):
        like = x0_norm
    like = like if like is not None else _is_torch(delta)
    if method == "comparison":
        return _out(np.asarray(comparison_radius(_np(x0_norm), _np(delta), n, M, p=p)), like)
    r1 = np.asarray(l1_ball_radius(_np(x0_norm), _np(delta), n, M, entropy=entropy))
    expo = 1.0 if math.isinf(p) else 1.0 - 1.0 / p
    return _out(r1 / float(n) ** expo, like)


def _np(v):
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v


def relative_lp_radius(p, x0, delta, M, n=None, x0_norm_p=None, entropy="numeric", method="comparison"):
    r"""Remark 5: :func:`lp_radius` divided by :math:`\|x_0\|_p`.

    For entries :math:`\Theta(1)`, :math:`\|x_0\|_p = \Theta(n^{1/p})` and the relative radius
    is :math:`\tilde\Omega(1/\sqrt n)` in every norm.

    Parameters
    ----------
    p, x0, delta, M, n, entropy, method
        As :func:`lp_radius`.
    x0_norm_p : float, array_like or tensor, optional
        :math:`\|x_0\|_p`; required when ``x0`` holds l2 norms (``n`` given), computed otherwise.
    """
    p_, x0_norm, n_, pts, like = _lp_setup(p, x0, n)
    r = lp_radius(p, x0, delta, M, n=n, entropy=entropy, method=method)
    if pts is not None:
        nrm = pts.norm(p=p_, dim=-1)
    else:
        if x0_norm_p is None:
            raise ValueError("x0_norm_p (the lp norm of x0) is required when x0 holds l2 norms (n given)")
        nrm = _pos(_np(x0_norm_p), "x0_norm_p")
    nrm = np.asarray(_np(nrm), dtype=np.float64)
    if np.any(nrm <= 0):
        raise ValueError("x0 must be nonzero (its lp norm divides the radius)")
    out = np.asarray(_np(r), dtype=np.float64) / nrm
    like = r if isinstance(r, torch.Tensor) else None
    return _out(out, like)
