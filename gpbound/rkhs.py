r"""RKHS distance (eq. 7) and the Gaussian process conditioned on its value at x0 (section 3.1).

.. math::

    d(x, y)^2 = \|\Phi(x) - \Phi(y)\|^2 = K(x, x) - 2K(x, y) + K(y, y)   \qquad\text{(eq. 7)}

    \mu(x) = K(x, x_0)\,\varphi_0 / K(x_0, x_0), \qquad
    \hat K(x, y) = K(x, y) - K(x, x_0) K(x_0, y) / K(x_0, x_0)   \qquad\text{(eq. 27)}

A *kernel* here is either a :class:`gpytorch.kernels.Kernel` or any callable
``(x1, x2) -> (B1, B2) matrix`` (tensor, LinearOperator or array). Batched callables that
accept ``(B, 1, n)`` inputs are evaluated pairwise without forming B x B matrices.

References
----------
De Palma, Kiani, Lloyd, ICML 2021, eq. (7), (27)-(29), Lemmas 1-3.
"""

from dataclasses import dataclass
import math

import numpy as np
import torch

__all__ = ["rkhs_distance", "conditional_gp", "ConditionalGP", "ROUNDOFF_RTOL"]

#: Relative tolerance for round-off in d^2 = K(x,x) - 2K(x,y) + K(y,y): a negative value with
#: |d^2| <= ROUNDOFF_RTOL * (K(x,x) + K(y,y)) is set to 0; a more negative one raises ValueError
#: (the kernel is not positive semi-definite on that pair). 1e-10 covers kernels evaluated in
#: float64 through several layers (each costs a few ulps, ~1e-16, of K(x,x)).
ROUNDOFF_RTOL = 1e-10




def _is_gpytorch_kernel(kernel):
    import gpytorch

    return isinstance(kernel, gpytorch.kernels.Kernel)


def _dense(out):
    if hasattr(out, "to_dense"):
        out = out.to_dense()
    elif hasattr(out, "evaluate"):  # older linear_operator
        out = out.evaluate()
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(np.asarray(out))
    return out


def as_points(x, name, device=None, dtype=torch.float64, allow_vector=True):
    """Validate points: tensor/array of shape (B, n) (or (n,) -> (1, n)), finite, as ``dtype`` on ``device``.

    Returns the (B, n) tensor and whether the input was a single vector.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a tensor or array of real numbers, got {type(x).__name__}") from exc
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be real-valued, got dtype {x.dtype}")
    x = x.to(device=device if device is not None else x.device, dtype=dtype)
    single = False
    if x.ndim == 1 and allow_vector:
        x, single = x.unsqueeze(0), True
    if x.ndim != 2 or x.shape[-1] == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (B, n) with B, n >= 1 (or (n,)), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x, single


def check_kernel(kernel):
    if not callable(kernel):
        raise TypeError(f"kernel must be a gpytorch Kernel or a callable (x1, x2) -> matrix, got {type(kernel).__name__}")


def kernel_matrix(kernel, x1, x2):
    """K(x1, x2) as a dense (B1, B2) tensor."""
    out = _dense(kernel(x1, x2))
    if out.shape != (x1.shape[0], x2.shape[0]):
        raise ValueError(
            f"kernel(x1, x2) must return a ({x1.shape[0]}, {x2.shape[0]}) matrix, got shape {tuple(out.shape)}"
        )
    return out.to(x1.dtype)


def kernel_paired(kernel, x1, x2, chunk=256):
    """The vector K(x1_i, x2_i), i = 1..B, without forming the B x B matrix.

    A GPyTorch kernel is called with ``diag=True``; any other callable ``kernel(x1, x2) -> (B1, B2)``
    on blocks of ``chunk`` rows (the diagonals of ``chunk x chunk`` matrices).
    """
    if x1.shape != x2.shape:
        raise ValueError(f"paired kernel evaluation needs equal shapes, got {tuple(x1.shape)} and {tuple(x2.shape)}")
    if _is_gpytorch_kernel(kernel):
        out = _dense(kernel(x1, x2, diag=True))
        if out.shape == (x1.shape[0],):
            return out.to(x1.dtype)
    # A generic callable is only known to take (B1, n) x (B2, n) -> (B1, B2): the diagonals of
    # chunk x chunk matrices (no guessing at a batched form, whose failure could hide a bug)
    parts = []
    for s in range(0, x1.shape[0], chunk):
        m = kernel_matrix(kernel, x1[s : s + chunk], x2[s : s + chunk])
        parts.append(torch.diagonal(m))
    return torch.cat(parts).to(x1.dtype)


def _clamp_d2(d2, scale, what="d(x, y)^2"):
    """Clamp round-off negatives of a squared RKHS distance (tolerance ROUNDOFF_RTOL * scale)."""
    tol = ROUNDOFF_RTOL * scale.abs()
    bad = d2 < -tol
    if bool(bad.any()):
        worst = float((d2 / scale.abs().clamp_min(torch.finfo(d2.dtype).tiny))[bad].min())
        raise ValueError(
            f"{what} is negative beyond round-off (relative {worst:.3e} < -{ROUNDOFF_RTOL:g}): "
            "the kernel is not positive semi-definite"
        )
    return d2.clamp_min(0.0)


def rkhs_distance(kernel, x, y, pairwise=False, squared=False, device=None):
    r"""RKHS distance :math:`d(x, y) = \sqrt{K(x,x) - 2K(x,y) + K(y,y)}` (eq. 7).

    Parameters
    ----------
    kernel : gpytorch.kernels.Kernel or callable
        ``kernel(x1, x2)`` -> ``(B1, B2)`` covariance matrix.
    x, y : tensor or array_like, shape (B, n) or (n,)
        Points. Without ``pairwise`` they are paired row by row (same shape, or one of them a
        single point broadcast against the other).
    pairwise : bool
        Return the ``(B1, B2)`` matrix of all distances instead.
    squared : bool
        Return :math:`d^2` (no square root; differentiable at ``x = y``).
    device : torch.device, optional
        Where to compute (default: the device of ``x``); float64.

    Returns
    -------
    torch.Tensor
        Shape ``(B,)`` (or ``(B1, B2)`` if ``pairwise``; a 0-d tensor if both inputs were vectors).

    Raises
    ------
    TypeError
        ``kernel`` not callable, non-numeric points.
    ValueError
        Wrong shapes, NaN/inf, or :math:`d^2 < -10^{-10}(K(x,x) + K(y,y))` (not PSD).

    Notes
    -----
    Round-off: :math:`d^2` is a difference of O(K) terms, so it can come out slightly negative
    when ``x`` and ``y`` are (nearly) equal; values with
    :math:`|d^2| \le` ``ROUNDOFF_RTOL`` :math:`(K(x,x) + K(y,y))` (``ROUNDOFF_RTOL = 1e-10``) are
    clamped to 0; anything more negative raises. The cancellation also limits the relative
    accuracy of *d* itself to about :math:`\sqrt{10^{-16} K / d^2}`.

    Examples
    --------
    >>> import torch
    >>> from gpbound.rkhs import rkhs_distance
    >>> lin = lambda a, b: a @ b.T          # linear kernel: d(x, y) = |x - y|
    >>> float(rkhs_distance(lin, torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])))
    5.0
    """
    check_kernel(kernel)
    xs, single_x = as_points(x, "x", device=device)
    ys, single_y = as_points(y, "y", device=device if device is not None else xs.device)
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x and y must have the same dimension n, got {xs.shape[1]} and {ys.shape[1]}")
    if pairwise:
        kxx = kernel_paired(kernel, xs, xs)
        kyy = kernel_paired(kernel, ys, ys)
        kxy = kernel_matrix(kernel, xs, ys)
        scale = kxx[:, None] + kyy[None, :]
        d2 = _clamp_d2(scale - 2.0 * kxy, scale)
    else:
        if xs.shape[0] != ys.shape[0]:
            if xs.shape[0] == 1:
                xs = xs.expand_as(ys)
            elif ys.shape[0] == 1:
                ys = ys.expand_as(xs)
            else:
                raise ValueError(
                    f"x and y must have the same number of rows (or one row), got {xs.shape[0]} and {ys.shape[0]}"
                )
        kxx = kernel_paired(kernel, xs, xs)
        kyy = kernel_paired(kernel, ys, ys)
        kxy = kernel_paired(kernel, xs, ys)
        scale = kxx + kyy
        d2 = _clamp_d2(kxx - 2.0 * kxy + kyy, scale)
        if single_x and single_y:
            d2 = d2[0]
    return d2 if squared else d2.sqrt()


@dataclass(frozen=True)
class ConditionalGP:
    r"""The GP :math:`\varphi` conditioned on :math:`\varphi(x_0) = \varphi_0` (section 3.1, eq. 27-29).

    Use :func:`conditional_gp` to build one. Attributes: ``kernel``, ``x0`` (1, n) tensor,
    ``phi0`` (float), ``k00`` = :math:`K(x_0, x_0)` (float, > 0).
    """

    kernel: object
    x0: torch.Tensor
    phi0: float
    k00: float

    def _pts(self, x, name="x"):
        pts, single = as_points(x, name, device=self.x0.device)
        if pts.shape[1] != self.x0.shape[1]:
            raise ValueError(f"{name} must have dimension n = {self.x0.shape[1]}, got {pts.shape[1]}")
        return pts, single

    def mean(self, x):
        r""":math:`\mu(x) = K(x, x_0)\,\varphi_0 / K(x_0, x_0)`; shape (B,)."""
        pts, _ = self._pts(x)
        return kernel_matrix(self.kernel, pts, self.x0)[:, 0] * (self.phi0 / self.k00)

    def cov(self, x, y=None):
        r""":math:`\hat K(x, y) = K(x, y) - K(x, x_0) K(x_0, y)/K(x_0, x_0)`; shape (B1, B2)."""
        xs, _ = self._pts(x)
        ys = xs if y is None else self._pts(y, "y")[0]
        kx0 = kernel_matrix(self.kernel, xs, self.x0)[:, 0]
        ky0 = kernel_matrix(self.kernel, ys, self.x0)[:, 0]
        return kernel_matrix(self.kernel, xs, ys) - torch.outer(kx0, ky0) / self.k00

    def var(self, x):
        r""":math:`\hat K(x, x)` (clamped at 0 within round-off, see ``ROUNDOFF_RTOL``); shape (B,)."""
        xs, _ = self._pts(x)
        kxx = kernel_paired(self.kernel, xs, xs)
        kx0 = kernel_matrix(self.kernel, xs, self.x0)[:, 0]
        return _clamp_d2(kxx - kx0**2 / self.k00, kxx, what="conditional variance K^(x, x)")

    # -- the ball quantities of Lemmas 2 and 3 ------------------------------------------------
    def K_r_bound(self, r, M, C):
        r"""Lemma 2 (eq. 38): :math:`K_r \ge 1 - M C r / \sqrt{K(x_0, x_0)}` (may be <= 0: vacuous).

        Notes
        -----
        Derivation: :math:`K(x, x_0)/K_{00} = 1 + (\Phi(x) - \Phi(x_0))\cdot\Phi(x_0)/K_{00}
        \ge 1 - d(x, x_0)/\sqrt{K_{00}}` (Cauchy-Schwarz) and
        :math:`d(x, x_0) \le M C \|x - x_0\|_2 \le M C \|x - x_0\|_1 < M C r` on the ball.
        """
        r, M, C = _positive(r, "r"), _positive(M, "M"), _positive(C, "C")
        return 1.0 - M * C * r / np.sqrt(self.k00)

    def sigma_r2_bound(self, r, M, C):
        r"""Lemma 3: :math:`\sigma_r^2 = \sup_{B} \hat K(x, x) \le (M C r)^2`.

        Notes
        -----
        :math:`\hat K(x, x) = \min_c \|\Phi(x) - c\,\Phi(x_0)\|^2 \le \|\Phi(x) - \Phi(x_0)\|^2
        = d(x, x_0)^2 \le (M C r)^2` (the residual of the projection onto :math:`\Phi(x_0)`).
        """
        r, M, C = _positive(r, "r"), _positive(M, "M"), _positive(C, "C")
        return (M * C * r) ** 2

    def K_r_measured(self, points):
        r""":math:`\min_{x \in \text{points}} K(x, x_0)/K(x_0, x_0)` -- the measured :math:`K_r` (eq. 28)."""
        xs, _ = self._pts(points, "points")
        return float((kernel_matrix(self.kernel, xs, self.x0)[:, 0] / self.k00).min())

    def sigma_r2_measured(self, points):
        r""":math:`\max_{x \in \text{points}} \hat K(x, x)` -- the measured :math:`\sigma_r^2` (eq. 29)."""
        return float(self.var(points).max())


def _positive(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number > 0, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    return v


def conditional_gp(kernel, x0, phi0, device=None):
    r"""Condition the zero-mean GP with kernel ``kernel`` on :math:`\varphi(x_0) = \varphi_0`.

    Parameters
    ----------
    kernel : gpytorch.kernels.Kernel or callable
        ``kernel(x1, x2)`` -> ``(B1, B2)`` matrix.
    x0 : tensor or array_like, shape (n,) or (1, n)
        The conditioning point; :math:`K(x_0, x_0)` must be > 0.
    phi0 : float
        The observed value (finite).
    device : torch.device, optional

    Returns
    -------
    ConditionalGP
        With ``mean(x)``, ``cov(x, y)``, ``var(x)`` and the ball quantities ``K_r_bound``,
        ``sigma_r2_bound`` (Lemmas 2, 3) and ``K_r_measured``, ``sigma_r2_measured``.

    Notes
    -----
    Gaussian conditioning (eq. 27): mean :math:`K(x, x_0)\varphi_0/K(x_0,x_0)`, covariance
    :math:`\hat K(x, y) = K(x, y) - K(x, x_0)K(x_0, y)/K(x_0, x_0)`.
    """
    check_kernel(kernel)
    x, _ = as_points(x0, "x0", device=device)
    if x.shape[0] != 1:
        raise ValueError(f"x0 must be a single point of shape (n,) or (1, n), got {tuple(x.shape)}")
    if isinstance(phi0, torch.Tensor):
        if phi0.numel() != 1:
            raise ValueError(f"phi0 must be a scalar, got shape {tuple(phi0.shape)}")
        phi0 = phi0.item()
    if isinstance(phi0, bool) or not isinstance(phi0, (int, float, np.floating, np.integer)):
        raise TypeError(f"phi0 must be a real number, got {type(phi0).__name__}")
    if not math.isfinite(float(phi0)):
        raise ValueError(f"phi0 must be finite, got {phi0!r}")
    k00 = float(kernel_matrix(kernel, x, x)[0, 0])
    if not k00 > 0:
        raise ValueError(f"K(x0, x0) must be > 0 to condition on phi(x0), got {k00!r}")
    return ConditionalGP(kernel=kernel, x0=x, phi0=float(phi0), k00=k00)
