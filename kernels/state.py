"""The kernel state passed between layers of an infinitely wide network.

A :class:`KernelState` holds, for one batch of input pairs, the covariance of one
channel of the current layer's field (all channels are i.i.d. at infinite width):

* ``cross``: covariance between the fields at ``x1_i`` and ``x2_j``;
* ``var1`` / ``var2``: the same quantity between ``x1_i`` and itself (``x2_j`` and
  itself); the ReLU map ``F`` needs the variances at each pixel.

Pixels are carried either as the diagonal ``K_{aa}`` only (``full=False``: trailing
dims ``*grid``) or as the full pixel-by-pixel covariance ``K_{ab}`` (``full=True``:
trailing dims ``*grid, *grid``).  A conv layer maps diagonal to diagonal, so the full
representation is only carried up to the last average pooling (decided once for the
whole network by :mod:`gpbound.kernels.layers`).

Pair layouts: ``diag_pairs=False``: ``cross`` is ``(..., N1, N2, *pix)``;
``diag_pairs=True``: ``cross`` is ``(..., N, *pix)`` (pairs ``(x1_i, x2_i)``).
``var1`` is ``(..., N1, *pix)`` and ``var2`` is ``(..., N2, *pix)`` in both layouts.

Variances once per call (:class:`VarTape`): a kernel evaluated block by block needs, in every block,
the variances of its rows at every layer; they depend on the rows only, so
:meth:`gpbound.kernels.architecture.Architecture.kernel` runs the recursion once on a
*variance-only* state (``cross=None``) over all rows, which records the variances of every step
on a tape, and each block then replays them (row slices of the recorded tensors, no arithmetic)
while computing only its ``cross``.  The layer maps do not change: every state method that makes
new variances goes through :meth:`KernelState._new_vars`, which computes (no tape), records or
replays them.  The steps of a recursion do not depend on the values, so the replay meets the
recorded steps in the same order; the number of steps is checked at the end of every block.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, List, Optional, Tuple

import torch

from .arccos import _relu_map

__all__ = ["KernelState", "VarTape", "input_state"]


class VarTape:
    """The variances of every step of one kernel recursion, recorded once and replayed per block.

    Use :meth:`recorder` for the variance-only pass over all rows, then :meth:`replay` once per
    block of rows (see the module docstring).

    Examples
    --------
    >>> import torch
    >>> x = torch.arange(12.0, dtype=torch.float64).reshape(3, 4)
    >>> tape = VarTape()
    >>> rec = input_state(x, x, (4,), False, False, tape=tape.recorder())
    >>> rec.cross is None, len(tape)
    (True, 1)
    >>> st = input_state(x[1:], x[:2], (4,), False, False, tape=tape.replay((1, 2), (0, 2)))
    >>> st.var1.tolist(), st.var2.tolist()
    ([31.5, 91.5], [3.5, 31.5])
    """

    def __init__(self):
        self._steps: List[Tuple[torch.Tensor, torch.Tensor]] = []

    def __len__(self):
        return len(self._steps)

    def recorder(self) -> "_TapeHead":
        """A head that computes every step's variances and appends them to the tape."""
        return _TapeHead(self, None)

    def replay(self, rows1, rows2) -> "_TapeHead":
        """A head that returns the recorded variances of rows ``rows1 = (start, length)`` of ``x1`` and
        ``rows2`` of ``x2``, step by step (views; nothing is computed)."""
        return _TapeHead(self, (tuple(rows1), tuple(rows2)))


class _TapeHead:
    """One pass over a :class:`VarTape`: recording (``rows is None``) or replaying row slices."""

    def __init__(self, tape: VarTape, rows):
        self.tape, self.rows, self.pos = tape, rows, 0

    def step(self, compute: Callable[[], Tuple[torch.Tensor, torch.Tensor]], pix_ndim: int):
        """The next step's ``(var1, var2)``; ``pix_ndim``: trailing pixel dims of the new variances."""
        if self.rows is None:
            v1, v2 = compute()
            self.tape._steps.append((v1, v2))
            return v1, v2
        if self.pos >= len(self.tape._steps):  # internal invariant: the replay follows the recording
            raise RuntimeError("variance tape replayed past its end (the recursion took other steps)")
        v1, v2 = self.tape._steps[self.pos]
        self.pos += 1
        (s1, n1), (s2, n2) = self.rows
        out1 = v1.narrow(v1.dim() - pix_ndim - 1, s1, n1)
        out2 = out1 if (v2 is v1 and (s1, n1) == (s2, n2)) else v2.narrow(v2.dim() - pix_ndim - 1, s2, n2)
        return out1, out2

    def finish(self):
        """Check that a replay used every recorded step (internal invariant)."""
        if self.rows is not None and self.pos != len(self.tape._steps):
            raise RuntimeError(f"variance tape: the replay used {self.pos} of {len(self.tape._steps)} steps")


@dataclass(frozen=True)
class KernelState:
    """Covariance state of one layer (immutable; every map returns a new state).

    Attributes
    ----------
    cross, var1, var2 : torch.Tensor
        See the module docstring for the shapes.
    grid : tuple of int
        The current pixel grid (``()`` once flattened).
    full : bool
        Full pixel covariance (True) or its diagonal only (False).
    diag_pairs : bool
        Pairs ``(x1_i, x2_i)`` only (True) or all pairs ``(x1_i, x2_j)`` (False).
    tape : optional
        A :class:`VarTape` head: the new variances of every step are recorded (a variance-only
        state, ``cross=None``) or replayed from an earlier recording (module docstring).
    """

    cross: Optional[torch.Tensor]
    var1: torch.Tensor
    var2: torch.Tensor
    grid: Tuple[int, ...]
    full: bool
    diag_pairs: bool
    tape: Optional[_TapeHead] = None

    # ------------------------------------------------------------------ helpers
    @property
    def pix_ndim(self) -> int:
        """Number of trailing pixel dimensions of every tensor."""
        return len(self.grid) * (2 if self.full else 1)

    @property
    def num_pixels(self) -> int:
        return int(math.prod(self.grid)) if self.grid else 1

    def _new_vars(self, fn, others=(), grid=None, full=None):
        """``(fn(var1, *others' var1), fn(var2, *others' var2))`` for the next step, or its replay.

        ``var2`` is computed only when it is not ``var1`` itself (x with itself: one pass).
        ``grid``/``full``: those of the new state (for the replay's row dimension).
        """
        def compute():
            v1 = fn(self.var1, *(o.var1 for o in others))
            if self.var2 is self.var1 and all(o.var2 is o.var1 for o in others):
                return v1, v1
            return v1, fn(self.var2, *(o.var2 for o in others))

        if self.tape is None:
            return compute()
        g = self.grid if grid is None else grid
        f = self.full if full is None else full
        return self.tape.step(compute, len(g) * (2 if f else 1))

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor], grid=None) -> "KernelState":
        """Apply the same linear map ``fn`` (acting on the trailing pixel dims) to all three."""
        grid = self.grid if grid is None else tuple(grid)
        var1, var2 = self._new_vars(fn, grid=grid)
        return replace(self, cross=None if self.cross is None else fn(self.cross), var1=var1, var2=var2, grid=grid)

    def _pixel_diag(self, t: torch.Tensor) -> torch.Tensor:
        """``(..., *g, *g) -> (..., *g)``: the pixel diagonal ``K_{aa}`` of a full tensor."""
        d, P = len(self.grid), self.num_pixels
        if d == 0:
            return t
        lead = t.shape[: t.dim() - 2 * d]
        return torch.diagonal(t.reshape(*lead, P, P), dim1=-2, dim2=-1).reshape(*lead, *self.grid)

    def to_diag(self) -> "KernelState":
        """Drop the off-diagonal pixel covariances (no-op when already diagonal)."""
        if not self.full:
            return self
        var1, var2 = self._new_vars(self._pixel_diag, full=False)
        cross = None if self.cross is None else self._pixel_diag(self.cross)
        return replace(self, cross=cross, var1=var1, var2=var2, full=False)

    def pixel_variances(self):
        """Per-pixel variances ``(..., N1, *grid)`` and ``(..., N2, *grid)``."""
        if self.full:
            return self._pixel_diag(self.var1), self._pixel_diag(self.var2)
        return self.var1, self.var2

    def _pair_x(self, v: torch.Tensor) -> torch.Tensor:
        """Broadcast an x1-indexed tensor ``(..., N1, *pix)`` against ``cross``."""
        return v if self.diag_pairs else v.unsqueeze(v.dim() - self.pix_ndim)

    def _pair_y(self, v: torch.Tensor) -> torch.Tensor:
        return v if self.diag_pairs else v.unsqueeze(v.dim() - self.pix_ndim - 1)

    def _full_pix(self, v: torch.Tensor, first: bool) -> torch.Tensor:
        """``(..., *g) -> (..., *g, 1..)`` (first) or ``(..., 1.., *g)``."""
        d = len(self.grid)
        if not self.full or d == 0:
            return v
        if first:
            return v.reshape(*v.shape, *([1] * d))
        lead = v.shape[: v.dim() - d]
        return v.reshape(*lead, *([1] * d), *self.grid)

    # ------------------------------------------------------------------ the ReLU map
    def relu(self) -> "KernelState":
        """``K -> F(K)`` entrywise (docs/theory.md §1), with ``F(k, k, k) = k/2`` on the variances."""
        cross = None
        if self.cross is not None:
            v1, v2 = self.pixel_variances()
            kx = self._pair_x(self._full_pix(v1, True))
            ky = self._pair_y(self._full_pix(v2, False))
            cross = _relu_map(kx, ky, self.cross)
        if self.full and self.grid:
            def var_map(t):
                v = self._pixel_diag(t)
                return _relu_map(self._full_pix(v, True), self._full_pix(v, False), t)
        else:
            def var_map(t):
                return 0.5 * t
        var1, var2 = self._new_vars(var_map)
        return replace(self, cross=cross, var1=var1, var2=var2)

    def __add__(self, other: "KernelState") -> "KernelState":
        a, b = self, other
        if a.full != b.full:
            a, b = a.to_diag(), b.to_diag()
        if a.grid != b.grid:
            raise ValueError(f"cannot add kernel states on grids {a.grid} and {b.grid}")
        var1, var2 = a._new_vars(torch.add, others=(b,))
        cross = None if a.cross is None else a.cross + b.cross
        return replace(a, cross=cross, var1=var1, var2=var2)


#: Gram matrices of x with itself with at least this many rows are computed block-triangularly
_SYM_MIN_ROWS = 512
#: number of row blocks of the block-triangular Gram (work ~ (m + 1) / (2 m) of the full GEMM)
_SYM_BLOCKS = 8


def _sym_gram(x: torch.Tensor) -> torch.Tensor:
    """``x @ x^T`` for ``x`` of shape ``(..., N, n)``, exploiting symmetry (no autograd).

    Row block ``i`` is multiplied only with the rows from its own block on (one
    rectangular GEMM per block: ``(m + 1) / (2 m)`` of the flops), and the strict lower
    triangle is then mirrored (also inside the diagonal blocks), so the result is exactly
    symmetric.
    """
    N = x.shape[-2]
    bs = -(-N // _SYM_BLOCKS)
    out = torch.empty(*x.shape[:-2], N, N, dtype=x.dtype, device=x.device)
    for i in range(0, N, bs):
        j = min(N, i + bs)
        out[..., i:j, i:] = x[..., i:j, :] @ x[..., i:, :].transpose(-1, -2)
        blk = out[..., i:j, i:j]  # the GEMM's diagonal block: symmetrise it exactly
        blk.copy_(blk.triu() + blk.triu(1).transpose(-1, -2))
        if j < N:
            out[..., j:, i:j] = out[..., i:j, j:].transpose(-1, -2)
    return out


#: rows of x1 per chunk of the diagonal-pixel input covariance (the chunk's output, ~N2 * P entries per
#: row, is built by C in-cache passes, then lands in the output once)
_COV_CHUNK = 1 << 16


def _input_cov(x1: torch.Tensor, x2: torch.Tensor, grid, full: bool, pairs: str) -> torch.Tensor:
    """Channel-averaged input covariance ``(1/C0) sum_c x_{c,a} y_{c,b}``.

    ``x1``: ``(..., N1, C, P)``, ``x2``: ``(..., N2, C, P)`` with P the flattened grid.
    ``pairs``: "outer" (all pairs), "diag" (matched pairs), "self" (x with itself, per item).

    The ``1/C`` rides on ``x1`` (``C P`` entries per row, not the ``P^2`` per pair of the result),
    so each entry is ``sum_c (x_{c,a}/C) y_{c,b}``: equal to the defining sum to a few ulps.  The
    full-pixel outer covariance is one batched GEMM ``(N1, 1, P, C) @ (1, N2, C, Q)`` written
    straight in the state's layout ``(N1, N2, P, Q)`` (the ``(N1 P, C) @ (C, N2 Q)`` GEMM needs a
    permuting copy of its output after it: two passes over the largest tensor of the recursion).
    """
    C = x1.shape[-2]
    d = len(grid)
    x1c = x1 / C  # small: (..., N1, C, P)
    if pairs == "outer":
        if d == 0:  # flat input: a plain Gram matrix
            a, b = x1.squeeze(-1), x2.squeeze(-1)
            if x1 is x2 and a.shape[-2] >= _SYM_MIN_ROWS and not a.requires_grad:
                return _sym_gram(a).div_(C)
            # in-place scaling of the fresh matmul output is autograd-safe (mm saves its inputs only)
            return (a @ b.transpose(-1, -2)).div_(C)
        N1, N2, P = x1.shape[-3], x2.shape[-3], x1.shape[-1]
        if not full:
            if x1.requires_grad or x2.requires_grad:
                out = (x1c.unsqueeze(-3) * x2.unsqueeze(-4)).sum(-2)  # (..., N1, N2, P)
            else:
                out = _diag_pixel_cov(x1c, x2)
            return out.reshape(*out.shape[:-1], *grid)
        # full: one batched GEMM into the state's layout (..., N1, N2, P, Q)
        out = torch.matmul(x1c.transpose(-1, -2).unsqueeze(-3), x2.unsqueeze(-4))
        return out.reshape(*out.shape[:-2], *grid, *grid)
    # matched pairs (x1_i, x2_i); "self" is the same with x2 = x1
    if d == 0:
        return (x1c.squeeze(-1) * x2.squeeze(-1)).sum(-1)
    if not full:
        out = (x1c * x2).sum(-2)
        return out.reshape(*out.shape[:-1], *grid)
    out = x1c.transpose(-1, -2) @ x2  # (..., N, P, Q)
    return out.reshape(*out.shape[:-2], *grid, *grid)


def _diag_pixel_cov(x1c: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """``out[..., i, j, p] = sum_c x1c[..., i, c, p] x2[..., j, c, p]`` (no autograd).

    Built in blocks of rows ``i`` whose output (``rows * N2 * P`` entries) stays in cache: the
    ``C`` multiply-add passes of a block run there, and the output is written to memory once
    (the unblocked form makes ``C`` passes over the whole ``(N1, N2, P)`` tensor).
    """
    lead = torch.broadcast_shapes(x1c.shape[:-3], x2.shape[:-3])
    N1, C, P = x1c.shape[-3:]
    N2 = x2.shape[-3]
    out = torch.empty(*lead, N1, N2, P, dtype=torch.promote_types(x1c.dtype, x2.dtype), device=x1c.device)
    a = x1c.unsqueeze(-3)  # (..., N1, 1, C, P)
    b = x2.unsqueeze(-4)  # (..., 1, N2, C, P)
    per = max(1, P * max(1, math.prod(lead)))  # entries per pair (i, j)
    budget = _COV_CHUNK if out.device.type == "cpu" else N1 * N2 * per  # cache blocks: CPU only
    cols = max(1, min(N2, budget // per))
    rows = max(1, budget // (per * cols))
    for i in range(0, N1, rows):
        for j in range(0, N2, cols):
            o = out[..., i:i + rows, j:j + cols, :]
            ai, bj = a[..., i:i + rows, :, :, :], b[..., j:j + cols, :, :]
            torch.mul(ai[..., 0, :], bj[..., 0, :], out=o)
            for c in range(1, C):
                o.addcmul_(ai[..., c, :], bj[..., c, :])
    return out


def input_state(x1: torch.Tensor, x2: torch.Tensor, input_shape, full: bool, diag_pairs: bool,
                tape: Optional[_TapeHead] = None) -> KernelState:
    """Kernel state of the raw input: ``K_{ab}(x, y) = (1/C0) sum_c x_{c,a} y_{c,b}``.

    With this normalisation the input conv map of docs/theory.md §1,
    ``K' = sb2 + sw2/(C0 |P|) sum_b sum_c x_{c,a+b} y_{c,a'+b}``, is the generic
    conv map applied to the input state.

    Parameters
    ----------
    x1, x2 : torch.Tensor
        ``(..., N1, n)`` and ``(..., N2, n)``, already validated, ``n = prod(input_shape)``.
    input_shape : tuple of int
        ``(C0, *grid)``; a 1-tuple ``(n,)`` is a flat input.
    full : bool
        Carry the full pixel covariance.
    diag_pairs : bool
        Matched pairs only (``N1 == N2``).
    tape : optional
        A :class:`VarTape` head: recording (a variance-only state, ``cross=None``) or replaying the
        variances of the rows of ``x1`` / ``x2`` (then only ``cross`` is computed).
    """
    C = int(input_shape[0])
    grid = tuple(int(g) for g in input_shape[1:])
    P = int(math.prod(grid)) if grid else 1
    full = bool(full) and len(grid) > 0
    a = x1.reshape(*x1.shape[:-1], C, P)
    b = x2.reshape(*x2.shape[:-1], C, P)
    recording = tape is not None and tape.rows is None
    cross = None if recording else _input_cov(a, a if x2 is x1 else b, grid, full, "diag" if diag_pairs else "outer")

    def variances():
        var1 = _input_cov(a, a, grid, full, "self")
        return var1, (var1 if x2 is x1 else _input_cov(b, b, grid, full, "self"))

    var1, var2 = variances() if tape is None else tape.step(variances, len(grid) * (2 if full else 1))
    return KernelState(cross=cross, var1=var1, var2=var2, grid=grid, full=full, diag_pairs=diag_pairs, tape=tape)
