"""Data loaders on files the tests write themselves (no downloads)."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from gpbound.experiments.data import (cifar10_binary_labels, load_cifar10_batch, load_digits_binary,
                                      load_mnist_idx, mnist_binary_labels, random_images)


def _idx_bytes(arr, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(">u1").tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 7, 9], dtype=np.uint8)
    opener = gzip.open if compress else open
    pi, pl = tmp_path / "img.idx", tmp_path / "lab.idx"
    with opener(pi, "wb") as fh:
        fh.write(_idx_bytes(imgs))
    with opener(pl, "wb") as fh:
        fh.write(_idx_bytes(labels))
    X, y = load_mnist_idx(pi, pl)
    assert X.shape == (5, 1, 4, 3) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 0] * 255.0, imgs.astype(float))   # exact: k/255*255 round trip
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(mnist_binary_labels(y), [0, 1, 0, 1, 1])


def test_mnist_idx_errors(tmp_path):
    imgs = np.zeros((2, 3, 3), dtype=np.uint8)
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(_idx_bytes(imgs))
    data = bytearray(_idx_bytes(np.zeros(2, dtype=np.uint8)))
    data[0] = 7                                                # bad magic
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="magic"):
        load_mnist_idx(good, bad)
    data = bytearray(_idx_bytes(np.zeros(2, dtype=np.uint8)))
    data[2] = 0x42                                             # unknown type code
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="magic"):
        load_mnist_idx(good, bad)
    bad.write_bytes(_idx_bytes(np.zeros(2, dtype=np.uint8))[:-1])   # truncated body
    with pytest.raises(ValueError, match="bytes"):
        load_mnist_idx(good, bad)
    bad.write_bytes(_idx_bytes(np.zeros(3, dtype=np.uint8)))        # count mismatch
    with pytest.raises(ValueError, match="labels"):
        load_mnist_idx(good, bad)
    with pytest.raises(ValueError, match="0x00000801"):          # images file given as labels
        load_mnist_idx(good, good)


@pytest.mark.parametrize("protocol,bytes_keys", [(2, True), (4, False), (5, False)])
def test_cifar_batch(tmp_path, protocol, bytes_keys):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(10, 3072), dtype=np.uint8)
    labels = list(range(10))
    d = {b"data": data, b"labels": labels} if bytes_keys else {"data": data, "labels": labels}
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps(d, protocol=protocol))
    X, y = load_cifar10_batch(p)
    assert X.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(np.rint(X.reshape(10, -1) * 255).astype(np.uint8), data)
    np.testing.assert_array_equal(y, labels)
    # {airplane 0, bird 2, deer 4, frog 6, ship 8} vs rest
    np.testing.assert_array_equal(cifar10_binary_labels(y), [1, 0, 1, 0, 1, 0, 1, 0, 1, 0])


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_malicious_pickle_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil"
    p.write_bytes(pickle.dumps({"data": _Evil(), "labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        load_cifar10_batch(p)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    p.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "x": eval}))
    with pytest.raises(pickle.UnpicklingError, match="builtins"):
        load_cifar10_batch(p)


def test_digits_and_random():
    X, y = load_digits_binary()
    assert X.shape == (1797, 1, 8, 8) and X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == {0, 1} and abs(y.mean() - 0.5) < 0.05
    R = random_images(2000, 4, 3, seed=0)
    assert R.shape == (2000, 3, 4, 4) and R.min() >= 0 and R.max() <= 1
    # uniform[0,1]: mean 1/2, sd of the mean sqrt(1/12/96000) ~ 9e-4; 5 sd tolerance
    assert abs(R.mean() - 0.5) < 5e-3
    np.testing.assert_array_equal(R, random_images(2000, 4, 3, seed=0))
    with pytest.raises(ValueError, match="image_size"):
        random_images(2, 0)
