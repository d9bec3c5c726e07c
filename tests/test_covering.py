"""Theorem 3, the entropy integral and Maurey's cover (gpbound.covering).

Oracles: the piecewise formula of eq. (36) evaluated with Python's math module, scipy quad
of the *untransformed* integrand (a different route from the implementation), the
table of I1(n) quoted in docs/theory.md §4, and exact geometry (every sampled point of the l1 ball must lie within eps
of a center of the Maurey cover).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from scipy import integrate

from gpbound.covering import (
    a_n_paper,
    a_n_tilde,
    covering_radius,
    entropy_integral,
    first_piece,
    log_covering_number,
    maurey_cover,
    middle_piece,
    middle_piece_maurey,
    sample_l1_ball_points,
)
from gpbound.covering.maurey import log_multiset_count


# ----------------------------------------------------------------------------- Theorem 3
def _ln_n_oracle(eps, n):
    if eps >= 1:
        return 0.0
    if eps > 1 / math.sqrt(n):
        return math.log(2 * n) / eps**2
    return n * math.log(1 + 2 / eps)


@settings(max_examples=60, deadline=None)
@given(eps=st.floats(1e-6, 3.0), n=st.integers(1, 10**6))
def test_log_covering_number_matches_eq36(eps, n):
    assert log_covering_number(eps, n) == pytest.approx(_ln_n_oracle(eps, n), rel=1e-12)


def test_log_covering_number_vectorised_and_no_overflow():
    eps = np.array([1e-300, 5e-324, 0.01, 0.5, 1.0, 7.0])
    out = log_covering_number(eps, 100)
    assert out.shape == (6,) and np.all(np.isfinite(out))
    # n ln(1 + 2/eps) ~ n (ln 2 - ln eps) for tiny eps: 100 * (ln 2 + 300 ln 10)
    assert out[0] == pytest.approx(100 * (math.log(2) + 300 * math.log(10)), rel=1e-12)
    assert out[4] == 0.0 and out[5] == 0.0
    grid = log_covering_number(eps[:, None], np.array([1, 10, 1000])[None, :])
    assert grid.shape == (6, 3)
    # boundary eps = 1/sqrt(n) belongs to the volume branch
    assert log_covering_number(0.1, 100) == pytest.approx(100 * math.log(21), rel=1e-14)


@pytest.mark.parametrize(
    "eps, n, exc",
    [(0.0, 5, ValueError), (-1.0, 5, ValueError), (float("nan"), 5, ValueError), (float("inf"), 5, ValueError),
     (0.5, 0, ValueError), (0.5, 2.5, ValueError), (0.5, float("nan"), ValueError), ("a", 5, TypeError),
     (0.5, True, TypeError), (0.5, 10**400, ValueError)],
)
def test_log_covering_number_bad_input(eps, n, exc):
    with pytest.raises(exc):
        log_covering_number(eps, n)


# ----------------------------------------------------------------------------- entropy integral
THEORY_TABLE = {2: 1.4571, 48: 1.8997, 432: 2.1666, 3072: 2.3821, 10**5: 2.7240, 10**6: 2.9283, 10**8: 3.2988}


def test_first_piece_matches_theory_table():
    ns = np.array(sorted(THEORY_TABLE))
    vals = first_piece(ns)
    for n, v in zip(ns, vals):
        assert v == pytest.approx(THEORY_TABLE[int(n)], abs=1e-4), n  # table printed to 4 decimals


@pytest.mark.parametrize("n", [1, 7, 48, 3072, 10**6])
def test_entropy_integral_against_direct_quadrature(n):
    """Independent route: quad of sqrt(ln N(eps)) in the original variable eps, split at 1/sqrt n."""
    f = lambda e: math.sqrt(_ln_n_oracle(e, n))  # noqa: E731
    b = 1 / math.sqrt(n)
    v1, e1 = integrate.quad(f, 0, b, limit=400, epsabs=1e-12)  # integrable log singularity at 0
    v2, e2 = integrate.quad(f, b, 1, limit=400) if n > 1 else (0.0, 0.0)
    val = entropy_integral(n)
    # the implementation adds its own error estimate; both are ~1e-10 at most
    assert val == pytest.approx(v1 + v2, abs=1e-8 + e1 + e2)
    assert val >= v1 + v2 - e1 - e2  # an upper bound up to the oracle's own error


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 10**9))
def test_middle_piece_closed_form(n):
    """(ln n / 2) sqrt(ln 2n) against quad of sqrt(ln 2n)/eps over (1/sqrt n, 1)."""
    v, _ = integrate.quad(lambda e: math.sqrt(math.log(2 * n)) / e, 1 / math.sqrt(n), 1)
    assert middle_piece(n) == pytest.approx(v, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(logn=st.floats(0.0, 12.0))
def test_numeric_below_a_tilde_for_all_n(logn):
    n = max(1, int(round(10**logn)))
    assert entropy_integral(n, "numeric") <= a_n_tilde(n)
    assert entropy_integral(n, "closed") == a_n_tilde(n)
    assert entropy_integral(n, "paper") == a_n_paper(n)


def test_numeric_exceeds_paper_a_n_for_practical_n():
    """Documented finding: the last step of eq. (37) fails, so a_n < the integral it claims to bound."""
    ns = np.unique(np.round(np.logspace(0, 6, 40)).astype(int))
    num = entropy_integral(ns)
    assert np.all(num > a_n_paper(ns))
    # ... and the relation flips for very large n (THEORY table: I1(1e8) < (3/4) sqrt(ln 4e8))
    assert entropy_integral(10**8) < a_n_paper(10**8)


@pytest.mark.parametrize("n", [2, 3, 7, 20, 48])
def test_maurey_middle_piece_against_quadrature(n):
    """Independent route: quad of sqrt(ln binom(2n+k-1, k)), k = ceil(1/eps^2), over (1/sqrt n, 1)."""
    f = lambda e: math.sqrt(log_multiset_count(n, math.ceil(1 / e**2)))  # noqa: E731
    pts = [1 / math.sqrt(k) for k in range(2, n)]
    v, _ = integrate.quad(f, 1 / math.sqrt(n), 1, points=pts or None, limit=500)
    assert middle_piece_maurey(n) == pytest.approx(v, rel=1e-7)


def test_maurey_entropy_vs_theorem3_entropy():
    """Documented: the pointwise-proved Maurey covering gives a smaller middle piece than eq. (36) for
    n >= 6 (multisets << sequences) and a slightly larger one for n = 2..5 (ceil(1/eps^2) > 1/eps^2),
    where "numeric" therefore uses it: "numeric" is never below the proved (Maurey) value."""
    small, big = np.arange(2, 6), np.arange(6, 3000)
    assert np.all(middle_piece_maurey(small) > middle_piece(small))
    assert np.all(middle_piece_maurey(big) < middle_piece(big))
    assert np.all(entropy_integral(small, "numeric") == entropy_integral(small, "maurey"))
    assert np.all(entropy_integral(big[::50], "maurey") < entropy_integral(big[::50], "numeric"))
    assert entropy_integral(1, "maurey") == entropy_integral(1, "numeric")
    with pytest.raises(ValueError, match="n must be <="):
        entropy_integral(10**8, "maurey")


def test_entropy_integral_vectorised_shapes():
    n = np.array([[1, 2], [48, 3072]])
    for m in ("numeric", "closed", "paper", "maurey"):
        out = entropy_integral(n, method=m)
        assert out.shape == (2, 2)
        assert out[0, 0] == pytest.approx(entropy_integral(1, method=m))
    assert entropy_integral(torch.tensor([48, 48])).shape == (2,)


@pytest.mark.parametrize("bad", [0, -3, 2.5, float("inf"), float("nan")])
def test_entropy_functions_bad_n(bad):
    for fn in (entropy_integral, a_n_paper, a_n_tilde, first_piece, middle_piece, middle_piece_maurey):
        with pytest.raises(ValueError, match="n"):
            fn(bad)


def test_entropy_integral_bad_method():
    with pytest.raises(ValueError, match="method"):
        entropy_integral(10, method="exact")
    with pytest.raises(ValueError, match="method"):
        entropy_integral(10, method=None)


# ----------------------------------------------------------------------------- Maurey cover
def test_l1_ball_sampler_stays_in_ball_and_is_uniform():
    pts = sample_l1_ball_points(3, 20000, seed=1, include_extremes=False)
    inner, boundary = pts[:20000], pts[20000:]
    assert np.all(np.abs(pts).sum(1) <= 1 + 1e-12)
    assert np.allclose(np.abs(boundary).sum(1), 1.0)
    # uniform in B_1^n: |x|_1 has density n t^{n-1}, so E|x|_1 = n/(n+1) = 0.75 (n = 3);
    # sd of |x|_1 is sqrt(3/80) ~ 0.194 -> SE 0.0014; tolerance 5 SE
    assert np.abs(inner).sum(1).mean() == pytest.approx(0.75, abs=5 * 0.194 / math.sqrt(20000))


@pytest.mark.parametrize("n, eps", [(2, 0.75), (3, 0.5), (4, 1 / math.sqrt(3)), (5, 0.6), (6, 1 / math.sqrt(2)), (3, 1.5)])
def test_maurey_cover_covers_sampled_points(n, eps):
    cov = maurey_cover(n, eps)
    pts = sample_l1_ball_points(n, 4000, seed=n)
    assert covering_radius(cov.centers, pts) <= eps + 1e-12
    assert np.all(np.abs(cov.centers).sum(1) <= 1 + 1e-12)  # centers in the (closed) ball
    assert cov.log_size <= cov.log_maurey_bound + 1e-12  # <= (2n)^k
    assert cov.log_size <= log_multiset_count(n, cov.k) + 1e-12 if cov.k else cov.size == 1


@pytest.mark.parametrize("n, k", [(3, 2), (4, 3), (5, 3), (6, 2), (8, 2)])
def test_maurey_cover_within_theorem3_bound_when_inv_eps2_integer(n, k):
    """In the middle regime with 1/eps^2 = k integer, size <= (2n)^{1/eps^2} (Theorem 3)."""
    eps = 1 / math.sqrt(k)
    assert 1 / math.sqrt(n) < eps < 1
    cov = maurey_cover(n, eps)
    assert cov.within_theorem3_bound
    assert cov.size <= (2 * n) ** k


def test_maurey_cover_can_exceed_theorem3_for_noninteger_inv_eps2():
    """Documented finding: with k = ceil(1/eps^2) the plain Maurey cover is larger than (2n)^{1/eps^2}."""
    cov = maurey_cover(4, 0.99)
    assert cov.k == 2 and cov.size == 33  # 0, +-e_i, (+-e_i +- e_j)/2: 1 + 8 + 24
    assert not cov.within_theorem3_bound


def test_maurey_bad_input():
    with pytest.raises(ValueError, match="eps"):
        maurey_cover(3, 0.0)
    with pytest.raises(ValueError, match="eps"):
        maurey_cover(3, float("nan"))
    with pytest.raises(ValueError, match="n"):
        maurey_cover(0, 0.5)
    with pytest.raises(TypeError, match="n"):
        maurey_cover(2.0, 0.5)
    with pytest.raises(ValueError, match="max_centers"):
        maurey_cover(30, 0.2)
    with pytest.raises(ValueError, match="num"):
        sample_l1_ball_points(3, 0)
    with pytest.raises(ValueError, match="centers"):
        covering_radius(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_numeric_entropy_is_a_proved_bound_for_tiny_n(n):
    """For n = 2..5 eq. (36)'s middle regime undercounts (it is proved only for integer 1/eps^2); "numeric"
    must then bound both the eq. (36) integral and the proved one. Oracles: direct quadrature of each
    integrand in eps (Maurey: k = ceil(1/eps^2) multisets), quad errors ~1e-10."""
    b = 1 / math.sqrt(n)
    v1, e1 = integrate.quad(lambda e: math.sqrt(_ln_n_oracle(e, n)), 0, b, limit=400, epsabs=1e-12)
    v36, _ = integrate.quad(lambda e: math.sqrt(_ln_n_oracle(e, n)), b, 1, limit=400)
    pts = [1 / math.sqrt(k) for k in range(2, n)]
    vm, _ = integrate.quad(lambda e: math.sqrt(log_multiset_count(n, math.ceil(1 / e**2))), b, 1,
                           points=pts or None, limit=500)
    val = entropy_integral(n)
    assert vm > v36
    assert val >= v1 + vm - 1e-8 and val == pytest.approx(v1 + vm, abs=1e-8 + e1)
    assert val <= a_n_tilde(n)


@settings(max_examples=25, deadline=None)
@given(logn=st.floats(0.8, 6.0))
def test_eq36_middle_piece_dominates_maurey_from_n_6(logn):
    """The guard of "numeric" is needed only below n = 6: from there eq. (36)'s middle piece exceeds the proved one."""
    n = max(6, int(round(10**logn)))
    assert middle_piece(n) > middle_piece_maurey(n)
