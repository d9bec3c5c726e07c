"""Benchmark: gpbound's default minimal-norm attacks vs foolbox 3.3.4 FMN, paired, boxed [0, 1].

Same random residual networks (the theory ResNet preset ``get_preset("resnet", s)`` at width
C = 16, float32, one network per ``--points`` points), same points ``x0 ~ U[0, 1]^n``, box
``[0, 1]``, for n = 3 s^2 (s = 12: n = 432; s = 32: n = 3072) and l1 / l2 / linf, on one thread
(``torch.set_num_threads(1)`` in both processes).  gpbound: ``minimal_distance(ens, x0, p,
bounds=(0, 1))`` with its default ensemble on a :class:`gpbound.ensemble.NetworkEnsemble` (its
default ``vectorize="auto"``: the stacked forward of all networks, one grouped convolution per layer;
``--loop`` / ``--vmap`` force the loop or one vmapped call); every
returned point verified (a flip of the exact network, its float64 copy, and a strict flip of the
float32 network batched and alone) and moved onto the exact crossing.  FMN: foolbox's ``L1FMNAttack`` /
``L2FMNAttack`` / ``LInfFMNAttack`` with foolbox's defaults (100 steps), one network at a
time (its ``--points`` points in one batch), on the networks traced with ``torch.jit.trace``
and run in a separate interpreter (the peer environment); its adversarials are re-checked
here (label flip under the same network evaluated alone), and their lp distance is taken
as returned (FMN does not bisect).

Two acceptance rules for FMN's points: *raw* (any sign flip of the network evaluated alone, as
foolbox counts a success) and *same rule* (gpbound's: also a flip of the exact network, its float64
copy evaluated alone, by ``EXACT_MARGIN_EPS`` = 16 float32 rounding units of ``|f(x0)|``; a point that
flips by less is no success, distance inf).  gpbound's own points pass a stricter test (the exact
flip, and a strict float32 flip batched and alone), so the same-rule comparison is the like-for-like
one; the raw one also counts FMN flips of the float32 rounding that the exact network does not make.

Floor: a gradient attack of S steps needs at least S forward + backward passes of the batch, so
each cell times one forward + backward of gpbound's ensemble on all its points (median of 7 calls,
just before gpbound's attack) and prints ``floor`` = gp-steps x that / points and ``gp/floor``, the
attack's time over its gradient evaluations (what the ensemble, verification, boundary searches and
FAB add on top).

Per cell (size x norm): median of the paired ratios d_gpbound / d_FMN (points both found, raw),
the fraction of points where gpbound <= FMN (a failure counts as distance inf): strict against
raw FMN, strict against same-rule FMN, within the dtype tolerance ``TOL`` = 2 * EXACT_MARGIN_EPS *
eps(float32) = 3.8e-6 relative (the relative distance that gpbound's exact margin and root-finding
tolerance cost along a near-affine segment: a raw flip may sit that much closer),
and within 0.1 %; failures of gpbound, of raw FMN and of same-rule FMN; wall-clock and process
CPU seconds per point of each (one thread each: the CPU time is the less load-sensitive of the
two on a shared machine).  Timings swing: compare the columns of one run, not runs.

Set-up of the peer environment (foolbox is a benchmark-only dependency, never installed by
``make test`` or setup.cfg), either with the peer-environment script of the workplace
(``FBENV=/path/fbenv bash setup_peer_envs.sh``) or with the copy here::

    FBENV=/tmp/fbenv bash benchmarks/setup_foolbox_env.sh
    python benchmarks/attacks.py --fbenv /tmp/fbenv [--sizes 12 32] [--networks 8] [--points 5] [--json out.json]
    python benchmarks/attacks.py --fbenv /tmp/fbenv --seeds 0 1 2 3 4 5   # the issue's criteria, pooled per norm
    python benchmarks/attacks.py --quick --fbenv /tmp/fbenv      # smoke run (s = 4, 2 x 3 points)
    python benchmarks/attacks.py --quick                          # no foolbox: gpbound's columns only
    python benchmarks/attacks.py --fbenv /tmp/fbenv --sizes 32 --loop   # networks looped (--vmap: vmapped, not stacked)
"""
import argparse
import json
import math
import os
import subprocess
import tempfile
import time

import torch

NORMS = {"l1": 1.0, "l2": 2.0, "linf": math.inf}
FB_ATTACKS = {"l1": "L1FMNAttack", "l2": "L2FMNAttack", "linf": "LInfFMNAttack"}


# ---------------------------------------------------------------- peer side (foolbox environment)
def run_peer(folder, norm, steps):
    """Run foolbox FMN on the traced networks of ``folder``; writes ``fmn_{norm}.pt``.  Imports no gpbound."""
    import foolbox as fb

    torch.set_num_threads(1)
    meta = torch.load(os.path.join(folder, "cell.pt"))
    x0, K, P = meta["x0"], meta["K"], meta["P"]
    advs, succ, seconds, cpu = [], [], 0.0, 0.0
    for k in range(K):
        net = torch.jit.load(os.path.join(folder, f"net{k}.pt"))

        class Binary(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                y = self.inner(x).reshape(-1)
                return torch.stack([-y, y], -1)  # class 1 iff f > 0

        model = Binary(net).eval()
        fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
        x = x0[k * P:(k + 1) * P]
        with torch.no_grad():
            labels = (net(x).reshape(-1) > 0).long()
        attack = getattr(fb.attacks, FB_ATTACKS[norm])(steps=steps)
        t, c = time.perf_counter(), time.process_time()
        _, clipped, success = attack(fmodel, x, labels, epsilons=None)
        seconds += time.perf_counter() - t
        cpu += time.process_time() - c
        advs.append(clipped.detach())
        succ.append(success.detach().reshape(-1))
    torch.save({"x_adv": torch.cat(advs), "success": torch.cat(succ), "seconds": seconds, "cpu_seconds": cpu},
               os.path.join(folder, f"fmn_{norm}.pt"))


# ---------------------------------------------------------------- gpbound side
def build_cell(size, networks, points, seed, vectorize="auto"):
    from gpbound.ensemble import NetworkEnsemble
    from gpbound.kernels.presets import get_preset

    arch = get_preset("resnet", image_size=size)
    ens = NetworkEnsemble.from_architecture(arch, networks, width=16, seed=seed, points_per_network=points,
                                            dtype=torch.float32, vectorize=vectorize)
    for net in ens.networks:
        net.requires_grad_(False)
    x0 = torch.rand(networks * points, arch.n, generator=torch.Generator().manual_seed(seed + size))
    return ens, x0.float()


def step_seconds(ens, x0, calls=7):
    """Wall seconds of one forward + backward of ``ens`` on all of ``x0`` (median of ``calls``, after two
    warm-up calls): the unit of a gradient attack's floor."""
    from gpbound.attacks.verify import value_and_grad

    for _ in range(2):
        value_and_grad(ens, x0)
    ts = []
    for _ in range(calls):
        t = time.perf_counter()
        value_and_grad(ens, x0)
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def alone(ens, x, P):
    """Each row evaluated by its own network, batch of one (no vmap)."""
    with torch.no_grad():
        return torch.stack([ens.networks[b // P](x[b:b + 1]).reshape(-1)[0] for b in range(x.shape[0])])


def tolerance():
    """``TOL``: relative distance cost of gpbound's exact flip margin and its root-finding tolerance
    (the far end within twice the margin) in float32."""
    from gpbound.attacks.verify import EXACT_MARGIN_EPS

    return 2.0 * EXACT_MARGIN_EPS * torch.finfo(torch.float32).eps


def exact_alone(ens, x, P):
    """Each row evaluated alone by the float64 copy of its own network (the exact arithmetic)."""
    import copy

    nets = [copy.deepcopy(net).double() for net in ens.networks]
    with torch.no_grad():
        return torch.stack([nets[b // P](x[b:b + 1].double()).reshape(-1)[0] for b in range(x.shape[0])])


def summarize(d_gp, d_fmn, t_gp, t_fmn, B, d_fmn_rule=None, cpu_gp=math.nan, cpu_fmn=math.nan):
    """Paired statistics of one cell (distances ``inf`` where an attack failed; ``t_*`` wall and
    ``cpu_*`` process CPU seconds of the whole cell)."""
    d_fmn_rule = d_fmn if d_fmn_rule is None else d_fmn_rule
    both = torch.isfinite(d_gp) & torch.isfinite(d_fmn)
    ratio = d_gp[both] / d_fmn[both]

    no_fmn = bool(torch.isnan(d_fmn).all())  # foolbox not installed: FMN's columns are nan

    def le(ref, factor=1.0):
        if no_fmn:
            return math.nan
        return float(((d_gp <= ref * factor) | (torch.isinf(d_gp) & torch.isinf(ref))).float().mean())

    def fails(d):
        return math.nan if no_fmn else int(torch.isinf(d).sum())

    return {"points": B, "median_ratio": float(ratio.median()) if both.any() else math.nan,
            "frac_gp_le_fmn": le(d_fmn), "frac_gp_le_fmn_same_rule": le(d_fmn_rule),
            "frac_gp_le_fmn_tol": le(d_fmn, 1.0 + tolerance()), "tol": tolerance(),
            "frac_gp_le_fmn_0.1pct": le(d_fmn, 1.001),
            "worse_1pct": math.nan if no_fmn else int((ratio > 1.01).sum()), "fail_gp": int(torch.isinf(d_gp).sum()),
            "fail_fmn": fails(d_fmn), "fail_fmn_same_rule": fails(d_fmn_rule),
            "s_per_point_gp": t_gp / B, "s_per_point_fmn": t_fmn / B,
            "cpu_s_per_point_gp": cpu_gp / B, "cpu_s_per_point_fmn": cpu_fmn / B,
            "points_per_s_gp": B / t_gp, "points_per_s_fmn": B / t_fmn}


def pool(rows):
    """Per norm, over all rows (cells) of that norm: the fraction of all points where gpbound <= FMN (raw and
    same rule), the failures, the seconds per point of each (all seconds over all points) and their ratio,
    with the worst cell of each criterion."""
    out = []
    for norm in dict.fromkeys(r["norm"] for r in rows):
        cells = [r for r in rows if r["norm"] == norm]
        d_gp = torch.tensor([d for r in cells for d in r["d_gpbound"]])
        d_fmn = torch.tensor([d for r in cells for d in r["d_fmn"]])
        d_rule = torch.tensor([d for r in cells for d in r["d_fmn_same_rule"]])
        B = sum(r["points"] for r in cells)
        t_gp = sum(r["s_per_point_gp"] * r["points"] for r in cells)
        t_fmn = sum(r["s_per_point_fmn"] * r["points"] for r in cells)
        c_gp = sum(r["cpu_s_per_point_gp"] * r["points"] for r in cells)
        c_fmn = sum(r["cpu_s_per_point_fmn"] * r["points"] for r in cells)
        s = summarize(d_gp, d_fmn, t_gp, t_fmn, B, d_rule, c_gp, c_fmn)
        out.append({"norm": norm, "cells": len(cells), **s, "time_ratio": t_gp / t_fmn,
                    "worst_cell_frac_gp_le_fmn": min(r["frac_gp_le_fmn"] for r in cells),
                    "worst_cell_time_ratio": max(r["s_per_point_gp"] / r["s_per_point_fmn"] for r in cells)})
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fbenv", default=os.environ.get("FBENV"), help="foolbox environment (default $FBENV)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 32], help="image sizes s (n = 3 s^2)")
    ap.add_argument("--norms", nargs="+", default=list(NORMS), choices=list(NORMS))
    ap.add_argument("--networks", type=int, default=8)
    ap.add_argument("--points", type=int, default=5, help="points per network")
    ap.add_argument("--fmn-steps", type=int, default=100)
    ap.add_argument("--gp-steps", type=int, default=None, help="steps of gpbound's iterative attacks "
                    "(minimal_distance(steps=...)); default: gpbound's default per norm in a box "
                    "(DEFAULT_BOXED_STEPS: 150 for l1 and linf, 100 for l2)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the networks and points, one "
                    "set of cells each; with several, a pooled table per norm follows (all points and all "
                    "seconds of that norm over the seeds and sizes)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--loop", action="store_true", help="gpbound's ensemble evaluates its networks one by "
                      "one (vectorize=False) instead of its default rule (vectorize='auto')")
    mode.add_argument("--vmap", action="store_true", help="gpbound's ensemble evaluates its networks in one "
                      "vmapped call (vectorize='vmap') instead of its stacked forward")
    ap.add_argument("--quick", action="store_true", help="smoke run: s = 4, 2 networks x 3 points")
    ap.add_argument("--fmn-cache", default=None, help="folder: reuse FMN results of an earlier run "
                    "(same sizes, networks, points, seed); its timings are then the earlier run's")
    ap.add_argument("--keep-freed-memory", action="store_true", help="both processes keep freed blocks "
                    "of up to 32 MiB in the heap (gpbound.allocator.keep_freed_memory here; glibc's "
                    "MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ for FMN's process)")
    ap.add_argument("--json", default=None, help="write the table as JSON to this file")
    ap.add_argument("--peer", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peer-norm", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer:
        return run_peer(args.peer, args.peer_norm, args.fmn_steps)
    fb_python = None
    if args.fbenv:
        fb_python = os.path.join(args.fbenv, "bin", "python")
        if not os.path.isfile(fb_python):
            ap.error(f"--fbenv {args.fbenv!r}: no {fb_python} (build it with benchmarks/setup_foolbox_env.sh)")
    if args.quick:
        args.sizes, args.networks, args.points = [4], 2, 3
    from gpbound.attacks import minimal_distance
    from gpbound.attacks.norms import lp_norm
    from gpbound.attacks.verify import EXACT_MARGIN_EPS

    torch.set_num_threads(1)
    peer_env = None
    if args.keep_freed_memory:
        from gpbound.allocator import MAX_BLOCK, keep_freed_memory

        keep_freed_memory(MAX_BLOCK)
        peer_env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MAX_BLOCK), "MALLOC_TRIM_THRESHOLD_": str(2 ** 30)}
    rows = []
    if fb_python is None:
        print("foolbox: not installed (--fbenv or $FBENV; see the module docstring): gpbound's columns only")
    from gpbound.attacks import DEFAULT_BOXED_STEPS

    gp_steps = {norm: DEFAULT_BOXED_STEPS[NORMS[norm]] if args.gp_steps is None else args.gp_steps
                for norm in args.norms}
    print(f"gpbound default ensemble ({', '.join(f'{k} {v}' for k, v in gp_steps.items())} steps) vs foolbox FMN "
          f"({args.fmn_steps} steps), "
          f"resnet preset C = 16, float32, "
          f"box [0, 1], {args.networks} networks x {args.points} points, 1 thread, "
          f"ensemble {'looped' if args.loop else 'vmapped' if args.vmap else 'auto (stacked)'}; "
          f"freed memory {'kept (both processes)' if args.keep_freed_memory else 'returned (glibc defaults)'}; "
          f"TOL = {tolerance():.2e}")
    hdr = (f"{'seed':>4} {'n':>5} {'norm':>5} {'med ratio':>9} {'gp<=FMN':>8} {'same-rule':>9} {'<=+TOL':>7} "
           f"{'<=+0.1%':>8} "
           f"{'>1% worse':>9} {'fail gp':>7} {'fail FMN':>8} {'fail rule':>9} {'s/pt gp':>8} {'s/pt FMN':>8} "
           f"{'cpu gp':>7} {'cpu FMN':>7} {'floor':>6} {'gp/floor':>8}")
    print(hdr)
    for seed, size in ((seed, size) for seed in args.seeds for size in args.sizes):
        vectorize = False if args.loop else "vmap" if args.vmap else "auto"
        ens, x0 = build_cell(size, args.networks, args.points, seed, vectorize=vectorize)
        B, P = x0.shape[0], args.points
        y0_alone = alone(ens, x0, P)
        e0 = exact_alone(ens, x0, P)
        margin = EXACT_MARGIN_EPS * torch.finfo(torch.float32).eps * e0.abs()  # gpbound's rule: exact flip
        with tempfile.TemporaryDirectory() as folder:
            for k, net in enumerate(ens.networks if fb_python is not None else []):  # the peer's networks
                torch.jit.save(torch.jit.trace(net, x0[k * P:(k + 1) * P]), os.path.join(folder, f"net{k}.pt"))
            torch.save({"x0": x0, "K": args.networks, "P": P}, os.path.join(folder, "cell.pt"))
            for norm in args.norms:
                p = NORMS[norm]
                cache = None if args.fmn_cache is None else os.path.join(
                    args.fmn_cache, f"fmn4_s{size}_{norm}_K{args.networks}_P{P}_seed{seed}.pt")
                if fb_python is None and not (cache is not None and os.path.exists(cache)):
                    d_fmn = d_fmn_rule = torch.full((B,), math.nan)
                    t_fmn = c_fmn = math.nan
                elif cache is not None and os.path.exists(cache):
                    d_fmn, d_fmn_rule, t_fmn, c_fmn = (lambda c: (c["d_fmn"], c["d_fmn_rule"], c["seconds"],
                                                                  c["cpu_seconds"]))(torch.load(cache))
                else:
                    subprocess.run([fb_python, os.path.abspath(__file__), "--peer", folder, "--peer-norm", norm,
                                    "--fmn-steps", str(args.fmn_steps)], check=True, env=peer_env)
                    fmn = torch.load(os.path.join(folder, f"fmn_{norm}.pt"))
                    xf = fmn["x_adv"].to(x0.dtype)
                    y_f = alone(ens, xf, P)
                    ok_f = fmn["success"].bool() & (y_f * y0_alone < 0)
                    ok_rule = ok_f & (torch.sign(e0) == torch.sign(y0_alone)) & (
                        -torch.sign(e0) * exact_alone(ens, xf, P) > margin)
                    d_fmn = torch.where(ok_f, lp_norm(xf - x0, p), torch.full((B,), math.inf))
                    d_fmn_rule = torch.where(ok_rule, d_fmn, torch.full((B,), math.inf))
                    t_fmn, c_fmn = fmn["seconds"], fmn["cpu_seconds"]
                    if cache is not None:
                        torch.save({"d_fmn": d_fmn, "d_fmn_rule": d_fmn_rule, "seconds": t_fmn,
                                    "cpu_seconds": c_fmn}, cache)
                t_step = step_seconds(ens, x0)
                t, c = time.perf_counter(), time.process_time()
                res = minimal_distance(ens, x0, p, bounds=(0.0, 1.0), steps=gp_steps[norm],
                                       generator=torch.Generator().manual_seed(0))
                t_gp, c_gp = time.perf_counter() - t, time.process_time() - c
                d_gp = torch.where(res.success, res.distance, torch.full_like(res.distance, math.inf)).float()
                floor = gp_steps[norm] * t_step / B
                row = {"seed": seed, "n": x0.shape[1], "norm": norm,
                       **summarize(d_gp, d_fmn, t_gp, t_fmn, B, d_fmn_rule, c_gp, c_fmn),
                       "step_seconds": t_step, "floor_s_per_point": floor, "gp_over_floor": t_gp / B / floor,
                       "d_gpbound": d_gp.tolist(), "d_fmn": d_fmn.tolist(), "d_fmn_same_rule": d_fmn_rule.tolist()}
                rows.append(row)
                cols = [("median_ratio", 9, ".4f"), ("frac_gp_le_fmn", 8, ".3f"), ("frac_gp_le_fmn_same_rule", 9, ".3f"),
                        ("frac_gp_le_fmn_tol", 7, ".3f"), ("frac_gp_le_fmn_0.1pct", 8, ".3f"), ("worse_1pct", 9, "d"),
                        ("fail_gp", 7, "d"), ("fail_fmn", 8, "d"), ("fail_fmn_same_rule", 9, "d"),
                        ("s_per_point_gp", 8, ".3f"), ("s_per_point_fmn", 8, ".3f"), ("cpu_s_per_point_gp", 7, ".3f"),
                        ("cpu_s_per_point_fmn", 7, ".3f"), ("floor_s_per_point", 6, ".3f"), ("gp_over_floor", 8, ".2f")]
                cells = [f"{'-':>{w}}" if isinstance(row[k], float) and math.isnan(row[k]) else f"{row[k]:{w}{spec}}"
                         for k, w, spec in cols]
                print(f"{seed:>4} {row['n']:>5} {norm:>5} " + " ".join(cells), flush=True)
    pooled = pool(rows) if fb_python is not None or args.fmn_cache else []
    if pooled:
        print(f"pooled over seed(s) {' '.join(map(str, args.seeds))} and n = "
              f"{', '.join(str(3 * s * s) for s in args.sizes)}: the issue's criteria per norm")
        print(f"{'norm':>5} {'points':>6} {'gp<=FMN':>8} {'same-rule':>9} {'worst cell':>10} {'fail gp':>7} "
              f"{'fail FMN':>8} {'s/pt gp':>8} {'s/pt FMN':>8} {'gp/FMN time':>11} {'worst cell':>10}")
        for r in pooled:
            print(f"{r['norm']:>5} {r['points']:>6} {r['frac_gp_le_fmn']:>8.3f} {r['frac_gp_le_fmn_same_rule']:>9.3f} "
                  f"{r['worst_cell_frac_gp_le_fmn']:>10.3f} {r['fail_gp']:>7} {r['fail_fmn']:>8} "
                  f"{r['s_per_point_gp']:>8.3f} {r['s_per_point_fmn']:>8.3f} {r['time_ratio']:>11.2f} "
                  f"{r['worst_cell_time_ratio']:>10.2f}")
    if args.json:
        from gpbound.report.checks import atomic_write_text
        atomic_write_text(args.json, json.dumps({"networks": args.networks, "points_per_network": args.points, "fmn_steps": args.fmn_steps,
                   "gp_steps": gp_steps, "keep_freed_memory": args.keep_freed_memory, "seeds": args.seeds,
                       "threads": 1, "rows": rows, "pooled": pooled}, indent=1))
    return rows


if __name__ == "__main__":
    main()
