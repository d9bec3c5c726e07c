"""Benchmark: throughput of GP path sampling, exact (kernel + Cholesky) and through networks.

    python benchmarks/sampling.py [--quick]

Prints, for N points in dimension n: the seconds for the kernel matrix, for the Cholesky
factor and for the paths, and points/s = N * paths / total seconds; and for wide networks
(``sample_network_paths``) points/s = N * networks / seconds.
"""
import argparse
import time

import torch

from gpbound.sampling import sample_gp_paths, sample_network_paths


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=3072)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--paths", type=int, default=1000)
    ap.add_argument("--networks", type=int, default=64)
    ap.add_argument("--width", type=int, default=512)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.sizes, args.paths, args.networks, args.width = 48, [64, 128], 100, 8, 64
    from gpbound.kernels import Architecture, Dense, NNGPKernel, ReLU, serial
    arch = Architecture(serial(Dense(100), ReLU(), Dense(100), ReLU(), Dense(1)), input_shape=(args.n,))
    kernel = NNGPKernel(arch)
    kname = "NNGPKernel(dense 100-100-1 ReLU)"
    print(f"exact paths, kernel {kname}, n = {args.n}, {args.paths} paths; threads {torch.get_num_threads()}")
    print(f"{'N':>6} {'kernel s':>9} {'chol+paths s':>13} {'points/s':>12}")
    for N in args.sizes:
        X = torch.rand(N, args.n, generator=torch.Generator().manual_seed(N), dtype=torch.float64)
        t = time.perf_counter()
        K = kernel(X, X)
        K = (K.to_dense() if hasattr(K, "to_dense") else K).detach()
        tk = time.perf_counter() - t
        t = time.perf_counter()
        sample_gp_paths(K, X, args.paths, seed=0)
        ts = time.perf_counter() - t
        print(f"{N:6d} {tk:9.3f} {ts:13.3f} {N * args.paths / (tk + ts):12.4g}")
    print(f"network paths: {args.networks} networks of width {args.width}, n = {args.n}")
    print(f"{'N':>6} {'seconds':>9} {'points/s':>12}")
    for N in args.sizes:
        X = torch.rand(N, args.n, generator=torch.Generator().manual_seed(N), dtype=torch.float64)
        t = time.perf_counter()
        sample_network_paths(arch, X, args.networks, width=args.width, seed=0, chunk=16)
        dt = time.perf_counter() - t
        print(f"{N:6d} {dt:9.3f} {N * args.networks / dt:12.4g}")


if __name__ == "__main__":
    main()
