"""Report check ``posterior``: certified radii of trained GP classifiers vs attacks (digits even/odd).

For ExactGPs trained by marginal likelihood on scikit-learn's bundled 8x8 digits (even = +1,
odd = -1) with an NNGPKernel (dense and small convolutional architectures) and an RBF kernel:

* test accuracy of the mean classifier ``sign m``;
* certified accuracy against the l2 radius (correct and certified at radius eps) of the mean
  classifier and of the Bayesian classifier (probability >= 1 - delta over the posterior sample);
* per test point, the verified minimal-norm attack distance on the posterior mean
  (:func:`gpbound.attacks.minimal_distance`) over the certified mean radius.

PASS iff no attack lands inside a certified radius (ratio >= 1 at every attacked point).

Also the helpers the ``gpbound certify --demo digits`` command uses: :func:`digits_split`,
:func:`build_exact_gp`, :func:`train_exact_gp`, :func:`certified_accuracy`, :func:`plot_certified_accuracy`.
"""
from __future__ import annotations

import math
import time
from typing import Dict, Optional, Sequence

import numpy as np

from .checks import CheckContext, CheckResult, Comparison
from .plots import figure, legend_inside

__all__ = ["check_posterior", "digits_split", "build_exact_gp", "train_exact_gp", "certified_accuracy",
           "plot_certified_accuracy", "KERNEL_CHOICES", "GUARANTEE_TEXT"]

#: kernels of :func:`build_exact_gp`
KERNEL_CHOICES = ("nngp-dense", "nngp-conv", "rbf", "arccos")

GUARANTEE_TEXT = (
    "mean radius r: the posterior-mean classifier sign m(x) takes the same value at every x with "
    "||x - x0||_p <= r (deterministic). Bayes radius r: with probability >= 1 - delta over a posterior "
    "sample path f, sign f(x) is constant on that ball. A point counts as certified at eps when its "
    "prediction sign m(x0) is correct and its radius is >= eps.")


def digits_split(n_train: int, n_test: int, seed: int = 0):
    """Disjoint random train / test subsets of the 8x8 digits, flattened to 64 pixels in [0, 1],
    labels +1 (even) / -1 (odd), float64 tensors."""
    import torch
    from gpbound.experiments.data import load_digits_binary

    X, y = load_digits_binary()
    X = X.reshape(X.shape[0], -1)
    y = 1.0 - 2.0 * y  # even (0) -> +1, odd (1) -> -1
    idx = np.random.default_rng(seed).permutation(X.shape[0])
    if n_train + n_test > X.shape[0]:
        raise ValueError(f"n_train + n_test must be <= {X.shape[0]}; got {n_train} + {n_test}")
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(torch.float64)  # noqa: E731
    return t(X[tr]), t(y[tr]), t(X[te]), t(y[te])


class _ExactGP:  # built lazily (gpytorch import)
    cls = None


def _exact_gp_class():
    if _ExactGP.cls is None:
        import gpytorch

        class ExactGPClassifier(gpytorch.models.ExactGP):
            """GP regression on +-1 labels (ConstantMean, given kernel, GaussianLikelihood)."""

            def __init__(self, X, y, likelihood, kernel, mean=None):
                super().__init__(X, y, likelihood)
                self.mean_module = mean if mean is not None else gpytorch.means.ConstantMean()
                self.covar_module = kernel

            def forward(self, x):
                return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

        _ExactGP.cls = ExactGPClassifier
    return _ExactGP.cls


def make_kernel(name: str, n: int = 64, architecture=None):
    """Kernel ``name`` (:data:`KERNEL_CHOICES`) for inputs of ``n`` pixels (8x8 images for the conv one)."""
    import gpytorch
    from gpbound.kernels import Architecture, ArcCosineKernel, Conv, Dense, Flatten, NNGPKernel, ReLU, serial

    if architecture is not None:
        return NNGPKernel(architecture, sigma_w2=2.0, sigma_b2=0.1)
    if name == "nngp-dense":
        arch = Architecture(serial(Flatten(256), ReLU(), Dense(256), ReLU(), Dense(1)), input_shape=(n,))
        return NNGPKernel(arch, sigma_w2=2.0, sigma_b2=0.1)
    if name == "nngp-conv":
        side = int(round(math.sqrt(n)))
        if side * side != n:
            raise ValueError(f"nngp-conv needs square images; n = {n}")
        arch = Architecture(serial(Conv(8, 3), ReLU(), Flatten(1)), input_shape=(1, side, side))
        return NNGPKernel(arch, sigma_w2=2.0, sigma_b2=0.1)
    if name == "rbf":
        k = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())
        k.base_kernel.lengthscale = math.sqrt(n) / 2
        return k.double()
    if name == "arccos":
        return gpytorch.kernels.ScaleKernel(ArcCosineKernel(order=1)).double()
    raise ValueError(f"unknown kernel {name!r}; choose from {KERNEL_CHOICES}")


def build_exact_gp(X, y, kernel, mean: str = "constant", noise: float = 0.1):
    """An ExactGP (float64) with GaussianLikelihood and ``mean`` in {"constant", "zero"}."""
    import gpytorch

    if mean not in ("constant", "zero"):
        raise ValueError(f"mean must be 'constant' or 'zero'; got {mean!r}")
    lik = gpytorch.likelihoods.GaussianLikelihood().double()
    m = gpytorch.means.ConstantMean() if mean == "constant" else gpytorch.means.ZeroMean()
    model = _exact_gp_class()(X, y, lik, kernel, m.double()).double()
    lik.noise = noise
    return model


def train_exact_gp(model, steps: int = 40, lr: float = 0.05):
    """Maximise the exact marginal likelihood with Adam; returns the final negative MLL per point."""
    import gpytorch
    import torch

    model.train()
    model.likelihood.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    X, y = model.train_inputs[0], model.train_targets
    loss = torch.tensor(float("nan"))
    with gpytorch.settings.max_cholesky_size(10_000):
        for _ in range(int(steps)):
            opt.zero_grad()
            loss = -mll(model(X), y)
            loss.backward()
            opt.step()
    model.eval()
    model.likelihood.eval()
    return float(loss.detach())


def certified_accuracy(radius, correct, eps):
    """Fraction of points with ``correct`` and ``radius >= eps``, for each eps (numpy arrays)."""
    radius = np.asarray(radius, float)
    correct = np.asarray(correct, bool)
    eps = np.asarray(eps, float)
    return ((radius[None, :] >= eps[:, None]) & correct[None, :]).mean(axis=1)


def plot_certified_accuracy(path, curves: Dict[str, tuple], p_label: str = "l2", title: str = ""):
    """PNG of certified accuracy vs radius; ``curves[label] = (eps, accuracy)``."""
    with figure(path) as (f, ax):
        colors = {}
        for label, (eps, acc) in curves.items():
            key = label.split(" ")[0]  # one colour per kernel: "<kernel> mean", "<kernel> Bayes ..."
            colors.setdefault(key, f"C{len(colors)}")
            ax.plot(eps, acc, "--" if "Bayes" in label else "-", color=colors[key], label=label)
        ax.set_xlabel(f"{p_label} radius ε"), ax.set_ylabel("certified accuracy")
        ax.set_ylim(0, 1.02), ax.set_title(title or "certified accuracy (correct and certified)")
        legend_inside(ax)


def check_posterior(ctx: CheckContext, *, certify=None, kernels: Optional[Sequence[str]] = None,
                    n_train: Optional[int] = None, n_test: Optional[int] = None,
                    n_attack: Optional[int] = None, delta: float = 0.1) -> CheckResult:
    """Certified radii of trained GP classifiers (digits even/odd) against verified attacks (module docstring)."""
    import torch
    from gpbound.attacks import minimal_distance
    from gpbound.posterior import certify as _certify, posterior_mean_function

    certify = certify or _certify
    t0 = time.perf_counter()
    kernels = list(kernels or ("nngp-dense", "nngp-conv", "rbf"))
    n_train = n_train or ctx.size(60, 120)
    n_test = n_test or ctx.size(30, 100)
    n_attack = n_attack or ctx.size(4, 8)
    Xtr, ytr, Xte, yte = digits_split(n_train, n_test, seed=ctx.seed)
    rows, comps, numbers, curves = [], [], {}, {}
    all_r = []
    for name in kernels:
        torch.manual_seed(ctx.seed)
        tk = time.perf_counter()
        model = build_exact_gp(Xtr, ytr, make_kernel(name, Xtr.shape[1]))
        train_exact_gp(model, steps=ctx.size(8, 15))
        t_train = time.perf_counter() - tk
        tk = time.perf_counter()
        res = certify(model, Xte, p=2, delta=delta)
        t_cert = time.perf_counter() - tk
        tk = time.perf_counter()
        m0 = res.m0.cpu().numpy()
        correct = np.sign(m0) == yte.numpy()
        acc = float(correct.mean())
        rm, rb = res.mean_radius.cpu().numpy(), res.bayes_radius.cpu().numpy()
        all_r.append(rm)
        f = posterior_mean_function(model)
        k = min(n_attack, Xte.shape[0])
        att = minimal_distance(f, Xte[:k], 2, steps=ctx.size(15, 25), attacks=("linear", "ddn"), bisection_steps=30,
                               generator=torch.Generator().manual_seed(ctx.seed))
        t_attack = time.perf_counter() - tk
        dist = att.distance.detach().cpu().numpy()
        ok = att.success.cpu().numpy() & np.isfinite(dist)
        ratio = dist[ok] / rm[:k][ok]
        min_ratio = float(ratio.min()) if ratio.size else float("nan")
        med_ratio = float(np.median(ratio)) if ratio.size else float("nan")
        comps.append(Comparison(f"{name}: min over attacked points of attack distance / certified mean radius "
                                f"({int(ok.sum())} verified attacks)", min_ratio, ">=", 1.0))
        rows.append([name, acc, res.L, res.rkhs_norm, float(np.median(rm)), float(np.median(rb)), med_ratio,
                     min_ratio])
        numbers[name] = {"test_accuracy": acc, "L": res.L, "rkhs_norm": res.rkhs_norm,
                         "median_mean_radius": float(np.median(rm)), "median_bayes_radius": float(np.median(rb)),
                         "median_attack_ratio": med_ratio, "min_attack_ratio": min_ratio,
                         "attack_ratios": ratio.tolist(), "mean_radius": rm.tolist(), "bayes_radius": rb.tolist(),
                         "correct": correct.tolist(), "verified_attacks": int(ok.sum()), "attacked": k,
                         "seconds": {"train": t_train, "certify": t_cert, "attack": t_attack}}
        curves[name] = (rm, rb, correct)
    top = max(float(np.max(np.concatenate(all_r))), 1e-12)
    eps = np.linspace(0, top, 200)
    fig = "posterior_certified_accuracy.png"
    plot_curves = {}
    for name, (rm, rb, correct) in curves.items():
        plot_curves[f"{name} mean"] = (eps, certified_accuracy(rm, correct, eps))
        plot_curves[f"{name} Bayes (δ={delta})"] = (eps, certified_accuracy(rb, correct, eps))
    plot_certified_accuracy(ctx.figure_path(fig), plot_curves, title="trained GPs, digits even/odd")
    wall = time.perf_counter() - t0
    numbers["wall_s"] = wall
    return CheckResult(
        name="posterior", title="(j) Certified radii of trained GP classifiers vs attacks (digits even/odd)",
        bound="docs/theory.md §9: sign m is constant on the ℓ2 ball of radius |m(x0)| / (‖m − c‖_H L) "
              "(L the feature-map Lipschitz constant); the Bayes radius holds with probability ≥ 1−δ "
              "(Sudakov–Fernique + Borell–TIS).",
        measurement=f"ExactGPs trained by marginal likelihood (Adam) on {n_train} digits, certified on {n_test} "
                    f"test digits; minimal-norm ℓ2 attacks (gpbound.attacks.minimal_distance) on the posterior mean "
                    f"at the first {n_attack} test points (linearisation + DDN, verified flips).",
        tolerance="none: every verified attack distance must be ≥ the certified mean radius (ratio ≥ 1).",
        comparisons=comps, preset="digits 8x8, NNGP dense / conv and RBF kernels", figures=[fig],
        table={"columns": ["kernel", "test accuracy", "L", "‖m − c‖_H", "median mean radius",
                           f"median Bayes radius (δ={delta})", "median attack/certificate",
                           "min attack/certificate"], "rows": rows},
        numbers=numbers,
        details=f"{GUARANTEE_TEXT} Median attack distance / certified mean radius: "
                + ", ".join(f"{r[0]} {r[6]:.3g}" for r in rows) + f". Wall time {wall:.1f} s.")
