"""NNGP kernel of a layer description as a GPyTorch kernel."""
from __future__ import annotations

import torch
import gpytorch
from gpytorch.constraints import GreaterThan, Positive

from .layers import Architecture

__all__ = ["NNGPKernel"]


class NNGPKernel(gpytorch.kernels.Kernel):
    """Infinite-width (NNGP) kernel of an :class:`~gpbound.kernels.Architecture`.

    .. math:: K(x, y) = \\lim_{\\text{width}\\to\\infty} E[\\phi(x)\\phi(y)]

    computed by the layer recursion of docs/theory.md §1 (paper layer eqs. (1)-(5)): conv and
    dense layers ``K' = sb2 + sw2 (...)``, ReLU ``K' = F(K)``, skips ``K' = K + block(K)``,
    average pooling and flatten.  Inputs are ``... x N x n`` with ``n = prod(input_shape)``
    (images flattened in C, H, W order); the base class handles ``active_dims``.

    Parameters
    ----------
    architecture : Architecture
        The network description (must end flat: ``Flatten(1)`` / ``Dense(1)``).
    sigma_w2 : float, > 0
        Weight variance ``sigma_w^2`` (weights ``N(0, sigma_w2 / fan_in)``); default 2 (He).
    sigma_b2 : float, >= 0
        Bias variance; default 0.
    max_elements : int
        Block size limit passed to :meth:`Architecture.kernel`.
    **kwargs
        ``active_dims`` and the other :class:`gpytorch.kernels.Kernel` options
        (``batch_shape`` must be empty: one (sigma_w2, sigma_b2) pair per kernel).

    Notes
    -----
    Precision: the recursion always runs in float64 (or wider) and the covariance is returned in the
    inputs' dtype, as GPyTorch kernels do, so float32 models work; float64 models (``model.double()``)
    are recommended for certificates, whose Cholesky solves and margins assume float64 round-off.

    Constraints: ``sigma_w2 = softplus(raw_sigma_w2)`` (``Positive``);
    ``sigma_b2 = raw_sigma_b2 ** 2`` (``GreaterThan(0)`` with a square transform), so
    ``sigma_b2 = 0`` is represented exactly by ``raw_sigma_b2 = 0`` (the He-initialised,
    bias-free networks of the paper).  At exactly 0 the gradient w.r.t. the raw value is 0;
    start an optimisation from a positive value if the bias variance is to be learnt.
    """

    has_lengthscale = False

    def __init__(self, architecture, sigma_w2=2.0, sigma_b2=0.0, max_elements=2 ** 24, **kwargs):
        if isinstance(architecture, dict):
            architecture = Architecture.from_dict(architecture)
        if not isinstance(architecture, Architecture):
            raise TypeError(f"architecture must be an Architecture (or its dict); got {type(architecture).__name__}")
        bs = kwargs.get("batch_shape", torch.Size([]))
        if len(torch.Size(bs)) != 0:
            raise ValueError(f"batch_shape must be empty for NNGPKernel; got {tuple(bs)}")
        out = architecture.out_spec
        if out.grid and not out.flat_like:
            raise ValueError(f"architecture must end flat (Flatten/Dense); it ends on the grid {out.grid}")
        architecture._require_kernel()
        Architecture._variances(sigma_w2, sigma_b2)  # validation (names the argument)
        super().__init__(**kwargs)
        self.architecture = architecture
        self.max_elements = int(max_elements)
        dt = torch.float64
        self.register_parameter("raw_sigma_w2", torch.nn.Parameter(torch.zeros(1, dtype=dt)))
        self.register_parameter("raw_sigma_b2", torch.nn.Parameter(torch.zeros(1, dtype=dt)))
        self.register_constraint("raw_sigma_w2", Positive())
        self.register_constraint("raw_sigma_b2", GreaterThan(0.0, transform=torch.square, inv_transform=torch.sqrt))
        self.sigma_w2 = sigma_w2
        self.sigma_b2 = sigma_b2

    # ------------------------------------------------------------------ parameters
    @property
    def sigma_w2(self) -> torch.Tensor:
        return self.raw_sigma_w2_constraint.transform(self.raw_sigma_w2)

    @sigma_w2.setter
    def sigma_w2(self, value):
        self._set("sigma_w2", value, positive=True)

    @property
    def sigma_b2(self) -> torch.Tensor:
        return self.raw_sigma_b2_constraint.transform(self.raw_sigma_b2)

    @sigma_b2.setter
    def sigma_b2(self, value):
        self._set("sigma_b2", value, positive=False)

    def _set(self, name, value, positive):
        from .layers import _check_variance

        if not isinstance(value, torch.Tensor):
            value = _check_variance(value, name)  # numbers.Real incl. NumPy scalars; overflow named
        v = torch.as_tensor(value, dtype=self.raw_sigma_w2.dtype, device=self.raw_sigma_w2.device)
        if v.numel() != 1:
            raise ValueError(f"{name} must be a scalar; got shape {tuple(v.shape)}")
        if not torch.isfinite(v).all() or (v <= 0 if positive else v < 0).any():
            raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}; got {float(v)}")
        raw = getattr(self, f"raw_{name}_constraint").inverse_transform(v.reshape(1))
        self.initialize(**{f"raw_{name}": raw})

    # ------------------------------------------------------------------ forward
    def __call__(self, x1, x2=None, diag=False, last_dim_is_batch=False, **params):
        # check the widths before gpytorch's own shape logic, whose errors don't name the argument
        n = self.architecture.n if self.active_dims is None else None
        if x1 is None:
            raise TypeError("x1 must be a torch.Tensor of shape (..., N, n); got None")
        for name, x in (("x1", x1), ("x2", x2)):
            if x is None:
                continue
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor of shape (..., N, n); got {type(x).__name__}")
            if x.dim() < 1 or (n is not None and x.shape[-1] != n):
                raise ValueError(f"{name} must have shape (..., N, n) with n = {n} = prod(input_shape "
                                 f"{tuple(self.architecture.input_shape)}); got {tuple(x.shape)}")
        return super().__call__(x1, x2, diag=diag, last_dim_is_batch=last_dim_is_batch, **params)

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        if last_dim_is_batch:
            raise ValueError("last_dim_is_batch=True is not supported by NNGPKernel (the last dimension holds "
                             "one whole image)")
        # the symmetric path K(x1, x1) is taken only where it has the same gradients as K(x1, x2):
        # for the very same tensor, or for equal values when neither input requires a gradient.
        # (x2 = x1.detach().clone() with x1 requiring grad, e.g. k(x, x_train) at a training point,
        # must not take it: d/dx1 K(x1, x1) counts both arguments and doubles the gradient.)
        same = x1 is x2 or (not x1.requires_grad and not x2.requires_grad and x1.shape == x2.shape
                            and torch.equal(x1, x2))
        # computed in float64 (or the parameters' dtype if wider), returned in the inputs' dtype as every
        # GPyTorch kernel does: a float32 ExactGP gets a float32 covariance (its solves need matching dtypes)
        out_dt = torch.promote_types(x1.dtype, x2.dtype)
        dt = torch.promote_types(torch.promote_types(out_dt, self.raw_sigma_w2.dtype), torch.float64)
        x1 = x1.to(dt)
        x2 = x1 if same else x2.to(dt)
        sw2 = self.sigma_w2.reshape(()).to(dt)
        sb2 = self.sigma_b2.reshape(()).to(dt)
        K = self.architecture.kernel(x1, None if same else x2, sigma_w2=sw2, sigma_b2=sb2, diag=diag,
                                     max_elements=self.max_elements)
        return K.to(out_dt)
