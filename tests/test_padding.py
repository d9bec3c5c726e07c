"""Circular padding of the finite networks (gpbound.kernels.padding): values equal torch's circular
pad exactly; the one-pass backward equals the defining sum (a numpy oracle: every padded pixel's
gradient added onto the grid pixel it copies, index modulo N), under vmap too; planted errors fail."""
import numpy as np
import pytest
import torch
import torch.nn.functional as Fn
from torch.func import grad, vmap

from gpbound.kernels import padding
from gpbound.kernels.padding import circular_pad

DT = torch.float64
CASES = [((2, 3, 7), (1, 1)), ((2, 3, 7), (0, 2)), ((2, 3, 5, 6), (1, 1, 1, 1)), ((2, 3, 5, 6), (0, 2, 1, 0)),
         ((3, 5, 6), (2, 2, 0, 0)), ((1, 2, 4, 5, 3), (1, 1, 1, 2, 0, 1)), ((2, 2, 4, 4), (4, 4, 4, 4))]


def _numpy_fold(gy: np.ndarray, pads) -> np.ndarray:
    """d/dx of sum(gy * pad(x)): each padded index j of each padded dimension reads x[(j - lo) mod N]."""
    nd = len(pads) // 2
    grid = [gy.shape[gy.ndim - 1 - i] - pads[2 * i] - pads[2 * i + 1] for i in range(nd)][::-1]
    lows = [pads[2 * i] for i in range(nd)][::-1]
    out = np.zeros(gy.shape[:gy.ndim - nd] + tuple(grid))
    for j in np.ndindex(*gy.shape[gy.ndim - nd:]):
        src = tuple((jj - lo) % n for jj, lo, n in zip(j, lows, grid))
        out[(Ellipsis, *src)] += gy[(Ellipsis, *j)]
    return out


@pytest.mark.parametrize("shape,pads", CASES)
def test_values_equal_torch_circular_pad(shape, pads):
    x = torch.randn(shape, dtype=DT, generator=torch.Generator().manual_seed(0))
    # torch's circular mode takes (M, *grid) inputs of rank len(pads) // 2 + 1 only; compare on that view
    nd = len(pads) // 2
    ref = Fn.pad(x.reshape(-1, *shape[-nd:]), pads, mode="circular")
    assert torch.equal(circular_pad(x, pads, fold=True).reshape(ref.shape), ref)


@pytest.mark.parametrize("shape,pads", CASES)
def test_backward_equals_defining_sum(shape, pads):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, dtype=DT, generator=g, requires_grad=True)
    y = circular_pad(x, pads, fold=True)
    gy = torch.randn(y.shape, dtype=DT, generator=g)
    (gx,) = torch.autograd.grad(y, x, gy)
    ref = _numpy_fold(gy.numpy(), pads)
    # a sum of at most 8 terms per entry: 1e-13 relative to the largest entry
    np.testing.assert_allclose(gx.numpy(), ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    assert torch.autograd.gradcheck(lambda t: circular_pad(t, pads, fold=True), (x.detach().requires_grad_(),))


CHANNELS_LAST = [((2, 6, 5, 7), (1, 1, 1, 1), torch.channels_last),
                 ((3, 4, 6, 5), (0, 2, 1, 0), torch.channels_last), ((2, 5, 3, 4), (3, 4, 2, 3), torch.channels_last)]


def _numpy_pad(x: np.ndarray, pads) -> np.ndarray:
    """np.pad's periodic mode ("wrap") on the last len(pads) // 2 dimensions."""
    nd = len(pads) // 2
    widths = [(0, 0)] * (x.ndim - nd) + [(pads[2 * i], pads[2 * i + 1]) for i in range(nd)][::-1]
    return np.pad(x, widths, mode="wrap")


@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("shape,pads,layout", CHANNELS_LAST)
def test_channels_last_values_gradient_and_layout(shape, pads, layout, fold):
    """A channels-last input (the stacked networks' grids) is padded in its own layout: values equal
    numpy's periodic pad exactly, the gradient equals the defining sum (1e-13), and both the output and
    the gradient stay channels-last, with the one-pass backward (``fold``) and with autograd's."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(shape, dtype=DT, generator=g).contiguous(memory_format=layout).requires_grad_(True)
    y = circular_pad(x, pads, fold=fold)
    np.testing.assert_array_equal(y.detach().numpy(), _numpy_pad(x.detach().numpy(), pads))
    assert y.is_contiguous(memory_format=layout) and not y.is_contiguous()
    gy = torch.randn(y.shape, dtype=DT, generator=g).contiguous(memory_format=layout)
    (gx,) = torch.autograd.grad(y, x, gy)
    ref = _numpy_fold(gy.numpy(), pads)
    np.testing.assert_allclose(gx.numpy(), ref, rtol=0, atol=1e-13 * np.abs(ref).max())
    if fold:  # autograd's backward of torch's pad returns its own layout
        assert gx.is_contiguous(memory_format=layout)


def test_planted_channels_last_pad_errors_are_caught(monkeypatch):
    """Power of the channels-last test: a strip copied from the wrong end breaks the numpy comparison."""
    x = torch.randn(2, 6, 5, 7, dtype=DT, generator=torch.Generator().manual_seed(8))
    x = x.contiguous(memory_format=torch.channels_last)
    pads = (1, 2, 1, 1)
    real = padding._pad_in_layout

    def wrong_end(t, p):  # the strip before the grid copied from its first pixels instead of its last
        out = real(t, p)
        out[..., :p[0]] = out[..., p[0]:2 * p[0]]
        return out
    monkeypatch.setattr(padding, "_pad_in_layout", wrong_end)
    y = circular_pad(x, pads, fold=True)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(y.numpy() - _numpy_pad(x.numpy(), pads)).max() > 1e-3


def test_second_order_and_forward_mode():
    """Double backward (gradgradcheck) and forward-mode AD (torch.func.jvp) through the fold path."""
    from torch.func import jvp

    x = torch.randn(2, 3, 5, 6, dtype=DT, generator=torch.Generator().manual_seed(5), requires_grad=True)
    pads = (1, 2, 1, 1)
    assert torch.autograd.gradgradcheck(lambda t: circular_pad(t, pads, fold=True), (x,))
    t = torch.randn(x.shape, dtype=DT, generator=torch.Generator().manual_seed(6))
    y, ty = jvp(lambda u: circular_pad(u, pads, fold=True), (x.detach(),), (t,))
    nd = len(pads) // 2
    assert torch.equal(ty, Fn.pad(t.reshape(-1, *t.shape[-nd:]), pads, mode="circular").reshape(ty.shape))


def test_backward_under_vmap():
    """The vmap rule (NetworkEnsemble's path): per-sample gradients equal the numpy sum."""
    g = torch.Generator().manual_seed(2)
    xs = torch.randn(4, 3, 5, 6, dtype=DT, generator=g)
    w = torch.randn(3, 7, 9, dtype=DT, generator=g)
    pads = (2, 1, 1, 1)
    gx = vmap(grad(lambda t: (circular_pad(t, pads, fold=True) * w).sum()))(xs)
    ref = _numpy_fold(np.broadcast_to(w.numpy(), (4, 3, 7, 9)), pads)
    np.testing.assert_allclose(gx.numpy(), ref, rtol=0, atol=1e-13 * np.abs(ref).max())


def test_planted_fold_errors_are_caught(monkeypatch):
    """Power: a dropped strip, or strips added at the wrong end of the grid, break the oracle comparison."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 6, dtype=DT, generator=g, requires_grad=True)
    pads = (1, 2, 1, 1)
    gy = torch.randn(circular_pad(x, pads, fold=True).shape, dtype=DT, generator=g)
    ref = torch.from_numpy(_numpy_fold(gy.numpy(), pads))
    planted = {"lo strip dropped": lambda lo, n, hi: [(lo, n, 0), (lo + n, hi, 0)],
               "wrong ends": lambda lo, n, hi: [(lo, n, 0), (lo + n, hi, n - hi), (0, lo, 0)]}
    for name, parts in planted.items():
        monkeypatch.setattr(padding, "_parts", parts)
        (gx,) = torch.autograd.grad(circular_pad(x, pads, fold=True), x, gy)
        assert (gx - ref).abs().max() > 1e-3, name
        monkeypatch.undo()
    (gx,) = torch.autograd.grad(circular_pad(x, pads, fold=True), x, gy)
    assert (gx - ref).abs().max() <= 1e-13 * ref.abs().max()


@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_traced_network_saves_and_matches(tmp_path):
    """torch.jit.trace of a circular-conv network records torch's pad (savable), same values and gradients."""
    from gpbound.kernels.presets import get_preset

    net = get_preset("resnet", image_size=8).network(width=4, seed=0, dtype=DT)
    x = torch.rand(3, 3 * 64, dtype=DT, generator=torch.Generator().manual_seed(4), requires_grad=True)
    traced = torch.jit.trace(net, x.detach())
    torch.jit.save(traced, str(tmp_path / "net.pt"))
    loaded = torch.jit.load(str(tmp_path / "net.pt"))
    y, y_t = net(x), loaded(x)
    assert torch.equal(y, y_t)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_t,) = torch.autograd.grad(y_t.sum(), x)
    assert torch.allclose(g, g_t, rtol=1e-13, atol=1e-13 * g.abs().max())


def test_size_rule(monkeypatch):
    """fold=None folds from FOLD_MIN_ENTRIES entries on (the autograd function runs), not below."""
    calls = []
    real = padding._CircularPad.apply
    monkeypatch.setattr(padding._CircularPad, "apply", lambda *a: calls.append(1) or real(*a))
    n = padding.FOLD_MIN_ENTRIES
    circular_pad(torch.zeros(n // 16, 4, 4), (1, 1, 1, 1))
    assert calls == [1]
    circular_pad(torch.zeros(n // 16 - 1, 4, 4), (1, 1, 1, 1))
    assert calls == [1]
    circular_pad(torch.zeros(2, 4, 4), (1, 1, 1, 1), fold=True)
    assert calls == [1, 1]
