"""The architecture: a layer description on a fixed input shape, its finite networks, NNGP kernel,
metadata and (de)serialisation (:meth:`Architecture.to_dict` / :meth:`Architecture.from_dict`).

The layers are in :mod:`gpbound.kernels.layers`, their pixel stencils in
:mod:`gpbound.kernels.pixels`.  Whether the kernel recursion carries the full pixel
covariance (``K_{ab}``) or only its diagonal is decided here, once
(:attr:`Architecture.full_pixels`, from :meth:`Layer.needs_full_pixels`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .layers import (_MAX_GRID_DIMS, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Layer, ReLU, Residual, Serial,
                     Spec, _BuildCtx, _check_variance, _pos_int, serial, stacked_forward)
from .state import KernelState, VarTape, input_state

__all__ = ["Architecture", "serial", "layer_from_dict"]

#: entries of one block's state on the CPU's cache-blocked path (spatial inputs): the block's layer maps
#: then run on data in the last-level cache; the variances are computed once per call (VarTape), not per
#: block.  Measured with enable_compile, 1 thread (benchmarks/kernels.py cases): 2^20 1.76-1.92 s, 2^18
#: 1.99 s, 2^21 2.17 s (conv); 2^20 4.27 s, 2^18 4.77 s (pool); eager conv 2^20 2.35 s, 2^18 2.59 s
_TILE = 1 << 20


# ---------------------------------------------------------------------------- from_dict
_TYPES = {"Conv": Conv, "Dense": Dense, "ReLU": ReLU, "Residual": Residual, "AvgPool": AvgPool,
          "GlobalAvgPool": GlobalAvgPool, "Flatten": Flatten, "Serial": Serial}
#: (required keys, optional keys) of each layer type
_KEYS = {"Conv": ({"channels", "patch"}, {"stride", "padding", "sigma_w2", "sigma_b2"}),
         "Dense": ({"width"}, {"sigma_w2", "sigma_b2"}), "ReLU": (set(), set()),
         "Residual": ({"block"}, {"shortcut", "post_activation"}), "AvgPool": ({"block"}, set()),
         "GlobalAvgPool": (set(), set()), "Flatten": ({"width"}, {"sigma_w2", "sigma_b2"}),
         "Serial": ({"layers"}, set())}


def _tup(v):
    return tuple(v) if isinstance(v, list) else v


def layer_from_dict(d, where="layers") -> Layer:
    """One layer from its :meth:`Layer.to_dict` form (ValueError/TypeError naming the place)."""
    if not isinstance(d, dict):
        raise TypeError(f"{where}: each layer must be a dict with a 'type' key; got {type(d).__name__}")
    t = d.get("type")
    if t not in _TYPES:
        raise ValueError(f"{where}: unknown layer type {t!r}; allowed: {sorted(_TYPES)}")
    keys = set(d) - {"type"}
    required, optional = _KEYS[t]
    if not required <= keys <= required | optional:
        raise ValueError(f"{where}: layer {t} takes keys {sorted(required)} (optional: {sorted(optional)}); "
                         f"got {sorted(keys)}")
    var = {k: d[k] for k in ("sigma_w2", "sigma_b2") if k in d}
    if t == "Conv":
        return Conv(d["channels"], _tup(d["patch"]), stride=_tup(d.get("stride", 1)),
                    padding=d.get("padding", "circular"), **var)
    if t == "AvgPool":
        return AvgPool(_tup(d["block"]))
    if t in ("Dense", "Flatten"):
        return _TYPES[t](d["width"], **var)
    if t in ("ReLU", "GlobalAvgPool"):
        return _TYPES[t]()
    if t == "Residual":
        sc = d.get("shortcut")
        return Residual(_layers_from_list(d["block"], where + ".Residual.block"),
                        shortcut=None if sc is None else _layers_from_list(sc, where + ".Residual.shortcut"),
                        post_activation=d.get("post_activation", False))
    return _layers_from_list(d["layers"], where + ".Serial.layers")


_layer_from_dict = layer_from_dict


def _layers_from_list(lst, where) -> Layer:
    if isinstance(lst, dict):
        return layer_from_dict(lst, where)
    if not isinstance(lst, (list, tuple)) or not lst:
        raise ValueError(f"{where}: must be a non-empty list of layer dicts")
    layers = [layer_from_dict(d, f"{where}[{i}]") for i, d in enumerate(lst)]
    return layers[0] if len(layers) == 1 else serial(*layers)


# ---------------------------------------------------------------------------- the architecture
def _channels_last(x: torch.Tensor) -> bool:
    """Whether the stacked forward (:meth:`_Network.stacked`) lays out a 2-D grid ``(P, K, C, H, W)`` channels
    last, ``(P, H, W, K, C)`` in memory, so that the grouped convolutions' view ``(P, K C, H, W)`` is torch's
    ``channels_last`` (every layer keeps it; :func:`gpbound.kernels.padding.circular_pad` too): where oneDNN
    runs the convolutions, CPU float32 / bfloat16 / float16.  Measured, theory ResNet C = 16, 8 networks
    x 5 points, 1 thread, forward + backward, float32, interleaved medians: 32 x 32 grid 30-41 -> 22-23 ms,
    12 x 12 6.0-6.6 -> 5.8-6.1 ms (the grouped convolution's backward is ~2x faster in that layout); float64
    forward (torch's own convolution, one GEMM per group) 42 -> 63 ms, so float64 stays contiguous."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16, torch.float16)


class _Network(nn.Module):
    def __init__(self, body: nn.Module, input_shape, output_dim):
        super().__init__()
        self.body = body
        self.input_shape = tuple(input_shape)
        self.n = int(math.prod(input_shape))
        self.output_dim = output_dim

    def forward(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() == 2 and x.shape[1] == self.n:
            x = x.reshape(x.shape[0], *self.input_shape)
        elif tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"x must have shape (B, {self.n}) or (B, {', '.join(map(str, self.input_shape))}) "
                             f"(input_shape={self.input_shape}); got {tuple(x.shape)}")
        return self.body(x).reshape(x.shape[0], -1)

    def stacked(self, params: dict, x):
        """``K`` networks of this structure in one call (:func:`~gpbound.kernels.layers.stacked_forward`):
        ``params`` maps each parameter name to its ``K`` stacked values ``(K, ...)``; ``x`` is ``(P, K, n)``
        or ``(P, K, *input_shape)`` (point ``p`` of network ``k`` at ``x[p, k]``).  Returns ``(P, K,
        output_dim)``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() == 3 and x.shape[2] == self.n:
            x = x.reshape(*x.shape[:2], *self.input_shape)
        elif x.dim() < 2 or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"each point of x must have shape ({self.n},) or {self.input_shape} (input_shape); "
                             f"got x of shape {tuple(x.shape)} (points, networks, ...)")
        if len(self.input_shape) == 3 and _channels_last(x):
            order = (0, 3, 4, 1, 2)  # (P, H, W, K, C) in memory, (P, K, C, H, W) in shape
            x = x.permute(order).contiguous().permute(0, 3, 4, 1, 2)
        return stacked_forward(self.body, params, x, "body.").reshape(*x.shape[:2], -1)


class Architecture:
    """A network description on a fixed input shape: finite networks, NNGP kernel, metadata.

    Parameters
    ----------
    layer : Layer or sequence of Layer
        The network (a sequence is composed with :func:`serial`).
    input_shape : tuple of int
        ``(C0, H, W)`` for images (also ``(C0, L)`` or ``(C0, D, H, W)``) or ``(n,)`` for
        flat inputs.  Inputs are flattened in ``(C, H, W)`` order.

    Attributes
    ----------
    n : int
        Input dimension ``C0 |I0|``.
    input_pixels : int
        ``|I0|`` (1 for flat inputs).
    flatten_pixels : int
        ``|I_Lf|``: pixels of the field entering the first Flatten (or Dense); the final
        grid if the network never flattens.
    M : float
        Theorem 2's constant ``sqrt(|I0| / |I_Lf|)``.
    output_dim : int
        Number of outputs of the finite network (channels x pixels of the last field).
    full_pixels : bool
        Whether the kernel recursion starts from the full pixel covariance ``K_{ab}`` (some
        layer :meth:`~gpbound.kernels.layers.Layer.needs_full_pixels`); it is carried up to the
        last such layer, the diagonal ``K_{aa}`` afterwards.
    kernel_issues : tuple of str
        Why the analytic NNGP recursion does not hold (empty: it does; :attr:`has_kernel`).
    theorem2_issues : tuple of str
        Layers outside the derivation of Theorem 2's ``M`` (docs/theory.md §5: circular stride-1
        convolutions, average pooling); empty when ``M`` applies.

    Examples
    --------
    >>> arch = Architecture(serial(Conv(8, 3), ReLU(), Conv(8, 3), AvgPool(2), ReLU(), Flatten(1)), (3, 8, 8))
    >>> arch.n, arch.input_pixels, arch.flatten_pixels, arch.M
    (192, 64, 16, 2.0)
    """

    def __init__(self, layer, input_shape):
        if isinstance(layer, (list, tuple)):
            layer = serial(*layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"layer must be a Layer (or a list of layers); got {type(layer).__name__}")
        if isinstance(input_shape, int) or not isinstance(input_shape, (tuple, list, torch.Size)):
            raise TypeError(f"input_shape must be a tuple (C0, *grid) or (n,); got {input_shape!r}")
        if not 1 <= len(input_shape) <= 1 + _MAX_GRID_DIMS:
            raise ValueError(f"input_shape must have 1 to {1 + _MAX_GRID_DIMS} entries (C0, *grid); "
                             f"got {tuple(input_shape)}")
        self.input_shape = tuple(_pos_int(s, "input_shape", "Architecture") for s in input_shape)
        self.layer = layer
        meta: dict = {}
        spec0 = Spec(self.input_shape[0], self.input_shape[1:], False)
        out = layer._out_spec(spec0, meta)
        self.out_spec = out
        self.n = int(math.prod(self.input_shape))
        self.input_pixels = spec0.pixels
        self.flatten_pixels = int(meta.get("flatten_pixels", out.pixels))
        self.M = math.sqrt(self.input_pixels / self.flatten_pixels)
        self.output_dim = out.channels * out.pixels
        # the one place that decides whether the kernel recursion starts from the full pixel covariance
        self.full_pixels = bool(layer.needs_full_pixels()) and len(self.input_shape) > 1
        self.kernel_issues = tuple(meta.get("kernel_issues", ()))
        self.theorem2_issues = tuple(meta.get("theorem2_issues", ()))

    @property
    def has_kernel(self) -> bool:
        """Whether the analytic NNGP recursion applies (see :attr:`kernel_issues` otherwise)."""
        return not self.kernel_issues

    def _require_kernel(self):
        if self.kernel_issues:
            raise ValueError("the NNGP kernel recursion does not hold for this architecture (its finite networks "
                             "are fine; use Monte Carlo): " + "; ".join(self.kernel_issues))

    def lipschitz_factor(self, sigma_w2=2.0) -> float:
        r"""A proved :math:`\Lambda` with :math:`d(x, y)^2 \le (\Lambda / n) \|x - y\|_2^2` for the NNGP
        kernel (docs/theory.md §8), covering every layer option (strides, zero padding, projection and
        post-activation residuals, global pooling, per-layer variances).

        The product of the layer factors on the pixel-mean squared increment ``m``: ``sigma_w2`` (own or
        the network's) per Dense/Flatten; ``sigma_w2 c |I| / (|P| |I'|)`` per Conv (``c`` the largest
        number of reads of one input pixel: ``|P|`` for circular stride 1, so ``sigma_w2``); 1/2 per ReLU;
        1 per (global) average pooling; ``Lambda_skip + Lambda_block`` per residual (uncorrelated
        branches; the identity has 1), times 1/2 if post-activation.

        Parameters
        ----------
        sigma_w2 : float, > 0
            The network's weight variance (layers with their own keep it).

        Examples
        --------
        >>> arch = Architecture(serial(Conv(4, 1, stride=2), ReLU(), Flatten(1)), (1, 4, 4))
        >>> arch.lipschitz_factor(2.0)   # 2 * (1 read) * 16 / (1 * 4) * 1/2 * 2
        8.0
        """
        self._require_kernel()
        sw = _check_variance(sigma_w2, "sigma_w2")
        if sw <= 0:
            raise ValueError(f"sigma_w2 must be > 0; got {sw}")
        spec0 = Spec(self.input_shape[0], self.input_shape[1:], False)
        return float(self.layer._lipschitz(spec0, sw)[0])

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        """Plain JSON-able description ``{"input_shape": [...], "layers": [...]}``."""
        layers = self.layer.layers if isinstance(self.layer, Serial) else [self.layer]
        return {"input_shape": list(self.input_shape), "layers": [l.to_dict() for l in layers]}

    @classmethod
    def from_dict(cls, d) -> "Architecture":
        """Inverse of :meth:`to_dict`; validates keys and values (ValueError/TypeError)."""
        if not isinstance(d, dict):
            raise TypeError(f"architecture description must be a dict; got {type(d).__name__}")
        if set(d) != {"input_shape", "layers"}:
            raise ValueError(f"architecture description needs exactly the keys 'input_shape' and 'layers'; "
                             f"got {sorted(d)}")
        shape = d["input_shape"]
        if not isinstance(shape, (list, tuple)):
            raise TypeError(f"input_shape must be a list of positive ints; got {shape!r}")
        return cls(_layers_from_list(d["layers"], "layers"), tuple(shape))

    def __repr__(self):
        return f"Architecture({self.layer!r}, input_shape={self.input_shape})"

    def __eq__(self, other):
        return isinstance(other, Architecture) and self.to_dict() == other.to_dict()

    # ----------------------------------------------------------------- finite networks
    def network(self, width=None, sigma_w2=2.0, sigma_b2=0.0, seed=None, device=None,
                dtype=torch.float64) -> nn.Module:
        """A finite random network of this description.

        Weights ``N(0, sigma_w2 / fan_in)`` (``fan_in = C_in |P|`` for Conv whatever its padding,
        ``C |I|`` for Flatten), biases ``N(0, sigma_b2)``; a layer's own ``sigma_w2`` / ``sigma_b2``
        replaces these (an own ``sigma_b2 = 0``: zero biases, no random draw).  Parameters are
        drawn in execution order (a residual block before its shortcut), weight then bias.

        Parameters
        ----------
        width : int, optional
            Overrides every hidden width / channel count; the final weight layer keeps its
            declared width (unless it sits inside a Residual, whose shape must match).
        sigma_w2 : float, > 0
        sigma_b2 : float, >= 0
        seed : int, optional
            Seed of a CPU ``torch.Generator`` (weights are drawn on CPU in float64, then
            moved), so a seed gives the same network on every device.
        device, dtype
            Of the returned module's parameters.

        Returns
        -------
        torch.nn.Module
            Maps ``(B, n)`` or ``(B, *input_shape)`` to ``(B, output_dim)``.
        """
        sw2, sb2 = (float(v) for v in self._variances(sigma_w2, sigma_b2))
        if width is not None:
            width = _pos_int(width, "width", "Architecture.network")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None; got {seed!r}")
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(seed)
        leaves = self.layer._width_leaves()
        keep = len(leaves) - 1 if leaves and not leaves[-1] else -1
        ctx = _BuildCtx(width, keep, sw2, sb2, gen, device, dtype)
        spec0 = Spec(self.input_shape[0], self.input_shape[1:], False)
        body, out = self.layer._build(spec0, ctx)
        return _Network(body, self.input_shape, out.channels * out.pixels).to(device=device, dtype=dtype)

    # ----------------------------------------------------------------- kernels
    def _check_x(self, x, name):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
        if x.dim() < 2 or x.shape[-1] != self.n:
            raise ValueError(f"{name} must have shape (..., N, n) with n = {self.n} = prod(input_shape="
                             f"{self.input_shape}); got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf; inputs must be finite")

    def kernel_state(self, x1, x2=None, sigma_w2=2.0, sigma_b2=0.0, diag=False, full=None) -> KernelState:
        """The final :class:`KernelState` (pixel-level covariances) for inputs ``x1``, ``x2``.

        ``full=True`` carries the full pixel covariance through every layer (for
        pixel-level checks); ``None`` decides it from the architecture.
        """
        self._require_kernel()
        self._check_x(x1, "x1")
        if x2 is None:
            x2 = x1
        else:
            self._check_x(x2, "x2")
        if diag and x1.shape[-2] != x2.shape[-2]:
            raise ValueError(f"diag=True needs x1 and x2 with the same number of rows; got {x1.shape[-2]} and "
                             f"{x2.shape[-2]}")
        sw2, sb2 = self._variances(sigma_w2, sigma_b2)
        use_full = self.full_pixels if full is None else bool(full)
        st = input_state(x1, x2, self.input_shape, use_full, diag)
        return self.layer._kernel(st, sw2, sb2, bool(full))

    @staticmethod
    def _variances(sigma_w2, sigma_b2):
        sw = _check_variance(sigma_w2, "sigma_w2")
        sb = _check_variance(sigma_b2, "sigma_b2")
        if sw <= 0:
            raise ValueError(f"sigma_w2 must be > 0; got {sw}")
        if sb < 0:
            raise ValueError(f"sigma_b2 must be >= 0; got {sb}")
        if isinstance(sigma_w2, torch.Tensor):
            sw = sigma_w2.reshape(())
        if isinstance(sigma_b2, torch.Tensor):
            sb = sigma_b2.reshape(())
        return sw, sb

    def kernel(self, x1, x2=None, sigma_w2=2.0, sigma_b2=0.0, diag=False, max_elements=2 ** 24):
        """NNGP kernel of one output unit (docs/theory.md §1; paper eqs. (1)-(5)).

        Parameters
        ----------
        x1 : torch.Tensor, shape ``(..., N1, n)``
        x2 : torch.Tensor, shape ``(..., N2, n)``, optional (defaults to ``x1``)
        sigma_w2 : float or 0-dim tensor, > 0
        sigma_b2 : float or 0-dim tensor, >= 0
        diag : bool
            Return ``K(x1_i, x2_i)``, shape ``(..., N)``.
        max_elements : int
            Largest number of entries of one state tensor; the pair set is cut into
            blocks so that the (pixel) state of a block stays below it.  When ``x2`` is
            ``x1`` only the blocks on and above the diagonal are computed.

        Returns
        -------
        torch.Tensor
            ``(..., N1, N2)`` or ``(..., N)``.
        """
        if self.out_spec.grid and not self.out_spec.flat_like:
            raise ValueError(f"the kernel of one output unit needs a flat output; this architecture ends on the "
                             f"grid {self.out_spec.grid}: end it with Flatten(width) or Dense(width)")
        self._require_kernel()
        max_elements = _pos_int(max_elements, "max_elements", "Architecture.kernel")
        self._check_x(x1, "x1")
        same = x2 is None or x2 is x1
        if x2 is None:
            x2 = x1
        else:
            self._check_x(x2, "x2")
        sw2, sb2 = self._variances(sigma_w2, sigma_b2)
        per_pair = self.input_pixels ** 2 if self.full_pixels else self.input_pixels
        batch = int(math.prod(torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])))
        N1, N2 = x1.shape[-2], x2.shape[-2]
        if diag:
            if N1 != N2:
                raise ValueError(f"diag=True needs x1 and x2 with the same number of rows; got {N1} and {N2}")
            step = max(1, max_elements // (per_pair * batch))
            outs = []
            for i in range(0, N1, step):
                a, b = x1[..., i:i + step, :], x2[..., i:i + step, :]
                outs.append(self._run(a, a if same else b, sw2, sb2, True))
            return torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        budget = max(1, max_elements // (per_pair * batch))  # pairs per block
        if self.input_pixels > 1 and x1.device.type == "cpu":
            # cache-blocked path: blocks whose state fits in cache (every layer map then sweeps cached data)
            budget = min(budget, max(1, _TILE // (per_pair * batch)))
        if N1 * N2 <= budget:
            return self._run(x1, x1 if same else x2, sw2, sb2, False)
        return self._blocked(x1, x2, same, budget, sw2, sb2)

    def _blocked(self, x1, x2, same, budget, sw2, sb2):
        """All pairs in blocks of ``b1 x b2 <= budget`` pairs; with ``same`` only the blocks on and above
        the diagonal (the others are their transposes).

        The variances of every layer depend on the rows only: they are computed once for all rows (a
        variance-only recursion recording them on a :class:`~gpbound.kernels.state.VarTape`), and each
        block replays its rows' slices while computing only the cross covariances.
        """
        N1, N2 = x1.shape[-2], x2.shape[-2]
        b1 = min(N1, max(1, math.isqrt(budget)))
        b2 = min(N2, max(1, budget // b1))
        if same:
            b1 = b2 = min(b1, b2)
        tape = VarTape()
        self.layer._kernel(input_state(x1, x1 if same else x2, self.input_shape, self.full_pixels, False,
                                       tape=tape.recorder()), sw2, sb2, False)
        lead = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
        out = None
        # every block has the shape (b1, b2): a ragged last block starts earlier instead (it recomputes a
        # few pairs of its neighbour, with the same arithmetic, so the same values), so a compiled map
        # sees one shape per layer, whatever N1 and N2 (enable_compile: no recompilation per call)
        starts1 = _block_starts(N1, b1)
        starts2 = _block_starts(N2, b2)
        for a, i in enumerate(starts1):
            for j in (starts1[a:] if same else starts2):
                xa = x1[..., i:i + b1, :]
                xb = x2[..., j:j + b2, :]
                head = tape.replay((i, b1), (j, b2))
                blk = self._run(xa, xa if (same and i == j) else xb, sw2, sb2, False, head)
                head.finish()
                if out is None:
                    out = torch.empty(*lead, N1, N2, dtype=blk.dtype, device=blk.device)
                out[..., i:i + b1, j:j + b2] = blk
                if same and j != i:
                    out[..., j:j + b2, i:i + b1] = blk.transpose(-1, -2)
        return out

    def _run(self, x1, x2, sw2, sb2, diag, tape=None):
        st = input_state(x1, x2, self.input_shape, self.full_pixels, diag, tape=tape)
        st = self.layer._kernel(st, sw2, sb2, False)
        out = st.to_diag().cross
        d = len(st.grid)
        return out.reshape(out.shape[: out.dim() - d]) if d else out


def _block_starts(N: int, b: int):
    """Starts of the blocks ``[s, s + b)`` covering ``range(N)`` (``b <= N``): multiples of ``b``, the last
    one moved back to ``N - b``."""
    starts = list(range(0, N - b + 1, b))
    if starts[-1] + b < N:
        starts.append(N - b)
    return starts
