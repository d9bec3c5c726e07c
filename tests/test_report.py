"""The report of verified bounds: computed verdicts, injected broken bounds, files, numbers.

Oracles: the numbers in results.json are compared with the library functions called here
directly (gpbound.covering.entropy_integral, gpbound.dudley.dudley_l1_ball,
gpbound.radii.corollary1) and with independent quadratures; every <img> of the HTML page is embedded and
must be a real PNG (signature + PIL and matplotlib read-back).
"""
import base64
import functools
import json
import math
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from gpbound.report import Check, CheckContext, CheckResult, Comparison, build_report, run_check
import gpbound.report.default_checks as lc
from gpbound.report.plots import PNG_MAGIC

REPO = pathlib.Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- framework
def test_comparison_verdicts_are_computed():
    assert Comparison("a", 1.0, "<=", 1.0).holds
    assert not Comparison("a", 1.0 + 1e-9, "<=", 1.0).holds
    assert Comparison("a", 1.05, "<=", 1.0, rtol=0.1).holds
    assert Comparison("a", 0.5, ">=", 1.0, atol=0.5).holds
    assert not Comparison("a", 0.49, ">=", 1.0, atol=0.5).holds
    assert Comparison("a", 2.0, "==", 2.1, atol=0.1 + 1e-12).holds
    assert not Comparison("a", 2.0, "==", 2.2, atol=0.1).holds
    assert not Comparison("a", float("nan"), "<=", 1.0).holds
    assert Comparison("a", 1.0, "<=", float("inf")).holds
    with pytest.raises(ValueError, match="relation"):
        Comparison("a", 1.0, "<", 2.0)
    with pytest.raises(ValueError, match="atol"):
        Comparison("a", 1.0, "<=", 2.0, atol=-1)


def test_check_result_status():
    ok = CheckResult("x", "X", "b", "m", "t", comparisons=[Comparison("c", 1, "<=", 2)])
    bad = CheckResult("x", "X", "b", "m", "t", comparisons=[Comparison("c", 1, "<=", 2),
                                                           Comparison("d", 3, "<=", 2)])
    empty = CheckResult("x", "X", "b", "m", "t")
    assert (ok.status, ok.passed) == ("PASS", True)
    assert (bad.status, bad.passed) == ("FAIL", False)
    assert [c.label for c in bad.failed_comparisons] == ["d"]
    assert empty.status == "ERROR" and not empty.passed  # a check must compare something


def _stub_check(ctx, *, bound):
    """A toy check: the measured mean of |N(0,1)| (Monte Carlo) must not exceed `bound`."""
    rng = np.random.default_rng(0)
    g = np.abs(rng.standard_normal(20000))
    se = g.std() / math.sqrt(g.size)
    return CheckResult("stub", "stub: E|g| <= bound", "E|g| = sqrt(2/pi)", "MC, 20000 draws", "3 SE",
                       comparisons=[Comparison("E|g| <= bound", g.mean(), "<=", bound, atol=3 * se)])


def test_injected_checks_pass_fail_skip_error(tmp_path):
    true = math.sqrt(2 / math.pi)

    def raising(ctx):
        raise RuntimeError("boom")

    checks = [functools.partial(_stub_check, bound=true), functools.partial(_stub_check, bound=true / 2),
              Check("needs", raising, requires=("gpbound.no_such_module",), title="needs a module"),
              raising]
    rep = build_report(tmp_path, checks=checks)
    assert [r.status for r in rep.results] == ["PASS", "FAIL", "SKIP", "ERROR"]
    data = json.loads(rep.json.read_text())
    assert [c["status"] for c in data["checks"]] == ["PASS", "FAIL", "SKIP", "ERROR"]
    assert data["checks"][1]["comparisons"][0]["rhs"] == pytest.approx(true / 2, rel=1e-15)
    html = rep.html.read_text()
    assert "FAIL" in html and "boom" in html
    assert "FAIL" in rep.markdown.read_text()


def test_broken_dudley_bound_fails(tmp_path):
    """A 'bound' returning half the exact E max|g_i| must be caught by the Monte Carlo."""
    half = lambda n: 0.5 * lc.expected_max_abs_gaussian(n)  # noqa: E731
    ctx = CheckContext(out_dir=tmp_path, quick=True)
    broken = run_check(functools.partial(lc.check_dudley, bound=half, ns=[2, 50], samples=2000), ctx)
    assert broken.status == "FAIL"
    assert all("Dudley" in c.label for c in broken.failed_comparisons)
    # the exact value itself, as a "bound", is consistent with the measurement (3 SE slack)
    exact = run_check(functools.partial(lc.check_dudley, bound=lc.expected_max_abs_gaussian, ns=[2, 50],
                                        samples=2000), ctx)
    assert exact.status == "PASS"


def test_broken_radius_and_bound_fail_on_the_crossing_measurement(tmp_path):
    """The crossing check has power: a 'certified' radius 1e3 times too large, or a bound 1e3 times too
    small, is caught by the measured crossing frequencies (Clopper-Pearson lower ends), not only by the
    formula check; the library's own radius and bound pass on the same networks."""
    from gpbound import radii

    ctx = CheckContext(out_dir=tmp_path, quick=True)
    good = run_check(lc.check_crossing, ctx)
    assert good.status == "PASS"
    x0n, n, M = (good.numbers[k] for k in ("x0_norm", "n", "M"))
    too_big = lambda d: 1e3 * float(radii.comparison_radius(x0n, d, n, M, p=1))  # noqa: E731
    bad_r = run_check(functools.partial(lc.check_crossing, radius_fn=too_big), ctx)
    assert bad_r.status == "FAIL"
    assert any("frequency at r(δ" in c.label for c in bad_r.failed_comparisons)
    too_small = lambda r, x, n_, m: 1e-3 * radii.comparison_failure_probability(r, x, n_, m, p=1)  # noqa: E731
    bad_p = run_check(functools.partial(lc.check_crossing, failure_probability=too_small), ctx)
    assert bad_p.status == "FAIL"
    assert any(c.label.startswith("CP lower end ≤ bound") for c in bad_p.failed_comparisons)


def test_tightness_check_passes_and_has_power(tmp_path):
    """(i) tightness: the library's proved bound passes on 80 networks per cell; a bound 3x too small (or a
    radius 3x too large, the same thing for these bounds near r -> 0) is caught by the measurement."""
    from gpbound.report import tightness

    ctx = CheckContext(out_dir=tmp_path, quick=True, options={"tightness_sizes": (4,), "tightness_networks": 80})
    good = run_check(tightness.check_tightness, ctx)
    assert good.status == "PASS", [str(c) for c in good.failed_comparisons]
    assert len(good.comparisons) == 2 * 3  # families x sizes x norms
    rows = good.table["rows"]
    assert {r[2] for r in rows} == {"l1", "l2", "linf"} and {r[1] for r in rows} == {48}
    for r in rows:  # instance radius >= comparison radius (up to its 1e4-ulp margin); Dudley far below both
        assert r[6] >= r[4] * (1 - 1e-11) and r[8] < r[4]
    assert "Tightness" in good.finding and (tmp_path / "tightness_resnet.png").is_file()
    broken = functools.partial(tightness.check_tightness,
                               proved_bound=lambda r, p, curves: min(curves["comparison"](r),
                                                                     curves["instance"](r)) / 3)
    bad = run_check(broken, ctx)
    assert bad.status == "FAIL"


def test_exact_expected_max_oracle():
    # n = 1: E|g| = sqrt(2/pi); n = 2: E max(|g1|,|g2|) = 2/sqrt(pi) (closed forms)
    assert lc.expected_max_abs_gaussian(1) == pytest.approx(math.sqrt(2 / math.pi), rel=1e-9)
    assert lc.expected_max_abs_gaussian(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-9)
    # Monte Carlo at n = 1000, 4000 draws: tolerance 4 standard errors
    g = np.abs(np.random.default_rng(1).standard_normal((4000, 1000))).max(axis=1)
    assert abs(g.mean() - lc.expected_max_abs_gaussian(1000)) < 4 * g.std() / math.sqrt(g.size)


def test_entropy_oracle_against_theory_table():
    # docs/theory.md §4 table of I_1(n); the oracle adds the exact middle piece (ln n / 2) sqrt(ln 2n)
    # (for n = 2..5 the oracle's middle piece is the larger, proved Maurey one: checked at n = 2 below)
    for n, i1 in ((48, 1.8997), (3072, 2.3821), (10**6, 2.9283)):
        mid = 0.5 * math.log(n) * math.sqrt(math.log(2 * n))
        assert lc.entropy_integral_oracle(n) - mid == pytest.approx(i1, abs=1e-4)
    # n = 2: k = ceil(1/eps^2) = 2 on (1/sqrt 2, 1), ln binom(5, 2) = ln 10, so the middle piece is
    # sqrt(ln 10) (1 - 1/sqrt 2) in closed form (eq. 36's is (ln 2 / 2) sqrt(ln 4), smaller)
    mid2 = math.sqrt(math.log(10)) * (1 - 1 / math.sqrt(2))
    assert mid2 > 0.5 * math.log(2) * math.sqrt(math.log(4))
    assert lc.entropy_integral_oracle(2) - mid2 == pytest.approx(1.4571, abs=1e-4)


# ----------------------------------------------------------------------------- the quick report
@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = subprocess.run([sys.executable, "-m", "gpbound.cli", "report", "--quick", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    return out, proc


def test_quick_report_files(quick_report):
    out, proc = quick_report
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout
    html = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    imgs = re.findall(r"<img[^>]*\bsrc=['\"]([^'\"]+)['\"][^>]*\bdata-file=['\"]([^'\"]+)['\"]", html)
    assert imgs and len(imgs) == html.count("<img"), "the report has figures, each naming its file"
    assert "<style>" in html and "<link" not in html  # inline CSS, nothing else to fetch
    from PIL import Image
    import matplotlib.image as mpimg

    for data_uri, src in imgs:
        # self-contained: the image is embedded, and is byte for byte the PNG file beside the page
        assert data_uri.startswith("data:image/png;base64,"), data_uri[:40]
        assert not src.startswith(("http:", "https:", "/")), src
        path = out / src
        assert path.is_file(), src
        assert path.read_bytes()[:8] == PNG_MAGIC, src
        assert base64.b64decode(data_uri.split(",", 1)[1]) == path.read_bytes(), src
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
        assert mpimg.imread(str(path)).ndim == 3
        assert f"]({src})" in md  # the Markdown twin shows the same figure
    data = json.loads((out / "results.json").read_text())
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert "ERROR" not in statuses.values(), {c["name"]: c["error"][-800:] for c in data["checks"] if c["error"]}
    for c in data["checks"]:
        assert c["status"] in md and c["title"] in md
        if c["status"] in ("PASS", "FAIL"):
            # the verdict is the conjunction of the comparisons written out
            assert (c["status"] == "PASS") == all(x["holds"] for x in c["comparisons"])


def _check(out, name):
    data = json.loads((out / "results.json").read_text())
    c = {c["name"]: c for c in data["checks"]}[name]
    if c["status"] == "SKIP":
        pytest.skip(f"{name}: {c['skipped']}")
    return c


def test_quick_report_entropy_numbers(quick_report):
    from gpbound.covering import a_n_paper, a_n_tilde, entropy_integral

    c = _check(quick_report[0], "entropy")
    nums = c["numbers"]
    for i, n in enumerate(nums["n"]):
        assert nums["numeric"][i] == pytest.approx(float(entropy_integral(n, method="numeric")), rel=1e-12)
        assert nums["closed"][i] == pytest.approx(float(a_n_tilde(n)), rel=1e-12)
        assert nums["paper"][i] == pytest.approx(float(a_n_paper(n)), rel=1e-12)
        # independent check of the paper's a_n (eq. 37, docs/theory.md §4)
        assert nums["paper"][i] == pytest.approx(
            0.75 * math.sqrt(math.log(4 * n)) + 0.5 * math.log(n) * math.sqrt(math.log(2 * n)), rel=1e-12)
    assert c["status"] == "PASS"
    assert "exceeds the paper's aₙ" in c["finding"]


def test_quick_report_dudley_numbers(quick_report):
    from gpbound.dudley import dudley_l1_ball

    c = _check(quick_report[0], "dudley")
    nums = c["numbers"]
    for n, b, ex in zip(nums["n"], nums["dudley"], nums["exact"]):
        assert b == pytest.approx(float(dudley_l1_ball(n)), rel=1e-12)
        assert ex == pytest.approx(lc.expected_max_abs_gaussian(n), rel=1e-9)
    assert c["status"] == "PASS"


def test_quick_report_corollary1_numbers(quick_report):
    c = _check(quick_report[0], "corollary1")
    import torch

    from gpbound.kernels.presets import get_preset
    from gpbound.radii import corollary1

    for row in c["numbers"]["rows"]:
        arch = get_preset("resnet", image_size=row["image_size"])
        x0 = torch.from_numpy(np.random.default_rng(row["image_size"]).uniform(0, 1, int(arch.n)))
        res = corollary1(arch, x0, row["delta"], method="dudley")
        assert row["l1"] == pytest.approx(float(res.l1), rel=1e-12)
        assert row["segment"] == pytest.approx(float(res.segment), rel=1e-12)
        comp = corollary1(arch, x0, row["delta"])
        for k in ("l1", "l2", "linf", "segment"):
            assert row["comparison"][k] == pytest.approx(float(getattr(comp, k)), rel=1e-12)
        assert row["M"] == pytest.approx(math.sqrt(arch.input_pixels / arch.flatten_pixels), rel=1e-12)


def test_quick_report_crossing_numbers(quick_report):
    import torch

    from gpbound.kernels.presets import get_preset
    from gpbound.radii import comparison_failure_probability, comparison_radius

    c = _check(quick_report[0], "crossing")
    nums = c["numbers"]
    s = nums["image_size"]
    arch = get_preset("resnet", image_size=s)
    x0 = torch.from_numpy(np.random.default_rng(1000 + s).uniform(0, 1, int(arch.n)))
    x0n = float(torch.linalg.norm(x0))
    assert nums["x0_norm"] == pytest.approx(x0n, rel=1e-12) and nums["M"] == float(arch.M)
    for d, r in zip(nums["delta"], nums["radius"]):
        assert r == pytest.approx(float(comparison_radius(x0n, d, int(arch.n), float(arch.M), p=1)), rel=1e-12)
    dist = np.asarray(nums["distances"], dtype=float)
    for r, b, f, lo in zip(nums["radius"], nums["bound"], nums["frequency"], nums["cp_low"]):
        assert b == pytest.approx(min(1.0, float(comparison_failure_probability(r, x0n, int(arch.n),
                                                                                float(arch.M), p=1))), rel=1e-12)
        assert f == np.mean(dist <= r)
        k = int(np.sum(dist <= r))
        assert lo == pytest.approx(lc._clopper_pearson(k, dist.size)[0], rel=1e-9, abs=1e-15)


def test_quick_report_constants_theorem_M(quick_report):
    from gpbound.constants import theorem2_M
    from gpbound.kernels.presets import get_preset

    c = _check(quick_report[0], "constants")
    for name, v in c["numbers"].items():
        arch = get_preset(name, image_size=12)
        assert v["M_theorem"] == pytest.approx(float(theorem2_M(arch)), rel=1e-12)
        assert v["M_theorem"] == pytest.approx(math.sqrt(arch.input_pixels / arch.flatten_pixels), rel=1e-12)
        comp = {x["label"]: x for x in c["comparisons"]}[f"measured M ≤ theorem M, {name}"]
        assert (comp["lhs"], comp["rhs"]) == (v["M"], v["M_theorem"])
        assert comp["holds"] == (v["M"] <= v["M_theorem"] * (1 + 1e-9))


# ----------------------------------------------------------------------------- trust (issue 12)
def _renamed_import_check(ctx):
    from gpbound.radii import no_such_function_renamed  # noqa: F401  (a renamed library function)

    return _stub_check(ctx, bound=1.0)


def _renamed_attribute_check(ctx):
    from gpbound import radii

    radii.no_such_function_renamed(1.0)
    return _stub_check(ctx, bound=1.0)


def _passing_check(ctx):
    return _stub_check(ctx, bound=math.sqrt(2 / math.pi))


def test_import_error_inside_a_check_is_an_error_not_a_skip(tmp_path):
    """Before: an ImportError inside a check was SKIP and all_passed stayed True (--strict passed)."""
    rep = build_report(tmp_path, checks=[_passing_check, _renamed_import_check, _renamed_attribute_check])
    assert [r.status for r in rep.results] == ["PASS", "ERROR", "ERROR"]
    assert "no_such_function_renamed" in rep.results[1].error and "ImportError" in rep.results[1].error
    assert "AttributeError" in rep.results[2].error
    assert not rep.all_passed


def test_a_required_module_that_fails_to_import_is_an_error(tmp_path, monkeypatch):
    """A module named in Check.requires that exists but raises ImportError while importing is a bug
    (ERROR); only a module that is not installed at all gives SKIP."""
    pkg = tmp_path / "mods"
    pkg.mkdir()
    (pkg / "gpb_broken_mod_for_test.py").write_text("from gpbound.radii import no_such_function_renamed\n")
    monkeypatch.syspath_prepend(str(pkg))
    out = tmp_path / "rep"
    rep = build_report(out, checks=[Check("broken", _passing_check, requires=("gpb_broken_mod_for_test",)),
                                    Check("absent", _passing_check, requires=("gpb_absent_mod_for_test",))])
    assert [r.status for r in rep.results] == ["ERROR", "SKIP"]
    assert "no_such_function_renamed" in rep.results[0].error
    assert "gpb_absent_mod_for_test" in rep.results[1].skipped


def test_skip_is_never_a_pass(tmp_path):
    """Before: all_passed counted SKIP as passed."""
    from gpbound.report import CheckSkipped

    def skipping(ctx):
        raise CheckSkipped("no saved results for this figure")

    def blank_skip(ctx):
        raise CheckSkipped("")

    rep = build_report(tmp_path, checks=[_passing_check, skipping, blank_skip])
    assert [r.status for r in rep.results] == ["PASS", "SKIP", "ERROR"]  # a skip must state its reason
    assert rep.results[1].skipped == "no saved results for this figure"
    assert not rep.all_passed
    assert "SKIP" in rep.verdict_line() and "skipping" in rep.verdict_line()
    data = json.loads(rep.json.read_text())
    assert data["meta"]["all_passed"] is False and "not a pass" in data["meta"]["verdict"]
    assert "not a pass" in rep.html.read_text() and "not a pass" in rep.markdown.read_text()
    only_pass = build_report(tmp_path / "ok", checks=[_passing_check])
    assert only_pass.all_passed
    assert not build_report(tmp_path / "none", checks=[]).all_passed  # nothing verified


def test_strict_report_fails_on_a_skip(tmp_path, monkeypatch, capsys):
    from gpbound.cli import main
    from gpbound.report import CheckSkipped
    from gpbound.report import build as build_mod

    def skipping(ctx):
        raise CheckSkipped("deliberately skipped")

    monkeypatch.setattr(build_mod, "default_check_list", lambda: [_passing_check, skipping])
    assert main(["report", "--out", str(tmp_path / "r"), "--strict", "--silent"]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "not a pass" in captured.err
    assert main(["report", "--out", str(tmp_path / "r2"), "--silent"]) == 0  # without --strict: exit 0


def test_strict_report_fails_on_a_renamed_import(tmp_path, monkeypatch, capsys):
    from gpbound.cli import main
    from gpbound.report import build as build_mod

    monkeypatch.setattr(build_mod, "default_check_list", lambda: [_passing_check, _renamed_import_check])
    assert main(["report", "--out", str(tmp_path / "r"), "--strict", "--silent"]) == 1
    assert "ERROR" in capsys.readouterr().out


def test_report_files_are_replaced_atomically(tmp_path, monkeypatch):
    """A write that raises midway leaves the previous file intact and no partial or temporary file.
    Before: report.md was opened in place (truncated) and left half-written."""
    from gpbound.report import build as build_mod

    out = tmp_path / "rep"
    build_report(out, checks=[_passing_check])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real = build_mod.render_markdown

    def half_unencodable(results, meta):  # utf-8 encoding fails in the middle of the file
        text = real(results, meta)
        return text[: len(text) // 2] + "\ud800" + text[len(text) // 2:]

    monkeypatch.setattr(build_mod, "render_markdown", half_unencodable)
    with pytest.raises(UnicodeEncodeError):
        build_report(out, checks=[_passing_check])
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before), set(after) ^ set(before)  # no temporary file left behind
    assert after["report.md"] == before["report.md"]
    assert after["results.json"] == before["results.json"]


def test_atomic_write_text_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    from gpbound.report import checks as checks_mod
    from gpbound.report.checks import atomic_write_text

    target = tmp_path / "summary.json"
    atomic_write_text(target, '{"old": 1}')
    assert target.read_text() == '{"old": 1}'

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checks_mod.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, '{"new": 2, "long": "' + "x" * 100000 + '"}')
    assert target.read_text() == '{"old": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    with pytest.raises(TypeError, match="text"):
        atomic_write_text(target, b"bytes")


def test_reproduce_summary_json_is_written_atomically(tmp_path, monkeypatch, capsys):
    """Before: summary.json was written in place by cli._cmd_reproduce."""
    from gpbound.cli import main
    from gpbound.experiments import figures
    from gpbound.report import checks as checks_mod

    out = tmp_path / "fig1"
    out.mkdir()
    (out / "summary.json").write_text('{"old": true}')
    monkeypatch.setattr(figures, "run_distance_sweep", lambda **kw: {"records": [], "config": {}})
    monkeypatch.setattr(figures, "plot_distances_vs_n", lambda res, path: path)

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checks_mod.os, "fsync", failing_fsync)
    assert main(["reproduce", "fig1", "--quick", "--out", str(out)]) == 2
    assert "No space" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == '{"old": true}'
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]


def test_comparison_numbers_are_never_parsed_or_truncated():
    """Before: Comparison parsed the string '1.0' and took True as 1.0 (float(value))."""
    import torch

    assert Comparison("a", np.float64(1.0), "<=", torch.tensor(2.0, dtype=torch.float64)).holds
    assert not Comparison("a", float("nan"), "<=", 2.0).holds
    for bad in ("1.0", True, 1 + 0j, None, [1.0]):
        with pytest.raises(TypeError, match="lhs"):
            Comparison("a", bad, "<=", 2.0)


# ----------------------------------------------------------------------------- issue 13: a report that explains itself
def test_vacuous_rule():
    """A comparison that cannot fail is shown as such: '<=' an infinite rhs, or a probability '<=' a bound >= 1."""
    inf = float("inf")
    assert Comparison("E sup <= bound", 3.0, "<=", inf).vacuous
    assert Comparison("x >= bound", 3.0, ">=", -inf).vacuous
    assert Comparison("P <= bound", 0.3, "<=", 1.0, probability=True).vacuous
    assert Comparison("P <= bound", 0.3, "<=", 2.5, probability=True).vacuous
    assert Comparison("P >= bound", 0.3, ">=", 0.0, probability=True).vacuous
    # informative comparisons are not vacuous
    assert not Comparison("P <= bound", 0.3, "<=", 0.999, probability=True).vacuous
    assert not Comparison("x <= 1", 0.3, "<=", 1.0).vacuous  # not declared a probability: 1 is a real bound
    assert not Comparison("x == 1", 1.0, "==", 1.0, probability=True).vacuous
    assert not Comparison("nan", float("nan"), "<=", inf).vacuous
    assert Comparison("P <= bound", 0.3, "<=", 1.0, probability=True).verdict == "PASS (vacuous: bound = 1)"
    assert Comparison("P <= bound", 0.3, "<=", 0.5, probability=True).verdict == "PASS"
    assert Comparison("P <= bound", 0.6, "<=", 0.5, probability=True).verdict == "FAIL"
    with pytest.raises(ValueError, match=r"lhs must be in \[0, 1\]"):
        Comparison("P", 1.5, "<=", 1.0, probability=True)
    with pytest.raises(TypeError, match="probability"):
        Comparison("P", 0.5, "<=", 1.0, probability=1)
    d = Comparison("P <= bound", 0.3, "<=", 1.0, probability=True).as_dict()
    assert d["vacuous"] is True and d["probability"] is True
    # a check whose every comparison is vacuous says so; the others count their vacuous comparisons
    allvac = CheckResult("v", "V", "b", "m", "t", comparisons=[Comparison("P", 0.2, "<=", 1.0, probability=True)])
    assert allvac.status == "PASS" and allvac.status_text == "PASS (vacuous: every bound trivial)"
    mixed = CheckResult("v", "V", "b", "m", "t", comparisons=[Comparison("P", 0.2, "<=", 1.0, probability=True),
                                                             Comparison("P", 0.2, "<=", 0.5, probability=True)])
    assert mixed.status_text == "PASS" and len(mixed.vacuous_comparisons) == 1


def _many_comparisons_check(ctx):
    comps = [Comparison(f"P(zero within r_{i}) <= bound", 0.1, "<=", 0.2 + 0.1 * i, probability=True)
             for i in range(12)]
    comps.append(Comparison("a failing one", 2.0, "<=", 1.0))
    return CheckResult("many", "(z) Many comparisons", "P ≤ bound", "toy", "none", comparisons=comps,
                       table={"columns": ["i", "v"], "rows": [[i, float(i)] for i in range(20)]},
                       finding="a key finding of (z)")


def test_report_has_contents_anchors_details_and_meaning(tmp_path):
    import html as html_mod

    from gpbound.report.render import COLLAPSE_ROWS

    rep = build_report(tmp_path, checks=[_many_comparisons_check, functools.partial(_stub_check, bound=1.0)])
    html = rep.html.read_text(encoding="utf-8")
    md = rep.markdown.read_text(encoding="utf-8")
    # the summary table is the table of contents: each check's title links to its section's anchor
    for r in rep.results:
        assert f"<a href='#{r.name}'>{html_mod.escape(r.title)}</a>" in html
        assert f"id='{r.name}'" in html
        md_title = r.title.replace("|", "\\|")  # a Markdown table cell escapes its bars
        assert f"[{md_title}](#{r.name})" in md and f'<a id="{r.name}"></a>' in md
    # what delta and r mean, in the summary (before the first section)
    first_section = html.index("id='many'")
    assert 0 <= html.index("With probability ≥ 1−δ over the random network") < first_section
    assert "no input within r of x0 changes the label" in html[:first_section]
    assert "depends only on n" in html[:first_section] and "What δ and r mean" in md
    # key findings in the summary, linked
    assert html.index("Key findings") < first_section and "a key finding of (z)" in html[:first_section]
    # long tables and comparison lists collapsed; the failing comparison is shown outside <details>
    assert 20 > COLLAPSE_ROWS and html.count("<details>") == 2 and md.count("<details>") == 2
    sec = html[first_section:html.index("id='stub'")] if "id='stub'" in html else html[first_section:]
    assert sec.index("a failing one") < sec.rindex("<details>")  # before the collapsed list of all comparisons
    # vacuous comparisons are labelled as such, in the page and in the JSON
    assert "PASS (vacuous: bound = 1)" in html and "PASS (vacuous: bound = 1)" in md
    n_vac = sum(0.2 + 0.1 * i >= 1.0 for i in range(12))  # the bounds >= 1 (i = 8 ... 11)
    assert n_vac == 4 and f"12/13 ({n_vac} vacuous)" in html and html.count("PASS (vacuous: bound = ") >= n_vac
    data = json.loads(rep.json.read_text())
    assert sum(c["vacuous"] for c in data["checks"][0]["comparisons"]) == n_vac


def test_no_ascii_math_in_report_texts():
    """Titles, claims, labels and table headers are typeset with Unicode (≤, √, ‖·‖, δ, ℓp), not ASCII TeX."""
    import inspect

    from gpbound.report import fig1_check, posterior_check, tightness

    bad = ["sup_{", "a~_n", " <= ", " >= ", "sqrt(", "||x0||", "E||g||", "(delta=", "r(delta"]
    for mod in (posterior_check, tightness, fig1_check):
        src = inspect.getsource(mod)
        texts = re.findall(r'(?:title|bound|measurement|tolerance)=f?"([^"]*)"', src)
        texts += re.findall(r'Comparison\(f?"([^"]*)"', src)
        for t in texts:
            assert not any(b in t for b in bad), (mod.__name__, t)
    src = inspect.getsource(lc)
    texts = re.findall(r'(?:title|bound|measurement|tolerance)=\(?f?"([^"]*)"', src)
    texts += re.findall(r'Comparison\(f?"([^"]*)"', src)
    assert len(texts) > 25
    for t in texts:
        assert not any(b in t for b in bad), t
    assert posterior_check.check_posterior.__name__ and "(j) " in inspect.getsource(posterior_check)


def test_plot_helper_keeps_legends_outside_and_ticks_short_log_axes(tmp_path):
    from PIL import Image

    from gpbound.report.plots import figure, is_png, legend_outside, log_ticks

    with figure(tmp_path / "a.png") as (f, ax):
        ax.plot([0.01, 0.5], [1, 2], label="a curve with a long legend label")
        ax.set_xscale("log")
        log_ticks(ax, "x")
        leg = legend_outside(ax, where="right")
        f.canvas.draw()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        ax_box = ax.get_window_extent().frozen()
        leg_box = leg.get_window_extent().frozen()
    assert {"0.01", "0.02", "0.05", "0.1", "0.2", "0.5"} <= set(labels)
    assert leg_box.x0 >= ax_box.x1  # beside the axes, not over the data
    with figure(tmp_path / "b.png") as (f, ax):
        ax.plot([0.01, 0.5], [1, 2], label="a curve with a long legend label")
    assert is_png(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert a.size[0] > b.size[0] + 100  # the saved PNG grew to keep the legend; the axes did not shrink
    with pytest.raises(ValueError, match="where"):
        with figure(tmp_path / "c.png") as (f, ax):
            ax.plot([1, 2], [1, 2], label="x")
            legend_outside(ax, where="left")
    with pytest.raises(ValueError, match="ncols"):
        with figure(tmp_path / "d.png", ncols=0):
            pass
