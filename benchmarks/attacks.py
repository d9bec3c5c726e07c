"""Benchmark: gpbound's default minimal-norm attacks vs foolbox 3.3.4 FMN, paired, boxed [0, 1].

Same random residual networks (the theory ResNet preset ``get_preset("resnet", s)`` at width
C = 16, float32, one network per ``--points`` points), same points ``x0 ~ U[0, 1]^n``, box
``[0, 1]``, for n = 3 s^2 (s = 12: n = 432; s = 32: n = 3072) and l1 / l2 / linf, on one thread
(``torch.set_num_threads(1)`` in both processes).  gpbound: ``minimal_distance(ens, x0, p,
bounds=(0, 1))`` with its default ensemble on a vmapped :class:`gpbound.ensemble.NetworkEnsemble`
(every returned point verified and bisected).  FMN: foolbox's ``L1FMNAttack`` /
``L2FMNAttack`` / ``LInfFMNAttack`` with foolbox's defaults (100 steps), one network at a
time (its ``--points`` points in one batch), on the networks traced with ``torch.jit.trace``
and run in a separate interpreter (the peer environment); its adversarials are re-checked
here (label flip under the same network evaluated alone), and their lp distance is taken
as returned (FMN does not bisect).

Per cell (size x norm): median of the paired ratios d_gpbound / d_FMN (points both found),
the fraction of points where gpbound <= FMN (a failure counts as distance inf; strict, and
within 0.1 %), failures of each, seconds per point and points per second of each.  Timings
on a shared machine swing: compare the two columns of one run, not runs.

Set-up of the peer environment (foolbox is a benchmark-only dependency, never installed by
``make test`` or setup.cfg), either with the peer-environment script of the workplace
(``FBENV=/path/fbenv bash setup_peer_envs.sh``) or with the copy here::

    FBENV=/tmp/fbenv bash benchmarks/setup_foolbox_env.sh
    python benchmarks/attacks.py --fbenv /tmp/fbenv [--sizes 12 32] [--networks 8] [--points 5] [--json out.json]
    python benchmarks/attacks.py --quick --fbenv /tmp/fbenv      # smoke run (s = 4, 2 x 3 points)
    python benchmarks/attacks.py --fbenv /tmp/fbenv --sizes 32 --loop   # networks looped, not vmapped
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

NORMS = {"l1": 1.0, "l2": 2.0, "linf": math.inf}
FB_ATTACKS = {"l1": "L1FMNAttack", "l2": "L2FMNAttack", "linf": "LInfFMNAttack"}


# ---------------------------------------------------------------- peer side (foolbox environment)
def run_peer(folder, norm, steps):
    """Run foolbox FMN on the traced networks of ``folder``; writes ``fmn_{norm}.pt``.  Imports no gpbound."""
    import foolbox as fb

    torch.set_num_threads(1)
    meta = torch.load(os.path.join(folder, "cell.pt"))
    x0, K, P = meta["x0"], meta["K"], meta["P"]
    advs, succ, seconds = [], [], 0.0
    for k in range(K):
        net = torch.jit.load(os.path.join(folder, f"net{k}.pt"))

        class Binary(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                y = self.inner(x).reshape(-1)
                return torch.stack([-y, y], -1)  # class 1 iff f > 0

        model = Binary(net).eval()
        fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0))
        x = x0[k * P:(k + 1) * P]
        with torch.no_grad():
            labels = (net(x).reshape(-1) > 0).long()
        attack = getattr(fb.attacks, FB_ATTACKS[norm])(steps=steps)
        t = time.perf_counter()
        _, clipped, success = attack(fmodel, x, labels, epsilons=None)
        seconds += time.perf_counter() - t
        advs.append(clipped.detach())
        succ.append(success.detach().reshape(-1))
    torch.save({"x_adv": torch.cat(advs), "success": torch.cat(succ), "seconds": seconds},
               os.path.join(folder, f"fmn_{norm}.pt"))


# ---------------------------------------------------------------- gpbound side
def build_cell(size, networks, points, seed, vectorize=True):
    from gpbound.ensemble import NetworkEnsemble
    from gpbound.kernels.presets import get_preset

    arch = get_preset("resnet", image_size=size)
    ens = NetworkEnsemble.from_architecture(arch, networks, width=16, seed=seed, points_per_network=points,
                                            dtype=torch.float32, vectorize=vectorize)
    for net in ens.networks:
        net.requires_grad_(False)
    x0 = torch.rand(networks * points, arch.n, generator=torch.Generator().manual_seed(seed + size))
    return ens, x0.float()


def alone(ens, x, P):
    """Each row evaluated by its own network, batch of one (no vmap)."""
    with torch.no_grad():
        return torch.stack([ens.networks[b // P](x[b:b + 1]).reshape(-1)[0] for b in range(x.shape[0])])


def summarize(d_gp, d_fmn, t_gp, t_fmn, B):
    both = torch.isfinite(d_gp) & torch.isfinite(d_fmn)
    ratio = d_gp[both] / d_fmn[both]
    le = (d_gp <= d_fmn) | (torch.isinf(d_gp) & torch.isinf(d_fmn))
    le_tol = (d_gp <= d_fmn * 1.001) | (torch.isinf(d_gp) & torch.isinf(d_fmn))
    return {"points": B, "median_ratio": float(ratio.median()) if both.any() else math.nan,
            "frac_gp_le_fmn": float(le.float().mean()), "frac_gp_le_fmn_0.1pct": float(le_tol.float().mean()),
            "worse_1pct": int((ratio > 1.01).sum()), "fail_gp": int(torch.isinf(d_gp).sum()),
            "fail_fmn": int(torch.isinf(d_fmn).sum()), "s_per_point_gp": t_gp / B, "s_per_point_fmn": t_fmn / B,
            "points_per_s_gp": B / t_gp, "points_per_s_fmn": B / t_fmn}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fbenv", default=os.environ.get("FBENV"), help="foolbox environment (default $FBENV)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[12, 32], help="image sizes s (n = 3 s^2)")
    ap.add_argument("--norms", nargs="+", default=list(NORMS), choices=list(NORMS))
    ap.add_argument("--networks", type=int, default=8)
    ap.add_argument("--points", type=int, default=5, help="points per network")
    ap.add_argument("--fmn-steps", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loop", action="store_true", help="gpbound's ensemble evaluates its networks one by "
                    "one (vectorize=False) instead of one vmapped call (measured 2x faster at n = 3072 on CPU)")
    ap.add_argument("--quick", action="store_true", help="smoke run: s = 4, 2 networks x 3 points")
    ap.add_argument("--fmn-cache", default=None, help="folder: reuse FMN results of an earlier run "
                    "(same sizes, networks, points, seed); its timings are then the earlier run's")
    ap.add_argument("--json", default=None, help="write the table as JSON to this file")
    ap.add_argument("--peer", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--peer-norm", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer:
        return run_peer(args.peer, args.peer_norm, args.fmn_steps)
    if not args.fbenv:
        ap.error("--fbenv (or $FBENV) must name the foolbox environment (see the module docstring)")
    if args.quick:
        args.sizes, args.networks, args.points = [4], 2, 3
    from gpbound.attacks import minimal_distance
    from gpbound.attacks.norms import lp_norm

    torch.set_num_threads(1)
    fb_python = os.path.join(args.fbenv, "bin", "python")
    rows = []
    print(f"gpbound default ensemble vs foolbox FMN ({args.fmn_steps} steps), resnet preset C = 16, float32, "
          f"box [0, 1], {args.networks} networks x {args.points} points, 1 thread, "
          f"ensemble {'looped' if args.loop else 'vmapped'}")
    hdr = (f"{'n':>5} {'norm':>5} {'med ratio':>9} {'gp<=FMN':>8} {'<=+0.1%':>8} {'>1% worse':>9} "
           f"{'fail gp':>7} {'fail FMN':>8} {'s/pt gp':>8} {'s/pt FMN':>8} {'pt/s gp':>8} {'pt/s FMN':>8}")
    print(hdr)
    for size in args.sizes:
        ens, x0 = build_cell(size, args.networks, args.points, args.seed, vectorize=not args.loop)
        B, P = x0.shape[0], args.points
        y0_alone = alone(ens, x0, P)
        with tempfile.TemporaryDirectory() as folder:
            for k, net in enumerate(ens.networks):
                torch.jit.save(torch.jit.trace(net, x0[k * P:(k + 1) * P]), os.path.join(folder, f"net{k}.pt"))
            torch.save({"x0": x0, "K": args.networks, "P": P}, os.path.join(folder, "cell.pt"))
            for norm in args.norms:
                p = NORMS[norm]
                cache = None if args.fmn_cache is None else os.path.join(
                    args.fmn_cache, f"fmn_s{size}_{norm}_K{args.networks}_P{P}_seed{args.seed}.pt")
                if cache is not None and os.path.exists(cache):
                    d_fmn, t_fmn = (lambda c: (c["d_fmn"], c["seconds"]))(torch.load(cache))
                else:
                    subprocess.run([fb_python, os.path.abspath(__file__), "--peer", folder, "--peer-norm", norm,
                                    "--fmn-steps", str(args.fmn_steps)], check=True)
                    fmn = torch.load(os.path.join(folder, f"fmn_{norm}.pt"))
                    xf = fmn["x_adv"].to(x0.dtype)
                    ok_f = fmn["success"].bool() & (alone(ens, xf, P) * y0_alone < 0)
                    d_fmn = torch.where(ok_f, lp_norm(xf - x0, p), torch.full((B,), math.inf))
                    t_fmn = fmn["seconds"]
                    if cache is not None:
                        torch.save({"d_fmn": d_fmn, "seconds": t_fmn}, cache)
                t = time.perf_counter()
                res = minimal_distance(ens, x0, p, bounds=(0.0, 1.0), generator=torch.Generator().manual_seed(0))
                t_gp = time.perf_counter() - t
                d_gp = torch.where(res.success, res.distance, torch.full_like(res.distance, math.inf)).float()
                row = {"n": x0.shape[1], "norm": norm, **summarize(d_gp, d_fmn, t_gp, t_fmn, B),
                       "d_gpbound": d_gp.tolist(), "d_fmn": d_fmn.tolist()}
                rows.append(row)
                print(f"{row['n']:>5} {norm:>5} {row['median_ratio']:9.4f} {row['frac_gp_le_fmn']:8.3f} "
                      f"{row['frac_gp_le_fmn_0.1pct']:8.3f} {row['worse_1pct']:>9d} {row['fail_gp']:>7d} "
                      f"{row['fail_fmn']:>8d} {row['s_per_point_gp']:8.3f} {row['s_per_point_fmn']:8.3f} "
                      f"{row['points_per_s_gp']:8.2f} {row['points_per_s_fmn']:8.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"networks": args.networks, "points_per_network": args.points, "fmn_steps": args.fmn_steps,
                       "threads": 1, "rows": rows}, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
