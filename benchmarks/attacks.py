"""Benchmark: seconds per attack point for each norm at n = 3072 (32x32x3 images).

Model: the theory ResNet preset ``gpbound.kernels.presets.get_preset("resnet", 32)`` at a
moderate width when available, else a small residual conv net written in the layer
language, else a torch MLP.  All points are attacked in one batch (the ensemble of
attacks of ``gpbound.attacks.minimal_distance``: linearisation/DeepFool + FMN (+ DDN)).

    python benchmarks/attacks.py [--quick] [--points 8] [--width 16] [--steps 100]
"""
import argparse
import math
import time

import torch

from gpbound.attacks import NetworkEnsemble, minimal_distance


def build_model(size, width, networks, points, seed=0):
    try:
        from gpbound.kernels.presets import get_preset
        arch = get_preset("resnet", size)
        name = f"theory resnet preset (image {size}, width {width})"
    except Exception:
        try:
            from gpbound.kernels import (AvgPool, Architecture, Conv, Flatten, ReLU, Residual,
                                         serial)
            block = lambda: Residual(serial(ReLU(), Conv(width, 3), ReLU(), Conv(width, 3)))  # noqa
            arch = Architecture(serial(Conv(width, 3), block(), AvgPool(2), block(), AvgPool(2),
                                       block(), ReLU(), Flatten(1)), input_shape=(3, size, size))
            name = f"layer-language residual conv net (3 blocks, {width} ch, image {size})"
        except Exception as exc:  # noqa: F841 - layer language unavailable
            n = 3 * size * size
            nets = [torch.nn.Sequential(torch.nn.Linear(n, 256), torch.nn.ReLU(),
                                        torch.nn.Linear(256, 1)).double() for _ in range(networks)]
            return NetworkEnsemble(nets, points_per_network=points), n, f"torch MLP {n}-256-1"
    ens = NetworkEnsemble.from_architecture(arch, networks, width=width, seed=seed,
                                            points_per_network=points)
    return ens, arch.n, name


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--networks", type=int, default=2)
    ap.add_argument("--points", type=int, default=4, help="points per network")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.width, args.networks, args.points, args.steps = 16, 4, 2, 2, 10
    if args.threads:
        torch.set_num_threads(args.threads)
    f, n, name = build_model(args.size, args.width, args.networks, args.points)
    B = args.networks * args.points
    x0 = torch.rand(B, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    print(f"model: {name}; n = {n}; {args.networks} networks x {args.points} points = {B}; "
          f"steps = {args.steps}; threads = {torch.get_num_threads()}")
    print(f"{'norm':>5} {'s/point':>9} {'total s':>8} {'found':>6} {'median dist':>12}  per-attack found")
    for norm in (1, 2, math.inf):
        t = time.perf_counter()
        res = minimal_distance(f, x0, norm, steps=args.steps)
        dt = time.perf_counter() - t
        found = int(res.success.sum())
        med = float(res.distance[res.success].median()) if found else float("inf")
        per = {k: int(torch.isfinite(v).sum()) for k, v in res.per_attack.items()}
        print(f"{str(norm):>5} {dt / B:9.3f} {dt:8.2f} {found:3d}/{B:<2d} {med:12.5g}  {per}")


if __name__ == "__main__":
    main()
