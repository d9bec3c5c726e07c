"""Presets, fits, Figs 1-4 pipelines (small), plots."""
import math
import types

import numpy as np
import pytest
import torch

from gpbound.experiments.fit import bootstrap_slope, loglog_slope, percentile_curve
from gpbound.experiments.figures import (NORMS, percentile_curves, plot_distances_vs_n, plot_percentiles,
                                         plot_trained_vs_random, run_distance_sweep, run_trained_vs_random)
from gpbound.experiments.networks import make_network, preset_info


# ------------------------------------------------------------------ stand-in attack (tests only)
def deepfool_attack(f, x0, norm, iters=6, overshoot=1.05, bisect=14, **kw):
    """Tiny DeepFool + bisection on [x0, x_adv]; verified flips only. Cheap, for slope signs."""
    p = {"l1": 1.0, "l2": 2.0, "linf": math.inf}[norm]
    with torch.no_grad():
        y0 = f(x0)
    x, rows = x0.clone(), torch.arange(x0.shape[0])
    ok = torch.zeros_like(y0, dtype=torch.bool)
    for _ in range(iters):
        xr = x.detach().requires_grad_(True)
        y = f(xr)
        (g,) = torch.autograd.grad(y.sum(), xr)
        y = y.detach()
        ok = ok | (y * y0 < 0)
        if ok.all():
            break
        if p == 2.0:
            d = g / g.norm(dim=1, keepdim=True).clamp_min(1e-300)
        elif p == math.inf:
            d = g.sign()
        else:
            i = g.abs().argmax(dim=1)
            d = torch.zeros_like(g)
            d[rows, i] = g[rows, i].sign()
        step = y.abs() / (g * d).sum(1).abs().clamp_min(1e-300) * overshoot
        x = torch.where(ok[:, None], x, x - (y.sign() * step)[:, None] * d)
    with torch.no_grad():
        ok = ok | (f(x) * y0 < 0)
        lo, hi, delta = torch.zeros_like(y0), torch.ones_like(y0), x - x0
        for _ in range(bisect):
            mid = (lo + hi) / 2
            flip = f(x0 + mid[:, None] * delta) * y0 < 0
            hi, lo = torch.where(flip, mid, hi), torch.where(flip, lo, mid)
    dist = hi * torch.linalg.vector_norm(delta, ord=p, dim=1)
    return types.SimpleNamespace(distance=torch.where(ok, dist, torch.full_like(dist, math.inf)), success=ok)


# ------------------------------------------------------------------ presets
def _np_conv_same(x, w, stride):
    """Keras Conv2D(padding='same', strides=stride, use_bias=False) in numpy, from its definition:
    out = ceil(in / stride), total pad = max((out - 1) stride + k - in, 0), before = total // 2
    (TensorFlow puts the extra zero after); y[o, i, j] = sum_{c, u, v} w[o, c, u, v] xpad[c, s i + u, s j + v]."""
    C, H, W = x.shape[1:]
    k = w.shape[-1]
    outs, pads = [], []
    for size in (H, W):
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        outs.append(out)
        pads.append((total // 2, total - total // 2))
    xp = np.zeros((x.shape[0], C, H + sum(pads[0]), W + sum(pads[1])))
    xp[:, :, pads[0][0]:pads[0][0] + H, pads[1][0]:pads[1][0] + W] = x
    y = np.zeros((x.shape[0], w.shape[0], outs[0], outs[1]))
    for u in range(k):
        for v in range(k):
            patch = xp[:, :, u:u + stride * (outs[0] - 1) + 1:stride, v:v + stride * (outs[1] - 1) + 1:stride]
            y += np.einsum("oc,bcij->boij", w[:, :, u, v], patch)
    return y


def _np_keras_resnet_v1(x, weights, widths, bps, logits):
    """Independent numpy forward of the authors' Keras ResNet v1 without batch norm (biases zero):
    stem conv3x3 -> relu; per block y = conv3x3(relu(conv3x3_s(x))), x = relu(s(x) + y) with s a 1x1
    stride-2 conv on the first block of stacks 2 and 3; flatten (C, H, W order) -> dense."""
    it = iter(weights)
    relu = lambda t: np.maximum(t, 0.0)
    h = relu(_np_conv_same(x, next(it), 1))
    c = widths[0]
    for stack, w in enumerate(widths):
        for b in range(bps):
            stride = 2 if (stack > 0 and b == 0) else 1
            y = _np_conv_same(relu(_np_conv_same(h, next(it), stride)), next(it), 1)
            s = _np_conv_same(h, next(it), stride) if (stride != 1 or c != w) else h
            h = relu(s + y)
            c = w
    z = h.reshape(h.shape[0], -1) @ next(it).T
    return z[:, 0] if logits == 1 else z[:, 1] - z[:, 0]


def _weights_and_biases(net):
    named = list(net.named_parameters())
    return ([p.detach().numpy() for n, p in named if n.endswith("weight")],
            [p.detach() for n, p in named if n.endswith("bias")])


@pytest.mark.parametrize("size,widths,bps,logits", [(7, (3, 5, 6), 2, 2), (8, (4, 8, 8), 1, 1)])
def test_faithful_equals_independent_keras_reference(size, widths, bps, logits):
    """make_network("faithful") (built from the layer description) against a numpy re-implementation of
    the Keras ResNet v1 forward with the network's own weights; 1e-12 relative (float64 rounding only).
    Odd sizes exercise TensorFlow's asymmetric 'same' padding of stride-2 convolutions."""
    net = make_network("faithful", size, seed=4, widths=widths, blocks_per_stack=bps, logits=logits)
    x = torch.rand(3, 3 * size * size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = net(x).numpy()
    weights, biases = _weights_and_biases(net)
    assert all(float(b.abs().max()) == 0.0 for b in biases)
    want = _np_keras_resnet_v1(x.numpy().reshape(3, 3, size, size), weights, widths, bps, logits)
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def test_faithful_structure_and_init():
    from gpbound.kernels import Conv, Residual
    from gpbound.kernels.presets import get_preset

    arch = get_preset("faithful", image_size=32, widths=(32, 64, 128))
    assert arch.n == 3072 and arch.flatten_pixels == 64 and not arch.has_kernel   # |I0| / |I_Lf| = 16
    blocks = [l for l in arch.layer.layers if isinstance(l, Residual)]
    assert len(blocks) == 9 and all(b.post_activation for b in blocks)
    sc = blocks[3].shortcut
    assert isinstance(sc, Conv) and sc.patch == 1 and sc.stride == 2 and sc.padding == "same"
    assert blocks[1].shortcut is None
    net = make_network("faithful", 32, seed=0, widths=(32, 64, 128))
    weights, biases = _weights_and_biases(net)
    assert len(weights) == 1 + 9 * 2 + 2 + 1
    w = weights[-2]                                            # last block's second conv: fan_in = 128 * 9
    # He-normal: var 2/fan_in; N = 147456 entries, rel. SE of the variance sqrt(2/N) = 0.37 %; 2 % tol.
    assert w.shape == (128, 128, 3, 3)
    assert abs(w.var() / (2 / (128 * 9)) - 1) < 0.02
    assert abs(w.mean()) < 5 * math.sqrt(2 / 1152 / w.size)
    assert all(float(b.abs().max()) == 0 for b in biases)


def test_faithful_properties():
    net = make_network("faithful", 7, seed=3, widths=4, blocks_per_stack=2)   # odd size: ceil halving
    assert preset_info("faithful", 7)["final_pixels"] == 4
    x = torch.rand(5, 3 * 49, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = net(x)
    assert y.shape == (5,) and y.dtype == torch.float64
    torch.testing.assert_close(net(x.reshape(5, 3, 7, 7)), y)
    # zero biases + ReLU: positively homogeneous, f(2.5 x) = 2.5 f(x) (exact up to rounding)
    torch.testing.assert_close(net(2.5 * x), 2.5 * y, rtol=1e-12, atol=1e-12)
    # rows independent
    torch.testing.assert_close(net(x[2:3]), y[2:3], rtol=1e-12, atol=1e-12)
    net2 = make_network("faithful", 7, seed=3, widths=4, blocks_per_stack=2, logits=2)
    z = net2.net(x)                                            # the two logits of the Architecture network
    assert z.shape == (5, 2)
    torch.testing.assert_close(net2(x), z[:, 1] - z[:, 0])
    with pytest.raises(ValueError, match="preset"):
        make_network("nope", 8)
    with pytest.raises(ValueError, match="x must have shape"):
        net(torch.zeros(2, 10, dtype=torch.float64))
    with pytest.raises(ValueError, match="widths"):
        make_network("faithful", 8, widths=(4, 8))
    info = preset_info("faithful", 32)
    assert info["n"] == 3072 and info["analytic_kernel"] is False


def test_theory_preset():
    info = preset_info("theory", 16)
    assert info["M"] == pytest.approx(4.0) and info["n"] == 768 and info["analytic_kernel"]
    net = make_network("theory", 12, seed=0, widths=8)
    out = net(torch.rand(3, 432, dtype=torch.float64))
    assert out.shape == (3,)
    with pytest.raises(ValueError, match="divisible by 4"):
        make_network("theory", 10)


# ------------------------------------------------------------------ fits
def test_slope_recovery_synthetic():
    """y = c n^a times per-network lognormal noise (sd 0.3) and per-point noise (sd 0.2)."""
    rng = np.random.default_rng(0)
    ns = [48, 192, 432, 768, 1200, 1728, 2352, 3072]
    for a in (0.5, 0.0, -0.5):
        groups = {n: [2.0 * n ** a * np.exp(0.3 * rng.standard_normal() + 0.2 * rng.standard_normal(10))
                      for _ in range(20)] for n in ns}
        res = bootstrap_slope(groups, n_min=100, n_boot=400, seed=1)
        assert res["n"] == [float(n) for n in ns[1:]]
        # SE of the slope ~ 0.3/sqrt(20)/sd(log n) ~ 0.1; 0.25 is > 2.5 SE
        assert abs(res["slope"] - a) < 0.25
        assert res["ci_low"] < a < res["ci_high"]
        assert res["ci_high"] - res["ci_low"] < 0.8
    exact = loglog_slope([10, 100, 1000], [3.0, 30.0, 300.0])
    assert exact["slope"] == pytest.approx(1.0) and exact["intercept"] == pytest.approx(math.log(0.3))
    with pytest.raises(ValueError, match="y must be"):
        loglog_slope([1, 2], [1.0, -1.0])
    with pytest.raises(ValueError, match="at least 2 sizes"):
        bootstrap_slope({50: [[1.0]], 200: [[2.0]]}, n_min=100)


def test_percentile_curve_linear_cdf():
    # distances uniform on [0, 2]: CDF linear, percentile = 50 r exactly in expectation
    d = np.random.default_rng(0).uniform(0, 2, 4000)
    c = percentile_curve(np.append(d, np.inf), 0.25)
    # slope SE on 1000 points ~ 50 * 2 / sqrt(1000) / 0.29 ... a few %; 5 % tolerance
    assert c["slope"] == pytest.approx(50, rel=0.05) and abs(c["intercept"]) < 1.0
    assert c["n_failed"] == 1 and c["r2"] > 0.99
    with pytest.raises(ValueError, match="fit_fraction"):
        percentile_curve(d, 0)


# ------------------------------------------------------------------ Figures 1-3
@pytest.fixture(scope="module")
def small_fig1(tmp_path_factory):
    path = tmp_path_factory.mktemp("fig1") / "fig1.jsonl"
    return run_distance_sweep(sizes=(4, 8, 12, 16), n_networks=12, n_points=2, widths=(8, 16, 32),
                              blocks_per_stack=1, attack=deepfool_attack, results_path=path, progress=False,
                              n_boot=300, seed=0), path


def test_fig1_slopes(small_fig1):
    res, path = small_fig1
    assert res["paired"] and "paired" in res["note"]
    assert res["summary"]["l2"]["n"] == [48, 192, 432, 768]
    sl = {nm: res["slopes"][nm]["absolute"]["slope"] for nm in NORMS}
    # expected +1/2, 0, -1/2; 12 networks per n give bootstrap SE ~ 0.3, and the one-coordinate
    # DeepFool stand-in biases l1 low, so: signs/ordering with margins of about one SE
    assert sl["linf"] < -0.2
    assert abs(sl["l2"]) < 0.3
    assert sl["l1"] > 0.0 and sl["l1"] - sl["linf"] > 0.5
    for nm in NORMS:                                           # relative: -1/2 in every norm
        assert res["slopes"][nm]["relative"]["slope"] < -0.3
    # relative = distance / ||x0||_p with ||x0||_1 ~ n/2, ||x0||_2 ~ sqrt(n/3), ||x0||_inf ~ 1
    s = res["summary"]
    for i, n in enumerate(s["l1"]["n"]):
        assert s["l1"]["x0_norm_mean"][i] == pytest.approx(n / 2, rel=0.15)
        assert s["l2"]["x0_norm_mean"][i] == pytest.approx(math.sqrt(n / 3), rel=0.15)
        assert 0.9 < s["linf"]["x0_norm_mean"][i] <= 1.0


def test_fig1_plots_and_fig3(small_fig1, tmp_path):
    res, _ = small_fig1
    out = plot_distances_vs_n(res, tmp_path / "fig1.png")
    assert (tmp_path / "fig1.png").stat().st_size > 5000
    d = {"random": np.concatenate([r["l2"]["distance"] for r in res["records"] if r["n"] == 768])}
    curves = percentile_curves(d)
    assert curves["random"]["n_fit"] >= 2
    plot_percentiles(curves, tmp_path / "fig3.png")
    assert (tmp_path / "fig3.png").stat().st_size > 5000 and out.endswith("fig1.png")


def test_fig1_real_attack_integration(tmp_path):
    res = run_distance_sweep(sizes=(4, 8), n_networks=1, n_points=2, widths=(4, 8, 8), blocks_per_stack=1,
                             attack_kwargs={"attacks": ("linear",), "steps": 10}, progress=False, n_boot=0,
                             n_min=1, results_path=tmp_path / "r.jsonl")
    for nm in NORMS:
        d = np.concatenate([np.asarray(r[nm]["distance"], dtype=float) for r in res["records"]])
        ok = np.concatenate([np.asarray(r[nm]["success"], dtype=bool) for r in res["records"]])
        # failures are recorded as inf (never as a fake distance); verified ones are > 0
        np.testing.assert_array_equal(np.isfinite(d), ok)
        assert np.all(d[ok] > 0) and ok.sum() >= 2


# ------------------------------------------------------------------ Figure 4
def test_fig4_tiny(tmp_path):
    from gpbound.experiments.data import load_digits_binary, train_test_split_arrays

    Xtr, ytr, Xte, yte = train_test_split_arrays(*load_digits_binary(), test_fraction=0.25, seed=0)
    res = run_trained_vs_random((Xtr[:600], ytr[:600], Xte[:200], yte[:200]), n_networks=1, n_points=3, widths=(4, 8, 8), blocks_per_stack=1,
                                more_epochs=2, lr=1e-3, attack=deepfool_attack, progress=False,
                                results_path=tmp_path / "f4.jsonl")
    rec = res["records"][0]
    assert rec["training"]["first_epoch_accuracy"] >= 0.53
    # even/odd digits are learnable: well above chance (0.5) after 3 epochs at lr 1e-3 (600 images)
    assert res["train_accuracy"][0] > 0.7 and res["test_accuracy"][0] > 0.65
    for nk in ("trained", "random"):
        for kind in ("random", "train", "test"):
            assert np.isfinite(res["summary"][nk][kind]["l2"]["median"])
    plot_trained_vs_random(res, tmp_path / "fig4.png")
    assert (tmp_path / "fig4.png").stat().st_size > 5000


def test_custom_dataset_key_identifies_the_arrays():
    """Fig 4's resume key for user arrays is a digest of their contents: equal arrays share a key,
    a one-pixel change (or another label) gives another, so a resumed file never mixes data sets."""
    import numpy as np

    from gpbound.experiments.figures import _data_digest

    rng = np.random.default_rng(0)
    a = [rng.uniform(size=(4, 1, 3, 3)), rng.integers(0, 2, 4), rng.uniform(size=(2, 1, 3, 3)), rng.integers(0, 2, 2)]
    b = [x.copy() for x in a]
    assert _data_digest(a) == _data_digest(b) and _data_digest(a).startswith("custom:")
    b[0][1, 0, 2, 2] += 1e-9
    assert _data_digest(a) != _data_digest(b)
    c = [x.copy() for x in a]
    c[3] = 1 - c[3]
    assert _data_digest(a) != _data_digest(c)


@pytest.mark.parametrize("preset", ["faithful", "theory"])
def test_make_network_stacks_in_network_ensemble(preset):
    """NetworkEnsemble stacks make_network's networks (vmap; grouped convolutions, with stride-2 and zero padding
    for the faithful preset) and the Architecture.network ones: equal to evaluating them one by one (no
    vmap fallback warning: warnings are errors)."""
    from gpbound.ensemble import NetworkEnsemble
    from gpbound.kernels.presets import get_preset

    class Column(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).unsqueeze(-1)

    widths = (3, 4, 5) if preset == "faithful" else 4
    nets = [make_network(preset, 8, seed=s, widths=widths, blocks_per_stack=1) for s in range(3)]
    X = torch.rand(4, 192, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = NetworkEnsemble([Column(n) for n in nets]).shared(X)
        want = torch.stack([n(X) for n in nets])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    if preset == "faithful":
        arch = get_preset("faithful", image_size=8, widths=widths, blocks_per_stack=1)
        ens = NetworkEnsemble.from_architecture(arch, 3, seed=1)
        with torch.no_grad():
            got = ens.shared(X)
            want = torch.stack([n(X)[:, 0] for n in ens.networks])
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
