"""Issue 12 "Trust": no fallback hides a programming error; inputs are validated with clear errors.

Each test here failed before its fix (checked by reverting the library files):

* the CLI turned any ValueError/TypeError/KeyError/ImportError into a one-line user error, and
  fell back silently when ``theorem2_M`` or ``presets.PRESETS`` could not be imported;
* ``crossing._bound_delta`` returned NaN on an ImportError/AttributeError of ``radii``;
* ``presets._theory_architecture`` turned a TypeError of ``get_preset`` into a ValueError;
* ``make_network("theory", np.int64(8))`` raised; ``theorem2_M``/``sample_segment``/
  ``sample_l1_ball`` raised OverflowError/RuntimeError/IndexError or dropped an imaginary part;
  a truncated ``.gz`` IDX file raised an EOFError without its file name.
"""
import gzip
import math
import pathlib

import numpy as np
import pytest
import torch

from gpbound import validation as V

REPO = pathlib.Path(__file__).resolve().parents[1]
SMALL_CNN = str(REPO / "docs" / "examples" / "small_cnn.yaml")


# ----------------------------------------------------------------------------- validation module
@pytest.mark.parametrize("value, expected", [(8, 8), (np.int64(8), 8), (np.uint8(3), 3), (np.array(5), 5),
                                             (torch.tensor(4), 4)])
def test_positive_int_accepts_ints_and_numpy_integers(value, expected):
    out = V.positive_int(value, "n")
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value, exc", [(True, TypeError), (8.0, TypeError), ("8", TypeError), (None, TypeError),
                                        (1 + 0j, TypeError), (np.array([1, 2]), TypeError), (0, ValueError),
                                        (-3, ValueError), (np.int64(-1), ValueError)])
def test_positive_int_rejects(value, exc):
    with pytest.raises(exc, match=r"^n must be an integer >= 1"):
        V.positive_int(value, "n")


def test_real_number():
    assert V.real_number(np.float32(0.5), "delta", lo=0, hi=1) == 0.5
    assert V.real_number(np.int64(3), "x") == 3.0
    assert V.real_number(math.inf, "x", allow_inf=True) == math.inf
    assert math.isnan(V.real_number(math.nan, "x", allow_nan=True))
    for bad, exc in [(True, TypeError), (2 + 1j, TypeError), (np.complex128(2), TypeError), ("0.5", TypeError),
                     (None, TypeError), ([0.5], TypeError), (math.nan, ValueError), (math.inf, ValueError),
                     (10 ** 400, ValueError), (-0.1, ValueError), (1.0, ValueError)]:
        with pytest.raises(exc, match=r"^delta must be a real number in \[0, 1\)"):
            V.real_number(bad, "delta", lo=0, hi=1, hi_open=True)


def test_norm_p_and_seed():
    assert [V.norm_p(v, "p") for v in (1, 2, math.inf, "l1", "l2", "linf", "inf", "L2", np.float64(1.5))] == \
        [1.0, 2.0, math.inf, 1.0, 2.0, math.inf, math.inf, 2.0, 1.5]
    for bad, exc in [("2", TypeError), ("lx", TypeError), (0.5, ValueError), (math.nan, ValueError), (True, TypeError),
                     (2j, TypeError), ("l0.5", ValueError)]:
        with pytest.raises(exc, match="^p must be"):
            V.norm_p(bad, "p")
    assert V.seed(np.uint64(2 ** 64 - 1)) == 2 ** 64 - 1 and V.seed(None, allow_none=True) is None
    for bad, exc in [(-1, ValueError), (2 ** 64, ValueError), (None, TypeError), (1.0, TypeError), (False, TypeError)]:
        with pytest.raises(exc, match="^seed must be"):
            V.seed(bad)


# ----------------------------------------------------------------------------- no hidden fallbacks
def test_cli_programming_errors_propagate_with_a_traceback(monkeypatch):
    """Before: main() turned any ValueError/TypeError/KeyError/ImportError into exit code 2."""
    from gpbound import cli
    from gpbound.cli import radius

    args = ["radius", "--arch", SMALL_CNN, "--delta", "0.1", "--x0-norm", "1"]
    for exc in (TypeError("a bug"), ValueError("a bug"), KeyError("a bug"), ImportError("a bug"),
                AttributeError("a bug")):
        def broken(*a, _exc=exc, **k):
            raise _exc

        monkeypatch.setattr(radius, "radius_report", broken)
        with pytest.raises(type(exc), match="a bug"):
            cli.main(args)


def test_cli_user_errors_stay_one_line(tmp_path, capsys):
    from gpbound.cli import main

    assert main(["radius", "--arch", "resnet", "--image-size", "6", "--delta", "0.1", "--x0-norm", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpbound: error: ") and "image" in err and len(err.strip().splitlines()) == 1
    binary = tmp_path / "arch.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x81 not text")
    assert main(["radius", "--arch", str(binary), "--delta", "0.1", "--x0-norm", "1"]) == 2
    assert "cannot parse" in capsys.readouterr().err
    x0 = tmp_path / "x0.npy"
    np.save(x0, np.array(["a", "b"]))
    assert main(["radius", "--arch", SMALL_CNN, "--delta", "0.1", "--x0", str(x0)]) == 2
    assert "--x0" in capsys.readouterr().err


def test_cli_theorem_M_has_no_import_fallback(monkeypatch):
    """Before: an ImportError of gpbound.constants.theorem2_M fell back to arch.M silently."""
    import gpbound.constants
    from gpbound import cli

    arch, _ = cli.load_architecture(SMALL_CNN)
    assert cli._theorem_M(arch) == pytest.approx(float(arch.M))
    monkeypatch.delattr(gpbound.constants, "theorem2_M")
    with pytest.raises(ImportError, match="theorem2_M"):
        cli._theorem_M(arch)


def test_cli_presets_have_no_fallback(monkeypatch):
    """Before: without presets.PRESETS any name was passed on unchecked (names = [])."""
    from gpbound import cli
    from gpbound.kernels import presets

    monkeypatch.delattr(presets, "PRESETS")
    with pytest.raises(AttributeError, match="PRESETS"):
        cli.load_architecture("resnet")


def test_bound_delta_has_no_fallback(monkeypatch):
    """Before: an ImportError/AttributeError of gpbound.radii made the bound's delta NaN."""
    from gpbound import radii, crossing

    x0 = torch.ones(4, dtype=torch.float64)
    d = crossing._bound_delta("segment", 0.1, x0, 2.0, "numeric", "dudley")
    assert d == pytest.approx(float(radii.segment_failure_probability(0.1, 2.0, 2.0)), rel=1e-14)
    d = crossing._bound_delta("segment", 0.1, x0, 2.0, "numeric")  # the default: the comparison bound
    assert d == pytest.approx(float(radii.comparison_segment_failure_probability(0.1, 2.0, 2.0)), rel=1e-14)
    for name, bound in (("segment_failure_probability", "dudley"),
                        ("comparison_segment_failure_probability", "comparison")):
        monkeypatch.delattr(radii, name)
        with pytest.raises(AttributeError, match=name):
            crossing._bound_delta("segment", 0.1, x0, 2.0, "numeric", bound)


def test_theory_preset_does_not_rewrite_type_errors(monkeypatch):
    """Before: any TypeError of get_preset became a ValueError 'the theory preset does not accept ...'."""
    from gpbound.experiments import networks as exp_presets
    from gpbound.kernels import presets

    def broken(*a, **k):
        raise TypeError("a bug in get_preset")

    monkeypatch.setattr(presets, "get_preset", broken)
    with pytest.raises(TypeError, match="a bug in get_preset"):
        exp_presets.make_network("theory", 8, blocks_per_stack=2)


# ----------------------------------------------------------------------------- validated inputs
def test_make_network_accepts_numpy_integers():
    """Before: make_network("theory", np.int64(8)) raised ValueError while get_preset accepted it."""
    from gpbound.experiments.networks import make_network, preset_info

    x = torch.rand(2, 192, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = make_network("theory", np.int64(8), seed=np.int64(1))
    b = make_network("theory", 8, seed=1)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    f = make_network("faithful", np.int64(8), widths=np.int64(2), blocks_per_stack=np.int64(1))
    assert f(x).shape == (2,)
    assert preset_info("theory", np.int64(8))["n"] == 192
    with pytest.raises(TypeError, match="image_size"):
        make_network("theory", 8.0)
    with pytest.raises(TypeError, match="image_size"):
        make_network("theory", True)
    with pytest.raises(TypeError, match="width_scale"):
        make_network("faithful", 8, width_scale="2")
    with pytest.raises(ValueError, match="seed"):
        make_network("faithful", 8, seed=-1)
    with pytest.raises(TypeError, match="logits"):
        make_network("faithful", 8, logits=True)


def test_theorem2_M_rejects_overflow_and_bad_types():
    """Before: theorem2_M(10**400, 1) raised OverflowError; theorem2_M(1, 10**400) returned 0.0."""
    from gpbound.constants import theorem2_M

    assert theorem2_M(np.int64(1024), np.int64(64)) == 4.0
    with pytest.raises(ValueError, match="arch_or_pixels"):
        theorem2_M(10 ** 400, 1)
    with pytest.raises(ValueError, match="flatten_pixels"):
        theorem2_M(1, 10 ** 400)
    with pytest.raises(TypeError, match="arch_or_pixels"):
        theorem2_M(torch.tensor([16, 4]), 4)
    with pytest.raises(TypeError, match="flatten_pixels"):
        theorem2_M(16, 4.0)


@pytest.mark.parametrize("fn", ["ball", "segment"])
def test_sampling_rejects_bad_arguments_by_name(fn):
    """Before: OverflowError (r = 10**400), RuntimeError (num, seed too large), a silently dropped
    imaginary part (complex x0), errors not naming the argument."""
    from gpbound.sampling import sample_l1_ball, sample_segment

    x0 = torch.zeros(3, dtype=torch.float64)

    def call(x0=x0, r=1.0, num=4, **kw):
        if fn == "ball":
            return sample_l1_ball(x0, r, num, **kw)
        return sample_segment(x0, kw.pop("v", torch.ones(3)), r, num, **kw)

    assert call(r=np.float32(0.5), num=np.int64(4), seed=np.int64(3)).shape == (4, 3)
    cases = [(dict(r=10 ** 400), ValueError, "r must"), (dict(r=True), TypeError, "r must"),
             (dict(r="1"), TypeError, "r must"), (dict(r=1j), TypeError, "r must"),
             (dict(num=10 ** 30), ValueError, "num must"), (dict(num=4.0), TypeError, "num must"),
             (dict(seed=2 ** 70), ValueError, "seed must"), (dict(seed=1.5), TypeError, "seed must"),
             (dict(x0=torch.zeros(3, dtype=torch.complex128)), TypeError, "x0 must"),
             (dict(x0=np.array([1 + 1j, 0, 0])), TypeError, "x0 must"),
             (dict(x0="abc"), TypeError, "x0 must"), (dict(x0=None), TypeError, "x0 must"),
             (dict(x0=[1.0, "a", 2.0]), TypeError, "x0 must"), (dict(x0=[[1.0], [2.0, 3.0]]), TypeError, "x0 must"),
             (dict(x0=[10 ** 400, 0, 0]), ValueError, "x0"), (dict(kind=["grid"]), TypeError, "kind must"),
             (dict(dtype=torch.int64), TypeError, "dtype must"), (dict(r=1e308, x0=torch.full((3,), 1.7e308, dtype=torch.float64), seed=0),
                                                                   ValueError, "r = ")]
    if fn == "segment":
        cases += [(dict(v=torch.ones(3, dtype=torch.complex128)), TypeError, "v must"),
                  (dict(v="abc"), TypeError, "v must")]
    for kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            call(**kw)


def test_segment_direction_is_unit_for_huge_and_tiny_v():
    from gpbound.sampling import sample_segment

    x0 = torch.zeros(3, dtype=torch.float64)
    for scale in (1e300, 1e-310):
        P = sample_segment(x0, torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64) * scale, 5.0, 2)
        torch.testing.assert_close(P[-1], torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64))


def test_truncated_gzip_idx_names_the_file(tmp_path):
    """Before: EOFError('Compressed file ended before the end-of-stream marker was reached')."""
    from gpbound.experiments.data import load_mnist_idx

    labels = b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(5)
    images = b"\x00\x00\x08\x03" + b"".join(v.to_bytes(4, "big") for v in (5, 2, 2)) + bytes(20)
    good_l, good_i = tmp_path / "l.gz", tmp_path / "i.gz"
    good_l.write_bytes(gzip.compress(labels))
    good_i.write_bytes(gzip.compress(images))
    X, y = load_mnist_idx(good_i, good_l)
    assert X.shape == (5, 1, 2, 2) and y.shape == (5,)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(labels)[:-6])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*truncated"):
        load_mnist_idx(good_i, bad)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"garbage" * 3)
    with pytest.raises(ValueError, match="corrupt.gz"):
        load_mnist_idx(corrupt, good_l)


def test_truncated_cifar_batch_names_the_file(tmp_path):
    import pickle

    from gpbound.experiments.data import load_cifar10_batch

    raw = pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises((ValueError, pickle.UnpicklingError), match="data_batch_1"):
        load_cifar10_batch(bad)


def test_data_helpers_validate_numbers():
    from gpbound.experiments.data import random_images, train_test_split_arrays

    assert random_images(np.int64(2), np.int64(4), seed=np.int64(1)).shape == (2, 3, 4, 4)
    with pytest.raises(TypeError, match="image_size"):
        random_images(2, "4")
    with pytest.raises(ValueError, match="seed"):
        random_images(2, 4, seed=-1)
    X, y = np.zeros((8, 2)), np.zeros(8)
    assert len(train_test_split_arrays(X, y, np.float64(0.25))[2]) == 2
    with pytest.raises(TypeError, match="test_fraction"):
        train_test_split_arrays(X, y, "0.25")


def test_covering_inputs_are_never_parsed_or_truncated():
    """Before: log_covering_number("0.5", 10) parsed the string; a complex array lost its imaginary
    part (ComplexWarning); log_covering_number(1.0, 1) was ln 3 instead of 0 (eq. 36: eps >= 1 -> 0)."""
    from gpbound.covering import log_covering_number

    assert log_covering_number(np.float64(0.5), np.int64(10)) == pytest.approx(math.log(20) / 0.25, rel=1e-12)
    assert log_covering_number(1.0, 1) == 0.0
    for eps, exc in [("0.5", TypeError), (np.array([0.5 + 1j]), TypeError), ([0.5, None], TypeError),
                     ([True], TypeError), (10 ** 400, ValueError), (math.nan, ValueError)]:
        with pytest.raises(exc, match="^eps"):
            log_covering_number(eps, 10)
    with pytest.raises(TypeError, match="^n"):
        log_covering_number(0.5, "10")


def test_build_report_validates_seed_and_threads(tmp_path):
    """Before: build_report(seed=np.int64(1)) and threads=np.int64(1) were refused (ValueError)."""
    from gpbound.report import CheckResult, Comparison, build_report

    def ok(ctx):
        return CheckResult("ok", "ok", "b", "m", "t", comparisons=[Comparison("c", 1, "<=", 2)])

    assert build_report(tmp_path / "a", checks=[ok], seed=np.int64(1), threads=np.int64(1)).all_passed
    with pytest.raises(TypeError, match="seed"):
        build_report(tmp_path / "b", checks=[ok], seed=True)
    with pytest.raises(ValueError, match="threads"):
        build_report(tmp_path / "c", checks=[ok], threads=0)


def test_kernel_paired_generic_callable_has_no_batched_guess():
    """Before: a generic callable was first tried on (B, 1, n) inputs and any exception fell back to
    matrices, so a bug that raised there was hidden.  Now: its diagonal of chunk x chunk matrices,
    equal to the closed form; an error of the callable propagates."""
    from gpbound.rkhs import kernel_paired

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(10, 4, generator=g, dtype=torch.float64)
    calls = []

    def linear(a, b):
        calls.append(a.dim())
        return a @ b.T

    got = kernel_paired(linear, x, y, chunk=3)
    assert torch.allclose(got, (x * y).sum(-1), rtol=1e-14, atol=0)
    assert set(calls) == {2}  # never called on a 3-D guess

    def buggy(a, b):
        raise KeyError("a bug")

    with pytest.raises(KeyError, match="a bug"):
        kernel_paired(buggy, x, y)


def test_ensemble_vmap_fallback_catches_only_what_vmap_raises():
    """A module raising something else than vmap's RuntimeError/NotImplementedError (a bug) is not
    retried in the loop, and ``vectorize`` stays on."""
    from gpbound.ensemble import NetworkEnsemble

    calls = []

    class Buggy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1).double()

        def forward(self, x):
            calls.append(x.shape)
            raise KeyError("a bug")

    ens = NetworkEnsemble([Buggy(), Buggy()], points_per_network=2, vectorize=True)
    with pytest.raises(KeyError, match="a bug"):
        ens(torch.zeros(4, 3, dtype=torch.float64))
    assert ens.vectorize is True
    assert len(calls) == 1  # the vmapped call only: no loop retried after the bug
