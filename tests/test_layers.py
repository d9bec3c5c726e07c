"""Layer language: NNGP kernel maps against Monte Carlo over wide finite networks of the same
description, metadata, (de)serialisation and bad input."""
import json
import math

import pytest
import torch

from gpbound.kernels import AvgPool, Architecture, Conv, Dense, Flatten, GlobalAvgPool, ReLU, Residual, serial
from gpbound.kernels.presets import PRESETS, get_preset

DT = torch.float64


def _mc(arch, X, width, nets, sw2, sb2, pixel_shape=None):
    """Per-network mean over output units of f_d(x_i) f_d(x_j); returns mean and standard error
    over independent networks (std / sqrt(nets)). Output units of one network are conditionally
    i.i.d.; networks are independent, so the SE is honest."""
    stats = []
    for s in range(nets):
        net = arch.network(width=width, sigma_w2=sw2, sigma_b2=sb2, seed=1000 + s)
        with torch.no_grad():
            f = net(X)  # (B, D) or (B, C*|I|)
        if pixel_shape is None:
            stats.append(f @ f.T / f.shape[1])
        else:
            C = f.shape[1] // pixel_shape
            g = f.reshape(f.shape[0], C, pixel_shape)
            stats.append(torch.einsum("icp,jcq->ijpq", g, g) / C)
    st = torch.stack(stats)
    return st.mean(0), st.std(0) / math.sqrt(nets)


def _check(analytic, mean, se, z=5.0):
    # tolerance: z standard errors (+ a tiny floor for entries with zero spread)
    err = (analytic - mean).abs()
    tol = z * se + 1e-9 * analytic.abs().max()
    assert (err <= tol).all(), f"max |z| = {float((err / (se + 1e-300)).max()):.2f}"
    # the test can fail: the analytic kernel must differ from a 20 %-perturbed one by > z SEs
    assert ((1.2 * analytic - mean).abs() > tol).any()


@pytest.fixture(scope="module")
def X():
    g = torch.Generator().manual_seed(7)
    return torch.randn(3, 2 * 4 * 4, generator=g, dtype=DT)


SW2, SB2 = 1.7, 0.2
PIXEL_CASES = {
    "conv": serial(Conv(256, 3)),
    "conv_relu_conv": serial(Conv(8, 3), ReLU(), Conv(256, (3, 1))),
    "avgpool": serial(Conv(8, 3), ReLU(), Conv(256, 3), AvgPool(2)),
    "residual": serial(Conv(8, 3), Residual(serial(ReLU(), Conv(8, 3)))),
    # stride 2 with TensorFlow 'same' zero padding (4x4 -> 2x2), then a zero-padded conv
    "strided_same": serial(Conv(8, 3, stride=2, padding="same"), ReLU(), Conv(256, 3, padding="same")),
    # circular stride 2 with an even patch
    "strided_circular": serial(Conv(256, (2, 3), stride=2)),
    # per-layer variances far from the network's (SW2, SB2)
    "per_layer_conv": serial(Conv(8, 3, sigma_w2=0.5, sigma_b2=1.0), ReLU(), Conv(256, 3, sigma_w2=4.0, sigma_b2=0.0)),
}


@pytest.mark.parametrize("name", sorted(PIXEL_CASES))
def test_pixel_covariance_matches_monte_carlo(name, X):
    arch = Architecture(PIXEL_CASES[name], (2, 4, 4))
    P = arch.out_spec.pixels
    st = arch.kernel_state(X, sigma_w2=SW2, sigma_b2=SB2, full=True)
    g = st.grid
    analytic = st.cross.reshape(3, 3, P, P)
    mean, se = _mc(arch, X, width=256, nets=30, sw2=SW2, sb2=SB2, pixel_shape=P)
    assert tuple(g) == tuple(arch.out_spec.grid)
    _check(analytic, mean, se)


FLAT_CASES = {
    "flatten_input": serial(Flatten(256)),
    "dense": serial(Flatten(8), ReLU(), Dense(256)),
    "dense_deep": serial(Flatten(8), ReLU(), Dense(8), ReLU(), Dense(256)),
    "conv_flatten": serial(Conv(8, 3), ReLU(), Conv(8, 2), ReLU(), Flatten(256)),
    "resnet_pool": serial(Conv(8, 3), Residual(serial(ReLU(), Conv(8, 3), ReLU(), Conv(8, 3))), AvgPool(2),
                          Conv(8, 1), Residual(serial(ReLU(), Conv(8, 1), ReLU(), Conv(8, 1))), ReLU(),
                          Flatten(256)),
    # the Keras v1 down-sampling block: 1x1 stride-2 projection shortcut, post-activation ReLU
    "projection_post_activation": serial(
        Conv(8, 3), ReLU(),
        Residual(serial(Conv(8, 3, stride=2, padding="same"), ReLU(), Conv(8, 3, padding="same")),
                 shortcut=Conv(8, 1, stride=2, padding="same"), post_activation=True),
        Flatten(256)),
    "global_avg_pool": serial(Conv(8, 3), ReLU(), Conv(8, 3, padding="same"), GlobalAvgPool(), ReLU(), Dense(256)),
    # per-layer variances differing from the network's (SW2, SB2)
    "per_layer_variances": serial(Conv(8, 3, sigma_w2=0.6, sigma_b2=0.5), ReLU(), Conv(8, 3, sigma_w2=3.0), ReLU(),
                                  Flatten(8, sigma_b2=0.0), ReLU(), Dense(256, sigma_w2=1.2, sigma_b2=0.05)),
}


@pytest.mark.parametrize("name", sorted(FLAT_CASES))
def test_output_kernel_matches_monte_carlo(name, X):
    arch = Architecture(FLAT_CASES[name], (2, 4, 4))
    analytic = arch.kernel(X, sigma_w2=SW2, sigma_b2=SB2)
    mean, se = _mc(arch, X, width=384, nets=30, sw2=SW2, sb2=SB2)
    _check(analytic, mean, se)


def test_diag_state_equals_full_state_diagonal(X):
    arch = Architecture(FLAT_CASES["resnet_pool"], (2, 4, 4))
    a = arch.kernel(X)
    torch.testing.assert_close(a, arch.kernel_state(X, full=True).cross, rtol=1e-12, atol=1e-14)
    nopool = Architecture(FLAT_CASES["conv_flatten"], (2, 4, 4))
    torch.testing.assert_close(nopool.kernel(X), nopool.kernel_state(X, full=True).cross, rtol=1e-12, atol=1e-14)


def test_metadata_and_presets():
    arch = Architecture(serial(Conv(32, 3), ReLU(), Residual(serial(Conv(32, 3), ReLU(), Conv(32, 3))),
                               AvgPool(2), ReLU(), Flatten(1)), input_shape=(3, 16, 16))
    assert (arch.n, arch.input_pixels, arch.flatten_pixels, arch.M, arch.output_dim) == (768, 256, 64, 2.0, 1)
    # post-activation skip: finite network fine, analytic kernel refused
    assert not arch.has_kernel
    with pytest.raises(ValueError, match="ReLU"):
        arch.kernel(torch.zeros(1, 768, dtype=DT))
    r = get_preset("resnet", image_size=16)
    assert (r.n, r.M, r.flatten_pixels, r.has_kernel) == (768, 4.0, 16, True)
    assert sum(isinstance(l, Residual) for l in r.layer.layers) == 3
    assert get_preset("dense", 16).M == 1.0 and get_preset("cnn", 16).M == 1.0 and get_preset("lenet", 16).M == 4.0
    assert set(PRESETS) == {"resnet", "dense", "lenet", "cnn"}
    with pytest.raises(ValueError, match="divisible"):
        get_preset("resnet", 18)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("vgg", 16)
    flat = Architecture(serial(Dense(5), ReLU(), Dense(1)), (7,))
    assert (flat.n, flat.input_pixels, flat.M) == (7, 1, 1.0)


def test_network_shapes_width_override_and_seed():
    arch = get_preset("resnet", 8, stack_widths=(4, 8))
    x = torch.rand(2, arch.n, dtype=DT)
    net = arch.network(width=16, seed=3)
    assert net(x).shape == (2, 1)
    torch.testing.assert_close(net(x), net(x.reshape(2, 3, 8, 8)))
    torch.testing.assert_close(net(x), arch.network(width=16, seed=3)(x))
    convs = [m for m in net.modules() if hasattr(m, "weight") and m.weight.dim() == 4]
    assert all(m.weight.shape[0] == 16 for m in convs)
    # He init: empirical weight variance = sigma_w2 / fan_in (many entries: 5 SE of a chi-square)
    big = Architecture(serial(Conv(64, 3)), (32, 4, 4)).network(sigma_w2=2.0, seed=0)
    w = big.body[0].weight
    fan = 32 * 9
    assert abs(float(w.var()) * fan / 2.0 - 1) < 5 * math.sqrt(2 / w.numel())
    one_d = Architecture(serial(Conv(4, 3), ReLU(), AvgPool(2), Flatten(2)), (1, 8))
    assert one_d.network(seed=0)(torch.rand(3, 8, dtype=DT)).shape == (3, 2)
    assert one_d.kernel(torch.rand(3, 8, dtype=DT)).shape == (3, 3)


def test_to_dict_roundtrip_json():
    arch = get_preset("resnet", 8, stack_widths=(4, 8), blocks_per_stack=2)
    d = json.loads(json.dumps(arch.to_dict()))
    assert Architecture.from_dict(d) == arch
    x = torch.rand(2, arch.n, dtype=DT)
    torch.testing.assert_close(Architecture.from_dict(d).kernel(x), arch.kernel(x))
    d2 = {"input_shape": [3, 16, 16], "layers": [{"type": "Conv", "channels": 32, "patch": [3, 3]},
                                                   {"type": "ReLU"}, {"type": "Flatten", "width": 1}]}
    assert Architecture.from_dict(d2).n == 768
    with pytest.raises(ValueError, match="unknown layer type"):
        Architecture.from_dict({"input_shape": [1, 4, 4], "layers": [{"type": "Pool"}]})
    with pytest.raises(ValueError, match="keys"):
        Architecture.from_dict({"input_shape": [1, 4, 4], "layers": [{"type": "Conv", "channels": 2}]})
    with pytest.raises(ValueError, match="input_shape"):
        Architecture.from_dict({"layers": []})


def test_bad_input():
    for bad, exc in [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(exc, match="channels"):
            Conv(bad, 3)
        with pytest.raises(exc, match="width"):
            Dense(bad)
        with pytest.raises(exc, match="width"):
            Flatten(bad)
        with pytest.raises(exc, match="patch"):
            Conv(2, bad)
        with pytest.raises(exc, match="block"):
            AvgPool(bad)
    with pytest.raises(TypeError, match="block"):
        Residual(3)
    with pytest.raises(ValueError, match="AvgPool.*does not divide"):
        Architecture(serial(Conv(2, 3), AvgPool(3)), (1, 4, 4))
    with pytest.raises(ValueError, match="Dense.*Flatten"):
        Architecture(serial(Conv(2, 3), Dense(3)), (1, 4, 4))
    with pytest.raises(ValueError, match="patch"):
        Architecture(serial(Conv(2, 5)), (1, 4, 4))
    with pytest.raises(ValueError, match="patch"):
        Architecture(serial(Conv(2, (3, 3, 3))), (1, 4, 4))
    with pytest.raises(ValueError, match="keep the shape"):
        Architecture(serial(Conv(2, 3), Residual(Conv(3, 3))), (1, 4, 4))
    with pytest.raises(ValueError, match="input_shape"):
        Architecture(serial(Flatten(1)), (1, 0, 4))
    arch = Architecture(serial(Conv(2, 3), ReLU(), Flatten(1)), (1, 4, 4))
    with pytest.raises(ValueError, match="x1.*input_shape"):
        arch.kernel(torch.zeros(2, 15, dtype=DT))
    with pytest.raises(ValueError, match="x2.*input_shape"):
        arch.kernel(torch.zeros(2, 16, dtype=DT), torch.zeros(2, 17, dtype=DT))
    with pytest.raises(ValueError, match="NaN"):
        arch.kernel(torch.full((2, 16), float("inf"), dtype=DT))
    with pytest.raises(ValueError, match="sigma_w2"):
        arch.kernel(torch.zeros(2, 16, dtype=DT), sigma_w2=0.0)
    with pytest.raises(ValueError, match="sigma_b2"):
        arch.kernel(torch.zeros(2, 16, dtype=DT), sigma_b2=-1.0)
    with pytest.raises(ValueError, match="sigma_b2"):
        arch.network(sigma_b2=float("nan"))
    with pytest.raises(ValueError, match="input_shape"):
        arch.network(seed=0)(torch.zeros(2, 15, dtype=DT))
    with pytest.raises(ValueError, match="flat output"):
        Architecture(serial(Conv(2, 3)), (1, 4, 4)).kernel(torch.zeros(1, 16, dtype=DT))


@pytest.mark.parametrize("shape,patch", [((2, 5), 3), ((3, 4, 6), (3, 1)), ((2, 3, 4, 5), (1, 3, 3)), ((3, 4, 4), 2)])
def test_vmapped_ensemble_convolution_equals_each_network(shape, patch):
    """NetworkEnsemble's vmapped call (a convolution becomes a grouped one) equals every network alone."""
    from gpbound.kernels import Architecture, Conv, Flatten, ReLU, serial

    arch = Architecture(serial(Conv(5, patch), ReLU(), Conv(4, patch), ReLU(), Flatten(1)), input_shape=shape)
    _ensemble_equals_networks(arch)


@pytest.mark.parametrize("shape,patch,stride,padding", [((2, 5), 3, 2, "same"), ((3, 7, 6), (3, 2), (2, 3), "same"),
                                                        ((2, 6, 6), 3, 2, "circular"), ((1, 3, 4, 5), (1, 3, 3), 2, "same")])
def test_vmapped_ensemble_strided_and_zero_padded(shape, patch, stride, padding):
    arch = Architecture(serial(Conv(5, patch, stride=stride, padding=padding), ReLU(), Conv(4, patch, padding="same"),
                               ReLU(), Flatten(1)), input_shape=shape)
    _ensemble_equals_networks(arch)


def _ensemble_equals_networks(arch):
    """Oracle: each network on its own rows (torch's convolution, no vmap); float64, 1e-13 of the scale."""
    from gpbound.ensemble import NetworkEnsemble

    ens = NetworkEnsemble.from_architecture(arch, 3, seed=3, points_per_network=4, dtype=torch.float64,
                                            vectorize=True)
    x = torch.randn(12, arch.n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ens(x)
        ref = torch.cat([ens.networks[k](x[4 * k:4 * k + 4])[:, 0] for k in range(3)])
    assert torch.allclose(got, ref, rtol=1e-13, atol=1e-13 * float(ref.abs().max()))


def test_new_options_roundtrip_and_metadata():
    arch = Architecture(serial(
        Conv(4, (3, 2), stride=(2, 1), padding="same", sigma_w2=1.5, sigma_b2=0.0), ReLU(),
        Residual(serial(Conv(6, 3, stride=2, padding="same"), ReLU(), Conv(6, 3, padding="same")),
                 shortcut=Conv(6, 1, stride=2, padding="same"), post_activation=True),
        Conv(6, 1), GlobalAvgPool(), ReLU(), Dense(3, sigma_w2=0.5), ReLU(), Flatten(1, sigma_b2=0.2)), (2, 8, 7))
    d = json.loads(json.dumps(arch.to_dict()))
    back = Architecture.from_dict(d)
    assert back == arch and back.to_dict() == d
    assert d["layers"][0] == {"type": "Conv", "channels": 4, "patch": [3, 2], "stride": [2, 1], "padding": "same",
                              "sigma_w2": 1.5, "sigma_b2": 0.0}
    assert d["layers"][2]["post_activation"] is True and d["layers"][2]["shortcut"][0]["stride"] == 2
    # grids: (8, 7) -> stride (2, 1) -> (4, 7) -> stride 2 -> (2, 4); GlobalAvgPool -> flat
    assert arch.has_kernel and arch.full_pixels and arch.flatten_pixels == 1
    assert len(arch.theorem2_issues) >= 3 and "stride" in arch.theorem2_issues[0]
    x = torch.rand(3, arch.n, dtype=DT)
    torch.testing.assert_close(back.kernel(x), arch.kernel(x), rtol=0, atol=0)
    torch.testing.assert_close(back.network(seed=2)(x), arch.network(seed=2)(x), rtol=0, atol=0)
    # defaults serialise as before (existing JSON files keep their meaning)
    assert Conv(2, 3).to_dict() == {"type": "Conv", "channels": 2, "patch": 3}
    assert Residual(Conv(2, 3)).to_dict() == {"type": "Residual", "block": [{"type": "Conv", "channels": 2, "patch": 3}]}
    # an own sigma_b2 = 0 gives zero biases; the network-wide one is drawn
    net = arch.network(sigma_b2=1.0, seed=0)
    biases = [m.bias for m in net.modules() if hasattr(m, "bias") and isinstance(m.bias, torch.nn.Parameter)]
    assert float(biases[0].abs().max()) == 0.0 and float(biases[1].abs().max()) > 0.0


def test_post_activation_identity_skip_builds_but_has_no_kernel():
    """ReLU(x + block(x)) with x post-ReLU (the Keras v1 identity block): a network, no analytic kernel."""
    arch = Architecture(serial(Conv(4, 3, padding="same"), ReLU(),
                               Residual(serial(Conv(4, 3), ReLU(), Conv(4, 3)), post_activation=True), Flatten(1)),
                        (2, 4, 4))
    assert arch.network(seed=0)(torch.rand(2, arch.n, dtype=DT)).shape == (2, 1)
    assert not arch.has_kernel
    assert any("post-activation" in m and "not Gaussian" in m for m in arch.kernel_issues)
    with pytest.raises(ValueError, match="not Gaussian"):
        arch.kernel(torch.rand(2, arch.n, dtype=DT))


def test_bad_input_of_new_options():
    with pytest.raises(ValueError, match="padding"):
        Conv(2, 3, padding="valid")
    for bad, exc in [(0, ValueError), (1.5, TypeError)]:
        with pytest.raises(exc, match="stride"):
            Conv(2, 3, stride=bad)
    with pytest.raises(ValueError, match="sigma_w2"):
        Conv(2, 3, sigma_w2=0.0)
    with pytest.raises(ValueError, match="sigma_b2"):
        Dense(2, sigma_b2=-0.1)
    with pytest.raises(TypeError, match="sigma_w2"):
        Flatten(2, sigma_w2="1")
    with pytest.raises(ValueError, match="sigma_w2"):
        Flatten(2, sigma_w2=float("inf"))
    with pytest.raises(TypeError, match="shortcut"):
        Residual(Conv(2, 3), shortcut=3)
    with pytest.raises(TypeError, match="post_activation"):
        Residual(Conv(2, 3), post_activation=1)
    with pytest.raises(ValueError, match="shape of the shortcut"):
        Architecture(serial(Conv(2, 3), Residual(Conv(2, 3), shortcut=Conv(2, 1, stride=2))), (1, 4, 4))
    with pytest.raises(ValueError, match="patch.*exceeds"):
        Architecture(serial(Conv(2, 5, stride=2)), (1, 4, 4))
    assert Architecture(serial(Conv(2, 5, padding="same"), ReLU(), Flatten(1)), (1, 4, 4)).has_kernel
    with pytest.raises(ValueError, match="GlobalAvgPool.*spatial"):
        Architecture(serial(Flatten(3), GlobalAvgPool()), (1, 4, 4))
    with pytest.raises(ValueError, match="keys"):
        Architecture.from_dict({"input_shape": [1, 4, 4], "layers": [{"type": "Conv", "channels": 2, "patch": 3,
                                                                        "strides": 2}]})
