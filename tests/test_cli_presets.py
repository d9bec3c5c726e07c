"""`gpbound radius --arch faithful`: the authors' network is a known preset without an analytic kernel,
and the command line says so in one line (exit code 2), instead of calling it an unknown preset."""
import pytest

from gpbound.cli import load_architecture, main


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("gpbound: error: ")
    return err[0]


@pytest.mark.parametrize("extra", [[], ["--image-size", "8"]])
def test_radius_faithful_explains_why_no_radius(capsys, extra):
    rc = main(["radius", "--arch", "faithful", *extra, "--delta", "0.1", "--random-input", "0"])
    assert rc == 2
    line = _one_error_line(capsys)
    assert "preset 'faithful'" in line and "no analytic NNGP kernel" in line
    assert "unknown preset" not in line
    # which assumption fails: the post-activation block, a ReLU of a non-Gaussian sum
    assert "post-activation" in line and "not Gaussian" in line
    assert "Traceback" not in line


def test_unknown_preset_still_unknown(capsys):
    rc = main(["radius", "--arch", "vgg", "--delta", "0.1", "--random-input", "0"])
    assert rc == 2
    line = _one_error_line(capsys)
    assert "unknown preset 'vgg'" in line


def test_analytic_presets_still_load():
    assert load_architecture("resnet", 8)[0].has_kernel


@pytest.mark.parametrize("conv", [{"stride": 2}, {"padding": "same"}])
def test_no_certified_radius_where_theorem2_is_not_derived(tmp_path, capsys, conv):
    """Strided or zero-padded convolutions have an NNGP kernel but no derived Theorem 2 M: the library
    refuses M (so corollary1 has no radius to call certified) and the CLI says so in one line."""
    import json

    import torch

    from gpbound.constants import theorem2_M
    from gpbound.kernels import Architecture, Conv, Flatten, ReLU, serial
    from gpbound.radii import corollary1

    arch = Architecture(serial(Conv(4, 3, **conv), ReLU(), Flatten(1)), input_shape=(1, 6, 6))
    assert arch.has_kernel and arch.theorem2_issues
    with pytest.raises(ValueError, match="^arch_or_pixels: Theorem 2's M is not derived"):
        theorem2_M(arch)
    with pytest.raises(ValueError, match="Theorem 2's M is not derived"):
        corollary1(arch, torch.rand(arch.n, dtype=torch.float64), 0.1)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch.to_dict()))
    assert main(["radius", "--arch", str(path), "--delta", "0.1", "--random-input", "0"]) == 2
    line = _one_error_line(capsys)
    assert "Theorem 2's M is not derived" in line and "no certified radius" in line
    # the same layers with circular stride-1 convolutions keep their radius
    ok = Architecture(serial(Conv(4, 3), ReLU(), Flatten(1)), input_shape=(1, 6, 6))
    assert not ok.theorem2_issues and theorem2_M(ok) == pytest.approx(1.0)
