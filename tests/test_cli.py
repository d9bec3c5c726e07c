"""The `gpbound` command line, run as a user runs it (subprocess), plus main() in-process.

Oracles: the radii printed by `gpbound radius --json` must equal the library functions
(gpbound.radii, gpbound.covering) called directly here, and the closed forms of
docs/theory.md §3/§5 recomputed here (eq. 39-40 tight l1 radius, Remark 5 l_p scaling).
"""
import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gpbound.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=120)


def assert_user_error(out, *fragments):
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr  # one clear line
    assert lines[0].startswith("gpbound: error: "), out.stderr
    for frag in fragments:
        assert frag in lines[0], (frag, lines[0])


@pytest.mark.parametrize("args, fragments", [
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "1.5", "--x0-norm", "3"], ["delta", "(0, 1)"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "0", "--x0-norm", "3"], ["delta"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "nan", "--x0-norm", "3"], ["delta"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "abc", "--x0-norm", "3"], ["delta", "abc"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "0.1", "--x0-norm", "-1"], ["--x0-norm"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "0.1"], ["--x0-norm"]),  # no x0 given
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "0.1", "--x0-norm", "3", "--p", "0.5"], ["p must be"]),
    (["radius", "--arch", "no_such_file.json", "--delta", "0.1", "--x0-norm", "3"], ["not found"]),
    (["radius", "--arch", "no-such-preset", "--delta", "0.1", "--x0-norm", "3"], ["no-such-preset"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "0.1", "--x0", "missing.npy"], ["missing.npy"]),
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "0.1", "--x0-norm", "3", "--entropy", "bogus"],
     ["entropy"]),
    (["frobnicate"], ["frobnicate"]),
    (["reproduce", "fig9"], ["fig9"]),
    (["reproduce", "fig1", "--sizes", "4"], ["--sizes"]),
    (["report", "--seed", "-3"], ["--seed"]),
])
def test_bad_arguments_give_one_clear_line(args, fragments, capsys):
    """In-process through main() (the code path of the console script; fast)."""
    from gpbound.cli import main

    args = [a.replace("EX/", str(EXAMPLES) + "/") for a in args]
    code = main(args)
    captured = capsys.readouterr()
    assert_user_error(subprocess.CompletedProcess(args, code, captured.out, captured.err), *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["radius", "--arch", "EX/small_cnn.yaml", "--delta", "1.5", "--x0-norm", "3"], ["delta", "(0, 1)"]),
    (["radius", "--arch", "no_such_file.json", "--delta", "0.1", "--x0-norm", "3"], ["not found"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_bad_arguments_subprocess(args, fragments):
    """As a user runs it: python -m gpbound.cli ..."""
    args = [a.replace("EX/", str(EXAMPLES) + "/") for a in args]
    assert_user_error(run_cli(*args), *fragments)


def test_malformed_files_are_user_errors(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("input_shape: [3, 8\nlayers: {")
    assert_user_error(run_cli("radius", "--arch", bad_yaml, "--delta", "0.1", "--x0-norm", "1"), "cannot parse")
    bad_arch = tmp_path / "bad.json"
    bad_arch.write_text(json.dumps({"layers": []}))  # no input_shape
    out = run_cli("radius", "--arch", bad_arch, "--delta", "0.1", "--x0-norm", "1")
    assert_user_error(out, "bad.json")
    # x0 of the wrong size
    x0 = tmp_path / "x0.npy"
    np.save(x0, np.ones(5))
    assert_user_error(run_cli("radius", "--arch", EXAMPLES / "small_cnn.yaml", "--delta", "0.1", "--x0", x0),
                      "192")


def test_main_returns_exit_code_in_process(capsys):
    from gpbound.cli import main

    assert main(["radius", "--arch", str(EXAMPLES / "small_cnn.yaml"), "--delta", "2", "--x0-norm", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpbound: error: ") and "Traceback" not in err
    assert main(["--version"]) == 0


def _library_radii(arch, x0, deltas, entropy):
    import torch

    from gpbound import radii
    from gpbound.constants import theorem2_M
    from gpbound.covering import entropy_integral

    M = float(theorem2_M(arch))
    x0n = float(np.linalg.norm(x0))
    n = int(arch.n)
    a = float(entropy_integral(n, method=entropy))
    out = []
    for d in deltas:
        out.append({"l1": float(radii.l1_ball_radius(x0n, d, n, M, entropy=entropy)),
                    "segment": float(radii.segment_radius(x0n, d, M)),
                    "l2": float(radii.lp_radius(2, torch.as_tensor(x0), d, M, entropy=entropy, method="dudley")),
                    "closed_l1": x0n * d / (M * (16 * a / math.sqrt(math.pi) + 1 + d)),
                    "comparison_l2": float(radii.comparison_radius(x0n, d, n, M, p=2)),
                    "comparison_segment": x0n / M * d / (1 / math.pi + 1 + d)})
    return M, a, out


@pytest.mark.parametrize("example, entropy", [("small_cnn.yaml", "numeric"), ("small_resnet.json", "paper"),
                                              ("fully_connected.yaml", "closed")])
def test_radius_json_equals_library(tmp_path, example, entropy):
    from gpbound.cli import load_architecture, random_input

    deltas = [0.01, 0.2]
    out = run_cli("radius", "--arch", EXAMPLES / example, "--delta", *deltas, "--random-input", 7,
                  "--entropy", entropy, "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    arch, _ = load_architecture(str(EXAMPLES / example))
    x0 = random_input(int(arch.n), 7)
    M, a, lib = _library_radii(arch, x0, deltas, entropy)
    assert rep["architecture"]["n"] == arch.n
    assert rep["architecture"]["input_pixels"] == arch.input_pixels
    assert rep["architecture"]["flatten_pixels"] == arch.flatten_pixels
    assert rep["architecture"]["M"] == pytest.approx(math.sqrt(arch.input_pixels / arch.flatten_pixels), rel=1e-12)
    assert rep["entropy"] == {"method": entropy, "value": pytest.approx(a, rel=1e-12)}
    assert rep["x0"]["norm_l2"] == pytest.approx(np.linalg.norm(x0), rel=1e-12)
    n = int(arch.n)
    assert "no input within r of x0 changes the label" in rep["guarantee"]
    for entry, want, d in zip(rep["radii"], lib, deltas):
        assert entry["delta"] == d
        comp = entry["comparison"]
        assert comp["lp"]["2"] == pytest.approx(want["comparison_l2"], rel=1e-12)
        assert comp["l2"] == pytest.approx(want["comparison_l2"], rel=1e-12)
        assert comp["segment"] == pytest.approx(want["comparison_segment"], rel=1e-9)
        got = entry["dudley"]
        assert got["l1"] == pytest.approx(want["l1"], rel=1e-12)
        assert got["l1"] == pytest.approx(want["closed_l1"], rel=1e-12)   # eq. 39-40 recomputed here
        assert got["segment"] == pytest.approx(want["segment"], rel=1e-12)
        assert got["lp"]["2"] == pytest.approx(want["l2"], rel=1e-12)
        # Remark 5: r_p = r_1 / n^(1 - 1/p), relative = r_p / ||x0||_p
        assert got["lp"]["1"] == pytest.approx(got["l1"], rel=1e-12)
        assert got["lp"]["inf"] == pytest.approx(got["l1"] / n, rel=1e-12)
        for p, key in ((1, "1"), (2, "2"), (np.inf, "inf")):
            assert got["relative"][key] == pytest.approx(got["lp"][key] / np.linalg.norm(x0, ord=p), rel=1e-12)


def test_radius_with_x0_file_and_norm_agree(tmp_path):
    from gpbound.cli import load_architecture

    arch, _ = load_architecture(str(EXAMPLES / "small_cnn.yaml"))
    x0 = np.random.default_rng(3).normal(size=int(arch.n))
    np.save(tmp_path / "x0.npy", x0)
    a = json.loads(run_cli("radius", "--arch", EXAMPLES / "small_cnn.yaml", "--delta", "0.05", "--x0",
                           tmp_path / "x0.npy", "--json").stdout)
    b = json.loads(run_cli("radius", "--arch", EXAMPLES / "small_cnn.yaml", "--delta", "0.05", "--x0-norm",
                           repr(float(np.linalg.norm(x0))), "--json").stdout)
    for m in ("comparison", "dudley"):
        assert a["radii"][0][m]["l1"] == pytest.approx(b["radii"][0][m]["l1"], rel=1e-12)
        assert a["radii"][0][m]["segment"] == pytest.approx(b["radii"][0][m]["segment"], rel=1e-12)
        assert b["radii"][0][m]["relative"]["1"] is None  # only ||x0||_2 known
    # text output carries the same numbers
    txt = run_cli("radius", "--arch", EXAMPLES / "small_cnn.yaml", "--delta", "0.05", "--x0", tmp_path / "x0.npy")
    assert txt.returncode == 0 and f"{a['radii'][0]['comparison']['l1']:.6g}" in txt.stdout
    assert f"{a['radii'][0]['dudley']['l1']:.6g}" in txt.stdout
    assert "no input within r of x0 changes the label" in txt.stdout


def test_radius_preset_when_available():
    from gpbound.kernels import presets
    out = run_cli("radius", "--arch", "resnet", "--image-size", 16, "--delta", 0.1, "--random-input", 0, "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    arch = presets.get_preset("resnet", image_size=16)
    assert rep["architecture"]["n"] == arch.n == 768
    assert rep["architecture"]["M"] == pytest.approx(float(arch.M), rel=1e-12)
    # --image-size with a file is a user error
    assert_user_error(run_cli("radius", "--arch", EXAMPLES / "small_cnn.yaml", "--image-size", 8, "--delta", 0.1,
                              "--x0-norm", 1), "--image-size")


def test_examples_round_trip():
    import yaml

    from gpbound.kernels import Architecture

    for path in sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".json", ".yaml", ".yml")):
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
        arch = Architecture.from_dict(data)
        again = Architecture.from_dict(arch.to_dict())
        assert (again.n, again.input_pixels, again.flatten_pixels) == (arch.n, arch.input_pixels, arch.flatten_pixels)


def test_verify_json_equals_library():
    import torch

    from gpbound.cli import load_architecture, random_input
    from gpbound.crossing import crossing_frequency

    ex = EXAMPLES / "small_cnn.yaml"
    out = run_cli("verify", "--arch", ex, "--radius", 3.0, "--num-networks", 12, "--seed", 5, "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    arch, _ = load_architecture(str(ex))
    x0 = torch.as_tensor(random_input(int(arch.n), 5))
    want = crossing_frequency(arch, x0, 3.0, num_trials=12, seed=5, M=float(arch.M))
    assert (got["crossings"], got["trials"]) == (int(want.count), 12)
    assert got["clopper_pearson"] == pytest.approx([float(v) for v in want.ci], rel=1e-12)
    assert got["delta_bound"] == pytest.approx(float(want.delta), rel=1e-12)
    assert got["consistent_with_bound"] == (got["clopper_pearson"][0] <= min(1.0, got["delta_bound"]))
    # the measured distances next to r: median / r and the delta-quantile / r (the library's looseness)
    d = np.sort(want.distances.numpy())
    m = got["measured_distances"]
    assert m["median"] == pytest.approx(float(np.quantile(d, 0.5, method="inverted_cdf")), rel=1e-12)
    assert m["median_over_r"] == pytest.approx(m["median"] / 3.0, rel=1e-12)
    assert m["min_over_r"] == pytest.approx(float(d[0]) / 3.0, rel=1e-12)
    assert float(got["looseness"]) == pytest.approx(float(want.looseness), rel=1e-12, nan_ok=True)  # "nan": delta = 1
    assert "no input within r of x0 changes the label" in got["guarantee"]
    assert_user_error(run_cli("verify", "--arch", ex, "--radius", "-1"), "--radius")
    assert_user_error(run_cli("verify", "--arch", ex, "--delta", "0.1", "--num-networks", "0"), "--num-networks")


def test_reproduce_quick_resumes(tmp_path):
    args = ("reproduce", "fig1", "--quick", "--out", tmp_path / "fig1", "--sizes", 4, 8, "--num-networks", 1,
            "--num-points", 1)
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads((tmp_path / "fig1" / "summary.json").read_text())
    assert summary["config"]["sizes"] == [4, 8] and len(summary["records"]) == 2
    assert (tmp_path / "fig1" / "distances_vs_n.png").read_bytes()[:4] == b"\x89PNG"
    # the slopes next to theory's and the authors', and a plain warning that --quick is too small to trust
    assert "(theory +0.5; the authors' 13-size medians +0.424)" in first.stdout
    assert "WARNING: --quick is a smoke run" in first.stdout
    lines = (tmp_path / "fig1" / "results.jsonl").read_text().splitlines()
    again = run_cli(*args)  # resumes: nothing recomputed, same records
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "fig1" / "results.jsonl").read_text().splitlines() == lines
    assert json.loads((tmp_path / "fig1" / "summary.json").read_text())["records"] == summary["records"]


def test_unwritable_output_is_a_user_error(tmp_path, capsys):
    """An --out that is a regular file (so its results file can't be created) -> one line, exit 2."""
    from gpbound.cli import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code = main(["reproduce", "fig1", "--quick", "--out", str(blocker / "sub")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gpbound: error: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_radius_instance_equals_library():
    import torch

    from gpbound import radii
    from gpbound.cli import random_input
    from gpbound.kernels.presets import get_preset

    out = run_cli("radius", "--arch", "resnet", "--image-size", 8, "--delta", 0.1, "--random-input", 2,
                  "--instance", "--sigma-b2", 0.1, "--json")
    assert out.returncode == 0, out.stderr
    inst = json.loads(out.stdout)["radii"][0]["instance"]
    arch = get_preset("resnet", image_size=8)
    x0 = torch.as_tensor(random_input(int(arch.n), 2))
    res = radii.corollary1(arch, x0, 0.1, instance=True, sigma_b2=0.1)
    assert inst["l2"] == pytest.approx(float(res.l2), rel=1e-12) and inst["sigma_b2"] == 0.1
    assert_user_error(run_cli("radius", "--arch", "resnet", "--image-size", 8, "--delta", 0.1, "--x0-norm", 3,
                              "--instance"), "--instance")


def test_reproduce_refuses_a_second_writer_in_one_line(tmp_path):
    from filelock import FileLock

    out = tmp_path / "fig1"
    out.mkdir()
    with FileLock(str(out / "results.jsonl.lock")):
        res = run_cli("reproduce", "fig1", "--out", out, "--quick")
    assert_user_error(res, "another run holds the lock")


def test_verify_blocks_pool_the_library_runs(capsys):
    """--block-size splits the networks: block 0 has --seed, block b the seed SeedSequence([seed, b]); the
    pooled counts are the sum of crossing_frequency over the blocks (in-process; text output names r and
    the distance ratio, and the meaning of delta and r)."""
    import torch

    from gpbound.cli import load_architecture, main, random_input
    from gpbound.cli.verify import block_seeds
    from gpbound.crossing import crossing_frequency

    ex = str(EXAMPLES / "small_cnn.yaml")
    blocks = block_seeds(5, 10, 4)
    assert [b["size"] for b in blocks] == [4, 4, 2] and blocks[0]["seed"] == 5
    assert blocks[1]["seed"] == int(np.random.SeedSequence([5, 1]).generate_state(1)[0])
    assert main(["verify", "--arch", ex, "--radius", "3", "--num-networks", "6", "--block-size", "4", "--seed", "5",
                 "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    arch, _ = load_architecture(ex)
    x0 = torch.as_tensor(random_input(int(arch.n), 5))
    parts = [crossing_frequency(arch, x0, 3.0, num_trials=b["size"], seed=b["seed"], M=float(arch.M))
             for b in block_seeds(5, 6, 4)]
    assert len(parts) == 2 and got["crossings"] == sum(int(r.count) for r in parts) and got["trials"] == 6
    d = np.sort(np.concatenate([r.distances.numpy() for r in parts]))
    assert got["measured_distances"]["median"] == pytest.approx(float(np.quantile(d, 0.5, method="inverted_cdf")))
    assert main(["verify", "--arch", ex, "--radius", "3", "--num-networks", "3", "--seed", "5"]) == 0
    out = capsys.readouterr()
    assert "x r" in out.out and "median" in out.out and "meaning: with probability >= 1 - delta" in out.out
    assert "verify: 3 networks in 1 block(s)" in out.err  # the progress bar, on stderr
    with pytest.raises(ValueError, match="block_size"):
        block_seeds(0, 10, 0)


def test_verify_on_a_dask_scheduler_equals_the_local_run(capsys):
    """--scheduler ADDRESS runs the blocks on dask.distributed (a LocalCluster of threads here)."""
    import distributed
    from gpbound.cli import main

    args = ["verify", "--arch", str(EXAMPLES / "small_cnn.yaml"), "--radius", "3", "--num-networks", "6",
            "--block-size", "3", "--seed", "2", "--json"]
    assert main(args) == 0
    local = json.loads(capsys.readouterr().out)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(args + ["--scheduler", cluster.scheduler_address]) == 0
    remote = json.loads(capsys.readouterr().out)
    assert remote["scheduler"] == cluster.scheduler_address
    for key in ("crossings", "trials", "clopper_pearson", "measured_distances", "blocks"):
        assert remote[key] == local[key], key


@pytest.mark.parametrize("command", [None, "radius", "verify", "report", "certify"])
def test_help_lists_presets_defaults_and_examples(command, capsys):
    from gpbound.cli import main
    from gpbound.kernels.presets import PRESETS

    assert main(([command] if command else []) + ["--help"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert f"  {name} " in out, (command, name)
    assert "examples:\n  gpbound " + (command or "") in out
    assert "with probability >= 1 - delta" in " ".join(out.split())
    if command is not None:
        assert "(default: " in out
    defaults = {"radius": ["--sigma-w2 SIGMA_W2", "(default: 2.0)", "(default: numeric)"],
                "verify": ["(default: 100)", "(default: 0.95)", "(default: 50)", "--scheduler ADDR"],
                "report": ["(default: docs/report)", "(default: 0)"],
                "certify": ["(default: nngp-dense)", "(default: 0.1)", "(default: certify.png)"]}.get(command, [])
    for frag in defaults:
        assert frag in " ".join(out.split()), (command, frag)
    assert "(default: None)" not in out and "(default: False)" not in out


def test_version_has_one_source():
    import configparser

    import gpbound
    from gpbound.cli import main

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["metadata"]["version"].strip() == "attr: gpbound.__version__"
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"gpbound {gpbound.__version__}"
    assert main(["--version"]) == 0


@pytest.mark.parametrize("bound", ["comparison", "dudley"])
def test_verify_delta_tests_the_chosen_certificate(bound, capsys):
    """--delta tests r(delta) of --bound (comparison: gpbound's default), and reports that bound's delta at r."""
    from gpbound import radii
    from gpbound.cli import load_architecture, main, random_input

    ex = str(EXAMPLES / "small_cnn.yaml")
    args = ["verify", "--arch", ex, "--delta", "0.3", "--num-networks", "2", "--seed", "1", "--json"]
    assert main(args + ([] if bound == "comparison" else ["--bound", "dudley"])) == 0
    got = json.loads(capsys.readouterr().out)
    arch, _ = load_architecture(ex)
    x0n = float(np.linalg.norm(random_input(int(arch.n), 1)))
    want = (radii.comparison_radius(x0n, 0.3, int(arch.n), float(arch.M), p=1) if bound == "comparison"
            else radii.l1_ball_radius(x0n, 0.3, int(arch.n), float(arch.M)))
    assert got["bound"] == bound and got["radius"] == pytest.approx(float(want), rel=1e-12)
    assert got["delta_bound"] == pytest.approx(0.3, rel=1e-6)
