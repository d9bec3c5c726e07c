"""Float32 attacks: every reported success flips the label in a fresh one-point forward pass.

Before the flip margins scaled with the dtype (fixed 1e-10 |f(x0)| in float32, whose eps is
1.2e-7) and before each returned point was re-verified alone, 9-26 of 40 "verified" points of
these networks kept their label when evaluated alone.
"""
import math

import pytest
import torch

from gpbound.attacks import NetworkEnsemble, affine_minimal_distance, minimal_distance, verify
from gpbound.kernels.presets import get_preset

NORMS = [1, 2, math.inf]
ARCH = get_preset("resnet", image_size=4)   # n = 48, a residual ReLU convnet (theory preset)
SEEDS = (0, 1, 2, 3)
POINTS = 10                                  # 4 networks x 10 points = 40 points


def _net(seed, dtype=torch.float32):
    net = ARCH.network(width=8, dtype=dtype, seed=seed)
    net.requires_grad_(False)
    return net


def _points(seed, dtype=torch.float32):
    return torch.randn(POINTS, ARCH.n, generator=torch.Generator().manual_seed(100 + seed), dtype=dtype)


def _alone(net, x):
    """Fresh forward pass of every row as a batch of one."""
    with torch.no_grad():
        return torch.stack([net(x[i:i + 1]).reshape(-1)[0] for i in range(x.shape[0])])


@pytest.mark.parametrize("norm", NORMS)
def test_float32_success_flips_alone(norm):
    succ = not_flipped = 0
    for seed in SEEDS:
        net, x0 = _net(seed), _points(seed)
        res = minimal_distance(net, x0, norm, steps=20, dtype=torch.float32)
        assert res.x_adv.dtype == torch.float32
        ok = res.success
        y0, ya = _alone(net, x0), _alone(net, res.x_adv)
        succ += int(ok.sum())
        not_flipped += int((ok & ~(y0 * ya < 0)).sum())
        assert bool(torch.isinf(res.distance[~ok]).all())
    assert succ >= 25, succ                  # the check below is not vacuous
    assert not_flipped == 0, f"{not_flipped} of {succ} successes keep their label when evaluated alone"


@pytest.mark.parametrize("norm", NORMS)
def test_float32_ensemble_success_flips_alone(norm):
    # the vmapped ensemble computes differently from each network alone: successes must flip there too
    nets = [_net(s) for s in SEEDS]
    ens = NetworkEnsemble(nets, points_per_network=POINTS)
    x0 = torch.cat([_points(s) for s in SEEDS])
    res = minimal_distance(ens, x0, norm, steps=20)          # dtype follows the ensemble: float32
    assert res.x_adv.dtype == torch.float32
    ok = res.success
    y0 = torch.cat([_alone(nets[k], x0[k * POINTS:(k + 1) * POINTS]) for k in range(len(nets))])
    ya = torch.cat([_alone(nets[k], res.x_adv[k * POINTS:(k + 1) * POINTS]) for k in range(len(nets))])
    assert int(ok.sum()) >= 25
    assert int((ok & ~(y0 * ya < 0)).sum()) == 0


def test_dtype_follows_model_or_clear_error():
    net = _net(0)
    x0 = _points(0, torch.float64)                           # float64 points, float32 network
    res = minimal_distance(net, x0, 2, steps=5)              # dtype=None: the model's float32
    assert res.x_adv.dtype == torch.float32 and bool(res.success.any())
    with pytest.raises(TypeError, match=r"dtype=torch.float64 does not match .*pass dtype=torch.float32"):
        minimal_distance(net, x0, 2, steps=5, dtype=torch.float64)
    with pytest.raises(TypeError, match="dtype"):
        minimal_distance(net, x0, 2, steps=5, dtype="float32")


def test_margin_scales_with_dtype():
    from gpbound.attacks.verify import flip_margin

    y = torch.tensor([2.0, -0.5])
    for dt in (torch.float32, torch.float64):
        m = flip_margin(y.to(dt))
        rel = (m / y.abs().to(dt))
        assert torch.allclose(rel, torch.full_like(rel, 256 * torch.finfo(dt).eps))
        assert bool((flip_margin(y.to(dt), candidate=True) > m).all())
    # the coarser of the input and output dtypes sets the precision
    assert torch.allclose(flip_margin(y.double(), torch.float32), flip_margin(y.float()).double())


def test_point_that_does_not_flip_alone_is_no_success():
    # f differs between a batch of one and a larger batch (as rounding does, exaggerated): the
    # bisected points flip in the batch but not alone, so verify must not report them
    def f(x):
        return x[:, 0] + (0.5 if x.shape[0] == 1 else 0.0)

    x0 = torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    x_adv = torch.tensor([[-1.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)
    xb, dist, ok = verify(f, x0, x_adv, 2)
    # the bisected points (distance ~1 and ~2) are rejected; the first retries towards the candidates
    # (verify.RETRY_STEPS) that flip alone (f alone < 0 needs x_0 < -0.5): the candidate itself for row 0
    # (x_0 = -1), a quarter of the way for row 1 (x_0 = -0.5 - 3/4 of the margin-level overshoot)
    assert bool(ok.all())
    assert torch.equal(xb[0], x_adv[0])
    assert torch.allclose(dist, torch.tensor([2.0, 2.5], dtype=torch.float64), rtol=1e-12, atol=0)
    assert all(float(f(xb[i:i + 1])[0]) < 0 for i in range(2))
    # no flip alone anywhere on the segment: no success
    xb, dist, ok = verify(f, x0, torch.tensor([[-0.25, 0.0], [-0.4, 1.0]], dtype=torch.float64), 2)
    assert not bool(ok.any())
    assert bool(torch.isinf(dist).all()) and torch.equal(xb, x0)
    # the same candidates are successes for a function that does not depend on the batch
    xb, dist, ok = verify(lambda x: x[:, 0], x0, x_adv, 2)
    assert bool(ok.all()) and torch.allclose(dist, x0[:, 0], rtol=1e-12)


class _AloneOffset:
    """Affine ``f(x) = x_0 - 1`` whose evaluation alone is shifted by ``delta`` towards the label of x0 (a
    rounding difference between a batch and a batch of one, larger than the margin where ``|f(x0)|`` is
    small against the scale of the values)."""

    def __init__(self, delta):
        self.delta = delta

    def __call__(self, x):
        return x[:, 0] - 1.0

    def evaluate_alone(self, x, rows):
        return torch.where(rows, x[:, 0] - 1.0 + self.delta, torch.full_like(x[:, 0], float("nan")))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_point_rejected_alone_is_retried_towards_its_candidate(dtype, monkeypatch):
    # f(x0) = 0.01: the margin 256 eps |f(x0)| is smaller than the alone shift delta = 64 margins, so the
    # bisected point (flip ~ 1 margin) fails alone; the first retry 1/64 of the way to the candidate
    # (flip ~ 0.01/64 + 1 margin) passes.  Oracle: the exact distance of the retry point on the segment
    import importlib

    V = importlib.import_module("gpbound.attacks.verify")

    eps = torch.finfo(dtype).eps
    x0 = torch.tensor([[1.01, 0.3]], dtype=dtype)
    x_adv = torch.tensor([[0.5, 0.3]], dtype=dtype)          # f = -0.5: flips alone too
    margin = V.MARGIN_EPS * eps * 0.01
    f = _AloneOffset(64 * margin)
    xb, dist, ok = verify(f, x0, x_adv, 2)
    assert bool(ok.all())
    boundary = 0.01 + margin                                  # distance of the margin-level crossing
    expected = boundary + (0.51 - boundary) / 64.0           # 1/64 of the way on to the candidate
    assert abs(float(dist[0]) - expected) <= 1e-3 * expected
    assert float(f.evaluate_alone(xb, torch.ones(1, dtype=torch.bool))[0]) < -V.ALONE_FRACTION * margin
    # power: without the retries the row is lost
    monkeypatch.setattr(V, "RETRY_STEPS", ())
    assert not bool(verify(f, x0, x_adv, 2)[2].any())


def test_function_without_batch_of_one_is_a_clear_error():
    # parameters per row: f takes exactly B rows, so its points cannot be re-verified alone
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    f = lambda x: (x * w).sum(-1)  # noqa: E731
    x0 = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="batch of one row.*evaluate_alone.*reverify_alone=False"):
        minimal_distance(f, x0, 2, steps=5)
    res = minimal_distance(f, x0, 2, steps=5, reverify_alone=False)
    assert bool(res.success.all()) and torch.allclose(res.distance, torch.ones(2, dtype=torch.float64))


# ---------------------------------------------------------------- the boundary root finder
def _convex_ramp(dtype, B=24, n=16, seed=3):
    """Rows of ``f(x) = b + sum_j a_j relu(<u, x> - c_j)`` (``a_j > 0``): convex, piecewise affine in
    ``s = <u, x>`` with 4 kinks, so ``f`` increases along every segment with ``<u, d> > 0`` and
    crosses each level exactly once; the crossing has a closed form (numpy-free oracle below)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n, generator=g, dtype=torch.float64)
    u = u / u.norm()
    c = torch.tensor([0.3, 0.8, 1.1, 1.7], dtype=torch.float64)
    a = torch.tensor([0.7, 1.3, 0.4, 2.0], dtype=torch.float64)
    x0 = torch.randn(B, n, generator=g, dtype=torch.float64)
    x0 = x0 - (x0 @ u).unsqueeze(-1) * u              # <u, x0> = 0: f(x0) = b0 < 0 below the kinks
    d = torch.randn(B, n, generator=g, dtype=torch.float64)
    d = d - (d @ u).unsqueeze(-1) * u + (2.5 + torch.rand(B, generator=g, dtype=torch.float64)).unsqueeze(-1) * u
    b0 = -(0.5 + torch.rand(B, generator=g, dtype=torch.float64))

    def f(x):
        s = x.to(torch.float64) @ u
        return (b0 + (a * torch.relu(s.unsqueeze(-1) - c)).sum(-1)).to(x.dtype)

    def crossing(level):
        """Exact ``t`` with ``f(x0 + t d) = level`` (``s = t <u, d>``), piece by piece."""
        sd = d @ u
        t = torch.full((B,), float("nan"), dtype=torch.float64)
        for k in range(len(c) + 1):            # piece k: s in [c_{k-1}, c_k]
            slope = a[:k].sum()
            const = b0 - (a[:k] * c[:k]).sum()
            if slope == 0:
                continue
            s = (level - const) / slope
            lo_k = c[k - 1] if k > 0 else -math.inf
            hi_k = c[k] if k < len(c) else math.inf
            inside = (s >= lo_k) & (s <= hi_k) & torch.isnan(t)
            t = torch.where(inside, s / sd, t)
        return t, sd

    return f, x0.to(dtype), (x0 + d).to(dtype), d, crossing


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_find_boundary_matches_closed_form_crossing(dtype):
    # oracle: the closed-form crossing t* of f = margin on the segment (f convex piecewise affine with
    # 4 kinks, increasing along it).  The far end must flip by more than the margin and lie past t*
    # by at most ROOT_TOL * margin / slope plus rounding (64 eps |f| / slope); in far fewer batched
    # evaluations than the 2 * steps cap.
    from gpbound.attacks.verify import ROOT_TOL, bisect_to_boundary, find_boundary, flip_margin

    f, x0, xa, d, crossing = _convex_ramp(dtype)
    y0 = f(x0)
    m = flip_margin(y0, dtype)
    steps = 50 if dtype == torch.float64 else 32
    xb, count = find_boundary(f, x0, xa, y0, steps=steps, margin=m, return_count=True)
    assert bool((-torch.sign(y0) * f(xb) > m).all())  # verified far side, every row
    t = ((xb - x0).to(torch.float64) * d).sum(-1) / (d * d).sum(-1)
    t_star, sd = crossing(m.to(torch.float64))
    slope_t = (f(x0.to(torch.float64) + (t_star + 1e-9).unsqueeze(-1) * d) -
               f(x0.to(torch.float64) + t_star.unsqueeze(-1) * d)) / 1e-9  # df/dt at the crossing
    eps = torch.finfo(dtype).eps
    excess = (t - t_star) * slope_t                       # value above the margin level, linearised
    assert float(excess.min()) > -64 * eps * float(y0.abs().max())
    assert float((excess - (ROOT_TOL * m.to(torch.float64) + 64 * eps * y0.abs().to(torch.float64))).max()) < 0
    assert count <= 16   # measured 11 (float64) and 12 (float32); bisection takes 50 and 32
    # bisection reaches the same crossing, with 50 / 32 evaluations
    xbis = bisect_to_boundary(f, x0, xa, y0, steps=steps, margin=m)
    tb = ((xbis - x0).to(torch.float64) * d).sum(-1) / (d * d).sum(-1)
    assert float(((t - tb) * slope_t).abs().max()) < float((ROOT_TOL * m + 64 * eps * y0.abs()).max())


def test_find_boundary_affine_needs_two_evaluations():
    # oracle: f affine along the segment, so the first regula falsi estimate is the crossing itself
    # (aimed ROOT_TOL/2 margins past it): one evaluation, plus f(x_adv) when not given
    from gpbound.attacks.verify import find_boundary, flip_margin

    g = torch.Generator().manual_seed(5)
    w = torch.randn(30, 40, generator=g, dtype=torch.float64)
    x0 = torch.randn(30, 40, generator=g, dtype=torch.float64)
    f = lambda x: (x * w).sum(-1) + 0.3  # noqa: E731
    y0 = f(x0)
    xa = x0 - 3.0 * (torch.sign(y0) * y0.abs() / (w * w).sum(-1)).unsqueeze(-1) * w
    m = flip_margin(y0, torch.float64)
    xb, count = find_boundary(f, x0, xa, y0, steps=50, margin=m, return_count=True)
    assert count <= 2
    exact = (y0.abs() + m) / w.norm(dim=-1)                # distance of the crossing of the margin level
    rel = ((xb - x0).norm(dim=-1) - exact) / exact
    assert float(rel.min()) >= -1e-12 and float(rel.max()) < 1e-12 + 1.0 / 16 * 256 * 2.3e-16


def test_verify_search_argument():
    from gpbound.attacks.verify import verify

    f = lambda x: x.sum(-1) - 1.0  # noqa: E731
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="search"):
        verify(f, x0, x0 + 1.0, 2.0, search="secant")
    xi, di, oki = verify(f, x0, x0 + 1.0, 2.0)
    xb, db, okb = verify(f, x0, x0 + 1.0, 2.0, search="bisection")
    assert bool(oki.all() and okb.all())
    assert float((di - db).abs().max()) < 1e-12


@pytest.mark.parametrize("norm", [1, 2, math.inf])
def test_boundary_search_illinois_equals_bisection_on_affine(norm):
    # oracle: |f(x0)| / ||w||_q (Hoelder) for affine f; both searches must reach it within the margin's
    # relative cost (256 eps) plus ROOT_TOL of it, and a bad name is a ValueError naming the argument
    g = torch.Generator().manual_seed(11)
    w = torch.randn(5, 30, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    x0 = torch.randn(5, 30, generator=g, dtype=torch.float64)
    f = lambda x: (x * w).sum(-1) + b  # noqa: E731
    exact = affine_minimal_distance(w, b, x0, norm)
    for search in ("illinois", "bisection"):
        res = minimal_distance(f, x0, norm, steps=20, reverify_alone=False, boundary_search=search)
        rel = (res.distance - exact) / exact
        assert bool(res.success.all())
        assert float(rel.min()) > -1e-12 and float(rel.max()) < 1e-6
    with pytest.raises(ValueError, match="boundary_search"):
        minimal_distance(f, x0, norm, steps=2, reverify_alone=False, boundary_search="newton")


def test_find_boundary_nan_output_halves_and_keeps_far_side():
    # f is NaN on part of the segment: those points are never adversarial (as in bisect_to_boundary), so
    # the search halves past them and the far end still flips by more than the margin.  Oracle: the
    # bracket ends at the far edge t = 0.6 of the NaN stretch (f jumps to 1 there), as the plain
    # bisection does, to within the 2**-50 resolution
    from gpbound.attacks.verify import bisect_to_boundary, find_boundary, flip_margin

    x0 = torch.zeros(2, 1, dtype=torch.float64)
    xa = torch.ones(2, 1, dtype=torch.float64)

    def f(x):
        # NaN on (0.4, 0.6), where the first regula falsi estimate (between f(0) = -1 and f(1) = 1) lands
        t = x[:, 0]
        y = torch.where(t < 0.4, 4.0 * t - 1.0, torch.ones_like(t))
        return torch.where((t > 0.4) & (t < 0.6), torch.full_like(y, float("nan")), y)

    y0 = f(x0)
    m = flip_margin(y0, torch.float64)
    xb, count = find_boundary(f, x0, xa, y0, steps=50, margin=m, return_count=True)
    assert bool((-torch.sign(y0) * f(xb) > m).all())
    xbis = bisect_to_boundary(f, x0, xa, y0, steps=50, margin=m)
    assert float((xb[:, 0] - 0.6).min()) >= 0.0 and float((xb[:, 0] - 0.6).max()) <= 4 * 2.0 ** -50
    assert float((xb - xbis).abs().max()) <= 4 * 2.0 ** -50
    assert count < 4 * 50


def _exact(nets, x):
    """Oracle of the exact arithmetic: float64 copies of the float32 networks, each row alone (no vmap)."""
    import copy

    with torch.no_grad():
        return torch.stack([copy.deepcopy(nets[i // POINTS]).double()(x[i:i + 1].double()).reshape(-1)[0]
                            for i in range(x.shape[0])])


@pytest.mark.parametrize("norm", NORMS)
def test_float32_success_is_an_exact_flip_on_the_exact_crossing(norm):
    # verify with the float64 reference (minimal_distance's default for float32 models): every success
    # flips the exact network by EXACT_MARGIN_EPS eps32 |f(x0)| and flips the float32 model strictly,
    # batched and alone; the same verified candidates sit ~MARGIN_EPS eps32 relative farther without it.
    # Oracles: the float64 networks row by row, the float32 networks row by row.
    import importlib

    V = importlib.import_module("gpbound.attacks.verify")
    from gpbound.attacks.fmn import fmn_attack
    from gpbound.attacks.norms import parse_norm

    nets = [_net(s) for s in SEEDS]
    ens = NetworkEnsemble(nets, points_per_network=POINTS)
    x0 = torch.cat([_points(s) for s in SEEDS])
    p = parse_norm(norm)
    y0 = V.evaluate(ens, x0)
    cand = fmn_attack(ens, x0, y0, p, steps=30)
    ref = V.float64_reference(ens)
    xr, dr, okr = V.verify(ens, x0, cand, p, y0=y0, bisection_steps=32, reference=ref)
    xn, dn, okn = V.verify(ens, x0, cand, p, y0=y0, bisection_steps=32)
    assert int(okr.sum()) >= 30 and int(okn.sum()) >= 30
    e0, er = _exact(nets, x0), _exact(nets, xr)
    m_exact = V.EXACT_MARGIN_EPS * torch.finfo(torch.float32).eps * e0.abs()
    assert bool((-torch.sign(e0) * er > m_exact)[okr].all())               # exact flips
    y_alone = torch.cat([_alone(nets[k], xr[k * POINTS:(k + 1) * POINTS]) for k in range(len(nets))])
    assert bool((y0 * y_alone < 0)[okr].all())                            # float32 alone, strictly
    assert bool((y0 * V.evaluate(ens, xr) < 0)[okr].all())                # float32 batched, strictly
    both = okr & okn
    assert bool((dr[both] <= dn[both]).all())                             # moved towards x0 only
    gain = (1.0 - dr[both] / dn[both]).median()
    # the margin-level crossing is ~MARGIN_EPS eps32 = 3.1e-5 relative beyond the exact one (tolerance: half)
    assert float(gain) > 0.5 * V.MARGIN_EPS * torch.finfo(torch.float32).eps, float(gain)
    # most points end on the exact crossing itself: flip within 2 m_exact (plus float64 rounding)
    near = (-torch.sign(e0) * er <= 2.0 * m_exact * (1 + 1e-6))[okr]
    assert float(near.float().mean()) >= 0.5


def test_reference_is_a_float64_copy_only_for_coarser_models():
    from gpbound.attacks.verify import float64_reference

    assert float64_reference(_net(0, torch.float64)) is None            # already exact
    assert float64_reference(lambda x: x[:, 0]) is None                   # no copy of a callable
    ref = float64_reference(_net(0))
    x = _points(0)
    assert ref(x).dtype == torch.float64
    with torch.no_grad():
        assert torch.equal(ref(x), _net(0).double()(x.double()))
    with pytest.raises(ValueError, match="reference"):
        minimal_distance(_net(0), x, 2, steps=2, reference="exact")
    with pytest.raises(TypeError, match="reference"):
        minimal_distance(_net(0), x, 2, steps=2, reference=3)
