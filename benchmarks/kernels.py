"""Throughput of the NNGP kernels (gpbound.kernels) against this machine's floors and neural-tangents.

Cases (sigma_w2 = 2, sigma_b2 = 0.1 in every case, float64):
  dense   Dense-ReLU-Dense-ReLU-Dense, X (2000, 3072)
  conv    Conv3-ReLU-Conv3-ReLU-Flatten, 256 images 32x32x3 (diagonal pixels)
  pool    Conv3-ReLU-AvgPool2-Conv3-ReLU-Flatten, 64 images 16x16x3 (full pixels)
  pool32  the same, 32 images 32x32x3 (not in the default set: minutes on 2 cores)

For each case the same run measures the floor: (a) the GEMM of the input covariance (dense: the
Gram X X^T; spatial cases: the batched GEMM of all pixel pairs), (b) one elementwise pass over the
state per linear layer (dense, conv, pool; into a preallocated buffer: no page faults), (c) the
compiled order-1 arc-cosine (ReLU) map per ReLU layer; (b) and (c) are timed per entry on one block of
the recursion (``max_elements``) and charged at the size of the state each layer reads (the pooling
case: the first conv and ReLU on the full pixel covariance, the second on the diagonal of the pooled
grid), all scaled to the upper triangle of pairs.  It prints gpbound's time, the floor and their ratio
(and, where it differs, the looser floor that charges every layer at the input state's size).
``--compile`` switches on gpbound's compiled paths (``enable_compile``: the ReLU map, the full-pixel
conv stencil, and a circular stride-1 Conv followed by a ReLU as one fused kernel).  The spatial
cases also time the conv layer's map against :func:`gpbound.kernels.stencil.circular_conv_map` on one
block.

neural-tangents runs side by side when its peer environment exists (``--ntenv``, default ``$NTENV``;
built by ``bash shared/bench/setup_peer_envs.sh`` with NTENV set); otherwise the script prints
"neural-tangents: not installed".  Its kernel is also compared with gpbound's (max relative difference).

Usage: python benchmarks/kernels.py [--quick] [--compile] [--only dense,conv,pool,pool32]
                                    [--max-elements N] [--repeat R] [--threads T] [--json PATH]
                                    [--ntenv DIR] [--profile]
"""
import argparse
import json
import math
import os
import subprocess
import tempfile
import time

import numpy as np
import torch

from gpbound.kernels import AvgPool, Architecture, Conv, Dense, Flatten, ReLU, enable_compile, serial
from gpbound.kernels.state import input_state
from gpbound.kernels.stencil import circular_conv_map

SW2, SB2 = 2.0, 0.1
CASES = ("dense", "conv", "pool", "pool32")


def timeit(fn, repeat):
    fn()  # warm-up (and compilation)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def _relu_floor_fn(sa, sb, k, out):
    """The order-1 map ``F = s (sin theta + (pi - theta) c) / (2 pi)`` as one fused pass (compiled below)."""
    s = sa * sb
    c = torch.nan_to_num(k / s, nan=0.0, posinf=0.0, neginf=0.0).clamp(-1.0, 1.0)
    out.copy_(s * (torch.sqrt((1.0 - c) * (1.0 + c)) + (math.pi - torch.arccos(c)) * c) * (0.5 / math.pi))


_RELU_FLOOR = torch.compile(_relu_floor_fn, dynamic=False)


def case_spec(name, quick):
    """(architecture, X shape, description, floor layers).

    The floor layers are ``(kind, entries per pair)`` of every layer after the input covariance:
    ``"pass"`` (a linear layer: one elementwise pass over its input state) or ``"relu"`` (the compiled
    order-1 map over the state), each at the size of the state that layer reads (a full-pixel state
    ``P^2`` entries per pair, a diagonal one ``P``, a flat one 1; pooling shrinks the grid, and the
    state turns diagonal after the last pooling).
    """
    if name == "dense":
        N, n = (500, 768) if quick else (2000, 3072)
        arch = Architecture(serial(Dense(1), ReLU(), Dense(1), ReLU(), Dense(1)), (n,))
        return arch, (N, n), f"dense ReLU depth 3, X ({N}, {n})", [("relu", 1), ("pass", 1), ("relu", 1), ("pass", 1)]
    if name == "conv":
        B, s = (32, 16) if quick else (256, 32)
        arch = Architecture(serial(Conv(1, 3), ReLU(), Conv(1, 3), ReLU(), Flatten(1)), (3, s, s))
        P = s * s
        return (arch, (B, 3 * s * s), f"conv-ReLU-conv-ReLU-flatten, {B} imgs {s}x{s}x3",
                [("pass", P), ("relu", P), ("pass", P), ("relu", P)])
    if name in ("pool", "pool32"):
        B, s = ((16, 8) if quick else (64, 16)) if name == "pool" else ((8, 16) if quick else (32, 32))
        arch = Architecture(serial(Conv(1, 3), ReLU(), AvgPool(2), Conv(1, 3), ReLU(), Flatten(1)), (3, s, s))
        P = s * s
        # conv and ReLU on the full 16x16 (32x32) pixel covariance, the pooling reads it, then the second
        # conv and ReLU on the diagonal of the pooled grid (P / 4 entries per pair)
        return (arch, (B, 3 * s * s), f"conv-ReLU-avgpool2-conv-ReLU-flatten, {B} imgs {s}x{s}x3",
                [("pass", P * P), ("relu", P * P), ("pass", P * P), ("pass", P // 4), ("relu", P // 4)])
    raise ValueError(name)


def block_rows(arch, N, max_elements):
    """Rows per block of Architecture.kernel (the same rule) and the per-pair state size."""
    full = arch.full_pixels
    per_pair = arch.input_pixels ** 2 if full else arch.input_pixels
    b = max(1, int(math.isqrt(max(1, max_elements // per_pair))))
    return min(N, b), per_pair, full


def floors(arch, X, max_elements, repeat, layers):
    """Floor times (s) for the whole case: each part measured on one block and scaled to the entries of
    the upper triangle of pairs (``N (N + 1) / 2``) at each layer's own state size (``layers``, from
    :func:`case_spec`).  ``floor_input_size`` is the older, looser floor that charged every layer at
    the input state's size (the same on the dense and conv cases; larger on the pooling cases)."""
    N = X.shape[0]
    b, per_pair, full = block_rows(arch, N, max_elements)
    pairs = N * (N + 1) // 2 if b < N else N * N  # the recursion computes the upper triangle of pairs
    out = {}
    if len(arch.input_shape) == 1:
        out["gemm"] = timeit(lambda: X @ X.T, repeat)
        blk = (N, N)
    else:
        C, P = arch.input_shape[0], arch.input_pixels
        xb = X[:b].reshape(b, C, P)
        if full:
            A = xb.transpose(-1, -2).unsqueeze(1)  # (b, 1, P, C) @ (1, b, C, P)
            Bm = xb.unsqueeze(0)
            out["gemm"] = timeit(lambda: torch.matmul(A, Bm), repeat) * pairs / (b * b)
            blk = (b, b, P, P)
        else:
            # per pixel: (P, b, C) @ (P, C, b)
            A = xb.permute(2, 0, 1).contiguous()
            Bm = xb.permute(2, 1, 0).contiguous()
            out["gemm"] = timeit(lambda: torch.bmm(A, Bm), repeat) * pairs / (b * b)
            blk = (b, b, P)
    k = torch.rand(blk, dtype=X.dtype) + 0.5
    buf = torch.empty_like(k)
    per_entry = {  # seconds per entry of one pass / one compiled ReLU map, measured on one block
        "pass": timeit(lambda: torch.add(k, 1.0, out=buf), repeat) / k.numel(),
        "fresh_pass": timeit(lambda: k * 1.0, repeat) / k.numel(),  # with a fresh allocation
    }
    sa = torch.ones((1,) * k.dim(), dtype=X.dtype)
    per_entry["relu"] = timeit(lambda: _RELU_FLOOR(sa, sa, k, buf), repeat) / k.numel()
    entries = {kind: pairs * sum(e for kd, e in layers if kd == kind) for kind in ("pass", "relu")}
    out["pass"] = per_entry["pass"] * entries["pass"]
    out["fresh_pass"] = per_entry["fresh_pass"] * entries["pass"]
    out["relu_compiled"] = per_entry["relu"] * entries["relu"]
    out["floor"] = out["gemm"] + out["pass"] + out["relu_compiled"]
    n_pass = sum(1 for kd, _ in layers if kd == "pass")
    n_relu = sum(1 for kd, _ in layers if kd == "relu")
    out["floor_input_size"] = out["gemm"] + pairs * per_pair * (n_pass * per_entry["pass"] + n_relu * per_entry["relu"])
    out["block_entries"] = int(k.numel())
    out["computed_entries"] = int(pairs * per_pair)
    return out


def stencil_rows(arch, X, max_elements, repeat):
    """Time of the conv layer's map vs circular_conv_map on one block state (same run)."""
    N = X.shape[0]
    b, _, full = block_rows(arch, N, max_elements)
    st = input_state(X[:b], X[:b], arch.input_shape, full, False)
    conv = Conv(1, 3)
    t_layer = timeit(lambda: conv._kernel(st, SW2, SB2, False), repeat)
    grid = st.grid
    t_st = timeit(lambda: (circular_conv_map(st.cross, grid, (3,) * len(grid), SW2, SB2, full),
                           circular_conv_map(st.var1, grid, (3,) * len(grid), SW2, SB2, full),
                           circular_conv_map(st.var2, grid, (3,) * len(grid), SW2, SB2, full)), repeat)
    ref = conv._kernel(st, SW2, SB2, False).cross
    new = circular_conv_map(st.cross, grid, (3,) * len(grid), SW2, SB2, full)
    err = float(((ref - new).abs().max() / ref.abs().max()).item())
    return {"conv_layer_map_s": t_layer, "stencil_s": t_st, "stencil_speedup": t_layer / t_st,
            "stencil_max_rel_diff": err, "block_state_entries": int(st.cross.numel())}


# ---------------------------------------------------------------------------------------- neural-tangents
NT_SCRIPT = r"""
import json, sys, time
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from neural_tangents import stax
import neural_tangents as nt
case, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = np.load(path + ".x.npy")
meta = json.load(open(path + ".json"))
W, b = meta["sw"], meta["sb"]
if case == "dense":
    layers = [stax.Dense(1, W, b), stax.Relu(), stax.Dense(1, W, b), stax.Relu(), stax.Dense(1, W, b)]
    Xn = X
else:
    C, s = meta["shape"][0], meta["shape"][1]
    Xn = X.reshape(X.shape[0], C, s, s).transpose(0, 2, 3, 1)  # NHWC
    conv = lambda: stax.Conv(1, (3, 3), padding="CIRCULAR", W_std=W, b_std=b)
    layers = [conv(), stax.Relu()]
    if case.startswith("pool"):
        layers += [stax.AvgPool((2, 2), strides=(2, 2))]
    layers += [conv(), stax.Relu(), stax.Flatten(), stax.Dense(1, W, b)]
_, _, kfn = stax.serial(*layers)
bs = meta["nt_batch"]
fn = nt.batch(kfn, batch_size=bs, store_on_device=False) if bs else jax.jit(kfn, static_argnames="get")
run = lambda: np.asarray(fn(Xn, None, "nngp"))
K = run()
ts = []
for _ in range(repeat):
    t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)
np.save(path + ".k.npy", K)
print(json.dumps({"nt_s": sorted(ts)[len(ts) // 2]}))
"""


def run_nt(ntenv, case, arch, X, repeat, K):
    py = os.path.join(ntenv, "bin", "python")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "case")
        np.save(path + ".x.npy", X.numpy())
        shape = list(arch.input_shape)
        nt_batch = {"dense": 0, "conv": 64, "pool": 16, "pool32": 8}[case]
        if X.shape[0] % max(1, nt_batch):
            nt_batch = 0
        json.dump({"sw": math.sqrt(SW2), "sb": math.sqrt(SB2), "shape": shape, "nt_batch": nt_batch},
                  open(path + ".json", "w"))
        r = subprocess.run([py, "-c", NT_SCRIPT, case, path, str(repeat)], capture_output=True, text=True)
        if r.returncode != 0:
            return {"nt_error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"rc {r.returncode}"}
        res = json.loads(r.stdout.strip().splitlines()[-1])
        Knt = torch.from_numpy(np.load(path + ".k.npy")).to(K.dtype).reshape(K.shape)
        res["nt_max_rel_diff"] = float(((Knt - K).abs().max() / K.abs().max()).item())
        return res


def profile_block(arch, X, max_elements, top=12):
    """torch.profiler table (self CPU time) of one block of the recursion."""
    b, _, _ = block_rows(arch, X.shape[0], max_elements)
    xb = X[:b]
    arch.kernel(xb, sigma_w2=SW2, sigma_b2=SB2, max_elements=max_elements)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        arch.kernel(xb, sigma_w2=SW2, sigma_b2=SB2, max_elements=max_elements)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--compile", action="store_true", help="gpbound's compiled paths (enable_compile)")
    p.add_argument("--max-elements", type=int, default=2 ** 24)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--only", default="dense,conv,pool", help=f"comma-separated cases from {', '.join(CASES)}")
    p.add_argument("--json", default=None, help="write the results to this JSON file ('-': stdout)")
    p.add_argument("--ntenv", default=os.environ.get("NTENV"), help="neural-tangents peer environment")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler table of one block per case")
    a = p.parse_args(argv)
    only = [x.strip() for x in a.only.split(",") if x.strip()]
    unknown = set(only) - set(CASES)
    if unknown:
        p.error(f"--only: unknown cases {sorted(unknown)}; allowed: {', '.join(CASES)}")
    if a.threads:
        torch.set_num_threads(a.threads)
    enable_compile(a.compile)
    have_nt = bool(a.ntenv) and os.path.exists(os.path.join(a.ntenv, "bin", "python"))
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(), "compile": a.compile,
            "max_elements": a.max_elements, "sigma_w2": SW2, "sigma_b2": SB2, "load_avg": os.getloadavg()}
    print(", ".join(f"{k}={v}" for k, v in info.items()))
    if not have_nt:
        print("neural-tangents: not installed")
    results = []
    for case in only:
        arch, (N, n), desc, layers = case_spec(case, a.quick)
        torch.manual_seed(0)
        X = torch.rand(N, n, dtype=torch.float64)
        K = arch.kernel(X, sigma_w2=SW2, sigma_b2=SB2, max_elements=a.max_elements)
        t = timeit(lambda: arch.kernel(X, sigma_w2=SW2, sigma_b2=SB2, max_elements=a.max_elements), a.repeat)
        r = {"case": case, "work": desc, "gpbound_s": t}
        r.update(floors(arch, X, a.max_elements, a.repeat, layers))
        r["ratio_to_floor"] = t / r["floor"]
        if case != "dense":
            r.update(stencil_rows(arch, X, a.max_elements, a.repeat))
        if have_nt:
            r.update(run_nt(a.ntenv, case, arch, X, a.repeat, K))
            if "nt_s" in r:
                r["nt_over_gpbound"] = r["nt_s"] / t
        results.append(r)
        print(f"\n{desc}")
        print(f"  gpbound {t:8.3f} s | floor {r['floor']:8.3f} s (GEMM {r['gemm']:.3f} + passes {r['pass']:.3f} "
              f"+ compiled ReLU maps {r['relu_compiled']:.3f}; fresh-allocation passes {r['fresh_pass']:.3f}) | "
              f"gpbound / floor {r['ratio_to_floor']:.2f}x")
        if abs(r["floor_input_size"] - r["floor"]) > 1e-9 * r["floor"]:
            print(f"  (floor charging every layer at the input state's size: {r['floor_input_size']:.3f} s, "
                  f"ratio {t / r['floor_input_size']:.2f}x)")
        if "stencil_s" in r:
            print(f"  one block ({r['block_state_entries']:,d} entries): conv layer map {r['conv_layer_map_s']:.3f} s, "
                  f"stencil {r['stencil_s']:.3f} s ({r['stencil_speedup']:.2f}x, max rel diff "
                  f"{r['stencil_max_rel_diff']:.1e})")
        if "nt_s" in r:
            print(f"  neural-tangents {r['nt_s']:8.3f} s | NT / gpbound {r['nt_over_gpbound']:.2f}x | "
                  f"max rel diff {r['nt_max_rel_diff']:.1e}")
        elif "nt_error" in r:
            print(f"  neural-tangents failed: {r['nt_error']}")
        if a.profile:
            print(profile_block(arch, X, a.max_elements))
    print(f"\n{'case':<8s} {'gpbound s':>10s} {'floor s':>9s} {'ratio':>7s} {'NT s':>9s} {'NT/gpb':>7s}")
    for r in results:
        nt_s = f"{r['nt_s']:9.3f}" if "nt_s" in r else f"{'-':>9s}"
        nt_r = f"{r['nt_over_gpbound']:7.2f}" if "nt_s" in r else f"{'-':>7s}"
        print(f"{r['case']:<8s} {r['gpbound_s']:10.3f} {r['floor']:9.3f} {r['ratio_to_floor']:7.2f} {nt_s} {nt_r}")
    if a.json:
        doc = json.dumps({"info": info, "results": results}, indent=1)
        if a.json == "-":
            print(doc)
        else:
            from gpbound.report.checks import atomic_write_text
            atomic_write_text(a.json, doc)
    return results


if __name__ == "__main__":
    main()
