"""``gpbound radius``: certified radii of Corollary 1 (comparison, Dudley, instance)."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Dict, Sequence

from ._common import (GUARANTEE, HelpFormatter, UserError, _arch_facts, _float_in, _int_at_least, _norm_p, _p_key,
                      _x0_from_args, examples_text, load_architecture, presets_text, wrap)



def _radius_block(arch, x0_t, x0_norm, delta, n, M, ps, entropy, method):
    """Radii of one method at one delta: l1 ball, segment, l_p and relative l_p (Corollary 1, Remark 5)."""
    from gpbound import radii

    res = radii.corollary1(arch, x0_norm, delta, entropy=entropy, method=method)
    lp, rel = {}, {}
    for p in ps:
        k = _p_key(p)
        if x0_t is not None:
            lp[k] = float(radii.lp_radius(p, x0_t, delta, M, entropy=entropy, method=method))
            rel[k] = float(radii.relative_lp_radius(p, x0_t, delta, M, entropy=entropy, method=method))
        else:
            lp[k] = float(radii.lp_radius(p, x0_norm, delta, M, n=n, entropy=entropy, method=method))
            rel[k] = (float(radii.relative_lp_radius(p, x0_norm, delta, M, n=n, x0_norm_p=x0_norm, entropy=entropy,
                                                     method=method)) if k == "2" else None)
    return {"l1": float(res.l1), "l2": float(res.l2), "linf": float(res.linf), "segment": float(res.segment),
            "lp": lp, "relative": rel, "formulas": res.methods}


def radius_report(arch, deltas: Sequence[float], *, x0=None, x0_norm=None, entropy="numeric",
                  ps: Sequence[float] = (1.0, 2.0, math.inf), instance: bool = False, sigma_w2: float = 2.0,
                  sigma_b2: float = 0.0) -> Dict[str, Any]:
    """Certified radii of ``arch`` at ``x0`` for each ``delta``, by both methods (one code path: :func:`gpbound.radii.corollary1`).

    Parameters
    ----------
    arch : Architecture
    deltas : sequence of float in (0, 1)
    x0 : array of n floats, optional
        The input; its norms give the relative radii.
    x0_norm : float, optional
        Only ``||x0||_2`` (then relative radii are given for p = 2 only).
    entropy : {"numeric", "closed", "paper", "maurey"}
        Entropy integral of the Dudley route.
    ps : sequence of p >= 1 (``math.inf`` allowed)
    instance : bool
        Also the instance-specific comparison radii (needs ``x0`` and an analytic kernel).
    sigma_w2, sigma_b2 : float
        Variances of the random network (``instance`` only).

    Returns
    -------
    dict
        ``{"architecture", "x0", "entropy", "guarantee", "radii": [...]}``; each entry of ``radii``
        has ``delta``, ``comparison`` and ``dudley`` (each with ``l1``, ``l2``, ``linf``, ``segment``,
        ``lp``, ``relative`` and the ``formulas`` used), ``instance`` (or None) and ``paper`` (the
        printed eq. 16 / eq. 18 radii).
    """
    import numpy as np
    import torch

    from gpbound.covering import entropy_integral
    from gpbound import radii

    facts = _arch_facts(arch)
    n, M = facts["n"], facts["M"]
    x0_t = None
    if x0 is not None:
        x0_t = torch.as_tensor(np.asarray(x0, dtype=np.float64).reshape(-1))
        x0_norm = float(torch.linalg.norm(x0_t))
    if x0_norm is None:
        raise UserError("give x0 or x0_norm")
    if instance and x0_t is None:
        raise UserError("--instance needs the input itself (--x0 FILE or --random-input SEED), not only --x0-norm")
    norms = {}
    if x0_t is not None:
        norms = {_p_key(p): float(torch.linalg.vector_norm(x0_t, ord=p)) for p in ps}
    norms["2"] = float(x0_norm)
    out_radii = []
    for delta in deltas:
        entry = {"delta": float(delta)}
        for method in radii.METHODS:
            entry[method] = _radius_block(arch, x0_t, x0_norm, delta, n, M, ps, entropy, method)
        entry["instance"] = None
        if instance:
            res = radii.corollary1(arch, x0_t, delta, instance=True, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
            entry["instance"] = {"l1": float(res.l1), "l2": float(res.l2), "linf": float(res.linf),
                                 "segment": float(res.segment), "sqrt_k00": float(res.sqrt_k00), "L": float(res.L),
                                 "sigma_w2": float(sigma_w2), "sigma_b2": float(sigma_b2)}
        entry["paper"] = {"l1_eq16": float(radii.l1_ball_radius_eq10(x0_norm, delta, n, M)),
                          "segment_eq18": float(radii.segment_radius(x0_norm, delta, M, form="eq12"))}
        out_radii.append(entry)
    return {
        "architecture": facts,
        "x0": {"norm_l2": float(x0_norm), "norms": norms},
        "entropy": {"method": entropy, "value": float(entropy_integral(n, method=entropy))},
        "guarantee": GUARANTEE,
        "radii": out_radii,
    }


def _print_radius_text(rep: Dict[str, Any], arch_label: str, x0_desc: str, out=sys.stdout):
    a = rep["architecture"]
    print(f"architecture: {arch_label}", file=out)
    print(f"  n = {a['n']}   |I0| = {a['input_pixels']}   |I_Lf| = {a['flatten_pixels']}   "
          f"M = sqrt(|I0|/|I_Lf|) = {a['M']:.6g}   (Theorem 2)", file=out)
    print(f"x0: {x0_desc}   ||x0||_2 = {rep['x0']['norm_l2']:.6g}", file=out)
    e = rep["entropy"]
    print(f"entropy integral of the Dudley route ({e['method']}): {e['value']:.6g}", file=out)
    ps = list(rep["radii"][0]["comparison"]["lp"]) if rep["radii"] else []
    head = ["delta", "method", "l1 ball", "segment"] + [f"l{p}" for p in ps] + [f"rel l{p}" for p in ps]
    print("  ".join(f"{h:>12s}" for h in head), file=out)
    for r in rep["radii"]:
        for method in ("comparison", "dudley"):
            b = r[method]
            cells = [b["l1"], b["segment"]] + [b["lp"][p] for p in ps] + [b["relative"][p] for p in ps]
            print(f"{r['delta']:12.6g}  {method:>12s}  " +
                  "  ".join(f"{'-':>12s}" if c is None else f"{c:12.6g}" for c in cells), file=out)
        if r.get("instance"):
            i = r["instance"]
            print(f"{r['delta']:12.6g}  {'instance':>12s}  {i['l1']:12.6g}  {i['segment']:12.6g}   "
                  f"(l2 {i['l2']:.6g}, linf {i['linf']:.6g}; sqrt K(x0,x0) = {i['sqrt_k00']:.6g}, L = {i['L']:.6g}, "
                  f"sigma_w2 = {i['sigma_w2']:g}, sigma_b2 = {i['sigma_b2']:g})", file=out)
    print(f"meaning: {rep['guarantee']}.", file=out)
    print("comparison (default) = Sudakov-Fernique radii, r = ||x0|| delta / (M (sqrt(2/pi) E sup_U <g,h> + s_U (1 + "
          "delta))); dudley = the paper's route: l1 ball eq. 39-40 (Corollary 1, eq. 16), segment Theorem 1 II "
          "(derived form), l_p = r_1 / n^(1-1/p) (Remark 5); rel = l_p / ||x0||_p; instance = comparison radius "
          "with the exact sqrt K(x0,x0) and the layer-wise Lipschitz constant L (depends on the variances). "
          "docs/theory.md has the proofs.", file=out)


def run(args) -> int:
    arch, label = load_architecture(args.arch, args.image_size)
    x0, x0_norm, desc = _x0_from_args(args, int(arch.n))
    ps = args.p or [1.0, 2.0, math.inf]
    rep = radius_report(arch, args.delta, x0=x0, x0_norm=x0_norm, entropy=args.entropy, ps=ps,
                        instance=args.instance, sigma_w2=args.sigma_w2, sigma_b2=args.sigma_b2)
    rep["architecture"]["label"] = label
    rep["x0"]["source"] = desc
    if args.json:
        from gpbound.report.checks import to_jsonable

        print(json.dumps(to_jsonable(rep), indent=1))
    else:
        _print_radius_text(rep, label, desc)
    return 0


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    r = sub.add_parser(
        "radius", help="certified radii of Corollary 1 (l1 ball, segment, l_p): comparison and Dudley",
        formatter_class=HelpFormatter,
        description=wrap("Certified radii of a random network at x0, by the comparison (Sudakov-Fernique, default) "
                         "and the Dudley (the paper's) routes, for the l1 ball, the segment and l_p balls (Remark 5).",
                         "meaning: " + GUARANTEE + ". delta is the failure probability the certificate allows.")
                    + "\n\n" + presets_text(),
        epilog=examples_text(
            "gpbound radius --arch resnet --image-size 16 --delta 0.01 0.1 0.5 --random-input 0",
            "gpbound radius --arch resnet --delta 0.1 --random-input 0 --instance --sigma-b2 0.1",
            "gpbound radius --arch docs/examples/small_cnn.yaml --delta 0.05 --x0-norm 10 --json",
            "gpbound radius --arch dense --image-size 8 --delta 0.1 --x0 x0.npy --p 1 2 4 inf"))
    arch_args(r)
    r.add_argument("--delta", type=delta_t, nargs="+", required=True, help="failure probabilities in (0, 1)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--x0-norm", type=_float_in("--x0-norm", 0.0, None), metavar="V",
                   help="||x0||_2 only (the radii depend on x0 through it; relative radii for p = 2 only)")
    g.add_argument("--x0", metavar="FILE.npy", help="the input x0 (n entries, (C, H, W) order)")
    g.add_argument("--random-input", type=_int_at_least("--random-input", 0), metavar="SEED",
                   help="x0 with uniform [0, 1] pixels drawn with this seed")
    r.add_argument("--p", type=_norm_p, nargs="+", default=None,
                   help="l_p norms for Remark 5, numbers >= 1 or inf (default: 1 2 inf)")
    r.add_argument("--instance", action="store_true",
                   help="also the instance-specific radii (exact sqrt K(x0,x0), layer-wise Lipschitz L; needs x0)")
    r.add_argument("--sigma-w2", type=_float_in("--sigma-w2", 0.0, None), default=2.0,
                   help="weight variance of the random network (--instance only)")
    r.add_argument("--sigma-b2", type=_float_in("--sigma-b2", 0.0, None, lo_open=False), default=0.0,
                   help="bias variance (--instance only)")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=run)
    return r
