"""NNGP kernel of a layer description as a GPyTorch kernel."""
from __future__ import annotations

import itertools

import torch
import gpytorch
from gpytorch.constraints import GreaterThan, Interval, Positive
from gpytorch.priors import Prior

from .architecture import Architecture
from .layers import _check_variance, _pos_int

__all__ = ["NNGPKernel"]


def _batch_shape(value) -> torch.Size:
    """``batch_shape`` as a ``torch.Size`` of positive ints (ValueError/TypeError naming it)."""
    if value is None:
        return torch.Size([])
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"batch_shape must be a torch.Size (or a tuple of positive ints); got {value!r}")
    dims = list(value)
    for d in dims:
        if isinstance(d, bool) or not hasattr(type(d), "__index__") or int(d.__index__()) < 1:
            raise ValueError(f"batch_shape must be a torch.Size (or a tuple of positive ints); got {value!r}")
    return torch.Size(int(d.__index__()) for d in dims)


def _check_prior(prior, name):
    if prior is not None and not isinstance(prior, Prior):
        raise TypeError(f"{name} must be a gpytorch.priors.Prior or None; got {type(prior).__name__}")


def _check_constraint(constraint, name, what):
    if not isinstance(constraint, Interval):
        raise TypeError(f"{name} must be a gpytorch.constraints.Interval (e.g. Positive(), GreaterThan(0.0), "
                        f"Interval(a, b)); got {type(constraint).__name__}")
    lower = float(torch.as_tensor(constraint.lower_bound).min())
    if not lower >= 0.0:
        raise ValueError(f"{name} must keep {what}: its lower bound must be >= 0; got {lower}")


def _check_call_args(x1, x2, active_dims, dim_name, dim=None, dim_desc=""):
    """TypeError/ValueError naming ``x1``/``x2`` for what GPyTorch's ``Kernel.__call__`` would report
    without the argument's name (non-tensors, 0-d tensors, different widths)."""
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None and name == "x2":
            continue
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (..., N, {dim_name}); got {type(x).__name__}")
        if x.dim() == 0:
            raise ValueError(f"{name} must have shape (..., N, {dim_name}) or (N,); got a 0-d tensor")
    if active_dims is not None:
        return  # the widths are checked in forward, after gpytorch selected the active columns
    width = {name: (1 if x.dim() == 1 else x.shape[-1]) for name, x in (("x1", x1), ("x2", x2)) if x is not None}
    for name, w in width.items():
        if dim is not None and w != dim:
            raise ValueError(f"{name} must have shape (..., N, {dim_name}) with {dim_name} = {dim}{dim_desc} "
                             f"(1-D inputs are read as (N, 1)); got {tuple((x1 if name == 'x1' else x2).shape)}")
    if "x2" in width and width["x2"] != width["x1"]:
        raise ValueError(f"x2 must have the same last dimension {dim_name} as x1; got x1 of shape "
                         f"{tuple(x1.shape)} and x2 of shape {tuple(x2.shape)}")


class NNGPKernel(gpytorch.kernels.Kernel):
    """Infinite-width (NNGP) kernel of an :class:`~gpbound.kernels.Architecture`.

    .. math:: K(x, y) = \\lim_{\\text{width}\\to\\infty} E[\\phi(x)\\phi(y)]

    computed by the layer recursion of docs/theory.md §1 (paper layer eqs. (1)-(5)): conv and
    dense layers ``K' = sb2 + sw2 (...)``, ReLU ``K' = F(K)``, skips ``K' = K + block(K)``,
    average pooling and flatten.  Inputs are ``... x N x n`` with ``n = prod(input_shape)``
    (images flattened in C, H, W order); as for every GPyTorch kernel, 1-D inputs ``(N,)`` are read
    as ``(N, 1)`` (architectures with ``n = 1``) and ``active_dims`` selects the columns first.

    It is a GPyTorch kernel like :class:`gpytorch.kernels.RBFKernel`: wrap it in a
    :class:`gpytorch.kernels.ScaleKernel` for an output scale, give it priors and constraints on its
    two hyperparameters, and ``batch_shape`` for batches of independent hyperparameters.

    Parameters
    ----------
    architecture : Architecture or dict
        The network description (must end flat: ``Flatten(1)`` / ``Dense(1)``).
    sigma_w2 : float or tensor, > 0
        Weight variance ``sigma_w^2`` (weights ``N(0, sigma_w2 / fan_in)``); default 2 (He).  A tensor
        of shape ``batch_shape`` (or ``(*batch_shape, 1, 1)``) sets one value per batch.
    sigma_b2 : float or tensor, >= 0
        Bias variance; default 0.  Shapes as for ``sigma_w2``.
    sigma_w2_prior, sigma_b2_prior : gpytorch.priors.Prior, optional
        Priors on ``sigma_w2`` / ``sigma_b2`` (registered as ``sigma_w2_prior`` / ``sigma_b2_prior``;
        the marginal log likelihood adds their log densities, as for ``lengthscale_prior``).
    sigma_w2_constraint : gpytorch.constraints.Interval, optional
        Constraint on ``sigma_w2`` (lower bound ``>= 0``); default ``Positive()`` (softplus).
    sigma_b2_constraint : gpytorch.constraints.Interval, optional
        Constraint on ``sigma_b2`` (lower bound ``>= 0``); default ``GreaterThan(0)`` with the transform
        ``raw ** 2``, which represents ``sigma_b2 = 0`` exactly (see Notes).
    max_elements : int, >= 1
        Block size limit passed to :meth:`Architecture.kernel`.
    **kwargs
        ``batch_shape``, ``active_dims`` and the other :class:`gpytorch.kernels.Kernel` options.

    Attributes
    ----------
    sigma_w2, sigma_b2 : torch.Tensor, shape ``(*batch_shape, 1, 1)``
        The constrained hyperparameters (raw parameters ``raw_sigma_w2``, ``raw_sigma_b2``).

    Raises
    ------
    TypeError
        ``architecture`` not an Architecture, a prior that is not a ``Prior``, a constraint that is not
        an ``Interval``, ``x1``/``x2`` not tensors.
    ValueError
        Variances outside ``sigma_w2 > 0``, ``sigma_b2 >= 0`` or outside their constraints, an architecture
        without an analytic kernel or not ending flat, ``batch_shape`` not positive ints, inputs whose
        last dimension is not ``n``, non-finite inputs.

    Notes
    -----
    Precision: the recursion always runs in float64 (or wider) and the covariance is returned in the
    inputs' dtype, as GPyTorch kernels do, so float32 models work.  **float64 models** (``model.double()``
    and float64 data) **are recommended**, and are what :func:`gpbound.posterior.certify` computes in:
    its Cholesky solves and margins assume float64 round-off, and a float32 covariance of a deep
    architecture is often too ill-conditioned for GPyTorch's float32 solves (jitter warnings).

    Batches: with ``batch_shape = B`` the inputs may be ``(N, n)`` or ``(..., *B, N, n)`` and the
    covariance is ``(..., *B, N, M)``; batch ``b`` is the kernel with ``(sigma_w2[b], sigma_b2[b])``,
    evaluated batch by batch (one recursion per batch entry).

    Constraints: ``sigma_w2 = softplus(raw_sigma_w2)`` (``Positive``) by default;
    ``sigma_b2 = raw_sigma_b2 ** 2`` (``GreaterThan(0)`` with a square transform), so
    ``sigma_b2 = 0`` is represented exactly by ``raw_sigma_b2 = 0`` (the He-initialised,
    bias-free networks of the paper).  At exactly 0 the gradient w.r.t. the raw value is 0;
    start an optimisation from a positive value if the bias variance is to be learnt.

    Examples
    --------
    >>> import gpytorch, torch
    >>> from gpbound.kernels import Architecture, Dense, Flatten, NNGPKernel, ReLU, serial
    >>> arch = Architecture(serial(Flatten(8), ReLU(), Dense(1)), input_shape=(3,))
    >>> k = NNGPKernel(arch, sigma_w2=2.0, sigma_b2=0.1, sigma_w2_prior=gpytorch.priors.GammaPrior(2.0, 1.0))
    >>> k(torch.randn(5, 3, dtype=torch.float64)).to_dense().shape
    torch.Size([5, 5])
    >>> kb = NNGPKernel(arch, sigma_w2=torch.tensor([1.0, 2.0]), batch_shape=torch.Size([2]))
    >>> kb(torch.randn(5, 3, dtype=torch.float64)).to_dense().shape
    torch.Size([2, 5, 5])
    """

    has_lengthscale = False

    def __init__(self, architecture, sigma_w2=2.0, sigma_b2=0.0, max_elements=2 ** 24, *,
                 sigma_w2_prior=None, sigma_b2_prior=None, sigma_w2_constraint=None, sigma_b2_constraint=None,
                 **kwargs):
        if isinstance(architecture, dict):
            architecture = Architecture.from_dict(architecture)
        if not isinstance(architecture, Architecture):
            raise TypeError(f"architecture must be an Architecture (or its dict); got {type(architecture).__name__}")
        out = architecture.out_spec
        if out.grid and not out.flat_like:
            raise ValueError(f"architecture must end flat (Flatten/Dense); it ends on the grid {out.grid}")
        architecture._require_kernel()
        kwargs["batch_shape"] = _batch_shape(kwargs.get("batch_shape"))
        _check_prior(sigma_w2_prior, "sigma_w2_prior")
        _check_prior(sigma_b2_prior, "sigma_b2_prior")
        if sigma_w2_constraint is None:
            sigma_w2_constraint = Positive()
        if sigma_b2_constraint is None:
            sigma_b2_constraint = GreaterThan(0.0, transform=torch.square, inv_transform=torch.sqrt)
        _check_constraint(sigma_w2_constraint, "sigma_w2_constraint", "sigma_w2 > 0")
        _check_constraint(sigma_b2_constraint, "sigma_b2_constraint", "sigma_b2 >= 0")
        super().__init__(**kwargs)
        self.architecture = architecture
        self.max_elements = _pos_int(max_elements, "max_elements", "NNGPKernel")
        shape = (*self.batch_shape, 1, 1)
        self.register_parameter("raw_sigma_w2", torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64)))
        self.register_parameter("raw_sigma_b2", torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64)))
        self.register_constraint("raw_sigma_w2", sigma_w2_constraint)
        self.register_constraint("raw_sigma_b2", sigma_b2_constraint)
        if sigma_w2_prior is not None:
            self.register_prior("sigma_w2_prior", sigma_w2_prior, self._sigma_w2_param, self._sigma_w2_closure)
        if sigma_b2_prior is not None:
            self.register_prior("sigma_b2_prior", sigma_b2_prior, self._sigma_b2_param, self._sigma_b2_closure)
        self._set("sigma_w2", sigma_w2)
        self._set("sigma_b2", sigma_b2)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # state_dicts saved before batch_shape support hold raw variances of shape (1,); an
        # unbatched kernel reads them as its (1, 1) parameters (the same single value)
        for name in ("raw_sigma_w2", "raw_sigma_b2"):
            key = prefix + name
            old = state_dict.get(key)
            if old is not None and tuple(old.shape) == (1,) and len(self.batch_shape) == 0:
                state_dict[key] = old.reshape(1, 1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ parameters
    @property
    def sigma_w2(self) -> torch.Tensor:
        return self.raw_sigma_w2_constraint.transform(self.raw_sigma_w2)

    @sigma_w2.setter
    def sigma_w2(self, value):
        self._set("sigma_w2", value)

    @property
    def sigma_b2(self) -> torch.Tensor:
        return self.raw_sigma_b2_constraint.transform(self.raw_sigma_b2)

    @sigma_b2.setter
    def sigma_b2(self, value):
        self._set("sigma_b2", value)

    # closures of the priors (the module is passed in, as gpytorch's lengthscale prior does)
    def _sigma_w2_param(self, m):
        return m.sigma_w2

    def _sigma_w2_closure(self, m, v):
        m._set("sigma_w2", v)

    def _sigma_b2_param(self, m):
        return m.sigma_b2

    def _sigma_b2_closure(self, m, v):
        m._set("sigma_b2", v)

    def _set(self, name, value):
        positive = name == "sigma_w2"
        raw = getattr(self, f"raw_{name}")
        target = raw.shape  # (*batch_shape, 1, 1)
        if not isinstance(value, torch.Tensor):
            value = _check_variance(value, name)  # numbers.Real incl. NumPy scalars; overflow named
        v = torch.as_tensor(value, dtype=raw.dtype, device=raw.device)
        if len(target) > 2 and v.shape == target[:-2]:
            v = v.reshape(target)  # one value per batch entry, given with shape batch_shape
        try:
            ok = torch.broadcast_shapes(v.shape, target) == target
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError(f"{name} must be a scalar or have shape batch_shape = {tuple(target[:-2])} "
                             f"(or {tuple(target)}); got shape {tuple(v.shape)}")
        v = v.expand(target)
        if not bool(torch.isfinite(v).all()) or bool((v <= 0 if positive else v < 0).any()):
            raise ValueError(f"{name} must be finite and {'> 0' if positive else '>= 0'}; got {v.flatten().tolist()}")
        constraint = getattr(self, f"raw_{name}_constraint")
        r = constraint.inverse_transform(v)
        if not constraint.check(v) or not bool(torch.isfinite(r).all()):
            raise ValueError(f"{name} must lie in the interior of {name}_constraint = {constraint}; "
                             f"got {v.flatten().tolist()}")
        self.initialize(**{f"raw_{name}": r.to(raw.dtype)})

    # ------------------------------------------------------------------ forward
    def __call__(self, x1, x2=None, diag=False, **params):
        # argument checks only: gpytorch's Kernel.__call__ raises AttributeError on a non-tensor and
        # RuntimeError on different widths, both before forward could name the argument
        _check_call_args(x1, x2, self.active_dims, "n", self.architecture.n,
                         f" = prod(input_shape {tuple(self.architecture.input_shape)})")
        return super().__call__(x1, x2, diag=diag, **params)

    def forward(self, x1, x2, diag=False, **params):
        # gpytorch 1.x passes the deprecated last_dim_is_batch in params (always False unless a caller sets it)
        if params.get("last_dim_is_batch", False):
            raise ValueError("last_dim_is_batch=True is not supported by NNGPKernel (the last dimension holds "
                             "one whole image)")
        n = self.architecture.n
        for name, x in (("x1", x1), ("x2", x2)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor of shape (..., N, n); got {type(x).__name__}")
            if x.dim() < 2 or x.shape[-1] != n:
                raise ValueError(f"{name} must have shape (..., N, n) with n = {n} = prod(input_shape "
                                 f"{tuple(self.architecture.input_shape)}) (1-D inputs are read as (N, 1)); "
                                 f"got {tuple(x.shape)}")
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
        sw2 = self.sigma_w2.to(dt)
        sb2 = self.sigma_b2.to(dt)
        kb = torch.broadcast_shapes(sw2.shape, sb2.shape)[:-2]  # the parameters' batch shape (may be sliced)
        if len(kb) == 0:
            K = self.architecture.kernel(x1, None if same else x2, sigma_w2=sw2.reshape(()), sigma_b2=sb2.reshape(()),
                                         diag=diag, max_elements=self.max_elements)
            return K.to(out_dt)
        return self._batched(x1, x2, same, sw2, sb2, kb, diag).to(out_dt)

    def _batched(self, x1, x2, same, sw2, sb2, kb, diag):
        """One recursion per entry of the parameters' batch shape ``kb`` (the last ``len(kb)`` batch
        dimensions of the output, broadcast against the inputs' batch dimensions)."""
        S = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2], kb)
        k = len(kb)
        lead = len(S) - k
        kS = S[lead:]

        def pad(x):  # give x all len(S) batch dimensions (leading 1s)
            return x.reshape((1,) * (len(S) + 2 - x.dim()) + tuple(x.shape))

        def pick(x, idx):  # batch entry idx of the last k batch dimensions (broadcast where x has size 1)
            sel = tuple(i if x.shape[lead + j] > 1 else 0 for j, i in enumerate(idx))
            return x[(Ellipsis,) + sel + (slice(None), slice(None))]

        x1p = pad(x1)
        x2p = x1p if same else pad(x2)
        w = sw2.expand(*kS, 1, 1)
        b = sb2.expand(*kS, 1, 1)
        outs = []
        for idx in itertools.product(*(range(s) for s in kS)):
            a1 = pick(x1p, idx)
            a2 = a1 if same else pick(x2p, idx)
            outs.append(self.architecture.kernel(a1, None if same else a2, sigma_w2=w[idx].reshape(()),
                                                 sigma_b2=b[idx].reshape(()), diag=diag,
                                                 max_elements=self.max_elements))
        if not outs:  # an empty batch dimension
            tail = (x1.shape[-2],) if diag else (x1.shape[-2], x2.shape[-2])
            return torch.zeros(*S, *tail, dtype=x1.dtype, device=x1.device)
        tail = outs[0].shape[lead:]
        out = torch.stack(outs, dim=lead)  # (*S[:lead], prod(kS), *tail)
        return out.reshape(*out.shape[:lead], *kS, *tail)
