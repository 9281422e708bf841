"""Embedding towers: one input to one embedding ``(n, embedding_dim)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from dmlkeras._validation import check_int
from dmlkeras.models.layers import L2Normalize

__all__ = ["BACKBONES", "build_embedding_model", "build_face_tower"]

Tensor = Any

BACKBONES = ("cnn", "mlp")
_CNN_FILTERS = (16, 32, 64)
_MLP_UNITS = (256, 128)


def _as_augmentation(augmentation: Any) -> keras.layers.Layer:
    if isinstance(augmentation, keras.layers.Layer):
        return augmentation
    if isinstance(augmentation, Sequence) and all(isinstance(layer, keras.layers.Layer) for layer in augmentation):
        return keras.Sequential(list(augmentation), name="augmentation")
    raise ValueError(
        "augmentation must be a Keras layer (e.g. a keras.Sequential) or a list of Keras "
        f"preprocessing layers; got {augmentation!r}."
    )


def _cnn_features(images: Tensor, batchnorm_momentum: float) -> Tensor:
    """Conv blocks (Conv2D, BatchNorm, ReLU, 2x2 max-pool), then global average pooling."""
    x = images
    for filters in _CNN_FILTERS:
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization(momentum=batchnorm_momentum)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    return keras.layers.GlobalAveragePooling2D()(x)


def _mlp_features(vectors: Tensor) -> Tensor:
    x = vectors
    for units in _MLP_UNITS:
        x = keras.layers.Dense(units, activation="relu")(x)
    return x


def _pool_to_vector(features: Tensor) -> Tensor:
    """Global-average-pool a 1-D or 2-D feature map, flatten anything else, to ``(n, features)``."""
    rank = len(features.shape)
    if rank == 3:
        return keras.layers.GlobalAveragePooling1D()(features)
    if rank == 4:
        return keras.layers.GlobalAveragePooling2D()(features)
    if rank > 4:
        return keras.layers.Flatten()(features)
    return features


def build_embedding_model(
    input_shape: Sequence[int],
    embedding_dim: int = 64,
    backbone: str | keras.Model = "cnn",
    l2_normalize: bool = True,
    dropout: float = 0.0,
    augmentation: keras.layers.Layer | Sequence[keras.layers.Layer] | None = None,
    batchnorm_momentum: float = 0.99,
    name: str = "embedding",
) -> keras.Model:
    """Build a functional model from one input to its embedding ``(n, embedding_dim)``.

    Parameters
    ----------
    input_shape : sequence of int
        Shape of one sample, without the batch axis. ``"cnn"`` takes images
        ``(height, width)`` (grayscale; a channel axis is added),
        ``(height, width, 1)`` or ``(height, width, 3)``, at least 8x8.
        ``"mlp"`` takes vectors ``(features,)``; other shapes are flattened.
    embedding_dim : int, default 64
        Size of the embeddings.
    backbone : {"cnn", "mlp"} or keras.Model, default "cnn"
        ``"cnn"``: three blocks of Conv2D (16, 32, 64 filters), batch
        normalisation, ReLU and 2x2 max-pooling, then global average pooling;
        sized for 28x28 to 64x64 images and fast on a CPU. ``"mlp"``: Dense
        layers of 256 and 128 units with ReLU. A ``keras.Model`` (for example
        ``keras.applications.MobileNetV3Small(include_top=False, ...)``) is
        used as the trunk; a 3-D or 4-D output is global-average-pooled, a
        larger one flattened.
    l2_normalize : bool, default True
        End with an :class:`L2Normalize` layer, so that every embedding has
        unit norm (advised for cosine distances and margin losses).
    dropout : float, default 0.0
        Dropout rate before the final projection.
    augmentation : keras layer or list of keras layers, optional
        Applied first (after the channel axis is added), e.g.
        ``[keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomTranslation(0.1, 0.1)]``. Keras' random
        augmentation layers only act during training.
    batchnorm_momentum : float, default 0.99
        Momentum of the moving averages of the ``"cnn"`` backbone's
        BatchNormalization layers (Keras' default). Inference uses these
        averages; after a short run (a few hundred steps) 0.99 still holds a
        large share of their initial values (0.99^200 = 13 %), so ``predict``
        embeds differently from what the loss trained. Use 0.9 for short runs.
    name : str, default "embedding"
        Name of the model.

    Returns
    -------
    keras.Model
        One input of shape ``(None, *input_shape)``, one output of shape
        ``(None, embedding_dim)``.

    Raises
    ------
    ValueError
        On an unknown ``backbone``, an ``input_shape`` the backbone does not
        take, or a bad ``embedding_dim``, ``dropout``, ``augmentation`` or
        ``batchnorm_momentum``.

    Examples
    --------
    >>> import numpy as np
    >>> import keras
    >>> model = build_embedding_model((28, 28), embedding_dim=16)
    >>> embeddings = model.predict(np.random.rand(4, 28, 28).astype("float32"), verbose=0)
    >>> embeddings.shape
    (4, 16)
    >>> np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    True

    For a short training run, faster BatchNorm moving averages:

    >>> short = build_embedding_model((28, 28), batchnorm_momentum=0.9)
    >>> [layer.momentum for layer in short.layers if isinstance(layer, keras.layers.BatchNormalization)]
    [0.9, 0.9, 0.9]

    With your own trunk:

    >>> trunk = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3)])
    >>> build_embedding_model((32, 32, 3), embedding_dim=16, backbone=trunk).output_shape
    (None, 16)
    """
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(size, int) and size >= 1 for size in input_shape):
        raise ValueError(f"input_shape must be a tuple of positive integers; got {input_shape!r}.")
    check_int(embedding_dim, "embedding_dim")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
    if isinstance(batchnorm_momentum, bool) or not 0.0 <= batchnorm_momentum < 1.0:
        raise ValueError(f"batchnorm_momentum must be in [0, 1); got {batchnorm_momentum!r}.")
    if not (isinstance(backbone, keras.Model) or backbone in BACKBONES):
        raise ValueError(f"backbone must be one of {BACKBONES} or a keras.Model; got {backbone!r}.")
    if backbone == "cnn" and (len(input_shape) not in (2, 3) or min(input_shape[:2]) < 8):
        raise ValueError(
            "backbone='cnn' expects images of shape (height, width) or (height, width, channels), "
            f"at least 8x8; got input_shape={input_shape}."
        )

    inputs = keras.Input(shape=input_shape, name="inputs")
    x = inputs
    if backbone == "cnn" and len(input_shape) == 2:
        x = keras.layers.Reshape((*input_shape, 1))(x)
    if augmentation is not None:
        x = _as_augmentation(augmentation)(x)
    if backbone == "cnn":
        x = _cnn_features(x, batchnorm_momentum)
    elif backbone == "mlp":
        if len(input_shape) > 1:
            x = keras.layers.Flatten()(x)
        x = _mlp_features(x)
    else:
        x = _pool_to_vector(backbone(x))
    if dropout > 0.0:
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(embedding_dim, name="projection")(x)
    if l2_normalize:
        x = L2Normalize(name="l2_normalize")(x)
    return keras.Model(inputs, x, name=name)


def build_face_tower(
    input_shape: Sequence[int],
    embedding_dim: int = 128,
    l2_normalize: bool = True,
    dropout: float = 0.2,
    augment: bool = True,
    batchnorm_momentum: float = 0.99,
    name: str = "embedding",
) -> keras.Model:
    """The small face CNN of the LFW notebooks (05, 10): aligned gray faces to an embedding.

    * augmentation (training only, ``augment=True``): horizontal flips,
      shifts of up to 6 %, brightness and contrast changes of 20 %;
    * a 5 x 5 stride-2 stem (32 filters), then three blocks of two 3 x 3
      convolutions (32, 64, 128 filters), each with batch normalisation and
      ReLU, and 2 x 2 max-pooling after each block;
    * **flatten**, not global average pooling: the faces are aligned, so
      *where* a feature is (eyes, mouth) matters;
    * dropout, a dense projection and (optionally) L2 normalisation, as in
      :func:`build_embedding_model`.

    About 0.45 M parameters at 62 x 47 pixels; it trains on LFW's few
    thousand faces in minutes on a CPU.

    Parameters
    ----------
    input_shape : sequence of int
        ``(height, width, channels)`` of one face, at least 16 x 16 (the
        network divides each side by 16).
    embedding_dim : int, default 128
    l2_normalize : bool, default True
        Unit-length embeddings (margin losses, ArcFace); ``False`` for a
        softmax classifier on top (compare its embeddings with the cosine).
    dropout : float, default 0.2
    augment : bool, default True
    batchnorm_momentum : float, default 0.99
        Momentum of the BatchNormalization moving averages (Keras'
        default). Inference uses these averages: after a few hundred steps
        0.99 still holds much of their initial values, so ``predict``
        embeds differently from what the loss trained. Use 0.9 for runs of
        less than about a thousand steps.
    name : str, default "embedding"

    Returns
    -------
    keras.Model
        One input ``(None, *input_shape)``, one output ``(None, embedding_dim)``.

    Raises
    ------
    ValueError
        On an ``input_shape`` that is not ``(h, w, c)`` with ``h, w >= 16``,
        or the errors of :func:`build_embedding_model`.

    Examples
    --------
    >>> import numpy as np
    >>> tower = build_face_tower((37, 28, 1), embedding_dim=16)
    >>> faces = np.random.default_rng(0).random((3, 37, 28, 1), dtype=np.float32)
    >>> emb = tower.predict(faces, verbose=0)
    >>> emb.shape, bool(np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5))
    ((3, 16), True)
    """
    if isinstance(batchnorm_momentum, bool) or not 0.0 <= batchnorm_momentum < 1.0:
        raise ValueError(f"batchnorm_momentum must be in [0, 1); got {batchnorm_momentum!r}.")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or not all(isinstance(s, int) for s in input_shape) or min(input_shape[:2]) < 16:
        raise ValueError(
            f"input_shape must be (height, width, channels) with height and width >= 16; got {input_shape!r}."
        )
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(32, 5, strides=2, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=batchnorm_momentum)(x))
    for filters in (32, 64, 128):
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.ReLU()(keras.layers.BatchNormalization(momentum=batchnorm_momentum)(x))
        x = keras.layers.MaxPooling2D()(x)
    trunk = keras.Model(inputs, keras.layers.Flatten()(x), name="trunk")
    augmentation = None
    if augment:
        augmentation = [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="reflect"),
            keras.layers.RandomBrightness(0.2, value_range=(0.0, 1.0)),
            keras.layers.RandomContrast(0.2, value_range=(0.0, 1.0)),
        ]
    return build_embedding_model(
        input_shape, embedding_dim, backbone=trunk, l2_normalize=l2_normalize, dropout=dropout,
        augmentation=augmentation, name=name,
    )
