"""Data for the experiments: random images, bundled 8x8 digits, MNIST IDX and CIFAR-10 files.

Nothing is ever downloaded. scikit-learn's bundled 8x8 digits are the built-in real data
set; MNIST (IDX) and CIFAR-10 (python pickle batches) are read from files the user points
at. CIFAR batches are unpickled by a *restricted* unpickler that only rebuilds numpy
arrays, so a malicious file cannot run code.

All image arrays are ``float64`` of shape ``(N, C, H, W)`` with pixels in ``[0, 1]``;
binary labels are ``int64`` in ``{0, 1}``.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import zlib
from typing import Dict, Tuple

import numpy as np

from gpbound.validation import positive_int, real_number
from gpbound.validation import seed as _seed

__all__ = ["random_images", "load_digits_binary", "load_mnist_idx", "mnist_binary_labels",
           "load_cifar10_batch", "cifar10_binary_labels", "CIFAR10_POSITIVE_CLASSES",
           "RestrictedUnpickler", "train_test_split_arrays"]

# CIFAR-10 class indices: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog,
# 7 horse, 8 ship, 9 truck.  The paper's task: {airplane, bird, deer, frog, ship} vs rest.
CIFAR10_POSITIVE_CLASSES = (0, 2, 4, 6, 8)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def random_images(num: int, image_size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``num`` images with i.i.d. pixels uniform on ``[0, 1]`` (the paper's random inputs).

    Returns an array of shape ``(num, channels, image_size, image_size)``, float64.
    """
    num = positive_int(num, "num")
    image_size = positive_int(image_size, "image_size")
    channels = positive_int(channels, "channels")
    rng = np.random.default_rng(_seed(seed, "seed"))
    return rng.random((num, channels, image_size, image_size))


def load_digits_binary() -> Tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits, labelled even (0) vs odd (1).

    Returns
    -------
    X : ndarray, shape (1797, 1, 8, 8)
        Pixels scaled from ``0..16`` to ``[0, 1]``.
    y : ndarray of int64, shape (1797,)
        ``digit mod 2``.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images.astype(np.float64) / 16.0)[:, None, :, :]
    y = (d.target.astype(np.int64) % 2)
    return X, y


def _open_maybe_gzip(path):
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _read_idx(path) -> np.ndarray:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"an IDX path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        with _open_maybe_gzip(path) as fh:
            data = fh.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # truncated or corrupt .gz
        raise ValueError(f"{path}: corrupt or truncated gzip IDX file ({type(exc).__name__}: {exc})") from exc
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file (shorter than the 4-byte magic number)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: bad IDX magic number {data[:4].hex()} (the first two bytes must be 0)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number {data[:4].hex()}: unknown type code {code:#04x}, "
                         f"allowed {sorted(hex(c) for c in _IDX_DTYPES)}")
    if ndim < 1:
        raise ValueError(f"{path}: IDX header declares {ndim} dimensions, need >= 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX body has {len(data) - header} bytes, header shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def load_mnist_idx(images_path, labels_path) -> Tuple[np.ndarray, np.ndarray]:
    """Read MNIST-format IDX files (raw or gzip), validating the big-endian headers.

    The image file must have magic number ``0x00000803`` (unsigned bytes, 3 dimensions
    ``N x H x W``), the label file ``0x00000801`` (unsigned bytes, ``N``), with equal ``N``.

    Returns
    -------
    X : ndarray, shape (N, 1, H, W), float64
        Pixels divided by 255.
    labels : ndarray of int64, shape (N,)
        The digit labels (use :func:`mnist_binary_labels` for the even/odd task).

    Raises
    ------
    ValueError
        On a wrong magic number, a truncated file or mismatched counts.
    """
    images = _read_idx(images_path)
    labels = _read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{images_path}: expected IDX magic 0x00000803 (uint8, 3 dims), "
                         f"got dtype {images.dtype} with {images.ndim} dims")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected IDX magic 0x00000801 (uint8, 1 dim), "
                         f"got dtype {labels.dtype} with {labels.ndim} dims")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images_path has {images.shape[0]} images but labels_path has {labels.shape[0]} labels")
    X = images.astype(np.float64)[:, None, :, :] / 255.0
    return X, labels.astype(np.int64)


def mnist_binary_labels(labels) -> np.ndarray:
    """Even (0) vs odd (1) digits, the paper's MNIST task."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError("labels must be a 1-d array of digits in 0..9")
    return (labels.astype(np.int64) % 2)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds what a CIFAR-10 batch holds: dicts, bytes, lists and
    numpy arrays. Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError`, so a malicious file cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to unpickle global {module}.{name}: a CIFAR-10 batch "
                                     "only needs numpy array reconstruction")


def load_cifar10_batch(path) -> Tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (``data_batch_1`` ... ``test_batch``) safely.

    The file is a pickled dict with ``data`` (uint8, ``N x 3072``, channel-major 32x32)
    and ``labels`` (``N`` ints); keys may be ``bytes`` (Python 2 pickles, read with
    ``encoding="bytes"``). Unpickling goes through :class:`RestrictedUnpickler`.

    Returns
    -------
    X : ndarray, shape (N, 3, 32, 32), float64 in [0, 1] (pixels / 255)
    labels : ndarray of int64, shape (N,), class indices 0..9
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"CIFAR-10 batch not found: {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        obj = RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:  # a refused global or a corrupt pickle: name the file
        raise pickle.UnpicklingError(f"{path}: {exc}") from exc
    except EOFError as exc:  # truncated
        raise ValueError(f"{path}: not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: a CIFAR-10 batch must hold a dict, got {type(obj).__name__}")
    d: Dict[str, object] = {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{path}: a CIFAR-10 batch needs keys 'data' and 'labels', got {sorted(d)}")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must have shape (N, 3072), got {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: 'labels' must have shape ({data.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9")
    X = data.astype(np.float64).reshape(-1, 3, 32, 32) / 255.0
    return X, labels


def cifar10_binary_labels(labels) -> np.ndarray:
    """1 for {airplane, bird, deer, frog, ship} (classes 0, 2, 4, 6, 8), 0 for the rest."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError("labels must be a 1-d array of CIFAR-10 classes in 0..9")
    return np.isin(labels, CIFAR10_POSITIVE_CLASSES).astype(np.int64)


def train_test_split_arrays(X, y, test_fraction: float = 0.25, seed: int = 0):
    """Seeded random split into ``(X_train, y_train, X_test, y_test)``."""
    test_fraction = real_number(test_fraction, "test_fraction", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    X, y = np.asarray(X), np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must have the same length, got {X.shape[0]} and {y.shape[0]}")
    perm = np.random.default_rng(_seed(seed, "seed")).permutation(X.shape[0])
    k = int(round(test_fraction * X.shape[0]))
    te, tr = perm[:k], perm[k:]
    return X[tr], y[tr], X[te], y[te]
