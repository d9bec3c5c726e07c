"""The stacked forward of K networks (gpbound.kernels.layers.stacked_forward), used by NetworkEnsemble.

Oracle: every network called alone on its own rows (torch's modules, no stacking, no vmap), values and
input gradients, float64, within 1e-13 of the output scale.
"""
import pytest
import torch

import gpbound.ensemble as ensemble_module
from gpbound.ensemble import NetworkEnsemble
from gpbound.kernels import AvgPool, Architecture, Conv, Dense, Flatten, GlobalAvgPool, ReLU, Residual, serial
from gpbound.kernels import architecture as architecture_module
from gpbound.kernels import layers as layers_module
from gpbound.kernels.presets import get_preset

DT = torch.float64
TOL = 1e-13

ARCHS = {
    "resnet": lambda: get_preset("resnet", image_size=8),
    "lenet": lambda: get_preset("lenet", image_size=8),
    "dense": lambda: get_preset("dense", image_size=3),
    "conv1d_same": lambda: Architecture(serial(Conv(5, 3, stride=2, padding="same"), ReLU(), Conv(4, 3), ReLU(),
                                               Flatten(1)), (2, 7)),
    "conv3d_circular_pool": lambda: Architecture(serial(Conv(3, (1, 3, 3), padding="circular"), ReLU(),
                                                        AvgPool((1, 2, 2)), Conv(4, 2), ReLU(), Flatten(1)),
                                                 (2, 3, 4, 4)),
    "residual_shortcut_globalpool_dense": lambda: Architecture(serial(
        Conv(4, (3, 2), stride=(2, 1), padding="same", sigma_w2=1.5, sigma_b2=0.0), ReLU(),
        Residual(serial(Conv(6, 3, stride=2, padding="same"), ReLU(), Conv(6, 3, padding="same")),
                 shortcut=Conv(6, 1, stride=2, padding="same"), post_activation=True),
        Conv(6, 1), GlobalAvgPool(), ReLU(), Dense(3, sigma_w2=0.5), ReLU(), Flatten(1, sigma_b2=0.2)), (2, 8, 7)),
}


def _ensemble(name, K=3, P=4, vectorize="auto"):
    arch = ARCHS[name]()
    ens = NetworkEnsemble.from_architecture(arch, K, width=5, sigma_b2=0.1, seed=7, points_per_network=P,
                                            dtype=DT, vectorize=vectorize)
    x = torch.randn(K * P, arch.n, dtype=DT, generator=torch.Generator().manual_seed(2))
    return ens, x


def _alone(ens, x):
    """Values and input gradients of every network on its own block of rows."""
    P = ens.P
    ys, gs = [], []
    for k, net in enumerate(ens.networks):
        xk = x[k * P:(k + 1) * P].clone().requires_grad_(True)
        y = net(xk)[:, 0]
        (g,) = torch.autograd.grad(y.sum(), xk)
        ys.append(y.detach())
        gs.append(g)
    return torch.cat(ys), torch.cat(gs)


def _errors(ens, x):
    """Relative errors (values, gradients) of the ensemble's row-wise call against the networks alone."""
    ref_y, ref_g = _alone(ens, x)
    xr = x.clone().requires_grad_(True)
    y = ens(xr)
    (g,) = torch.autograd.grad(y.sum(), xr)
    ey = float((y.detach() - ref_y).abs().max()) / float(ref_y.abs().max())
    eg = float((g - ref_g).abs().max()) / float(ref_g.abs().max())
    return ey, eg


@pytest.mark.parametrize("name", list(ARCHS))
def test_stacked_equals_each_network_alone(name):
    ens, x = _ensemble(name)
    assert ens._stackable
    ey, eg = _errors(ens, x)
    assert ey <= TOL and eg <= TOL, (ey, eg)
    # shared points: every network on the same rows
    with torch.no_grad():
        ys = ens.shared(x[:5])
        ref = torch.stack([net(x[:5])[:, 0] for net in ens.networks])
    assert float((ys - ref).abs().max()) <= TOL * float(ref.abs().max())


def test_stacked_is_the_batched_call_and_vmap_stays_available():
    # "auto" and True use the stacked forward (no vmap call); "vmap" forces vmap; both equal the oracle
    calls = {"vmap": 0, "stacked": 0}
    real_vmap, real_stacked = ensemble_module.vmap, layers_module.stacked_forward

    def counting_vmap(*a, **k):
        calls["vmap"] += 1
        return real_vmap(*a, **k)

    ensemble_module.vmap = counting_vmap
    try:
        for vectorize, used in (("auto", "stacked"), (True, "stacked"), ("vmap", "vmap")):
            ens, x = _ensemble("resnet", vectorize=vectorize)
            calls["vmap"] = 0
            ey, eg = _errors(ens, x)
            assert ey <= TOL and eg <= TOL
            assert calls["vmap"] == (1 if used == "vmap" else 0), vectorize
    finally:
        ensemble_module.vmap = real_vmap
    assert layers_module.stacked_forward is real_stacked


@pytest.mark.parametrize("name", ["resnet", "residual_shortcut_globalpool_dense"])
def test_stacked_channels_last_layout(name, monkeypatch):
    """The channels-last layout (CPU float32's, forced here in float64 for the 1e-13 oracle): every
    grouped convolution sees a channels-last input, and values and gradients equal each network alone."""
    seen = []

    def recording(conv):
        def call(x, *a, **k):
            seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
            return conv(x, *a, **k)
        return call

    monkeypatch.setattr(architecture_module, "_channels_last", lambda x: True)
    ens, x = _ensemble(name, K=3, P=40)  # large enough for the one-pass pad
    for m in ens._base.modules():
        if isinstance(m, layers_module._ConvModule):
            monkeypatch.setattr(m, "conv", recording(m.conv))
    ey, eg = _errors(ens, x)
    assert ey <= TOL and eg <= TOL, (ey, eg)
    assert seen and all(seen), seen


def test_channels_last_where_onednn_convolves():
    cl = architecture_module._channels_last
    assert cl(torch.zeros(1, dtype=torch.float32)) and cl(torch.zeros(1, dtype=torch.bfloat16))
    assert not cl(torch.zeros(1, dtype=torch.float64))


def test_foreign_module_is_never_stacked():
    # a subclass that changes forward is not one of gpbound's modules: vmap runs it, with its own forward
    class Doubled(layers_module._ReLUModule):
        def forward(self, x):
            return 2.0 * torch.relu(x)

    ens, x = _ensemble("conv1d_same")
    for net in ens.networks:
        net.body[1] = Doubled()
    ens2 = NetworkEnsemble(ens.networks, points_per_network=ens.P)
    assert not layers_module.supports_stacked(ens2._base.body) and not ens2._stackable
    ey, eg = _errors(ens2, x)
    assert ey <= TOL and eg <= TOL
    with pytest.raises(TypeError, match="finite modules"):
        layers_module.stacked_forward(Doubled(), {}, x.reshape(4, 3, 2, 7))


def test_stacked_input_shape_errors():
    ens, x = _ensemble("conv1d_same")
    with pytest.raises(ValueError, match="input_shape"):
        ens._base.stacked(ens.params, torch.zeros(4, 3, 13, dtype=DT))
    with pytest.raises(TypeError, match="torch.Tensor"):
        ens._base.stacked(ens.params, [[0.0]])


def _weights_of_the_next_network(cls):
    """``cls._stacked`` given each network's weight rolled to the next network (a pairing error)."""
    real = cls._stacked

    def wrong(self, x, params, prefix):
        p = dict(params)
        p[prefix + "weight"] = params[prefix + "weight"].roll(1, 0)
        return real(self, x, p, prefix)
    return wrong


def _pool_channels_mixed():
    real = layers_module._PoolModule._stacked

    def wrong(self, x, params, prefix):
        return real(self, x.transpose(1, 2).reshape(x.shape), params, prefix)
    return wrong


@pytest.mark.parametrize("plant,cls,name", [
    ("conv_networks_swapped", layers_module._ConvModule, "resnet"),
    ("linear_networks_swapped", layers_module._LinearModule, "dense"),
    ("pool_channels_mixed", layers_module._PoolModule, "conv3d_circular_pool")])
def test_planted_stacking_errors_are_caught(plant, cls, name, monkeypatch):
    # power: the oracle above fails when the stacked forward pairs a network with another's weights, or mixes
    # the channels of two networks in a pooling
    wrong = _pool_channels_mixed() if plant == "pool_channels_mixed" else _weights_of_the_next_network(cls)
    monkeypatch.setattr(cls, "_stacked", wrong)
    ens, x = _ensemble(name)
    ey, eg = _errors(ens, x)
    assert max(ey, eg) > 1e-3, (plant, ey, eg)
