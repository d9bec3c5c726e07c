"""Training of the scalar-output networks on binary tasks (Figure 4 of the paper).

The authors' protocol (docs/theory.md §6): a 2-way softmax head, Adam with learning rate 1e-4,
batch 32; the first epoch is repeated *from a fresh start* until the training accuracy
reaches 0.53, then more epochs follow (14 for MNIST, 24 for CIFAR-10). With a scalar logit
``phi`` the 2-way softmax cross-entropy on the logit difference is exactly the logistic
loss ``BCEWithLogits(phi, y)``, which is what is minimised here.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["train_binary", "accuracy"]


def _as_flat_tensor(X, device, dtype, name):
    t = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X)
    if t.dim() < 2:
        raise ValueError(f"{name} must have shape (N, n) or (N, C, H, W), got {tuple(t.shape)}")
    t = t.reshape(t.shape[0], -1).to(device=device, dtype=dtype)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _as_labels(y, N, device, name):
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).reshape(-1)
    if t.shape[0] != N:
        raise ValueError(f"{name} must have {N} entries, got {t.shape[0]}")
    if not bool(((t == 0) | (t == 1)).all()):
        raise ValueError(f"{name} must hold binary labels in {{0, 1}}")
    return t.to(device=device)


@torch.no_grad()
def accuracy(model: nn.Module, X, y, batch_size: int = 512, device=None, dtype=torch.float64) -> float:
    """Fraction of points whose label ``1[model(x) > 0]`` equals ``y``."""
    Xt = _as_flat_tensor(X, device, dtype, "X")
    yt = _as_labels(y, Xt.shape[0], device, "y")
    correct = 0
    for i in range(0, Xt.shape[0], batch_size):
        out = model(Xt[i:i + batch_size])
        correct += int(((out > 0).long() == yt[i:i + batch_size]).sum())
    return correct / max(1, Xt.shape[0])


def _epoch(model, opt, Xt, yt, batch_size, gen):
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    perm = torch.randperm(Xt.shape[0], generator=gen).to(Xt.device)
    total = 0.0
    for i in range(0, Xt.shape[0], batch_size):
        idx = perm[i:i + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(Xt[idx]), yt[idx].to(Xt.dtype))
        loss.backward()
        opt.step()
        total += float(loss.detach()) * idx.numel()
    model.eval()
    return total / Xt.shape[0]


def train_binary(make_model: Callable[[int], nn.Module], X_train, y_train, more_epochs: int = 4,
                 lr: float = 1e-4, batch_size: int = 32, min_first_epoch_accuracy: float = 0.53,
                 max_restarts: int = 20, seed: int = 0, device=None, dtype=torch.float64,
                 progress: bool = False):
    """Train ``make_model(seed)`` on a binary task with the authors' protocol.

    Parameters
    ----------
    make_model : callable ``seed -> nn.Module``
        Builds a fresh scalar-output network (``(B, n) -> (B,)``) from a seed.
    X_train, y_train : arrays
        Inputs ``(N, C, H, W)`` or ``(N, n)`` and labels in ``{0, 1}``.
    more_epochs : int >= 0
        Epochs after the accepted first epoch (paper: 14 MNIST, 24 CIFAR-10).
    lr, batch_size
        Adam learning rate (paper 1e-4) and batch size (paper 32).
    min_first_epoch_accuracy : float in [0, 1]
        The first epoch is repeated from a fresh network (seeds ``seed, seed + 1, ...``)
        until the training accuracy reaches this value (paper 0.53).
    max_restarts : int >= 1
        Fresh starts allowed; a :class:`RuntimeError` is raised when all fail.

    Returns
    -------
    model : nn.Module (in eval mode)
    info : dict
        ``restarts``, ``model_seed``, ``first_epoch_accuracy``, ``train_accuracy`` (final),
        ``losses`` (mean loss per epoch of the accepted run).
    """
    if isinstance(more_epochs, bool) or not isinstance(more_epochs, int) or more_epochs < 0:
        raise ValueError(f"more_epochs must be an integer >= 0, got {more_epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not (0.0 <= min_first_epoch_accuracy <= 1.0):
        raise ValueError(f"min_first_epoch_accuracy must be in [0, 1], got {min_first_epoch_accuracy!r}")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 1:
        raise ValueError(f"max_restarts must be an integer >= 1, got {max_restarts!r}")
    Xt = _as_flat_tensor(X_train, device, dtype, "X_train")
    yt = _as_labels(y_train, Xt.shape[0], device, "y_train")
    gen = torch.Generator().manual_seed(int(seed))
    first_accs = []
    for attempt in range(max_restarts):
        model_seed = int(seed) + attempt
        model = make_model(model_seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses = [_epoch(model, opt, Xt, yt, batch_size, gen)]
        acc = accuracy(model, Xt, yt, device=device, dtype=dtype)
        first_accs.append(acc)
        if acc >= min_first_epoch_accuracy:
            break
    else:
        raise RuntimeError(f"no fresh start reached train accuracy {min_first_epoch_accuracy} after one epoch "
                           f"in {max_restarts} tries (accuracies {first_accs})")
    from tqdm.auto import trange

    for _ in trange(more_epochs, disable=not progress, leave=False, desc="epochs"):
        losses.append(_epoch(model, opt, Xt, yt, batch_size, gen))
    model.eval()
    info = {"restarts": attempt, "model_seed": model_seed, "first_epoch_accuracy": first_accs[-1],
            "rejected_first_epoch_accuracies": first_accs[:-1],
            "train_accuracy": accuracy(model, Xt, yt, device=device, dtype=dtype), "losses": losses}
    return model, info
