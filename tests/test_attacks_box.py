"""Box-constrained attacks: the exact boxed hyperplane projections against scipy's LP/QP solvers,
the exact boxed l1 distance of affine functions, points kept in the box, batched == row by row.

Oracles are independent of the sort-based projections of gpbound.attacks.norms:
``scipy.optimize.linprog`` (HiGHS) for the l1 and linf problems (linear programs), SLSQP for l2.
Each comparison helper is also fed a planted 1 % error (the ``_planted`` tests) to show it fails.
"""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from gpbound.attacks import minimal_distance
from gpbound.attacks.fab import fab_attack
from gpbound.attacks.norms import lp_norm, project_hyperplane_box
from gpbound.attacks.verify import evaluate

BOX = (0.0, 1.0)


def _instances(B, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(B, n, generator=g, dtype=dtype)
    w = torch.randn(B, n, generator=g, dtype=dtype)
    w = w * (torch.rand(B, n, generator=g, dtype=dtype) < 0.8)       # some zero-gradient coordinates
    z[:, :2] = torch.tensor([0.0, 1.0], dtype=dtype)                  # coordinates on the box faces
    # targets: from tiny to beyond the box's reach (infeasible rows)
    c = torch.randn(B, generator=g, dtype=dtype) * (w.abs().sum(-1) * 0.6) * torch.rand(B, generator=g, dtype=dtype)
    return z, w, c


def _lp_min_norm(z, w, c, p):
    """Minimal ||delta||_p, p in {1, inf}, s.t. <w, delta> = -c and 0 <= z + delta <= 1, by linprog (HiGHS);
    None when infeasible.  Variables: delta = u - v, u, v >= 0 (and eps for linf)."""
    n = z.size
    if p == 1.0:
        cost = np.ones(2 * n)
        A = np.concatenate([w, -w])[None]
        bounds = [(0, 1 - zi) for zi in z] + [(0, zi) for zi in z]
        r = linprog(cost, A_eq=A, b_eq=[-c], bounds=bounds, method="highs")
        return r.fun if r.status == 0 else None
    cost = np.zeros(2 * n + 1)
    cost[-1] = 1.0
    A = np.concatenate([w, -w, [0.0]])[None]
    A_ub = np.concatenate([np.eye(n), np.eye(n), -np.ones((n, 1))], axis=1)   # u_i + v_i <= eps
    bounds = [(0, 1 - zi) for zi in z] + [(0, zi) for zi in z] + [(0, None)]
    r = linprog(cost, A_ub=A_ub, b_ub=np.zeros(n), A_eq=A, b_eq=[-c], bounds=bounds, method="highs")
    return r.fun if r.status == 0 else None


def _qp_min_l2(z, w, c):
    """Minimal ||delta||_2 s.t. <w, delta> = -c and 0 <= z + delta <= 1 by SLSQP."""
    n = z.size
    d0 = -c * w / max(float(w @ w), 1e-300)
    r = minimize(lambda d: 0.5 * d @ d, np.clip(d0, -z, 1 - z), jac=lambda d: d, method="SLSQP",
                 bounds=list(zip(-z, 1 - z)),
                 constraints=[{"type": "eq", "fun": lambda d: w @ d + c, "jac": lambda d: w}],
                 options={"ftol": 1e-15, "maxiter": 500})
    return math.sqrt(2 * r.fun) if r.success else None


def _check_against_oracle(z, w, c, p, delta, feasible, rtol):
    """Return the list of rows where the projection disagrees with the solver (empty: all agree)."""
    bad = []
    for b in range(z.shape[0]):
        zb, wb, cb = z[b].numpy(), w[b].numpy(), float(c[b])
        ref = _qp_min_l2(zb, wb, cb) if p == 2.0 else _lp_min_norm(zb, wb, cb, p)
        if ref is None:          # infeasible in the LP: the projection must say so
            if bool(feasible[b]):
                bad.append((b, "feasible", None))
            continue
        got = float(lp_norm(delta[b:b + 1], p))
        on_plane = abs(cb + float(wb @ delta[b].numpy())) <= rtol * (abs(cb) + 1e-300) * 10
        if not (bool(feasible[b]) and on_plane and abs(got - ref) <= rtol * max(ref, 1e-12)):
            bad.append((b, got, ref))
    return bad


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_boxed_projection_equals_solver(p, dtype):
    z, w, c = _instances(40, 9, seed=int(p if p < 3 else 3) + 10 * (dtype == torch.float32), dtype=dtype)
    delta, feasible = project_hyperplane_box(z, w, c, p, BOX)
    assert delta.dtype == dtype
    x = z + delta
    assert bool(((x >= 0) & (x <= 1)).all())                          # in the box, exactly
    rtol = 1e-6 if p == 2.0 else 1e3 * torch.finfo(dtype).eps          # SLSQP ~1e-8; LP exact to rounding
    bad = _check_against_oracle(z.double(), w.double(), c.double(), p, delta.double(), feasible, rtol)
    assert not bad, bad
    assert 5 <= int(feasible.sum()) < 40                                # both kinds of rows were tested
    # infeasible rows: every coordinate at the face that reduces |c| (the box's best effort)
    inf_rows = ~feasible
    sgn = -torch.sign(c[inf_rows]).unsqueeze(-1) * torch.sign(w[inf_rows])
    face = torch.where(sgn > 0, torch.ones_like(x[inf_rows]), torch.zeros_like(x[inf_rows]))
    assert torch.allclose(torch.where(sgn != 0, x[inf_rows], face), face, rtol=0, atol=4 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_boxed_projection_planted_error_is_caught(p):
    # power: the same comparison rejects a projection 1 % too long
    z, w, c = _instances(12, 7, seed=3)
    delta, feasible = project_hyperplane_box(z, w, c, p, BOX)
    assert not _check_against_oracle(z, w, c, p, delta, feasible, 1e-6)
    assert _check_against_oracle(z, w, c, p, delta * 1.01, feasible, 1e-6)


def test_boxed_projection_batched_equals_rows_and_unboxed():
    z, w, c = _instances(16, 11, seed=5)
    for p in (1.0, 2.0, math.inf):
        delta, feas = project_hyperplane_box(z, w, c, p, BOX)
        for b in range(16):
            d1, f1 = project_hyperplane_box(z[b:b + 1], w[b:b + 1], c[b:b + 1], p, BOX)
            assert torch.allclose(d1[0], delta[b], rtol=0, atol=1e-15) and bool(f1[0] == feas[b])
        # a box too large to bind: the unboxed closed form |c| / ||w||_q
        big = project_hyperplane_box(z, w, c * 1e-6, p, (-1e9, 1e9))[0]
        q = {1.0: math.inf, 2.0: 2.0, math.inf: 1.0}[p]
        assert torch.allclose(lp_norm(big, p), (c * 1e-6).abs() / lp_norm(w, q), rtol=1e-10)


def _affine(B, n, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(B, n, generator=g, dtype=torch.float64)
    x0 = torch.rand(B, n, generator=g, dtype=torch.float64)
    # f(x0) = half of what the box can remove: the boundary is several coordinates away, but reachable
    s = torch.sign(torch.randn(B, generator=g, dtype=torch.float64)).unsqueeze(-1)
    cap = torch.where(s * w > 0, x0, 1 - x0)          # room of each coordinate in the decreasing direction
    b = -(w * x0).sum(-1) + s[:, 0] * 0.5 * (w.abs() * cap).sum(-1)
    return w, b, x0


@pytest.mark.parametrize("n", [5, 64])
def test_affine_boxed_l1_distance_is_exact(n):
    # oracle: linprog's minimal l1 distance to the hyperplane inside the box (exact for affine f)
    B = 6
    w, b, x0 = _affine(B, n, seed=n)
    f = lambda x: (x * w).sum(-1) + b  # noqa: E731
    res = minimal_distance(f, x0, 1, steps=20, bounds=BOX, reverify_alone=False)
    ref = torch.tensor([_lp_min_norm(x0[i].numpy(), w[i].numpy(), float(f(x0)[i]), 1.0) for i in range(B)],
                       dtype=torch.float64)
    assert bool(res.success.all())
    rel = (res.distance - ref) / ref
    assert float(rel.abs().max()) < 1e-6, rel
    assert float(rel.min()) > -1e-12                     # never below the true minimum
    assert bool(((res.x_adv >= 0) & (res.x_adv <= 1)).all())
    assert bool((torch.sign(f(res.x_adv)) == -torch.sign(f(x0))).all())
    # the unboxed closed form is smaller here: the box binds, so the test is about the box
    unboxed = f(x0).abs() / w.abs().max(-1).values
    assert int((unboxed < ref * 0.99).sum()) >= B // 2


def test_fab_batched_equals_rows_and_stays_in_box():
    torch.manual_seed(4)
    net = torch.nn.Sequential(torch.nn.Linear(12, 24), torch.nn.ReLU(), torch.nn.Linear(24, 1)).double()
    net.requires_grad_(False)
    f = lambda x: net(x)[:, 0]  # noqa: E731
    x0 = torch.rand(6, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y0 = evaluate(f, x0)
    for p in (1.0, 2.0, math.inf):
        xa, d = fab_attack(f, x0, y0, p, steps=15, bounds=BOX)
        assert bool(((xa >= 0) & (xa <= 1)).all())
        fin = torch.isfinite(d)
        assert int(fin.sum()) >= 3
        assert bool((f(xa[fin]) * y0[fin] < 0).all())
        for i in range(6):
            xi, di = fab_attack(f, x0[i:i + 1], y0[i:i + 1], p, steps=15, bounds=BOX)
            assert torch.allclose(xi[0], xa[i], rtol=1e-9, atol=1e-12)


def test_relu_boxed_results_in_box_and_flip():
    torch.manual_seed(7)
    net = torch.nn.Sequential(torch.nn.Linear(30, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).double()
    net.requires_grad_(False)
    f = lambda x: net(x)[:, 0]  # noqa: E731
    x0 = torch.rand(8, 30, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for norm in (1, 2, math.inf):
        res = minimal_distance(f, x0, norm, steps=30, bounds=BOX)
        ok = res.success
        assert int(ok.sum()) >= 4
        assert bool(((res.x_adv >= 0) & (res.x_adv <= 1)).all())
        assert bool((f(res.x_adv[ok]) * f(x0[ok]) < 0).all())
        assert torch.allclose(lp_norm(res.x_adv - x0, float(norm))[ok], res.distance[ok])


def test_boxed_default_skips_fab_when_fmn_found_all_and_bad_input():
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    f = lambda x: x @ w - 0.2  # noqa: E731
    x0 = torch.tensor([[0.9, 0.1, 0.5], [0.6, 0.2, 0.3]], dtype=torch.float64)
    res = minimal_distance(f, x0, 1, steps=20, bounds=BOX)
    assert bool(res.success.all())
    assert "fmn" in res.per_attack and "fab" not in res.per_attack   # nothing left for FAB
    ref = torch.tensor([_lp_min_norm(x0[i].numpy(), w.numpy(), float(f(x0)[i]), 1.0) for i in range(2)],
                       dtype=torch.float64)
    assert torch.allclose(res.distance, ref, rtol=1e-6)               # the polish makes it exact
    res = minimal_distance(f, x0, 1, steps=20, bounds=BOX, attacks=("fab",), polish_steps=0)
    assert bool(res.success.all()) and set(res.per_attack) == {"fab"}
    with pytest.raises(ValueError, match="polish_steps"):
        minimal_distance(f, x0, 1, bounds=BOX, polish_steps=-1)
    with pytest.raises(ValueError, match="bisection_steps"):
        minimal_distance(f, x0, 1, bounds=BOX, bisection_steps=0)


def test_fab_on_missed_rows_runs_on_a_restricted_ensemble():
    # FMN given 1 step misses most rows; FAB then runs on the sub-ensemble of their networks only,
    # and must give the same distances as FAB run on the whole ensemble with those rows active
    from gpbound.attacks.core import _restrict
    from gpbound.ensemble import NetworkEnsemble

    nets = []
    for k in range(4):
        torch.manual_seed(k)
        nets.append(torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).double())
    ens = NetworkEnsemble(nets, points_per_network=3)
    x0 = torch.rand(12, 10, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y0 = evaluate(ens, x0)
    active = torch.zeros(12, dtype=torch.bool)
    active[[1, 2, 7]] = True                                            # networks 0 (two rows) and 2
    sub, rows = _restrict(ens, active, True)
    assert sub.K == 2 and sub.P == 2 and sorted(set(rows.tolist())) == [1, 2, 7]
    assert torch.allclose(sub(x0[rows]), y0[rows], rtol=1e-12)
    xs, ds = fab_attack(sub, x0[rows], y0[rows], 1.0, steps=12, bounds=BOX)
    xf, df = fab_attack(ens, x0, y0, 1.0, steps=12, bounds=BOX, active=active)
    assert torch.allclose(ds, df[rows], rtol=1e-9) and torch.allclose(xs, xf[rows], rtol=1e-9, atol=1e-12)
    assert bool(torch.isinf(df[~active]).all())
    res = minimal_distance(ens, x0, 1, steps=1, bounds=BOX)
    assert bool(res.success.any())
    assert bool(((res.x_adv >= 0) & (res.x_adv <= 1)).all())


def test_polish_verifies_only_the_rows_it_moved(monkeypatch):
    """Rows the polish leaves where they were are verified already: no second boundary search or
    evaluation alone for them (it cost 3-8 % of a boxed attack), and their distances stay."""
    import gpbound.attacks.core as core

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(20, 24), torch.nn.ReLU(), torch.nn.Linear(24, 1)).double()
    net.requires_grad_(False)
    alone = []

    def f(x):
        if x.shape[0] == 1:
            alone.append(1)
        return net(x)[:, 0]

    x0 = torch.rand(6, 20, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    base = minimal_distance(f, x0, 2, steps=20, bounds=BOX, polish_steps=0)
    n_base = len(alone)
    monkeypatch.setattr(core, "refine_boundary", lambda f, x0, y0, x_adv, found, p, **kw: x_adv.clone())
    alone.clear()
    res = minimal_distance(f, x0, 2, steps=20, bounds=BOX, polish_steps=1)
    assert int(base.success.sum()) >= 3
    assert len(alone) == n_base            # nothing re-verified alone for unmoved rows
    assert torch.equal(res.distance, base.distance) and torch.equal(res.x_adv, base.x_adv)


def test_fmn_step_schedule_warp_closed_form_and_is_used(monkeypatch):
    # _cosine(k, N, w) = (1 + cos(pi (k/N)^w)) / 2: closed form at k = 0, N/2, N; w = 1 is FMN's cosine;
    # the boxed default passes BOXED_FMN_ALPHA_WARP and the unboxed FMN keeps w = 1
    import gpbound.attacks.core as core
    import gpbound.attacks.fmn as fmn

    assert fmn._cosine(0, 100, 1.4) == 1.0 and abs(fmn._cosine(100, 100, 1.4)) < 1e-15
    assert abs(fmn._cosine(50, 100, 1.0) - 0.5) < 1e-15
    assert abs(fmn._cosine(50, 100, 1.4) - (1 + math.cos(math.pi * 0.5 ** 1.4)) / 2) < 1e-15
    assert fmn._cosine(50, 100, 1.4) > fmn._cosine(50, 100, 1.0)        # large steps for longer
    seen = []
    real = fmn.fmn_attack

    def spy(*a, **k):
        if not k.get("box_aware"):   # the box-aware FMN on missed rows uses the same schedule
            seen.append(k.get("alpha_warp", 1.0))
        return real(*a, **k)

    monkeypatch.setattr(core, "fmn_attack", spy)
    w = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    f = lambda x: (x * w).sum(-1) - 0.1  # noqa: E731
    x0 = torch.tensor([[0.6, 0.4, 0.5]], dtype=torch.float64)
    minimal_distance(f, x0, 1, steps=5, bounds=(0.0, 1.0))
    minimal_distance(f, x0, 1, steps=5)
    assert seen == [core.BOXED_FMN_ALPHA_WARP, 1.0]
    with pytest.raises(ValueError, match="alpha_warp"):
        real(f, x0, f(x0), 1.0, steps=2, alpha_warp=0.0)


def test_restrict_rows_layout():
    """_restrict's rows: per owning network (ascending), its active rows in order, padded to the largest
    count by repeating its first active row (the defining layout, written out by hand)."""
    from gpbound.attacks.core import _restrict
    from gpbound.ensemble import NetworkEnsemble

    nets = [torch.nn.Linear(3, 1).double() for _ in range(5)]
    ens = NetworkEnsemble(nets, points_per_network=4)
    active = torch.zeros(20, dtype=torch.bool)
    active[[1, 3, 13, 14, 15, 16]] = True      # network 0: rows 1, 3; network 3: 13, 14, 15; network 4: 16
    sub, rows = _restrict(ens, active, True)
    assert sub.K == 3 and sub.P == 3
    assert rows.tolist() == [1, 3, 1, 13, 14, 15, 16, 16, 16]
    assert [id(n) for n in sub.networks] == [id(nets[0]), id(nets[3]), id(nets[4])]


def _capped_affine():
    """f(x) = w.x + b with a steep coordinate (w_0 = 100) on the face x_0 = 1 it would push against: the
    minimal distances in [0, 1]^20 are those of the 19 free unit coordinates, f(x0) = -3.2 (closed form:
    l1 3.2, l2 3.2 / sqrt(19), linf 3.2 / 19; every free coordinate moves by 3.2 / 19 < 0.5)."""
    n = 20
    w = torch.ones(n, dtype=torch.float64)
    w[0] = 100.0
    x0 = torch.full((2, n), 0.5, dtype=torch.float64)
    x0[:, 0] = 1.0
    b = -3.2 - float(w @ x0[0])
    return (lambda x: x @ w + b), x0, {1.0: 3.2, 2.0: 3.2 / math.sqrt(19), math.inf: 3.2 / 19}


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_box_aware_fmn_reaches_the_closed_form_where_fmn_cannot(p):
    # plain FMN: its unboxed radius |f| / ||w||_q and its step both go to the capped coordinate, so it never
    # flips (the power of this test); the box-aware FMN ("fmn_box") reaches the closed form
    f, x0, exact = _capped_affine()
    plain = minimal_distance(f, x0, p, bounds=BOX, attacks=("fmn",), polish_steps=0)
    assert not bool(plain.success.any())
    res = minimal_distance(f, x0, p, bounds=BOX, attacks=("fmn_box",), polish_steps=0)
    assert bool(res.success.all())
    assert torch.allclose(res.distance, torch.full_like(res.distance, exact[p]), rtol=1e-6, atol=0.0)
    assert bool(((res.x_adv >= 0) & (res.x_adv <= 1)).all())


def test_box_aware_fmn_runs_only_on_missed_rows_and_bad_input(monkeypatch):
    # row 0 on the other side, f(x0) = +3.2, where the steep coordinate is free to move down (FMN finds it), and
    # the capped row 1 (FMN misses it): "fmn_box" then attacks only the missed row; every default boxed
    # ensemble has it after FMN
    import gpbound.attacks.core as core

    from gpbound.attacks import DEFAULT_BOXED_ATTACKS

    f, x0, exact = _capped_affine()
    x0[0, 1:] += 6.4 / 19
    assert float(f(x0)[0]) == pytest.approx(3.2, rel=1e-12)
    seen = []
    real = core.fmn_attack

    def spy(g, xa, ya, p, **kw):
        out = real(g, xa, ya, p, **kw)
        if kw.get("box_aware"):
            seen.append(((out != xa).any(-1)).tolist())
        return out
    monkeypatch.setattr(core, "fmn_attack", spy)
    res = minimal_distance(f, x0, 2, bounds=BOX, attacks=("fmn", "fmn_box"), polish_steps=0)
    assert bool(res.success.all()) and res.best_attack == ["fmn", "fmn_box"]
    assert seen == [[True]]                      # called on the missed row only (f restricted to it)
    assert float(res.distance[1]) == pytest.approx(exact[2], rel=1e-6)
    assert all("fmn_box" in att and att[0] == "fmn" for att in DEFAULT_BOXED_ATTACKS.values())
    with pytest.raises(ValueError, match="fmn_box.*bounds"):
        minimal_distance(f, x0, 2, attacks=("fmn_box",))
    with pytest.raises(TypeError, match="box_aware"):
        real(f, x0, f(x0), 2.0, steps=2, bounds=BOX, box_aware=1)


def test_fmn_crossing_candidate_is_the_nearest_secant_crossing(monkeypatch):
    """``crossing_candidate``: the second candidate is the adversarial iterate of the nearest secant estimate
    ``||x - x0|| y0 / (y0 - f(x))`` of the crossing on [x0, x] (recomputed here over the recorded iterates);
    the radius schedule follows the smallest iterate, so the first candidate equals a run without the option.
    Power: f is curved, so the iterates' estimates differ (by > 1e-3 on some row), and on some row the
    smallest iterate is not the nearest: returning it, or any other iterate, fails the 1e-12 comparison."""
    import gpbound.attacks.fmn as fmn_module
    from gpbound.attacks.fmn import fmn_attack

    g = torch.Generator().manual_seed(0)
    B, n = 8, 12
    w = torch.randn(B, n, dtype=torch.float64, generator=g)
    x0 = 0.2 + 0.6 * torch.rand(B, n, dtype=torch.float64, generator=g)

    v = torch.randn(B, n, dtype=torch.float64, generator=g)

    def f(x):
        d = x - x0
        return (w * d).sum(-1) + 0.3 - 20.0 * (v * d).sum(-1) ** 2

    y0 = f(x0)
    seen = []
    real_value_and_grad, real_evaluate = fmn_module.value_and_grad, fmn_module.evaluate

    def recording(fn, x):
        fx, gx = real_value_and_grad(fn, x)
        seen.append(x.clone())
        return fx, gx

    def recording_evaluate(fn, x):
        seen.append(x.clone())
        return real_evaluate(fn, x)
    monkeypatch.setattr(fmn_module, "value_and_grad", recording)
    monkeypatch.setattr(fmn_module, "evaluate", recording_evaluate)
    kw = dict(steps=25, bounds=BOX, input_units=True, alpha_init=1.0, gamma_final=1e-4)
    best, nearest = fmn_attack(f, x0, y0, math.inf, crossing_candidate=True, **kw)
    iterates = list(seen)  # one gradient per step (input units: no scale call) and the last iterate
    assert len(iterates) == 26
    assert torch.equal(best, fmn_attack(f, x0, y0, math.inf, **kw))

    def crossing(x):  # the secant estimate of the crossing's l_inf distance
        return lp_norm(x - x0, math.inf) * (y0 / (y0 - f(x)))
    inf = torch.full_like(y0, math.inf)
    per_iterate = torch.stack([torch.where(torch.sign(f(x)) != torch.sign(y0), crossing(x), inf) for x in iterates])
    ref = per_iterate.min(0).values
    finite = torch.where(torch.isfinite(per_iterate), per_iterate, -inf)
    assert bool((finite.max(0).values > ref * (1 + 1e-3)).any())  # power: the choice matters
    assert bool((crossing(best) > ref * (1 + 1e-6)).all())  # the smallest iterate is never the nearest
    assert bool((torch.sign(f(nearest)) != torch.sign(y0)).all())
    assert torch.allclose(crossing(nearest), ref, rtol=1e-12, atol=0)
    with pytest.raises(TypeError, match="crossing_candidate"):
        fmn_attack(f, x0, y0, math.inf, steps=2, crossing_candidate=1)
