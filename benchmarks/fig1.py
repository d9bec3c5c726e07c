"""Figure 1-2 of the paper: minimal adversarial distance of random networks against n.

Default (full) run: faithful preset (authors' ResNet without batch norm) with widths
scaled by 0.25 (8, 16, 32 channels) and 1 block per stack, sizes s = 4..32 step 4
(n = 48..3072), 40 networks x 4 points per size, gpbound.attacks.minimal_distance
(attacks=("linear",), steps 20) in l1, l2, linf on one network per task (paired norms).
All of these are options (--width-scale 1 --blocks-per-stack 3 for the authors' net;
--attacks default for minimal_distance's full per-norm ensemble: linear + FMN, and DDN for l2). Prints the log-log slopes
over n >= 100 with network-bootstrap 95 % intervals, the expected slopes and the wall
time. --quick: a smoke version (seconds). Results are appended to --out (JSON lines;
default in the temp dir) and resumed if the file exists (delete it for a fresh timing).

    python benchmarks/fig1.py --quick
    python benchmarks/fig1.py --throughput --sizes 12 32    # attacked points per second, batched vs unbatched
                                                          # (faithful full width, float32, boxed [0, 1])
    python benchmarks/fig1.py --throughput --device cuda --sizes 12 32 60 --networks 25 --steps 100
                                                          # the GPU measurement of benchmarks/paper_gpu.sh
    python benchmarks/fig1.py                       # 317 s measured on 2 cores (2026-11-29), slopes l1 +0.48, l2 -0.03, linf -0.54
"""
import argparse
import json
import os
import sys
import tempfile
import time

from gpbound.experiments.figures import NORMS, plot_distances_vs_n, run_distance_sweep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: s = 4, 8, 12, 16, 3 networks x 2 points (seconds)")
    ap.add_argument("--preset", default="faithful", choices=("faithful", "theory"))
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--networks", type=int, default=None)
    ap.add_argument("--points", type=int, default=None)
    ap.add_argument("--width-scale", type=float, default=None)
    ap.add_argument("--blocks-per-stack", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="attack steps (FMN/DDN iterations)")
    ap.add_argument("--attacks", nargs="+", default=["linear"],
                    help="attacks of minimal_distance's ensemble (default: linear only); 'default' = the "
                         "full per-norm ensemble (linear + FMN, + DDN for l2)")
    ap.add_argument("--out", default=None, help="results file (JSON lines; resumed)")
    ap.add_argument("--png", default=None, help="write the Fig 1-2 plot here")
    ap.add_argument("--scheduler", default=None, help="dask scheduler address")
    ap.add_argument("--throughput", action="store_true",
                    help="measure attacked points (x norms) per second, batched (NetworkEnsemble) vs one network at "
                         "a time, on the faithful network at full width, depth 20, float32, boxed [0, 1]")
    ap.add_argument("--device", default=None, help="torch device of --throughput (default cpu)")
    ap.add_argument("--json", default=None, help="--throughput: also write its rows to this JSON file")
    args = ap.parse_args(argv)
    if args.throughput:
        return throughput(args.sizes or [12, 32], args.networks or 2, args.points or 1, args.steps or 20,
                          device=args.device, json_path=args.json)
    if args.quick:
        d = dict(sizes=[4, 8, 12, 16], networks=3, points=2, width_scale=0.25, blocks=1, steps=10)
    else:
        d = dict(sizes=[4, 8, 12, 16, 20, 24, 28, 32], networks=40, points=4, width_scale=0.25, blocks=1,
                 steps=20)
    sizes = args.sizes or d["sizes"]
    cfg = dict(preset=args.preset, sizes=sizes, n_networks=args.networks or d["networks"],
               n_points=args.points or d["points"], blocks_per_stack=args.blocks_per_stack or d["blocks"],
               attack_kwargs=dict({"steps": args.steps or d["steps"]},
                                 **({} if args.attacks == ["default"] else {"attacks": list(args.attacks)})))
    if args.preset == "faithful":
        cfg["width_scale"] = args.width_scale or d["width_scale"]
    out = args.out or os.path.join(tempfile.gettempdir(), f"gpbound_fig1_{'quick' if args.quick else 'full'}.jsonl")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    print("fig1 configuration:", json.dumps(cfg), "results ->", out, flush=True)
    t0 = time.perf_counter()
    res = run_distance_sweep(**cfg, results_path=out, scheduler=args.scheduler, progress=True, n_boot=1000)
    wall = time.perf_counter() - t0
    print(res["note"])
    print(f"preset: {res['preset']['preset']} -- {res['preset']['description']}")
    print(f"{'norm':5s} {'kind':9s} {'slope':>7s} {'95% CI':>18s} {'expected':>8s}  failures per n")
    for nm in NORMS:
        fails = [s["failures"] for s in res["summary"][nm]["absolute"]]
        for kind in ("absolute", "relative"):
            f = res["slopes"][nm][kind]
            print(f"{nm:5s} {kind:9s} {f['slope']:7.3f} [{f['ci_low']:7.3f}, {f['ci_high']:7.3f}] "
                  f"{f['expected']:+8.2f}  {fails if kind == 'absolute' else ''}")
    for nm in NORMS:
        s = res["summary"][nm]
        print(nm, "median distance per n:", {n: round(x["median"], 4) for n, x in zip(s["n"], s["absolute"])})
    tasks = len(res["records"])
    print(f"wall time {wall:.1f} s for {tasks} tasks ({cfg['n_networks']} networks x {cfg['n_points']} points "
          f"x {len(sizes)} sizes, 3 norms each)")
    if args.png:
        print("plot:", plot_distances_vs_n(res, args.png))
    return 0


def throughput(sizes, networks, points, steps, device=None, json_path=None):
    """Attacked points per second (and per CPU second of this process: a fair figure on a shared machine),
    batched vs unbatched, with the same networks, points and attack (minimal_distance, ``steps``), on ``device``."""
    import torch

    from gpbound.experiments.figures import distance_block_task
    from gpbound.report.checks import atomic_write_text

    torch.set_num_threads(1)
    rows = []
    for s in sizes:
        for batched in (True, False):
            p = dict(preset="faithful", image_size=s, net_seeds=list(range(networks)), n_points=points,
                     norms=list(NORMS), widths=[32, 64, 128], blocks_per_stack=3, dtype="float32", bounds=[0.0, 1.0],
                     batched=batched)
            w0, c0 = time.perf_counter(), time.process_time()
            out = distance_block_task(p, attack_kwargs={"steps": steps}, device=device)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            row = {"s": s, "n": 3 * s * s, "batched": batched, "networks": networks, "points": points, "steps": steps,
                   "point_norms": out["points"], "wall_s": wall, "cpu_s": cpu,
                   "per_wall_s": out["points"] / wall, "per_cpu_s": out["points"] / cpu,
                   "distances": {nm: [list(map(float, r[nm]["distance"])) for r in out["networks"]] for nm in NORMS}}
            row["device"] = str(device or "cpu")
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "distances"}), flush=True)
            if json_path:
                atomic_write_text(json_path, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
