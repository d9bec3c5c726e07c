"""Many networks of one architecture evaluated in one batched call.

The parameters of ``K`` structurally identical ``torch.nn.Module`` s are stacked
(``torch.func.stack_module_state``).  gpbound's own networks (``Architecture.network``) then run
K stacked copies of each layer (:func:`gpbound.kernels.layers.stacked_forward`: one grouped
convolution per layer, no ``vmap``); any other module is applied with
``torch.func.functional_call`` under ``torch.func.vmap`` over the network index.
:class:`NetworkEnsemble` exposes this as a *row-wise* scalar function
``(K*P, n) -> (K*P,)`` (row ``k*P + j`` is point ``j`` of network ``k``) that
:func:`gpbound.attacks.minimal_distance` can attack directly, and as
``ensemble.shared(X) -> (K, N)`` (every network on the same points), used for
Monte Carlo sampling of network outputs.
"""
from __future__ import annotations

import copy
import warnings
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from .kernels.architecture import _Network
from .kernels.layers import supports_stacked


def spawn_seeds(seed: Optional[int], num: int) -> list:
    """``num`` independent integer seeds derived from ``seed`` (``numpy.random.SeedSequence``)."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be an int >= 1; got {num!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0; got {seed!r}")
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(int(num), dtype=np.uint32)]


#: ``vectorize="auto"`` in :meth:`NetworkEnsemble.evaluate_rows`: loop over the networks that own a
#: selected row when they are at most this fraction of the K networks, else one ``vmap`` call of all K.
#: Measured on one CPU thread (torch 2.13, forward and backward, K = 4-8): a loop over all K networks costs
#: 1.1-2.6x one vmapped call (theory ResNet C = 16, n = 192-3072, 1-5 rows each, float32 and float64; the
#: faithful ResNet at widths 8-32 and full width; MLPs), except float64 at >= 2e8 multiply-adds per network
#: and call (0.92-1.04x), so a loop over a third of them is the cheaper call.
LOOP_FRACTION = 1.0 / 3.0


class NetworkEnsemble:
    """K networks of identical structure evaluated together.

    Parameters
    ----------
    networks : sequence of torch.nn.Module
        Same class and parameter shapes (e.g. ``arch.network(seed=s)`` for several ``s``).
    points_per_network : int, optional
        ``P``: rows per network when called as a row-wise function; if ``None``,
        the row count of each call must be a multiple of ``K`` and ``P = B / K``.
    output : int or "difference", default 0
        Scalar taken from the network output ``(.., output_dim)``: the index of an
        output, or ``"difference"`` = ``out[..., 1] - out[..., 0]`` for 2-logit heads
        (label 1 where positive).
    vectorize : bool, "auto" or "vmap", default "auto"
        ``True``: one batched call over the K networks; ``False`` (or if ``vmap`` fails on the
        module): loop over them.  ``"auto"``: the batched call for K >= 2 networks (measured faster than
        the loop on the CPU for every network tried, see :data:`LOOP_FRACTION`; a convolution becomes a
        grouped one), the loop for one network, and in :meth:`evaluate_rows` the loop over the networks
        that own a selected row where they are few.  The batched call is the stacked forward of
        gpbound's own networks (:func:`gpbound.kernels.layers.stacked_forward`: no ``vmap``, no relayout
        copies, 2-D grids channels last in CPU float32; forward + backward of the theory ResNet, C = 16,
        8 networks x 5 points, float32, one thread, 32 x 32: 22-23 ms against ``vmap``'s 37-39 ms) where
        every module supports it, else ``vmap`` over
        ``torch.func.functional_call``.  ``"vmap"``: always ``vmap`` (the reference for the stacked
        forward).  All differ by rounding only.

    Examples
    --------
    >>> import torch
    >>> nets = [torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)).double()
    ...         for _ in range(5)]
    >>> ens = NetworkEnsemble(nets, points_per_network=2)
    >>> ens(torch.zeros(10, 3, dtype=torch.float64)).shape
    torch.Size([10])
    """

    def __init__(self, networks: Sequence[torch.nn.Module], points_per_network: Optional[int] = None,
                 output: Union[int, str] = 0, vectorize: Union[bool, str] = "auto"):
        networks = list(networks)
        if not networks or not all(isinstance(m, torch.nn.Module) for m in networks):
            raise TypeError("networks must be a non-empty sequence of torch.nn.Module")
        if points_per_network is not None and (isinstance(points_per_network, bool)
                                               or not isinstance(points_per_network, int)
                                               or points_per_network < 1):
            raise ValueError(f"points_per_network must be None or an int >= 1; got {points_per_network!r}")
        if not (output == "difference" or (isinstance(output, int) and not isinstance(output, bool))):
            raise ValueError(f"output must be an int index or 'difference'; got {output!r}")
        self.networks = networks
        self.K = len(networks)
        self.P = points_per_network
        self.output = output
        if not (isinstance(vectorize, bool) or vectorize in ("auto", "vmap")):
            raise ValueError(f"vectorize must be True, False, 'auto' or 'vmap'; got {vectorize!r}")
        self.vectorize = vectorize
        self.params, self.buffers = stack_module_state(networks)
        self.network_parameters = sum(int(p[0].numel()) for p in self.params.values())
        self._base = copy.deepcopy(networks[0])
        # gpbound's own networks run stacked (one grouped conv per layer, no vmap) where all modules allow it
        self._stackable = isinstance(self._base, _Network) and supports_stacked(self._base.body)

    @classmethod
    def from_architecture(cls, arch, num_networks: int, width=None, sigma_w2: float = 2.0,
                          sigma_b2: float = 0.0, seed: Optional[int] = None, device=None,
                          dtype=torch.float64, **kwargs) -> "NetworkEnsemble":
        """``num_networks`` random networks ``arch.network(width, sigma_w2, sigma_b2, seed=s_k)``
        with seeds ``spawn_seeds(seed, num_networks)``."""
        seeds = spawn_seeds(seed, num_networks)
        nets = [arch.network(width=width, sigma_w2=sigma_w2, sigma_b2=sigma_b2, seed=s,
                             device=device, dtype=dtype) for s in seeds]
        ens = cls(nets, **kwargs)
        ens.seeds = seeds
        return ens

    # ------------------------------------------------------------------ evaluation
    def _select(self, out: torch.Tensor) -> torch.Tensor:
        if self.output == "difference":
            return out[..., 1] - out[..., 0]
        return out[..., self.output]

    def _points(self, B: int, name: str, per: str = "") -> int:
        """Rows per network ``P`` of a row-wise call with ``B`` rows (network-major), validated."""
        P = self.P if self.P is not None else B // self.K
        if B != self.K * P or P < 1:
            raise ValueError(f"{name} must have K*P = {self.K}*{self.P if self.P else 'P'} rows{per} "
                             f"(network-major); got {B}")
        return P

    def _use_vmap(self, x: torch.Tensor, shared: bool) -> bool:
        """Whether this call uses ``vmap`` (see ``vectorize``)."""
        if self.vectorize != "auto":
            return bool(self.vectorize)
        # vmap over one network only adds its overhead (measured 2.2-3.2x the loop)
        return shared or self.K > 1

    def _apply_all(self, x: torch.Tensor, shared: bool, networks: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(K, P, n)`` (or ``(N, n)`` if shared) -> ``(K, P, output_dim)``; with ``networks`` (an index
        tensor of ``K'`` networks, not shared) ``(K', P, n)`` -> ``(K', P, output_dim)``, those networks only."""
        params, buffers = self.params, self.buffers
        if networks is not None:
            params = {k: v[networks] for k, v in params.items()}
            buffers = {k: v[networks] for k, v in buffers.items()}
        batched = self._use_vmap(x, shared) and (networks is None or networks.numel() > 1
                                                 or self.vectorize in (True, "vmap"))
        if batched and self._stackable and self.vectorize != "vmap":
            return self._stacked(x, shared, params, buffers)
        if batched:
            def call(params, buffers, xi):
                return functional_call(self._base, (params, buffers), (xi,))
            try:
                return vmap(call, in_dims=(0, 0, None if shared else 0))(params, buffers, x)
            except (RuntimeError, NotImplementedError) as exc:  # what vmap raises for a module it cannot
                # trace (data-dependent control flow, .item(), an op without a batching rule): loop instead,
                # but never hide an error of the input or of the module
                try:
                    out = self._loop(x, shared, networks)
                except (RuntimeError, NotImplementedError) as loop_exc:
                    # the loop fails too: an error of the input or of the module, not of vmap
                    raise loop_exc from exc
                warnings.warn(f"NetworkEnsemble: vmap failed ({type(exc).__name__}: {exc}); evaluating the "
                              f"{self.K} networks one by one from now on (vectorize=False)", RuntimeWarning)
                self.vectorize = False
                return out
        return self._loop(x, shared, networks)

    def _stacked(self, x: torch.Tensor, shared: bool, params: dict, buffers: dict) -> torch.Tensor:
        """The batched call without ``vmap`` (:meth:`gpbound.kernels.architecture._Network.stacked`):
        ``(K, P, ...)`` (or ``(N, ...)`` if shared) -> ``(K, P, output_dim)``."""
        if shared:  # every network on the same points
            xs = x.unsqueeze(1).expand(x.shape[0], self.K, *x.shape[1:])
        else:
            xs = x.transpose(0, 1)
        return self._base.stacked({**params, **buffers}, xs).transpose(0, 1)

    def _loop(self, x: torch.Tensor, shared: bool, networks: Optional[torch.Tensor] = None) -> torch.Tensor:
        nets = self.networks if networks is None else [self.networks[k] for k in networks.tolist()]
        outs = [net(x if shared else x[k]) for k, net in enumerate(nets)]
        return torch.stack(outs, 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Row-wise scalar output: ``x`` ``(K*P, n)`` -> ``(K*P,)``; row ``k*P + j`` goes to network ``k``."""
        B = x.shape[0]
        P = self._points(B, "x")
        out = self._apply_all(x.reshape(self.K, P, *x.shape[1:]), shared=False)
        return self._select(out).reshape(B)

    def many(self, X: torch.Tensor) -> torch.Tensor:
        """``m`` candidates per row in one stacked call: ``X`` ``(m, K*P, n)`` -> ``(m, K*P)``; candidate
        ``X[j, b]`` goes to row ``b``'s network (used by the batched l1 coordinate probe)."""
        if X.dim() != 3:
            raise ValueError(f"X must have shape (m, K*P, n); got {tuple(X.shape)}")
        m, B = X.shape[0], X.shape[1]
        P = self._points(B, "X", " per candidate set")
        x = X.reshape(m, self.K, P, *X.shape[2:]).transpose(0, 1).reshape(self.K, m * P, *X.shape[2:])
        out = self._select(self._apply_all(x, shared=False))  # (K, m*P)
        return out.reshape(self.K, m, P).transpose(0, 1).reshape(m, B)

    def evaluate_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Row-wise call restricted to the networks that own a selected row: ``x`` ``(K*P, n)``, bool
        ``rows`` ``(K*P,)`` -> ``(K*P,)``, no gradients.

        Where the loop is used, only the networks with a row in ``rows`` are evaluated (each on its whole
        block of ``P`` rows, as :meth:`__call__` does with ``vectorize=False``, so with its rounding) and the
        rows of the others are ``NaN``; where ``vmap`` is used, every network is evaluated.
        ``vectorize="auto"`` loops where the networks owning a row are at most :data:`LOOP_FRACTION` of all
        (and always for one network); :meth:`__call__` then runs stacked, whose float32 rounding may differ
        from the loop's, so a check without a margin belongs in :meth:`__call__`.
        Used by :func:`gpbound.attacks.verify.find_boundary`, whose rows stop at
        different steps.
        """
        B = x.shape[0]
        P = self._points(B, "x")
        if rows.shape != (B,) or rows.dtype != torch.bool:
            raise ValueError(f"rows must be a bool tensor of shape ({B},); got {rows.dtype} {tuple(rows.shape)}")
        xk = x.reshape(self.K, P, *x.shape[1:])
        owners = torch.nonzero(rows.reshape(self.K, P).any(-1)).flatten().tolist()
        if self.vectorize == "auto":
            use_vmap = self.K > 1 and len(owners) > LOOP_FRACTION * self.K
        else:
            use_vmap = bool(self.vectorize)
        with torch.no_grad():
            if use_vmap:
                return self._select(self._apply_all(xk, shared=False)).reshape(B)
            out = torch.full((self.K, P), float("nan"), dtype=x.dtype, device=x.device)
            for k in owners:
                out[k] = self._select(self.networks[k](xk[k])).reshape(P)
        return out.reshape(B)

    def evaluate_subset(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Only the selected rows, in one batched call: ``x`` ``(K*P, n)``, bool ``rows`` ``(K*P,)`` ->
        ``(K*P,)`` (``NaN`` off ``rows``), no gradients.

        Each network that owns a selected row evaluates just those rows: the owners' parameters are
        gathered and each gets ``Q`` rows, ``Q`` the most any owner has (an owner with fewer repeats its
        first selected row, and the repeats are discarded), in one stacked call (or ``vmap``, or the loop,
        as :meth:`__call__` decides).  The work is ``(owners) x Q`` rows instead of :meth:`evaluate_rows`'s
        ``(owners) x P``; the rounding of a row then depends on the selection, so this suits an exact
        reference (float64, :func:`gpbound.attacks.verify.float64_reference`), whose rounding is far
        below every margin it is compared with, and not the model itself.
        """
        if rows.shape != (x.shape[0],) or rows.dtype != torch.bool:
            raise ValueError(f"rows must be a bool tensor of shape ({x.shape[0]},); got {rows.dtype} "
                             f"{tuple(rows.shape)}")
        out = torch.full((x.shape[0],), float("nan"), dtype=x.dtype, device=x.device)
        owners, grid, valid = self.row_grid(rows)
        if owners.numel() == 0:
            return out
        with torch.no_grad():
            y = self._apply_all(x[grid], shared=False, networks=None if owners.numel() == self.K else owners)
        out[grid[valid]] = self._select(y)[valid]
        return out

    def row_grid(self, rows: torch.Tensor):
        """The networks that own a selected row and their selected rows, as a grid: bool ``rows`` ``(K*P,)``
        -> ``(owners, grid, valid)``.

        ``owners`` ``(K',)`` are the networks with a selected row (ascending); ``grid`` ``(K', Q)`` holds the
        indices (into the ``K*P`` rows) of each owner's selected rows in ascending order, ``Q`` the most any
        owner has, an owner with fewer padded with its first selected row; ``valid`` ``(K', Q)`` marks the
        entries that are not padding.  ``x[grid]`` is then the input of the ``K'`` owners with ``Q`` rows
        each (:meth:`evaluate_subset`; the attacks' restriction to the rows still searching).
        """
        B = rows.shape[0]
        P = self._points(B, "rows")
        if rows.shape != (B,) or rows.dtype != torch.bool:
            raise ValueError(f"rows must be a bool tensor of shape ({B},); got {rows.dtype} {tuple(rows.shape)}")
        sel = rows.reshape(self.K, P)
        counts = sel.sum(-1)
        owners = torch.nonzero(counts).flatten()
        Q = int(counts.max()) if owners.numel() else 0
        # per owner: its selected rows first (a stable sort keeps them ascending), the first Q of them
        order = torch.sort((~sel[owners]).to(torch.int8), dim=-1, stable=True).indices[:, :Q]
        valid = torch.arange(Q, device=rows.device).unsqueeze(0) < counts[owners].unsqueeze(-1)
        grid = owners.unsqueeze(-1) * P + torch.where(valid, order, order[:, :1])
        return owners, grid, valid

    def evaluate_alone(self, x: torch.Tensor, rows: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Each selected row of ``x`` ``(K*P, n)`` evaluated alone by its own network (a fresh
        forward pass of ``networks[b // P]`` on the batch of one row ``x[b:b+1]``, no vmap);
        rows not in the bool mask ``rows`` are ``NaN``.  Used by
        :func:`gpbound.attacks.verify.verify` to re-verify every returned example."""
        B = x.shape[0]
        P = self._points(B, "x")
        if rows is None:
            rows = torch.ones(B, dtype=torch.bool, device=x.device)
        out = torch.full((B,), float("nan"), dtype=x.dtype, device=x.device)
        for b in torch.nonzero(rows).flatten().tolist():
            out[b] = self._select(self.networks[b // P](x[b:b + 1])).reshape(-1)[0]
        return out

    def shared(self, X: torch.Tensor) -> torch.Tensor:
        """All K networks on the same points: ``X`` ``(N, n)`` -> ``(K, N)``."""
        return self._select(self._apply_all(X, shared=True))

    def rows(self, x0: torch.Tensor) -> torch.Tensor:
        """Lay out points for the row-wise call: ``(K, P, n)`` -> ``(K*P, n)``, or ``(P, n)``
        (the same points for every network) -> ``(K*P, n)``."""
        if x0.dim() == 3:
            if x0.shape[0] != self.K:
                raise ValueError(f"x0 must have shape (K={self.K}, P, n); got {tuple(x0.shape)}")
            return x0.reshape(-1, x0.shape[-1])
        if x0.dim() == 2:
            return x0.unsqueeze(0).expand(self.K, *x0.shape).reshape(-1, x0.shape[-1])
        raise ValueError(f"x0 must have shape (P, n) or (K, P, n); got {tuple(x0.shape)}")


def stack_networks(networks: Sequence[torch.nn.Module], points_per_network: Optional[int] = None,
                   output: Union[int, str] = 0) -> NetworkEnsemble:
    """Shorthand for :class:`NetworkEnsemble` ``(networks, points_per_network, output)``."""
    return NetworkEnsemble(networks, points_per_network=points_per_network, output=output)
