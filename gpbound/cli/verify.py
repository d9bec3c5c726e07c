"""``gpbound verify``: empirical crossing frequency over random networks vs the bound's delta.

The networks run in blocks (``--block-size``): block 0 draws its networks with ``--seed`` itself
(so a run of at most one block equals :func:`gpbound.crossing.crossing_frequency` with that seed),
block ``b > 0`` with the seed ``numpy.random.SeedSequence([seed, b]).generate_state(1)[0]``. The
blocks run in this process with a progress bar on stderr, or on dask.distributed with
``--scheduler ADDRESS`` (through :func:`gpbound.experiments.sweep.run_sweep`, as ``reproduce``).
"""
from __future__ import annotations

import functools
import json
import math
import time
from typing import Any, Dict, List

from ._common import (GUARANTEE, HelpFormatter, _float_in, _int_at_least, _theorem_M, _x0_from_args, examples_text,
                      load_architecture, presets_text, random_input, wrap)


def block_seeds(seed: int, num_networks: int, block_size: int) -> List[Dict[str, int]]:
    """The blocks of a run: ``[{"block": b, "seed": s_b, "size": k_b}, ...]`` (module docstring).

    Parameters
    ----------
    seed : int >= 0
    num_networks : int >= 1
    block_size : int >= 1

    Returns
    -------
    list of dict
    """
    import numpy as np

    for name, v, lo in (("seed", seed, 0), ("num_networks", num_networks, 1), ("block_size", block_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    out = []
    for b, start in enumerate(range(0, int(num_networks), int(block_size))):
        s = int(seed) if b == 0 else int(np.random.SeedSequence([int(seed), b]).generate_state(1)[0])
        out.append({"block": b, "seed": s, "size": min(int(block_size), int(num_networks) - start)})
    return out


def _verify_block(params: Dict[str, Any], *, arch, x0, r, mode, num_points, width, M, entropy, level,
                  bound="comparison"):
    """One block of networks: :func:`gpbound.crossing.crossing_frequency` (module-level: dask pickles it)."""
    import torch

    from gpbound import crossing

    res = crossing.crossing_frequency(arch, torch.as_tensor(x0, dtype=torch.float64), r, mode=mode,
                                      num_trials=int(params["size"]), num_points=num_points, width=width,
                                      level=level, M=M, entropy=entropy, seed=int(params["seed"]), bound=bound)
    return {"count": int(res.count), "trials": int(res.trials), "delta": float(res.delta),
            "distances": [float(v) for v in res.distances.detach().cpu().numpy()], "method": res.method}


def run(args) -> int:
    import numpy as np
    import torch

    from gpbound import crossing, radii
    from gpbound.experiments.sweep import run_sweep

    arch, label = load_architecture(args.arch, args.image_size)
    n = int(arch.n)
    x0 = random_input(n, args.seed) if args.x0 is None else _x0_from_args(args, n)[0]
    x0 = np.asarray(x0, dtype=np.float64)
    x0_norm = float(np.linalg.norm(x0))
    M = _theorem_M(arch)
    mode = "ball" if args.set == "l1" else "segment"
    if args.radius is not None:
        r = float(args.radius)
    elif args.bound == "comparison":
        r = float(radii.comparison_radius(x0_norm, args.delta, n, M, p=1) if mode == "ball"
                  else radii.comparison_segment_radius(x0_norm, args.delta, M))
    elif mode == "ball":
        r = float(radii.l1_ball_radius(x0_norm, args.delta, n, M, entropy=args.entropy))
    else:
        r = float(radii.segment_radius(x0_norm, args.delta, M))
    blocks = block_seeds(args.seed, args.num_networks, args.block_size)
    fn = functools.partial(_verify_block, arch=arch, x0=x0.tolist(), r=r, mode=mode, num_points=args.num_points,
                           width=args.width, M=M, entropy=args.entropy, level=args.confidence, bound=args.bound)
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    recs = run_sweep(fn, blocks, None, scheduler=args.scheduler, progress=not args.json and not args.silent,
                     desc=f"verify: {args.num_networks} networks in {len(blocks)} block(s)")
    wall = time.perf_counter() - t0
    results = [rec["result"] for rec in recs]
    count = sum(int(b["count"]) for b in results)
    trials = sum(int(b["trials"]) for b in results)
    delta = float(results[0]["delta"])
    lo, hi = crossing.clopper_pearson(count, trials, args.confidence)
    dist = np.asarray([float(v) for b in results for v in b["distances"]], dtype=float)
    measured = _distance_summary(dist, r, delta, mode)
    out = {"architecture": label, "n": n, "M": M, "x0_norm_l2": x0_norm, "radius": r, "set": args.set,
           "delta_bound": delta, "crossings": count, "trials": trials, "frequency": count / trials,
           "clopper_pearson": [float(lo), float(hi)], "bound": args.bound, "confidence": args.confidence, "method": results[0]["method"],
           "looseness": measured["looseness"], "measured_distances": measured,
           "consistent_with_bound": bool(lo <= min(1.0, delta)), "blocks": blocks,
           "scheduler": args.scheduler, "guarantee": GUARANTEE, "wall_s": wall}
    if args.json:
        from gpbound.jsonable import to_jsonable

        print(json.dumps(to_jsonable(out), indent=1))
        return 0
    where = f"dask scheduler {args.scheduler}" if args.scheduler else "this process"
    print(f"architecture: {label}   n = {n}   M = {M:.6g}   ||x0||_2 = {x0_norm:.6g}")
    print(f"radius r = {r:.6g} ({args.set})   {args.bound} bound: P(zero within r) <= delta = {delta:.6g}")
    print(f"crossings: {count} of {trials} networks   frequency = {count / trials:.6g}   "
          f"{100 * args.confidence:g}% Clopper-Pearson interval [{lo:.6g}, {hi:.6g}]   "
          f"({wall:.1f} s, {len(blocks)} block(s) in {where})")
    print("consistent with the bound (CP lower end <= delta): " + ("yes" if lo <= min(1.0, delta) else "NO"))
    if mode == "ball":
        m = measured
        print(f"measured l1 attack distances (verified; upper bounds of the true distances), {m['finite']} of "
              f"{trials} networks flipped: median {m['median']:.6g} = {m['median_over_r']:.4g} x r, "
              f"smallest {m['min']:.6g} = {m['min_over_r']:.4g} x r" + (
                  f", {m['quantile_level']:g}-quantile {m['quantile']:.6g} = {m['looseness']:.4g} x r"
                  if math.isfinite(m["quantile"]) else ""))
        print("  (ratio > 1: the certificate is that much smaller than what the attacks find; the quantile at the "
              "bound's level delta compares like with like)")
    else:
        print(f"segment: first sign changes within r found on {measured['finite']} of {trials} networks; beyond r the "
              "grid does not look, so no distance ratio is given")
    print(f"meaning: {GUARANTEE}.")
    return 0


def _distance_summary(dist, r: float, delta: float, mode: str) -> Dict[str, Any]:
    """Median, smallest and delta-quantile of the measured distances, and each over ``r``.

    ``looseness`` = the delta-quantile over r, as :attr:`gpbound.crossing.CrossingResult.looseness`
    (ball mode; NaN for the segment, whose grid ends at r). Networks with no flip found count as
    ``inf`` (so the median and the quantile are conservative).
    """
    import numpy as np

    d = np.sort(np.asarray(dist, dtype=float))
    finite = int(np.isfinite(d).sum())
    nan = float("nan")
    if mode != "ball" or d.size == 0:
        return {"finite": finite, "median": nan, "min": nan, "quantile": nan, "quantile_level": float(delta),
                "median_over_r": nan, "min_over_r": nan, "looseness": nan}
    med = float(np.quantile(d, 0.5, method="inverted_cdf")) if finite else math.inf
    lo = float(d[0])
    q = nan  # the quantile at the bound's level, defined for 0 < delta < 1 only (as the library's looseness)
    if math.isfinite(delta) and 0 < delta < 1:
        q = float(np.quantile(d, float(delta), method="inverted_cdf")) if finite else math.inf
    return {"finite": finite, "median": med, "min": lo, "quantile": q, "quantile_level": float(delta),
            "median_over_r": med / r, "min_over_r": lo / r, "looseness": q / r}


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    v = sub.add_parser(
        "verify", help="crossing frequency over random networks at a radius, vs the bound's delta",
        formatter_class=HelpFormatter,
        description=wrap("Sample random networks of an architecture, attack each from x0, and count how often the "
                         "label changes within the radius r (l1 ball: a verified minimal l1 attack distance <= r; "
                         "segment: a sign change on a grid). Prints the frequency with a Clopper-Pearson interval "
                         "next to the bound's delta, and the measured attack distances over r (how loose the "
                         "certificate is).", "meaning of the certificate: " + GUARANTEE + ".")
                    + "\n\n" + presets_text(),
        epilog=examples_text(
            "gpbound verify --arch resnet --image-size 8 --delta 0.1 --num-networks 50 --seed 0",
            "gpbound verify --arch dense --image-size 4 --radius 0.5 --num-networks 200 --json",
            "gpbound verify --arch resnet --image-size 8 --delta 0.5 --set segment --num-points 512",
            "gpbound verify --arch resnet --image-size 16 --delta 0.1 --num-networks 400 "
            "--scheduler tcp://127.0.0.1:8786"))
    arch_args(v)
    gv = v.add_mutually_exclusive_group(required=True)
    gv.add_argument("--radius", type=_float_in("--radius", 0.0, None), metavar="R", help="radius r to test")
    gv.add_argument("--delta", type=delta_t, help="test the certified radius r(delta) of --bound")
    v.add_argument("--bound", choices=("comparison", "dudley"), default="comparison",
                   help="certificate whose radius r(delta) and delta at r are used: comparison (Sudakov-Fernique, "
                        "gpbound's default) or dudley (the paper's eq. 39-40; segment: Theorem 1 II)")
    v.add_argument("--num-networks", type=_int_at_least("--num-networks", 1), default=100, metavar="K",
                   help="random networks to sample")
    v.add_argument("--num-points", type=_int_at_least("--num-points", 2), default=256,
                   help="points of the segment grid (--set segment)")
    v.add_argument("--width", type=_int_at_least("--width", 1), default=None,
                   help="hidden width of the sampled networks (default: the architecture's)")
    v.add_argument("--set", choices=("l1", "segment"), default="l1", help="l1 ball or segment")
    v.add_argument("--x0", metavar="FILE.npy", default=None,
                   help="the input x0, n entries (default: uniform [0, 1] pixels drawn with --seed)")
    v.add_argument("--seed", type=_int_at_least("--seed", 0), default=0, help="seed of x0 and of the networks")
    v.add_argument("--confidence", type=_float_in("--confidence", 0.0, 1.0), default=0.95,
                   help="level of the Clopper-Pearson interval")
    v.add_argument("--block-size", type=_int_at_least("--block-size", 1), default=50, metavar="B",
                   help="networks per block (one progress step; one dask task)")
    v.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="dask scheduler address: run the blocks there (pip install .[dask]; default: this process)")
    v.add_argument("--threads", type=_int_at_least("--threads", 1), default=1, help="torch threads")
    v.add_argument("--silent", action="store_true", help="no progress bar on stderr")
    v.add_argument("--json", action="store_true", help="print JSON (no progress bar)")
    v.set_defaults(func=run, x0_norm=None, random_input=None)
    return v
