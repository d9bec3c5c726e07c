"""The paper's experiments (section 4, docs/theory.md §6): Figures 1-4, as plain result dicts.

* :func:`run_distance_sweep` -- Figs 1-2: minimal adversarial distances of random
  networks at random inputs (3-channel images, pixels uniform on [0, 1]) against the input
  dimension ``n = 3 s^2``; medians with 5/45/55/95 percentiles, absolute and relative
  (distance / ``||x0||_p`` of each point), and log-log slopes over ``n >= 100`` with
  bootstrap intervals over networks. Expected slopes: +1/2 (l1), 0 (l2), -1/2 (linf);
  relative -1/2 in every norm (Remark 5 with Corollary 1).
* :func:`percentile_curves` -- Fig 3: sorted distances against percentile, linear fit on
  the lowest 25 % (Corollary 1: ``P(distance <= r)`` is at most linear in ``r``).
* :func:`run_trained_vs_random` -- Fig 4: the same architecture trained on a binary task
  (bundled digits even/odd by default), median distances at random, train and test inputs,
  against random (untrained) networks.

One network is shared across the three norms in each task: the norms are *paired*
comparisons (the authors drew a fresh network per norm); every result says so.
Every task is one (size, network seed) pair run through :func:`gpbound.experiments.sweep.run_sweep`,
so sweeps resume from their JSON-lines file and run on dask when given ``scheduler=``.
"""
from __future__ import annotations

import functools
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch

from .data import load_digits_binary, random_images, train_test_split_arrays
from .fit import EXPECTED_RELATIVE_SLOPE, EXPECTED_SLOPES, bootstrap_slope, percentile_curve
from .networks import PRESET_NAMES, make_network, preset_info
from .sweep import run_sweep

__all__ = ["DEFAULT_SIZES", "NORMS", "PAIRED_NOTE", "distance_task", "run_distance_sweep",
           "summarize_distances", "fit_distance_slopes", "percentile_curves", "trained_task",
           "run_trained_vs_random", "plot_distances_vs_n", "plot_percentiles", "plot_trained_vs_random"]

DEFAULT_SIZES = (4, 8, 12, 16, 20, 24, 28, 32)       # n = 3 s^2 = 48 ... 3072
NORMS = ("l1", "l2", "linf")
_P = {"l1": 1.0, "l2": 2.0, "linf": float("inf")}
PAIRED_NOTE = ("one network per (size, seed) is shared by the three norms: the norms are paired "
               "comparisons (the authors drew a fresh network per norm)")
_PCTS = (5, 45, 50, 55, 95)


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
        res = attack(net, x0, name, **attack_kwargs)
        dist = torch.as_tensor(res.distance, dtype=torch.float64).detach().cpu()
        ok = torch.as_tensor(res.success).detach().cpu().bool()
        dist = torch.where(ok & torch.isfinite(dist), dist, torch.full_like(dist, float("inf")))
        start = torch.linalg.vector_norm(x0.detach().cpu().to(torch.float64), ord=_P[name], dim=1)
        out[name] = {"distance": dist.numpy(), "x0_norm": start.numpy(), "success": ok.numpy()}
    return out


def distance_task(params: Mapping, attack: Optional[Callable] = None, attack_kwargs: Optional[dict] = None,
                  device=None) -> dict:
    """One task of Figs 1-2: a random network of ``params`` attacked at random points.

    ``params``: ``preset``, ``image_size``, ``net_seed``, ``n_points``, ``norms``, ``widths``,
    ``width_scale``, ``blocks_per_stack``, ``in_channels``, ``dtype`` ("float64"/"float32").
    The network and the points are seeded from ``(image_size, net_seed)``; the same network
    and points serve every norm (paired).

    Returns
    -------
    dict
        ``n``, ``image_size``, ``net_seed``, ``output`` (``f(x0)``), and per norm
        ``distance``, ``x0_norm``, ``success`` (lists over the points).
    """
    attack = _resolve_attack(attack)
    attack_kwargs = dict(attack_kwargs or {})
    dtype = getattr(torch, params.get("dtype", "float64"))
    s, ns = int(params["image_size"]), int(params["net_seed"])
    c = int(params.get("in_channels", 3))
    widths = params.get("widths")
    widths = tuple(widths) if isinstance(widths, (list, tuple)) else widths
    net = make_network(params["preset"], s, seed=_seed(s, ns, 0), in_channels=c, widths=widths,
                       width_scale=float(params.get("width_scale", 1.0)),
                       blocks_per_stack=int(params.get("blocks_per_stack", 3)), device=device, dtype=dtype)
    net.requires_grad_(False)
    net.eval()
    x0 = torch.as_tensor(random_images(int(params["n_points"]), s, c, seed=_seed(s, ns, 1)),
                         dtype=dtype, device=device).reshape(int(params["n_points"]), -1)
    t0 = time.perf_counter()
    with torch.no_grad():
        y0 = net(x0)
    per_norm = _attack_points(net, x0, [_norm_name(v) for v in params["norms"]], attack, attack_kwargs)
    return {"n": int(x0.shape[1]), "image_size": s, "net_seed": ns, "output": y0.cpu().numpy(),
            "attack_s": time.perf_counter() - t0, **per_norm}


def _check_sizes(preset, sizes):
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"sizes must be a non-empty list of image sides >= 1, got {sizes}")
    if preset == "theory" and any(s % 4 for s in sizes):
        raise ValueError(f"sizes must be divisible by 4 for the theory preset, got {sizes}")
    return sizes


def run_distance_sweep(preset: str = "faithful", sizes: Sequence[int] = DEFAULT_SIZES, n_networks: int = 10,
                       n_points: int = 10, norms: Sequence = NORMS, widths=None, width_scale: float = 1.0,
                       blocks_per_stack: int = 3, attack: Optional[Callable] = None,
                       attack_kwargs: Optional[dict] = None, seed: int = 0, results_path=None,
                       scheduler=None, progress: bool = True, n_min: float = 100.0, n_boot: int = 1000,
                       dtype: str = "float64", device=None) -> dict:
    """Figs 1-2: minimal adversarial distances of random networks against ``n = 3 s^2``.

    For every size ``s`` and network seed ``seed, ..., seed + n_networks - 1`` one task draws a
    random network of ``preset`` and ``n_points`` images with pixels uniform on ``[0, 1]``,
    and attacks every point in each norm (one network for the three norms: paired).

    Parameters
    ----------
    preset : {"faithful", "theory"}
    sizes : image sides ``s`` (default 4..32 step 4, ``n`` = 48..3072; theory needs ``4 | s``)
    n_networks, n_points : networks per size and points per network
    norms : subset of ``("l1", "l2", "linf")``
    widths, width_scale, blocks_per_stack : architecture (see :func:`make_network`)
    attack : callable or None
        ``attack(f, x0, norm, **attack_kwargs)`` returning ``.distance`` and ``.success``;
        ``None`` is :func:`gpbound.attacks.minimal_distance`. Only verified flips count;
        failures are recorded as ``inf``.
    results_path, scheduler, progress : see :func:`gpbound.experiments.sweep.run_sweep`
    n_min, n_boot : slope fits over ``n >= n_min`` with ``n_boot`` bootstrap resamples
    dtype : "float64" (default) or "float32"

    Returns
    -------
    dict
        ``preset`` (:func:`preset_info` of the largest size), ``paired`` (True) and ``note``,
        ``config``, ``records`` (per task), ``summary`` (:func:`summarize_distances`),
        ``slopes`` (:func:`fit_distance_slopes`), ``wall_s``.
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    sizes = _check_sizes(preset, sizes)
    for name, v in (("n_networks", n_networks), ("n_points", n_points)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    norms = [_norm_name(v) for v in norms]
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if widths is not None and not isinstance(widths, int):
        widths = [int(w) for w in widths]
    info = preset_info(preset, max(sizes), 3, blocks_per_stack)
    config = {"preset": preset, "n_points": int(n_points), "norms": norms, "widths": widths,
              "width_scale": float(width_scale), "blocks_per_stack": int(blocks_per_stack),
              "in_channels": 3, "dtype": dtype, "attack": _attack_label(attack),
              "attack_kwargs": dict(attack_kwargs or {})}
    tasks = [{**config, "image_size": s, "net_seed": int(seed) + i} for s in sizes for i in range(n_networks)]
    fn = functools.partial(distance_task, attack=attack, attack_kwargs=attack_kwargs, device=device)
    t0 = time.perf_counter()
    records = run_sweep(fn, tasks, results_path, scheduler=scheduler, progress=progress, desc=f"fig1 {preset}")
    results = [r["result"] for r in records]
    out = {"preset": info, "paired": True, "note": PAIRED_NOTE,
           "config": {**config, "sizes": sizes, "n_networks": n_networks, "seed": seed},
           "records": results, "summary": summarize_distances(results, norms),
           "slopes": fit_distance_slopes(results, norms, n_min=n_min, n_boot=n_boot, seed=seed),
           "wall_s": time.perf_counter() - t0}
    return out


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
    v = np.asarray(values, dtype=np.float64)
    fin = v[np.isfinite(v)]
    out = {"count": int(v.size), "failures": int(v.size - fin.size)}
    if fin.size:
        q = np.percentile(fin, _PCTS)
        out.update({("median" if p == 50 else f"p{p}"): float(x) for p, x in zip(_PCTS, q)})
        out["mean"] = float(fin.mean())
    else:
        out.update({("median" if p == 50 else f"p{p}"): float("nan") for p in _PCTS}, mean=float("nan"))
    return out


def summarize_distances(results: Sequence[Mapping], norms: Sequence = NORMS) -> dict:
    """Per norm and ``n``: median and 5/45/55/95 percentiles of the distances and of the
    relative distances ``distance / ||x0||_p`` (pooled over networks and points; failed
    attacks counted in ``failures`` and left out of the percentiles), and the mean start
    norm. Returns ``{norm: {"n": [...], "absolute": [stats...], "relative": [stats...],
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
    networks (:func:`gpbound.experiments.fit.bootstrap_slope`), with the expected slopes:
    ``+1/2, 0, -1/2`` (l1, l2, linf) absolute and ``-1/2`` relative."""
    out = {}
    for norm in [_norm_name(v) for v in norms]:
        out[norm] = {}
        for kind, rel, expected in (("absolute", False, EXPECTED_SLOPES[norm]),
                                    ("relative", True, EXPECTED_RELATIVE_SLOPE)):
            try:
                fit = bootstrap_slope(_groups(results, norm, rel), n_min=n_min, n_boot=n_boot, level=level,
                                      seed=seed)
            except ValueError as exc:      # too few sizes >= n_min, or every attack failed at some n
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


# ---------------------------------------------------------------- plots (matplotlib, Agg)

def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def plot_distances_vs_n(results: Mapping, path) -> str:
    """Figs 1-2 as one PNG: median distance vs ``n`` (log-log) per norm, 45-55 % error bars,
    5-95 % band and the fitted slope; top row absolute, bottom row relative distances."""
    plt = _pyplot()
    summary, slopes = results["summary"], results.get("slopes", {})
    norms = list(summary)
    fig, axes = plt.subplots(2, len(norms), figsize=(4.2 * len(norms), 7), squeeze=False)
    for j, norm in enumerate(norms):
        ns = np.asarray(summary[norm]["n"], dtype=float)
        for i, kind in enumerate(("absolute", "relative")):
            ax = axes[i, j]
            st = summary[norm][kind]
            med = np.array([s["median"] for s in st])
            lo, hi = np.array([s["p45"] for s in st]), np.array([s["p55"] for s in st])
            ax.fill_between(ns, [s["p5"] for s in st], [s["p95"] for s in st], alpha=0.2, label="5-95 %")
            ax.errorbar(ns, med, yerr=[med - lo, hi - med], fmt="o", capsize=3, label="median (45-55 %)")
            fit = slopes.get(norm, {}).get(kind)
            if fit and np.isfinite(fit.get("slope", np.nan)):
                nf = np.asarray(fit["n"])
                ax.plot(nf, np.exp(fit["intercept"]) * nf ** fit["slope"], "-",
                        label=f"slope {fit['slope']:.2f} [{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]"
                              f" (exp. {fit['expected']:+.1f})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("n")
            ax.set_ylabel(("" if kind == "absolute" else "relative ") + f"{norm} distance")
            ax.legend(fontsize=7)
    preset = results.get("preset", {}).get("preset", "?")
    fig.suptitle(f"minimal adversarial distance of random networks (preset {preset}; paired norms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_percentiles(curves: Mapping[str, Mapping], path, title: str = "",
                     bound_slopes: Optional[Mapping[str, float]] = None) -> str:
    """Fig 3: sorted distances against percentile per input kind, with the linear fit over the
    lowest fraction drawn on its range, and optional bound lines ``percentile = slope * distance``
    (``bound_slopes``: label -> slope in percent per unit distance, e.g. Corollary 1's at r -> 0)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    first = next(iter(curves.values()), None)
    for kind, c in curves.items():
        d, p = np.asarray(c["distances"]), np.asarray(c["percentiles"])
        (line,) = ax.plot(d, p, ".", ms=3, label=kind)
        if np.isfinite(c.get("slope", np.nan)):
            dd = d[:c["n_fit"]]
            ax.plot(dd, c["intercept"] + c["slope"] * dd, "-", color=line.get_color(),
                    label=f"{kind}: fit lowest {100 * c['fit_fraction']:.0f} % (slope {c['slope']:.3g} %/unit)")
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
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_trained_vs_random(results: Mapping, path) -> str:
    """Fig 4: median distance (45-55 % error bars) per input kind, trained vs random networks,
    one panel per norm (log scale)."""
    plt = _pyplot()
    summary = results["summary"]
    norms = list(next(iter(summary["trained"].values())))
    kinds = ("random", "train", "test")
    fig, axes = plt.subplots(1, len(norms), figsize=(4.2 * len(norms), 3.6), squeeze=False)
    for j, norm in enumerate(norms):
        ax = axes[0, j]
        for off, net_kind in ((-0.18, "trained"), (0.18, "random")):
            st = [summary[net_kind][k][norm] for k in kinds]
            med = np.array([s["median"] for s in st])
            err = [med - np.array([s["p45"] for s in st]), np.array([s["p55"] for s in st]) - med]
            ax.bar(np.arange(3) + off, med, width=0.34, yerr=err, capsize=3, label=f"{net_kind} network")
        ax.set_xticks(range(3))
        ax.set_xticklabels(kinds)
        ax.set_yscale("log")
        ax.set_ylabel(f"median {norm} distance")
        ax.legend(fontsize=7)
    fig.suptitle(f"trained vs random networks ({results.get('config', {}).get('dataset', '')})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
