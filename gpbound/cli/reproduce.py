"""``gpbound reproduce``: the sweeps of the paper's figures (resumable results, figures).

Figs 1-2 (``fig1``, ``fig2``; ``fig3`` adds the percentile plot of the largest size) run
:func:`gpbound.experiments.figures.run_distance_sweep`: blocks of networks per task (one Dask
task each with ``--scheduler``), each block attacked in one batched call per norm.
``--protocol paper`` is the authors' configuration
(:data:`gpbound.experiments.figures.PAPER_PROTOCOL`: s = 12, 16, ..., 60, 200 networks x 10
points, widths 32/64/128, 3 blocks per stack, float32, boxed [0, 1], a fresh network per norm);
explicit options override it, and every output lists each difference from the paper.
``--dry-run`` measures a short calibration run and prints the cost model instead of running.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ._common import UserError, _int_at_least


#: the authors' fitted log-log slopes of the median absolute distance over their 13 sizes (Fig. 1)
AUTHORS_SLOPES = {"l1": 0.424, "l2": 0.011, "linf": -0.537}


def _fig12_kwargs(args):
    """``run_distance_sweep`` keyword arguments from the command line (``--protocol`` then overrides)."""
    from gpbound.experiments import figures

    q = args.quick
    paper = args.protocol == "paper"
    if paper and q:
        raise UserError("--protocol paper and --quick exclude each other (--quick is a smoke run)")
    P = figures.PAPER_PROTOCOL
    sizes = args.sizes or (P["sizes"] if paper else ((4, 8) if q else figures.DEFAULT_SIZES))
    n_min = 40.0 if q else 100.0
    if len({s for s in sizes if 3 * s * s >= n_min}) < 2:
        raise UserError(f"--sizes must hold at least 2 distinct image sides with n = 3 s^2 >= {n_min:g} "
                        f"(the log-log slope fit), got {list(sizes)}")
    if args.preset == "theory" and any(s % 4 for s in sizes):
        raise UserError(f"--sizes must be divisible by 4 for the theory preset, got {list(sizes)}")
    kw = dict(preset=args.preset, sizes=list(sizes),
              n_networks=args.num_networks or (P["n_networks"] if paper else (2 if q else 10)),
              n_points=args.num_points or (P["n_points"] if paper else (3 if q else 10)), n_min=n_min,
              dtype=args.dtype or (P["dtype"] if paper else "float64"),
              fresh_network_per_norm=(args.fresh_network_per_norm if args.fresh_network_per_norm is not None
                                      else (P["fresh_network_per_norm"] if paper else False)),
              block_size=args.block_size, protocol=args.protocol, device=args.device)
    if args.unboxed:
        kw["bounds"] = None
    elif args.bounds is not None:
        lo, hi = args.bounds
        if not (lo <= 0.0 and hi >= 1.0 and hi < float("inf") and lo > float("-inf")):
            raise UserError(f"--bounds LO HI must be finite with LO <= 0 and HI >= 1 (the random images lie in "
                            f"[0, 1]), got {lo:g} {hi:g}")
        kw["bounds"] = (lo, hi)
    if q:
        kw.update(widths=4 if args.preset == "theory" else (4, 4, 4), blocks_per_stack=1, n_boot=200)
    if args.widths is not None:
        if args.preset == "theory" and len(args.widths) != 1:
            raise UserError(f"--widths takes one width for the theory preset, got {args.widths}")
        kw["widths"] = args.widths[0] if (args.preset == "theory" or len(args.widths) == 1) else list(args.widths)
        if args.preset == "faithful" and len(args.widths) not in (1, 3):
            raise UserError(f"--widths takes 1 or 3 widths (the three stacks) for the faithful preset, "
                            f"got {args.widths}")
    elif paper and args.preset == "faithful":
        kw["widths"] = list(P["widths"])
    if args.blocks is not None:
        kw["blocks_per_stack"] = args.blocks
    elif paper:
        kw["blocks_per_stack"] = P["blocks_per_stack"]
    if args.steps is not None:
        kw["attack_kwargs"] = {"steps": args.steps}
    if args.l1_probe != "auto":
        b = kw.get("bounds", "auto")
        if isinstance(b, tuple) or (b == "auto" and args.preset == "faithful"):
            raise UserError("--l1-probe applies to unboxed runs (--unboxed, or the theory preset): the boxed "
                            "default attacks run no coordinate search")
        kw["attack_kwargs"] = {**kw.get("attack_kwargs", {}), "coord_probe": args.l1_probe == "on"}
    return kw


def _dry_run(kw, args) -> int:
    """Print the tasks and the cost model from a measured calibration (nothing written)."""
    from gpbound.experiments import figures

    keys = ("preset", "sizes", "n_networks", "n_points", "norms", "widths", "width_scale", "blocks_per_stack",
            "attack", "attack_kwargs", "seed", "dtype", "bounds", "fresh_network_per_norm", "block_size")
    config, tasks = figures.distance_tasks(**{k: v for k, v in kw.items() if k in keys})
    print(f"protocol: {kw.get('protocol')}; sizes s = {config['sizes']} ({len(config['sizes'])} sizes), "
          f"{config['n_networks']} networks x {config['n_points']} points per size, norms {config['norms']}, "
          f"{len(tasks)} tasks of {config['block_size']} network(s)")
    diffs = figures.protocol_differences(config)
    print("differences from the paper:" + "".join(f"\n  - {d}" for d in diffs))
    print(f"calibrating on device {kw.get('device') or 'cpu'} (one batched block of 2 networks x 1 point at two "
          "sizes, the same attack) ...", flush=True)
    cal = figures.calibrate_cost(config, config["sizes"], device=kw.get("device"))
    model = figures.cost_model(config, cal)
    print(f"measured: {', '.join(f'n = {n:.0f}: {t:.3g} s per point and norm' for n, t in zip(cal['n'], cal['seconds_per_point']))}"
          f" ({cal.get('clock', 'wall time')}; calibration {cal['calibration_s']:.1f} s wall); fit: seconds per point = "
          f"{cal['c']:.3g} n^{cal['exponent']:.2f} (fitted exponent {cal.get('fitted_exponent', float('nan')):.2f}, "
          "clamped to >= 1)")
    for r in model["per_size"]:
        print(f"  s = {r['s']:3d}  n = {r['n']:6d}  {r['tasks']} task(s)  {r['seconds'] / 3600:.3g} h")
    print(f"estimated total on this device: {model['total_hours']:.3g} h (one process, {args.threads} torch "
          "thread(s)); on W Dask workers of this speed: "
          + ", ".join(f"W = {w}: {h:.3g} h" for w, h in model["workers"].items()))
    return 0


def run(args) -> int:
    """Run the sweep of one figure into ``--out`` (JSON lines: a re-run resumes), save
    ``summary.json`` (the full result dict) and the figure's PNG."""
    from gpbound.experiments import figures
    from gpbound.report.checks import atomic_write_text, to_jsonable
    import torch

    torch.set_num_threads(args.threads)
    q = args.quick
    if args.figure in ("fig1", "fig2", "fig3"):
        kw = _fig12_kwargs(args)
        kw["seed"] = args.seed
        if args.dry_run:
            return _dry_run(kw, args)
    elif args.dry_run or args.protocol != "custom":
        raise UserError("--dry-run and --protocol apply to fig1, fig2 and fig3 only")
    out = Path(args.out or f"results/{args.figure}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a directory, got the file {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    common = {"results_path": out / "results.jsonl", "scheduler": args.scheduler, "progress": True,
              "seed": args.seed}
    t0 = time.perf_counter()
    if args.figure in ("fig1", "fig2", "fig3"):
        kw.update(common)
        res = figures.run_distance_sweep(**kw)
        pngs = [figures.plot_distances_vs_n(res, out / "distances_vs_n.png")]
        if args.figure == "fig3":
            top = max(int(r["n"]) for r in res["records"])
            import numpy as np

            d = {norm: np.concatenate([np.asarray(r[norm]["distance"], float) for r in res["records"]
                                       if int(r["n"]) == top]) for norm in res["config"]["norms"]}
            res["percentiles"] = figures.percentile_curves(d)
            pngs.append(figures.plot_percentiles(res["percentiles"], out / "percentiles.png",
                                                 title=f"n = {top} ({args.preset} preset)"))
    else:
        kw = dict(dataset="digits", preset=args.preset, n_networks=args.num_networks or (1 if q else 2),
                  n_points=args.num_points or (4 if q else 10), **common)
        if q:
            kw.update(widths=4 if args.preset == "theory" else (4, 4, 4), blocks_per_stack=1, more_epochs=0)
        res = figures.run_trained_vs_random(**kw)
        pngs = [figures.plot_trained_vs_random(res, out / "trained_vs_random.png")]
    atomic_write_text(out / "summary.json", json.dumps(to_jsonable(res), indent=1))
    print(f"{args.figure}: done in {time.perf_counter() - t0:.1f} s; results in {out} "
          f"(summary.json; results.jsonl resumes an interrupted run)")
    if "differences_from_paper" in res:
        print(f"protocol: {res['protocol']}; differences from the paper:"
              + "".join(f"\n  - {d}" for d in res["differences_from_paper"]))
        for norm, by_n in res["failures"].items():
            print(f"  {norm}: failed attacks (counted as +inf in the medians) per n: "
                  + ", ".join(f"{n}: {k}" for n, k in by_n.items()))
        for norm, s in res["slopes"].items():
            a = s["absolute"]
            authors = AUTHORS_SLOPES.get(norm)
            print(f"  {norm}: slope {a['slope']:+.3f}, {100 * a.get('level', 0.95):.0f} % bootstrap CI over networks "
                  f"[{a['ci_low']:+.3f}, {a['ci_high']:+.3f}] (theory {a['expected']:+.1f}"
                  + (f"; the authors' 13-size medians {authors:+.3f})" if authors is not None else ")"))
        print(f"  {res['points_per_second']:.3g} attacked points (x norm) per second of attack")
        if q:
            print(f"WARNING: --quick is a smoke run ({kw['n_networks']} networks x {kw['n_points']} points at sizes "
                  f"{kw['sizes']}, narrow networks): its slopes are too noisy to compare with theory (a quick l1 "
                  "slope of -1.1 has been seen where +0.5 is expected). For numbers to trust, run without --quick "
                  "or with --protocol paper.")
    for f in pngs:
        print(f"  figure: {f}")
    return 0


def _float_pair_arg(text):
    import argparse

    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bounds takes two numbers LO HI with LO <= 0 < 1 <= HI, "
                                         f"got {text!r}") from None


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    rp = sub.add_parser("reproduce", help="run the sweeps of a figure of the paper (with resume)")
    rp.add_argument("figure", choices=("fig1", "fig2", "fig3", "fig4"))
    rp.add_argument("--out", default=None, help="results directory (default results/FIG)")
    rp.add_argument("--quick", action="store_true", help="tiny sizes")
    rp.add_argument("--protocol", choices=("custom", "paper"), default="custom",
                    help="paper: s = 12, 16, ..., 60, 200 networks x 10 points, widths 32/64/128, 3 blocks per stack, "
                         "float32, boxed [0, 1], a fresh network per norm (explicit options override it)")
    rp.add_argument("--dry-run", action="store_true",
                    help="print the tasks and the cost model from a measured calibration run; run nothing")
    rp.add_argument("--scheduler", default=None, metavar="ADDR", help="dask scheduler address (one task per block)")
    rp.add_argument("--device", default=None, help="torch device of the networks and attacks (default cpu)")
    rp.add_argument("--dtype", choices=("float32", "float64"), default=None,
                    help="float32 as the authors ran, float64 (default, except --protocol paper)")
    rp.add_argument("--preset", choices=("faithful", "theory"), default="faithful",
                    help="faithful (the authors' ResNet, default) or theory (analytic kernel; sizes divisible by 4)")
    rp.add_argument("--sizes", type=_int_at_least("--sizes", 1), nargs="+", default=None, metavar="S",
                    help="image sides (figs 1-3)")
    rp.add_argument("--widths", type=_int_at_least("--widths", 1), nargs="+", default=None, metavar="W",
                    help="faithful: the three stack widths (or one w for w, 2w, 4w); theory: one hidden width")
    rp.add_argument("--blocks", type=_int_at_least("--blocks", 1), default=None, help="residual blocks per stack")
    rp.add_argument("--bounds", type=_float_pair_arg, nargs=2, default=None, metavar=("LO", "HI"),
                    help="attack box (default [0, 1] for the faithful preset, as the authors; none for theory)")
    rp.add_argument("--unboxed", action="store_true", help="attack in R^n (no box)")
    fr = rp.add_mutually_exclusive_group()
    fr.add_argument("--fresh-network-per-norm", dest="fresh_network_per_norm", action="store_const", const=True,
                    default=None, help="a fresh network and points per norm (the authors' protocol)")
    fr.add_argument("--paired", dest="fresh_network_per_norm", action="store_const", const=False,
                    help="one network for the three norms (default except --protocol paper)")
    rp.add_argument("--block-size", type=_int_at_least("--block-size", 1), default=None,
                    help="networks per task, attacked in one batched call (default min(networks, 25))")
    rp.add_argument("--steps", type=_int_at_least("--steps", 1), default=None,
                    help="attack steps of minimal_distance (default its own: 100, 150 for linf; in a box also 150 for l1)")
    rp.add_argument("--l1-probe", choices=("auto", "on", "off"), default="auto",
                    help="unboxed runs: the exhaustive l1 coordinate probe (2n evaluations per point) at every size "
                         "(on) or at none (off); auto: on where the largest n <= 512. Never only at some sizes "
                         "(that would tilt the l1 slope)")
    rp.add_argument("--num-networks", type=_int_at_least("--num-networks", 1), default=None)
    rp.add_argument("--num-points", type=_int_at_least("--num-points", 1), default=None)
    rp.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    rp.add_argument("--threads", type=_int_at_least("--threads", 1), default=1,
                    help="torch threads (default 1: small networks; use dask --scheduler to parallelise)")
    rp.set_defaults(func=run)
    return rp
