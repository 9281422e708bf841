"""Tests of dmlkeras.datasets.images: digits and MNIST.

Tests on the real files run when ``DMLKERAS_DATA_DIR`` is set (CI sets it to the
shared data folder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dmlkeras import datasets
from dmlkeras.datasets import _storage
from tests.datasets_helpers import (  # noqa: F401  (isolated: autouse fixture)
    isolated,
    real,
    real_cache,
    real_data_only,
    write_mnist,
)


def test_load_digits() -> None:
    x, y = datasets.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int64 and set(y.tolist()) == set(range(10))
    flat, _ = datasets.load_digits(as_images=False)
    np.testing.assert_array_equal(flat, x.reshape(1797, 64))


def test_load_mnist_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(isolated / "d", monkeypatch)
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(isolated / "d", verify=True)
    assert x_train.shape == (6, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (3, 28, 28)
    np.testing.assert_array_equal(y_train, np.arange(6))
    assert y_test.dtype == np.uint8


def test_real_mnist_hashes_accepted() -> None:
    accepted = {h for _, h in _storage.FILES["mnist.npz"]}
    assert accepted == {
        "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",  # Keras
        "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",  # shared copy
    }


@real_data_only
def test_real_mnist(real: Path) -> None:
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(download=False, verify=True)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
