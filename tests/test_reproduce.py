"""Issue 14: Figs 1-2 batched over networks, the authors' protocol, failures as +inf, the cost model,
and the report's Fig. 1 verdict rule (bootstrap CI over networks vs theory's slope)."""
import json
import math
import time
import types

import numpy as np
import pytest
import torch

from gpbound.experiments import figures
from gpbound.experiments.data import random_images
from gpbound.experiments.figures import (PAPER_SIZES, distance_block_task, run_distance_sweep,
                                         summarize_distances)
from gpbound.experiments.fit import bootstrap_slope, l1_log_allowance, quantiles_with_inf
from gpbound.experiments.networks import make_network

TINY = dict(preset="faithful", image_size=4, n_points=2, norms=["l1", "l2", "linf"], widths=[8, 8, 8],
            blocks_per_stack=1, dtype="float64", bounds=[0.0, 1.0])


def output_attack(f, x0, norm, **kw):
    """Stand-in attack (no search): distance |f(x0)|, success where f(x0) != 0 -- exposes f(x0) per row."""
    with torch.no_grad():
        y = f(x0)
    return types.SimpleNamespace(distance=y.abs(), success=y != 0)


def test_block_records_do_not_depend_on_the_block():
    """A network's points and weights are seeded by (size, network seed): its record is the same alone or in
    a block, and equals an independent rebuild (make_network + random_images with the recorded seeds)."""
    p = {**TINY, "net_seeds": [3, 4, 5]}
    block = distance_block_task({**p, "batched": True}, attack=output_attack)
    alone = distance_block_task({**p, "net_seeds": [4], "batched": False}, attack=output_attack)
    r = block["networks"][1]
    assert r["net_seed"] == 4 and alone["networks"][0]["net_seed"] == 4
    np.testing.assert_allclose(r["l2"]["output"], alone["networks"][0]["l2"]["output"], rtol=1e-12)
    # independent oracle: rebuild the network and the points from the seeds of the documented rule
    ws = figures._seed(4, 4, 0)
    assert r["l2"]["network_seed"] == ws
    net = make_network("faithful", 4, seed=ws, widths=(8, 8, 8), blocks_per_stack=1)
    x0 = torch.as_tensor(random_images(2, 4, 3, seed=figures._seed(4, 4, 1))).reshape(2, -1)
    with torch.no_grad():
        want = net(x0).numpy()
    np.testing.assert_allclose(r["l2"]["output"], want, rtol=1e-12)
    np.testing.assert_allclose(r["l1"]["x0_norm"], np.abs(x0.numpy()).sum(1), rtol=1e-12)


# ------------------------------------------------------------------ fresh networks, failures
def test_fresh_network_per_norm_uses_distinct_networks():
    p = {**TINY, "net_seeds": [0, 1], "n_points": 3}
    fresh = distance_block_task({**p, "fresh_network_per_norm": True}, attack=output_attack)
    paired = distance_block_task({**p, "fresh_network_per_norm": False}, attack=output_attack)
    for rf, rp in zip(fresh["networks"], paired["networks"]):
        seeds = {rf[nm]["network_seed"] for nm in TINY["norms"]}
        assert len(seeds) == 3                                    # a new network for each norm
        assert len({rp[nm]["network_seed"] for nm in TINY["norms"]}) == 1
        outs = [np.asarray(rf[nm]["output"]) for nm in TINY["norms"]]
        assert not np.allclose(outs[0], outs[1]) and not np.allclose(outs[1], outs[2])
        np.testing.assert_array_equal(rp["l1"]["output"], rp["linf"]["output"])
        # fresh points too: the start norms differ between norms' draws
        assert not np.allclose(rf["l1"]["x0_norm"], np.abs(rf["l1"]["x0_norm"]) * 0 + rp["l1"]["x0_norm"])


def _median_oracle(values):
    """Median with failures as +inf, from the definition: the middle of the sorted list (mean of the two
    middle values for an even count, +inf if either is +inf)."""
    v = sorted(values)
    m = len(v)
    if m % 2:
        return v[m // 2]
    lo, hi = v[m // 2 - 1], v[m // 2]
    return math.inf if math.isinf(hi) else (lo + hi) / 2


def test_failures_count_as_inf_in_the_medians():
    rng = np.random.default_rng(0)
    recs = []
    for n, fail in ((48, 1), (192, 3), (432, 0)):
        for k in range(2):                        # 2 networks x 3 points; `fail` failures at this n
            d = rng.uniform(0.5, 2.0, 3)
            if k == 0:
                d[:fail] = np.inf
            recs.append({"n": n, "l1": {"distance": d.tolist(), "x0_norm": [n / 2] * 3}})
    s = summarize_distances(recs, ["l1"])["l1"]
    for i, n in enumerate((48, 192, 432)):
        vals = np.concatenate([r["l1"]["distance"] for r in recs if r["n"] == n]).tolist()
        st = s["absolute"][i]
        assert st["failures"] == sum(math.isinf(v) for v in vals)
        want = _median_oracle(vals)
        assert st["median"] == pytest.approx(want) if math.isfinite(want) else math.isinf(st["median"])
    assert math.isinf(s["absolute"][1]["median"])                 # 3 of 6 failed: the median is +inf
    assert math.isfinite(s["absolute"][0]["median"])              # 1 of 6: finite, but above the finite median
    fin = [v for r in recs if r["n"] == 48 for v in r["l1"]["distance"] if math.isfinite(v)]
    assert s["absolute"][0]["median"] >= float(np.median(fin))
    # an infinite median makes the slope undefined (no claim), never silently dropped
    with pytest.raises(ValueError, match="infinite"):
        bootstrap_slope({n: [np.asarray(r["l1"]["distance"]) for r in recs if r["n"] == n] for n in (192, 432)},
                        n_min=100)


def test_quantiles_with_inf_match_numpy_on_finite_data_and_the_rule_with_inf():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 9))
    q = [0.05, 0.45, 0.5, 0.55, 0.95]
    np.testing.assert_allclose(quantiles_with_inf(x, q), np.quantile(x, q, axis=-1).T, rtol=1e-14)
    y = x[0].copy()
    y[[2, 5]] = np.inf                                              # 7 finite + 2 inf, sorted positions 7, 8
    got = quantiles_with_inf(y, q)
    fin = np.sort(y[np.isfinite(y)])
    for qq, g in zip(q, got):
        h = 8 * qq
        lo, hi = int(math.floor(h)), int(math.ceil(h))
        if hi >= 7 and h > lo:
            assert math.isinf(g)
        else:
            assert g == pytest.approx(fin[lo] + (h - lo) * ((fin[hi] if hi < 7 else 0) - fin[lo]) if h > lo else fin[lo])
    # NaN is missing (padding), not a value
    assert quantiles_with_inf([1.0, np.nan, 3.0], 0.5) == 2.0


def test_bootstrap_ci_covers_a_known_slope_and_the_l1_allowance():
    rng = np.random.default_rng(2)
    ns = [432, 768, 1200, 1728]
    groups = {n: [n ** 0.5 * np.exp(0.2 * rng.standard_normal() + 0.1 * rng.standard_normal(5)) for _ in range(30)]
              for n in ns}
    fit = bootstrap_slope(groups, n_min=100, n_boot=500)
    assert fit["ci_low"] < 0.5 < fit["ci_high"] and fit["boot_undefined"] == 0
    # the allowance is the slope of sqrt(2 ln 2n) on log n: d/dln n = 1/(2 ln 2n) at the midpoint, ~0.07 here
    a = l1_log_allowance(ns)
    mid = math.exp(np.mean(np.log(ns)))
    assert a == pytest.approx(1 / (2 * math.log(2 * mid)), rel=0.02)


# ------------------------------------------------------------------ sweep, dask, CLI
def test_sweep_blocks_resume_and_state_the_protocol(tmp_path):
    kw = dict(sizes=(4, 8), n_networks=3, n_points=2, widths=(4, 8, 8), blocks_per_stack=1, attack=output_attack,
              progress=False, n_boot=0, n_min=1, block_size=2, results_path=tmp_path / "r.jsonl")
    res = run_distance_sweep(**kw)
    assert res["config"]["bounds"] == [0.0, 1.0] and res["paired"]       # faithful: boxed by default
    assert len(res["records"]) == 6 and [r["net_seed"] for r in res["records"]] == [0, 1, 2, 0, 1, 2]
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    assert len(lines) == 4                                               # 2 sizes x 2 blocks (2 + 1 networks)
    diffs = res["differences_from_paper"]
    assert any("sizes" in d for d in diffs) and any("paired" in d for d in diffs)
    assert not any("attack box" in d for d in diffs)
    again = run_distance_sweep(**kw)                                     # resumes: nothing recomputed
    assert (tmp_path / "r.jsonl").read_text().splitlines() == lines
    assert again["records"] == json.loads(json.dumps(res["records"], default=lambda a: np.asarray(a).tolist()))
    theory = figures.distance_tasks(preset="theory", sizes=(4, 8))[0]
    assert theory["bounds"] is None
    with pytest.raises(ValueError, match="bounds"):
        figures.distance_tasks(bounds=(0.2, 1.0))


def test_dask_blocks_equal_in_process(tmp_path):
    import distributed
    kw = dict(sizes=(4,), n_networks=3, n_points=2, widths=(4, 8, 8), blocks_per_stack=1, attack=output_attack,
              progress=False, n_boot=0, n_min=1, block_size=1)
    local = run_distance_sweep(**kw)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        remote = run_distance_sweep(**kw, scheduler=client, results_path=tmp_path / "d.jsonl")
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 3     # one task per block
    for a, b in zip(local["records"], remote["records"]):
        np.testing.assert_array_equal(a["l2"]["distance"], b["l2"]["distance"])


def test_paper_protocol_dry_run_lists_the_13_sizes_and_counts(monkeypatch, capsys):
    from gpbound.cli import main

    cal = {"sizes": [12, 24], "n": [432.0, 1728.0], "seconds_per_point": [2.0, 8.0], "c": 2.0 / 432, "exponent": 1.0,
           "n_networks": 2, "n_points": 1, "calibration_s": 0.0}
    seen = {}

    def fake_calibrate(config, sizes, **kw):
        seen.update(config)
        return cal

    monkeypatch.setattr(figures, "calibrate_cost", fake_calibrate)
    assert main(["reproduce", "fig1", "--protocol", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert list(PAPER_SIZES) == list(range(12, 61, 4)) and len(PAPER_SIZES) == 13
    assert f"sizes s = {list(PAPER_SIZES)} (13 sizes), 200 networks x 10 points per size" in out
    assert "104 tasks of 25 network(s)" in out                            # 13 sizes x 8 blocks
    assert seen["dtype"] == "float32" and seen["bounds"] == [0.0, 1.0] and seen["fresh_network_per_norm"]
    assert seen["widths"] == [32, 64, 128] and seen["blocks_per_stack"] == 3
    # the cost model from the calibration: 200 x 10 x 3 x c n per size (oracle: the sum written out)
    total_h = sum(200 * 10 * 3 * (2.0 / 432) * 3 * s * s for s in PAPER_SIZES) / 3600
    assert f"estimated total on this device: {total_h:.3g} h" in out
    # only the attack differs from the paper
    diffs = out.split("differences from the paper:")[1].split("calibrating")[0].strip().splitlines()
    assert len(diffs) == 1 and "attack" in diffs[0]


def test_calibration_measures_the_cost_exponent(monkeypatch):
    """A stand-in attack that costs 0.01 n^1.5 seconds on a fake clock: the calibration recovers c and the
    exponent exactly, and the cost model adds up the sizes."""
    clock = [0.0]

    def timed(f, x0, norm, **kw):
        clock[0] += 0.01 * x0.shape[1] ** 1.5 * x0.shape[0]         # per row
        return output_attack(f, x0, norm)

    monkeypatch.setattr(figures, "time", types.SimpleNamespace(perf_counter=lambda: clock[0],
                                                               process_time=lambda: clock[0]))
    config = figures.distance_tasks(sizes=(4, 8, 12), n_networks=2, n_points=1, widths=(4, 8, 8), blocks_per_stack=1,
                                    attack=timed)[0]
    cal = figures.calibrate_cost(config, config["sizes"], attack=timed)
    assert cal["sizes"] == [4, 8] and cal["n"] == [48.0, 192.0]          # smallest, and n nearest 4x
    assert cal["exponent"] == pytest.approx(1.5, rel=1e-12) and cal["c"] == pytest.approx(0.01, rel=1e-12)
    assert cal["clock"] == "process CPU time"
    model = figures.cost_model(config, cal, workers=(1, 4, 1000))
    assert model["tasks"] == 3 and model["total_s"] == pytest.approx(
        sum(2 * 1 * 3 * 0.01 * n ** 1.5 for n in (48, 192, 432)), rel=1e-12)
    assert model["workers"][1] == pytest.approx(model["total_s"] / 3600)
    assert model["longest_task_s"] == pytest.approx(2 * 1 * 3 * 0.01 * 432 ** 1.5)      # the largest size's block
    assert model["workers"][4] == pytest.approx(max(model["total_s"] / 4, model["longest_task_s"]) / 3600)
    assert model["workers"][1000] == pytest.approx(model["longest_task_s"] / 3600)   # one task per worker at most

    def sublinear(f, x0, norm, **kw):                                # overhead-dominated: cost ~ n^0.5
        clock[0] += 0.01 * x0.shape[1] ** 0.5 * x0.shape[0]
        return output_attack(f, x0, norm)

    cal = figures.calibrate_cost(config, config["sizes"], attack=sublinear)
    assert cal["fitted_exponent"] == pytest.approx(0.5, rel=1e-12) and cal["exponent"] == 1.0
    assert cal["c"] == pytest.approx(0.01 * 192 ** 0.5 / 192, rel=1e-12)          # anchored at the larger size


def test_cli_rejects_a_box_that_excludes_the_images(capsys):
    from gpbound.cli import main

    assert main(["reproduce", "fig1", "--bounds", "0.2", "1", "--dry-run"]) == 2
    assert "--bounds" in capsys.readouterr().err


def test_cli_l1_probe_is_one_choice_for_every_size(monkeypatch, capsys):
    """--l1-probe on|off reaches every task's attack; auto fixes it from the largest size; a boxed run refuses it."""
    from gpbound.cli import main

    seen = []
    monkeypatch.setattr(figures, "calibrate_cost", lambda config, sizes, **kw: seen.append(config) or {
        "sizes": [4, 8], "n": [48.0, 192.0], "seconds_per_point": [1.0, 4.0], "c": 1 / 48, "exponent": 1.0,
        "fitted_exponent": 1.0, "n_networks": 2, "n_points": 1, "calibration_s": 0.0})
    base = ["reproduce", "fig1", "--preset", "theory", "--dry-run", "--num-networks", "1"]
    for flag, sizes, want in (("on", ["8", "16"], True), ("off", ["8", "12"], False),
                              ("auto", ["8", "12"], True), ("auto", ["8", "16"], False)):
        assert main(base + ["--sizes", *sizes, "--l1-probe", flag]) == 0
        assert seen[-1]["attack_kwargs"]["coord_probe"] is want, (flag, sizes)
    capsys.readouterr()
    assert main(["reproduce", "fig1", "--dry-run", "--l1-probe", "on"]) == 2      # faithful: boxed by default
    assert "--l1-probe" in capsys.readouterr().err


# ------------------------------------------------------------------ the report's verdict
def _saved(tmp_path, slope, lo, hi, norm="l2"):
    res = {"preset": {"preset": "faithful"}, "paired": False, "note": "fresh", "protocol": "paper",
           "config": {"sizes": [12, 16], "n_networks": 200, "n_points": 10, "bounds": [0, 1]},
           "summary": {norm: {"n": [432, 768], "absolute": [{"median": 1.0, "p5": 0.5, "p45": 0.9, "p55": 1.1,
                                                               "p95": 2.0, "failures": 0}] * 2,
                              "relative": [{"median": 0.1, "p5": 0.05, "p45": 0.09, "p55": 0.11, "p95": 0.2,
                                            "failures": 0}] * 2}},
           "slopes": {norm: {kind: {"slope": slope, "ci_low": lo, "ci_high": hi, "expected": e, "n": [432.0, 768.0],
                                    "intercept": 0.0}
                             for kind, e in (("absolute", figures.EXPECTED_SLOPES[norm]), ("relative", -0.5))}},
           "failures": {norm: {"432": 0, "768": 0}}, "differences_from_paper": ["attack x"]}
    (tmp_path / "fig1").mkdir(exist_ok=True)
    (tmp_path / "fig1" / "summary.json").write_text(json.dumps(res))


@pytest.mark.parametrize("norm,lo,hi,rel_lo,passes", [
    ("l2", -0.1, 0.1, -0.6, True),       # theory's 0 and -1/2 inside the CIs
    ("l2", 0.05, 0.2, -0.6, False),      # the CI excludes 0 (no allowance for l2)
    ("l1", 0.38, 0.45, -0.6, True),      # below +1/2 by less than the l1 log allowance (0.071 here)
    ("l1", 0.2, 0.3, -0.8, False),       # below by more
])
def test_fig1_check_passes_iff_the_ci_overlaps_theory_within_the_allowance(tmp_path, norm, lo, hi, rel_lo, passes):
    from gpbound.report.checks import CheckContext
    from gpbound.report.fig1_check import check_fig1

    _saved(tmp_path, (lo + hi) / 2, lo, hi, norm)
    res_path = json.loads((tmp_path / "fig1" / "summary.json").read_text())
    for kind in ("relative",):
        res_path["slopes"][norm][kind].update(ci_low=rel_lo, ci_high=rel_lo + 0.1)
    (tmp_path / "fig1" / "summary.json").write_text(json.dumps(res_path))
    (tmp_path / "out").mkdir()
    r = check_fig1(CheckContext(out_dir=tmp_path / "out", results_dir=tmp_path))
    a = l1_log_allowance([432, 768]) if norm == "l1" else 0.0
    assert r.table["rows"][0][-1] == pytest.approx(a)
    assert r.passed == passes
    assert "attack x" in r.details
