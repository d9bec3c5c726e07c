"""``gpbound reproduce``: the sweeps of the paper's figures (resumable results, figures)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ._common import UserError, _int_at_least


def run(args) -> int:
    """Run the sweep of one figure into ``--out`` (JSON lines: a re-run resumes), save
    ``summary.json`` (the full result dict) and the figure's PNG."""
    from gpbound.experiments import figures
    from gpbound.report.checks import atomic_write_text, to_jsonable

    out = Path(args.out or f"results/{args.figure}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a directory, got the file {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    q = args.quick
    import torch

    torch.set_num_threads(args.threads)
    common = {"results_path": out / "results.jsonl", "scheduler": args.scheduler, "progress": True,
              "seed": args.seed}
    t0 = time.perf_counter()
    if args.figure in ("fig1", "fig2", "fig3"):
        sizes = args.sizes or ((4, 8) if q else figures.DEFAULT_SIZES)
        n_min = 40.0 if q else 100.0
        if len({s for s in sizes if 3 * s * s >= n_min}) < 2:
            raise UserError(f"--sizes must hold at least 2 distinct image sides with n = 3 s^2 >= {n_min:g} "
                            f"(the log-log slope fit), got {list(sizes)}")
        if args.preset == "theory" and any(s % 4 for s in sizes):
            raise UserError(f"--sizes must be divisible by 4 for the theory preset, got {list(sizes)}")
        kw = dict(preset=args.preset, sizes=sizes, n_networks=args.num_networks or (2 if q else 10),
                  n_points=args.num_points or (3 if q else 10), **common)
        if q:
            kw.update(widths=4 if args.preset == "theory" else (4, 4, 4), blocks_per_stack=1, n_min=n_min,
                      n_boot=200)
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
    for f in pngs:
        print(f"  figure: {f}")
    return 0


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    rp = sub.add_parser("reproduce", help="run the sweeps of a figure of the paper (with resume)")
    rp.add_argument("figure", choices=("fig1", "fig2", "fig3", "fig4"))
    rp.add_argument("--out", default=None, help="results directory (default results/FIG)")
    rp.add_argument("--quick", action="store_true", help="tiny sizes")
    rp.add_argument("--scheduler", default=None, metavar="ADDR", help="dask scheduler address")
    rp.add_argument("--preset", choices=("faithful", "theory"), default="faithful",
                    help="faithful (the authors' ResNet, default) or theory (analytic kernel; sizes divisible by 4)")
    rp.add_argument("--sizes", type=_int_at_least("--sizes", 1), nargs="+", default=None, metavar="S",
                    help="image sides (figs 1-3)")
    rp.add_argument("--num-networks", type=_int_at_least("--num-networks", 1), default=None)
    rp.add_argument("--num-points", type=_int_at_least("--num-points", 1), default=None)
    rp.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    rp.add_argument("--threads", type=_int_at_least("--threads", 1), default=1,
                    help="torch threads (default 1: small networks; use dask --scheduler to parallelise)")
    rp.set_defaults(func=run)
    return rp
