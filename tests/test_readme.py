"""The README runs as written: every ```python block, every cheap ```sh block, the ```yaml example.

* Python blocks run verbatim, in order and in one namespace (they build on each other, as a reader
  pastes them), in a subprocess with a timeout, in a temporary working folder.
* Shell blocks run line by line with bash in a temporary folder whose ``.venv/bin/gpbound`` runs
  this interpreter's ``gpbound.cli`` -- except the blocks marked just before with
  ``<!-- no-test: REASON -->`` (expensive ones). Nothing is skipped silently: the test lists the
  blocks it did not run, with their reasons, and every block must have a language.
* The YAML example is an architecture file: it must load (``Architecture.from_dict``).
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LANGUAGES = {"python", "sh", "yaml", "text"}
_FENCE = re.compile(r"(?:<!--\s*no-test:\s*(?P<reason>.*?)\s*-->\s*\n)?^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```\s*$",
                    re.S | re.M)


def readme_blocks(text=README):
    """``[(language, body, no-test reason or None, line number)]`` of the fenced blocks of ``text``."""
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start("lang")) + 1
        out.append((m.group("lang").strip(), m.group("body"), m.group("reason"), line))
    return out


def test_every_block_has_a_language_and_no_test_marks_give_reasons():
    blocks = readme_blocks()
    assert README.count("```") == 2 * len(blocks), "a fence the parser did not pair"
    for lang, _, reason, line in blocks:
        assert lang in LANGUAGES, f"README.md:{line}: block language {lang!r} not in {sorted(LANGUAGES)}"
        assert reason is None or (lang == "sh" and reason), f"README.md:{line}: no-test needs a reason, sh only"
    assert any(lang == "sh" and reason is None for lang, _, reason, _ in blocks), "no cheap shell block runs"


def test_readme_python_blocks_run(tmp_path):
    blocks = [(body, line) for lang, body, _, line in readme_blocks() if lang == "python"]
    assert len(blocks) >= 2
    (tmp_path / "blocks.json").write_text(json.dumps(blocks), encoding="utf-8")
    driver = textwrap.dedent('''
        import json, sys
        import gpytorch, torch

        namespace = {"__name__": "__main__"}
        for body, line in json.load(open("blocks.json", encoding="utf-8")):
            # verbatim; the blank lines keep the README's line numbers in a traceback
            exec(compile("\\n" * (line) + body, "README.md", "exec"), namespace)
            print(f"README.md:{line}: ran", flush=True)
        # the quick-start model is a trained ExactGP with a finite certificate per test point
        model, cert = namespace["model"], namespace["cert"]
        assert isinstance(model, gpytorch.models.ExactGP)
        assert bool(torch.isfinite(cert.mean_radius).all()) and bool((cert.mean_radius >= 0).all())
        print("trained", flush=True)
    ''')
    (tmp_path / "driver.py").write_text(driver, encoding="utf-8")
    out = subprocess.run([sys.executable, "driver.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count(": ran") == len(blocks) and "trained" in out.stdout
    assert "Traceback" not in out.stderr
    # what the radius snippet prints: four positive radii by name
    assert re.search(r"l1 \S+\s+l2 \S+\s+linf \S+\s+segment \S+", out.stdout), out.stdout
    # the quick start's printed results are what the README shows (numbers to 0.5 %: BLAS threads may
    # change the last digits of 30 Adam steps), and training improved the marginal likelihood
    shown = next(body for lang, body, _, _ in readme_blocks() if lang == "text" and "-mll/N" in body)
    printed = out.stdout.splitlines()
    for want in shown.strip().splitlines():
        words = re.sub(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", "#", want)
        got = [g for g in printed if re.sub(r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?", "#", g) == words]
        assert got, f"README shows {want!r}; the quick start printed nothing like it"
        num = r"[-+]?\d*\.?\d+(?:e[-+]?\d+)?"
        for a, b in zip(re.findall(num, want), re.findall(num, got[0])):
            assert float(b) == pytest.approx(float(a), rel=5e-3), (want, got[0])
    mll = [float(v) for v in re.findall(r"-mll/N = (\S+)", out.stdout)]
    assert len(mll) == 2 and mll[1] < mll[0]


def _shim_folder(tmp_path):
    """A folder where ``.venv/bin/gpbound`` is this interpreter's command line (and ``docs`` the repository's)."""
    bindir = tmp_path / ".venv" / "bin"
    bindir.mkdir(parents=True)
    shim = bindir / "gpbound"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gpbound.cli "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    return tmp_path


def test_readme_cheap_shell_blocks_run(tmp_path, capsys):
    work = _shim_folder(tmp_path)
    ran, not_run = [], []
    for lang, body, reason, line in readme_blocks():
        if lang != "sh":
            continue
        if reason is not None:
            not_run.append(f"README.md:{line}: {reason}")
            continue
        for cmd in body.splitlines():
            if not cmd.strip() or cmd.lstrip().startswith("#"):
                continue
            out = subprocess.run(["bash", "-c", cmd], cwd=work, capture_output=True, text=True, timeout=300,
                                 env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert out.returncode == 0, (line, cmd, out.stderr[-2000:])
            assert "Traceback" not in out.stderr, (cmd, out.stderr[-2000:])
            ran.append((cmd, out.stdout))
    with capsys.disabled():  # say what was not run (pytest -s shows it; the assertion below pins it)
        print("\nREADME shell blocks not run:\n  " + "\n  ".join(not_run))
    marked = [m.group(1) for m in re.finditer(r"<!--\s*no-test:\s*(.*?)\s*-->", README)]
    assert len(not_run) == len(marked) >= 1
    assert any("gpbound radius" in cmd for cmd, _ in ran)
    radius = next(o for c, o in ran if "gpbound radius" in c)
    assert "no input within r of x0 changes the label" in radius and "comparison" in radius
    verify = [o for c, o in ran if "gpbound verify" in c]
    assert all("x r" in o and "Clopper-Pearson" in o for o in verify)


def test_readme_yaml_example_is_an_architecture():
    import yaml

    from gpbound.kernels import Architecture

    ymls = [body for lang, body, _, _ in readme_blocks() if lang == "yaml"]
    assert ymls
    for body in ymls:
        arch = Architecture.from_dict(yaml.safe_load(body))
        assert arch.n == 3 * 16 * 16 and arch.M == pytest.approx(2.0)


def test_readme_two_commands_are_make_targets():
    head = README.split("```")[1]
    assert "make run" in head and "make test" in head
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_documents_dask_and_the_extra_exists():
    import configparser

    assert "--scheduler" in README and 'pip install ".[dask]"' in README
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert "distributed" in extras["dask"]
    assert "import torch" in next(body for lang, body, _, _ in readme_blocks()
                                  if lang == "python" and "corollary1" in body)
