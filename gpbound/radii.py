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
   coefficient of :math:`\sigma_r` is 1, not :math:`\sqrt{2/\pi}` (THEORY.md's transcription of
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

References
----------
De Palma, Kiani, Lloyd, ICML 2021: Theorem 1 (eq. 10, 12), eq. (25)-(40), Theorem 2 (eq. 14),
Corollary 1 (eq. 16, 18), Remark 5 (eq. 22-24).
"""

from dataclasses import dataclass
import math

import numpy as np
import torch

from gpbound.covering import entropy_integral
from gpbound.covering.entropy import ENTROPY_METHODS
from gpbound.covering.theorem3 import as_dimension, as_float_array

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
]

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
# Corollary 1
@dataclass(frozen=True)
class Corollary1Result:
    r"""Result of :func:`corollary1` (eq. 16, 18 with Theorem 2's M).

    Attributes
    ----------
    n : int
        Input dimension :math:`C_0 |I_0|`.
    M : float
        :math:`\sqrt{|I_0|/|I_{L_f}|}` (eq. 14).
    x0_norm : float, ndarray or tensor
        :math:`\|x_0\|_2` (per point of a batch).
    delta : float, ndarray or tensor
    l1 : float, ndarray or tensor
        Tight l1-ball radius (eq. 39-40) with the chosen entropy value.
    segment : float, ndarray or tensor
        Segment radius (``segment_form``).
    entropy_value : float
        The entropy-integral value ``a`` used.
    method : str
        The entropy method (``"numeric"``, ``"closed"`` or ``"paper"``).
    segment_form : str
    l1_eq10 : float, ndarray or tensor
        The printed eq. (16)/(10) radius, comparison only.
    segment_eq12 : float, ndarray or tensor
        The printed eq. (18)/(12) radius, comparison only.
    """

    n: int
    M: float
    x0_norm: object
    delta: object
    l1: object
    segment: object
    entropy_value: float
    method: str
    segment_form: str
    l1_eq10: object
    segment_eq12: object


def corollary1(arch, x0, delta, entropy="numeric", segment_form="derived"):
    r"""Corollary 1: certified l1-ball and segment radii for a random deep network (eq. 16, 18).

    Parameters
    ----------
    arch : Architecture
        Any object with integer attributes ``n``, ``input_pixels``, ``flatten_pixels``
        (:class:`gpbound.kernels.Architecture`). Only this metadata is used: the radii do not
        depend on the weight/bias variances (Remark 3).
    x0 : tensor, array_like or float
        Either input point(s) -- a tensor whose last dimension is ``arch.n`` (shape (n,) or
        (B, n), or (B, C, H, W) flattened) -- or :math:`\|x_0\|_2` value(s) (float/array).
    delta : float, array_like or tensor
        In (0, 1); broadcast against the batch of norms.
    entropy : {"numeric", "closed", "paper", "maurey"}
    segment_form : {"derived", "eq12"}

    Returns
    -------
    Corollary1Result

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from gpbound.radii import corollary1
    >>> arch = SimpleNamespace(n=3072, input_pixels=1024, flatten_pixels=64)
    >>> res = corollary1(arch, 32.0, 0.1)
    >>> res.M, round(res.l1, 4)
    (4.0, 0.0062)
    """
    from gpbound.constants import theorem2_M

    for attr in ("n", "input_pixels", "flatten_pixels"):
        if not hasattr(arch, attr):
            raise TypeError(f"arch must have attributes n, input_pixels, flatten_pixels (missing {attr!r})")
    n = arch.n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"arch.n must be an int >= 1, got {n!r}")
    M = theorem2_M(arch)
    if isinstance(x0, torch.Tensor) and x0.ndim >= 1:
        if x0.ndim >= 3:  # (B, C, H, W) or (C, H, W)
            x0 = x0.reshape(*x0.shape[:-3], -1) if x0.shape[-3:].numel() == n else x0
        if x0.shape[-1] != n:
            raise ValueError(f"x0 as points must have last dimension arch.n = {n}, got shape {tuple(x0.shape)}")
        if not torch.isfinite(x0).all():
            raise ValueError("x0 must be finite (no NaN or inf)")
        x0_norm = x0.to(torch.float64).norm(dim=-1)
    elif np.ndim(x0) >= 1 and not isinstance(x0, torch.Tensor) and np.shape(x0)[-1] == n and n > 1:
        raise TypeError("pass input points as a torch tensor; a numpy array/list is read as l2 norms")
    else:
        x0_norm = x0
    a = float(np.asarray(entropy_integral(n, method=entropy)))
    return Corollary1Result(
        n=int(n),
        M=M,
        x0_norm=x0_norm,
        delta=delta,
        l1=l1_ball_radius(x0_norm, delta, n, M, entropy=entropy),
        segment=segment_radius(x0_norm, delta, M, form=segment_form),
        entropy_value=a,
        method=entropy,
        segment_form=segment_form,
        l1_eq10=l1_ball_radius_eq10(x0_norm, delta, n, M),
        segment_eq12=segment_radius(x0_norm, delta, M, form="eq12"),
    )


# ---------------------------------------------------------------------------------------------
# Remark 5: lp balls
def _p(p):
    if isinstance(p, str):
        key = p.lower().lstrip("l")
        if key in ("inf", "infinity"):
            return math.inf
        try:
            p = float(key)
        except ValueError:
            raise ValueError(f"p must be a number >= 1, inf, or 'l1'/'l2'/'linf', got {p!r}") from None
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"p must be a number >= 1 or inf, got {type(p).__name__}")
    p = float(p)
    if math.isnan(p) or p < 1:
        raise ValueError(f"p must be >= 1 (or inf), got {p!r}")
    return p


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
    return p, x0, n, None, x0 if isinstance(x0, torch.Tensor) else None


def lp_radius(p, x0, delta, M, n=None, entropy="numeric"):
    r"""Remark 5: certified lp-ball radius, the l1 radius divided by :math:`n^{1-1/p}`.

    .. math:: r_p = r_1 / n^{1 - 1/p}, \qquad \|x - x_0\|_1 \le n^{1-1/p}\|x - x_0\|_p \quad\text{(eq. 23)}

    so :math:`B^p_{r_p}(x_0) \subseteq B^1_{r_1}(x_0)` and the same probability bound holds.

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

    Returns
    -------
    float, ndarray or tensor
    """
    p, x0_norm, n, _, like = _lp_setup(p, x0, n)
    if isinstance(x0_norm, torch.Tensor):
        like = x0_norm
    r1 = np.asarray(l1_ball_radius(_np(x0_norm), _np(delta), n, M, entropy=entropy))
    expo = 1.0 if math.isinf(p) else 1.0 - 1.0 / p
    like = like if like is not None else _is_torch(delta)
    return _out(r1 / float(n) ** expo, like)


def _np(v):
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v


def relative_lp_radius(p, x0, delta, M, n=None, x0_norm_p=None, entropy="numeric"):
    r"""Remark 5: :func:`lp_radius` divided by :math:`\|x_0\|_p`.

    For entries :math:`\Theta(1)`, :math:`\|x_0\|_p = \Theta(n^{1/p})` and the relative radius
    is :math:`\tilde\Omega(1/\sqrt n)` in every norm.

    Parameters
    ----------
    p, x0, delta, M, n, entropy
        As :func:`lp_radius`.
    x0_norm_p : float, array_like or tensor, optional
        :math:`\|x_0\|_p`; required when ``x0`` holds l2 norms (``n`` given), computed otherwise.
    """
    p_, x0_norm, n_, pts, like = _lp_setup(p, x0, n)
    r = lp_radius(p, x0, delta, M, n=n, entropy=entropy)
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
