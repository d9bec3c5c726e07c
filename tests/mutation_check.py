"""Mutation check of the kernel tests: plant known errors in a copy of the package, see which tests catch them.

Not a test module (pytest collects ``test_*.py`` only; this file also does nothing on import).  Run it by hand:

    .venv/bin/python tests/mutation_check.py            # all mutations, all kernel test files
    .venv/bin/python tests/mutation_check.py --markdown # the table as markdown (docs/mutation.md)
    .venv/bin/python tests/mutation_check.py --files test_kernel_oracle.py --only relu,pool

What it does:

1. copies the package into a temporary directory with the installed layout (``gpbound/``, with
   ``kernels/`` as ``gpbound/kernels`` and ``covering/`` as ``gpbound/covering``) plus ``tests/`` and
   ``setup.cfg``, and runs everything there with ``PYTHONPATH`` pointing at the copy (checked: the copy's
   ``gpbound.kernels`` is the one imported, never the working tree's);
2. runs the kernel test files on the unmodified copy (all must pass, else it stops);
3. for each planted error: restores the pristine copy, replaces one exact snippet of source (the
   snippet must occur exactly once, so a refactoring of the source makes the script fail loudly rather
   than test nothing), checks that the package still imports, and runs each kernel test file with
   ``pytest -x``; the first failing test of each file is recorded;
4. prints the table "planted error -> caught? by which tests" and exits 1 if any error went uncaught.

A few minutes in all (each kernel test file runs once per mutation, stopping at its first failure).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: the kernel test files, the oracle first
KERNEL_TESTS = ["test_kernel_oracle.py", "test_arccos.py", "test_nngp.py", "test_layers.py",
                "test_kernel_fastpaths.py", "test_kernel_speed_paths.py", "test_presets.py"]

#: (key, description, file in the copy, exact snippet, replacement)
MUTATIONS = [
    ("relu", "ReLU map F: order-1 value x 1.01 (every path: autograd, fused, chunked)",
     "gpbound/kernels/arccos.py",
     "    def forward(ctx, a, b, k, order, scale):\n",
     "    def forward(ctx, a, b, k, order, scale):\n        scale = scale * 1.01 if order == 1 else scale\n"),
    ("flatten", "Flatten: pixel average x 1.02",
     "gpbound/kernels/pixels.py",
     "return state.map(lambda t: (t.mean(dim=dims) * sw2).add_(sb2), grid=())",
     "return state.map(lambda t: (t.mean(dim=dims) * 1.02 * sw2).add_(sb2), grid=())"),
    ("dense_bias", "Dense (flat field): bias term sb2 x 1.1",
     "gpbound/kernels/pixels.py",
     "return state.map(lambda t: (t * sw2).add_(sb2))  # add_ on a fresh product",
     "return state.map(lambda t: (t * sw2).add_(sb2 * 1.1))  # add_ on a fresh product"),
    ("conv_norm", "Conv: weight normalisation sw2/|P| -> sw2/(1.01 |P|)",
     "gpbound/kernels/stencil.py",
     "    npix = math.prod(patch)\n",
     "    npix = math.prod(patch) * 1.01\n"),
    ("pool", "AvgPool: block mean x 1.01",
     "gpbound/kernels/pixels.py",
     "scale = 1.0 / (math.prod(block) ** 2)",
     "scale = 1.01 / (math.prod(block) ** 2)"),
    ("residual", "Residual: K + 1.01 block(K)",
     "gpbound/kernels/layers.py",
     "out = skip + self.block._kernel(state, sw2, sb2, keep_full)",
     "out = skip + self.block._kernel(state, sw2, sb2, keep_full).map(lambda t: t * 1.01)"),
    ("var_tape", "blocked kernel: replayed variances (VarTape) of x1's rows x 1.01",
     "gpbound/kernels/state.py",
     "        return out1, out2\n",
     "        return out1 * 1.01, out2\n"),
    ("block_mirror", "blocked kernel (x with itself): mirrored blocks below the diagonal x 1.01",
     "gpbound/kernels/architecture.py",
     "out[..., j:j + b2, i:i + b1] = blk.transpose(-1, -2)",
     "out[..., j:j + b2, i:i + b1] = blk.transpose(-1, -2) * 1.01"),
    ("block_cover", "blocked kernel: the ragged last block dropped (pairs left uncomputed)",
     "gpbound/kernels/architecture.py",
     "        starts.append(N - b)\n",
     "        pass\n"),
    ("fused_conv_relu", "fused compiled Conv + ReLU: conv output sw2/|P| x 1.01 (compiled path only)",
     "gpbound/kernels/stencil.py",
     "    k = _rolled_sum(t, grid, patch, full) * scale + shift\n",
     "    k = _rolled_sum(t, grid, patch, full) * (scale * 1.01) + shift\n"),
    ("fused_relu", "fused compiled Conv + ReLU: its ReLU map F x 1.01 (compiled path only)",
     "gpbound/kernels/stencil.py",
     "    return s * (torch.sqrt((1.0 - c) * (1.0 + c)) + (_PI - torch.arccos(c)) * c) * f\n",
     "    return s * (torch.sqrt((1.0 - c) * (1.0 + c)) + (_PI - torch.arccos(c)) * c) * (f * 1.01)\n"),
]


def make_copy(dest: Path) -> None:
    ign = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    src = dest / "src"
    shutil.copytree(ROOT / "gpbound", src / "gpbound", ignore=ign)
    for sub in ("kernels", "covering"):
        target = src / "gpbound" / sub
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / sub, target, ignore=ign)
    shutil.copytree(ROOT / "tests", dest / "tests", ignore=ign)
    shutil.copy2(ROOT / "setup.cfg", dest / "setup.cfg")


def env_for(dest: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(dest / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def check_import(dest: Path) -> str:
    """The copy's gpbound.kernels must be the one imported; returns '' or the error text."""
    code = "import gpbound.kernels as k, gpbound.kernels.layers as l; print(k.__file__); print(l.__file__)"
    r = subprocess.run([sys.executable, "-c", code], cwd=dest, env=env_for(dest), capture_output=True, text=True)
    if r.returncode != 0:
        return r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}"
    for line in r.stdout.split():
        if not Path(line).resolve().is_relative_to(dest.resolve()):
            return f"imported {line}, not the copy"
    return ""


def run_file(dest: Path, name: str, timeout: float) -> tuple:
    """(status, first failing test or '', seconds) for one test file with pytest -x."""
    cmd = [sys.executable, "-m", "pytest", f"tests/{name}", "-x", "-q", "-p", "no:cacheprovider", "-p",
           "no:warnings", "-rf"]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=dest, env=env_for(dest), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", time.perf_counter() - t0
    dt = time.perf_counter() - t0
    if r.returncode == 0:
        return "pass", "", dt
    m = re.search(r"^(?:FAILED|ERROR) (\S+)", r.stdout, re.M)
    return ("fail", m.group(1).replace("tests/", "") if m else f"exit code {r.returncode}", dt)


def plant(dest: Path, rel: str, old: str, new: str) -> None:
    path = dest / "src" / rel
    text = path.read_text()
    n = text.count(old)
    if n != 1:
        raise SystemExit(f"mutation snippet occurs {n} times in {rel} (expected exactly 1): {old!r}; "
                         f"update tests/mutation_check.py to the current source")
    path.write_text(text.replace(old, new))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", default=",".join(KERNEL_TESTS), help="comma-separated test files (in tests/)")
    p.add_argument("--only", default="", help="comma-separated mutation keys: " +
                   ", ".join(m[0] for m in MUTATIONS))
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per test-file run")
    a = p.parse_args(argv)
    files = [f.strip() for f in a.files.split(",") if f.strip()]
    for f in files:
        if not (ROOT / "tests" / f).exists():
            p.error(f"no test file tests/{f}")
    keys = {k.strip() for k in a.only.split(",") if k.strip()}
    muts = [m for m in MUTATIONS if not keys or m[0] in keys]
    if keys - {m[0] for m in MUTATIONS}:
        p.error(f"--only: unknown keys {sorted(keys - {m[0] for m in MUTATIONS})}")

    with tempfile.TemporaryDirectory(prefix="gpbound-mutation-") as tmp:
        dest = Path(tmp)
        make_copy(dest)
        err = check_import(dest)
        if err:
            print(f"the copy does not import cleanly: {err}", file=sys.stderr)
            return 2
        print(f"copy in {dest}; python {sys.executable}", flush=True)
        t0 = time.perf_counter()
        for f in files:  # baseline: everything passes unmodified
            status, test, dt = run_file(dest, f, a.timeout)
            print(f"  baseline {f}: {status} {test} ({dt:.0f} s)", flush=True)
            if status != "pass":
                print("baseline failure: fix the suite before checking mutations", file=sys.stderr)
                return 2
        pristine = {rel: (dest / "src" / rel).read_text() for rel in {m[2] for m in muts}}
        rows = []
        for key, desc, rel, old, new in muts:
            for r, text in pristine.items():
                (dest / "src" / r).write_text(text)
            plant(dest, rel, old, new)
            err = check_import(dest)
            if err:
                raise SystemExit(f"mutation {key} breaks the import ({err}); a planted error must be numeric")
            caught = []
            for f in files:
                status, test, dt = run_file(dest, f, a.timeout)
                print(f"  {key}: {f}: {status} {test} ({dt:.0f} s)", flush=True)
                if status != "pass":
                    caught.append(test if status == "fail" else f"{f} ({status})")
            rows.append((key, desc, caught))
        for r, text in pristine.items():
            (dest / "src" / r).write_text(text)
        total = time.perf_counter() - t0

    print()
    if a.markdown:
        print("| planted error | caught? | first failing test per file (pytest -x) |")
        print("|---|---|---|")
        for key, desc, caught in rows:
            cell = "<br>".join(f"`{c}`" for c in caught) or "-"
            print(f"| {desc.replace('|', chr(92) + '|')} | {'yes' if caught else '**NO**'} | {cell} |")
    else:
        w = max(len(d) for _, d, _ in rows)
        print(f"{'planted error':<{w}}  caught?  by")
        for key, desc, caught in rows:
            print(f"{desc:<{w}}  {'yes' if caught else 'NO':<7}  {caught[0] if caught else '-'}")
            for c in caught[1:]:
                print(f"{'':<{w}}  {'':<7}  {c}")
    print(f"\nfiles: {', '.join(files)}; total {total:.0f} s")
    missed = [key for key, _, caught in rows if not caught]
    if missed:
        print(f"NOT CAUGHT: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
