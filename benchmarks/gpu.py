"""Throughput of gpbound's tensor paths on one device (a GPU by default): kernels, attacks, GP paths.

Sections (each prints its work, seconds and throughput; ``--json`` writes them all):

* kernels  NNGP kernels (float64, sigma_w2 = 2, sigma_b2 = 0.1): dense ReLU depth 3 on X (2000, 3072),
           conv-ReLU-conv-ReLU-flatten on 256 images 32x32x3, conv-ReLU-avgpool2-conv-ReLU-flatten on
           64 images 16x16x3 (entries/s of the kernel matrix);
* attacks  ``gpbound.attacks.minimal_distance`` over a ``gpbound.ensemble.NetworkEnsemble`` of random
           residual networks (preset "resnet", width 16, float32), boxed to [0, 1], norms 2 and inf
           (attacked points/s);
* paths    ``gpbound.sampling.sample_gp_paths`` (exact Cholesky of the NNGP kernel) and
           ``sample_network_paths`` (random wide networks), paths/s.

``--device`` defaults to cuda when available, else cpu; ``--small`` shrinks every case to a smoke
test that runs on a CPU in about a minute (``python benchmarks/gpu.py --device cpu --small``).
Full sizes are meant for one H200 and finish well within 10 minutes there.

Usage: python benchmarks/gpu.py [--device DEV] [--small] [--only kernels,attacks,paths]
                                [--max-elements N] [--json PATH]
"""
import argparse
import json
import time

import torch

from gpbound.attacks import minimal_distance
from gpbound.ensemble import NetworkEnsemble
from gpbound.kernels import AvgPool, Architecture, Conv, Dense, Flatten, NNGPKernel, ReLU, serial
from gpbound.kernels.presets import get_preset
from gpbound.sampling import sample_gp_paths, sample_network_paths

SECTIONS = ("kernels", "attacks", "paths")


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeat=1, warmup=True):
    """Median seconds of ``repeat`` calls (after one warm-up call); returns (seconds, last result)."""
    if warmup:
        fn()
        _sync(device)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        _sync(device)
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2], out


def row(rows, section, work, seconds, amount, unit):
    rate = amount / seconds
    print(f"{section:<8s} {work:<60s} {seconds:9.3f} s {rate:12.4e} {unit}/s")
    rows.append({"section": section, "work": work, "seconds": seconds, "amount": amount, "unit": unit,
                 "per_second": rate})


def bench_kernels(rows, device, small, max_elements, repeat):
    cases = [
        ("dense ReLU depth 3", serial(Dense(1), ReLU(), Dense(1), ReLU(), Dense(1)),
         (768,) if small else (3072,), 200 if small else 2000),
        ("conv-ReLU-conv-ReLU-flatten", serial(Conv(1, 3), ReLU(), Conv(1, 3), ReLU(), Flatten(1)),
         (3, 8, 8) if small else (3, 32, 32), 32 if small else 256),
        ("conv-ReLU-avgpool2-conv-ReLU-flatten",
         serial(Conv(1, 3), ReLU(), AvgPool(2), Conv(1, 3), ReLU(), Flatten(1)),
         (3, 8, 8) if small else (3, 16, 16), 16 if small else 64),
    ]
    g = torch.Generator().manual_seed(0)
    for name, layers, shape, N in cases:
        arch = Architecture(layers, shape)
        X = torch.rand(N, arch.n, generator=g, dtype=torch.float64).to(device)
        t, K = timed(lambda: arch.kernel(X, sigma_w2=2.0, sigma_b2=0.1, max_elements=max_elements), device, repeat,
                     warmup=not small)
        if not bool(torch.isfinite(K).all()):
            raise RuntimeError(f"{name}: non-finite kernel on {device}")
        row(rows, "kernels", f"{name}, {N} x {shape}", t, N * N, "entries")


def bench_attacks(rows, device, small, steps):
    size = 8 if small else 16
    K, P = (2, 4) if small else (64, 16)
    arch = get_preset("resnet", image_size=size)
    ens = NetworkEnsemble.from_architecture(arch, K, width=16, seed=0, points_per_network=P,
                                            device=device, dtype=torch.float32)
    for net in ens.networks:
        net.requires_grad_(False)
    x0 = torch.rand(K * P, arch.n, generator=torch.Generator().manual_seed(1)).to(device)
    for norm in (2, "inf"):
        t, res = timed(lambda: minimal_distance(ens, x0, norm, steps=steps, bounds=(0.0, 1.0),
                                                generator=torch.Generator().manual_seed(2),  # attacks draw on the CPU
                                                device=device), device, warmup=not small)
        ok = int(res.success.sum())
        row(rows, "attacks", f"resnet {size}x{size}, {K} nets x {P} pts, l{norm}, {steps} steps "
            f"({ok}/{K * P} found)", t, K * P, "points")


def bench_paths(rows, device, small):
    arch = Architecture(serial(Conv(1, 3), ReLU(), AvgPool(2), Conv(1, 3), ReLU(), Flatten(1)),
                        (3, 8, 8) if small else (3, 16, 16))
    N = 32 if small else 1024
    X = torch.rand(N, arch.n, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(device)
    kern = NNGPKernel(arch, sigma_w2=2.0, sigma_b2=0.1)
    paths = 64 if small else 4096
    t, Z = timed(lambda: sample_gp_paths(kern, X, paths, seed=0, device=device), device, warmup=not small)
    row(rows, "paths", f"GP paths (exact Cholesky incl. kernel), {N} points", t, paths, "paths")
    nets = 4 if small else 256
    width = 16 if small else 128
    t, Z = timed(lambda: sample_network_paths(arch, X, nets, width=width, sigma_w2=2.0, sigma_b2=0.1, seed=0,
                                              device=device, chunk=min(nets, 32)), device, warmup=not small)
    row(rows, "paths", f"network paths, width {width}, {N} points", t, nets, "paths")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--small", action="store_true", help="smoke-test sizes (CPU, about a minute)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections from {', '.join(SECTIONS)}")
    p.add_argument("--max-elements", type=int, default=None,
                   help="largest state block of the kernel recursion (default 2^24 on cpu, 2^28 on a GPU)")
    p.add_argument("--steps", type=int, default=None, help="attack steps (default 100, --small 10)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    a = p.parse_args(argv)
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    if set(only) - set(SECTIONS):
        p.error(f"--only: unknown sections {sorted(set(only) - set(SECTIONS))}; allowed: {', '.join(SECTIONS)}")
    device = torch.device(a.device)
    me = a.max_elements or (2 ** 24 if device.type == "cpu" else 2 ** 28)
    steps = a.steps or (10 if a.small else 100)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"max_elements {me}, small={a.small}")
    rows = []
    t0 = time.perf_counter()
    if "kernels" in only:
        bench_kernels(rows, device, a.small, me, a.repeat)
    if "attacks" in only:
        bench_attacks(rows, device, a.small, steps)
    if "paths" in only:
        bench_paths(rows, device, a.small)
    total = time.perf_counter() - t0
    print(f"total {total:.1f} s")
    if a.json:
        from gpbound.report.checks import atomic_write_text
        atomic_write_text(a.json, json.dumps({"device": str(device), "device_name": name, "small": a.small,
                                              "total_s": total, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
