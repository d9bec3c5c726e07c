"""The package installs with kernels/ and covering/ under gpbound.*, never top level."""
import subprocess
import sys


def test_subpackages_install_under_gpbound(tmp_path):
    import pathlib

    repo = str(pathlib.Path(__file__).resolve().parents[1])
    code = (
        "import importlib.util, gpbound.kernels, gpbound.covering\n"
        "assert gpbound.kernels.__name__ == 'gpbound.kernels'\n"
        "assert gpbound.covering.__name__ == 'gpbound.covering'\n"
        "for name in ('kernels', 'covering'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        f"    assert spec is None or not str(spec.origin).startswith({repo!r}), spec\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
