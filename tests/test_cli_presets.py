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
