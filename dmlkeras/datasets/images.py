"""Image data sets: scikit-learn's 8 x 8 digits (offline) and MNIST (``mnist.npz``)."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as _sklearn_load_digits

from dmlkeras.datasets._storage import PathLike, Remote, fetch, register

__all__ = ["load_digits", "load_mnist"]

# The first version is the file as Keras serves it; the second a re-saved copy
# holding the same arrays (savez_compressed, as in the shared test data).
register(
    files={
        "mnist.npz": (
            (11490434, "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"),
            (11490519, "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"),
        ),
    },
    remotes={
        "mnist": Remote(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
            ("mnist.npz",),
        ),
    },
)


def load_digits(as_images: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 8 x 8 handwritten digits (always available offline).

    Parameters
    ----------
    as_images : bool, default=True
        Return images of shape (1797, 8, 8); if False, flat vectors of shape (1797, 64).

    Returns
    -------
    x : numpy.ndarray of float32
        Pixel intensities scaled from 0..16 to [0, 1].
    y : numpy.ndarray of int64, shape (1797,)
        Digit labels 0..9.

    Examples
    --------
    >>> from dmlkeras.datasets import load_digits
    >>> x, y = load_digits()
    >>> x.shape, x.dtype.name, int(y.max())
    ((1797, 8, 8), 'float32', 9)
    """
    digits = _sklearn_load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    if as_images:
        x = x.reshape(-1, 8, 8)
    return x, digits.target.astype(np.int64)


def load_mnist(
    data_dir: PathLike | None = None,
    download: bool = True,
    verify: bool = False,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST like ``keras.datasets.mnist.load_data()``, from ``mnist.npz``.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``mnist.npz`` (see :func:`data_home`).
    download : bool, default=True
        Download Keras' ``mnist.npz`` when no local copy exists.
    verify : bool, default=False
        Check the SHA-256 of the local file (Keras' file, or the re-saved copy
        of the shared test data, which holds the same arrays).

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of numpy.ndarray
        uint8 images of shape (60000, 28, 28) and (10000, 28, 28) (0 =
        background) and uint8 labels 0..9.

    Raises
    ------
    DatasetNotFoundError
        The file is missing and cannot be downloaded.
    DatasetIntegrityError
        The file (or the download) has the wrong size or checksum.

    Examples
    --------
    >>> from dmlkeras.datasets import load_mnist
    >>> (x_train, y_train), (x_test, y_test) = load_mnist()  # doctest: +SKIP
    >>> x_train.shape, x_test.shape  # doctest: +SKIP
    ((60000, 28, 28), (10000, 28, 28))
    """
    path = fetch(["mnist.npz"], data_dir, download, verify)["mnist.npz"]
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
