"""The l1 coordinate probe is batched: a NetworkEnsemble evaluates all candidate sets of a chunk in one
stacked call (``NetworkEnsemble.many``), and the result equals the candidate-set-by-set evaluation of
the same function (the generic path), per row."""
import torch

from gpbound.attacks.coordinate import coordinate_attack
from gpbound.attacks.verify import evaluate, evaluate_many
from gpbound.ensemble import NetworkEnsemble
from gpbound.kernels import Architecture, Conv, Flatten, ReLU, serial

DT = torch.float64


def _ensemble(K=3, P=2):
    arch = Architecture(serial(Conv(4, 3), ReLU(), Flatten(1)), input_shape=(1, 4, 4))
    nets = [arch.network(seed=s, dtype=DT) for s in range(K)]
    return arch, NetworkEnsemble(nets, points_per_network=P)


def test_many_equals_one_set_at_a_time():
    arch, ens = _ensemble()
    X = torch.rand(5, ens.K * ens.P, arch.n, dtype=DT, generator=torch.Generator().manual_seed(0))
    want = torch.stack([evaluate(ens, X[j]) for j in range(5)])
    got = ens.many(X)
    assert got.shape == (5, ens.K * ens.P)
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-14)
    # each candidate goes to its own row's network: a net evaluated alone agrees
    b = 3
    alone = ens.networks[b // ens.P](X[:, b]).reshape(-1)
    assert torch.allclose(got[:, b], alone, rtol=1e-12, atol=1e-14)


def test_batched_probe_equals_generic_probe():
    arch, ens = _ensemble()
    x0 = ens.rows(torch.rand(ens.P, arch.n, dtype=DT, generator=torch.Generator().manual_seed(1)))
    y0 = evaluate(ens, x0)
    t_max = torch.full((x0.shape[0],), 3.0, dtype=DT)

    def generic(x):  # the same function without ``many``: evaluated set by set
        return ens(x)

    assert torch.equal(evaluate_many(generic, x0[None]), evaluate_many(ens, x0[None]))
    a = coordinate_attack(ens, x0, y0, t_max, bounds=(0.0, 1.0))
    b = coordinate_attack(generic, x0, y0, t_max, bounds=(0.0, 1.0))
    assert torch.allclose(a, b, rtol=0, atol=1e-12)
    moved = (a != x0).sum(-1)
    assert int(moved.max()) <= 1  # single-coordinate moves only
    assert bool(((a >= 0) & (a <= 1)).all() | (a == x0).all())
