"""Fuzzing the public API of the bounds, the kernels and the sampling (issue 12 "Trust").

Every generated call has each argument either valid (Python or NumPy scalars, 0-d and small
arrays, inside the documented range) or invalid (bool, complex, strings, bytes, None, arbitrary
objects, ragged or string arrays, NaN, +-inf, huge ints, out-of-range numbers). The contract:

* a call with an invalid argument raises ValueError or TypeError whose message names that
  argument (as a word), and nothing else (no OverflowError, IndexError, RuntimeError,
  AttributeError, and no warning: the suite runs with ``filterwarnings = error``);
* a call with valid arguments returns finite numbers (no NaN, no inf).

The profile is derandomised (tests/conftest.py), so the same cases run every time. The cases
total about 2,900 (see ``MAX_EXAMPLES``); measured about 30-60 s on the shared 2-core machine.

Cases this suite found breaking the contract were excluded from the random draws, fixed in the
library, and pinned one by one in :func:`test_fixed_contract_violations` as regression tests.
"""
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gpbound import borell_tis, dudley, radii
from gpbound.constants import theorem2_M
from gpbound.covering import entropy_integral, log_covering_number
from gpbound.covering.entropy import ENTROPY_METHODS
from gpbound.sampling import sample_l1_ball, sample_segment

ERRORS = (ValueError, TypeError)
COUNT = {}

# ----------------------------------------------------------------------------- argument pools
BAD_TYPE = [True, False, np.bool_(True), 1 + 2j, np.complex128(1 + 1j), "1", "abc", b"2", None, object(),
            [1.0, "a"], np.array(["1.0"]), [[1.0], [1.0, 2.0]], {"a": 1}]
BAD_NONFINITE = [math.nan, np.float64("nan"), math.inf, -math.inf, np.float64("-inf"), 10 ** 400, -(10 ** 400)]
BAD_POSITIVE = BAD_TYPE + BAD_NONFINITE + [0, 0.0, -1, -1e-3, np.int64(-5), np.array([1.0, -1.0])]
BAD_NONNEG = BAD_TYPE + BAD_NONFINITE + [-1, -1e-3, np.int64(-5)]
BAD_DELTA = BAD_TYPE + BAD_NONFINITE + [0, 0.0, 1, 1.0, 1.5, -0.1, np.float64(1.0), np.array([0.5, 1.0])]
BAD_M = BAD_TYPE + BAD_NONFINITE + [0.5, 0, -2, np.float64(0.99)]
BAD_N = BAD_TYPE + BAD_NONFINITE + [0, -3, 1.5, np.float64(2.5), 0.5]
BAD_INT = BAD_TYPE + BAD_NONFINITE + [0, -3, 1.5, 2.0, np.float64(2.0)]
BAD_SEED = [True, 1 + 2j, "1", b"2", object(), 1.5, 2.0, math.nan, -1, 2 ** 64, 10 ** 400, [1]]
# p: the string "2" was parsed as a number by radii._p (fixed; see test_fixed_contract_violations)
BAD_P = [True, False, 1 + 2j, np.complex128(2), b"2", None, object(), "abc", "lx", math.nan, 0.5, 0, -1,
         "l0.5", np.float64(0.5), [1.0, "a"]]


def bad_choice(*extra):
    return ["nope", "", 3, None, True, ["bound"], b"bound", 1.5] + list(extra)


def flt(lo, hi, arrays=True):
    """Valid floats in [lo, hi]: Python float and int, NumPy scalars, 0-d and 2-element arrays."""
    base = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    forms = [base, base.map(np.float64), base.map(np.array)]
    if lo == math.floor(lo) and hi >= lo + 1:
        forms.append(st.integers(int(math.ceil(lo)), int(min(hi, 10 ** 6))).map(np.int64))
    if arrays:
        forms.append(st.lists(base, min_size=2, max_size=2).map(np.array))
    return st.one_of(forms)


def ints(lo, hi, arrays=False):
    base = st.integers(lo, hi)
    forms = [base, base.map(np.int64)]
    if hi < 2 ** 31:
        forms.append(base.map(np.int32))
    if hi < 2 ** 16:
        forms.append(base.map(np.uint16))
    if arrays:
        forms.append(st.lists(base, min_size=2, max_size=2).map(np.array))
    return st.one_of(forms)


class Arg:
    """An argument: its name, a strategy of valid values, a list of invalid ones, and the words an
    error message may use for it (default: its name)."""

    def __init__(self, name, valid, bad, says=None):
        self.name, self.valid, self.bad = name, valid, list(bad)
        self.says = tuple(says or (name,))


def _names(msg, names):
    return any(re.search(r"(?<![\w])" + re.escape(n) + r"(?![\w])", msg) for n in names)


def _finite(out):
    if isinstance(out, torch.Tensor):
        return bool(torch.isfinite(out).all()) and not out.is_complex()
    if hasattr(out, "to_dense"):
        return _finite(out.to_dense())
    if isinstance(out, (tuple, list)):
        return all(_finite(o) for o in out)
    arr = np.asarray(out, dtype=np.float64)
    return bool(np.all(np.isfinite(arr)))


def check_call(key, fn, kwargs, bad_names):
    COUNT[key] = COUNT.get(key, 0) + 1
    if bad_names:
        try:
            fn(**kwargs)
        except ERRORS as exc:
            assert _names(str(exc), bad_names), f"{key}: the message does not name {bad_names}: {exc!r}"
        else:
            raise AssertionError(f"{key}: no error for invalid {bad_names}: {kwargs!r}")
    else:
        out = fn(**kwargs)
        assert _finite(out), f"{key}: non-finite output {out!r} for {kwargs!r}"


def fuzz(key, fn, args, max_examples, fixed=None):
    """Draw each argument valid or invalid (0, 1 or 2 invalid at a time) and check the contract."""
    fixed = dict(fixed or {})

    # no shrinking: a failure is reported with the first failing case (shrinking a fuzz case costs minutes)
    @settings(max_examples=max_examples, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.reuse, Phase.generate], report_multiple_bugs=False)
    @given(data=st.data())
    def run(data):
        k = data.draw(st.sampled_from([0, 0, 1, 1, 2]), label="n_bad")
        can = [i for i, a in enumerate(args) if a.bad]
        bad = set(data.draw(st.permutations(can), label="order")[:k]) if k else set()
        kwargs = dict(fixed)
        for i, a in enumerate(args):
            kwargs[a.name] = data.draw(st.sampled_from(a.bad) if i in bad else a.valid, label=a.name)
        check_call(key, fn, kwargs, [w for i in bad for w in args[i].says])

    run()


X0N = lambda: Arg("x0_norm", flt(1e-3, 1e4), BAD_POSITIVE)  # noqa: E731
DELTA = lambda: Arg("delta", flt(1e-6, 1 - 1e-6), BAD_DELTA)  # noqa: E731
M_ = lambda: Arg("M", flt(1.0, 1e3), BAD_M)  # noqa: E731
N_ = lambda hi=3000: Arg("n", ints(1, hi, arrays=True), BAD_N)  # noqa: E731
R_ = lambda: Arg("r", flt(1e-6, 1e3), BAD_POSITIVE)  # noqa: E731
P_ = lambda: Arg("p", st.sampled_from([1, 2, 1.5, 3.0, math.inf, "l1", "l2", "linf", "inf", np.float64(2),  # noqa: E731
                                       np.int64(1)]), BAD_P)
EQ32 = lambda: Arg("eq32", st.sampled_from(["bound", "exact"]), bad_choice())  # noqa: E731
ENTROPY = lambda: Arg("entropy", st.sampled_from(["numeric", "closed", "paper"]), bad_choice())  # noqa: E731
METHOD = lambda: Arg("method", st.sampled_from(list(radii.METHODS)), bad_choice())  # noqa: E731

MAX_EXAMPLES = {
    "comparison_radius": 200, "comparison_failure_probability": 150, "comparison_segment_radius": 150,
    "l1_ball_radius": 200, "failure_probability": 150, "segment_radius": 150, "lp_radius": 150,
    "relative_lp_radius": 150, "instance_radius": 150, "entropy_integral": 100, "log_covering_number": 150,
    "dudley_l1_ball": 100, "dudley_bound": 60, "borell_tis_tail": 120, "borell_tis_logtail": 100,
    "borell_tis_deviation": 120, "theorem2_M": 150, "relu_expectation": 120, "arc_cosine": 100,
    "nngp_kernel": 60, "sample_l1_ball": 150, "sample_segment": 150,
}


# ----------------------------------------------------------------------------- gpbound.radii
def test_fuzz_comparison_radius():
    fuzz("comparison_radius", radii.comparison_radius, [X0N(), DELTA(), N_(), M_(), P_(), EQ32()],
         MAX_EXAMPLES["comparison_radius"])


def test_fuzz_comparison_failure_probability():
    fuzz("comparison_failure_probability", radii.comparison_failure_probability,
         [R_(), X0N(), N_(), M_(), P_(), EQ32()], MAX_EXAMPLES["comparison_failure_probability"])


def test_fuzz_comparison_segment_radius():
    fuzz("comparison_segment_radius", radii.comparison_segment_radius, [X0N(), DELTA(), M_(), EQ32()],
         MAX_EXAMPLES["comparison_segment_radius"])


def test_fuzz_l1_ball_radius():
    fuzz("l1_ball_radius", radii.l1_ball_radius, [X0N(), DELTA(), N_(), M_(), ENTROPY()],
         MAX_EXAMPLES["l1_ball_radius"])


def test_fuzz_failure_probability():
    fuzz("failure_probability", radii.failure_probability, [R_(), X0N(), N_(), M_(), ENTROPY()],
         MAX_EXAMPLES["failure_probability"])


def test_fuzz_segment_radius():
    fuzz("segment_radius", radii.segment_radius,
         [X0N(), DELTA(), M_(), Arg("form", st.sampled_from(["derived", "eq12"]), bad_choice())],
         MAX_EXAMPLES["segment_radius"])


def test_fuzz_lp_radius():
    # x0 given by its l2 norm (n given): arrays of norms broadcast with delta and M
    # KNOWN (radii.py): with n given, an invalid x0 is reported as "x0_norm"; an invalid entropy is
    # not rejected under method="comparison" (it is unused there): entropy is drawn valid only
    fuzz("lp_radius", radii.lp_radius,
         [P_(), Arg("x0", flt(1e-3, 1e4), BAD_POSITIVE, says=("x0", "x0_norm")), DELTA(), M_(),
          Arg("n", ints(1, 3000), BAD_N), Arg("entropy", st.sampled_from(["numeric", "closed", "paper"]), []),
          METHOD()], MAX_EXAMPLES["lp_radius"])


def test_fuzz_relative_lp_radius():
    fuzz("relative_lp_radius", radii.relative_lp_radius,
         [P_(), Arg("x0", flt(1e-3, 1e4), BAD_POSITIVE, says=("x0", "x0_norm")), DELTA(), M_(),
          Arg("n", ints(1, 3000), BAD_N), Arg("x0_norm_p", flt(1e-3, 1e4), BAD_POSITIVE),
          Arg("entropy", st.sampled_from(["numeric", "closed", "paper"]), []), METHOD()],
         MAX_EXAMPLES["relative_lp_radius"])


def test_fuzz_instance_radius():
    fuzz("instance_radius", radii.instance_radius,
         [Arg("sqrt_k00", flt(1e-3, 1e4), BAD_POSITIVE), Arg("L", flt(1e-3, 1e4), BAD_POSITIVE), DELTA(), N_(),
          P_(), EQ32()], MAX_EXAMPLES["instance_radius"])


# ----------------------------------------------------------------------------- covering, Dudley, Borell-TIS
def test_fuzz_entropy_integral():
    fuzz("entropy_integral", entropy_integral,
         [N_(10 ** 5), Arg("method", st.sampled_from(list(ENTROPY_METHODS)), bad_choice())],
         MAX_EXAMPLES["entropy_integral"])


def test_fuzz_log_covering_number():
    fuzz("log_covering_number", log_covering_number,
         [Arg("eps", flt(1e-300, 10.0), BAD_POSITIVE), Arg("n", ints(1, 10 ** 9, arrays=True), BAD_N)],
         MAX_EXAMPLES["log_covering_number"])


def test_fuzz_dudley_l1_ball():
    fuzz("dudley_l1_ball", dudley.dudley_l1_ball,
         [N_(10 ** 4), Arg("r", flt(1e-3, 1e3), BAD_POSITIVE), Arg("MC", flt(1e-3, 1e3), BAD_POSITIVE), ENTROPY()],
         MAX_EXAMPLES["dudley_l1_ball"])


def test_fuzz_dudley_bound():
    def lc(eps):
        return log_covering_number(eps, 20)

    fuzz("dudley_bound", dudley.dudley_bound,
         [Arg("log_covering", st.just(lc), [None, 3, "f", [lc]]),
          # KNOWN (dudley.py): a 2-element array as upper/scale gives numpy's message, not the name
          Arg("upper", flt(0.5, 2.0, arrays=False), BAD_POSITIVE[:-1]),
          Arg("scale", flt(1e-2, 1e2, arrays=False), BAD_POSITIVE[:-1])], MAX_EXAMPLES["dudley_bound"])


def test_fuzz_borell_tis():
    T = lambda: Arg("t", flt(0.0, 1e3), BAD_NONNEG)  # noqa: E731
    S = lambda: Arg("sigma", flt(1e-2, 1e3), BAD_POSITIVE)  # noqa: E731
    fuzz("borell_tis_tail", borell_tis.borell_tis_tail, [T(), S()], MAX_EXAMPLES["borell_tis_tail"])
    fuzz("borell_tis_logtail", borell_tis.borell_tis_logtail, [T(), S()], MAX_EXAMPLES["borell_tis_logtail"])
    fuzz("borell_tis_deviation", borell_tis.borell_tis_deviation,
         [Arg("prob", flt(1e-300, 1.0), BAD_DELTA[:-5] + [0, 0.0, 1.5, -0.1]), S()],
         MAX_EXAMPLES["borell_tis_deviation"])


# ----------------------------------------------------------------------------- constants
def test_fuzz_theorem2_M():
    fuzz("theorem2_M", theorem2_M,
         [Arg("arch_or_pixels", ints(1, 2 ** 40), BAD_INT + [np.array([4, 4])]),
          Arg("flatten_pixels", ints(1, 2 ** 40), BAD_INT[1:] + [2 ** 63, np.array([4, 4])])],  # None: see below
         MAX_EXAMPLES["theorem2_M"])
    with pytest.raises(TypeError, match="input_pixels"):  # one int and no flatten_pixels
        theorem2_M(16)


# ----------------------------------------------------------------------------- kernels
def _moment(lo, hi, shape=(3,)):
    return st.lists(st.floats(lo, hi), min_size=shape[0], max_size=shape[0]).map(
        lambda v: torch.tensor(v, dtype=torch.float64))


BAD_MOMENT = [torch.tensor([math.nan, 1.0, 1.0], dtype=torch.float64), torch.tensor([math.inf, 1.0, 1.0],
              dtype=torch.float64), torch.tensor([1, 2, 3]), torch.tensor([1.0, 1.0, 1.0], dtype=torch.complex128),
              torch.tensor([True, False, True])]


def test_fuzz_relu_expectation():
    from gpbound.kernels import relu_expectation

    def var_bad():
        return BAD_MOMENT + [torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)]

    fuzz("relu_expectation", relu_expectation,
         [Arg("kxx", _moment(0.0, 1e3), var_bad()), Arg("kyy", _moment(0.0, 1e3), var_bad()),
          Arg("kxy", _moment(-1e3, 1e3), BAD_MOMENT)], MAX_EXAMPLES["relu_expectation"])


def test_fuzz_arc_cosine():
    from gpbound.kernels import arc_cosine

    pts = st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3),
                                                       min_size=n, max_size=n)).map(
        lambda v: torch.tensor(v, dtype=torch.float64))
    # KNOWN (kernels/arccos.py): NaN in x1/x2 is reported as "kxx/kyy/kxy must be finite"; a list
    # instead of a tensor raises AttributeError: both pinned in KNOWN, not drawn here
    fuzz("arc_cosine", arc_cosine,
         [Arg("x1", pts, [torch.ones(2, 4, dtype=torch.float64)]), Arg("x2", pts, [torch.ones(2, 5, dtype=torch.float64)]),
          Arg("order", st.sampled_from([0, 1, 2]), [3, -1, 1.5, True, "1", None, 1j])],  # np.int64: KNOWN
         MAX_EXAMPLES["arc_cosine"])


def _no_huge(pool):
    return [v for v in pool if not (isinstance(v, int) and abs(v) > 2 ** 64)]


def test_fuzz_nngp_kernel():
    from gpbound.kernels import NNGPKernel, presets

    arch = presets.get_preset("dense", image_size=2, in_channels=1, width=4, depth=1)
    n = int(arch.n)

    def kernel_matrix(sigma_w2, sigma_b2, x1):
        k = NNGPKernel(arch, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
        with torch.no_grad():
            return k(x1, x1).to_dense()

    pts = st.integers(1, 3).flatmap(lambda m: st.lists(st.lists(st.floats(-10, 10), min_size=n, max_size=n),
                                                       min_size=m, max_size=m)).map(
        lambda v: torch.tensor(v, dtype=torch.float64))
    fuzz("nngp_kernel", kernel_matrix,
         # KNOWN (kernels/nngp.py): NumPy integer variances are rejected: valid values are floats here
         # KNOWN (kernels/nngp.py): 10**400 raises OverflowError: not drawn here
         [Arg("sigma_w2", st.floats(1e-2, 10.0).map(lambda v: v if v > 5 else np.float64(v)), _no_huge(BAD_POSITIVE[:-1])),
          Arg("sigma_b2", st.floats(0.0, 10.0).map(lambda v: v if v > 5 else np.float64(v)), _no_huge(BAD_NONNEG)),
          Arg("x1", pts, [torch.full((2, n), math.nan, dtype=torch.float64), torch.ones(2, n + 1, dtype=torch.float64),
                          "abc"])], MAX_EXAMPLES["nngp_kernel"])  # None: KNOWN


# ----------------------------------------------------------------------------- sampling
def _vec(n_lo=1, n_hi=6):
    return st.integers(n_lo, n_hi).flatmap(lambda n: st.one_of(
        st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n).map(lambda v: torch.tensor(v, dtype=torch.float64)),
        st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n).map(np.array),
        st.lists(st.floats(-1e3, 1e3), min_size=n, max_size=n)))


BAD_X0 = [None, "abc", b"1", 1 + 2j, torch.zeros(3, dtype=torch.complex128), np.array([1 + 1j, 0.0]),
          [1.0, "a"], [[1.0], [2.0, 3.0]], [math.nan, 1.0], torch.tensor([math.inf, 0.0]), torch.zeros(2, 3),
          np.array(["1", "2"]), [True, False], [10 ** 400, 1.0], object()]


def test_fuzz_sample_l1_ball():
    fuzz("sample_l1_ball", sample_l1_ball,
         [Arg("x0", _vec(), BAD_X0), Arg("r", flt(1e-6, 1e3, arrays=False), BAD_POSITIVE[:-1]),
          Arg("num", ints(1, 8), BAD_INT + [2 ** 70]),
          Arg("kind", st.sampled_from(["uniform", "surface", "vertices"]), bad_choice("grid")),
          Arg("seed", st.one_of(st.none(), ints(0, 2 ** 32)), BAD_SEED)], MAX_EXAMPLES["sample_l1_ball"])


def test_fuzz_sample_segment():
    def seg(x0, v, r, num, kind, seed):
        return sample_segment(x0, v, r, num, kind=kind, seed=seed)

    vec3 = st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3).map(lambda v: torch.tensor(v, dtype=torch.float64))
    v3 = st.lists(st.floats(-1e3, 1e3), min_size=3, max_size=3).filter(lambda v: any(abs(e) > 1e-300 for e in v))
    fuzz("sample_segment", seg,
         [Arg("x0", vec3, BAD_X0), Arg("v", st.one_of(v3, v3.map(np.array)),
                                       BAD_X0 + [[0.0, 0.0, 0.0], [1.0, 1.0]]),
          Arg("r", flt(1e-6, 1e3, arrays=False), BAD_POSITIVE[:-1]), Arg("num", ints(1, 8), BAD_INT + [2 ** 70]),
          Arg("kind", st.sampled_from(["grid", "uniform"]), bad_choice("vertices")),
          Arg("seed", st.one_of(st.none(), ints(0, 2 ** 32)), BAD_SEED)], MAX_EXAMPLES["sample_segment"])


def test_total_cases():
    """The suite's size: at least 2000 generated cases (counted when the whole file ran first)."""
    assert sum(MAX_EXAMPLES.values()) >= 2000
    if set(COUNT) == set(MAX_EXAMPLES):
        print(f"\nfuzz cases: {sum(COUNT.values())} in all; " + ", ".join(f"{k} {v}" for k, v in COUNT.items()))
        assert sum(COUNT.values()) >= 2000, COUNT


# ----------------------------------------------------------------------------- known violations
def _nngp(**kw):
    from gpbound.kernels import NNGPKernel, presets

    return NNGPKernel(presets.get_preset("dense", image_size=2, in_channels=1, width=4, depth=1), **kw)


def _arc(x1, x2, order=1):
    from gpbound.kernels import arc_cosine

    return arc_cosine(x1, x2, order=order)


KNOWN = [
    # (file, call, the argument the error must name, what happened before the fix) -- violations of the
    # contract found by this suite (excluded from the random draws above), fixed since; each stays a
    # regression test
    ("gpbound/radii.py", lambda: radii.comparison_radius(1.0, 0.1, 10, 2.0, p="2"), "p",
     "radii._p parses the string '2' as the number 2 (only norm names 'l2', 'inf' ... should be accepted)"),
    ("gpbound/radii.py", lambda: radii.lp_radius(2, math.nan, 0.1, 2.0, n=10), "x0",
     "lp_radius/relative_lp_radius with n given report an invalid x0 as 'x0_norm'"),
    ("gpbound/radii.py", lambda: radii.lp_radius(2, [1.0, 2.0], 0.1, 2.0, entropy="nope"), "entropy",
     "lp_radius(method='comparison') accepts any entropy (unused, never validated)"),
    ("gpbound/dudley.py", lambda: dudley.dudley_bound(lambda e: 0.0, np.array([1.0, 2.0])), "upper",
     "dudley_bound(upper=array) raises numpy's 'only 0-dimensional arrays can be converted' (no name)"),
    ("kernels/arccos.py", lambda: _arc(torch.tensor([[math.nan, 1.0]], dtype=torch.float64),
                                        torch.ones(1, 2, dtype=torch.float64)), "x1",
     "arc_cosine with NaN in x1 says 'kxx must be finite'"),
    ("kernels/arccos.py", lambda: _arc([[1.0, 2.0]], [[1.0, 2.0]]), "x1",
     "arc_cosine with a list raises AttributeError ('list' object has no attribute 'shape')"),
    ("kernels/arccos.py", lambda: _arc(torch.ones(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64),
                                        order=np.int64(1)), None,
     "arc_cosine rejects order=np.int64(1) ('order must be 0, 1 or 2')"),
    ("kernels/nngp.py", lambda: _nngp(sigma_w2=10 ** 400), "sigma_w2",
     "NNGPKernel(sigma_w2=10**400) raises OverflowError"),
    ("kernels/nngp.py", lambda: _nngp()(None, None), "x1",
     "NNGPKernel()(None, None) raises AttributeError ('NoneType' object has no attribute 'ndimension')"),
    ("kernels/nngp.py", lambda: _nngp(sigma_b2=np.int64(1)).sigma_b2.detach(), None,
     "NNGPKernel rejects a NumPy integer variance (np.int64(1)) that a Python int passes"),
]


@pytest.mark.parametrize("where, fn, name, why", KNOWN, ids=[f"{k[0]}-{i}" for i, k in enumerate(KNOWN)])
def test_fixed_contract_violations(where, fn, name, why):
    """``name`` None: a valid call that must work; else an invalid call that must be rejected naming ``name``."""
    if name is None:
        assert _finite(fn()), why
        return
    try:
        out = fn()
    except ERRORS as exc:
        assert _names(str(exc), [name]), why
        return
    raise AssertionError(why + f" (returned {out!r})")
