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


def _reference_line_search(f, x0, y0, idx, t_max, grid, span, bounds, margin):
    """The defining search, written as loops: per row, every direction +-e_idx[b, j] (j ascending, + before -)
    and every grid step (ascending), the shortest flipping move; ties go to the first direction."""
    from gpbound.attacks.verify import is_adversarial

    B, n = x0.shape
    frac = [span ** (-(1.0 - g / (grid - 1))) for g in range(grid)]
    out = x0.clone()
    for b in range(B):
        best = float("inf")
        for j in range(idx.shape[1]):
            for s in (1.0, -1.0):
                for fr in frac:
                    t = float(t_max[b]) * fr
                    x = x0.clone()
                    x[b, idx[b, j]] += s * t
                    if bounds is not None:
                        x = x.clamp(*bounds)
                    if bool(is_adversarial(y0[b], f(x)[b], margin[b])) and t < best:
                        best, out[b] = t, x[b]
                        break
    return out


def test_grid_search_equals_defining_loops():
    """The batched grid search (one stacked evaluation of all directions per grid step) returns, per row, the
    point of the defining loop search (shortest flipping move, first direction on ties), exactly."""
    from gpbound.attacks.verify import flip_margin, value_and_grad

    arch, ens = _ensemble(K=3, P=2)
    x0 = ens.rows(torch.rand(ens.P, arch.n, dtype=DT, generator=torch.Generator().manual_seed(3)))
    y0 = evaluate(ens, x0)
    margin = flip_margin(y0, DT, candidate=True)
    for t_val, bounds in ((0.7, None), (3.0, None), (3.0, (0.0, 1.0))):
        t_max = torch.full((x0.shape[0],), t_val, dtype=DT)
        got = coordinate_attack(ens, x0, y0, t_max, k=4, grid=6, bounds=bounds, probe=False)
        _, g = value_and_grad(ens, x0)
        idx = g.abs().topk(4, dim=-1).indices
        want = _reference_line_search(ens, x0, y0, idx, t_max, 6, 100.0, bounds, margin)
        assert torch.equal(got, want), (t_val, bounds)
        assert int((got != x0).any(-1).sum()) >= 1  # some row flips: the comparison is not vacuous


def _hidden_coordinate_f(n, c):
    """f(x) = 1 - 10 relu(x_c - 1/2) + 1e-3 sum_i x_i: at x0 = 0 coordinate c has the smallest gradient (0),
    yet it is the only one whose move by t <= 1 flips the label (at t > 0.6)."""
    def f(x):
        return 1.0 - 10.0 * torch.relu(x[:, c] - 0.5) + 1e-3 * x.sum(-1)
    return f


def test_probe_true_searches_every_coordinate_at_any_n():
    n, c = 600, 417  # 2 n = 1200 > 1024: beyond the default probe limit
    f = _hidden_coordinate_f(n, c)
    x0 = torch.zeros(2, n, dtype=DT)
    y0 = f(x0)
    t_max = torch.ones(2, dtype=DT)
    found = coordinate_attack(f, x0, y0, t_max, probe=True)
    assert torch.equal(found.ne(0).nonzero()[:, 1], torch.tensor([c, c]))
    assert bool((f(found) < 0).all())
    for probe in (None, False):  # default limits (2 n > 1024) and off: the steep coordinates only
        assert torch.equal(coordinate_attack(f, x0, y0, t_max, probe=probe), x0)
    # within the default limits the probe runs by default
    small = _hidden_coordinate_f(400, 300)
    z = torch.zeros(2, 400, dtype=DT)
    assert int(coordinate_attack(small, z, small(z), t_max).ne(0).sum()) == 2


def test_sweep_fixes_the_probe_for_every_size():
    """An unboxed sweep runs the l1 probe at every size or at none (never only at the small ones)."""
    from gpbound.experiments.figures import PROBE_MAX_N, distance_tasks

    small = [s for s in (4, 8, 12) if 3 * s * s <= PROBE_MAX_N]
    cfg, tasks = distance_tasks("theory", sizes=small, n_networks=1, n_points=1, bounds=None)
    assert cfg["attack_kwargs"]["coord_probe"] is True
    assert {t["attack_kwargs"]["coord_probe"] for t in tasks} == {True}
    cfg, tasks = distance_tasks("theory", sizes=small + [16], n_networks=1, n_points=1, bounds=None)
    assert {t["attack_kwargs"]["coord_probe"] for t in tasks} == {False}
    # boxed default attacks run no coordinate search: nothing to fix; an explicit choice is kept
    cfg, _ = distance_tasks("theory", sizes=[4], n_networks=1, n_points=1, bounds=(0.0, 1.0))
    assert "coord_probe" not in cfg["attack_kwargs"]
    cfg, _ = distance_tasks("theory", sizes=[4, 16], n_networks=1, n_points=1, bounds=None,
                            attack_kwargs={"coord_probe": True})
    assert cfg["attack_kwargs"]["coord_probe"] is True


def test_ties_go_to_the_positive_direction_first():
    """Both signs of the steepest coordinate flip at the same grid step: the search keeps +e_i (the
    defining loop's order), and the point is the grid move itself."""
    def f(x):  # flips at |x_0| > 1/3 (+-1e-4): both signs first flip at the grid step t = 100^(-2/11)
        return 1.0 - 3.0 * x[:, 0].abs() + 1e-3 * x[:, 0]

    x0 = torch.zeros(3, 4, dtype=DT)
    got = coordinate_attack(f, x0, f(x0), torch.ones(3, dtype=DT), probe=False)
    want = torch.zeros(3, 4, dtype=DT)
    want[:, 0] = 100.0 ** (-2.0 / 11.0)
    assert torch.allclose(got, want, rtol=1e-15, atol=0)
