"""The paper's experiments (section 4, docs/theory.md §6): Figures 1-4, as plain result dicts.

* :func:`run_distance_sweep` -- Figs 1-2: minimal adversarial distances of random
  networks at random inputs (3-channel images, pixels uniform on [0, 1]) against the input
  dimension ``n = 3 s^2``; medians with 5/45/55/95 percentiles, absolute and relative
  (distance / ``||x0||_p`` of each point), and log-log slopes over ``n >= 100`` with
  bootstrap intervals over networks. Expected slopes: +1/2 (l1), 0 (l2), -1/2 (linf);
  relative -1/2 in every norm (Remark 5 with Corollary 1). A failed attack counts as
  ``+inf`` in every median and percentile (the conservative rule); failures are counted.
* :func:`percentile_curves` -- Fig 3: sorted distances against percentile, linear fit on
  the lowest 25 % (Corollary 1: ``P(distance <= r)`` is at most linear in ``r``).
* :func:`run_trained_vs_random` -- Fig 4: the same architecture trained on a binary task
  (bundled digits even/odd by default), median distances at random, train and test inputs,
  against random (untrained) networks.

Protocol of Figs 1-2. Every task is one *block* of networks at one size, run through
:func:`gpbound.experiments.sweep.run_sweep` (resumable JSON lines; one dask task per block
with ``scheduler=``). Within a block, all networks and points are attacked in one batched
call per norm: the networks are stacked in a :class:`gpbound.ensemble.NetworkEnsemble`
(``vmap`` over networks) and the ``K x P`` points form one batch of
:func:`gpbound.attacks.minimal_distance`. ``fresh_network_per_norm=True`` draws a new
network (and new points) for each norm, as the authors did; the default shares one network
per (size, seed) across the three norms (*paired*). :data:`PAPER_PROTOCOL` holds the
authors' configuration and :func:`protocol_differences` lists every difference of a run
from it; each result carries both.
"""
from __future__ import annotations

import functools
import math
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from .data import load_digits_binary, random_images, train_test_split_arrays
from .fit import (EXPECTED_RELATIVE_SLOPE, EXPECTED_SLOPES, bootstrap_slope, percentile_curve,
                  quantiles_with_inf)
from .networks import PRESET_NAMES, make_network, preset_info
from .sweep import run_sweep

__all__ = ["DEFAULT_SIZES", "PAPER_SIZES", "PAPER_PROTOCOL", "NORMS", "PAIRED_NOTE", "FRESH_NOTE",
           "distance_task", "distance_block_task", "distance_tasks", "run_distance_sweep", "protocol_differences",
           "calibrate_cost", "cost_model",
           "summarize_distances", "fit_distance_slopes", "percentile_curves", "trained_task",
           "run_trained_vs_random", "plot_distances_vs_n", "plot_percentiles", "plot_trained_vs_random"]

DEFAULT_SIZES = (4, 8, 12, 16, 20, 24, 28, 32)       # n = 3 s^2 = 48 ... 3072
PAPER_SIZES = tuple(range(12, 61, 4))                  # s = 12, 16, ..., 60: the authors' 13 sizes
NORMS = ("l1", "l2", "linf")
_P = {"l1": 1.0, "l2": 2.0, "linf": float("inf")}
_NORM_CODE = {"l1": 1, "l2": 2, "linf": 3}
PAIRED_NOTE = ("one network per (size, seed) is shared by the three norms: the norms are paired "
               "comparisons (the authors drew a fresh network per norm)")
FRESH_NOTE = ("a fresh network and fresh points per (size, seed, norm), as the authors drew them: "
              "the norms are independent experiments")
_PCTS = (5, 45, 50, 55, 95)

#: The authors' protocol of Figs 1-2 (paper section 4): the faithful ResNet (depth 20: 3 blocks per
#: stack, widths 32/64/128) in float32, random images with pixels uniform on [0, 1], attacks boxed in
#: [0, 1], s = 12, 16, ..., 60, 200 networks x 10 points per size, a fresh network per norm.
PAPER_PROTOCOL = {"preset": "faithful", "sizes": list(PAPER_SIZES), "n_networks": 200, "n_points": 10,
                  "widths": [32, 64, 128], "blocks_per_stack": 3, "dtype": "float32", "bounds": [0.0, 1.0],
                  "fresh_network_per_norm": True, "norms": list(NORMS)}


def _norm_name(norm) -> str:
    table = {1: "l1", 2: "l2", float("inf"): "linf", "l1": "l1", "l2": "l2", "linf": "linf",
             "inf": "linf", "1": "l1", "2": "l2"}
    try:
        return table[norm]
    except (KeyError, TypeError):
        raise ValueError(f"norm must be one of 1, 2, inf, 'l1', 'l2', 'linf', got {norm!r}") from None


def _resolve_attack(attack):
    if attack is None:
        from gpbound.attacks import minimal_distance
        return minimal_distance
    if not callable(attack):
        raise TypeError("attack must be None (gpbound.attacks.minimal_distance) or a callable "
                        "attack(f, x0, norm, **kwargs) -> result with .distance and .success")
    return attack


def _attack_label(attack) -> str:
    if attack is None:
        return "gpbound.attacks.minimal_distance"
    return f"{getattr(attack, '__module__', '?')}.{getattr(attack, '__qualname__', repr(attack))}"


def _seed(*parts) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence, independent streams)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> 1)


def _attack_points(net, x0, norms, attack, attack_kwargs):
    """Attack ``x0`` in every norm; distances (inf where no verified flip) and start norms."""
    out = {}
    for name in norms:
        out[name] = _attack_one(net, x0, name, attack, attack_kwargs)
    return out


def _attack_one(f, x0, name, attack, attack_kwargs):
    """Attack the rows ``x0`` in norm ``name``: distance (inf where no verified flip), start norm, success.

    A point with ``f(x0) = 0`` exactly (no label: e.g. every path of a narrow network dead) has no
    adversarial example; it counts as a failure (``+inf``), and its record shows ``output == 0``."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*have f\(x0\) = 0 \(no label\)", category=RuntimeWarning)
        res = attack(f, x0, name, **attack_kwargs)
    dist = torch.as_tensor(res.distance).detach().cpu().to(torch.float64)
    ok = torch.as_tensor(res.success).detach().cpu().bool()
    dist = torch.where(ok & torch.isfinite(dist), dist, torch.full_like(dist, float("inf")))
    start = torch.linalg.vector_norm(x0.detach().cpu().to(torch.float64), ord=_P[name], dim=1)
    return {"distance": dist.numpy(), "x0_norm": start.numpy(), "success": ok.numpy()}


class _Column(torch.nn.Module):
    """A scalar-output network ``(B, n) -> (B,)`` as ``(B, n) -> (B, 1)`` (the output layout of
    :class:`gpbound.ensemble.NetworkEnsemble`)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).unsqueeze(-1)


def _task_network(params, seed, device, dtype):
    s, c = int(params["image_size"]), int(params.get("in_channels", 3))
    widths = params.get("widths")
    widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths
    net = make_network(params["preset"], s, seed=seed, in_channels=c, widths=widths,
                       width_scale=float(params.get("width_scale", 1.0)),
                       blocks_per_stack=int(params.get("blocks_per_stack", 3)), device=device, dtype=dtype)
    net.requires_grad_(False)
    net.eval()
    return net


def _seeds(s, ns, norm, fresh):
    """(network seed, points seed) of network ``ns`` at size ``s``; per norm if ``fresh``."""
    if fresh:
        code = _NORM_CODE[norm]
        return _seed(s, ns, 0, code), _seed(s, ns, 1, code)
    return _seed(s, ns, 0), _seed(s, ns, 1)


def distance_block_task(params: Mapping, attack: Optional[Callable] = None,
                        attack_kwargs: Optional[dict] = None, device=None) -> dict:
    """One task of Figs 1-2: a block of random networks of one size, attacked at random points.

    ``params``: ``preset``, ``image_size``, ``net_seeds`` (the networks of the block),
    ``n_points``, ``norms``, ``widths``, ``width_scale``, ``blocks_per_stack``, ``in_channels``,
    ``dtype`` ("float64"/"float32"), ``bounds`` (``None`` or ``[lo, hi]``: the attack box),
    ``fresh_network_per_norm`` (bool), ``batched`` (bool, default True).

    Network ``ns`` of size ``s`` has weights seeded from ``(s, ns, 0)`` and points from ``(s, ns, 1)``
    (with the norm appended when ``fresh_network_per_norm``), so a network's distances do not
    depend on the block it is in. With ``batched`` the ``K`` networks of the block are stacked
    (:class:`gpbound.ensemble.NetworkEnsemble`) and their ``K x P`` points attacked in one call
    per norm; otherwise (or for a block of one network) each network is attacked alone (the reference of
    the batched path).

    Returns
    -------
    dict
        ``networks``: one record per network with ``n``, ``image_size``, ``net_seed`` and per norm
        ``distance`` (``inf`` where no verified flip), ``x0_norm``, ``success``, ``output``
        (``f(x0)``), ``network_seed``; ``attack_s`` (seconds of the attacks), ``batched``.
    """
    from gpbound.ensemble import NetworkEnsemble

    attack = _resolve_attack(attack)
    attack_kwargs = dict(attack_kwargs or {})
    bounds = params.get("bounds")
    if bounds is not None:
        attack_kwargs["bounds"] = (float(bounds[0]), float(bounds[1]))
    dtype = getattr(torch, params.get("dtype", "float64"))
    s, c, P = int(params["image_size"]), int(params.get("in_channels", 3)), int(params["n_points"])
    fresh, batched = bool(params.get("fresh_network_per_norm", False)), bool(params.get("batched", True))
    seeds = [int(v) for v in params["net_seeds"]]
    norms = [_norm_name(v) for v in params["norms"]]
    n = c * s * s
    recs = [{"n": n, "image_size": s, "net_seed": ns} for ns in seeds]
    nets: Dict[int, torch.nn.Module] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for name in norms:
        pairs = [_seeds(s, ns, name, fresh) for ns in seeds]
        if fresh or not nets:
            nets = {ns: _task_network(params, ws, device, dtype) for ns, (ws, _) in zip(seeds, pairs)}
        X = torch.as_tensor(np.stack([random_images(P, s, c, seed=ps) for _, ps in pairs]),
                            dtype=dtype, device=device).reshape(len(seeds), P, n)
        if batched and len(seeds) > 1:
            ens = NetworkEnsemble([_Column(nets[ns]) for ns in seeds], points_per_network=P)
            rows = ens.rows(X)
            with torch.no_grad():
                y0 = ens(rows).reshape(len(seeds), P)
            got = _attack_one(ens, rows, name, attack, attack_kwargs)
            parts = {k: np.asarray(v).reshape(len(seeds), P) for k, v in got.items()}
        else:
            outs, y0 = [], []
            for k, ns in enumerate(seeds):         # the unbatched reference: one network at a time
                with torch.no_grad():
                    y0.append(nets[ns](X[k]))
                outs.append(_attack_one(nets[ns], X[k], name, attack, attack_kwargs))
            y0 = torch.stack(y0)
            parts = {k: np.stack([o[k] for o in outs]) for k in outs[0]}
        y0 = y0.detach().cpu().to(torch.float64).numpy()
        for k, ns in enumerate(seeds):
            recs[k][name] = {**{key: v[k] for key, v in parts.items()}, "output": y0[k],
                             "network_seed": pairs[k][0]}
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    for r in recs:
        if not fresh:
            r["output"] = r[norms[0]]["output"]
    return {"networks": recs, "attack_s": wall, "cpu_s": cpu, "batched": batched,
            "points": len(seeds) * P * len(norms)}


def distance_task(params: Mapping, attack: Optional[Callable] = None, attack_kwargs: Optional[dict] = None,
                  device=None) -> dict:
    """One network of Figs 1-2 (``params`` as :func:`distance_block_task` with ``net_seed`` instead of
    ``net_seeds``), attacked alone; returns that network's record."""
    p = {k: v for k, v in params.items() if k != "net_seed"}
    p["net_seeds"] = [int(params["net_seed"])]
    p.setdefault("batched", False)
    out = distance_block_task(p, attack=attack, attack_kwargs=attack_kwargs, device=device)
    return {**out["networks"][0], "attack_s": out["attack_s"]}


def _check_sizes(preset, sizes):
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of image sides >= 1, got {sizes}")
    if preset == "theory" and any(s % 4 for s in sizes):
        raise ValueError(f"sizes must be divisible by 4 for the theory preset, got {sizes}")
    return sizes


def _check_bounds(bounds, preset):
    if isinstance(bounds, str):
        if bounds != "auto":
            raise ValueError(f"bounds must be 'auto', None or a pair (lo, hi) with lo < hi; got {bounds!r}")
        return [0.0, 1.0] if preset == "faithful" else None
    if bounds is None:
        return None
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise TypeError(f"bounds must be 'auto', None or a pair (lo, hi) of floats; got {bounds!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= 0.0 and hi >= 1.0):
        raise ValueError(f"bounds must be finite with lo <= 0 and hi >= 1 (the random images lie in [0, 1]); "
                         f"got {bounds!r}")
    return [lo, hi]


def _faithful_widths(widths, width_scale):
    from .networks import DEFAULT_WIDTHS

    if widths is None:
        return [max(1, int(round(w * width_scale))) for w in DEFAULT_WIDTHS]
    if isinstance(widths, int):
        return [widths, 2 * widths, 4 * widths]
    return [int(w) for w in widths]


def protocol_differences(config: Mapping) -> List[str]:
    """Every difference of a Figs 1-2 run's ``config`` from :data:`PAPER_PROTOCOL` (an empty list: none
    beyond the attack, which is always listed)."""
    diffs = []
    if config.get("preset") != "faithful":
        diffs.append(f"preset {config.get('preset')!r} (paper: the faithful ResNet)")
    sizes = [int(s) for s in config.get("sizes", [])]
    if sizes != PAPER_PROTOCOL["sizes"]:
        diffs.append(f"sizes s = {sizes} (paper: {PAPER_PROTOCOL['sizes']})")
    for key, what in (("n_networks", "networks per size"), ("n_points", "points per network"),
                      ("blocks_per_stack", "blocks per stack"), ("dtype", "dtype")):
        if config.get(key) != PAPER_PROTOCOL[key]:
            diffs.append(f"{what} {config.get(key)} (paper: {PAPER_PROTOCOL[key]})")
    if config.get("preset") == "faithful":
        w = _faithful_widths(config.get("widths"), float(config.get("width_scale", 1.0)))
        if w != PAPER_PROTOCOL["widths"]:
            diffs.append(f"widths {w} (paper: {PAPER_PROTOCOL['widths']})")
    b = config.get("bounds")
    if b is None or [float(v) for v in b] != PAPER_PROTOCOL["bounds"]:
        diffs.append(f"attack box {b if b is not None else 'none (unboxed R^n)'} (paper: [0, 1])")
    if not config.get("fresh_network_per_norm", False):
        diffs.append("paired: one network per (size, seed) for all norms (paper: a fresh network per norm)")
    if list(config.get("norms", [])) != PAPER_PROTOCOL["norms"]:
        diffs.append(f"norms {config.get('norms')} (paper: {PAPER_PROTOCOL['norms']})")
    diffs.append(f"attack {config.get('attack')} with {config.get('attack_kwargs') or 'its defaults'} "
                 "(the paper's attacks were different code: distances are upper bounds from another ensemble)")
    return diffs


def _sweep_config(preset, n_points, norms, widths, width_scale, blocks_per_stack, dtype, bounds, fresh,
                  attack, attack_kwargs):
    return {"preset": preset, "n_points": int(n_points), "norms": norms, "widths": widths,
            "width_scale": float(width_scale), "blocks_per_stack": int(blocks_per_stack),
            "in_channels": 3, "dtype": dtype, "bounds": bounds, "fresh_network_per_norm": bool(fresh),
            "attack": _attack_label(attack), "attack_kwargs": dict(attack_kwargs or {})}


#: the largest input dimension at which a sweep runs the exhaustive l1 coordinate probe at every size
PROBE_MAX_N = 512


def _uniform_l1_strength(attack, attack_kwargs, bounds, sizes, in_channels=3):
    """``attack_kwargs`` with the l1 coordinate probe fixed for the whole sweep (the same l1 attack at every size).

    Where the default attack (:func:`gpbound.attacks.minimal_distance`) runs its ``"coord"`` attack (unboxed
    by default, or named in ``attacks``) and ``coord_probe`` is not given, the exhaustive probe (``2 n``
    evaluations per point) runs at every size if the largest ``n`` is at most :data:`PROBE_MAX_N`, and at
    none otherwise: a probe at the small sizes only would shorten their l1 distances and tilt the slope.
    """
    kwargs = dict(attack_kwargs or {})
    if attack is not None or "coord_probe" in kwargs:
        return kwargs
    names = kwargs.get("attacks")
    runs_coord = ("coord" in names) if names is not None else bounds is None
    if runs_coord:
        kwargs["coord_probe"] = bool(in_channels * max(sizes) ** 2 <= PROBE_MAX_N)
    return kwargs


def distance_tasks(preset: str = "faithful", sizes: Sequence[int] = DEFAULT_SIZES, n_networks: int = 10,
                   n_points: int = 10, norms: Sequence = NORMS, widths=None, width_scale: float = 1.0,
                   blocks_per_stack: int = 3, attack: Optional[Callable] = None,
                   attack_kwargs: Optional[dict] = None, seed: int = 0, dtype: str = "float64",
                   bounds="auto", fresh_network_per_norm: bool = False, block_size: Optional[int] = None,
                   batched: bool = True):
    """The validated configuration and the task list of :func:`run_distance_sweep` (one task per block
    of ``block_size`` networks at one size). Returns ``(config, tasks)``."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    sizes = _check_sizes(preset, sizes)
    for name, v in (("n_networks", n_networks), ("n_points", n_points)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if block_size is None:
        block_size = min(n_networks, 25)
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be None or an integer >= 1, got {block_size!r}")
    norms = [_norm_name(v) for v in norms]
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if widths is not None and not isinstance(widths, int):
        widths = [int(w) for w in widths]
    bounds = _check_bounds(bounds, preset)
    attack_kwargs = _uniform_l1_strength(attack, attack_kwargs, bounds, sizes)
    config = _sweep_config(preset, n_points, norms, widths, width_scale, blocks_per_stack, dtype, bounds,
                           fresh_network_per_norm, attack, attack_kwargs)
    seeds = [int(seed) + i for i in range(n_networks)]
    blocks = [seeds[i:i + block_size] for i in range(0, n_networks, block_size)]
    tasks = [{**config, "image_size": s, "net_seeds": b, "batched": bool(batched)} for s in sizes for b in blocks]
    full = {**config, "sizes": sizes, "n_networks": n_networks, "seed": seed, "block_size": block_size,
            "batched": bool(batched)}
    return full, tasks


def run_distance_sweep(preset: str = "faithful", sizes: Sequence[int] = DEFAULT_SIZES, n_networks: int = 10,
                       n_points: int = 10, norms: Sequence = NORMS, widths=None, width_scale: float = 1.0,
                       blocks_per_stack: int = 3, attack: Optional[Callable] = None,
                       attack_kwargs: Optional[dict] = None, seed: int = 0, results_path=None,
                       scheduler=None, progress: bool = True, n_min: float = 100.0, n_boot: int = 1000,
                       dtype: str = "float64", device=None, bounds="auto", fresh_network_per_norm: bool = False,
                       block_size: Optional[int] = None, batched: bool = True, protocol: str = "custom") -> dict:
    """Figs 1-2: minimal adversarial distances of random networks against ``n = 3 s^2``.

    For every size ``s`` and network seed ``seed, ..., seed + n_networks - 1`` a random network of
    ``preset`` is drawn with ``n_points`` images with pixels uniform on ``[0, 1]``, and every point
    is attacked in each norm. Networks are grouped in blocks of ``block_size`` per task (one task =
    one block at one size: the unit of resume and of dask); a block is attacked in one batched call
    per norm (:func:`distance_block_task`).

    Parameters
    ----------
    preset : {"faithful", "theory"}
    sizes : image sides ``s`` (default 4..32 step 4, ``n`` = 48..3072; theory needs ``4 | s``;
        the paper: :data:`PAPER_SIZES`)
    n_networks, n_points : networks per size and points per network
    norms : subset of ``("l1", "l2", "linf")``
    widths, width_scale, blocks_per_stack : architecture (see :func:`make_network`)
    attack : callable or None
        ``attack(f, x0, norm, **attack_kwargs)`` returning ``.distance`` and ``.success``;
        ``None`` is :func:`gpbound.attacks.minimal_distance`. Only verified flips count;
        failures are recorded as ``inf``.
    results_path, scheduler, progress : see :func:`gpbound.experiments.sweep.run_sweep`
    n_min, n_boot : slope fits over ``n >= n_min`` with ``n_boot`` bootstrap resamples
    dtype : "float64" (default) or "float32" (the authors')
    device : torch device of the networks and attacks
    bounds : "auto", None or (lo, hi)
        Attack box; "auto" is ``[0, 1]`` for the faithful preset (as the authors ran it) and
        unboxed for theory (as the theorem). ``lo <= 0`` and ``hi >= 1`` (the images lie in it).
    fresh_network_per_norm : bool
        A fresh network (and points) per norm, as the authors; default paired.
    block_size : int or None
        Networks per task (default ``min(n_networks, 25)``); the task keys depend on it.
    batched : bool
        Stack the networks of a block (default); ``False`` attacks them one by one.
    protocol : str
        Name of the protocol stated in the result (``"paper"`` from the CLI's ``--protocol paper``).

    Returns
    -------
    dict
        ``preset`` (:func:`preset_info` of the largest size), ``paired`` and ``note``,
        ``protocol`` (name), ``differences_from_paper`` (:func:`protocol_differences`), ``config``,
        ``records`` (one per network), ``summary`` (:func:`summarize_distances`; failures as
        ``+inf``), ``failures`` (per norm and ``n``), ``slopes`` (:func:`fit_distance_slopes`),
        ``wall_s``, ``attack_s``, ``points_per_second`` (attacked point-norms per attack second).
    """
    config, tasks = distance_tasks(preset, sizes, n_networks, n_points, norms, widths, width_scale,
                                   blocks_per_stack, attack, attack_kwargs, seed, dtype, bounds,
                                   fresh_network_per_norm, block_size, batched)
    info = preset_info(preset, max(config["sizes"]), 3, blocks_per_stack)
    fn = functools.partial(distance_block_task, attack=attack, attack_kwargs=attack_kwargs, device=device)
    t0 = time.perf_counter()
    blocks = run_sweep(fn, tasks, results_path, scheduler=scheduler, progress=progress, desc=f"fig1 {preset}")
    results = [rec for b in blocks for rec in b["result"]["networks"]]
    attack_s = float(sum(b["result"]["attack_s"] for b in blocks))
    points = int(sum(b["result"]["points"] for b in blocks))
    norms = config["norms"]
    summary = summarize_distances(results, norms)
    fresh = config["fresh_network_per_norm"]
    return {"preset": info, "paired": not fresh, "note": FRESH_NOTE if fresh else PAIRED_NOTE,
            "protocol": protocol, "differences_from_paper": protocol_differences(config),
            "config": config, "records": results, "summary": summary,
            "failures": {nm: dict(zip(summary[nm]["n"], [st["failures"] for st in summary[nm]["absolute"]]))
                         for nm in norms},
            "slopes": fit_distance_slopes(results, norms, n_min=n_min, n_boot=n_boot, seed=seed),
            "wall_s": time.perf_counter() - t0, "attack_s": attack_s,
            "points_per_second": points / attack_s if attack_s > 0 else float("nan")}


def calibrate_cost(config: Mapping, sizes: Sequence[int], n_networks: int = 2, n_points: int = 1,
                   attack: Optional[Callable] = None, device=None, seed: int = 10 ** 6) -> dict:
    """Measure the attack time per attacked point (and norm) of a Figs 1-2 ``config`` at two sizes.

    Runs one batched block (:func:`distance_block_task`) of ``n_networks`` networks x ``n_points``
    points with ``config`` (the same architecture, dtype, box, attack and its keyword arguments) at the
    smallest size and at a larger one (``n`` about 4 times larger, capped at the largest size), with
    seeds disjoint from a sweep's, and fits ``seconds per point = c n^e`` through the two measurements.

    Returns
    -------
    dict
        ``sizes`` (the two measured), ``n``, ``seconds_per_point`` (measured), ``c``, ``exponent`` ``e``,
        ``n_networks``, ``n_points``, ``calibration_s`` (wall time of the calibration), ``clock``, ``fitted_exponent``.

    Notes
    -----
    On a CPU device the clock is the process CPU time (torch threads of this process): on a shared
    machine wall time measures the neighbours; elsewhere it is wall time. The exponent is clamped to
    ``e >= 1`` (every forward pass costs at least ``∝ n``; a smaller fitted exponent means per-call overhead,
    or the exhaustive l1 coordinate probe of :func:`gpbound.attacks.coordinate.coordinate_attack`, ``2 n``
    evaluations per point, dominates), with ``c`` then anchored at the
    larger size.
    """
    sizes = sorted({int(s) for s in sizes})
    c_in = int(config.get("in_channels", 3))
    first = sizes[0]
    target = 4 * c_in * first * first
    second = min(sizes[1:], key=lambda s: abs(c_in * s * s - target)) if len(sizes) > 1 else first
    t0 = time.perf_counter()
    on_cpu = device is None or torch.device(device).type == "cpu"
    measured = []
    for s in sorted({first, second}):
        params = {**{k: v for k, v in config.items() if k in _TASK_KEYS}, "image_size": s,
                  "n_points": int(n_points), "net_seeds": [int(seed) + i for i in range(int(n_networks))],
                  "batched": True}
        out = distance_block_task(params, attack=attack, attack_kwargs=config.get("attack_kwargs"), device=device)
        measured.append((c_in * s * s, (out["cpu_s"] if on_cpu else out["attack_s"]) / out["points"]))
    ns = np.array([m[0] for m in measured], float)
    tp = np.array([m[1] for m in measured], float)
    fitted = float(np.log(tp[1] / tp[0]) / np.log(ns[1] / ns[0])) if ns.size > 1 else float("nan")
    e = fitted if fitted >= 1.0 else 1.0          # one size, or overhead-dominated: cost proportional to n
    c = float(tp[-1] / ns[-1] ** e)
    return {"sizes": sorted({first, second}), "n": ns.tolist(), "seconds_per_point": tp.tolist(), "c": c,
            "exponent": e, "fitted_exponent": fitted, "n_networks": int(n_networks), "n_points": int(n_points),
            "calibration_s": time.perf_counter() - t0, "clock": "process CPU time" if on_cpu else "wall time"}


_TASK_KEYS = ("preset", "n_points", "norms", "widths", "width_scale", "blocks_per_stack", "in_channels", "dtype",
              "bounds", "fresh_network_per_norm", "attack", "attack_kwargs")


def cost_model(config: Mapping, calibration: Mapping, workers: Sequence[int] = (1, 8, 32, 128)) -> dict:
    """Estimated cost of a Figs 1-2 sweep from a measured :func:`calibrate_cost`.

    ``seconds(s) = networks x points x norms x c n^e`` per size (``n = 3 s^2``); the total on one
    process of this device, and on ``W`` Dask workers of the same speed: ``max(total / W, longest task)``
    (one task per block of networks at one size).

    Returns
    -------
    dict
        ``tasks``, ``per_size`` (``s``, ``n``, ``tasks``, ``seconds``), ``total_s``, ``total_hours``,
        ``longest_task_s``, ``workers`` (``W -> hours``), ``calibration``.
    """
    sizes = [int(s) for s in config["sizes"]]
    N, P, B = int(config["n_networks"]), int(config["n_points"]), int(config["block_size"])
    norms, c_in = len(config["norms"]), int(config.get("in_channels", 3))
    blocks = -(-N // B)
    rows, longest = [], 0.0
    for s in sizes:
        n = c_in * s * s
        per_point = calibration["c"] * n ** calibration["exponent"]
        rows.append({"s": s, "n": n, "tasks": blocks, "seconds": N * P * norms * per_point})
        longest = max(longest, min(B, N) * P * norms * per_point)
    total = float(sum(r["seconds"] for r in rows))
    return {"tasks": blocks * len(sizes), "per_size": rows, "total_s": total, "total_hours": total / 3600.0,
            "longest_task_s": longest,
            "workers": {int(w): max(total / int(w), longest) / 3600.0 for w in workers},
            "calibration": dict(calibration)}


def _floats(v):
    return np.asarray([float(x) for x in v], dtype=np.float64)


def _groups(results, norm, relative):
    """{n: [per-network arrays]} of (relative) distances, inf for failures."""
    groups: Dict[int, list] = {}
    for r in results:
        d = _floats(r[norm]["distance"])
        if relative:
            d = d / _floats(r[norm]["x0_norm"])
        groups.setdefault(int(r["n"]), []).append(d)
    return groups


def _stats(values):
    """Median and percentiles with failures (``inf``) counted as ``+inf`` (the conservative rule):
    a percentile whose interpolation touches a failure is ``+inf``; ``mean`` likewise."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), np.inf, v)
    fin = v[np.isfinite(v)]
    out = {"count": int(v.size), "failures": int(v.size - fin.size)}
    q = quantiles_with_inf(v, [p / 100.0 for p in _PCTS])
    out.update({("median" if p == 50 else f"p{p}"): float(x) for p, x in zip(_PCTS, q)})
    out["mean"] = float(v.mean()) if v.size else float("nan")
    return out


def summarize_distances(results: Sequence[Mapping], norms: Sequence = NORMS) -> dict:
    """Per norm and ``n``: median and 5/45/55/95 percentiles of the distances and of the
    relative distances ``distance / ||x0||_p`` (pooled over networks and points; a failed
    attack counts as ``+inf``, the conservative rule, and is counted in ``failures``), and the
    mean start norm. Returns ``{norm: {"n": [...], "absolute": [stats...], "relative": [stats...],
    "x0_norm_mean": [...]}}``."""
    norms = [_norm_name(v) for v in norms]
    out = {}
    for norm in norms:
        ga, gr = _groups(results, norm, False), _groups(results, norm, True)
        ns = sorted(ga)
        starts = {}
        for r in results:
            starts.setdefault(int(r["n"]), []).extend(_floats(r[norm]["x0_norm"]).tolist())
        out[norm] = {"n": ns,
                     "absolute": [_stats(np.concatenate(ga[n])) for n in ns],
                     "relative": [_stats(np.concatenate(gr[n])) for n in ns],
                     "x0_norm_mean": [float(np.mean(starts[n])) for n in ns]}
    return out


def fit_distance_slopes(results: Sequence[Mapping], norms: Sequence = NORMS, n_min: float = 100.0,
                        n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Log-log slopes of the median (relative) distance over ``n >= n_min``, bootstrap over
    networks (:func:`gpbound.experiments.fit.bootstrap_slope`, failures as ``+inf``), with the
    expected slopes: ``+1/2, 0, -1/2`` (l1, l2, linf) absolute and ``-1/2`` relative."""
    out = {}
    for norm in [_norm_name(v) for v in norms]:
        out[norm] = {}
        for kind, rel, expected in (("absolute", False, EXPECTED_SLOPES[norm]),
                                    ("relative", True, EXPECTED_RELATIVE_SLOPE)):
            try:
                fit = bootstrap_slope(_groups(results, norm, rel), n_min=n_min, n_boot=n_boot, level=level,
                                      seed=seed)
            except ValueError as exc:      # too few sizes >= n_min, or an infinite median at some n
                fit = {"slope": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                       "error": str(exc)}
            out[norm][kind] = {**fit, "expected": expected}
    return out


def percentile_curves(distances_by_kind: Mapping[str, Sequence[float]], fit_fraction: float = 0.25) -> dict:
    """Fig 3: for each kind of input (e.g. "random", "train", "test"), the sorted distances
    against percentile with the linear fit over the lowest ``fit_fraction``
    (:func:`gpbound.experiments.fit.percentile_curve`)."""
    return {k: percentile_curve(v, fit_fraction) for k, v in distances_by_kind.items()}


# ---------------------------------------------------------------- Figure 4: trained networks

def _load_task(dataset, data_seed):
    if isinstance(dataset, str):
        if dataset != "digits":
            raise ValueError("dataset must be 'digits' or a tuple (X_train, y_train, X_test, y_test) "
                             "(read MNIST/CIFAR-10 with gpbound.experiments.data), got " + repr(dataset))
        X, y = load_digits_binary()
        return train_test_split_arrays(X, y, 0.25, seed=data_seed)
    if not (isinstance(dataset, (tuple, list)) and len(dataset) == 4):
        raise ValueError("dataset must be 'digits' or a tuple (X_train, y_train, X_test, y_test)")
    return tuple(np.asarray(a) for a in dataset)


def trained_task(params: Mapping, data, attack: Optional[Callable] = None,
                 attack_kwargs: Optional[dict] = None, device=None) -> dict:
    """One task of Fig 4: train a network (seed ``net_seed``) and attack ``n_points`` train,
    test and random inputs; do the same with an untrained network of the same architecture.

    Returns per network kind ("trained", "random") and input kind ("random", "train", "test")
    the distances per norm, plus the training information and accuracies.
    """
    from .train import accuracy, train_binary

    attack = _resolve_attack(attack)
    attack_kwargs = dict(attack_kwargs or {})
    Xtr, ytr, Xte, yte = data
    dtype = getattr(torch, params.get("dtype", "float64"))
    c, s = int(Xtr.shape[1]), int(Xtr.shape[2])
    ns, k = int(params["net_seed"]), int(params["n_points"])
    widths = params.get("widths")
    widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths

    def build(seed):
        return make_network(params["preset"], s, seed=seed, in_channels=c, widths=widths,
                            width_scale=float(params.get("width_scale", 1.0)),
                            blocks_per_stack=int(params.get("blocks_per_stack", 3)), device=device, dtype=dtype)

    model, info = train_binary(build, Xtr, ytr, more_epochs=int(params["more_epochs"]), lr=float(params["lr"]),
                               batch_size=int(params["batch_size"]), seed=_seed(ns, 10),
                               min_first_epoch_accuracy=float(params["min_first_epoch_accuracy"]),
                               device=device, dtype=dtype)
    untrained = build(_seed(ns, 20))
    rng = np.random.default_rng(_seed(ns, 30))
    inputs = {"random": random_images(k, s, c, seed=_seed(ns, 31)),
              "train": Xtr[rng.choice(Xtr.shape[0], size=min(k, Xtr.shape[0]), replace=False)],
              "test": Xte[rng.choice(Xte.shape[0], size=min(k, Xte.shape[0]), replace=False)]}
    norms = [_norm_name(v) for v in params["norms"]]
    out = {"net_seed": ns, "training": info,
           "test_accuracy": accuracy(model, Xte, yte, device=device, dtype=dtype),
           "untrained_train_accuracy": accuracy(untrained, Xtr, ytr, device=device, dtype=dtype)}
    for label, net in (("trained", model), ("random", untrained)):
        net.requires_grad_(False)
        net.eval()
        out[label] = {}
        for kind, X in inputs.items():
            x0 = torch.as_tensor(X, dtype=dtype, device=device).reshape(X.shape[0], -1)
            out[label][kind] = _attack_points(net, x0, norms, attack, attack_kwargs)
    return out


def _data_digest(data) -> str:
    """``"custom:<first 16 hex of sha256>"`` over the shapes, dtypes and bytes of the task's arrays."""
    import hashlib

    h = hashlib.sha256()
    for a in data:
        a = np.ascontiguousarray(a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a))
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return "custom:" + h.hexdigest()[:16]


def run_trained_vs_random(dataset="digits", preset: str = "faithful", n_networks: int = 2, n_points: int = 10,
                          norms: Sequence = NORMS, widths=(8, 16, 32), width_scale: float = 1.0,
                          blocks_per_stack: int = 3, more_epochs: int = 2, lr: float = 1e-4,
                          batch_size: int = 32, min_first_epoch_accuracy: float = 0.53,
                          attack: Optional[Callable] = None, attack_kwargs: Optional[dict] = None,
                          seed: int = 0, data_seed: int = 0, results_path=None, scheduler=None,
                          progress: bool = True, dtype: str = "float64", device=None) -> dict:
    """Fig 4: distances of trained networks at random, train and test inputs vs untrained ones.

    Defaults are small (narrow widths 8/16/32, 2 networks, 1 + 2 epochs on the bundled 8x8
    digits even/odd: about a minute on 2 CPU cores); the paper used widths 32/64/128,
    250 networks, 20 points and 14 (MNIST) / 24 (CIFAR-10) more epochs.

    Parameters
    ----------
    dataset : "digits" or (X_train, y_train, X_test, y_test)
        Images ``(N, C, s, s)`` in [0, 1] with labels in {0, 1} (MNIST / CIFAR-10 through
        :mod:`gpbound.experiments.data`). The task key records the name, or for arrays
        ``"custom:<sha256 of the arrays>"``, so a resumed results file never mixes data sets.
    Other parameters as in :func:`run_distance_sweep` and :func:`gpbound.experiments.train.train_binary`.

    Returns
    -------
    dict
        ``records`` (per network), ``summary[net_kind][input_kind][norm]`` (pooled stats),
        ``train_accuracy`` / ``test_accuracy`` (per network), ``note``, ``config``.
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    for name, v in (("n_networks", n_networks), ("n_points", n_points)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    norms = [_norm_name(v) for v in norms]
    data = _load_task(dataset, data_seed)
    if widths is not None and not isinstance(widths, int):
        widths = [int(w) for w in widths]
    config = {"dataset": dataset if isinstance(dataset, str) else _data_digest(data), "data_seed": int(data_seed),
              "preset": preset, "n_points": int(n_points), "norms": norms, "widths": widths,
              "width_scale": float(width_scale), "blocks_per_stack": int(blocks_per_stack),
              "more_epochs": int(more_epochs), "lr": float(lr), "batch_size": int(batch_size),
              "min_first_epoch_accuracy": float(min_first_epoch_accuracy), "dtype": dtype,
              "attack": _attack_label(attack), "attack_kwargs": dict(attack_kwargs or {})}
    tasks = [{**config, "net_seed": int(seed) + i} for i in range(n_networks)]
    fn = functools.partial(trained_task, data=data, attack=attack, attack_kwargs=attack_kwargs, device=device)
    t0 = time.perf_counter()
    recs = [r["result"] for r in run_sweep(fn, tasks, results_path, scheduler=scheduler, progress=progress,
                                           desc="fig4")]
    summary = {}
    for net_kind in ("trained", "random"):
        summary[net_kind] = {}
        for kind in ("random", "train", "test"):
            summary[net_kind][kind] = {
                norm: {**_stats(np.concatenate([_floats(r[net_kind][kind][norm]["distance"]) for r in recs])),
                       "relative": _stats(np.concatenate([_floats(r[net_kind][kind][norm]["distance"])
                                                          / _floats(r[net_kind][kind][norm]["x0_norm"])
                                                          for r in recs]))}
                for norm in norms}
    return {"preset": preset_info(preset, int(data[0].shape[2]), int(data[0].shape[1]), blocks_per_stack),
            "paired": True, "note": PAIRED_NOTE, "config": {**config, "n_networks": n_networks, "seed": seed},
            "records": recs, "summary": summary,
            "train_accuracy": [r["training"]["train_accuracy"] for r in recs],
            "test_accuracy": [r["test_accuracy"] for r in recs], "wall_s": time.perf_counter() - t0}


# ---------------------------------------------------------------- plots (gpbound.report.plots, the one helper)

def _plots():
    """:mod:`gpbound.report.plots` (imported late: the report imports this module's sweeps)."""
    from gpbound.report import plots

    return plots


def plot_distances_vs_n(results: Mapping, path) -> str:
    """Figs 1-2 as one PNG: median distance vs ``n`` (log-log) per norm, 45-55 % error bars,
    5-95 % band and the fitted slope with its bootstrap interval; top row absolute, bottom row
    relative distances. Failed attacks count as ``+inf`` (an infinite median is not drawn); the
    number of failures per ``n`` is written under each point, and the title states the protocol."""
    P = _plots()
    summary, slopes = results["summary"], results.get("slopes", {})
    norms = list(summary)
    with P.figure(path, ncols=len(norms), nrows=2, figsize=(4.6 * len(norms), 7.6)) as (fig, grid):
        _draw_distances(fig, grid, results, summary, slopes, norms, P)
    return str(path)


def _draw_distances(fig, grid, results, summary, slopes, norms, P):
    axes = np.array(grid, dtype=object).reshape(2, len(norms))
    for j, norm in enumerate(norms):
        ns = np.asarray(summary[norm]["n"], dtype=float)
        for i, kind in enumerate(("absolute", "relative")):
            ax = axes[i, j]
            st = summary[norm][kind]
            med = np.array([s["median"] for s in st], dtype=float)
            lo, hi = np.array([s["p45"] for s in st], dtype=float), np.array([s["p55"] for s in st], dtype=float)
            p5, p95 = np.array([s["p5"] for s in st], dtype=float), np.array([s["p95"] for s in st], dtype=float)
            ok = np.isfinite(med) & np.isfinite(hi)
            band = np.isfinite(p5) & np.isfinite(p95)
            if band.any():
                ax.fill_between(ns[band], p5[band], p95[band], alpha=0.2, label="5-95 %")
            fit = slopes.get(norm, {}).get(kind)
            has_fit = bool(fit) and np.isfinite(fit.get("slope", np.nan))
            fitted = ok & (np.isin(ns, np.asarray(fit["n"], dtype=float)) if has_fit else True)
            left_out = ok & ~fitted
            for sel, style, label in ((fitted, {}, "median (45-55 %)"),
                                      (left_out, {"mfc": "white"}, "median, left out of the fit (small n)")):
                if sel.any():
                    ax.errorbar(ns[sel], med[sel], yerr=[med[sel] - lo[sel], hi[sel] - med[sel]], fmt="o",
                                capsize=3, color="C0", label=label, **style)
            nfail = [int(s.get("failures", 0)) for s in st]
            for x, y, k in zip(ns, med, nfail):
                if k:
                    yy = y if np.isfinite(y) else (np.nanmax(med[ok]) if ok.any() else 1.0)
                    ax.annotate(f"{k} failed" + ("" if np.isfinite(y) else " (median +inf)"), (x, yy),
                                textcoords="offset points", xytext=(0, -12), fontsize=6, ha="center", color="red")
            if has_fit:
                nf = np.asarray(fit["n"])
                ax.plot(nf, np.exp(fit["intercept"]) * nf ** fit["slope"], "-", color="C1",
                        label=f"slope {fit['slope']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]"
                              f" (theory {fit['expected']:+.1f})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            P.log_ticks(ax)
            ax.set_xlabel(f"n (failures: {sum(nfail)})")
            ax.set_ylabel(("" if kind == "absolute" else "relative ") + f"{norm} distance")
            leg = P.legend_outside(ax, where="below")
            if leg is not None and i == 0:
                leg.set_in_layout(True)  # the top row's legends: room is made above the bottom row
    preset = results.get("preset", {}).get("preset", "?")
    cfg = results.get("config", {})
    diffs = results.get("differences_from_paper")
    fig.suptitle(f"minimal adversarial distance of random networks (preset {preset}; "
                 f"{'fresh network per norm' if not results.get('paired', True) else 'paired norms'};\n"
                 f"protocol {results.get('protocol', '?')}, {cfg.get('n_networks', '?')} networks × "
                 f"{cfg.get('n_points', '?')} points, box {cfg.get('bounds')}; "
                 f"{len(diffs) if diffs is not None else '?'} difference(s) from the paper, see summary.json)",
                 fontsize=9)


def plot_percentiles(curves: Mapping[str, Mapping], path, title: str = "",
                     bound_slopes: Optional[Mapping[str, float]] = None) -> str:
    """Fig 3: sorted distances against percentile per input kind, with the linear fit over the
    lowest fraction drawn on its range, and optional bound lines ``percentile = slope * distance``
    (``bound_slopes``: label -> slope in percent per unit distance, e.g. Corollary 1's at r -> 0)."""
    P = _plots()
    with P.figure(path, figsize=(6.2, 4.4)) as (fig, ax):
        _draw_percentiles(ax, curves, title, bound_slopes, P)
    return str(path)


def _draw_percentiles(ax, curves, title, bound_slopes, P):
    first = next(iter(curves.values()), None)
    for kind, c in curves.items():
        d, p = np.asarray(c["distances"]), np.asarray(c["percentiles"])
        if np.isfinite(c.get("slope", np.nan)):
            nfit = int(c["n_fit"])
            (line,) = ax.plot(d[:nfit], p[:nfit], ".", ms=3, label=f"{kind} (fitted)")
            ax.plot(d[nfit:], p[nfit:], ".", ms=3, color=line.get_color(), alpha=0.35,
                    label=f"{kind} (left out of the fit)")
            dd = d[:nfit]
            ax.plot(dd, c["intercept"] + c["slope"] * dd, "-", color=line.get_color(),
                    label=f"{kind}: fit lowest {100 * c['fit_fraction']:.0f} % (slope {c['slope']:.3g} %/unit)")
        else:
            ax.plot(d, p, ".", ms=3, label=kind)
    if bound_slopes and first is not None and len(first["distances"]):
        d0 = np.asarray(first["distances"], float)
        xmax = float(np.nanmax(d0[np.isfinite(d0)])) if np.isfinite(d0).any() else 1.0
        for (label, slope), style in zip(bound_slopes.items(), ("k--", "k-.", "k:")):
            xs = np.linspace(0.0, min(xmax, 100.0 / slope), 50)
            ax.plot(xs, slope * xs, style, lw=1, label=f"{label}: {slope:.3g} %/unit")
        ax.set_ylim(0, 100)
    ax.set_xlabel("distance")
    ax.set_ylabel("percentile")
    ax.set_title(title)
    P.legend_outside(ax, where="right")


def plot_trained_vs_random(results: Mapping, path) -> str:
    """Fig 4: median distance (45-55 % error bars) per input kind, trained vs random networks,
    one panel per norm (log scale)."""
    P = _plots()
    summary = results["summary"]
    norms = list(next(iter(summary["trained"].values())))
    with P.figure(path, ncols=len(norms), figsize=(4.4 * len(norms), 3.8)) as (fig, axes):
        _draw_trained_vs_random(fig, axes if len(norms) > 1 else [axes], results, summary, norms, P)
    return str(path)


def _draw_trained_vs_random(fig, axes, results, summary, norms, P):
    kinds = ("random", "train", "test")
    for j, norm in enumerate(norms):
        ax = axes[j]
        for off, net_kind in ((-0.18, "trained"), (0.18, "random")):
            st = [summary[net_kind][k][norm] for k in kinds]
            med = np.array([s["median"] for s in st], dtype=float)
            p45 = np.array([s["p45"] for s in st], dtype=float)
            p55 = np.array([s["p55"] for s in st], dtype=float)
            # failures count as +inf: a bar whose median (or 55 % point) is infinite is not drawn but labelled
            ok = np.isfinite(med) & np.isfinite(p45) & np.isfinite(p55)
            h = np.where(ok, med, np.nan)
            err = [np.where(ok, med - np.where(ok, p45, 0.0), 0.0), np.where(ok, np.where(ok, p55, 0.0) - med, 0.0)]
            ax.bar(np.arange(3) + off, h, width=0.34, yerr=err, capsize=3, label=f"{net_kind} network")
            for x in np.flatnonzero(~ok):
                ax.annotate("+∞ (failures)", (x + off, 0.5), xycoords=("data", "axes fraction"), rotation=90,
                            ha="center", va="center", fontsize=7, color="red")
        ax.set_xticks(range(3))
        ax.set_xticklabels(kinds)
        ax.set_yscale("log")
        P.log_ticks(ax, "y")
        ax.set_ylabel(f"median {norm} distance")
        P.legend_inside(ax)
    fig.suptitle(f"trained vs random networks ({results.get('config', {}).get('dataset', '')})")
