"""Two (or more) augmented views of every sample, for self-supervised training: :class:`TwoViews`.

:class:`TwoViews` is an :class:`~dmlkeras.data.EpochSeededDataset`: the
batches of an epoch are a permutation seeded by ``(seed, epoch)``, and view
``j`` of batch ``index`` is augmented with randomness seeded by
``(seed, epoch, index, j)``, so every batch is a pure function of those
numbers on every backend. The augmentation is a Keras pipeline of
preprocessing layers (``keras.Sequential([keras.layers.RandomFlip(), ...])``,
which run on TensorFlow, JAX and PyTorch), wrapped by
:class:`KerasAugmentation`, or any callable ``augment(x, rng=...)``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from dmlkeras._validation import check_int
from dmlkeras.data.base import EpochSeededDataset

__all__ = ["KerasAugmentation", "TwoViews"]

# Seeds drawn for keras.random are non-negative int32 values.
_SEED_BOUND = 2**31 - 1


def _pipeline_layers(pipeline: Any) -> list:
    """The layers of a Keras pipeline in call order (nested ``Sequential`` models flattened)."""
    if isinstance(pipeline, keras.Sequential):
        return [layer for inner in pipeline.layers for layer in _pipeline_layers(inner)]
    if isinstance(pipeline, (list, tuple)):
        return [layer for inner in pipeline for layer in _pipeline_layers(inner)]
    if isinstance(pipeline, keras.layers.Layer):
        return [pipeline]
    raise TypeError(
        f"augment must be a Keras layer, a keras.Sequential of layers, a list of layers or a callable "
        f"augment(x, rng=...); got {type(pipeline).__name__}."
    )


def _is_seedable(layer: keras.layers.Layer) -> bool:
    return hasattr(layer, "get_random_transformation") and hasattr(layer, "transform_images")


def _draws_randomness(layer: keras.layers.Layer) -> bool:
    return any(isinstance(value, keras.random.SeedGenerator) for value in vars(layer).values())


class KerasAugmentation:
    """A Keras preprocessing pipeline as a seeded augmentation ``augment(x, rng=generator)``.

    Each random image layer (``RandomFlip``, ``RandomTranslation``,
    ``RandomRotation``, ``RandomZoom``, ``RandomContrast``, ...) gets its own seed
    drawn from ``rng``, through the layer's ``get_random_transformation(x,
    seed=...)``, so the result is a function of ``rng``'s state alone (thread-safe,
    every backend); deterministic layers (``Rescaling``, ``Resizing``) are called
    as they are. Returns a NumPy array.

    Parameters
    ----------
    pipeline : keras.layers.Layer, keras.Sequential or list of layers

    Raises
    ------
    ValueError
        For a random layer that cannot be seeded per call (``GaussianNoise``,
        ``Dropout``: their randomness lives in the layer's own state).

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> augment = KerasAugmentation(keras.Sequential([keras.layers.RandomFlip("horizontal")]))
    >>> x = np.arange(8, dtype="float32").reshape(2, 2, 2, 1)
    >>> first = augment(x, rng=np.random.default_rng(0))
    >>> bool(np.array_equal(first, augment(x, rng=np.random.default_rng(0))))
    True
    """

    def __init__(self, pipeline: Any) -> None:
        self.layers = _pipeline_layers(pipeline)
        for layer in self.layers:
            if not _is_seedable(layer) and _draws_randomness(layer):
                raise ValueError(
                    f"Layer {layer.name!r} ({type(layer).__name__}) draws random numbers from its own state, "
                    "so its output cannot be seeded per (epoch, batch): use Keras' image preprocessing layers "
                    "(RandomFlip, RandomTranslation, RandomZoom, ...) or a callable augment(x, rng=...)."
                )

    def __call__(self, x: Any, rng: np.random.Generator) -> np.ndarray:
        out = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))
        for layer in self.layers:
            if _is_seedable(layer):
                seed = int(rng.integers(_SEED_BOUND))
                transformation = layer.get_random_transformation(out, training=True, seed=seed)
                out = layer.transform_images(out, transformation, training=True)
            else:
                out = layer(out)
        return np.asarray(keras.ops.convert_to_numpy(out))


class TwoViews(EpochSeededDataset):
    """``PyDataset`` of ``views`` augmented copies of each batch: ``((x_1, x_2), zeros)``.

    Each epoch the samples are shuffled (seeded by ``(seed, epoch)``) and cut
    into batches; view ``j`` of batch ``index`` is ``augment`` of the batch with
    randomness seeded by ``(seed, epoch, index, j)``, so views differ, and the
    same seed and epoch give the same batches, whatever the order of requests,
    the thread or the backend. The targets are zeros ``(batch_size,)``, which the
    self-supervised losses ignore; the inputs match
    :func:`dmlkeras.models.build_ssl_model`'s ``[view1, view2]``.

    Parameters
    ----------
    x : array-like of shape (n_samples, ...)
        Unlabelled inputs (images ``(n, height, width, channels)`` for Keras'
        image layers).
    augment : Keras layer, keras.Sequential, list of layers, callable or None
        A Keras preprocessing pipeline (wrapped in :class:`KerasAugmentation`),
        a callable ``augment(x_batch, rng=generator)`` (or ``augment(x_batch)``,
        then unseeded), or ``None``: every view is the input itself (useful to
        see what training without augmentation does).
    batch_size : int, default 256
    views : int, default 2
        Views per sample (>= 2); the inputs are a tuple of that many arrays.
    shuffle : bool, default True
        Draw a new order every epoch (else the data order).
    drop_remainder : bool, default True
        Drop the last, smaller batch (the batch-statistic losses, Barlow Twins
        and VICReg, need full batches; NT-Xent its negatives).
    seed : int or None, default 0
    **pydataset_kwargs
        ``workers``, ``use_multiprocessing``, ``max_queue_size``.

    Raises
    ------
    ValueError
        If ``x`` has fewer samples than one batch (with ``drop_remainder``),
        or ``batch_size`` / ``views`` are not valid.

    Examples
    --------
    >>> import keras
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((20, 8, 8, 1)).astype("float32")
    >>> augment = keras.Sequential([keras.layers.RandomTranslation(0.2, 0.2)])
    >>> ds = TwoViews(x, augment, batch_size=8)
    >>> len(ds)
    2
    >>> (first, second), targets = ds[0]
    >>> first.shape, targets.shape
    ((8, 8, 8, 1), (8,))
    >>> bool(np.array_equal(first, second))
    False
    """

    def __init__(
        self,
        x: Any,
        augment: Any = None,
        batch_size: int = 256,
        views: int = 2,
        shuffle: bool = True,
        drop_remainder: bool = True,
        seed: Any = 0,
        **pydataset_kwargs: Any,
    ) -> None:
        if isinstance(augment, (keras.layers.Layer, list, tuple)):
            augment = KerasAugmentation(augment)
        super().__init__(seed=seed, augment=augment, **pydataset_kwargs)
        self.x = np.asarray(x)
        if self.x.ndim == 0:
            raise ValueError(f"x must be an array of shape (n_samples, ...); got a scalar {x!r}.")
        self.batch_size = check_int(batch_size, "batch_size")
        self.views = check_int(views, "views", minimum=2)
        self.shuffle = bool(shuffle)
        self.drop_remainder = bool(drop_remainder)
        n = len(self.x)
        if n == 0 or (self.drop_remainder and n < self.batch_size):
            raise ValueError(
                f"x has {n} samples, fewer than one batch of batch_size={self.batch_size}; "
                "lower batch_size or pass drop_remainder=False."
            )

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def build_plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))
        return [order[start : start + self.batch_size] for start in range(0, len(self) * self.batch_size, self.batch_size)]

    def __getitem__(self, index: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """``((view_1, ..., view_k), zeros)`` for batch ``index`` of this epoch."""
        index = self.check_index(index)
        rows = self.plan()[index]
        batch = self.x[rows]
        views = tuple(np.asarray(self.augment_batch(batch, index, branch)) for branch in range(self.views))
        return views, np.zeros(len(rows), dtype="float32")
