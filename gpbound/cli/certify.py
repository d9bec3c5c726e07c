"""``gpbound certify``: certified radii of trained GPyTorch ExactGP classifiers."""
from __future__ import annotations

import json
import time
from pathlib import Path

from ._common import (HelpFormatter, UserError, _int_at_least, _norm_p, _p_key, examples_text, load_architecture,
                      presets_text, wrap)


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
            arch, _ = load_architecture(arch_spec, cfg.get("image_size"))
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


def run(args) -> int:
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
            from gpbound.report.checks import atomic_write_text

            atomic_write_text(d / "config.json", json.dumps(cfg, indent=1))
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
                                  f"Bayes classifier (δ={res.delta:g})": (grid, certified_accuracy(rb, correct, grid))},
                            p_label=f"l{pk}", title=f"certified accuracy, {res.kernel}")
    print(f"plot: {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def add_parser(sub, arch_args, delta_t):
    """Register the subcommand on the ``gpbound`` subparsers."""
    from gpbound.report.posterior_check import GUARANTEE_TEXT as _CERT_TEXT, KERNEL_CHOICES as _CERT_KERNELS

    ce = sub.add_parser("certify", help="certified radii of a trained Gaussian-process classifier (GPyTorch ExactGP)",
                        formatter_class=HelpFormatter,
                        description=wrap("Certified l_p radii of the posterior-mean and Bayesian classifiers of a "
                                         "trained ExactGP (docs/theory.md section 9).", "meaning: " + _CERT_TEXT,
                                         CERTIFY_CONFIG_HELP) + "\n\n" + presets_text()
                                    + "\n(a preset name may stand for the nngp kernel's \"architecture\")",
                        epilog=examples_text(
                            "gpbound certify --demo digits --kernel rbf --out certify.png",
                            "gpbound certify --demo digits --save-demo demo/ --steps 30",
                            "gpbound certify --model demo/model.pt --config demo/config.json --data demo/data.npz "
                            "--p 2 --delta 0.1"))
    gce = ce.add_mutually_exclusive_group()
    gce.add_argument("--model", metavar="FILE.pt", default=None, help="state_dict of a trained ExactGP (see above)")
    gce.add_argument("--demo", choices=("digits",), default=None,
                     help="train a GP on scikit-learn's bundled 8x8 digits (even +1 / odd -1) and certify it")
    ce.add_argument("--config", metavar="FILE.json", default=None, help="kernel description of --model (see above)")
    ce.add_argument("--data", metavar="FILE.npz", default=None, help="X_train, y_train, X_test, y_test of --model")
    ce.add_argument("--kernel", choices=_CERT_KERNELS, default="nngp-dense", help="--demo kernel")
    ce.add_argument("--train-size", type=_int_at_least("--train-size", 2), default=300, help="--demo training points")
    ce.add_argument("--test-size", type=_int_at_least("--test-size", 1), default=200, help="--demo test points")
    ce.add_argument("--steps", type=_int_at_least("--steps", 0), default=30,
                    help="--demo Adam steps on the marginal likelihood")
    ce.add_argument("--save-demo", metavar="DIR", default=None,
                    help="--demo: also write DIR/model.pt, DIR/config.json, DIR/data.npz (the --model format)")
    ce.add_argument("--p", type=_norm_p, default=2.0, help="l_p norm of the balls")
    ce.add_argument("--delta", type=delta_t, default=0.1, help="failure probability of the Bayesian radius")
    ce.add_argument("--seed", type=_int_at_least("--seed", 0), default=0, help="seed of the --demo split and training")
    ce.add_argument("--out", default="certify.png", metavar="FILE.png", help="plot of certified accuracy vs radius")
    ce.set_defaults(func=run)
    return ce
