"""Command line of gpbound: ``gpbound radius | verify | reproduce | report | certify``.

Examples
--------
::

    gpbound radius --arch resnet --image-size 16 --delta 0.01 0.1 --random-input 0
    gpbound radius --arch docs/examples/small_cnn.yaml --delta 0.05 --x0-norm 10 --json
    gpbound verify --arch resnet --image-size 8 --delta 0.1 --num-networks 200 --seed 0
    gpbound reproduce fig1 --out results/fig1 --quick
    gpbound report --out docs/report
    gpbound certify --demo digits --out certify.png

User mistakes (bad values, missing or malformed files, unknown presets, ``delta`` outside
(0, 1): argument parsing, :class:`UserError`, file errors) end with one line
``gpbound: error: ...`` on stderr and exit code 2, without a traceback. Any other exception
is a bug and propagates with its traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["main", "build_parser", "load_architecture", "radius_report", "UserError"]

EXIT_USAGE = 2


class UserError(ValueError):
    """A mistake of the user: reported as one line, exit code 2.

    A subclass of ValueError, so that library callers of :func:`radius_report` and
    :func:`load_architecture` may catch ValueError; but :func:`main` treats *only* UserError
    (and argument parsing, file errors, a locked results folder) as a one-line user error:
    any other exception is a bug and propagates with its traceback.
    """


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line ``gpbound: error: ...`` (exit code 2)."""

    def error(self, message):  # noqa: D401 - argparse API
        hint = f" (see '{self.prog} --help')"
        self.exit(EXIT_USAGE, f"gpbound: error: {message}{hint}\n")


# --------------------------------------------------------------------------- argument types
def _float_in(name, lo=None, hi=None, lo_open=True, hi_open=True):
    def conv(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}")
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{name} must be finite, got {text!r}")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(_range_msg(name, v, lo, hi, lo_open, hi_open))
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise argparse.ArgumentTypeError(_range_msg(name, v, lo, hi, lo_open, hi_open))
        return v

    return conv


def _range_msg(name, v, lo, hi, lo_open, hi_open):
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{name} must be in {left}{lo_s}, {hi_s}{right}, got {v:g}"


def _int_at_least(name, minimum):
    def conv(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be an integer >= {minimum}, got {v}")
        return v

    return conv


def _norm_p(text):
    """``--p``: command-line text is read as a number when it is one, else as a norm name
    (:func:`gpbound.validation.norm_p`)."""
    from gpbound.validation import norm_p

    t = str(text).strip()
    try:
        value = float(t)
    except ValueError:
        value = t
    try:
        return norm_p(value, "p")
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _p_key(p: float) -> str:
    return "inf" if math.isinf(p) else (str(int(p)) if float(p).is_integer() else f"{p:g}")


# --------------------------------------------------------------------------- architectures
def _presets():
    from gpbound.kernels import presets

    return presets, sorted(presets.PRESETS)


def load_architecture(spec: str, image_size: Optional[int] = None):
    """Architecture from a preset name or a JSON/YAML file of ``Architecture.to_dict()`` form.

    Parameters
    ----------
    spec : str
        Preset name (``gpbound.kernels.presets.PRESETS``) or path of a ``.json``,
        ``.yaml`` or ``.yml`` file.
    image_size : int, optional
        Image side for presets; a file fixes its own ``input_shape``.

    Returns
    -------
    (Architecture, str)
        The architecture and a label for it.

    Raises
    ------
    UserError
        Unknown preset, missing or malformed file.
    """
    path = Path(spec)
    looks_like_file = path.suffix.lower() in (".json", ".yaml", ".yml") or path.exists() or "/" in spec
    if looks_like_file:
        if not path.is_file():
            raise UserError(f"architecture file not found: {spec!r}")
        if image_size is not None:
            raise UserError("--image-size applies to presets only; an architecture file fixes its input_shape")
        import yaml

        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:  # UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"cannot parse architecture file {spec!r}: {first}")
        if not isinstance(data, dict):
            raise UserError(f"architecture file {spec!r} must hold a mapping (Architecture.to_dict() form)")
        from gpbound.kernels import Architecture

        try:
            arch = Architecture.from_dict(data)
        except (KeyError, ValueError, TypeError) as exc:
            raise UserError(f"invalid architecture file {spec!r}: {_exc_text(exc)}")
        return arch, str(path)
    presets, names = _presets()
    if spec not in names:
        raise UserError(f"unknown preset {spec!r} (presets: {', '.join(names)}; or give a .json/.yaml file)")
    kwargs = {}
    if image_size is not None:
        from gpbound.validation import positive_int

        try:
            kwargs["image_size"] = positive_int(image_size, "--image-size")
        except (ValueError, TypeError) as exc:
            raise UserError(str(exc)) from exc
    try:
        arch = presets.get_preset(spec, **kwargs)
    except ValueError as exc:  # the preset rejects the user's image size (e.g. not divisible by 4)
        raise UserError(f"preset {spec!r} with --image-size {image_size}: {exc}") from exc
    label = spec if image_size is None else f"{spec} (image size {image_size})"
    return arch, label


def _exc_text(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _arch_facts(arch) -> Dict[str, Any]:
    M = _theorem_M(arch)
    return {
        "n": int(arch.n),
        "input_pixels": int(arch.input_pixels),
        "flatten_pixels": int(arch.flatten_pixels),
        "M": float(M),
        "input_shape": list(getattr(arch, "input_shape", ()) or ()),
    }


def _theorem_M(arch) -> float:
    from gpbound.constants import theorem2_M

    return float(theorem2_M(arch))


# --------------------------------------------------------------------------- x0
def _x0_from_args(args, n: int):
    """(x0 as a float64 numpy vector or None, its l2 norm, a description)."""
    import numpy as np

    if args.x0_norm is not None:
        return None, float(args.x0_norm), f"norm {args.x0_norm:g} given"
    if args.x0 is not None:
        path = Path(args.x0)
        if not path.is_file():
            raise UserError(f"--x0 file not found: {args.x0!r}")
        try:
            x0 = np.load(path, allow_pickle=False)
            x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
        except (ValueError, TypeError, EOFError, OSError) as exc:  # not .npy, truncated, not numeric
            raise UserError(f"cannot read --x0 {args.x0!r} as a .npy array of numbers: {exc}")
        if x0.size != n:
            raise UserError(f"--x0 must have n = {n} entries (C*H*W of the architecture), got {x0.size}")
        if not np.all(np.isfinite(x0)):
            raise UserError("--x0 must hold finite numbers (found NaN or inf)")
        norm = float(np.linalg.norm(x0))
        if norm == 0:
            raise UserError("--x0 must be non-zero (the radii scale with its l2 norm)")
        return x0, norm, f"file {args.x0}"
    seed = args.random_input
    x0 = random_input(n, seed)
    return x0, float(np.linalg.norm(x0)), f"uniform [0,1]^n pixels, seed {seed}"


def random_input(n: int, seed: int):
    """x0 with i.i.d. Uniform[0, 1] entries (the paper's random inputs), float64 numpy, seeded."""
    import numpy as np

    return np.random.default_rng(seed).uniform(0.0, 1.0, size=n)


# --------------------------------------------------------------------------- radius
GUARANTEE = ("with probability >= 1 - delta over the random network, no input within r of x0 changes the label "
             "(r depends only on n, M and ||x0||_2, unless marked instance)")


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


def _cmd_radius(args) -> int:
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


# --------------------------------------------------------------------------- verify
def _cmd_verify(args) -> int:
    import numpy as np
    import torch

    from gpbound import radii, verification

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
    res = verification.crossing_frequency(arch, x0_t, r, mode=mode, num_trials=args.num_networks,
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


# --------------------------------------------------------------------------- reproduce
def _cmd_reproduce(args) -> int:
    """Run the sweep of one figure into ``--out`` (JSON lines: a re-run resumes), save
    ``summary.json`` (the full result dict) and the figure's PNG."""
    from gpbound.experiments import figures
    from gpbound.report.checks import atomic_write_text, to_jsonable

    out = Path(args.out or f"results/{args.figure}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out must be a directory, got the file {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    q = args.quick
    import torch

    torch.set_num_threads(args.threads)
    common = {"results_path": out / "results.jsonl", "scheduler": args.scheduler, "progress": True,
              "seed": args.seed}
    t0 = time.perf_counter()
    if args.figure in ("fig1", "fig2", "fig3"):
        sizes = args.sizes or ((4, 8) if q else figures.DEFAULT_SIZES)
        n_min = 40.0 if q else 100.0
        if len({s for s in sizes if 3 * s * s >= n_min}) < 2:
            raise UserError(f"--sizes must hold at least 2 distinct image sides with n = 3 s^2 >= {n_min:g} "
                            f"(the log-log slope fit), got {list(sizes)}")
        if args.preset == "theory" and any(s % 4 for s in sizes):
            raise UserError(f"--sizes must be divisible by 4 for the theory preset, got {list(sizes)}")
        kw = dict(preset=args.preset, sizes=sizes, n_networks=args.num_networks or (2 if q else 10),
                  n_points=args.num_points or (3 if q else 10), **common)
        if q:
            kw.update(widths=4 if args.preset == "theory" else (4, 4, 4), blocks_per_stack=1, n_min=n_min,
                      n_boot=200)
        res = figures.run_distance_sweep(**kw)
        pngs = [figures.plot_distances_vs_n(res, out / "distances_vs_n.png")]
        if args.figure == "fig3":
            top = max(int(r["n"]) for r in res["records"])
            import numpy as np

            d = {norm: np.concatenate([np.asarray(r[norm]["distance"], float) for r in res["records"]
                                       if int(r["n"]) == top]) for norm in res["config"]["norms"]}
            res["percentiles"] = figures.percentile_curves(d)
            pngs.append(figures.plot_percentiles(res["percentiles"], out / "percentiles.png",
                                                 title=f"n = {top} ({args.preset} preset)"))
    else:
        kw = dict(dataset="digits", preset=args.preset, n_networks=args.num_networks or (1 if q else 2),
                  n_points=args.num_points or (4 if q else 10), **common)
        if q:
            kw.update(widths=4 if args.preset == "theory" else (4, 4, 4), blocks_per_stack=1, more_epochs=0)
        res = figures.run_trained_vs_random(**kw)
        pngs = [figures.plot_trained_vs_random(res, out / "trained_vs_random.png")]
    atomic_write_text(out / "summary.json", json.dumps(to_jsonable(res), indent=1))
    print(f"{args.figure}: done in {time.perf_counter() - t0:.1f} s; results in {out} "
          f"(summary.json; results.jsonl resumes an interrupted run)")
    for f in pngs:
        print(f"  figure: {f}")
    return 0


# --------------------------------------------------------------------------- report
def _cmd_report(args) -> int:
    from gpbound.report import build_report

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    if args.results is not None and not Path(args.results).is_dir():
        raise UserError(f"--results must be an existing directory (from 'gpbound reproduce'), got {args.results!r}")
    rep = build_report(args.out, quick=args.quick, results_dir=args.results, seed=args.seed,
                       progress=None if args.silent else progress, threads=args.threads)
    for line in rep.summary_lines():
        print(line)
    print(f"report: {rep.html} ({rep.wall_s:.1f} s); Markdown: {rep.markdown}; numbers: {rep.json}")
    print(rep.verdict_line())
    if args.strict and not rep.all_passed:
        print(f"gpbound report --strict: {rep.verdict_line()}", file=sys.stderr)
        return 1
    return 0


# --------------------------------------------------------------------------- certify (trained GPs)
CERTIFY_CONFIG_HELP = (
    "Model files: --model FILE.pt is the ExactGP's state_dict (torch.save(model.state_dict(), FILE)), read with "
    "torch.load(weights_only=True); --config FILE.json|.yaml describes it: {\"kernel\": \"rbf\" | \"nngp\" | "
    "\"arccos\", \"scale\": true|false (inside a ScaleKernel), \"mean\": \"constant\" | \"zero\", \"ard_num_dims\": "
    "null | int (rbf), \"architecture\": Architecture.to_dict() or a preset name (nngp)}; --data FILE.npz holds "
    "X_train (N, n), y_train (N,) in {-1, +1}, X_test, y_test (read with allow_pickle=False). The model is "
    "gpytorch's ExactGP with GaussianLikelihood (the state_dict's keys: likelihood.*, mean_module.*, covar_module.*).")


def _certify_model_from_files(args):
    import numpy as np
    import torch
    import gpytorch
    from gpbound.report.posterior_check import _exact_gp_class

    if args.config is None:
        raise UserError("--model needs --config FILE.json|.yaml (the kernel description; see 'gpbound certify --help')")
    if args.data is None:
        raise UserError("--model needs --data FILE.npz (X_train, y_train, X_test, y_test)")
    cpath = Path(args.config)
    if not cpath.is_file():
        raise UserError(f"--config file not found: {args.config}")
    text = cpath.read_text(encoding="utf-8")
    if cpath.suffix.lower() in (".yaml", ".yml"):
        import yaml

        cfg = yaml.safe_load(text)
    else:
        cfg = json.loads(text)
    if not isinstance(cfg, dict):
        raise UserError(f"--config must hold a mapping; got {type(cfg).__name__}")
    with np.load(args.data, allow_pickle=False) as z:
        missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in z.files]
        if missing:
            raise UserError(f"--data lacks the arrays {missing} (has {z.files})")
        arrs = {k: torch.from_numpy(np.asarray(z[k], dtype=np.float64)) for k in ("X_train", "y_train", "X_test",
                                                                                   "y_test")}
    n = arrs["X_train"].shape[-1]
    kind = cfg.get("kernel")
    if kind == "rbf":
        ard = cfg.get("ard_num_dims")
        base = gpytorch.kernels.RBFKernel(ard_num_dims=ard)
    elif kind == "arccos":
        from gpbound.kernels import ArcCosineKernel

        base = ArcCosineKernel(order=int(cfg.get("order", 1)))
    elif kind == "nngp":
        from gpbound.kernels import NNGPKernel

        arch_spec = cfg.get("architecture")
        if arch_spec is None:
            raise UserError("config kernel 'nngp' needs 'architecture' (Architecture.to_dict() or a preset name)")
        if isinstance(arch_spec, str):
            arch = load_architecture(arch_spec, cfg.get("image_size"))
        else:
            from gpbound.kernels import Architecture

            arch = Architecture.from_dict(arch_spec)
        base = NNGPKernel(arch)
    else:
        raise UserError(f"config 'kernel' must be 'rbf', 'nngp' or 'arccos'; got {kind!r}")
    kernel = gpytorch.kernels.ScaleKernel(base) if cfg.get("scale", False) else base
    mean = gpytorch.means.ZeroMean() if cfg.get("mean", "constant") == "zero" else gpytorch.means.ConstantMean()
    lik = gpytorch.likelihoods.GaussianLikelihood()
    model = _exact_gp_class()(arrs["X_train"], arrs["y_train"], lik, kernel, mean).double()
    state = torch.load(args.model, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise UserError(f"--model must hold a state_dict (a dict of tensors); got {type(state).__name__}")
    model.load_state_dict(state, strict=True)
    model.eval()
    label = f"{cfg.get('kernel')} ({Path(args.model).name}), n = {n}"
    return model, arrs["X_test"], arrs["y_test"], label


def _cmd_certify(args) -> int:
    import numpy as np
    import torch
    from gpbound.posterior import certify
    from gpbound.report.posterior_check import (GUARANTEE_TEXT, build_exact_gp, certified_accuracy, digits_split,
                                                make_kernel, plot_certified_accuracy, train_exact_gp)

    if (args.model is None) == (args.demo is None):
        raise UserError("give exactly one of --model FILE.pt (with --config and --data) or --demo digits")
    t0 = time.perf_counter()
    if args.demo is not None:
        torch.manual_seed(args.seed)
        Xtr, ytr, Xte, yte = digits_split(args.train_size, args.test_size, seed=args.seed)
        model = build_exact_gp(Xtr, ytr, make_kernel(args.kernel, Xtr.shape[1]))
        train_exact_gp(model, steps=args.steps)
        label = f"{args.kernel} on digits even/odd ({args.train_size} train, {args.test_size} test, " \
                f"{args.steps} Adam steps)"
        if args.save_demo is not None:
            import gpytorch

            d = Path(args.save_demo)
            d.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), d / "model.pt")
            kern = model.covar_module
            base = kern.base_kernel if isinstance(kern, gpytorch.kernels.ScaleKernel) else kern
            cfg = {"kernel": {"RBFKernel": "rbf", "NNGPKernel": "nngp", "ArcCosineKernel": "arccos"}[type(base).__name__],
                   "scale": isinstance(kern, gpytorch.kernels.ScaleKernel), "mean": "constant"}
            if cfg["kernel"] == "nngp":
                cfg["architecture"] = base.architecture.to_dict()
            (d / "config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
            np.savez(d / "data.npz", X_train=Xtr.numpy(), y_train=ytr.numpy(), X_test=Xte.numpy(), y_test=yte.numpy())
    else:
        model, Xte, yte, label = _certify_model_from_files(args)
    res = certify(model, Xte, p=args.p, delta=args.delta)
    m0 = res.m0.cpu().numpy()
    correct = np.sign(m0) == np.sign(yte.cpu().numpy())
    rm, rb = res.mean_radius.cpu().numpy(), res.bayes_radius.cpu().numpy()
    pk = _p_key(args.p)
    print(f"gpbound certify: {label}")
    print(f"kernel {res.kernel}: L = {res.L:.6g}, ||m - c||_H <= {res.rkhs_norm:.6g}, l{pk} balls, delta = {res.delta:g}")
    print(f"test accuracy (sign of the posterior mean): {correct.mean():.4f} on {len(correct)} points")
    print(f"median certified radius: mean classifier {np.median(rm):.4g}, Bayesian classifier {np.median(rb):.4g}")
    top = float(np.quantile(rm, 0.9)) if len(rm) else 0.0
    eps = np.linspace(0.0, top, 6)
    acc_m, acc_b = certified_accuracy(rm, correct, eps), certified_accuracy(rb, correct, eps)
    print(f"{'eps (l' + pk + ')':>14} | {'cert. acc. mean':>15} | {'cert. acc. Bayes':>16}")
    print(f"{'-' * 14}-+-{'-' * 15}-+-{'-' * 16}")
    for e, a, b in zip(eps, acc_m, acc_b):
        print(f"{e:14.4g} | {a:15.4f} | {b:16.4f}")
    print("Meaning: " + GUARANTEE_TEXT.replace("1 - delta", f"{1 - res.delta:g} (delta = {res.delta:g})"))
    out = Path(args.out)
    grid = np.linspace(0.0, max(float(np.max(rm)) if len(rm) else 0.0, 1e-12), 200)
    plot_certified_accuracy(out, {"mean classifier": (grid, certified_accuracy(rm, correct, grid)),
                                  f"Bayes classifier (delta={res.delta:g})": (grid, certified_accuracy(rb, correct, grid))},
                            p_label=f"l{pk}", title=f"certified accuracy, {res.kernel}")
    print(f"plot: {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``gpbound`` (subcommands radius, verify, reproduce, report, certify)."""
    p = _Parser(prog="gpbound", description="Adversarial robustness guarantees for random deep neural "
                "networks (De Palma, Kiani, Lloyd, ICML 2021): certified radii, verification, report.")
    from gpbound import __version__

    p.add_argument("--version", action="version", version=f"gpbound {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{radius,verify,reproduce,report,certify}", parser_class=_Parser)
    sub.required = True
    delta_t = _float_in("delta", 0.0, 1.0)

    def arch_args(sp):
        sp.add_argument("--arch", required=True, metavar="PRESET_OR_FILE",
                        help="preset name (gpbound.kernels.presets) or a .json/.yaml architecture file")
        sp.add_argument("--image-size", type=_int_at_least("--image-size", 1), default=None, metavar="S",
                        help="image side of a preset (default: the preset's own)")
        sp.add_argument("--entropy", choices=("numeric", "closed", "paper"), default="numeric",
                        help="entropy integral: numeric (default, certified), closed (a~_n), paper (a_n, eq. 37)")

    r = sub.add_parser("radius", help="certified radii (comparison and Dudley) of Corollary 1 (l1 ball, segment, l_p)",
                       description="Certified radii of a random network at x0, by the comparison (Sudakov-Fernique, "
                                   "default) and Dudley (the paper's) routes. Meaning: " + GUARANTEE + ".",
                       epilog="example: gpbound radius --arch resnet --image-size 16 --delta 0.01 0.1 0.5 "
                              "--random-input 0 --instance")
    arch_args(r)
    r.add_argument("--delta", type=delta_t, nargs="+", required=True, help="failure probabilities in (0, 1)")
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--x0-norm", type=_float_in("--x0-norm", 0.0, None), metavar="V", help="||x0||_2 only")
    g.add_argument("--x0", metavar="FILE.npy", help="the input x0 (n entries, (C, H, W) order)")
    g.add_argument("--random-input", type=_int_at_least("--random-input", 0), metavar="SEED",
                   help="x0 with uniform [0, 1] pixels drawn with this seed")
    r.add_argument("--p", type=_norm_p, nargs="+", default=None, help="l_p norms for Remark 5 (default 1 2 inf)")
    r.add_argument("--instance", action="store_true",
                   help="also the instance-specific radii (exact sqrt K(x0,x0), layer-wise Lipschitz L; needs x0)")
    r.add_argument("--sigma-w2", type=_float_in("--sigma-w2", 0.0, None), default=2.0,
                   help="weight variance of the random network (--instance only; default 2)")
    r.add_argument("--sigma-b2", type=_float_in("--sigma-b2", 0.0, None, lo_open=False), default=0.0,
                   help="bias variance (--instance only; default 0)")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=_cmd_radius)

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
    v.set_defaults(func=_cmd_verify, x0_norm=None, random_input=None)

    rp = sub.add_parser("reproduce", help="run the sweeps of a figure of the paper (with resume)")
    rp.add_argument("figure", choices=("fig1", "fig2", "fig3", "fig4"))
    rp.add_argument("--out", default=None, help="results directory (default results/FIG)")
    rp.add_argument("--quick", action="store_true", help="tiny sizes")
    rp.add_argument("--scheduler", default=None, metavar="ADDR", help="dask scheduler address")
    rp.add_argument("--preset", choices=("faithful", "theory"), default="faithful",
                    help="faithful (the authors' ResNet, default) or theory (analytic kernel; sizes divisible by 4)")
    rp.add_argument("--sizes", type=_int_at_least("--sizes", 1), nargs="+", default=None, metavar="S",
                    help="image sides (figs 1-3)")
    rp.add_argument("--num-networks", type=_int_at_least("--num-networks", 1), default=None)
    rp.add_argument("--num-points", type=_int_at_least("--num-points", 1), default=None)
    rp.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    rp.add_argument("--threads", type=_int_at_least("--threads", 1), default=1,
                    help="torch threads (default 1: small networks; use dask --scheduler to parallelise)")
    rp.set_defaults(func=_cmd_reproduce)

    rr = sub.add_parser("report", help="build the report of verified bounds (HTML + Markdown + JSON)")
    rr.add_argument("--out", default="docs/report", help="report directory (default docs/report)")
    rr.add_argument("--results", default=None, metavar="DIR", help="saved sweep results for full-scale figures")
    rr.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    rr.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    rr.add_argument("--strict", action="store_true", help="exit 1 unless every check passes (FAIL, ERROR and SKIP all fail)")
    rr.add_argument("--threads", type=_int_at_least("--threads", 1), default=1,
                    help="torch threads while the checks run (default 1: small networks, shared cores)")
    rr.add_argument("--silent", action="store_true", help="no progress lines on stderr")
    rr.set_defaults(func=_cmd_report)

    from gpbound.report.posterior_check import GUARANTEE_TEXT as _CERT_TEXT, KERNEL_CHOICES as _CERT_KERNELS

    ce = sub.add_parser("certify", help="certified radii of a trained Gaussian-process classifier (GPyTorch ExactGP)",
                        description="Certified l_p radii of the posterior-mean and Bayesian classifiers of a trained "
                                    "ExactGP (docs/theory.md section 9). Meaning: " + _CERT_TEXT + " "
                                    + CERTIFY_CONFIG_HELP,
                        epilog="examples: gpbound certify --demo digits --kernel rbf --out certify.png; "
                               "gpbound certify --model model.pt --config model.json --data data.npz --p 2 --delta 0.1")
    gce = ce.add_mutually_exclusive_group()
    gce.add_argument("--model", metavar="FILE.pt", default=None, help="state_dict of a trained ExactGP (see above)")
    gce.add_argument("--demo", choices=("digits",), default=None,
                     help="train a GP on scikit-learn's bundled 8x8 digits (even +1 / odd -1) and certify it")
    ce.add_argument("--config", metavar="FILE.json", default=None, help="kernel description of --model (see above)")
    ce.add_argument("--data", metavar="FILE.npz", default=None, help="X_train, y_train, X_test, y_test of --model")
    ce.add_argument("--kernel", choices=_CERT_KERNELS, default="nngp-dense", help="--demo kernel (default nngp-dense)")
    ce.add_argument("--train-size", type=_int_at_least("--train-size", 2), default=300, help="--demo training points")
    ce.add_argument("--test-size", type=_int_at_least("--test-size", 1), default=200, help="--demo test points")
    ce.add_argument("--steps", type=_int_at_least("--steps", 0), default=30,
                    help="--demo Adam steps on the marginal likelihood (default 30)")
    ce.add_argument("--save-demo", metavar="DIR", default=None,
                    help="--demo: also write DIR/model.pt, DIR/config.json, DIR/data.npz (the --model format)")
    ce.add_argument("--p", type=_norm_p, default=2.0, help="l_p norm of the balls (default 2)")
    ce.add_argument("--delta", type=delta_t, default=0.1, help="failure probability of the Bayesian radius (default 0.1)")
    ce.add_argument("--seed", type=_int_at_least("--seed", 0), default=0)
    ce.add_argument("--out", default="certify.png", metavar="FILE.png", help="plot of certified accuracy vs radius")
    ce.set_defaults(func=_cmd_certify)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed checks with --strict, 2 user error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    from gpbound.experiments.sweep import ResultsLocked

    try:
        return int(args.func(args) or 0)
    except (UserError, ResultsLocked) as exc:
        print(f"gpbound: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # only mistakes of the user are one line; any other exception (ValueError, TypeError,
    # KeyError, ImportError ... from the library) is a bug and propagates with its traceback
    except OSError as exc:  # unwritable --out, a directory where a file should be, unreachable scheduler
        what = f"{exc.strerror}: {exc.filename}" if getattr(exc, "filename", None) else _exc_text(exc)
        print(f"gpbound: error: {what}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("gpbound: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
