r"""Certified robustness radii of trained Gaussian-process classifiers (``docs/theory.md`` §9).

A trained GPyTorch ``ExactGP`` (``GaussianLikelihood``, ``ZeroMean``/``ConstantMean``, kernel
``NNGPKernel`` / ``ArcCosineKernel(order=1)`` / ``RBFKernel``, each optionally inside
``ScaleKernel``) on data :math:`(X, y)`, :math:`N` points, noise :math:`s^2 > 0`, mean constant
:math:`c`, prior kernel :math:`k`, :math:`K = k(X, X)`, :math:`A = K + s^2 I`, defines

* the **mean classifier** :math:`\operatorname{sign} m(x)`,
  :math:`m = c + k(\cdot, X)\alpha`, :math:`\alpha = A^{-1}(y - c)` (the posterior mean);
* the **Bayesian classifier** :math:`\operatorname{sign} f(x)`, :math:`f` one sample path of the
  posterior GP of the latent function: mean m, covariance
  :math:`\Sigma(x, x') = k(x, x') - k(x, X)A^{-1}k(X, x')`.

Ingredients
-----------
*Feature-map Lipschitz constant* :math:`L` with :math:`d_k(x, y) \le L\|x - y\|_2`,
:math:`d_k^2 = k(x,x) - 2k(x,y) + k(y,y)` (:func:`lipschitz_constant`):

* ``RBFKernel`` (lengthscales :math:`\ell_i`): :math:`d^2 = 2(1 - e^{-\|(x-y)/\ell\|^2/2})
  \le \|(x-y)/\ell\|^2 \le \|x-y\|^2/\ell_{\min}^2` (:math:`1 - e^{-z} \le z`), so
  :math:`L = 1/\ell_{\min}`;
* ``NNGPKernel``: :func:`gpbound.lipschitz.feature_lipschitz` (theory §8);
* ``ArcCosineKernel(order=1)``: :math:`k_1(x, y) = 2E[\tau(w\cdot x)\tau(w\cdot y)]`,
  :math:`w \sim N(0, I)` (``kernels/arccos.py``: :math:`k_1 = 2F`, :math:`k_1(x,x) = \|x\|^2`), so
  :math:`d^2 = 2E(\tau(u) - \tau(v))^2 \le E(u - v)^2 = \|x - y\|^2` (ReLU halves squared
  Gaussian increments, theory §8): :math:`L = 1`. Orders 0 and 2 are not Lipschitz
  (:math:`d_0^2 = 2\theta/\pi \sim \|x-y\|/\|x\|`; :math:`d_2` grows with :math:`\|x\|^2`):
  ``ValueError``;
* ``ScaleKernel`` (outputscale :math:`\sigma_f^2`) multiplies L by :math:`\sigma_f`;
  ``active_dims`` keep L valid (:math:`\|x_S - y_S\| \le \|x - y\|`).

*RKHS norm.* :math:`m - c = \sum_i\alpha_i k(\cdot, x_i) \in H_k`,
:math:`\|m - c\|_H^2 = \alpha^T K\alpha`, and by the reproducing property and Cauchy--Schwarz
:math:`|m(x) - m(x_0)| = |\langle m - c, k(\cdot,x) - k(\cdot,x_0)\rangle_H| \le \|m-c\|_H\,d_k(x, x_0)
\le \|m - c\|_H L\|x - x_0\|_2`.

Mean radius (deterministic)
---------------------------
On :math:`B = x_0 + rU` (U the unit :math:`\ell_p` ball, :math:`s_U = \sup_U\|h\|_2`,
:func:`gpbound.gaussian_width.unit_l2_radius`), :math:`\|x - x_0\|_2 \le rs_U`, so
:math:`\operatorname{sign} m` is constant on B when :math:`\|m-c\|_H L r s_U < |m(x_0)|`:

.. math:: r_{mean} = |m(x_0)| / (\|m - c\|_H\,L\,s_U).

Bayesian radius (probability :math:`\ge 1 - \delta` over the posterior sample)
------------------------------------------------------------------------------
Write :math:`f = m + Z`, Z the centred posterior GP. Posterior increments are never larger than
prior ones: :math:`\mathrm{Var}(Z_x - Z_y) = v^T(\text{prior} - \text{PSD})v \le d_k(x,y)^2 \le
L^2\|x - y\|^2`. :math:`W_x = Z_x - Z_{x_0}` is centred, :math:`W_{x_0} = 0`, with the same
increments; Sudakov--Fernique against :math:`Y_x = L\langle g, x - x_0\rangle` (theory §7,
separability as there) gives :math:`E\sup_B W \le Lre_U` (:math:`e_U` =
:func:`gpbound.gaussian_width.gaussian_width`), the same for :math:`-W`, and
:math:`\sup_B\mathrm{Var}\,W_x \le (Lrs_U)^2`. Borell--TIS on :math:`\sup W` and :math:`\sup(-W)`:
:math:`P(\sup_B|W| \ge Lre_U + \tau Lrs_U) \le 2e^{-\tau^2/2}`, :math:`\tau \ge 0`. On B,
:math:`|m(x) - m(x_0)| \le \mu_r = \|m-c\|_H L s_U r`. If :math:`|f(x_0)| > u` and
:math:`\sup_B|f - f(x_0)| < u` there is no sign change in B, so for every :math:`\tau \ge 0`, with
:math:`u = \mu_r + Lre_U + \tau Lrs_U`,

.. math:: P(\text{sign change in } B) \le P(|f(x_0)| \le u) + \min(1, 2e^{-\tau^2/2}),
   \qquad f(x_0) \sim N(m_0, s_0^2),

:math:`s_0^2 = \Sigma(x_0, x_0)` (the latent, noise-free posterior variance). The bound is
minimised over a grid of :math:`\tau` (any :math:`\tau` is valid, so a grid minimum is a valid bound).
For fixed :math:`\tau`, u grows with r and :math:`P(|f(x_0)| \le u)` grows with u: the bound is
non-decreasing in r, and the largest r with bound :math:`\le \delta` is found by bisection (the
returned radius is the lower end of the final bracket, where the bound was evaluated and is
:math:`\le\delta`).

Floating point (all computed in float64, margins stated)
--------------------------------------------------------
:math:`\varepsilon` = float64 epsilon, :math:`\gamma = (N+2)\varepsilon\cdot1.01 + 10^3\varepsilon`
a relative error bound for each computed dot product of length :math:`\le N+1`
(:math:`\gamma_{N+1}` of Higham's summation bound) plus :math:`10^3\varepsilon` for the
evaluation of each kernel entry (an assumed kernel evaluation accuracy; the kernels here are
closed forms or a short recursion). The radii are certified for the exact posterior of the model:

* the Cholesky solution :math:`\tilde\alpha` has residual :math:`\rho = A\tilde\alpha - (y - c)`,
  bounded by its computed value plus :math:`\gamma(|A||\tilde\alpha| + |y - c|)`; since
  :math:`A \succeq s^2I` and :math:`K \preceq A`,
  :math:`\|m - \tilde m\|_H^2 = (\alpha-\tilde\alpha)^TK(\alpha-\tilde\alpha) \le \rho^TA^{-1}\rho
  \le \|\rho\|^2/s^2 =: e^2`;
* :math:`\|m - c\|_H \le \sqrt{\tilde\alpha^TK\tilde\alpha + \gamma|\tilde\alpha|^T|K||\tilde\alpha|}
  \,(1 + 10^6\varepsilon) + e` (``rkhs_norm``);
* :math:`|m(x_0)| \ge |\tilde m(x_0)| - \gamma(|c| + |k(x_0,X)||\tilde\alpha|) - e\sqrt{k(x_0,x_0)}`
  (``m0`` is the computed value; the radii use the lower end);
* :math:`s_0^2 = k_{00} - b^TA^{-1}b`, :math:`b = k(X, x_0)`: with :math:`\tilde w` the Cholesky
  solution of :math:`Aw = b` and residual :math:`\rho_b`, :math:`|b^TA^{-1}b - b^T\tilde w| =
  |w^T\rho_b| \le \sqrt{b^TA^{-1}b}\,\|\rho_b\|/s \le \sqrt{k_{00}}\|\rho_b\|/s` (as
  :math:`b^TA^{-1}b \le k_{00}`), plus :math:`\gamma(k_{00} + |b|^T|\tilde w|)`: an interval
  :math:`[s_{lo}, s_{hi}]` for :math:`s_0`. :math:`P(|N(m, s^2)| \le u)` decreases in :math:`|m|`
  and, over :math:`s \in [s_{lo}, s_{hi}]`, is largest at :math:`s_{lo}` when :math:`|m| \le u` and
  at :math:`s^* = \sqrt{2|m|u/\ln((|m|+u)/(|m|-u))}` clipped to the interval otherwise (the
  probability is unimodal in s): the bound uses this maximum.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import special

from gpbound.gaussian_width import gaussian_width, unit_l2_radius

__all__ = ["certify", "CertificateResult", "lipschitz_constant", "posterior_mean_function", "SUPPORTED_KERNELS"]

#: kernels whose feature-map Lipschitz constant is proved (optionally inside ScaleKernel)
SUPPORTED_KERNELS = ("NNGPKernel", "ArcCosineKernel(order=1)", "RBFKernel", "ScaleKernel(<one of these>)")

_EPS = float(np.finfo(np.float64).eps)
_KERNEL_REL = 1e3 * _EPS          # assumed relative accuracy of each kernel entry
_TAU = np.linspace(0.0, 12.0, 481)  # Borell-TIS deviation grid (2 exp(-72) ~ 1e-31 at the end)
_BISECTION_STEPS = 60


# --------------------------------------------------------------------------------------- Lipschitz
def _kernel_name(kernel) -> str:
    from gpytorch.kernels import ScaleKernel

    if isinstance(kernel, ScaleKernel):
        return f"ScaleKernel({_kernel_name(kernel.base_kernel)})"
    if type(kernel).__name__ == "ArcCosineKernel":
        return f"ArcCosineKernel(order={kernel.order})"
    return type(kernel).__name__


def lipschitz_constant(kernel) -> float:
    r"""Proved :math:`L` with :math:`d_k(x, y) \le L\|x - y\|_2` for all x, y (module docstring).

    Parameters
    ----------
    kernel : gpytorch.kernels.Kernel
        ``RBFKernel`` (:math:`L = 1/\ell_{\min}`), ``NNGPKernel``
        (:func:`gpbound.lipschitz.feature_lipschitz`), ``ArcCosineKernel(order=1)`` (:math:`L = 1`),
        or ``ScaleKernel`` of one of these (times :math:`\sqrt{\text{outputscale}}`).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        Any other kernel (the message names it and the supported list), or a batched kernel.
    ValueError
        ``ArcCosineKernel`` of order 0 or 2 (not Lipschitz).

    Examples
    --------
    >>> import gpytorch
    >>> k = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())
    >>> k.outputscale, k.base_kernel.lengthscale = 4.0, 0.5
    >>> round(lipschitz_constant(k), 6)    # sqrt(4) / 0.5
    4.0
    """
    import gpytorch
    from gpbound.kernels import ArcCosineKernel, NNGPKernel
    from gpbound.lipschitz import feature_lipschitz

    if not isinstance(kernel, gpytorch.kernels.Kernel):
        raise TypeError(f"kernel must be a gpytorch Kernel; got {type(kernel).__name__}")
    if len(getattr(kernel, "batch_shape", torch.Size([]))) != 0:
        raise TypeError(f"batched kernels (batch_shape {tuple(kernel.batch_shape)}) are not supported")
    if isinstance(kernel, gpytorch.kernels.ScaleKernel):
        s2 = float(kernel.outputscale.detach().double().reshape(-1)[0])
        return math.sqrt(s2) * lipschitz_constant(kernel.base_kernel)
    if isinstance(kernel, gpytorch.kernels.RBFKernel):
        ls = kernel.lengthscale.detach().double()
        return 1.0 / float(ls.min())
    if isinstance(kernel, NNGPKernel):
        return float(feature_lipschitz(kernel.architecture, float(kernel.sigma_w2.detach().reshape(()))))
    if isinstance(kernel, ArcCosineKernel):
        if kernel.order != 1:
            raise ValueError(f"ArcCosineKernel of order {kernel.order} is not Lipschitz in its feature map "
                             "(d_k is not bounded by L ||x - y||); only order 1 is supported")
        return 1.0
    raise TypeError(f"no proved Lipschitz constant for kernel {type(kernel).__name__}; supported: "
                    f"{', '.join(SUPPORTED_KERNELS)}")


# --------------------------------------------------------------------------------------- model
def _validate(model):
    import gpytorch

    if not isinstance(model, gpytorch.models.ExactGP):
        raise TypeError(f"model must be a trained gpytorch.models.ExactGP; got {type(model).__name__}")
    lik = model.likelihood
    if not isinstance(lik, gpytorch.likelihoods.GaussianLikelihood) or \
            isinstance(lik, gpytorch.likelihoods.FixedNoiseGaussianLikelihood):
        raise TypeError(f"model.likelihood must be a gpytorch GaussianLikelihood; got {type(lik).__name__}")
    for attr in ("mean_module", "covar_module"):
        if not isinstance(getattr(model, attr, None), torch.nn.Module):
            raise TypeError(f"model must keep its mean and kernel in the attributes mean_module and covar_module "
                            f"(the GPyTorch convention); {attr!r} is missing")
    mean = model.mean_module
    if isinstance(mean, gpytorch.means.ZeroMean):
        c = 0.0
    elif isinstance(mean, gpytorch.means.ConstantMean):
        if mean.constant.numel() != 1:
            raise TypeError("batched ConstantMean is not supported")
        c = float(mean.constant.detach().double().reshape(()))
    else:
        raise TypeError(f"model.mean_module must be ZeroMean or ConstantMean; got {type(mean).__name__}")
    kernel = model.covar_module
    L = lipschitz_constant(kernel)  # TypeError / ValueError for unsupported kernels
    if model.train_inputs is None or model.train_targets is None:
        raise ValueError("the model has no training data")
    X = model.train_inputs[0]
    y = model.train_targets
    if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"training data must be X (N, n), y (N,); got {tuple(X.shape)}, {tuple(y.shape)}")
    noise = lik.noise.detach().double().reshape(-1)
    if noise.numel() != 1:
        raise TypeError("heteroscedastic / batched noise is not supported")
    s2 = float(noise[0])
    if not s2 > 0:
        raise ValueError(f"the likelihood noise must be > 0; got {s2}")
    return c, kernel, L, X, y, s2


class _Posterior:
    """The float64 solves shared by :func:`certify` and :func:`posterior_mean_function`."""

    def __init__(self, model):
        self.c, kernel, self.L, X, y, self.s2 = _validate(model)
        self.name = _kernel_name(kernel)
        self.kernel = copy.deepcopy(kernel).double().eval()
        self.device = X.device
        self.X = X.detach().to(torch.float64)
        N = self.X.shape[0]
        self.gamma = (N + 2) * _EPS * 1.01 + _KERNEL_REL
        with torch.no_grad():
            K = self._k(self.X, self.X)
            K = 0.5 * (K + K.T)
            self.K = K
            A = K + self.s2 * torch.eye(N, dtype=K.dtype, device=K.device)
            self.A = A
            self.chol = torch.linalg.cholesky(A)
            b = y.detach().to(torch.float64).reshape(-1, 1) - self.c
            self.alpha = torch.cholesky_solve(b, self.chol)
            a = self.alpha
            # residual bound of the solve -> ||m - m~||_H <= ||rho|| / s
            rho = (A @ a - b).abs() + self.gamma * (A.abs() @ a.abs() + b.abs())
            self.e_res = float(torch.linalg.norm(rho)) / math.sqrt(self.s2)
            q = float((a.T @ K @ a).reshape(()))
            qm = float((a.abs().T @ K.abs() @ a.abs()).reshape(())) * self.gamma
            self.rkhs_norm = math.sqrt(max(q, 0.0) + qm) * (1.0 + 1e6 * _EPS) + self.e_res

    def _k(self, x1, x2, diag=False):
        out = self.kernel(x1, x2, diag=diag)
        return out if isinstance(out, torch.Tensor) else out.to_dense()

    def mean(self, x):
        """Posterior mean ``c + k(x, X) alpha~`` (float64, differentiable in x)."""
        return self.c + (self._k(x.to(torch.float64), self.X) @ self.alpha).squeeze(-1)


def posterior_mean_function(model):
    r"""The posterior mean :math:`\tilde m(x) = c + k(x, X)\tilde\alpha` as a callable ``(B, n) -> (B,)``.

    Float64, differentiable with autograd (for :func:`gpbound.attacks.minimal_distance`); the same
    Cholesky solution :math:`\tilde\alpha` as :func:`certify`, whose mean radii hold for it and for
    the exact posterior mean (module docstring: the solve's residual margin).

    Parameters
    ----------
    model : gpytorch.models.ExactGP
        As for :func:`certify`.

    Returns
    -------
    callable
        ``f(x)`` for ``x`` of shape ``(B, n)`` (any floating dtype), a float64 tensor ``(B,)``.
    """
    post = _Posterior(model)
    return post.mean


# --------------------------------------------------------------------------------------- result
@dataclass
class CertificateResult:
    r"""Result of :func:`certify` (per-row tensors are float64 on the input's device).

    Attributes
    ----------
    mean_radius : tensor ``(B,)``
        :math:`\operatorname{sign} m` is constant on the closed :math:`\ell_p` ball of this radius
        around each row (deterministic).
    bayes_radius : tensor ``(B,)``
        With probability :math:`\ge 1 - \delta` over the posterior sample f, :math:`\operatorname{sign} f`
        is constant on the closed :math:`\ell_p` ball of this radius.
    m0 : tensor ``(B,)``
        Posterior mean at the rows (computed value).
    s0 : tensor ``(B,)``
        Posterior standard deviation of the latent f at the rows (noise-free; computed value).
    L : float
        Feature-map Lipschitz constant (:func:`lipschitz_constant`).
    rkhs_norm : float
        Upper bound of :math:`\|m - c\|_H`.
    p, delta : float
    kernel : str
    """

    mean_radius: torch.Tensor
    bayes_radius: torch.Tensor
    m0: torch.Tensor
    s0: torch.Tensor
    L: float
    rkhs_norm: float
    p: float
    delta: float
    kernel: str


def _interval_prob_max(m, u, s_lo, s_hi):
    r"""Upper bound of :math:`P(|N(m, s^2)| \le u)` over :math:`s \in [s_{lo}, s_{hi}]` (``m >= 0``, arrays)."""
    m, u = np.broadcast_arrays(m, u)
    s_lo = np.broadcast_to(s_lo, m.shape)
    s_hi = np.broadcast_to(s_hi, m.shape)
    inside = m <= u
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.log((m + u) / (m - u))
        s_star = np.sqrt(2.0 * m * u / ratio)
    s_star = np.where(np.isfinite(s_star), s_star, s_lo)
    s = np.where(inside, s_lo, np.clip(s_star, s_lo, s_hi))
    with np.errstate(divide="ignore", invalid="ignore"):
        hi = special.ndtr((u - m) / s)
        lo = special.ndtr((-u - m) / s)
    prob = hi - lo
    # s = 0: a point mass at m
    prob = np.where(s > 0, prob, np.where(inside, 1.0, 0.0))
    return np.clip(prob + 4 * _EPS, 0.0, 1.0)  # ndtr round-off


def _bayes_bound(a, m_lo, s_lo, s_hi, H, eU, sU):
    r"""Failure bound at :math:`a = Lr` (arrays ``(B,)``), minimised over the tau grid."""
    a = a[:, None]
    u = a * (H * sU + eU + _TAU[None, :] * sU)
    tail = np.minimum(1.0, 2.0 * np.exp(-0.5 * _TAU ** 2))[None, :]
    P = _interval_prob_max(m_lo[:, None], u, s_lo[:, None], s_hi[:, None])
    return np.min(P + tail, axis=1)


def _bayes_radius_a(delta, m_lo, s_lo, s_hi, H, eU, sU):
    """Largest a = L r (bisection, lower end of the bracket) with bound <= delta; arrays (B,)."""
    B = m_lo.shape[0]
    lo = np.zeros(B)
    hi = np.maximum(np.maximum(m_lo, s_hi), 1e-300) / (H * sU + eU)
    for _ in range(200):  # grow the upper end until the bound exceeds delta there
        bad = _bayes_bound(hi, m_lo, s_lo, s_hi, H, eU, sU) <= delta
        if not bad.any():
            break
        lo = np.where(bad, hi, lo)
        hi = np.where(bad, 2.0 * hi, hi)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        ok = _bayes_bound(mid, m_lo, s_lo, s_hi, H, eU, sU) <= delta
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo


def certify(model, x, p=2, delta=0.1) -> CertificateResult:
    r"""Certified :math:`\ell_p` radii of the mean and Bayesian classifiers of a trained ExactGP.

    .. math::

        r_{mean} = \frac{|m(x_0)|}{\|m - c\|_H\,L\,s_U}, \qquad
        r_{Bayes} = \max\{r : \min_{\tau\ge0} P(|f(x_0)| \le \mu_r + Lr(e_U + \tau s_U))
        + 2e^{-\tau^2/2} \le \delta\}

    with :math:`\mu_r = \|m-c\|_H L s_U r`, :math:`f(x_0) \sim N(m_0, s_0^2)` (module docstring:
    proof and floating-point margins).

    Parameters
    ----------
    model : gpytorch.models.ExactGP
        Trained, with ``GaussianLikelihood``, ``ZeroMean``/``ConstantMean`` and a supported kernel
        (:data:`SUPPORTED_KERNELS`).
    x : tensor ``(B, n)`` or ``(n,)``
        Test points (any floating dtype; computed in float64).
    p : float, default 2
        ``p >= 1`` or ``math.inf``.
    delta : float in (0, 1), default 0.1
        Failure probability of the Bayesian certificate.

    Returns
    -------
    CertificateResult

    Raises
    ------
    TypeError
        Not an ExactGP, another likelihood / mean, an unsupported kernel (named).
    ValueError
        ``delta`` outside (0, 1), ``p < 1``, a shape mismatch, an ArcCosineKernel of order 0 or 2.
    """
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ValueError(f"delta must be in the open interval (0, 1); got {delta!r}")
    p = float(p)
    if not p >= 1:
        raise ValueError(f"p must be >= 1 (or inf); got {p!r}")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating torch.Tensor of shape (B, n); got {type(x).__name__}")
    post = _Posterior(model)
    n = post.X.shape[1]
    single = x.dim() == 1
    xb = x.reshape(1, -1) if single else x
    if xb.dim() != 2 or xb.shape[1] != n:
        raise ValueError(f"x must have shape (B, {n}) (or ({n},)); got {tuple(x.shape)}")
    out_device = x.device
    x64 = xb.detach().to(device=post.device, dtype=torch.float64)
    g = post.gamma
    with torch.no_grad():
        kxX = post._k(x64, post.X)                                  # (B, N)
        k00 = post._k(x64, x64, diag=True).reshape(-1)             # (B,)
        m_t = post.c + (kxX @ post.alpha).squeeze(-1)
        m_err = g * (abs(post.c) + kxX.abs() @ post.alpha.abs()).squeeze(-1) + post.e_res * k00.clamp_min(0).sqrt()
        Wt = torch.cholesky_solve(kxX.T, post.chol)                  # (N, B)
        q = (kxX.T * Wt).sum(0)
        rho = (post.A @ Wt - kxX.T).abs() + g * (post.A.abs() @ Wt.abs() + kxX.T.abs())
        q_err = k00.clamp_min(0).sqrt() * torch.linalg.norm(rho, dim=0) / math.sqrt(post.s2) \
            + g * (k00.abs() + (kxX.T.abs() * Wt.abs()).sum(0))
        var = k00 - q
    m_np = m_t.cpu().numpy()
    m_lo = np.maximum(np.abs(m_np) - m_err.cpu().numpy(), 0.0)
    var_np = var.cpu().numpy()
    qe = q_err.cpu().numpy()
    s_lo = np.sqrt(np.maximum(var_np - qe, 0.0))
    s_hi = np.sqrt(np.maximum(var_np + qe, 0.0))
    L, H = post.L, post.rkhs_norm
    eU, sU = gaussian_width(p, n), unit_l2_radius(p, n)
    with np.errstate(divide="ignore"):
        mean_r = np.where(H * L > 0, m_lo / (H * L * sU), np.where(m_lo > 0, np.inf, 0.0))
        mean_r = mean_r * (1.0 - 4 * _EPS)  # the division and products above, rounded down
    bayes_a = _bayes_radius_a(float(delta), m_lo, s_lo, s_hi, H, eU, sU)
    bayes_r = bayes_a / L * (1.0 - 4 * _EPS) if L > 0 else np.full_like(bayes_a, np.inf)

    def t(a):
        a = torch.as_tensor(np.asarray(a, dtype=np.float64), device=out_device)
        return a.reshape(()) if single else a

    return CertificateResult(mean_radius=t(mean_r), bayes_radius=t(bayes_r), m0=t(m_np),
                             s0=t(np.sqrt(np.maximum(var_np, 0.0))), L=float(L), rkhs_norm=float(H), p=p,
                             delta=float(delta), kernel=post.name)
