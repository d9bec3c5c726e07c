"""Throughput and scaling of the NNGP kernels (gpbound.kernels).

Prints entries/s for
  * dense ReLU depth 3 (Dense-ReLU-Dense-ReLU-Dense) on X (2000, 3072) vs the bare float64 Gram X @ X.T,
  * conv without pooling, 256 images 32x32x3 (diagonal-pixel path),
  * conv with average pooling, 64 images 16x16x3 (full-pixel path, chunked),
and scaling with batch, pixels and depth.  ``--quick`` runs small sizes; ``--compile`` switches on
torch.compile of the elementwise ReLU map (off by default; compilation costs seconds).

``--only dense,conv,pool,scaling`` runs a subset of the sections.

Usage: python benchmarks/kernels.py [--quick] [--compile] [--max-elements N] [--repeat R] [--threads T]
                                    [--only SECTIONS]
"""
import argparse
import time

import torch

from gpbound.kernels import AvgPool, Architecture, Conv, Dense, Flatten, ReLU, enable_compile, serial


def timeit(fn, repeat):
    fn()  # warm-up (and compilation)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def row(name, n_entries, t, extra=""):
    print(f"{name:<52s} {n_entries:>12,d} {t:>9.3f} s {n_entries / t:>12.3e} {extra}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--compile", action="store_true", help="torch.compile the elementwise ReLU map")
    p.add_argument("--max-elements", type=int, default=2 ** 24)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--only", default="dense,conv,pool,scaling",
                   help="comma-separated sections to run: dense, conv, pool, scaling (default: all)")
    a = p.parse_args(argv)
    only = {x.strip() for x in a.only.split(",") if x.strip()}
    unknown = only - {"dense", "conv", "pool", "scaling"}
    if unknown:
        p.error(f"--only: unknown sections {sorted(unknown)}; allowed: dense, conv, pool, scaling")
    if a.threads:
        torch.set_num_threads(a.threads)
    enable_compile(a.compile)
    torch.manual_seed(0)
    q = a.quick
    dt = torch.float64
    me = a.max_elements
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, compile={a.compile}, "
          f"max_elements={me}")
    print(f"{'work':<52s} {'entries':>12s} {'time':>11s} {'entries/s':>12s}")

    # sections: 1. dense ReLU depth 3 vs the Gram matrix, 2. conv (diagonal pixels), 3. conv +
    # pooling (full pixels), 4. scaling
    if "dense" in only:
        bench_dense(a, q, dt, me)
    if "conv" in only:
        bench_conv(a, q, dt, me)
    if "pool" in only:
        bench_pool(a, q, dt, me)
    if "scaling" in only:
        bench_scaling(a, q, dt, me)


def bench_dense(a, q, dt, me):
    """Dense ReLU depth 3 vs the bare Gram matrix."""
    N, n = (500, 768) if q else (2000, 3072)
    X = torch.rand(N, n, dtype=dt)
    dense = Architecture(serial(Dense(1), ReLU(), Dense(1), ReLU(), Dense(1)), (n,))
    tg = timeit(lambda: X @ X.T, a.repeat)
    td = timeit(lambda: dense.kernel(X, max_elements=me), a.repeat)
    row(f"Gram X @ X.T, X ({N}, {n})", N * N, tg)
    row("dense ReLU depth 3 (Dense-ReLU-Dense-ReLU-Dense)", N * N, td, f"ratio to Gram {td / tg:.2f}x")



def bench_conv(a, q, dt, me):
    """Conv without pooling (diagonal pixel path)."""
    B, s = (32, 16) if q else (256, 32)
    Xc = torch.rand(B, 3 * s * s, dtype=dt)
    conv = Architecture(serial(Conv(1, 3), ReLU(), Conv(1, 3), ReLU(), Flatten(1)), (3, s, s))
    t = timeit(lambda: conv.kernel(Xc, max_elements=me), 1)
    row(f"conv-ReLU-conv-ReLU-flatten, {B} imgs {s}x{s}x3", B * B, t, f"pixel entries/s {B * B * s * s / t:.3e}")



def bench_pool(a, q, dt, me):
    """Conv with pooling (full pixel path)."""
    B, s = (16, 8) if q else (64, 16)
    Xp = torch.rand(B, 3 * s * s, dtype=dt)
    pool = Architecture(serial(Conv(1, 3), ReLU(), AvgPool(2), Conv(1, 3), ReLU(), Flatten(1)), (3, s, s))
    t = timeit(lambda: pool.kernel(Xp, max_elements=me), 1)
    row(f"conv-ReLU-avgpool2-conv-ReLU-flatten, {B} imgs {s}x{s}x3", B * B, t,
        f"pixel-pair entries/s {B * B * s ** 4 / t:.3e}")



def bench_scaling(a, q, dt, me):
    """Scaling with batch, pixels and depth."""
    print("\nscaling (dense ReLU net; conv no-pool net)")
    for N in ([250, 500] if q else [500, 1000, 2000]):
        Xs = torch.rand(N, 768, dtype=dt)
        arch = Architecture(serial(Dense(1), ReLU(), Dense(1), ReLU(), Dense(1)), (768,))
        t = timeit(lambda: arch.kernel(Xs, max_elements=me), 1)
        row(f"  batch N={N} (dense, n=768)", N * N, t)
    for s in ([8, 16] if q else [8, 16, 32]):
        Xs = torch.rand(64, 3 * s * s, dtype=dt)
        arch = Architecture(serial(Conv(1, 3), ReLU(), Conv(1, 3), ReLU(), Flatten(1)), (3, s, s))
        t = timeit(lambda: arch.kernel(Xs, max_elements=me), 1)
        row(f"  pixels {s}x{s} (conv, 64 imgs)", 64 * 64, t, f"{t / (s * s) * 1e3:.3f} ms/pixel")
    for depth in ([1, 4] if q else [1, 2, 4, 8]):
        layers = []
        for _ in range(depth):
            layers += [Conv(1, 3), ReLU()]
        arch = Architecture(serial(*layers, Flatten(1)), (3, 16, 16))
        Xs = torch.rand(64, 768, dtype=dt)
        t = timeit(lambda: arch.kernel(Xs, max_elements=me), 1)
        row(f"  depth {depth} (conv 16x16, 64 imgs)", 64 * 64, t)


if __name__ == "__main__":
    main()
