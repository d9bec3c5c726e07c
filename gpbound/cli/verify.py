"""``gpbound verify``: empirical crossing frequency over random networks vs the bound's delta."""
from __future__ import annotations

import json
import time

from ._common import _float_in, _int_at_least, _theorem_M, _x0_from_args, load_architecture, random_input


def run(args) -> int:
    import numpy as np
    import torch

    from gpbound import radii, crossing

    arch, label = load_architecture(args.arch, args.image_size)
    n = int(arch.n)
    x0 = random_input(n, args.seed) if args.x0 is None else _x0_from_args(args, n)[0]
    x0_t = torch.as_tensor(np.asarray(x0, dtype=np.float64))
    x0_norm = float(torch.linalg.norm(x0_t))
    M = _theorem_M(arch)
    mode = "ball" if args.set == "l1" else "segment"
    if args.radius is not None:
        r = float(args.radius)
    elif mode == "ball":
        r = float(radii.l1_ball_radius(x0_norm, args.delta, n, M, entropy=args.entropy))
    else:
        r = float(radii.segment_radius(x0_norm, args.delta, M))
    t0 = time.perf_counter()
    res = crossing.crossing_frequency(arch, x0_t, r, mode=mode, num_trials=args.num_networks,
                                          num_points=args.num_points, width=args.width, level=args.confidence,
                                          M=M, entropy=args.entropy, seed=args.seed)
    wall = time.perf_counter() - t0
    delta = float(res.delta)
    lo, hi = (float(v) for v in res.ci)
    out = {"architecture": label, "n": n, "M": M, "x0_norm_l2": x0_norm, "radius": r, "set": args.set,
           "delta_bound": delta, "crossings": int(res.count), "trials": int(res.trials),
           "frequency": float(res.frequency), "clopper_pearson": [lo, hi], "confidence": args.confidence,
           "method": res.method, "looseness": float(res.looseness),
           "consistent_with_bound": bool(lo <= min(1.0, delta)), "wall_s": wall}
    if args.json:
        from gpbound.report.checks import to_jsonable

        print(json.dumps(to_jsonable(out), indent=1))
    else:
        print(f"architecture: {label}   n = {n}   M = {M:.6g}   ||x0||_2 = {x0_norm:.6g}")
        print(f"radius r = {r:.6g} ({args.set})   bound: P(zero within r) <= delta = {delta:.6g}")
        print(f"crossings: {res.count} of {res.trials} networks   frequency = {res.frequency:.6g}   "
              f"{100 * args.confidence:g}% Clopper-Pearson interval [{lo:.6g}, {hi:.6g}]   ({wall:.1f} s)")
        print("consistent with the bound (CP lower end <= delta): " + ("yes" if lo <= min(1.0, delta) else "NO"))
    return 0


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    v = sub.add_parser("verify", help="empirical crossing frequency over random networks vs the bound's delta")
    arch_args(v)
    gv = v.add_mutually_exclusive_group(required=True)
    gv.add_argument("--radius", type=_float_in("--radius", 0.0, None), metavar="R", help="radius to test")
    gv.add_argument("--delta", type=delta_t, help="test the certified radius r(delta)")
    v.add_argument("--num-networks", type=_int_at_least("--num-networks", 1), default=100, metavar="K")
    v.add_argument("--num-points", type=_int_at_least("--num-points", 2), default=256,
                   help="points of the segment grid (segment mode)")
    v.add_argument("--width", type=_int_at_least("--width", 1), default=None,
                   help="hidden width of the sampled networks (default: the architecture's)")
    v.add_argument("--set", choices=("l1", "segment"), default="l1", help="l1 ball or segment")
    v.add_argument("--x0", metavar="FILE.npy", default=None, help="input (default: uniform pixels, --seed)")
    v.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    v.add_argument("--confidence", type=_float_in("--confidence", 0.0, 1.0), default=0.95)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run, x0_norm=None, random_input=None)
    return v
